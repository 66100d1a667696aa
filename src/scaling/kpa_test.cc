// Decider cases re-derived from knative/serving pkg/autoscaler/scaling/autoscaler_test.go
// (TestAutoscaler*, TestStartInPanicMode): those drive autoscaler.Scale with a fake metric client
// that returns fixed stable/panic averages, which is KnativeAutoscaler::decide here, comparing
// upstream's DesiredPodCount with Decision::decider_desired. Window-averaging cases follow the
// documented behaviour of pkg/autoscaler/aggregation/bucketing.go; the end-to-end cases feed
// per-second observations through scale().
#include "scaling/kpa.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace prescale::scaling {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const Clock::TimePoint kEpoch{};
const Clock::TimePoint kNow = kEpoch + 10h;

// newTestAutoscaler: target per pod, rates ×10 / ÷10, panic threshold 2.0, stable window 60 s,
// created while the revision has one ready pod (so not in panic). No bounds.
KpaSpec upstream_spec(double target) {
  KpaSpec s;
  s.target_concurrency = target;
  s.target_rps = target;
  s.max_scale_up_rate = 10;
  s.max_scale_down_rate = 10;
  s.panic_threshold_percentage = 200;
  s.stable_window = 60s;
  s.min_scale = 0;
  s.max_scale = 0;
  return s;
}

int decide(KnativeAutoscaler& a, Clock::TimePoint now, int ready, double stable, double panic) {
  return a.decide(now, ready, stable, panic).decider_desired;
}

// --- the decider (autoscaler_test.go) ---------------------------------------------------------

TEST(KpaDecider, ScaleDownDelay) {  // TestAutoscalerScaleDownDelay
  KpaSpec spec = upstream_spec(10);
  spec.panic_threshold_percentage = 10000;  // PanicThreshold 100: never panics
  spec.scale_down_delay = 5min;
  KnativeAutoscaler a(spec, kEpoch, 0);
  const Clock::TimePoint t = kEpoch;
  // simple: scale up, then five minutes at zero hold it; two seconds later it drops.
  EXPECT_EQ(decide(a, t + 2s, 0, 40, 40), 4);
  EXPECT_EQ(decide(a, t + 5min, 0, 0, 0), 4);
  const KnativeAutoscaler::Decision dropped = a.decide(t + 5min + 2s, 0, 0, 0);
  EXPECT_EQ(dropped.decider_desired, 0);
  // gradual: each decision scrolls out of the window on its own.
  EXPECT_EQ(decide(a, t + 9min, 0, 40, 40), 4);
  const KnativeAutoscaler::Decision held = a.decide(t + 10min, 0, 30, 30);
  EXPECT_EQ(held.decider_desired, 4);  // 4 still dominates
  EXPECT_THAT(held.reason, HasSubstr("scale-down delay 300s: holding 4"));
  EXPECT_EQ(decide(a, t + 11min, 0, 0, 0), 4);
  EXPECT_EQ(decide(a, t + 14min, 0, 0, 0), 3);  // 4 scrolls out
  EXPECT_EQ(decide(a, t + 15min, 0, 0, 0), 0);  // everything scrolled out
}

TEST(KpaDecider, ScaleDownDelayZero) {  // TestAutoscalerScaleDownDelayZero
  KpaSpec spec = upstream_spec(10);
  spec.panic_threshold_percentage = 10000;
  KnativeAutoscaler a(spec, kEpoch, 0);
  EXPECT_EQ(decide(a, kEpoch, 0, 40, 40), 4);
  EXPECT_EQ(decide(a, kEpoch + 500ms, 0, 20, 20), 2);
}

