// `prescale up` end to end: the real binary, real replica processes, the real gateway, and
// `prescale load` replaying a compressed trace through it. What the local platform must show
// (issue "The local platform"): the plan leads the load, nothing fails while replicas are killed
// or scaled down, the simulator predicts the run, a restart keeps the learned history, bad files
// fail before anything starts; and a service's queue_limit is enforced by the gateway.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
// GCC 12 at -O3 reports null dereferences inside nlohmann::json's inlined accessors that cannot
// happen (the objects are checked first); the warning is an error in this build.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/test_util.h"
#include "support/platform.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::Subprocess;
using testing::TempDir;

// Per minute: 10 requests, rising linearly from minute 720 to 150 at 730, held until 760,
// then 10 again — every day, so the seeded days teach the forecaster the noon ramp.
std::string ramp_trace(int days) {
  std::string csv = "timestamp,requests\n";
  char line[64];
  for (int d = 0; d < days; ++d) {
    for (int m = 0; m < 1440; ++m) {
      double v = 10;
      if (m >= 720 && m < 730) v = 10 + 14.0 * (m - 720 + 1);
      if (m >= 730 && m < 760) v = 150;
      std::snprintf(line, sizeof line, "2026-01-%02d %02d:%02d:00,%.0f\n", d + 1, m / 60, m % 60, v);
      csv += line;
    }
  }
  return csv;
}

// GET `target` from 127.0.0.1:`port`.
Result<http::Response> http_get(std::uint16_t port, const std::string& target,
                                std::chrono::milliseconds timeout = 10s) {
  http::Client client;
  http::Request req;
  req.method = http::Method::kGet;
  req.method_name = "GET";
  req.target = target;
  return client.request("127.0.0.1", port, std::move(req), timeout);
}

// How many times `text` holds `what`: a warning said once must be there exactly once.
size_t times_in(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// One echo service behind the gateway; per-try timeouts and retries for the GETs. Its replicas
// run one thread, and `GET /busy/10` holds it 10 ms: about 50 req/s each within the 100 ms SLO
// (M/M/1: 100/s − ln 100 / 0.1 s), as declared.
std::string echo_yaml(const std::string& policy_period) {
  return R"(version: 1
policy: {name: prescale, period: )" +
         policy_period + R"(}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 1, max: 6, initial: 1}
    startup_time: 1s
    capacity_rps: 50
    concurrency: 1
    slo: {latency_p99_ms: 100}
    queue_limit: 0   # FIFO: a kill must not fail a request (admission would refuse the excess)
gateway:
  listen: "127.0.0.1:0"
  health_check: {interval: 1s, timeout: 500ms, unhealthy_threshold: 2}
  routes:
    - match: {path_prefix: /}
      service: web
      per_try_timeout: 1s
      retries: {num_retries: 2}
)";
}

using testing::Platform;

// `prescale load` against `up`'s gateway with `args` (rate or trace, duration, mix, ...), its
// report written to `dir`/load.json (load_report() reads it), its output to `dir`/load.log.
Subprocess load_against(const Platform& up, const TempDir& dir, std::vector<std::string> args) {
  std::vector<std::string> argv = {PRESCALE_BIN, "load"};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const std::string& a :
       {std::string("--target"), "http://127.0.0.1:" + std::to_string(up.gateway_port()),
        std::string("--json"), dir.file("load.json")}) {
    argv.push_back(a);
  }
  return Subprocess(argv, dir.file("load.log"));
}

nlohmann::json load_report(const TempDir& dir) {
  return nlohmann::json::parse(testing::read_file(dir.file("load.json")));
}
using testing::replica_pids;

// The replica whose start (or restart) event names process `pid`; "" when none does.
std::string replica_with_pid(const json& events, int pid) {
  if (!events.is_object()) return "";
  for (const auto& e : events["events"]) {
    const std::string message = e.value("message", ""), said = "pid " + std::to_string(pid);
    if (message == said || message.starts_with(said + ",")) {
      return e.value("replica", "");
    }
  }
  return "";
}

TEST(UpTest, ThePlanLeadsTheRampAndNoRequestFailsThroughAKillAndScaleDowns) {
  TempDir dir;
  const std::string trace = dir.file("ramp.csv");
  testing::write_file(trace, ramp_trace(4));
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("30s"));
  // Controller time runs 60× real time: a trace minute is a real second. The history holds the
  // three days before; the replay starts 15 minutes before day 4's ramp.
  const int start_minute = 3 * 1440 + 705;
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"),
              {"--time-scale", "60", "--seed-trace", trace, "--seed-service", "web",
               "--seed-until-days", std::to_string(start_minute / 1440.0), "--seed-scale", "60"},
              "up");
  ASSERT_TRUE(up.started()) << up.log();

  Subprocess load =
      load_against(up, dir,
                   {"--trace", trace, "--offset", std::to_string(start_minute) + "m", "--speedup",
                    "60", "--duration", "75s", "--mix", "GET /busy/10:1", "--connections", "128"});
  // In the middle of the plateau (trace minute 745), a replica dies.
  std::this_thread::sleep_for(40s);
  std::vector<int> pids = replica_pids(up.events());
  ASSERT_GE(pids.size(), 3u) << up.events().dump();
  ASSERT_EQ(::kill(pids.back(), SIGKILL), 0);
  ASSERT_EQ(load.wait(90s), 0) << load.log();
  std::this_thread::sleep_for(2s);
  const json series = up.service("web");
  const json events = up.events();
  // The gateway's view, for the message should anything have failed.
  std::string gateway_metrics;
  {
    if (auto r = http_get(up.ui_port(), "/metrics", 5s)) {
      std::istringstream lines(r->body);
      for (std::string line; std::getline(lines, line);) {
        if (line[0] != '#' && (line.find("gateway_upstream_requests_total") != std::string::npos ||
                               line.find("code=\"5") != std::string::npos ||
                               line.find("overflow") != std::string::npos ||
                               line.find("ejections") != std::string::npos)) {
          gateway_metrics += line + "\n";
        }
      }
    }
  }
  ASSERT_EQ(up.stop(), 0) << up.log();

  // Nothing failed: not when the replica was killed (the gateway retried the GETs elsewhere),
  // not while replicas drained on the way down.
  const json report = load_report(dir);
  std::printf("load: %s\n", report["requests"].dump().c_str());
  EXPECT_GT(report["requests"]["completed"].get<int>(), 4000);
  EXPECT_EQ(report["requests"]["errors"], 0);
  EXPECT_EQ(report["requests"]["unfinished"], 0);
  EXPECT_EQ(report["requests"]["ok"], report["requests"]["completed"])
      << report["status"].dump() << "\n"
      << gateway_metrics << up.log();

  // The killed replica was restarted; the service scaled up for the ramp and down after it.
  bool crashed = false, restarted = false, scaled_down = false;
  int most_ready = 0;
  for (const auto& e : events["events"]) {
    crashed |= e["kind"] == "crash";
    restarted |= e["kind"] == "restart";
    if (e["kind"] == "scale") {
      int from = 0, to = 0;
      const std::string message = e.value("message", "");
      if (std::sscanf(message.c_str(), "%d -> %d", &from, &to) == 2 &&
          to < from) {
        scaled_down = true;
      }
    }
  }
  // The platform's own account agrees: every request answered, nearly all within the SLO.
  const size_t at = up.log().find("within SLO ");
  ASSERT_NE(at, std::string::npos) << up.log();
  const double within = std::stod(up.log().substr(at + 11));
  EXPECT_LE(within, 100.0);
  EXPECT_GE(within, 99.0);

  // The killed replica came back — restarted, or retired first by a scale-down that wanted one
  // replica fewer anyway (a crashed replica is the first a scale-down takes).
  EXPECT_TRUE(crashed) << events.dump();
  (void)restarted;
  EXPECT_TRUE(scaled_down) << events.dump();

  // The plan leads the load: once the load needs more than one replica, the replicas it needs
  // (at the capacity per replica the policy planned with) are already ready — they were started
  // for the forecast ramp, not after it was observed. One point of slack for the step the ramp
  // begins with.
  const auto& t = series["series"]["t"];
  const auto& load_rps = series["series"]["load_rps"];
  const auto& ready = series["series"]["ready_replicas"];
  ASSERT_GT(t.size(), 30u) << series.dump();
  // From the kill until its restart is ready, the service is a replica short by design.
  double crash_t = 0, back_t = 0;
  for (const auto& e : events["events"]) {
    if (e["kind"] == "crash") crash_t = e["t"].get<double>();
  }
  for (const auto& e : events["events"]) {
    if (e["kind"] == "ready" && crash_t > 0 && e["t"].get<double>() > crash_t &&
        (back_t == 0 || e["t"].get<double>() < back_t)) {
      back_t = e["t"].get<double>();
    }
  }
  // The per-replica capacity the policy planned with (learned; its reasons say "/ X rps per
  // replica"), as of each point.
  std::vector<std::pair<double, double>> capacity_at;  // (t, rps per replica)
  static const std::regex capacity_re("/ ([0-9.]+) rps per replica");
  for (const auto& e : events["events"]) {
    std::smatch m;
    const std::string message = e.value("message", "");
    if (e.value("kind", "") == "scale" && std::regex_search(message, m, capacity_re)) {
      capacity_at.emplace_back(e["t"].get<double>(), std::stod(m[1]));
    }
  }
  std::sort(capacity_at.begin(), capacity_at.end());
  auto capacity = [&](double when) {
    double c = 50;  // the declared seed
    for (const auto& [t_event, rps] : capacity_at) {
      if (t_event <= when) c = rps;
    }
    return c;
  };
  int short_points = 0, ramp_points = 0;
  std::string trail;
  for (size_t i = 0; i < t.size(); ++i) {
    if (!load_rps[i].is_number()) continue;
    const double l = load_rps[i].get<double>();
    const int r = ready[i].get<int>();
    most_ready = std::max(most_ready, r);
    char row[64];
    std::snprintf(row, sizeof row, " %.0f/%d", l, r);
    trail += row;
    if (l < 1.2 * capacity(t[i].get<double>())) continue;
    const double ti = t[i].get<double>();
    if (crash_t > 0 && ti >= crash_t && ti <= back_t + 1) continue;
    ++ramp_points;
    if (r * capacity(ti) < 0.9 * l) ++short_points;
  }
  std::printf("load/ready per second:%s\n", trail.c_str());
  std::printf("planned capacity per replica:");
  for (const auto& [t_event, rps] : capacity_at) std::printf(" %.0f@%.1f", rps, t_event - t[0].get<double>());
  std::printf("; crash %.1f, back %.1f\n", crash_t - t[0].get<double>(), back_t - t[0].get<double>());
  EXPECT_GE(most_ready, 2);
  // The plateau is 30 points, less the ten the killed replica is away for, less those under
  // 1.2 × a learned capacity that may well exceed the declared 50 (GET /busy/10 takes 10 ms).
  EXPECT_GE(ramp_points, 12);
  EXPECT_LE(short_points, 1) << "points where the ready replicas fell short of the load";
  // No replica outlives the platform.
  for (int pid : replica_pids(events)) {
    EXPECT_FALSE(testing::process_alive(pid)) << "replica " << pid;
  }

  // Sim-to-real (within 15 %): the simulator, given what the platform had (the file, the seeded
  // history, the load's entry and scale, the compressed clock, the capacity it learned),
  // predicts the run's replica-hours and share within the SLO.
  const size_t hours_at = up.log().find("replica-hours ");
  ASSERT_NE(hours_at, std::string::npos) << up.log();
  const double live_hours = std::stod(up.log().substr(hours_at + 14));
  Subprocess sim({PRESCALE_BIN, "sim", "-f", config, "--trace", trace, "--offset",
                  std::to_string(start_minute) + "m", "--duration", "75m", "--history",
                  std::to_string(start_minute) + "m", "--entry", "web", "--time-scale", "60",
                  "--scale", "60", "--capacity-from", dir.file("state"), "--policies", "prescale",
                  "--json", dir.file("sim.json"), "--progress", "never"},
                 dir.file("sim.log"));
  ASSERT_EQ(sim.wait(60s), 0) << sim.log();
  EXPECT_NE(sim.log().find("capacity of web: "), std::string::npos) << sim.log();
  const json predicted = json::parse(testing::read_file(dir.file("sim.json")));
  const double sim_hours = predicted[0]["replica_hours"].get<double>();
  const double sim_within = 100 * predicted[0]["slo_attainment"].get<double>();
  std::printf("live: %.2f replica-hours, %.2f %% within SLO; simulated: %.2f, %.2f %%\n",
              live_hours, within, sim_hours, sim_within);
  EXPECT_NEAR(live_hours / sim_hours, 1.0, 0.15);
  EXPECT_NEAR(within / sim_within, 1.0, 0.15);
}

