// The training and evaluation harness shared by `prescale eval fraud` and `prescale train fraud`:
// stratified k-fold cross-validation of the gradient-boosted trees and the logistic-regression
// baseline (ROC-AUC, AUPRC), hold-out evaluation on a test file, and training a model to serve —
// cross-validated metrics, a threshold chosen on out-of-fold probabilities, a final fit on every
// row and, for the trees, a check that the compiled evaluator reproduces XGBoost on every row.
//
// Everything is deterministic for a seed (fold assignment, XGBoost's subsampling, one thread).
//
// Thread safety: pure functions; they may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "services/fraud/gbt_training.h"
#include "services/fraud/logistic_regression.h"
#include "services/fraud/model.h"
#include "services/fraud/model_file.h"
#include "services/fraud/ranking_metrics.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud {

struct TrainOptions {
  ModelKind model = ModelKind::kGradientBoostedTrees;  // what train_model() fits to serve
  GbtOptions gbt;                                      // gbt.seed is replaced by `seed`
  LogisticOptions logistic;
  // A fraud's weight in training (XGBoost's scale_pos_weight; the same for the baseline). 0:
  // automatic, legitimate ÷ fraud rows of the training rows, as XGBoost's documentation suggests
  // for imbalanced classes. Probabilities are corrected for it (fraud/model.h).
  double positive_weight = 0;
  int folds = 5;
  uint64_t seed = 1;
};

// The fold (0..folds−1) of each row: each class shuffled (seeded) and dealt round-robin, so every
// fold holds the same share of frauds to within one row.
std::vector<int> stratified_folds(std::span<const uint8_t> labels, int folds, uint64_t seed);

struct ModelEvaluation {
  ModelKind model = ModelKind::kGradientBoostedTrees;
  int folds = 0;  // 0: a hold-out evaluation on a test file
  double roc_auc = 0;
  double auprc = 0;  // average precision
  // Standard deviation across folds (n − 1 denominator); NaN for a hold-out evaluation.
  double roc_auc_std = 0;
  double auprc_std = 0;
  size_t rows = 0;  // rows scored
  size_t frauds = 0;
};

// With `test` null: stratified `options.folds`-fold cross-validation on `data`, figures the mean
// over folds. With `test`: both models trained on all of `data` and scored on `test`.
// Gradient-boosted trees first, then logistic regression.
Result<std::vector<ModelEvaluation>> evaluate(const Transactions& data, const TrainOptions& options,
                                              const Transactions* test = nullptr);

struct TrainedModel {
  std::shared_ptr<const Model> model;        // ready to serve; info() is what the file says
  ModelBody body;                            // for write_model_file(model->info(), body)
  std::vector<ModelEvaluation> evaluations;  // cross-validation of both kinds
  ThresholdChoice threshold;  // chosen on the served kind's out-of-fold probabilities
};

// Trains options.model on every row of `data` for version `version` of the model file:
// cross-validates both kinds (metrics), picks the threshold with the best F1 on the served
// kind's out-of-fold probabilities (or uses `fixed_threshold`), fits on all rows and, for the
// trees, checks the compiled evaluator against XGBoost's margins on every row (kInternal if
// they differ). `created_at` is the file's creation time (UTC, ISO 8601).
Result<TrainedModel> train_model(const Transactions& data, const TrainOptions& options, int version,
                                 std::string created_at,
                                 std::optional<double> fixed_threshold = std::nullopt);

}  // namespace prescale::fraud
