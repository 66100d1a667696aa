// `prescale train forecast`: trains the forecast service's global booster across demand traces and
// writes it as the next version in a model directory (forecast-v<N>.ubj + .json), which `prescale
// serve forecast --model-dir` serves and hot-reloads (docs/services/forecast.md, "Model files").
//
//   prescale train forecast --model-dir models/forecast
//       --trace ../shared/data/traces/nasa-http-1995-07.csv
//       --trace ../shared/data/traces/alibaba-genai-2026-qps-per-minute.csv
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct TrainForecastFlags;

class TrainForecastCommand {
 public:
  // Adds `forecast` and its flags to the `train` command.
  explicit TrainForecastCommand(CLI::App& train);
  ~TrainForecastCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (could not write the model), 2 (bad input)

 private:
  CLI::App* command_;
  std::unique_ptr<TrainForecastFlags> flags_;
};

}  // namespace prescale
