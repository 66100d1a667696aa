// Saving and restoring the Prescale policy's learned state (docs/state.md).
#include "scaling/internal/prescale_policy_state.h"

#include <nlohmann/json.hpp>

#include "core/state_json.h"
#include "scaling/prescale_policy.h"

namespace prescale::scaling {

namespace {

constexpr int kStateVersion = 1;

using state_json::optional_age;
using state_json::optional_at;

// One series' entry of export_state().
struct SavedSeries {
  std::int64_t history_from = 0, history_to = 0;  // minutes, the saving clock's
  double minute_sum = 0;
  int minute_samples = 0;
  std::optional<std::pair<std::int64_t, std::int64_t>> model_window;
  std::optional<Clock::TimePoint> fitted_at;  // on the restoring clock
  size_t fitted_size = 0;
};

// One service's entry: its arrivals and, when it has one, its external series.
struct SavedService {
  std::string name;
  SavedSeries arrivals;
  std::optional<SavedSeries> external;
  std::vector<double> startups;  // learned startup times, seconds, oldest first
};

// Throws nlohmann::json::exception for a missing or mistyped field. Errors: kInvalidArgument
// (naming `where`) for a minute in progress that is no mean.
Result<SavedSeries> parse_saved_series(const nlohmann::json& j, Clock::TimePoint now,
                                       const std::string& where) {
  SavedSeries s;
  s.history_from = j.at("history_from_minute").get<std::int64_t>();
  s.history_to = j.at("history_to_minute").get<std::int64_t>();
  s.minute_sum = j.at("minute_sum").get<double>();
  s.minute_samples = j.at("minute_samples").get<int>();
  // The sum of the rates of minute_samples scrapes, 0 over none: restored otherwise, the next
  // scrape of the minute would record a mean of what no scrape saw.
  if (s.minute_samples < 0 || !std::isfinite(s.minute_sum) ||
      (s.minute_samples == 0 && s.minute_sum != 0)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "prescale state: " + where +
                          ": minute_samples must be >= 0 and minute_sum a finite sum over them");
  }
  if (j.contains("model_from_minute")) {
    s.model_window = {j.at("model_from_minute").get<std::int64_t>(),
                      j.at("model_to_minute").get<std::int64_t>()};
  }
  s.fitted_at = optional_at(now, j.at("fitted_at_age_ns"));
  s.fitted_size = j.at("fitted_size").get<size_t>();
  return s;
}

}  // namespace

nlohmann::json PrescalePolicy::export_state(Clock::TimePoint now) const {
  auto series_state = [&](const DemandSeries& s) {
    const auto to = *s.minute;
    nlohmann::json j = {{"history_from_minute", to - static_cast<std::int64_t>(s.history.size())},
                        {"history_to_minute", to},
                        // The current minute so far: its mean is recorded when it ends.
                        {"minute_sum", s.sum},
                        {"minute_samples", s.samples},
                        {"fitted_at_age_ns", optional_age(now, s.fitted_at)},
                        {"fitted_size", s.fitted_size}};
    if (s.forecaster && s.model_window) {
      j["model_from_minute"] = s.model_window->first;
      j["model_to_minute"] = s.model_window->second;
    }
    return j;
  };
  nlohmann::json services = nlohmann::json::object();
  for (const auto& s : services_) {
    if (!s->minute) continue;  // nothing observed yet
    nlohmann::json j = series_state(*s);
    if (s->external && s->external->minute) j["external"] = series_state(*s->external);
    if (!s->startups.empty()) j["startup_seconds"] = s->startups;
    services[s->spec.name] = std::move(j);
  }
  return {
      {"version", kStateVersion},
      {"quantile_score", quantile_score_},
      {"typical_minute", {{"requests", typical_minute_requests_}, {"minutes", typical_minutes_}}},
      {"topology", topology_.to_json(now)},
      {"capacity", capacity_.to_json(now)},
      {"services", std::move(services)}};
}

