// The logistic-regression baseline: L2-regularised logistic regression on standardised features,
// fitted by Newton's method (IRLS) with a backtracking line search — deterministic, no sampling.
// Missing features (NaN) take the training mean, i.e. contribute nothing.
//
// Thread safety: a LogisticModel is an immutable value; training is a pure function.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "core/result.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud {

struct LogisticOptions {
  // Penalty λ on the standardised coefficients: minimises Σ wᵢ·logloss + λ/2·‖β‖² (the intercept
  // is not penalised). 1 is scikit-learn's default (C = 1).
  double l2 = 1.0;
  int max_iterations = 100;
  // Stops when half the squared Newton decrement (the loss the next step would still gain) is
  // below this.
  double tolerance = 1e-10;
};

// A fitted model: margin (log-odds) = intercept + Σⱼ coefficients[j]·(x[j] − means[j]) / scales[j].
struct LogisticModel {
  double intercept = 0;
  std::array<double, kFeatureCount> means{};
  std::array<double, kFeatureCount> scales{};  // standard deviations; 1 for a constant feature
  std::array<double, kFeatureCount> coefficients{};

  double margin(const Features& x) const;
  // Per-feature terms of the margin (they sum to margin() − intercept); returns the margin.
  double contributions(const Features& x, std::span<double, kFeatureCount> out) const;
};

// Fits on `rows` with their `labels` (1 = fraud); frauds weigh `positive_weight` each, legitimate
// rows 1. kInvalidArgument when a class is absent or the sizes differ.
Result<LogisticModel> train_logistic(std::span<const Features> rows,
                                     std::span<const uint8_t> labels, double positive_weight,
                                     const LogisticOptions& options);

}  // namespace prescale::fraud