TEST(UpTest, AKilledReplicaIsRestartedAndNoRequestFails) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("{min: 1, max: 6, initial: 1}"), 28, "{min: 2, max: 2, initial: 2}");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  Subprocess load =
      load_against(up, dir, {"--rate", "150", "--duration", "18s", "--mix", "GET /echo:1"});
  std::this_thread::sleep_for(3s);
  const std::vector<int> pids = replica_pids(up.events());
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
  ASSERT_EQ(load.wait(60s), 0) << load.log();
  // The restart comes after a 10 s back-off: waited for (three "ready" events: the two of the
  // start and the restarted one), not taken as done when the load ends.
  json events;
  EXPECT_TRUE(testing::wait_for(
      [&] {
        events = up.events();
        if (!events.contains("events")) return false;
        int ready = 0;
        for (const auto& e : events["events"]) ready += e.value("kind", "") == "ready" ? 1 : 0;
        return ready >= 3;
      },
      30s))
      << events.dump();
  ASSERT_EQ(up.stop(), 0) << up.log();

  const json report = load_report(dir);
  EXPECT_GT(report["requests"]["completed"].get<int>(), 2500);
  EXPECT_EQ(report["requests"]["errors"], 0);
  EXPECT_EQ(report["requests"]["ok"], report["requests"]["completed"]) << report["status"].dump();
  // crash, then (the 10 s back-off later) restart and ready, under the same replica id.
  std::vector<std::string> killed;
  std::string killed_id;
  for (auto it = events["events"].rbegin(); it != events["events"].rend(); ++it) {
    const std::string kind = it->value("kind", "");
    if (kind == "crash") killed_id = it->value("replica", "");
    if (!killed_id.empty() && it->value("replica", "") == killed_id) killed.push_back(kind);
  }
  EXPECT_EQ(killed, (std::vector<std::string>{"crash", "restart", "ready"})) << events.dump();
  EXPECT_EQ(replica_pids(events).size(), 3u);
  for (int pid : replica_pids(events)) {
    EXPECT_FALSE(testing::process_alive(pid)) << "replica " << pid;
  }
}

// The forecast is the learned state's: it changes only when a minute of observation ends (a
// minute without load here; minutes count on the monotonic clock). So a round (first run, stop,
// second run) is compared only when it stayed within one minute; a round that crossed one is run
// again.
TEST(UpTest, ARestartKeepsTheLearnedHistory) {
  TempDir dir;
  const std::string trace = dir.file("ramp.csv");
  testing::write_file(trace, ramp_trace(4));
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  auto forecast_of = [](const Platform& p) {
    json f;
    testing::wait_for(
        [&] {
          const json s = p.service("web");
          if (!s.is_object() || !s["forecast"].is_object() || s["forecast"]["p50"].empty()) {
            return false;
          }
          f = s["forecast"];
          return true;
        },
        15s);
    return f;
  };
  auto minute_now = [] {
    return std::chrono::floor<std::chrono::minutes>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  json before, after;
  bool one_minute = false;
  for (int round = 0; round < 3 && !one_minute; ++round) {
    // Start early in a minute: a round takes about 10 s.
    const auto into_minute = std::chrono::steady_clock::now().time_since_epoch() % 1min;
    if (into_minute > 30s) std::this_thread::sleep_for(1min - into_minute + 500ms);
    const auto minute = minute_now();
    const std::string state = dir.file("state-" + std::to_string(round));
    {
      Platform first(PRESCALE_BIN, dir, config, state,
                     {"--seed-trace", trace, "--seed-service", "web", "--seed-until-days", "3.5",
                      "--seed-scale", "1"},
                     "first");
      ASSERT_TRUE(first.started());
      before = forecast_of(first);
      ASSERT_EQ(first.stop(), 0) << first.log();
    }
    {
      Platform second(PRESCALE_BIN, dir, config, state, {}, "second");  // no seed: what the state holds
      ASSERT_TRUE(second.started());
      after = forecast_of(second);
      ASSERT_EQ(second.stop(), 0) << second.log();
      EXPECT_NE(second.log().find("restored the learned history"), std::string::npos)
          << second.log();
    }
    one_minute = minute_now() == minute;
  }
  if (!one_minute) GTEST_SKIP() << "every round crossed a minute boundary (a very slow machine)";
  ASSERT_FALSE(before.is_null());
  ASSERT_FALSE(after.is_null());
  for (const char* q : {"p50", "p90", "p99"}) {
    ASSERT_EQ(before[q].size(), after[q].size()) << q;
    for (size_t h = 0; h < before[q].size(); ++h) {
      const double b = before[q][h].get<double>(), a = after[q][h].get<double>();
      EXPECT_NEAR(a, b, 0.01 * std::max(std::abs(b), 1e-9)) << q << " at horizon " << h + 1;
    }
  }
}

// A service's queue_limit reaches the gateway: two replicas that each take 1 (concurrency) +
// ceil(10 req/s × 100 ms) = 2 requests in flight admit 4 slow requests at once; the rest are
// refused at once, 503 overloaded with Retry-After, and counted.
TEST(UpTest, AQueueLimitRefusesWhatTheReplicasCannotStartInTime) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, R"(version: 1
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 2, max: 2, initial: 2}
    startup_time: 1s
    capacity_rps: 10
    concurrency: 1
    queue_limit: 100ms
gateway:
  listen: "127.0.0.1:0"
  routes:
    - service: web
)");
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  constexpr int kRequests = 12;
  std::vector<Result<http::Response>> answers(kRequests, make_error(ErrorCode::kInternal, ""));
  {
    std::vector<std::jthread> clients;
    for (int i = 0; i < kRequests; ++i) {
      clients.emplace_back([&, i] { answers[i] = http_get(up.gateway_port(), "/delay/2000"); });
    }
  }
  int ok = 0, refused = 0;
  for (const auto& a : answers) {
    ASSERT_TRUE(a.has_value()) << a.error().message;
    if (a->status == 200) ++ok;
    if (a->status != 503) continue;
    ++refused;
    EXPECT_EQ(a->headers.get("Retry-After"), "1");
    EXPECT_EQ(a->body,
              R"({"error":{"code":"overloaded","message":"service web: 4 requests in flight, )"
              R"(the limit for 2 ready replicas is 4"}})");
  }
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(refused, kRequests - 4);
  auto metrics = http_get(up.ui_port(), "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_NE(metrics->body.find(R"(prescale_gateway_overflows_total{service="web",)"
                               R"(reason="admission"} 8)"),
            std::string::npos)
      << metrics->body;
  ASSERT_EQ(up.stop(), 0) << up.log();
}

// One echo replica, never more, under the prescale policy (5 s period) with a 100 ms SLO and
// admission control left at its default; `capacity` holds the service's capacity lines.
std::string one_replica_yaml(const std::string& capacity) {
  return R"(version: 1
policy: {name: prescale, period: 5s}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 1, max: 1, initial: 1}
    startup_time: 1s
    )" + capacity + R"(
    slo: {latency_p99_ms: 100}
gateway:
  listen: "127.0.0.1:0"
  routes:
    - service: web
)";
}

// web's admission limit per replica in `up`'s gateway, from its /metrics; -1 when it does not
// answer or has none.
int web_admission_limit(const testing::Platform& up) {
  auto r = http_get(up.ui_port(), "/metrics", 5s);
  if (!r) return -1;
  static const std::regex gauge(R"(prescale_gateway_admission_limit\{service="web"\} (\d+))");
  std::smatch m;
  return std::regex_search(r->body, m, gauge) ? std::stoi(m[1]) : -1;
}

// Admission control is on by default (half the SLO: 50 ms here) and counts with the capacity
// the controller learns, not the file's seed: the seed of 10 req/s allows 1 + ceil(10 × 0.05) = 2
// requests in flight per replica; a replica that serves GET /busy/5 at well over 60 req/s within
// the SLO is given more once its capacity is learned, and keeps it through a reload that changes
// its queue limit.
TEST(UpTest, AdmissionControlCountsWithTheLearnedCapacity) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, one_replica_yaml("capacity_rps: 10\n    concurrency: 1"));
  // Controller time runs 30× real time, so that its 30-second metric windows, and the settling
  // the capacity model waits for after a replica starts, pass in a real second or two.
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {"--time-scale", "30"}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  auto admission_limit = [&] { return web_admission_limit(up); };
  EXPECT_EQ(admission_limit(), 2);

  Subprocess load =
      load_against(up, dir, {"--rate", "30", "--duration", "8s", "--mix", "GET /busy/5:1"});
  ASSERT_EQ(load.wait(90s), 0) << load.log();  // a bound on a hang, as below
  int learned = admission_limit();
  for (int i = 0; i < 50 && learned <= 4; ++i) {
    std::this_thread::sleep_for(100ms);
    learned = admission_limit();
  }
  // At least 1 + ceil(60 × 0.05): what a replica completing 60 req/s within the SLO starts
  // within the limit.
  std::printf("admission limit per replica: 2 from the seed, %d learned\n", learned);
  EXPECT_GE(learned, 4) << up.log();
  EXPECT_NE(up.log().find("web: admission limit "), std::string::npos) << up.log();
  // A reload that doubles the queue limit (100 ms, not half the SLO) keeps what was learned: the
  // new number is counted at the learned capacity, not at the seed's 1 + ceil(10 × 0.1) = 2.
  testing::save_file(
      config, one_replica_yaml("capacity_rps: 10\n    concurrency: 1\n    queue_limit: 100ms"));
  EXPECT_TRUE(testing::wait_for(
      [&] { return up.log().find("queue_limit 100 ms (was 50 ms)") != std::string::npos; }, 20s))
      << up.log();
  const int doubled = admission_limit();
  std::printf("after a reload that doubles the queue limit: %d\n", doubled);
  EXPECT_GT(doubled, learned) << up.log();
  ASSERT_EQ(up.stop(), 0) << up.log();
}

// A service that does not say how many requests it serves at once (a user's program) gets what
// its replicas complete within the SLO and the limit: the learned capacity must not shrink that
// below what a replica serves. Poisson load at 40 % of the declared capacity is never refused,
// before the capacity is learned or after.
TEST(UpTest, AdmissionControlOfAServiceOfUnknownConcurrencyRefusesNothingBelowCapacity) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, one_replica_yaml("capacity_rps: 100"));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {"--time-scale", "30"}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  Subprocess load =
      load_against(up, dir, {"--rate", "40", "--duration", "10s", "--mix", "GET /busy/5:1"});
  // A bound on a hang, not a time: 10 s of load and up to 10 s of answers after it, on a machine
  // the test before may have left busy (30 s was once too short there).
  ASSERT_EQ(load.wait(90s), 0) << load.log();
  const json report = load_report(dir);
  EXPECT_EQ(report["requests"]["ok"], report["requests"]["completed"])
      << report["status"].dump() << "\n"
      << up.log();
  ASSERT_EQ(up.stop(), 0) << up.log();
  const std::string log = up.log();
  const size_t last = log.rfind("web: admission limit ");
  std::printf("%s\n", last == std::string::npos
                          ? "admission limit: the seed's, 15 per replica"
                          : log.substr(last, log.find('\n', last) - last).c_str());
}

// config.md: gateway.listen takes IPv6 hosts in brackets ("[::]:8080"). local.md: every replica
// gets PRESCALE_GATEWAY_URL, where to call other services. The URL is "http://" + host + ":" +
// port with the brackets gone — "http://::1:40123", which no URL parser reads as a host and a
// port — and the line the platform prints names the gateway the same way.
// The PRESCALE_GATEWAY_URL a replica process was started with.
std::string gateway_url_of(int pid) {
  std::string environ = testing::read_file("/proc/" + std::to_string(pid) + "/environ");
  std::replace(environ.begin(), environ.end(), '\0', '\n');
  std::string url;
  std::istringstream vars(environ);
  for (std::string var; std::getline(vars, var);) {
    if (var.rfind("PRESCALE_GATEWAY_URL=", 0) == 0) url = var.substr(21);
  }
  return url;
}

