// `prescale eval fraud`: ROC-AUC and AUPRC of the gradient-boosted trees and the logistic-
// regression baseline on labelled card transactions — stratified k-fold cross-validation of
// --data, or, with --test, trained on --data and scored on --test (docs/services/fraud.md,
// "Evaluation").
//
//   prescale eval fraud --data ../shared/data/fraud/ulb-creditcard-sample-train.csv --json out.json
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct EvalFraudFlags;

class EvalFraudCommand {
 public:
  // Adds the `fraud` subcommand to `eval` (the `prescale eval` command).
  explicit EvalFraudCommand(CLI::App& eval);
  ~EvalFraudCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (could not write --json), 2 (bad input)

 private:
  CLI::App* command_;
  std::unique_ptr<EvalFraudFlags> flags_;
};

}  // namespace prescale
