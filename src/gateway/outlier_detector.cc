#include "gateway/outlier_detector.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

namespace prescale::gateway {
namespace {

std::int64_t ns_of(Clock::TimePoint t) { return t.time_since_epoch().count(); }

}  // namespace

Result<void> validate(const OutlierDetectionConfig& c) {
  auto bad = [](const char* what) {
    return make_error(ErrorCode::kInvalidArgument, std::string("outlier_detection.") + what);
  };
  if (c.interval <= Clock::Duration::zero()) return bad("interval must be positive");
  if (c.base_ejection_time <= Clock::Duration::zero()) {
    return bad("base_ejection_time must be positive");
  }
  if (c.max_ejection_time < c.base_ejection_time) {
    return bad("max_ejection_time must be at least base_ejection_time");
  }
  if (!(c.max_ejection_percent >= 0 && c.max_ejection_percent <= 100)) {
    return bad("max_ejection_percent must be in [0, 100]");
  }
  if (c.success_rate_minimum_hosts == 0) return bad("success_rate_minimum_hosts must be ≥ 1");
  if (!(c.success_rate_stdev_factor >= 0)) return bad("success_rate_stdev_factor must be ≥ 0");
  return {};
}

Clock::TimePoint OutlierHostState::ejected_until() const {
  const std::int64_t until = ejected_until_ns_.load(std::memory_order_relaxed);
  return Clock::TimePoint(Clock::Duration(until == kNever ? 0 : until));
}

OutlierDetector::OutlierDetector(OutlierDetectionConfig config)
    : config_(config),
      // Envoy keeps raising the multiplier while base × multiplier < max + base: one step past
      // the cap, which the min() below hides. Stopping at the cap is the same ejection time.
      max_multiplier_(static_cast<std::uint32_t>(std::max<std::int64_t>(
          1, (config.max_ejection_time.count() + config.base_ejection_time.count() - 1) /
                 std::max<std::int64_t>(config.base_ejection_time.count(), 1)))) {}

void OutlierDetector::record(OutlierHostState& host, const UpstreamOutcome& outcome,
                             Clock::TimePoint now) {
  // Calls that were in flight when the host was ejected still report; they must not extend it.
  if (host.ejected(now)) return;

  host.interval_requests_.fetch_add(1, std::memory_order_relaxed);
  if (outcome.is_failure()) host.interval_failures_.fetch_add(1, std::memory_order_relaxed);

  // The thread whose increment reaches the threshold, and only it, acts on the run.
  if (outcome.is_5xx() && config_.consecutive_5xx != 0) {
    if (host.consecutive_5xx_.fetch_add(1, std::memory_order_relaxed) + 1 ==
        config_.consecutive_5xx) {
      eject(host, EjectionReason::kConsecutive5xx, now);
      host.consecutive_5xx_.store(0, std::memory_order_relaxed);  // detect the next run afresh
    }
  } else {
    host.consecutive_5xx_.store(0, std::memory_order_relaxed);
  }
  if (outcome.is_gateway_error() && config_.consecutive_gateway_failure != 0) {
    if (host.consecutive_gateway_.fetch_add(1, std::memory_order_relaxed) + 1 ==
        config_.consecutive_gateway_failure) {
      eject(host, EjectionReason::kConsecutiveGatewayFailure, now);
      host.consecutive_gateway_.store(0, std::memory_order_relaxed);
    }
  } else {
    host.consecutive_gateway_.store(0, std::memory_order_relaxed);
  }
}

bool OutlierDetector::eject(OutlierHostState& host, EjectionReason reason, Clock::TimePoint now) {
  std::lock_guard lock(mu_);
  return eject_locked(host, reason, now);
}

bool OutlierDetector::eject_locked(OutlierHostState& host, EjectionReason reason,
                                   Clock::TimePoint now) {
  if (host.ejected(now)) return false;
  const std::int64_t t = ns_of(now);
  std::erase_if(ejections_until_ns_, [t](std::int64_t until) { return until <= t; });
  // Envoy: eject while the share ejected, this host included, stays within the limit; the
  // first ejection is always allowed (max_ejection_percent > 0) however few hosts there are.
  const std::size_t active = ejections_until_ns_.size();
  const bool allowed = active == 0 ? config_.max_ejection_percent > 0
                                   : host_count_ > 0 && 100.0 * static_cast<double>(active + 1) /
                                                                static_cast<double>(host_count_) <=
                                                            config_.max_ejection_percent;
  if (!allowed) {
    ejections_overflow_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  const std::uint32_t multiplier =
      std::min(host.multiplier_.load(std::memory_order_relaxed) + 1, max_multiplier_);
  const Clock::Duration duration =
      std::min(config_.base_ejection_time * multiplier, config_.max_ejection_time);
  const std::int64_t until = t + duration.count();
  host.multiplier_.store(multiplier, std::memory_order_relaxed);
  host.ejected_until_ns_.store(until, std::memory_order_relaxed);
  host.times_ejected_.fetch_add(1, std::memory_order_relaxed);
  // Start counting afresh when the host comes back, so a few errors cannot re-eject it at once.
  host.consecutive_5xx_.store(0, std::memory_order_relaxed);
  host.consecutive_gateway_.store(0, std::memory_order_relaxed);
  ejections_until_ns_.push_back(until);

  switch (reason) {
    case EjectionReason::kConsecutive5xx:
      ejections_5xx_.fetch_add(1, std::memory_order_relaxed);
      break;
    case EjectionReason::kConsecutiveGatewayFailure:
      ejections_gateway_.fetch_add(1, std::memory_order_relaxed);
      break;
    case EjectionReason::kSuccessRate:
      ejections_success_rate_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  return true;
}

void OutlierDetector::evaluate(std::span<OutlierHostState* const> hosts, Clock::TimePoint now) {
  const std::int64_t t = ns_of(now);
  std::lock_guard lock(mu_);
  host_count_ = hosts.size();
  // Rebuild the active ejections from the hosts that remain (removed hosts no longer count).
  ejections_until_ns_.clear();
  for (const OutlierHostState* host : hosts) {
    if (host->ejected(now)) {
      ejections_until_ns_.push_back(host->ejected_until_ns_.load(std::memory_order_relaxed));
    }
  }

  if (!started_) {
    started_ = true;
    next_interval_ns_ = t + config_.interval.count();
    return;
  }
  if (t < next_interval_ns_) return;
  next_interval_ns_ = t + config_.interval.count();

  // The multiplier decays: one step per tick once the host has been back for a whole interval.
  for (OutlierHostState* host : hosts) {
    const std::int64_t until = host->ejected_until_ns_.load(std::memory_order_relaxed);
    const std::uint32_t multiplier = host->multiplier_.load(std::memory_order_relaxed);
    if (multiplier > 0 && until != OutlierHostState::kNever &&
        t - until >= config_.interval.count()) {
      host->multiplier_.store(multiplier - 1, std::memory_order_relaxed);
    }
  }

  // Success rate over the interval that just ended, for hosts in service with enough volume.
  struct Rate {
    OutlierHostState* host;
    double success_percent;
  };
  std::vector<Rate> rates;
  rates.reserve(hosts.size());
  for (OutlierHostState* host : hosts) {
    const std::uint64_t requests = host->interval_requests_.exchange(0, std::memory_order_relaxed);
    const std::uint64_t failures = host->interval_failures_.exchange(0, std::memory_order_relaxed);
    if (host->ejected(now) || requests < config_.success_rate_request_volume || requests == 0) {
      continue;
    }
    const double failed = static_cast<double>(std::min(failures, requests));
    rates.push_back({host, 100.0 * (1.0 - failed / static_cast<double>(requests))});
  }
  if (!config_.enforce_success_rate || rates.size() < config_.success_rate_minimum_hosts) return;
  double sum = 0;
  for (const Rate& r : rates) sum += r.success_percent;
  const double mean = sum / static_cast<double>(rates.size());
  double variance = 0;
  for (const Rate& r : rates) variance += (r.success_percent - mean) * (r.success_percent - mean);
  variance /= static_cast<double>(rates.size());  // population variance, as Envoy
  const double threshold = mean - config_.success_rate_stdev_factor * std::sqrt(variance);
  for (const Rate& r : rates) {
    if (r.success_percent < threshold) eject_locked(*r.host, EjectionReason::kSuccessRate, now);
  }
}

std::size_t OutlierDetector::ejected_count(Clock::TimePoint now) const {
  const std::int64_t t = ns_of(now);
  std::lock_guard lock(mu_);
  return static_cast<std::size_t>(std::count_if(ejections_until_ns_.begin(),
                                                ejections_until_ns_.end(),
                                                [t](std::int64_t until) { return until > t; }));
}

OutlierStats OutlierDetector::stats() const {
  return OutlierStats{
      .ejections_consecutive_5xx = ejections_5xx_.load(std::memory_order_relaxed),
      .ejections_consecutive_gateway_failure = ejections_gateway_.load(std::memory_order_relaxed),
      .ejections_success_rate = ejections_success_rate_.load(std::memory_order_relaxed),
      .ejections_overflow = ejections_overflow_.load(std::memory_order_relaxed),
  };
}

}  // namespace prescale::gateway
