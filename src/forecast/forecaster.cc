#include "forecast/forecaster.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "forecast/period.h"

namespace prescale::forecast {

namespace {

// The scale forecast errors are measured in: an exponentially weighted mean of the recent
// one-step absolute errors, so intervals widen in turbulent hours and narrow in calm ones
// (volatility clusters), floored at a small share of the series' mean so a flat stretch does not
// promise zero-width intervals. One error enters at most kErrorCap times the scale so far: a
// single burst must not both set the backtest's extreme quantile (measured in the calm scale
// before it) and inflate the scale that quantile is then multiplied by. A lasting rise in the
// errors still lifts the scale within a few half-lives. (At 5, Alibaba's bursty day cost 4 %
// more replica-hours for nothing more served; at 10 and 20 it did not.)
constexpr double kErrorCap = 10;

class ErrorScale {
 public:
  ErrorScale(double half_life_steps, double floor, double mean_abs = NAN)
      : keep_(std::exp2(-1.0 / std::max(half_life_steps, 1.0))),
        floor_(floor),
        mean_abs_(mean_abs) {}
  void observe(double error) {
    if (!std::isfinite(error)) return;
    mean_abs_ =
        std::isfinite(mean_abs_)
            ? keep_ * mean_abs_ + (1 - keep_) * std::min(std::abs(error), kErrorCap * value())
            : std::abs(error);
  }
  double value() const { return std::isfinite(mean_abs_) ? std::max(mean_abs_, floor_) : floor_; }
  // The mean itself, unfloored (NaN before any error): what carries on to the next error.
  double mean_abs() const { return mean_abs_; }

 private:
  double keep_;
  double floor_;
  double mean_abs_ = NAN;
};

// Forecasts and outcomes of one model over a backtest: for each origin, the path it predicted
// and what happened (NaN where the outcome is missing).
struct Backtest {
  std::vector<std::vector<double>> predicted;  // [origin][h - 1]
  std::vector<std::vector<double>> actual;
  std::vector<double> scale;    // the error scale at each origin
  double final_scale = 0;       // ...and after the last value
  double final_mean_abs = NAN;  // ...unfloored, as ErrorScale::mean_abs()
  size_t origin_step = 1;       // steps between consecutive origins
};

// The conformal quantile: the ceil(q (n + 1))-th smallest value, so that a new error exceeds it
// with probability at most 1 − q when errors are exchangeable; the largest one when there are
// too few.
double conformal_quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size() + 1)));
  return v[std::min(v.size(), std::max<size_t>(rank, 1)) - 1];
}

double mean_finite(std::span<const double> v) {
  double sum = 0;
  size_t n = 0;
  for (double x : v) {
    if (std::isfinite(x)) {
      sum += x;
      ++n;
    }
  }
  return n > 0 ? sum / static_cast<double>(n) : 0;
}

// In-sample MAE of the one-step naive forecast (the MASE scale); 1 when it is 0 or undefined.
double naive_scale(std::span<const double> v) {
  double sum = 0;
  size_t n = 0;
  double last = NAN;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    if (std::isfinite(last)) {
      sum += std::abs(x - last);
      ++n;
    }
    last = x;
  }
  return n > 0 && sum > 0 ? sum / static_cast<double>(n) : 1.0;
}

Series prefix(const Series& s, size_t n) {
  Series out{s.start_seconds, s.step_seconds, {}};
  out.values.assign(s.values.begin(), s.values.begin() + static_cast<long>(n));
  return out;
}

// Fits `model` on values [0, first) and rolls it through the rest, predicting `horizon` steps
// at each origin (ascending, each >= first) and tracking the error scale all the way.
Backtest run_backtest(Model& model, const Series& s, size_t first, std::span<const size_t> origins,
                      int horizon, ErrorScale scale) {
  Backtest b;
  if (origins.size() > 1) b.origin_step = origins[1] - origins[0];
  model.fit(prefix(s, first));
  std::vector<double> path(static_cast<size_t>(horizon));
  double one = 0;
  size_t next = 0;
  for (size_t t = first; t < s.values.size(); ++t) {
    if (next < origins.size() && t == origins[next]) {
      model.predict(path);
      std::vector<double> actual(path.size(), NAN);
      for (size_t h = 0; h < path.size() && t + h < s.values.size(); ++h) {
        actual[h] = s.values[t + h];
      }
      b.predicted.push_back(path);
      b.actual.push_back(std::move(actual));
      b.scale.push_back(scale.value());
      ++next;
    }
    model.predict(std::span(&one, 1));
    scale.observe(s.values[t] - one);
    model.update(s.values[t]);
  }
  b.final_scale = scale.value();
  b.final_mean_abs = scale.mean_abs();
  return b;
}

