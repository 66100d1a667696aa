#include "eval_fraud.h"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_checks.h"
#include "command_util.h"
#include "services/fraud/training.h"
#include "services/fraud/transactions.h"

namespace prescale {

struct EvalFraudFlags {
  std::string data;
  std::string test;
  std::string json_path;
  int folds = 5;
  uint64_t seed = 1;
};

namespace {

using Json = nlohmann::ordered_json;

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

int run_fraud_eval(const EvalFraudFlags& f) {
  const char* who = "prescale eval fraud";
  // Before the cross-validation, which may take minutes, not after it.
  if (!f.json_path.empty() && !output_path_usable(who, "--json", f.json_path)) return 2;
  auto data = fraud::read_transactions(f.data);
  if (!data) {
    std::cerr << who << ": --data: " << data.error().message << "\n";
    return 2;
  }
  std::optional<fraud::Transactions> test;
  if (!f.test.empty()) {
    // A hold-out that is the training file scores the model on what it learned: a figure that
    // looks like a result and is none.
    if (same_file(f.test, f.data)) {
      std::cerr << who << ": --test: " << f.test
                << " is the --data file; a hold-out must be rows the model did not train on\n";
      return 2;
    }
    auto t = fraud::read_transactions(f.test);
    if (!t) {
      std::cerr << who << ": --test: " << t.error().message << "\n";
      return 2;
    }
    test = std::move(*t);
  }
  fraud::TrainOptions options;
  options.folds = f.folds;
  options.seed = f.seed;
  auto results = fraud::evaluate(*data, options, test ? &*test : nullptr);
  if (!results) {
    std::cerr << who << ": " << results.error().message << "\n";
    return 2;
  }

  std::printf("data %s: %zu transactions, %zu frauds (%.1f %%)\n", f.data.c_str(), data->size(),
              data->frauds(),
              100.0 * static_cast<double>(data->frauds()) / static_cast<double>(data->size()));
  if (test) {
    std::printf("trained on all of it, scored on %s: %zu transactions, %zu frauds\n\n",
                f.test.c_str(), test->size(), test->frauds());
  } else {
    std::printf(
        "stratified %d-fold cross-validation, seed %llu (mean ± standard deviation over "
        "folds)\n\n",
        f.folds, static_cast<unsigned long long>(f.seed));
  }
  std::printf("%-24s %8s %8s %8s %8s\n", "model", "ROC-AUC", "± std", "AUPRC", "± std");
  Json all = Json::array();
  for (const fraud::ModelEvaluation& e : *results) {
    const std::string model(fraud::to_string(e.model));
    auto fixed = [](double v) {
      char buf[32];
      if (!std::isfinite(v)) return std::string("-");
      std::snprintf(buf, sizeof buf, "%.4f", v);
      return std::string(buf);
    };
    std::printf("%-24s %8s %8s %8s %8s\n", model.c_str(), fixed(e.roc_auc).c_str(),
                fixed(e.roc_auc_std).c_str(), fixed(e.auprc).c_str(), fixed(e.auprc_std).c_str());
    Json j;
    j["model"] = model;
    j["roc_auc"] = number_or_null(e.roc_auc);
    j["auprc"] = number_or_null(e.auprc);
    j["roc_auc_std"] = number_or_null(e.roc_auc_std);
    j["auprc_std"] = number_or_null(e.auprc_std);
    j["evaluation"] = e.folds > 0 ? "cross_validation" : "holdout";
    j["folds"] = e.folds;
    j["seed"] = f.seed;
    j["rows"] = e.rows;
    j["frauds"] = e.frauds;
    j["data"] = f.data;
    if (test) j["test"] = f.test;
    all.push_back(std::move(j));
  }
  if (!f.json_path.empty() &&
      !write_command_output(who, "--json", f.json_path, all.dump(2) + "\n")) {
    return 1;
  }
  return 0;
}

}  // namespace

EvalFraudCommand::EvalFraudCommand(CLI::App& eval) : flags_(std::make_unique<EvalFraudFlags>()) {
  EvalFraudFlags& f = *flags_;
  command_ =
      eval.add_subcommand("fraud",
                          "ROC-AUC and AUPRC of the fraud models (gradient-boosted trees, logistic "
                          "regression): stratified cross-validation, or a hold-out --test file");
  CLI::App& c = *command_;
  c.add_option("--data", f.data,
               "Labelled transactions, CSV with Time, V1..V28, Amount, Class (docs/services/"
               "fraud.md)")
      ->required();
  c.add_option("--test", f.test,
               "Train on --data and score this file (same columns) instead of cross-validating");
  c.add_option("--folds", f.folds, "Cross-validation folds")
      ->check(CLI::Range(2, 100))
      ->capture_default_str();
  c.add_option("--seed", f.seed, "Seed of the fold assignment and the trees' subsampling")
      ->check(non_negative())
      ->capture_default_str();
  c.add_option("--json", f.json_path,
               "Write the figures as a JSON array, one object per model (docs/services/fraud.md)");
}

EvalFraudCommand::~EvalFraudCommand() = default;

bool EvalFraudCommand::parsed() const { return command_->parsed(); }

int EvalFraudCommand::run() const { return run_fraud_eval(*flags_); }

}  // namespace prescale