TEST(UpTest, AnIpv6GatewayIsAnnouncedToReplicasAsAUrl) {
  {
    const int s = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 loopback{};
    loopback.sin6_family = AF_INET6;
    loopback.sin6_addr = in6addr_loopback;
    const bool bound =
        s >= 0 && ::bind(s, reinterpret_cast<const sockaddr*>(&loopback), sizeof loopback) == 0;
    if (s >= 0) ::close(s);
    if (!bound) GTEST_SKIP() << "this machine cannot bind [::1]";
  }
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("127.0.0.1:0"), 11, "[::1]:0");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  const std::string expected = "http://[::1]:" + std::to_string(up.gateway_port());
  const std::vector<int> pids = replica_pids(up.events());
  ASSERT_EQ(pids.size(), 1u) << up.events().dump();
  const std::string url = gateway_url_of(pids[0]);
  EXPECT_EQ(url, expected);
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("prescale up: gateway " + expected + ","), std::string::npos)
      << up.log();
}

// gateway.tls: clients reach the gateway over HTTPS; the replicas are given a plain listener of
// the same gateway on the loopback, which serves the same routes (docs/gateway.md, "TLS").
TEST(UpTest, WithTlsClientsUseHttpsAndTheReplicasAPlainListenerOfTheirOwn) {
  TempDir dir;
  const auto cert = http::testing::write_test_certificate(dir.path(), "gateway");
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("gateway:\n") + 9, 0,
               "  tls: {cert_file: gateway.crt, key_file: gateway.key}\n");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();

  http::testing::RawSocket s(up.gateway_port());
  std::string error;
  ASSERT_TRUE(s.start_tls(cert.cert_file, &error)) << error << "\n" << up.log();
  ASSERT_TRUE(s.send("GET /echo HTTP/1.1\r\nHost: shop\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value()) << up.log();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("\"X-Forwarded-Proto\":\"https\""), std::string::npos) << r->body;

  const std::vector<int> pids = replica_pids(up.events());
  ASSERT_EQ(pids.size(), 1u) << up.events().dump();
  const std::string url = gateway_url_of(pids[0]);
  ASSERT_EQ(url.rfind("http://127.0.0.1:", 0), 0u) << url;
  const int inside = std::stoi(url.substr(17));
  EXPECT_NE(inside, up.gateway_port());
  http::Client client;
  auto plain =
      client.request("127.0.0.1", static_cast<uint16_t>(inside), testing::get_request("/echo"));
  ASSERT_TRUE(plain.has_value()) << plain.error().message;
  EXPECT_EQ(plain->status, 200);
  EXPECT_NE(plain->body.find("\"X-Forwarded-Proto\":\"http\""), std::string::npos) << plain->body;
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("prescale up: gateway https://127.0.0.1:" +
                          std::to_string(up.gateway_port()) + ","),
            std::string::npos)
      << up.log();
}

// A state directory whose logs cannot be created stops `prescale up` at once, naming the path,
// even when the run directory beside it can be (its success must not hide the failure).
TEST(UpTest, AStateDirectoryWithoutRoomForLogsFailsNamingIt) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  std::filesystem::create_directories(state);
  testing::write_file(state + "/logs", "a file where the log directory goes\n");
  Subprocess up({PRESCALE_BIN, "up", "-f", config, "--state-dir", state, "--ui", "127.0.0.1:0"},
                dir.file("up.log"));
  EXPECT_EQ(up.wait(20s), 2);
  EXPECT_NE(up.log().find(state + "/logs"), std::string::npos) << up.log();
  EXPECT_FALSE(std::filesystem::exists(state + "/run")) << "nothing past the failure";
}

// When the wait for the initial replicas ends with a service short of them, the platform serves
// what is ready and says (10 s: web, an echo replica, must be ready by then on a loaded machine), before announcing its ports, which service is not ready, what its
// replicas are doing and the last line of their logs.
TEST(UpTest, AServiceNotReadyInTimeIsNamedWithItsLog) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("gateway:"), 0,
               "  - name: broken\n"
               "    kind: command\n"
               "    command: [sh, -c, 'echo starting; echo \"no model in /models/x\" >&2; exit 3',"
               " \"{port}\"]\n"
               "    replicas: {min: 1, max: 1, initial: 1}\n");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {"--ready-wait", "10"}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  auto served = http_get(up.gateway_port(), "/echo");  // web is served meanwhile
  ASSERT_TRUE(served) << served.error().message;
  EXPECT_EQ(served->status, 200);
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  EXPECT_NE(log.find("not ready after 10 s: broken (0 of 1 ready)"), std::string::npos) << log;
  EXPECT_NE(log.find("broken-1 crashed: exited with status 3"), std::string::npos) << log;
  EXPECT_NE(log.find("broken-1.log ends \"no model in /models/x\""), std::string::npos) << log;
  EXPECT_EQ(log.find("web ("), std::string::npos) << "web was ready:\n" << log;
}

// A program of the user's that knows nothing of Prescale (Python's http.server: no /readyz, no
// /metrics) runs under `prescale up` when its service names the path that says it is ready
// (config.md, services[].readiness_path): the supervisor waits for that path before the replica
// gets traffic, and the gateway's health checks ask it too — at /readyz the server answers 404,
// and the replica would never be ready, or be taken out of service at the first check.
TEST(UpTest, AProgramWithItsOwnReadinessPathIsServedAndStaysInService) {
  TempDir dir;
  const std::string site = dir.file("site");
  std::filesystem::create_directories(site);
  testing::write_file(site + "/ready.txt", "yes\n");
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, R"(version: 1
services:
  - name: files
    kind: command
    command: [python3, -m, http.server, "{port}", --bind, 127.0.0.1, --directory, ")" +
                                  site + R"("]
    readiness_path: /ready.txt
    replicas: {min: 1, max: 1, initial: 1}
    startup_time: 2s
gateway:
  listen: "127.0.0.1:0"
  health_check: {interval: 500ms, timeout: 450ms, unhealthy_threshold: 2}
  routes:
    - match: {path_prefix: /}
      service: files
)");
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {"--ready-wait", "15"}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  auto endpoints = [&](const std::string& state) -> int {
    auto r = http_get(up.ui_port(), "/metrics", 5s);
    if (!r) return -1;
    const std::regex gauge(R"(prescale_gateway_endpoints\{service="files",state=")" + state +
                           R"("\} (\d+))");
    std::smatch m;
    return std::regex_search(r->body, m, gauge) ? std::stoi(m[1]) : -1;
  };
  EXPECT_EQ(endpoints("ready"), 1) << up.log();
  // Several rounds of the gateway's checks (every 500 ms; two failures take a replica out, a
  // 404 at the default /readyz within a second). A shorter timeout failed a python server that
  // answered late on a busy machine.
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(endpoints("ready"), 1) << up.log();
  EXPECT_EQ(endpoints("unhealthy"), 0) << up.log();
  auto served = http_get(up.gateway_port(), "/ready.txt");
  ASSERT_TRUE(served) << served.error().message;
  EXPECT_EQ(served->status, 200);
  EXPECT_EQ(served->body, "yes\n");
  EXPECT_EQ(up.stop(), 0);
  EXPECT_EQ(up.log().find("not ready after"), std::string::npos) << up.log();
}

// A bad file stops `prescale up` before it starts anything: exit 2, the file and line, the fix.
TEST(UpTest, BadFilesFailBeforeAnythingStarts) {
  TempDir dir;
  struct Case {
    std::string yaml;
    std::vector<std::string> flags;
    std::string expect;
  } cases[] = {
      {"version: 1\nservices:\n  - name: a\n    kind: builtin/nope\n", {},
       "bad.yaml:4:11: services[0].kind"},
      {"version: 1\nservices:\n  - name: a\n    kind: builtin/echo\n    replicas: {min: -1}\n",
       {}, "bad.yaml:5:21: services[0].replicas.min"},
      {"version: 1\nservices:\n  - name: a\n    kind: command\n    command: [no-such-program-x, "
       "\"{port}\"]\n",
       {}, "bad.yaml:3: services[0] (a).command: 'no-such-program-x' was not found in PATH"},
      {"version: 1\nservices:\n  - name: a\n    kind: command\n    command: [sleep, \"30\"]\n"
       "    replicas: {max: 2}\n",
       {}, "bad.yaml:3: services[0] (a).command: no \"{port}\" argument"},
      {"version: 1\ngateway:\n  listen: \"127.0.0.1:18555\"\n", {"--ui", "127.0.0.1:18555"},
       "both use port 18555"},
  };
  for (const Case& c : cases) {
    const std::string file = dir.file("bad.yaml");
    testing::write_file(file, c.yaml);
    const std::string state = dir.file("state");
    std::vector<std::string> argv = {PRESCALE_BIN, "up", "-f", file, "--state-dir", state};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    Subprocess up(argv, dir.file("bad.log"));
    EXPECT_EQ(up.wait(20s), 2) << c.yaml;
    const std::string log = up.log();
    EXPECT_NE(log.find(c.expect), std::string::npos) << "expected \"" << c.expect << "\" in:\n"
                                                     << log;
    EXPECT_FALSE(std::filesystem::exists(state)) << "nothing was started or written";
  }
}

// cli.md: --ready-wait is 0 to 3600 seconds. "nan", which the flag parser reads as a number,
// passed CLI11's range check (every comparison with NaN is false) and was turned into the ready
// deadline, a float-to-integer conversion without a value: refused, naming the flag, before
// anything starts.
TEST(UpTest, AReadyWaitThatIsNotANumberIsRefused) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  Subprocess up({PRESCALE_BIN, "up", "-f", config, "--state-dir", state, "--ui", "127.0.0.1:0",
                 "--ready-wait", "nan"},
                dir.file("up.log"));
  EXPECT_EQ(up.wait(20s), 2);
  EXPECT_NE(up.log().find("--ready-wait"), std::string::npos) << up.log();
  EXPECT_FALSE(std::filesystem::exists(state)) << "nothing was started or written";
}

// cli.md: --seed-scale multiplies the trace's req/s into the service's. A negative factor, or
// one that is not a finite number, seeded the learned history with negative or NaN demand and
// said it had seeded it: refused, naming the flag, before anything starts.
TEST(UpTest, ASeedScaleThatIsNegativeOrNotFiniteIsRefused) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string trace = dir.file("trace.csv");
  testing::write_file(trace, ramp_trace(2));
  int i = 0;
  for (const std::string scale : {"-1", "nan", "inf"}) {
    const std::string state = dir.file("state-" + std::to_string(i++));
    Subprocess up({PRESCALE_BIN, "up", "-f", config, "--state-dir", state, "--ui", "127.0.0.1:0",
                   "--seed-trace", trace, "--seed-service", "web", "--seed-until-days", "1",
                   "--seed-scale", scale},
                  dir.file("up.log"));
    EXPECT_EQ(up.wait(20s), 2) << scale;
    EXPECT_NE(up.log().find("--seed-scale"), std::string::npos) << up.log();
    EXPECT_FALSE(std::filesystem::exists(state)) << scale << ": nothing was started or written";
  }
}

// cli.md: a flag given a value it does not take is an error naming the flag, before anything
// runs. A seed the platform could not use (--seed-until-days past the trace's end or infinite, a
// --seed-trace that cannot be read, a seed for a policy without a demand history) was refused
// only once the state directory was made, the gateway and dashboard listened and the replicas
// were registered; an infinite --seed-until-days went through llround(inf). Refused first.
TEST(UpTest, AnUnusableSeedIsRefusedBeforeAnythingStarts) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string trace = dir.file("trace.csv");
  testing::write_file(trace, ramp_trace(2));
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{"--seed-trace", trace, "--seed-until-days", "5"}, "--seed-until-days 5"},
      {{"--seed-trace", trace, "--seed-until-days", "inf"}, "--seed-until-days"},
      {{"--seed-trace", dir.file("missing.csv"), "--seed-until-days", "1"}, "--seed-trace"},
      {{"--seed-trace", trace, "--seed-until-days", "1", "--policy", "hpa"},
       "--seed-trace seeds the prescale policy's history; the policy is hpa"},
      // Without a trace the other seed flags were ignored without a word.
      {{"--seed-until-days", "1"}, "--seed-service requires --seed-trace"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string state = dir.file("seed-state-" + std::to_string(i++));
    std::vector<std::string> argv = {PRESCALE_BIN,     "up",  "-f",   config,
                                     "--state-dir",    state, "--ui", "127.0.0.1:0",
                                     "--seed-service", "web"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Subprocess up(std::move(argv), dir.file("up.log"));
    EXPECT_EQ(up.wait(20s), 2) << c.want;
    EXPECT_NE(up.log().find(c.want), std::string::npos) << up.log();
    EXPECT_FALSE(std::filesystem::exists(state)) << c.want << ": nothing was started or written";
  }
}

