// What `prescale up` and `prescale controller` told an operator, kept beside the policy's learned
// state in the state directory's HistoryStore (docs/state.md), so a restart goes on from it:
//   - "prescale/healing": the DashboardFeed's state (DashboardFeed::export_state): the incidents
//     and slowdown warnings, open and past, their numbering, the burn windows and the usual
//     service times they are judged on;
//   - "prescale/timeline": the dashboard's events, as many as it keeps;
//   - "prescale/charts": each service's chart points, as many as the dashboard keeps.
//
// Thread safety: one thread (the controller's) calls these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "control/history_store.h"
#include "core/clock.h"
#include "core/result.h"
#include "dashboard/dashboard_model.h"
#include "dashboard_feed.h"

namespace prescale::scaling {
class PrescalePolicy;
}

namespace prescale {

inline constexpr std::string_view kFeedStateKey = "prescale/healing";
inline constexpr std::string_view kTimelineKey = "prescale/timeline";
inline constexpr std::string_view kChartsKey = "prescale/charts";
// What a restart restores of the charts at most: the dashboard's default, 2,880 points of 5 s.
inline constexpr double kChartsKept = 4 * 3600;  // seconds

// Writes the feed's state; `now` is the controller's clock. Errors: the store's.
Result<void> save_feed_state(control::HistoryStore& store, const DashboardFeed& feed,
                             Clock::TimePoint now, Clock::WallTime wall_now);
// Restores it into a feed made for this run, before its first tick: false when the store holds
// none. Errors: the store's; kInvalidArgument (naming the key and the field) for a state this
// build cannot read, the feed unchanged.
Result<bool> restore_feed_state(const control::HistoryStore& store, DashboardFeed& feed,
                                Clock::TimePoint now);

// The dashboard's timeline and charts. The timeline is written when events came since the last
// write; the charts (some 200 KB a service when full) when points came, at most once per
// kChartsEvery of the points' own (real) time — once a minute, for saves a minute apart whose
// newest points are up to a point's 5 s apart — or at the `last` save of a run.
class DashboardSaver {
 public:
  static constexpr double kChartsEvery = 50;  // seconds

  Result<void> save(control::HistoryStore& store, const dashboard::DashboardModel& model,
                    Clock::WallTime wall_now, bool last = false);

 private:
  std::optional<std::uint64_t> saved_up_to_;  // the model's last event id at the last write
  std::optional<double> charted_up_to_;       // the newest point's time at the last write
};

// What `prescale up` and `prescale controller` do once a minute and at the stop (`last`): the
// policy's learned state (save_policy_state; when `policy` is not null), the feed's, the timeline
// and the charts. A failure is a warning naming `state_dir`; the next save tries again.
void save_platform_state(control::HistoryStore& store, const scaling::PrescalePolicy* policy,
                         const DashboardFeed& feed, const dashboard::DashboardModel& model,
                         DashboardSaver& dashboard, Clock& clock, std::string_view state_dir,
                         bool last = false);
// restore_feed_state() with a line in the log: what came back, or why nothing did (the feed then
// watches afresh).
void restore_feed_state_said(const control::HistoryStore& store, DashboardFeed& feed,
                             Clock::TimePoint now, std::string_view state_dir);

// Adds the saved events to `model` (at most its limit, the newest), before this run's: how many.
// Errors: the store's; kInvalidArgument (naming the event) for a timeline this build cannot read,
// nothing added.
Result<size_t> restore_timeline(const control::HistoryStore& store,
                                dashboard::DashboardModel& model);

// Adds the saved chart points of each service `model` lists (set_services first) before this
// run's: those of the kChartsKept before `wall_now` (a clock set back would otherwise leave this
// run's points refused as not after them; older ones would squeeze this run's to the charts'
// edge), at most its limit per service, the newest. Returns how many.
// Errors: the store's; kInvalidArgument (naming the service, field and index) for charts this
// build cannot read, nothing added.
Result<size_t> restore_charts(const control::HistoryStore& store, dashboard::DashboardModel& model,
                              Clock::WallTime wall_now);
// restore_charts() with a warning when they could not be read (the charts then start empty).
void restore_charts_said(const control::HistoryStore& store, dashboard::DashboardModel& model,
                         Clock::WallTime wall_now, std::string_view state_dir);

}  // namespace prescale
