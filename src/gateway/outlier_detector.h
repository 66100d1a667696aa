// Passive outlier detection (Envoy's outlier_detection): hosts that keep failing are ejected
// from load balancing for a while, longer each time they are ejected again
// (docs/gateway-resilience.md).
//
//   * Consecutive 5xx (5) and consecutive gateway failures (5): inline, on the response that
//     completes the run. Local errors (connect failure, reset, timeout) count as both.
//   * Success rate: every `interval` (10 s), among hosts with ≥ 100 requests in the interval and
//     only when there are ≥ 5 such hosts, those below mean − 1.9 × stdev are ejected.
//   * Ejection time = base_ejection_time (30 s) × the host's ejection multiplier, at most
//     max_ejection_time (300 s). Each ejection raises the multiplier by one; every interval tick
//     at which the host has been back for a whole interval lowers it by one.
//   * A new ejection happens only when the share of hosts ejected, the new one included, stays
//     within max_ejection_percent (10 %); the first is always allowed, so with few hosts exactly
//     one may be ejected.
//   * An ejected host is back in service the moment its ejection time has passed.
//
// Thread safety: record() and OutlierHostState's readers are lock-free and may be called from any
// thread; an ejection decision takes the detector's mutex (rare). evaluate() takes the mutex too.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <span>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "gateway/upstream_outcome.h"

namespace prescale::gateway {

struct OutlierDetectionConfig {
  // A threshold of 0 turns that detection off. Envoy detects consecutive gateway failures but
  // does not enforce them by default (enforcing_consecutive_gateway_failure 0 %); the gateway
  // does, as local errors are its own signal of a broken replica.
  std::uint32_t consecutive_5xx = 5;
  std::uint32_t consecutive_gateway_failure = 5;
  bool enforce_success_rate = true;  // Envoy's enforcing_success_rate 100 %
  Clock::Duration interval{std::chrono::seconds(10)};
  Clock::Duration base_ejection_time{std::chrono::seconds(30)};
  Clock::Duration max_ejection_time{std::chrono::seconds(300)};
  double max_ejection_percent = 10;
  std::uint32_t success_rate_minimum_hosts = 5;
  std::uint32_t success_rate_request_volume = 100;
  double success_rate_stdev_factor = 1.9;  // Envoy's success_rate_stdev_factor 1900 / 1000
};

Result<void> validate(const OutlierDetectionConfig& config);

enum class EjectionReason { kConsecutive5xx, kConsecutiveGatewayFailure, kSuccessRate };

// A host's passive-health state. Embedded in UpstreamHost; written by OutlierDetector.
class OutlierHostState {
 public:
  bool ejected(Clock::TimePoint now) const {
    return now.time_since_epoch().count() < ejected_until_ns_.load(std::memory_order_relaxed);
  }
  // When the current or last ejection ends; the epoch when never ejected.
  Clock::TimePoint ejected_until() const;
  std::uint32_t ejection_multiplier() const { return multiplier_.load(std::memory_order_relaxed); }
  std::uint64_t times_ejected() const { return times_ejected_.load(std::memory_order_relaxed); }

 private:
  friend class OutlierDetector;
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

  std::atomic<std::int64_t> ejected_until_ns_{kNever};
  std::atomic<std::uint32_t> multiplier_{0};
  std::atomic<std::uint64_t> times_ejected_{0};
  std::atomic<std::uint32_t> consecutive_5xx_{0};
  std::atomic<std::uint32_t> consecutive_gateway_{0};
  std::atomic<std::uint64_t> interval_requests_{0};  // since the last interval tick
  std::atomic<std::uint64_t> interval_failures_{0};
};

struct OutlierStats {
  std::uint64_t ejections_consecutive_5xx = 0;  // enforced ejections, by reason
  std::uint64_t ejections_consecutive_gateway_failure = 0;
  std::uint64_t ejections_success_rate = 0;
  std::uint64_t ejections_overflow = 0;  // refused by max_ejection_percent
};

class OutlierDetector {
 public:
  explicit OutlierDetector(OutlierDetectionConfig config = {});

  // One response (or local error) from `host`, at `now`. May eject the host.
  void record(OutlierHostState& host, const UpstreamOutcome& outcome, Clock::TimePoint now);
  // The detector's view of the cluster: call it with every host whenever the host set changes and
  // at least every `interval`. Once per interval it lowers multipliers and runs success-rate
  // ejection; calls in between only refresh the host count used by max_ejection_percent.
  void evaluate(std::span<OutlierHostState* const> hosts, Clock::TimePoint now);

  std::size_t ejected_count(Clock::TimePoint now) const;
  OutlierStats stats() const;
  const OutlierDetectionConfig& config() const { return config_; }

 private:
  bool eject(OutlierHostState& host, EjectionReason reason, Clock::TimePoint now);
  bool eject_locked(OutlierHostState& host, EjectionReason reason, Clock::TimePoint now);

  const OutlierDetectionConfig config_;
  std::uint32_t max_multiplier_;

  mutable std::mutex mu_;
  std::vector<std::int64_t> ejections_until_ns_;  // active ejections' end times; guarded by mu_
  std::size_t host_count_ = 0;                    // guarded by mu_; 0 until the first evaluate()
  std::int64_t next_interval_ns_ = 0;             // guarded by mu_
  bool started_ = false;                          // guarded by mu_

  std::atomic<std::uint64_t> ejections_5xx_{0}, ejections_gateway_{0}, ejections_success_rate_{0},
      ejections_overflow_{0};
};

}  // namespace prescale::gateway
