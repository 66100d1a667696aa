// Circuit breaking for one upstream (docs/gateway-resilience.md), two independent parts:
//
//   * UpstreamLimits: Envoy's per-cluster thresholds. Counts connections, pending requests,
//     active requests and retries in use and refuses one more past its limit (Envoy answers such a
//     request with 503 and bumps *_overflow). Admission hands out a ResourceGuard (RAII).
//   * FailureRateBreaker: a closed / open / half-open state machine (Hystrix, resilience4j) over a
//     sliding time window of outcomes: it opens when enough calls fail or are slow, stays open for
//     `open_duration`, then lets a few trial calls through. Half-open has a deadline, so trials
//     that never report back cannot wedge it (a known resilience4j flaw).
//
// Thread safety: both classes may be used from any number of threads. UpstreamLimits is lock-free.
// FailureRateBreaker admits without a lock while closed (and rejects without one while open);
// recording a result and changing state take a per-breaker mutex held for O(buckets) work.
// A breaker must outlive its permits.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::gateway {

// One unit of a counted resource; gives it back when destroyed or on release(). Move-only.
class ResourceGuard {
 public:
  // One unit of `in_use` if it is below `limit` (lock-free); nullopt otherwise.
  static std::optional<ResourceGuard> try_acquire(std::atomic<std::uint32_t>& in_use,
                                                  std::uint32_t limit);

  ResourceGuard(ResourceGuard&& other) noexcept;
  ResourceGuard& operator=(ResourceGuard&& other) noexcept;
  ResourceGuard(const ResourceGuard&) = delete;
  ResourceGuard& operator=(const ResourceGuard&) = delete;
  ~ResourceGuard();

  void release();  // idempotent
  bool held() const { return in_use_ != nullptr; }

 private:
  explicit ResourceGuard(std::atomic<std::uint32_t>* in_use) : in_use_(in_use) {}
  std::atomic<std::uint32_t>* in_use_;
};

enum class UpstreamResource { kConnections, kPendingRequests, kRequests, kRetries };

// Envoy's circuit_breakers.thresholds (default priority).
struct UpstreamLimitsConfig {
  std::uint32_t max_connections = 1024;
  std::uint32_t max_pending_requests = 1024;
  std::uint32_t max_requests = 1024;  // active requests
  std::uint32_t max_retries = 3;      // retries in flight; RetryBudget replaces it when configured
};

class UpstreamLimits {
 public:
  explicit UpstreamLimits(UpstreamLimitsConfig config = {});

  // One unit of `resource`, or nullopt (and one more overflow) when it is at its limit.
  std::optional<ResourceGuard> try_acquire(UpstreamResource resource);
  // One unit of `resource` while fewer than `limit` are in use (a tighter, moving limit than
  // the configured one, which the caller has checked); a refusal is not counted as an overflow.
  std::optional<ResourceGuard> try_acquire_below(UpstreamResource resource, std::uint32_t limit);
  std::uint32_t in_use(UpstreamResource resource) const;
  std::uint32_t limit(UpstreamResource resource) const;
  std::uint64_t overflows(UpstreamResource resource) const;  // Envoy's upstream_*_overflow

 private:
  struct Slot {
    std::atomic<std::uint32_t> in_use{0};
    std::atomic<std::uint64_t> overflows{0};
    std::uint32_t limit = 0;
  };
  std::array<Slot, 4> slots_;
};

enum class BreakerState { kClosed, kOpen, kHalfOpen };
const char* to_string(BreakerState state);

struct FailureRateBreakerConfig {
  Clock::Duration window{std::chrono::seconds(10)};  // sliding window of outcomes...
  std::uint32_t window_buckets = 10;                 // ...kept in this many buckets (1 s each)
  std::uint32_t minimum_requests = 20;               // no verdict on fewer calls in the window
  double failure_rate_threshold_percent = 50;        // open at ≥ this share of failures
  Clock::Duration slow_call_duration{std::chrono::seconds(60)};  // a call this long is slow
  double slow_call_rate_threshold_percent = 100;           // open at ≥ this share of slow calls
  Clock::Duration open_duration{std::chrono::seconds(5)};  // reject everything this long
  std::uint32_t half_open_trials = 1;                      // calls let through when half-open
  // Half-open ends after this long even if trials are still out: the breaker re-opens.
  Clock::Duration max_half_open_duration{std::chrono::seconds(10)};
};

