// Forecaster: the model zoo behind one demand series. fit() backtests every candidate model on
// the history (rolling origin: each model is fitted on the early part, then rolled forward one
// observation at a time, forecasting the next `max_horizon` steps at every origin), keeps the
// model whose calibrated P90 forecasts score best, and calibrates quantiles from its backtest
// errors (split conformal: errors in units of the recent one-step error, per horizon). After fit(),
// update() rolls the selected model forward in O(1) and predict() gives P50/P90/P99 paths.
// docs/forecasting.md ("## Backtesting, selection and quantiles") documents the method.
//
// Thread safety: a Forecaster is a value owned by one thread.
#pragma once

#include <cmath>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "forecast/model.h"

namespace prescale::forecast {

// Quantile paths for the steps after the last observation: element h-1 is h steps ahead.
struct QuantileForecast {
  std::string model;  // the model that produced it
  std::vector<double> p50, p90, p99;
};

// The models a Forecaster backtests unless told otherwise: every model but "gbt", whose
// per-series training (about 2 s for 14 days of minutes) would make each refit some 60× slower
// for no gain in selection on the shared traces (docs/forecasting.md, "Scores").
inline constexpr std::string_view kDefaultCandidates[] = {
    "naive",           "seasonal_naive_day",   "seasonal_naive_week", "holt_winters",
    "double_seasonal", "seasonal_naive_cycle", "holt_winters_cycle"};

// A model a candidate name may stand for besides make_model()'s: a prototype cloned for every
// fit, such as make_gbt_model(booster) for a booster trained across many series ("gbt_global").
struct CustomModel {
  std::string name;
  std::shared_ptr<const Model> prototype;
};

// Errors are measured in units of the recent one-step error (an exponentially weighted mean of
// |y − ŷ|, half-life ForecasterOptions::error_half_life): intervals widen in turbulent hours and
// narrow in calm ones. The unit is at least this share of the series' mean, so a flat stretch
// does not promise zero-width intervals.
inline constexpr double kScaleFloorShare = 0.02;

// The other unit tried: the forecast's own level (plus this share of the series' mean), for
// series whose errors grow with their level rather than cluster in time. fit() keeps, per model,
// whichever unit calibrates better on the backtest.
inline constexpr double kLevelFloorShare = 0.1;
// kConstant: errors as they are — every forecast gets the same interval around it, the empirical
// quantiles of the model's backtest errors at that horizon. The textbook intervals of the naive
// baselines (Hyndman & Athanasopoulos, FPP3 §5.5, bootstrapped residuals), which `prescale eval
// forecast` gives them by default so they are scored as the methods they are.
enum class ErrorUnit { kRecentError, kLevel, kConstant };

struct ForecasterOptions {
  std::vector<std::string> candidates{std::begin(kDefaultCandidates), std::end(kDefaultCandidates)};
  // Looked up by name before make_model(); selected() and predict() report the name given here.
  std::vector<CustomModel> custom_models;
  ModelOptions model;
  int max_horizon = 15;  // steps; predict() beyond it reuses the last horizon's calibration
  // Backtest origins: up to this many, one every `origin_every` steps, over the last part of the
  // history; the part before the first origin is what the models are fitted on (at least
  // `min_fit_share` of the history).
  int max_origins = 240;
  int origin_every = 5;
  double min_fit_share = 0.5;
  // Look for a cycle other than a day or a week (detect_periods) at each fit and give it to the
  // "_cycle" candidates; they are left out when there is none (or model.cycle_seconds is set).
  bool detect_cycle = true;
  // Half-life, in steps, of the recent one-step errors that scale the intervals.
  double error_half_life = 30;
  // Online recalibration after fit(): each new value is compared with what was forecast for it
  // at every horizon, and that horizon's P50/P90/P99 move toward the levels the outcomes show
  // (quantile tracking, as adaptive conformal inference does: a level τ moves up by step × τ
  // when the outcome is above it and down by step × (1 − τ) when not), the step being
  // `online_calibration_rate` (0..1) × the fitted P50–P99 spread. 0: the fitted calibration is
  // kept until the next fit. Costs one predict(max_horizon) per update() and 2 × max_horizon²
  // doubles of memory.
  double online_calibration_rate = 0.02;
  // The units of error tried at each fit; the one whose calibrated P90 scores best is kept.
  std::vector<ErrorUnit> error_units{ErrorUnit::kRecentError, ErrorUnit::kLevel};
};

// Errors of one model at one horizon over a backtest or an evaluation.
struct ForecastScore {
  std::string model;
  int horizon = 0;  // steps
  int samples = 0;  // forecasts scored
  double mae = 0;
  double mase = 0;   // mae / in-sample MAE of the one-step naive forecast
  double smape = 0;  // mean of 2|y − ŷ| / (|y| + |ŷ|), 0 where both are 0; a share, not percent
  double pinball_p50 = 0, pinball_p90 = 0, pinball_p99 = 0;
  double coverage_p90 = 0;  // share of outcomes at or below the P90
};

// The pinball (quantile) loss of forecasting `q` for an outcome `y` at quantile `tau`.
inline double pinball(double y, double q, double tau) {
  return y >= q ? tau * (y - q) : (1 - tau) * (q - y);
}

class Forecaster {
 public:
  explicit Forecaster(ForecasterOptions options = {});
  Forecaster(const Forecaster& other);
  Forecaster& operator=(const Forecaster& other);
  Forecaster(Forecaster&&) noexcept = default;
  Forecaster& operator=(Forecaster&&) noexcept = default;