TEST(KpaDecider, StableModeIncrease) {
  // TestAutoscalerStableModeIncreaseWithConcurrencyDefault and ...WithRPS.
  KnativeAutoscaler a(upstream_spec(10), kNow, 1);
  EXPECT_EQ(decide(a, kNow, 1, 50, 10), 5);
  EXPECT_EQ(decide(a, kNow, 1, 100, 10), 10);

  KpaSpec rps = upstream_spec(10);
  rps.rps_mode = true;
  KnativeAutoscaler b(rps, kNow, 1);
  EXPECT_EQ(decide(b, kNow, 1, 50, 50), 5);
  EXPECT_EQ(decide(b, kNow, 1, 100, 99), 10);
}

TEST(KpaDecider, UnpanicAfterSlowIncrease) {  // TestAutoscalerUnpanicAfterSlowIncrease
  KnativeAutoscaler a(upstream_spec(1), kNow, 1);
  // Jump from 10 to 25 pods: 25 / 10 ≥ 2 starts panic.
  const KnativeAutoscaler::Decision start = a.decide(kNow, 10, 11, 25);
  EXPECT_EQ(start.decider_desired, 25);
  EXPECT_TRUE(start.panicking);
  EXPECT_THAT(start.reason, HasSubstr("entering panic"));
  // Half a stable window later, one pod added per cycle: below the threshold, still panicking.
  const KnativeAutoscaler::Decision mid = a.decide(kNow + 30s, 40, 30, 41);
  EXPECT_EQ(mid.decider_desired, 41);
  EXPECT_TRUE(mid.panicking);
  // A stable window (plus a tick) after panic started: leave panic, follow the stable value.
  const KnativeAutoscaler::Decision end = a.decide(kNow + 30s + 30s + 2s, 55, 50, 56);
  EXPECT_EQ(end.decider_desired, 50);
  EXPECT_FALSE(end.panicking);
  EXPECT_THAT(end.reason, HasSubstr("leaving panic"));
}

TEST(KpaDecider, ExtendPanicWindow) {  // TestAutoscalerExtendPanicWindow
  KnativeAutoscaler a(upstream_spec(1), kNow, 1);
  EXPECT_EQ(decide(a, kNow, 10, 11, 25), 25);
  // Still surging half a window later: 80 / 40 ≥ 2 moves the panic start to now.
  EXPECT_EQ(decide(a, kNow + 30s, 40, 30, 80), 80);
  // So 60 s after the first panic it still panics (and never scales down)...
  const KnativeAutoscaler::Decision held = a.decide(kNow + 62s, 80, 30, 30);
  EXPECT_TRUE(held.panicking);
  EXPECT_EQ(held.decider_desired, 80);
  // ...exactly a stable window after the extension too (upstream: panicTime + window Before now)...
  EXPECT_TRUE(a.decide(kNow + 90s, 80, 30, 30).panicking);
  // ...and leaves one tick later.
  const KnativeAutoscaler::Decision left = a.decide(kNow + 92s, 80, 30, 30);
  EXPECT_FALSE(left.panicking);
  EXPECT_EQ(left.decider_desired, 30);
}

TEST(KpaDecider, StableModeDecrease) {  // TestAutoscalerStableModeDecrease
  KnativeAutoscaler a(upstream_spec(10), kNow, 1);
  EXPECT_EQ(decide(a, kNow, 8, 100, 100), 10);
  EXPECT_EQ(decide(a, kNow, 8, 50, 50), 5);
}

TEST(KpaDecider, StableModeNoTrafficScaleToZero) {  // ...StableModeNoTrafficScaleToZero
  KnativeAutoscaler a(upstream_spec(10), kNow, 1);
  EXPECT_EQ(decide(a, kNow, 1, 1, 0), 1);
  EXPECT_EQ(decide(a, kNow, 1, 0, 0), 0);
}

TEST(KpaDecider, PanicModeExponentialTrackAndStabilize) {  // ...ExponentialTrackAndStabilize
  KnativeAutoscaler a(upstream_spec(1), kNow, 1);
  EXPECT_EQ(decide(a, kNow, 1, 6, 6), 6);
  EXPECT_EQ(decide(a, kNow, 6, 36, 36), 36);
  EXPECT_EQ(decide(a, kNow + 1s, 36, 216, 216), 216);
  EXPECT_EQ(decide(a, kNow + 1s, 216, 1296, 1296), 1296);
  const KnativeAutoscaler::Decision stable = a.decide(kNow + 2s, 1296, 1296, 1296);
  EXPECT_EQ(stable.decider_desired, 1296);
  EXPECT_TRUE(stable.panicking);
}

