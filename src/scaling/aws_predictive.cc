#include "scaling/aws_predictive.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace prescale::scaling {
namespace {

using std::chrono::hours;

constexpr Clock::Duration kHour = hours(1);
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Index of the bucket [k w, (k+1) w) that contains `t`.
std::int64_t bucket_of(Clock::TimePoint t, Clock::Duration width) {
  return floor_div(t.time_since_epoch().count(), width.count());
}

// Index of the bucket (k w, (k+1) w] that a measurement window ending at `t` belongs to.
std::int64_t bucket_ending_at(Clock::TimePoint t, Clock::Duration width) {
  return bucket_of(t - Clock::Duration(1), width);
}

Clock::TimePoint bucket_start(std::int64_t index, Clock::Duration width) {
  return Clock::TimePoint{} + index * width;
}

// ceil() that does not round 3.0000000000000004 up to 4.
int ceil_count(double x) {
  if (!(x > 0)) return 0;
  const double c = std::ceil(x - 1e-9);
  return c >= static_cast<double>(std::numeric_limits<int>::max()) ? std::numeric_limits<int>::max()
                                                                   : static_cast<int>(c);
}

std::string pct(double ratio) {
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), "%.1f%%", ratio * 100);
  return buf.data();
}

std::string num(double v) {
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), "%.1f", v);
  return buf.data();
}

// The observation of the i-th managed service: worlds list services in the order they were
// given, so the i-th entry is tried first (observe() runs every tick).
const ServiceObservation* observation(const Snapshot& snapshot, size_t i, std::string_view name) {
  if (i < snapshot.services.size() && snapshot.services[i].name == name) {
    return &snapshot.services[i];
  }
  return snapshot.service(name);
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += "; ";
    out += p;
  }
  return out;
}

}  // namespace

Result<void> validate_aws_predictive_options(const AwsPredictiveOptions& o) {
  auto bad = [](std::string what) {
    return make_error(ErrorCode::kInvalidArgument, "aws: " + std::move(what));
  };
  if (o.scheduling_buffer < Clock::Duration::zero() || o.scheduling_buffer >= kHour) {
    return bad("scheduling_buffer must be in [0, 3600) s");
  }
  if (o.min_history <= Clock::Duration::zero() || o.max_history < o.min_history) {
    return bad("history: need 0 < min_history <= max_history");
  }
  if (o.forecast_horizon < kHour || o.forecast_interval <= Clock::Duration::zero()) {
    return bad("forecast_horizon must be >= 1 h and forecast_interval > 0");
  }
  if (!(o.daily_decay > 0 && o.daily_decay <= 1) ||
      !(o.weekly_weight >= 0 && o.weekly_weight <= 1) || !(o.max_level_ratio >= 1)) {
    return bad("daily_decay in (0, 1], weekly_weight in [0, 1], max_level_ratio >= 1");
  }
  if (!(o.target_utilization > 0 && o.target_utilization <= 1)) {
    return bad("target_utilization must be in (0, 1]");
  }
  if (o.datapoint_period <= Clock::Duration::zero() || o.scale_out_datapoints < 1 ||
      o.scale_in_datapoints < 1) {
    return bad("datapoint_period > 0 and datapoint counts >= 1 required");
  }
  if (!(o.scale_in_threshold_ratio > 0 && o.scale_in_threshold_ratio <= 1)) {
    return bad("scale_in_threshold_ratio must be in (0, 1]");
  }
  if ((o.instance_warmup && *o.instance_warmup < Clock::Duration::zero()) ||
      o.scale_in_cooldown < Clock::Duration::zero()) {
    return bad("instance_warmup and scale_in_cooldown must not be negative");
  }
  return {};
}

