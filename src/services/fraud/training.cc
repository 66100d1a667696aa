#include "services/fraud/training.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "core/splitmix.h"
#include "http/json.h"
#include "services/fraud/internal/xgboost_booster.h"

namespace prescale::fraud {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::array<ModelKind, 2> kKinds = {ModelKind::kGradientBoostedTrees,
                                             ModelKind::kLogisticRegression};

double resolve_positive_weight(double configured, std::span<const uint8_t> labels) {
  if (configured > 0) return configured;
  const auto frauds = static_cast<double>(std::count(labels.begin(), labels.end(), uint8_t{1}));
  const double legit = static_cast<double>(labels.size()) - frauds;
  return frauds > 0 && legit > 0 ? legit / frauds : 1.0;
}

struct Fitted {
  ModelBody body;
  std::shared_ptr<const Model> model;
};

Result<Fitted> fit(ModelKind kind, std::span<const Features> rows, std::span<const uint8_t> labels,
                   const TrainOptions& options, ModelInfo info) {
  info.kind = kind;
  info.positive_weight = resolve_positive_weight(options.positive_weight, labels);
  if (kind == ModelKind::kGradientBoostedTrees) {
    GbtOptions gbt = options.gbt;
    gbt.seed = options.seed;
    auto json = train_gbt(rows, labels, info.positive_weight, gbt);
    if (!json) return std::unexpected(json.error());
    auto parsed = http::parse_json(*json);
    if (!parsed)
      return make_error(ErrorCode::kInternal, "xgboost model: " + parsed.error().message);
    auto trees = TreeEnsemble::compile(*parsed, "xgboost_model");
    if (!trees) return std::unexpected(trees.error());
    auto model = std::make_shared<const Model>(std::move(info), std::move(*trees));
    return Fitted{XgboostModelJson{std::move(*json)}, std::move(model)};
  }
  auto logistic = train_logistic(rows, labels, info.positive_weight, options.logistic);
  if (!logistic) return std::unexpected(logistic.error());
  auto model = std::make_shared<const Model>(std::move(info), *logistic);
  return Fitted{*logistic, std::move(model)};
}

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? kNaN : sum / static_cast<double>(v.size());
}

double sample_std(const std::vector<double>& v) {
  if (v.size() < 2) return kNaN;
  const double m = mean(v);
  double squares = 0;
  for (double x : v) squares += (x - m) * (x - m);
  return std::sqrt(squares / static_cast<double>(v.size() - 1));
}

struct CrossValidation {
  std::vector<ModelEvaluation> evaluations;        // in kKinds order
  std::array<std::vector<double>, 2> out_of_fold;  // probabilities, in kKinds order
};

Result<CrossValidation> cross_validate(const Transactions& data, const TrainOptions& options) {
  const size_t frauds = data.frauds();
  const size_t legit = data.size() - frauds;
  if (options.folds < 2 || static_cast<size_t>(options.folds) > std::min(frauds, legit)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "cross-validation: " + std::to_string(options.folds) +
                          " folds need 2 ≤ folds ≤ the rows of the rarer class (" +
                          std::to_string(std::min(frauds, legit)) + ")");
  }
  const std::vector<int> fold = stratified_folds(data.labels, options.folds, options.seed);
  CrossValidation cv;
  std::array<std::vector<double>, 2> auc, ap;
  for (auto& oof : cv.out_of_fold) oof.assign(data.size(), kNaN);
  for (int f = 0; f < options.folds; ++f) {
    std::vector<Features> train_rows, test_rows;
    std::vector<uint8_t> train_labels, test_labels;
    std::vector<size_t> test_index;
    for (size_t i = 0; i < data.size(); ++i) {
      if (fold[i] == f) {
        test_rows.push_back(data.rows[i]);
        test_labels.push_back(data.labels[i]);
        test_index.push_back(i);
      } else {
        train_rows.push_back(data.rows[i]);
        train_labels.push_back(data.labels[i]);
      }
    }
    for (size_t k = 0; k < kKinds.size(); ++k) {
      auto fitted = fit(kKinds[k], train_rows, train_labels, options, ModelInfo{});
      if (!fitted) return std::unexpected(fitted.error());
      std::vector<double> scores(test_rows.size());
      for (size_t i = 0; i < test_rows.size(); ++i) {
        scores[i] = fitted->model->probability(test_rows[i]);
        cv.out_of_fold[k][test_index[i]] = scores[i];
      }
      auc[k].push_back(roc_auc(scores, test_labels));
      ap[k].push_back(average_precision(scores, test_labels));
    }
  }
  for (size_t k = 0; k < kKinds.size(); ++k) {
    cv.evaluations.push_back({.model = kKinds[k],
                              .folds = options.folds,
                              .roc_auc = mean(auc[k]),
                              .auprc = mean(ap[k]),
                              .roc_auc_std = sample_std(auc[k]),
                              .auprc_std = sample_std(ap[k]),
                              .rows = data.size(),
                              .frauds = frauds});
  }
  return cv;
}

