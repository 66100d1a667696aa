#include "healing/memory_trend.h"

#include <gtest/gtest.h>

#include <cmath>

namespace prescale::healing {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t kMiB = 1u << 20;

// A leak of 1 MiB/s with ±2 MiB of allocator noise, from 300 MiB: 512 MiB is 212 s away at
// the start, projected within a few seconds of the truth.
TEST(MemoryTrendTest, ASteadyLeakIsProjectedToItsLimit) {
  MemoryTrend trend;
  ManualClock clock;
  for (int s = 0; s <= 60; ++s) {
    const double noise = 2.0 * std::sin(s * 1.7);
    trend.add(clock.now(), static_cast<std::uint64_t>((300 + s + noise) * kMiB));
    clock.advance(1s);
  }
  const auto p = trend.project(512 * kMiB);
  ASSERT_TRUE(p);
  EXPECT_NEAR(p->bytes_per_second / kMiB, 1.0, 0.05);
  const double to_limit = std::chrono::duration<double>(p->to_limit).count();
  EXPECT_NEAR(to_limit, 512 - 360 - 2.0 * std::sin(60 * 1.7), 8);
  EXPECT_EQ(trend.last(), static_cast<std::uint64_t>((360 + 2.0 * std::sin(60 * 1.7)) * kMiB));
}

// Not a leak: a replica that loaded its model (a step to a plateau), one whose memory goes up
// and down, one that shrinks; and a leak still far below its limit, or seen too briefly.
TEST(MemoryTrendTest, NoProjectionWithoutSteadyGrowthPastHalfTheLimit) {
  ManualClock clock;
  MemoryTrend plateau, sawtooth, shrinking, low, brief;
  for (int s = 0; s <= 120; ++s) {
    plateau.add(clock.now(), (s < 5 ? 100 + 60 * s : 400) * kMiB);
    sawtooth.add(clock.now(), (300 + 40 * (s % 20 < 10 ? s % 10 : 10 - s % 10)) * kMiB);
    shrinking.add(clock.now(), (450 - s) * kMiB);
    low.add(clock.now(), (100 + s) * kMiB);
    if (s <= 20) brief.add(clock.now(), (400 + 2 * s) * kMiB);
    clock.advance(1s);
  }
  EXPECT_FALSE(plateau.project(512 * kMiB));
  EXPECT_FALSE(sawtooth.project(512 * kMiB));
  EXPECT_FALSE(shrinking.project(512 * kMiB));
  EXPECT_FALSE(low.project(512 * kMiB)) << "221 MiB: under half of 512";
  EXPECT_TRUE(low.project(400 * kMiB)) << "the same growth past half of 400";
  EXPECT_FALSE(brief.project(512 * kMiB)) << "20 s of samples, 30 needed";
  EXPECT_FALSE(plateau.project(0)) << "no limit";
}

// The line is fitted to the last window only: a replica that leaked once and stopped, five
// minutes ago, is flat now.
TEST(MemoryTrendTest, OnlyTheLastWindowCounts) {
  ManualClock clock;
  MemoryTrend trend;
  for (int s = 0; s <= 600; ++s) {
    trend.add(clock.now(), (s < 200 ? 200 + s : 400) * kMiB);
    clock.advance(1s);
  }
  EXPECT_FALSE(trend.project(512 * kMiB));
  trend.add(clock.now() - 10s, 1);  // not after the last: ignored
  EXPECT_EQ(trend.last(), 400 * kMiB);
}

// Already over the limit (between two looks of the supervisor's): 0 left.
TEST(MemoryTrendTest, OverTheLimitProjectsZero) {
  ManualClock clock;
  MemoryTrend trend;
  for (int s = 0; s <= 40; ++s) {
    trend.add(clock.now(), (480 + s) * kMiB);
    clock.advance(1s);
  }
  const auto p = trend.project(512 * kMiB);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->to_limit, Clock::Duration::zero());
}

}  // namespace
}  // namespace prescale::healing
