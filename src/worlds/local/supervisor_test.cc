#include "worlds/local/supervisor.h"

#include "http/server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <map>
#include <set>

namespace prescale::local {
namespace {

using namespace std::chrono_literals;

// Fake processes: each records the signals it got; tests end them with exit().
struct FakeWorld final : ProcessLauncher, ReplicaProbe, EndpointSink {
  struct Proc final : Process {
    Proc(FakeWorld& w, int pid, LaunchSpec launched_spec)
        : world(w), id(pid), spec(std::move(launched_spec)) {}
    int pid() const override { return id; }
    void signal(int sig) override {
      signals.push_back(sig);
      world.signals_by_pid[id].push_back(sig);
      if (sig == SIGKILL || (sig == SIGTERM && world.exit_on_term)) {
        status = 128 + sig;
        ended_by = sig;
      }
    }
    std::optional<int> poll_exit() override { return status; }
    int ended_by_signal() const override { return ended_by; }
    FakeWorld& world;
    int id;
    LaunchSpec spec;
    std::vector<int> signals;
    std::optional<int> status;
    int ended_by = 0;  // the signal that ended it
  };

  Result<std::unique_ptr<Process>> launch(const LaunchSpec& spec) override {
    if (fail_launch) return make_error(ErrorCode::kNotFound, "'x' was not found in PATH");
    auto p = std::make_unique<Proc>(*this, next_pid++, spec);
    procs[p->id] = p.get();
    launched.push_back(spec);
    return std::unique_ptr<Process>(std::move(p));
  }
  Result<std::uint16_t> free_port() override {
    if (offered_ports.empty()) return next_port++;
    const std::uint16_t port = offered_ports.front();
    offered_ports.pop_front();
    return port;
  }
  std::optional<std::uint16_t> read_port_file(const std::string& path) override {
    auto it = port_files.find(path);
    return it == port_files.end() ? std::nullopt : std::optional<std::uint16_t>(it->second);
  }
  // Answers when asked (as a replica that answers at once), by ready_ports then (200, or no
  // answer), or with a port's status_of; a port in hung_ports never answers.
  struct Check final : ReadinessCheck {
    Check(FakeWorld& w, std::uint16_t p) : world(w), port(p) {}
    std::optional<bool> answer() override {
      if (world.hung_ports.count(port) > 0) return std::nullopt;
      return status() >= 200 && status() <= 399;
    }
    int status() override {
      if (auto it = world.status_of.find(port); it != world.status_of.end()) return it->second;
      return world.ready_ports.count(port) > 0 ? 200 : 0;
    }
    std::string failure() override {
      auto it = world.failure_of.find(port);
      return status() == 0 && it != world.failure_of.end() ? it->second : std::string();
    }
    FakeWorld& world;
    std::uint16_t port;
  };
  std::unique_ptr<ReadinessCheck> check_ready(std::uint16_t port, const std::string& path,
                                              std::chrono::milliseconds timeout) override {
    ++checks;
    check_paths.insert(path);
    check_timeouts.push_back(timeout);
    return std::make_unique<Check>(*this, port);
  }
  // A gRPC health check: answered as Check is, what grpc_said holds for the port (SERVING by
  // default) being what the answer said; ready only when that is SERVING.
  struct GrpcCheck final : ReadinessCheck {
    GrpcCheck(FakeWorld& w, std::uint16_t p) : check(w, p) {}
    std::optional<bool> answer() override {
      if (!check.answer().has_value()) return std::nullopt;
      return check.status() > 0 && detail() == "SERVING";
    }
    int status() override { return check.status(); }
    std::string failure() override { return check.failure(); }
    std::string detail() override {
      if (check.status() == 0) return "";
      auto it = check.world.grpc_said.find(check.port);
      return it == check.world.grpc_said.end() ? "SERVING" : it->second;
    }
    Check check;
  };
  std::unique_ptr<ReadinessCheck> check_grpc_health(std::uint16_t port, const std::string& service,
                                                    std::chrono::milliseconds timeout) override {
    ++checks;
    grpc_services.push_back(service);
    check_timeouts.push_back(timeout);
    return std::make_unique<GrpcCheck>(*this, port);
  }
  void add(const std::string&, const std::string& replica, std::uint16_t) override {
    endpoints.insert(replica);
  }
  void remove(const std::string&, const std::string& replica) override {
    endpoints.erase(replica);
    removed.push_back(replica);
  }
  std::int64_t in_flight(const std::string&, const std::string& replica) override {
    return in_flight_by[replica];
  }

  Proc* by_port(std::uint16_t port) {
    for (auto& [pid, p] : procs) {
      for (const auto& a : p->spec.argv) {
        if (a == std::to_string(port) && !p->status) return p;
      }
    }
    return nullptr;
  }

  int next_pid = 100;
  std::uint16_t next_port = 9000;
  std::deque<std::uint16_t> offered_ports;  // what free_port() answers first, then next_port
  bool fail_launch = false;
  bool exit_on_term = true;
  std::map<int, Proc*> procs;  // owned by the supervisor's replicas: may dangle once reaped
  std::map<int, std::vector<int>> signals_by_pid;  // outlives the processes
  std::vector<LaunchSpec> launched;
  std::map<std::string, std::uint16_t> port_files;
  std::set<std::uint16_t> ready_ports;
  std::set<std::uint16_t> hung_ports;
  std::map<std::uint16_t, int> status_of;  // what a port's checks answer, over ready_ports
  std::map<std::uint16_t, std::string> failure_of;  // why a port's checks get no answer
  int checks = 0;  // readiness checks started
  std::set<std::string> check_paths;  // the paths they asked for
  std::vector<std::string> grpc_services;  // what the gRPC health checks asked about, in turn
  std::map<std::uint16_t, std::string> grpc_said;         // what a port's gRPC answers say
  std::vector<std::chrono::milliseconds> check_timeouts;  // and their timeouts
  std::set<std::string> endpoints;
  std::vector<std::string> removed;
  std::map<std::string, std::int64_t> in_flight_by;
  std::map<int, std::uint64_t> memory;  // resident bytes by process group (= pid)
};

struct SupervisorTest : ::testing::Test {
  SupervisorTest() {
    SupervisorOptions o;
    o.run_dir = run_dir;
    o.on_event = [this](const ReplicaEvent& e) { events.push_back(e.kind + " " + e.replica); };
    o.read_memory = [this](const std::set<int>&) { return world.memory; };
    sup = std::make_unique<Supervisor>(o, world, world, world);
    EXPECT_TRUE(sup->add_service({"api", {"server", "--port", "{port}", "--id", "{replica}"}, {}}));
  }
  void tick() { sup->tick(clock.now()); }
  void step(Clock::Duration d) {
    clock.advance(d);
    tick();
  }
  std::vector<ReplicaStatus> replicas() { return sup->replicas("api"); }
  // Service `t` declared with one replica, ready on the first of `ready_ports` (others the
  // later replicas'): its first readiness check has answered.
  void one_ready(const ReplicaTemplate& t, std::set<std::uint16_t> ready_ports) {
    ASSERT_TRUE(sup->add_service(t));
    ASSERT_TRUE(sup->set_desired(t.service, 1));
    world.ready_ports = std::move(ready_ports);
    tick();
    step(100ms);
  }
  static ReplicaTemplate api() { return {"api", {"server", "--port", "{port}"}, {}}; }
  // A supervisor of no service yet whose events go to `messages` as "<kind>: <message>".
  void saying_why() {
    SupervisorOptions o;
    o.on_event = [this](const ReplicaEvent& e) { messages.push_back(e.kind + ": " + e.message); };
    o.read_memory = [this](const std::set<int>&) { return world.memory; };
    sup = std::make_unique<Supervisor>(o, world, world, world);
  }

  ~SupervisorTest() override { std::filesystem::remove_all(run_dir); }

