// Forecasting models: each learns one demand series at a fixed step and predicts the path of
// the next steps. Models here give the point (median) path; Forecaster (forecaster.h) wraps them
// with rolling-origin backtests, selection and calibrated quantiles.
//
// Models: "naive" (last value), "seasonal_naive_day", "seasonal_naive_week" (the value one
// period ago), "holt_winters" (additive level/damped trend/one season: ModelOptions.day_seconds,
// which a caller may set to a detected period, see period.h), "double_seasonal" (Taylor's
// double-seasonal Holt-Winters: daily and weekly, with AR(1) errors). The seasonal ones need
// history (one period for seasonal naive, two for the smoothing models) and otherwise fall back
// to what they can (docs/forecasting.md). "gbt" is a gradient-boosted model (gbt_model.h) that
// trains on the series it is fitted on. Predictions are never negative; a model that has seen
// no value predicts 0. A model not yet fitted behaves as one fitted on an empty series at the
// default 60 s step.
//
// Thread safety: a Model is a value owned by one thread; const methods are safe concurrently.
#pragma once

#include <cmath>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prescale::forecast {

// A regularly spaced series: values[i] is the mean demand (e.g. req/s) of the step starting at
// start_seconds + i × step_seconds. NaN marks a missing step.
struct Series {
  double start_seconds = 0;  // Unix seconds, or any origin when the calendar is unknown
  double step_seconds = 60;
  std::vector<double> values;

  double end_seconds() const {
    return start_seconds + static_cast<double>(values.size()) * step_seconds;
  }
};

struct ModelOptions {
  // Seasonal periods in seconds; models use those that fit the step (period / step whole and
  // ≥ 2). The defaults are a day and a week.
  double day_seconds = 86400;
  double week_seconds = 7 * 86400;
  // A cycle that is neither (a batch job every 19 minutes, an hourly report), as detect_periods()
  // finds it; 0 = none. The "_cycle" models use it; without one they fall back like the others.
  double cycle_seconds = 0;
};

// Steps in one period when the period is a whole number (≥ 2) of steps; 0 when it is not, which
// turns that seasonal component off. A seasonal model uses a season once its history holds two
// of its periods.
size_t period_steps(double period_seconds, double step_seconds);

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string_view name() const = 0;
  // Learns from `history` (gaps allowed), replacing any earlier state.
  virtual void fit(const Series& history) = 0;
  // Appends one observation (NaN = missing) after the fitted history and rolls the state
  // forward; O(1), no refit: parameters and which seasons are on stay as fit() chose them.
  virtual void update(double value) = 0;
  // The median path of the `out.size()` steps after the last observation.
  virtual void predict(std::span<double> out) const = 0;
  virtual std::unique_ptr<Model> clone() const = 0;
};

// The model names make_model() accepts, in the order reports list them.
inline constexpr std::string_view kModelNames[] = {
    "naive",           "seasonal_naive_day",   "seasonal_naive_week", "holt_winters",
    "double_seasonal", "seasonal_naive_cycle", "holt_winters_cycle",  "gbt"};

// Errors: kInvalidArgument for an unknown name (listing the known ones).
Result<std::unique_ptr<Model>> make_model(std::string_view name, const ModelOptions& options = {});

}  // namespace prescale::forecast
