// Test-only helpers for the fraud tests: the real ULB sample from ../shared/data (tests skip
// without it), a generated fixture so that the suite also runs without it, temporary model
// directories and quick model training.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "services/fraud/model.h"
#include "services/fraud/training.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud::testing {

// ../shared/data/fraud/ulb-creditcard-sample-train.csv beside the checkout (PRESCALE_SOURCE_DIR,
// else the working directory), or nullopt when it is absent.
std::optional<std::string> ulb_sample_path();
inline constexpr const char* kNoSharedData =
    "skipped: ../shared/data missing (fraud/ulb-creditcard-sample-train.csv)";

// `n` generated transactions whose fraud odds depend on a few features non-linearly (thresholds
// and an interaction), so trees have something to find that a linear model misses. Deterministic
// for a seed.
Transactions generated_transactions(size_t n, uint64_t seed);
// The transactions as a CSV file with the data set's header (unnamed index column first).
std::string to_csv(const Transactions& data);

// A fresh empty directory under the system temp directory, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Options that train in a fraction of a second (few, shallow trees; 3 folds).
TrainOptions quick_options(ModelKind kind = ModelKind::kGradientBoostedTrees);

// Trains on `data` and writes fraud-v<version>.json into `directory`; returns the model.
std::shared_ptr<const Model> write_trained_model(const Transactions& data,
                                                 const std::string& directory, int version,
                                                 const TrainOptions& options = quick_options());

void write_text(const std::filesystem::path& path, const std::string& text);

}  // namespace prescale::fraud::testing
