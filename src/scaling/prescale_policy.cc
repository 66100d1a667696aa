#include "scaling/prescale_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "scaling/internal/prescale_policy_state.h"

namespace prescale::scaling {

double internal::normal_score(double q) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 80; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

namespace {

// Whether a rate counted over `traffic_s` seconds of traffic is above `band` by more than
// counting noise: n requests counted are uncertain by about √n, so the count must exceed what
// the band expects by two of those. A window of a few requests (a quiet service, or a clock
// compressed for a demo) is no evidence that the forecast is wrong. Unknown `traffic_s`: a plain
// comparison.
bool above_band(double rate, double traffic_s, double band) {
  if (!(rate > band)) return false;
  if (!(traffic_s > 0)) return true;
  const double expected = band * traffic_s;
  return rate * traffic_s > expected + 2 * std::sqrt(std::max(expected, 1.0));
}

// The demand at normal score `z` between the calibrated quantiles: linear in z from P50 (z = 0)
// to P90 and from P90 to P99, extended past P99 with the P90–P99 slope. The forecaster's
// quantiles are calibrated only at those three levels; a normal shape between them is the
// least committal reading of three points.
double demand_at(double p50, double p90, double p99, double z) {
  static const double z90 = normal_score(0.9);
  static const double z99 = normal_score(0.99);
  if (z <= 0) return p50;
  if (z <= z90) return p50 + (p90 - p50) * z / z90;
  return p90 + (p99 - p90) * (z - z90) / (z99 - z90);
}

std::string fmt(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// The last second overrides the 30 s window only on a surge: it is current but noisy.
bool surge(double second_rps, double window_rps) { return second_rps > 1.5 * window_rps; }

// Replicas of `capacity` req/s each that `rps` needs. Saturating: with capacity 0 (floored at
// 1e-9 by the callers) the count is far beyond an int.
int replicas_at(double rps, double capacity) {
  const double n = std::ceil(rps / capacity - 1e-9);
  if (!(n > 0)) return 0;  // no load, or not a rate (negative or NaN from a corrupt metric)
  return static_cast<int>(std::min(n, static_cast<double>(std::numeric_limits<int>::max())));
}

// Whether requests came for `o` in the last second, or are in the gateway (held there for a
// replica of a service scaled to zero). Requests in flight count only while no replica drains:
// those a draining replica finishes (a long one at a scale to zero) are not waiting for one.
bool requested(const ServiceObservation& o) {
  return o.last_second.valid &&
         (o.last_second.requests > 0 ||
          (o.last_second.concurrency > 0 && o.count(ReplicaState::kDraining) == 0));
}

double window_arrival_rps(const ServiceObservation& o) {
  return std::isfinite(o.window.arrival_rps) ? o.window.arrival_rps : 0;
}

}  // namespace

PrescalePolicy::PrescalePolicy(PrescalePolicyOptions options, std::optional<CallGraph> seed)
    : options_(std::move(options)),
      topology_(options_.topology, std::move(seed)),
      capacity_(options_.capacity),
      quantile_score_(normal_score(std::clamp(options_.quantile, 0.5, 0.9999))) {}

PrescalePolicy::~PrescalePolicy() = default;

void PrescalePolicy::init(const std::vector<ServiceSpec>& services) {
  services_.clear();
  index_.clear();
  for (const ServiceSpec& spec : services) {
    auto s = std::make_unique<ServiceState>();
    s->spec = spec;
    index_[spec.name] = services_.size();
    services_.push_back(std::move(s));
  }
  capacity_.init(services);
  order_.clear();
  for (size_t i = 0; i < services_.size(); ++i) order_.push_back(i);
  callers_.assign(services_.size(), {});
  graph_minute_.reset();
  typical_minute_requests_ = typical_minutes_ = 0;
  minute_requests_ = minute_bad_ = 0;
  quantile_score_ = normal_score(std::clamp(options_.quantile, 0.5, 0.9999));
}

void PrescalePolicy::respec(const ServiceSpec& spec) {
  ServiceState* s = find(spec.name);
  if (s == nullptr) return;
  s->spec = spec;
  capacity_.respec(spec);
}

Result<void> PrescalePolicy::add_service(const ServiceSpec& spec) {
  if (index_.contains(spec.name)) {
    return make_error(ErrorCode::kInvalidArgument,
                      spec.name + ": the prescale policy has it already");
  }
  auto s = std::make_unique<ServiceState>();
  s->spec = spec;
  index_[spec.name] = services_.size();
  services_.push_back(std::move(s));
  capacity_.add(spec);
  refresh_graph();
  return {};
}

void PrescalePolicy::remove_service(std::string_view service) {
  auto it = index_.find(service);
  if (it == index_.end()) return;
  services_.erase(services_.begin() + static_cast<std::ptrdiff_t>(it->second));
  capacity_.remove(service);
  index_.clear();
  for (size_t i = 0; i < services_.size(); ++i) index_[services_[i]->spec.name] = i;
  refresh_graph();
}

PrescalePolicy::ServiceState* PrescalePolicy::find(std::string_view name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : services_[it->second].get();
}

const PrescalePolicy::ServiceState* PrescalePolicy::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : services_[it->second].get();
}

void PrescalePolicy::record_minute(DemandSeries& s, double rate) {
  s.history.push_back(static_cast<float>(rate));
  if (std::isfinite(rate)) ++s.observed_minutes;
  const auto keep = static_cast<size_t>(options_.max_history / kMinute);
  while (s.history.size() > keep) {
    if (std::isfinite(s.history.front())) --s.observed_minutes;
    s.history.pop_front();
  }
  if (s.forecaster) s.forecaster->update(rate);
}

void PrescalePolicy::maybe_refit(DemandSeries& s, Clock::TimePoint now) {
  const auto min_minutes = static_cast<size_t>(options_.min_history / kMinute);
  if (s.observed_minutes < std::max<size_t>(min_minutes, 1)) return;
  const bool due =
      !s.fitted_at ||
      (s.history.size() >= 2 * s.fitted_size && s.history.size() < static_cast<size_t>(24 * 60)) ||
      now - *s.fitted_at >= options_.refit_interval;
  if (!due) return;
  forecast::ForecasterOptions fo = options_.forecaster;
  forecast::Forecaster f(fo);
  forecast::Series series;
  series.step_seconds = 60;
  series.start_seconds = seconds(
      minute_start(*s.minute - static_cast<std::int64_t>(s.history.size())).time_since_epoch());
  series.values.assign(s.history.begin(), s.history.end());
  s.fitted_at = now;
  s.fitted_size = s.history.size();
  if (!f.fit(series)) return;  // too little observed history yet: try again later
  s.forecaster = std::move(f);
  s.model_window = {*s.minute - static_cast<std::int64_t>(s.history.size()), *s.minute};
}

void PrescalePolicy::observe(const Snapshot& snapshot) {
  topology_.observe(snapshot);
  if (options_.learn_capacity) capacity_.observe(snapshot);
  for (size_t i = 0; i < snapshot.services.size(); ++i) {
    const ServiceObservation& o = snapshot.services[i];
    ServiceState* s = find(o.name);
    if (s == nullptr) continue;
    s->snapshot_index = i;
    const WindowMetrics& w = o.window;
    if (w.length <= Clock::Duration::zero()) continue;
    // A scrape far behind the last one: the clock was set back, or the last was stamped ahead
    // (else every scrape would be ignored until the clock reached that stamp). The minutes
    // recorded from this scrape's minute on are dropped. A little behind: late, and ignored.
    const bool set_back = s->last_scrape && clock_set_back(*s->last_scrape, w.sampled_at);
    if (s->last_scrape && w.sampled_at <= *s->last_scrape && !set_back) continue;
    s->last_scrape = w.sampled_at;
    if (set_back) s->counted_until.reset();
    {
      // Requests and bad ones over the part of the window not counted by the previous scrape.
      const Clock::TimePoint from = s->counted_until
                                        ? std::max(*s->counted_until, w.sampled_at - w.length)
                                        : w.sampled_at - w.length;
      const double dt = seconds(w.sampled_at - from);
      s->counted_until = w.sampled_at;
      const double requests = std::max(w.served_rps, 0.0) + std::max(w.dropped_rps, 0.0);
      const double bad = std::max(w.slow_rps, 0.0) + std::max(w.dropped_rps, 0.0);
      // A scrape missing a figure (NaN) would make the error budget's share NaN for good.
      if (dt > 0 && std::isfinite(w.arrival_rps) && std::isfinite(requests) && std::isfinite(bad)) {
        minute_requests_ += requests * dt;
        minute_bad_ += bad * dt;
      }
    }
    // A scrape describes (sampled_at − length, sampled_at]: it belongs to the minute of its middle.
    const std::int64_t m = minute_of(w.sampled_at - w.length / 2);
    if (set_back) {
      rewind(*s, m, w.sampled_at);
      if (s->external) rewind(*s->external, m, w.sampled_at);
    }
    accumulate(*s, m, w.arrival_rps, w.sampled_at);
    const bool also_called =
        std::isfinite(w.external_rps) && w.external_rps > 0 && w.external_rps < w.arrival_rps;
    if (!s->external && also_called && options_.use_topology) {
      s->external = std::make_unique<DemandSeries>();
    }
    if (s->external) accumulate(*s->external, m, w.external_rps, w.sampled_at);
  }
}

void PrescalePolicy::accumulate(DemandSeries& s, std::int64_t m, double rate,
                                Clock::TimePoint sampled_at) {
  if (!s.minute) s.minute = m;
  if (m - *s.minute > static_cast<std::int64_t>(options_.max_history / kMinute)) {
    // A jump past all the history kept (a clock that leapt, a scrape time years ahead): every
    // kept minute would be a gap. Start over at `m` in one step instead of recording the gap a
    // minute at a time (years of them), and forecast again once min_history is observed, not
    // from a state that nothing kept backs.
    s.start_over(m);
  }
  if (m > *s.minute) {
    record_minute(s, s.samples > 0 ? s.sum / s.samples : NAN);
    for (std::int64_t gap = *s.minute + 1; gap < m; ++gap) record_minute(s, NAN);
    s.minute = m;
    s.sum = 0;
    s.samples = 0;
    maybe_refit(s, sampled_at);
    if (s.forecaster) s.forecast = s.forecaster->predict(options_.forecaster.max_horizon);
  }
  if (m == *s.minute && std::isfinite(rate)) {
    s.sum += rate;
    ++s.samples;
  }
}

void PrescalePolicy::rewind(DemandSeries& s, std::int64_t m, Clock::TimePoint now) {
  if (!s.minute || m >= *s.minute) return;
  // `history` holds the minutes before `minute`: those from `m` on go.
  const auto drop = static_cast<std::uint64_t>(*s.minute - m);
  std::deque<float> kept = std::move(s.history);
  size_t observed = s.observed_minutes;
  for (std::uint64_t i = 0; i < drop && !kept.empty(); ++i) {
    if (std::isfinite(kept.back())) --observed;
    kept.pop_back();
  }
  // The forecaster went through the dropped minutes: fit again on the kept ones.
  s.start_over(m);
  s.history = std::move(kept);
  s.observed_minutes = observed;
  maybe_refit(s, now);
  if (s.forecaster) s.forecast = s.forecaster->predict(options_.forecaster.max_horizon);
}

void PrescalePolicy::refresh_graph() {
  order_.clear();
  callers_.assign(services_.size(), {});
  std::vector<bool> placed(services_.size(), false);
  if (options_.use_topology) {
    auto graph = topology_.graph();
    if (graph) {
      for (const std::string& name : graph->services) {
        auto it = index_.find(name);
        if (it == index_.end()) continue;
        order_.push_back(it->second);
        placed[it->second] = true;
      }
      for (const CallEdge& e : graph->edges) {
        auto caller = index_.find(e.caller);
        auto callee = index_.find(e.callee);
        if (caller == index_.end() || callee == index_.end()) continue;
        callers_[callee->second].emplace_back(caller->second, e.fanout);
      }
    }
  }
  for (size_t i = 0; i < services_.size(); ++i) {
    if (!placed[i]) order_.push_back(i);
  }
}

Clock::Duration PrescalePolicy::observe_interval() const {
  return options_.reactive_floor ? std::min(options_.period, options_.observe_interval)
                                 : options_.period;
}

// A surge the replicas asked for cannot serve is acted on at the next observation rather than
// the next period: on a step in load every second before replicas start is a second more
// refused or queued once a startup time has passed. A service already asked to its
// max_replicas (or not managed here) has nothing to gain from an earlier decision.
bool PrescalePolicy::decide_early(const Snapshot& snapshot) const {
  if (!options_.reactive_floor) return false;
  for (const ServiceObservation& o : snapshot.services) {
    const ServiceState* s = find(o.name);
    // What it was asked for, or what this policy decided since, if the world has not followed
    // (a recommend-only world, a failed scale): decided once, not again every second.
    const int asked = s != nullptr ? std::max(o.desired_replicas, s->decided) : 0;
    if (s == nullptr || asked >= s->spec.max_replicas) continue;
    // Scaled to zero, and requests come: none serves them, however few.
    if (asked == 0 && requested(o)) return true;
    if (!o.last_second.valid || !surge(o.last_second.requests, window_arrival_rps(o))) continue;
    const double capacity = std::max(1e-9, capacity_.capacity_rps(o.name));
    // Counted as decide()'s floor counts it, so that what it would decide is a change.
    if (replicas_at(o.last_second.requests * (1 + options_.floor_headroom), capacity) > asked) {
      return true;
    }
  }
  return false;
}

Plan PrescalePolicy::decide(const Snapshot& snapshot, Clock::TimePoint now) {
  Plan plan{now, {}};
  const std::int64_t minute = minute_of(now);
  if (graph_minute_ != minute) {
    refresh_graph();
    if (graph_minute_ && options_.error_budget > 0 && minute_requests_ > 0) {
      // Weighted by the minute's requests against a typical minute's (a day-long average): the
      // budget is a share of requests, and the bad ones gather in busy minutes, so an unweighted
      // mean of minute shares would settle above the budget.
      // The mean of the minutes seen, then a moving mean over a day (1440 minutes).
      typical_minutes_ = std::min(typical_minutes_ + 1, 1440.0);
      typical_minute_requests_ += (minute_requests_ - typical_minute_requests_) / typical_minutes_;
      const double ratio = (minute_bad_ - options_.error_budget * minute_requests_) /
                           (options_.error_budget * typical_minute_requests_);
      quantile_score_ =
          std::clamp(quantile_score_ + options_.budget_step * ratio,
                     normal_score(options_.min_quantile), normal_score(options_.max_quantile));
    }
    minute_requests_ = minute_bad_ = 0;
    graph_minute_ = minute;
  }
  const double into_minute = seconds(now - minute_start(minute));

  // Demand per service and minute ahead, sources before the services they call.
  for (size_t idx : order_) {
    ServiceState& s = *services_[idx];
    take_observation(s, snapshot, now);
    plan_demand(s, idx, minute, into_minute);
    reactive_load(s, idx, now);
  }
  for (size_t idx : order_) {
    if (auto d = size_replicas(*services_[idx], idx, now)) plan.decisions.push_back(std::move(*d));
  }
  return plan;
}

// What the snapshot says of `s` now: its load (the 30 s window, or the last second on a surge),
// its ready and starting replicas, and any queue beyond what the ready ones serve.
void PrescalePolicy::take_observation(ServiceState& s, const Snapshot& snapshot,
                                      Clock::TimePoint now) {
  // Snapshots list services in a stable order: the position found once is checked, not
  // searched, on later ticks.
  const ServiceObservation* o = nullptr;
  if (s.snapshot_index < snapshot.services.size() &&
      snapshot.services[s.snapshot_index].name == s.spec.name) {
    o = &snapshot.services[s.snapshot_index];
  } else if ((o = snapshot.service(s.spec.name)) != nullptr) {
    s.snapshot_index = static_cast<size_t>(o - snapshot.services.data());
  }
  s.observed_rps = 0;
  s.observed_seconds = 0;
  s.observed_now = false;
  s.queued = 0;
  s.waited_on = false;
  s.ready = 0;
  s.starting = 0;
  s.starting_left = 0;
  s.startup = startup_time(s);  // as learned so far (again below with this snapshot's replicas)
  s.current = o != nullptr ? o->desired_replicas : -1;
  s.in_snapshot = o != nullptr;
  if (o != nullptr && (o->window.length > Clock::Duration::zero() || o->last_second.valid)) {
    s.seen = true;
  }
  if (o != nullptr) {
    const double window = window_arrival_rps(*o);
    const double second = o->last_second.valid ? o->last_second.requests : 0;
    const bool surging = surge(second, window);
    s.observed_rps = surging ? second : window;
    s.observed_now = surging;
    s.observed_seconds = surging                         ? 1.0
                         : o->window.traffic_seconds > 0 ? o->window.traffic_seconds
                                                         : seconds(o->window.length);
    s.ready = o->count(ReplicaState::kReady);
    if (!s.observed_since) s.observed_since = now;
    learn_startup(s, *o);
    s.startup = startup_time(s);
    const double startup = seconds(s.startup);
    for (const ReplicaObservation& r : o->replicas) {
      if (r.state != ReplicaState::kStarting) continue;
      ++s.starting;
      const double left = std::clamp(startup - seconds(now - r.started_at), 0.0, startup);
      s.starting_left = std::max(s.starting_left, left);
    }
    const double in_service = static_cast<double>(s.ready) * std::max(1, s.spec.max_concurrency);
    const double concurrency =
        o->last_second.valid ? o->last_second.concurrency : o->window.concurrency;
    if (s.spec.max_concurrency > 0 && concurrency > in_service) {
      s.queued = concurrency - in_service;
    }
    s.waited_on = s.ready + s.starting == 0 && requested(*o);
  }
}

// Each replica that became ready since the last observation, having started after the policy
// first observed the service (not one it found running), adds its start-to-ready time, unless
// that is over kMaxStartupTime.
void PrescalePolicy::learn_startup(ServiceState& s, const ServiceObservation& o) const {
  std::vector<std::string> counted;
  for (const ReplicaObservation& r : o.replicas) {
    // Counted once while it is there: a replica out of service for a while (draining, failing
    // its readiness) and ready again is not a new start; one starting again (a restart) is.
    const bool known =
        std::binary_search(s.startups_counted.begin(), s.startups_counted.end(), r.id);
    if (known && r.state != ReplicaState::kStarting) {
      counted.push_back(r.id);
      continue;
    }
    if (r.state != ReplicaState::kReady || !r.ready_at || r.started_at <= *s.observed_since) {
      continue;
    }
    counted.push_back(r.id);
    const double took = seconds(*r.ready_at - r.started_at) / options_.time_scale;  // real s
    if (!(took >= 0) || !(took <= seconds(kMaxStartupTime))) continue;
    s.startups.push_back(took);
    if (s.startups.size() > kStartupSamples) s.startups.pop_front();
  }
  std::sort(counted.begin(), counted.end());
  s.startups_counted = std::move(counted);
}

// The configured startup time until kMinStartupSamples replicas have been seen starting, then
// the 90th percentile (nearest rank) of the latest kStartupSamples: the largest of fewer than
// ten.
Clock::Duration PrescalePolicy::startup_time(const ServiceState& s) const {
  if (s.startups.size() < kMinStartupSamples) return s.spec.startup_time;
  std::vector<double> v(s.startups.begin(), s.startups.end());
  const auto rank = static_cast<size_t>(std::ceil(0.9 * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rank - 1), v.end());
  return std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(v[rank - 1] * options_.time_scale));
}

