// `prescale serve forecast`: demand forecasting as a service, on the forecasting library that
// the prescale policy uses (model selected per series by backtest, calibrated P50/P90/P99).
//
//   POST   /v1/forecast                 a series in the body → quantile forecasts
//   POST   /v1/series/{name}/points     append points to a stream the service keeps
//   GET    /v1/series/{name}/forecast   ?horizon=N steps → quantile forecasts of that stream
//   GET    /v1/series                   the streams kept
//   DELETE /v1/series/{name}
//   GET    /v1/model                    the served model: version, training data, metrics
//   POST   /v1/model/reload             look for a newer model file now
//
// With a model directory (`prescale train forecast` writes it), the newest model file's global
// booster joins every fit as the candidate "gbt_global", and responses carry its version ("v3");
// new versions are picked up while serving (model_store.h). Without one, models are fitted from
// each request's own data alone and the version is "forecaster-1".
//
// Request and response fields, limits and errors: docs/services/forecast.md and
// docs/api/forecast.yaml. Fitting (milliseconds to ~50 ms for two weeks of minutes) runs on the
// service's worker threads, never on an I/O thread.
//
// Thread safety: handlers may run on any I/O thread at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.h"
#include "runtime/service.h"
#include "services/forecast/model_store.h"
#include "services/forecast/series_store.h"

namespace prescale::telemetry {
class Registry;
}

namespace prescale::services {

struct ForecastServiceOptions {
  forecast_service::StoreOptions store;
  int workers = 0;           // fitting threads; 0 = one per core
  // Requests waiting for a fitting thread (forecasts, model reloads), at most; more are answered
  // 503 at once: each waits with its body, and an unbounded queue under a flood grows without
  // limit.
  size_t max_queued = 256;
  int max_horizon = 1440;    // steps a request may ask for
  int default_horizon = 15;  // steps when a request names none
  // Where `prescale train forecast` writes model files; empty: none, the method alone.
  std::string model_dir;
  // How often to look for a new version (on `clock`); 0 = only POST /v1/model/reload.
  std::chrono::milliseconds poll_interval{5000};
  // A thread polls; tests turn it off and call model_store().poll() with a ManualClock.
  bool background_poll = true;
  Clock* clock = &Clock::real();
  // Where prescale_model_info and the service's own counters go (the runtime's registry).
  telemetry::Registry* registry = nullptr;
};

class ForecastService final : public runtime::Service {
 public:
  explicit ForecastService(ForecastServiceOptions options = {});
  ~ForecastService() override;

  std::string_view name() const override { return "forecast"; }
  void register_routes(runtime::Routes& routes) override;
  void on_drain() override;

  forecast_service::SeriesStore& store();
  forecast_service::ModelStore& model_store();

 private:
  class Workers;
  struct Metrics;
  // Runs `work` on a fitting thread with the responder; 503 at once when max_queued wait.
  void run_queued(http::Responder respond, std::function<void(http::Responder)> work);
  ForecastServiceOptions options_;
  forecast_service::SeriesStore store_;
  std::unique_ptr<forecast_service::ModelStore> models_;
  std::unique_ptr<Workers> workers_;
  std::unique_ptr<Metrics> metrics_;
};

// The version reported as `model_version` and in prescale_model_info without a model file: the
// forecasting method's (models fitted from each request's or stream's own data).
inline constexpr std::string_view kForecastModelVersion = forecast_service::kMethodVersion;

}  // namespace prescale::services
