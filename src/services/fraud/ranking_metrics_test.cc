#include "services/fraud/ranking_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace prescale::fraud {
namespace {

using Scores = std::vector<double>;
using Labels = std::vector<uint8_t>;

// scikit-learn's documentation example: roc_auc_score = 0.75, average_precision_score = 0.8333.
TEST(RankingMetrics, MatchTheScikitLearnExample) {
  const Scores s = {0.1, 0.4, 0.35, 0.8};
  const Labels y = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(roc_auc(s, y), 0.75);
  // Thresholds 0.8: P 1, R 1/2; 0.4: P 1/2, R 1/2 (no recall gain); 0.35: P 2/3, R 1.
  EXPECT_DOUBLE_EQ(average_precision(s, y), 0.5 * 1 + 0.5 * 2.0 / 3);
}

TEST(RankingMetrics, PerfectReversedAndTiedRankings) {
  EXPECT_DOUBLE_EQ(roc_auc(Scores{0.9, 0.8, 0.2}, Labels{1, 1, 0}), 1.0);
  EXPECT_DOUBLE_EQ(average_precision(Scores{0.9, 0.8, 0.2}, Labels{1, 1, 0}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(Scores{0.1, 0.9}, Labels{1, 0}), 0.0);
  // One fraud found only at the last threshold, with one legitimate above it: precision 1/2.
  EXPECT_DOUBLE_EQ(average_precision(Scores{0.1, 0.9}, Labels{1, 0}), 0.5);
  // A tie between a fraud and a legitimate transaction counts half; one threshold for the tie.
  EXPECT_DOUBLE_EQ(roc_auc(Scores{0.5, 0.5}, Labels{1, 0}), 0.5);
  EXPECT_DOUBLE_EQ(average_precision(Scores{0.5, 0.5}, Labels{1, 0}), 0.5);
  // Frauds {0.9, 0.5}, legitimate {0.5, 0.1}: pairs won 3, tied 1 of 4 → (3 + 0.5) / 4.
  EXPECT_DOUBLE_EQ(roc_auc(Scores{0.9, 0.5, 0.5, 0.1}, Labels{1, 1, 0, 0}), 0.875);
  // 0.9: P 1, R 1/2; the tie at 0.5: P 2/3, R 1.
  EXPECT_DOUBLE_EQ(average_precision(Scores{0.9, 0.5, 0.5, 0.1}, Labels{1, 1, 0, 0}),
                   0.5 + 0.5 * 2.0 / 3);
}

TEST(RankingMetrics, UndefinedWithoutBothClasses) {
  EXPECT_TRUE(std::isnan(roc_auc(Scores{0.1, 0.2}, Labels{0, 0})));
  EXPECT_TRUE(std::isnan(roc_auc(Scores{0.1, 0.2}, Labels{1, 1})));
  EXPECT_TRUE(std::isnan(average_precision(Scores{0.1, 0.2}, Labels{0, 0})));
  EXPECT_DOUBLE_EQ(average_precision(Scores{0.1, 0.2}, Labels{1, 1}), 1.0);
  EXPECT_TRUE(std::isnan(roc_auc(Scores{}, Labels{})));
}

TEST(RankingMetrics, BestF1Threshold) {
  // Thresholds 0.8: F1 2/3; 0.4: 1/2; 0.35: P 2/3, R 1, F1 0.8; 0.1: 2/3.
  const ThresholdChoice c = best_f1_threshold(Scores{0.1, 0.4, 0.35, 0.8}, Labels{0, 0, 1, 1});
  EXPECT_DOUBLE_EQ(c.threshold, 0.35);
  EXPECT_DOUBLE_EQ(c.f1, 0.8);
  EXPECT_DOUBLE_EQ(c.precision, 2.0 / 3);
  EXPECT_DOUBLE_EQ(c.recall, 1.0);
  // On equal F1 the higher threshold (fewer alerts) wins.
  // Labels by descending score 1,0,0,1,0,0: F1 2/3 at 0.9 (P 1, R 1/2) and at 0.6 (P 1/2, R 1).
  const ThresholdChoice tie =
      best_f1_threshold(Scores{0.9, 0.8, 0.7, 0.6, 0.5, 0.4}, Labels{1, 0, 0, 1, 0, 0});
  EXPECT_DOUBLE_EQ(tie.threshold, 0.9);
  EXPECT_DOUBLE_EQ(tie.f1, 2.0 / 3);
  EXPECT_DOUBLE_EQ(best_f1_threshold(Scores{0.3}, Labels{0}).threshold, 0.5);
}

}  // namespace
}  // namespace prescale::fraud