// cli.md and local.md: the port files are written once every service has its initial replicas
// ready, or --ready-wait is over. --help said "once listening", which is when the gateway and
// dashboard bind, a wait earlier: a script following it would expect the file too soon.
TEST(UpTest, HelpSaysThePortFilesWaitForTheInitialReplicas) {
  TempDir dir;
  Subprocess help({PRESCALE_BIN, "up", "--help"}, dir.file("help.log"));
  EXPECT_EQ(help.wait(10s), 0);
  const std::string text = help.log();
  EXPECT_EQ(text.find("once listening"), std::string::npos) << text;
  EXPECT_NE(text.find("Write the gateway's port here once every service's initial replicas are"),
            std::string::npos)
      << text;
}

// cli.md: a bad flag exits 2 naming it. An unknown --policy was refused only once the state
// directory was made and the gateway listening, as "unknown policy ..." without the flag (and
// offering static and oracle, which prescale up refuses). Refused first, naming --policy.
TEST(UpTest, AnUnknownPolicyIsRefusedNamingTheFlagBeforeAnythingStarts) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  Subprocess up({PRESCALE_BIN, "up", "-f", config, "--state-dir", state, "--ui", "127.0.0.1:0",
                 "--policy", "fastest"},
                dir.file("up.log"));
  EXPECT_EQ(up.wait(20s), 2);
  const std::string log = up.log();
  EXPECT_NE(log.find("--policy fastest: unknown policy; known: prescale, hpa, kpa, aws"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("oracle"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(state)) << "nothing was started or written";
}

// local.md: a port file that cannot be written stops the command with exit status 1 and the file
// named (after its flag), rather than leaving whoever waits for it waiting. The file before it,
// written, is removed with the stop (cli.md): it would name the port of a platform that is gone.
TEST(UpTest, APortFileThatCannotBeWrittenStopsThePlatformNamingIt) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string gone = dir.file("gone/ui.port");
  Subprocess up({PRESCALE_BIN, "up", "-f", config, "--state-dir", dir.file("state"), "--ui",
                 "127.0.0.1:0", "--port-file", dir.file("gw.port"), "--ui-port-file", gone},
                dir.file("up.log"));
  EXPECT_EQ(up.wait(60s), 1);
  EXPECT_NE(up.log().find("prescale up: --ui-port-file: " + gone + ": "), std::string::npos)
      << up.log();
  EXPECT_FALSE(std::filesystem::exists(dir.file("gw.port")))
      << "stopped, it names a port: " << testing::read_file(dir.file("gw.port"));
}

// Stopping for a port file it cannot write (here a directory), the platform takes its replicas
// down as SIGINT does: each drains, is sent SIGTERM and exits by itself (before, they were
// killed with the platform, and neither the drain nor the stop was seen).
TEST(UpTest, APortFileThatCannotBeWrittenDrainsTheReplicas) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string port_file = dir.file("gw.port");
  std::filesystem::create_directories(port_file);
  Subprocess up({PRESCALE_BIN, "up", "-f", config, "--state-dir", dir.file("state"), "--ui",
                 "127.0.0.1:0", "--port-file", port_file},
                dir.file("up.log"));
  EXPECT_EQ(up.wait(60s), 1);
  const std::string log = up.log();
  EXPECT_NE(log.find("prescale up: --port-file: " + port_file + ": "), std::string::npos) << log;
  EXPECT_NE(log.find("drain web-1: "), std::string::npos) << log;
  EXPECT_NE(log.find("stop web-1: exited with status 0"), std::string::npos) << log;
}

// SIGHUP reloads the file, as it does `prescale gateway`, nginx or Prometheus; the platform goes
// on. Until 2026-12-01 it stopped the platform (SIGTERM's drain), and before that SIGHUP's
// default action killed it at once.
TEST(UpTest, ASighupReloadsTheFileAndStopsNothing) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  up.signal(SIGHUP);
  const std::string said =
      "reloaded " + config + " (SIGHUP): the gateway's settings applied; " + "no rolling update";
  EXPECT_TRUE(testing::wait_for([&] { return up.log().find(said) != std::string::npos; }, 10s))
      << up.log();
  EXPECT_EQ(up.stop(), 0);
  EXPECT_EQ(up.log().find("received SIGHUP"), std::string::npos) << up.log();
}

// A hangup from the kernel (the terminal the platform runs in closed) stops it, drained, as a
// closed terminal stops any program in it, unless SIGHUP was ignored when it started (nohup);
// `kill -HUP` reloads the file (ASighupReloadsTheFileAndStopsNothing). The terminal is a pty
// that python's pty module makes; closing its master side is what a closed terminal does.
TEST(UpTest, AClosedTerminalStopsThePlatformUnlessItRunsUnderNohup) {
  TempDir dir;
  testing::write_file(dir.file("interm.py"), R"(import os, pty, signal, sys, time
nohup = sys.argv[1] == "--nohup"
log, ready_file, argv = sys.argv[2], sys.argv[3], sys.argv[4:]
pid, master = pty.fork()
if pid == 0:  # the session leader, its controlling terminal the pty, its output in the log
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    if nohup:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.execv(argv[0], argv)
deadline = time.time() + 30
while not os.path.exists(ready_file) and time.time() < deadline:
    time.sleep(0.05)
os.close(master)  # the terminal closes: the kernel sends the session SIGHUP
deadline = time.time() + 60 if not nohup else time.time() + 3
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("exited", os.waitstatus_to_exitcode(status))
        sys.exit(0)
    time.sleep(0.05)
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
print("running")
)");
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  for (const std::string how : {"--terminal", "--nohup"}) {
    const std::string port_file = dir.file("gw" + how + ".port");
    Subprocess terminal(
        {"/usr/bin/env", "python3", dir.file("interm.py"), how, dir.file("up" + how + ".log"),
         port_file, PRESCALE_BIN, "up", "-f", config, "--state-dir", dir.file("state" + how),
         "--ui", "127.0.0.1:0", "--port-file", port_file},
        dir.file("terminal" + how + ".log"));
    ASSERT_EQ(terminal.wait(90s), 0) << terminal.log();
    const std::string log = testing::read_file(dir.file("up" + how + ".log"));
    if (how == "--terminal") {
      EXPECT_EQ(terminal.log(), "exited 0\n") << log;
      EXPECT_NE(log.find("received SIGHUP (the terminal closed), stopping"), std::string::npos)
          << log;
    } else {
      EXPECT_EQ(terminal.log(), "running\n") << "the hangup changed nothing\n" << log;
      EXPECT_NE(log.find("received SIGTERM, stopping"), std::string::npos) << log;
    }
    EXPECT_NE(log.find("stop web-1: exited with status 0"), std::string::npos) << log;
  }
}

// Two platforms on one state directory would share its replica logs, port files and history (a
// second one started by mistake, its gateway on another port): the second is refused, exit 1,
// naming the directory and the first one's pid, and the first serves on undisturbed. Before,
// both ran, and the second's replicas took the first's port files with them when they stopped.
TEST(UpTest, AStateDirectoryInUseIsRefused) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  Platform first(PRESCALE_BIN, dir, config, state, {}, "first");
  ASSERT_TRUE(first.started()) << first.log();
  Subprocess second({PRESCALE_BIN, "up", "-f", config, "--state-dir", state, "--ui", "127.0.0.1:0"},
                    dir.file("second.log"));
  const std::optional<int> status = second.wait(20s);
  if (!status) {
    second.signal(SIGINT);
    second.wait(60s);
  }
  EXPECT_EQ(status, 1) << second.log();
  EXPECT_NE(second.log().find("--state-dir " + state + " is in use by another prescale up (pid "),
            std::string::npos)
      << second.log();
  EXPECT_TRUE(std::filesystem::exists(state + "/run/web-1.port"));
  auto served = http_get(first.gateway_port(), "/echo");
  ASSERT_TRUE(served) << served.error().message;
  EXPECT_EQ(served->status, 200);
  EXPECT_EQ(first.stop(), 0);
}

// The state directory deleted while the platform runs (by hand, a cleaner of /tmp) took its lock
// file with it, and a second prescale up could take the directory meanwhile. The lock is made and
// taken again within a second, with a warning, and the second one is refused as before.
TEST(UpTest, AStateDirectoryDeletedWhileRunningIsLockedAgain) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  Platform first(PRESCALE_BIN, dir, config, state, {}, "first");
  ASSERT_TRUE(first.started()) << first.log();
  std::filesystem::remove_all(state);
  const std::string said =
      state + "/lock was removed while the platform ran; made and locked again";
  EXPECT_TRUE(testing::wait_for([&] { return first.log().find(said) != std::string::npos; }, 10s))
      << first.log();
  Subprocess second({PRESCALE_BIN, "up", "-f", config, "--state-dir", state, "--ui", "127.0.0.1:0"},
                    dir.file("second.log"));
  const std::optional<int> status = second.wait(20s);
  if (!status) {
    second.signal(SIGINT);
    second.wait(60s);
  }
  EXPECT_EQ(status, 1) << second.log();
  EXPECT_NE(second.log().find("is in use by another prescale up (pid "), std::string::npos)
      << second.log();
  EXPECT_EQ(first.stop(), 0);
}

// A lock file that cannot be opened (here a directory) is named with why, as the logs/ and run/
// directories are; it said only "cannot open .../lock".
TEST(UpTest, ALockFileThatCannotBeOpenedIsNamedWithWhy) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  std::filesystem::create_directories(state + "/lock");
  Subprocess up({PRESCALE_BIN, "up", "-f", config, "--state-dir", state, "--ui", "127.0.0.1:0"},
                dir.file("up.log"));
  EXPECT_EQ(up.wait(60s), 2) << up.log();
  EXPECT_NE(up.log().find("cannot open " + state + "/lock: Is a directory"), std::string::npos)
      << up.log();
}

// A history deleted while the platform runs (the state directory removed by hand or by a cleaner
// of /tmp) is written again from what the platform holds in memory at its next save, with a
// warning naming the file, so the next start restores it. Before, the saves went on into the
// deleted file, silently, and everything learned was lost at exit.
TEST(UpTest, AHistoryDeletedWhileRunningIsWrittenAgain) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  {
    Platform first(PRESCALE_BIN, dir, config, state, {}, "first");
    ASSERT_TRUE(first.started()) << first.log();
    for (const char* name : {"history.db", "history.db-wal", "history.db-shm"}) {
      std::filesystem::remove(state + "/" + name);
    }
    EXPECT_EQ(first.stop(), 0);
    EXPECT_NE(first.log().find(state + "/history.db was removed while the platform ran"),
              std::string::npos)
        << first.log();
  }
  ASSERT_TRUE(std::filesystem::exists(state + "/history.db"));
  Platform second(PRESCALE_BIN, dir, config, state, {}, "second");
  ASSERT_TRUE(second.started()) << second.log();
  EXPECT_EQ(second.stop(), 0);
  EXPECT_NE(second.log().find("restored the learned history"), std::string::npos) << second.log();
}

