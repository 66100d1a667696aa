#include "services/forecast/series_input.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace prescale::services::forecast_service {
namespace {

std::unexpected<Error> invalid(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Reads a JSON array of numbers (nulls allowed when `nulls`) into `out`.
Result<void> read_array(const nlohmann::json& body, const char* field, bool nulls,
                        std::vector<double>& out) {
  if (!body.contains(field)) return invalid(std::string(field) + ": required");
  const nlohmann::json& array = body.at(field);  // present: at() does not throw
  if (!array.is_array()) return invalid(std::string(field) + ": expected an array");
  if (array.size() > kMaxPointsPerRequest) {
    return invalid(std::string(field) + ": " + std::to_string(array.size()) +
                   " entries, more than the limit of " + std::to_string(kMaxPointsPerRequest));
  }
  out.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const nlohmann::json& v = array[i];
    if (v.is_number()) {
      out.push_back(v.get<double>());
    } else if (nulls && v.is_null()) {
      out.push_back(std::numeric_limits<double>::quiet_NaN());
    } else {
      return invalid(std::string(field) + "[" + std::to_string(i) + "]: expected a number" +
                     (nulls ? " or null" : ""));
    }
  }
  return {};
}

constexpr double kTolerance = 1e-3;  // seconds a timestamp may lie off its step

// The regular series of step `step` through `points`: from the first point, or, with `after`
// (a point already stored on the grid), from the step after it. Each point must fall on a step
// of its own; gaps and the steps filled in are limited (kMaxGapSteps, kMaxSeriesSteps).
Result<forecast::Series> on_grid(const Points& points, double step, std::optional<double> after) {
  const auto& ts = points.timestamps;
  const double origin = after.value_or(ts.front());
  // Each point's step from the origin, checked before anything is filled in.
  std::vector<double> at(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const double k = (ts[i] - origin) / step;
    at[i] = std::round(k);
    const bool has_previous = i > 0 || after.has_value();
    const double previous = i > 0 ? ts[i - 1] : origin;
    const double previous_at = i > 0 ? at[i - 1] : 0;
    if (std::abs(k - at[i]) * step > kTolerance) {
      return invalid("timestamps[" + std::to_string(i) + "]: " + number(ts[i] - previous) +
                     " s after the previous one, not a whole number of " + number(step) +
                     " s steps");
    }
    if (has_previous && at[i] == previous_at) {
      return invalid("timestamps[" + std::to_string(i) + "]: " + number(ts[i] - previous) +
                     " s after the previous one, on the same " + number(step) + " s step");
    }
    if (has_previous && at[i] - previous_at - 1 > kMaxGapSteps) {
      return invalid("timestamps[" + std::to_string(i) + "]: a gap of more than " +
                     number(kMaxGapSteps) + " steps");
    }
  }
  // The steps filled in: through the last point, not counting a point already stored.
  const double steps = after ? at.back() : at.back() + 1;
  if (steps > kMaxSeriesSteps) {
    return invalid("timestamps: the points span " + number(steps) + " steps of " + number(step) +
                   " s; at most " + number(kMaxSeriesSteps) + " are filled in");
  }
  forecast::Series s;
  s.start_seconds = after ? *after + step : ts.front();
  s.step_seconds = step;
  s.values.assign(static_cast<size_t>(steps), std::numeric_limits<double>::quiet_NaN());
  const double first = after ? 1 : 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    s.values[static_cast<size_t>(at[i] - first)] = points.values[i];
  }
  return s;
}

}  // namespace

Result<Points> parse_points(const nlohmann::json& body) {
  if (!body.is_object()) return invalid("body: expected a JSON object");
  Points p;
  if (auto r = read_array(body, "timestamps", false, p.timestamps); !r)
    return std::unexpected(r.error());
  if (auto r = read_array(body, "values", true, p.values); !r) return std::unexpected(r.error());
  if (p.timestamps.size() != p.values.size()) {
    return invalid("timestamps: " + std::to_string(p.timestamps.size()) +
                   " entries but values has " + std::to_string(p.values.size()));
  }
  for (size_t i = 0; i < p.values.size(); ++i) {
    const double v = p.values[i];
    if (std::isnan(v)) continue;
    if (!std::isfinite(v) || v < 0) {
      return invalid("values[" + std::to_string(i) + "]: " + number(v) +
                     " is not a demand (expected a finite number ≥ 0, or null)");
    }
    if (v > kMaxValue) {
      return invalid("values[" + std::to_string(i) + "]: " + number(v) + " is above the limit of " +
                     number(kMaxValue));
    }
  }
  for (size_t i = 0; i < p.timestamps.size(); ++i) {
    if (!std::isfinite(p.timestamps[i]) || p.timestamps[i] < 0) {
      return invalid("timestamps[" + std::to_string(i) + "]: expected Unix seconds ≥ 0");
    }
    if (i > 0 && p.timestamps[i] <= p.timestamps[i - 1]) {
      return invalid("timestamps[" + std::to_string(i) + "]: " + number(p.timestamps[i]) +
                     " is not after the previous timestamp " + number(p.timestamps[i - 1]));
    }
  }
  return p;
}

Result<forecast::Series> to_series(const Points& points, std::optional<double> step_seconds) {
  const auto& ts = points.timestamps;
  if (ts.empty()) return invalid("timestamps: no points");
  double step = 0;
  if (step_seconds) {
    step = *step_seconds;
  } else {
    if (ts.size() < 2) return invalid("step_seconds: required when only one point is sent");
    step = std::numeric_limits<double>::infinity();
    for (size_t i = 1; i < ts.size(); ++i) step = std::min(step, ts[i] - ts[i - 1]);
  }
  if (!(step >= kMinStepSeconds && step <= kMaxStepSeconds)) {
    return invalid(std::string(step_seconds ? "step_seconds" : "timestamps") + ": a step of " +
                   number(step) + " s is outside " + number(kMinStepSeconds) + ".." +
                   number(kMaxStepSeconds) + " s");
  }
  return on_grid(points, step, std::nullopt);
}

Result<forecast::Series> to_series_after(const Points& points, double last_timestamp,
                                         double step_seconds) {
  if (points.timestamps.empty()) return invalid("timestamps: no points");
  if (points.timestamps.front() < last_timestamp + step_seconds - kTolerance) {
    return invalid("timestamps[0]: " + number(points.timestamps.front()) +
                   " is not after the series' last point (" + number(last_timestamp) + ")");
  }
  return on_grid(points, step_seconds, last_timestamp);
}

}  // namespace prescale::services::forecast_service
