// DashboardFeed: what `prescale up` shows on its dashboard, taken from the controller after each
// tick — the policy's decisions and scaling events (with their reasons), replica events, a point
// per service at most once a second of real time (load and errors from the world's running
// totals, so a point covers its whole interval however often the controller ticks), the forecast
// band ahead, the learned call graph and the run's totals.
//
// Thread safety: one thread (the controller's) calls it; the model is safe to read meanwhile.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/controller.h"
#include "core/clock.h"
#include "core/result.h"
#include "dashboard/dashboard_model.h"
#include "endpoint_watch.h"
#include "healing/incident_watch.h"
#include "healing/slowdown_watch.h"
#include "telemetry/registry.h"
#include "worlds/local/local_world.h"

namespace prescale::scaling {
class PrescalePolicy;
}

namespace prescale {

struct DashboardFeedOptions {
  std::string policy;
  bool recommend_only = false;  // decisions are shown as planned replicas and "recommend" events
  double time_scale = 1;        // controller seconds per real second (the forecast's minutes)
  // Each service's `slo.error_budget`: the incidents of these services are watched, logged and
  // shown (docs/healing.md, "Incidents").
  std::map<std::string, double> error_budgets = {};
  // Where the incidents are counted (prescale_incidents_total, prescale_incidents_open); null:
  // nowhere.
  telemetry::Registry* registry = nullptr;
  healing::IncidentWatchOptions incidents = {};
  // Each service's slowdown warnings (docs/healing.md, "Slowdown warnings"), counted in
  // prescale_slowdown_warnings_total and prescale_slowdown_warning_open, on each scrape's service
  // time (scaling::scrape_service_time, with the service's max_concurrency from this map; 1, as
  // the capacity model takes it, when absent). `step` and `smoothing` are the controller's time, so
  // under a time scale they cover as many real seconds as the `min_points` points need.
  healing::SlowdownWatchOptions slowdowns = {};
  std::map<std::string, int> max_concurrency = {};
};

// Logs a replica's event (a crash as a warning, the rest as info) and adds it to the dashboard's
// timeline at `unix_time`: what the feed does, and what `prescale up` does before the feed exists.
void record_replica_event(dashboard::DashboardModel& model, double unix_time,
                          const local::ReplicaEvent& event);

// What the world counted so far: of one service, or of all of them for "".
using TotalsOf = std::function<control::WorldTotals(std::string_view service)>;
TotalsOf totals_of(const local::LocalWorld& world);

class DashboardFeed {
 public:
  // `prescale_policy` may be null (another policy: no forecast band, no learned graph).
  DashboardFeed(dashboard::DashboardModel& model, TotalsOf totals,
                const scaling::PrescalePolicy* prescale_policy, DashboardFeedOptions options,
                Clock& real_clock);

  // After a tick: its plan, and the scaling events it applied (Controller::take_events; left out
  // under recommend_only, where the plan's changes are "recommend" events).
  void after_tick(const control::Controller& controller, const std::optional<scaling::Plan>& plan,
                  const std::vector<control::Event>& events);
  void on_replica_event(const local::ReplicaEvent& event);
  // A replica the gateway took out of service (a warning) or put back (EndpointWatch).
  void on_endpoint_change(const EndpointChange& change);
  // The healer acted on a replica (a warning, and a "heal" event).
  void on_heal(const std::string& service, const std::string& replica, const std::string& message);
  // An event of `kind` for the timeline, said elsewhere ("heal", "rollback", ...).
  void add_event(const std::string& kind, const std::string& service, const std::string& replica,
                 const std::string& message);
  // A reload changed the service's `slo.error_budget`: its incidents are judged by the new one
  // from the next tick; what was counted goes on.
  void set_error_budget(const std::string& service, double budget);
  // A service a reload added: shown, watched and counted as one listed at the start. One removed:
  // no longer watched, its open incident closed and kept with the resolved ones (said), its open
  // warning dropped, their gauges 0; what the dashboard keeps of it goes with
  // DashboardModel::set_services().
  void add_service(const std::string& service, double budget, int max_concurrency);
  void remove_service(const std::string& service);
  int scaling_events() const { return scaling_events_; }
  const healing::IncidentWatch& incidents() const { return incidents_; }
  const healing::SlowdownWatch& slowdowns() const { return slowdowns_; }

  // What the feed counted, learned and told, for a restart (docs/state.md, "What is stored"):
  // the incident and slowdown watches' state (their to_json; `now` is the controller's clock, as
  // after_tick's snapshots) and the dashboard's times of their incidents and warnings.
  nlohmann::json export_state(Clock::TimePoint now) const;
  // Restores it before the first tick; the dashboard's incidents and open warnings and the
  // metrics' open gauges follow. What the state holds of a service not in `error_budgets`
  // (renamed or removed) is not restored: its open incident is closed as of the restore and kept
  // with the resolved ones, its open warning dropped; its resolved incidents and cleared
  // warnings stay in the history.
  // Errors: kInvalidArgument naming the field, nothing restored.
  Result<void> import_state(const nlohmann::json& state, Clock::TimePoint now);

 private:
  void add_points(const scaling::Snapshot& snapshot, double t);
  // Logs, shows and counts the incidents a point opened or resolved, and hands the model the
  // list.
  void after_incidents(const std::vector<healing::IncidentChange>& changes, double t);
  // The same for a slowdown warning.
  void after_slowdown(const healing::SlowdownChange& change, double t);
  // Hands the model the open warnings.
  void show_slowdowns();
  // The service's incident and warning counters and gauges, at 0 until something opens.
  void show_counts(const std::string& service);
  // Unix seconds for the dashboard: the wall clock's, but never before the last time given plus
  // the monotonic time since. A series must go forward and the events are newest first by time:
  // after the wall clock is set back (NTP after a suspend, `date -s`) the times go on from where
  // they were; a step forward is followed.
  double unix_now();

  dashboard::DashboardModel& model_;
  TotalsOf totals_;
  const scaling::PrescalePolicy* policy_;
  DashboardFeedOptions options_;
  Clock& real_;
  double started_at_;
  double last_t_;               // what unix_now() gave last,
  Clock::TimePoint last_mono_;  // and when, on the monotonic clock
  int scaling_events_ = 0;
  std::map<std::string, std::pair<int, std::string>> decisions_;  // service -> (replicas, why)
  Clock::TimePoint next_point_;                           // real time
  std::optional<Clock::TimePoint> next_controller_point_;  // the controller's time
  static constexpr Clock::Duration kPointEvery = std::chrono::seconds(5);
  std::map<std::string, std::pair<double, control::WorldTotals>> point_totals_;
  std::map<std::string, Clock::TimePoint> point_sampled_;  // its window's sampled_at then
  healing::IncidentWatch incidents_;
  // Each incident's opening and resolution, in the dashboard's unix seconds (NaN: not yet).
  std::map<std::uint64_t, std::pair<double, double>> incident_times_;
  telemetry::CounterFamily* incidents_total_ = nullptr;
  telemetry::GaugeFamily* incidents_open_ = nullptr;
  healing::SlowdownWatch slowdowns_;
  std::map<std::uint64_t, double> slowdown_opened_at_;  // open warnings' dashboard times
  telemetry::CounterFamily* slowdown_warnings_total_ = nullptr;
  telemetry::GaugeFamily* slowdown_warning_open_ = nullptr;
};

}  // namespace prescale