// What the platform told goes on across a restart (docs/state.md), whatever the policy: the
// dashboard's timeline — the first run's drain included —, its charts, and the incidents and
// warnings.
TEST(UpTest, ARestartKeepsTheTimelineAndChartsWithAnyPolicy) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  auto count = [](const json& events, const std::string& kind) {
    int n = 0;
    if (!events.is_object()) return n;
    for (const auto& e : events["events"]) n += e["kind"] == kind ? 1 : 0;
    return n;
  };
  int ready = 0;
  json charted;  // the first run's chart times
  {
    Platform first(PRESCALE_BIN, dir, config, state, {"--policy", "hpa"}, "first");
    ASSERT_TRUE(first.started()) << first.log();
    ready = count(first.events(), "ready");
    ASSERT_GE(ready, 1) << first.events().dump();
    // Two observations make the first point (5 s apart here).
    EXPECT_TRUE(
        testing::wait_for([&] { return !first.service("web")["series"]["t"].empty(); }, 30s))
        << first.log();
    charted = first.service("web")["series"]["t"];
    EXPECT_EQ(first.stop(), 0) << first.log();
  }
  Platform second(PRESCALE_BIN, dir, config, state, {}, "second");
  ASSERT_TRUE(second.started()) << second.log();
  const json series = second.service("web")["series"];
  ASSERT_GE(series["t"].size(), charted.size()) << series.dump();
  EXPECT_EQ(series["t"][0], charted[0]) << "the first run's points, before this one's";
  EXPECT_EQ(series["ready_replicas"][0], 1) << series.dump();
  const json events = second.events();
  EXPECT_GE(count(events, "ready"), 2 * ready) << events.dump();
  EXPECT_GE(count(events, "stop"), 1) << "the first run's drain: " << events.dump();
  EXPECT_EQ(second.stop(), 0);
  EXPECT_NE(second.log().find("restored the incidents and slowdown warnings"), std::string::npos)
      << second.log();
}

// A hung replica (stopped, not dead) stays ready to the supervisor, which sees only exits, while
// the gateway's health checks take it out of service: the operator is told which replica, in the
// log and on the dashboard, and again when it is back. Before, nothing said so: the dashboard
// showed it ready, and the log was silent.
TEST(UpTest, AHungReplicaIsNamedWhenItFailsItsHealthChecksAndWhenItIsBack) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("{min: 1, max: 6, initial: 1}"), 28, "{min: 2, max: 2, initial: 2}");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  const std::vector<int> pids = replica_pids(up.events());
  ASSERT_EQ(pids.size(), 2u);
  const std::string hung = replica_with_pid(up.events(), pids[0]);
  ASSERT_FALSE(hung.empty());
  auto told = [&](const std::string& kind) {
    const json events = up.events();
    if (!events.is_object()) return false;
    return std::any_of(events["events"].begin(), events["events"].end(), [&](const json& e) {
      return e.value("kind", "") == kind && e.value("replica", "") == hung;
    });
  };
  ASSERT_EQ(::kill(pids[0], SIGSTOP), 0);
  const bool out = testing::wait_for([&] { return told("unhealthy"); }, 20s);
  ASSERT_EQ(::kill(pids[0], SIGCONT), 0);
  EXPECT_TRUE(out) << up.events().dump();
  EXPECT_TRUE(testing::wait_for([&] { return told("healthy"); }, 20s)) << up.events().dump();
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("unhealthy " + hung + ": fails its health checks (GET /readyz): out of "
                          "service"),
            std::string::npos)
      << up.log();
  EXPECT_NE(up.log().find("healthy " + hung + ": back in service"), std::string::npos) << up.log();
}

// A replica that stays hung is restarted: its liveness checks (services[].liveness, a Kubernetes
// liveness probe) go unanswered, the supervisor kills it and starts it again, saying why. Before,
// it was taken out of service by the gateway and named, but stayed there for ever, holding its
// place among the replicas the policy asked for.
TEST(UpTest, AReplicaThatStaysHungIsKilledAndRestarted) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("{min: 1, max: 6, initial: 1}"), 28, "{min: 2, max: 2, initial: 2}");
  yaml.replace(yaml.find("    startup_time: 1s\n"), 0,
               "    liveness: {interval: 1s, timeout: 500ms, failure_threshold: 2}\n");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  const std::vector<int> pids = replica_pids(up.events());
  ASSERT_EQ(pids.size(), 2u);
  const std::string hung = replica_with_pid(up.events(), pids[0]);
  ASSERT_FALSE(hung.empty());
  ASSERT_EQ(::kill(pids[0], SIGSTOP), 0);
  // The replica of the first event of `kind` whose message holds `text`; "" when none.
  auto replica_of = [&](const std::string& kind, const std::string& text) {
    const json events = up.events();
    if (!events.is_object()) return std::string();
    for (const auto& e : events["events"]) {
      const std::string message = e.value("message", "");
      if (e.value("kind", "") == kind && message.find(text) != std::string::npos) {
        return e.value("replica", "");
      }
    }
    return std::string();
  };
  EXPECT_TRUE(testing::wait_for([&] { return !replica_of("crash", "not alive").empty(); }, 20s))
      << up.events().dump();
  EXPECT_EQ(replica_of("crash", "not alive"), hung) << "the stopped replica, not the other";
  EXPECT_TRUE(testing::wait_for([&] { return ::kill(pids[0], 0) != 0; }, 10s))
      << "the hung process is gone";
  // Restarted after the first back-off (10 s), as any crashed replica.
  EXPECT_TRUE(testing::wait_for([&] { return replica_of("restart", "pid") == hung; }, 30s))
      << up.events().dump();
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("not alive: GET /healthz got no answer within 500 ms, 2 checks in a row "
                          "(services[].liveness); killed"),
            std::string::npos)
      << up.log();
}

// Whether the platform's timeline has an event of `kind` naming `replica`.
bool happened(const Platform& up, const std::string& kind, const std::string& replica) {
  const json events = up.events();
  if (!events.is_object()) return false;
  return std::any_of(events["events"].begin(), events["events"].end(), [&](const json& e) {
    return e.value("kind", "") == kind && e.value("replica", "") == replica;
  });
}

// Two replicas of web under the HPA, a healer that replaces at 2 ejections: web-1 answers its
// health paths and fails everything else (testing::write_broken_server), the others are echo
// servers. `gateway` is the gateway's settings besides its listen address and route (no
// retries). Returns the file's path.
std::string broken_web_yaml(const TempDir& dir, const std::string& gateway) {
  testing::write_broken_server(dir);
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, std::string(R"(version: 1
policy: {name: hpa}
healer: {ejections: 2, window: 5m, min_interval: 1s}
services:
  - name: web
    kind: command
    command: [sh, -c, 'if [ "$PRESCALE_REPLICA" = web-1 ]; then exec python3 )") +
                                  dir.file("broken.py") + R"( "$0"; else exec )" + PRESCALE_BIN +
                                  R"( serve echo --port "$0" --threads 1; fi', "{port}"]
    replicas: {min: 2, max: 2, initial: 2}
    startup_time: 1s
gateway:
  listen: "127.0.0.1:0"
)" + gateway + R"(
  routes:
    - match: {path_prefix: /}
      service: web
      retries: {num_retries: 0}
)");
  return config;
}

// The healer (docs/healing.md): a replica the gateway keeps ejecting, its service's other replica
// not, is replaced — a new replica starts, the broken one drains — with a
// warning and a "heal" event naming it. Before, it was ejected and tried again for ever, failing
// requests each time it was back.
TEST(UpTest, AReplicaThatKeepsFailingIsReplaced) {
  TempDir dir;
  const std::string config = broken_web_yaml(
      dir,
      "  outlier_detection: {consecutive_5xx: 2, interval: 1s, base_ejection_time: 1s,\n"
      "                      max_ejection_percent: 50}");
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  // Requests until the healer has acted: web-1 fails its share and is ejected each time it is back.
  EXPECT_TRUE(testing::wait_for(
      [&] {
        for (int i = 0; i < 10; ++i) (void)http_get(up.gateway_port(), "/echo", 2s);
        return happened(up, "heal", "web-1");
      },
      60s))
      << up.log();
  // Its replacement (web-3) is ready and web-1 has stopped.
  EXPECT_TRUE(testing::wait_for(
      [&] { return happened(up, "ready", "web-3") && happened(up, "stop", "web-1"); }, 30s))
      << up.events().dump();
  int failed = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = http_get(up.gateway_port(), "/echo", 2s);
    failed += r && r->status == 200 ? 0 : 1;
  }
  EXPECT_EQ(failed, 0) << "every replica serves";
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("heal web-1: ejected 2 times in 5 min by the gateway, its service's "
                          "other replicas not: replaced (a new replica starts; this one drains)"),
            std::string::npos)
      << up.log();
}

// The same when only the gateway's failure-rate breaker takes the replica out (outlier detection
// that would need 1000 failures in a row): an opening is an ejection to the healer, one per 30 s
// per replica at most, so the second counts after 30 s.
TEST(UpTest, AReplicaWhoseBreakerKeepsOpeningIsReplaced) {
  TempDir dir;
  const std::string config =
      broken_web_yaml(dir,
                      "  outlier_detection: {consecutive_5xx: 1000}\n"
                      "  circuit_breakers: {minimum_requests: 4, window: 2s, open_duration: 1s}");
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  EXPECT_TRUE(testing::wait_for(
      [&] {
        for (int i = 0; i < 10; ++i) (void)http_get(up.gateway_port(), "/echo", 2s);
        return happened(up, "heal", "web-1");
      },
      90s))
      << up.log();
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("eject web-1: its requests failed too often: the gateway's circuit "
                          "breaker opened: out of service"),
            std::string::npos)
      << up.log();
  EXPECT_EQ(up.log().find("ejected by the gateway's outlier detection"), std::string::npos)
      << up.log();
}

// A memory limit (services[].memory_limit) with the healer: a replica that leaks (serve echo's
// GET /leak) is replaced before its limit would kill it, the new one started while the old one
// still serves, so no request fails. In Kubernetes it would be OOMKilled: every request it held
// failed, and the service down until it restarts.
TEST(UpTest, AReplicaLeakingMemoryIsReplacedBeforeItsLimitKillsIt) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, R"(version: 1
policy: {name: hpa}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 1, max: 1, initial: 1}
    memory_limit: 112Mi
gateway:
  listen: "127.0.0.1:0"
  routes:
    - match: {path_prefix: /}
      service: web
)");
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  // 40 req/s of 64 KiB: 2.5 MiB/s from about 5 MiB (its proportional set size), 112 Mi some 43 s
  // in: within the run, which a replica left alone would not outlive. The trend needs 30 s of
  // samples, past half the limit; the replica is replaced about 10 s (the lead: twice its
  // startup, and 10 s) before its limit, some 33 s in.
  Subprocess load =
      load_against(up, dir, {"--rate", "40", "--duration", "48s", "--mix", "GET /leak/64:1"});
  ASSERT_EQ(load.wait(120s), 0) << load.log();  // a bound on a hang
  const json report = load_report(dir);
  const json events = up.events();
  // The dashboard shows the limit and the replica's memory (a point each observation, 15 s apart
  // under the HPA: at least one of them taken while the memory grew, past 20 MiB).
  const json web = up.service("web");
  EXPECT_EQ(web["memory_limit_mib"], 112.0);
  const json memory = web["series"]["memory_mib"];
  ASSERT_FALSE(memory.empty()) << web.dump();
  double most = 0;
  for (const json& m : memory) most = m.is_number() ? std::max(most, m.get<double>()) : most;
  EXPECT_GT(most, 20) << memory.dump();
  EXPECT_LT(most, 112) << memory.dump();
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  EXPECT_EQ(report["requests"]["ok"], report["requests"]["scheduled"]) << report.dump() << "\n"
                                                                       << log;
  std::set<std::string> healed;
  std::map<int, std::string> recorded;  // by id, the order they happened in: "ready web-2"
  for (const json& e : events["events"]) {
    const std::string kind = e.value("kind", ""), message = e.value("message", "");
    recorded[e.value("id", 0)] = kind + " " + e.value("replica", "");
    if (kind == "heal") {
      EXPECT_NE(message.find(" limit, growing "), std::string::npos) << message;
      EXPECT_NE(message.find(": replaced before it is killed"), std::string::npos) << message;
      healed.insert(e.value("replica", ""));
    }
    EXPECT_NE(kind, "crash") << message;
  }
  EXPECT_EQ(healed, std::set<std::string>{"web-1"}) << events.dump();
  // The replacement was ready before the old replica left the gateway.
  std::vector<std::string> order;
  for (const auto& [id, what] : recorded) order.push_back(what);
  const auto ready = std::find(order.begin(), order.end(), "ready web-2");
  const auto drain = std::find(order.begin(), order.end(), "drain web-1");
  EXPECT_TRUE(ready < drain && drain != order.end()) << events.dump();
  EXPECT_EQ(log.find("over its memory limit"), std::string::npos) << log;
}

