#include "services/fraud/model.h"

#include <cmath>
#include <utility>

namespace prescale::fraud {
namespace {

double sigmoid(double margin) { return 1 / (1 + std::exp(-margin)); }

}  // namespace

std::string_view to_string(ModelKind kind) {
  return kind == ModelKind::kGradientBoostedTrees ? "gradient_boosted_trees"
                                                  : "logistic_regression";
}

std::optional<ModelKind> model_kind_from_string(std::string_view name) {
  if (name == "gradient_boosted_trees") return ModelKind::kGradientBoostedTrees;
  if (name == "logistic_regression") return ModelKind::kLogisticRegression;
  return std::nullopt;
}

void pick_top_features(std::span<const double, kFeatureCount> contributions, Score& score) {
  score.top_count = 0;
  const auto names = feature_names();
  for (size_t j = 0; j < kFeatureCount; ++j) {
    const double c = contributions[j];
    if (c == 0 || std::isnan(c)) continue;
    // Insertion into the (at most 3) entries kept, largest |c| first; a tie keeps the earlier.
    size_t at = score.top_count;
    while (at > 0 && std::abs(score.top[at - 1].contribution) < std::abs(c)) --at;
    if (at >= score.top.size()) continue;
    const size_t last = std::min(score.top_count, score.top.size() - 1);
    for (size_t k = last; k > at; --k) score.top[k] = score.top[k - 1];
    score.top[at] = {names[j], c};
    score.top_count = std::min(score.top_count + 1, score.top.size());
  }
}

Model::Model(ModelInfo info, TreeEnsemble trees)
    : info_(std::move(info)),
      name_(info_.name()),
      margin_offset_(-std::log(info_.positive_weight)),
      scorer_(std::move(trees)) {}

Model::Model(ModelInfo info, LogisticModel logistic)
    : info_(std::move(info)),
      name_(info_.name()),
      margin_offset_(-std::log(info_.positive_weight)),
      scorer_(std::move(logistic)) {}

double Model::probability(const Features& x) const {
  if (const auto* trees = std::get_if<TreeEnsemble>(&scorer_)) {
    return sigmoid(static_cast<double>(trees->margin(x)) + margin_offset_);
  }
  return sigmoid(std::get<LogisticModel>(scorer_).margin(x) + margin_offset_);
}

Score Model::score(const Features& x) const {
  Score score;
  std::array<double, kFeatureCount> contributions{};
  double margin = 0;
  if (const auto* trees = std::get_if<TreeEnsemble>(&scorer_)) {
    std::array<float, kFeatureCount + 1> c{};
    margin = trees->contributions(x, c);
    for (size_t j = 0; j < kFeatureCount; ++j) contributions[j] = c[j];
  } else {
    margin = std::get<LogisticModel>(scorer_).contributions(x, contributions);
  }
  score.probability = sigmoid(margin + margin_offset_);
  pick_top_features(contributions, score);
  return score;
}

}  // namespace prescale::fraud
