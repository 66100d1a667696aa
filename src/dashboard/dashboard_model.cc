#include "dashboard/dashboard_model.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <utility>

namespace prescale::dashboard {

using nlohmann::json;

namespace {

// NaN and infinities have no JSON form: they render as null.
json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json info_json(const ServiceInfo& s) {
  return {{"name", s.name},
          {"kind", s.kind},
          {"slo_p99_ms", number(s.slo_p99_ms)},
          {"min_replicas", s.min_replicas},
          {"max_replicas", s.max_replicas},
          {"memory_limit_mib", number(s.memory_limit_mib)},
          {"revision", s.revision > 0 ? json(s.revision) : json(nullptr)},
          {"rollout", s.rollout}};
}

json point_json(const ServicePoint& p) {
  return {{"t", p.t},
          {"load_rps", number(p.load_rps)},
          {"forecast_p50", number(p.forecast_p50)},
          {"forecast_p90", number(p.forecast_p90)},
          {"forecast_p99", number(p.forecast_p99)},
          {"planned_replicas", p.planned_replicas},
          {"ready_replicas", p.ready_replicas},
          {"p99_ms", number(p.p99_ms)},
          {"errors_rps", number(p.errors_rps)},
          {"memory_mib", number(p.memory_mib)}};
}

json incident_json(const IncidentRecord& i) {
  return {{"id", i.id},
          {"service", i.service},
          {"opened_at", i.opened_at},
          {"resolved_at", number(i.resolved_at)},
          {"rule", i.rule},
          {"burn_rate", number(i.burn_rate)},
          {"peak_burn_rate", number(i.peak_burn_rate)},
          {"requests", number(i.requests)},
          {"failed", number(i.failed)},
          {"slow", number(i.slow)},
          {"cause", i.cause},
          {"summary", i.summary}};
}

json slowdown_json(const SlowdownRecord& w) {
  return {{"id", w.id},
          {"service", w.service},
          {"opened_at", w.opened_at},
          {"service_ms", number(w.service_ms)},
          {"usual_ms", number(w.usual_ms)},
          {"load_ratio", number(w.load_ratio)},
          {"p99_ms", number(w.p99_ms)},
          {"summary", w.summary}};
}

struct Decision {
  double t = 0;
  int planned = 0;
  std::string reason;
};

json decision_json(const std::optional<Decision>& d) {
  if (!d) return nullptr;
  return {{"t", d->t}, {"planned_replicas", d->planned}, {"reason", d->reason}};
}

}  // namespace

struct DashboardModel::State {
  struct Service {
    ServiceInfo info;
    std::deque<ServicePoint> points;  // strictly increasing t, at most points_per_service
    std::vector<ForecastPoint> band;
    std::optional<Decision> decision;
  };
  struct StoredEvent {
    uint64_t id;
    EventRecord event;
  };

  template <typename Services>
  static auto* find_in(Services& list, std::string_view name) {
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const Service& s) { return s.info.name == name; });
    return it == list.end() ? nullptr : &*it;
  }
  Service* find(std::string_view name) { return find_in(services, name); }
  const Service* find(std::string_view name) const { return find_in(services, name); }

  mutable std::shared_mutex mu;
  std::vector<Service> services;  // display order; a handful, so linear search
  std::vector<Edge> edges;
  std::deque<StoredEvent> events;  // arrival order
  uint64_t next_event_id = 1;
  Overview overview;
  std::vector<IncidentRecord> incidents;
  std::vector<SlowdownRecord> slowdowns;
};

namespace {

Error unknown_service(std::string_view name) {
  return Error{ErrorCode::kNotFound, "unknown service \"" + std::string(name) + "\""};
}

}  // namespace

DashboardModel::DashboardModel(DashboardLimits limits)
    : limits_(limits), state_(std::make_unique<State>()) {}

DashboardModel::~DashboardModel() = default;

void DashboardModel::set_services(std::vector<ServiceInfo> services) {
  std::unique_lock lock(state_->mu);
  std::vector<State::Service> next;
  next.reserve(services.size());
  for (auto& info : services) {
    // A name listed twice is one service: the first entry is kept.
    if (std::any_of(next.begin(), next.end(),
                    [&](const State::Service& n) { return n.info.name == info.name; })) {
      continue;
    }
    State::Service s;
    if (State::Service* old = state_->find(info.name)) s = std::move(*old);
    s.info = std::move(info);
    next.push_back(std::move(s));
  }
  state_->services = std::move(next);
}