// A crash is a warning that says why, as the wait for the initial replicas does: the replica's
// exit, when it restarts and the last line of its log. Before, it was an info line without the
// log, which a look for warnings missed and which sent the operator to find the file.
TEST(UpTest, ACrashIsAWarningEndingWithTheReplicasLog) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("gateway:"), 0,
               "  - name: broken\n"
               "    kind: command\n"
               "    command: [sh, -c, 'echo \"no database at db:5432\" >&2; exit 3', \"{port}\"]\n"
               "    replicas: {min: 1, max: 1, initial: 1}\n");
  testing::write_file(config, yaml);
  const std::string state = dir.file("state");
  Platform up(PRESCALE_BIN, dir, config, state, {"--ready-wait", "1"}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  EXPECT_TRUE(testing::wait_for(
      [&] { return up.log().find("crash broken-1") != std::string::npos; }, 10s));
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("warning crash broken-1: exited with status 3; restarting in 10 s; its "
                          "log " +
                          state + "/logs/broken-1.log ends \"no database at db:5432\""),
            std::string::npos)
      << up.log();
}

// The port files say the platform is up: one left by an earlier run (stopped, or killed) is
// removed as the platform starts, so whoever waits for the file does not take the old port
// while the replicas are still starting, and again when it stops. Before, the old file stood
// until the new port replaced it, and stayed after a stop.
TEST(UpTest, AnOldPortFileIsRemovedUntilThePlatformIsUpAndAfterItStops) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("gateway:"), 0,
               "  - name: slow\n"
               "    kind: command\n"
               "    command: [sh, -c, 'exec sleep 60', \"{port}\"]\n"
               "    replicas: {min: 1, max: 1, initial: 1}\n");
  testing::write_file(config, yaml);
  const std::string port_file = dir.file("gw.port");
  testing::write_file(port_file, "1\n");
  Subprocess up({PRESCALE_BIN, "up", "-f", config, "--state-dir", dir.file("state"), "--ui",
                 "127.0.0.1:0", "--port-file", port_file, "--ready-wait", "5"},
                dir.file("up.log"));
  // Gone for the 5 s of the wait for slow's replica (however long the start itself takes).
  EXPECT_TRUE(testing::wait_for([&] { return !std::filesystem::exists(port_file); }, 20s))
      << "the old port, while slow is still starting: " << testing::read_file(port_file);
  ASSERT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 20s))
      << up.log();
  EXPECT_NE(testing::read_file(port_file), "1\n");
  up.signal(SIGINT);
  EXPECT_EQ(up.wait(60s), 0) << up.log();
  EXPECT_FALSE(std::filesystem::exists(port_file)) << "stopped, it no longer says a port";
}

// A state saved with a service the file no longer has (renamed, removed) restores the others;
// that service's learned state is named in a warning, since the next save forgets it. Before,
// it was dropped without a word, and "restored the learned history" read as if all of it was.
TEST(UpTest, TheStateOfAServiceNoLongerInTheFileIsNamed) {
  TempDir dir;
  const std::string trace = dir.file("ramp.csv");
  testing::write_file(trace, ramp_trace(2));
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string state = dir.file("state");
  {
    Platform first(PRESCALE_BIN, dir, config, state,
                   {"--seed-trace", trace, "--seed-service", "web", "--seed-until-days", "1.5"},
                   "first");
    ASSERT_TRUE(first.started()) << first.log();
    ASSERT_EQ(first.stop(), 0);
  }
  std::string renamed = echo_yaml("5s");
  for (size_t at; (at = renamed.find(": web")) != std::string::npos;) {
    renamed.replace(at, 5, ": shop");
  }
  testing::write_file(config, renamed);
  Platform second(PRESCALE_BIN, dir, config, state, {}, "second");
  ASSERT_TRUE(second.started()) << second.log();
  EXPECT_EQ(second.stop(), 0);
  EXPECT_NE(second.log().find("learned state of web in " + state +
                              " not restored: " + config + " has no such service"),
            std::string::npos)
      << second.log();
}

// A second Ctrl-C while the replicas drain stops the wait: what still runs is killed at once and
// the platform exits 1 (its state saved by the first), saying so. Before, further signals were
// ignored while a slow request kept its replica draining (up to 45 s), without a word.
TEST(UpTest, ASecondSignalDuringTheDrainKillsTheReplicasAtOnce) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("      per_try_timeout: 1s\n"), 26, "      timeout: 60s\n");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  std::thread slow([&] { (void)http_get(up.gateway_port(), "/delay/30000", 60s); });
  // In flight at the gateway (its gauge), not after a guess at how long that takes.
  const bool in_flight = testing::wait_for(
      [&] {
        auto r = http_get(up.ui_port(), "/metrics", 5s);
        return r && r->body.find("prescale_inflight_requests{service=\"gateway\"} 1") !=
                        std::string::npos;
      },
      20s);
  if (!in_flight) {
    up.stop();  // which ends the request
    slow.join();
    FAIL() << "the slow request never reached the gateway\n" << up.log();
  }
  const std::vector<int> pids = replica_pids(up.events());
  up.signal(SIGINT);
  ASSERT_TRUE(testing::wait_for(
      [&] { return up.log().find("received SIGINT, stopping") != std::string::npos; }, 5s));
  std::this_thread::sleep_for(500ms);
  up.signal(SIGINT);
  const auto start = std::chrono::steady_clock::now();
  const std::optional<int> status = up.stop();
  slow.join();
  EXPECT_EQ(status, 1) << up.log();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_NE(up.log().find("received SIGINT again: not waiting for the drain"), std::string::npos)
      << up.log();
  for (int pid : pids) EXPECT_FALSE(testing::process_alive(pid)) << "replica " << pid;
}

// An edit that `prescale up` cannot apply while running (what the policy was made from) is
// refused, naming the fields, once per content, and nothing changes: neither the new concurrency
// nor the rest of that file.
TEST(UpTest, AnEditNeedingARestartIsRefusedAndChangesNothing) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  std::string edited = echo_yaml("5s");
  edited.replace(edited.find("concurrency: 1"), 14, "concurrency: 2");
  edited.replace(edited.find("    startup_time"), 0, "    env: {VERSION: \"2\"}\n");
  testing::save_file(config, edited);
  const std::string said =
      "reload (the file changed) refused, keeping the running "
      "configuration: " +
      config + ": services[0] (web).concurrency changed; ";
  EXPECT_TRUE(testing::wait_for([&] { return up.log().find(said) != std::string::npos; }, 20s))
      << up.log();
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  EXPECT_EQ(times_in(log, said), 1u) << log;
  EXPECT_EQ(log.find("start web-2"), std::string::npos) << "the env change was not rolled out";
}

// New replica bounds apply while the platform runs, as `kubectl edit hpa` would: a raised min
// starts replicas at once, a lowered max drains the excess, each a scaling event with its reason,
// and the dashboard shows the new bounds. Nothing restarts.
TEST(UpTest, NewReplicaBoundsApplyWithoutARestart) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  auto with_bounds = [](const std::string& bounds) {
    std::string yaml = echo_yaml("5s");
    const std::string from = "{min: 1, max: 6, initial: 1}";
    yaml.replace(yaml.find(from), from.size(), bounds);
    return yaml;
  };
  testing::write_file(config, with_bounds("{min: 1, max: 6, initial: 1}"));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  // A scaling event from -> to, with its reason; "" when there is none.
  auto scaled = [&](int from, int to) -> std::string {
    const json events = up.events();  // kept: the loop reads into it
    if (!events.contains("events")) return "";
    for (const auto& e : events["events"]) {
      if (e.value("kind", "") != "scale") continue;
      const std::string message = e.value("message", "");
      if (message.starts_with(std::to_string(from) + " -> " + std::to_string(to))) return message;
    }
    return "";
  };

  // With a new capacity seed: the policy sizes by it from the same decision (nothing is learned
  // without load).
  std::string raised = with_bounds("{min: 3, max: 6, initial: 3}");
  raised.replace(raised.find("capacity_rps: 50"), 16, "capacity_rps: 40");
  testing::save_file(config, raised);
  EXPECT_TRUE(
      testing::wait_for([&] { return up.log().find("ready web-3") != std::string::npos; }, 20s))
      << up.log();
  EXPECT_NE(up.log().find("reloaded " + config +
                          " (the file changed): the gateway's settings applied; web's replicas "
                          "within [3, 6] (were [1, 6]), capacity_rps 40 (was 50); no rolling "
                          "update"),
            std::string::npos)
      << up.log();
  EXPECT_TRUE(testing::wait_for([&] { return !scaled(1, 3).empty(); }, 10s)) << up.log();
  EXPECT_NE(scaled(1, 3).find("raised to min 3"), std::string::npos) << up.events().dump();
  EXPECT_NE(scaled(1, 3).find(" / 40.0 rps per replica"), std::string::npos) << up.events().dump();

  testing::save_file(config, with_bounds("{min: 1, max: 2, initial: 1}"));
  EXPECT_TRUE(testing::wait_for([&] { return !scaled(3, 2).empty(); }, 10s)) << up.log();
  EXPECT_NE(scaled(3, 2).find("capped at max 2"), std::string::npos) << up.events().dump();
  const json web = up.service("web");
  EXPECT_EQ(web.value("min_replicas", -1), 1) << web.dump();
  EXPECT_EQ(web.value("max_replicas", -1), 2) << web.dump();
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  EXPECT_EQ(log.find("start web-4"), std::string::npos) << log;
  EXPECT_EQ(log.find("refused"), std::string::npos) << log;
}

// A new SLO and capacity seed apply while the platform runs, as a new target on a live HPA
// would: the gateway's admission limit follows the new queue limit (half the new SLO) at the new
// seed, the dashboard shows the SLO, and nothing restarts.
TEST(UpTest, ANewSloAndCapacitySeedApplyWithoutARestart) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, one_replica_yaml("capacity_rps: 10\n    concurrency: 1"));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  auto admission_limit = [&] { return web_admission_limit(up); };
  EXPECT_EQ(admission_limit(), 2);  // 1 + ceil(10 req/s × 50 ms)

  std::string yaml = one_replica_yaml("capacity_rps: 20\n    concurrency: 1");
  const std::string from = "latency_p99_ms: 100";
  yaml.replace(yaml.find(from), from.size(), "latency_p99_ms: 400");
  testing::save_file(config, yaml);
  const std::string said = "reloaded " + config +
                           " (the file changed): the gateway's settings applied; web's "
                           "slo.latency_p99_ms 400 (was 100), capacity_rps 20 (was 10), "
                           "queue_limit 200 ms (was 50 ms); no rolling update";
  EXPECT_TRUE(testing::wait_for([&] { return up.log().find(said) != std::string::npos; }, 20s))
      << up.log();
  EXPECT_EQ(admission_limit(), 5);  // 1 + ceil(20 req/s × 200 ms)
  EXPECT_TRUE(
      testing::wait_for([&] { return up.service("web").value("slo_p99_ms", 0.0) == 400; }, 10s))
      << up.service("web").dump();
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  EXPECT_EQ(log.find("refused"), std::string::npos) << log;
  EXPECT_EQ(log.find("start web-2"), std::string::npos) << log;
}