// The demand `s` must be sized for in each minute from now until a replica started now is ready
// (plus a period): its callers' propagated, its own forecast, or what it observes.
void PrescalePolicy::plan_demand(ServiceState& s, size_t idx, std::int64_t minute,
                                 double into_minute) {
  // Minutes the plan must cover: from now until a replica started now would be ready, plus
  // one decision period.
  const double ahead = into_minute + seconds(s.startup) + seconds(options_.period);
  const auto minutes = static_cast<size_t>(std::max(1.0, std::ceil(ahead / 60.0)));
  s.demand.assign(minutes, 0.0);
  // A forecast's index 0 is the minute of the scrape it was made after (its window's middle):
  // behind now's minute for the first half-window of every minute, and while scrapes stall.
  // `lag` minutes behind, now's minute + k is index lag + k; a forecast that ends before now
  // says nothing about it.
  auto lag_of = [&](const DemandSeries& d) -> std::int64_t {
    return d.minute ? minute - *d.minute : 0;
  };
  auto covers_now = [&](const DemandSeries& d) {
    return !d.forecast.p50.empty() && lag_of(d) < static_cast<std::int64_t>(d.forecast.p50.size());
  };
  auto index_at = [](const forecast::QuantileForecast& f, std::int64_t i) {
    return static_cast<size_t>(
        std::clamp<std::int64_t>(i, 0, static_cast<std::int64_t>(f.p50.size()) - 1));
  };

  if (!callers_[idx].empty()) {
    for (const auto& [caller, fanout] : callers_[idx]) {
      const ServiceState& c = *services_[caller];
      if (c.demand.empty()) continue;
      for (size_t k = 0; k < minutes; ++k) {
        s.demand[k] += fanout * c.demand[std::min(k, c.demand.size() - 1)];
      }
    }
    s.demand_source = "callers";
    // Forecast-driven only when every caller is: a caller planned from its observed load
    // (too little history) holds for the longer delay, and so must what it calls.
    s.forecast_driven = std::all_of(callers_[idx].begin(), callers_[idx].end(), [&](const auto& c) {
      return services_[c.first]->forecast_driven;
    });
    if (s.external && covers_now(*s.external)) {
      // Its own requests from outside the call graph, on top.
      const forecast::QuantileForecast& f = s.external->forecast;
      const std::int64_t lag = lag_of(*s.external);
      for (size_t k = 0; k < minutes; ++k) {
        const size_t h = index_at(f, lag + static_cast<std::int64_t>(k));
        s.demand[k] += demand_at(f.p50[h], f.p90[h], f.p99[h], quantile_score_);
      }
      s.demand_source = "callers + own forecast";
    } else if (s.external) {
      s.forecast_driven = false;  // its own requests are not forecast yet: observed only
    }
  } else if (covers_now(s)) {
    const forecast::QuantileForecast& f = s.forecast;
    const std::int64_t lag = lag_of(s);
    for (size_t k = 0; k < minutes; ++k) {
      const size_t h = index_at(f, lag + static_cast<std::int64_t>(k));
      s.demand[k] = demand_at(f.p50[h], f.p90[h], f.p99[h], quantile_score_);
    }
    const double level = planning_quantile();
    s.demand_source = "forecast p" + fmt(level * 100, level < 0.99 ? 0 : 2);
    s.forecast_driven = true;
    // Load above the forecast band: the forecast is wrong by this much; lift the whole path.
    // The band is the one of the minute the load was observed in: the window's middle (index
    // 0, the minute the forecast was made after), or now's for the last second of a surge.
    const size_t seen = index_at(f, s.observed_now ? lag : 0);
    const double expected = demand_at(f.p50[seen], f.p90[seen], f.p99[seen], quantile_score_);
    if (options_.reactive_floor && above_band(s.observed_rps, s.observed_seconds, f.p99[seen]) &&
        expected > 0) {
      const double lift = s.observed_rps / expected;
      for (double& d : s.demand) d *= lift;
      s.demand_source += " lifted x" + fmt(lift, 2) + " (load above the P99 band)";
    }
  } else {
    std::fill(s.demand.begin(), s.demand.end(), s.observed_rps);
    s.demand_source = "observed (no forecast yet)";
    s.forecast_driven = false;
  }
}

