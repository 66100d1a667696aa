// Gradient-boosted global forecasting model ("gbt"): one XGBoost booster predicts every horizon
// 1..max_horizon of any series from features of its recent history — lags, the same step a day
// and a week earlier, rolling means and deviations, the calendar and the horizon itself — all
// divided by the series' recent level, so one booster trained across many series of any scale
// serves each of them. docs/forecasting.md ("## Gradient-boosted global model") lists the
// features and the training.
//
// train_gbt() trains a booster across series; make_gbt_model() gives a Model that forecasts one
// series with it (fit() then only loads the series). make_model("gbt") gives a Model without a
// booster, which trains one on the series it is fitted on.
//
// Thread safety: a GbtBooster is immutable once trained and safe to share between threads (its
// predictions are serialised); a Model is a value owned by one thread, as every Model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"
#include "forecast/model.h"

namespace prescale::forecast {

struct GbtOptions {
  // The day and the week give the seasonal lag features, when whole steps of the series
  // (as for the other models); cycle_seconds is not used.
  ModelOptions seasons;
  int max_horizon = 15;  // steps; one booster covers horizons 1..max_horizon
  // Training rows (origin, horizon) beyond this many are sampled down at random (deterministic
  // for a seed), about evenly over the series and their history.
  size_t max_rows = 200'000;
  std::uint64_t seed = 1;
  // Boosting rounds (trees): at most this many, as many as improve the forecasts of the last
  // `validation_share` of each series' history when trained on the rest.
  int rounds = 200;
  double validation_share = 0.2;
  int max_depth = 6;
  // The least weight of a leaf (about its rows; less where the loss is linear): a leaf of a few
  // rows learns noise.
  double min_child_weight = 20;
  double eta = 0.1;  // learning rate
  // XGBoost's objective on the normalised target. The pseudo-Huber loss (squared within one
  // level of the target, linear beyond) keeps bursts from pulling the trees; on the shared
  // traces it was at least as accurate as "reg:squarederror" and "reg:absoluteerror"
  // (docs/forecasting.md).
  std::string objective = "reg:pseudohubererror";
  // Training threads, at most; and at most one per 50,000 rows. XGBoost's OpenMP threads spin
  // at every barrier, so on cores other processes also use, a second thread slows training down
  // many times over (docs/forecasting.md): raise it only for a machine of its own. Predictions
  // use one.
  int threads = 1;
};

// A trained booster and the feature definition it was trained with.
class GbtBooster {
 public:
  ~GbtBooster();
  GbtBooster(const GbtBooster&) = delete;
  GbtBooster& operator=(const GbtBooster&) = delete;

  const GbtOptions& options() const { return options_; }
  size_t training_rows() const { return training_rows_; }

  // XGBoost's own serialisation of the trees, the objective and the base score (UBJSON, from
  // XGBoosterSaveModelToBuffer). save_gbt() (gbt_file.h) adds the options. Errors: kInternal.
  Result<std::string> xgboost_model() const;
  // The booster whose xgboost_model() gave `bytes`, with the options it was trained with: it
  // predicts bit for bit as the saved one. Errors: kInvalidArgument when XGBoost cannot read the
  // bytes or the trees use more features than gbt_feature_names().
  static Result<std::shared_ptr<const GbtBooster>> from_xgboost_model(std::string_view bytes,
                                                                      GbtOptions options,
                                                                      size_t training_rows);

 private:
  friend class GbtModel;
  friend Result<std::shared_ptr<const GbtBooster>> train_gbt(std::span<const Series>,
                                                             const GbtOptions&);
  GbtBooster(void* handle, GbtOptions options, size_t training_rows);
  // Predictions for feature rows (row-major, in the model's feature order, NaN = missing), one
  // per element of `out`. Errors: kInternal with XGBoost's message.
  Result<void> predict(std::span<const float> features, std::span<float> out) const;

  void* handle_;  // XGBoost's BoosterHandle, kept opaque so that its header stays in the .cc
  GbtOptions options_;
  size_t training_rows_;
  mutable std::mutex predict_mutex_;
};

// The feature columns in the booster's order (docs/forecasting.md, "Features"): "horizon",
// "lag_1" .. "lag_60", "day", "day_hour_mean", "week", "short_mean", "short_std", "level_std",
// "level_vs_long", "minute_of_day", "day_of_week".
std::span<const std::string_view> gbt_feature_names();

// Training needs at least this many rows (origin, horizon): about 35 observed steps of one
// series with the default horizon.
inline constexpr size_t kGbtMinTrainingRows = 400;

// Trains one booster on rows from every series (each needs step_seconds > 0; gaps allowed).
// Deterministic: the same series and options give the same booster. Errors: kInvalidArgument
// for no series, a bad option or too few rows; kInternal with XGBoost's message when it fails.
Result<std::shared_ptr<const GbtBooster>> train_gbt(std::span<const Series> series,
                                                    const GbtOptions& options = {});

// A "gbt" Model that forecasts with `booster` and never retrains: fit() only loads the series.
// Without a booster (nullptr) fit() trains one with `options` on the fitted series, as
// make_model("gbt") does; when that fails (too short a series) it predicts the last value.
std::unique_ptr<Model> make_gbt_model(std::shared_ptr<const GbtBooster> booster,
                                      const GbtOptions& options = {});

}  // namespace prescale::forecast
