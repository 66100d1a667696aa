#include "gateway/circuit_breaker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::Pair;
using State = BreakerState;

// --- UpstreamLimits ----------------------------------------------------------------------------

TEST(UpstreamLimits, DefaultsAreEnvoys) {
  UpstreamLimits limits;
  EXPECT_EQ(limits.limit(UpstreamResource::kConnections), 1024u);
  EXPECT_EQ(limits.limit(UpstreamResource::kPendingRequests), 1024u);
  EXPECT_EQ(limits.limit(UpstreamResource::kRequests), 1024u);
  EXPECT_EQ(limits.limit(UpstreamResource::kRetries), 3u);
}

TEST(UpstreamLimits, AdmitsUpToTheLimitThenOverflows) {
  UpstreamLimits limits(UpstreamLimitsConfig{.max_requests = 2});
  auto a = limits.try_acquire(UpstreamResource::kRequests);
  auto b = limits.try_acquire(UpstreamResource::kRequests);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(limits.in_use(UpstreamResource::kRequests), 2u);
  EXPECT_FALSE(limits.try_acquire(UpstreamResource::kRequests));
  EXPECT_EQ(limits.overflows(UpstreamResource::kRequests), 1u);
  // The other resources are counted apart.
  EXPECT_TRUE(limits.try_acquire(UpstreamResource::kPendingRequests));
  EXPECT_EQ(limits.in_use(UpstreamResource::kPendingRequests), 0u);  // the guard is gone already

  a->release();
  EXPECT_FALSE(a->held());
  a->release();  // idempotent
  EXPECT_EQ(limits.in_use(UpstreamResource::kRequests), 1u);
  EXPECT_TRUE(limits.try_acquire(UpstreamResource::kRequests));
}

TEST(UpstreamLimits, GuardReleasesOnDestructionAndMoves) {
  UpstreamLimits limits(UpstreamLimitsConfig{.max_retries = 1});
  {
    std::optional<ResourceGuard> guard = limits.try_acquire(UpstreamResource::kRetries);
    ASSERT_TRUE(guard);
    ResourceGuard moved = std::move(*guard);
    EXPECT_FALSE(guard->held());
    EXPECT_TRUE(moved.held());
    EXPECT_EQ(limits.in_use(UpstreamResource::kRetries), 1u);
    EXPECT_FALSE(limits.try_acquire(UpstreamResource::kRetries));
  }
  EXPECT_EQ(limits.in_use(UpstreamResource::kRetries), 0u);
}

