#include "services/fraud/tree_ensemble.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "services/fraud/fraud_test_util.h"
#include "services/fraud/gbt_training.h"
#include "services/fraud/internal/xgboost_booster.h"

namespace prescale::fraud {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A one-split model in XGBoost's JSON layout: V14 < -1.5 → left leaf -0.5, else 0.7; missing
// goes left. Covers: root 10, left 4, right 6.
json one_split_model() {
  json tree = {{"left_children", {1, -1, -1}}, {"right_children", {2, -1, -1}},
               {"split_indices", {14, 0, 0}},  {"split_conditions", {-1.5, -0.5, 0.7}},
               {"default_left", {1, 0, 0}},    {"sum_hessian", {10, 4, 6}},
               {"split_type", {0, 0, 0}}};
  return {{"learner",
           {{"objective", {{"name", "binary:logistic"}}},
            {"learner_model_param", {{"base_score", "5E-1"}, {"num_feature", "30"}}},
            {"gradient_booster", {{"name", "gbtree"}, {"model", {{"trees", {tree}}}}}}}}};
}

TEST(TreeEnsemble, FollowsXgboostsSplitRules) {
  auto trees = TreeEnsemble::compile(one_split_model(), "m");
  ASSERT_TRUE(trees) << trees.error().message;
  EXPECT_EQ(trees->tree_count(), 1u);
  EXPECT_EQ(trees->node_count(), 3u);
  EXPECT_EQ(trees->base_margin(), 0.0f);
  Features x{};
  x[14] = -2;
  EXPECT_EQ(trees->margin(x), -0.5f);
  x[14] = -1.5f;  // not below the threshold: right
  EXPECT_EQ(trees->margin(x), 0.7f);
  x[14] = std::nextafter(-1.5f, -2.0f);
  EXPECT_EQ(trees->margin(x), -0.5f);
  x[14] = kNaN;  // missing: the default (left) branch
  EXPECT_EQ(trees->margin(x), -0.5f);
  EXPECT_EQ(trees->probability(x), 1.0f / (1.0f + std::exp(0.5f)));
}

TEST(TreeEnsemble, SaabasContributionsFollowTheNodeMeans) {
  auto trees = TreeEnsemble::compile(one_split_model(), "m");
  ASSERT_TRUE(trees);
  Features x{};
  x[14] = -3;
  std::array<float, kFeatureCount + 1> c{};
  EXPECT_EQ(trees->contributions(x, c), -0.5f);
  const float root_mean = (-0.5f * 4 + 0.7f * 6) / 10;  // 0.22
  EXPECT_FLOAT_EQ(c[kFeatureCount], root_mean);
  EXPECT_FLOAT_EQ(c[14], -0.5f - root_mean);
  for (size_t j = 0; j < kFeatureCount; ++j) {
    if (j != 14) {
      EXPECT_EQ(c[j], 0.0f);
    }
  }
}

TEST(TreeEnsemble, RejectsWhatItCannotServeNamingTheField) {
  auto error_of = [](const json& model) {
    auto trees = TreeEnsemble::compile(model, "xgboost_model");
    EXPECT_FALSE(trees);
    return trees ? std::string() : trees.error().message;
  };
  json m = one_split_model();
  m["learner"]["objective"]["name"] = "reg:squarederror";
  EXPECT_THAT(error_of(m), HasSubstr("xgboost_model.learner.objective.name: expected "
                                     "\"binary:logistic\""));
  m = one_split_model();
  m["learner"]["learner_model_param"]["num_feature"] = "31";
  EXPECT_THAT(error_of(m), HasSubstr("learner_model_param.num_feature: expected \"30\""));
  m = one_split_model();
  auto& tree = m["learner"]["gradient_booster"]["model"]["trees"][0];
  tree["split_indices"][0] = 30;
  EXPECT_THAT(error_of(m), HasSubstr("xgboost_model.learner.gradient_booster.model.trees[0]."
                                     "split_indices[0]: feature 30 out of range"));
  m = one_split_model();
  m["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"][0] = 0;
  EXPECT_THAT(error_of(m), HasSubstr("trees[0].left_children[0]: child 0 is out of range or "
                                     "reached twice"));
  m = one_split_model();
  m["learner"]["gradient_booster"]["model"]["trees"][0]["split_type"][0] = 1;
  EXPECT_THAT(error_of(m), HasSubstr("trees[0].split_type[0]: categorical splits"));
  m = one_split_model();
  m["learner"]["gradient_booster"]["model"]["trees"][0]["sum_hessian"] = {1, 2};
  EXPECT_THAT(error_of(m), HasSubstr("trees[0].sum_hessian: expected 3 values, got 2"));
  m = one_split_model();
  m["learner"]["gradient_booster"]["name"] = "dart";
  EXPECT_THAT(error_of(m), HasSubstr("gradient_booster.name: expected \"gbtree\""));
  m = one_split_model();
  m["learner"].erase("learner_model_param");
  EXPECT_THAT(error_of(m), HasSubstr("xgboost_model.learner.learner_model_param: missing"));
}

// Every row of `rows`, and each with some features missing: margins, probabilities and Saabas
// contributions of the compiled trees are XGBoost's own, bit for bit.
void expect_same_as_xgboost(const std::vector<Features>& original, const std::string& model_json) {
  std::vector<Features> rows = original;
  for (size_t i = 0; i < original.size(); ++i) {
    Features x = original[i];
    for (size_t j = i % 5; j < kFeatureCount; j += 3) x[j] = kNaN;
    rows.push_back(x);
  }
  auto trees = TreeEnsemble::compile(json::parse(model_json), "xgboost_model");
  ASSERT_TRUE(trees) << trees.error().message;
  auto booster = internal::XgbBooster::from_json(model_json);
  ASSERT_TRUE(booster) << booster.error().message;
  using Output = internal::XgbBooster::Output;
  auto margins = booster->predict(rows, Output::kMargin);
  auto probabilities = booster->predict(rows, Output::kProbability);
  auto contributions = booster->predict(rows, Output::kApproxContributions);
  ASSERT_TRUE(margins && probabilities && contributions);

  size_t differing_margins = 0, differing_probabilities = 0, differing_contributions = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::array<float, kFeatureCount + 1> c{};
    const float margin = trees->contributions(rows[i], c);
    differing_margins +=
        std::bit_cast<uint32_t>(trees->margin(rows[i])) != std::bit_cast<uint32_t>((*margins)[i]);
    differing_margins += margin != (*margins)[i];
    differing_probabilities += trees->probability(rows[i]) != (*probabilities)[i];
    for (size_t j = 0; j <= kFeatureCount; ++j) {
      differing_contributions += c[j] != (*contributions)[i * (kFeatureCount + 1) + j];
    }
  }
  EXPECT_EQ(differing_margins, 0u) << "of " << rows.size() << " rows";
  EXPECT_EQ(differing_probabilities, 0u) << "of " << rows.size() << " rows";
  EXPECT_EQ(differing_contributions, 0u) << "of " << rows.size() * (kFeatureCount + 1);