Result<void> validate(const FailureRateBreakerConfig& config);

struct BreakerStats {
  std::uint64_t opened = 0;             // transitions to open (from closed or half-open)
  std::uint64_t half_opened = 0;        // transitions to half-open
  std::uint64_t closed = 0;             // transitions from half-open to closed
  std::uint64_t rejected = 0;           // try_acquire refusals
  std::uint64_t half_open_expired = 0;  // half-open periods ended by max_half_open_duration
};

class FailureRateBreaker;

// Permission for one call. Report the call with record(); a permit destroyed without a record
// (the client went away) is cancelled: it frees its half-open trial slot and counts nothing.
class BreakerPermit {
 public:
  BreakerPermit(BreakerPermit&& other) noexcept;
  BreakerPermit& operator=(BreakerPermit&& other) noexcept;
  BreakerPermit(const BreakerPermit&) = delete;
  BreakerPermit& operator=(const BreakerPermit&) = delete;
  ~BreakerPermit();

  // `failed`: the call failed (5xx or a local error); `duration`: how long it took.
  void record(Clock::TimePoint now, bool failed, Clock::Duration duration);
  void cancel();
  bool is_trial() const { return trial_; }

 private:
  friend class FailureRateBreaker;
  BreakerPermit(FailureRateBreaker* breaker, std::uint64_t generation, bool trial)
      : breaker_(breaker), generation_(generation), trial_(trial) {}

  FailureRateBreaker* breaker_;
  std::uint64_t generation_;  // the state period the permit was issued in
  bool trial_;
};

class FailureRateBreaker {
 public:
  // Called after every state change, outside the breaker's lock, on the thread that caused it.
  using StateChangeCallback = std::function<void(BreakerState from, BreakerState to)>;

  explicit FailureRateBreaker(FailureRateBreakerConfig config = {},
                              StateChangeCallback on_state_change = {});

  // A permit, or nullopt while open or while half-open with every trial slot taken.
  std::optional<BreakerPermit> try_acquire(Clock::TimePoint now);
  // Whether try_acquire(now) would likely succeed; lock-free, for the balancer's filter.
  bool is_accepting(Clock::TimePoint now) const;
  // The state at `now`, after applying the transitions that are due.
  BreakerState state(Clock::TimePoint now);
  BreakerStats stats() const;
  const FailureRateBreakerConfig& config() const { return config_; }

 private:
  friend class BreakerPermit;
  struct Bucket {
    std::int64_t index = -1;  // floor(time / bucket width); -1: unused
    std::uint32_t calls = 0;
    std::uint32_t failures = 0;
    std::uint32_t slow = 0;
  };
  using Transitions = std::vector<std::pair<BreakerState, BreakerState>>;

  void record(std::uint64_t generation, bool trial, Clock::TimePoint now, bool failed,
              Clock::Duration duration);
  void cancel(std::uint64_t generation, bool trial);
  // The following run with mu_ held.
  void advance_locked(Clock::TimePoint now, Transitions& transitions);
  void transition_locked(BreakerState to, Clock::TimePoint at, Transitions& transitions);
  bool over_thresholds(std::uint32_t calls, std::uint32_t failures, std::uint32_t slow) const;
  void notify(const Transitions& transitions) const;

  const FailureRateBreakerConfig config_;
  const StateChangeCallback on_state_change_;
  const std::int64_t bucket_width_ns_;

  // generation << 2 | state. Written under mu_, read anywhere.
  std::atomic<std::uint64_t> state_word_{0};
  std::atomic<std::int64_t> open_until_ns_{0};          // while open
  std::atomic<std::int64_t> half_open_deadline_ns_{0};  // while half-open
  std::atomic<std::uint32_t> trials_admitted_{0};       // while half-open

  std::atomic<std::uint64_t> opened_{0}, half_opened_{0}, closed_{0}, rejected_{0},
      half_open_expired_{0};

  mutable std::mutex mu_;
  std::vector<Bucket> buckets_;                                            // guarded by mu_
  std::uint32_t trial_results_ = 0, trial_failures_ = 0, trial_slow_ = 0;  // guarded by mu_
};

}  // namespace prescale::gateway
