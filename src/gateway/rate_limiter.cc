#include "gateway/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace prescale::gateway {
namespace {

// The bucket as GCRA: `full_at` is when the bucket is full again. At `now` it holds
// burst − max(0, full_at − now) / ns_per_token tokens; taking n tokens moves full_at to
// max(full_at, now) + n × ns_per_token, allowed while that stays within burst × ns_per_token of
// now. Each acquire rounds its cost to whole nanoseconds (≤ 0.5 ns off); `slack` absorbs the
// rounding of the tokens a full bucket's worth of debt can hold, so a burst of `burst` tokens is
// never refused for a rounding nanosecond. Nothing accumulates: the debt drains with real time.

constexpr std::int64_t kStartFull = std::numeric_limits<std::int64_t>::min();

// Longest time to refill a bucket from empty: its debt stays far inside int64 nanoseconds.
constexpr double kMaxRefillSeconds = 1e9;

std::int64_t ns_of(Clock::TimePoint t) { return t.time_since_epoch().count(); }

std::int64_t cost_ns(double ns_per_token, std::uint32_t tokens) {
  return std::llround(ns_per_token * tokens);
}

std::int64_t slack_for(double burst) { return 1 + static_cast<std::int64_t>(std::ceil(burst)); }

// The new full_at if `tokens` may be taken at `now`, else nullopt.
std::optional<std::int64_t> take(std::int64_t full_at, std::int64_t now, std::uint32_t tokens,
                                 double ns_per_token, double capacity_ns, std::int64_t slack) {
  const std::int64_t next = std::max(full_at, now) + cost_ns(ns_per_token, tokens);
  if (static_cast<double>(next - now) > capacity_ns + static_cast<double>(slack)) {
    return std::nullopt;
  }
  return next;
}

std::optional<Clock::Duration> wait_for(std::int64_t full_at, std::int64_t now,
                                        std::uint32_t tokens, double ns_per_token,
                                        double capacity_ns, std::int64_t slack) {
  const std::int64_t cost = cost_ns(ns_per_token, tokens);
  if (static_cast<double>(cost) > capacity_ns + static_cast<double>(slack)) return std::nullopt;
  const double excess = static_cast<double>(std::max(full_at, now) + cost - now) - capacity_ns -
                        static_cast<double>(slack);
  return Clock::Duration(excess <= 0 ? 0 : static_cast<std::int64_t>(std::ceil(excess)));
}

Result<void> validate_bucket(const TokenBucketConfig& c, const char* prefix) {
  if (!(c.rate_per_second > 0 && std::isfinite(c.rate_per_second))) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(prefix) + "rate_per_second must be positive");
  }
  if (!(c.burst >= 1 && std::isfinite(c.burst))) {
    return make_error(ErrorCode::kInvalidArgument, std::string(prefix) + "burst must be ≥ 1");
  }
  // The state counts the debt in int64 nanoseconds: a bucket that takes longer to refill would
  // overflow it (and be let through whole).
  if (c.burst / c.rate_per_second > kMaxRefillSeconds) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(prefix) + "burst / rate_per_second (the time to refill the " +
                          "bucket) must be at most 1e9 s, about 31 years");
  }
  return {};
}

}  // namespace

// --- TokenBucket -------------------------------------------------------------------------------

Result<void> validate(const TokenBucketConfig& config) {
  return validate_bucket(config, "rate_limit.");
}

TokenBucket::TokenBucket(TokenBucketConfig config)
    : ns_per_token_(1e9 / config.rate_per_second),
      capacity_ns_(config.burst * ns_per_token_),
      slack_ns_(slack_for(config.burst)),
      full_at_ns_(kStartFull) {}

bool TokenBucket::try_acquire(Clock::TimePoint now, std::uint32_t tokens) {
  const std::int64_t t = ns_of(now);
  std::int64_t full_at = full_at_ns_.load(std::memory_order_relaxed);
  for (;;) {
    const std::optional<std::int64_t> next =
        take(full_at, t, tokens, ns_per_token_, capacity_ns_, slack_ns_);
    if (!next) return false;
    // Relaxed: the bucket publishes no other data; the CAS alone decides who gets the tokens.
    if (full_at_ns_.compare_exchange_weak(full_at, *next, std::memory_order_relaxed)) return true;
  }
}

