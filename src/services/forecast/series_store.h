// SeriesStore: the named demand streams the forecast service keeps (`POST
// /v1/series/{name}/points`, `GET /v1/series/{name}/forecast`).
//
// Each series holds its last `max_points` steps on a fixed grid set by its first points, and a
// Forecaster fitted lazily on the first forecast. Later points are fed to it in O(1) each
// (Forecaster::update); it is refitted when the history has doubled since the last fit (while
// shorter than a day) or `refit_every` steps have arrived since, as the prescale policy does,
// and when the service's model (model_file.h) is another than the one it was fitted with: a
// model file's booster is one more candidate of the fit ("gbt_global").
//
// Thread safety: all methods may be called concurrently; each series has its own lock, so
// forecasts of different series run in parallel.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "forecast/forecaster.h"
#include "services/forecast/model_file.h"
#include "services/forecast/series_input.h"

namespace prescale::services::forecast_service {

struct StoreOptions {
  size_t max_series = 1000;
  size_t max_points = 20'160;  // per series: 14 days of minutes
  size_t refit_every = 1440;   // steps after which a fitted series is refitted
  forecast::ForecasterOptions forecaster;
};

// The selected model's backtest errors, averaged over horizons 1..max_horizon.
struct BacktestSummary {
  int horizons = 0;
  double mae = 0, mase = 0, pinball_p90 = 0, coverage_p90 = 0;
};

// What a fitted Forecaster says about the steps after `start_seconds - step_seconds`.
struct ForecastResult {
  double start_seconds = 0;  // the first forecast step's start
  double step_seconds = 0;
  forecast::QuantileForecast quantiles;
  BacktestSummary backtest;
  size_t history_points = 0;  // steps the forecast was made from (missing ones included)
  std::string model_version;  // ForecastModel::version_label() of the model fitted with
};

// `options` with the model's booster as one more candidate, kGlobalModelName; `options` as they
// are for a null model or one without a booster.
forecast::ForecasterOptions with_model(forecast::ForecasterOptions options,
                                       const ForecastModel* model);

// Fits a Forecaster on `series` (with `model`'s booster among the candidates, when it has one)
// and forecasts `horizon` steps. Errors: kInvalidArgument when there is too little observed
// history (the message says how much is needed).
Result<ForecastResult> forecast_once(const forecast::Series& series, int horizon,
                                     const forecast::ForecasterOptions& options = {},
                                     const ForecastModel* model = nullptr);

struct AppendResult {
  size_t appended = 0;  // steps added (missing steps between points included)
  size_t points = 0;    // steps kept now
  double step_seconds = 0;
  double last_timestamp = 0;
};

struct SeriesInfo {
  std::string name;
  size_t points = 0;
  double step_seconds = 0;
  double first_timestamp = 0, last_timestamp = 0;
  std::string model;  // "" before the first forecast
};

class SeriesStore {
 public:
  explicit SeriesStore(StoreOptions options = {});
  ~SeriesStore();

  // Appends points after the series' last one (creating it; `step_seconds` or the points' own
  // spacing sets the step of a new series and must match an existing one). Errors:
  // kInvalidArgument naming the field and index; kOutOfRange when max_series is reached.
  Result<AppendResult> append(std::string_view name, const Points& points,
                              std::optional<double> step_seconds);
  // Forecasts with the series' Forecaster, refitted first when due or when `model` (null: the
  // method alone) is not the one it was fitted with. Errors: kNotFound; kInvalidArgument with
  // too little history.
  Result<ForecastResult> forecast(std::string_view name, int horizon,
                                  std::shared_ptr<const ForecastModel> model = nullptr);
  bool erase(std::string_view name);
  std::vector<SeriesInfo> list() const;
  size_t size() const;

 private:
  struct Stream;
  std::shared_ptr<Stream> find(std::string_view name) const;

  StoreOptions options_;
  mutable std::mutex mu_;  // guards the map, not the streams
  std::map<std::string, std::shared_ptr<Stream>, std::less<>> streams_;
};

// [a-zA-Z0-9_.-], 1..128 characters.
bool valid_series_name(std::string_view name);

}  // namespace prescale::services::forecast_service
