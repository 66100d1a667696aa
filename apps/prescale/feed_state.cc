#include "feed_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/persistent_policy_state.h"

namespace prescale {
namespace {

constexpr int kTimelineFormat = 1;
constexpr int kChartsFormat = 1;

// The chart columns as GET /api/v1/services/{name} names them, and where each lives in a point.
struct Column {
  const char* name;
  double dashboard::ServicePoint::*value;
};
constexpr Column kValueColumns[] = {
    {"load_rps", &dashboard::ServicePoint::load_rps},
    {"forecast_p50", &dashboard::ServicePoint::forecast_p50},
    {"forecast_p90", &dashboard::ServicePoint::forecast_p90},
    {"forecast_p99", &dashboard::ServicePoint::forecast_p99},
    {"p99_ms", &dashboard::ServicePoint::p99_ms},
    {"errors_rps", &dashboard::ServicePoint::errors_rps},
    {"memory_mib", &dashboard::ServicePoint::memory_mib},
};
constexpr std::pair<const char*, int dashboard::ServicePoint::*> kCountColumns[] = {
    {"planned_replicas", &dashboard::ServicePoint::planned_replicas},
    {"ready_replicas", &dashboard::ServicePoint::ready_replicas},
};

// A chart value to 6 significant digits (what a chart shows, at a third of the bytes); null for
// none.
nlohmann::json chart_value(double v) {
  if (!std::isfinite(v)) return nullptr;
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", v);
  return std::strtod(text, nullptr);
}

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
                         DashboardSaver& dashboard, Clock& clock, std::string_view state_dir,
                         bool last) {
  if (policy != nullptr) {
    if (auto saved = control::save_policy_state(store, *policy, clock.now(), clock.wall_now());
        !saved) {
      spdlog::warn("saving the learned state to {} failed: {}", state_dir, saved.error().message);
    }
  }
  auto saved = save_feed_state(store, feed, clock.now(), clock.wall_now());
  if (saved) saved = dashboard.save(store, model, clock.wall_now(), last);
  if (!saved) {
    spdlog::warn("saving the incidents, warnings, timeline and charts to {} failed: {}", state_dir,
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

Result<void> DashboardSaver::save(control::HistoryStore& store,
                                  const dashboard::DashboardModel& model, Clock::WallTime wall_now,
                                  bool last) {
  if (const std::uint64_t id = model.last_event_id(); !saved_up_to_ || *saved_up_to_ != id) {
    nlohmann::json events = nlohmann::json::array();
    for (const dashboard::EventRecord& e : model.events()) {
      events.push_back({e.t, e.kind, e.service, e.replica, e.message});
    }
    auto put =
        store.put_state(kTimelineKey, {{"format", kTimelineFormat}, {"events", std::move(events)}},
                        unix_seconds(wall_now));
    if (!put) return put;
    saved_up_to_ = id;
  }
  // Whether a write is due, before copying the points.
  const double newest = model.newest_point_t();
  if (!std::isfinite(newest) || (charted_up_to_ && newest <= *charted_up_to_) ||
      (charted_up_to_ && !last && newest < *charted_up_to_ + kChartsEvery)) {
    return {};
  }
  const auto series = model.series();
  nlohmann::json services = nlohmann::json::object();
  for (const auto& [service, points] : series) {
    nlohmann::json columns = nlohmann::json::object();
    nlohmann::json& t = columns["t"] = nlohmann::json::array();
    for (const dashboard::ServicePoint& p : points) t.push_back(p.t);
    for (const Column& c : kValueColumns) {
      nlohmann::json& column = columns[c.name] = nlohmann::json::array();
      for (const dashboard::ServicePoint& p : points) column.push_back(chart_value(p.*c.value));
    }
    for (const auto& [name, count] : kCountColumns) {
      nlohmann::json& column = columns[name] = nlohmann::json::array();
      for (const dashboard::ServicePoint& p : points) column.push_back(p.*count);
    }
    services[service] = std::move(columns);
  }
  auto put =
      store.put_state(kChartsKey, {{"format", kChartsFormat}, {"services", std::move(services)}},
                      unix_seconds(wall_now));
  if (put) charted_up_to_ = newest;
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

Result<size_t> restore_charts(const control::HistoryStore& store, dashboard::DashboardModel& model,
                              Clock::WallTime wall_now) {
  const double now_unix = std::chrono::duration<double>(wall_now.time_since_epoch()).count();
  auto blob = store.get_state(kChartsKey);
  if (!blob) return std::unexpected(blob.error());
  if (!*blob) return 0;
  const nlohmann::json& value = (*blob)->value;
  const auto format = value.find("format");
  if (format == value.end() || !format->is_number_integer() ||
      format->get<std::int64_t>() != kChartsFormat) {
    return unreadable(store, kChartsKey,
                      "not in format " + std::to_string(kChartsFormat) +
                          " (written by another Prescale version?)");
  }
  const auto services = value.find("services");
  if (services == value.end() || !services->is_object()) {
    return unreadable(store, kChartsKey, "services: not an object");
  }
  // Read whole before anything is added: a state this build cannot read adds nothing.
  std::vector<std::pair<std::string, std::vector<dashboard::ServicePoint>>> restored;
  for (const auto& [service, columns] : model.series()) {
    const auto saved = services->find(service);
    if (saved == services->end()) continue;
    const std::string where = "services[" + service + "]";
    if (!saved->is_object()) return unreadable(store, kChartsKey, where + ": not an object");
    const auto t = saved->find("t");
    if (t == saved->end() || !t->is_array()) {
      return unreadable(store, kChartsKey, where + ".t: not an array");
    }
    std::vector<dashboard::ServicePoint> points(t->size());
    for (size_t i = 0; i < points.size(); ++i) {
      const nlohmann::json& at = (*t)[i];
      if (!at.is_number() || !std::isfinite(at.get<double>()) ||
          (i > 0 && !(at.get<double>() > points[i - 1].t))) {
        return unreadable(
            store, kChartsKey,
            where + ".t[" + std::to_string(i) + "]: not a finite time after the one before");
      }
      points[i].t = at.get<double>();
    }
    // A column of another length, or a value of the wrong kind, is refused; one absent (a later
    // version's field) leaves the points without it.
    auto column = [&](const char* name) -> Result<const nlohmann::json*> {
      const auto c = saved->find(name);
      if (c == saved->end()) return nullptr;
      if (!c->is_array() || c->size() != points.size()) {
        return unreadable(store, kChartsKey,
                          where + "." + name + ": not an array of " +
                              std::to_string(points.size()) + " values, as t");
      }
      return &*c;
    };
    for (const Column& c : kValueColumns) {
      auto values = column(c.name);
      if (!values) return std::unexpected(values.error());
      if (*values == nullptr) continue;
      for (size_t i = 0; i < points.size(); ++i) {
        const nlohmann::json& v = (**values)[i];
        if (v.is_null()) continue;
        if (!v.is_number() || !std::isfinite(v.get<double>())) {
          return unreadable(
              store, kChartsKey,
              where + "." + c.name + "[" + std::to_string(i) + "]: not a finite number or null");
        }
        points[i].*c.value = v.get<double>();
      }
    }
    for (const auto& [name, count] : kCountColumns) {
      auto values = column(name);
      if (!values) return std::unexpected(values.error());
      if (*values == nullptr) continue;
      for (size_t i = 0; i < points.size(); ++i) {
        const nlohmann::json& v = (**values)[i];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0 ||
            v.get<std::int64_t>() > std::numeric_limits<int>::max()) {
          return unreadable(
              store, kChartsKey,
              where + "." + name + "[" + std::to_string(i) + "]: not a count of replicas");
        }
        points[i].*count = static_cast<int>(v.get<std::int64_t>());
      }
    }
    std::erase_if(points, [&](const dashboard::ServicePoint& p) {
      return !(p.t < now_unix) || p.t < now_unix - kChartsKept;
    });
    restored.emplace_back(service, std::move(points));
  }
  size_t added = 0;
  const size_t limit = model.limits().points_per_service;
  for (const auto& [service, points] : restored) {
    const size_t from = points.size() > limit ? points.size() - limit : 0;
    for (size_t i = from; i < points.size(); ++i) {
      if (model.append_point(service, points[i])) ++added;
    }
  }
  return added;
}

void restore_charts_said(const control::HistoryStore& store, dashboard::DashboardModel& model,
                         Clock::WallTime wall_now, std::string_view state_dir) {
  if (auto restored = restore_charts(store, model, wall_now); !restored) {
    spdlog::warn("the dashboard's charts in {} not restored ({}); they start empty", state_dir,
                 restored.error().message);
  }
}

}  // namespace prescale
