#include "gateway/ewma.h"

#include <algorithm>
#include <cmath>

namespace prescale::gateway {

// Memory model. The state is independent atomics (the estimate, the time of the last sample,
// whether there was one), and every access is memory_order_relaxed:
//   * no other memory is published through them, so there is nothing to acquire or release;
//   * each atomic on its own is coherent (every thread sees one modification order), so a value
//     is never torn and never goes back to an older one once a thread has seen a newer one;
//   * a reader may pair a new timestamp with the previous value for the few nanoseconds between
//     an observer's two writes; the estimate is then briefly a little high (less decayed). The
//     balancer uses the estimate as a heuristic, so this is harmless and cheaper than a lock.
// observe() first claims the interval (last sample, now] with a CAS on the timestamp, then folds
// its sample into the value with a CAS loop. Claimed intervals never overlap, so the total decay
// applied over any stretch of time is exp(−stretch/τ) however the threads interleave; only the
// order in which concurrent samples are blended is arbitrary, as it is for concurrent requests.
// A sample whose `now` is not after the last claimed time gets Δt = 0: it still replaces a lower
// estimate (a peak) but otherwise carries no weight, exactly as for two samples at the same time.

Result<void> validate(const PeakEwmaConfig& config) {
  if (config.decay <= Clock::Duration::zero()) {
    return make_error(ErrorCode::kInvalidArgument, "peak_ewma.decay must be positive");
  }
  if (config.default_rtt < Clock::Duration::zero()) {
    return make_error(ErrorCode::kInvalidArgument, "peak_ewma.default_rtt must not be negative");
  }
  return {};
}

PeakEwma::PeakEwma(Clock::TimePoint start, PeakEwmaConfig config)
    : decay_ns_(static_cast<double>(std::max<Clock::Duration::rep>(config.decay.count(), 1))),
      value_ns_(static_cast<double>(std::max<Clock::Duration::rep>(config.default_rtt.count(), 0))),
      last_sample_ns_(start.time_since_epoch().count()) {}

void PeakEwma::observe(Clock::TimePoint now, Clock::Duration rtt) {
  const double sample = static_cast<double>(std::max<Clock::Duration::rep>(rtt.count(), 0));
  const std::int64_t now_ns = now.time_since_epoch().count();

  // The first sample replaces the prior. Exactly one thread wins the exchange; a sample that
  // another thread blends into the prior meanwhile may be overwritten, which is harmless.
  if (!sampled_.load(std::memory_order_relaxed) &&
      !sampled_.exchange(true, std::memory_order_relaxed)) {
    std::int64_t last = last_sample_ns_.load(std::memory_order_relaxed);
    while (now_ns > last &&
           !last_sample_ns_.compare_exchange_weak(last, now_ns, std::memory_order_relaxed)) {
    }
    value_ns_.store(sample, std::memory_order_relaxed);
    return;
  }

  std::int64_t last = last_sample_ns_.load(std::memory_order_relaxed);
  std::int64_t dt_ns = 0;
  while (now_ns > last) {  // else Δt = 0
    if (last_sample_ns_.compare_exchange_weak(last, now_ns, std::memory_order_relaxed)) {
      dt_ns = now_ns - last;
      break;
    }
  }

  const double keep = std::exp(-static_cast<double>(dt_ns) / decay_ns_);
  double current = value_ns_.load(std::memory_order_relaxed);
  for (;;) {
    const double decayed = current * keep;
    const double next = sample > decayed ? sample : decayed + sample * (1.0 - keep);
    if (value_ns_.compare_exchange_weak(current, next, std::memory_order_relaxed)) return;
  }
}

double PeakEwma::estimate_ns(Clock::TimePoint now) const {
  const std::int64_t last = last_sample_ns_.load(std::memory_order_relaxed);
  const double value = value_ns_.load(std::memory_order_relaxed);
  const std::int64_t dt_ns = std::max<std::int64_t>(now.time_since_epoch().count() - last, 0);
  return value * std::exp(-static_cast<double>(dt_ns) / decay_ns_);
}

Clock::Duration PeakEwma::estimate(Clock::TimePoint now) const {
  return Clock::Duration(static_cast<Clock::Duration::rep>(std::llround(estimate_ns(now))));
}

bool PeakEwma::has_sample() const { return sampled_.load(std::memory_order_relaxed); }

}  // namespace prescale::gateway