  // Made by the supervisor for a port-file replica's start.
  const std::string run_dir =
      (std::filesystem::temp_directory_path() / ("supervisor_run_" + std::to_string(::getpid())))
          .string();
  ManualClock clock;
  FakeWorld world;
  std::unique_ptr<Supervisor> sup;
  std::vector<std::string> events;
  std::vector<std::string> messages;  // with saying_why()
};

TEST_F(SupervisorTest, StartsReplicasAndAnnouncesThemWhenReady) {
  ASSERT_TRUE(sup->set_desired("api", 2));
  tick();
  ASSERT_EQ(world.launched.size(), 2u);
  EXPECT_EQ(world.launched[0].argv,
            (std::vector<std::string>{"server", "--port", "9000", "--id", "api-1"}));
  EXPECT_TRUE(world.endpoints.empty());
  world.ready_ports = {9000};
  step(100ms);
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1"}));
  auto r = replicas();
  EXPECT_EQ(r[0].phase, ReplicaPhase::kReady);
  EXPECT_EQ(r[1].phase, ReplicaPhase::kStarting);
  world.ready_ports.insert(9001);
  step(100ms);
  EXPECT_EQ(world.endpoints.size(), 2u);
}

// A service's own readiness path (services[].readiness_path) is what its replicas are asked.
TEST_F(SupervisorTest, ReplicasAreAskedTheirServicesReadinessPath) {
  ASSERT_TRUE(sup->add_service({"own", {"server", "--port", "{port}"}, {}, "/health/ready"}));
  ASSERT_TRUE(sup->set_desired("api", 1));
  ASSERT_TRUE(sup->set_desired("own", 1));
  tick();
  step(100ms);
  EXPECT_EQ(world.check_paths, (std::set<std::string>{"/readyz", "/health/ready"}));
}

TEST_F(SupervisorTest, PortFileReplicasAreReadyOnceTheyWriteTheirPort) {
  ASSERT_TRUE(sup->add_service({"pf", {"server", "--port-file", "{port_file}"}, {}}));
  ASSERT_TRUE(sup->set_desired("pf", 1));
  tick();
  ASSERT_EQ(world.launched.back().argv[2], run_dir + "/pf-1.port");
  world.ready_ports = {7777};
  step(100ms);
  EXPECT_TRUE(world.endpoints.empty());
  world.port_files[run_dir + "/pf-1.port"] = 7777;
  step(100ms);
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"pf-1"}));
  EXPECT_EQ(sup->replicas("pf")[0].port, 7777);
}

TEST_F(SupervisorTest, CrashedReplicaRestartsWithDoublingBackoffThatResetsAfterHealthyTime) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports = {9000, 9001, 9002, 9003, 9004};
  tick();
  step(100ms);
  ASSERT_EQ(world.endpoints.size(), 1u);
  auto crash = [&] {
    const int pid = replicas()[0].pid;
    world.procs[pid]->status = 1;
    tick();
  };
  crash();
  EXPECT_TRUE(world.endpoints.empty()) << "a crashed replica leaves the gateway at once";
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kCrashed);
  EXPECT_EQ(world.launched.size(), 1u) << "no second replica while one waits to restart";
  step(9900ms);
  EXPECT_EQ(world.launched.size(), 1u);
  step(100ms);  // 10 s
  EXPECT_EQ(world.launched.size(), 2u);
  EXPECT_EQ(replicas()[0].id, "api-1") << "same id";
  step(100ms);
  crash();  // second crash in a row: 20 s
  step(19900ms);
  EXPECT_EQ(world.launched.size(), 2u);
  step(100ms);
  EXPECT_EQ(world.launched.size(), 3u);
  step(100ms);
  ASSERT_EQ(replicas()[0].phase, ReplicaPhase::kReady);
  step(10min);  // healthy long enough: the streak resets
  crash();
  step(10s);
  EXPECT_EQ(world.launched.size(), 4u);
  EXPECT_EQ(replicas()[0].restarts, 3);
}

TEST_F(SupervisorTest, BackoffIsCappedAtFiveMinutes) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  tick();
  for (int i = 0; i < 8; ++i) {
    world.procs[replicas()[0].pid]->status = 1;
    tick();
    const auto wait = *replicas()[0].restart_at - clock.now();
    EXPECT_EQ(wait, std::min<Clock::Duration>(10s * (1 << i), 5min)) << "crash " << i + 1;
    clock.advance(wait);
    tick();
  }
}

TEST_F(SupervisorTest, ScaleDownDrainsThenTerminatesThenKills) {
  world.exit_on_term = false;
  ASSERT_TRUE(sup->set_desired("api", 2));
  world.ready_ports = {9000, 9001};
  tick();
  step(100ms);
  ASSERT_EQ(world.endpoints.size(), 2u);
  world.in_flight_by["api-2"] = 3;
  ASSERT_TRUE(sup->set_desired("api", 1));
  tick();
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1"})) << "the newest drains";
  auto* p = world.by_port(9001);
  ASSERT_NE(p, nullptr);
  const int pid = p->id;
  step(5s);
  EXPECT_TRUE(world.signals_by_pid[pid].empty()) << "in-flight requests finish first";
  world.in_flight_by["api-2"] = 0;
  step(100ms);
  EXPECT_EQ(world.signals_by_pid[pid], std::vector<int>{SIGTERM});
  step(14s);
  EXPECT_EQ(world.signals_by_pid[pid].size(), 1u);
  step(1s);  // term_grace 15 s
  EXPECT_EQ(world.signals_by_pid[pid], (std::vector<int>{SIGTERM, SIGKILL}));
  step(100ms);
  EXPECT_EQ(replicas().size(), 1u);
  EXPECT_EQ(world.launched.size(), 2u) << "the stopped replica is not replaced";
}

TEST_F(SupervisorTest, DrainGivesUpAfterTheDrainTimeout) {
  ASSERT_TRUE(sup->set_desired("api", 2));
  world.ready_ports = {9000, 9001};
  tick();
  step(100ms);
  world.in_flight_by["api-2"] = 1;  // never finishes
  ASSERT_TRUE(sup->set_desired("api", 1));
  tick();
  auto* p = world.by_port(9001);
  ASSERT_NE(p, nullptr);
  const int pid = p->id;
  step(29s);
  EXPECT_TRUE(world.signals_by_pid[pid].empty());
  step(1s);
  EXPECT_EQ(world.signals_by_pid[pid], std::vector<int>{SIGTERM});
}

TEST_F(SupervisorTest, ScaleDownPrefersReplicasThatAreNotServing) {
  ASSERT_TRUE(sup->set_desired("api", 3));
  world.ready_ports = {9000, 9002};
  tick();
  step(100ms);  // api-1, api-3 ready; api-2 starting
  ASSERT_TRUE(sup->set_desired("api", 2));
  tick();
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1", "api-3"}));
  bool api2_draining = false;
  for (const auto& r : replicas()) api2_draining |= r.id == "api-2" && r.phase != ReplicaPhase::kReady;
  EXPECT_TRUE(api2_draining);
}

TEST_F(SupervisorTest, ReplaceStartsTheNewReplicaBeforeTheOldOneGoes) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports = {9000, 9001};
  tick();
  step(100ms);
  ASSERT_TRUE(sup->replace("api-1", clock.now()));
  EXPECT_EQ(world.launched.size(), 2u);
  EXPECT_FALSE(world.endpoints.count("api-1"));
  step(100ms);
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-2"}));
  EXPECT_FALSE(sup->replace("nope", clock.now()));
}

