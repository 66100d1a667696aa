// Knative's Pod Autoscaler (KPA) as a pure algorithm: the decider of knative/serving
// pkg/autoscaler/scaling/autoscaler.go (stable and panic windows, rate limits, panic mode,
// scale-down delay), fed by the metric collector's 1 s buckets averaged over each window
// (pkg/autoscaler/aggregation), followed by the KPA reconciler's min/max bounds.
//
// The caller records the service's observed load once per second (like the collector's scrape)
// and asks for a decision every tick (2 s upstream). Nothing here reads a clock. docs/baselines.md
// lists every parameter, its default and where this port differs from upstream.
//
// Thread safety: none; one object per revision, driven by one loop.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::scaling {

// How the collector averages a window's buckets (annotation
// autoscaling.knative.dev/metric-aggregation-algorithm).
enum class KpaAggregation {
  kLinear,               // the default: the plain mean of the window's 1 s buckets
  kWeightedExponential,  // "weightedExponential": recent buckets weigh more
};

struct KpaSpec {
  // Per-pod target: container-concurrency-target-default (100) × target utilisation (70 %).
  double target_concurrency = 100 * 0.7;
  // Scale on requests per second instead of concurrency (autoscaling.knative.dev/metric: rps);
  // the target is requests-per-second-target-default (200) × target utilisation (70 %).
  bool rps_mode = false;
  double target_rps = 200 * 0.7;
  Clock::Duration stable_window{std::chrono::seconds(60)};
  double panic_window_percentage = 10.0;      // panic window = 10 % of the stable window = 6 s
  double panic_threshold_percentage = 200.0;  // panic when the panic window needs 2× the pods
  double max_scale_up_rate = 1000.0;          // at most ×1000 the ready pods per decision
  double max_scale_down_rate = 2.0;           // at most ÷2 per decision
  // Bounds applied after the decider (autoscaling.knative.dev/min-scale, max-scale). Knative's
  // default min-scale is 0 (scale to zero); Prescale's services keep one replica by default.
  int min_scale = 1;
  int max_scale = 0;                              // 0 = unbounded
  Clock::Duration tick{std::chrono::seconds(2)};  // the decider's period; scale-down-delay unit
  Clock::Duration scale_to_zero_grace{std::chrono::seconds(30)};  // only when min_scale == 0
  // Only decides how many activators sit in the request path (and whether they do); it never
  // changes the replica count, so it is accepted and documented but unused here.
  double target_burst_capacity = 200;
  Clock::Duration scale_down_delay{0};  // hold scale-downs: max of the decisions in this window
  KpaAggregation aggregation = KpaAggregation::kLinear;

  // round(stable_window × panic_window_percentage / 100) to whole seconds, at least 1 s.
  Clock::Duration panic_window() const;
};

// Knative's config-autoscaler validation of the fields above.
Result<void> validate_kpa_spec(const KpaSpec& spec);

// The metric collector's window of 1 s buckets (aggregation.TimedFloat64Buckets and, for
// kWeightedExponential, WeightedFloat64Buckets). Values recorded in the same bucket add up.
class KpaWindowAverager {
 public:
  KpaWindowAverager(Clock::Duration window, KpaAggregation aggregation,
                    Clock::Duration granularity = std::chrono::seconds(1));

  void record(Clock::TimePoint now, double value);
  // True when nothing was recorded in the last window (the collector's ErrNoData).
  bool is_empty(Clock::TimePoint now) const;
  // Linear: the mean over the buckets written since the window started filling (a partial window
  // right after the first write or a long gap), missing seconds in between counting as 0, with
  // trailing seconds without data excluded; 0 when empty.
  double average(Clock::TimePoint now) const;

 private:
  std::int64_t index_of(Clock::TimePoint t) const;
  Clock::TimePoint truncate(Clock::TimePoint t) const;

