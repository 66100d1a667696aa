// The `prescale eval fraud` and `prescale train fraud` commands, run through CLI11 as the
// prescale binary will (apps/prescale/eval_fraud.cc, train_fraud.cc).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "eval_fraud.h"
#include "services/fraud/fraud_test_util.h"
#include "services/fraud/model_file.h"
#include "train_fraud.h"

namespace prescale {
namespace {

using fraud::testing::TempDir;

class FraudCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_path_ = (dir_.path() / "train.csv").string();
    test_path_ = (dir_.path() / "test.csv").string();
    fraud::testing::write_text(
        data_path_, fraud::testing::to_csv(fraud::testing::generated_transactions(500, 1)));
    fraud::testing::write_text(
        test_path_, fraud::testing::to_csv(fraud::testing::generated_transactions(300, 2)));
  }

  // Parses `args` as `prescale <args>` and runs the command that was parsed.
  int run(std::vector<std::string> args) {
    CLI::App app{"prescale"};
    CLI::App* eval = app.add_subcommand("eval");
    CLI::App* train = app.add_subcommand("train");
    EvalFraudCommand eval_fraud(*eval);
    TrainFraudCommand train_fraud(*train);
    if (auto status = prescale::testing::parse_command_line(app, args)) return *status;
    if (eval_fraud.parsed()) return eval_fraud.run();
    if (train_fraud.parsed()) return train_fraud.run();
    return -1;
  }

  nlohmann::json read_json(const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
  }

  TempDir dir_;
  std::string data_path_, test_path_;
};

TEST_F(FraudCliTest, EvalWritesOneObjectPerModel) {
  const std::string out = (dir_.path() / "cv.json").string();
  ASSERT_EQ(run({"eval", "fraud", "--data", data_path_, "--folds", "3", "--json", out}), 0);
  const auto j = read_json(out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["model"], "gradient_boosted_trees");
  EXPECT_EQ(j[1]["model"], "logistic_regression");
  for (const auto& e : j) {
    EXPECT_EQ(e["evaluation"], "cross_validation");
    EXPECT_EQ(e["folds"], 3);
    EXPECT_GT(e["roc_auc"].get<double>(), 0.5);
    EXPECT_GT(e["auprc"].get<double>(), 0.2);
    EXPECT_TRUE(e["roc_auc_std"].is_number());
  }

  const std::string holdout = (dir_.path() / "holdout.json").string();
  ASSERT_EQ(run({"eval", "fraud", "--data", data_path_, "--test", test_path_, "--json", holdout}),
            0);
  const auto h = read_json(holdout);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0]["evaluation"], "holdout");
  EXPECT_EQ(h[0]["rows"], 300);
  EXPECT_TRUE(h[0]["auprc_std"].is_null());
}

TEST_F(FraudCliTest, EvalRejectsBadInput) {
  EXPECT_EQ(run({"eval", "fraud", "--data", (dir_.path() / "none.csv").string()}), 2);
  EXPECT_EQ(run({"eval", "fraud"}), 2);
  fraud::testing::write_text(dir_.path() / "bad.csv", ",Time,V1\n0,1,2\n");
  EXPECT_EQ(run({"eval", "fraud", "--data", (dir_.path() / "bad.csv").string()}), 2);
  // The training file as its own hold-out: a score of the model on what it learned.
  EXPECT_EQ(run({"eval", "fraud", "--data", data_path_, "--test", data_path_}), 2);
}

TEST_F(FraudCliTest, TrainWritesTheNextVersion) {
  const std::string models = (dir_.path() / "models").string();
  ASSERT_EQ(run({"train", "fraud", "--data", data_path_, "--model-dir", models, "--folds", "3",
                 "--rounds", "20"}),
            0);
  ASSERT_EQ(run({"train", "fraud", "--data", data_path_, "--model-dir", models, "--folds", "3",
                 "--model", "logistic_regression", "--threshold", "0.7"}),
            0);
  auto files = fraud::list_model_files(models);
  ASSERT_TRUE(files);
  ASSERT_EQ(files->size(), 2u);
  auto v2 = fraud::load_model_file((*files)[0].path);
  ASSERT_TRUE(v2) << v2.error().message;
  EXPECT_EQ((*v2)->name(), "fraud-v2");
  EXPECT_EQ((*v2)->info().kind, fraud::ModelKind::kLogisticRegression);
  EXPECT_EQ((*v2)->info().threshold, 0.7);
  auto v1 = fraud::load_model_file((*files)[1].path);
  ASSERT_TRUE(v1) << v1.error().message;
  EXPECT_EQ((*v1)->info().training["parameters"]["rounds"], 20);
  EXPECT_EQ((*v1)->info().training["data"], data_path_);
  // An existing version is never overwritten.
  EXPECT_EQ(run({"train", "fraud", "--data", data_path_, "--model-dir", models, "--version", "1",
                 "--folds", "3"}),
            2);
  EXPECT_EQ(run({"train", "fraud", "--data", data_path_, "--model", "forest"}), 2);
}

// Where --json cannot be written was found only after the cross-validation (minutes on the full
// data set), the scores then lost, and it exited 1; now before it, exit 2, as a bad flag value.
TEST_F(FraudCliTest, EvalRefusesAJsonFileItCannotWriteBeforeItRuns) {
  EXPECT_EQ(run({"eval", "fraud", "--data", data_path_, "--folds", "3", "--json",
                 (dir_.path() / "missing" / "out.json").string()}),
            2);
  EXPECT_EQ(
      run({"eval", "fraud", "--data", data_path_, "--folds", "3", "--json", dir_.path().string()}),
      2);
}

// A --model-dir that cannot be one (a file, or under one) was found when the trained model was to
// be written, after the cross-validation and the fit, and exited 1; now before them, exit 2.
TEST_F(FraudCliTest, TrainRefusesAModelDirItCannotWriteBeforeTraining) {
  for (const std::string& dir : {data_path_, data_path_ + "/models"}) {
    EXPECT_EQ(run({"train", "fraud", "--data", data_path_, "--model-dir", dir, "--folds", "3"}), 2)
        << dir;
  }
}

// An existing --version was refused only when the trained model was to be written, after the
// cross-validation and the fit (minutes on the full data set). Now first: here the --data file is
// missing too, and the version is what is reported.
TEST_F(FraudCliTest, TrainRefusesAnExistingVersionBeforeAnythingElse) {
  const std::string models = (dir_.path() / "models").string();
  ASSERT_EQ(run({"train", "fraud", "--data", data_path_, "--model-dir", models, "--folds", "3",
                 "--rounds", "5"}),
            0);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run({"train", "fraud", "--data", (dir_.path() / "none.csv").string(), "--model-dir",
                 models, "--version", "1"}),
            2);
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              ::testing::HasSubstr("fraud-v1.json exists; model files are never overwritten"));
}

}  // namespace
}  // namespace prescale