// ReplaceMode::kDrainWhenReplacementReady: the old replica keeps serving until the new one is
// ready (a replica that is fine now, such as one growing toward its memory limit).
TEST_F(SupervisorTest, AReplicaReplacedWhenTheNewOneIsReadyServesUntilThen) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports = {9000};
  tick();
  step(100ms);
  ASSERT_TRUE(sup->replace("api-1", clock.now(), ReplaceMode::kDrainWhenReplacementReady));
  EXPECT_EQ(world.launched.size(), 2u);
  EXPECT_FALSE(sup->replace("api-1", clock.now())) << "already being replaced";
  for (int i = 0; i < 10; ++i) step(100ms);
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1"})) << "api-2 is not ready yet";
  EXPECT_TRUE(replicas()[0].retiring);
  world.ready_ports.insert(9001);
  step(100ms);  // api-2 ready
  step(100ms);  // api-1 sees it
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-2"}));
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kDraining);
  EXPECT_EQ(replicas()[0].no_requests_since, clock.now()) << "out of the gateway since then";
  EXPECT_FALSE(replicas()[1].no_requests_since.has_value()) << "api-2 serves";
  for (int i = 0; i < 3; ++i) step(100ms);
  ASSERT_EQ(replicas().size(), 1u);
  EXPECT_EQ(replicas()[0].id, "api-2");
}

// A memory limit (services[].memory_limit) is a Kubernetes one: over it the replica is killed
// and restarts as a crashed one, saying why. Its memory is its process group's, looked at every
// second.
TEST_F(SupervisorTest, AReplicaOverItsMemoryLimitIsKilledAndRestarted) {
  saying_why();
  ReplicaTemplate limited{"api", {"server", "--port", "{port}"}, {}};
  limited.memory_limit_bytes = 512u << 20;
  ASSERT_TRUE(sup->add_service(limited));
  ReplicaTemplate unlimited{"free", {"server", "--port", "{port}"}, {}};
  ASSERT_TRUE(sup->add_service(unlimited));
  ASSERT_TRUE(sup->set_desired("api", 1));
  ASSERT_TRUE(sup->set_desired("free", 1));
  world.ready_ports = {9000, 9001, 9002};
  tick();
  const int pid = replicas()[0].pid;
  const int free_pid = sup->replicas("free")[0].pid;
  world.memory = {{pid, 100u << 20}, {free_pid, 2u << 30}};
  step(1s);
  ASSERT_EQ(replicas()[0].phase, ReplicaPhase::kReady);
  EXPECT_EQ(replicas()[0].memory_bytes, 100u << 20);
  EXPECT_EQ(replicas()[0].memory_at, clock.now());
  world.memory[pid] = 512u << 20;  // at the limit is within it
  step(1s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kReady);
  world.memory[pid] = (600u << 20) + (1u << 19);
  step(500ms);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kReady) << "looked at once a second";
  step(500ms);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kCrashed);
  EXPECT_EQ(world.signals_by_pid[pid], std::vector<int>{SIGKILL});
  EXPECT_FALSE(world.endpoints.count("api-1"));
  EXPECT_EQ(messages.back(),
            "crash: over its memory limit: 600.5 MiB of 512Mi (services[].memory_limit); killed; "
            "restarting in 10 s");
  EXPECT_EQ(sup->replicas("free")[0].phase, ReplicaPhase::kReady) << "2 GiB, but no limit";
  EXPECT_EQ(sup->replicas("free")[0].memory_bytes, 2u << 30);
  step(10s);
  step(100ms);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kReady) << "restarted";
  EXPECT_EQ(replicas()[0].memory_bytes, 0u) << "a new process: not looked at yet";
}

// A replica waiting for its replacement is still held to its limit: it leaves the gateway at once
// and stops, saying why (it is not restarted: it was leaving).
TEST_F(SupervisorTest, AReplicaLeavingOverItsMemoryLimitIsKilledSayingWhy) {
  saying_why();
  ReplicaTemplate limited{"api", {"server", "--port", "{port}"}, {}};
  limited.memory_limit_bytes = 1u << 30;
  one_ready(limited, {9000});
  const int pid = replicas()[0].pid;
  ASSERT_TRUE(sup->replace("api-1", clock.now(), ReplaceMode::kDrainWhenReplacementReady));
  world.memory[pid] = 2u << 30;
  step(1s);
  EXPECT_EQ(world.signals_by_pid[pid], std::vector<int>{SIGKILL});
  EXPECT_FALSE(world.endpoints.count("api-1")) << "out of the gateway at once";
  EXPECT_EQ(messages.back(),
            "stop: over its memory limit: 2048.0 MiB of 1Gi (services[].memory_limit); killed");
  ASSERT_EQ(replicas().size(), 1u);
  EXPECT_EQ(replicas()[0].id, "api-2");
}

// A replica waiting for its replacement that stops answering its liveness checks is killed and
// stops: it is not restarted (it was leaving), and a platform stopping meanwhile ends at once.
TEST_F(SupervisorTest, AReplicaWaitingForItsReplacementIsNotRestartedWhenItDies) {
  saying_why();
  one_ready(api(), {9000});
  const int pid = replicas()[0].pid;
  ASSERT_TRUE(sup->replace("api-1", clock.now(), ReplaceMode::kDrainWhenReplacementReady));
  world.hung_ports = {9000};  // api-2 (port 9001) never gets ready either
  for (int i = 0; i < 4; ++i) step(10s);
  EXPECT_EQ(world.signals_by_pid[pid], std::vector<int>{SIGKILL});
  EXPECT_EQ(messages.back().substr(0, 17), "stop: not alive: ") << messages.back();
  ASSERT_EQ(replicas().size(), 1u);
  EXPECT_EQ(replicas()[0].id, "api-2");
  for (int i = 0; i < 3; ++i) step(10s);
  EXPECT_EQ(world.launched.size(), 2u) << "api-1 was not started again";
  sup->stop_all();
  for (int i = 0; i < 3; ++i) step(100ms);
  EXPECT_TRUE(sup->idle());
}

TEST_F(SupervisorTest, NotReadyInTimeCountsAsACrash) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  tick();
  const int pid = replicas()[0].pid;
  step(119s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kStarting);
  step(1s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kCrashed);
  EXPECT_EQ(world.signals_by_pid[pid], std::vector<int>{SIGKILL});
}

TEST_F(SupervisorTest, AHungCheckIsNotRepeatedAndTheReadyTimeoutStillHolds) {
  world.hung_ports = {9000};
  ASSERT_TRUE(sup->set_desired("api", 1));
  tick();
  const int pid = replicas()[0].pid;
  for (int i = 0; i < 10; ++i) step(100ms);
  EXPECT_EQ(world.checks, 1) << "one check in flight at a time";
  step(119s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kCrashed);
  EXPECT_EQ(world.signals_by_pid[pid], std::vector<int>{SIGKILL});
}

// Liveness (a Kubernetes liveness probe): a ready replica that stops answering — a hung process,
// kill -STOP — is killed after three checks in a row, 10 s apart, go unanswered, and restarts
// as a crashed one, saying why.
TEST_F(SupervisorTest, AReadyReplicaThatStopsAnsweringIsKilledAndRestarted) {
  saying_why();
  one_ready(api(), {9000, 9001});
  ASSERT_EQ(replicas()[0].phase, ReplicaPhase::kReady);
  const int pid = replicas()[0].pid;
  const int readiness_checks = world.checks;
  step(10s);
  EXPECT_EQ(world.checks, readiness_checks + 1) << "the first liveness check, 10 s after ready";
  EXPECT_EQ(world.check_paths.count("/healthz"), 1u);
  EXPECT_EQ(world.check_timeouts.back(), 1s);
  for (int i = 0; i < 10; ++i) step(1s);
  EXPECT_EQ(world.checks, readiness_checks + 2) << "answered: the next one 10 s later";
  world.hung_ports = {9000};  // kill -STOP
  step(10s);
  step(10s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kReady) << "two checks unanswered";
  EXPECT_TRUE(world.signals_by_pid[pid].empty());
  step(10s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kCrashed) << "three in a row";
  EXPECT_EQ(world.signals_by_pid[pid], std::vector<int>{SIGKILL});
  EXPECT_FALSE(world.endpoints.count("api-1"));
  EXPECT_EQ(messages.back(),
            "crash: not alive: GET /healthz got no answer within 1000 ms, 3 checks in a row "
            "(services[].liveness); killed; restarting in 10 s");
  EXPECT_EQ(replicas()[0].last_crash.substr(0, 10), "not alive:");
  step(10s);
  step(100ms);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kReady) << "restarted on a new port";
  EXPECT_EQ(replicas()[0].restarts, 1);
}

