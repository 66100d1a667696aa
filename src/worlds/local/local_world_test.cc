#include "worlds/local/local_world.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <future>
#include <map>
#include <memory>
#include <mutex>

#include "core/clock.h"
#include "core/config.h"
#include "gateway/cluster.h"
#include "gateway/gateway.h"
#include "http/server.h"
#include "telemetry/registry.h"
#include "worlds/local/test_util.h"

namespace prescale::local {
namespace {

using testing::NoProcesses;

// The gateway's figures for one service behind route "r": `n` requests answered 200 in
// `seconds` each, called as `callee` (the service the route leads to).
struct GatewayMetrics {
  void answer(int n, double seconds, const std::string& callee = "web") {
    calls.with({"external", callee}).inc(n);
    requests.with({"r", "200"}).inc(n);
    for (int i = 0; i < n; ++i) durations.with({"r"}).observe(seconds);
    busy.with({"r"}).inc(n * seconds);
  }
  telemetry::Registry registry;
  telemetry::CounterFamily& calls =
      registry.counter("prescale_calls_total", "calls", {"caller", "callee"});
  telemetry::CounterFamily& requests =
      registry.counter("prescale_requests_total", "requests", {"route", "code"});
  telemetry::HistogramFamily& durations =
      registry.histogram("prescale_request_duration_seconds", "latency", {"route"});
  telemetry::CounterFamily& busy =
      registry.counter("prescale_gateway_route_busy_seconds_total", "busy", {"route"});
};

// A world on one service ("web", behind route "r") with no processes, its controller clock
// running `time_scale` times its real one.
struct GatewayOnlyWorld {
  explicit GatewayOnlyWorld(double time_scale, Clock::Duration scrape_interval) {
    so.run_dir = "/run/test";
    EXPECT_TRUE(supervisor.add_service({"web", {"server", "{port}"}, {}}));
    scaling::ServiceSpec spec;
    spec.name = "web";
    spec.max_replicas = 4;
    spec.slo_latency_p99_seconds = 0.1;
    LocalWorldOptions o;
    o.clock = &clock;
    o.real_clock = &real;
    o.time_scale = time_scale;
    o.route_service = {{"r", "web"}};
    o.metric_window = std::chrono::seconds(30);
    o.scrape_interval = scrape_interval;
    world = std::make_unique<LocalWorld>(supervisor, gw.registry,
                                         std::vector<scaling::ServiceSpec>{spec}, o);
  }
  // Both clocks move on by `controller` of controller time; then the gateway answers `n`
  // requests of `seconds` each and the world is observed.
  const scaling::ServiceObservation& observe(Clock::Duration controller, Clock::Duration real_time,
                                             int n, double seconds,
                                             const std::string& callee = "web") {
    clock.advance(controller);
    real.advance(real_time);
    if (n > 0) gw.answer(n, seconds, callee);
    return world->observe(clock.now()).services.at(0);
  }
  ManualClock clock, real;
  NoProcesses none;
  SupervisorOptions so;
  Supervisor supervisor{so, none, none, none};
  GatewayMetrics gw;
  std::unique_ptr<LocalWorld> world;
};

TEST(LocalWorldTest, RequestFiguresCoverTheLastMetricWindowAndTotalsCountEachRequestOnce) {
  using std::chrono::seconds;
  GatewayOnlyWorld t(1, seconds(5));
  (void)t.world->observe(t.clock.now());  // the base
  // 5 s periods: 50 requests each for 30 s, then a quiet period.
  for (int i = 0; i < 6; ++i) {
    const auto& w = t.observe(seconds(5), seconds(5), 50, 0.01).window;
    EXPECT_NEAR(w.arrival_rps, 10, 1e-9) << "period " << i;
    EXPECT_EQ(w.length, seconds(5 * (i + 1)));
  }
  const auto& quiet = t.observe(seconds(5), seconds(5), 0, 0).window;
  // The last 30 s: five busy periods and the quiet one, not the quiet one alone.
  EXPECT_EQ(quiet.length, seconds(30));
  EXPECT_NEAR(quiet.arrival_rps, 250.0 / 30, 1e-9);
  EXPECT_NEAR(quiet.concurrency, 250 * 0.01 / 30, 1e-9);  // Little's law over the window
  EXPECT_NEAR(quiet.served_total, 300, 1e-9);
  EXPECT_NEAR(t.world->totals().requests, 300, 1e-9);
  EXPECT_NEAR(t.world->totals().within_slo, 300, 1e-9);
  // Slow answers count once in the totals, and stay in the window while it covers them.
  const auto& slow = t.observe(seconds(5), seconds(5), 10, 0.5).window;
  EXPECT_NEAR(slow.slow_rps, 10.0 / 30, 1e-9);
  // The window holds 200 fast answers and the 10 slow ones: rank 207.9 lies 7.9 into the 10
  // answers of (0.25, 0.5], interpolated as histogram_quantile() does.
  EXPECT_NEAR(slow.latency_p99_seconds, 0.25 + 0.25 * 0.79, 1e-9);
  for (int i = 0; i < 7; ++i) (void)t.observe(seconds(5), seconds(5), 0, 0);
  EXPECT_NEAR(t.world->totals().requests, 310, 1e-9);
  EXPECT_NEAR(t.world->totals().within_slo, 300, 1e-9);
  EXPECT_NEAR(t.world->observe(t.clock.now()).services[0].window.slow_rps, 0, 1e-9);
}

// A service added while the world runs counts from the gateway's counts then, also through a
// route label handed to it from a service removed (web renamed web2); a label handed to a
// running service is counted for it from then. Neither takes the removed one's requests so far
// for its own, which stay in the world's totals.
TEST(LocalWorldTest, AServiceAddedCountsFromNowAndTakesTheRoutesOfOneRemoved) {
  using std::chrono::seconds;
  GatewayOnlyWorld t(1, seconds(5));
  (void)t.world->observe(t.clock.now());
  for (int i = 0; i < 3; ++i) (void)t.observe(seconds(5), seconds(5), 50, 0.01);
  EXPECT_NEAR(t.world->totals().requests, 150, 1e-9);
  scaling::ServiceSpec web2{.name = "web2", .max_replicas = 4, .slo_latency_p99_seconds = 0.1};
  t.gw.answer(5, 0.01);  // answered since the last observation: counted at the removal
  ASSERT_TRUE(t.world->remove_service("web"));
  EXPECT_NEAR(t.world->totals().requests, 155, 1e-9);
  EXPECT_EQ(t.world->remove_service("web").error().code, ErrorCode::kNotFound);
  t.world->add_routes({{"r", "web2"}});
  ASSERT_TRUE(t.world->add_service(web2));
  EXPECT_EQ(t.world->add_service(web2).error().code, ErrorCode::kInvalidArgument);
  const std::string* route = t.world->route_service("r");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(*route, "web2");
  const scaling::ServiceObservation& renamed = t.observe(seconds(5), seconds(5), 20, 0.01, "web2");
  EXPECT_EQ(renamed.name, "web2");
  EXPECT_EQ(t.world->observe(t.clock.now()).services.size(), 1u);
  EXPECT_EQ(renamed.window.length, seconds(5));
  EXPECT_NEAR(renamed.window.arrival_rps, 4, 1e-9);  // 20 in 5 s, not 175
  EXPECT_NEAR(renamed.window.served_total, 20, 1e-9);
  EXPECT_NEAR(t.world->totals("web2").requests, 20, 1e-9);
  EXPECT_NEAR(t.world->totals().requests, 175, 1e-9);

  // Handed on again, to a service that runs already.
  ASSERT_TRUE(t.world->add_service({.name = "api", .max_replicas = 4}));
  (void)t.observe(seconds(5), seconds(5), 0, 0);
  ASSERT_TRUE(t.world->remove_service("web2"));
  t.world->add_routes({{"r", "api"}});
  const scaling::ServiceObservation& api = t.observe(seconds(5), seconds(5), 10, 0.01, "api");
  EXPECT_EQ(api.name, "api");
  EXPECT_NEAR(api.window.served_total, 10, 1e-9);
  EXPECT_NEAR(t.world->totals("api").requests, 10, 1e-9);
  EXPECT_NEAR(t.world->totals().requests, 185, 1e-9);
}

// The gateway starts with the world: what it answered before the first observation (a client
// quick off the mark, or a controller whose first tick comes late) is in the totals. The first
// observation was a base whose own requests were never counted: `prescale up` said "requests
// 19" after 20 answered.
TEST(LocalWorldTest, RequestsAnsweredBeforeTheFirstObservationAreCounted) {
  GatewayOnlyWorld t(1, std::chrono::seconds(5));
  t.gw.answer(20, 0.01);
  (void)t.world->observe(t.clock.now());
  EXPECT_NEAR(t.world->totals().requests, 20, 1e-9);
  EXPECT_NEAR(t.world->totals().within_slo, 20, 1e-9);
  (void)t.observe(std::chrono::seconds(5), std::chrono::seconds(5), 3, 0.01);
  EXPECT_NEAR(t.world->totals().requests, 23, 1e-9);
}

// docs/local.md: the last second is the gateway's arrivals over the last real second, so a step
// in load shows in it within that second, while the 30 s window (refreshed at each scrape)
// averages it in. The controller's clock runs 4x: a real second is four of its observations.
TEST(LocalWorldTest, AStepInArrivalsShowsInTheLastRealSecondWhileTheWindowAveragesItIn) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  GatewayOnlyWorld t(4, seconds(5));
  (void)t.world->observe(t.clock.now());
  // 20 requests per real second of 10 ms each: 5 an observation, for 40 controller seconds.
  scaling::ServiceObservation steady;
  for (int i = 1; i <= 40; ++i) steady = t.observe(seconds(1), milliseconds(250), 5, 0.01);
  ASSERT_TRUE(steady.last_second.valid);
  EXPECT_NEAR(steady.last_second.requests, 20, 1e-9);
  EXPECT_NEAR(steady.last_second.concurrency, 20 * 0.01, 1e-9);
  EXPECT_NEAR(steady.window.arrival_rps, 20, 1e-9);
  const Clock::TimePoint scraped = steady.window.sampled_at;

