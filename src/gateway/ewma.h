// PeakEwma: Linkerd's peak-sensitive, exponentially weighted moving average of an upstream's
// round-trip time, the latency half of the balancer's cost (docs/gateway-resilience.md).
//
//   * It starts at `default_rtt` (30 ms) as of `start` (when the host was added); like any
//     estimate, this prior decays, so a new host is soon cheap enough to be tried. The first
//     sample replaces it outright.
//   * A sample above the current (decayed) estimate replaces it at once: latency spikes are seen
//     immediately.
//   * Otherwise the estimate moves toward the sample with weight 1 − exp(−Δt/τ), Δt being the time
//     since the previous sample and τ the decay (10 s).
//   * Between samples the estimate decays toward zero as exp(−Δt/τ), so an idle host looks cheap
//     and is soon probed again. Reading does not mutate (unlike Finagle/tower, whose reads store
//     the decayed value): picks on the hot path write nothing.
//
// Thread safety: observe() and estimate() may be called from any number of threads with no lock.
// See ewma.cc for the memory-model argument.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::gateway {

struct PeakEwmaConfig {
  Clock::Duration decay{std::chrono::seconds(10)};             // τ
  Clock::Duration default_rtt{std::chrono::milliseconds(30)};  // the estimate before any sample
};

Result<void> validate(const PeakEwmaConfig& config);

class PeakEwma {
 public:
  explicit PeakEwma(Clock::TimePoint start, PeakEwmaConfig config = {});

  // Records one round trip that completed at `now`. Negative durations count as zero.
  void observe(Clock::TimePoint now, Clock::Duration rtt);
  // The estimate at `now`, in nanoseconds (a double: it is a weight, not a timestamp).
  double estimate_ns(Clock::TimePoint now) const;
  Clock::Duration estimate(Clock::TimePoint now) const;
  bool has_sample() const;

 private:
  double decay_ns_;
  std::atomic<double> value_ns_;              // the estimate as of last_sample_ns_
  std::atomic<std::int64_t> last_sample_ns_;  // Clock::TimePoint of the last sample (or start)
  std::atomic<bool> sampled_{false};
};

}  // namespace prescale::gateway