TEST(KpaDecider, ScaleTable) {  // TestAutoscalerScale
  struct Case {
    const char* label;
    double target;
    double stable, panic;
    int ready;
    double max_up, max_down;
    bool start_in_panic;  // panicTime 5 s ago, maxPanicPods = ready
    int want;
  };
  const std::vector<Case> cases = {
      {"AutoscalerNoDataAtZeroNoAutoscale", 10, 0, 0, 1, 10, 10, false, 0},
      {"AutoscalerStableModeUnlimitedTBC", 181, 21, 26, 1, 10, 10, false, 1},
      {"Autoscaler0TBC", 10, 50, 49, 1, 10, 10, false, 5},
      {"AutoscalerStableModeNoChange", 10, 50, 50, 1, 10, 10, false, 5},
      {"AutoscalerPanicStableLargerThanPanic", 1, 50, 30, 5, 10, 10, true, 50},
      {"AutoscalerPanicStableLessThanPanic", 1, 20, 30, 5, 10, 10, true, 30},
      {"AutoscalerStableModeNoChangeAlreadyScaled", 10, 50, 50, 5, 10, 10, false, 5},
      {"AutoscalerStableModeIncreaseWithSmallScaleUpRate", 1, 3, 3.1, 2, 1.1, 10, false, 3},
      {"AutoscalerStableModeDecreaseWithSmallScaleDownRate", 10, 1, 1, 100, 10, 1.1, false, 90},
      {"AutoscalerPanicModeDoublePodCount", 10, 50, 100, 1, 10, 10, false, 10},
  };
  for (const Case& c : cases) {
    KpaSpec spec = upstream_spec(c.target);
    spec.max_scale_up_rate = c.max_up;
    spec.max_scale_down_rate = c.max_down;
    KnativeAutoscaler a(spec, c.start_in_panic ? kNow - 5s : kNow, c.start_in_panic ? c.ready : 1);
    EXPECT_EQ(decide(a, kNow, c.ready, c.stable, c.panic), c.want) << c.label;
  }
}

TEST(KpaDecider, PanicThenUnpanicScaleDown) {  // TestAutoscalerPanicThenUnPanicScaleDown
  KnativeAutoscaler a(upstream_spec(10), kNow, 1);
  EXPECT_EQ(decide(a, kNow, 1, 100, 100), 10);
  const Clock::TimePoint panic_time = kNow + 1s;
  EXPECT_EQ(decide(a, panic_time, 10, 100, 1000), 100);
  // Traffic dropped off; the scale stays while panicking.
  const KnativeAutoscaler::Decision held = a.decide(panic_time + 30s, 10, 1, 1);
  EXPECT_EQ(held.decider_desired, 100);
  EXPECT_THAT(held.reason, HasSubstr("panic: no scale-down below 100"));
  // Scale down after the stable window.
  EXPECT_EQ(decide(a, panic_time + 61s, 10, 1, 1), 1);
}

// A window's running total a millionth below zero where nothing came (its floating sums): the
// reason says 0, not "-0.00" and "-0 stable".
TEST(KpaDecider, AnAverageAMillionthBelowZeroIsSaidAsZero) {
  KnativeAutoscaler a(upstream_spec(10), kNow, 1);
  const KnativeAutoscaler::Decision d = a.decide(kNow, 1, -1e-6, -0.0);
  EXPECT_THAT(d.reason, HasSubstr("stable concurrency 0.00, panic 0.00 / target 10.00 per pod -> "
                                  "0 stable, 0 panic pods"));
  EXPECT_EQ(d.reason.find("-0"), std::string::npos) << d.reason;
}

