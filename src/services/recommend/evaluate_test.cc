#include "services/recommend/evaluate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "services/recommend/internal/test_interactions.h"

namespace prescale::recommend {
namespace {

TEST(RecommendMetrics, PrecisionRecallAndNdcgOnAHandComputedRanking) {
  const std::vector<int64_t> ranked = {5, 1, 7, 2, 9};
  const std::vector<int64_t> relevant = {1, 2, 3};
  // Hits at ranks 2 and 4.
  EXPECT_DOUBLE_EQ(precision_at_k(ranked, relevant, 5), 2.0 / 5);
  EXPECT_DOUBLE_EQ(precision_at_k(ranked, relevant, 2), 1.0 / 2);
  EXPECT_DOUBLE_EQ(precision_at_k(ranked, relevant, 10), 2.0 / 10);  // k, not the list length
  EXPECT_DOUBLE_EQ(recall_at_k(ranked, relevant, 5), 2.0 / 3);
  EXPECT_DOUBLE_EQ(recall_at_k(ranked, relevant, 1), 0);
  const double dcg = 1 / std::log2(3.0) + 1 / std::log2(5.0);
  const double ideal = 1 + 1 / std::log2(3.0) + 1 / std::log2(4.0);
  EXPECT_NEAR(ndcg_at_k(ranked, relevant, 5), dcg / ideal, 1e-12);
  // With k = 2 the ideal ranking has two relevant items.
  EXPECT_NEAR(ndcg_at_k(ranked, relevant, 2), (1 / std::log2(3.0)) / (1 + 1 / std::log2(3.0)),
              1e-12);
  EXPECT_DOUBLE_EQ(ndcg_at_k(std::vector<int64_t>{1, 2, 3}, relevant, 3), 1.0);
  EXPECT_DOUBLE_EQ(ndcg_at_k(ranked, std::vector<int64_t>{}, 5), 0);
  EXPECT_DOUBLE_EQ(recall_at_k(ranked, std::vector<int64_t>{}, 5), 0);
}

TEST(RecommendMetrics, ScoreModelAveragesOverHeldOutUsersAndCountsCoverage) {
  TrainOptions o;
  o.kind = ModelKind::kTopPop;
  // Item 1 is most popular, then 2, then 3; users 1..3 saw some of them.
  std::vector<Interaction> train = {{1, 1, 1, 0}, {2, 1, 1, 0}, {3, 1, 1, 0}, {2, 2, 1, 0},
                                    {3, 2, 1, 0}, {3, 3, 1, 0}, {4, 4, 1, 0}};
  auto m = Model::train(train, o);
  ASSERT_TRUE(m);
  // User 1 is recommended 2, 3, 4 and held out 2: precision 1/10, recall 1, ndcg 1.
  // User 2 is recommended 3, 4 and held out 4: precision 1/10, recall 1, ndcg 1/log2(3).
  const Scores s = score_model(**m, {{1, 2, 1, 1}, {2, 4, 1, 1}});
  EXPECT_EQ(s.users, 2);
  EXPECT_DOUBLE_EQ(s.precision_at_10, 0.1);
  EXPECT_DOUBLE_EQ(s.recall_at_20, 1.0);
  EXPECT_NEAR(s.ndcg_at_10, (1 + 1 / std::log2(3.0)) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(s.coverage, 3.0 / 4);  // items 2, 3, 4 of 4
}

TEST(RecommendEvaluate, RanksLearnedModelsAboveTopPopOnGroupedData) {
  EvaluateOptions o;
  o.tune = false;
  o.base.als.factors = 8;
  o.base.als.regularization = 0.1f;
  o.base.ease.lambda = 1;
  o.base.ease.min_item_interactions = 1;
  auto r = evaluate(testing::two_groups(), o);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].model, ModelKind::kTopPop);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_GT((*r)[i].test.ndcg_at_10, (*r)[0].test.ndcg_at_10) << to_string((*r)[i].model);
    EXPECT_EQ((*r)[i].test.users, 40);
  }
}

TEST(RecommendEvaluate, RejectsSharesOutsideTheUnitInterval) {
  EvaluateOptions o;
  o.test_share = 1.5;
  auto r = evaluate(testing::two_groups(), o);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, ::testing::HasSubstr("test_share"));
}

// The acceptance check on real data: with the defaults (chosen on the validation split), the
// best model beats TopPop and ItemKNN on every metric of the temporal test split.
TEST(RecommendEvaluate, MovieLensBestModelBeatsTheBaselinesOnEveryMetric) {
  const std::string path = testing::movielens_ratings();
  if (path.empty()) GTEST_SKIP() << "skipped: ../shared/data missing (MovieLens ratings)";
  auto data = read_ratings_csv(path);
  ASSERT_TRUE(data) << data.error().message;
  EvaluateOptions o;
  o.tune = false;
  auto r = evaluate(*data, o);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 4u);
  const Scores& toppop = (*r)[0].test;
  const Scores& itemknn = (*r)[1].test;
  const ModelEvaluation* best = &(*r)[2];
  if ((*r)[3].test.ndcg_at_10 > best->test.ndcg_at_10) best = &(*r)[3];
  for (const Scores* baseline : {&toppop, &itemknn}) {
    EXPECT_GT(best->test.precision_at_10, baseline->precision_at_10);
    EXPECT_GT(best->test.recall_at_20, baseline->recall_at_20);
    EXPECT_GT(best->test.ndcg_at_10, baseline->ndcg_at_10);
    EXPECT_GT(best->test.coverage, baseline->coverage);
  }
  EXPECT_GT(best->test.users, 600);
}

}  // namespace
}  // namespace prescale::recommend
