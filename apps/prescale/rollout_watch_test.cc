#include "rollout_watch.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace prescale {
namespace {

using namespace std::chrono_literals;

const std::vector<double> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};

// What the gateway counted of one upstream: attempts by code, and their latencies.
struct Counted {
  std::map<std::string, double> by_code;
  std::vector<double> latencies;
  void add(int n, double seconds, const std::string& code = "200") {
    by_code[code] += n;
    latencies.insert(latencies.end(), static_cast<std::size_t>(n), seconds);
  }
};

// The gateway registry's two families, over two routes (each upstream's attempts split).
std::vector<telemetry::FamilySnapshot> families(const std::map<int, Counted>& by_port) {
  telemetry::FamilySnapshot requests{"prescale_gateway_upstream_requests_total",
                                     "",
                                     telemetry::MetricType::kCounter,
                                     {"route", "upstream", "code"},
                                     {}};
  telemetry::FamilySnapshot durations{"prescale_gateway_upstream_request_duration_seconds",
                                      "",
                                      telemetry::MetricType::kHistogram,
                                      {"route", "upstream"},
                                      {}};
  for (const auto& [port, c] : by_port) {
    const std::string upstream = "127.0.0.1:" + std::to_string(port);
    for (const std::string route : {"/a", "/b"}) {
      for (const auto& [code, n] : c.by_code) {
        telemetry::SeriesSnapshot s;
        s.label_values = {route, upstream, code};
        s.value = n / 2;
        requests.series.push_back(s);
      }
      telemetry::SeriesSnapshot h;
      h.label_values = {route, upstream};
      h.histogram.upper_bounds = kBounds;
      h.histogram.cumulative_counts.assign(kBounds.size() + 1, 0);
      for (std::size_t k = 0; k < c.latencies.size(); k += 2) {  // half on each route
        for (std::size_t i = 0; i <= kBounds.size(); ++i) {
          if (i == kBounds.size() || c.latencies[k] <= kBounds[i])
            ++h.histogram.cumulative_counts[i];
        }
      }
      durations.series.push_back(h);
    }
  }
  return {requests, durations};
}

class RolloutWatchTest : public ::testing::Test {
 protected:
  Clock::TimePoint at(Clock::Duration d) const { return Clock::TimePoint{} + 1h + d; }
  std::vector<RolloutReplica> replicas() const {
    return {{"web", "web-1", 1, 1001, at(-30min)},
            {"web", "web-2", 1, 1002, at(-30min)},
            {"web", "web-3", 2, 1003, at(0s)},
            {"web", "web-4", 2, 1004, std::nullopt}};  // still starting
  }
  RolloutWatch watch;
  std::map<int, Counted> counted;
  const std::map<std::string, int> rolling{{"web", 2}};
};

TEST_F(RolloutWatchTest, ANewRevisionSlowerThanTheOldIsReportedOnceWithOneOfItsReplicas) {
  counted[1001].add(5000, 0.3);  // before the rollout: slow, and not counted
  EXPECT_TRUE(watch.look(rolling, replicas(), families(counted), at(0s)).empty());
  counted[1003].add(100, 0.2);  // its first seconds of readiness: not counted either
  EXPECT_TRUE(watch.look(rolling, replicas(), families(counted), at(6s)).empty());
  counted[1001].add(100, 0.004);
  counted[1002].add(100, 0.004);
  counted[1003].add(120, 0.04);
  const auto failures = watch.look(rolling, replicas(), families(counted), at(10s));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].service, "web");
  EXPECT_EQ(failures[0].replica, "web-3");
  EXPECT_EQ(failures[0].why,
            "answers more slowly: 100.0 % of its attempts took longer than the old revision's "
            "90th percentile (4.75 ms; its own 48 ms) over 120 attempts");
  counted[1003].add(500, 0.04);
  EXPECT_TRUE(watch.look(rolling, replicas(), families(counted), at(12s)).empty());  // once
}

TEST_F(RolloutWatchTest, ANewRevisionThatFailsMoreOftenIsReportedAndOneAlikeIsNot) {
  EXPECT_TRUE(watch.look(rolling, replicas(), families(counted), at(6s)).empty());
  counted[1001].add(200, 0.004);
  counted[1003].add(180, 0.004);
  EXPECT_TRUE(watch.look(rolling, replicas(), families(counted), at(8s)).empty());  // alike
  counted[1003].add(30, 0.004, "503");
  counted[1003].add(10, 0.004, "connect_failed");
  counted[1003].add(50, 0.004, "cancelled");  // the client left: neither side's doing
  const auto failures = watch.look(rolling, replicas(), families(counted), at(10s));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].why,
            "fails 18.2 % of its attempts (the old revision 0.0 %) over 220 attempts");
}

TEST_F(RolloutWatchTest, ARolloutThatEndsIsForgottenAndTheNextStartsAfresh) {
  watch.look(rolling, replicas(), families(counted), at(6s));
  counted[1001].add(200, 0.004);
  counted[1003].add(200, 0.04);
  EXPECT_TRUE(watch.look({}, replicas(), families(counted), at(8s)).empty());  // rolled out
  // Revision 2 rolls out again (say after a rollback and a new edit): nothing before counts.
  EXPECT_TRUE(watch.look(rolling, replicas(), families(counted), at(20s)).empty());
  counted[1001].add(200, 0.004);
  counted[1003].add(200, 0.004);
  EXPECT_TRUE(watch.look(rolling, replicas(), families(counted), at(22s)).empty());
}

}  // namespace
}  // namespace prescale