// Precision, recall and F1 of "fraud when score ≥ threshold".
ThresholdChoice at_threshold(std::span<const double> scores, std::span<const uint8_t> labels,
                             double threshold) {
  double tp = 0, fp = 0, positives = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    positives += labels[i];
    if (scores[i] >= threshold) (labels[i] != 0 ? tp : fp) += 1;
  }
  ThresholdChoice c{threshold, 0, tp + fp > 0 ? tp / (tp + fp) : 0,
                    positives > 0 ? tp / positives : 0};
  if (c.precision + c.recall > 0) c.f1 = 2 * c.precision * c.recall / (c.precision + c.recall);
  return c;
}

nlohmann::json evaluation_json(const ModelEvaluation& e) {
  return {{"model", to_string(e.model)},
          {"roc_auc", e.roc_auc},
          {"roc_auc_std", e.roc_auc_std},
          {"auprc", e.auprc},
          {"auprc_std", e.auprc_std}};
}

}  // namespace

std::vector<int> stratified_folds(std::span<const uint8_t> labels, int folds, uint64_t seed) {
  std::vector<int> fold(labels.size(), 0);
  if (folds < 1) return fold;
  uint64_t state = seed;
  size_t dealt = 0;  // continues across classes, so fold sizes differ by at most one
  for (uint8_t cls : {uint8_t{1}, uint8_t{0}}) {
    std::vector<size_t> members;
    for (size_t i = 0; i < labels.size(); ++i) {
      if ((labels[i] != 0) == (cls != 0)) members.push_back(i);
    }
    // Fisher–Yates with splitmix64: the same folds on every platform for a seed.
    for (size_t i = members.size(); i > 1; --i) {
      const size_t j = static_cast<size_t>(splitmix64_next(state) % i);
      std::swap(members[i - 1], members[j]);
    }
    for (size_t m : members) fold[m] = static_cast<int>(dealt++ % static_cast<size_t>(folds));
  }
  return fold;
}

Result<std::vector<ModelEvaluation>> evaluate(const Transactions& data, const TrainOptions& options,
                                              const Transactions* test) {
  if (test == nullptr) {
    auto cv = cross_validate(data, options);
    if (!cv) return std::unexpected(cv.error());
    return std::move(cv->evaluations);
  }
  std::vector<ModelEvaluation> out;
  for (ModelKind kind : kKinds) {
    auto fitted = fit(kind, data.rows, data.labels, options, ModelInfo{});
    if (!fitted) return std::unexpected(fitted.error());
    std::vector<double> scores(test->size());
    for (size_t i = 0; i < test->size(); ++i) scores[i] = fitted->model->probability(test->rows[i]);
    out.push_back({.model = kind,
                   .folds = 0,
                   .roc_auc = roc_auc(scores, test->labels),
                   .auprc = average_precision(scores, test->labels),
                   .roc_auc_std = kNaN,
                   .auprc_std = kNaN,
                   .rows = test->size(),
                   .frauds = test->frauds()});
  }
  return out;
}