// The load the reactive floor sizes `s` for. A step at the entry reaches the services it calls
// only as fast as the entry's ready replicas serve it, so their own metrics show it only once
// the entry's new replicas are ready, a startup time late. What a caller will pass on once its
// replicas are ready (what arrives at it, up to what its max_replicas serve) beyond what it
// passes on now counts, times the fan-out, as arriving here already — and so on down the graph:
// a service whose callers hold load back passes it on too, once it arrives.
void PrescalePolicy::reactive_load(ServiceState& s, size_t idx, Clock::TimePoint now) {
  s.capacity_rps = std::max(1e-9, capacity_.capacity_rps(s.spec.name));
  s.arriving_rps = s.observed_rps;
  s.unserved_rps = 0;
  s.backlog_rps = 0;
  if (!options_.reactive_floor) return;
  for (const auto& [caller, fanout] : callers_[idx]) {
    s.arriving_rps += fanout * services_[caller]->unserved_rps;
  }
  if (s.arriving_rps > s.observed_rps) s.backlog_hold_until = now + s.startup;
  const double capacity = s.capacity_rps;
  const double will_pass =
      std::min(s.arriving_rps, static_cast<double>(s.spec.max_replicas) * capacity);
  // With a queue it passes on what its ready replicas serve flat out (their concurrency over
  // the learned service time; the capacity at the SLO, lower, when either is unknown); without,
  // all it observes.
  const double service_time = capacity_.service_time_seconds(s.spec.name);
  const double throughput = s.spec.max_concurrency > 0 && service_time > 0
                                ? std::max(capacity, s.spec.max_concurrency / service_time)
                                : capacity;
  const double passes = s.queued > 0
                            ? std::min(s.observed_rps, static_cast<double>(s.ready) * throughput)
                            : s.observed_rps;
  s.unserved_rps = std::max(0.0, will_pass - passes);
  // A backlog must be drained within backlog_drain once help is ready, and until then it
  // grows by what the replicas in service cannot serve: size for that, not for the queue of
  // this second (a step in load shows a queue of seconds when it is detected and one of a
  // startup time when help arrives, which then delays every later request). Replicas
  // already starting find the queue grown at the ready ones' shortfall; replicas started now
  // find it after the starting ones have served too. The growth is taken against the
  // capacity at the SLO, below a replica's throughput: an over-estimate near capacity,
  // bounded by the release once the queue is gone.
  if (s.queued > 0) {
    const double startup = seconds(s.startup);
    const double ready_cap = static_cast<double>(s.ready) * capacity;
    const double all_cap = static_cast<double>(s.ready + s.starting) * capacity;
    const double when_starting_ready =
        std::max(0.0, s.queued + (s.observed_rps - ready_cap) * s.starting_left);
    const double when_new_ready = std::max(
        0.0, when_starting_ready + (s.observed_rps - all_cap) * (startup - s.starting_left));
    double backlog = std::max(when_starting_ready, when_new_ready);
    // Behind admission control the queue stops growing at its limit: what arrives beyond that is
    // refused at once, not queued, so help finds the limit's worth of work at most (or the queue
    // of now, admitted while no replica was ready). Sizing for a FIFO queue's growth there would
    // start several times the replicas the load needs.
    if (s.spec.queue_limit_seconds > 0 && s.ready > 0) {
      const double admitted =
          s.spec.queue_limit_seconds * static_cast<double>(s.ready + s.starting) * throughput;
      backlog = std::min(backlog, std::max(s.queued, admitted));
    }
    s.backlog_rps = backlog / std::max(1.0, seconds(options_.backlog_drain));
    s.backlog_hold_until = now + s.startup;
  }
}