  // A step to 200 per real second of 20 ms each. Half a real second in, the last second holds
  // half a second of each; the window is still the last scrape's.
  (void)t.observe(seconds(1), milliseconds(250), 50, 0.02);
  const auto& half = t.observe(seconds(1), milliseconds(250), 50, 0.02);
  ASSERT_TRUE(half.last_second.valid);
  EXPECT_EQ(half.last_second.at, t.clock.now());
  EXPECT_NEAR(half.last_second.requests, 10 + 100, 1e-9);
  EXPECT_EQ(half.window.sampled_at, scraped);
  EXPECT_NEAR(half.window.arrival_rps, 20, 1e-9);
  (void)t.observe(seconds(1), milliseconds(250), 50, 0.02);
  const auto& second = t.observe(seconds(1), milliseconds(250), 50, 0.02);
  EXPECT_NEAR(second.last_second.requests, 200, 1e-9);
  EXPECT_NEAR(second.last_second.concurrency, 200 * 0.02, 1e-9);  // Little's law over it

  // At the next scrape the window covers 7.5 real seconds: 6.25 at 20/s and 1.25 at 200/s.
  const auto& scrape = t.observe(seconds(1), milliseconds(250), 50, 0.02);
  EXPECT_EQ(scrape.window.sampled_at, t.clock.now());
  EXPECT_EQ(scrape.window.length, seconds(30));
  EXPECT_NEAR(scrape.window.arrival_rps, (125 + 250) / 7.5, 1e-9);
  EXPECT_NEAR(scrape.window.concurrency, (125 * 0.01 + 250 * 0.02) / 7.5, 1e-9);
  EXPECT_NEAR(scrape.last_second.requests, 200, 1e-9);
}

// Requests in flight count in the last second's concurrency while they are in flight, from the
// gateway's busy seconds, not a request's latency later when they are answered: a service whose
// replicas stall shows its load the same second.
TEST(LocalWorldTest, RequestsInFlightCountInTheConcurrencyBeforeTheyAreAnswered) {
  using std::chrono::seconds;
  GatewayOnlyWorld t(1, seconds(5));
  (void)t.world->observe(t.clock.now());
  scaling::ServiceObservation o;
  for (int i = 0; i < 9; ++i) o = t.observe(seconds(1), seconds(1), 10, 0.01);
  EXPECT_NEAR(o.last_second.concurrency, 0.1, 1e-9);
  EXPECT_NEAR(o.window.concurrency, 0.1, 1e-9);  // the scrape at 5 s
  // Then 4 requests stay in flight: a second of each, none answered yet.
  t.gw.busy.with({"r"}).inc(4.0);
  o = t.observe(seconds(1), seconds(1), 10, 0.01);
  EXPECT_NEAR(o.last_second.requests, 10, 1e-9);
  EXPECT_NEAR(o.last_second.concurrency, 0.1 + 4, 1e-9);
  EXPECT_NEAR(o.window.concurrency, (1.0 + 4) / 10, 1e-9) << "the scrape at 10 s";
}

// The last second is valid once the samples span a real second (however many controller seconds
// that is), less the few milliseconds a controller observing every second wakes early or late
// by: its observations 999 ms apart are each a second's, not two.
TEST(LocalWorldTest, TheLastSecondIsInvalidUntilTheSamplesSpanARealSecond) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  GatewayOnlyWorld fast(4, seconds(5));
  EXPECT_FALSE(fast.world->observe(fast.clock.now()).services.at(0).last_second.valid);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_FALSE(fast.observe(seconds(1), milliseconds(250), 5, 0.01).last_second.valid)
        << i << " controller seconds, " << i * 250 << " ms of real time";
  }
  const auto& full = fast.observe(seconds(1), milliseconds(250), 5, 0.01);
  ASSERT_TRUE(full.last_second.valid);
  EXPECT_NEAR(full.last_second.requests, 20, 1e-9);

  GatewayOnlyWorld real_time(1, seconds(5));
  (void)real_time.world->observe(real_time.clock.now());
  const auto& first = real_time.observe(milliseconds(999), milliseconds(999), 10, 0.01);
  ASSERT_TRUE(first.last_second.valid);
  EXPECT_NEAR(first.last_second.requests, 10 / 0.999, 1e-9);
  const auto& next = real_time.observe(milliseconds(999), milliseconds(999), 30, 0.01);
  EXPECT_NEAR(next.last_second.requests, 30 / 0.999, 1e-9) << "two observations' worth";
}