struct Calibration {
  std::vector<double> q50, q90, q99;  // per horizon
  // Per horizon: its quantiles were borrowed from a shorter one (too few outcomes to measure).
  std::vector<char> borrowed;
};

// The unit of a forecast's error: the recent one-step error, the forecast's own level, or 1
// (errors as they are). Backtests and Forecaster::predict() share it.
double unit_of(ErrorUnit unit, double recent_error, double forecast, double level_floor) {
  switch (unit) {
    case ErrorUnit::kRecentError:
      return recent_error;
    case ErrorUnit::kLevel:
      return std::max(forecast, 0.0) + level_floor;
    case ErrorUnit::kConstant:
      break;
  }
  return 1.0;
}

// A horizon h measured by fewer backtest errors than this, or spanning fewer than
// kMinCalibrationWindows non-overlapping windows of h steps (errors × origin step ÷ h: errors of
// overlapping windows are not independent, so a short history seen h steps ahead is a handful of
// outcomes however many origins it has), borrows the calibration of the longest shorter horizon
// that has enough (see calibrate()).
constexpr size_t kMinCalibrationErrors = 20;
constexpr size_t kMinCalibrationWindows = 4;

Calibration calibrate(const Backtest& b, size_t begin, size_t end, int horizon, ErrorUnit unit,
                      double level_floor) {
  Calibration c;
  int borrow_from = -1;  // the longest horizon so far with enough errors
  for (int h = 0; h < horizon; ++h) {
    std::vector<double> z;
    for (size_t o = begin; o < end; ++o) {
      const double y = b.actual[o][static_cast<size_t>(h)];
      const double f = b.predicted[o][static_cast<size_t>(h)];
      if (std::isfinite(y) && std::isfinite(f)) {
        z.push_back((y - f) / unit_of(unit, b.scale[o], f, level_floor));
      }
    }
    const bool enough =
        z.size() >= kMinCalibrationErrors &&
        z.size() * b.origin_step >= kMinCalibrationWindows * static_cast<size_t>(h + 1);
    if (!enough && borrow_from >= 0) {
      // Too few outcomes this far ahead (a short history: origins near its end see only the
      // first steps): the errors of the longest well-measured horizon, grown as a random walk's
      // do, √(h / h0). Better than quantiles of a handful of errors, which can be anything.
      const auto from = static_cast<size_t>(borrow_from);
      const double grow = std::sqrt(static_cast<double>(h + 1) / (borrow_from + 1));
      c.q50.push_back(c.q50[from]);
      c.q90.push_back(c.q50[from] + (c.q90[from] - c.q50[from]) * grow);
      c.q99.push_back(c.q50[from] + (c.q99[from] - c.q50[from]) * grow);
      c.borrowed.push_back(1);
      continue;
    }
    if (enough) borrow_from = h;
    const double q50 = conformal_quantile(z, 0.5);
    const double q90 = std::max(q50, conformal_quantile(z, 0.9));
    const double q99 = std::max(q90, conformal_quantile(z, 0.99));
    c.q50.push_back(q50);
    c.q90.push_back(q90);
    c.q99.push_back(q99);
    c.borrowed.push_back(0);
  }
  return c;
}

// Never below 0; a blank (NaN) forecast is issued as 0.
double quantile_at(double forecast, double z, double scale) {
  const double q = forecast + z * scale;
  return q > 0 ? q : 0;
}

// Accumulates the scores of forecasts at one horizon.
struct ScoreSum {
  double abs = 0, smape = 0, p50 = 0, p90 = 0, p99 = 0, covered = 0;
  int n = 0;
  void add(double y, double f, double q50, double q90, double q99) {
    abs += std::abs(y - f);
    const double denom = std::abs(y) + std::abs(f);
    smape += denom > 0 ? 2 * std::abs(y - f) / denom : 0;
    p50 += pinball(y, q50, 0.5);
    p90 += pinball(y, q90, 0.9);
    p99 += pinball(y, q99, 0.99);
    covered += y <= q90 ? 1 : 0;
    ++n;
  }
  ForecastScore score(std::string model, int horizon, double scale) const {
    ForecastScore s;
    s.model = std::move(model);
    s.horizon = horizon;
    s.samples = n;
    if (n == 0) return s;
    const double k = 1.0 / n;
    s.mae = abs * k;
    s.mase = s.mae / scale;
    s.smape = smape * k;
    s.pinball_p50 = p50 * k;
    s.pinball_p90 = p90 * k;
    s.pinball_p99 = p99 * k;
    s.coverage_p90 = covered * k;
    return s;
  }
};

