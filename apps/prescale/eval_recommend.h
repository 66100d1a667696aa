// `prescale eval recommend`: TopPop, ItemKNN, implicit ALS and EASE on a ratings file, each
// user's most recent 20 % held out; hyper-parameters chosen on a validation split carved from
// the training part (docs/services/recommend.md, "Evaluation").
//
//   prescale eval recommend --data ../shared/data/recsys/movielens-latest-small --json out.json
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct EvalRecommendFlags;

class EvalRecommendCommand {
 public:
  // Adds `recommend` and its flags to the `eval` command.
  explicit EvalRecommendCommand(CLI::App& eval);
  ~EvalRecommendCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (could not write --json), 2 (bad input)

 private:
  CLI::App* command_;
  std::unique_ptr<EvalRecommendFlags> flags_;
};

// DIR/ratings.csv for a directory, else the path itself.
std::string ratings_path(const std::string& data);

}  // namespace prescale
