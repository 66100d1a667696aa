// Cases re-derived from kubernetes/kubernetes pkg/controller/podautoscaler:
// replica_calculator_test.go (TestReplicaCalc*, TestGroupPods) and horizontal_test.go
// (TestNormalizeDesiredReplicas*, TestConvertDesiredReplicasWithRules, TestScalingWithRules,
// TestStoreScaleEvents, TestCalculateScale*Limit*, and controller cases such as TestScaleUp).
//
// Upstream's fixture gives each pod two containers with the same request and usage; here a pod
// has one, so the utilisations are the same and the raw average value is half of upstream's.
#include "scaling/hpa.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

// The cases below name only the fields that differ from the fixture's defaults (designated
// initializers), as upstream's test tables do.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace prescale::scaling {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Phase = PodSample::Phase;

// Upstream's test constants (defaultTesting*).
constexpr double kTolerance = 0.1;
constexpr Clock::Duration kCpuInit = 2min;
constexpr Clock::Duration kReadinessDelay = 10s;

const Clock::TimePoint kEpoch{};
const Clock::TimePoint kNow = kEpoch + 10h;

Clock::TimePoint hot_start() { return kNow; }          // hotCPUCreationTime()
Clock::TimePoint cool_start() { return kNow - 3min; }  // coolCPUCreationTime()

// replicaCalcTestCase: pods start at the epoch (long ago), are Ready since the epoch, and their
// metrics carry the epoch as timestamp over a one-minute window.
struct CalcCase {
  int current = 0;
  std::vector<double> requests;  // millicores, per pod
  std::vector<double> levels;    // usage of the first levels.size() pods; the others are missing
  std::vector<bool> ready;
  std::vector<Phase> phases;
  std::vector<bool> deleted;
  std::vector<Clock::TimePoint> start;

  std::vector<PodSample> pods() const {
    const size_t n = std::max(static_cast<size_t>(current), phases.size());
    std::vector<PodSample> out(n);
    for (size_t i = 0; i < n; ++i) {
      PodSample& p = out[i];
      p.name = "test-pod-" + std::to_string(i);
      p.ready = i < ready.size() ? ready[i] : true;
      p.phase = i < phases.size() ? phases[i] : Phase::kRunning;
      p.being_deleted = i < deleted.size() && deleted[i];
      p.start_time = i < start.size() ? start[i] : kEpoch;
      p.ready_transition_time = kEpoch;
      p.metric_timestamp = kEpoch;
      p.metric_window = 1min;
      p.cpu_request_millicores = i < requests.size() ? requests[i] : 0;
      if (i < levels.size()) p.cpu_usage_millicores = levels[i];
    }
    return out;
  }

  ReplicaCalculation run(int target) const {
    const std::vector<PodSample> p = pods();
    return calc_cpu_replicas(kNow, current, target, kTolerance, p, kCpuInit, kReadinessDelay);
  }
};

std::vector<double> ones(size_t n) { return std::vector<double>(n, 1000.0); }

void expect_calc(const ReplicaCalculation& got, int replicas, int utilization) {
  EXPECT_TRUE(got.valid) << got.reason;
  EXPECT_EQ(got.replicas, replicas) << got.reason;
  EXPECT_EQ(got.utilization_percent, utilization) << got.reason;
}

// --- replica calculator --------------------------------------------------------------------

TEST(HpaReplicaCalc, ScaleUp) {  // TestReplicaCalcScaleUp
  const CalcCase c{.current = 3, .requests = ones(3), .levels = {300, 500, 700}};
  const ReplicaCalculation r = c.run(30);
  expect_calc(r, 5, 50);
  EXPECT_EQ(r.raw_average_millicores, 500);
}

TEST(HpaReplicaCalc, ScaleUpUnreadyLessScale) {  // TestReplicaCalcScaleUpUnreadyLessScale
  const CalcCase c{
      .current = 3, .requests = ones(3), .levels = {300, 500, 700}, .ready = {false, true, true}};
  const ReplicaCalculation r = c.run(30);
  expect_calc(r, 4, 60);
  EXPECT_EQ(r.raw_average_millicores, 600);
}

TEST(HpaReplicaCalc, ScaleUpHotCpuLessScale) {  // TestReplicaCalcScaleUpHotCpuLessScale
  const CalcCase c{.current = 3,
                   .requests = ones(3),
                   .levels = {300, 500, 700},
                   .start = {hot_start(), cool_start(), cool_start()}};
  expect_calc(c.run(30), 4, 60);
}

TEST(HpaReplicaCalc, ScaleUpUnreadyNoScale) {  // TestReplicaCalcScaleUpUnreadyNoScale
  const CalcCase c{
      .current = 3, .requests = ones(3), .levels = {400, 500, 700}, .ready = {true, false, false}};
  const ReplicaCalculation r = c.run(30);
  expect_calc(r, 3, 40);
  EXPECT_EQ(r.raw_average_millicores, 400);
}

TEST(HpaReplicaCalc, ScaleHotCpuNoScale) {  // TestReplicaCalcScaleHotCpuNoScale
  const CalcCase c{.current = 3,
                   .requests = ones(3),
                   .levels = {400, 500, 700},
                   .ready = {true, false, false},
                   .start = {cool_start(), hot_start(), hot_start()}};
  expect_calc(c.run(30), 3, 40);
}

TEST(HpaReplicaCalc, ScaleUpIgnoresFailedPods) {  // TestReplicaCalcScaleUpIgnoresFailedPods
  const CalcCase c{.current = 2,
                   .requests = ones(4),
                   .levels = {500, 700},
                   .ready = {true, true, false, false},
                   .phases = {Phase::kRunning, Phase::kRunning, Phase::kFailed, Phase::kFailed}};
  expect_calc(c.run(30), 4, 60);
}

TEST(HpaReplicaCalc, ScaleUpIgnoresDeletionPods) {  // TestReplicaCalcScaleUpIgnoresDeletionPods
  const CalcCase c{.current = 2,
                   .requests = ones(4),
                   .levels = {500, 700},
                   .ready = {true, true, false, false},
                   .phases = std::vector<Phase>(4, Phase::kRunning),
                   .deleted = {false, false, true, true}};
  expect_calc(c.run(30), 4, 60);
}

TEST(HpaReplicaCalc, ScaleDown) {  // TestReplicaCalcScaleDown
  const CalcCase c{.current = 5, .requests = ones(5), .levels = {100, 300, 500, 250, 250}};
  const ReplicaCalculation r = c.run(50);
  expect_calc(r, 3, 28);
  EXPECT_EQ(r.raw_average_millicores, 280);
}

