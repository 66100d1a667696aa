// `prescale train recommend`: trains a recommendation model on a ratings file and writes it as
// the next version in a model directory (recommend-v<N>.bin + .json), which `prescale serve
// recommend` serves and hot-reloads (docs/services/recommend.md, "Training").
//
//   prescale train recommend --model ease --out models/recommend
//       --data ../shared/data/recsys/movielens-latest-small
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct TrainRecommendFlags;

class TrainRecommendCommand {
 public:
  // Adds `recommend` and its flags to the `train` command.
  explicit TrainRecommendCommand(CLI::App& train);
  ~TrainRecommendCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (could not write the model), 2 (bad input)

 private:
  CLI::App* command_;
  std::unique_ptr<TrainRecommendFlags> flags_;
};

}  // namespace prescale