  // In-place prediction from a dense row (what the benchmark compares with) agrees too.
  for (size_t i = 0; i < rows.size(); i += 97) {
    auto dense = booster->predict_dense(rows[i]);
    ASSERT_TRUE(dense) << dense.error().message;
    EXPECT_EQ(*dense, (*probabilities)[i]) << "row " << i;
  }
}

TEST(TreeEnsemble, EqualsXgboostOnGeneratedTransactions) {
  const Transactions data = testing::generated_transactions(1000, 21);
  GbtOptions options;
  options.rounds = 60;
  options.max_depth = 5;
  auto model = train_gbt(data.rows, data.labels, 2.0, options);
  ASSERT_TRUE(model) << model.error().message;
  expect_same_as_xgboost(data.rows, *model);
}

TEST(TreeEnsemble, EqualsXgboostOnTheWholeUlbSample) {
  auto path = testing::ulb_sample_path();
  if (!path) GTEST_SKIP() << testing::kNoSharedData;
  auto data = read_transactions(*path);
  ASSERT_TRUE(data) << data.error().message;
  // The service's default trees.
  auto model = train_gbt(data->rows, data->labels,
                         static_cast<double>(data->size() - data->frauds()) / data->frauds(), {});
  ASSERT_TRUE(model) << model.error().message;
  expect_same_as_xgboost(data->rows, *model);
}

}  // namespace
}  // namespace prescale::fraud
