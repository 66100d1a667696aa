#include "core/clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace prescale {
namespace {

using namespace std::chrono_literals;

TEST(ManualClockTest, MovesOnlyWhenAdvanced) {
  ManualClock clock;
  auto t0 = clock.now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(1500ms);
  EXPECT_EQ(clock.now() - t0, 1500ms);
  EXPECT_EQ(clock.wall_now() - ManualClock().wall_now(), 1500ms);
}

TEST(ManualClockTest, SleepUntilWakesWhenAdvancedPastDeadline) {
  ManualClock clock;
  auto deadline = clock.now() + 10s;
  bool woke = false;
  std::thread sleeper([&] {
    clock.sleep_until(deadline);
    woke = true;
  });
  clock.advance(5s);
  clock.advance(5s);
  sleeper.join();
  EXPECT_TRUE(woke);
  EXPECT_GE(clock.now(), deadline);
}

TEST(RealClockTest, IsMonotonic) {
  auto& clock = Clock::real();
  auto a = clock.now();
  auto b = clock.now();
  EXPECT_LE(a, b);
  EXPECT_GT(clock.wall_now().time_since_epoch().count(), 0);
}

}  // namespace
}  // namespace prescale
