// A fraud model ready to serve: the scoring model (gradient-boosted trees compiled into a
// TreeEnsemble, or the logistic-regression baseline) with what its model file says about it
// (version, decision threshold, training data, metrics). Scores are fraud probabilities with the
// three features that moved each score most (docs/services/fraud.md, "Scores").
//
// Training weighs frauds by `positive_weight`, which multiplies the model's odds by that weight;
// the probability divides it out again (the margin less log(positive_weight)), so it estimates
// the fraud rate of the training data, not of a re-weighted one.
//
// Thread safety: a Model is immutable; share it between threads (e.g. a shared_ptr<const Model>).
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "services/fraud/logistic_regression.h"
#include "services/fraud/transactions.h"
#include "services/fraud/tree_ensemble.h"

namespace prescale::fraud {

enum class ModelKind { kGradientBoostedTrees, kLogisticRegression };

// "gradient_boosted_trees", "logistic_regression".
std::string_view to_string(ModelKind kind);
std::optional<ModelKind> model_kind_from_string(std::string_view name);

// What a model file says about its model, besides the model itself.
struct ModelInfo {
  int version = 1;  // N of fraud-vN.json
  ModelKind kind = ModelKind::kGradientBoostedTrees;
  double threshold = 0.5;        // decide "fraud" when fraud_probability ≥ threshold
  double positive_weight = 1.0;  // a fraud's weight in training (see the top comment)
  std::string created_at;        // UTC, ISO 8601
  nlohmann::json training = nlohmann::json::object();  // data file, its SHA-256, rows, parameters
  nlohmann::json metrics = nlohmann::json::object();   // cross-validated figures

  // "fraud-vN": the version reported in responses and in prescale_model_info.
  std::string name() const { return "fraud-v" + std::to_string(version); }
};

// A feature's share of one score, in log-odds: positive pushes towards fraud.
struct FeatureContribution {
  std::string_view feature;  // a name from feature_names()
  double contribution = 0;
};

struct Score {
  double probability = 0;                    // of fraud, 0..1
  std::array<FeatureContribution, 3> top{};  // by |contribution|, largest first
  size_t top_count = 0;                      // fewer than 3 when fewer features contributed at all
};

// The three largest |contributions| (non-zero ones only; ties: the earlier feature first).
void pick_top_features(std::span<const double, kFeatureCount> contributions, Score& score);

class Model {
 public:
  Model(ModelInfo info, TreeEnsemble trees);
  Model(ModelInfo info, LogisticModel logistic);

  const ModelInfo& info() const { return info_; }
  const std::string& name() const { return name_; }

  // Fraud probability alone (evaluation, threshold choice).
  double probability(const Features& x) const;
  // Probability and top features: one pass over the trees (about a microsecond).
  Score score(const Features& x) const;

  // The scoring model, for tests and benchmarks: exactly one is non-null.
  const TreeEnsemble* trees() const { return std::get_if<TreeEnsemble>(&scorer_); }
  const LogisticModel* logistic() const { return std::get_if<LogisticModel>(&scorer_); }

 private:
  ModelInfo info_;
  std::string name_;
  double margin_offset_;  // −log(positive_weight)
  std::variant<TreeEnsemble, LogisticModel> scorer_;
};

}  // namespace prescale::fraud
