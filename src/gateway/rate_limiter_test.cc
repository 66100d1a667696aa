#include "gateway/rate_limiter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;

int drain(TokenBucket& bucket, Clock::TimePoint now) {
  int n = 0;
  while (bucket.try_acquire(now)) ++n;
  return n;
}

TEST(TokenBucket, StartsFullAndAllowsTheBurst) {
  ManualClock clock;
  TokenBucket bucket({.rate_per_second = 100, .burst = 10});
  EXPECT_DOUBLE_EQ(bucket.available(clock.now()), 10.0);
  EXPECT_EQ(drain(bucket, clock.now()), 10);
  EXPECT_NEAR(bucket.available(clock.now()), 0.0, 1e-6);
}

TEST(TokenBucket, RefillsContinuouslyAtTheRateUpToTheBurst) {
  ManualClock clock;
  TokenBucket bucket({.rate_per_second = 100, .burst = 10});
  drain(bucket, clock.now());
  clock.advance(9ms);
  EXPECT_FALSE(bucket.try_acquire(clock.now()));
  EXPECT_NEAR(bucket.available(clock.now()), 0.9, 1e-6);
  clock.advance(1ms);
  EXPECT_TRUE(bucket.try_acquire(clock.now()));
  clock.advance(45ms);
  EXPECT_NEAR(bucket.available(clock.now()), 4.5, 1e-6);
  EXPECT_EQ(drain(bucket, clock.now()), 4);
  clock.advance(1h);  // never more than the burst
  EXPECT_DOUBLE_EQ(bucket.available(clock.now()), 10.0);
  EXPECT_EQ(drain(bucket, clock.now()), 10);
}

TEST(TokenBucket, SeveralTokensAtOnce) {
  ManualClock clock;
  TokenBucket bucket({.rate_per_second = 10, .burst = 5});
  EXPECT_TRUE(bucket.try_acquire(clock.now(), 3));
  EXPECT_FALSE(bucket.try_acquire(clock.now(), 3));
  EXPECT_TRUE(bucket.try_acquire(clock.now(), 2));
  EXPECT_FALSE(bucket.try_acquire(clock.now(), 6));  // more than the bucket holds: never
  EXPECT_FALSE(bucket.time_until_available(clock.now(), 6).has_value());
}

TEST(TokenBucket, TimeUntilAvailable) {
  ManualClock clock;
  TokenBucket bucket({.rate_per_second = 100, .burst = 2});
  EXPECT_EQ(bucket.time_until_available(clock.now()), 0ns);
  drain(bucket, clock.now());
  const Clock::Duration wait = *bucket.time_until_available(clock.now());
  EXPECT_NEAR(static_cast<double>(wait.count()), 10e6, 10);
  clock.advance(wait);
  EXPECT_TRUE(bucket.try_acquire(clock.now()));
  EXPECT_NEAR(static_cast<double>(bucket.time_until_available(clock.now(), 2)->count()), 20e6, 10);
}

// Requests every millisecond for ten simulated seconds: admitted = burst + rate × 10 s.
TEST(TokenBucket, AccurateOverTenSimulatedSeconds) {
  for (double rate : {100.0, 33.3, 7.0, 1234.5}) {
    ManualClock clock;
    TokenBucket bucket({.rate_per_second = rate, .burst = 10});
    int admitted = 0;
    for (int ms = 0; ms < 10000; ++ms) {
      while (bucket.try_acquire(clock.now())) ++admitted;
      clock.advance(1ms);
    }
    // Whole tokens refilled by the last attempt, at 9.999 s, plus the initial burst.
    const double expected = 10 + std::floor(rate * 9.999);
    EXPECT_NEAR(admitted, expected, expected * 0.01) << rate;
    EXPECT_EQ(admitted, static_cast<int>(expected)) << rate;  // in fact exact to the token
  }
}

TEST(TokenBucket, AccurateUnderRandomArrivals) {
  ManualClock clock;
  TokenBucket bucket({.rate_per_second = 50, .burst = 5});
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> gap_s(200.0);  // 200 req/s offered, 4× the rate
  int admitted = 0;
  while (clock.now() < Clock::TimePoint{} + 10s) {
    if (bucket.try_acquire(clock.now())) ++admitted;
    clock.advance(std::chrono::nanoseconds(static_cast<std::int64_t>(gap_s(rng) * 1e9)));
  }
  EXPECT_NEAR(admitted, 5 + 50 * 10, 505 * 0.01);
}

TEST(TokenBucket, ConcurrentAcquirersTakeExactlyTheBurst) {
  TokenBucket bucket({.rate_per_second = 1, .burst = 1000});
  const Clock::TimePoint now{};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (bucket.try_acquire(now)) admitted.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(admitted.load(), 1000);
}

