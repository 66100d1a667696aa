#include "scaling/oracle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <vector>

namespace prescale::scaling {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

const Clock::TimePoint kStart = Clock::TimePoint{} + std::chrono::seconds(100);

ServiceSpec spec(std::string name, Clock::Duration startup, int min_replicas = 0,
                 int max_replicas = 100) {
  ServiceSpec s;
  s.name = std::move(name);
  s.capacity_rps = 100;
  s.startup_time = startup;
  s.min_replicas = min_replicas;
  s.max_replicas = max_replicas;
  return s;
}

std::vector<double> demand_for(const std::vector<int>& need) {
  std::vector<double> d;
  for (int n : need) d.push_back(n * 100.0);  // exactly n replicas' worth
  return d;
}

OraclePolicy planned(const std::vector<int>& need, Clock::Duration step, Clock::Duration startup,
                     int min_replicas = 0) {
  OraclePolicy oracle(kStart, step, {{"svc", demand_for(need)}});
  oracle.init({spec("svc", startup, min_replicas)});
  return oracle;
}

// Ready replicas per step when the world runs `schedule` as a stack (new replicas on top, the
// youngest removed first) and the replicas present at step 0 are ready.
std::vector<int> ready_in_lifo_world(std::span<const int> schedule, int startup_steps) {
  std::vector<int> starts;  // start step of each running replica, oldest first
  std::vector<int> ready;
  for (int t = 0; t < static_cast<int>(schedule.size()); ++t) {
    while (static_cast<int>(starts.size()) < schedule[t])
      starts.push_back(t == 0 ? -startup_steps : t);
    while (static_cast<int>(starts.size()) > schedule[t]) starts.pop_back();
    ready.push_back(static_cast<int>(std::count_if(starts.begin(), starts.end(),
                                                   [&](int s) { return s + startup_steps <= t; })));
  }
  return ready;
}

TEST(OracleNeed, CeilOfDemandOverCapacityWithinBounds) {
  const std::vector<double> demand = {0, 1, 100, 100.5, 300.00000000000006, 950};
  EXPECT_THAT(internal::oracle_need(demand, 100, 0, 100), ElementsAre(0, 1, 1, 2, 3, 10));
  EXPECT_THAT(internal::oracle_need(demand, 100, 2, 5), ElementsAre(2, 2, 2, 2, 3, 5));
}

TEST(OracleNeed, StartupRoundsUpToWholeSteps) {
  EXPECT_EQ(internal::oracle_startup_steps(60s, 10s), 6);
  EXPECT_EQ(internal::oracle_startup_steps(25s, 10s), 3);
  EXPECT_EQ(internal::oracle_startup_steps(0s, 10s), 0);
}

TEST(OracleSchedule, SingleSpikeStartsExactlyStartupEarly) {
  // One base replica; four more needed at steps 3 and 4; startup 2 steps.
  OraclePolicy o = planned({1, 1, 1, 5, 5, 1, 1, 1, 1, 1}, 60s, 120s);
  EXPECT_THAT(o.schedule("svc"), ElementsAre(1, 5, 5, 5, 5, 1, 1, 1, 1, 1));
  // Hand count: the base replica runs 10 steps; each of the 4 spike replicas runs 2 startup
  // steps + 2 needed steps. (10 + 4 × 4) × 60 s.
  EXPECT_DOUBLE_EQ(o.planned_replica_seconds(), 26 * 60.0);
}

TEST(OracleSchedule, SpikeAtTheStartUsesTheInitialReplicas) {
  OraclePolicy o = planned({3, 3, 0, 0, 0}, 10s, 20s);
  EXPECT_THAT(o.schedule("svc"), ElementsAre(3, 3, 0, 0, 0));
  EXPECT_DOUBLE_EQ(o.planned_replica_seconds(), 60.0);
}

TEST(OracleSchedule, GapShorterThanStartupIsBridged) {
  // Spikes at steps 4 and 7, gap of 2 steps, startup 3 steps: keeping the 2 replicas through
  // the gap (2 steps each) is cheaper than restarting them (3 steps each).
  OraclePolicy o = planned({0, 0, 0, 0, 2, 0, 0, 2, 0, 0}, 10s, 30s);
  EXPECT_THAT(o.schedule("svc"), ElementsAre(0, 2, 2, 2, 2, 2, 2, 2, 0, 0));
  EXPECT_DOUBLE_EQ(o.planned_replica_seconds(), 2 * (3 + 1 + 2 + 1) * 10.0);
}

TEST(OracleSchedule, GapLongerThanStartupStopsAndRestarts) {
  // Spikes at steps 4 and 9, gap of 4 steps, startup 2: stop after the first spike and start
  // again 2 steps before the second: 2 replicas × (2 + 1) × 2 spikes.
  OraclePolicy o = planned({0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0}, 10s, 20s);
  EXPECT_THAT(o.schedule("svc"), ElementsAre(0, 0, 2, 2, 2, 0, 0, 2, 2, 2, 0, 0));
  EXPECT_DOUBLE_EQ(o.planned_replica_seconds(), 12 * 10.0);
}

TEST(OracleSchedule, GapEqualToStartupCostsTheSameEitherWay) {
  OraclePolicy o = planned({0, 0, 0, 0, 2, 0, 0, 2, 0, 0}, 10s, 20s);
  // Bridged (the tie goes to keeping the replica): 2 × 6 steps, the same as 2 × (3 + 3).
  EXPECT_THAT(o.schedule("svc"), ElementsAre(0, 0, 2, 2, 2, 2, 2, 2, 0, 0));
  EXPECT_DOUBLE_EQ(o.planned_replica_seconds(), 12 * 10.0);
}

TEST(OracleSchedule, NestedLevelsAreTreatedIndependently) {
  // Level 1 has a short gap (bridged), level 3 a long one (restarted). Startup 1 step.
  OraclePolicy o = planned({1, 3, 0, 1, 0, 0, 0, 3}, 10s, 10s);
  EXPECT_THAT(o.schedule("svc"), ElementsAre(3, 3, 1, 1, 0, 0, 3, 3));
}

TEST(OracleSchedule, StartupNotAMultipleOfTheStepStartsAtThePrecedingStep) {
  OraclePolicy o = planned({0, 0, 0, 0, 1, 0}, 10s, 25s);  // 3 steps of lead
  EXPECT_THAT(o.schedule("svc"), ElementsAre(0, 1, 1, 1, 1, 0));
}

TEST(OracleSchedule, MinReplicasAreAlwaysKept) {
  OraclePolicy o = planned({0, 0, 0, 0}, 10s, 20s, /*min_replicas=*/2);
  EXPECT_THAT(o.need("svc"), ElementsAre(2, 2, 2, 2));
  EXPECT_THAT(o.schedule("svc"), ElementsAre(2, 2, 2, 2));
}

TEST(OraclePolicyTest, DecideReturnsTheScheduleOfTheCurrentStep) {
  OraclePolicy o = planned({1, 1, 1, 5, 5, 1}, 60s, 120s);
  EXPECT_EQ(o.name(), "oracle");
  EXPECT_EQ(o.period(), 60s);
  const Snapshot none;
  auto at = [&](Clock::TimePoint t) {
    Plan p = o.decide(none, t);
    EXPECT_EQ(p.decisions.size(), 1u);
    return p.decisions.at(0);
  };
  EXPECT_EQ(at(kStart - 30s).replicas, 1);  // before the series: its first step
  EXPECT_EQ(at(kStart).replicas, 1);
  EXPECT_EQ(at(kStart + 59s).replicas, 1);
  const Decision early = at(kStart + 60s);
  EXPECT_EQ(early.replicas, 5);
  EXPECT_THAT(early.reason, HasSubstr("need 1 ready now"));
  EXPECT_EQ(at(kStart + 299s).replicas, 5);
  EXPECT_EQ(at(kStart + 300s).replicas, 1);
  EXPECT_EQ(at(kStart + 3000s).replicas, 1);  // after the series: its last step
}

TEST(OraclePolicyTest, ServiceWithoutDemandStaysAtMin) {
  OraclePolicy o(kStart, 10s, {{"a", {100, 200}}});
  o.init({spec("a", 10s), spec("b", 10s, /*min_replicas=*/3)});
  const Plan p = o.decide(Snapshot{}, kStart);
  ASSERT_EQ(p.decisions.size(), 2u);
  EXPECT_EQ(p.decisions[1].service, "b");
  EXPECT_EQ(p.decisions[1].replicas, 3);
  EXPECT_TRUE(o.schedule("b").empty());
  EXPECT_DOUBLE_EQ(o.planned_replica_seconds(), (2 + 2) * 10.0);
}

TEST(OracleProperty, ReadyCapacityAlwaysMeetsDemandGivenStartupLead) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int steps = 1 + static_cast<int>(rng() % 60);
    const int startup = static_cast<int>(rng() % 6);
    std::vector<int> need(static_cast<size_t>(steps));
    for (int& n : need) n = static_cast<int>(rng() % 6);
    const std::vector<int> schedule = internal::oracle_schedule(need, startup);
    const std::vector<int> ready = ready_in_lifo_world(schedule, startup);
    for (int t = 0; t < steps; ++t) {
      ASSERT_GE(ready[t], need[t]) << "trial " << trial << " step " << t;
    }
  }
}

