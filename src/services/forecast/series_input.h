// Turning the points a client sends (timestamps and values) into a regular forecast::Series,
// with errors that name the field and index at fault.
//
// Timestamps are Unix seconds, strictly increasing; the step is given or inferred as the
// smallest difference between consecutive timestamps. Every timestamp must fall on the grid
// start + k × step (within 1 ms), at most one on a step; skipped steps become missing values. A
// value may be null (missing). Values are demand: finite, ≥ 0 and at most kMaxValue.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "forecast/model.h"

namespace prescale::services::forecast_service {

// Documented limits (docs/services/forecast.md).
inline constexpr size_t kMaxPointsPerRequest = 100'000;
inline constexpr double kMinStepSeconds = 1;
inline constexpr double kMaxStepSeconds = 7 * 86400;
// A gap larger than this many steps between two points is refused rather than filled.
inline constexpr double kMaxGapSteps = 100'000;
// The most steps the filled series may span, first point to last (gaps within the gap limit
// could otherwise add up to billions of steps); for points appended to a series, the most steps
// they add after its last point.
inline constexpr double kMaxSeriesSteps = 200'000;
// The largest value: demand beyond it is no demand, and its squares and sums would overflow the
// forecast's arithmetic (a p50 of 0, metrics of null).
inline constexpr double kMaxValue = 1e15;

// Points as sent: timestamps (Unix seconds) and values, NaN for null.
struct Points {
  std::vector<double> timestamps;
  std::vector<double> values;
};

// Reads `body[timestamps_field]` and `body[values_field]` (arrays of equal length, at most
// kMaxPointsPerRequest). Errors (kInvalidArgument) read like "values[3]: expected a number or
// null" or "timestamps: 5 entries but values has 4".
Result<Points> parse_points(const nlohmann::json& body);

// The regular series through `points`: step `step_seconds` when given, else inferred (needs two
// points). Errors name the offending index, e.g. "timestamps[7]: 90 s after the previous one,
// not a whole number of 60 s steps".
Result<forecast::Series> to_series(const Points& points, std::optional<double> step_seconds);

// The steps that `points` add to a series whose last point is at `last_timestamp`, on its grid of
// `step_seconds`: the series returned starts one step after that point (skipped steps missing),
// and the limits count the steps it adds, not the point already stored. Errors as to_series(),
// and "timestamps[0]: ... is not after the series' last point".
Result<forecast::Series> to_series_after(const Points& points, double last_timestamp,
                                         double step_seconds);

}  // namespace prescale::services::forecast_service
