#include "eval_recommend.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_checks.h"
#include "command_util.h"
#include "services/recommend/evaluate.h"

namespace prescale {

struct EvalRecommendFlags {
  std::string data;
  std::string json_path;
  std::string models = "toppop,itemknn,als,ease";
  bool no_tune = false;
  bool verbose = false;
  double min_rating = 3.5;
  bool weight_by_rating = false;
  double test_share = 0.2;
  double validation_share = 0.2;
};

namespace {

using Json = nlohmann::ordered_json;

Json scores_json(const recommend::Scores& s) {
  return {{"precision_at_10", s.precision_at_10},
          {"recall_at_20", s.recall_at_20},
          {"ndcg_at_10", s.ndcg_at_10},
          {"coverage", s.coverage},
          {"users", s.users}};
}

int run_recommend_eval(const EvalRecommendFlags& f) {
  const char* who = "prescale eval recommend";
  recommend::EvaluateOptions options;
  options.models.clear();
  std::stringstream list(f.models);
  for (std::string name; std::getline(list, name, ',');) {
    if (name.empty()) continue;
    auto kind = recommend::model_kind_from_string(name);
    if (!kind) {
      std::cerr << who << ": --models: unknown model \"" << name
                << "\" (toppop, itemknn, als, ease)\n";
      return 2;
    }
    if (std::find(options.models.begin(), options.models.end(), *kind) != options.models.end()) {
      std::cerr << who << ": --models: \"" << name << "\" is listed twice\n";
      return 2;
    }
    options.models.push_back(*kind);
  }
  if (options.models.empty()) {
    std::cerr << who << ": --models: no models given\n";
    return 2;
  }
  options.tune = !f.no_tune;
  options.test_share = f.test_share;
  options.validation_share = f.validation_share;
  if (f.verbose) {
    options.progress = [](std::string_view line) {
      std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
      std::fflush(stdout);
    };
  }

  // Before the evaluation, which may take minutes, not after it.
  if (!f.json_path.empty() && !output_path_usable(who, "--json", f.json_path)) return 2;
  const std::string path = ratings_path(f.data);
  auto data = recommend::read_ratings_csv(
      path, {.min_rating = f.min_rating, .weight_by_rating = f.weight_by_rating});
  if (!data) {
    std::cerr << who << ": --data: " << data.error().message << "\n";
    return 2;
  }
  std::printf("%s: %zu interactions (ratings >= %g), each user's last %.0f %% held out%s\n\n",
              path.c_str(), data->size(), f.min_rating, 100 * f.test_share,
              options.tune ? "; hyper-parameters chosen on a validation split of the rest" : "");
  auto results = recommend::evaluate(*data, options);
  if (!results) {
    std::cerr << who << ": " << results.error().message << "\n";
    return 2;
  }

  std::printf("%-8s %13s %10s %8s %9s %6s %9s  %s\n", "model", "precision@10", "recall@20",
              "ndcg@10", "coverage", "users", "train_s", "hyper-parameters");
  Json all = Json::array();
  for (const recommend::ModelEvaluation& e : *results) {
    const std::string name(recommend::to_string(e.model));
    std::printf("%-8s %13.4f %10.4f %8.4f %9.4f %6d %9.2f  %s\n", name.c_str(),
                e.test.precision_at_10, e.test.recall_at_20, e.test.ndcg_at_10, e.test.coverage,
                e.test.users, e.train_seconds, e.hyperparameters.c_str());
    Json j;
    j["model"] = name;
    j["precision_at_10"] = e.test.precision_at_10;
    j["recall_at_20"] = e.test.recall_at_20;
    j["ndcg_at_10"] = e.test.ndcg_at_10;
    j["coverage"] = e.test.coverage;
    j["users"] = e.test.users;
    j["train_seconds"] = e.train_seconds;
    j["hyperparameters"] = e.hyperparameters;
    if (options.tune) j["validation"] = scores_json(e.validation);
    all.push_back(std::move(j));
  }
  if (!f.json_path.empty() &&
      !write_command_output(who, "--json", f.json_path, all.dump(2) + "\n")) {
    return 1;
  }
  return 0;
}

}  // namespace

std::string ratings_path(const std::string& data) {
  std::error_code ec;
  if (std::filesystem::is_directory(data, ec)) {
    return (std::filesystem::path(data) / "ratings.csv").string();
  }
  return data;
}

EvalRecommendCommand::EvalRecommendCommand(CLI::App& eval)
    : flags_(std::make_unique<EvalRecommendFlags>()) {
  EvalRecommendFlags& f = *flags_;
  command_ = eval.add_subcommand(
      "recommend", "Score TopPop, ItemKNN, ALS and EASE on each user's most recent interactions");
  CLI::App& c = *command_;
  c.add_option("--data", f.data,
               "Directory with ratings.csv (userId,movieId,rating,timestamp), "
               "or the file")
      ->required();
  c.add_option("--json", f.json_path, "Write the scores as a JSON array, one object per model");
  c.add_option("--models", f.models, "Comma-separated models")->capture_default_str();
  c.add_flag("--no-tune", f.no_tune,
             "Use the default hyper-parameters instead of choosing them on the validation split");
  c.add_flag("-v,--verbose", f.verbose, "Print every validation fit");
  c.add_option("--min-rating", f.min_rating, "Ratings below this are not interactions")
      ->check(finite())
      ->capture_default_str();
  c.add_flag("--weight-by-rating", f.weight_by_rating,
             "Weight an interaction by rating - min-rating + 1 instead of 1");
  c.add_option("--test-share", f.test_share, "Share of each user's interactions held out")
      ->check(finite())
      ->check(CLI::Range(0.01, 0.9))
      ->capture_default_str();
  c.add_option("--validation-share", f.validation_share,
               "Share of each user's training interactions used for choosing hyper-parameters")
      ->check(finite())
      ->check(CLI::Range(0.01, 0.9))
      ->capture_default_str();
}

EvalRecommendCommand::~EvalRecommendCommand() = default;

bool EvalRecommendCommand::parsed() const { return command_->parsed(); }

int EvalRecommendCommand::run() const { return run_recommend_eval(*flags_); }

}  // namespace prescale
