// DashboardModel: what the live dashboard shows, kept in memory. The controller writes it once
// per tick (services, their recent series and forecast band, decisions, the learned call graph,
// events, run totals); the dashboard's HTTP handlers read it and render the JSON of /api/v1/
// (field names in docs/dashboard.md).
//
// Bounded memory: each service keeps its newest `points_per_service` points (a ring buffer; the
// default, 2880, is 4 h of 5 s points) and the model keeps the newest `max_events` events.
// Times are unix seconds (double). NaN in a double field means "no value" and renders as null.
//
// Thread safety: every method may be called from any thread. Writers (meant to be the one
// controller thread) take an exclusive lock; readers (HTTP threads) a shared one. A reader sees
// each write whole: never half of a point, forecast or graph.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace prescale::dashboard {

inline constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

struct ServiceInfo {
  std::string name;
  std::string kind;  // e.g. "recommend", "fraud", "external"
  double slo_p99_ms = kNoValue;
  int min_replicas = 0;
  int max_replicas = 0;
  double memory_limit_mib = kNoValue;  // services[].memory_limit; NaN when none
  // The template its new replicas start from (a rolling update's revision, docs/local.md); 0
  // where the world has none.
  int revision = 0;
  // Where its rolling update stands: "rolling out: 1 of 4 updated", or the last one's failure
  // ("revision 3 failed: ...; rolled back"); "" when neither.
  std::string rollout{};
};

// One controller tick of one service.
struct ServicePoint {
  double t = 0;  // unix seconds
  double load_rps = kNoValue;
  // What the forecaster said earlier for time `t` (NaN when it made no forecast for it), so the
  // chart can show forecast against what came.
  double forecast_p50 = kNoValue;
  double forecast_p90 = kNoValue;
  double forecast_p99 = kNoValue;
  int planned_replicas = 0;
  int ready_replicas = 0;
  double p99_ms = kNoValue;
  double errors_rps = kNoValue;
  double memory_mib = kNoValue;  // the resident memory of its largest replica; NaN when unknown
};

// One step of the forecast band ahead of now, in req/s.
struct ForecastPoint {
  double t = 0;  // unix seconds
  double p50 = kNoValue;
  double p90 = kNoValue;
  double p99 = kNoValue;
};

// An edge of the learned call graph: `fanout` calls of callee per request of caller.
struct Edge {
  std::string caller;
  std::string callee;
  double fanout = 0;
  double calls_rps = kNoValue;
};

struct EventRecord {
  double t = 0;      // unix seconds
  std::string kind;  // "scale", "restart", "crash", "eject", "ready", "drain", ...
  std::string service;
  std::string replica;  // empty when the event concerns the whole service
  std::string message;  // for "scale": the policy's reason
};

// A service's SLO burning faster than its error budget allows (docs/healing.md, "Incidents").
struct IncidentRecord {
  uint64_t id = 0;
  std::string service;
  double opened_at = 0;           // unix seconds
  double resolved_at = kNoValue;  // unix seconds; NaN while open
  std::string rule;               // the burn-rate rule that opened it: "14.4x over 1h and 5m"
  double burn_rate = 0;           // at the opening
  double peak_burn_rate = 0;
  double requests = 0;  // counted while open
  double failed = 0;
  double slow = 0;
  std::string cause;    // the likely cause; "" when none was seen
  std::string summary;  // what was said at the opening
};

// Each request of a service taking markedly longer in service than usual for minutes
// (docs/healing.md, "Slowdown warnings"): the open warning of a service.
struct SlowdownRecord {
  uint64_t id = 0;
  std::string service;
  double opened_at = 0;          // unix seconds
  double service_ms = 0;         // the smoothed service time per request at the opening
  double usual_ms = 0;           // the usual one then
  double load_ratio = kNoValue;  // the load over its usual then; NaN when unknown
  double p99_ms = kNoValue;      // the P99 then; NaN when unknown
  std::string summary;           // what was said at the opening
};