// A gRPC server (services[].protocol grpc) is asked its health service, not paths: it is ready
// once that says SERVING; once ready, any gRPC answer — NOT_SERVING, UNIMPLEMENTED — shows a
// live server, and silence kills it, named by the call.
TEST_F(SupervisorTest, AGrpcServerIsCheckedThroughItsHealthService) {
  saying_why();
  ReplicaTemplate rpc{"rpc", {"server", "--port", "{port}"}, {}};
  rpc.http2 = true;
  rpc.grpc_health_service = "shop.Cart";
  ASSERT_TRUE(sup->add_service(rpc));
  ASSERT_TRUE(sup->set_desired("rpc", 1));
  world.ready_ports = {9000};
  world.grpc_said[9000] = "NOT_SERVING";
  tick();
  for (int i = 0; i < 5; ++i) step(100ms);
  auto r = sup->replicas("rpc");
  ASSERT_EQ(r[0].phase, ReplicaPhase::kStarting) << "NOT_SERVING is not ready";
  EXPECT_EQ(r[0].readiness_detail, "NOT_SERVING");
  EXPECT_EQ(r[0].readiness_status, 200);
  EXPECT_TRUE(world.check_paths.empty()) << "no path is asked";
  world.grpc_said[9000] = "SERVING";
  step(100ms);
  r = sup->replicas("rpc");
  ASSERT_EQ(r[0].phase, ReplicaPhase::kReady);
  EXPECT_TRUE(world.endpoints.contains("rpc-1"));
  EXPECT_EQ(std::set<std::string>(world.grpc_services.begin(), world.grpc_services.end()),
            std::set<std::string>{"shop.Cart"});

  const std::size_t asked = world.grpc_services.size();
  world.grpc_said[9000] = "grpc-status 12 (UNIMPLEMENTED)";
  for (int i = 0; i < 5; ++i) step(10s);
  EXPECT_EQ(world.grpc_services.size(), asked + 5) << "liveness asks the health service too";
  EXPECT_EQ(sup->replicas("rpc")[0].phase, ReplicaPhase::kReady) << "a gRPC answer: alive";
  world.hung_ports = {9000};
  for (int i = 0; i < 3; ++i) step(10s);
  EXPECT_EQ(sup->replicas("rpc")[0].phase, ReplicaPhase::kCrashed);
  EXPECT_EQ(sup->replicas("rpc")[0].last_crash,
            "not alive: grpc.health.v1.Health/Check for \"shop.Cart\" got no answer "
            "within 1000 ms, 3 checks in a row (services[].liveness); killed");
}

// Only silence and 5xx answers fail a liveness check: a 404 (a program of the user's with no
// /healthz) shows a server that answers, and one success ends a run of failures.
TEST_F(SupervisorTest, LivenessFailsOnFiveHundredsNotOnOtherAnswers) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports = {9000};
  tick();
  step(100ms);
  ASSERT_EQ(replicas()[0].phase, ReplicaPhase::kReady);
  world.status_of[9000] = 404;
  for (int i = 0; i < 10; ++i) step(10s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kReady) << "404: alive";
  world.status_of[9000] = 500;
  step(10s);
  step(10s);
  world.status_of[9000] = 200;
  step(10s);
  world.status_of[9000] = 503;
  step(10s);
  step(10s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kReady) << "never three 5xx in a row";
  step(10s);
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kCrashed);
  EXPECT_EQ(replicas()[0].last_crash,
            "not alive: GET /healthz answered 503, 3 checks in a row (services[].liveness); "
            "killed");
}

// A liveness check refused at once (the replica closed its listener) is not said to have gone
// unanswered for the whole timeout: the message names what the connection got.
TEST_F(SupervisorTest, ALivenessFailureSaysWhyNoAnswerCame) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports = {9000};
  tick();
  step(100ms);
  ASSERT_EQ(replicas()[0].phase, ReplicaPhase::kReady);
  world.ready_ports.clear();
  world.failure_of[9000] = "connect to 127.0.0.1:9000: Connection refused";
  for (int i = 0; i < 4; ++i) step(10s);  // the first check starts 10 s after ready
  ASSERT_EQ(replicas()[0].phase, ReplicaPhase::kCrashed);
  EXPECT_EQ(replicas()[0].last_crash,
            "not alive: GET /healthz got no answer (connect to 127.0.0.1:9000: Connection "
            "refused), 3 checks in a row (services[].liveness); killed");
}

// A replica that outlives SIGTERM's grace is killed by the supervisor itself: its stop says so,
// not "kill -9, or the kernel out of memory", which sends the operator looking for an OOM kill.
TEST_F(SupervisorTest, AReplicaKilledAfterItsGraceSaysWhoKilledIt) {
  saying_why();
  one_ready(api(), {9000});
  ASSERT_EQ(replicas()[0].phase, ReplicaPhase::kReady);
  world.exit_on_term = false;
  ASSERT_TRUE(sup->set_desired("api", 0));
  // Drained at once (nothing in flight), SIGTERM, SIGKILL 15 s later (term_grace), reaped.
  for (int i = 0; i < 20 && !sup->idle(); ++i) step(1s);
  ASSERT_TRUE(sup->idle());
  ASSERT_GE(messages.size(), 2u);
  EXPECT_EQ(messages[messages.size() - 2], "kill: still running after SIGTERM; SIGKILL");
  EXPECT_EQ(messages.back(),
            "stop: killed by signal 9 (SIGKILL, sent by the supervisor: still running after "
            "SIGTERM)");
}

// A service's own liveness settings are used; an empty path turns the checks off.
TEST_F(SupervisorTest, LivenessFollowsTheServicesSettingsAndCanBeOff) {
  ReplicaTemplate own{"own", {"server", "--port", "{port}"}, {}};
  own.liveness_path = "/alive";
  own.liveness_interval = 2s;
  own.liveness_timeout = 300ms;
  own.liveness_failure_threshold = 1;
  ASSERT_TRUE(sup->add_service(own));
  ReplicaTemplate off{"off", {"server", "--port", "{port}"}, {}};
  off.liveness_path = "";
  ASSERT_TRUE(sup->add_service(off));
  ASSERT_TRUE(sup->set_desired("own", 1));
  ASSERT_TRUE(sup->set_desired("off", 1));
  world.ready_ports = {9000, 9001};
  tick();
  step(100ms);
  world.hung_ports = {9000, 9001};
  const int checks = world.checks;
  step(2s);
  EXPECT_EQ(world.checks, checks + 1) << "own's, none for off";
  EXPECT_EQ(world.check_paths.count("/alive"), 1u);
  EXPECT_EQ(world.check_timeouts.back(), 300ms);
  step(2s);
  EXPECT_EQ(sup->replicas("own")[0].phase, ReplicaPhase::kCrashed) << "one failure is enough";
  for (int i = 0; i < 10; ++i) step(10s);
  EXPECT_EQ(sup->replicas("off")[0].phase, ReplicaPhase::kReady);
  EXPECT_EQ(sup->replicas("off")[0].restarts, 0);

  ReplicaTemplate bad{"bad", {"server"}, {}};
  bad.liveness_failure_threshold = 0;
  EXPECT_FALSE(sup->add_service(bad));
}

// A free port is one nothing listens on yet, and a replica just started does not listen yet: the
// kernel may offer its port again for the next replica started in the same round (bind(0) then
// close, about once in 10,000 asks on Linux). Two replicas told the same port would have one crash
// on its bind — and, if its readiness check reached the other one first, be announced on the
// other's port. A port a replica of ours holds is not handed out again.
TEST_F(SupervisorTest, AReplicaIsNotGivenThePortOfAnotherStillStarting) {
  ASSERT_TRUE(sup->add_service({"web", {"server", "--port", "{port}"}, {}}));
  world.offered_ports = {9000, 9000, 9000};
  ASSERT_TRUE(sup->set_desired("api", 2));
  ASSERT_TRUE(sup->set_desired("web", 1));
  tick();
  std::set<std::uint16_t> ports;
  for (const auto& r : replicas()) ports.insert(r.port);
  for (const auto& r : sup->replicas("web")) ports.insert(r.port);
  EXPECT_EQ(ports.size(), 3u) << "three replicas starting on " << ports.size() << " ports";
  EXPECT_EQ(ports, (std::set<std::uint16_t>{9000, 9001, 9002}));
}