namespace internal {

std::vector<double> aws_forecast_hours(const std::vector<double>& observed,
                                       std::int64_t first_observed_hour, std::int64_t first_hour,
                                       int count, const AwsPredictiveOptions& options) {
  constexpr int kDay = 24;
  constexpr int kWeek = 7 * kDay;
  const int max_days = static_cast<int>(options.max_history / hours(kDay));
  // Unscaled seasonal forecasts of the hours from first_hour on. The profile is built from
  // observed hours only; an hour with none of its same-hour history observed yet (more than a
  // day ahead of a short history) repeats the forecast for the day before.
  std::vector<double> seasonal_ahead;
  seasonal_ahead.reserve(static_cast<size_t>(std::max(count, 0)));

  const std::int64_t oldest = first_hour - static_cast<std::int64_t>(max_days) * kDay;
  auto observed_at = [&](std::int64_t i) -> double {
    if (i < first_observed_hour || i < oldest || i >= first_hour) return kNaN;
    const auto k = static_cast<size_t>(i - first_observed_hour);
    return k < observed.size() ? observed[k] : kNaN;
  };
  auto seasonal = [&](std::int64_t i) -> double {
    double daily_sum = 0;
    double daily_weight = 0;
    double w = 1;
    for (int d = 1; d <= max_days; ++d, w *= options.daily_decay) {
      const double v = observed_at(i - static_cast<std::int64_t>(d) * kDay);
      if (std::isnan(v)) continue;
      daily_sum += w * v;
      daily_weight += w;
    }
    double weekly_sum = 0;
    int weekly_n = 0;
    for (int k = 1; k * kWeek <= max_days * kDay; ++k) {
      const double v = observed_at(i - static_cast<std::int64_t>(k) * kWeek);
      if (std::isnan(v)) continue;
      weekly_sum += v;
      ++weekly_n;
    }
    if (daily_weight == 0 && weekly_n == 0) {
      const std::int64_t yesterday = i - kDay - first_hour;
      return yesterday >= 0 && yesterday < static_cast<std::int64_t>(seasonal_ahead.size())
                 ? seasonal_ahead[static_cast<size_t>(yesterday)]
                 : kNaN;
    }
    if (weekly_n == 0) return daily_sum / daily_weight;
    if (daily_weight == 0) return weekly_sum / weekly_n;
    return (1 - options.weekly_weight) * (daily_sum / daily_weight) +
           options.weekly_weight * (weekly_sum / weekly_n);
  };

  // Level: how the last observed day compares with what the profile says about it.
  double actual = 0;
  double expected = 0;
  for (std::int64_t k = first_hour - kDay; k < first_hour; ++k) {
    const double v = observed_at(k);
    const double s = seasonal(k);
    if (std::isnan(v) || std::isnan(s)) continue;
    actual += v;
    expected += s;
  }
  double level = 1;
  if (expected > 0) {
    level = std::clamp(actual / expected, 1 / options.max_level_ratio, options.max_level_ratio);
  }

  // Fallback for an hour without any same-hour history: the mean of what was observed.
  double mean_sum = 0;
  int mean_n = 0;
  for (double v : observed) {
    if (std::isnan(v)) continue;
    mean_sum += v;
    ++mean_n;
  }
  const double fallback = mean_n > 0 ? mean_sum / mean_n : 0;

  for (int h = 0; h < count; ++h) {
    const double s = seasonal(first_hour + h);
    seasonal_ahead.push_back(std::isnan(s) ? fallback : s);
  }
  std::vector<double> out;
  out.reserve(seasonal_ahead.size());
  for (double s : seasonal_ahead) out.push_back(std::max(0.0, level * s));
  return out;
}

}  // namespace internal

AwsPredictivePolicy::AwsPredictivePolicy(AwsPredictiveOptions options)
    : options_(std::move(options)) {}

void AwsPredictivePolicy::init(const std::vector<ServiceSpec>& services) {
  services_.clear();
  services_.reserve(services.size());
  for (const auto& spec : services) {
    ServiceState s;
    s.spec = spec;
    services_.push_back(std::move(s));
  }
}