TEST(HpaReplicaCalc, ScaleDownExcludeUnreadyPods) {  // TestReplicaCalcScaleDownExcludeUnreadyPods
  const CalcCase c{.current = 5,
                   .requests = ones(5),
                   .levels = {100, 300, 500, 250, 250},
                   .ready = {true, true, true, false, false}};
  expect_calc(c.run(50), 2, 30);
}

TEST(HpaReplicaCalc, ScaleDownExcludeUnscheduledPods) {  // ...ScaleDownExcludeUnscheduledPods
  const CalcCase c{.current = 5,
                   .requests = ones(5),
                   .levels = {100},
                   .ready = {true, false, false, false, false},
                   .phases = {Phase::kRunning, Phase::kPending, Phase::kPending, Phase::kPending,
                              Phase::kPending}};
  expect_calc(c.run(50), 1, 10);
}

TEST(HpaReplicaCalc, ScaleDownIgnoreHotCpuPods) {  // TestReplicaCalcScaleDownIgnoreHotCpuPods
  const CalcCase c{.current = 5,
                   .requests = ones(5),
                   .levels = {100, 300, 500, 250, 250},
                   .start = {cool_start(), cool_start(), cool_start(), hot_start(), hot_start()}};
  expect_calc(c.run(50), 2, 30);
}

TEST(HpaReplicaCalc, ScaleDownIgnoresFailedAndDeletedPods) {
  // TestReplicaCalcScaleDownIgnoresFailedPods and TestReplicaCalcScaleDownIgnoresDeletionPods.
  const CalcCase failed{
      .current = 5,
      .requests = ones(7),
      .levels = {100, 300, 500, 250, 250},
      .ready = {true, true, true, true, true, false, false},
      .phases = {Phase::kRunning, Phase::kRunning, Phase::kRunning, Phase::kRunning,
                 Phase::kRunning, Phase::kFailed, Phase::kFailed}};
  expect_calc(failed.run(50), 3, 28);
  const CalcCase deleted{.current = 5,
                         .requests = ones(7),
                         .levels = {100, 300, 500, 250, 250},
                         .ready = {true, true, true, true, true, false, false},
                         .phases = std::vector<Phase>(7, Phase::kRunning),
                         .deleted = {false, false, false, false, false, true, true}};
  expect_calc(deleted.run(50), 3, 28);
}

TEST(HpaReplicaCalc, Tolerance) {  // TestReplicaCalcTolerance
  const CalcCase c{.current = 3, .requests = {900, 1000, 1100}, .levels = {1010, 1030, 1020}};
  expect_calc(c.run(100), 3, 102);
}

TEST(HpaReplicaCalc, ComputedToleranceAlgImplementation) {
  // TestReplicaCalcComputedToleranceAlgImplementation: 10 pods using 150m of ~300m each.
  CalcCase c{.current = 10,
             .requests = {400, 200, 310, 290, 302, 298, 301, 299, 300, 300},
             .levels = std::vector<double>(10, 150)};
  // target = 1 / (2 × (1 − 0.1)) + 0.01 → 56 %; 50/56 is just outside the tolerance.
  expect_calc(c.run(56), 9, 50);
  // + 0.004 instead → 55 %; 50/55 is inside it.
  expect_calc(c.run(55), 10, 50);
}

TEST(HpaReplicaCalc, RatioExactlyOnePlusToleranceIsWithin) {
  // Upstream replica_calculator.go Tolerances.isWithin: `ratio <= 1.0 + t.scaleUp`. 88 % against
  // 80 % is 1.1 == 1.0 + 0.1 in doubles (while |1 - 1.1| = 0.10000000000000009 > 0.1).
  const CalcCase c{.current = 10, .requests = ones(10), .levels = std::vector<double>(10, 880)};
  expect_calc(c.run(80), 10, 88);
  // The same rule for External AverageValue: 110 / (10 x 10) = 1.1.
  EXPECT_EQ(calc_external_average_value_replicas(10, 110.0, 10.0, kTolerance), 10);
}

TEST(HpaReplicaCalc, MissingMetrics) {  // TestReplicaCalcMissingMetrics
  const CalcCase c{.current = 4, .requests = ones(4), .levels = {400, 95}};
  const ReplicaCalculation r = c.run(100);
  expect_calc(r, 3, 24);
  EXPECT_EQ(r.raw_average_millicores, 247);  // upstream 495 with two containers per pod
}

TEST(HpaReplicaCalc, MissingMetricsNoChange) {
  // TestReplicaCalcMissingMetricsNoChangeEq / Gt / Lt.
  expect_calc(CalcCase{.current = 2, .requests = ones(2), .levels = {1000}}.run(100), 2, 100);
  expect_calc(CalcCase{.current = 2, .requests = ones(2), .levels = {1900}}.run(100), 2, 190);
  expect_calc(CalcCase{.current = 2, .requests = ones(2), .levels = {600}}.run(100), 2, 60);
}

TEST(HpaReplicaCalc, MissingMetricsUnreadyChange) {  // ...MissingMetricsUnreadyChange
  const CalcCase c{
      .current = 3, .requests = ones(3), .levels = {100, 450}, .ready = {false, true, true}};
  expect_calc(c.run(50), 3, 45);
}

TEST(HpaReplicaCalc, MissingMetricsHotCpuNoChange) {  // ...MissingMetricsHotCpuNoChange
  const CalcCase c{.current = 3,
                   .requests = ones(3),
                   .levels = {100, 450},
                   .start = {hot_start(), cool_start(), cool_start()}};
  expect_calc(c.run(50), 3, 45);
}

TEST(HpaReplicaCalc, MissingMetricsUnreadyScaleUp) {
  // TestReplicaCalcMissingMetricsUnreadyScaleUp and ...HotCpuScaleUp: on a scale-up both the
  // missing and the unready pod count as using nothing.
  const CalcCase unready{
      .current = 3, .requests = ones(3), .levels = {100, 2000}, .ready = {false, true, true}};
  expect_calc(unready.run(50), 4, 200);
  const CalcCase hot{.current = 3,
                     .requests = ones(3),
                     .levels = {100, 2000},
                     .ready = {false, true, true},
                     .start = {hot_start(), cool_start(), cool_start()}};
  expect_calc(hot.run(50), 4, 200);
}

TEST(HpaReplicaCalc, MissingMetricsUnreadyScaleDown) {  // ...MissingMetricsUnreadyScaleDown
  const CalcCase c{.current = 4,
                   .requests = ones(4),
                   .levels = {100, 100, 100},
                   .ready = {false, true, true, true}};
  expect_calc(c.run(50), 3, 10);
}