// Backtest origins for a history of n values: every `every` steps — every step when that many
// fit in `max_origins` (a short history needs all it has) — ending with a full horizon after the
// last one when the history is long enough for `max_origins` such origins, else up to the last
// value (the short horizons are then measured at every origin, the long ones at the early ones),
// at most `max_origins`, none before `min_first`.
std::vector<size_t> backtest_origins(size_t n, int horizon, int every, int max_origins,
                                     size_t min_first) {
  std::vector<size_t> origins;
  if (n < static_cast<size_t>(horizon) + 1) return origins;
  const long room = static_cast<long>(n) - horizon - static_cast<long>(min_first);
  const long full_origins = room < 0 ? 0 : room / every + 1;
  if (full_origins < max_origins) {
    every = std::max<long>(
        1, std::min<long>(every, (static_cast<long>(n) - 1 - static_cast<long>(min_first)) /
                                         std::max(max_origins, 1) +
                                     1));
  }
  const long last =
      full_origins >= max_origins ? static_cast<long>(n) - horizon : static_cast<long>(n) - 1;
  for (long t = last;
       t >= static_cast<long>(min_first) && static_cast<int>(origins.size()) < max_origins;
       t -= every) {
    origins.push_back(static_cast<size_t>(t));
  }
  std::reverse(origins.begin(), origins.end());
  return origins;
}

}  // namespace

Forecaster::Forecaster(ForecasterOptions options) : options_(std::move(options)) {}

Forecaster::Forecaster(const Forecaster& other)
    : options_(other.options_),
      model_(other.model_ ? other.model_->clone() : nullptr),
      backtest_(other.backtest_),
      q50_(other.q50_),
      q90_(other.q90_),
      q99_(other.q99_),
      track_step_(other.track_step_),
      issued_(other.issued_),
      updates_(other.updates_),
      scale_floor_(other.scale_floor_),
      level_floor_(other.level_floor_),
      error_scale_(other.error_scale_),
      error_mean_abs_(other.error_mean_abs_),
      unit_(other.unit_),
      cycle_seconds_(other.cycle_seconds_),
      selected_(other.selected_) {}

Forecaster& Forecaster::operator=(const Forecaster& other) {
  if (this != &other) *this = Forecaster(other);
  return *this;
}

