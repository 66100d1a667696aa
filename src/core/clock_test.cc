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

TEST(FormatMillisTest, WritesWholeMillisecondsCutTowardsZero) {
  EXPECT_EQ(format_millis(150ms), "150 ms");
  EXPECT_EQ(format_millis(15s), "15000 ms");
  EXPECT_EQ(format_millis(0ms), "0 ms");
  EXPECT_EQ(format_millis(std::chrono::microseconds(1999)), "1 ms");
  EXPECT_EQ(format_millis(-std::chrono::microseconds(1999)), "-1 ms");
}

TEST(FormatUtcTest, WritesRfc3339ToTheSecondRoundedDown) {
  EXPECT_EQ(format_utc(Clock::WallTime(std::chrono::seconds(1767225600))), "2026-01-01T00:00:00Z");
  EXPECT_EQ(format_utc(Clock::WallTime(std::chrono::seconds(1767225600) + 999ms)),
            "2026-01-01T00:00:00Z");
  EXPECT_EQ(format_utc(ManualClock().wall_now() + 36h + 61s), "2026-01-02T12:01:01Z");
  // Before the epoch, down is earlier: a second is not rounded towards 1970.
  EXPECT_EQ(format_utc(Clock::WallTime(-1ms)), "1969-12-31T23:59:59Z");
}

TEST(Clock, ParseUtcReadsTheKubernetesApisTimestamps) {
  const Clock::WallTime start(std::chrono::seconds(1767225600));
  EXPECT_EQ(parse_utc("2026-01-01T00:00:00Z"), start);
  EXPECT_EQ(parse_utc("2026-01-01T00:00:01.5Z"), start + 1500ms);
  EXPECT_EQ(parse_utc("2026-01-01T00:00:00.000000123Z"), start + 123ns);
  EXPECT_EQ(parse_utc("2026-01-01T02:00:00+02:00"), start);
  EXPECT_EQ(parse_utc("2025-12-31T23:30:00-00:30"), start);
  EXPECT_EQ(parse_utc(format_utc(start + 36h + 61s)), start + 36h + 61s);
  for (const char* bad :
       {"", "2026-01-01", "2026-01-01 00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:00", "2026-01-01T00:00:00Zx", "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00+0200", "2026-1-01T00:00:00Z"}) {
    EXPECT_EQ(parse_utc(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace prescale
