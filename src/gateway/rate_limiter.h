// Local rate limiting (docs/gateway-resilience.md): a token bucket, and a limiter that keeps one
// bucket per client key (API key or client IP) for a bounded number of keys. A refused request
// is answered 429 with a Retry-After header (retry_after_seconds).
//
// The bucket holds at most `burst` tokens and refills continuously at `rate_per_second`; it
// starts full. Refill is exact: the state is the time at which the bucket is full again, so no
// rounding accumulates however often it is asked.
//
// Thread safety: TokenBucket is lock-free (one CAS per acquire). KeyedRateLimiter may be called
// from any thread; its keys are split into shards, each with its own mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::gateway {

struct TokenBucketConfig {
  double rate_per_second = 100;  // tokens added per second
  double burst = 100;            // capacity, in tokens; at least 1, at most 1e9 s of the rate
};

Result<void> validate(const TokenBucketConfig& config);

class TokenBucket {
 public:
  explicit TokenBucket(TokenBucketConfig config);

  // Takes `tokens` if the bucket holds them at `now`.
  bool try_acquire(Clock::TimePoint now, std::uint32_t tokens = 1);
  // How long until `tokens` can be taken (zero: now); nullopt when tokens > burst (never).
  std::optional<Clock::Duration> time_until_available(Clock::TimePoint now,
                                                      std::uint32_t tokens = 1) const;
  double available(Clock::TimePoint now) const;  // tokens, fractional

 private:
  double ns_per_token_;
  double capacity_ns_;  // burst × ns_per_token_
  std::int64_t slack_ns_;
  std::atomic<std::int64_t> full_at_ns_;  // when the bucket is (was) full; the state
};

// Retry-After for a 429: whole seconds, rounded up, at least 1.
int retry_after_seconds(Clock::Duration wait);

// The key a client is limited by: its API key when it sent one, else its IP address. Prefixed so
// that an API key can never collide with an address.
std::string client_key(std::string_view api_key, std::string_view client_ip);

struct KeyedRateLimiterConfig {
  TokenBucketConfig bucket;       // every key's bucket
  std::size_t max_keys = 100000;  // keys remembered at most (about 100 B + the key each)
  std::size_t shards = 16;        // lock striping; each shard holds max_keys / shards keys
};

Result<void> validate(const KeyedRateLimiterConfig& config);

struct RateLimitDecision {
  bool allowed = true;
  Clock::Duration retry_after{0};  // when refused: the wait until a token is available
};

// One bucket per key. When a shard is full, the least recently seen key is forgotten; it comes
// back with a full bucket. The key forgotten is the one idle longest, whose bucket has most
// likely refilled already (it has after burst / rate seconds), so little is lost.
class KeyedRateLimiter {
 public:
  explicit KeyedRateLimiter(KeyedRateLimiterConfig config = {});
  ~KeyedRateLimiter();

  RateLimitDecision check(std::string_view key, Clock::TimePoint now);
  std::size_t key_count() const;
  std::uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  struct Shard;
  Shard& shard_for(std::string_view key);

  const KeyedRateLimiterConfig config_;
  double ns_per_token_;
  double capacity_ns_;
  std::int64_t slack_ns_;
  std::size_t keys_per_shard_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<std::uint64_t> evictions_{0};
};

}  // namespace prescale::gateway
