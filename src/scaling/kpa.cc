#include "scaling/kpa.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace prescale::scaling {
namespace {

using std::chrono::seconds;

// autoscaling.TargetMin: the smallest per-pod target Knative accepts.
constexpr double kTargetMin = 0.01;
// aggregation: weights of the weighted average sum to at least this, with a decay of at least
// kMinExponent per bucket.
constexpr double kWeightPrecision = 0.9999;
constexpr double kMinExponent = 0.2;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int to_int(double x) {
  if (std::isnan(x)) return 0;
  if (x >= static_cast<double>(std::numeric_limits<int>::max())) {
    return std::numeric_limits<int>::max();
  }
  if (x <= static_cast<double>(std::numeric_limits<int>::min())) {
    return std::numeric_limits<int>::min();
  }
  return static_cast<int>(x);
}

// aggregation.roundToNDigits(6, x): drop floating-point noise below 1e-6.
double round_6_digits(double x) { return std::floor(x * 1e6) / 1e6; }

std::string fmt(double v, int decimals) {
  std::array<char, 64> buf{};
  std::snprintf(buf.data(), buf.size(), "%.*f", decimals, v);
  return buf.data();
}

std::string secs(Clock::Duration d) { return fmt(to_seconds(d), 0) + "s"; }

bool whole_seconds(Clock::Duration d) { return d % seconds(1) == Clock::Duration::zero(); }

}  // namespace

Clock::Duration KpaSpec::panic_window() const {
  // time.Duration(float64(stable) * pct / 100).Round(time.Second), at least one bucket.
  const auto ns = static_cast<std::int64_t>(static_cast<double>(stable_window.count()) *
                                            panic_window_percentage / 100.0);
  const std::int64_t second = Clock::Duration(seconds(1)).count();
  std::int64_t rounded = (ns + second / 2) / second * second;  // half away from zero, ns >= 0
  return std::max(Clock::Duration(rounded), Clock::Duration(seconds(1)));
}

