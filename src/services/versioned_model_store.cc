#include "services/versioned_model_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "core/versioned_file.h"
#include "telemetry/registry.h"

namespace prescale::services::internal {

namespace {

// Whether nothing has the name any more (removed since the listing), not even a dangling link.
bool gone(const std::string& path) {
  std::error_code ec;
  return std::filesystem::symlink_status(path, ec).type() == std::filesystem::file_type::not_found;
}

// Why a listed file without times cannot be loaded.
std::unexpected<Error> unreadable(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return make_error(ErrorCode::kInvalidArgument, path + ": a directory, not a file");
  }
  if (!std::filesystem::exists(path, ec) && !ec) {
    return make_error(ErrorCode::kNotFound, path + ": a symbolic link to nothing");
  }
  if (!ec) (void)std::filesystem::file_size(path, ec);
  return make_error(ErrorCode::kUnavailable,
                    path + ": cannot be read" + (ec ? ": " + ec.message() : std::string()));
}

}  // namespace

ModelStoreCore::ModelStoreCore(ErasedFiles files, VersionedModelStoreOptions options)
    : files_(std::move(files)), options_(std::move(options)) {
  if (options_.registry != nullptr) {
    // The same family (name, help, labels) every Prescale service registers.
    model_info_ = &options_.registry->gauge("prescale_model_info",
                                            "The model a service serves: 1 for its version",
                                            {"service", "version"});
    auto& reloads =
        options_.registry->counter(files_.reloads_metric, files_.reloads_help, {"result"});
    reloads_loaded_ = &reloads.with({"loaded"});
    reloads_failed_ = &reloads.with({"failed"});
  }
  served_label_ = files_.version_label(files_.none.get());
  if (model_info_ != nullptr) model_info_->with({files_.service, served_label_}).set(1);
  current_.store(files_.none);
  next_poll_ = options_.clock->now() + options_.poll_interval;
}

ModelStoreCore::~ModelStoreCore() { stop_polling(); }

std::optional<ModelStoreCore::FileTimes> ModelStoreCore::file_times(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return std::nullopt;
  const auto mtime = std::filesystem::last_write_time(path, ec);
  if (ec) return std::nullopt;
  return FileTimes{
      size, std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count()};
}

ModelStoreCore::FileStamp ModelStoreCore::stamp(const VersionedFile& file) const {
  FileStamp out{.path = file.path, .file = file_times(file.path), .data = std::nullopt};
  if (!files_.data_file_suffix.empty()) {
    const std::string data_name =
        files_.file_prefix + std::to_string(file.version) + files_.data_file_suffix;
    out.data = file_times((std::filesystem::path(file.path).parent_path() / data_name).string());
  }
  return out;
}

void ModelStoreCore::swap_in(std::shared_ptr<const void> model, std::optional<FileStamp> from) {
  std::string label = files_.version_label(model.get());
  current_.store(std::move(model), std::memory_order_release);
  served_ = std::move(from);
  if (model_info_ != nullptr && label != served_label_) {
    model_info_->with({files_.service, served_label_}).set(0);
    model_info_->with({files_.service, label}).set(1);
  }
  served_label_ = std::move(label);
}

void ModelStoreCore::install_model(std::shared_ptr<const void> model) {
  std::lock_guard lock(reload_mu_);
  swap_in(std::move(model), std::nullopt);
}

Result<std::shared_ptr<const void>> ModelStoreCore::load(const FileStamp& file) {
  auto model = file.file ? files_.load(file.path) : unreadable(file.path);
  if (model) {
    if (reloads_loaded_ != nullptr) reloads_loaded_->inc();
    spdlog::info("{}: serving {} from {}", files_.service, files_.describe(model->get()),
                 file.path);
  } else {
    if (reloads_failed_ != nullptr) reloads_failed_->inc();
    spdlog::warn("{}: {} not loaded, keeping {}: {}", files_.service, files_.file_noun,
                 served_label_, model.error().message);
  }
  return model;
}

Result<bool> ModelStoreCore::reload() { return look(/*retry_failed=*/false); }

Result<bool> ModelStoreCore::reload_retrying_failed() { return look(/*retry_failed=*/true); }

Result<bool> ModelStoreCore::look(bool retry_failed) {
  std::lock_guard lock(reload_mu_);
  if (options_.directory.empty()) return false;
  auto files = list_versioned_files(options_.directory, files_.file_prefix, files_.file_suffix);
  if (!files) {
    spdlog::warn("{}: model directory: {}", files_.service, files.error().message);
    return std::unexpected(files.error());
  }
  if (files->empty()) return false;
  const FileStamp newest = stamp(files->front());
  // Removed since the listing: the next look sees the new state.
  if (!newest.file && gone(newest.path)) return false;
  if (served_ && newest == *served_) return false;
  if (!retry_failed && last_failed_ && newest == *last_failed_ && last_error_) {
    return std::unexpected(*last_error_);  // unchanged since it failed: not retried
  }
  auto model = load(newest);
  if (model) {
    swap_in(std::move(*model), newest);
    last_failed_.reset();
    last_error_.reset();
    return true;
  }
  last_failed_ = newest;
  last_error_ = model.error();
  if (current_model() == files_.none) {
    // Nothing loaded to keep serving: the newest older version that loads beats `none`.
    for (size_t i = 1; i < files->size(); ++i) {
      const FileStamp older = stamp((*files)[i]);
      if (!older.file && gone(older.path)) continue;
      if (auto loaded = load(older)) {
        swap_in(std::move(*loaded), older);
        break;
      }
    }
  }
  return std::unexpected(model.error());
}

Result<bool> ModelStoreCore::poll() {
  if (options_.poll_interval.count() <= 0 || options_.directory.empty()) return false;
  {
    std::lock_guard lock(poll_mu_);
    const Clock::TimePoint now = options_.clock->now();
    if (now < next_poll_) return false;
    next_poll_ = now + options_.poll_interval;
  }
  return reload();
}

void ModelStoreCore::start_polling() {
  std::lock_guard lock(stop_mu_);
  if (!options_.background_poll || options_.poll_interval.count() <= 0 ||
      options_.directory.empty() || poller_.joinable() || stopping_) {
    return;
  }
  poller_ = std::thread([this] { poll_loop(); });
}

void ModelStoreCore::stop_polling() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void ModelStoreCore::poll_loop() {
  // The injected clock decides when a look is due; this only says how often to ask it, so a
  // simulated clock advanced by another thread is noticed within 50 ms.
  const auto step =
      std::min<std::chrono::milliseconds>(options_.poll_interval, std::chrono::milliseconds(50));
  std::unique_lock lock(stop_mu_);
  while (!stopping_) {
    lock.unlock();
    (void)poll();  // failures are logged and counted
    lock.lock();
    stop_cv_.wait_for(lock, step, [&] { return stopping_; });
  }
}

}  // namespace prescale::services::internal
