#include "services/fraud/training.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "services/fraud/fraud_test_util.h"

namespace prescale::fraud {
namespace {

TEST(StratifiedFolds, SpreadEachClassEvenlyAndDeterministically) {
  const Transactions data = testing::generated_transactions(1003, 2);
  const size_t frauds = data.frauds();
  const std::vector<int> folds = stratified_folds(data.labels, 5, 42);
  std::array<size_t, 5> size{}, fraud{};
  for (size_t i = 0; i < folds.size(); ++i) {
    ASSERT_GE(folds[i], 0);
    ASSERT_LT(folds[i], 5);
    ++size[static_cast<size_t>(folds[i])];
    fraud[static_cast<size_t>(folds[i])] += data.labels[i];
  }
  for (size_t f = 0; f < 5; ++f) {
    EXPECT_NEAR(static_cast<double>(fraud[f]), static_cast<double>(frauds) / 5, 1.0) << f;
    EXPECT_NEAR(static_cast<double>(size[f]), 1003.0 / 5, 1.0) << f;
  }
  EXPECT_EQ(stratified_folds(data.labels, 5, 42), folds);
  EXPECT_NE(stratified_folds(data.labels, 5, 43), folds);
}

TEST(FraudEvaluation, CrossValidatesBothModels) {
  const Transactions data = testing::generated_transactions(900, 6);
  auto results = evaluate(data, testing::quick_options());
  ASSERT_TRUE(results) << results.error().message;
  ASSERT_EQ(results->size(), 2u);
  EXPECT_EQ((*results)[0].model, ModelKind::kGradientBoostedTrees);
  EXPECT_EQ((*results)[1].model, ModelKind::kLogisticRegression);
  for (const ModelEvaluation& e : *results) {
    EXPECT_EQ(e.folds, 3);
    EXPECT_EQ(e.rows, 900u);
    EXPECT_GT(e.roc_auc, 0.6);
    EXPECT_LE(e.roc_auc, 1.0);
    EXPECT_GT(e.auprc, 0.3);
    EXPECT_GE(e.roc_auc_std, 0.0);
  }
  // Deterministic for a seed.
  auto again = evaluate(data, testing::quick_options());
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)[0].auprc, (*results)[0].auprc);
  EXPECT_EQ((*again)[1].roc_auc, (*results)[1].roc_auc);

  TrainOptions too_many = testing::quick_options();
  too_many.folds = 1;
  auto bad = evaluate(data, too_many);
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, ::testing::HasSubstr("need 2 ≤ folds"));
}

TEST(FraudEvaluation, ScoresAHoldOutFile) {
  const Transactions train = testing::generated_transactions(800, 6);
  const Transactions test = testing::generated_transactions(400, 7);
  auto results = evaluate(train, testing::quick_options(), &test);
  ASSERT_TRUE(results) << results.error().message;
  ASSERT_EQ(results->size(), 2u);
  EXPECT_EQ((*results)[0].folds, 0);
  EXPECT_EQ((*results)[0].rows, 400u);
  EXPECT_TRUE(std::isnan((*results)[0].auprc_std));
  EXPECT_GT((*results)[0].roc_auc, 0.6);
}

TEST(FraudTraining, ChoosesAThresholdAndRecordsWhereTheModelCameFrom) {
  const Transactions data = testing::generated_transactions(700, 12);
  auto trained = train_model(data, testing::quick_options(), 7, "2026-02-03T04:05:06Z");
  ASSERT_TRUE(trained) << trained.error().message;
  const ModelInfo& info = trained->model->info();
  EXPECT_EQ(info.version, 7);
  EXPECT_EQ(trained->model->name(), "fraud-v7");
  EXPECT_GT(info.threshold, 0.0);
  EXPECT_LT(info.threshold, 1.0);
  EXPECT_EQ(info.threshold, trained->threshold.threshold);
  EXPECT_GT(trained->threshold.f1, 0.3);
  EXPECT_EQ(info.created_at, "2026-02-03T04:05:06Z");
  EXPECT_EQ(info.training["rows"], 700);
  EXPECT_EQ(info.training["frauds"], data.frauds());
  EXPECT_NEAR(info.positive_weight,
              static_cast<double>(data.size() - data.frauds()) / data.frauds(), 1e-12);
  EXPECT_EQ(info.metrics["folds"], 3);
  EXPECT_EQ(info.metrics["roc_auc"], trained->evaluations[0].roc_auc);
  EXPECT_EQ(info.metrics["threshold_rule"], "maximum F1 on out-of-fold probabilities");

  auto fixed = train_model(data, testing::quick_options(), 8, "2026-02-03T04:05:06Z", 0.9);
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->model->info().threshold, 0.9);
  EXPECT_EQ(fixed->model->info().metrics["threshold_rule"], "fixed");
}

TEST(FraudTraining, CorrectsProbabilitiesForThePositiveWeight) {
  // Weighting frauds ×w multiplies the model's odds by about w; the reported probability divides
  // it out, so the mean probability stays near the training fraud share either way.
  const Transactions data = testing::generated_transactions(2000, 13);
  const double share = static_cast<double>(data.frauds()) / static_cast<double>(data.size());
  for (double weight : {1.0, 8.0}) {
    TrainOptions o = testing::quick_options(ModelKind::kLogisticRegression);
    o.positive_weight = weight;
    auto trained = train_model(data, o, 1, "2026-01-01T00:00:00Z");
    ASSERT_TRUE(trained);
    double mean = 0;
    for (const Features& x : data.rows) mean += trained->model->probability(x);
    mean /= static_cast<double>(data.size());
    EXPECT_NEAR(mean, share, 0.03) << "weight " << weight;
  }
}

// The goal, on the real data: the trees beat the baseline on both figures.
TEST(FraudEvaluation, TreesBeatLogisticRegressionOnTheUlbSample) {
  auto path = testing::ulb_sample_path();
  if (!path) GTEST_SKIP() << testing::kNoSharedData;
  auto data = read_transactions(*path);
  ASSERT_TRUE(data) << data.error().message;
  auto results = evaluate(*data, TrainOptions{});
  ASSERT_TRUE(results) << results.error().message;
  const ModelEvaluation& gbt = (*results)[0];
  const ModelEvaluation& lr = (*results)[1];
  std::cout << "5-fold CV: gbt roc_auc " << gbt.roc_auc << " auprc " << gbt.auprc
            << "; logistic roc_auc " << lr.roc_auc << " auprc " << lr.auprc << "\n";
  EXPECT_GT(gbt.roc_auc, lr.roc_auc);
  EXPECT_GT(gbt.auprc, lr.auprc);
  EXPECT_GT(gbt.roc_auc, 0.95);
}

}  // namespace
}  // namespace prescale::fraud