// A changed service rolls out under load with no failed request, though the route retries
// nothing: each old replica serves until its replacement has been ready 10 s. A revision whose
// replicas crash is rolled back, the old replicas serving throughout.
TEST(UpTest, AChangedServiceRollsOutAndABrokenOneRollsBackWithNoFailedRequest) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  auto yaml = [](const std::string& how) {
    return "version: 1\npolicy: {name: hpa}\nservices:\n  - name: web\n" + how +
           "    replicas: {min: 2, max: 2, initial: 2}\n"
           "gateway:\n  listen: \"127.0.0.1:0\"\n  routes:\n"
           "    - match: {path_prefix: /}\n      service: web\n      retries: 0\n";
  };
  testing::write_file(config, yaml("    kind: builtin/echo\n"));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  Subprocess load = load_against(
      up, dir, {"--rate", "100", "--duration", "45s", "--mix", "GET /busy/5:1", "--seed", "1"});
  std::this_thread::sleep_for(3s);
  testing::write_file(config, yaml("    kind: builtin/echo\n    env: {VERSION: \"2\"}\n"));
  EXPECT_TRUE(testing::wait_for(
      [&] {
        return up.log().find("rolled-out web: revision 2: every replica updated") !=
               std::string::npos;
      },
      40s))
      << up.log();
  testing::write_file(config,
                      yaml("    kind: command\n    command: [sh, -c, \"exit 3\", \"{port}\"]\n"));
  EXPECT_TRUE(testing::wait_for(
      [&] {
        return up.log().find("rollback web: revision 3 failed: its replicas crashed 2 times") !=
               std::string::npos;
      },
      30s))
      << up.log();
  ASSERT_EQ(load.wait(90s), 0) << load.log();
  // The controller's /metrics: the rollouts by result, the revision, the replicas' memory.
  auto metrics = http_get(up.ui_port(), "/metrics");
  ASSERT_TRUE(metrics) << metrics.error().message;
  for (const char* line : {"prescale_rollouts_total{service=\"web\",result=\"rolled_out\"} 1\n",
                           "prescale_rollouts_total{service=\"web\",result=\"rolled_back\"} 1\n",
                           "prescale_service_revision{service=\"web\"} 2\n",
                           "prescale_replica_memory_bytes{service=\"web\",replica=\"web-3\"} "}) {
    EXPECT_NE(metrics->body.find(line), std::string::npos) << line << metrics->body;
  }
  const json report = load_report(dir);
  std::printf("load: %s\n", report["requests"].dump().c_str());
  EXPECT_GT(report["requests"]["completed"].get<int>(), 2500);
  EXPECT_EQ(report["requests"]["ok"], report["requests"]["scheduled"])
      << report["status"].dump() << "\n"
      << up.log();
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  for (const char* started : {"start web-3", "start web-4"}) {
    EXPECT_NE(log.find(started), std::string::npos) << log;
  }
  EXPECT_NE(log.find("reloaded " + config +
                     " (the file changed): the gateway's settings "
                     "applied; rolling update of web"),
            std::string::npos)
      << log;
}

// An edit made while the platform starts (its replicas not ready yet) is applied once it has:
// the file is read for the comparison before it is loaded. Before, the text read after the
// start was the baseline, and the edit was never applied.
TEST(UpTest, AnEditMadeWhileThePlatformStartsIsApplied) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  auto yaml = [](const std::string& env) {
    return std::string(
               "version: 1\npolicy: {name: hpa}\nservices:\n  - name: web\n"
               "    kind: command\n    command: [sh, -c, \"sleep 2; exec ") +
           PRESCALE_BIN + " serve echo --port $0 --threads 1\", \"{port}\"]\n" + env +
           "gateway:\n  listen: \"127.0.0.1:0\"\n";
  };
  testing::write_file(config, yaml(""));
  std::thread editor([&] {
    // Once the platform has read its file and started the replica (which sleeps 2 s before it
    // listens): a fixed wait could come before the platform had read the file at all.
    testing::wait_for(
        [&] {
          return testing::read_file(dir.file("up.log")).find("start web-1") != std::string::npos;
        },
        20s);
    testing::save_file(config, yaml("    env: {VERSION: \"2\"}\n"));
  });
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  editor.join();
  ASSERT_TRUE(up.started()) << up.log();
  EXPECT_TRUE(testing::wait_for(
      [&] {
        return up.log().find("reloaded " + config +
                             " (the file changed): the gateway's settings applied; rolling "
                             "update of web") != std::string::npos;
      },
      20s))
      << up.log();
  EXPECT_EQ(up.stop(), 0);
}

// A rebuilt program (the same command, a new file) is rolled out at a SIGHUP, as
// `kubectl rollout restart` would; an unchanged one is not.
TEST(UpTest, ASighupAfterARebuildRollsTheProgramOut) {
  TempDir dir;
  const std::string program = dir.file("svc");
  auto build = [&](const std::string& version) {
    std::filesystem::remove(program);
    testing::write_file(program, "#!/bin/sh\n# " + version + "\nexec " + PRESCALE_BIN +
                                     " serve echo --port \"$1\" --threads 1\n");
    std::filesystem::permissions(program, std::filesystem::perms::owner_all);
  };
  build("1");
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config,
                      "version: 1\npolicy: {name: hpa}\nservices:\n  - name: web\n"
                      "    kind: command\n    command: [" +
                          program +
                          ", \"{port}\"]\n"
                          "gateway:\n  listen: \"127.0.0.1:0\"\n");
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  up.signal(SIGHUP);
  ASSERT_TRUE(testing::wait_for(
      [&] { return up.log().find("no rolling update") != std::string::npos; }, 10s))
      << up.log();
  build("2");
  up.signal(SIGHUP);
  EXPECT_TRUE(
      testing::wait_for([&] { return up.log().find("ready web-2") != std::string::npos; }, 20s))
      << up.log();
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("(SIGHUP): the gateway's settings applied; rolling update of web"),
            std::string::npos)
      << up.log();
}

// A release rolled out under load: two replicas of `web`, `prescale serve echo` at first, under
// `rate` requests a second of `GET /echo` for `duration`; 2 s in, the file is edited so that web
// runs `release` (its command, a flow list). Waits up to `within` for `rollback` in the log, then
// for the load, which must have had every request answered, and stops the platform; returns its
// log. `gateway` is added to the gateway's section, `route` to its one route's.
std::string roll_out_under_load(const TempDir& dir, const std::string& gateway,
                                const std::string& route, const std::string& release,
                                const std::string& rate, const std::string& duration,
                                const std::string& rollback, std::chrono::seconds within) {
  const std::string config = dir.file("prescale.yaml");
  auto yaml = [&](const std::string& command) {
    return "version: 1\npolicy: {name: hpa}\nservices:\n  - name: web\n    kind: command\n"
           "    command: " +
           command +
           "\n    replicas: {min: 2, max: 2, initial: 2}\n"
           "gateway:\n  listen: \"127.0.0.1:0\"\n" +
           gateway + "  routes:\n    - match: {path_prefix: /}\n      service: web\n" + route;
  };
  testing::write_file(config, yaml(std::string("[") + PRESCALE_BIN +
                                   ", serve, echo, --port, \"{port}\", --threads, \"1\"]"));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  EXPECT_TRUE(up.started()) << up.log();
  if (!up.started()) return up.log();
  Subprocess load = load_against(
      up, dir, {"--rate", rate, "--duration", duration, "--mix", "GET /echo:1", "--seed", "1"});
  std::this_thread::sleep_for(2s);
  testing::write_file(config, yaml(release));
  EXPECT_TRUE(
      testing::wait_for([&] { return up.log().find(rollback) != std::string::npos; }, within))
      << up.log();
  EXPECT_EQ(load.wait(90s), 0) << load.log();
  const json report = load_report(dir);
  std::printf("load: %s\n", report["requests"].dump().c_str());
  EXPECT_EQ(report["requests"]["ok"], report["requests"]["scheduled"])
      << report["status"].dump() << "\n"
      << up.log();
  EXPECT_EQ(up.stop(), 0);
  return up.log();
}

// A revision that gets ready and then answers errors is rolled back once the gateway ejects one of
// its replicas: each old replica waits for its replacement to have been ready 10 s, so the old
// ones are still there, and the gateway's retries (on 5xx here) leave no request failed. The
// retry budget is raised so that it never binds: under the default (3 retries at once) one
// request of 1,911 got its 500 in a loaded run, the likeliest cause the budget refusing its retry
// while the broken replica's single-threaded server answered a burst of errors.
TEST(UpTest, ARevisionThatAnswersErrorsIsRolledBackWhenTheGatewayEjectsIt) {
  TempDir dir;
  testing::write_broken_server(dir);
  const std::string log = roll_out_under_load(
      dir,
      "  outlier_detection: {consecutive_5xx: 3, interval: 1s, base_ejection_time: 30s}\n"
      "  retry_budget: {min_retry_concurrency: 50}\n",
      "      retries: {num_retries: 2, retry_on: [5xx]}\n",
      "[python3, " + dir.file("broken.py") + ", \"{port}\"]", "100", "20s",
      "rollback web: revision 2 failed: web-3 was ejected by the gateway's outlier detection", 20s);
  EXPECT_EQ(log.find("drain web-1"), log.rfind("drain web-1")) << log;
  EXPECT_NE(log.find("stop web-1: exited with status 0"), std::string::npos) << log;
  EXPECT_LT(log.find("stop web-3"), log.find("stop web-1"))
      << "web-1 served on after the rollback\n"
      << log;
  EXPECT_EQ(log.find("start web-4"), std::string::npos) << "nothing more of revision 2 started";
}

// A release that answers, but more slowly than the one it replaces: the rollout analysis compares
// the new revision's attempts with the old one's while both serve, and rolls it back. Neither
// crashes nor outlier detection would have seen it: every answer is a 200.
TEST(UpTest, ARevisionThatAnswersMoreSlowlyIsRolledBackByTheRolloutAnalysis) {
  TempDir dir;
  testing::write_file(dir.file("slow.py"), R"(import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path not in ("/readyz", "/healthz"):
            time.sleep(0.04)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
)");
  const std::string log = roll_out_under_load(
      dir, "", "", "[python3, " + dir.file("slow.py") + ", \"{port}\"]", "150", "40s",
      "rollback web: revision 2 failed: web-3 answers more slowly: ", 35s);
  const size_t rollback = log.find("rollback web:");
  ASSERT_NE(rollback, std::string::npos) << log;
  std::printf("%s\n", log.substr(rollback, log.find('\n', rollback) - rollback).c_str());
  // One of the old replicas, at least, served to the end: the rollback came before both left.
  EXPECT_TRUE(log.find("stop web-1: exited with status 0") > rollback ||
              log.find("stop web-2: exited with status 0") > rollback)
      << log;
}

// One echo service on a free port, routed or not.
std::string one_echo_yaml(bool routed, const std::string& policy = "prescale") {
  std::string yaml = "version: 1\npolicy: {name: " + policy +
                     "}\nservices:\n  - name: web\n    kind: builtin/echo\n"
                     "gateway:\n  listen: \"127.0.0.1:0\"\n";
  if (routed) yaml += "  routes:\n    - match: {path_prefix: /}\n      service: web\n";
  return yaml;
}

// A service scaled to zero (replicas.min 0, started with none): the first request waits in the
// gateway while the policy sees it arrive and starts a replica, and is answered once that replica
// is ready (Knative's activator). Before, it was answered 503 no_healthy_upstream at once, as is
// every request of a service that does not scale to zero and has no replica.
// Under the Knative port too, whose autoscaler is poked out of its 2 s tick (upstream's
// MultiScaler.Poke), and which no longer starts a pod for its scale-to-zero grace at a start with
// none.
TEST(UpTest, TheFirstRequestOfAServiceScaledToZeroWaitsForItsReplica) {
  for (const char* policy : {"prescale", "kpa"}) {
    SCOPED_TRACE(policy);
    TempDir dir;
    const std::string config = dir.file("prescale.yaml");
    std::string yaml = one_echo_yaml(true, policy);
    yaml.replace(yaml.find("gateway:"), 0, "    replicas: {min: 0, max: 2, initial: 0}\n");
    testing::write_file(config, yaml);
    Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
    ASSERT_TRUE(up.started()) << up.log();
    std::this_thread::sleep_for(2500ms);  // a kpa tick or more: still none started
    EXPECT_EQ(up.log().find("start web-1"), std::string::npos) << "none before a request";
    auto served = http_get(up.gateway_port(), "/", 14s);
    ASSERT_TRUE(served) << served.error().message << "\n" << up.log();
    EXPECT_EQ(served->status, 200) << served->body << "\n" << up.log();
    EXPECT_EQ(served->body, "hello");
    EXPECT_NE(up.log().find("ready web-1"), std::string::npos) << up.log();
    EXPECT_EQ(up.stop(), 0);
    EXPECT_NE(up.log().find("prescale up: stopped. requests 1,"), std::string::npos) << up.log();
  }
}

// Server-sent events through prescale up's gateway to a service scaled to zero: the request waits
// for the replica its load brings, then each event reaches the client as the replica sends it (the
// gateway had buffered the body whole), and the stream, in flight for 2 s, keeps its replica.
TEST(UpTest, EventsOfAServiceScaledToZeroReachTheClientAsTheReplicaSendsThem) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = one_echo_yaml(true);
  yaml.replace(yaml.find("gateway:"), 0, "    replicas: {min: 0, max: 2, initial: 0}\n");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  http::testing::RawSocket s(up.gateway_port(), 20s);
  ASSERT_TRUE(s.send("GET /events/3?interval_ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(s.read_until("data: 0\n\n")) << s.pending() << "\n" << up.log();
  EXPECT_EQ(s.pending().find("data: 1"), std::string::npos) << s.pending();
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value()) << s.pending() << "\n" << up.log();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "id: 0\ndata: 0\n\nid: 1\ndata: 1\n\nid: 2\ndata: 2\n\n");
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("prescale up: stopped. requests 1,"), std::string::npos) << up.log();
}