// The replica count for `s`: the planned peak or the reactive floor, within bounds, held by the
// scale-down delay; a decision only for a change.
std::optional<Decision> PrescalePolicy::size_replicas(ServiceState& s, size_t idx,
                                                      Clock::TimePoint now) {
  // No metrics yet (and none propagated from callers): nothing to decide on.
  if (!s.seen && callers_[idx].empty()) return std::nullopt;
  if (!s.in_snapshot) return std::nullopt;  // its count is unknown (a failed scrape): no decision
  if (!s.first_decision) s.first_decision = now;
  const double capacity = s.capacity_rps;
  double peak = 0;
  for (double d : s.demand) peak = std::max(peak, d);
  auto replicas_for = [&](double rps) { return replicas_at(rps, capacity); };
  const int planned = replicas_for(peak);
  int floor = 0;
  int steady_floor = 0;  // without the backlog
  if (options_.reactive_floor) {
    const double headroom = 1 + options_.floor_headroom;
    steady_floor = replicas_for(s.observed_rps * headroom);
    floor = replicas_for(s.arriving_rps * headroom + s.backlog_rps);
  }
  // A service scaled to zero that requests wait for gets a replica now, whatever the rates say
  // of a request or two (the window's may not have counted them yet).
  const bool woken =
      options_.reactive_floor && s.waited_on && s.current == 0 && std::max(planned, floor) == 0;
  const int need = woken ? 1 : std::max(planned, floor);
  int desired = std::clamp(need, s.spec.min_replicas, s.spec.max_replicas);

  // Scale down only to the highest plan of the last scale-down delay (the shorter one while a
  // forecast plans the service). Each plan is held for the delay in force when it was made: a
  // plan from observed load stays 5 minutes even if a forecast arrives 1 minute later. The
  // replicas that drain a backlog are not part of those plans: they stay for a startup time
  // after the backlog was last seen (help asked for must not be cancelled while it starts),
  // then go at once.
  const Clock::Duration delay =
      s.forecast_driven ? options_.forecast_scale_down_delay : options_.scale_down_delay;
  // Kept without the bounds: bounds lowered since (a reload) must not be held by older plans. A
  // woken service's replica is held as a plan of one (as Knative keeps one for its
  // scale-to-zero grace), not dropped once it has served the requests that woke it.
  s.recent.push_back({now, woken ? 1 : std::max(planned, steady_floor), delay});
  while (!s.recent.empty() && now - s.recent.front().at > s.recent.front().held_for) {
    s.recent.pop_front();
  }
  int held = -1;
  if (desired < s.current && s.backlog_hold_until && now < *s.backlog_hold_until) {
    held = s.current;
    desired = s.current;
  } else if (desired < s.current && now - *s.first_decision < delay) {
    // Not yet a full delay's worth of plans: too early to know that fewer are enough.
    held = s.current;
    desired = s.current;
  } else if (desired < s.current) {
    held = desired;
    for (const RecentPlan& plan : s.recent) {
      if (now - plan.at <= plan.held_for) {
        held = std::max(held, std::min(plan.replicas, s.spec.max_replicas));
      }
    }
    held = std::min(held, s.current);
    if (held > desired) desired = held;
  }
  const bool held_above_max = desired > s.spec.max_replicas;
  desired = std::min(desired, s.spec.max_replicas);
  if (desired == s.current) return std::nullopt;

  // The words, only for a change (formatting costs more than deciding).
  std::string reason;
  if (woken) {
    reason = "requests wait and no replica serves them (scaled to zero)";
  } else if (floor > planned) {
    reason = "reactive floor: " +
             (s.arriving_rps > s.observed_rps ? "callers' load " + fmt(s.arriving_rps, 1) +
                                                    " rps (observed " + fmt(s.observed_rps, 1) + ")"
                                              : "observed " + fmt(s.observed_rps, 1) + " rps") +
             (s.backlog_rps > 0 ? " + backlog " + fmt(s.backlog_rps, 1) + " rps" : "") + " / " +
             fmt(capacity, 1) + " rps per replica";
  } else {
    reason = s.demand_source + ": peak " + fmt(peak, 1) + " rps within the " +
             fmt(seconds(s.startup), 0) +
             (s.startups.size() >= kMinStartupSamples ? " s startup (learned) / " : " s startup / ") +
             fmt(capacity, 1) +
             " rps per replica";
  }
  if (need < s.spec.min_replicas)
    reason += "; raised to min " + std::to_string(s.spec.min_replicas);
  if (need > s.spec.max_replicas || held_above_max)
    reason += "; capped at max " + std::to_string(s.spec.max_replicas);
  if (held == desired && held > 0 &&
      desired != std::clamp(need, s.spec.min_replicas, s.spec.max_replicas)) {
    reason += "; scale-down delay: holding " + std::to_string(desired);
  }
  s.decided = desired;
  return Decision{s.spec.name, desired, "prescale: " + reason};
}

