// How well fraud scores rank frauds above legitimate transactions: ROC-AUC, average precision
// (the area under the precision–recall curve, AUPRC) and the decision threshold that maximises
// F1. Tied scores are one threshold, as in scikit-learn's roc_auc_score and
// average_precision_score, so both agree with it to rounding.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <span>

namespace prescale::fraud {

// Probability that a random fraud scores above a random legitimate transaction (ties count
// half). NaN when either class is absent.
double roc_auc(std::span<const double> scores, std::span<const uint8_t> labels);

// Σ over thresholds t (the distinct scores, descending) of (recall(t) − recall(t_prev)) ×
// precision(t), where "fraud" means score ≥ t. NaN without any fraud.
double average_precision(std::span<const double> scores, std::span<const uint8_t> labels);

struct ThresholdChoice {
  double threshold = 0.5;  // decide "fraud" when score ≥ threshold
  double f1 = 0;
  double precision = 0;
  double recall = 0;
};

// The distinct score that, as threshold, gives the highest F1 (the highest such score on ties).
// Without any fraud: threshold 0.5 and zeros.
ThresholdChoice best_f1_threshold(std::span<const double> scores, std::span<const uint8_t> labels);

}  // namespace prescale::fraud