TEST_F(SupervisorTest, LaunchFailureIsACrashWithItsReason) {
  world.fail_launch = true;
  ASSERT_TRUE(sup->set_desired("api", 1));
  tick();
  EXPECT_EQ(replicas()[0].phase, ReplicaPhase::kCrashed);
  EXPECT_EQ(replicas()[0].last_crash, "'x' was not found in PATH");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "crash api-1");
}

// How a replica ended is said in words: a signal is named (kill -9, the out-of-memory killer), an
// exit status is a status.
TEST_F(SupervisorTest, ACrashSaysWhetherASignalOrAnExitEndedTheReplica) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports = {9000, 9001};
  tick();
  step(100ms);
  FakeWorld::Proc* p = world.procs[replicas()[0].pid];
  p->status = 137;
  p->ended_by = SIGKILL;
  step(100ms);
  EXPECT_EQ(replicas()[0].last_crash,
            "killed by signal 9 (SIGKILL: kill -9, or the kernel out of memory)");
  step(10s);
  step(100ms);
  world.procs[replicas()[0].pid]->status = 137;
  step(100ms);
  EXPECT_EQ(replicas()[0].last_crash, "exited with status 137");
}

TEST_F(SupervisorTest, StopAllEndsEveryReplica) {
  ASSERT_TRUE(sup->set_desired("api", 2));
  world.ready_ports = {9000, 9001};
  tick();
  step(100ms);
  sup->stop_all();
  for (int i = 0; i < 5 && !sup->idle(); ++i) step(100ms);
  EXPECT_TRUE(sup->idle());
  EXPECT_TRUE(world.endpoints.empty());
}

// A service removed while it runs: its replicas drain and stop, and it is no longer listed;
// declared again, while they drain or after, it starts anew from the new template, its replicas
// numbered on.
TEST_F(SupervisorTest, ARemovedServiceDrainsAndMayBeDeclaredAgain) {
  ASSERT_TRUE(sup->set_desired("api", 2));
  world.ready_ports = {9000, 9001};
  tick();
  step(100ms);
  ASSERT_EQ(world.endpoints.size(), 2u);
  world.in_flight_by["api-1"] = 1;
  ASSERT_TRUE(sup->remove_service("api", clock.now()));
  EXPECT_TRUE(world.endpoints.empty()) << "out of the gateway at once";
  EXPECT_TRUE(sup->services().empty());
  EXPECT_TRUE(sup->replicas("api").empty());
  EXPECT_EQ(sup->desired("api"), 0);
  EXPECT_FALSE(sup->set_desired("api", 3));
  EXPECT_FALSE(sup->remove_service("api", clock.now()));
  step(100ms);
  EXPECT_FALSE(sup->idle()) << "api-1 still drains";
  // Declared again while api-1 drains: new replicas from the new template.
  ASSERT_TRUE(sup->add_service({"api", {"server", "--port", "{port}", "--v2"}, {}}));
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports.insert(9002);
  tick();
  ASSERT_EQ(world.launched.size(), 3u);
  EXPECT_EQ(world.launched[2].argv, (std::vector<std::string>{"server", "--port", "9002", "--v2"}));
  step(100ms);
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-3"}));
  EXPECT_FALSE(sup->rollout("api").rolling) << "nothing of it to roll";
  world.in_flight_by["api-1"] = 0;
  // Removed again, and its replicas gone: declared again later, its replicas are numbered on
  // (a new api-1 would write to the old api-1's log).
  ASSERT_TRUE(sup->remove_service("api", clock.now()));
  for (int i = 0; i < 5 && !sup->idle(); ++i) step(100ms);
  EXPECT_TRUE(sup->idle());
  EXPECT_EQ(world.launched.size(), 3u) << "none restarted";
  ASSERT_TRUE(sup->add_service(api()));
  EXPECT_EQ(sup->desired("api"), 0);
  ASSERT_TRUE(sup->set_desired("api", 1));
  tick();
  ASSERT_EQ(replicas().size(), 1u);
  EXPECT_EQ(replicas()[0].id, "api-4");
}

// A TCP socket on 127.0.0.1 at a port the kernel picks (0 if it could not): listening — the kernel
// accepts connections and nobody answers, as with a hung replica — or only bound.
struct LoopbackSocket {
  explicit LoopbackSocket(bool listening) : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        (!listening || ::listen(fd, 16) == 0) &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  ~LoopbackSocket() {
    if (fd >= 0) ::close(fd);
  }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;
  int fd;
  std::uint16_t port = 0;
};

// A replica that accepts connections and never answers /readyz (a server loading its model on
// the thread that would answer) must not stall the supervisor: while its probe waits, a crashed
// replica of another service is still restarted on time.
TEST(SupervisorProbe, AHungReplicaDoesNotHoldUpTheSupervisor) {
  LoopbackSocket hung(/*listening=*/true);  // the kernel accepts; nobody answers
  ASSERT_NE(hung.port, 0);
  const auto run_dir =
      std::filesystem::temp_directory_path() / ("supervisor_probe_" + std::to_string(::getpid()));
  std::filesystem::create_directories(run_dir);
  {
    FakeWorld world;  // the processes and the gateway; the probe is the real one
    HttpReplicaProbe probe;
    SupervisorOptions o;
    o.readiness_timeout = std::chrono::seconds(20);
    o.run_dir = run_dir.string();
    std::vector<std::string> events;
    o.on_event = [&](const ReplicaEvent& e) { events.push_back(e.kind + " " + e.replica); };
    Supervisor sup(o, world, probe, world);
    ASSERT_TRUE(sup.add_service({"slow", {"server", "--port-file", "{port_file}"}, {}}));
    ASSERT_TRUE(sup.add_service({"api", {"server", "--port-file", "{port_file}"}, {}}));
    ASSERT_TRUE(sup.set_desired("slow", 1));
    ASSERT_TRUE(sup.set_desired("api", 1));
    ManualClock clock;
    sup.tick(clock.now());
    std::ofstream(run_dir / "slow-1.port") << hung.port << "\n";
    // Each tick must return without waiting for the hung probe (20 s).
    auto tick_returns = [&](Clock::Duration d) {
      clock.advance(d);
      auto done = std::async(std::launch::async, [&] { sup.tick(clock.now()); });
      return done.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    };
    ASSERT_TRUE(tick_returns(100ms)) << "tick() waited for the hung replica's probe";
    const int api_pid = sup.replicas("api")[0].pid;
    world.procs[api_pid]->status = 1;  // api-1 crashes
    ASSERT_TRUE(tick_returns(100ms));
    EXPECT_EQ(sup.replicas("api")[0].phase, ReplicaPhase::kCrashed);
    ASSERT_TRUE(tick_returns(10s));  // the first back-off
    EXPECT_EQ(events.back(), "restart api-1");
    EXPECT_EQ(sup.replicas("slow")[0].phase, ReplicaPhase::kStarting);
  }
  std::filesystem::remove_all(run_dir);
}