// On a clock compressed past the window (30 s of controller time is 0.6 s of real time at 50x)
// a real second would reach back beyond the window: the last second is then the window's.
TEST(LocalWorldTest, OnAClockCompressedPastTheWindowTheLastSecondIsTheWindows) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  GatewayOnlyWorld t(50, seconds(5));
  (void)t.world->observe(t.clock.now());
  for (int i = 1; i <= 5; ++i) {
    EXPECT_FALSE(t.observe(seconds(5), milliseconds(100), 10, 0.01).last_second.valid) << i;
  }
  for (int i = 6; i <= 10; ++i) {
    const auto& o = t.observe(seconds(5), milliseconds(100), 10 * i, 0.01);
    ASSERT_TRUE(o.last_second.valid) << i;
    EXPECT_EQ(o.window.length, seconds(30));
    EXPECT_NEAR(o.last_second.requests, o.window.arrival_rps, 1e-6) << i;
    EXPECT_NEAR(o.last_second.concurrency, o.window.concurrency, 1e-6) << i;
  }
}

// Replica processes that never exit and are ready at once; free_port() says where they listen.
struct ReadyAtOnce : ProcessLauncher, ReplicaProbe, EndpointSink {
  struct Proc final : Process {
    explicit Proc(int p) : id(p) {}
    int pid() const override { return id; }
    void signal(int) override {}
    std::optional<int> poll_exit() override { return std::nullopt; }
    int id;
  };
  Result<std::unique_ptr<Process>> launch(const LaunchSpec&) override {
    auto proc = std::make_unique<Proc>(next_pid);
    next_pid += pid_step;
    return std::unique_ptr<Process>(std::move(proc));
  }
  std::optional<std::uint16_t> read_port_file(const std::string&) override { return {}; }
  struct Answer final : ReadinessCheck {
    std::optional<bool> answer() override { return true; }
    int status() override { return 200; }
  };
  std::unique_ptr<ReadinessCheck> check_ready(std::uint16_t, const std::string&,
                                              std::chrono::milliseconds) override {
    return std::make_unique<Answer>();
  }
  std::unique_ptr<ReadinessCheck> check_grpc_health(std::uint16_t, const std::string&,
                                                    std::chrono::milliseconds) override {
    return std::make_unique<Answer>();
  }
  void add(const std::string&, const std::string&, std::uint16_t) override {}
  void remove(const std::string&, const std::string&) override {}
  std::int64_t in_flight(const std::string&, const std::string&) override { return 0; }
  int next_pid = 4242;
  int pid_step = 0;  // 0: every launch has the same pid
};

