// Offline evaluation of the recommenders (`prescale eval recommend`, docs/services/recommend.md):
// each user's most recent interactions are held out; every model is trained on the rest and
// ranks the catalogue for each user with held-out items, training items excluded. Metrics use
// binary relevance (a held-out item is relevant). Hyper-parameters are chosen on a validation
// split carved from the training part in the same way, never on the test part.
//
// Thread safety: functions are pure apart from the clock and the progress callback.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "services/recommend/interactions.h"
#include "services/recommend/model.h"

namespace prescale::recommend {

// Hits among the first k of `ranked`, divided by k.
double precision_at_k(std::span<const int64_t> ranked, std::span<const int64_t> relevant, size_t k);
// Hits among the first k of `ranked`, divided by the number of relevant items (0 when none).
double recall_at_k(std::span<const int64_t> ranked, std::span<const int64_t> relevant, size_t k);
// DCG of the first k (gain 1 for a relevant item at rank r ≥ 1: 1/log2(r + 1)) divided by the
// DCG of an ideal ranking of min(k, |relevant|) relevant items.
double ndcg_at_k(std::span<const int64_t> ranked, std::span<const int64_t> relevant, size_t k);

struct Scores {
  double precision_at_10 = 0;
  double recall_at_20 = 0;
  double ndcg_at_10 = 0;
  double coverage = 0;  // share of the model's items in at least one user's top 10
  int users = 0;        // users scored: those with held-out interactions
};

// Scores a model on held-out interactions: each user's top 20 (training history excluded)
// against the user's held-out items, averaged over users.
Scores score_model(const Model& model, const std::vector<Interaction>& heldout);

struct EvaluateOptions {
  double test_share = 0.2;        // each user's most recent share, held out for the test
  double validation_share = 0.2;  // of each user's training part, for choosing hyper-parameters
  bool tune = true;               // grid-search hyper-parameters on the validation split
  std::vector<ModelKind> models = {ModelKind::kTopPop, ModelKind::kItemKnn, ModelKind::kAls,
                                   ModelKind::kEase};
  TrainOptions base;  // the hyper-parameters used without tuning, and the ones not tuned
  Clock* clock = &Clock::real();                   // times training
  std::function<void(std::string_view)> progress;  // a line per validation fit, when set
};

struct ModelEvaluation {
  ModelKind model = ModelKind::kTopPop;
  TrainOptions options;         // as chosen on the validation split
  std::string hyperparameters;  // the tuned ones, e.g. "factors=64 alpha=2 regularization=0.1"
  Scores validation;            // the chosen options' validation scores (zero without tuning)
  Scores test;
  double train_seconds = 0;  // the final fit on the whole training part
};

// Splits, tunes, trains and scores every model of `options.models`.
Result<std::vector<ModelEvaluation>> evaluate(const std::vector<Interaction>& interactions,
                                              const EvaluateOptions& options = {});

// The tuned hyper-parameters of `options.kind` as "name=value ..." (empty for TopPop).
std::string describe_hyperparameters(const TrainOptions& options);

}  // namespace prescale::recommend
