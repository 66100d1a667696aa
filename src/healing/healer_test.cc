#include "healing/healer.h"

#include <gtest/gtest.h>

namespace prescale::healing {
namespace {

using namespace std::chrono_literals;

struct HealerTest : ::testing::Test {
  ManualClock clock;
  Healer healer;
  void eject(const std::string& replica, const std::string& service = "web") {
    healer.ejected(service, replica, clock.now());
  }
};

TEST_F(HealerTest, AReplicaEjectedThreeTimesInTenMinutesIsReplacedOnce) {
  eject("web-2");
  clock.advance(2min);
  eject("web-2");
  EXPECT_TRUE(healer.remedies(clock.now()).empty()) << "twice";
  clock.advance(3min);
  eject("web-2");
  const std::vector<Remedy> r = healer.remedies(clock.now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].service, "web");
  EXPECT_EQ(r[0].replica, "web-2");
  EXPECT_EQ(r[0].reason,
            "ejected 3 times in 10 min by the gateway, its service's other "
            "replicas not");
  EXPECT_TRUE(healer.remedies(clock.now()).empty()) << "recorded: not again";
}

TEST_F(HealerTest, EjectionsOlderThanTheWindowDoNotCount) {
  eject("web-2");
  clock.advance(6min);
  eject("web-2");
  clock.advance(5min);  // the first is 11 min old
  eject("web-2");
  EXPECT_TRUE(healer.remedies(clock.now()).empty());
  clock.advance(1min);
  eject("web-2");
  EXPECT_EQ(healer.remedies(clock.now()).size(), 1u);
}

// Several replicas of a service failing alike is a shared cause (a dependency down, a bad
// release): new replicas would fail the same way, so none is replaced. Another service's
// failures are its own.
TEST_F(HealerTest, NoReplacementWhenOtherReplicasOfTheServiceFailToo) {
  for (int i = 0; i < 3; ++i) {
    eject("web-1");
    eject("web-2");
    eject("api-1", "api");
    clock.advance(1min);
  }
  const std::vector<Remedy> r = healer.remedies(clock.now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].replica, "api-1");
}

TEST_F(HealerTest, OneReplacementPerServicePerFiveMinutes) {
  for (int i = 0; i < 3; ++i) eject("web-1");
  ASSERT_EQ(healer.remedies(clock.now()).size(), 1u);
  for (int i = 0; i < 3; ++i) eject("web-3");
  EXPECT_TRUE(healer.remedies(clock.now()).empty());
  clock.advance(4min);
  EXPECT_TRUE(healer.remedies(clock.now()).empty());
  clock.advance(1min);
  EXPECT_EQ(healer.remedies(clock.now()).size(), 1u) << "its ejections are 5 min old, within 10";
}

// With one ejection enough, the replica's own single ejection is no sign of a shared cause; its
// window is said in its own unit.
TEST(Healer, OneEjectionCanBeEnoughAndTheWindowIsSaidInItsUnit) {
  ManualClock clock;
  Healer healer(
      {.ejections = 1, .window = std::chrono::seconds(90), .min_interval = {}, .memory = {}});
  healer.ejected("web", "web-1", clock.now());
  const std::vector<Remedy> r = healer.remedies(clock.now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].reason,
            "ejected once in 90 s by the gateway, its service's other "
            "replicas not");
}

TEST_F(HealerTest, ARemedyThatFailedDoesNotHoldBackTheNext) {
  for (int i = 0; i < 3; ++i) eject("web-1");
  const std::vector<Remedy> r = healer.remedies(clock.now());
  ASSERT_EQ(r.size(), 1u);
  healer.failed(r[0]);  // web-1 was already leaving
  for (int i = 0; i < 3; ++i) eject("web-2");
  EXPECT_EQ(healer.remedies(clock.now()).size(), 1u);
}

TEST_F(HealerTest, AReplicaThatLeftIsForgotten) {
  eject("web-2");
  eject("web-2");
  healer.forget("web-2");
  eject("web-2");
  EXPECT_TRUE(healer.remedies(clock.now()).empty());
}

// A breaker reopens every few seconds while its trials fail: its openings count as one ejection
// per 30 s. They add up with the outlier detection's ejections, and a replica's are its own.
TEST_F(HealerTest, ABreakerOpeningCountsAsAnEjectionOncePerThirtySeconds) {
  for (int i = 0; i < 6; ++i) {  // 0 s to 25 s: one counted
    healer.breaker_opened("web", "web-2", clock.now());
    clock.advance(5s);
  }
  healer.breaker_opened("web", "web-3", clock.now());  // another replica's: its own
  EXPECT_TRUE(healer.remedies(clock.now()).empty());
  healer.breaker_opened("web", "web-2", clock.now());  // 30 s after the first: counted
  EXPECT_TRUE(healer.remedies(clock.now()).empty()) << "twice";
  clock.advance(30s);
  eject("web-2");
  const std::vector<Remedy> r = healer.remedies(clock.now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].replica, "web-2");
  EXPECT_EQ(r[0].reason,
            "ejected 3 times in 10 min by the gateway, its service's other replicas not");
}

