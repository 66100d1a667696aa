// The model a service serves, hot-reloaded from versioned files in a model directory; shared by
// the fraud and forecast services, which name their files, loader and metrics (ModelFiles).
//
// reload() lists the <file_prefix>N<file_suffix> files (core/versioned_file.h) and serves the
// highest N that loads: when that version changed since the last look (the path, size or
// modification time of its file, or of the data file it loads beside it), it is loaded and
// checked off the request path, then swapped in atomically. A request holds the shared_ptr it
// started with, so requests in flight finish on their model and new ones get the new one; none
// fails. A version that does not load (a file that does not parse, a data file not there yet, a
// name that is a directory or a dangling link) is logged and counted and the served model stays;
// reload() does not retry it until one of its files changes, reload_retrying_failed() (an
// operator's explicit reload) does. With nothing loaded yet, the next older version that loads
// is served instead. Removing the newest file rolls back to the one before; removing every one
// keeps the model in memory. Without a directory, or before any file loads, the store serves the
// service's `none` model.
//
// poll() calls reload() once poll_interval has passed on the injected clock since its last look;
// start_polling() runs poll() on a thread of its own (tests call poll() with a ManualClock).
//
// Metrics (with a registry): prescale_model_info{service,version} is 1 for the version served
// and 0 for versions served before; <reloads_metric>{result="loaded"|"failed"}.
//
// Thread safety: current() (one atomic shared_ptr load) may be called from any thread at any
// time; reload(), reload_retrying_failed(), poll() and install() serialise among themselves.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::telemetry {
class Registry;
class Counter;
class Gauge;
template <typename Instrument>
class Family;
}  // namespace prescale::telemetry

namespace prescale {
struct VersionedFile;
}  // namespace prescale

namespace prescale::services {

struct VersionedModelStoreOptions {
  std::string directory;  // empty: no model files
  Clock* clock = &Clock::real();
  std::chrono::milliseconds poll_interval{5000};  // 0: poll() never reloads
  bool background_poll = true;                    // false: start_polling() starts no thread
  telemetry::Registry* registry = nullptr;        // where the metrics go; none when null
};

// What a service's model files are, and how its store names them in metrics and logs.
template <typename Model>
struct ModelFiles {
  std::string service;      // the prescale_model_info label and the log prefix: "fraud"
  std::string file_prefix;  // files are <file_prefix>N<file_suffix>: "fraud-v"
  std::string file_suffix;  // ".json"
  // The file each version loads beside its manifest, <file_prefix>N<data_file_suffix>: ".ubj".
  // Its size and time are part of the version's stamp, so a version that failed for want of it
  // is tried again once it is written. Empty: the manifest is the whole model.
  std::string data_file_suffix{};
  std::string reloads_metric;  // the counter of load attempts: "prescale_fraud_model_reloads_total"
  std::string reloads_help;
  std::string file_noun;  // "model file": "fraud: model file not loaded, keeping rules-v1: ..."
  std::shared_ptr<const Model> none;  // served before any file loads; may be null
  // Reads and checks one file; errors name the file and the field.
  std::function<Result<std::shared_ptr<const Model>>(const std::string& path)> load;
  // The prescale_model_info version of a model, `none` included.
  std::function<std::string(const Model* model)> version_label;
  // The log's "<service>: serving <this> from <path>", e.g. "model v3 (1200 training rows)".
  std::function<std::string(const Model& model)> describe;
};

namespace internal {

// VersionedModelStore without its model type, compiled once (versioned_model_store.cc): the
// directory scan, the file stamps, the metrics, the logs and the poller. It holds models as
// shared_ptr<const void>; VersionedModelStore puts the type back.
class ModelStoreCore {
 public:
  ModelStoreCore(const ModelStoreCore&) = delete;
  ModelStoreCore& operator=(const ModelStoreCore&) = delete;

