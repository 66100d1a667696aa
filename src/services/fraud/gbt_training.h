// Training the gradient-boosted trees with XGBoost's C API (binary:logistic, histogram method).
// The result is XGBoost's own JSON model, which TreeEnsemble compiles for serving and model files
// embed (docs/services/fraud.md, "Models").
//
// Thread safety: train_gbt() may run on several threads at once (each call has its own booster).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/result.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud {

// Defaults are XGBoost's usual starting point for a small tabular problem, not tuned to a data
// set: shallow trees, a moderate learning rate, row and column subsampling against overfitting.
struct GbtOptions {
  int rounds = 200;  // trees
  int max_depth = 4;
  double eta = 0.1;  // learning rate
  double subsample = 0.8;
  double colsample_bytree = 0.8;
  double min_child_weight = 1;
  double lambda = 1;  // L2 penalty on leaf weights
  uint64_t seed = 1;  // subsampling; with one thread the trees are the same on every run
  // Training threads. XGBoost's OpenMP threads spin at barriers; more than one only pays on a
  // machine of its own and a data set far larger than a few thousand rows.
  int threads = 1;
};

// Trains on `rows` with `labels` (1 = fraud); frauds weigh `positive_weight` each
// (XGBoost's scale_pos_weight). Returns the model as XGBoost's JSON (XGBoosterSaveModelToBuffer
// with format "json"). Errors: kInvalidArgument for bad options or a missing class, kInternal with
// XGBoost's message.
Result<std::string> train_gbt(std::span<const Features> rows, std::span<const uint8_t> labels,
                              double positive_weight, const GbtOptions& options);

// The XGBoost library's version, e.g. "1.7.4" (recorded in model files).
std::string xgboost_version();

}  // namespace prescale::fraud