TEST(HpaReplicaCalc, MissingMetricsScaleDownTargetOver100) {
  // TestReplicaCalcMissingMetricsScaleDownTargetOver100: a missing pod counts at the target
  // (300 % of its request), not at 100 %.
  const CalcCase c{.current = 4,
                   .requests = {1000, 1000, 2000, 2000},
                   .levels = {200, 100, 100},
                   .ready = {false, true, true, true}};
  expect_calc(c.run(300), 2, 6);
}

TEST(HpaReplicaCalc, DuringRollingUpdateWithMaxSurge) {  // ...DuringRollingUpdateWithMaxSurge
  const CalcCase c{.current = 2,
                   .requests = ones(3),
                   .levels = {100, 100},
                   .phases = std::vector<Phase>(3, Phase::kRunning)};
  expect_calc(c.run(50), 2, 10);
}

TEST(HpaReplicaCalc, ErrorsAreInvalid) {
  // TestReplicaCalcEmptyMetrics, TestReplicaCalcEmptyCPURequest, and no pods at all.
  const ReplicaCalculation empty = CalcCase{.current = 4, .requests = ones(3)}.run(100);
  EXPECT_FALSE(empty.valid);
  EXPECT_THAT(empty.reason, HasSubstr("no metrics returned from resource metrics API"));
  const ReplicaCalculation no_request = CalcCase{.current = 1, .levels = {200}}.run(100);
  EXPECT_FALSE(no_request.valid);
  EXPECT_THAT(no_request.reason, HasSubstr("missing request for cpu"));
  EXPECT_FALSE(CalcCase{}.run(100).valid);
  // Every pod unready: nothing to compute on.
  const ReplicaCalculation unready = CalcCase{
      .current = 2,
      .requests = ones(2),
      .levels = {500, 500},
      .ready = {false, false}}.run(50);
  EXPECT_FALSE(unready.valid);
  EXPECT_THAT(unready.reason, HasSubstr("pods might be unready"));
}

// --- groupPods --------------------------------------------------------------------------------

std::vector<std::string> names(const std::vector<PodSample>& pods, const std::vector<size_t>& idx) {
  std::vector<std::string> out;
  for (size_t i : idx) out.push_back(pods[i].name);
  return out;
}

TEST(HpaGroupPods, InitializationPeriodRules) {  // TestGroupPods
  auto pod = [](std::string name, Clock::Duration started_ago, Clock::Duration transition_ago,
                bool ready, Clock::Duration sample_ago, Clock::Duration window) {
    PodSample p;
    p.name = std::move(name);
    p.phase = Phase::kSucceeded;  // upstream's cases use Succeeded: treated like Running
    p.start_time = kNow - started_ago;
    p.ready_transition_time = kNow - transition_ago;
    p.ready = ready;
    p.cpu_usage_millicores = 1;
    p.metric_timestamp = kNow - sample_ago;
    p.metric_window = window;
    return p;
  };
  const std::vector<PodSample> pods = {
      // ready pod with fresh metrics during initialization period
      pod("fresh", 1min, 30s, true, 0s, 30s),
      // ready pod without fresh metrics during initialization period
      pod("stale", 1min, 30s, true, 0s, 60s),
      // unready pod that became unready 9m54s ago, 10 min after start: never ready
      pod("never-ready", 10min, 9min + 54s, false, 0s, 30s),
      // ready pod without fresh metrics after initialization period
      pod("old-sample", 3min, 3min, true, 2min, 1min),
      // unready pod that was ready after initialization period
      pod("was-ready", 10min, 9min, false, 0s, 30s),
      // transition exactly start + readiness delay: not "never been ready"
      pod("boundary", 10min, 9min + 50s, false, 0s, 30s),
  };
  const internal::PodGroups g = internal::group_pods(kNow, pods, kCpuInit, kReadinessDelay);
  EXPECT_THAT(names(pods, g.ready), ElementsAre("fresh", "old-sample", "was-ready", "boundary"));
  EXPECT_THAT(names(pods, g.unready), ElementsAre("stale", "never-ready"));
  EXPECT_TRUE(g.missing.empty());
  EXPECT_TRUE(g.ignored.empty());
}

TEST(HpaGroupPods, PendingMissingDeletedFailed) {  // TestGroupPods
  std::vector<PodSample> pods(5);
  pods[0].name = "unscheduled";
  pods[0].phase = Phase::kPending;
  pods[1].name = "deleted";
  pods[1].phase = Phase::kPending;
  pods[1].being_deleted = true;
  pods[1].cpu_usage_millicores = 1;
  pods[2].name = "failed";
  pods[2].phase = Phase::kFailed;
  pods[2].cpu_usage_millicores = 1;
  pods[3].name = "epicurus";  // no metric
  pods[3].start_time = kNow - 3min;
  pods[4].name = "niccolo";
  pods[4].start_time = kNow - 3min;
  pods[4].ready_transition_time = kNow - 3min;
  pods[4].cpu_usage_millicores = 1;
  const internal::PodGroups g = internal::group_pods(kNow, pods, kCpuInit, kReadinessDelay);
  EXPECT_THAT(names(pods, g.ready), ElementsAre("niccolo"));
  EXPECT_THAT(names(pods, g.unready), ElementsAre("unscheduled"));
  EXPECT_THAT(names(pods, g.missing), ElementsAre("epicurus"));
  EXPECT_THAT(names(pods, g.ignored), ElementsAre("deleted", "failed"));
}

// --- normalisation without behavior -----------------------------------------------------------

std::vector<int> replicas_of(const std::vector<HpaRecommendation>& recs) {
  std::vector<int> out;
  for (const auto& r : recs) out.push_back(r.replicas);
  return out;
}

TEST(HpaLegacyNormalization, StabilizeRecommendation) {  // TestNormalizeDesiredReplicas
  struct Case {
    const char* name;
    std::vector<HpaRecommendation> recs;
    int desired, want, want_len;
  };
  const std::vector<Case> cases = {
      {"empty log", {}, 5, 5, 1},
      {"stabilize", {{4, kNow - 2min}, {5, kNow - 1min}}, 3, 5, 3},
      {"no stabilize", {{1, kNow - 2min}, {2, kNow - 1min}}, 3, 3, 3},
      {"no stabilize - old recommendations", {{10, kNow - 10min}, {9, kNow - 9min}}, 3, 3, 2},
      {"stabilize - old recommendations",
       {{10, kNow - 10min}, {4, kNow - 1min}, {5, kNow - 2min}, {9, kNow - 9min}},
       3,
       5,
       4},
  };
  for (Case c : cases) {
    EXPECT_EQ(internal::stabilize_legacy(c.recs, kNow, 5min, c.desired), c.want) << c.name;
    EXPECT_EQ(static_cast<int>(c.recs.size()), c.want_len) << c.name;
  }
}