TEST(UpstreamLimits, ConcurrentAdmissionNeverExceedsTheLimit) {
  UpstreamLimits limits(UpstreamLimitsConfig{.max_connections = 5});
  std::atomic<std::uint32_t> peak{0};
  std::atomic<std::uint64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (auto guard = limits.try_acquire(UpstreamResource::kConnections)) {
          admitted.fetch_add(1);
          const std::uint32_t now_in_use = limits.in_use(UpstreamResource::kConnections);
          std::uint32_t seen = peak.load();
          while (now_in_use > seen && !peak.compare_exchange_weak(seen, now_in_use)) {
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(peak.load(), 5u);
  EXPECT_EQ(limits.in_use(UpstreamResource::kConnections), 0u);
  EXPECT_EQ(admitted.load() + limits.overflows(UpstreamResource::kConnections), 8u * 20000u);
}

// --- FailureRateBreaker ------------------------------------------------------------------------

struct Recorder {
  std::vector<std::pair<State, State>> changes;
  FailureRateBreaker::StateChangeCallback callback() {
    return [this](State from, State to) { changes.emplace_back(from, to); };
  }
};

// One call at `now` that fails or succeeds, taking `duration`.
bool call(FailureRateBreaker& b, Clock::TimePoint now, bool failed,
          Clock::Duration duration = 1ms) {
  std::optional<BreakerPermit> permit = b.try_acquire(now);
  if (!permit) return false;
  permit->record(now, failed, duration);
  return true;
}

void calls(FailureRateBreaker& b, Clock::TimePoint now, int n, bool failed) {
  for (int i = 0; i < n; ++i) ASSERT_TRUE(call(b, now, failed));
}

// Opens the breaker at `now` with the default config: 20 failures.
void trip(FailureRateBreaker& b, Clock::TimePoint now) {
  calls(b, now, 20, true);
  ASSERT_EQ(b.state(now), State::kOpen);
}

TEST(FailureRateBreaker, DefaultsAreHystrixWindowAndSleep) {
  const FailureRateBreakerConfig c;
  EXPECT_EQ(c.window, 10s);
  EXPECT_EQ(c.minimum_requests, 20u);
  EXPECT_EQ(c.failure_rate_threshold_percent, 50);
  EXPECT_EQ(c.open_duration, 5s);
  EXPECT_EQ(c.half_open_trials, 1u);
  EXPECT_TRUE(validate(c).has_value());
}

TEST(FailureRateBreaker, NoVerdictBelowTheMinimumRequestCount) {
  ManualClock clock;
  FailureRateBreaker b;
  calls(b, clock.now(), 19, true);
  EXPECT_EQ(b.state(clock.now()), State::kClosed);
  EXPECT_TRUE(call(b, clock.now(), false));  // the 20th call: 19/20 failed → opens
  EXPECT_EQ(b.state(clock.now()), State::kOpen);
}

TEST(FailureRateBreaker, OpensAtTheFailureRateThresholdNotBelow) {
  ManualClock clock;
  Recorder rec;
  FailureRateBreaker below({}, rec.callback());
  calls(below, clock.now(), 11, false);
  calls(below, clock.now(), 9, true);  // 45 %
  EXPECT_EQ(below.state(clock.now()), State::kClosed);
  EXPECT_TRUE(rec.changes.empty());

  FailureRateBreaker at({}, rec.callback());
  calls(at, clock.now(), 10, false);
  calls(at, clock.now(), 10, true);  // 50 %: at the threshold opens
  EXPECT_EQ(at.state(clock.now()), State::kOpen);
  EXPECT_THAT(rec.changes, ElementsAre(Pair(State::kClosed, State::kOpen)));
  EXPECT_EQ(at.stats().opened, 1u);
}

TEST(FailureRateBreaker, OpenRejectsUntilOpenDurationThenAdmitsOneTrial) {
  ManualClock clock;
  FailureRateBreaker b;
  trip(b, clock.now());
  EXPECT_FALSE(b.is_accepting(clock.now()));
  EXPECT_FALSE(b.try_acquire(clock.now()));
  clock.advance(5s - 1ns);
  EXPECT_FALSE(b.try_acquire(clock.now()));
  EXPECT_EQ(b.state(clock.now()), State::kOpen);
  clock.advance(1ns);
  EXPECT_TRUE(b.is_accepting(clock.now()));
  EXPECT_EQ(b.state(clock.now()), State::kHalfOpen);
  std::optional<BreakerPermit> trial = b.try_acquire(clock.now());
  ASSERT_TRUE(trial);
  EXPECT_TRUE(trial->is_trial());
  EXPECT_FALSE(b.is_accepting(clock.now()));  // the only trial slot is taken
  EXPECT_FALSE(b.try_acquire(clock.now()));
  EXPECT_EQ(b.stats().rejected, 3u);
}

TEST(FailureRateBreaker, FullCycleClosedOpenHalfOpenOpenHalfOpenClosed) {
  ManualClock clock;
  Recorder rec;
  FailureRateBreaker b({}, rec.callback());
  trip(b, clock.now());
  clock.advance(5s);
  ASSERT_TRUE(call(b, clock.now(), /*failed=*/true));  // the trial fails: open again
  EXPECT_EQ(b.state(clock.now()), State::kOpen);
  EXPECT_FALSE(b.try_acquire(clock.now() + 4s));
  clock.advance(5s);
  ASSERT_TRUE(call(b, clock.now(), /*failed=*/false));  // the trial succeeds: closed
  EXPECT_EQ(b.state(clock.now()), State::kClosed);
  EXPECT_THAT(
      rec.changes,
      ElementsAre(Pair(State::kClosed, State::kOpen), Pair(State::kOpen, State::kHalfOpen),
                  Pair(State::kHalfOpen, State::kOpen), Pair(State::kOpen, State::kHalfOpen),
                  Pair(State::kHalfOpen, State::kClosed)));
  const BreakerStats s = b.stats();
  EXPECT_EQ(s.opened, 2u);
  EXPECT_EQ(s.half_opened, 2u);
  EXPECT_EQ(s.closed, 1u);
  // Closed again with an empty window: 19 failures are no verdict.
  calls(b, clock.now(), 19, true);
  EXPECT_EQ(b.state(clock.now()), State::kClosed);
}

TEST(FailureRateBreaker, SeveralTrialsDecideOnTheirFailureRate) {
  ManualClock clock;
  FailureRateBreakerConfig config;
  config.half_open_trials = 3;
  FailureRateBreaker b(config);
  trip(b, clock.now());
  clock.advance(5s);
  auto t1 = b.try_acquire(clock.now());
  auto t2 = b.try_acquire(clock.now());
  auto t3 = b.try_acquire(clock.now());
  ASSERT_TRUE(t1 && t2 && t3);
  EXPECT_FALSE(b.try_acquire(clock.now()));
  t1->record(clock.now(), true, 1ms);
  t2->record(clock.now(), false, 1ms);
  EXPECT_EQ(b.state(clock.now()), State::kHalfOpen);  // waits for every trial
  t3->record(clock.now(), false, 1ms);                // 1 of 3 failed: 33 % < 50 %
  EXPECT_EQ(b.state(clock.now()), State::kClosed);

  trip(b, clock.now());
  clock.advance(5s);
  auto u1 = b.try_acquire(clock.now());
  auto u2 = b.try_acquire(clock.now());
  auto u3 = b.try_acquire(clock.now());
  ASSERT_TRUE(u1 && u2 && u3);
  u1->record(clock.now(), true, 1ms);
  u2->record(clock.now(), true, 1ms);
  u3->record(clock.now(), false, 1ms);  // 67 % failed
  EXPECT_EQ(b.state(clock.now()), State::kOpen);
}

TEST(FailureRateBreaker, TrialsThatNeverReportCannotWedgeHalfOpen) {
  ManualClock clock;
  Recorder rec;
  FailureRateBreaker b({}, rec.callback());
  trip(b, clock.now());
  clock.advance(5s);
  std::optional<BreakerPermit> lost = b.try_acquire(clock.now());  // never reports
  ASSERT_TRUE(lost);
  const Clock::TimePoint half_open_at = clock.now();
  clock.advance(10s - 1ns);
  EXPECT_FALSE(b.try_acquire(clock.now()));
  EXPECT_EQ(b.state(clock.now()), State::kHalfOpen);
  clock.advance(1ns);  // max_half_open_duration: re-opens as of the deadline
  EXPECT_FALSE(b.is_accepting(clock.now()));
  EXPECT_EQ(b.state(clock.now()), State::kOpen);
  EXPECT_EQ(b.stats().half_open_expired, 1u);
  EXPECT_FALSE(b.is_accepting(half_open_at + 10s + 5s - 1ns));
  clock.set(half_open_at + 10s + 5s);  // open_duration after the deadline: a fresh trial
  EXPECT_TRUE(b.is_accepting(clock.now()));
  std::optional<BreakerPermit> fresh = b.try_acquire(clock.now());
  ASSERT_TRUE(fresh);
  // The lost trial finally reports: it belongs to an earlier half-open period and is ignored.
  lost->record(clock.now(), false, 15s);
  EXPECT_EQ(b.state(clock.now()), State::kHalfOpen);
  fresh->record(clock.now(), false, 1ms);
  EXPECT_EQ(b.state(clock.now()), State::kClosed);
  EXPECT_THAT(
      rec.changes,
      ElementsAre(Pair(State::kClosed, State::kOpen), Pair(State::kOpen, State::kHalfOpen),
                  Pair(State::kHalfOpen, State::kOpen), Pair(State::kOpen, State::kHalfOpen),
                  Pair(State::kHalfOpen, State::kClosed)));
}

TEST(FailureRateBreaker, ExpiryIsSeenEvenWhenNobodyAsksUntilLongAfter) {
  ManualClock clock;
  FailureRateBreaker b;
  trip(b, clock.now());
  clock.advance(5s);
  std::optional<BreakerPermit> lost = b.try_acquire(clock.now());
  ASSERT_TRUE(lost);
  clock.advance(1h);  // deadline and open_duration long past: half-open again at once
  EXPECT_TRUE(b.is_accepting(clock.now()));
  EXPECT_EQ(b.state(clock.now()), State::kHalfOpen);
  EXPECT_TRUE(b.try_acquire(clock.now()));
}

TEST(FailureRateBreaker, CancelledTrialFreesItsSlot) {
  ManualClock clock;
  FailureRateBreaker b;
  trip(b, clock.now());
  clock.advance(5s);
  {
    std::optional<BreakerPermit> trial = b.try_acquire(clock.now());
    ASSERT_TRUE(trial);
    EXPECT_FALSE(b.try_acquire(clock.now()));
  }  // destroyed without a result: the client went away
  EXPECT_TRUE(b.is_accepting(clock.now()));
  std::optional<BreakerPermit> next = b.try_acquire(clock.now());
  ASSERT_TRUE(next);
  next->cancel();
  EXPECT_TRUE(b.try_acquire(clock.now()));
  EXPECT_EQ(b.state(clock.now()), State::kHalfOpen);
}

TEST(FailureRateBreaker, WindowRollsOverOldBuckets) {
  ManualClock clock;
  FailureRateBreaker b;
  calls(b, clock.now(), 15, true);
  clock.advance(10s);  // the first bucket has left the 10 s window
  calls(b, clock.now(), 10, true);
  EXPECT_EQ(b.state(clock.now()), State::kClosed);  // 10 calls in the window

  FailureRateBreaker c;
  calls(c, Clock::TimePoint{} + 500ms, 10, true);
  calls(c, Clock::TimePoint{} + 9500ms, 9, true);
  EXPECT_EQ(c.state(Clock::TimePoint{} + 9500ms), State::kClosed);
  calls(c, Clock::TimePoint{} + 9999ms, 1, true);  // still within the window: 20 calls
  EXPECT_EQ(c.state(Clock::TimePoint{} + 9999ms), State::kOpen);
}

TEST(FailureRateBreaker, SuccessesDiluteOnlyWhileInTheWindow) {
  FailureRateBreaker b;
  const Clock::TimePoint t0{};
  calls(b, t0, 20, false);
  calls(b, t0 + 5s, 19, true);  // 19 of 39
  EXPECT_EQ(b.state(t0 + 5s), State::kClosed);
  ASSERT_TRUE(call(b, t0 + 10s, true));  // the successes rolled out: 20 of 20 failed
  EXPECT_EQ(b.state(t0 + 10s), State::kOpen);
}

TEST(FailureRateBreaker, SlowCallsOpenIt) {
  FailureRateBreakerConfig config;
  config.slow_call_duration = 1s;
  config.slow_call_rate_threshold_percent = 50;
  FailureRateBreaker b(config);
  const Clock::TimePoint t0{};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(call(b, t0, false, 1s));  // exactly 1 s is not slow
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(call(b, t0, false, 2s));
  EXPECT_EQ(b.state(t0), State::kClosed);
  ASSERT_TRUE(call(b, t0, false, 2s));  // 10 of 20 slow
  EXPECT_EQ(b.state(t0), State::kOpen);
}

TEST(FailureRateBreaker, ResultsFromAnEarlierStateAreIgnored) {
  ManualClock clock;
  FailureRateBreaker b;
  std::optional<BreakerPermit> old = b.try_acquire(clock.now());  // admitted while closed
  ASSERT_TRUE(old);
  trip(b, clock.now());
  clock.advance(5s);
  std::optional<BreakerPermit> trial = b.try_acquire(clock.now());
  ASSERT_TRUE(trial);
  old->record(clock.now(), false, 1ms);  // not the trial: no verdict
  EXPECT_EQ(b.state(clock.now()), State::kHalfOpen);
  trial->record(clock.now(), false, 1ms);
  EXPECT_EQ(b.state(clock.now()), State::kClosed);
}

TEST(FailureRateBreaker, ConcurrentCallsOpenItExactlyOnce) {
  Recorder rec;
  std::mutex rec_mu;
  FailureRateBreaker b({}, [&](State from, State to) {
    std::lock_guard lock(rec_mu);
    rec.changes.emplace_back(from, to);
  });
  const Clock::TimePoint t0{};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (auto p = b.try_acquire(t0)) {
          admitted.fetch_add(1);
          p->record(t0, true, 1ms);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(b.state(t0), State::kOpen);
  EXPECT_THAT(rec.changes, ElementsAre(Pair(State::kClosed, State::kOpen)));
  EXPECT_GE(admitted.load(), 20);
  EXPECT_EQ(static_cast<std::uint64_t>(admitted.load()) + b.stats().rejected, 8000u);
}

TEST(FailureRateBreaker, ValidateRejectsNonsense) {
  auto with = [](auto change) {
    FailureRateBreakerConfig c;
    change(c);
    return validate(c).has_value();
  };
  EXPECT_FALSE(with([](auto& c) { c.window = 0s; }));
  EXPECT_FALSE(with([](auto& c) { c.window_buckets = 0; }));
  EXPECT_FALSE(with([](auto& c) { c.failure_rate_threshold_percent = 0; }));
  EXPECT_FALSE(with([](auto& c) { c.failure_rate_threshold_percent = 101; }));
  EXPECT_FALSE(with([](auto& c) { c.slow_call_rate_threshold_percent = -1; }));
  EXPECT_FALSE(with([](auto& c) { c.open_duration = 0s; }));
  EXPECT_FALSE(with([](auto& c) { c.half_open_trials = 0; }));
  EXPECT_FALSE(with([](auto& c) { c.max_half_open_duration = 0s; }));
  EXPECT_TRUE(with([](auto& c) { c.failure_rate_threshold_percent = 100; }));
  EXPECT_STREQ(to_string(State::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace prescale::gateway