Result<TrainedModel> train_model(const Transactions& data, const TrainOptions& options, int version,
                                 std::string created_at, std::optional<double> fixed_threshold) {
  if (version < 1) return make_error(ErrorCode::kInvalidArgument, "version: expected ≥ 1");
  if (fixed_threshold && !(*fixed_threshold > 0 && *fixed_threshold < 1)) {
    return make_error(ErrorCode::kInvalidArgument, "threshold: expected a number in (0, 1)");
  }
  auto cv = cross_validate(data, options);
  if (!cv) return std::unexpected(cv.error());
  const size_t served = options.model == ModelKind::kGradientBoostedTrees ? 0 : 1;
  const std::vector<double>& oof = cv->out_of_fold[served];

  TrainedModel trained;
  trained.evaluations = cv->evaluations;
  trained.threshold = fixed_threshold ? at_threshold(oof, data.labels, *fixed_threshold)
                                      : best_f1_threshold(oof, data.labels);
  // A threshold of exactly 0 or 1 (saturated probabilities) is not a valid file threshold.
  trained.threshold.threshold = std::clamp(trained.threshold.threshold, 1e-12, 1 - 1e-12);

  ModelInfo info;
  info.version = version;
  info.kind = options.model;
  info.threshold = trained.threshold.threshold;
  info.created_at = std::move(created_at);
  nlohmann::json parameters;
  if (options.model == ModelKind::kGradientBoostedTrees) {
    parameters = {{"library", "xgboost " + xgboost_version()},
                  {"objective", "binary:logistic"},
                  {"tree_method", "hist"},
                  {"rounds", options.gbt.rounds},
                  {"max_depth", options.gbt.max_depth},
                  {"eta", options.gbt.eta},
                  {"subsample", options.gbt.subsample},
                  {"colsample_bytree", options.gbt.colsample_bytree},
                  {"min_child_weight", options.gbt.min_child_weight},
                  {"lambda", options.gbt.lambda},
                  {"threads", options.gbt.threads}};
  } else {
    parameters = {{"l2", options.logistic.l2},
                  {"max_iterations", options.logistic.max_iterations},
                  {"tolerance", options.logistic.tolerance}};
  }
  info.training = {
      {"data", data.source},
      {"data_sha256", data.sha256},
      {"rows", data.size()},
      {"frauds", data.frauds()},
      {"seed", options.seed},
      {"positive_weight_rule", options.positive_weight > 0 ? "fixed" : "legitimate / fraud rows"},
      {"parameters", parameters}};
  const ModelEvaluation& own = cv->evaluations[served];
  info.metrics = evaluation_json(own);
  info.metrics["method"] =
      "stratified " + std::to_string(options.folds) + "-fold cross-validation, mean over folds";
  info.metrics["folds"] = options.folds;
  info.metrics["threshold_rule"] =
      fixed_threshold ? "fixed" : "maximum F1 on out-of-fold probabilities";
  info.metrics["threshold_precision"] = trained.threshold.precision;
  info.metrics["threshold_recall"] = trained.threshold.recall;
  info.metrics["threshold_f1"] = trained.threshold.f1;
  info.metrics["baseline"] = evaluation_json(cv->evaluations[1 - served]);

  auto fitted = fit(options.model, data.rows, data.labels, options, std::move(info));
  if (!fitted) return std::unexpected(fitted.error());

  if (const TreeEnsemble* trees = fitted->model->trees()) {
    // The served evaluator must be XGBoost, bit for bit: check every training row.
    auto booster = internal::XgbBooster::from_json(std::get<XgboostModelJson>(fitted->body).json);
    if (!booster) return std::unexpected(booster.error());
    auto margins = booster->predict(data.rows, internal::XgbBooster::Output::kMargin);
    if (!margins) return std::unexpected(margins.error());
    for (size_t i = 0; i < data.size(); ++i) {
      const float own_margin = trees->margin(data.rows[i]);
      if (own_margin != (*margins)[i]) {
        return make_error(ErrorCode::kInternal,
                          "compiled trees differ from XGBoost on row " + std::to_string(i) + ": " +
                              std::to_string(own_margin) + " vs " + std::to_string((*margins)[i]));
      }
    }
  }
  trained.model = std::move(fitted->model);
  trained.body = std::move(fitted->body);
  return trained;
}

}  // namespace prescale::fraud