Result<PrescalePolicy::ServiceState*> PrescalePolicy::history_owner(std::string_view service,
                                                                    const forecast::Series& minutes,
                                                                    SeriesKind kind) {
  ServiceState* s = find(service);
  if (s == nullptr) {
    return make_error(ErrorCode::kNotFound,
                      "prescale: unknown service \"" + std::string(service) + "\"");
  }
  if (std::abs(minutes.step_seconds - 60) > 1e-9) {
    return make_error(ErrorCode::kInvalidArgument,
                      "prescale: history of \"" + std::string(service) +
                          "\" must be at 60 s steps, got " + std::to_string(minutes.step_seconds));
  }
  if (kind == SeriesKind::kExternal && !options_.use_topology) {
    return make_error(ErrorCode::kInvalidArgument,
                      "prescale: \"" + std::string(service) +
                          "\" has no series of external requests without the topology");
  }
  return s;
}

Result<void> PrescalePolicy::load_history(std::string_view service, const forecast::Series& minutes,
                                          Clock::TimePoint end,
                                          std::optional<forecast::Forecaster> fitted,
                                          SeriesKind kind) {
  auto owner = history_owner(service, minutes, kind);
  if (!owner) return std::unexpected(owner.error());
  ServiceState* s = *owner;
  if (kind == SeriesKind::kExternal && !s->external) s->external = std::make_unique<DemandSeries>();
  DemandSeries& d = kind == SeriesKind::kExternal ? *s->external : *s;
  d.start_over(minute_of(end));
  for (double v : minutes.values) record_minute(d, v);
  if (fitted && fitted->fitted()) {
    d.forecaster = std::move(fitted);
    d.fitted_at = end;
    d.fitted_size = d.history.size();
  } else {
    maybe_refit(d, end);
  }
  if (d.forecaster) d.forecast = d.forecaster->predict(options_.forecaster.max_horizon);
  return {};
}

