#include "services/fraud/logistic_regression.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "services/fraud/fraud_test_util.h"

namespace prescale::fraud {
namespace {

// Rows whose log-odds are exactly 0.5 + 2·V1 − V2 (all features standard normal).
Transactions linear_data(size_t n) {
  Transactions data = testing::generated_transactions(n, 11);
  uint64_t state = 99;
  for (size_t i = 0; i < n; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const double u = (static_cast<double>(state >> 11) + 0.5) * 0x1.0p-53;
    const double logit = 0.5 + 2 * data.rows[i][1] - data.rows[i][2];
    data.labels[i] = u < 1 / (1 + std::exp(-logit)) ? 1 : 0;
  }
  return data;
}

TEST(LogisticRegression, RecoversKnownCoefficients) {
  const Transactions data = linear_data(20000);
  auto model = train_logistic(data.rows, data.labels, 1.0, {});
  ASSERT_TRUE(model) << model.error().message;
  // Coefficients are per standard deviation; V1 and V2 are standard normal already.
  EXPECT_NEAR(model->coefficients[1] / model->scales[1], 2.0, 0.1);
  EXPECT_NEAR(model->coefficients[2] / model->scales[2], -1.0, 0.1);
  EXPECT_NEAR(model->coefficients[20] / model->scales[20], 0.0, 0.1);
  Features origin{};
  EXPECT_NEAR(model->margin(origin), 0.5, 0.1);
}

TEST(LogisticRegression, ReachesTheOptimumOfThePenalisedLoss) {
  const Transactions data = testing::generated_transactions(1500, 3);
  const LogisticOptions options{.l2 = 2.0};
  auto model = train_logistic(data.rows, data.labels, 1.5, options);
  ASSERT_TRUE(model) << model.error().message;
  // ∂/∂β_j of Σ wᵢ·logloss + λ/2·‖β‖² vanishes at the optimum.
  std::array<double, kFeatureCount + 1> gradient{};
  for (size_t i = 0; i < data.size(); ++i) {
    const double p = 1 / (1 + std::exp(-model->margin(data.rows[i])));
    const double w = data.labels[i] != 0 ? 1.5 : 1.0;
    const double g = w * (p - data.labels[i]);
    for (size_t j = 0; j < kFeatureCount; ++j) {
      gradient[j] += g * (data.rows[i][j] - model->means[j]) / model->scales[j];
    }
    gradient[kFeatureCount] += g;
  }
  for (size_t j = 0; j < kFeatureCount; ++j) gradient[j] += options.l2 * model->coefficients[j];
  for (double g : gradient) EXPECT_NEAR(g, 0.0, 1e-4);  // against terms of order 1,000
}

TEST(LogisticRegression, PenaltyShrinksAndWeightShiftsTheIntercept) {
  const Transactions data = linear_data(5000);
  auto plain = train_logistic(data.rows, data.labels, 1.0, {});
  auto shrunk = train_logistic(data.rows, data.labels, 1.0, {.l2 = 5000});
  auto weighted = train_logistic(data.rows, data.labels, 4.0, {});
  ASSERT_TRUE(plain && shrunk && weighted);
  EXPECT_LT(std::abs(shrunk->coefficients[1]), 0.7 * std::abs(plain->coefficients[1]));
  // Weighting frauds by w multiplies the odds by about w.
  EXPECT_NEAR(weighted->intercept - plain->intercept, std::log(4.0), 0.15);
}

TEST(LogisticRegression, ContributionsSumToTheMarginAndMissingAddsNothing) {
  const Transactions data = testing::generated_transactions(800, 5);
  auto model = train_logistic(data.rows, data.labels, 1.0, {});
  ASSERT_TRUE(model);
  Features x = data.rows[3];
  x[14] = std::numeric_limits<float>::quiet_NaN();
  std::array<double, kFeatureCount> c{};
  const double margin = model->contributions(x, c);
  EXPECT_DOUBLE_EQ(margin, model->margin(x));
  double sum = model->intercept;
  for (double v : c) sum += v;
  EXPECT_NEAR(sum, margin, 1e-12);
  EXPECT_EQ(c[14], 0.0);
}

TEST(LogisticRegression, IsDeterministicAndRejectsOneClass) {
  const Transactions data = testing::generated_transactions(600, 8);
  auto a = train_logistic(data.rows, data.labels, 2.0, {});
  auto b = train_logistic(data.rows, data.labels, 2.0, {});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->coefficients, b->coefficients);
  EXPECT_EQ(a->intercept, b->intercept);
  std::vector<uint8_t> zeros(data.size(), 0);
  auto bad = train_logistic(data.rows, zeros, 1.0, {});
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, ::testing::HasSubstr("both frauds and legitimate"));
}

}  // namespace
}  // namespace prescale::fraud
