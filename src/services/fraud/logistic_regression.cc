#include "services/fraud/logistic_regression.h"

#include <cmath>
#include <cstddef>
#include <vector>

namespace prescale::fraud {
namespace {

constexpr size_t kParams = kFeatureCount + 1;  // the intercept is the last
using Vector = std::array<double, kParams>;
using Matrix = std::array<Vector, kParams>;

// log(1 + e^m), without overflow.
double softplus(double m) { return m > 0 ? m + std::log1p(std::exp(-m)) : std::log1p(std::exp(m)); }
double sigmoid(double m) { return 1 / (1 + std::exp(-m)); }

// Solves h·x = b for a symmetric positive definite h (Cholesky); false when h is not.
bool solve(Matrix h, const Vector& b, Vector& x) {
  for (size_t j = 0; j < kParams; ++j) {
    double d = h[j][j];
    for (size_t k = 0; k < j; ++k) d -= h[j][k] * h[j][k];
    if (!(d > 0)) return false;
    h[j][j] = std::sqrt(d);
    for (size_t i = j + 1; i < kParams; ++i) {
      double s = h[i][j];
      for (size_t k = 0; k < j; ++k) s -= h[i][k] * h[j][k];
      h[i][j] = s / h[j][j];
    }
  }
  Vector y{};
  for (size_t i = 0; i < kParams; ++i) {
    double s = b[i];
    for (size_t k = 0; k < i; ++k) s -= h[i][k] * y[k];
    y[i] = s / h[i][i];
  }
  for (size_t i = kParams; i-- > 0;) {
    double s = y[i];
    for (size_t k = i + 1; k < kParams; ++k) s -= h[k][i] * x[k];
    x[i] = s / h[i][i];
  }
  return true;
}

}  // namespace

double LogisticModel::margin(const Features& x) const {
  double m = intercept;
  for (size_t j = 0; j < kFeatureCount; ++j) {
    if (!std::isnan(x[j])) m += coefficients[j] * (x[j] - means[j]) / scales[j];
  }
  return m;
}

double LogisticModel::contributions(const Features& x, std::span<double, kFeatureCount> out) const {
  double m = intercept;
  for (size_t j = 0; j < kFeatureCount; ++j) {
    out[j] = std::isnan(x[j]) ? 0.0 : coefficients[j] * (x[j] - means[j]) / scales[j];
    m += out[j];
  }
  return m;
}

Result<LogisticModel> train_logistic(std::span<const Features> rows,
                                     std::span<const uint8_t> labels, double positive_weight,
                                     const LogisticOptions& options) {
  const size_t n = rows.size();
  if (labels.size() != n) {
    return make_error(ErrorCode::kInvalidArgument, "logistic regression: rows and labels differ");
  }
  size_t frauds = 0;
  for (uint8_t y : labels) frauds += y != 0;
  if (frauds == 0 || frauds == n) {
    return make_error(ErrorCode::kInvalidArgument,
                      "logistic regression: the training rows need both frauds and legitimate "
                      "transactions");
  }
  if (!(positive_weight > 0) || !(options.l2 >= 0) || options.max_iterations < 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "logistic regression: need positive_weight > 0, l2 ≥ 0, max_iterations ≥ 1");
  }

  LogisticModel model;
  for (size_t j = 0; j < kFeatureCount; ++j) {
    double sum = 0;
    size_t count = 0;
    for (const Features& r : rows) {
      if (!std::isnan(r[j])) sum += r[j], ++count;
    }
    const double mean = count > 0 ? sum / static_cast<double>(count) : 0.0;
    double squares = 0;
    for (const Features& r : rows) {
      if (!std::isnan(r[j])) squares += (r[j] - mean) * (r[j] - mean);
    }
    const double sd = count > 0 ? std::sqrt(squares / static_cast<double>(count)) : 0.0;
    model.means[j] = mean;
    model.scales[j] = sd > 0 ? sd : 1.0;
  }
  // Standardised design matrix with the intercept column last.
  std::vector<Vector> z(n);
  std::vector<double> weight(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < kFeatureCount; ++j) {
      z[i][j] = std::isnan(rows[i][j]) ? 0.0 : (rows[i][j] - model.means[j]) / model.scales[j];
    }
    z[i][kFeatureCount] = 1;
    weight[i] = labels[i] != 0 ? positive_weight : 1.0;
  }

  auto loss_of = [&](const Vector& beta) {
    double loss = 0;
    for (size_t i = 0; i < n; ++i) {
      double m = 0;
      for (size_t j = 0; j < kParams; ++j) m += beta[j] * z[i][j];
      loss += weight[i] * (labels[i] != 0 ? softplus(-m) : softplus(m));
    }
    for (size_t j = 0; j < kFeatureCount; ++j) loss += options.l2 / 2 * beta[j] * beta[j];
    return loss;
  };

  Vector beta{};
  double loss = loss_of(beta);
  for (int iteration = 0; iteration < options.max_iterations; ++iteration) {
    Vector gradient{};
    Matrix hessian{};
    for (size_t i = 0; i < n; ++i) {
      double m = 0;
      for (size_t j = 0; j < kParams; ++j) m += beta[j] * z[i][j];
      const double p = sigmoid(m);
      const double g = weight[i] * (p - (labels[i] != 0 ? 1.0 : 0.0));
      const double h = weight[i] * p * (1 - p);
      for (size_t j = 0; j < kParams; ++j) {
        gradient[j] += g * z[i][j];
        for (size_t k = 0; k <= j; ++k) hessian[j][k] += h * z[i][j] * z[i][k];
      }
    }
    for (size_t j = 0; j < kParams; ++j) {
      for (size_t k = 0; k < j; ++k) hessian[k][j] = hessian[j][k];
    }
    for (size_t j = 0; j < kFeatureCount; ++j) {
      gradient[j] += options.l2 * beta[j];
      hessian[j][j] += options.l2;
    }
    // A vanishing curvature (perfectly separated rows without a penalty) gets a tiny ridge.
    for (size_t j = 0; j < kParams; ++j) hessian[j][j] += 1e-12;
    Vector step{};
    if (!solve(hessian, gradient, step)) {
      return make_error(ErrorCode::kInternal, "logistic regression: singular Hessian");
    }
    double decrement = 0;  // gᵀ·H⁻¹·g
    for (size_t j = 0; j < kParams; ++j) decrement += gradient[j] * step[j];
    if (decrement / 2 < options.tolerance) break;
    // Backtracking (Armijo) line search along the Newton direction.
    double t = 1;
    Vector next{};
    double next_loss = loss;
    for (int halvings = 0; halvings < 50; ++halvings, t /= 2) {
      for (size_t j = 0; j < kParams; ++j) next[j] = beta[j] - t * step[j];
      next_loss = loss_of(next);
      if (next_loss <= loss - 1e-4 * t * decrement) break;
    }
    if (!(next_loss < loss)) break;  // no further progress at float precision
    beta = next;
    loss = next_loss;
  }
  for (size_t j = 0; j < kFeatureCount; ++j) model.coefficients[j] = beta[j];
  model.intercept = beta[kFeatureCount];
  return model;
}

}  // namespace prescale::fraud
