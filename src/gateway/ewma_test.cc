#include "gateway/ewma.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;

double estimate_ms(const PeakEwma& e, Clock::TimePoint now) { return e.estimate_ns(now) / 1e6; }

TEST(PeakEwma, StartsAtTheDefaultRttWhichDecaysFromStart) {
  ManualClock clock;
  clock.advance(1h);
  PeakEwma ewma(clock.now());
  EXPECT_FALSE(ewma.has_sample());
  EXPECT_DOUBLE_EQ(estimate_ms(ewma, clock.now()), 30.0);
  clock.advance(10s);
  EXPECT_NEAR(estimate_ms(ewma, clock.now()), 30.0 * std::exp(-1.0), 1e-9);
}

TEST(PeakEwma, FirstSampleReplacesTheDefault) {
  ManualClock clock;
  PeakEwma ewma(clock.now());
  clock.advance(100ms);
  ewma.observe(clock.now(), 5ms);  // not blended with the prior
  EXPECT_TRUE(ewma.has_sample());
  EXPECT_DOUBLE_EQ(estimate_ms(ewma, clock.now()), 5.0);
}

TEST(PeakEwma, HigherSampleReplacesTheEstimateAtOnce) {
  ManualClock clock;
  PeakEwma ewma(clock.now());
  ewma.observe(clock.now(), 5ms);
  clock.advance(1ms);
  ewma.observe(clock.now(), 100ms);
  EXPECT_DOUBLE_EQ(estimate_ms(ewma, clock.now()), 100.0);
}

TEST(PeakEwma, LowerSampleBlendsWithWeightOfElapsedTime) {
  ManualClock clock;
  PeakEwma ewma(clock.now());
  ewma.observe(clock.now(), 100ms);
  clock.advance(1s);
  ewma.observe(clock.now(), 10ms);
  const double keep = std::exp(-1.0 / 10.0);  // Δt 1 s, τ 10 s
  EXPECT_NEAR(estimate_ms(ewma, clock.now()), 100 * keep + 10 * (1 - keep), 1e-9);
}

TEST(PeakEwma, DecaysTowardZeroBetweenSamples) {
  ManualClock clock;
  PeakEwma ewma(clock.now());
  ewma.observe(clock.now(), 40ms);
  clock.advance(10s);
  EXPECT_NEAR(estimate_ms(ewma, clock.now()), 40 * std::exp(-1.0), 1e-9);
  clock.advance(90s);
  EXPECT_LT(estimate_ms(ewma, clock.now()), 0.01);
  // Reading does not move the sample time: the next sample's weight is 1 − exp(−100 s / τ).
  ewma.observe(clock.now(), 20ms);
  EXPECT_NEAR(estimate_ms(ewma, clock.now()), 20.0, 1e-3);
}

TEST(PeakEwma, LowerSampleAtTheSameInstantCarriesNoWeight) {
  ManualClock clock;
  PeakEwma ewma(clock.now());
  ewma.observe(clock.now(), 50ms);
  ewma.observe(clock.now(), 1ms);
  EXPECT_DOUBLE_EQ(estimate_ms(ewma, clock.now()), 50.0);
  // An older timestamp than the last sample is treated the same way.
  ewma.observe(clock.now() - 1s, 1ms);
  EXPECT_DOUBLE_EQ(estimate_ms(ewma, clock.now()), 50.0);
}

TEST(PeakEwma, ConvergesToASteadyLatency) {
  ManualClock clock;
  PeakEwma ewma(clock.now());
  ewma.observe(clock.now(), 200ms);
  for (int i = 0; i < 1200; ++i) {  // two minutes of 10 ms samples every 100 ms
    clock.advance(100ms);
    ewma.observe(clock.now(), 10ms);
  }
  // The excess decays as exp(−t / τ) until the decayed estimate falls below the sample; the
  // sample is then a peak and the estimate equals it.
  EXPECT_NEAR(estimate_ms(ewma, clock.now()), 10.0, 1e-9);
  EXPECT_EQ(ewma.estimate(clock.now()), 10ms);
}

TEST(PeakEwma, NegativeRttCountsAsZeroAndConfigIsValidated) {
  ManualClock clock;
  PeakEwma ewma(clock.now(), PeakEwmaConfig{.decay = 1s, .default_rtt = 0ms});
  ewma.observe(clock.now(), -5ms);
  EXPECT_DOUBLE_EQ(ewma.estimate_ns(clock.now()), 0.0);
  EXPECT_TRUE(validate(PeakEwmaConfig{}).has_value());
  EXPECT_FALSE(validate(PeakEwmaConfig{.decay = 0s}).has_value());
  EXPECT_FALSE(validate(PeakEwmaConfig{.default_rtt = -1ms}).has_value());
}

// Several threads fold samples in [10 ms, 20 ms] at interleaved times: the estimate is never
// torn and stays within the samples' range (each blend is a convex mix of in-range values).
TEST(PeakEwma, ConcurrentObserversKeepTheEstimateInRange) {
  const Clock::TimePoint start{};
  PeakEwma ewma(start);
  ewma.observe(start, 15ms);  // the 30 ms default is out of range; replace it first
  constexpr int kThreads = 8;
  constexpr int kSamples = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ewma, start, t] {
      for (int i = 0; i < kSamples; ++i) {
        const Clock::TimePoint now = start + std::chrono::microseconds(1 + i * kThreads + t);
        ewma.observe(now, 10ms + std::chrono::microseconds((i * 7 + t * 13) % 10000));
        const double seen = ewma.estimate_ns(now);
        ASSERT_GE(seen, 0.0);
        ASSERT_LE(seen, 20e6);
      }
    });
  }
  for (auto& th : threads) th.join();
  const Clock::TimePoint end = start + std::chrono::microseconds(1 + kSamples * kThreads);
  EXPECT_GE(ewma.estimate_ns(end), 9.99e6);
  EXPECT_LE(ewma.estimate_ns(end), 20e6);
}

}  // namespace
}  // namespace prescale::gateway