Result<void> PrescalePolicy::import_state(const nlohmann::json& state, const MinuteSource& minutes,
                                          Clock::TimePoint now, Clock::Duration clock_shift) {
  auto invalid = [](const std::string& what) {
    return make_error(ErrorCode::kInvalidArgument, "prescale state: " + what);
  };
  // Everything is parsed and read before anything changes, so a failure leaves the policy as
  // it was.
  TopologyLearner topology = topology_;
  CapacityModel capacity = capacity_;
  std::vector<SavedService> saved;
  double quantile_score = quantile_score_;
  double typical_requests = 0, typical_minutes = 0;  // absent in older states: learned anew
  try {
    if (!state.is_object() || state.value("version", 0) != kStateVersion) {
      return invalid("unsupported version " + state.value("version", nlohmann::json()).dump() +
                     " (this build reads " + std::to_string(kStateVersion) + ")");
    }
    if (auto r = topology.from_json(state.at("topology"), now); !r) {
      return std::unexpected(r.error());
    }
    if (auto r = capacity.from_json(state.at("capacity"), now); !r) {
      return std::unexpected(r.error());
    }
    quantile_score = state.at("quantile_score").get<double>();
    if (state.contains("typical_minute")) {
      const auto& t = state.at("typical_minute");
      typical_requests = t.at("requests").get<double>();
      typical_minutes = t.at("minutes").get<double>();
      if (!(typical_requests >= 0) || !std::isfinite(typical_requests) ||
          !(typical_minutes >= 0 && typical_minutes <= 1440) ||
          typical_minutes != std::floor(typical_minutes)) {
        return invalid(
            "typical_minute: requests must be finite and >= 0, minutes a whole number in "
            "[0, 1440]");
      }
    }
    for (const auto& [name, j] : state.at("services").items()) {
      if (find(name) == nullptr) continue;
      SavedService s;
      s.name = name;
      auto arrivals = parse_saved_series(j, now, "services." + name);
      if (!arrivals) return std::unexpected(arrivals.error());
      s.arrivals = *arrivals;
      if (j.contains("external")) {
        auto external = parse_saved_series(j.at("external"), now, "services." + name + ".external");
        if (!external) return std::unexpected(external.error());
        s.external = *external;
      }
      if (j.contains("startup_seconds")) {  // absent before 2026-11-30: learned anew
        s.startups = j.at("startup_seconds").get<std::vector<double>>();
        // At most kMaxStartupTime, as every learned one is: planned with, one beyond what a
        // Clock duration holds would be converted to nanoseconds out of range (undefined
        // behaviour), and a long one would plan a minute ahead per minute of it.
        const double longest = seconds(kMaxStartupTime);
        for (double v : s.startups) {
          if (!(v >= 0) || !(v <= longest)) {
            return invalid("services." + name + ".startup_seconds: each must be >= 0 and at most " +
                           std::to_string(static_cast<int>(longest)) + " s");
          }
        }
        if (s.startups.size() > kStartupSamples) {
          s.startups.erase(s.startups.begin(),
                           s.startups.end() - static_cast<std::ptrdiff_t>(kStartupSamples));
        }
      }
      saved.push_back(std::move(s));
    }
  } catch (const nlohmann::json::exception& e) {
    return invalid(e.what());
  }

  const std::int64_t shift = static_cast<std::int64_t>(std::llround(
      std::chrono::duration<double>(clock_shift) / std::chrono::duration<double>(kMinute)));
  const std::int64_t now_minute = minute_of(now);
  const auto keep = static_cast<std::int64_t>(options_.max_history / kMinute);
  auto read = [&](const std::string& name, SeriesKind kind, std::int64_t from,
                  std::int64_t until) -> Result<forecast::Series> {
    auto series = minutes(name, kind, minute_start(from), minute_start(until));
    if (!series) return series;
    if (series->values.size() != static_cast<size_t>(until - from)) {
      return make_error(ErrorCode::kInternal, "prescale state: history of \"" + name +
                                                  "\" came back with " +
                                                  std::to_string(series->values.size()) +
                                                  " minutes, not " + std::to_string(until - from));
    }
    series->step_seconds = 60;
    series->start_seconds = seconds(minute_start(from).time_since_epoch());
    return series;
  };
  // One series read back: its history and, refitted on the same window, its forecaster.
  struct Restored {
    const SavedSeries* saved;
    std::int64_t minute;  // the current one
    forecast::Series history;
    std::optional<forecast::Forecaster> forecaster;
  };
  auto prepare = [&](const std::string& name, SeriesKind kind,
                     const SavedSeries& s) -> Result<Restored> {
    // The history ends where it ended; the minutes missed while down become gaps at the next
    // scrape, as any minutes without scrapes do.
    const std::int64_t to = std::min(s.history_to + shift, now_minute);
    const std::int64_t from = std::clamp(s.history_from + shift, to - keep, to);
    auto history = read(name, kind, from, to);
    if (!history) return std::unexpected(history.error());
    std::optional<forecast::Forecaster> forecaster;
    if (s.model_window) {
      const std::int64_t fit_from = s.model_window->first + shift;
      const std::int64_t fit_to = s.model_window->second + shift;
      if (fit_from < fit_to && fit_to <= to) {
        auto fit = read(name, kind, fit_from, fit_to);
        if (!fit) return std::unexpected(fit.error());
        auto since = read(name, kind, fit_to, to);
        if (!since) return std::unexpected(since.error());
        forecast::Forecaster f(options_.forecaster);
        if (f.fit(*fit)) {
          for (double v : since->values) f.update(v);
          forecaster = std::move(f);
        }
      }
    }
    return Restored{&s, to, std::move(*history), std::move(forecaster)};
  };
  struct RestoredService {
    ServiceState* service;
    Restored arrivals;
    std::optional<Restored> external;
    const std::vector<double>* startups;
  };
  std::vector<RestoredService> restored;
  for (const SavedService& s : saved) {
    auto arrivals = prepare(s.name, SeriesKind::kArrivals, s.arrivals);
    if (!arrivals) return std::unexpected(arrivals.error());
    std::optional<Restored> external;
    if (s.external) {
      auto e = prepare(s.name, SeriesKind::kExternal, *s.external);
      if (!e) return std::unexpected(e.error());
      external = std::move(*e);
    }
    restored.push_back({find(s.name), std::move(*arrivals), std::move(external), &s.startups});
  }

  topology_ = std::move(topology);
  capacity_ = std::move(capacity);
  if (options_.error_budget > 0) {
    quantile_score_ = std::clamp(quantile_score, normal_score(options_.min_quantile),
                                 normal_score(options_.max_quantile));
  }
  graph_minute_.reset();  // the propagation order follows the restored topology
  typical_minute_requests_ = typical_requests;
  typical_minutes_ = typical_minutes;
  auto apply = [&](DemandSeries& s, Restored& r) {
    s.history.clear();
    s.observed_minutes = 0;
    s.forecaster.reset();
    s.model_window.reset();
    s.forecast = {};
    s.minute = r.minute;
    const bool same_minute = r.minute == r.saved->history_to + shift;
    s.sum = same_minute ? r.saved->minute_sum : 0;
    s.samples = same_minute ? r.saved->minute_samples : 0;
    for (double v : r.history.values) record_minute(s, v);
    s.fitted_at = r.saved->fitted_at;
    s.fitted_size = r.saved->fitted_size;
    if (r.forecaster) {
      s.forecaster = std::move(r.forecaster);
      s.model_window = {r.saved->model_window->first + shift,
                        r.saved->model_window->second + shift};
    } else {
      // The minutes it was fitted on are gone (pruned, or another store): fit on what there is.
      s.fitted_at.reset();
      maybe_refit(s, now);
    }
    if (s.forecaster) s.forecast = s.forecaster->predict(options_.forecaster.max_horizon);
  };
  for (RestoredService& r : restored) {
    ServiceState& s = *r.service;
    apply(s, r.arrivals);
    s.last_scrape.reset();
    s.counted_until.reset();
    s.external.reset();
    s.startups.assign(r.startups->begin(), r.startups->end());
    if (r.external && options_.use_topology) {
      s.external = std::make_unique<DemandSeries>();
      apply(*s.external, *r.external);
    }
  }
  return {};
}

}  // namespace prescale::scaling