Result<void> validate_kpa_spec(const KpaSpec& spec) {
  auto bad = [](std::string what) {
    return make_error(ErrorCode::kInvalidArgument, std::move(what));
  };
  if (!(spec.target_concurrency >= kTargetMin) || !(spec.target_rps >= kTargetMin)) {
    return bad("kpa: target_concurrency and target_rps must be at least 0.01");
  }
  if (spec.stable_window < seconds(6) || spec.stable_window > seconds(3600) ||
      !whole_seconds(spec.stable_window)) {
    return bad("kpa: stable_window must be whole seconds in [6s, 1h]");
  }
  if (!(spec.panic_window_percentage >= 1.0 && spec.panic_window_percentage <= 100.0)) {
    return bad("kpa: panic_window_percentage must be in [1, 100]");
  }
  if (!(spec.panic_threshold_percentage >= 110.0 && spec.panic_threshold_percentage <= 1000.0)) {
    return bad("kpa: panic_threshold_percentage must be in [110, 1000]");
  }
  if (!(spec.max_scale_up_rate > 1.0) || !(spec.max_scale_down_rate > 1.0)) {
    return bad("kpa: max_scale_up_rate and max_scale_down_rate must be greater than 1");
  }
  if (spec.min_scale < 0 || spec.max_scale < 0 ||
      (spec.max_scale != 0 && spec.max_scale < spec.min_scale)) {
    return bad("kpa: need 0 <= min_scale <= max_scale (max_scale 0 = unbounded)");
  }
  if (spec.tick <= Clock::Duration::zero() || !whole_seconds(spec.tick)) {
    return bad("kpa: tick must be a positive whole number of seconds");
  }
  if (spec.scale_to_zero_grace < seconds(6)) {
    return bad("kpa: scale_to_zero_grace must be at least 6s");
  }
  if (spec.scale_down_delay < Clock::Duration::zero() || spec.scale_down_delay > seconds(3600) ||
      !whole_seconds(spec.scale_down_delay)) {
    return bad("kpa: scale_down_delay must be whole seconds in [0, 1h]");
  }
  if (spec.target_burst_capacity < 0 && spec.target_burst_capacity != -1) {
    return bad("kpa: target_burst_capacity must be >= 0 or -1 (unlimited)");
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// KpaWindowAverager: a ring of buckets indexed by absolute time / granularity.

KpaWindowAverager::KpaWindowAverager(Clock::Duration window, KpaAggregation aggregation,
                                     Clock::Duration granularity)
    : window_(window), granularity_(granularity), aggregation_(aggregation) {
  const auto nb = static_cast<size_t>(
      std::max<std::int64_t>(1, (window.count() + granularity.count() - 1) / granularity.count()));
  buckets_.assign(nb, 0.0);
  smoothing_ =
      std::max(1 - std::pow(1 - kWeightPrecision, 1 / static_cast<double>(nb)), kMinExponent);
}

std::int64_t KpaWindowAverager::index_of(Clock::TimePoint t) const {
  return floor_div(t.time_since_epoch().count(), granularity_.count());
}

Clock::TimePoint KpaWindowAverager::truncate(Clock::TimePoint t) const {
  return Clock::TimePoint(Clock::Duration(index_of(t) * granularity_.count()));
}

void KpaWindowAverager::record(Clock::TimePoint now, double value) {
  const Clock::TimePoint bucket_time = truncate(now);
  const std::int64_t write_idx = index_of(now);
  const auto n = static_cast<std::int64_t>(buckets_.size());
  auto slot = [n](std::int64_t i) { return static_cast<size_t>(((i % n) + n) % n); };
  if (!last_write_ || *last_write_ != bucket_time) {
    if (last_write_ && bucket_time + window_ <= *last_write_) return;  // older than a window
    if (!first_write_ || *first_write_ > bucket_time) first_write_ = bucket_time;
    if (!last_write_ || bucket_time > *last_write_) {
      if (!last_write_ || bucket_time - *last_write_ >= window_) {
        // Nothing for a whole window: start a fresh (partial) window.
        first_write_ = bucket_time;
        std::fill(buckets_.begin(), buckets_.end(), 0.0);
        window_total_ = 0;
      } else {
        // Seconds skipped since the last write hold stale values from a window ago: zero them.
        for (std::int64_t i = index_of(*last_write_) + 1; i <= write_idx; ++i) {
          window_total_ -= buckets_[slot(i)];
          buckets_[slot(i)] = 0;
        }
      }
      last_write_ = bucket_time;
    }
  }
  buckets_[slot(write_idx)] += value;
  window_total_ += value;
}

bool KpaWindowAverager::is_empty(Clock::TimePoint now) const {
  return !last_write_ || truncate(now) - *last_write_ > window_;
}

double KpaWindowAverager::average(Clock::TimePoint now) const {
  if (is_empty(now)) return 0;
  const Clock::TimePoint t = truncate(now);
  const auto n = static_cast<std::int64_t>(buckets_.size());
  auto slot = [n](std::int64_t i) { return static_cast<size_t>(((i % n) + n) % n); };

  if (aggregation_ == KpaAggregation::kWeightedExponential) {
    std::int64_t num = n;
    double multiplier = smoothing_;
    if (t > *last_write_) {
      // Seconds without data since the last write count as zeros at the front.
      const std::int64_t zeros = (t - *last_write_) / granularity_;
      multiplier *= std::pow(1 - smoothing_, static_cast<double>(zeros));
      num -= zeros;
    }
    const std::int64_t start = index_of(*last_write_) + n;
    double total = 0;
    for (std::int64_t i = 0; i < num; ++i) {
      total += buckets_[slot(start - i)] * multiplier;
      multiplier *= 1 - smoothing_;
    }
    return total;
  }

  const std::int64_t written = (*last_write_ - *first_write_) / granularity_ + 1;
  const Clock::Duration since_write = t - *last_write_;
  if (since_write <= Clock::Duration::zero()) {
    return round_6_digits(window_total_ / static_cast<double>(std::min(written, n)));
  }
  // Upstream bucketing.go WindowAverage: exactly one window after the last write the buckets
  // are not empty (isEmpty is `> window`) but none is inside the window: `default: return 0`.
  if (since_write >= window_) return 0;
  // Trailing seconds without data: their slots still hold values from a window ago.
  const std::int64_t st = index_of(*last_write_);
  const std::int64_t e = index_of(t);
  double total = window_total_;
  for (std::int64_t i = st + 1; i <= e; ++i) total -= buckets_[slot(i)];
  return round_6_digits(total / static_cast<double>(std::min(written, n - (e - st))));
}

// ---------------------------------------------------------------------------------------------
// KnativeAutoscaler

KnativeAutoscaler::KnativeAutoscaler(KpaSpec spec, Clock::TimePoint created_at,
                                     int ready_pods_at_creation)
    : spec_(std::move(spec)),
      stable_concurrency_(spec_.stable_window, spec_.aggregation),
      panic_concurrency_(spec_.panic_window(), spec_.aggregation),
      stable_rps_(spec_.stable_window, spec_.aggregation),
      panic_rps_(spec_.panic_window(), spec_.aggregation),
      max_panic_pods_(ready_pods_at_creation) {
  if (ready_pods_at_creation > 1) panic_time_ = created_at;
}

void KnativeAutoscaler::record(Clock::TimePoint now, double total_concurrency,
                               double requests_in_second) {
  stable_concurrency_.record(now, total_concurrency);
  panic_concurrency_.record(now, total_concurrency);
  stable_rps_.record(now, requests_in_second);
  panic_rps_.record(now, requests_in_second);
}

KnativeAutoscaler::Decision KnativeAutoscaler::scale(Clock::TimePoint now, int ready_pods) {
  const KpaWindowAverager& stable = spec_.rps_mode ? stable_rps_ : stable_concurrency_;
  const KpaWindowAverager& panic = spec_.rps_mode ? panic_rps_ : panic_concurrency_;
  if (stable.is_empty(now)) {
    Decision d;
    d.panicking = panic_time_.has_value();
    if (explain_) d.reason = explain(d);
    return d;
  }
  return decide(now, ready_pods, stable.average(now), panic.average(now));
}

KnativeAutoscaler::Decision KnativeAutoscaler::decide(Clock::TimePoint now, int ready_pods,
                                                      double stable_avg, double panic_avg) {
  Decision d;
  d.valid = true;
  d.stable_avg = stable_avg;
  d.panic_avg = panic_avg;
  // With no ready pods the rates and the panic ratio are taken against one pod.
  const double ready = std::max(1.0, static_cast<double>(ready_pods));
  // Rounded so that even a small rate can move by one pod each way.
  const double max_scale_up = std::ceil(spec_.max_scale_up_rate * ready);
  const double max_scale_down = std::floor(ready / spec_.max_scale_down_rate);
  d.target = spec_.rps_mode ? spec_.target_rps : spec_.target_concurrency;
  const double dspc = std::ceil(stable_avg / d.target);
  const double dppc = std::ceil(panic_avg / d.target);
  d.stable_pods = dspc;
  d.panic_pods = dppc;
  const int desired_stable = to_int(std::min(std::max(dspc, max_scale_down), max_scale_up));
  const int desired_panic = to_int(std::min(std::max(dppc, max_scale_down), max_scale_up));
  if (dspc > max_scale_up || dppc > max_scale_up) d.scale_up_limit = to_int(max_scale_up);
  if (dspc < max_scale_down) d.scale_down_limit = to_int(max_scale_down);

  const bool over_threshold = dppc / ready >= spec_.panic_threshold_percentage / 100.0;
  if (!panic_time_ && over_threshold) {
    panic_time_ = now;
    d.entered_panic = true;
  } else if (over_threshold) {
    panic_time_ = now;  // still over the threshold: extend the panic
  } else if (panic_time_ && *panic_time_ + spec_.stable_window < now) {
    // A full stable window without a reason to panic: the surge is in the stable metric now.
    panic_time_.reset();
    max_panic_pods_ = 0;
    d.left_panic = true;
  }

  int desired = desired_stable;
  if (panic_time_) {
    desired = std::max(desired, desired_panic);
    if (desired > max_panic_pods_) {
      max_panic_pods_ = desired;
    } else if (desired < max_panic_pods_) {
      d.panic_floor = max_panic_pods_;
    }
    desired = max_panic_pods_;
  }
  if (spec_.scale_down_delay > Clock::Duration::zero()) {
    const int held = delayed(now, desired);
    if (held != desired) d.delay_held = held;
    desired = held;
  }
  d.panicking = panic_time_.has_value();
  d.decider_desired = desired;
  d.desired = bounded(now, desired, d);
  if (explain_) d.reason = explain(d);
  return d;
}

std::string KnativeAutoscaler::explain(const Decision& d) const {
  if (!d.valid) {
    return "no data: nothing recorded in the last " + secs(spec_.stable_window) +
           "; keep the current scale";
  }
  const char* metric = spec_.rps_mode ? "rps" : "concurrency";
  // The windows' running totals may leave a millionth below zero where nothing came (the
  // decision is upstream's either way): said as 0, not "-0.00".
  auto shown = [](double x) { return std::max(0.0, x); };
  std::string reason = std::string("stable ") + metric + " " + fmt(shown(d.stable_avg), 2) +
                       ", panic " + fmt(shown(d.panic_avg), 2) + " / target " + fmt(d.target, 2) +
                       " per pod -> " + fmt(shown(d.stable_pods), 0) + " stable, " +
                       fmt(shown(d.panic_pods), 0) + " panic pods";
  if (d.scale_up_limit >= 0) reason += "; scale-up rate limit " + std::to_string(d.scale_up_limit);
  if (d.scale_down_limit >= 0) {
    reason += "; scale-down rate limit " + std::to_string(d.scale_down_limit);
  }
  if (d.entered_panic) reason += "; entering panic";
  if (d.left_panic) reason += "; leaving panic";
  if (d.panic_floor >= 0) reason += "; panic: no scale-down below " + std::to_string(d.panic_floor);
  if (d.delay_held >= 0) {
    reason += "; scale-down delay " + secs(spec_.scale_down_delay) + ": holding " +
              std::to_string(d.delay_held);
  }
  if (d.clamped_min >= 0) reason += "; clamped to min-scale " + std::to_string(d.clamped_min);
  if (d.clamped_max >= 0) reason += "; clamped to max-scale " + std::to_string(d.clamped_max);
  if (d.zero_grace) {
    reason += "; scale to zero after " + secs(spec_.scale_to_zero_grace) + " grace: keep 1";
  }
  return reason;
}

int KnativeAutoscaler::delayed(Clock::TimePoint now, int desired) {
  // max.TimeWindow: the largest decision of the last ceil(delay / tick) ticks, kept as a
  // descending-maxima queue.
  const std::int64_t tick_ns = spec_.tick.count();
  const std::int64_t buckets =
      std::max<std::int64_t>(1, (spec_.scale_down_delay.count() + tick_ns - 1) / tick_ns);
  const std::int64_t index = floor_div(now.time_since_epoch().count(), tick_ns);
  int value = desired;
  while (!delay_maxima_.empty() && value >= delay_maxima_.back().second) delay_maxima_.pop_back();
  while (!delay_maxima_.empty() && index - delay_maxima_.front().first >= buckets) {
    delay_maxima_.pop_front();
  }
  if (!delay_maxima_.empty() && delay_maxima_.back().first == index) {
    value = std::max(value, delay_maxima_.back().second);
    delay_maxima_.pop_back();
  }
  delay_maxima_.emplace_back(index, value);
  return delay_maxima_.front().second;
}

int KnativeAutoscaler::bounded(Clock::TimePoint now, int desired, Decision& d) {
  int x = desired;
  if (x < spec_.min_scale) {
    x = spec_.min_scale;
    d.clamped_min = x;
  }
  if (spec_.max_scale != 0 && x > spec_.max_scale) {
    x = spec_.max_scale;
    d.clamped_max = x;
  }
  if (x != 0) {
    zero_since_.reset();
    return x;
  }
  // Scale to zero only after the decider has wanted zero for the grace period (upstream: the
  // activator has been in the request path for scale-to-zero-grace-period).
  if (!zero_since_) zero_since_ = now;
  if (now - *zero_since_ >= spec_.scale_to_zero_grace) return 0;
  d.zero_grace = true;
  return 1;
}

}  // namespace prescale::scaling
