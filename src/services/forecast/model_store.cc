#include "services/forecast/model_store.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include "telemetry/registry.h"

namespace prescale::services::forecast_service {

ModelStore::ModelStore(ModelStoreOptions options) : options_(std::move(options)) {
  if (options_.registry != nullptr) {
    // The same family (name, help, labels) every Prescale service registers.
    model_info_ = &options_.registry->gauge("prescale_model_info",
                                            "The model a service serves: 1 for its version",
                                            {"service", "version"});
    auto& reloads = options_.registry->counter(
        "prescale_forecast_reloads_total",
        "Model versions the forecast service tried to load, by result", {"result"});
    reloads_loaded_ = &reloads.with({"loaded"});
    reloads_failed_ = &reloads.with({"failed"});
  }
  auto none = std::make_shared<const ForecastModel>();
  if (model_info_ != nullptr) model_info_->with({"forecast", none->version_label()}).set(1);
  current_.store(std::move(none));
  next_poll_ = options_.clock->now() + options_.poll_interval;
}

ModelStore::~ModelStore() { stop_polling(); }

std::optional<ModelStore::Stamp> ModelStore::stamp(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return std::nullopt;
  const auto mtime = std::filesystem::last_write_time(path, ec);
  if (ec) return std::nullopt;
  return Stamp{
      path, size,
      std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count()};
}

void ModelStore::swap_in(std::shared_ptr<const ForecastModel> model, std::optional<Stamp> from) {
  const std::string old_label = current()->version_label();
  const std::string label = model->version_label();
  current_.store(std::move(model), std::memory_order_release);
  served_ = std::move(from);
  if (model_info_ != nullptr && label != old_label) {
    model_info_->with({"forecast", old_label}).set(0);
    model_info_->with({"forecast", label}).set(1);
  }
}

Result<std::shared_ptr<const ForecastModel>> ModelStore::load(const std::string& path) {
  auto model = load_model(path);
  if (model) {
    if (reloads_loaded_ != nullptr) reloads_loaded_->inc();
    spdlog::info("forecast: serving model {} ({} training rows) from {}", (*model)->version_label(),
                 (*model)->booster->training_rows(), path);
  } else {
    if (reloads_failed_ != nullptr) reloads_failed_->inc();
    spdlog::warn("forecast: model not loaded, keeping {}: {}", current()->version_label(),
                 model.error().message);
  }
  return model;
}

Result<bool> ModelStore::reload() {
  std::lock_guard lock(reload_mu_);
  if (options_.directory.empty()) return false;
  auto files = list_manifests(options_.directory);
  if (!files) {
    spdlog::warn("forecast: model directory: {}", files.error().message);
    return std::unexpected(files.error());
  }
  if (files->empty()) return false;
  auto newest = stamp(files->front().path);
  if (!newest) return false;  // removed since the listing; the next look sees the new state
  if (served_ && *newest == *served_) return false;
  if (last_failed_ && *newest == *last_failed_ && last_error_) {
    return std::unexpected(*last_error_);  // unchanged since it failed: not retried
  }
  auto model = load(files->front().path);
  if (model) {
    swap_in(std::move(*model), newest);
    last_failed_.reset();
    last_error_.reset();
    return true;
  }
  last_failed_ = newest;
  last_error_ = model.error();
  if (current()->version == 0) {
    // Nothing served yet: the newest older version that loads beats the method alone.
    for (size_t i = 1; i < files->size(); ++i) {
      auto older_stamp = stamp((*files)[i].path);
      if (!older_stamp) continue;
      if (auto older = load((*files)[i].path)) {
        swap_in(std::move(*older), older_stamp);
        break;
      }
    }
  }
  return std::unexpected(model.error());
}

Result<bool> ModelStore::poll() {
  if (options_.poll_interval.count() <= 0 || options_.directory.empty()) return false;
  {
    std::lock_guard lock(poll_mu_);
    const Clock::TimePoint now = options_.clock->now();
    if (now < next_poll_) return false;
    next_poll_ = now + options_.poll_interval;
  }
  return reload();
}

void ModelStore::start_polling() {
  std::lock_guard lock(stop_mu_);
  if (!options_.background_poll || options_.poll_interval.count() <= 0 ||
      options_.directory.empty() || poller_.joinable() || stopping_) {
    return;
  }
  poller_ = std::thread([this] { poll_loop(); });
}

void ModelStore::stop_polling() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void ModelStore::poll_loop() {
  // The injected clock decides when a look is due; this only says how often to ask it.
  const auto step =
      std::min<std::chrono::milliseconds>(options_.poll_interval, std::chrono::milliseconds(100));
  std::unique_lock lock(stop_mu_);
  while (!stopping_) {
    lock.unlock();
    (void)poll();  // failures are logged and counted
    lock.lock();
    stop_cv_.wait_for(lock, step, [&] { return stopping_; });
  }
}

}  // namespace prescale::services::forecast_service