TEST(HpaLegacyNormalization, ConvertDesiredReplicasWithRules) {
  // TestConvertDesiredReplicasWithRules.
  EXPECT_EQ(internal::clamp_legacy(5, 7, 3, 8).replicas, 7);
  const internal::Limited too_few = internal::clamp_legacy(3, 1, 2, 8);
  EXPECT_EQ(too_few.replicas, 2);
  EXPECT_THAT(too_few.reason, HasSubstr("TooFewReplicas"));
  EXPECT_EQ(internal::clamp_legacy(1, 0, 0, 10).replicas, 0);
  const internal::Limited too_many = internal::clamp_legacy(20, 1000, 1, 10);
  EXPECT_EQ(too_many.replicas, 10);
  EXPECT_THAT(too_many.reason, HasSubstr("TooManyReplicas"));
  const internal::Limited capped = internal::clamp_legacy(3, 1000, 1, 2000);
  EXPECT_EQ(capped.replicas, 6);  // calculateScaleUpLimit(3) = max(2 × 3, 4)
  EXPECT_THAT(capped.reason, HasSubstr("ScaleUpLimit"));
  EXPECT_EQ(internal::clamp_legacy(1, 1000, 1, 2000).replicas, 4);
}

// --- normalisation with behavior --------------------------------------------------------------

HpaBehavior windows(Clock::Duration up, Clock::Duration down) {
  HpaBehavior b = HpaBehavior::defaults();
  b.scale_up.stabilization_window = up;
  b.scale_down.stabilization_window = down;
  return b;
}

TEST(HpaBehaviorNormalization, StabilizeWithBehaviors) {
  // TestNormalizeDesiredReplicasWithBehavior.
  struct Case {
    const char* name;
    std::vector<HpaRecommendation> recs;
    int current, desired, want;
    std::vector<int> want_recs;
    Clock::Duration up, down;
  };
  // clang-format off
  const std::vector<Case> cases = {
      {"empty recommendations for scaling down", {}, 100, 5, 5, {5}, 0s, 0s},
      {"simple scale down stabilization",
       {{4, kNow - 2min}, {5, kNow - 1min}}, 100, 3, 5, {4, 5, 3}, 0s, 3min},
      {"simple scale up stabilization",
       {{4, kNow - 2min}, {5, kNow - 1min}}, 1, 7, 4, {4, 5, 7}, 5min, 0s},
      {"no scale down stabilization",
       {{1, kNow - 2min}, {2, kNow - 1min}}, 100, 3, 3, {1, 2, 3}, 5min, 0s},
      {"no scale up stabilization",
       {{4, kNow - 2min}, {5, kNow - 1min}}, 1, 3, 3, {4, 5, 3}, 0s, 5min},
      {"no scale down stabilization, reuse recommendation element",
       {{10, kNow - 10min}, {9, kNow - 9min}}, 100, 3, 3, {10, 3}, 0s, 0s},
      {"no scale up stabilization, reuse recommendation element",
       {{10, kNow - 10min}, {9, kNow - 9min}}, 1, 100, 100, {10, 100}, 0s, 0s},
      {"scale down stabilization, reuse one of obsolete recommendation element",
       {{10, kNow - 10min}, {4, kNow - 1min}, {5, kNow - 2min}, {9, kNow - 9min}},
       100, 3, 5, {10, 4, 5, 3}, 0s, 3min},
      {"scale up stabilization, reuse one of obsolete recommendation element",
       {{10, kNow - 100min}, {6, kNow - 1min}, {5, kNow - 2min}, {9, kNow - 3min}},
       1, 100, 5, {100, 6, 5, 9}, 300s, 0s},
      {"scale up and down stabilization, do not scale up when prenormalized rec goes down",
       {{2, kNow - 100min}, {3, kNow - 3min}}, 2, 1, 2, {}, 300s, 300s},
      {"scale up and down stabilization, do not scale down when prenormalized rec goes up",
       {{2, kNow - 100min}, {1, kNow - 3min}}, 2, 3, 2, {}, 300s, 300s},
  };
  // clang-format on
  for (Case c : cases) {
    EXPECT_EQ(internal::stabilize_with_behavior(c.recs, kNow, windows(c.up, c.down), c.current,
                                                c.desired),
              c.want)
        << c.name;
    if (!c.want_recs.empty()) {
      EXPECT_EQ(replicas_of(c.recs), c.want_recs) << c.name;
    }
  }
}

// generateScalingRules(pods, podsPeriod, percent, percentPeriod, stabilizationWindow).
HpaScalingRules rules(int pods, int pods_period, int percent, int percent_period, int window) {
  HpaScalingRules r;
  r.stabilization_window = std::chrono::seconds(window);
  r.select_policy = HpaScalingRules::Select::kMax;
  if (pods != 0) {
    r.policies.push_back({HpaScalingPolicy::Type::kPods, pods, std::chrono::seconds(pods_period)});
  }
  if (percent != 0) {
    r.policies.push_back(
        {HpaScalingPolicy::Type::kPercent, percent, std::chrono::seconds(percent_period)});
  }
  return r;
}

// generateEventsUniformDistribution: events spread over the last `period_seconds`, each in the
// middle of its segment.
std::vector<HpaScaleEvent> uniform_events(std::vector<int> changes, int period_seconds) {
  std::vector<HpaScaleEvent> out;
  const double segment = static_cast<double>(period_seconds) / static_cast<double>(changes.size());
  for (size_t i = 0; i < changes.size(); ++i) {
    const double ago = period_seconds - segment * static_cast<double>(i + 1) + segment / 2;
    out.push_back({changes[i], kNow - std::chrono::seconds(static_cast<int>(ago)), false});
  }
  return out;
}

