#include "services/recommend/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "services/recommend/internal/test_interactions.h"

namespace prescale::recommend {
namespace {

std::string KindName(const ::testing::TestParamInfo<ModelKind>& info) {
  return std::string(to_string(info.param));
}

using ::testing::HasSubstr;

std::shared_ptr<const Model> train(ModelKind kind) {
  TrainOptions o;
  o.kind = kind;
  o.als.factors = 8;
  o.als.regularization = 0.1f;
  o.ease.lambda = 1;
  o.ease.min_item_interactions = 1;
  o.item_knn.neighbours = 10;
  auto m = Model::train(testing::two_groups(), o);
  EXPECT_TRUE(m) << m.error().message;
  return m ? *m : nullptr;
}

std::vector<int64_t> ids(const std::vector<ScoredItem>& items) {
  std::vector<int64_t> out;
  for (const ScoredItem& s : items) out.push_back(s.item);
  return out;
}

std::vector<ItemWeight> history_of(const Model& m, std::initializer_list<int64_t> items) {
  std::vector<ItemWeight> h;
  for (int64_t id : items) h.push_back({*m.item_index(id), 1});
  std::sort(h.begin(), h.end(), [](auto& a, auto& b) { return a.item < b.item; });
  return h;
}

class RecommendEveryModel : public ::testing::TestWithParam<ModelKind> {};

TEST_P(RecommendEveryModel, RecommendsUnseenItemsOfTheUsersGroupBestFirst) {
  auto m = train(GetParam());
  ASSERT_TRUE(m);
  Model::Query q;
  q.history = m->history(3);  // a user of the 10x group
  q.factors = m->factors(3);
  q.k = 5;
  const auto top = m->recommend(q);
  ASSERT_EQ(top.size(), 5u);
  for (size_t i = 0; i < top.size(); ++i) {
    if (i > 0) {
      EXPECT_GE(top[i - 1].score, top[i].score);
    }
    for (const ItemWeight& h : q.history) EXPECT_NE(top[i].item, m->item_id(h.item));
    if (GetParam() != ModelKind::kTopPop) {
      EXPECT_TRUE(top[i].item > 100 && top[i].item <= 120) << top[i].item;
    }
  }
}

TEST_P(RecommendEveryModel, FoldedInInteractionsChangeTheRecommendations) {
  auto m = train(GetParam());
  ASSERT_TRUE(m);
  if (GetParam() == ModelKind::kTopPop) GTEST_SKIP() << "popularity ignores the history";
  // A new user who interacted with items of the 20x group only.
  const auto h = history_of(*m, {201, 203, 205, 207});
  Model::Query q;
  q.history = h;
  const std::vector<float> x = m->fold_in(h);
  EXPECT_EQ(x.empty(), GetParam() != ModelKind::kAls);
  q.factors = x;
  q.k = 5;
  for (int64_t item : ids(m->recommend(q))) {
    EXPECT_TRUE(item > 200 && item <= 220) << item;
    EXPECT_TRUE(item != 201 && item != 203 && item != 205 && item != 207);
  }
  // The same user after interacting with the 10x group as well, more strongly.
  auto h2 = history_of(*m, {201, 203, 205, 207, 102, 104, 106, 108, 110, 112, 114});
  for (ItemWeight& e : h2) e.weight = m->item_id(e.item) < 200 ? 3.0f : 1.0f;
  Model::Query q2;
  q2.history = h2;
  const std::vector<float> x2 = m->fold_in(h2);
  q2.factors = x2;
  q2.k = 1;
  const auto top = m->recommend(q2);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_LT(top[0].item, 200);
}

TEST_P(RecommendEveryModel, AppliesExcludeAndAllowFilters) {
  auto m = train(GetParam());
  ASSERT_TRUE(m);
  Model::Query q;
  q.history = m->history(3);
  q.factors = m->factors(3);
  q.k = 3;
  const auto first = ids(m->recommend(q));
  ASSERT_EQ(first.size(), 3u);
  const std::vector<int32_t> exclude = {*m->item_index(first[0])};
  q.exclude = exclude;
  const auto second = ids(m->recommend(q));
  EXPECT_THAT(second, ::testing::Not(::testing::Contains(first[0])));
  const std::vector<int32_t> allow = {*m->item_index(215), *m->item_index(216),
                                      m->history(3)[0].item};
  q.exclude = {};
  q.allow = &allow;
  const auto allowed = ids(m->recommend(q));
  for (int64_t item : allowed) EXPECT_TRUE(item == 215 || item == 216) << item;
}

TEST_P(RecommendEveryModel, SimilarItemsExcludeTheItemItself) {
  auto m = train(GetParam());
  ASSERT_TRUE(m);
  const auto similar = m->similar(*m->item_index(105), 4);
  ASSERT_FALSE(similar.empty());
  for (const ScoredItem& s : similar) {
    EXPECT_NE(s.item, 105);
    if (GetParam() != ModelKind::kTopPop) {
      EXPECT_LT(s.item, 200) << s.item;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, RecommendEveryModel,
                         ::testing::Values(ModelKind::kTopPop, ModelKind::kItemKnn, ModelKind::kAls,
                                           ModelKind::kEase),
                         KindName);

TEST(RecommendModel, PopularListsTheMostInteractedItemsFirst) {
  auto m = train(ModelKind::kAls);
  ASSERT_TRUE(m);
  Model::Query q;
  q.k = 2;
  EXPECT_THAT(ids(m->popular(q)), ::testing::UnorderedElementsAre(101, 201));
  const std::vector<int32_t> exclude = {*m->item_index(101)};
  q.exclude = exclude;
  EXPECT_THAT(ids(m->popular(q)), ::testing::Contains(201));
  EXPECT_THAT(ids(m->popular(q)), ::testing::Not(::testing::Contains(101)));
}

TEST(RecommendModel, KnowsItsCatalogueAndUsers) {
  auto m = train(ModelKind::kEase);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->item_count(), 40);
  EXPECT_EQ(m->user_count(), 40);
  EXPECT_FALSE(m->item_index(999));
  EXPECT_TRUE(m->history(999).empty());
  EXPECT_EQ(m->history(1).size(), 12u);
  EXPECT_EQ(m->version_label(), "unsaved");
  EXPECT_EQ(to_string(m->kind()), "ease");
  EXPECT_EQ(model_kind_from_string("itemknn"), ModelKind::kItemKnn);
  EXPECT_FALSE(model_kind_from_string("svd"));
}

TEST(RecommendModel, EaseScoresOnlyHistoriesWithAnItemOfItsItemSet) {
  auto data = testing::two_groups();
  data.push_back({41, 999, 1.0f, 2'000'000});  // one interaction: below min_item_interactions
  TrainOptions o;
  o.kind = ModelKind::kEase;
  o.ease.lambda = 1;
  o.ease.min_item_interactions = 2;
  auto m = Model::train(data, o);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_FALSE((*m)->scores_history({}));
  EXPECT_FALSE((*m)->scores_history((*m)->history(41)));
  EXPECT_TRUE((*m)->scores_history((*m)->history(3)));
  EXPECT_TRUE((*m)->scores_history(history_of(**m, {999, 105})));
  auto toppop = train(ModelKind::kTopPop);
  ASSERT_TRUE(toppop);
  EXPECT_TRUE(toppop->scores_history(toppop->history(3)));
  EXPECT_FALSE(toppop->scores_history({}));
}

TEST(RecommendModel, PopularityPenaltyDividesScoresByPopularity) {
  TrainOptions o;
  o.kind = ModelKind::kEase;
  o.ease.lambda = 1;
  o.ease.min_item_interactions = 1;
  o.ease.popularity_penalty = 0;
  const auto data = testing::two_groups();
  auto plain = Model::train(data, o);
  o.ease.popularity_penalty = 0.5f;
  auto penalised = Model::train(data, o);
  ASSERT_TRUE(plain && penalised);
  std::map<int64_t, int> popularity;
  for (const Interaction& x : data) ++popularity[x.item];
  const auto h = history_of(**plain, {102, 103, 104, 201});
  Model::Query q;
  q.history = h;
  q.k = 40;
  std::map<int64_t, float> plain_scores;
  for (const ScoredItem& s : (*plain)->recommend(q)) plain_scores[s.item] = s.score;
  const auto scored = (*penalised)->recommend(q);
  ASSERT_EQ(scored.size(), plain_scores.size());
  for (const ScoredItem& s : scored) {
    EXPECT_NEAR(s.score, plain_scores[s.item] / std::sqrt(popularity[s.item]), 1e-5) << s.item;
  }
}

TEST(RecommendModel, RejectsBadInputNamingTheField) {
  TrainOptions o;
  o.als.factors = 0;
  auto r = Model::train(testing::two_groups(), o);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("als.factors"));
  o = {};
  o.kind = ModelKind::kEase;
  o.ease.lambda = -1;
  r = Model::train(testing::two_groups(), o);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("ease.lambda"));
  r = Model::train({}, TrainOptions{});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("interactions"));
  auto xs = testing::two_groups();
  xs[4].weight = 0;
  r = Model::train(xs, TrainOptions{});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("interactions[4].weight"));
}

}  // namespace
}  // namespace prescale::recommend