void AwsPredictivePolicy::observe(const Snapshot& snapshot) {
  for (size_t i = 0; i < services_.size(); ++i) {
    ServiceState& state = services_[i];
    if (const ServiceObservation* seen = observation(snapshot, i, state.spec.name)) {
      record(state, *seen);
    }
  }
}

void AwsPredictivePolicy::record(ServiceState& state, const ServiceObservation& seen) {
  const WindowMetrics& w = seen.window;
  if (w.length <= Clock::Duration::zero()) return;                      // nothing scraped yet
  if (state.last_scrape && w.sampled_at <= *state.last_scrape) return;  // seen already
  // Scrape windows may overlap (30 s windows every 15 s): each scrape stands for the time since
  // the previous one, so every second of load is counted once.
  Clock::Duration weight = w.length;
  if (state.last_scrape) weight = std::min(weight, w.sampled_at - *state.last_scrape);
  if (!state.first_sample) state.first_sample = w.sampled_at - weight;
  state.last_scrape = w.sampled_at;

  const double seconds = to_seconds(weight);
  HourLoad& hour = state.hours[bucket_ending_at(w.sampled_at, kHour)];
  hour.requests += w.arrival_rps * seconds;
  hour.seconds += seconds;

  // The aggregated CPU metric: instances still warming up do not contribute. Per-replica samples
  // are used when the world provides them; otherwise the scrape's mean over ready replicas.
  const Clock::Duration warmup = options_.instance_warmup.value_or(state.spec.startup_time);
  bool per_replica = false;
  double sum = 0;
  int n = 0;
  for (const auto& r : seen.replicas) {
    if (!r.cpu_utilization) continue;
    per_replica = true;
    if (r.state != ReplicaState::kReady || r.started_at + warmup > w.sampled_at) continue;
    sum += *r.cpu_utilization;
    ++n;
  }
  double metric = kNaN;
  if (per_replica) {
    if (n > 0) metric = sum / n;
  } else {
    metric = w.mean_cpu_utilization;
  }
  if (std::isfinite(metric)) {
    MinuteCpu& m = state.minutes[bucket_ending_at(w.sampled_at, options_.datapoint_period)];
    m.sum += metric;
    ++m.samples;
  }
}

void AwsPredictivePolicy::evaluate_datapoints(ServiceState& state, Clock::TimePoint now) {
  // Minute m, (m P, (m+1) P], is complete once now >= (m+1) P.
  const std::int64_t last_complete = bucket_of(now, options_.datapoint_period) - 1;
  if (!state.next_minute) {
    if (state.minutes.empty()) return;
    state.next_minute = state.minutes.begin()->first;
  }
  const double high = options_.target_utilization;
  const double low = options_.target_utilization * options_.scale_in_threshold_ratio;
  auto it = state.minutes.begin();
  while (it != state.minutes.end() && it->first <= last_complete) {
    if (it->first < *state.next_minute) {  // arrived after its minute was evaluated
      it = state.minutes.erase(it);
      continue;
    }
    if (it->first > *state.next_minute) {  // minutes without data: the alarms see no breach
      state.high_streak = 0;
      state.low_streak = 0;
    }
    const double v = it->second.sum / it->second.samples;
    state.last_datapoint = v;
    state.has_datapoint = true;
    state.high_streak = v > high ? state.high_streak + 1 : 0;
    state.low_streak = v < low ? state.low_streak + 1 : 0;
    state.next_minute = it->first + 1;
    it = state.minutes.erase(it);
  }
  if (*state.next_minute <= last_complete) {  // trailing minutes without data
    state.high_streak = 0;
    state.low_streak = 0;
    state.next_minute = last_complete + 1;
  }
}