// Totals of the run, as the controller counts them.
struct Overview {
  std::string policy;
  bool recommend_only = false;
  double started_at = 0;               // unix seconds
  double now = 0;                      // unix seconds: the latest tick
  double requests = 0;                 // served since started_at
  double within_slo_share = kNoValue;  // 0..1: share of requests answered within their SLO
  double replica_hours = 0;
  int scaling_events = 0;
};

struct DashboardLimits {
  size_t points_per_service = 2880;  // 4 h of 5 s points
  size_t max_events = 2000;
};

class DashboardModel {
 public:
  explicit DashboardModel(DashboardLimits limits = {});
  ~DashboardModel();
  DashboardModel(const DashboardModel&) = delete;
  DashboardModel& operator=(const DashboardModel&) = delete;

  // Replaces the list of services (in display order). Series, forecasts and decisions of
  // services still listed are kept; those of services no longer listed are dropped. A name
  // listed twice is kept once, as its first entry.
  void set_services(std::vector<ServiceInfo> services);

  // Appends a point to a service's series, dropping the oldest beyond the cap. Fails with
  // kNotFound for a service not set, kInvalidArgument when `point.t` is not after the last
  // point's t (series are strictly increasing in time, which is what `since` filtering needs).
  Result<void> append_point(std::string_view service, const ServicePoint& point);

  // Each service's points kept, oldest first, in display order (a restart's saved charts,
  // docs/state.md).
  std::vector<std::pair<std::string, std::vector<ServicePoint>>> series() const;
  // The time of the newest point of any service; NaN when none has one.
  double newest_point_t() const;

  // Replaces a service's forecast band ahead of now (points in increasing t). kNotFound for an
  // unknown service.
  Result<void> set_forecast(std::string_view service, std::vector<ForecastPoint> band);

  // Records the policy's latest decision for a service: `planned` replicas and why, at `t`
  // (unix seconds). kNotFound for an unknown service.
  Result<void> set_decision(std::string_view service, double t, int planned, std::string reason);

  // Replaces the learned call graph.
  void set_graph(std::vector<Edge> edges);

  // Appends an event (dropping the oldest beyond the cap) and returns its id: ids count up
  // from 1 in order of arrival, so a reader can ask for "what came after id N" even when events
  // arrive out of time order. An event whose time is not finite takes the previous event's.
  uint64_t add_event(EventRecord event);
  // The events kept, in the order they came (a restart's saved timeline, docs/state.md), and the
  // id of the last one added (0 before any).
  std::vector<EventRecord> events() const;
  uint64_t last_event_id() const;

  void set_overview(Overview overview);

  // Replaces the incidents: the open ones, then the resolved ones kept, newest first in each.
  void set_incidents(std::vector<IncidentRecord> incidents);
  // Replaces the open slowdown warnings (one per service at most).
  void set_slowdowns(std::vector<SlowdownRecord> warnings);

  // --- JSON renderers for /api/v1 (docs/dashboard.md lists every field) ---

  // The run totals, plus "services": the number of services.
  nlohmann::json overview_json() const;
  // {"services":[{info..., "latest": <last point or null>, "decision": ..., "incident": <its
  // open incident or null>, "slowdown": <its open slowdown warning or null>}]}
  nlohmann::json services_json() const;
  // One service: info, decision, its series (only points with t > since, when given) in
  // columnar form, and the forecast band. kNotFound (naming the service) when unknown.
  Result<nlohmann::json> service_json(std::string_view name,
                                      std::optional<double> since = std::nullopt) const;
  // {"nodes":[{"name","kind"}], "edges":[{caller, callee, fanout, calls_rps}]}: the nodes are
  // the services plus any other name an edge mentions (kind "external").
  nlohmann::json graph_json() const;
  // Newest first; only events with t > since and id > after_id, when given.
  nlohmann::json events_json(std::optional<double> since = std::nullopt,
                             std::optional<uint64_t> after_id = std::nullopt) const;

  // {"incidents":[...]}: as set_incidents ordered them.
  nlohmann::json incidents_json() const;

  const DashboardLimits& limits() const { return limits_; }

 private:
  struct State;
  const DashboardLimits limits_;
  std::unique_ptr<State> state_;
};

}  // namespace prescale::dashboard