Result<void> Forecaster::fit(const Series& history) {
  if (options_.candidates.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "forecaster: no candidate models");
  }
  if (options_.error_units.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "forecaster: no units of error to try");
  }
  if (!(options_.online_calibration_rate >= 0 && options_.online_calibration_rate <= 1)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "forecaster: online_calibration_rate must be in [0, 1], got " +
                          std::to_string(options_.online_calibration_rate));
  }
  const int horizon = std::max(1, options_.max_horizon);
  size_t observed = 0;
  for (double v : history.values) observed += std::isfinite(v) ? 1 : 0;
  if (observed < 2 * static_cast<size_t>(horizon + 1)) {
    return make_error(ErrorCode::kInvalidArgument, "forecaster: " + std::to_string(observed) +
                                                       " observed values; need at least " +
                                                       std::to_string(2 * (horizon + 1)));
  }
  ModelOptions model_options = options_.model;
  if (options_.detect_cycle && !(model_options.cycle_seconds > 0)) {
    for (double period : detect_periods(history)) {
      const bool calendar = std::abs(period - model_options.day_seconds) < 1e-6 ||
                            std::abs(period - model_options.week_seconds) < 1e-6;
      if (!calendar) {
        model_options.cycle_seconds = period;
        break;
      }
    }
  }
  cycle_seconds_ = model_options.cycle_seconds;
  std::vector<std::unique_ptr<Model>> models;
  std::vector<std::string> names;
  for (const std::string& name : options_.candidates) {
    if (name.ends_with("_cycle") && !(model_options.cycle_seconds > 0)) continue;
    auto custom = std::find_if(options_.custom_models.begin(), options_.custom_models.end(),
                               [&](const CustomModel& c) { return c.name == name; });
    if (custom != options_.custom_models.end() && custom->prototype != nullptr) {
      models.push_back(custom->prototype->clone());
    } else {
      auto m = make_model(name, model_options);
      if (!m) return std::unexpected(m.error());
      models.push_back(std::move(*m));
    }
    names.push_back(name);
  }
  if (models.empty()) {
    return make_error(ErrorCode::kNotFound,
                      "forecaster: no candidate applies (the \"_cycle\" models need a cycle)");
  }

  const size_t n = history.values.size();
  // The backtest's origins lie over the observed part: an outage at the end of the history, as
  // long as the backtest or longer, would otherwise leave it no outcome to measure, and the
  // intervals no width. The models still roll through the outage.
  size_t through = n;  // up to the last observed value
  while (through > 0 && !std::isfinite(history.values[through - 1])) --through;
  const auto min_first = static_cast<size_t>(
      std::ceil(std::clamp(options_.min_fit_share, 0.05, 0.95) * static_cast<double>(through)));
  const std::vector<size_t> origins =
      backtest_origins(through, horizon, std::max(1, options_.origin_every), options_.max_origins,
                       std::max<size_t>(min_first, 1));
  const double mean = std::max(mean_finite(history.values), 1e-9);
  scale_floor_ = kScaleFloorShare * mean;
  level_floor_ = kLevelFloorShare * mean;
  const ErrorScale fresh_scale(options_.error_half_life, scale_floor_);
  const double scale = naive_scale(history.values);

  // Split conformal: the first half of the origins calibrates, the second half scores. With few
  // origins both use all of them (optimistic, said in the docs), and so they do when either half
  // has fewer than kMinCalibrationErrors observed outcomes in all (an outage over the end of the
  // history can leave the scoring half none: every loss 0, and the first candidate won).
  size_t half = origins.size() >= 8 ? origins.size() / 2 : 0;
  if (half > 0) {
    auto observed_outcomes = [&](size_t begin, size_t end) {
      size_t count = 0;
      for (size_t o = begin; o < end; ++o) {
        for (size_t t = origins[o]; t < std::min(n, origins[o] + static_cast<size_t>(horizon));
             ++t) {
          count += std::isfinite(history.values[t]) ? 1 : 0;
        }
      }
      return count;
    };
    if (observed_outcomes(0, half) < kMinCalibrationErrors ||
        observed_outcomes(half, origins.size()) < kMinCalibrationErrors) {
      half = 0;
    }
  }
  backtest_.clear();
  size_t best = 0;
  double best_loss = std::numeric_limits<double>::infinity();
  const size_t units = options_.error_units.size();
  std::vector<Calibration> calibrations;  // per model, then unit
  std::vector<double> final_scales, final_mean_abs;
  ErrorUnit best_unit = options_.error_units.front();
  for (size_t m = 0; m < models.size(); ++m) {
    if (origins.empty()) break;
    const Backtest b =
        run_backtest(*models[m], history, origins.front(), origins, horizon, fresh_scale);
    final_scales.push_back(b.final_scale);
    final_mean_abs.push_back(b.final_mean_abs);
    // Both units of error are tried; the model's reported scores are those of its better one.
    std::vector<ForecastScore> kept;
    double kept_loss = std::numeric_limits<double>::infinity();
    for (ErrorUnit unit : options_.error_units) {
      const Calibration split =
          calibrate(b, 0, half > 0 ? half : b.predicted.size(), horizon, unit, level_floor_);
      std::vector<ForecastScore> scores;
      double loss = 0;
      int scored = 0;
      for (int h = 0; h < horizon; ++h) {
        ScoreSum sum;
        const auto hh = static_cast<size_t>(h);
        for (size_t o = half; o < b.predicted.size(); ++o) {
          const double y = b.actual[o][hh];
          const double f = b.predicted[o][hh];
          if (!std::isfinite(y)) continue;
          if (!std::isfinite(f)) {
            // Left blank: predict() issues 0 at every quantile, and so it is scored (skipping it
            // scored a candidate only at the horizons it chose to forecast).
            sum.add(y, 0, 0, 0, 0);
            continue;
          }
          const double u = unit_of(unit, b.scale[o], f, level_floor_);
          sum.add(y, f, quantile_at(f, split.q50[hh], u), quantile_at(f, split.q90[hh], u),
                  quantile_at(f, split.q99[hh], u));
        }
        scores.push_back(sum.score(names[m], h + 1, scale));
        loss += scores.back().pinball_p90;
        scored += sum.n;
      }
      // A candidate that scored nothing (no outcome observed) has a loss of 0 by default, not by
      // merit: it cannot win. When none scored, the first one is kept.
      if (scored == 0) loss = std::numeric_limits<double>::infinity();
      calibrations.push_back(calibrate(b, 0, b.predicted.size(), horizon, unit, level_floor_));
      if (kept.empty() || loss < kept_loss) {
        kept_loss = loss;
        kept = std::move(scores);
      }
      if (loss < best_loss) {
        best_loss = loss;
        best = m;
        best_unit = unit;
      }
    }
    backtest_.insert(backtest_.end(), kept.begin(), kept.end());
  }

  // The winner has already been rolled through the whole history by its backtest: its state is
  // current, and its parameters come from the fitted part (at least min_fit_share of it), so no
  // second fit is needed — unless the whole history holds two periods of a season the fitted
  // part did not (14 days of minutes, a week's season; 2.7 days, a day's): then it is refitted
  // on all of it, or it would go without that season until a longer history.
  model_ = std::move(models[best]);
  selected_ = names[best];
  auto gains_a_season = [&] {
    for (double period :
         {model_options.day_seconds, model_options.week_seconds, model_options.cycle_seconds}) {
      const size_t p = period_steps(period, history.step_seconds);
      if (p > 0 && origins.front() < 2 * p && n >= 2 * p) return true;
    }
    return false;
  };
  if (origins.empty() || gains_a_season()) model_->fit(history);
  error_scale_ = final_scales.empty() ? scale_floor_ : final_scales[best];
  error_mean_abs_ = final_mean_abs.empty() ? NAN : final_mean_abs[best];
  unit_ = best_unit;
  std::vector<char> borrowed;  // of the kept calibration, per horizon
  if (!calibrations.empty()) {
    const auto unit_index = static_cast<size_t>(
        std::find(options_.error_units.begin(), options_.error_units.end(), best_unit) -
        options_.error_units.begin());
    const Calibration& c = calibrations[units * best + unit_index];
    q50_ = c.q50;
    q90_ = c.q90;
    q99_ = c.q99;
    borrowed = c.borrowed;
  } else {
    q50_.assign(static_cast<size_t>(horizon), 0.0);
    q90_.assign(static_cast<size_t>(horizon), 0.0);
    q99_.assign(static_cast<size_t>(horizon), 0.0);
  }
  // The step is a share of the fitted spread, floored so that a spread fitted at zero (a flat
  // stretch) can still widen: at 2 % of the series' mean for errors as they are, a tenth of the
  // unit otherwise (the units are floored at a share of the mean themselves).
  const double spread_floor = unit_ == ErrorUnit::kConstant ? scale_floor_ : 0.1;
  track_step_.resize(q50_.size());
  for (size_t h = 0; h < q50_.size(); ++h) {
    // A horizon too far ahead for the history to measure (its quantiles borrowed from a shorter
    // one, fewer than kMinCalibrationWindows windows behind them) knows little from its fit:
    // its tracking moves as if each outcome were one of those few, 1 / kMinCalibrationWindows.
    // The measured horizons keep the configured rate.
    const double rate = options_.online_calibration_rate > 0 && h < borrowed.size() && borrowed[h]
                            ? std::max(options_.online_calibration_rate,
                                       1.0 / static_cast<double>(kMinCalibrationWindows))
                            : options_.online_calibration_rate;
    track_step_[h] = rate * std::max(q99_[h] - q50_[h], spread_floor);
  }
  issued_.assign(options_.online_calibration_rate > 0 ? q50_.size() : 0, Issued{});
  updates_ = 0;
  return {};
}

