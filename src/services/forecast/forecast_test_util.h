// Test helpers of the forecast service: small trained boosters and model directories.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "core/text_file.h"
#include "forecast/gbt_model.h"
#include "services/forecast/model_file.h"

namespace prescale::services::forecast_service::testing {

// A fresh directory under the system's temporary one, removed with its files at the end.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("prescale-forecast-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Two days of a noisy daily cycle at 5-minute steps.
inline forecast::Series daily_series(unsigned seed, double scale = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0, 1);
  forecast::Series s;
  s.start_seconds = 1704067200;
  s.step_seconds = 300;
  for (size_t i = 0; i < 2 * 288; ++i) {
    const double t = static_cast<double>(i) * s.step_seconds;
    const double v = scale * (100 + 50 * std::sin(2 * std::numbers::pi * t / 86400));
    s.values.push_back(std::max(0.0, v * (1 + 0.05 * gauss(rng))));
  }
  return s;
}

// A booster trained in a fraction of a second; `seed` makes different ones.
inline std::shared_ptr<const forecast::GbtBooster> small_booster(unsigned seed = 1) {
  const std::vector<forecast::Series> series = {daily_series(seed), daily_series(seed + 100, 5)};
  forecast::GbtOptions options;
  options.rounds = 20;
  options.max_depth = 4;
  options.seed = seed;
  auto booster = forecast::train_gbt(series, options);
  return booster ? *booster : nullptr;
}

inline SaveOptions save_options(Clock* clock = &Clock::real()) {
  SaveOptions o;
  o.training = {{"data_sha256", sha256_hex("test data")}, {"traces", nlohmann::json::array()}};
  o.metrics = {{"pinball_p90", 1.5}};
  o.clock = clock;
  return o;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

inline std::string read_text(const std::filesystem::path& path) {
  return read_text_file(path.string()).value_or("");
}

}  // namespace prescale::services::forecast_service::testing
