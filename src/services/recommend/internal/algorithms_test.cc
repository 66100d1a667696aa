// ALS, EASE and ItemKNN against direct computations on small matrices.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "services/recommend/internal/als.h"
#include "services/recommend/internal/ease.h"
#include "services/recommend/internal/item_knn.h"
#include "services/recommend/internal/matrix.h"
#include "services/recommend/internal/test_interactions.h"

namespace prescale::recommend::internal {
namespace {

SparseRows small_matrix() {
  // 4 users × 4 items.
  return build_rows({{0, 0, 1},
                     {0, 1, 1},
                     {1, 1, 1},
                     {1, 2, 2},
                     {2, 0, 1},
                     {2, 2, 1},
                     {3, 3, 1},
                     {3, 0, 1},
                     {0, 1, 1}},  // the repeated (0, 1) is summed
                    4, 4);
}

TEST(RecommendSparseRows, BuildsSortedRowsSummingDuplicatesAndTransposes) {
  const SparseRows m = small_matrix();
  EXPECT_EQ(m.rows(), 4);
  EXPECT_EQ(m.nnz(), 8u);
  ASSERT_EQ(m.row(0).size(), 2u);
  EXPECT_EQ(m.row(0)[1].item, 1);
  EXPECT_FLOAT_EQ(m.row(0)[1].weight, 2);
  const SparseRows t = m.transposed();
  EXPECT_EQ(t.rows(), 4);
  ASSERT_EQ(t.row(0).size(), 3u);  // item 0: users 0, 2, 3
  EXPECT_EQ(t.row(0)[0].item, 0);
  EXPECT_EQ(t.row(0)[2].item, 3);
}

TEST(RecommendAls, LossDecreasesEverySweep) {
  TrainingData data = index_interactions(testing::two_groups());
  AlsOptions o;
  o.factors = 8;
  o.iterations = 8;
  o.regularization = 0.1f;
  std::vector<double> losses;
  AlsFactors initial;
  initial.users = RowMatrix::Zero(data.users.size(), o.factors);
  initial.items = RowMatrix::Zero(data.items.size(), o.factors);
  losses.push_back(als_loss(data.user_items, initial, o));
  train_als(data.user_items, o,
            [&](int, const AlsFactors& f) { losses.push_back(als_loss(data.user_items, f, o)); });
  ASSERT_EQ(losses.size(), 9u);
  for (size_t i = 1; i < losses.size(); ++i) {
    EXPECT_LT(losses[i], losses[i - 1]) << "sweep " << i;
  }
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

TEST(RecommendAls, IsDeterministicForASeed) {
  TrainingData data = index_interactions(testing::two_groups());
  AlsOptions o;
  o.factors = 4;
  o.iterations = 3;
  const AlsFactors a = train_als(data.user_items, o);
  const AlsFactors b = train_als(data.user_items, o);
  EXPECT_EQ(a.items, b.items);
  o.seed = 43;
  const AlsFactors c = train_als(data.user_items, o);
  EXPECT_NE(a.items, c.items);
}

TEST(RecommendAls, FoldInIsTheExactLeastSquaresSolution) {
  TrainingData data = index_interactions(testing::two_groups());
  AlsOptions o;
  o.factors = 6;
  o.iterations = 5;
  o.alpha = 3;
  const AlsFactors f = train_als(data.user_items, o);
  const Eigen::MatrixXf gram = f.items.transpose() * f.items;
  const std::vector<ItemWeight> history = {{0, 1}, {3, 2}, {5, 1}};
  const Eigen::VectorXf x = fold_in(history, f.items, gram, o);

  // Direct: (Yᵀ C Y + λI) x = Yᵀ C p over all items, in double.
  const Eigen::MatrixXd y = f.items.cast<double>();
  Eigen::VectorXd c = Eigen::VectorXd::Ones(y.rows()), p = Eigen::VectorXd::Zero(y.rows());
  for (const ItemWeight& h : history) {
    c[h.item] = 1 + o.alpha * h.weight;
    p[h.item] = 1;
  }
  Eigen::MatrixXd a = y.transpose() * c.asDiagonal() * y;
  a.diagonal().array() += o.regularization;
  const Eigen::VectorXd expected = a.ldlt().solve(y.transpose() * (c.array() * p.array()).matrix());
  for (int i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], expected[i], 1e-4);
}

TEST(RecommendEase, ClosedFormMatchesADirectComputation) {
  const SparseRows m = small_matrix();
  Eigen::MatrixXd x = Eigen::MatrixXd::Zero(4, 4);
  for (int32_t u = 0; u < 4; ++u) {
    for (const ItemWeight& e : m.row(u)) x(u, e.item) = e.weight;
  }
  const double lambda = 0.5;
  const Eigen::MatrixXd p =
      (x.transpose() * x + lambda * Eigen::MatrixXd::Identity(4, 4)).inverse();
  Eigen::MatrixXd expected =
      Eigen::MatrixXd::Identity(4, 4) - p * p.diagonal().cwiseInverse().asDiagonal();

  EaseOptions o;
  o.lambda = static_cast<float>(lambda);
  o.min_item_interactions = 1;
  const EaseWeights w = train_ease(m, o);
  ASSERT_EQ(w.items.size(), 4u);
  for (int r = 0; r < 4; ++r) {
    EXPECT_FLOAT_EQ(w.b(r, r), 0);
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(w.b(r, c),
                  expected(w.items[static_cast<size_t>(r)], w.items[static_cast<size_t>(c)]), 1e-5)
          << r << "," << c;
    }
  }
  // B minimises |X − XB|² + λ|B|² under diag(B) = 0: the stationarity condition
  // (XᵀX + λI)B − XᵀX = −P⁻¹·diag(μ) holds with a diagonal μ, i.e. off the diagonal,
  // (XᵀX + λI)B = XᵀX.
  const Eigen::MatrixXd g = x.transpose() * x;
  Eigen::MatrixXd b(4, 4);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c)
      b(w.items[static_cast<size_t>(r)], w.items[static_cast<size_t>(c)]) = w.b(r, c);
  }
  const Eigen::MatrixXd residual = (g + lambda * Eigen::MatrixXd::Identity(4, 4)) * b - g;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      if (r != c) {
        EXPECT_NEAR(residual(r, c), 0, 1e-4);
      }
    }
  }
}