void Forecaster::update(double value) {
  if (!model_) return;
  double one = 0;
  if (!issued_.empty()) {
    // Record what is forecast now, then score the forecasts this value answers: the one made
    // h − 1 updates ago at horizon h.
    const size_t horizons = issued_.size();
    Issued& now = issued_[updates_ % horizons];
    now.point.resize(horizons);
    now.unit.resize(horizons);
    model_->predict(now.point);
    for (size_t h = 0; h < horizons; ++h) now.unit[h] = unit_value(now.point[h]);
    one = now.point[0];
    if (std::isfinite(value)) {
      for (size_t h = 0; h < horizons && h <= updates_; ++h) {
        const Issued& then = issued_[(updates_ - h) % horizons];
        const double f = then.point[h];
        if (!std::isfinite(f) || !(then.unit[h] > 0)) continue;
        const double z = (value - f) / then.unit[h];
        // Quantile tracking: a level τ moves up by step × τ when the outcome is above it and
        // down by step × (1 − τ) when not, which settles where a share τ falls at or below.
        auto track = [&](double& q, double tau) {
          q += track_step_[h] * (z > q ? tau : -(1 - tau));
        };
        track(q50_[h], 0.5);
        track(q90_[h], 0.9);
        track(q99_[h], 0.99);
      }
    }
    ++updates_;
  } else {
    model_->predict(std::span(&one, 1));
  }
  // From the unfloored mean, as the backtest that calibrated the quantiles rolled it: from the
  // floored one, a calm stretch under the floor made the next errors lift the unit too soon.
  ErrorScale scale(options_.error_half_life, scale_floor_, error_mean_abs_);
  scale.observe(value - one);
  error_mean_abs_ = scale.mean_abs();
  error_scale_ = scale.value();
  model_->update(value);
}

