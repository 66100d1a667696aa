// `prescale train fraud`: trains the fraud model on labelled card transactions and writes the
// next versioned model file, fraud-v<N>.json, into the model directory that `prescale serve
// fraud` watches (docs/services/fraud.md, "Training and model files"). The file carries the
// cross-validated metrics and the decision threshold (best F1 on out-of-fold probabilities unless
// --threshold is given).
//
//   prescale train fraud --data ../shared/data/fraud/ulb-creditcard-sample-train.csv --model-dir
//   models
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct TrainFraudFlags;

class TrainFraudCommand {
 public:
  // Adds the `fraud` subcommand to `train` (a `prescale train` command).
  explicit TrainFraudCommand(CLI::App& train);
  ~TrainFraudCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (training or writing failed), 2 (bad input)

 private:
  CLI::App* command_;
  std::unique_ptr<TrainFraudFlags> flags_;
};

}  // namespace prescale