TEST(HpaBehaviorNormalization, ScalingWithRules) {  // TestScalingWithRules
  struct Case {
    const char* name;
    std::vector<HpaScaleEvent> up_events, down_events;
    int min, max;
    std::optional<HpaScalingRules> up, down;  // nullopt: the API defaults
    int current, desired, want;
    const char* condition;
  };
  const HpaBehavior d = HpaBehavior::defaults();
  // clang-format off
  const std::vector<Case> cases = {
      {"prenormalized desired replicas within range", {}, {}, 3, 8, {}, {}, 5, 7, 7,
       "DesiredWithinRange"},
      {"prenormalized desired replicas < minReplicas", {}, {}, 2, 8, {}, {}, 3, 1, 2,
       "TooFewReplicas"},
      {"within range when minReplicas is 0", {}, {}, 0, 10, {}, {}, 1, 0, 0,
       "DesiredWithinRange"},
      {"maxReplicas is the limit because maxReplicas < scaleUpLimit", {}, {}, 1, 10, {}, {}, 20,
       1000, 10, "TooManyReplicas"},
      {"desired replica count is more than the maximum replica count", {}, {}, 100, 150, {}, {},
       100, 1000, 150, "TooManyReplicas"},
      {"scaleUpLimit < maxReplicas with user policies", {}, {}, 1, 2000, rules(0, 0, 1, 60, 0),
       {}, 3, 1000, 4, "ScaleUpLimit"},
      {"scaleDownLimit > minReplicas with user defined policies", {}, {}, 3, 2000, {},
       rules(20, 60, 0, 0, 0), 1000, 3, 980, "ScaleDownLimit"},
      {"scaleUp with default behavior", {}, {}, 1, 1000, {}, {}, 10, 50, 20, "ScaleUpLimit"},
      {"scaleUp with pods policy larger than percent policy", {}, {}, 1, 1000,
       rules(100, 60, 100, 60, 0), {}, 10, 500, 110, "ScaleUpLimit"},
      {"scaleUp with percent policy larger than pods policy", {}, {}, 1, 1000,
       rules(2, 60, 100, 60, 0), {}, 10, 500, 20, "ScaleUpLimit"},
      {"scaleUp with large pod policy", {}, {}, 1, 1000, rules(100, 60, 0, 0, 0), {}, 10, 50, 50,
       "DesiredWithinRange"},
      {"scaleUp with large percent policy", {}, {}, 1, 1000, rules(10000, 60, 0, 0, 0), {}, 10,
       50, 50, "DesiredWithinRange"},
      {"scaleUp with pod policy limitation", {}, {}, 1, 1000, rules(30, 60, 0, 0, 0), {}, 10, 50,
       40, "ScaleUpLimit"},
      {"scaleUp with percent policy limitation", {}, {}, 1, 1000, rules(0, 0, 200, 60, 0), {}, 10,
       50, 30, "ScaleUpLimit"},
      {"scaleDown with percent policy larger than pod policy", {}, {}, 1, 1000, {},
       rules(20, 60, 1, 60, 300), 100, 2, 80, "ScaleDownLimit"},
      {"scaleDown with pod policy larger than percent policy", {}, {}, 1, 1000, {},
       rules(2, 60, 1, 60, 300), 100, 2, 98, "ScaleDownLimit"},
      {"scaleDown with MinReplicas limitation with large pod policy", {}, {}, 1, 1000, {},
       rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"},
      {"scaleDown with MinReplicas limitation with large percent policy", {}, {}, 5, 1000, {},
       rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"},
      {"scaleDown with pod policy limitation", {}, {}, 1, 1000, {}, rules(5, 60, 0, 0, 300), 10,
       2, 5, "ScaleDownLimit"},
      {"scaleDown with percent policy limitation", {}, {}, 1, 1000, {}, rules(0, 0, 50, 60, 300),
       10, 5, 5, "DesiredWithinRange"},
      {"scaleUp with MaxReplicas limitation with large pod policy and events",
       uniform_events({1, 5, 9}, 120), {}, 1, 200, rules(300, 60, 0, 0, 0), {}, 100, 500, 200,
       "TooManyReplicas"},
      {"scaleUp with MaxReplicas limitation with large percent policy and events",
       uniform_events({1, 5, 9}, 120), {}, 1, 200, rules(0, 0, 10000, 60, 0), {}, 100, 500, 200,
       "TooManyReplicas"},
      {"scaleUp with currentReplicas limitation with a lot of recent scale up events",
       uniform_events({1, 5, 9}, 120), {}, 1, 1000, rules(5, 120, 0, 0, 0), {}, 100, 500, 100,
       "ScaleUpLimit"},
      {"scaleUp with pod policy and previous scale up events", uniform_events({1, 5, 9}, 120), {},
       1, 1000, rules(150, 120, 0, 0, 0), {}, 100, 500, 235, "ScaleUpLimit"},
      {"scaleUp with percent policy and previous scale up events",
       uniform_events({1, 5, 9}, 120), {}, 1, 1000, rules(0, 0, 200, 120, 0), {}, 100, 500, 255,
       "ScaleUpLimit"},
      {"scaleUp with percent policy and previous scale up and down events",
       uniform_events({4}, 120), uniform_events({2}, 120), 1, 1000, rules(0, 0, 300, 300, 0), {},
       6, 24, 16, "ScaleUpLimit"},
      {"scaleDown with default policy and previous events", {}, uniform_events({1, 5, 9}, 120), 1,
       1000, {}, {}, 10, 5, 5, "DesiredWithinRange"},
      {"scaleDown with MinReplicas=nil limitation with large pod policy and previous events", {},
       uniform_events({1, 5, 9}, 120), 1, 1000, {}, rules(115, 120, 0, 0, 300), 100, 0, 1,
       "TooFewReplicas"},
      {"scaleDown with MinReplicas limitation with large pod policy and previous events", {},
       uniform_events({1, 5, 9}, 120), 5, 1000, {}, rules(130, 120, 0, 0, 300), 100, 0, 5,
       "TooFewReplicas"},
      {"scaleDown with MinReplicas limitation with large percent policy and previous events", {},
       uniform_events({1, 5, 9}, 120), 5, 1000, {}, rules(0, 0, 100, 120, 300), 100, 2, 5,
       "TooFewReplicas"},
      {"scaleDown with pod policy limitation and previous events", {},
       uniform_events({1, 5, 9}, 120), 1, 1000, {}, rules(5, 120, 0, 0, 300), 100, 2, 100,
       "ScaleDownLimit"},
      {"scaleDown with percent policy limitation and previous events", {},
       uniform_events({2, 4, 6}, 120), 1, 1000, {}, rules(0, 0, 50, 120, 300), 100, 0, 56,
       "ScaleDownLimit"},
      {"scaleDown with percent policy and previous scale up and down events",
       uniform_events({2}, 120), uniform_events({4}, 120), 1, 1000, {}, rules(0, 0, 50, 180, 0),
       10, 1, 6, "ScaleDownLimit"},
      {"scaleDown with previous events preventing further scale down", {},
       uniform_events({10, 10, 10}, 120), 1, 1000, {}, rules(0, 0, 10, 120, 300), 100, 0, 100,
       "ScaleDownLimit"},
      {"scaleDown with previous events still allowing more scale down", {},
       uniform_events({10, 10, 10}, 120), 1, 1000, {}, rules(0, 0, 1000, 120, 300), 10, 5, 5,
       "DesiredWithinRange"},
      {"'outdated' flag for events for one behavior for up", uniform_events({8, 12, 9, 11}, 120),
       {}, 1, 1000, rules(1000, 60, 0, 0, 0), {}, 100, 200, 200, "DesiredWithinRange"},
      {"events not marked 'outdated' for two different policies for up",
       uniform_events({8, 12, 9, 11}, 120), {}, 1, 1000, rules(1000, 120, 100, 60, 0), {}, 100,
       200, 200, "DesiredWithinRange"},
      {"events marked 'outdated' for two different policies for up",
       uniform_events({8, 12, 9, 11}, 120), {}, 1, 1000, rules(1000, 30, 100, 60, 0), {}, 100,
       200, 200, "DesiredWithinRange"},
      {"'outdated' flag for events for one behavior for down", {},
       uniform_events({8, 12, 9, 11}, 120), 1, 1000, {}, rules(1000, 60, 0, 0, 300), 100, 5, 5,
       "DesiredWithinRange"},
      {"events not marked 'outdated' for two different policies for down", {},
       uniform_events({8, 12, 9, 11}, 120), 1, 1000, {}, rules(1000, 120, 100, 60, 300), 100, 5,
       5, "DesiredWithinRange"},
      {"events marked 'outdated' for two different policies for down", {},
       uniform_events({8, 12, 9, 11}, 120), 1, 1000, {}, rules(1000, 30, 100, 60, 300), 100, 5, 5,
       "DesiredWithinRange"},
  };
  // clang-format on
  for (const Case& c : cases) {
    HpaBehavior b;
    b.scale_up = c.up.value_or(d.scale_up);
    b.scale_down = c.down.value_or(d.scale_down);
    const internal::Limited got = internal::limit_with_behavior(
        kNow, c.current, c.desired, c.min, c.max, b, c.up_events, c.down_events);
    EXPECT_EQ(got.replicas, c.want) << c.name;
    EXPECT_THAT(got.reason, HasSubstr(c.condition)) << c.name;
  }
}

TEST(HpaBehaviorNormalization, SelectPolicyMinLimits) {
  // TestCalculateScaleUpLimitWithScalingRules / TestCalculateScaleDownLimitWithBehaviors.
  HpaScalingRules r = rules(2, 60, 50, 60, 300);
  r.select_policy = HpaScalingRules::Select::kMin;
  EXPECT_EQ(internal::scale_up_limit(kNow, 1, {}, {}, r), 2);    // min(1 + 2, ceil(1.5))
  EXPECT_EQ(internal::scale_down_limit(kNow, 5, {}, {}, r), 3);  // max(5 − 2, int(2.5))
  r.select_policy = HpaScalingRules::Select::kDisabled;
  EXPECT_EQ(internal::scale_up_limit(kNow, 7, {}, {}, r), 7);
  EXPECT_EQ(internal::scale_down_limit(kNow, 7, {}, {}, r), 7);
}

TEST(HpaBehaviorNormalization, StoreScaleEvents) {  // TestStoreScaleEvents
  struct Case {
    const char* name;
    std::vector<HpaScaleEvent> prev;
    HpaScalingRules rules;
    int want_change_in_60s;
    std::vector<std::pair<int, bool>> want;  // (change, outdated)
  };
  // clang-format off
  const std::vector<Case> cases = {
      {"empty entries with two-policy-behavior", {}, rules(10, 60, 100, 60, 0), 0, {{5, false}}},
      {"one outdated entry to be replaced with behavior", {{7, kNow - 61s}},
       rules(10, 60, 100, 60, 0), 0, {{5, false}}},
      {"one actual entry to be not touched with behavior", {{7, kNow - 58s}},
       rules(10, 60, 100, 60, 0), 7, {{7, false}, {5, false}}},
      {"two entries, one of them to be replaced", {{7, kNow - 61s}, {6, kNow - 59s}},
       rules(10, 60, 0, 0, 0), 6, {{5, false}, {6, false}}},
      {"replace one entry, use policies with different periods",
       {{8, kNow - 29s}, {6, kNow - 59s}, {7, kNow - 61s}, {9, kNow - 61s}},
       rules(10, 60, 100, 30, 0), 14, {{8, false}, {6, false}, {7, true}, {5, false}}},
      {"two entries, both actual", {{7, kNow - 58s}, {6, kNow - 59s}}, rules(10, 120, 100, 30, 0),
       13, {{7, false}, {6, false}, {5, false}}},
  };
  // clang-format on
  for (Case c : cases) {
    EXPECT_EQ(internal::replicas_changed_in_period(c.prev, kNow, 60s), c.want_change_in_60s)
        << c.name;
    internal::store_scale_event(c.prev, kNow, c.rules, 5);
    std::vector<std::pair<int, bool>> got;
    for (const auto& e : c.prev) got.emplace_back(e.replica_change, e.outdated);
    EXPECT_EQ(got, c.want) << c.name;
  }
}

// --- the controller: reconcile ----------------------------------------------------------------

// Running, Ready pods well past start-up with the given CPU usage, like horizontal_test.go's
// reportedLevels / reportedCPURequests.
std::vector<PodSample> running(const std::vector<double>& levels,
                               const std::vector<double>& requests, Clock::TimePoint now) {
  std::vector<PodSample> pods(levels.size());
  for (size_t i = 0; i < levels.size(); ++i) {
    pods[i].name = "pod-" + std::to_string(i);
    pods[i].start_time = now - 1h;
    pods[i].ready_transition_time = now - 1h;
    pods[i].cpu_usage_millicores = levels[i];
    pods[i].metric_timestamp = now - 5s;
    pods[i].cpu_request_millicores = requests[i];
  }
  return pods;
}

HpaSpec legacy_spec(int min, int max, int target) {
  HpaSpec s;
  s.min_replicas = min;
  s.max_replicas = max;
  s.target_cpu_utilization_percent = target;
  return s;
}

TEST(HpaController, ScaleUpAndDown) {
  // TestScaleUp.
  HorizontalPodAutoscaler up(legacy_spec(2, 6, 30));
  const HpaDecision d = up.reconcile(kNow, 3, running({300, 500, 700}, ones(3), kNow));
  EXPECT_EQ(d.desired, 5) << d.reason;
  EXPECT_EQ(d.proposal, 5);
  EXPECT_EQ(d.utilization_percent, 50);

  // TestScaleDown (upstream starts from an empty recommendation log; here the first sync
  // records the current size, so the scale-down comes once that record leaves the window).
  HorizontalPodAutoscaler down(legacy_spec(2, 6, 50));
  const auto pods = running({100, 300, 500, 250, 250}, ones(5), kNow);
  EXPECT_EQ(down.reconcile(kNow - 5min - 1s, 5, pods).desired, 5);
  const HpaDecision later = down.reconcile(kNow, 5, pods);
  EXPECT_EQ(later.desired, 3) << later.reason;
}

TEST(HpaController, LegacyStabilizationKeepsMaxForFiveMinutes) {
  HorizontalPodAutoscaler hpa(legacy_spec(1, 10, 50));
  Clock::TimePoint t = kNow;
  // Busy: 4 pods at 100 % of request → 8.
  EXPECT_EQ(hpa.reconcile(t, 4, running({1000, 1000, 1000, 1000}, ones(4), t)).desired, 8);
  // Load falls to 10 %: the proposal is 2, but the maximum of the last 300 s is 8.
  int current = 8;
  for (t += 15s; t < kNow + 300s; t += 15s) {
    const HpaDecision d =
        hpa.reconcile(t, current, running(std::vector<double>(8, 100), ones(8), t));
    EXPECT_EQ(d.desired, 8) << "at " << to_seconds(t - kNow) << "s: " << d.reason;
    EXPECT_THAT(d.reason, HasSubstr("stabilized (max of last 300s)"));
  }
  // 300 s after the busy sync (a record exactly 300 s old still counts, as upstream's
  // !Before(cutoff)), then one sync later it is gone.
  EXPECT_EQ(hpa.reconcile(t, current, running(std::vector<double>(8, 100), ones(8), t)).desired, 8);
  t += 15s;
  const HpaDecision d = hpa.reconcile(t, current, running(std::vector<double>(8, 100), ones(8), t));
  EXPECT_EQ(d.desired, 2) << d.reason;
  // Events are only kept for `behavior`.
  EXPECT_TRUE(hpa.scale_up_events().empty());
  EXPECT_TRUE(hpa.scale_down_events().empty());
  // Recommendations are reused, not accumulated: at most one per sync in the window plus one.
  EXPECT_LE(hpa.recommendations().size(), 300u / 15u + 2u);
}

TEST(HpaController, LegacyUpscaleCap) {
  // TestUpscaleCap before `behavior`: at most max(2 × current, 4) per sync.
  HorizontalPodAutoscaler hpa(legacy_spec(1, 100, 10));
  const HpaDecision d = hpa.reconcile(kNow, 3, running({100, 200, 300}, {100, 100, 100}, kNow));
  EXPECT_EQ(d.proposal, 60);
  EXPECT_EQ(d.desired, 6);
  EXPECT_THAT(d.reason, HasSubstr("ScaleUpLimit"));
}

TEST(HpaController, UpscaleCapWithBehavior) {
  // TestUpscaleCap and TestUpscaleCapGreaterThanMaxReplicas: Percent 700 per 60 s.
  HpaSpec spec = legacy_spec(1, 100, 10);
  spec.behavior = HpaBehavior::defaults();
  spec.behavior->scale_up = rules(0, 0, 700, 60, 0);
  const auto pods = running({100, 200, 300}, {100, 100, 100}, kNow);
  EXPECT_EQ(HorizontalPodAutoscaler(spec).reconcile(kNow, 3, pods).desired, 24);
  spec.max_replicas = 20;
  const HpaDecision d = HorizontalPodAutoscaler(spec).reconcile(kNow, 3, pods);
  EXPECT_EQ(d.desired, 20);
  EXPECT_THAT(d.reason, HasSubstr("clamped to max 20"));
}

TEST(HpaController, MinMaxAndDisabled) {
  // TestMinReplicas: the proposal (1) is below min.
  {
    HorizontalPodAutoscaler hpa(legacy_spec(2, 5, 90));
    const HpaDecision d = hpa.reconcile(kNow, 3, running({10, 95, 10}, {900, 1000, 1100}, kNow));
    EXPECT_EQ(d.proposal, 1);
    EXPECT_EQ(d.desired, 3);  // the first sync's record of 3 holds it for the window...
    const HpaDecision later =
        hpa.reconcile(kNow + 301s, 3, running({10, 95, 10}, {900, 1000, 1100}, kNow + 301s));
    EXPECT_EQ(later.desired, 2) << later.reason;  // ...then min wins
    EXPECT_THAT(later.reason, HasSubstr("clamped to min 2"));
  }
  // TestMaxReplicas.
  EXPECT_EQ(HorizontalPodAutoscaler(legacy_spec(2, 5, 90))
                .reconcile(kNow, 3, running({8000, 9500, 1000}, {900, 1000, 1100}, kNow))
                .desired,
            5);
  // TestZeroReplicas: spec.replicas 0 with min > 0 disables autoscaling.
  const HpaDecision zero = HorizontalPodAutoscaler(legacy_spec(3, 5, 90)).reconcile(kNow, 0, {});
  EXPECT_EQ(zero.desired, 0);
  EXPECT_THAT(zero.reason, HasSubstr("disabled"));
  // TestTooFewReplicas / TestTooManyReplicas / TestScaleDownRCImmediately: no metrics needed.
  EXPECT_EQ(HorizontalPodAutoscaler(legacy_spec(3, 5, 90)).reconcile(kNow, 2, {}).desired, 3);
  EXPECT_EQ(HorizontalPodAutoscaler(legacy_spec(3, 5, 90)).reconcile(kNow, 10, {}).desired, 5);
  EXPECT_EQ(HorizontalPodAutoscaler(legacy_spec(2, 5, 50)).reconcile(kNow, 6, {}).desired, 5);
}

TEST(HpaController, InvalidMetricsKeepCurrent) {
  // A failing metric (here: no pod has a sample) leaves the scale alone and records nothing.
  HorizontalPodAutoscaler hpa(legacy_spec(1, 10, 50));
  std::vector<PodSample> pods = running({100, 100}, ones(2), kNow);
  for (auto& p : pods) p.cpu_usage_millicores.reset();
  const HpaDecision d = hpa.reconcile(kNow, 2, pods);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.proposal, -1);
  EXPECT_THAT(d.reason, HasSubstr("no change"));
  EXPECT_EQ(hpa.recommendations().size(), 1u);  // only the initial record of the current size
}

TEST(HpaController, DefaultBehaviorScaleUpRate) {
  // Default scale-up policies: max(+4 pods, +100 %) per 15 s, counted from the replica count at
  // the start of the period (an event exactly 15 s old is outside the period).
  HpaSpec spec = legacy_spec(1, 100, 50);
  spec.behavior = HpaBehavior::defaults();
  HorizontalPodAutoscaler hpa(spec);
  int current = 1;
  std::vector<int> seen;
  for (Clock::TimePoint t = kNow; t <= kNow + 60s; t += 15s) {
    // Always 10× the target per pod: the proposal is far above any limit.
    const HpaDecision d =
        hpa.reconcile(t, current, running(std::vector<double>(current, 5000), ones(current), t));
    seen.push_back(d.desired);
    current = d.desired;
  }
  EXPECT_THAT(seen, ElementsAre(5, 10, 20, 40, 80));
  EXPECT_FALSE(hpa.scale_up_events().empty());
}

TEST(HpaController, DefaultBehaviorScaleDownStabilizationThenRate) {
  HpaSpec spec = legacy_spec(1, 100, 50);
  spec.behavior = HpaBehavior::defaults();
  HorizontalPodAutoscaler hpa(spec);
  const int current = 10;
  // Load for 2 pods. The first sync records 10 (recordInitialRecommendation) and holds it for
  // 300 s; the next sync after that may go all the way (100 % per 15 s).
  Clock::TimePoint t = kNow;
  for (; t < kNow + 300s; t += 15s) {
    const HpaDecision d =
        hpa.reconcile(t, current, running(std::vector<double>(10, 100), ones(10), t));
    EXPECT_EQ(d.desired, 10) << d.reason;
  }
  const HpaDecision d =
      hpa.reconcile(t, current, running(std::vector<double>(10, 100), ones(10), t));
  EXPECT_EQ(d.desired, 2) << d.reason;
  EXPECT_EQ(hpa.scale_down_events().size(), 1u);
}

TEST(HpaController, CustomPoliciesSelectMinAndDisabled) {
  HpaSpec spec = legacy_spec(1, 100, 50);
  spec.behavior = HpaBehavior::defaults();
  spec.behavior->scale_up.select_policy = HpaScalingRules::Select::kMin;
  const auto busy = running(std::vector<double>(10, 5000), ones(10), kNow);
  // Min of (+4 pods, +100 %) from 10.
  const HpaDecision d = HorizontalPodAutoscaler(spec).reconcile(kNow, 10, busy);
  EXPECT_EQ(d.desired, 14);
  EXPECT_THAT(d.reason, HasSubstr("rate limited by Pods policy (4 per 15s)"));

  spec.behavior->scale_up.select_policy = HpaScalingRules::Select::kDisabled;
  EXPECT_EQ(HorizontalPodAutoscaler(spec).reconcile(kNow, 10, busy).desired, 10);

  // Scale-down: 1 pod per minute, no stabilisation.
  spec.behavior->scale_down = rules(1, 60, 0, 0, 0);
  HorizontalPodAutoscaler slow(spec);
  int current = 10;
  std::vector<int> seen;
  for (Clock::TimePoint t = kNow; t <= kNow + 120s; t += 15s) {
    current =
        slow.reconcile(t, current, running(std::vector<double>(current, 10), ones(current), t))
            .desired;
    seen.push_back(current);
  }
  // One pod at 0 s, the next once that event is 60 s old (strictly outside the period).
  EXPECT_THAT(seen, ElementsAre(9, 9, 9, 9, 8, 8, 8, 8, 7));
}

TEST(HpaController, ExternalAverageValue) {
  // TestReplicaCalcScaleUpPerPodCMExternal, ...ScaleDownPerPodCMExternal and
  // ...TolerancePerPodCMExternal (metric 8600m, per-pod targets 2150m, 2867m, 2900m).
  EXPECT_EQ(calc_external_average_value_replicas(3, 8.6, 2.15, kTolerance), 4);
  EXPECT_EQ(calc_external_average_value_replicas(5, 8.6, 2.867, kTolerance), 3);
  EXPECT_EQ(calc_external_average_value_replicas(3, 8.6, 2.9, kTolerance), 3);

  // KEDA-style: a queue of 100 messages, 5 per pod, starting from 2 replicas.
  HpaSpec spec = legacy_spec(1, 50, 80);
  spec.behavior = HpaBehavior::defaults();
  HorizontalPodAutoscaler hpa(spec);
  const HpaDecision d = hpa.reconcile_external(kNow, 2, 100, 5);
  EXPECT_EQ(d.proposal, 20);
  EXPECT_EQ(d.desired, 6);  // max(2 + 4, 2 × 2)
  EXPECT_EQ(hpa.reconcile_external(kNow + 15s, 6, 100, 5).desired, 12);
  EXPECT_EQ(hpa.reconcile_external(kNow + 30s, 12, 100, 5).desired, 20);
  EXPECT_EQ(hpa.reconcile_external(kNow + 45s, 20, 101, 5).desired, 20);  // within tolerance
}

TEST(HpaSpecValidation, RejectsWhatTheApiServerRejects) {
  EXPECT_TRUE(validate_hpa_spec(HpaSpec{}).has_value());
  HpaSpec with_behavior;
  with_behavior.behavior = HpaBehavior::defaults();
  EXPECT_TRUE(validate_hpa_spec(with_behavior).has_value());

  HpaSpec bad = with_behavior;
  bad.max_replicas = 0;
  EXPECT_FALSE(validate_hpa_spec(bad).has_value());
  bad = with_behavior;
  bad.behavior->scale_down.policies.clear();
  EXPECT_FALSE(validate_hpa_spec(bad).has_value());
  bad = with_behavior;
  bad.behavior->scale_up.stabilization_window = 3601s;
  EXPECT_FALSE(validate_hpa_spec(bad).has_value());
  bad = with_behavior;
  bad.behavior->scale_up.policies[0].period = 1801s;
  EXPECT_FALSE(validate_hpa_spec(bad).has_value());
  bad = with_behavior;
  bad.target_cpu_utilization_percent = 0;
  EXPECT_FALSE(validate_hpa_spec(bad).has_value());
}

TEST(HpaSpecValidation, DefaultsMatchUpstream) {
  const HpaSpec s;
  EXPECT_EQ(s.min_replicas, 1);
  EXPECT_EQ(s.target_cpu_utilization_percent, 80);
  EXPECT_DOUBLE_EQ(s.tolerance, 0.1);
  EXPECT_EQ(s.cpu_initialization_period, 5min);
  EXPECT_EQ(s.initial_readiness_delay, 30s);
  EXPECT_EQ(s.downscale_stabilization, 5min);
  const HpaBehavior b = HpaBehavior::defaults();
  EXPECT_EQ(b.scale_up.stabilization_window, 0s);
  ASSERT_EQ(b.scale_up.policies.size(), 2u);
  EXPECT_EQ(b.scale_up.policies[0].value, 4);
  EXPECT_EQ(b.scale_up.policies[1].value, 100);
  EXPECT_EQ(b.scale_down.stabilization_window, 300s);
  ASSERT_EQ(b.scale_down.policies.size(), 1u);
  EXPECT_EQ(b.scale_down.policies[0].type, HpaScalingPolicy::Type::kPercent);
  EXPECT_EQ(b.scale_down.policies[0].period, 15s);
}

}  // namespace
}  // namespace prescale::scaling