QuantileForecast Forecaster::predict(int horizon) const {
  QuantileForecast out;
  if (!model_ || horizon <= 0) return out;
  out.model = selected_;
  std::vector<double> path(static_cast<size_t>(horizon));
  model_->predict(path);
  out.p50.resize(path.size());
  out.p90.resize(path.size());
  out.p99.resize(path.size());
  for (size_t h = 0; h < path.size(); ++h) {
    const size_t c = std::min(h, q50_.size() - 1);
    const double u = unit_value(path[h]);
    out.p50[h] = quantile_at(path[h], q50_[c], u);
    out.p90[h] = std::max(out.p50[h], quantile_at(path[h], q90_[c], u));
    out.p99[h] = std::max(out.p90[h], quantile_at(path[h], q99_[c], u));
  }
  return out;
}

double Forecaster::unit_value(double forecast) const {
  return unit_of(unit_, error_scale_, forecast, level_floor_);
}

std::string_view Forecaster::selected() const { return model_ ? selected_ : std::string_view{}; }

Result<std::vector<ForecastScore>> evaluate_forecasts(const Series& series, size_t test_begin,
                                                      std::string_view model_name,
                                                      std::span<const int> horizons,
                                                      const ForecasterOptions& options,
                                                      int score_every) {
  if (horizons.empty()) return make_error(ErrorCode::kInvalidArgument, "no horizons to score");
  if (test_begin == 0 || test_begin >= series.values.size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the test part must start inside the series (at " +
                          std::to_string(test_begin) + " of " +
                          std::to_string(series.values.size()) + " steps)");
  }
  const int max_h = *std::max_element(horizons.begin(), horizons.end());
  if (*std::min_element(horizons.begin(), horizons.end()) < 1) {
    return make_error(ErrorCode::kInvalidArgument, "horizons must be at least one step");
  }
  ForecasterOptions opts = options;
  opts.max_horizon = std::max(opts.max_horizon, max_h);
  if (model_name != "selected") opts.candidates = {std::string(model_name)};
  Forecaster forecaster(opts);
  const Series train = prefix(series, test_begin);
  if (auto fitted = forecaster.fit(train); !fitted) return std::unexpected(fitted.error());

  const double scale = naive_scale(train.values);
  std::vector<ScoreSum> sums(horizons.size());
  const int every = std::max(1, score_every);
  for (size_t t = test_begin; t < series.values.size(); ++t) {
    if ((t - test_begin) % static_cast<size_t>(every) == 0) {
      const QuantileForecast f = forecaster.predict(max_h);
      // The point forecast scored by MAE, MASE and sMAPE is the calibrated median.
      for (size_t i = 0; i < horizons.size(); ++i) {
        const auto h = static_cast<size_t>(horizons[i]);
        if (t + h - 1 >= series.values.size()) continue;
        const double y = series.values[t + h - 1];
        if (!std::isfinite(y)) continue;
        sums[i].add(y, f.p50[h - 1], f.p50[h - 1], f.p90[h - 1], f.p99[h - 1]);
      }
    }
    forecaster.update(series.values[t]);
  }
  std::vector<ForecastScore> out;
  for (size_t i = 0; i < horizons.size(); ++i) {
    out.push_back(sums[i].score(std::string(model_name), horizons[i], scale));
  }
  return out;
}

}  // namespace prescale::forecast
