#include "rollout_watch.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace prescale::healing {
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
        h.histogram.sum += c.latencies[k];
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

std::string upstream(int port) { return "127.0.0.1:" + std::to_string(port); }

class RolloutWatchTest : public ::testing::Test {
 protected:
  std::map<std::string, RevisionSample> attempts() const {
    return attempts_by_upstream(families(counted));
  }
  Clock::TimePoint at(Clock::Duration d) const { return Clock::TimePoint{} + 1h + d; }
  std::vector<RolloutReplica> replicas() const {
    return {{"web", "web-1", 1, "101", upstream(1001), at(-30min)},
            {"web", "web-2", 1, "102", upstream(1002), at(-30min)},
            {"web", "web-3", 2, "103", upstream(1003), at(0s)},
            {"web", "web-4", 2, "104", upstream(1004), std::nullopt}};  // still starting
  }
  std::vector<RolloutFailure> look(Clock::Duration d) {
    return watch.look(rolling, replicas(), attempts(), at(d));
  }
  RolloutWatch watch;
  std::map<int, Counted> counted;
  std::map<std::string, RolloutRevisions> rolling{{"web", {2, 1}}};
};

TEST_F(RolloutWatchTest, ANewRevisionSlowerThanTheOldIsReportedOnceWithOneOfItsReplicas) {
  counted[1001].add(5000, 0.3);  // before the rollout: slow, and not counted
  EXPECT_TRUE(look(0s).empty());
  counted[1003].add(100, 0.2);  // its first seconds of readiness: not counted either
  EXPECT_TRUE(look(5s).empty());
  counted[1001].add(100, 0.004);
  counted[1002].add(100, 0.004);
  counted[1003].add(120, 0.04);
  const auto failures = look(6s);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].service, "web");
  EXPECT_EQ(failures[0].replica, "web-3");
  EXPECT_EQ(failures[0].why,
            "answers more slowly: 100.0 % of its attempts took longer than the old revision's "
            "90th percentile (4.75 ms; its own 48 ms), a mean of 40 ms against 4.00 ms over 120 "
            "attempts");
  counted[1003].add(500, 0.04);
  EXPECT_TRUE(look(7s).empty());  // once
}

TEST_F(RolloutWatchTest, ANewRevisionThatFailsMoreOftenIsReportedAndOneAlikeIsNot) {
  EXPECT_TRUE(look(5s).empty());
  counted[1001].add(200, 0.004);
  counted[1003].add(180, 0.004);
  EXPECT_TRUE(look(6s).empty());  // alike
  counted[1001].add(20, 0.004);
  counted[1003].add(30, 0.004, "503");
  counted[1003].add(10, 0.004, "connect_failed");
  counted[1003].add(50, 0.004, "cancelled");  // the client left: neither side's doing
  counted[1003].add(50, 0.004, "overflow");   // the gateway's own limits: nor this
  const auto failures = look(7s);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].why,
            "fails 18.2 % of its attempts (the old revision 0.0 %) over 220 attempts");
}

// Counts enter only from looks where both sides have replicas counting: a trouble of the
// moment, seen by the only side counting then, weighs on neither.
TEST_F(RolloutWatchTest, BothSidesAreCountedOverTheSameLooks) {
  rolling = {{"web", {2, 1}}};
  EXPECT_TRUE(look(1s).empty());         // the old replicas count from here; web-3 is warming up
  counted[1001].add(300, 0.004, "503");  // a dependency fails while only the old side counts
  counted[1003].add(300, 0.004, "503");  // (and web-3's warm-up)
  EXPECT_TRUE(look(5s).empty());         // web-3 counts from here: this look has one side only
  counted[1001].add(200, 0.004);
  counted[1003].add(200, 0.004);
  EXPECT_TRUE(look(6s).empty());  // alike since both count: 0 % against 0 %
}

TEST_F(RolloutWatchTest, ARollbackUnderWayAndOtherRevisionsAreNotJudged) {
  // Revision 3 rolls out over replicas of revisions 1 (stable) and 2 (an earlier edit's).
  rolling = {{"web", {3, 1}}};
  std::vector<RolloutReplica> r = {{"web", "web-1", 1, "101", upstream(1001), at(-30min)},
                                   {"web", "web-3", 2, "103", upstream(1003), at(-1min)},
                                   {"web", "web-5", 3, "105", upstream(1005), at(-1min)}};
  EXPECT_TRUE(watch.look(rolling, r, attempts(), at(0s)).empty());
  counted[1001].add(200, 0.004);
  counted[1003].add(200, 0.2);  // revision 2 is slow: neither side
  counted[1005].add(200, 0.004);
  EXPECT_TRUE(watch.look(rolling, r, attempts(), at(1s)).empty());
  // The same replicas while returning to revision 1: nothing is judged.
  rolling = {{"web", {1, 1}}};
  counted[1005].add(200, 0.2);
  EXPECT_TRUE(watch.look(rolling, r, attempts(), at(2s)).empty());
  EXPECT_TRUE(watch.look(rolling, r, attempts(), at(3s)).empty());
}

TEST_F(RolloutWatchTest, ARestartedReplicaCountsAfreshAndAnEndedRolloutIsForgotten) {
  look(5s);
  counted[1001].add(200, 0.004);
  counted[1003].add(200, 0.004);
  EXPECT_TRUE(look(6s).empty());
  // web-3 restarts on the same port (a new process): what it answered while dying, and its new
  // process's warm-up, are not counted.
  std::vector<RolloutReplica> r = replicas();
  r[2].process = "203";
  r[2].ready_at = at(7s);
  counted[1003].add(100, 0.004, "reset");
  EXPECT_TRUE(watch.look(rolling, r, attempts(), at(8s)).empty());
  EXPECT_TRUE(watch.look(rolling, r, attempts(), at(12s)).empty());
  counted[1001].add(200, 0.004);
  counted[1003].add(200, 0.004);
  EXPECT_TRUE(watch.look(rolling, r, attempts(), at(13s)).empty());

  EXPECT_TRUE(watch.look({}, r, attempts(), at(14s)).empty());  // rolled out
  counted[1003].add(200, 0.04);  // a later rollout of revision 2 would start afresh
  EXPECT_TRUE(watch.look(rolling, r, attempts(), at(20s)).empty());
}

}  // namespace
}  // namespace prescale::healing
