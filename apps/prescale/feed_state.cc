#include "feed_state.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/persistent_policy_state.h"

namespace prescale {
namespace {

constexpr int kTimelineFormat = 1;

std::int64_t unix_seconds(Clock::WallTime t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::unexpected<Error> unreadable(const control::HistoryStore& store, std::string_view key,
                                  const std::string& why) {
  return make_error(
      ErrorCode::kInvalidArgument,
      "history store " + store.path().string() + ": state \"" + std::string(key) + "\": " + why);
}

}  // namespace

Result<void> save_feed_state(control::HistoryStore& store, const DashboardFeed& feed,
                             Clock::TimePoint now, Clock::WallTime wall_now) {
  return store.put_state(kFeedStateKey, feed.export_state(now), unix_seconds(wall_now));
}

Result<bool> restore_feed_state(const control::HistoryStore& store, DashboardFeed& feed,
                                Clock::TimePoint now) {
  auto blob = store.get_state(kFeedStateKey);
  if (!blob) return std::unexpected(blob.error());
  if (!*blob) return false;
  if (auto restored = feed.import_state((*blob)->value, now); !restored) {
    return unreadable(store, kFeedStateKey, restored.error().message);
  }
  return true;
}

void save_platform_state(control::HistoryStore& store, const scaling::PrescalePolicy* policy,
                         const DashboardFeed& feed, const dashboard::DashboardModel& model,
                         TimelineSaver& timeline, Clock& clock, std::string_view state_dir) {
  if (policy != nullptr) {
    if (auto saved = control::save_policy_state(store, *policy, clock.now(), clock.wall_now());
        !saved) {
      spdlog::warn("saving the learned state to {} failed: {}", state_dir, saved.error().message);
    }
  }
  auto saved = save_feed_state(store, feed, clock.now(), clock.wall_now());
  if (saved) saved = timeline.save(store, model, clock.wall_now());
  if (!saved) {
    spdlog::warn("saving the incidents, warnings and timeline to {} failed: {}", state_dir,
                 saved.error().message);
  }
}

void restore_feed_state_said(const control::HistoryStore& store, DashboardFeed& feed,
                             Clock::TimePoint now, std::string_view state_dir) {
  if (auto restored = restore_feed_state(store, feed, now); !restored) {
    spdlog::warn("incidents and slowdown warnings in {} not restored ({}); watching afresh",
                 state_dir, restored.error().message);
  } else if (*restored) {
    spdlog::info("restored the incidents and slowdown warnings from {} ({} and {} so far)",
                 state_dir, feed.incidents().opened(), feed.slowdowns().opened());
  }
}

Result<void> TimelineSaver::save(control::HistoryStore& store,
                                 const dashboard::DashboardModel& model, Clock::WallTime wall_now) {
  const std::uint64_t last = model.last_event_id();
  if (saved_up_to_ && *saved_up_to_ == last) return {};
  nlohmann::json events = nlohmann::json::array();
  for (const dashboard::EventRecord& e : model.events()) {
    events.push_back({e.t, e.kind, e.service, e.replica, e.message});
  }
  auto put =
      store.put_state(kTimelineKey, {{"format", kTimelineFormat}, {"events", std::move(events)}},
                      unix_seconds(wall_now));
  if (put) saved_up_to_ = last;
  return put;
}

Result<size_t> restore_timeline(const control::HistoryStore& store,
                                dashboard::DashboardModel& model) {
  auto blob = store.get_state(kTimelineKey);
  if (!blob) return std::unexpected(blob.error());
  if (!*blob) return 0;
  const nlohmann::json& value = (*blob)->value;
  std::vector<dashboard::EventRecord> events;
  try {
    const auto format = value.find("format");
    if (format == value.end() || !format->is_number_integer() ||
        format->get<std::int64_t>() != kTimelineFormat) {
      return unreadable(store, kTimelineKey,
                        "not in format " + std::to_string(kTimelineFormat) +
                            " (written by another Prescale version?)");
    }
    for (const nlohmann::json& e : value.at("events")) {
      dashboard::EventRecord r{e.at(0).get<double>(), e.at(1).get<std::string>(),
                               e.at(2).get<std::string>(), e.at(3).get<std::string>(),
                               e.at(4).get<std::string>()};
      if (!std::isfinite(r.t)) {
        return unreadable(store, kTimelineKey,
                          "events[" + std::to_string(events.size()) + "]: a time not finite");
      }
      events.push_back(std::move(r));
    }
  } catch (const nlohmann::json::exception& e) {
    return unreadable(store, kTimelineKey,
                      "events[" + std::to_string(events.size()) + "]: " + e.what());
  }
  const size_t limit = model.limits().max_events;
  const size_t from = events.size() > limit ? events.size() - limit : 0;
  for (size_t i = from; i < events.size(); ++i) model.add_event(std::move(events[i]));
  return events.size() - from;
}

}  // namespace prescale