Result<std::size_t> PrescalePolicy::fill_history(std::string_view service,
                                                 const forecast::Series& minutes,
                                                 Clock::TimePoint end, SeriesKind kind) {
  auto owner = history_owner(service, minutes, kind);
  if (!owner) return std::unexpected(owner.error());
  ServiceState* s = *owner;
  const std::int64_t end_minute = minute_of(end);
  const std::int64_t from = std::llround(minutes.start_seconds / 60.0);
  auto theirs = [&](std::int64_t m) -> double {
    const std::int64_t i = m - from;
    if (i < 0 || i >= static_cast<std::int64_t>(minutes.values.size())) return NAN;
    const double v = minutes.values[static_cast<size_t>(i)];
    return std::isfinite(v) ? v : NAN;
  };
  DemandSeries* d = kind == SeriesKind::kExternal ? s->external.get() : s;
  // What the series has: recorded minutes [first, next), and `next` being accumulated.
  const bool has = d != nullptr && d->minute.has_value();
  const std::int64_t next = has ? *d->minute : end_minute;
  // A series ahead of `end` (its clock ran further): nothing of it is changed.
  if (next > end_minute) return std::size_t{0};
  const std::int64_t first = next - static_cast<std::int64_t>(has ? d->history.size() : 0);
  auto own = [&](std::int64_t m) -> double {
    if (m < first || m >= next) return NAN;
    return d->history[static_cast<size_t>(m - first)];
  };
  const double partial = has && d->samples > 0 ? d->sum / d->samples : NAN;
  const auto span = static_cast<std::int64_t>(options_.max_history / kMinute);
  const std::int64_t start = std::max(std::min(from, first), end_minute - span);

  // Which minutes are filled, and whether any lies before `next`.
  std::size_t filled = 0;
  bool before = false;
  for (std::int64_t m = start; m < end_minute; ++m) {
    if (std::isfinite(own(m)) || !std::isfinite(theirs(m))) continue;
    ++filled;
    if (m < next) before = true;
  }
  if (filled == 0) return filled;
  if (d == nullptr) {
    s->external = std::make_unique<DemandSeries>();
    d = s->external.get();
  }

  if (!before && has && end_minute - next <= span) {
    // Only minutes after those recorded: recorded in order, as observe() would have.
    for (std::int64_t m = next; m < end_minute; ++m) {
      const double v = theirs(m);
      record_minute(*d, std::isfinite(v) || m != next ? v : partial);
    }
    d->minute = end_minute;
    d->sum = 0;
    d->samples = 0;
  } else {
    // The series again from its first known minute, and a forecaster fitted on it.
    std::vector<double> merged;
    for (std::int64_t m = start; m < end_minute; ++m) {
      double v = own(m);
      if (!std::isfinite(v)) v = theirs(m);
      if (!std::isfinite(v) && m == next) v = partial;
      if (merged.empty() && !std::isfinite(v)) continue;
      merged.push_back(v);
    }
    const double kept_sum = next == end_minute ? d->sum : 0;
    const int kept_samples = next == end_minute ? d->samples : 0;
    d->start_over(end_minute);
    for (double v : merged) record_minute(*d, v);
    d->sum = kept_sum;
    d->samples = kept_samples;
  }
  maybe_refit(*d, end);
  if (d->forecaster) d->forecast = d->forecaster->predict(options_.forecaster.max_horizon);
  return filled;
}