// The cheapest feasible set of replica intervals, by exhaustive search. A replica runs over the
// steps [s, e) (s < 0: started before the run, costing from step 0) and is ready at a iff
// s + startup <= a < e.
struct Interval {
  int start;
  int end;
  int cost;
};

int brute_force_min_cost(const std::vector<int>& need, int startup) {
  const int steps = static_cast<int>(need.size());
  std::vector<Interval> all;
  for (int s = -startup; s < steps; ++s) {
    for (int e = std::max(s, 0) + 1; e <= steps; ++e) all.push_back({s, e, e - std::max(s, 0)});
  }
  std::vector<int> ready(static_cast<size_t>(steps), 0);
  int best = std::numeric_limits<int>::max();
  auto feasible = [&] {
    for (int t = 0; t < steps; ++t) {
      if (ready[t] < need[t]) return false;
    }
    return true;
  };
  // Intervals are chosen in non-decreasing index order (a multiset); adding one only adds cost,
  // so the search stops at the first feasible set on each branch.
  auto search = [&](auto&& self, size_t from, int cost) -> void {
    if (cost >= best) return;
    if (feasible()) {
      best = cost;
      return;
    }
    for (size_t i = from; i < all.size(); ++i) {
      const Interval& iv = all[i];
      if (cost + iv.cost >= best) continue;
      // Only intervals that make some still-short step ready can be part of a minimal set.
      bool helps = false;
      for (int t = std::max(iv.start + startup, 0); t < iv.end; ++t) helps |= ready[t] < need[t];
      if (!helps) continue;
      for (int t = std::max(iv.start + startup, 0); t < iv.end; ++t) ++ready[t];
      self(self, i, cost + iv.cost);
      for (int t = std::max(iv.start + startup, 0); t < iv.end; ++t) --ready[t];
    }
  };
  search(search, 0, 0);
  return best;
}

