#include "services/fraud/fraud_test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numbers>

#include "core/splitmix.h"
#include "services/fraud/model_file.h"

namespace prescale::fraud::testing {
namespace {

struct Random {
  uint64_t state;
  uint64_t next() { return splitmix64_next(state); }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double gauss() {
    return std::sqrt(-2 * std::log(uniform())) * std::cos(2 * std::numbers::pi * uniform());
  }
};

}  // namespace

std::optional<std::string> ulb_sample_path() {
  const char* root = std::getenv("PRESCALE_SOURCE_DIR");
  const std::string path = std::string(root != nullptr ? root : ".") +
                           "/../shared/data/fraud/ulb-creditcard-sample-train.csv";
  if (!std::filesystem::exists(path)) return std::nullopt;
  return path;
}

Transactions generated_transactions(size_t n, uint64_t seed) {
  Random rng{seed};
  Transactions data;
  data.source = "generated";
  for (size_t i = 0; i < n; ++i) {
    Features x{};
    x[0] = static_cast<float>(std::floor(rng.uniform() * 172800));
    for (size_t j = 1; j <= 28; ++j) x[j] = static_cast<float>(rng.gauss());
    x[29] = static_cast<float>(std::round(std::exp(3 + 1.2 * rng.gauss()) * 100) / 100);
    const double v4 = x[4], v10 = x[10], v12 = x[12], v14 = x[14], v17 = x[17];
    const double logit = -2.2 + 2.2 * (v14 < -0.8) + 1.2 * std::max(0.0, v4) - 0.6 * v12 +
                         2.0 * (v10 < -0.7 && v17 < -0.3) + 0.8 * (x[29] < 2);
    data.rows.push_back(x);
    data.labels.push_back(rng.uniform() < 1 / (1 + std::exp(-logit)) ? 1 : 0);
  }
  data.sha256 = std::string(64, '0');
  return data;
}

std::string to_csv(const Transactions& data) {
  std::string out;
  for (std::string_view name : feature_names()) {
    out += ',';
    out += name;
  }
  out = out + ",Class\n";
  char buf[64];
  for (size_t i = 0; i < data.size(); ++i) {
    out += std::to_string(i);
    for (float v : data.rows[i]) {
      std::snprintf(buf, sizeof buf, ",%.9g", static_cast<double>(v));
      out += buf;
    }
    out += data.labels[i] != 0 ? ",1\n" : ",0\n";
  }
  return out;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = std::filesystem::temp_directory_path() /
          ("prescale-fraud-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

TrainOptions quick_options(ModelKind kind) {
  TrainOptions o;
  o.model = kind;
  o.gbt.rounds = 30;
  o.gbt.max_depth = 3;
  o.folds = 3;
  return o;
}

std::shared_ptr<const Model> write_trained_model(const Transactions& data,
                                                 const std::string& directory, int version,
                                                 const TrainOptions& options) {
  auto trained = train_model(data, options, version, "2026-01-01T00:00:00Z");
  EXPECT_TRUE(trained) << trained.error().message;
  if (!trained) return nullptr;
  auto path = write_model_file(directory, trained->model->info(), trained->body);
  EXPECT_TRUE(path) << path.error().message;
  return trained->model;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

}  // namespace prescale::fraud::testing