TEST(TokenBucket, ConcurrentAcquirersOverTimeNeverExceedTheRate) {
  TokenBucket bucket({.rate_per_second = 1000, .burst = 100});
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {  // each thread walks one simulated second
        const Clock::TimePoint now = Clock::TimePoint{} + std::chrono::microseconds(i * 50 + t);
        if (bucket.try_acquire(now)) admitted.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(admitted.load(), 100 + 1000 + 1);  // burst + one second of refill
  EXPECT_GE(admitted.load(), 1000);
}

TEST(RateLimit, RetryAfterSecondsRoundsUpToAtLeastOne) {
  EXPECT_EQ(retry_after_seconds(0ns), 1);
  EXPECT_EQ(retry_after_seconds(10ms), 1);
  EXPECT_EQ(retry_after_seconds(1s), 1);
  EXPECT_EQ(retry_after_seconds(1001ms), 2);
  EXPECT_EQ(retry_after_seconds(59s + 1ns), 60);
}

TEST(RateLimit, ClientKeyPrefersTheApiKey) {
  EXPECT_EQ(client_key("abc", "10.1.2.3"), "key:abc");
  EXPECT_EQ(client_key("", "10.1.2.3"), "ip:10.1.2.3");
  EXPECT_NE(client_key("10.1.2.3", "x"), client_key("", "10.1.2.3"));
}

TEST(KeyedRateLimiter, LimitsEachKeyOnItsOwn) {
  ManualClock clock;
  KeyedRateLimiter limiter({.bucket = {.rate_per_second = 1, .burst = 2}});
  EXPECT_TRUE(limiter.check("a", clock.now()).allowed);
  EXPECT_TRUE(limiter.check("a", clock.now()).allowed);
  const RateLimitDecision refused = limiter.check("a", clock.now());
  EXPECT_FALSE(refused.allowed);
  EXPECT_NEAR(static_cast<double>(refused.retry_after.count()), 1e9, 10);
  EXPECT_EQ(retry_after_seconds(refused.retry_after), 1);
  EXPECT_TRUE(limiter.check("b", clock.now()).allowed);  // another client is unaffected
  clock.advance(1s);
  EXPECT_TRUE(limiter.check("a", clock.now()).allowed);
  EXPECT_FALSE(limiter.check("a", clock.now()).allowed);
  EXPECT_EQ(limiter.key_count(), 2u);
}

TEST(KeyedRateLimiter, EvictsTheLeastRecentlySeenKey) {
  ManualClock clock;
  KeyedRateLimiter limiter(
      {.bucket = {.rate_per_second = 1, .burst = 1}, .max_keys = 3, .shards = 1});
  for (const char* k : {"a", "b", "c"}) EXPECT_TRUE(limiter.check(k, clock.now()).allowed);
  clock.advance(1ms);
  EXPECT_FALSE(limiter.check("a", clock.now()).allowed);  // seen again: now the most recent
  EXPECT_TRUE(limiter.check("d", clock.now()).allowed);   // evicts "b"
  EXPECT_EQ(limiter.key_count(), 3u);
  EXPECT_EQ(limiter.evictions(), 1u);
  EXPECT_FALSE(limiter.check("a", clock.now()).allowed);  // still remembered
  EXPECT_FALSE(limiter.check("c", clock.now()).allowed);  // still remembered
  EXPECT_TRUE(limiter.check("b", clock.now()).allowed);   // forgotten: back with a full bucket
  EXPECT_EQ(limiter.evictions(), 2u);                     // ("d" made way for it)
}

TEST(KeyedRateLimiter, NeverHoldsMoreThanMaxKeys) {
  ManualClock clock;
  KeyedRateLimiter limiter({.bucket = {.rate_per_second = 10, .burst = 10}, .max_keys = 64});
  for (int i = 0; i < 10000; ++i) limiter.check("client-" + std::to_string(i), clock.now());
  EXPECT_LE(limiter.key_count(), 64u);
  EXPECT_GE(limiter.evictions(), 10000u - 64u);
}

TEST(KeyedRateLimiter, ConcurrentClientsConserveTokens) {
  KeyedRateLimiter limiter({.bucket = {.rate_per_second = 1, .burst = 100}});
  const Clock::TimePoint now{};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      // Four keys shared by all threads. (Fixed strings: GCC 12 at -O3 warns falsely on
      // "k" + std::to_string(n) here.)
      static const std::string keys[] = {"k0", "k1", "k2", "k3"};
      for (int i = 0; i < 400; ++i) {
        if (limiter.check(keys[(i + t) % 4], now).allowed) admitted.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(admitted.load(), 4 * 100);
}

TEST(RateLimit, ValidateRejectsNonsense) {
  EXPECT_TRUE(validate(TokenBucketConfig{}).has_value());
  EXPECT_FALSE(validate(TokenBucketConfig{.rate_per_second = 0}).has_value());
  EXPECT_FALSE(validate(TokenBucketConfig{.burst = 0.5}).has_value());
  EXPECT_FALSE(validate(KeyedRateLimiterConfig{.bucket = {}, .max_keys = 0}).has_value());
  EXPECT_FALSE(validate(KeyedRateLimiterConfig{.bucket = {}, .shards = 0}).has_value());
  EXPECT_TRUE(validate(KeyedRateLimiterConfig{}).has_value());
}

// A bucket whose refill from empty takes longer than its nanoseconds can count (any positive
// rate passes the config loader) overflowed: at 1e-12 requests/s every request was let through.
TEST(RateLimit, ValidateRejectsABucketTooSlowToCountInNanoseconds) {
  EXPECT_FALSE(validate(TokenBucketConfig{.rate_per_second = 1e-12, .burst = 1}).has_value());
  EXPECT_FALSE(validate(TokenBucketConfig{.rate_per_second = 1e-6, .burst = 1e9}).has_value());
  EXPECT_FALSE(validate(KeyedRateLimiterConfig{.bucket = {.rate_per_second = 1e-12, .burst = 1}})
                   .has_value());
  EXPECT_TRUE(validate(TokenBucketConfig{.rate_per_second = 0.001, .burst = 100}).has_value());
  EXPECT_TRUE(validate(TokenBucketConfig{.rate_per_second = 1e9, .burst = 2147483647}).has_value());
}

}  // namespace
}  // namespace prescale::gateway
