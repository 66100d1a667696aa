#include "gateway/outlier_detector.h"

#include <gtest/gtest.h>

#include <deque>
#include <vector>

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;

const UpstreamOutcome kOk = UpstreamOutcome::response(200);
const UpstreamOutcome k500 = UpstreamOutcome::response(500);
const UpstreamOutcome k503 = UpstreamOutcome::response(503);

// A cluster of `n` hosts known to the detector.
struct Cluster {
  explicit Cluster(std::size_t n, OutlierDetectionConfig config = {}) : detector(config), hosts(n) {
    for (auto& h : hosts) pointers.push_back(&h);
  }
  void evaluate(Clock::TimePoint now) { detector.evaluate(pointers, now); }
  void repeat(std::size_t host, const UpstreamOutcome& outcome, int n, Clock::TimePoint now) {
    for (int i = 0; i < n; ++i) detector.record(hosts[host], outcome, now);
  }

  OutlierDetector detector;
  std::deque<OutlierHostState> hosts;  // OutlierHostState does not move
  std::vector<OutlierHostState*> pointers;
};

TEST(OutlierDetector, FiveConsecutive5xxEjectForTheBaseTime) {
  ManualClock clock;
  Cluster c(10);
  c.evaluate(clock.now());
  c.repeat(0, k500, 4, clock.now());
  EXPECT_FALSE(c.hosts[0].ejected(clock.now()));
  c.repeat(0, k500, 1, clock.now());
  EXPECT_TRUE(c.hosts[0].ejected(clock.now()));
  EXPECT_EQ(c.hosts[0].ejected_until(), clock.now() + 30s);
  EXPECT_EQ(c.hosts[0].ejection_multiplier(), 1u);
  EXPECT_EQ(c.detector.stats().ejections_consecutive_5xx, 1u);
  EXPECT_EQ(c.detector.ejected_count(clock.now()), 1u);
  clock.advance(30s - 1ns);
  EXPECT_TRUE(c.hosts[0].ejected(clock.now()));
  clock.advance(1ns);  // back the moment its time is up
  EXPECT_FALSE(c.hosts[0].ejected(clock.now()));
  EXPECT_EQ(c.detector.ejected_count(clock.now()), 0u);
}

TEST(OutlierDetector, AnySuccessOr4xxBreaksTheRun) {
  ManualClock clock;
  Cluster c(10);
  c.repeat(0, k500, 4, clock.now());
  c.repeat(0, kOk, 1, clock.now());
  c.repeat(0, k500, 4, clock.now());
  c.repeat(0, UpstreamOutcome::response(404), 1, clock.now());
  c.repeat(0, k500, 4, clock.now());
  EXPECT_FALSE(c.hosts[0].ejected(clock.now()));
}

TEST(OutlierDetector, LocalErrorsCountAs5xx) {
  ManualClock clock;
  Cluster c(10);
  c.repeat(0, UpstreamOutcome::failure(UpstreamError::kConnectFailure), 2, clock.now());
  c.repeat(0, UpstreamOutcome::failure(UpstreamError::kReset), 2, clock.now());
  c.repeat(0, UpstreamOutcome::failure(UpstreamError::kTimeout), 1, clock.now());
  EXPECT_TRUE(c.hosts[0].ejected(clock.now()));
}

TEST(OutlierDetector, ConsecutiveGatewayFailuresEject) {
  ManualClock clock;
  OutlierDetectionConfig config;
  config.consecutive_5xx = 10;  // so that the gateway-failure rule acts first
  Cluster c(10, config);
  c.repeat(0, k503, 2, clock.now());
  c.repeat(0, UpstreamOutcome::response(502), 1, clock.now());
  c.repeat(0, UpstreamOutcome::failure(UpstreamError::kConnectFailure), 1, clock.now());
  EXPECT_FALSE(c.hosts[0].ejected(clock.now()));
  c.repeat(0, UpstreamOutcome::response(504), 1, clock.now());
  EXPECT_TRUE(c.hosts[0].ejected(clock.now()));
  EXPECT_EQ(c.detector.stats().ejections_consecutive_gateway_failure, 1u);
  EXPECT_EQ(c.detector.stats().ejections_consecutive_5xx, 0u);

  // A 500 is a 5xx but not a gateway failure: it breaks the gateway run.
  c.repeat(1, k503, 4, clock.now());
  c.repeat(1, k500, 1, clock.now());
  c.repeat(1, k503, 4, clock.now());
  EXPECT_FALSE(c.hosts[1].ejected(clock.now()));
}

TEST(OutlierDetector, AThresholdOfZeroTurnsARuleOff) {
  ManualClock clock;
  OutlierDetectionConfig config;
  config.consecutive_5xx = 0;
  config.consecutive_gateway_failure = 0;
  Cluster c(10, config);
  c.repeat(0, k503, 100, clock.now());
  EXPECT_FALSE(c.hosts[0].ejected(clock.now()));
}

