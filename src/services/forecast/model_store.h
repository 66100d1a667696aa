// The model the forecast service serves, and its hot reload from a model directory.
//
// reload() looks for forecast-v<N>.json manifests (model_file.h) and serves the highest N that
// loads: when that manifest changed (path, size or modification time) since the last look, it is
// loaded and checked off the request path, then swapped in atomically. A fit holds the
// shared_ptr it started with, so fits in flight finish on their booster and new ones get the new
// one; no request fails. A version that does not load is logged and counted, and the served one
// stays (it is not retried until its manifest changes); at start, with nothing served yet, the
// next older version that loads is served instead. Removing the newest manifest rolls back to
// the one before; removing every one keeps the model in memory. Without a directory, or before
// any file loads, the service forecasts with the method alone (version kMethodVersion).
//
// poll() calls reload() once poll_interval has passed on the injected clock since its last look;
// with background_poll a thread calls poll() (tests drive it with a ManualClock instead).
//
// Metrics (with a registry): prescale_model_info{service="forecast",version} is 1 for the version
// served and 0 for versions served before; prescale_forecast_reloads_total{result="loaded"|
// "failed"}.
//
// Thread safety: current() (one atomic load) may be called from any thread at any time;
// reload() and poll() serialise among themselves.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/result.h"
#include "services/forecast/model_file.h"

namespace prescale::telemetry {
class Registry;
class Counter;
class Gauge;
template <typename Instrument>
class Family;
}  // namespace prescale::telemetry

namespace prescale::services::forecast_service {

struct ModelStoreOptions {
  std::string directory;  // empty: no model files
  Clock* clock = &Clock::real();
  std::chrono::milliseconds poll_interval{5000};  // 0: poll() never reloads
  bool background_poll = true;
  telemetry::Registry* registry = nullptr;
};

class ModelStore {
 public:
  explicit ModelStore(ModelStoreOptions options);
  ~ModelStore();  // stops the poller
  ModelStore(const ModelStore&) = delete;
  ModelStore& operator=(const ModelStore&) = delete;

  // Never null: version 0 (no booster) while no file is loaded.
  std::shared_ptr<const ForecastModel> current() const {
    return current_.load(std::memory_order_acquire);
  }

  // Looks at the directory once (see the top comment). Returns whether the served model changed;
  // an error naming the file and field when the newest version does not load (the served one
  // stays), or when the directory cannot be read.
  Result<bool> reload();
  // reload() once poll_interval has passed on the clock since the last look; else false.
  Result<bool> poll();
  // Starts the background poller (once, with background_poll and a poll interval).
  void start_polling();
  void stop_polling();

 private:
  struct Stamp {
    std::string path;
    std::uintmax_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  static std::optional<Stamp> stamp(const std::string& path);
  void swap_in(std::shared_ptr<const ForecastModel> model, std::optional<Stamp> from);
  Result<std::shared_ptr<const ForecastModel>> load(const std::string& path);
  void poll_loop();

  ModelStoreOptions options_;
  std::atomic<std::shared_ptr<const ForecastModel>> current_;

  std::mutex reload_mu_;  // serialises reload()
  std::optional<Stamp> served_;
  std::optional<Stamp> last_failed_;  // not retried until it changes
  std::optional<Error> last_error_;

  std::mutex poll_mu_;
  Clock::TimePoint next_poll_;

  telemetry::Family<telemetry::Gauge>* model_info_ = nullptr;
  telemetry::Counter* reloads_loaded_ = nullptr;
  telemetry::Counter* reloads_failed_ = nullptr;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread poller_;
};

}  // namespace prescale::services::forecast_service