// The real probe asks the path it is given, and takes 200..399 as ready (a Kubernetes probe's
// rule): a user's program that redirects its health path is ready, one without the path is not.
TEST(SupervisorProbe, TheProbeAsksItsPathAndTakesTwoAndThreeHundreds) {
  std::atomic<int> status{302};
  http::ServerOptions so;
  so.threads = 1;
  http::Server server(so, [&](http::Request& req, http::Responder respond) {
    respond(http::Response::text(req.target == "/health" ? status.load() : 404, "\n"));
  });
  ASSERT_TRUE(server.start());
  HttpReplicaProbe probe;
  auto answer = [&](const std::string& path) {
    std::unique_ptr<ReadinessCheck> check = probe.check_ready(server.port(), path, 1s);
    for (int i = 0; i < 500; ++i) {
      if (auto a = check->answer()) return *a;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "no answer from " << path;
    return false;
  };
  EXPECT_TRUE(answer("/health"));    // 302
  EXPECT_FALSE(answer("/readyz"));   // 404
  status = 204;
  EXPECT_TRUE(answer("/health"));
  status = 503;
  EXPECT_FALSE(answer("/health"));
  server.shutdown(std::chrono::seconds(1));
}

// A replica that speaks only HTTP/2 (a gRPC server, ReplicaTemplate::http2) is asked over
// HTTP/2: one that speaks only HTTP/1.1 fails that check and passes the other.
TEST(SupervisorProbe, AnHttp2CheckAsksOverHttp2) {
  http::ServerOptions so;
  so.threads = 1;
  so.http2 = false;
  http::Server http1_only(so, [](http::Request&, http::Responder respond) {
    respond(http::Response::text(200, "ready\n"));
  });
  ASSERT_TRUE(http1_only.start());
  so.http2 = true;
  http::Server both(so, [](http::Request&, http::Responder respond) {
    respond(http::Response::text(200, "ready\n"));
  });
  ASSERT_TRUE(both.start());
  HttpReplicaProbe probe;
  auto answer = [&](std::unique_ptr<ReadinessCheck> check) {
    for (int i = 0; i < 500; ++i) {
      if (auto a = check->answer()) return *a;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "no answer";
    return false;
  };
  EXPECT_FALSE(answer(probe.check_ready_http2(http1_only.port(), "/readyz", 1s)));
  EXPECT_TRUE(answer(probe.check_ready(http1_only.port(), "/readyz", 1s)));
  EXPECT_TRUE(answer(probe.check_ready_http2(both.port(), "/readyz", 1s)));
  http1_only.shutdown(std::chrono::seconds(1));
  both.shutdown(std::chrono::seconds(1));
}

// A check of a replica that accepts and never answers (a hung process: the kernel completes the
// connection) fails once its own timeout has passed, with no status: liveness's 1 s by default,
// not the 500 ms of readiness.
TEST(SupervisorProbe, ACheckOfAHungReplicaFailsAfterItsOwnTimeout) {
  LoopbackSocket hung(/*listening=*/true);
  ASSERT_NE(hung.port, 0);
  HttpReplicaProbe probe;
  const auto begin = std::chrono::steady_clock::now();
  std::unique_ptr<ReadinessCheck> check = probe.check_ready(hung.port, "/healthz", 1500ms);
  std::optional<bool> answer;
  while (!(answer = check->answer()) && std::chrono::steady_clock::now() - begin < 10s) {
    std::this_thread::sleep_for(10ms);
  }
  const auto waited = std::chrono::steady_clock::now() - begin;
  ASSERT_TRUE(answer.has_value());
  EXPECT_FALSE(*answer);
  EXPECT_EQ(check->status(), 0);
  EXPECT_GE(waited, 1500ms) << "not before its timeout (the client's connect timeout is 500 ms)";
}

// A check of a port nothing listens on is refused at once, and says so (the supervisor's message
// then names it, rather than a timeout that did not happen).
TEST(SupervisorProbe, ARefusedCheckSaysWhy) {
  std::uint16_t port = 0;
  {
    LoopbackSocket bound(/*listening=*/false);  // never listened; closed: nothing listens now
    port = bound.port;
  }
  ASSERT_NE(port, 0);
  HttpReplicaProbe probe;
  std::unique_ptr<ReadinessCheck> check = probe.check_ready(port, "/healthz", 5s);
  std::optional<bool> answer;
  for (int i = 0; i < 500 && !(answer = check->answer()); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(answer.has_value());
  EXPECT_FALSE(*answer);
  EXPECT_EQ(check->status(), 0);
  EXPECT_NE(check->failure().find("refused"), std::string::npos) << check->failure();
}

// A start that finds no free port is a crash whose reason the user reads (docs/local.md, "not
// ready after"): it says why, as when the platform has run out of descriptors.
// A rebuilt program is a new template (Supervisor::update rolls it out); the same file is not.
TEST(ProgramIdentity, ChangesWhenTheProgramFileIsRebuilt) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("program_identity_" + std::to_string(::getpid())))
          .string();
  auto build = [&](const std::string& text) {
    std::filesystem::remove(path);  // a new file, as a linker writes one
    std::ofstream(path) << text;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  };
  build("#!/bin/sh\nexit 0\n");
  const std::string first = program_identity(path);
  EXPECT_TRUE(first.starts_with(path + " ")) << first;
  EXPECT_EQ(program_identity(path), first);
  build("#!/bin/sh\nexit 10\n");  // another size: a coarse clock may give both one mtime
  EXPECT_NE(program_identity(path), first);
  EXPECT_EQ(program_identity("/no/such/program"), "");
  EXPECT_TRUE(program_identity("sh").starts_with("/")) << "found in PATH";
  std::filesystem::remove(path);
}

TEST(SupervisorProbe, NoFreePortSaysWhy) {
  HttpReplicaProbe probe;  // its client's thread started before the descriptors run out
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  std::vector<int> held;
  const int probe_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(probe_fd, 0);
  rlimit tight = before;
  tight.rlim_cur = static_cast<rlim_t>(probe_fd) + 8;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) held.push_back(fd);
  const Result<std::uint16_t> port = probe.free_port();
  for (int fd : held) ::close(fd);
  ::close(probe_fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &before), 0);
  ASSERT_FALSE(port);
  EXPECT_NE(port.error().message.find(std::strerror(EMFILE)), std::string::npos)
      << port.error().message;
}

// A replica's log is bounded: past max_log_bytes it moves to <replica>.log.1 (replacing the one
// before) and the log starts empty, the replica still writing to it; of the replicas that have
// left, only the newest logs are kept, and their port files go with them.
struct SupervisorLogTest : ::testing::Test {
  SupervisorLogTest() {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "logs");
    std::filesystem::create_directories(dir / "run");
    SupervisorOptions o;
    o.log_dir = (dir / "logs").string();
    o.run_dir = (dir / "run").string();
    sup = std::make_unique<Supervisor>(o, world, world, world);
    EXPECT_TRUE(sup->add_service({"api", {"server", "--port-file", "{port_file}"}, {}}));
  }
  ~SupervisorLogTest() override {
    sup.reset();
    std::filesystem::remove_all(dir);
  }
  void step(Clock::Duration d) {
    clock.advance(d);
    sup->tick(clock.now());
  }
  // What a replica writes to its output (the launcher opened the log in append mode).
  static void append(const std::string& path, size_t bytes, char c) {
    std::ofstream(path, std::ios::app) << std::string(bytes, c);
  }
  static std::string read(const std::filesystem::path& path) {
    std::string text(std::filesystem::file_size(path), '\0');
    std::ifstream(path).read(text.data(), static_cast<std::streamsize>(text.size()));
    return text;
  }

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("supervisor_logs_" + std::to_string(::getpid()));
  ManualClock clock;
  FakeWorld world;
  std::unique_ptr<Supervisor> sup;
};

TEST_F(SupervisorLogTest, ALogPastItsBoundMovesAsideKeepingOnePrevious) {
  constexpr size_t kBound = 10u << 20;  // the default
  ASSERT_TRUE(sup->set_desired("api", 1));
  step(0s);
  const std::string log = (dir / "logs" / "api-1.log").string();
  ASSERT_EQ(world.launched.back().log_path, log);
  append(log, kBound + 1, 'a');
  step(1s);
  EXPECT_EQ(std::filesystem::file_size(log), 0u) << "the log starts again";
  EXPECT_EQ(std::filesystem::file_size(log + ".1"), kBound + 1);
  append(log, 100, 'b');
  step(1s);
  EXPECT_EQ(std::filesystem::file_size(log), 100u) << "under the bound: left alone";
  append(log, kBound, 'c');
  step(1s);
  EXPECT_EQ(std::filesystem::file_size(log), 0u);
  const std::string previous = read(log + ".1");
  EXPECT_EQ(previous.size(), kBound + 100) << "only the one before is kept";
  EXPECT_EQ(previous.front(), 'b');
  EXPECT_FALSE(std::filesystem::exists(log + ".2"));
}