double PrescalePolicy::planning_quantile() const {
  return 0.5 * std::erfc(-quantile_score_ / std::sqrt(2.0));
}

forecast::QuantileForecast PrescalePolicy::demand_forecast(std::string_view service) const {
  const ServiceState* s = find(service);
  return s != nullptr ? s->forecast : forecast::QuantileForecast{};
}

std::optional<std::array<double, 3>> PrescalePolicy::demand_forecast_at(
    std::string_view service, Clock::TimePoint now) const {
  const ServiceState* s = find(service);
  if (s == nullptr || !s->minute || s->forecast.p50.empty()) return std::nullopt;
  // Index 0 is the minute being accumulated; now may be minutes past it.
  const std::int64_t lag = std::max<std::int64_t>(minute_of(now) - *s->minute, 0);
  if (lag >= static_cast<std::int64_t>(s->forecast.p50.size())) return std::nullopt;
  const auto i = static_cast<size_t>(lag);
  return std::array<double, 3>{s->forecast.p50[i], s->forecast.p90[i], s->forecast.p99[i]};
}

Result<forecast::Series> PrescalePolicy::history(std::string_view service, SeriesKind kind) const {
  const ServiceState* state = find(service);
  if (state == nullptr) {
    return make_error(ErrorCode::kNotFound,
                      "prescale: unknown service \"" + std::string(service) + "\"");
  }
  forecast::Series series;
  series.step_seconds = 60;
  const DemandSeries* s = kind == SeriesKind::kExternal ? state->external.get() : state;
  if (s == nullptr || !s->minute) return series;
  series.start_seconds = seconds(
      minute_start(*s->minute - static_cast<std::int64_t>(s->history.size())).time_since_epoch());
  series.values.assign(s->history.begin(), s->history.end());
  return series;
}