// One replica process that never exits, ready at once on the port of a real /metrics server.
struct OneReadyReplica final : ReadyAtOnce {
  Result<std::uint16_t> free_port() override { return port; }
  std::uint16_t port = 0;
};

// One ready replica of "web" whose /metrics `metrics` answers (started here), observed by a
// LocalWorld on a manual clock that is its real clock too.
struct ScrapedReplica {
  ScrapedReplica(http::Server& metrics, LocalWorldOptions options = {}) {
    EXPECT_TRUE(metrics.start());
    fake.port = metrics.port();
    EXPECT_TRUE(supervisor.add_service({"web", {"server", "{port}"}, {}}));
    EXPECT_TRUE(supervisor.set_desired("web", 1));
    supervisor.tick(clock.now());
    supervisor.tick(clock.now());
    EXPECT_EQ(supervisor.replicas("web").at(0).phase, ReplicaPhase::kReady);
    scaling::ServiceSpec spec;
    spec.name = "web";
    spec.max_replicas = 4;
    options.clock = &clock;
    options.real_clock = &clock;
    world_ = std::make_unique<LocalWorld>(supervisor, gateway_registry,
                                          std::vector<scaling::ServiceSpec>{spec}, options);
  }
  LocalWorld& world() { return *world_; }

  OneReadyReplica fake;
  ManualClock clock;
  Supervisor supervisor{SupervisorOptions{}, fake, fake, fake};
  telemetry::Registry gateway_registry;