TEST(KpaDecider, RateLimits) {
  // TestAutoscalerRateLimitScaleUp: needs 100 pods, may only go ×10 per decision.
  KnativeAutoscaler up(upstream_spec(10), kNow, 1);
  const KnativeAutoscaler::Decision first = up.decide(kNow, 1, 1000, 1001);
  EXPECT_EQ(first.decider_desired, 10);
  EXPECT_THAT(first.reason, HasSubstr("scale-up rate limit 10"));
  EXPECT_EQ(decide(up, kNow, 10, 1000, 1001), 100);
  // TestAutoscalerRateLimitScaleDown: needs 1 pod, may only go ÷10 per decision.
  KnativeAutoscaler down(upstream_spec(10), kNow, 1);
  EXPECT_EQ(decide(down, kNow, 100, 1, 1), 10);
  EXPECT_EQ(decide(down, kNow, 10, 1, 1), 1);
}

TEST(KpaDecider, UseOnePodAsMinimumIfEndpointsNotFound) {
  // TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound: 0 ready pods count as 1 for the rates.
  KnativeAutoscaler a(upstream_spec(10), kNow, 1);
  EXPECT_EQ(decide(a, kNow, 0, 1000, 888), 10);
}

TEST(KpaDecider, StartInPanicMode) {  // TestStartInPanicMode
  for (int ready : {0, 1}) {
    KnativeAutoscaler a(upstream_spec(100), kNow, ready);
    EXPECT_FALSE(a.decide(kNow + 2s, ready, 0, 0).panicking) << ready;
  }
  // Created with 2 ready pods: in panic, holding 2 until a stable window has passed.
  KnativeAutoscaler a(upstream_spec(100), kNow, 2);
  const KnativeAutoscaler::Decision d = a.decide(kNow + 2s, 2, 0, 0);
  EXPECT_TRUE(d.panicking);
  EXPECT_EQ(d.decider_desired, 2);
  EXPECT_EQ(decide(a, kNow + 61s, 2, 0, 0), 0);
}

// --- the metric windows (aggregation/bucketing.go) --------------------------------------------

TEST(KpaWindow, PartialWindowAfterFirstWrite) {
  // "if firstWrite was 6 seconds ago, the average will be over these 6 seconds"
  KpaWindowAverager w(60s, KpaAggregation::kLinear);
  EXPECT_TRUE(w.is_empty(kNow));
  EXPECT_EQ(w.average(kNow), 0);
  for (int s = 0; s < 6; ++s) w.record(kNow + std::chrono::seconds(s), 10);
  EXPECT_FALSE(w.is_empty(kNow + 5s));
  EXPECT_DOUBLE_EQ(w.average(kNow + 5s), 10);
}

TEST(KpaWindow, GapsInsideTheWindowCountAsZero) {
  KpaWindowAverager w(10s, KpaAggregation::kLinear);
  w.record(kNow, 10);
  w.record(kNow + 4s, 10);
  EXPECT_DOUBLE_EQ(w.average(kNow + 4s), 4);  // 20 over 5 one-second buckets
}

TEST(KpaWindow, TrailingSecondsWithoutDataAreExcluded) {
  // "if the window is 60 seconds but we last received data 10 seconds ago, the window average
  // will be the average over the first 50 seconds"
  KpaWindowAverager w(60s, KpaAggregation::kLinear);
  for (int s = 0; s < 60; ++s) w.record(kNow + std::chrono::seconds(s), 6);
  EXPECT_DOUBLE_EQ(w.average(kNow + 59s), 6);
  EXPECT_DOUBLE_EQ(w.average(kNow + 69s), 6);
  // Exactly a window after the last write it is still not empty; one second later it is.
  EXPECT_FALSE(w.is_empty(kNow + 119s));
  EXPECT_TRUE(w.is_empty(kNow + 120s));
  EXPECT_EQ(w.average(kNow + 120s), 0);
}

