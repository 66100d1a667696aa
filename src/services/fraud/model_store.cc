#include "services/fraud/model_store.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include "services/fraud/model_file.h"
#include "services/fraud/rules.h"
#include "telemetry/registry.h"

namespace prescale::fraud {

ModelStore::ModelStore(ModelStoreOptions options) : options_(std::move(options)) {
  if (options_.registry != nullptr) {
    // The same family (name, help, labels) every Prescale service registers.
    model_info_ = &options_.registry->gauge("prescale_model_info",
                                            "The model a service serves: 1 for its version",
                                            {"service", "version"});
    auto& reloads = options_.registry->counter("prescale_fraud_model_reloads_total",
                                               "Model files the fraud service tried to load, by "
                                               "result",
                                               {"result"});
    reloads_loaded_ = &reloads.with({"loaded"});
    reloads_failed_ = &reloads.with({"failed"});
  }
  served_version_ = std::string(kRulesVersion);
  if (model_info_ != nullptr) model_info_->with({"fraud", served_version_}).set(1);
}

ModelStore::~ModelStore() { stop_watching(); }

std::optional<ModelStore::FileStamp> ModelStore::stamp(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return std::nullopt;
  const auto mtime = std::filesystem::last_write_time(path, ec);
  if (ec) return std::nullopt;
  return FileStamp{
      path, size,
      std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count()};
}

void ModelStore::swap_in(std::shared_ptr<const Model> model, std::optional<FileStamp> from) {
  const std::string version = model != nullptr ? model->name() : std::string(kRulesVersion);
  current_.store(std::move(model), std::memory_order_release);
  served_ = std::move(from);
  if (model_info_ != nullptr && version != served_version_) {
    model_info_->with({"fraud", served_version_}).set(0);
    model_info_->with({"fraud", version}).set(1);
  }
  served_version_ = version;
}

void ModelStore::install(std::shared_ptr<const Model> model) {
  std::lock_guard lock(reload_mu_);
  swap_in(std::move(model), std::nullopt);
}

Result<bool> ModelStore::reload() {
  std::lock_guard lock(reload_mu_);
  if (options_.directory.empty()) return false;
  auto files = list_model_files(options_.directory);
  if (!files) {
    spdlog::warn("fraud: model directory: {}", files.error().message);
    return std::unexpected(files.error());
  }
  if (files->empty()) return false;

  auto newest = stamp(files->front().path);
  if (!newest) return false;  // removed since the listing; the next scan sees the new state
  if (served_ && *newest == *served_) return false;
  if (last_failed_ && *newest == *last_failed_ && last_error_) {
    return std::unexpected(*last_error_);  // unchanged since it failed: not retried
  }

  auto load = [&](const std::string& path) {
    auto model = load_model_file(path);
    if (model) {
      if (reloads_loaded_ != nullptr) reloads_loaded_->inc();
      spdlog::info("fraud: serving {} ({}, threshold {:.4f}) from {}", (*model)->name(),
                   to_string((*model)->info().kind), (*model)->info().threshold, path);
    } else {
      if (reloads_failed_ != nullptr) reloads_failed_->inc();
      spdlog::warn("fraud: model file not loaded, keeping {}: {}", served_version_,
                   model.error().message);
    }
    return model;
  };

  auto model = load(files->front().path);
  if (model) {
    swap_in(std::move(*model), newest);
    last_failed_.reset();
    last_error_.reset();
    return true;
  }
  last_failed_ = newest;
  last_error_ = model.error();
  if (current() == nullptr) {
    // Nothing to keep serving: the newest older file that loads is better than the rules.
    for (size_t i = 1; i < files->size(); ++i) {
      auto older_stamp = stamp((*files)[i].path);
      if (!older_stamp) continue;
      auto older = load((*files)[i].path);
      if (older) {
        swap_in(std::move(*older), older_stamp);
        break;
      }
    }
  }
  return std::unexpected(model.error());
}

void ModelStore::start_watching() {
  std::lock_guard lock(watch_mu_);
  if (watcher_.joinable() || stopping_) return;
  // The first look is a poll period after this call (on the injected clock), whenever the
  // thread gets to run.
  const Clock::TimePoint first = options_.clock->now() + options_.poll_period;
  watcher_ = std::thread([this, first] { watch(first); });
}

void ModelStore::stop_watching() {
  {
    std::lock_guard lock(watch_mu_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

void ModelStore::watch(Clock::TimePoint next) {
  // Time is the injected clock's; the real-time wait is only how often it is looked at, so a
  // simulated clock advanced by another thread is noticed within kLook.
  constexpr auto kLook = std::chrono::milliseconds(50);
  std::unique_lock lock(watch_mu_);
  while (!stopping_) {
    const Clock::TimePoint now = options_.clock->now();
    if (now >= next) {
      lock.unlock();
      (void)reload();  // failures are logged and counted by reload()
      lock.lock();
      next = now + options_.poll_period;
      continue;
    }
    watch_cv_.wait_for(lock, std::min<Clock::Duration>(next - now, kLook));
  }
}

}  // namespace prescale::fraud