 private:
  std::unique_ptr<LocalWorld> world_;
};

// docs/local.md: CPU per replica is process_cpu_seconds_total "over the window, as a share of one
// core", and "a missed scrape keeps the old base". After a missed scrape the next delta spans two
// observations, so it must be divided by the time since the base, not since the last observation.
TEST(LocalWorldTest, CpuAfterAMissedScrapeIsAShareOfTheTimeSinceItsBase) {
  std::mutex mu;
  double cpu_seconds = 0;
  bool fail = false;
  http::ServerOptions so;
  so.threads = 1;
  http::Server metrics(so, [&](http::Request&, http::Responder respond) {
    std::lock_guard lock(mu);
    if (fail) return respond(http::Response::text(503, "busy"));
    respond(http::Response::text(200,
                                 "# TYPE process_cpu_seconds_total counter\n"
                                 "process_cpu_seconds_total " +
                                     std::to_string(cpu_seconds) + "\n"));
  });
  ScrapedReplica replica(metrics);
  ManualClock& clock = replica.clock;
  LocalWorld& world = replica.world();
  auto set = [&](double cpu, bool failing) {
    std::lock_guard lock(mu);
    cpu_seconds = cpu;
    fail = failing;
  };
  auto cpu = [&]() -> std::optional<double> {
    const auto& obs = world.observe(clock.now()).services.at(0);
    return obs.replicas.at(0).cpu_utilization;
  };

  // Half a core throughout.
  set(0, false);
  (void)cpu();
  clock.advance(std::chrono::seconds(5));
  set(2.5, false);
  ASSERT_EQ(cpu(), 0.5);
  clock.advance(std::chrono::seconds(5));
  set(5.0, true);  // this scrape is missed (the replica is busy)
  EXPECT_FALSE(cpu().has_value());
  clock.advance(std::chrono::seconds(5));
  set(7.5, false);
  const std::optional<double> after_miss = cpu();
  ASSERT_TRUE(after_miss.has_value());
  EXPECT_NEAR(*after_miss, 0.5, 1e-9) << "10 s of CPU over 5 s: the missed interval counted twice";
  metrics.shutdown(std::chrono::milliseconds(0));
}