void AwsPredictivePolicy::refresh_forecast(ServiceState& state, Clock::TimePoint now) {
  if (!state.first_sample || now - *state.first_sample < options_.min_history) return;
  if (state.forecast && now < state.forecast->made_at + options_.forecast_interval) return;

  const std::int64_t current_hour = bucket_of(now, kHour);
  const std::int64_t oldest_allowed = current_hour - options_.max_history / kHour;
  // Hours that fell out of the history window are dropped.
  state.hours.erase(state.hours.begin(), state.hours.lower_bound(oldest_allowed));
  const std::int64_t first_observed =
      state.hours.empty() ? current_hour : std::max(oldest_allowed, state.hours.begin()->first);
  std::vector<double> observed;
  for (std::int64_t h = first_observed; h < current_hour; ++h) {
    auto it = state.hours.find(h);
    observed.push_back(it != state.hours.end() && it->second.seconds > 0
                           ? it->second.requests / it->second.seconds
                           : kNaN);
  }
  const int count =
      static_cast<int>(bucket_of(now + options_.forecast_horizon, kHour) - current_hour + 1);

  AwsForecast f;
  f.made_at = now;
  f.first_hour = bucket_start(current_hour, kHour);
  f.load_rps =
      internal::aws_forecast_hours(observed, first_observed, current_hour, count, options_);
  const double per_instance = state.spec.capacity_rps * options_.target_utilization;
  f.capacity.reserve(f.load_rps.size());
  for (double load : f.load_rps) f.capacity.push_back(ceil_count(load / per_instance));
  state.forecast = std::move(f);
}

Plan AwsPredictivePolicy::decide(const Snapshot& snapshot, Clock::TimePoint now) {
  Plan plan;
  plan.time = now;
  for (size_t i = 0; i < services_.size(); ++i) {
    ServiceState& state = services_[i];
    const ServiceObservation* seen = observation(snapshot, i, state.spec.name);
    if (!seen) continue;
    record(state, *seen);
    plan.decisions.push_back(decide_service(state, *seen, now));
  }
  return plan;
}