TEST(RecommendEase, KeepsOnlyItemsWithEnoughInteractionsMostPopularFirst) {
  const SparseRows m = small_matrix();  // items 0 and 1 and 2 have ≥ 2 users, item 3 has 1
  EaseOptions o;
  o.min_item_interactions = 2;
  EaseWeights w = train_ease(m, o);
  EXPECT_THAT(w.items, ::testing::ElementsAre(0, 1, 2));
  EXPECT_EQ(w.b.rows(), 3);
  o.max_items = 1;
  w = train_ease(m, o);
  EXPECT_THAT(w.items, ::testing::ElementsAre(0));  // 3 users
}

TEST(RecommendItemKnn, KeepsTheMostCosineSimilarNeighbours) {
  const SparseRows m = small_matrix();
  // Columns: item0 = (1,0,1,1), item1 = (2,1,0,0), item2 = (0,2,1,0), item3 = (0,0,0,1).
  ItemKnnOptions o;
  o.neighbours = 2;
  const SparseRows nb = train_item_knn(m, o);
  ASSERT_EQ(nb.row(0).size(), 2u);
  // cos(0,3) = 1/√3 ≈ .577, cos(0,1) = 2/(√3·√5) ≈ .516, cos(0,2) = 1/(√3·√5) ≈ .258
  EXPECT_EQ(nb.row(0)[0].item, 3);
  EXPECT_NEAR(nb.row(0)[0].weight, 1 / std::sqrt(3.0), 1e-6);
  EXPECT_EQ(nb.row(0)[1].item, 1);
  EXPECT_NEAR(nb.row(0)[1].weight, 2 / std::sqrt(15.0), 1e-6);
  ASSERT_EQ(nb.row(3).size(), 1u);  // item 3 shares users with item 0 only
  EXPECT_EQ(nb.row(3)[0].item, 0);
}

}  // namespace
}  // namespace prescale::recommend::internal