// docs/local.md: "A counter that went down (a restarted process) starts a new base". A replica's
// pid can stay while the process answering its /metrics restarts (a wrapper that runs its server
// again, a pre-fork server recycling its worker): its process_cpu_seconds_total starts from 0,
// which is a new base, not a negative share of a core.
TEST(LocalWorldTest, ACpuCounterThatWentDownStartsANewBase) {
  std::mutex mu;
  double cpu_seconds = 0;
  http::ServerOptions so;
  so.threads = 1;
  http::Server metrics(so, [&](http::Request&, http::Responder respond) {
    std::lock_guard lock(mu);
    respond(http::Response::text(200,
                                 "# TYPE process_cpu_seconds_total counter\n"
                                 "process_cpu_seconds_total " +
                                     std::to_string(cpu_seconds) + "\n"));
  });
  ScrapedReplica replica(metrics);
  ManualClock& clock = replica.clock;
  LocalWorld& world = replica.world();
  auto cpu_at = [&](double cpu) {
    {
      std::lock_guard lock(mu);
      cpu_seconds = cpu;
    }
    const auto& obs = world.observe(clock.now()).services.at(0);
    clock.advance(std::chrono::seconds(5));
    return std::make_pair(obs.replicas.at(0).cpu_utilization, obs.window.mean_cpu_utilization);
  };

  (void)cpu_at(100);
  EXPECT_EQ(cpu_at(102.5).first, 0.5);
  const auto [reset, mean] = cpu_at(1);  // the server restarted under the same pid
  EXPECT_FALSE(reset.has_value()) << "a share of " << reset.value_or(0) << " cores";
  EXPECT_TRUE(std::isnan(mean)) << mean;
  EXPECT_EQ(cpu_at(3.5).first, 0.5) << "from the new base";
  metrics.shutdown(std::chrono::milliseconds(0));
}

