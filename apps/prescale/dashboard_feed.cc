#include "dashboard_feed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/state_json.h"
#include "scaling/capacity_model.h"
#include "scaling/prescale_policy.h"
#include "telemetry/registry.h"

namespace prescale {
namespace {

double unix_seconds(Clock::WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// Under --time-scale the watch's windows are the controller's (an hour of a compressed trace is
// an hour of its traffic), but a change's effect follows it in real time: a cause is looked for
// at least 30 real seconds back.
healing::IncidentWatchOptions incident_options(const DashboardFeedOptions& feed) {
  healing::IncidentWatchOptions o = feed.incidents;
  const auto real_lookback = std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(30.0 * feed.time_scale));
  o.cause_lookback = std::max(o.cause_lookback, real_lookback);
  return o;
}

// A restart's cold replicas take real time: under --time-scale T the comparisons come once a
// controller minute (60/T real seconds) and once a real second at most, so min(T, 60) of them
// settle a real minute; 10 at least.
healing::SlowdownWatchOptions slowdown_options(const DashboardFeedOptions& feed) {
  healing::SlowdownWatchOptions o = feed.slowdowns;
  o.settle_steps =
      std::max(o.settle_steps, static_cast<int>(std::ceil(std::min(feed.time_scale, 60.0))));
  return o;
}

}  // namespace

TotalsOf totals_of(const local::LocalWorld& world) {
  return [&world](std::string_view service) {
    return service.empty() ? world.totals() : world.totals(service);
  };
}

DashboardFeed::DashboardFeed(dashboard::DashboardModel& model, TotalsOf totals,
                             const scaling::PrescalePolicy* prescale_policy,
                             DashboardFeedOptions options, Clock& real_clock)
    : model_(model),
      totals_(std::move(totals)),
      policy_(prescale_policy),
      options_(std::move(options)),
      real_(real_clock),
      started_at_(unix_seconds(real_clock.wall_now())),
      last_t_(started_at_),
      last_mono_(real_clock.now()),
      next_point_(real_clock.now()),
      incidents_(incident_options(options_)),
      slowdowns_(slowdown_options(options_)) {
  for (const auto& [service, budget] : options_.error_budgets) {
    incidents_.set_error_budget(service, budget);
  }
  if (options_.registry != nullptr) {
    incidents_total_ = &options_.registry->counter(
        "prescale_incidents_total",
        "Incidents opened: the service's requests failing or missing their SLO faster than its "
        "error budget allows",
        {"service"});
    incidents_open_ = &options_.registry->gauge(
        "prescale_incidents_open", "1 while the service has an open incident, else 0", {"service"});
    slowdown_warnings_total_ = &options_.registry->counter(
        "prescale_slowdown_warnings_total",
        "Slowdown warnings opened: each request of the service taking markedly longer in service "
        "than usual for minutes",
        {"service"});
    slowdown_warning_open_ = &options_.registry->gauge(
        "prescale_slowdown_warning_open",
        "1 while the service has an open slowdown warning, else 0", {"service"});
    for (const auto& [service, budget] : options_.error_budgets) show_counts(service);
  }
}

void DashboardFeed::show_counts(const std::string& service) {
  if (incidents_total_ == nullptr) return;
  incidents_total_->with({service});
  incidents_open_->with({service}).set(0);
  slowdown_warnings_total_->with({service});
  slowdown_warning_open_->with({service}).set(0);
}

void DashboardFeed::add_service(const std::string& service, double budget, int max_concurrency) {
  options_.error_budgets[service] = budget;
  options_.max_concurrency[service] = max_concurrency;
  incidents_.set_error_budget(service, budget);
  show_counts(service);
}

void DashboardFeed::remove_service(const std::string& service) {
  options_.error_budgets.erase(service);
  options_.max_concurrency.erase(service);
  if (std::optional<healing::IncidentChange> closed = incidents_.forget(service)) {
    after_incidents({std::move(*closed)}, unix_now());
  }
  slowdowns_.forget(service);
  decisions_.erase(service);
  point_totals_.erase(service);
  point_sampled_.erase(service);
  if (incidents_open_ != nullptr) {
    incidents_open_->with({service}).set(0);
    slowdown_warning_open_->with({service}).set(0);
  }
  show_slowdowns();
}

void DashboardFeed::set_error_budget(const std::string& service, double budget) {
  options_.error_budgets[service] = budget;
  incidents_.set_error_budget(service, budget);
}

double DashboardFeed::unix_now() {
  const Clock::TimePoint mono = real_.now();
  last_t_ = std::max(unix_seconds(real_.wall_now()),
                     last_t_ + std::chrono::duration<double>(mono - last_mono_).count());
  last_mono_ = mono;
  return last_t_;
}

void record_replica_event(dashboard::DashboardModel& model, double unix_time,
                          const local::ReplicaEvent& e) {
  // A service's events (a rolling update's) name no replica.
  const bool bad = e.kind == "crash" || e.kind == "rollback";
  spdlog::log(bad ? spdlog::level::warn : spdlog::level::info, "{} {}: {}", e.kind,
              e.replica.empty() ? e.service : e.replica, e.message);
  model.add_event({unix_time, e.kind, e.service, e.replica, e.message});
}

void DashboardFeed::on_replica_event(const local::ReplicaEvent& e) {
  record_replica_event(model_, unix_now(), e);
  incidents_.note_event(e.service, e.kind,
                        e.replica.empty() ? e.message : e.replica + ": " + e.message);
}

void DashboardFeed::on_endpoint_change(const EndpointChange& c) {
  if (c.kind == "healthy") {
    spdlog::info("{} {}: {}", c.kind, c.replica, c.message);
  } else {
    spdlog::warn("{} {}: {}", c.kind, c.replica, c.message);
  }
  model_.add_event({unix_now(), c.kind, c.service, c.replica, c.message});
  incidents_.note_event(c.service, c.kind, c.replica + ": " + c.message);
}

void DashboardFeed::on_heal(const std::string& service, const std::string& replica,
                            const std::string& message) {
  spdlog::warn("heal {}: {}", replica, message);
  add_event("heal", service, replica, message);
}

void DashboardFeed::add_event(const std::string& kind, const std::string& service,
                              const std::string& replica, const std::string& message) {
  model_.add_event({unix_now(), kind, service, replica, message});
  incidents_.note_event(service, kind, replica.empty() ? message : replica + ": " + message);
}

void DashboardFeed::after_tick(const control::Controller& controller,
                               const std::optional<scaling::Plan>& plan,
                               const std::vector<control::Event>& events) {
  const double t = unix_now();
  if (plan) {
    for (const scaling::Decision& d : plan->decisions) {
      auto& last = decisions_[d.service];
      if (options_.recommend_only && last.first != d.replicas) {
        model_.add_event({t, "recommend", d.service, "",
                          std::to_string(d.replicas) + " replicas: " + d.reason});
      }
      last = {d.replicas, d.reason};
      (void)model_.set_decision(d.service, t, d.replicas, d.reason);
    }
  }
  // Recommending only, the controller's "changes" were never made: the recommend events above
  // say what it would do.
  for (const control::Event& e : events) {
    if (options_.recommend_only) break;
    ++scaling_events_;
    incidents_.note_scale(e.service, e.from_replicas, e.to_replicas, e.reason);
    model_.add_event({t, "scale", e.service, "",
                      std::to_string(e.from_replicas) + " -> " + std::to_string(e.to_replicas) +
                          ": " + e.reason});
  }
  // A point per second of real time at most: a compressed clock ticks the controller every
  // loop, and its windows are too short to be worth a point each. And one per 5 s of the
  // controller's time at most: a policy that observes every second (prescale, kpa, aws) would
  // otherwise fill the kept points (docs/dashboard.md: 4 h of 5 s points) in 48 minutes.
  const scaling::Snapshot& snapshot = controller.last_snapshot();
  if (real_.now() < next_point_ ||
      (next_controller_point_ && snapshot.time < *next_controller_point_)) {
    return;
  }
  next_point_ = real_.now() + std::chrono::seconds(1);
  next_controller_point_ = snapshot.time + kPointEvery;
  std::vector<dashboard::Edge> edges;
  std::vector<std::pair<std::string, std::string>> calls;
  if (policy_ != nullptr) {
    for (const auto& e : policy_->topology().learned_edges()) {
      edges.push_back({e.edge.caller, e.edge.callee, e.edge.fanout, dashboard::kNoValue});
      calls.emplace_back(e.edge.caller, e.edge.callee);
    }
  }
  slowdowns_.set_calls(calls);
  incidents_.set_calls(std::move(calls));
  add_points(snapshot, t);
  model_.set_graph(std::move(edges));

  const control::WorldTotals totals = totals_("");
  model_.set_overview({options_.policy, options_.recommend_only, started_at_, t, totals.requests,
                       totals.requests > 0 ? totals.within_slo / totals.requests
                                           : dashboard::kNoValue,
                       totals.replica_seconds / 3600.0, scaling_events_});
}

void DashboardFeed::add_points(const scaling::Snapshot& snapshot, double t) {
  std::vector<std::pair<std::string, healing::IncidentSample>> samples;
  std::vector<std::pair<std::string, healing::SlowdownSample>> service_times;
  for (const scaling::ServiceObservation& obs : snapshot.services) {
    if (obs.window.length <= Clock::Duration::zero()) continue;
    const control::WorldTotals now_totals = totals_(obs.name);
    auto& last = point_totals_[obs.name];
    // No reading since the last point (a gateway the world could not read): no point, rather
    // than a lull and then a spike; the next one covers both intervals.
    auto& sampled = point_sampled_[obs.name];
    if (last.first != 0 && obs.window.sampled_at <= sampled) continue;
    sampled = obs.window.sampled_at;
    const double span = t - last.first;
    const double answered = now_totals.requests - last.second.requests;
    const double failed = now_totals.failed - last.second.failed;
    const double within_slo = now_totals.within_slo - last.second.within_slo;
    const bool first_point = last.first == 0;
    last = {t, now_totals};
    if (first_point || span <= 0) continue;
    dashboard::ServicePoint p;
    p.t = t;
    p.load_rps = answered / span;
    const auto decision = decisions_.find(obs.name);
    p.planned_replicas = options_.recommend_only && decision != decisions_.end()
                             ? decision->second.first
                             : obs.desired_replicas;
    p.ready_replicas = obs.count(scaling::ReplicaState::kReady);
    p.p99_ms = std::isnan(obs.window.latency_p99_seconds) ? dashboard::kNoValue
                                                          : obs.window.latency_p99_seconds * 1000;
    p.errors_rps = std::max(0.0, failed) / span;
    for (const scaling::ReplicaObservation& r : obs.replicas) {
      if (!r.memory_bytes) continue;
      const double mib = static_cast<double>(*r.memory_bytes) / 0x1p20;
      p.memory_mib = std::isnan(p.memory_mib) ? mib : std::max(p.memory_mib, mib);
    }
    if (policy_ != nullptr) {
      const forecast::QuantileForecast fc = policy_->demand_forecast(obs.name);
      if (!fc.p50.empty()) {
        p.forecast_p50 = fc.p50[0];
        p.forecast_p90 = fc.p90[0];
        p.forecast_p99 = fc.p99[0];
        // The forecast's first minute is the current one (made from the history through the
        // minute before), so the band starts at now and reads a minute further each step.
        std::vector<dashboard::ForecastPoint> band;
        for (size_t i = 0; i < fc.p50.size(); ++i) {
          band.push_back({t + 60.0 * static_cast<double>(i) / options_.time_scale, fc.p50[i],
                          fc.p90[i], fc.p99[i]});
        }
        (void)model_.set_forecast(obs.name, std::move(band));
      }
    }
    (void)model_.append_point(obs.name, p);

    healing::IncidentSample sample;
    sample.at = snapshot.time;
    sample.requests = answered;
    sample.failed = failed;
    sample.slow = answered - within_slo - failed;
    sample.load_rps = p.load_rps;
    sample.forecast_p99_rps = p.forecast_p99;
    sample.planned_replicas = obs.desired_replicas;  // what runs, not a recommendation
    sample.ready_replicas = p.ready_replicas;
    samples.emplace_back(obs.name, sample);

    const auto concurrency = options_.max_concurrency.find(obs.name);
    const double service_time = scaling::scrape_service_time(
        obs, concurrency != options_.max_concurrency.end() ? concurrency->second : 1);
    service_times.emplace_back(obs.name,
                               healing::SlowdownSample{snapshot.time, service_time,
                                                       obs.window.latency_p99_seconds, p.load_rps});
  }
  // The warnings first: an incident opening at this look may name one as its cause.
  for (const healing::SlowdownChange& c : slowdowns_.observe(service_times)) after_slowdown(c, t);
  after_incidents(incidents_.observe(samples), t);
}

void DashboardFeed::after_slowdown(const healing::SlowdownChange& c, double t) {
  const std::string& service = c.warning.service;
  if (c.opened) {
    spdlog::warn("{}", c.message);
    if (slowdown_warnings_total_ != nullptr) slowdown_warnings_total_->with({service}).inc();
    slowdown_opened_at_[c.warning.id] = t;
  } else {
    spdlog::info("{}", c.message);
    slowdown_opened_at_.erase(c.warning.id);
  }
  if (slowdown_warning_open_ != nullptr) {
    slowdown_warning_open_->with({service}).set(c.opened ? 1 : 0);
  }
  model_.add_event({t, c.opened ? "slower" : "cleared", service, "", c.message});
  incidents_.set_slowdown(service, c.opened ? std::optional(c.warning) : std::nullopt);
  show_slowdowns();
}

void DashboardFeed::show_slowdowns() {
  std::vector<dashboard::SlowdownRecord> open;
  for (const healing::SlowdownWarning& w : slowdowns_.warnings()) {
    if (w.cleared_at) continue;
    open.push_back(
        {w.id, w.service, slowdown_opened_at_[w.id], 1000 * w.service_seconds,
         1000 * w.usual_seconds, std::isnan(w.load_ratio) ? dashboard::kNoValue : w.load_ratio,
         std::isnan(w.p99_seconds) ? dashboard::kNoValue : 1000 * w.p99_seconds, w.summary});
  }
  model_.set_slowdowns(std::move(open));
}

void DashboardFeed::after_incidents(const std::vector<healing::IncidentChange>& changes, double t) {
  for (const healing::IncidentChange& c : changes) {
    const std::string& service = c.incident.service;
    if (c.opened) {
      spdlog::warn("{}", c.message);
      if (incidents_total_ != nullptr) incidents_total_->with({service}).inc();
    } else {
      spdlog::info("{}", c.message);
    }
    if (incidents_open_ != nullptr) incidents_open_->with({service}).set(c.opened ? 1 : 0);
    model_.add_event({t, c.opened ? "incident" : "resolved", service, "", c.message});
    // The dashboard's times, those of the events (the watch's are the controller's clock).
    auto& [opened_at, resolved_at] =
        incident_times_.try_emplace(c.incident.id, NAN, NAN).first->second;
    (c.opened ? opened_at : resolved_at) = t;
  }
  std::vector<dashboard::IncidentRecord> records;
  std::map<std::uint64_t, std::pair<double, double>> kept;
  for (const healing::Incident& i : incidents_.incidents()) {
    const auto [opened_at, resolved_at] = incident_times_.try_emplace(i.id, NAN, NAN).first->second;
    kept[i.id] = {opened_at, resolved_at};
    records.push_back({i.id, i.service, opened_at,
                       i.resolved_at ? resolved_at : dashboard::kNoValue, i.rule, i.burn_rate,
                       i.peak_burn_rate, i.requests, i.failed, i.slow, i.cause, i.summary});
  }
  incident_times_ = std::move(kept);
  model_.set_incidents(std::move(records));
}

namespace {
constexpr int kFeedStateFormat = 1;
}  // namespace

nlohmann::json DashboardFeed::export_state(Clock::TimePoint now) const {
  using nlohmann::json;
  json incident_times = json::array();
  for (const auto& [id, times] : incident_times_) {
    incident_times.push_back(
        {id, state_json::number(times.first), state_json::number(times.second)});
  }
  json slowdown_times = json::array();
  for (const auto& [id, opened_at] : slowdown_opened_at_) {
    slowdown_times.push_back({id, state_json::number(opened_at)});
  }
  return {{"format", kFeedStateFormat},
          {"incidents", incidents_.to_json(now)},
          {"slowdowns", slowdowns_.to_json(now)},
          {"incident_times", std::move(incident_times)},
          {"slowdown_times", std::move(slowdown_times)}};
}

Result<void> DashboardFeed::import_state(const nlohmann::json& state, Clock::TimePoint now) {
  healing::IncidentWatch incidents = incidents_;  // with the error budgets set
  healing::SlowdownWatch slowdowns = slowdowns_;
  std::map<std::uint64_t, std::pair<double, double>> incident_times;
  std::map<std::uint64_t, double> slowdown_times;
  try {
    const auto format = state.find("format");
    if (format == state.end() || !format->is_number_integer() ||
        format->get<std::int64_t>() != kFeedStateFormat) {
      return make_error(ErrorCode::kInvalidArgument, "not in format " +
                                                         std::to_string(kFeedStateFormat) +
                                                         " (written by another Prescale version?)");
    }
    if (auto restored = incidents.from_json(state.at("incidents"), now); !restored) {
      return restored;
    }
    if (auto restored = slowdowns.from_json(state.at("slowdowns"), now); !restored) {
      return restored;
    }
    for (const nlohmann::json& service : state.at("slowdowns").at("services")) {
      const auto name = service.at("name").get<std::string>();
      if (!options_.error_budgets.contains(name)) slowdowns.forget(name);
    }
    for (const nlohmann::json& j : state.at("incident_times")) {
      incident_times[j.at(0).get<std::uint64_t>()] = {state_json::number_of(j.at(1)),
                                                      state_json::number_of(j.at(2))};
    }
    for (const nlohmann::json& j : state.at("slowdown_times")) {
      slowdown_times[j.at(0).get<std::uint64_t>()] = state_json::number_of(j.at(1));
    }
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, std::string("feed state: ") + e.what());
  }
  // An incident the restore closed (its service was removed while the platform was stopped)
  // is resolved as of now.
  for (const healing::Incident& i : incidents.incidents()) {
    if (!i.resolved_at) continue;
    auto& resolved_at = incident_times.try_emplace(i.id, NAN, NAN).first->second.second;
    if (std::isnan(resolved_at)) resolved_at = unix_now();
  }
  incidents_ = std::move(incidents);
  slowdowns_ = std::move(slowdowns);
  incident_times_ = std::move(incident_times);
  slowdown_opened_at_ = std::move(slowdown_times);
  for (const auto& [service, budget] : options_.error_budgets) {
    if (incidents_open_ != nullptr) {
      incidents_open_->with({service}).set(incidents_.open_incident(service) ? 1 : 0);
    }
    if (slowdown_warning_open_ != nullptr) {
      slowdown_warning_open_->with({service}).set(slowdowns_.open_warning(service) ? 1 : 0);
    }
  }
  for (const healing::SlowdownWarning& w : slowdowns_.warnings()) {
    if (!w.cleared_at) incidents_.set_slowdown(w.service, w);
  }
  after_incidents({}, NAN);
  show_slowdowns();
  return {};
}

}  // namespace prescale
