#include "worlds/local/local_world.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <mutex>

#include "core/clock.h"
#include "http/server.h"
#include "telemetry/registry.h"

namespace prescale::local {
namespace {

// A supervisor with nothing to run: the world's request figures come from the gateway's metrics.
struct NoProcesses final : ProcessLauncher, ReplicaProbe, EndpointSink {
  Result<std::unique_ptr<Process>> launch(const LaunchSpec&) override {
    return make_error(ErrorCode::kInternal, "no processes in this test");
  }
  Result<std::uint16_t> free_port() override { return 9000; }
  std::optional<std::uint16_t> read_port_file(const std::string&) override { return {}; }
  struct Answer final : ReadinessCheck {
    std::optional<bool> answer() override { return false; }
  };
  std::unique_ptr<ReadinessCheck> check_ready(std::uint16_t) override {
    return std::make_unique<Answer>();
  }
  void add(const std::string&, const std::string&, std::uint16_t) override {}
  void remove(const std::string&, const std::string&) override {}
  std::int64_t in_flight(const std::string&, const std::string&) override { return 0; }
};

// The gateway's figures for one service behind route "r": `n` requests answered 200 in
// `seconds` each.
struct GatewayMetrics {
  void answer(int n, double seconds) {
    calls.with({"external", "web"}).inc(n);
    requests.with({"r", "200"}).inc(n);
    for (int i = 0; i < n; ++i) durations.with({"r"}).observe(seconds);
  }
  telemetry::Registry registry;
  telemetry::CounterFamily& calls =
      registry.counter("prescale_calls_total", "calls", {"caller", "callee"});
  telemetry::CounterFamily& requests =
      registry.counter("prescale_requests_total", "requests", {"route", "code"});
  telemetry::HistogramFamily& durations =
      registry.histogram("prescale_request_duration_seconds", "latency", {"route"});
};

TEST(LocalWorldTest, RequestFiguresCoverTheLastMetricWindowAndTotalsCountEachRequestOnce) {
  ManualClock clock;
  NoProcesses none;
  SupervisorOptions so;
  so.run_dir = "/run/test";
  Supervisor supervisor(so, none, none, none);
  ASSERT_TRUE(supervisor.add_service({"web", {"server", "{port}"}, {}}));
  GatewayMetrics gw;
  scaling::ServiceSpec spec;
  spec.name = "web";
  spec.max_replicas = 4;
  spec.slo_latency_p99_seconds = 0.1;
  LocalWorldOptions o;
  o.clock = &clock;
  o.real_clock = &clock;
  o.route_service = {{"r", "web"}};
  o.metric_window = std::chrono::seconds(30);
  LocalWorld world(supervisor, gw.registry, {spec}, o);

  (void)world.observe(clock.now());  // the base
  // 5 s periods: 50 requests each for 30 s, then a quiet period.
  for (int i = 0; i < 6; ++i) {
    clock.advance(std::chrono::seconds(5));
    gw.answer(50, 0.01);
    const auto& w = world.observe(clock.now()).services[0].window;
    EXPECT_NEAR(w.arrival_rps, 10, 1e-9) << "period " << i;
    EXPECT_EQ(w.length, std::chrono::seconds(5 * (i + 1)));
  }
  clock.advance(std::chrono::seconds(5));
  const auto& quiet = world.observe(clock.now()).services[0].window;
  // The last 30 s: five busy periods and the quiet one, not the quiet one alone.
  EXPECT_EQ(quiet.length, std::chrono::seconds(30));
  EXPECT_NEAR(quiet.arrival_rps, 250.0 / 30, 1e-9);
  EXPECT_NEAR(quiet.concurrency, 250 * 0.01 / 30, 1e-9);  // Little's law over the window
  EXPECT_NEAR(quiet.served_total, 300, 1e-9);
  EXPECT_NEAR(world.totals().requests, 300, 1e-9);
  EXPECT_NEAR(world.totals().within_slo, 300, 1e-9);
  // Slow answers count once in the totals, and stay in the window while it covers them.
  clock.advance(std::chrono::seconds(5));
  gw.answer(10, 0.5);
  const auto& slow = world.observe(clock.now()).services[0].window;
  EXPECT_NEAR(slow.slow_rps, 10.0 / 30, 1e-9);
  // The window holds 200 fast answers and the 10 slow ones: rank 207.9 lies 7.9 into the 10
  // answers of (0.25, 0.5], interpolated as histogram_quantile() does.
  EXPECT_NEAR(slow.latency_p99_seconds, 0.25 + 0.25 * 0.79, 1e-9);
  for (int i = 0; i < 7; ++i) {
    clock.advance(std::chrono::seconds(5));
    (void)world.observe(clock.now());
  }
  EXPECT_NEAR(world.totals().requests, 310, 1e-9);
  EXPECT_NEAR(world.totals().within_slo, 300, 1e-9);
  EXPECT_NEAR(world.observe(clock.now()).services[0].window.slow_rps, 0, 1e-9);
}

// One replica process that never exits, ready at once on the port of a real /metrics server.
struct OneReadyReplica final : ProcessLauncher, ReplicaProbe, EndpointSink {
  struct Proc final : Process {
    int pid() const override { return 4242; }
    void signal(int) override {}
    std::optional<int> poll_exit() override { return std::nullopt; }
  };
  Result<std::unique_ptr<Process>> launch(const LaunchSpec&) override {
    return std::unique_ptr<Process>(std::make_unique<Proc>());
  }
  Result<std::uint16_t> free_port() override { return port; }
  std::optional<std::uint16_t> read_port_file(const std::string&) override { return {}; }
  struct Answer final : ReadinessCheck {
    std::optional<bool> answer() override { return true; }
  };
  std::unique_ptr<ReadinessCheck> check_ready(std::uint16_t) override {
    return std::make_unique<Answer>();
  }
  void add(const std::string&, const std::string&, std::uint16_t) override {}
  void remove(const std::string&, const std::string&) override {}
  std::int64_t in_flight(const std::string&, const std::string&) override { return 0; }
  std::uint16_t port = 0;
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
  ASSERT_TRUE(metrics.start());
  OneReadyReplica fake;
  fake.port = metrics.port();

  ManualClock clock;
  SupervisorOptions sup_options;
  Supervisor supervisor(sup_options, fake, fake, fake);
  ASSERT_TRUE(supervisor.add_service({"web", {"server", "{port}"}, {}}));
  ASSERT_TRUE(supervisor.set_desired("web", 1));
  supervisor.tick(clock.now());
  supervisor.tick(clock.now());
  ASSERT_EQ(supervisor.replicas("web").at(0).phase, ReplicaPhase::kReady);

  telemetry::Registry gateway_registry;
  scaling::ServiceSpec spec;
  spec.name = "web";
  spec.max_replicas = 4;
  LocalWorldOptions o;
  o.clock = &clock;
  o.real_clock = &clock;
  LocalWorld world(supervisor, gateway_registry, {spec}, o);
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

}  // namespace
}  // namespace prescale::local
