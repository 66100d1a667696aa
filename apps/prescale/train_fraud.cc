#include "train_fraud.h"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "cli_checks.h"
#include "command_util.h"
#include "core/clock.h"
#include "services/fraud/model_file.h"
#include "services/fraud/training.h"
#include "services/fraud/transactions.h"

namespace prescale {

struct TrainFraudFlags {
  std::string data;
  std::string model_dir = "models";
  std::string model = "gradient_boosted_trees";
  int version = 0;       // 0: the next free one
  double threshold = 0;  // 0: chosen on out-of-fold probabilities
  int folds = 5;
  uint64_t seed = 1;
  int rounds = fraud::GbtOptions{}.rounds;
  int max_depth = fraud::GbtOptions{}.max_depth;
  double eta = fraud::GbtOptions{}.eta;
  double l2 = fraud::LogisticOptions{}.l2;
  double positive_weight = 0;
};

namespace {

int run_fraud_train(const TrainFraudFlags& f) {
  const char* who = "prescale train fraud";
  // Before the training, which may take minutes, not when its model is to be written.
  if (!model_dir_usable(who, "--model-dir", f.model_dir)) return 2;
  if (f.version > 0) {
    // Before training, which may take minutes; write_model_file() refuses it again at the end
    // should another writer have taken the version meanwhile.
    const auto path = std::filesystem::path(f.model_dir) / fraud::model_file_name(f.version);
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      std::cerr << who << ": --version " << f.version << ": " << path.string()
                << " exists; model files are never overwritten (pick another version)\n";
      return 2;
    }
  }
  auto data = fraud::read_transactions(f.data);
  if (!data) {
    std::cerr << who << ": --data: " << data.error().message << "\n";
    return 2;
  }
  fraud::TrainOptions options;
  options.model = *fraud::model_kind_from_string(f.model);  // checked by CLI11
  options.folds = f.folds;
  options.seed = f.seed;
  options.gbt.rounds = f.rounds;
  options.gbt.max_depth = f.max_depth;
  options.gbt.eta = f.eta;
  options.logistic.l2 = f.l2;
  options.positive_weight = f.positive_weight;

  int version = f.version;
  if (version == 0) {
    auto next = fraud::next_model_version(f.model_dir);
    if (!next) {
      std::cerr << who << ": --model-dir: " << next.error().message << "\n";
      return 2;
    }
    version = *next;
  }
  std::optional<double> threshold;
  if (f.threshold > 0) threshold = f.threshold;
  auto trained =
      fraud::train_model(*data, options, version, format_utc(Clock::real().wall_now()), threshold);
  if (!trained) {
    std::cerr << who << ": " << trained.error().message << "\n";
    return trained.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  auto path = fraud::write_model_file(f.model_dir, trained->model->info(), trained->body);
  if (!path) {
    std::cerr << who << ": " << path.error().message << "\n";
    return path.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  const fraud::ModelInfo& info = trained->model->info();
  const fraud::ModelEvaluation& own =
      trained->evaluations[info.kind == fraud::ModelKind::kGradientBoostedTrees ? 0 : 1];
  const fraud::ModelEvaluation& other =
      trained->evaluations[info.kind == fraud::ModelKind::kGradientBoostedTrees ? 1 : 0];
  std::printf("wrote %s: %s on %zu transactions (%zu frauds), positive weight %.3f\n",
              path->c_str(), std::string(fraud::to_string(info.kind)).c_str(), data->size(),
              data->frauds(), info.positive_weight);
  std::printf("  %d-fold CV: ROC-AUC %.4f ± %.4f, AUPRC %.4f ± %.4f (%s: %.4f, %.4f)\n", f.folds,
              own.roc_auc, own.roc_auc_std, own.auprc, own.auprc_std,
              std::string(fraud::to_string(other.model)).c_str(), other.roc_auc, other.auprc);
  std::printf("  threshold %.4f (%s): out of fold precision %.3f, recall %.3f, F1 %.3f\n",
              info.threshold, threshold ? "fixed" : "maximum F1 out of fold",
              trained->threshold.precision, trained->threshold.recall, trained->threshold.f1);
  return 0;
}

}  // namespace

TrainFraudCommand::TrainFraudCommand(CLI::App& train)
    : flags_(std::make_unique<TrainFraudFlags>()) {
  TrainFraudFlags& f = *flags_;
  command_ = train.add_subcommand(
      "fraud", "Train the fraud model and write the next versioned model file (fraud-v<N>.json)");
  CLI::App& c = *command_;
  c.add_option("--data", f.data, "Labelled transactions, CSV with Time, V1..V28, Amount, Class")
      ->required();
  c.add_option("--model-dir", f.model_dir,
               "Directory of model files (`prescale serve fraud` "
               "watches it)")
      ->capture_default_str();
  c.add_option("--model", f.model, "gradient_boosted_trees or logistic_regression")
      ->check(CLI::IsMember({"gradient_boosted_trees", "logistic_regression"}))
      ->capture_default_str();
  c.add_option("--version", f.version, "Version N of fraud-vN.json (default: one past the newest)")
      ->check(CLI::Range(1, 1000000000));
  c.add_option("--threshold", f.threshold,
               "Decision threshold on fraud_probability (default: best F1 out of fold)")
      ->check(finite())
      ->check(CLI::Range(0.0, 1.0));
  c.add_option("--folds", f.folds, "Cross-validation folds for the metrics and the threshold")
      ->check(CLI::Range(2, 100))
      ->capture_default_str();
  c.add_option("--seed", f.seed, "Seed of the folds and the trees' subsampling")
      ->check(non_negative())
      ->capture_default_str();
  c.add_option("--rounds", f.rounds, "Trees")->check(CLI::Range(1, 100000))->capture_default_str();
  c.add_option("--max-depth", f.max_depth, "Depth of each tree")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  c.add_option("--eta", f.eta, "Learning rate")
      ->check(finite())
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  c.add_option("--l2", f.l2, "L2 penalty of the logistic regression")
      ->check(finite())
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  c.add_option("--positive-weight", f.positive_weight,
               "Weight of a fraud in training (default 0: legitimate / fraud rows)")
      ->check(finite())
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
}

TrainFraudCommand::~TrainFraudCommand() = default;

bool TrainFraudCommand::parsed() const { return command_->parsed(); }

int TrainFraudCommand::run() const { return run_fraud_train(*flags_); }

}  // namespace prescale