Result<void> DashboardModel::append_point(std::string_view service, const ServicePoint& point) {
  std::unique_lock lock(state_->mu);
  State::Service* s = state_->find(service);
  if (s == nullptr) return std::unexpected(unknown_service(service));
  if (!std::isfinite(point.t) || (!s->points.empty() && point.t <= s->points.back().t)) {
    return make_error(ErrorCode::kInvalidArgument, "point for \"" + std::string(service) +
                                                       "\" at t=" + std::to_string(point.t) +
                                                       " is not after the last point");
  }
  if (limits_.points_per_service == 0) return {};
  while (s->points.size() >= limits_.points_per_service) s->points.pop_front();
  s->points.push_back(point);
  return {};
}

std::vector<std::pair<std::string, std::vector<ServicePoint>>> DashboardModel::series() const {
  std::shared_lock lock(state_->mu);
  std::vector<std::pair<std::string, std::vector<ServicePoint>>> out;
  out.reserve(state_->services.size());
  for (const State::Service& s : state_->services) {
    out.emplace_back(s.info.name, std::vector<ServicePoint>(s.points.begin(), s.points.end()));
  }
  return out;
}

double DashboardModel::newest_point_t() const {
  std::shared_lock lock(state_->mu);
  double newest = kNoValue;
  for (const State::Service& s : state_->services) {
    if (!s.points.empty() && !(s.points.back().t <= newest)) newest = s.points.back().t;
  }
  return newest;
}

Result<void> DashboardModel::set_forecast(std::string_view service,
                                          std::vector<ForecastPoint> band) {
  std::unique_lock lock(state_->mu);
  State::Service* s = state_->find(service);
  if (s == nullptr) return std::unexpected(unknown_service(service));
  s->band = std::move(band);
  return {};
}

Result<void> DashboardModel::set_decision(std::string_view service, double t, int planned,
                                          std::string reason) {
  std::unique_lock lock(state_->mu);
  State::Service* s = state_->find(service);
  if (s == nullptr) return std::unexpected(unknown_service(service));
  s->decision = Decision{t, planned, std::move(reason)};
  return {};
}

void DashboardModel::set_graph(std::vector<Edge> edges) {
  std::unique_lock lock(state_->mu);
  state_->edges = std::move(edges);
}

uint64_t DashboardModel::add_event(EventRecord event) {
  std::unique_lock lock(state_->mu);
  // A time that is not a number would break the ordering of the list: the event takes the
  // previous event's time (0 for the first).
  if (!std::isfinite(event.t)) event.t = state_->events.empty() ? 0 : state_->events.back().event.t;
  const uint64_t id = state_->next_event_id++;
  if (limits_.max_events == 0) return id;
  while (state_->events.size() >= limits_.max_events) state_->events.pop_front();
  state_->events.push_back({id, std::move(event)});
  return id;
}

void DashboardModel::set_overview(Overview overview) {
  std::unique_lock lock(state_->mu);
  state_->overview = std::move(overview);
}

void DashboardModel::set_incidents(std::vector<IncidentRecord> incidents) {
  std::unique_lock lock(state_->mu);
  state_->incidents = std::move(incidents);
}

void DashboardModel::set_slowdowns(std::vector<SlowdownRecord> warnings) {
  std::unique_lock lock(state_->mu);
  state_->slowdowns = std::move(warnings);
}

json DashboardModel::incidents_json() const {
  std::shared_lock lock(state_->mu);
  json list = json::array();
  for (const IncidentRecord& i : state_->incidents) list.push_back(incident_json(i));
  return {{"now", state_->overview.now}, {"incidents", std::move(list)}};
}

json DashboardModel::overview_json() const {
  std::shared_lock lock(state_->mu);
  const Overview& o = state_->overview;
  return {{"policy", o.policy},
          {"recommend_only", o.recommend_only},
          {"started_at", o.started_at},
          {"now", o.now},
          {"requests", o.requests},
          {"within_slo_share", number(o.within_slo_share)},
          {"replica_hours", o.replica_hours},
          {"scaling_events", o.scaling_events},
          {"services", state_->services.size()}};
}

json DashboardModel::services_json() const {
  std::shared_lock lock(state_->mu);
  json list = json::array();
  for (const auto& s : state_->services) {
    json j = info_json(s.info);
    j["points"] = s.points.size();
    j["latest"] = s.points.empty() ? json(nullptr) : point_json(s.points.back());
    j["decision"] = decision_json(s.decision);
    j["incident"] = nullptr;
    for (const IncidentRecord& i : state_->incidents) {
      if (i.service == s.info.name && std::isnan(i.resolved_at)) {
        j["incident"] = incident_json(i);
        break;
      }
    }
    j["slowdown"] = nullptr;
    for (const SlowdownRecord& w : state_->slowdowns) {
      if (w.service == s.info.name) {
        j["slowdown"] = slowdown_json(w);
        break;
      }
    }
    list.push_back(std::move(j));
  }
  return {{"now", state_->overview.now}, {"services", std::move(list)}};
}