Result<void> validate_prescale_policy_options(const PrescalePolicyOptions& options) {
  for (const std::string& name : options.forecaster.candidates) {
    const auto& custom = options.forecaster.custom_models;
    auto it = std::find_if(custom.begin(), custom.end(),
                           [&](const forecast::CustomModel& c) { return c.name == name; });
    const bool is_custom = it != custom.end() && it->prototype != nullptr;
    // The model the candidate stands for: the prototype's, else the one make_model() makes.
    const std::string_view model = is_custom ? it->prototype->name() : std::string_view(name);
    if (!is_custom && std::find(std::begin(forecast::kModelNames), std::end(forecast::kModelNames),
                                model) == std::end(forecast::kModelNames)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "prescale: unknown forecasting candidate \"" + name + "\"");
    }
    if (model == "gbt") {
      return make_error(ErrorCode::kInvalidArgument,
                        "prescale: forecasting candidate \"" + name +
                            "\" reads the calendar (minute of day, day of week), and the "
                            "policy's series are timed on the monotonic clock, not UTC");
    }
  }
  // At most 1e6: a learned startup (an hour of real time at most) times the scale must fit a
  // Clock duration.
  if (!(options.time_scale > 0 && options.time_scale <= 1e6)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "prescale: time_scale must be a number in (0, 1e6]");
  }
  return {};
}

}  // namespace prescale::scaling