TEST(KpaWindow, SameSecondAddsAndOldValuesAreDropped) {
  KpaWindowAverager w(60s, KpaAggregation::kLinear);
  w.record(kNow + 200ms, 3);
  w.record(kNow + 700ms, 4);
  EXPECT_DOUBLE_EQ(w.average(kNow + 900ms), 7);
  w.record(kNow - 61s, 1000);  // more than a window before the last write: ignored
  EXPECT_DOUBLE_EQ(w.average(kNow), 7);
  // A write after a whole window of silence starts a fresh partial window.
  w.record(kNow + 70s, 10);
  EXPECT_DOUBLE_EQ(w.average(kNow + 70s), 10);
}

TEST(KpaWindow, WeightedExponential) {
  // bucketing.go's example: with data [10, 10, 5, 5] (newest last) recent buckets dominate.
  // Four buckets give a smoothing coefficient of 1 − 0.0001^(1/4) = 0.9.
  KpaWindowAverager w(4s, KpaAggregation::kWeightedExponential);
  const double data[] = {10, 10, 5, 5};
  for (int s = 0; s < 4; ++s) w.record(kNow + std::chrono::seconds(s), data[s]);
  EXPECT_NEAR(w.average(kNow + 3s), 5 * 0.9 + 5 * 0.09 + 10 * 0.009 + 10 * 0.0009, 1e-9);
  KpaWindowAverager r(4s, KpaAggregation::kWeightedExponential);
  for (int s = 0; s < 4; ++s) r.record(kNow + std::chrono::seconds(s), data[3 - s]);
  EXPECT_NEAR(r.average(kNow + 3s), 10 * 0.9 + 10 * 0.09 + 5 * 0.009 + 5 * 0.0009, 1e-9);
  // A second without data shifts every weight by one step.
  EXPECT_NEAR(r.average(kNow + 4s), 10 * 0.09 + 10 * 0.009 + 5 * 0.0009, 1e-9);
}

// --- the autoscaler end to end ------------------------------------------------------------------

// Records `concurrency` every second in [from, to) and returns the decisions of the ticks (every
// 2 s from `from`). With `follow`, the new pods are ready at the next tick.
std::vector<KnativeAutoscaler::Decision> run(KnativeAutoscaler& a, Clock::TimePoint from,
                                             Clock::TimePoint to, double concurrency, int& ready,
                                             bool follow = false) {
  std::vector<KnativeAutoscaler::Decision> out;
  for (Clock::TimePoint t = from; t < to; t += 1s) {
    a.record(t, concurrency, concurrency * 10);
    if ((t - from) % 2s == 0s) {
      out.push_back(a.scale(t, ready));
      if (follow) ready = out.back().desired;
    }
  }
  return out;
}

TEST(KpaAutoscaler, NoDataNoDecision) {  // TestAutoscalerNoDataNoAutoscale
  KnativeAutoscaler a(KpaSpec{}, kNow, 1);
  const KnativeAutoscaler::Decision d = a.scale(kNow, 1);
  EXPECT_FALSE(d.valid);
  EXPECT_EQ(d.desired, -1);
  EXPECT_THAT(d.reason, HasSubstr("no data"));
  a.record(kNow, 10, 10);
  EXPECT_TRUE(a.scale(kNow + 2s, 1).valid);
  EXPECT_FALSE(a.scale(kNow + 62s, 1).valid);  // nothing recorded for a whole stable window
}

// Upstream bucketing.go WindowAverage exactly one window after the last write: not empty
// (isEmpty is `now - lastWrite > window`) and not `d < t.window`, so `default: return 0`.
TEST(KpaAutoscaler, StableAverageOneWindowAfterLastWriteIsZero) {
  // Knative's defaults: stable window 60 s, max scale-down rate 2, min_scale 1.
  KnativeAutoscaler a(KpaSpec{}, kNow, 1);
  a.record(kNow, 100, 100);
  const KnativeAutoscaler::Decision d = a.scale(kNow + 60s, /*ready_pods=*/10);
  ASSERT_TRUE(d.valid);  // not ErrNoData: 60 s is not > 60 s
  EXPECT_EQ(d.stable_avg, 0.0);
  // 0 wanted, limited by the scale-down rate to floor(10 / 2) = 5.
  EXPECT_EQ(d.desired, 5);
}