  // Looks at the directory once (see the top comment). Returns whether the served model changed;
  // an error naming the file and field when the newest file (or, with nothing loaded, every
  // file) does not load, or when the directory cannot be read. A newest version that failed
  // before and has not changed since is not read again: its error is returned.
  Result<bool> reload();
  // reload(), reading the newest version again even when it failed before and has not changed
  // (POST /v1/model/reload: an operator asks to try now).
  Result<bool> reload_retrying_failed();
  // reload() once poll_interval has passed on the clock since the last look; else false.
  Result<bool> poll();
  // Starts (once) the thread that calls poll(), with background_poll, a poll interval and a
  // directory; stop_polling() or the destructor ends it.
  void start_polling();
  void stop_polling();

 protected:
  struct ErasedFiles {
    std::string service, file_prefix, file_suffix, data_file_suffix, reloads_metric, reloads_help,
        file_noun;
    std::shared_ptr<const void> none;
    std::function<Result<std::shared_ptr<const void>>(const std::string&)> load;
    std::function<std::string(const void*)> version_label;
    std::function<std::string(const void*)> describe;
  };

  ModelStoreCore(ErasedFiles files, VersionedModelStoreOptions options);
  ~ModelStoreCore();  // stops the poller

  std::shared_ptr<const void> current_model() const {
    return current_.load(std::memory_order_acquire);
  }
  void install_model(std::shared_ptr<const void> model);

 private:
  struct FileTimes {
    std::uintmax_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const FileTimes&) const = default;
  };
  // A version's files as last looked at: when the stamp differs, the version changed.
  struct FileStamp {
    std::string path;
    std::optional<FileTimes> file;  // nullopt: it cannot be read (a directory, a dangling link)
    std::optional<FileTimes> data;  // the data file's; nullopt: none, or not there (yet)
    bool operator==(const FileStamp&) const = default;
  };
  // The size and modification time of a regular file (links followed); nullopt for anything else.
  static std::optional<FileTimes> file_times(const std::string& path);
  FileStamp stamp(const VersionedFile& file) const;
  Result<bool> look(bool retry_failed);
  void swap_in(std::shared_ptr<const void> model, std::optional<FileStamp> from);
  // Loads the version, logging and counting the result; one whose file cannot be read fails.
  Result<std::shared_ptr<const void>> load(const FileStamp& file);
  void poll_loop();

  const ErasedFiles files_;
  const VersionedModelStoreOptions options_;
  std::atomic<std::shared_ptr<const void>> current_;

  std::mutex reload_mu_;                  // serialises reload() and install_model()
  std::optional<FileStamp> served_;       // the file current_ came from
  std::optional<FileStamp> last_failed_;  // reload() does not retry it until it changes
  std::optional<Error> last_error_;
  std::string served_label_;  // the prescale_model_info version set to 1

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

}  // namespace internal

template <typename Model>
class VersionedModelStore : public internal::ModelStoreCore {
 public:
  VersionedModelStore(ModelFiles<Model> files, VersionedModelStoreOptions options)
      : ModelStoreCore(erase(std::move(files)), std::move(options)) {}

  // The model to serve: `none` while no file is loaded.
  std::shared_ptr<const Model> current() const {
    std::shared_ptr<const void> model = current_model();
    const auto* typed = static_cast<const Model*>(model.get());
    return std::shared_ptr<const Model>(std::move(model), typed);
  }

  // Serves `model` (tests, embedding) until a reload finds a newer file.
  void install(std::shared_ptr<const Model> model) { install_model(std::move(model)); }

 private:
  static ErasedFiles erase(ModelFiles<Model> files) {
    return {
        .service = std::move(files.service),
        .file_prefix = std::move(files.file_prefix),
        .file_suffix = std::move(files.file_suffix),
        .data_file_suffix = std::move(files.data_file_suffix),
        .reloads_metric = std::move(files.reloads_metric),
        .reloads_help = std::move(files.reloads_help),
        .file_noun = std::move(files.file_noun),
        .none = std::move(files.none),
        .load = [load = std::move(files.load)](
                    const std::string& path) -> Result<std::shared_ptr<const void>> {
          auto model = load(path);
          if (!model) return std::unexpected(model.error());
          return std::shared_ptr<const void>(std::move(*model));
        },
        .version_label = [label = std::move(files.version_label)](
                             const void* model) { return label(static_cast<const Model*>(model)); },
        .describe = [describe = std::move(files.describe)](
                        const void* model) { return describe(*static_cast<const Model*>(model)); },
    };
  }
};

}  // namespace prescale::services