std::optional<Clock::Duration> TokenBucket::time_until_available(Clock::TimePoint now,
                                                                 std::uint32_t tokens) const {
  return wait_for(full_at_ns_.load(std::memory_order_relaxed), ns_of(now), tokens, ns_per_token_,
                  capacity_ns_, slack_ns_);
}

double TokenBucket::available(Clock::TimePoint now) const {
  const std::int64_t t = ns_of(now);
  const std::int64_t debt = std::max(full_at_ns_.load(std::memory_order_relaxed), t) - t;
  const double tokens = (capacity_ns_ - static_cast<double>(debt)) / ns_per_token_;
  return std::max(tokens, 0.0);
}

int retry_after_seconds(Clock::Duration wait) {
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(wait).count();
  return static_cast<int>(std::clamp<std::int64_t>(seconds, 1, std::numeric_limits<int>::max()));
}

std::string client_key(std::string_view api_key, std::string_view client_ip) {
  std::string key = api_key.empty() ? "ip:" : "key:";
  key.append(api_key.empty() ? client_ip : api_key);
  return key;
}

// --- KeyedRateLimiter --------------------------------------------------------------------------

struct KeyedRateLimiter::Shard {
  struct Entry {
    std::string key;
    std::int64_t full_at_ns = kStartFull;
  };
  std::mutex mu;
  std::list<Entry> lru;  // most recently seen first
  // Keys view the strings in `lru`, whose nodes never move.
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
};

Result<void> validate(const KeyedRateLimiterConfig& config) {
  if (auto ok = validate_bucket(config.bucket, "rate_limit.per_client."); !ok) return ok;
  if (config.max_keys == 0) {
    return make_error(ErrorCode::kInvalidArgument, "rate_limit.max_keys must be at least 1");
  }
  if (config.shards == 0) {
    return make_error(ErrorCode::kInvalidArgument, "rate_limit.shards must be at least 1");
  }
  return {};
}

KeyedRateLimiter::KeyedRateLimiter(KeyedRateLimiterConfig config)
    : config_(config),
      ns_per_token_(1e9 / config.bucket.rate_per_second),
      capacity_ns_(config.bucket.burst * ns_per_token_),
      slack_ns_(slack_for(config.bucket.burst)) {
  const std::size_t max_keys = std::max<std::size_t>(config.max_keys, 1);
  const std::size_t shards = std::clamp<std::size_t>(config.shards, 1, max_keys);
  keys_per_shard_ = max_keys / shards;
  shards_.reserve(shards);
  for (std::size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

KeyedRateLimiter::~KeyedRateLimiter() = default;

KeyedRateLimiter::Shard& KeyedRateLimiter::shard_for(std::string_view key) {
  return *shards_[std::hash<std::string_view>{}(key) % shards_.size()];
}

RateLimitDecision KeyedRateLimiter::check(std::string_view key, Clock::TimePoint now) {
  const std::int64_t t = ns_of(now);
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.index.find(key);
  if (it == shard.index.end()) {
    if (shard.index.size() >= keys_per_shard_) {
      shard.index.erase(shard.lru.back().key);
      shard.lru.pop_back();
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
    shard.lru.push_front(Shard::Entry{std::string(key)});
    it = shard.index.emplace(shard.lru.front().key, shard.lru.begin()).first;
  } else if (it->second != shard.lru.begin()) {
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);  // iterators stay valid
  }
  Shard::Entry& entry = *it->second;
  if (std::optional<std::int64_t> next =
          take(entry.full_at_ns, t, 1, ns_per_token_, capacity_ns_, slack_ns_)) {
    entry.full_at_ns = *next;
    return RateLimitDecision{};
  }
  const std::optional<Clock::Duration> wait =
      wait_for(entry.full_at_ns, t, 1, ns_per_token_, capacity_ns_, slack_ns_);
  return RateLimitDecision{.allowed = false, .retry_after = wait.value_or(Clock::Duration::zero())};
}

std::size_t KeyedRateLimiter::key_count() const {
  std::size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mu);
    n += shard->index.size();
  }
  return n;
}

}  // namespace prescale::gateway
