#include "loadgen/arrival_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace prescale::loadgen {
namespace {

using namespace std::chrono_literals;

forecast::Trace minute_trace(std::vector<double> counts) {
  forecast::Trace t;
  t.name = "small";
  t.step_seconds = 60;
  t.counts = std::move(counts);
  return t;
}

// Arrivals per `bucket` of live time.
std::vector<int> count_per(ArrivalSchedule& s, Clock::Duration bucket, size_t buckets) {
  std::vector<int> out(buckets, 0);
  Clock::Duration last{-1};
  while (auto t = s.next()) {
    EXPECT_GE(*t, last);
    last = *t;
    const auto i = static_cast<size_t>(*t / bucket);
    EXPECT_LT(i, buckets);
    if (i < buckets) ++out[i];
  }
  EXPECT_FALSE(s.next().has_value());
  return out;
}

TEST(ArrivalScheduleTest, SpeedupKeepsRequestsPerStepAndCompressesTime) {
  const auto trace = minute_trace({600, 1200, 0, 300});
  auto plan = plan_from_trace(trace, {.speedup = 60});
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->segments.size(), 4u);
  EXPECT_EQ(plan->duration(), 4s);
  EXPECT_DOUBLE_EQ(plan->segments[1].rate_rps, 1200.0);  // 20 req/s of trace × 60
  EXPECT_NEAR(plan->expected_requests(), 2100, 1e-6);

  ArrivalSchedule poisson(*plan, ArrivalProcess::kPoisson, 1);
  const auto counts = count_per(poisson, 1s, 4);
  const double want[] = {600, 1200, 0, 300};
  for (size_t i = 0; i < 4; ++i) {
    // Poisson counts: within 4 standard deviations.
    EXPECT_NEAR(counts[i], want[i], 4 * std::sqrt(want[i]) + 1e-9) << "step " << i;
  }
}

TEST(ArrivalScheduleTest, UniformArrivalsAreExactPerStepAndEvenlySpaced) {
  const auto trace = minute_trace({60, 120, 0, 30});
  auto plan = plan_from_trace(trace, {.speedup = 60, .scale = 2});
  ASSERT_TRUE(plan);
  ArrivalSchedule uniform(*plan, ArrivalProcess::kUniform, 1);
  std::vector<Clock::Duration> times;
  while (auto t = uniform.next()) times.push_back(*t);
  ASSERT_EQ(times.size(), 420u);
  // Step 0: 120 req/s live, in the middle of 1/120 s slots.
  EXPECT_NEAR(to_seconds(times[0]), 0.5 / 120, 1e-9);
  EXPECT_NEAR(to_seconds(times[1] - times[0]), 1.0 / 120, 1e-9);
  ArrivalSchedule again(*plan, ArrivalProcess::kUniform, 1);
  const auto counts = count_per(again, 1s, 4);
  EXPECT_EQ(counts, (std::vector<int>{120, 240, 0, 60}));
}

TEST(ArrivalScheduleTest, PoissonCountsOverManySeedsHaveThePoissonSpread) {
  // Mean and variance of the count in one 1 s step at 100 req/s, over 400 seeds.
  const RatePlan plan = constant_rate(100, 1s);
  double sum = 0;
  double sum_sq = 0;
  const int runs = 400;
  for (int seed = 0; seed < runs; ++seed) {
    ArrivalSchedule s(plan, ArrivalProcess::kPoisson, static_cast<uint64_t>(seed));
    int n = 0;
    while (s.next()) ++n;
    sum += n;
    sum_sq += static_cast<double>(n) * n;
  }
  const double mean = sum / runs;
  const double variance = sum_sq / runs - mean * mean;
  EXPECT_NEAR(mean, 100, 2);  // standard error 0.5
  EXPECT_NEAR(variance, 100, 25);
}

TEST(ArrivalScheduleTest, SameSeedSameArrivals) {
  const RatePlan plan = constant_rate(50, 2s);
  ArrivalSchedule a(plan, ArrivalProcess::kPoisson, 9);
  ArrivalSchedule b(plan, ArrivalProcess::kPoisson, 9);
  ArrivalSchedule c(plan, ArrivalProcess::kPoisson, 10);
  bool differs = false;
  while (true) {
    auto x = a.next();
    auto y = b.next();
    auto z = c.next();
    ASSERT_EQ(x, y);
    if (x != z) differs = true;
    if (!x) break;
  }
  EXPECT_TRUE(differs);
}

TEST(ArrivalScheduleTest, CapOffsetAndDuration) {
  const auto trace = minute_trace({60, 600, 60, 60});
  // Offset by 90 s of trace time: half of step 1, then steps 2 and 3; live time 1:1.
  auto plan = plan_from_trace(trace, {.max_rps = 5, .offset = 90s, .duration = 100s});
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->segments.size(), 3u);
  EXPECT_EQ(plan->segments[0].duration, 30s);
  EXPECT_DOUBLE_EQ(plan->segments[0].rate_rps, 5);  // 10 req/s capped at 5
  EXPECT_DOUBLE_EQ(plan->segments[1].rate_rps, 1);
  EXPECT_EQ(plan->segments[2].duration, 10s);  // cut at 100 s
  EXPECT_EQ(plan->duration(), 100s);
}

TEST(ArrivalScheduleTest, BadOptionsNameTheOption) {
  const auto trace = minute_trace({1, 2});
  auto bad_speedup = plan_from_trace(trace, {.speedup = 0});
  ASSERT_FALSE(bad_speedup);
  EXPECT_NE(bad_speedup.error().message.find("speedup"), std::string::npos);
  auto bad_scale = plan_from_trace(trace, {.scale = -1});
  ASSERT_FALSE(bad_scale);
  EXPECT_NE(bad_scale.error().message.find("scale"), std::string::npos);
  auto past_end = plan_from_trace(trace, {.offset = 120s});
  ASSERT_FALSE(past_end);
  EXPECT_NE(past_end.error().message.find("offset"), std::string::npos);
  EXPECT_TRUE(parse_arrival_process("uniform"));
  EXPECT_FALSE(parse_arrival_process("bursty"));
}

TEST(ArrivalScheduleTest, ZeroRateGivesNoArrivals) {
  ArrivalSchedule s(constant_rate(0, 5s), ArrivalProcess::kPoisson, 1);
  EXPECT_FALSE(s.next().has_value());
}

}  // namespace
}  // namespace prescale::loadgen