TEST(KpaAutoscaler, PanicAverageOneWindowAfterLastWriteIsZero) {
  // Knative's defaults: panic window 6 s, target 70, max scale-up rate 1000.
  KnativeAutoscaler a(KpaSpec{}, kNow, 1);
  a.record(kNow, 0.1, 0.1);
  a.record(kNow + 1s, 0.2, 0.2);
  // 6 s after the last write the panic average is 0 (a rounding residue / 0 would be +inf and
  // panic to 1000 x ready); the stable one is 0.15.
  const KnativeAutoscaler::Decision d = a.scale(kNow + 7s, /*ready_pods=*/1);
  ASSERT_TRUE(d.valid);
  EXPECT_EQ(d.panic_avg, 0.0);
  EXPECT_FALSE(d.panicking);
  EXPECT_EQ(d.desired, 1);
}

TEST(KpaAutoscaler, SteadySpikePanicHoldAndHalving) {
  KnativeAutoscaler a(KpaSpec{}, kNow, 1);  // target 70 per pod, min-scale 1
  int ready = 2;
  // Steady 140 in flight: 2 pods.
  auto steady = run(a, kNow, kNow + 60s, 140, ready);
  EXPECT_EQ(steady.back().desired, 2);
  EXPECT_DOUBLE_EQ(steady.back().stable_avg, 140);
  for (const auto& d : steady) EXPECT_FALSE(d.panicking) << d.reason;

  // A spike to 700 (still 2 ready pods): the 6 s panic window sees it first and panics as soon
  // as it asks for 2 x the ready pods; after 6 s it asks for ceil(700 / 70) = 10.
  auto spike = run(a, kNow + 60s, kNow + 67s, 700, ready);
  EXPECT_TRUE(spike.front().panicking);
  EXPECT_EQ(spike.front().desired, 4);
  EXPECT_EQ(spike.back().desired, 10);
  EXPECT_DOUBLE_EQ(spike.back().panic_avg, 700);
  EXPECT_LT(spike.back().stable_avg, 700);

  // Back to 140 with 10 ready pods: the panic average drops within 6 s, but panic never scales
  // down.
  ready = 10;
  auto after = run(a, kNow + 67s, kNow + 120s, 140, ready);
  for (const auto& d : after) {
    EXPECT_TRUE(d.panicking);
    EXPECT_EQ(d.desired, 10) << d.reason;
  }
  // The last over-threshold tick was at +66 s: panic ends at the first tick more than a stable
  // window later (+128 s); then the stable value applies, at most halving per tick
  // (max-scale-down-rate 2) as the pods go away.
  auto calm = run(a, kNow + 120s, kNow + 140s, 140, ready, /*follow=*/true);
  std::vector<int> desired;
  for (const auto& d : calm) desired.push_back(d.desired);
  EXPECT_THAT(desired, ::testing::ElementsAre(10, 10, 10, 10, 5, 2, 2, 2, 2, 2));
  EXPECT_FALSE(calm.back().panicking);
}

TEST(KpaAutoscaler, RpsModeAndBounds) {
  KpaSpec spec;
  spec.rps_mode = true;  // target 200 × 0.7 = 140 requests per second per pod
  spec.max_scale = 4;
  KnativeAutoscaler a(spec, kNow, 1);
  for (int s = 0; s < 60; ++s) a.record(kNow + std::chrono::seconds(s), 0, 350);
  const KnativeAutoscaler::Decision d = a.scale(kNow + 59s, 3);
  EXPECT_EQ(d.decider_desired, 3);  // ceil(350 / 140)
  EXPECT_EQ(d.desired, 3);
  for (int s = 60; s < 120; ++s) a.record(kNow + std::chrono::seconds(s), 0, 1400);
  const KnativeAutoscaler::Decision capped = a.scale(kNow + 119s, 4);
  EXPECT_EQ(capped.decider_desired, 10);
  EXPECT_EQ(capped.desired, 4);
  EXPECT_THAT(capped.reason, HasSubstr("clamped to max-scale 4"));
}

