// The model the fraud service serves, and its hot reload from a model directory.
//
// reload() scans the directory for fraud-v<N>.json files and serves the highest N that loads:
// when that file changed (path, size or modification time) since the last scan, it is loaded and
// validated off the request path, then swapped in atomically — requests already scoring keep the
// model they started with, new ones get the new model, none fails. A file that does not load is
// logged and counted and the current model stays (at start, the next older file that loads is
// served instead). Removing the newest file rolls back to the one before; removing every file
// keeps the model in memory. start_watching() runs reload() every poll period of the injected
// Clock on a thread of its own.
//
// Metrics (when a registry is given): prescale_model_info{service="fraud",version} is 1 for the
// version served (rules-v1 while no model is loaded) and 0 for versions served before;
// prescale_fraud_model_reloads_total{result="loaded"|"failed"}.
//
// Thread safety: current() (one atomic shared_ptr load) may be called from any thread at any time;
// reload(), install() and the watcher serialise among themselves.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/result.h"
#include "services/fraud/model.h"

namespace prescale::telemetry {
class Registry;
class Counter;
class Gauge;
template <typename Instrument>
class Family;
}  // namespace prescale::telemetry

namespace prescale::fraud {

struct ModelStoreOptions {
  std::string directory;  // empty: no files; models only through install()
  Clock* clock = &Clock::real();
  std::chrono::milliseconds poll_period{5000};  // for start_watching()
  telemetry::Registry* registry = nullptr;      // where the metrics above go; none when null
};

class ModelStore {
 public:
  explicit ModelStore(ModelStoreOptions options);
  ~ModelStore();  // stops the watcher
  ModelStore(const ModelStore&) = delete;
  ModelStore& operator=(const ModelStore&) = delete;

  // The model to score with; null while none is loaded (the service then uses its rules).
  std::shared_ptr<const Model> current() const { return current_.load(std::memory_order_acquire); }

  // Scans the directory once (see the top comment). Returns whether the served model changed; an
  // error when the newest file (or, with nothing loaded, every file) failed to load — the message
  // names the file and field — or when the directory cannot be read.
  Result<bool> reload();

  // Serves `model` (tests, embedding) until a reload finds a newer file.
  void install(std::shared_ptr<const Model> model);

  // Starts (once) the thread that calls reload() every poll period; stop_watching() or the
  // destructor ends it.
  void start_watching();
  void stop_watching();

 private:
  struct FileStamp {
    std::string path;
    uintmax_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  static std::optional<FileStamp> stamp(const std::string& path);
  void swap_in(std::shared_ptr<const Model> model, std::optional<FileStamp> from);
  void watch(Clock::TimePoint next);

  ModelStoreOptions options_;
  std::atomic<std::shared_ptr<const Model>> current_;

  std::mutex reload_mu_;                  // serialises reload() and install()
  std::optional<FileStamp> served_;       // the file current_ came from
  std::optional<FileStamp> last_failed_;  // not retried until it changes
  std::optional<Error> last_error_;
  std::string served_version_;  // the prescale_model_info label set to 1

  telemetry::Family<telemetry::Gauge>* model_info_ = nullptr;
  telemetry::Counter* reloads_loaded_ = nullptr;
  telemetry::Counter* reloads_failed_ = nullptr;

  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace prescale::fraud