  // Backtests the candidates, selects and calibrates. Errors: kInvalidArgument for an unknown
  // candidate, no candidates or units of error, an online_calibration_rate outside [0, 1], fewer
  // than 2 × (max_horizon + 1) observed values; kNotFound when no candidate applies (only
  // "_cycle" ones, and the history has no cycle for them).
  Result<void> fit(const Series& history);
  // One more observation (NaN = missing) after the history.
  void update(double value);
  // Quantile paths of the next `horizon` steps. Before fit(): empty paths.
  QuantileForecast predict(int horizon) const;

  std::string_view selected() const;                       // "" before fit()
  double cycle_seconds() const { return cycle_seconds_; }  // the cycle the fit used; 0 = none
  ErrorUnit error_unit() const { return unit_; }
  // The backtest of every candidate at every horizon 1..max_horizon (with the calibration each
  // would get), in candidate order then horizon order.
  const std::vector<ForecastScore>& backtest() const { return backtest_; }
  bool fitted() const { return model_ != nullptr; }

 private:
  // The unit an error of `forecast` is measured in, now.
  double unit_value(double forecast) const;

  ForecasterOptions options_;
  std::unique_ptr<Model> model_;
  std::vector<ForecastScore> backtest_;
  // Per horizon: quantiles of the scaled errors (y − ŷ) / scale at 0.5, 0.9, 0.99.
  std::vector<double> q50_, q90_, q99_;
  std::vector<double> track_step_;  // per horizon: the online calibration's step, in error units
  // The forecasts of the last max_horizon steps, for online calibration: slot t % H holds the
  // point path and units forecast before the t-th update since fit().
  struct Issued {
    std::vector<double> point, unit;
  };
  std::vector<Issued> issued_;
  std::size_t updates_ = 0;
  double scale_floor_ = 0;
  double level_floor_ = 0;
  double error_scale_ = 0;       // the current recent-error unit
  double error_mean_abs_ = NAN;  // its mean of |y − ŷ| before the floor (NaN: no error yet)
  ErrorUnit unit_ = ErrorUnit::kRecentError;
  double cycle_seconds_ = 0;
  std::string selected_;  // the candidate name of model_
};

// Scores forecasts of `model_name` on `series`: fitted on values before `test_begin`, then rolled
// forward through the rest, forecasting 1..max(horizons) steps every `score_every` steps, with
// quantiles calibrated on the fit part's own backtest (as Forecaster does, with `options` as
// given: its backtest origins are options.origin_every apart whatever `score_every` is, so a
// Forecaster is scored as the policy runs it). model_name "selected" scores the Forecaster itself.
// One score per requested horizon (steps).
Result<std::vector<ForecastScore>> evaluate_forecasts(const Series& series, size_t test_begin,
                                                      std::string_view model_name,
                                                      std::span<const int> horizons,
                                                      const ForecasterOptions& options = {},
                                                      int score_every = 1);

}  // namespace prescale::forecast
