#include "worlds/traffic/gateway_traffic.h"

#include <gtest/gtest.h>

#include "telemetry/text_parser.h"

namespace prescale::traffic {
namespace {

using namespace std::chrono_literals;

// A gateway's exposition: routes "web" (to web) and "api" (to checkout), calls from outside and
// from web to checkout.
std::string exposition(double web_ok, double web_5xx, double calls_web, double calls_edge,
                       double busy, double fast, double slow) {
  const double total = fast + slow;
  return "# TYPE prescale_calls_total counter\n"
         "prescale_calls_total{caller=\"external\",callee=\"web\"} " +
         std::to_string(calls_web) +
         "\n"
         "prescale_calls_total{caller=\"web\",callee=\"checkout\"} " +
         std::to_string(calls_edge) +
         "\n"
         "# TYPE prescale_requests_total counter\n"
         "prescale_requests_total{route=\"web\",code=\"200\"} " +
         std::to_string(web_ok) +
         "\n"
         "prescale_requests_total{route=\"web\",code=\"503\"} " +
         std::to_string(web_5xx) +
         "\n"
         "prescale_requests_total{route=\"other\",code=\"200\"} 1000\n"
         "# TYPE prescale_gateway_route_busy_seconds_total counter\n"
         "prescale_gateway_route_busy_seconds_total{route=\"web\"} " +
         std::to_string(busy) +
         "\n"
         "# TYPE prescale_gateway_ejections_total counter\n"
         "prescale_gateway_ejections_total{service=\"web\"} 2\n"
         "# TYPE prescale_request_duration_seconds histogram\n"
         "prescale_request_duration_seconds_bucket{route=\"web\",le=\"0.1\"} " +
         std::to_string(fast) +
         "\n"
         "prescale_request_duration_seconds_bucket{route=\"web\",le=\"1\"} " +
         std::to_string(total) +
         "\n"
         "prescale_request_duration_seconds_bucket{route=\"web\",le=\"+Inf\"} " +
         std::to_string(total) +
         "\n"
         "prescale_request_duration_seconds_sum{route=\"web\"} 1\n"
         "prescale_request_duration_seconds_count{route=\"web\"} " +
         std::to_string(total) + "\n";
}

GatewayReading read(const std::string& text) {
  auto parsed = telemetry::parse_text(text);
  EXPECT_TRUE(parsed.has_value());
  GatewayReading reading;
  add_gateway(telemetry::to_snapshots(*parsed), {{"web", "web"}}, reading);
  return reading;
}

TEST(GatewayTraffic, AScrapeCountsPerServiceAndEdge) {
  const GatewayReading r = read(exposition(90, 10, 100, 40, 5, 80, 20));
  const GatewayCounts& web = r.services.at("web");
  EXPECT_EQ(web.arrivals, 100);
  EXPECT_EQ(web.external, 100);
  EXPECT_EQ(web.responses, 100);  // the "other" route leads to no service named
  EXPECT_EQ(web.errors, 10);
  EXPECT_EQ(web.busy_seconds, 5);
  EXPECT_EQ(web.ejections, 2);
  EXPECT_EQ(web.latency.count, 100);
  ASSERT_EQ(web.latency.buckets.size(), 3u);
  EXPECT_EQ(web.latency.buckets[0].second, 80);
  EXPECT_EQ(r.services.at("checkout").arrivals, 40);
  EXPECT_EQ(r.services.at("checkout").external, 0);
  const auto edges = edges_of(r);
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_EQ(edges[0].caller, "web");
  EXPECT_EQ(edges[0].callee, "checkout");
  EXPECT_EQ(edges[0].calls_total, 40);
}

TEST(GatewayTraffic, TwoGatewaysAddUpAndARestartedOneCountsFromZero) {
  const GatewayReading a0 = read(exposition(90, 10, 100, 40, 5, 80, 20));
  const GatewayReading a1 = read(exposition(190, 10, 200, 80, 7, 170, 30));
  // The second gateway restarted between the reads: its counters went down.
  const GatewayReading b0 = read(exposition(500, 0, 500, 0, 50, 500, 0));
  const GatewayReading b1 = read(exposition(30, 0, 30, 5, 1, 30, 0));
  GatewayReading total;
  add(total, growth(a1, a0));
  add(total, growth(b1, b0));
  const GatewayCounts& web = total.services.at("web");
  EXPECT_EQ(web.arrivals, 100 + 30);
  EXPECT_EQ(web.responses, 100 + 30);
  EXPECT_EQ(web.errors, 0);
  EXPECT_EQ(web.busy_seconds, 2 + 1);
  EXPECT_EQ(web.latency.count, 100 + 30);
  EXPECT_EQ(web.latency.buckets[0].second, 90 + 30);
  EXPECT_EQ(total.edges.at({"web", "checkout"}), 40 + 5);
}

TEST(GatewayTraffic, TheWindowGivesRatesTheSlowShareAndTheLastSecond) {
  TrafficWindow window(/*slo_latency_seconds=*/0.1, /*metric_window=*/30s);
  const Clock::TimePoint t0{};
  GatewayCounts c;
  EXPECT_FALSE(window.last_second(t0, t0).valid);
  window.record(t0, t0, c);
  // Ten seconds of 10 requests a second, a fifth of them slower than the SLO, 2 in flight.
  for (int s = 1; s <= 10; ++s) {
    c.arrivals += 10;
    c.external += 10;
    c.responses += 10;
    c.busy_seconds += 2;
    c.latency.count += 10;
    c.latency.buckets = {{0.1, 8.0 * s}, {1, 10.0 * s}, {INFINITY, 10.0 * s}};
    const RequestDelta d = window.record(t0 + s * 1s, t0 + s * 1s, c);
    EXPECT_EQ(d.arrived, 10);
  }
  const Clock::TimePoint now = t0 + 10s;
  const scaling::SecondMetrics second = window.last_second(now, now);
  ASSERT_TRUE(second.valid);
  EXPECT_DOUBLE_EQ(second.requests, 10);
  EXPECT_DOUBLE_EQ(second.concurrency, 2);
  scaling::WindowMetrics w;
  window.fill(w, now, now);
  EXPECT_EQ(w.length, 10s);
  EXPECT_DOUBLE_EQ(w.arrival_rps, 10);
  EXPECT_DOUBLE_EQ(w.served_rps, 10);
  EXPECT_DOUBLE_EQ(w.slow_rps, 2);
  EXPECT_DOUBLE_EQ(w.concurrency, 2);
  EXPECT_DOUBLE_EQ(w.served_total, 100);
  EXPECT_GT(w.latency_p99_seconds, 0.1);
  // Forty seconds on, the window covers the last 30 s only.
  for (int s = 11; s <= 50; ++s) {
    c.arrivals += 20;
    window.record(t0 + s * 1s, t0 + s * 1s, c);
  }
  window.fill(w, t0 + 50s, t0 + 50s);
  EXPECT_EQ(w.length, 30s);
  EXPECT_DOUBLE_EQ(w.arrival_rps, 20);
}

}  // namespace
}  // namespace prescale::traffic