TEST(KpaAutoscaler, MinScaleOneKeepsOnePod) {
  KnativeAutoscaler a(KpaSpec{}, kNow, 1);
  for (int s = 0; s < 60; ++s) a.record(kNow + std::chrono::seconds(s), 0, 0);
  const KnativeAutoscaler::Decision d = a.scale(kNow + 59s, 1);
  EXPECT_EQ(d.decider_desired, 0);
  EXPECT_EQ(d.desired, 1);
}

TEST(KpaAutoscaler, ScaleToZeroAfterGrace) {
  KpaSpec spec;
  spec.min_scale = 0;
  KnativeAutoscaler a(spec, kNow, 1);
  for (int s = 0; s <= 40; ++s) a.record(kNow + std::chrono::seconds(s), 0, 0);
  EXPECT_EQ(a.scale(kNow, 1).desired, 1);        // wants 0 from here on
  EXPECT_EQ(a.scale(kNow + 28s, 1).desired, 1);  // within the 30 s grace
  EXPECT_EQ(a.scale(kNow + 30s, 1).desired, 0);
  // Any load resets the grace.
  a.record(kNow + 41s, 35, 35);
  EXPECT_EQ(a.scale(kNow + 41s, 0).desired, 1);
}

TEST(KpaSpecDefaults, MatchUpstreamConfig) {
  const KpaSpec s;
  EXPECT_DOUBLE_EQ(s.target_concurrency, 70);
  EXPECT_DOUBLE_EQ(s.target_rps, 140);
  EXPECT_EQ(s.stable_window, 60s);
  EXPECT_EQ(s.panic_window(), 6s);
  EXPECT_DOUBLE_EQ(s.panic_threshold_percentage, 200);
  EXPECT_DOUBLE_EQ(s.max_scale_up_rate, 1000);
  EXPECT_DOUBLE_EQ(s.max_scale_down_rate, 2);
  EXPECT_EQ(s.tick, 2s);
  EXPECT_EQ(s.scale_to_zero_grace, 30s);
  EXPECT_EQ(s.scale_down_delay, 0s);
  EXPECT_TRUE(validate_kpa_spec(s).has_value());

  KpaSpec p;
  p.panic_window_percentage = 1;  // 0.6 s rounds to 1 s
  EXPECT_EQ(p.panic_window(), 1s);
  p.stable_window = 10s;
  p.panic_window_percentage = 15;  // 1.5 s rounds half away from zero
  EXPECT_EQ(p.panic_window(), 2s);
}

TEST(KpaSpecDefaults, ValidationRejectsWhatKnativeRejects) {
  auto invalid = [](auto mutate) {
    KpaSpec s;
    mutate(s);
    return !validate_kpa_spec(s).has_value();
  };
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.max_scale_down_rate = 1; }));
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.max_scale_up_rate = 0.5; }));
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.stable_window = 5s; }));
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.stable_window = 15500ms; }));
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.panic_window_percentage = 0.5; }));
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.panic_threshold_percentage = 100; }));
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.min_scale = 3, s.max_scale = 2; }));
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.target_concurrency = 0; }));
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.target_burst_capacity = -2; }));
  EXPECT_FALSE(invalid([](KpaSpec& s) { s.target_burst_capacity = -1; }));
  // Upstream: "scale-to-zero-grace-period must be at least 6s" (the activator's window).
  EXPECT_TRUE(invalid([](KpaSpec& s) { s.scale_to_zero_grace = 5s; }));
  EXPECT_FALSE(invalid([](KpaSpec& s) { s.scale_to_zero_grace = 6s; }));
}

}  // namespace
}  // namespace prescale::scaling