Decision AwsPredictivePolicy::decide_service(ServiceState& state, const ServiceObservation& seen,
                                             Clock::TimePoint now) {
  const ServiceSpec& spec = state.spec;
  evaluate_datapoints(state, now);
  refresh_forecast(state, now);

  const int current =
      seen.desired_replicas > 0 ? seen.desired_replicas : static_cast<int>(seen.replicas.size());
  const Clock::Duration warmup = options_.instance_warmup.value_or(spec.startup_time);
  int warmed = 0;
  int warming = 0;
  for (const auto& r : seen.replicas) {
    if (r.state == ReplicaState::kDraining) continue;
    if (r.state == ReplicaState::kReady && r.started_at + warmup <= now) {
      ++warmed;
    } else {
      ++warming;
    }
  }

  std::vector<std::string> why;
  int desired = current;
  const double target = options_.target_utilization;
  const double v = state.last_datapoint;

  // Target tracking.
  if (state.high_streak >= options_.scale_out_datapoints && warmed > 0) {
    const int want = ceil_count(warmed * v / target);
    if (want > current) {
      desired = want;
      state.last_scale_in.reset();  // a scale-out ends the scale-in cooldown
      why.push_back("target tracking: cpu " + pct(v) + " > target " + pct(target) + " for " +
                    std::to_string(state.high_streak) + " datapoints: ceil(" +
                    std::to_string(warmed) + " warmed x " + pct(v) + " / " + pct(target) +
                    ") = " + std::to_string(want));
    } else {
      why.push_back("target tracking: cpu " + pct(v) + " > target " + pct(target) + ", " +
                    (warming > 0
                         ? std::to_string(warming) + " warming instance(s) already cover it"
                         : "ceil(" + std::to_string(warmed) + " x " + pct(v) + " / " + pct(target) +
                               ") = " + std::to_string(want) + ": no change"));
    }
  } else if (state.low_streak >= options_.scale_in_datapoints && !options_.disable_scale_in) {
    const std::string low = "cpu " + pct(v) + " < " +
                            pct(target * options_.scale_in_threshold_ratio) + " for " +
                            std::to_string(state.low_streak) + " datapoints";
    if (warming > 0) {
      why.push_back("target tracking: " + low + ", scale-in blocked: " + std::to_string(warming) +
                    " instance(s) warming up");
    } else if (state.last_scale_in && now < *state.last_scale_in + options_.scale_in_cooldown) {
      why.push_back("target tracking: " + low + ", scale-in cooldown");
    } else {
      const int want = std::max(ceil_count(warmed * v / target), 1);
      if (want < current) {
        desired = want;
        why.push_back("target tracking: " + low + ": ceil(" + std::to_string(warmed) + " x " +
                      pct(v) + " / " + pct(target) + ") = " + std::to_string(want));
      }
    }
  }

  // Predictive floor: the capacity of the hour whose scheduled action has fired (buffer early).
  if (state.forecast && options_.mode == AwsPredictiveOptions::Mode::kForecastAndScale) {
    const AwsForecast& f = *state.forecast;
    const std::int64_t hour = bucket_of(now + options_.scheduling_buffer, kHour);
    const std::int64_t index = hour - bucket_of(f.first_hour, kHour);
    if (index >= 0 && index < static_cast<std::int64_t>(f.capacity.size())) {
      const auto i = static_cast<size_t>(index);
      const int floor = std::min(f.capacity[i], spec.max_replicas);  // HonorMaxCapacity
      if (desired < floor) {
        why.push_back("forecast " + num(f.load_rps[i]) + " rps for hour " + std::to_string(hour) +
                      ": capacity " + std::to_string(f.capacity[i]) +
                      (floor < f.capacity[i] ? " (honouring max " + std::to_string(floor) + ")"
                                             : std::string()));
        desired = floor;
      }
    }
  } else if (!state.forecast) {
    if (why.empty()) why.push_back("no forecast yet (needs 24 h of load history)");
  }

  if (desired > spec.max_replicas) {
    desired = spec.max_replicas;
    why.push_back("clamped to max " + std::to_string(desired));
  }
  if (desired < spec.min_replicas) {
    desired = spec.min_replicas;
    why.push_back("raised to min " + std::to_string(desired));
  }
  if (desired < current) state.last_scale_in = now;
  if (why.empty()) {
    why.push_back(state.has_datapoint ? "no change: cpu " + pct(v) + ", target " + pct(target)
                                      : "no change: no cpu datapoint yet");
  }
  return Decision{spec.name, desired, join(why)};
}

void AwsPredictivePolicy::respec(const ServiceSpec& spec) {
  for (ServiceState& s : services_) {
    if (s.spec.name != spec.name) continue;
    s.spec = spec;
    // The forecast's load stands; its instances are counted again at the new capacity, not at
    // the next forecast (up to forecast_interval away).
    if (s.forecast) {
      const double per_instance = spec.capacity_rps * options_.target_utilization;
      for (size_t h = 0; h < s.forecast->load_rps.size(); ++h) {
        s.forecast->capacity[h] = ceil_count(s.forecast->load_rps[h] / per_instance);
      }
    }
  }
}

Result<void> AwsPredictivePolicy::add_service(const ServiceSpec& spec) {
  for (const ServiceState& s : services_) {
    if (s.spec.name == spec.name) {
      return make_error(ErrorCode::kInvalidArgument, spec.name + ": the aws policy has it already");
    }
  }
  ServiceState s;
  s.spec = spec;
  services_.push_back(std::move(s));
  return {};
}

void AwsPredictivePolicy::remove_service(std::string_view service) {
  std::erase_if(services_, [&](const ServiceState& s) { return s.spec.name == service; });
}

const AwsForecast* AwsPredictivePolicy::forecast(std::string_view service) const {
  for (const auto& s : services_) {
    if (s.spec.name == service) return s.forecast ? &*s.forecast : nullptr;
  }
  return nullptr;
}

}  // namespace prescale::scaling