// `prescale status` against a running platform: the run's line, a row per service with what the
// dashboard's API says of it, and its latest decision; --json the API's objects; nothing at the
// address is said as such, exit 1.
TEST(UpTest, TheStatusCommandShowsWhatThePlatformDoes) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, one_echo_yaml(true));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(http_get(up.gateway_port(), "/"));
  const std::string ui = "127.0.0.1:" + std::to_string(up.ui_port());
  // The service's second point (the feed skips its first) lists its replicas.
  testing::Outcome o;
  ASSERT_TRUE(testing::wait_for(
      [&] {
        o = testing::run_captured(dir, "status", {PRESCALE_BIN, "status", "--ui", ui});
        if (o.out.find("web      builtin/echo  1") != std::string::npos) return true;
        std::this_thread::sleep_for(250ms);  // the platform's ticks, not this loop, bring it
        return false;
      },
      30s))
      << o.out << o.err;
  EXPECT_EQ(o.exit_status, 0) << o.err;
  EXPECT_EQ(o.out.rfind(ui + ": policy prescale, up since ", 0), 0u) << o.out;
  EXPECT_NE(o.out.find("\nSERVICE  KIND          READY  PLANNED  LOAD/S  P99 MS  SLO MS"),
            std::string::npos)
      << o.out;
  const testing::Outcome as_json =
      testing::run_captured(dir, "status-json", {PRESCALE_BIN, "status", "--ui", ui, "--json"});
  EXPECT_EQ(as_json.exit_status, 0) << as_json.err;
  const auto j = nlohmann::json::parse(as_json.out);
  EXPECT_EQ(j.at("overview").at("policy"), "prescale");
  EXPECT_EQ(j.at("services").at(0).at("name"), "web");
  EXPECT_EQ(up.stop(), 0);

  const testing::Outcome gone =
      testing::run_captured(dir, "status-gone", {PRESCALE_BIN, "status", "--ui", ui});
  EXPECT_EQ(gone.exit_status, 1);
  EXPECT_NE(gone.err.find("prescale status: nothing answers at " + ui), std::string::npos)
      << gone.err;
  EXPECT_NE(gone.err.find("is prescale up running, with this --ui?"), std::string::npos)
      << gone.err;
}

// The summary printed at the stop counts every request the gateway answered. It read the totals
// of the last observation, which the hpa policy makes every 15 s: requests sent less than that
// before Ctrl-C were left out ("requests 0" after 20 answered).
TEST(UpTest, TheSummaryCountsTheRequestsSinceTheLastObservation) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, one_echo_yaml(true, "hpa"));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  for (int i = 0; i < 20; ++i) {
    auto served = http_get(up.gateway_port(), "/");
    ASSERT_TRUE(served) << served.error().message;
    EXPECT_EQ(served->status, 200);
  }
  EXPECT_EQ(up.stop(), 0);
  EXPECT_NE(up.log().find("prescale up: stopped. requests 20,"), std::string::npos) << up.log();
}

// A route added by a reload for a service that had none: its replicas, ready since the start
// and never announced to the gateway, join it, and its requests are counted. Before, the route
// answered 503 (no replica in the gateway) and the stop summary left its requests out.
TEST(UpTest, ARouteAddedByAReloadReachesTheServicesReadyReplicasAndIsCounted) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  auto yaml = [](const std::string& api_route) {
    return "version: 1\npolicy: {name: hpa}\nservices:\n"
           "  - name: web\n    kind: builtin/echo\n"
           "  - name: api\n    kind: builtin/echo\n"
           "gateway:\n  listen: \"127.0.0.1:0\"\n  routes:\n" +
           api_route + "    - match: {path_prefix: /}\n      service: web\n";
  };
  testing::write_file(config, yaml(""));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  testing::write_file(config, yaml("    - match: {path: \"/delay/{ms}\"}\n      service: api\n"));
  ASSERT_TRUE(testing::wait_for(
      [&] { return up.log().find("reloaded " + config) != std::string::npos; }, 10s))
      << up.log();
  for (int i = 0; i < 20; ++i) {
    auto served = http_get(up.gateway_port(), "/delay/1");
    ASSERT_TRUE(served) << served.error().message;
    EXPECT_EQ(served->status, 200) << served->body;
  }
  // The same route pointed at web: its requests so far were api's, so that needs a restart.
  testing::write_file(config, yaml("    - match: {path: \"/delay/{ms}\"}\n      service: web\n"));
  EXPECT_TRUE(testing::wait_for(
      [&] {
        return up.log().find(
                   ": gateway.routes: the route labelled \"/delay/{ms}\" in the "
                   "metrics leads to web, and its requests so far were api's") != std::string::npos;
      },
      10s))
      << up.log();
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  EXPECT_NE(log.find("prescale up: stopped. requests 20,"), std::string::npos) << log;
  EXPECT_EQ(times_in(log, "service api: no gateway route names it"), 1u) << log;
}

// A service added to the file starts, is routed to and is scaled by the policy; one removed
// drains and stops, leaving the dashboard and the gateway; nothing else restarts.
TEST(UpTest, AServiceAddedByAReloadServesAndOneRemovedStops) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  const std::string web = "  - name: web\n    kind: builtin/echo\n";
  const std::string api =
      "  - name: api\n    kind: builtin/echo\n    replicas: {min: 2, max: 4, initial: 2}\n";
  const std::string web_route = "    - match: {path_prefix: /}\n      service: web\n";
  const std::string api_route = "    - match: {path: \"/delay/{ms}\"}\n      service: api\n";
  auto yaml = [](const std::string& services, const std::string& routes) {
    return "version: 1\npolicy: {name: prescale, period: 5s}\nservices:\n" + services +
           "gateway:\n  listen: \"127.0.0.1:0\"\n  routes:\n" + routes;
  };
  testing::write_file(config, yaml(web, web_route));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  auto status_of = [&](const std::string& target) {
    auto answered = http_get(up.gateway_port(), target);
    return answered ? answered->status : -1;
  };
  EXPECT_EQ(status_of("/delay/1"), 200);  // web's, by the catch-all route

  testing::save_file(config, yaml(web + api, api_route + web_route));
  EXPECT_TRUE(testing::wait_for(
      [&] {
        return up.log().find("reloaded " + config +
                             " (the file changed): the gateway's settings applied; services "
                             "added api; no rolling update") != std::string::npos;
      },
      10s))
      << up.log();
  EXPECT_TRUE(
      testing::wait_for([&] { return up.log().find("ready api-2") != std::string::npos; }, 20s))
      << up.log();
  EXPECT_TRUE(testing::wait_for([&] { return up.service("api").is_object(); }, 10s));
  EXPECT_EQ(up.service("api").value("min_replicas", -1), 2) << up.service("api").dump();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(status_of("/delay/1"), 200);
  // Decided on by the policy (it asks for its min, which it already has: no event), counted by
  // the world: the dashboard's chart of it gets points.
  EXPECT_TRUE(testing::wait_for(
      [&] {
        const json a = up.service("api");
        return a.is_object() && a.contains("series") && !a["series"]["t"].empty();
      },
      20s))
      << up.service("api").dump();

  // Whether the gateway's metrics list web's endpoints (nullopt: no answer).
  auto gateway_lists_web = [&]() -> std::optional<bool> {
    auto m = http_get(up.ui_port(), "/metrics", 5s);
    if (!m || m->status != 200) return std::nullopt;
    return m->body.find(R"(prescale_gateway_endpoints{service="web")") != std::string::npos;
  };
  EXPECT_EQ(gateway_lists_web(), true);
  testing::save_file(config, yaml(api, api_route));
  EXPECT_TRUE(testing::wait_for(
      [&] {
        return up.log().find("reloaded " + config +
                             " (the file changed): the gateway's settings applied; services "
                             "removed web; no rolling update") != std::string::npos;
      },
      10s))
      << up.log();
  EXPECT_TRUE(
      testing::wait_for([&] { return up.log().find("stop web-1") != std::string::npos; }, 20s))
      << up.log();
  EXPECT_TRUE(testing::wait_for([&] { return up.service("web").is_null(); }, 10s))
      << up.service("web").dump();
  EXPECT_EQ(status_of("/"), 404);  // no route leads anywhere now
  EXPECT_EQ(status_of("/delay/1"), 200);
  // Its replica drained and gone, the gateway drops its cluster and metrics (kept for the
  // process's life before).
  EXPECT_TRUE(testing::wait_for([&] { return gateway_lists_web() == false; }, 10s));
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  EXPECT_EQ(log.find("refused"), std::string::npos) << log;
  EXPECT_EQ(log.find("start web-2"), std::string::npos) << "web was not restarted: " << log;
  EXPECT_EQ(log.find("start api-3"), std::string::npos) << log;
}

// config.md: routes say how requests reach services, and a gateway for one service with no
// routes sends it every request (gateway.md). Under `prescale up` the smallest such file gave a
// gateway that refused the service's replicas ("no route or upstream names service") and
// answered every request 404.
TEST(UpTest, OneServiceWithoutRoutesGetsEveryRequest) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, one_echo_yaml(false));
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  auto served = http_get(up.gateway_port(), "/");
  ASSERT_TRUE(served) << served.error().message;
  EXPECT_EQ(served->status, 200) << served->body;
  EXPECT_EQ(served->body, "hello");
  EXPECT_EQ(up.stop(), 0);
  EXPECT_EQ(up.log().find("refused replica"), std::string::npos) << up.log();
}

// A service no route names (a worker that takes no requests, or a route forgotten) is said once
// at start; each of its replicas' starts logged "gateway refused replica ..." as an error.
TEST(UpTest, AServiceWithoutARouteIsSaidOnceNotAtEveryReplica) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  std::string yaml = echo_yaml("5s");
  yaml.replace(yaml.find("gateway:"), 0,
               "  - name: worker\n"
               "    kind: builtin/echo\n"
               "    replicas: {min: 2, max: 2, initial: 2}\n");
  testing::write_file(config, yaml);
  Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  EXPECT_EQ(up.stop(), 0);
  const std::string log = up.log();
  const std::string said = "service worker: no gateway route names it";
  EXPECT_EQ(times_in(log, said), 1u) << log;
  EXPECT_EQ(log.find("refused replica"), std::string::npos) << log;
  EXPECT_EQ(log.find("service web: no gateway route"), std::string::npos) << log;
  // No request was sent: no share within the SLO to give (it said 100 %).
  EXPECT_NE(log.find("prescale up: stopped. requests 0, within SLO -, replica-hours"),
            std::string::npos)
      << log;
}

// Its output piped to a reader that goes away (`prescale up ... | head`, a `tee` that died): the
// next log line's write had SIGPIPE's default action kill the platform on the spot, exit 141,
// nothing drained or saved. Like nginx, it ignores SIGPIPE and serves on; a stop drains.
TEST(UpTest, AClosedOutputPipeDoesNotStopThePlatform) {
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, echo_yaml("5s"));
  const std::string fifo = dir.file("out");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string port_file = dir.file("gw.port");
  // A reader of one byte, then the platform itself (exec: its pid is the Subprocess's).
  Subprocess up({"/bin/sh", "-c",
                 "head -c 1 < \"$1\" > /dev/null & exec \"$0\" up -f \"$2\" --state-dir \"$3\" "
                 "--ui 127.0.0.1:0 --port-file \"$4\" > \"$1\" 2>&1",
                 PRESCALE_BIN, fifo, config, dir.file("state"), port_file},
                dir.file("sh.log"));
  ASSERT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 20s))
      << "the platform did not come up; exit " << up.wait(0ms).value_or(-1);
  const auto port = static_cast<uint16_t>(std::stoi(testing::read_file(port_file)));
  for (int i = 0; i < 5; ++i) {  // and it logs on: each write to the closed pipe fails
    auto served = http_get(port, "/echo");
    ASSERT_TRUE(served) << served.error().message;
    EXPECT_EQ(served->status, 200);
  }
  EXPECT_FALSE(up.wait(500ms).has_value()) << "exited";
  up.signal(SIGINT);
  EXPECT_EQ(up.wait(60s), 0);
}

}  // namespace
}  // namespace prescale