TEST(OutlierDetector, EjectionTimeGrowsWithEachEjectionUpToTheMaximum) {
  ManualClock clock;
  Cluster c(10);
  const std::vector<Clock::Duration> expected = {30s,  60s,  90s,  120s, 150s, 180s,
                                                 210s, 240s, 270s, 300s, 300s, 300s};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    c.repeat(0, k500, 5, clock.now());
    ASSERT_TRUE(c.hosts[0].ejected(clock.now())) << i;
    EXPECT_EQ(c.hosts[0].ejected_until() - clock.now(), expected[i]) << "ejection " << i + 1;
    clock.set(c.hosts[0].ejected_until());  // fails again as soon as it is back
  }
  EXPECT_EQ(c.hosts[0].times_ejected(), expected.size());
  EXPECT_EQ(c.hosts[0].ejection_multiplier(), 10u);
}

TEST(OutlierDetector, MultiplierDecaysOncePerIntervalAfterAWholeIntervalBack) {
  ManualClock clock;
  Cluster c(10);
  c.evaluate(clock.now());
  c.repeat(0, k500, 5, clock.now());  // 30 s
  clock.set(c.hosts[0].ejected_until());
  c.repeat(0, k500, 5, clock.now());  // 60 s
  EXPECT_EQ(c.hosts[0].ejection_multiplier(), 2u);
  const Clock::TimePoint back = c.hosts[0].ejected_until();

  // Interval ticks every 10 s from t = 0. While ejected, and in the first interval back, the
  // multiplier stays.
  Clock::TimePoint tick = Clock::TimePoint{} + 10s;
  for (; tick < back + 10s; tick += 10s) {
    c.evaluate(tick);
    EXPECT_EQ(c.hosts[0].ejection_multiplier(), 2u) << tick.time_since_epoch().count();
  }
  c.evaluate(tick);
  EXPECT_EQ(c.hosts[0].ejection_multiplier(), 1u);
  c.evaluate(tick + 5s);  // within the same interval: nothing
  EXPECT_EQ(c.hosts[0].ejection_multiplier(), 1u);
  c.evaluate(tick + 10s);
  EXPECT_EQ(c.hosts[0].ejection_multiplier(), 0u);
  c.evaluate(tick + 20s);
  EXPECT_EQ(c.hosts[0].ejection_multiplier(), 0u);
  // Decayed fully: the next ejection is the base time again.
  c.repeat(0, k500, 5, tick + 20s);
  EXPECT_EQ(c.hosts[0].ejected_until() - (tick + 20s), 30s);
}

TEST(OutlierDetector, MaxEjectionPercentStillLetsOneHostOfFewGo) {
  ManualClock clock;
  Cluster c(3);
  c.evaluate(clock.now());
  c.repeat(0, k500, 5, clock.now());
  EXPECT_TRUE(c.hosts[0].ejected(clock.now()));  // 0 % ejected < 10 %: one may always go
  c.repeat(1, k500, 5, clock.now());
  EXPECT_FALSE(c.hosts[1].ejected(clock.now()));  // 33 % already ejected
  EXPECT_EQ(c.detector.stats().ejections_overflow, 1u);
  clock.advance(30s);  // host 0 is back; host 1's next run may eject it
  c.repeat(1, k500, 5, clock.now());
  EXPECT_TRUE(c.hosts[1].ejected(clock.now()));
}

TEST(OutlierDetector, MaxEjectionPercentOfALargerCluster) {
  ManualClock clock;
  Cluster c(20);
  c.evaluate(clock.now());
  for (std::size_t h = 0; h < 5; ++h) c.repeat(h, k500, 5, clock.now());
  // 0 % and 5 % are below 10 %; at 10 % the third is refused.
  EXPECT_EQ(c.detector.ejected_count(clock.now()), 2u);
  EXPECT_EQ(c.detector.stats().ejections_overflow, 3u);
}

// "Most of a service's replicas ejected at once" (docs/config.md): an ejection that would take
// the share ejected past the limit is refused. Counting only those already ejected let 2 of 3
// replicas go at 50 % (67 %), leaving one to take every request.
TEST(OutlierDetector, MaxEjectionPercentIsNeverExceededAfterTheFirstEjection) {
  ManualClock clock;
  OutlierDetectionConfig config;
  config.max_ejection_percent = 50;
  Cluster three(3, config);
  three.evaluate(clock.now());
  three.repeat(0, k500, 5, clock.now());
  EXPECT_TRUE(three.hosts[0].ejected(clock.now()));
  three.repeat(1, k500, 5, clock.now());
  EXPECT_FALSE(three.hosts[1].ejected(clock.now()));  // 2 of 3 would be 67 %
  EXPECT_EQ(three.detector.stats().ejections_overflow, 1u);

  Cluster four(4, config);  // 2 of 4 is exactly 50 %: allowed, a third is not
  four.evaluate(clock.now());
  for (std::size_t h = 0; h < 3; ++h) four.repeat(h, k500, 5, clock.now());
  EXPECT_EQ(four.detector.ejected_count(clock.now()), 2u);
  EXPECT_EQ(four.detector.stats().ejections_overflow, 1u);
}

