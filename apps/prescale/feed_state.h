// What `prescale up` and `prescale controller` told an operator, kept beside the policy's learned
// state in the state directory's HistoryStore (docs/state.md), so a restart goes on from it:
//   - "prescale/healing": the DashboardFeed's state (DashboardFeed::export_state): the incidents
//     and slowdown warnings, open and past, their numbering, the burn windows and the usual
//     service times they are judged on;
//   - "prescale/timeline": the dashboard's events, as many as it keeps.
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

// Writes the feed's state; `now` is the controller's clock. Errors: the store's.
Result<void> save_feed_state(control::HistoryStore& store, const DashboardFeed& feed,
                             Clock::TimePoint now, Clock::WallTime wall_now);
// Restores it into a feed made for this run, before its first tick: false when the store holds
// none. Errors: the store's; kInvalidArgument (naming the key and the field) for a state this
// build cannot read, the feed unchanged.
Result<bool> restore_feed_state(const control::HistoryStore& store, DashboardFeed& feed,
                                Clock::TimePoint now);

// The timeline: written only when events came since the last write.
class TimelineSaver {
 public:
  Result<void> save(control::HistoryStore& store, const dashboard::DashboardModel& model,
                    Clock::WallTime wall_now);

 private:
  std::optional<std::uint64_t> saved_up_to_;  // the model's last event id at the last write
};

// What `prescale up` and `prescale controller` do once a minute and at the stop: the policy's
// learned state (save_policy_state; when `policy` is not null), the feed's and the timeline. A
// failure is a warning naming `state_dir`; the next save tries again.
void save_platform_state(control::HistoryStore& store, const scaling::PrescalePolicy* policy,
                         const DashboardFeed& feed, const dashboard::DashboardModel& model,
                         TimelineSaver& timeline, Clock& clock, std::string_view state_dir);
// restore_feed_state() with a line in the log: what came back, or why nothing did (the feed then
// watches afresh).
void restore_feed_state_said(const control::HistoryStore& store, DashboardFeed& feed,
                             Clock::TimePoint now, std::string_view state_dir);

// Adds the saved events to `model` (at most its limit, the newest), before this run's: how many.
// Errors: the store's; kInvalidArgument (naming the event) for a timeline this build cannot read,
// nothing added.
Result<size_t> restore_timeline(const control::HistoryStore& store,
                                dashboard::DashboardModel& model);

}  // namespace prescale