Result<json> DashboardModel::service_json(std::string_view name,
                                          std::optional<double> since) const {
  std::shared_lock lock(state_->mu);
  const State::Service* s = state_->find(name);
  if (s == nullptr) return std::unexpected(unknown_service(name));

  auto first = s->points.begin();
  if (since) {
    first = std::upper_bound(s->points.begin(), s->points.end(), *since,
                             [](double t, const ServicePoint& p) { return t < p.t; });
  }
  // Columns, one array per field: the shape uPlot plots directly, and half the bytes of an
  // array of objects.
  json t = json::array(), load = json::array(), f50 = json::array(), f90 = json::array(),
       f99 = json::array(), planned = json::array(), ready = json::array(), p99 = json::array(),
       errors = json::array(), memory = json::array();
  for (auto it = first; it != s->points.end(); ++it) {
    t.push_back(it->t);
    load.push_back(number(it->load_rps));
    f50.push_back(number(it->forecast_p50));
    f90.push_back(number(it->forecast_p90));
    f99.push_back(number(it->forecast_p99));
    planned.push_back(it->planned_replicas);
    ready.push_back(it->ready_replicas);
    p99.push_back(number(it->p99_ms));
    errors.push_back(number(it->errors_rps));
    memory.push_back(number(it->memory_mib));
  }
  json band_t = json::array(), b50 = json::array(), b90 = json::array(), b99 = json::array();
  for (const auto& f : s->band) {
    band_t.push_back(f.t);
    b50.push_back(number(f.p50));
    b90.push_back(number(f.p90));
    b99.push_back(number(f.p99));
  }
  json out = info_json(s->info);
  out["now"] = state_->overview.now;
  out["since"] = since ? json(*since) : json(nullptr);
  out["last_t"] = s->points.empty() ? json(nullptr) : json(s->points.back().t);
  out["decision"] = decision_json(s->decision);
  out["series"] = {{"t", std::move(t)},
                   {"load_rps", std::move(load)},
                   {"forecast_p50", std::move(f50)},
                   {"forecast_p90", std::move(f90)},
                   {"forecast_p99", std::move(f99)},
                   {"planned_replicas", std::move(planned)},
                   {"ready_replicas", std::move(ready)},
                   {"p99_ms", std::move(p99)},
                   {"errors_rps", std::move(errors)},
                   {"memory_mib", std::move(memory)}};
  out["forecast"] = {{"t", std::move(band_t)},
                     {"p50", std::move(b50)},
                     {"p90", std::move(b90)},
                     {"p99", std::move(b99)}};
  return out;
}

json DashboardModel::graph_json() const {
  std::shared_lock lock(state_->mu);
  json nodes = json::array();
  std::set<std::string, std::less<>> seen;
  for (const auto& s : state_->services) {
    if (seen.insert(s.info.name).second) {
      nodes.push_back({{"name", s.info.name}, {"kind", s.info.kind}});
    }
  }
  json edges = json::array();
  for (const auto& e : state_->edges) {
    for (const std::string* name : {&e.caller, &e.callee}) {
      if (seen.insert(*name).second) nodes.push_back({{"name", *name}, {"kind", "external"}});
    }
    edges.push_back({{"caller", e.caller},
                     {"callee", e.callee},
                     {"fanout", number(e.fanout)},
                     {"calls_rps", number(e.calls_rps)}});
  }
  return {{"nodes", std::move(nodes)}, {"edges", std::move(edges)}};
}

std::vector<EventRecord> DashboardModel::events() const {
  std::shared_lock lock(state_->mu);
  std::vector<EventRecord> out;
  out.reserve(state_->events.size());
  for (const auto& stored : state_->events) out.push_back(stored.event);
  return out;
}

uint64_t DashboardModel::last_event_id() const {
  std::shared_lock lock(state_->mu);
  return state_->next_event_id - 1;
}

json DashboardModel::events_json(std::optional<double> since,
                                 std::optional<uint64_t> after_id) const {
  std::shared_lock lock(state_->mu);
  json list = json::array();
  for (auto it = state_->events.rbegin(); it != state_->events.rend(); ++it) {
    if (after_id && it->id <= *after_id) break;  // ids only decrease from here
    const EventRecord& e = it->event;
    if (since && !(e.t > *since)) continue;
    list.push_back({{"id", it->id},
                    {"t", e.t},
                    {"kind", e.kind},
                    {"service", e.service},
                    {"replica", e.replica},
                    {"message", e.message}});
  }
  // Newest first by time; ties and out-of-order arrivals keep the newer id first.
  std::stable_sort(list.begin(), list.end(), [](const json& a, const json& b) {
    return a["t"].get<double>() > b["t"].get<double>();
  });
  return {{"last_id", state_->next_event_id - 1}, {"events", std::move(list)}};
}

}  // namespace prescale::dashboard