// Observations between scrapes (prescale up observes every second) do not scrape the replicas:
// each keeps its last scrape's CPU, stamped with that scrape's time, until the next one a
// scrape_interval later.
TEST(LocalWorldTest, ReplicasAreScrapedOncePerScrapeIntervalTheirCpuKeptBetween) {
  std::mutex mu;
  double cpu_seconds = 0;
  int scrapes = 0;
  http::ServerOptions so;
  so.threads = 1;
  http::Server metrics(so, [&](http::Request&, http::Responder respond) {
    std::lock_guard lock(mu);
    ++scrapes;
    respond(http::Response::text(200,
                                 "# TYPE process_cpu_seconds_total counter\n"
                                 "process_cpu_seconds_total " +
                                     std::to_string(cpu_seconds) + "\n"));
  });
  LocalWorldOptions o;
  o.scrape_interval = std::chrono::seconds(5);
  ScrapedReplica replica(metrics, o);
  ManualClock& clock = replica.clock;
  LocalWorld& world = replica.world();
  auto at_second = [&](double cpu) {
    {
      std::lock_guard lock(mu);
      cpu_seconds = cpu;
    }
    clock.advance(std::chrono::seconds(1));
    return world.observe(clock.now()).services.at(0).replicas.at(0);
  };
  auto scraped = [&] {
    std::lock_guard lock(mu);
    return scrapes;
  };

  (void)world.observe(clock.now());
  EXPECT_EQ(scraped(), 1);
  for (int i = 1; i <= 4; ++i) {
    EXPECT_FALSE(at_second(0.5 * i).cpu_utilization.has_value()) << i;
    EXPECT_EQ(scraped(), 1) << i << " s after the first scrape";
  }
  const Clock::TimePoint second_scrape = clock.now() + std::chrono::seconds(1);
  EXPECT_EQ(at_second(2.5).cpu_utilization, 0.5);
  EXPECT_EQ(scraped(), 2);
  for (int i = 1; i <= 4; ++i) {
    const scaling::ReplicaObservation r = at_second(100.0 * i);  // not read until the next scrape
    EXPECT_EQ(r.cpu_utilization, 0.5) << i;
    EXPECT_EQ(r.metric_time, second_scrape) << i;
    EXPECT_EQ(scraped(), 2) << i << " s after the second scrape";
  }
  EXPECT_EQ(at_second(5.0).cpu_utilization, 0.5);
  EXPECT_EQ(scraped(), 3);
  metrics.shutdown(std::chrono::milliseconds(0));
}

// Replicas that each listen on a socket of their own that accepts connections (the kernel does)
// and never answers: servers busy on the thread that would serve /metrics.
struct HungReplicas final : ReadyAtOnce {
  explicit HungReplicas(int n) {
    next_pid = 100;
    pid_step = 1;
    for (int i = 0; i < n; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof addr;
      EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
      EXPECT_EQ(::listen(fd, 16), 0);
      EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
      sockets.push_back(fd);
      ports.push_back(ntohs(addr.sin_port));
    }
  }
  ~HungReplicas() override {
    for (int fd : sockets) ::close(fd);
  }
  Result<std::uint16_t> free_port() override { return ports.at(next_port++); }

  std::vector<int> sockets;
  std::vector<std::uint16_t> ports;
  size_t next_port = 0;
};

// The scrape runs on the thread that ticks the Supervisor (docs/local.md: "the supervisor at
// least every 100 ms"), so replicas that do not answer their /metrics must hold it up for one
// scrape_timeout, not one per replica: five hung replicas, scraped one after the other, held it
// five times as long.
TEST(LocalWorldTest, HungReplicasHoldAnObservationUpForOneScrapeTimeoutNotOneEach) {
  constexpr int kReplicas = 5;
  HungReplicas hung(kReplicas);
  ManualClock clock;
  Supervisor supervisor(SupervisorOptions{}, hung, hung, hung);
  ASSERT_TRUE(supervisor.add_service({"web", {"server", "{port}"}, {}}));
  ASSERT_TRUE(supervisor.set_desired("web", kReplicas));
  supervisor.tick(clock.now());
  supervisor.tick(clock.now());
  for (const auto& r : supervisor.replicas("web")) ASSERT_EQ(r.phase, ReplicaPhase::kReady);
  scaling::ServiceSpec spec;
  spec.name = "web";
  spec.max_replicas = kReplicas;
  LocalWorldOptions options;
  options.clock = &clock;
  options.real_clock = &clock;
  options.scrape_timeout = std::chrono::milliseconds(400);
  telemetry::Registry gateway_registry;
  LocalWorld world(supervisor, gateway_registry, {spec}, options);

  auto observed = std::async(std::launch::async, [&] { (void)world.observe(clock.now()); });
  EXPECT_EQ(observed.wait_for(std::chrono::milliseconds(1200)), std::future_status::ready)
      << kReplicas << " replicas of " << options.scrape_timeout.count()
      << " ms each scraped one after the other";
  observed.wait();
  const auto& replicas = world.observe(clock.now()).services.at(0).replicas;
  ASSERT_EQ(replicas.size(), static_cast<size_t>(kReplicas));
  for (const auto& r : replicas) EXPECT_FALSE(r.cpu_utilization.has_value());
}