TEST(OracleProperty, NoFeasibleScheduleIsCheaperOnSmallCasesByBruteForce) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 60; ++trial) {
    const int steps = 3 + static_cast<int>(rng() % 5);  // 3..7
    const int startup = static_cast<int>(rng() % 4);    // 0..3 steps
    std::vector<int> need(static_cast<size_t>(steps));
    for (int& n : need) n = static_cast<int>(rng() % 3);  // 0..2
    const std::vector<int> schedule = internal::oracle_schedule(need, startup);
    int oracle_cost = 0;
    for (int r : schedule) oracle_cost += r;
    const int brute = brute_force_min_cost(need, startup);
    ASSERT_EQ(oracle_cost, brute) << "trial " << trial << " startup " << startup << " need "
                                  << ::testing::PrintToString(need);
  }
}

TEST(OracleProperty, PlannedCostIsTheScheduleTimesTheStep) {
  OraclePolicy o(kStart, 30s, {{"a", {150, 0, 0, 0, 250}}, {"b", {50, 50}}});
  o.init({spec("a", 30s), spec("b", 30s, 1)});
  EXPECT_THAT(o.schedule("a"), ElementsAreArray({2, 0, 0, 3, 3}));
  EXPECT_THAT(o.schedule("b"), ElementsAreArray({1, 1}));
  EXPECT_DOUBLE_EQ(o.planned_replica_seconds(), (2 + 3 + 3 + 1 + 1) * 30.0);
}

}  // namespace
}  // namespace prescale::scaling