  Clock::Duration window_;
  Clock::Duration granularity_;
  KpaAggregation aggregation_;
  double smoothing_ = 0;  // weighted only
  std::vector<double> buckets_;
  double window_total_ = 0;
  std::optional<Clock::TimePoint> first_write_;
  std::optional<Clock::TimePoint> last_write_;
};

class KnativeAutoscaler {
 public:
  // Upstream starts a new autoscaler in panic mode when the revision already has more than one
  // ready pod, so that losing the metric history on a restart does not scale it down.
  explicit KnativeAutoscaler(KpaSpec spec, Clock::TimePoint created_at = {},
                             int ready_pods_at_creation = 0);

  // One observation of the service, at 1 s granularity (one call per second, like the
  // collector's scrape): total in-flight requests summed over the pods and averaged over the
  // second, and the requests received in that second.
  void record(Clock::TimePoint now, double total_concurrency, double requests_in_second);

  struct Decision {
    // Replicas to set: the decider's count within [min_scale, max_scale]. -1 when !valid.
    int desired = -1;
    bool valid = false;  // false: no data in the stable window; keep the current scale
    bool panicking = false;
    double stable_avg = 0;     // observed concurrency (or rps) over the stable window
    double panic_avg = 0;      // ... over the panic window
    int decider_desired = -1;  // upstream ScaleResult.DesiredPodCount, before the bounds
    // Why, in words; empty when explanations are off (set_explain), then explain() builds it.
    std::string reason;

    // The facts the reason is made of.
    double target = 0;                       // per pod
    double stable_pods = 0, panic_pods = 0;  // ceil(average / target) per window
    int scale_up_limit = -1;                 // >= 0: the scale-up rate limited the result
    int scale_down_limit = -1;               // >= 0: the scale-down rate limited it
    bool entered_panic = false, left_panic = false;
    int panic_floor = -1;   // >= 0: panic held the count at this
    int delay_held = -1;    // >= 0: the scale-down delay held the count at this
    int clamped_min = -1;   // >= 0: raised to min-scale
    int clamped_max = -1;   // >= 0: lowered to max-scale
    bool zero_grace = false;  // kept at 1 during the scale-to-zero grace period
  };

  // One tick: average the recorded load over both windows and decide. `ready_pods` is the
  // number of ready endpoints of the revision.
  Decision scale(Clock::TimePoint now, int ready_pods);
  // The decider alone, on given window averages: what upstream's autoscaler.Scale computes from
  // its metric client, followed by the bounds. scale() calls it.
  Decision decide(Clock::TimePoint now, int ready_pods, double stable_avg, double panic_avg);

  const KpaSpec& spec() const { return spec_; }
  // New min-scale and max-scale (0 <= min <= max, max 0 = unbounded) for the next decision; the
  // windows, panic and scale-down delay go on.
  void set_scale_bounds(int min_scale, int max_scale) {
    spec_.min_scale = min_scale;
    spec_.max_scale = max_scale;
  }

  // Whether scale() and decide() fill Decision::reason (on by default). Formatting the numbers
  // costs more than deciding; a caller that only needs the reason of some decisions turns it
  // off and calls explain() for those.
  void set_explain(bool on) { explain_ = on; }
  std::string explain(const Decision& decision) const;

 private:
  int delayed(Clock::TimePoint now, int desired);
  int bounded(Clock::TimePoint now, int desired, Decision& d);

  KpaSpec spec_;
  KpaWindowAverager stable_concurrency_;
  KpaWindowAverager panic_concurrency_;
  KpaWindowAverager stable_rps_;
  KpaWindowAverager panic_rps_;
  std::optional<Clock::TimePoint> panic_time_;
  int max_panic_pods_ = 0;
  // Scale-down delay: (tick index, decision) pairs in descending decision order, oldest first.
  std::deque<std::pair<std::int64_t, int>> delay_maxima_;
  std::optional<Clock::TimePoint> zero_since_;  // decider has wanted 0 pods since
  bool explain_ = true;
};

}  // namespace prescale::scaling