// A gateway routing "api", on a manual clock, without health checks, and its endpoint sink.
struct GatewayEndpointsTest : ::testing::Test {
  GatewayEndpointsTest() {
    GatewayConfig config;
    config.routes.emplace_back().service = "api";
    auto made = gateway::Gateway::create(
        config, gateway::GatewayOptions{.clock = &clock, .health_checks = false});
    EXPECT_TRUE(made) << made.error().message;
    if (made) gateway = std::move(*made);
  }
  ManualClock clock;
  std::unique_ptr<gateway::Gateway> gateway;
};

// A replica restarted on the port it had, while the gateway still drains its old process's
// endpoint, is a new endpoint: before, the old one came back, ejected or unhealthy as it was.
TEST_F(GatewayEndpointsTest, AReplicaBackOnItsOldPortIsANewEndpoint) {
  ASSERT_TRUE(gateway);
  GatewayEndpoints endpoints(*gateway);
  endpoints.add("api", "api-1", 40000);
  endpoints.remove("api", "api-1");      // crashed: its endpoint drains
  endpoints.add("api", "api-1", 40000);  // restarted, the kernel gave the port again
  const auto view = gateway->cluster("api")->view();
  ASSERT_EQ(view->specs.size(), 2u);
  std::map<std::string, bool> draining;
  for (size_t i = 0; i < view->specs.size(); ++i) {
    draining[view->specs[i].id] = view->hosts.hosts()[i]->draining();
  }
  EXPECT_EQ(draining,
            (std::map<std::string, bool>{{"api-1@40000", true}, {"api-1@40000#2", false}}));
  // In flight is asked of the one draining.
  EXPECT_EQ(endpoints.in_flight("api", "api-1"), 0);
}

// A retired replica is forgotten once it has nothing in flight. The supervisor stops asking
// when in_flight() says 0, and the gateway reaps the endpoint at its next upkeep; before, the
// replica stayed in the map when that 0 came while the gateway still listed it, so every
// replica ever retired stayed behind.
TEST_F(GatewayEndpointsTest, ARetiredReplicaIsForgottenOnceNothingIsInFlight) {
  ASSERT_TRUE(gateway);
  GatewayEndpoints endpoints(*gateway);
  for (int i = 0; i < 3; ++i) {
    const std::string replica = "api-" + std::to_string(i);
    endpoints.add("api", replica, static_cast<std::uint16_t>(40000 + i));
    endpoints.remove("api", replica);
    EXPECT_EQ(endpoints.draining(), 1u);
    EXPECT_EQ(endpoints.in_flight("api", replica), 0);  // listed, draining, nothing in flight
    EXPECT_EQ(endpoints.draining(), 0u) << replica;
  }
}

// A removed service's replica drains; once the gateway has reaped its endpoint and dropped the
// service's cluster (no route names it), the replica is no longer counted as draining.
TEST_F(GatewayEndpointsTest, AReplicaOfAServiceWhoseClusterWentIsForgotten) {
  ASSERT_TRUE(gateway);
  GatewayEndpoints endpoints(*gateway);
  endpoints.add("api", "api-1", 40000);
  ASSERT_TRUE(gateway->reload(GatewayConfig{}));  // api removed: no route names it
  endpoints.remove("api", "api-1");
  EXPECT_EQ(endpoints.draining(), 1u);
  gateway->upkeep();  // reaped (nothing in flight), the cluster dropped with it
  ASSERT_EQ(gateway->cluster("api"), nullptr);
  EXPECT_EQ(endpoints.in_flight("api", "api-1"), 0);
  EXPECT_EQ(endpoints.draining(), 0u);
}

}  // namespace
}  // namespace prescale::local