// A state directory deleted while the platform runs (by hand, or a cleaner of /tmp) does not stop
// replicas from starting: the supervisor makes its log and run directories again before each
// start (before, every restart failed, "cannot open log file", backing off for ever).
TEST_F(SupervisorLogTest, ADeletedStateDirectoryIsMadeAgainForTheNextStart) {
  ASSERT_TRUE(sup->set_desired("api", 1));
  step(0s);
  ASSERT_EQ(world.launched.size(), 1u);
  std::filesystem::remove_all(dir);
  world.procs.begin()->second->status = 137;  // killed: restarts after the back-off
  step(100ms);
  step(10s);
  ASSERT_EQ(world.launched.size(), 2u);
  EXPECT_TRUE(std::filesystem::is_directory(dir / "logs"));
  EXPECT_TRUE(std::filesystem::is_directory(dir / "run")) << "where the replica writes its port";
}

TEST_F(SupervisorLogTest, OnlyTheNewestLogsOfReplicasThatLeftAreKept) {
  ASSERT_TRUE(sup->set_desired("api", 15));
  step(0s);
  ASSERT_EQ(world.launched.size(), 15u);
  for (const LaunchSpec& spec : world.launched) append(spec.log_path, 10, 'x');
  for (int i = 1; i <= 15; ++i) {
    std::ofstream(dir / "run" / ("api-" + std::to_string(i) + ".port")) << 9000 + i << "\n";
  }
  // One at a time, api-15 first (the newest goes first): api-1..api-5 leave last.
  for (int n = 14; n >= 0; --n) {
    ASSERT_TRUE(sup->set_desired("api", n));
    step(100ms);
    step(100ms);
  }
  step(100ms);  // the last one's exit reaped
  ASSERT_TRUE(sup->idle());
  std::set<std::string> logs, ports;
  for (const auto& e : std::filesystem::directory_iterator(dir / "logs")) {
    logs.insert(e.path().filename().string());
  }
  for (const auto& e : std::filesystem::directory_iterator(dir / "run")) {
    ports.insert(e.path().filename().string());
  }
  std::set<std::string> newest;
  for (int i = 1; i <= 10; ++i) newest.insert("api-" + std::to_string(i) + ".log");
  EXPECT_EQ(logs, newest) << "the 10 replicas that left last";
  EXPECT_TRUE(ports.empty()) << "a replica that left needs no port file";
}

// Supervisor::update: a Kubernetes rolling update with maxUnavailable 0. Each old replica serves
// until its replacement is ready; at most a quarter of the replicas (at least one) start ahead.
TEST_F(SupervisorTest, ARollingUpdateReplacesEachReplicaOnceItsReplacementIsReady) {
  ASSERT_TRUE(sup->set_desired("api", 4));
  world.ready_ports = {9000, 9001, 9002, 9003};  // the new replicas get ready when the test says
  tick();
  step(100ms);
  ASSERT_EQ(world.endpoints.size(), 4u);
  ReplicaTemplate v2{"api", {"server", "--port", "{port}", "--v2"}, {}};
  ASSERT_TRUE(sup->update(v2, clock.now()));
  EXPECT_EQ(events.end()[-2], "rollout ");
  EXPECT_EQ(events.back(), "start api-5");
  EXPECT_EQ(world.launched.size(), 5u) << "one ahead: a surge of 25 % of 4";
  RolloutStatus status = sup->rollout("api");
  EXPECT_EQ(status.revision, 2);
  EXPECT_EQ(status.stable, 1) << "what the rollout replaces";
  EXPECT_TRUE(status.rolling);
  EXPECT_EQ(status.updated, 1);
  EXPECT_EQ(status.outdated, 4);
  for (int i = 0; i < 10; ++i) step(100ms);
  EXPECT_EQ(world.endpoints.size(), 4u) << "nothing leaves before its replacement is ready";
  EXPECT_EQ(world.launched.size(), 5u);
  size_t most_launched = 5;
  for (int round = 0; round < 4; ++round) {
    world.ready_ports.insert(world.next_port - 1);  // the newest replica gets ready
    step(100ms);
    step(9900ms);
    EXPECT_EQ(world.endpoints.size(), 5u)
        << "round " << round << ": the old replica serves until its replacement was ready 10 s";
    step(100ms);
    EXPECT_EQ(world.endpoints.size(), 4u) << "round " << round;
    for (int i = 0; i < 5; ++i) step(100ms);
    most_launched = world.launched.size();
  }
  EXPECT_EQ(most_launched, 8u) << "four new replicas, one at a time";
  ASSERT_EQ(replicas().size(), 4u);
  for (const ReplicaStatus& r : replicas()) {
    EXPECT_EQ(r.revision, 2) << r.id;
    EXPECT_EQ(r.phase, ReplicaPhase::kReady) << r.id;
  }
  for (size_t i = 4; i < world.launched.size(); ++i) {
    EXPECT_EQ(world.launched[i].argv.back(), "--v2");
  }
  status = sup->rollout("api");
  EXPECT_FALSE(status.rolling);
  EXPECT_EQ(status.stable, 2) << "rolled out: every replica runs it";
  EXPECT_EQ(status.updated, 4);
  EXPECT_EQ(status.outdated, 0);
  EXPECT_EQ(events.back(), "rolled-out ");
  ASSERT_TRUE(sup->update(v2, clock.now()));
  step(100ms);
  EXPECT_EQ(world.launched.size(), 8u) << "the same template changes nothing";
  EXPECT_FALSE(sup->update({"nope", {"x"}, {}}, clock.now()));
  EXPECT_FALSE(sup->update({"api", {}, {}}, clock.now()));
}

// A revision whose replicas crash is rolled back: the old replicas never stopped serving, and the
// failed one's replicas go.
TEST_F(SupervisorTest, ARevisionWhoseReplicasCrashIsRolledBack) {
  saying_why();
  ASSERT_TRUE(sup->add_service(api()));
  ASSERT_TRUE(sup->set_desired("api", 2));
  world.ready_ports = {9000, 9001};
  tick();
  step(100ms);
  ASSERT_EQ(world.endpoints.size(), 2u);
  ASSERT_TRUE(sup->update({"api", {"server", "--port", "{port}", "--broken"}, {}}, clock.now()));
  auto exit_newest = [&] {
    world.procs[world.next_pid - 1]->status = 3;
    step(100ms);
  };
  exit_newest();
  EXPECT_EQ(messages.back().substr(0, 30), "crash: exited with status 3; r") << messages.back();
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1", "api-2"}));
  step(10s);  // restarted after its back-off
  ASSERT_EQ(world.launched.size(), 4u);
  exit_newest();
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1", "api-2"}));
  const auto rollback = std::find_if(messages.begin(), messages.end(), [](const std::string& m) {
    return m.starts_with("rollback: ");
  });
  ASSERT_NE(rollback, messages.end());
  EXPECT_NE(rollback->find("revision 2 failed: its replicas crashed 2 times, the last api-3: "
                           "exited with status 3"),
            std::string::npos)
      << *rollback;
  EXPECT_NE(rollback->find("back to revision 1"), std::string::npos) << *rollback;
  for (int i = 0; i < 20; ++i) step(1s);
  EXPECT_EQ(world.launched.size(), 4u) << "nothing more started";
  ASSERT_EQ(replicas().size(), 2u);
  const RolloutStatus status = sup->rollout("api");
  EXPECT_EQ(status.revision, 1);
  EXPECT_FALSE(status.rolling);
  EXPECT_EQ(status.outdated, 0);
  EXPECT_EQ(status.failed.substr(0, 19), "revision 2 failed: ");
  // The failed template is not tried again (a reload of an unchanged file); another one is.
  const Result<void> again =
      sup->update({"api", {"server", "--port", "{port}", "--broken"}, {}}, clock.now());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message,
            "service api: revision 2 failed: its replicas crashed 2 times, the last api-3: exited "
            "with status 3; it is not rolled out again until the service's entry changes");
  step(100ms);
  EXPECT_EQ(world.launched.size(), 4u);
  // Scaling up meanwhile starts what the service runs now.
  ASSERT_TRUE(sup->set_desired("api", 3));
  tick();
  EXPECT_EQ(world.launched.back().argv,
            (std::vector<std::string>{"server", "--port", std::to_string(world.next_port - 1)}));
}