TEST(OutlierDetector, OneHostMayBeEjectedBeforeTheHostCountIsKnown) {
  ManualClock clock;
  Cluster c(10);  // no evaluate() yet
  c.repeat(0, k500, 5, clock.now());
  c.repeat(1, k500, 5, clock.now());
  EXPECT_TRUE(c.hosts[0].ejected(clock.now()));
  EXPECT_FALSE(c.hosts[1].ejected(clock.now()));
}

TEST(OutlierDetector, ZeroMaxEjectionPercentNeverEjects) {
  ManualClock clock;
  OutlierDetectionConfig config;
  config.max_ejection_percent = 0;
  Cluster c(10, config);
  c.evaluate(clock.now());
  c.repeat(0, k500, 5, clock.now());
  EXPECT_FALSE(c.hosts[0].ejected(clock.now()));
}

TEST(OutlierDetector, ResponsesWhileEjectedDoNotExtendTheEjection) {
  ManualClock clock;
  Cluster c(10);
  c.repeat(0, k500, 5, clock.now());
  const Clock::TimePoint until = c.hosts[0].ejected_until();
  clock.advance(1s);
  c.repeat(0, k500, 20, clock.now());  // calls that were in flight at the ejection
  EXPECT_EQ(c.hosts[0].ejected_until(), until);
  EXPECT_EQ(c.hosts[0].times_ejected(), 1u);
}

TEST(OutlierDetector, RemovedHostsStopCountingAtTheNextEvaluate) {
  ManualClock clock;
  Cluster c(3);
  c.evaluate(clock.now());
  c.repeat(0, k500, 5, clock.now());
  std::vector<OutlierHostState*> without_host0 = {c.pointers[1], c.pointers[2]};
  c.detector.evaluate(without_host0, clock.now());
  EXPECT_EQ(c.detector.ejected_count(clock.now()), 0u);
  c.repeat(1, k500, 5, clock.now());
  EXPECT_TRUE(c.hosts[1].ejected(clock.now()));
}

// Envoy's worked example: success rates {50, 100, 100, 100, 100}: mean 90, stdev 20, threshold
// 90 − 1.9 × 20 = 52; the host at 50 % is ejected.
TEST(OutlierDetector, SuccessRateEjectsHostsBelowMeanMinusStdevs) {
  ManualClock clock;
  Cluster c(5);
  c.evaluate(clock.now());
  for (int i = 0; i < 50; ++i) {  // alternating, so no consecutive-5xx run forms
    c.repeat(0, k500, 1, clock.now());
    c.repeat(0, kOk, 1, clock.now());
  }
  for (std::size_t h = 1; h < 5; ++h) c.repeat(h, kOk, 100, clock.now());
  clock.advance(10s);
  c.evaluate(clock.now());
  EXPECT_TRUE(c.hosts[0].ejected(clock.now()));
  EXPECT_EQ(c.detector.stats().ejections_success_rate, 1u);
  for (std::size_t h = 1; h < 5; ++h) EXPECT_FALSE(c.hosts[h].ejected(clock.now()));
}

TEST(OutlierDetector, SuccessRateNeedsEnoughHostsWithEnoughVolume) {
  ManualClock clock;
  OutlierDetectionConfig config;
  config.consecutive_5xx = 0;  // only success rate
  config.consecutive_gateway_failure = 0;
  {
    Cluster c(5, config);
    c.evaluate(clock.now());
    c.repeat(0, k500, 100, clock.now());
    for (std::size_t h = 1; h < 4; ++h) c.repeat(h, kOk, 100, clock.now());
    c.repeat(4, kOk, 99, clock.now());  // below success_rate_request_volume: 4 valid hosts
    c.evaluate(clock.now() + 10s);
    EXPECT_FALSE(c.hosts[0].ejected(clock.now() + 10s));
  }
  {
    Cluster c(5, config);
    c.evaluate(clock.now());
    c.repeat(0, k500, 100, clock.now());
    for (std::size_t h = 1; h < 5; ++h) c.repeat(h, kOk, 100, clock.now());
    c.evaluate(clock.now() + 5s);  // not an interval yet
    EXPECT_FALSE(c.hosts[0].ejected(clock.now() + 5s));
    c.evaluate(clock.now() + 10s);
    EXPECT_TRUE(c.hosts[0].ejected(clock.now() + 10s));
    // The counts start over each interval: the next interval has no data.
    c.evaluate(clock.now() + 20s);
    EXPECT_EQ(c.detector.stats().ejections_success_rate, 1u);
  }
}

TEST(OutlierDetector, ValidateChecksRanges) {
  EXPECT_TRUE(validate(OutlierDetectionConfig{}).has_value());
  OutlierDetectionConfig c;
  c.max_ejection_time = 10s;  // below the base time
  EXPECT_FALSE(validate(c).has_value());
  c = {};
  c.max_ejection_percent = 101;
  EXPECT_FALSE(validate(c).has_value());
  c = {};
  c.interval = 0s;
  EXPECT_FALSE(validate(c).has_value());
}

}  // namespace
}  // namespace prescale::gateway