// In a cluster one gateway may eject a pod while another's breaker of it opens: the same failure,
// counted once, whichever came first. Outlier ejections still count each (they back off). A
// replica forgotten (a new process) counts its next one at once.
TEST_F(HealerTest, AnEjectionAndABreakerOpeningWithinThirtySecondsAreOneFailure) {
  const Clock::TimePoint t0 = clock.now();
  healer.ejected("web", "web-2", t0);
  healer.breaker_opened("web", "web-2", t0 + 10s);  // 10 s after the ejection: not counted
  healer.breaker_opened("web", "web-3", t0);        // another replica's: counted
  healer.ejected("web", "web-3", t0 + 20s);         // 20 s after its opening: not counted
  healer.breaker_opened("web", "web-2", t0 + 31s);  // 31 s after the ejection: counted
  healer.ejected("web", "web-2", t0 + 40s);         // 9 s after that opening: not counted
  EXPECT_TRUE(healer.remedies(t0 + 40s).empty()) << "twice, not 3 times";
  healer.forget("web-2");
  healer.breaker_opened("web", "web-2", t0 + 41s);
  healer.ejected("web", "web-2", t0 + 72s);
  healer.ejected("web", "web-2", t0 + 73s);  // outlier ejections count each
  const std::vector<Remedy> r = healer.remedies(t0 + 73s);
  ASSERT_EQ(r.size(), 1u) << "the forgotten record's bound went with it";
  EXPECT_EQ(r[0].replica, "web-2");
}

// A replica whose memory grows steadily toward its limit is replaced once the growth reaches the
// limit within the lead (its replacement's startup and its drain), while it still serves; every
// replica of a service leaking alike is replaced, without waiting for min_interval.
TEST_F(HealerTest, AReplicaHeadedForItsMemoryLimitIsReplacedBeforeItGetsThere) {
  constexpr std::uint64_t kMiB = 1u << 20;
  const std::uint64_t limit = 512 * kMiB;
  std::vector<Remedy> r;
  int seconds = 0;
  // 2 MiB/s from 300 MiB on web-1 and web-2 (web-2 10 MiB behind); api-1 flat near its limit.
  for (; seconds <= 200 && r.empty(); ++seconds) {
    healer.memory("web", "web-1", clock.now(), (300 + 2 * seconds) * kMiB, limit, 40s);
    healer.memory("web", "web-2", clock.now(), (290 + 2 * seconds) * kMiB, limit, 40s);
    healer.memory("api", "api-1", clock.now(), 500 * kMiB, limit, 40s);
    r = healer.remedies(clock.now());
    clock.advance(1s);
  }
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].replica, "web-1");
  EXPECT_EQ(r[0].kind, RemedyKind::kMemory);
  // 512 MiB is 106 s from 300 MiB at 2 MiB/s: replaced 40 s before, at 432 MiB.
  EXPECT_EQ(seconds - 1, 66);
  EXPECT_EQ(r[0].reason,
            "memory 432.0 MiB of its 512Mi limit, growing 2.00 MiB/s: at the limit in about 40 s "
            "(services[].memory_limit)");
  for (int i = 0; i < 5; ++i) {
    clock.advance(1s);
    ++seconds;
    healer.memory("web", "web-1", clock.now(), (300 + 2 * seconds) * kMiB, limit, 40s);
    healer.memory("web", "web-2", clock.now(), (290 + 2 * seconds) * kMiB, limit, 40s);
    r = healer.remedies(clock.now());
    if (!r.empty()) break;
  }
  ASSERT_EQ(r.size(), 1u) << "web-2, 5 s later, whatever min_interval says";
  EXPECT_EQ(r[0].replica, "web-2");
  clock.advance(1s);
  healer.memory("web", "web-1", clock.now(), 510 * kMiB, limit, 40s);
  EXPECT_TRUE(healer.remedies(clock.now()).empty()) << "web-1 was replaced already";
  for (int i = 0; i < 3; ++i) eject("web-3");
  EXPECT_EQ(healer.remedies(clock.now()).size(), 1u) << "the ejections' interval is their own";
  // That replacement holds the service's next one for min_interval; a memory remedy that failed
  // does not lift it (it never started it).
  healer.failed(r[0]);
  for (int i = 0; i < 3; ++i) eject("web-4");
  EXPECT_TRUE(healer.remedies(clock.now()).empty()) << "web-3's replacement was just now";
}

// A replacement refused for now (in a cluster: the disruption budget) is due again at the next
// look, with the replica's ejections kept: it needs no new ones. A replica being replaced holds no
// other replica of its service back.
TEST_F(HealerTest, ARemedyRetriedIsDueAgainWithItsEjectionsKept) {
  for (int i = 0; i < 3; ++i) {
    eject("web-2");
    clock.advance(1min);
  }
  std::vector<Remedy> r = healer.remedies(clock.now());
  ASSERT_EQ(r.size(), 1u);
  healer.retry(r[0]);
  clock.advance(1s);
  r = healer.remedies(clock.now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].replica, "web-2");
  // web-2, being replaced, ejected more than once, does not make web-3's ejections a shared cause.
  for (int i = 0; i < 3; ++i) {
    eject("web-3");
    clock.advance(1min);
  }
  clock.advance(2min);  // past the service's min_interval since web-2's
  r = healer.remedies(clock.now());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].replica, "web-3");
}

}  // namespace
}  // namespace prescale::healing