// A replica of the new revision that the gateway ejects for its errors fails the rollout at once:
// a release that gets ready and then answers errors is rolled back, its old replicas still there
// (each waits for its replacement to have been ready a while).
TEST_F(SupervisorTest, ARevisionWhoseReplicaFailsWhileServingIsRolledBack) {
  saying_why();
  ASSERT_TRUE(sup->add_service(api()));
  ASSERT_TRUE(sup->set_desired("api", 2));
  world.ready_ports = {9000, 9001, 9002, 9003};
  tick();
  step(100ms);
  EXPECT_FALSE(sup->failing("api-1", "was ejected")) << "no rollout: nothing to roll back";
  ASSERT_TRUE(sup->update({"api", {"server", "--port", "{port}", "--v2"}, {}}, clock.now()));
  step(100ms);  // api-3 ready
  ASSERT_EQ(world.endpoints, (std::set<std::string>{"api-1", "api-2", "api-3"}));
  step(5s);
  EXPECT_FALSE(sup->failing("api-1", "was ejected"))
      << "an old replica's failure is not the rollout's";
  EXPECT_TRUE(sup->failing("api-3", "was ejected by the gateway's outlier detection"));
  step(100ms);
  EXPECT_NE(std::find(messages.begin(), messages.end(),
                      "rollback: revision 2 failed: api-3 was ejected by the gateway's "
                      "outlier detection; back to revision 1, which every replica ran"),
            messages.end());
  EXPECT_EQ(messages.back(), "drain: no new requests; in-flight ones finish") << "api-3's";
  for (int i = 0; i < 20; ++i) step(1s);
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1", "api-2"}));
  EXPECT_EQ(world.launched.size(), 3u);
  EXPECT_FALSE(sup->rollout("api").rolling);
}

// The healer's replacement (not a rolling update's) scaled away before it was ready: the replica
// it was to replace leaves all the same, rather than a healthy one in its place.
TEST_F(SupervisorTest, AReplicaWhoseHealingReplacementWasScaledAwayStillLeaves) {
  ASSERT_TRUE(sup->set_desired("api", 3));
  world.ready_ports = {9000, 9001, 9002};
  tick();
  step(100ms);
  ASSERT_TRUE(sup->replace("api-2", clock.now(), ReplaceMode::kDrainWhenReplacementReady));
  ASSERT_TRUE(sup->set_desired("api", 2));  // api-4, still starting, goes first
  for (int i = 0; i < 5; ++i) step(100ms);
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1", "api-3"}));
}

// A failure seen in a revision just replaced by another update is not the new revision's.
TEST_F(SupervisorTest, AFailureSeenBeforeAnUpdateDoesNotRollTheUpdateBack) {
  saying_why();
  ASSERT_TRUE(sup->add_service(api()));
  ASSERT_TRUE(sup->set_desired("api", 2));
  world.ready_ports = {9000, 9001, 9002, 9003, 9004};
  tick();
  step(100ms);
  ASSERT_TRUE(sup->update({"api", {"server", "--port", "{port}", "--v2"}, {}}, clock.now()));
  step(100ms);  // api-3 (revision 2) ready
  EXPECT_TRUE(sup->failing("api-3", "was ejected"));
  ASSERT_TRUE(sup->update({"api", {"server", "--port", "{port}", "--v3"}, {}}, clock.now()));
  step(100ms);
  const RolloutStatus status = sup->rollout("api");
  EXPECT_EQ(status.revision, 3);
  EXPECT_EQ(status.failed, "");
  EXPECT_TRUE(status.rolling);
}

// A revision that differs only by its program's build cannot be undone by a rollback: the
// warning says that replicas start from the file, which holds the failed build.
TEST_F(SupervisorTest, ARollbackOfARebuildSaysTheFileHoldsTheFailedBuild) {
  saying_why();
  ReplicaTemplate built = api();
  built.program = "/srv/svc 1 100 1";
  ASSERT_TRUE(sup->add_service(built));
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports = {9000};
  tick();
  step(100ms);
  built.program = "/srv/svc 2 120 2";
  ASSERT_TRUE(sup->update(built, clock.now()));
  step(100ms);
  EXPECT_TRUE(sup->failing("api-2", "was ejected"));
  step(100ms);
  const auto rollback = std::find_if(messages.begin(), messages.end(), [](const std::string& m) {
    return m.starts_with("rollback: ");
  });
  ASSERT_NE(rollback, messages.end());
  EXPECT_TRUE(rollback->ends_with(
      "back to revision 1, which every replica ran, but its program file holds the failed "
      "build: a replica that starts runs it, until the old build is put back"))
      << *rollback;
}

// An update while the last one still rolls: the newest template wins, and a rollback returns to
// what every replica last ran, not to the half-rolled revision.
TEST_F(SupervisorTest, AnUpdateDuringARolloutRollsBackToTheLastCompleteRevision) {
  saying_why();
  ASSERT_TRUE(sup->add_service(api()));
  ASSERT_TRUE(sup->set_desired("api", 1));
  world.ready_ports = {9000};
  tick();
  step(100ms);
  ASSERT_TRUE(sup->update({"api", {"server", "--port", "{port}", "--v2"}, {}}, clock.now()));
  step(100ms);  // revision 2's replica starts, not ready
  ASSERT_TRUE(sup->update({"api", {"server", "--port", "{port}", "--v3"}, {}}, clock.now()));
  step(100ms);
  EXPECT_EQ(sup->rollout("api").revision, 3);
  EXPECT_EQ(sup->rollout("api").stable, 1) << "revision 2 never completed";
  ASSERT_EQ(world.launched.back().argv.back(), "--v3");
  EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1"}));
  for (int i = 0; i < 5; ++i) {
    step(100ms);
    EXPECT_EQ(world.endpoints, (std::set<std::string>{"api-1"}))
        << "api-1 waited for revision 2's replica, which left before it was ready: it stays";
  }
  // Back to revision 1's template by hand: no new revision, nothing of revision 1 replaced.
  ASSERT_TRUE(sup->update(api(), clock.now()));
  for (int i = 0; i < 3; ++i) step(100ms);
  const RolloutStatus status = sup->rollout("api");
  EXPECT_EQ(status.revision, 1);
  EXPECT_FALSE(status.rolling);
  ASSERT_EQ(replicas().size(), 1u);
  EXPECT_EQ(replicas()[0].id, "api-1");
}

TEST_F(SupervisorTest, BadTemplatesAreRefused) {
  EXPECT_FALSE(sup->add_service({"api", {"x"}, {}})) << "declared twice";
  EXPECT_FALSE(sup->add_service({"e", {}, {}}));
  EXPECT_FALSE(sup->add_service({"both", {"x", "{port}", "{port_file}"}, {}}));
  EXPECT_FALSE(sup->add_service({"path", {"x", "{port}"}, {}, "readyz"}));
  ReplicaTemplate slow_liveness{"slow", {"x", "{port}"}, {}};
  slow_liveness.liveness_timeout = std::chrono::seconds(10);  // as long as its interval
  EXPECT_FALSE(sup->add_service(slow_liveness));
  EXPECT_FALSE(sup->set_desired("missing", 1));
}

}  // namespace
}  // namespace prescale::local
