#include "train_recommend.h"

#include <cstdio>
#include <iostream>

#include "cli_checks.h"
#include "command_util.h"
#include "core/clock.h"
#include "eval_recommend.h"
#include "services/recommend/evaluate.h"
#include "services/recommend/model_file.h"

namespace prescale {

struct TrainRecommendFlags {
  std::string data;
  std::string model = "ease";
  std::string out;
  bool no_validate = false;
  double min_rating = 3.5;
  bool weight_by_rating = false;
  recommend::TrainOptions options;
};

namespace {

int run_recommend_train(const TrainRecommendFlags& f) {
  const char* who = "prescale train recommend";
  // Before the training, which may take minutes, not when its model is to be saved.
  if (!model_dir_usable(who, "--model-dir", f.out)) return 2;
  recommend::TrainOptions options = f.options;
  auto kind = recommend::model_kind_from_string(f.model);
  if (!kind) {
    std::cerr << who << ": --model: unknown model \"" << f.model
              << "\" (toppop, itemknn, als, ease)\n";
    return 2;
  }
  options.kind = *kind;

  const std::string path = ratings_path(f.data);
  auto data = recommend::read_ratings_csv(
      path, {.min_rating = f.min_rating, .weight_by_rating = f.weight_by_rating});
  if (!data) {
    std::cerr << who << ": --data: " << data.error().message << "\n";
    return 2;
  }
  auto hash = recommend::file_hash(path);
  if (!hash) {
    std::cerr << who << ": --data: " << hash.error().message << "\n";
    return 2;
  }
  recommend::SaveOptions save;
  save.data_hash = *hash;

  // Validation metrics for the manifest: the same hyper-parameters trained on each user's first
  // 80 % and scored on the last 20 % (the served model then trains on everything).
  if (!f.no_validate) {
    const recommend::TemporalSplit split = recommend::split_by_time(*data, 0.2);
    auto model = recommend::Model::train(split.train, options);
    if (!model) {
      std::cerr << who << ": " << model.error().message << "\n";
      return 2;
    }
    const recommend::Scores s = recommend::score_model(**model, split.test);
    save.metrics = {{"precision_at_10", s.precision_at_10},
                    {"recall_at_20", s.recall_at_20},
                    {"ndcg_at_10", s.ndcg_at_10},
                    {"coverage", s.coverage}};
    std::printf(
        "validation (each user's last 20 %% held out, %d users): precision@10 %.4f "
        "recall@20 %.4f ndcg@10 %.4f coverage %.4f\n",
        s.users, s.precision_at_10, s.recall_at_20, s.ndcg_at_10, s.coverage);
  }

  Clock& clock = Clock::real();
  const Clock::TimePoint start = clock.now();
  auto model = recommend::Model::train(*data, options);
  if (!model) {
    std::cerr << who << ": " << model.error().message << "\n";
    return 2;
  }
  const double seconds = to_seconds(clock.now() - start);
  auto saved = recommend::save_model(**model, f.out, save);
  if (!saved) {
    std::cerr << who << ": --out: " << saved.error().message << "\n";
    return 1;
  }
  std::printf("trained %s (%s) on %zu interactions of %d users and %d items in %.2f s\n",
              f.model.c_str(), recommend::describe_hyperparameters(options).c_str(), data->size(),
              (*model)->user_count(), (*model)->item_count(), seconds);
  std::printf("wrote %s (version %d) and %s\n", saved->model_path.c_str(), saved->version,
              saved->manifest_path.c_str());
  return 0;
}

}  // namespace

TrainRecommendCommand::TrainRecommendCommand(CLI::App& train)
    : flags_(std::make_unique<TrainRecommendFlags>()) {
  TrainRecommendFlags& f = *flags_;
  recommend::TrainOptions& o = f.options;
  command_ = train.add_subcommand(
      "recommend", "Train a recommendation model and write it as the next version in --out");
  CLI::App& c = *command_;
  c.add_option("--data", f.data,
               "Directory with ratings.csv (userId,movieId,rating,timestamp), "
               "or the file")
      ->required();
  c.add_option("--model", f.model, "toppop, itemknn, als or ease")
      ->check(CLI::IsMember({"toppop", "itemknn", "als", "ease"}))
      ->capture_default_str();
  c.add_option("--model-dir,--out", f.out, "Model directory (created if missing)")->required();
  c.add_flag("--no-validate", f.no_validate,
             "Skip the validation fit whose metrics the manifest records");
  c.add_option("--min-rating", f.min_rating, "Ratings below this are not interactions")
      ->check(finite())
      ->capture_default_str();
  c.add_flag("--weight-by-rating", f.weight_by_rating,
             "Weight an interaction by rating - min-rating + 1 instead of 1");
  // Hyper-parameters; the defaults were chosen on the MovieLens validation split.
  c.add_option("--factors", o.als.factors, "ALS: latent factors")->capture_default_str();
  c.add_option("--regularization", o.als.regularization, "ALS: L2 weight λ")->capture_default_str();
  c.add_option("--alpha", o.als.alpha, "ALS: confidence slope, c = 1 + alpha·weight")
      ->capture_default_str();
  c.add_option("--iterations", o.als.iterations, "ALS: sweeps")->capture_default_str();
  c.add_option("--cg-steps", o.als.cg_steps, "ALS: conjugate-gradient steps per solve")
      ->capture_default_str();
  c.add_option("--seed", o.als.seed, "ALS: seed of the initial factors")
      ->check(non_negative())
      ->capture_default_str();
  c.add_option("--lambda", o.ease.lambda, "EASE: L2 weight λ")->capture_default_str();
  c.add_option("--min-item-interactions", o.ease.min_item_interactions,
               "EASE: items with fewer training interactions are left out")
      ->capture_default_str();
  c.add_option("--max-items", o.ease.max_items,
               "EASE: at most this many items (memory 4·n² bytes, time cubic)")
      ->capture_default_str();
  c.add_option("--neighbours", o.item_knn.neighbours, "ItemKNN: neighbours kept per item")
      ->capture_default_str();
  c.add_option_function<float>(
       "--popularity-penalty",
       [&o](const float& v) { o.als.popularity_penalty = o.ease.popularity_penalty = v; },
       "ALS and EASE: divide scores by popularity^penalty (default 0.2)")
      ->check(finite())
      ->check(CLI::Range(0.0, 2.0));
}

TrainRecommendCommand::~TrainRecommendCommand() = default;

bool TrainRecommendCommand::parsed() const { return command_->parsed(); }

int TrainRecommendCommand::run() const { return run_recommend_train(*flags_); }

}  // namespace prescale
