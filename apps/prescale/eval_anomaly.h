// `prescale eval anomaly`: the healer's anomaly detectors and NAB's windowedGaussian (the peer)
// run on every series of the Numenta Anomaly Benchmark and scored as NAB scores them — a
// normalised score per scoring profile, at the one threshold per detector and profile that does
// best over the whole corpus (docs/healing.md, "Evaluation").
//
//   prescale eval anomaly --nab ../shared/data/nab --json out.json
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct EvalAnomalyFlags;

class EvalAnomalyCommand {
 public:
  // Adds the `anomaly` subcommand to `eval` (the `prescale eval` command).
  explicit EvalAnomalyCommand(CLI::App& eval);
  ~EvalAnomalyCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (could not write --json), 2 (bad input)

 private:
  CLI::App* command_;
  std::unique_ptr<EvalAnomalyFlags> flags_;
};

}  // namespace prescale
