#include "services/fraud/ranking_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <vector>

namespace prescale::fraud {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// True and false positives at each distinct score, highest score first, cumulative.
struct Step {
  double score;
  double true_positives;
  double false_positives;
};

std::vector<Step> cumulative_steps(std::span<const double> scores,
                                   std::span<const uint8_t> labels) {
  const size_t n = std::min(scores.size(), labels.size());
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<Step> steps;
  double tp = 0, fp = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = order[k];
    (labels[i] != 0 ? tp : fp) += 1;
    if (k + 1 == n || scores[order[k + 1]] != scores[i]) steps.push_back({scores[i], tp, fp});
  }
  return steps;
}

}  // namespace

double roc_auc(std::span<const double> scores, std::span<const uint8_t> labels) {
  const std::vector<Step> steps = cumulative_steps(scores, labels);
  if (steps.empty()) return kNaN;
  const double positives = steps.back().true_positives;
  const double negatives = steps.back().false_positives;
  if (positives == 0 || negatives == 0) return kNaN;
  // Trapezoids under the ROC curve: a tie block adds a diagonal, which counts its pairs half.
  double area = 0, tp = 0, fp = 0;
  for (const Step& s : steps) {
    area += (s.false_positives - fp) * (s.true_positives + tp) / 2;
    tp = s.true_positives;
    fp = s.false_positives;
  }
  return area / (positives * negatives);
}

double average_precision(std::span<const double> scores, std::span<const uint8_t> labels) {
  const std::vector<Step> steps = cumulative_steps(scores, labels);
  if (steps.empty() || steps.back().true_positives == 0) return kNaN;
  const double positives = steps.back().true_positives;
  double ap = 0, tp = 0;
  for (const Step& s : steps) {
    const double precision = s.true_positives / (s.true_positives + s.false_positives);
    ap += (s.true_positives - tp) / positives * precision;
    tp = s.true_positives;
  }
  return ap;
}

ThresholdChoice best_f1_threshold(std::span<const double> scores, std::span<const uint8_t> labels) {
  const std::vector<Step> steps = cumulative_steps(scores, labels);
  ThresholdChoice best;
  if (steps.empty() || steps.back().true_positives == 0) return best;
  const double positives = steps.back().true_positives;
  best.f1 = -1;
  for (const Step& s : steps) {
    const double precision = s.true_positives / (s.true_positives + s.false_positives);
    const double recall = s.true_positives / positives;
    const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
    if (f1 > best.f1) best = {s.score, f1, precision, recall};
  }
  return best;
}

}  // namespace prescale::fraud
