#include "healing/detector.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace prescale::healing {

double normal_tail(double x, double mean, double sd) {
  const double z = std::abs(x - mean) / sd;
  return 0.5 * std::erfc(z / std::sqrt(2.0));
}

namespace {

// A value that is not finite is scored but never learned from: one NaN in a mean or deviation
// makes every later score NaN. NaN (a gap: no requests, so no latency) is no evidence; ±inf is
// beyond every range.
double non_finite_score(double value) { return std::isnan(value) ? 0.0 : 1.0; }

}  // namespace

WindowedGaussian::WindowedGaussian(std::size_t window, std::size_t step)
    : window_(window), step_(step) {
  if (window == 0 || step == 0 || step > window) {
    throw std::invalid_argument("WindowedGaussian: needs 1 <= step <= window, got window " +
                                std::to_string(window) + " and step " + std::to_string(step));
  }
}

double WindowedGaussian::observe(double value) {
  if (!std::isfinite(value)) return values_.empty() ? 0.0 : non_finite_score(value);
  const double score = values_.empty() ? 0.0 : 1.0 - normal_tail(value, mean_, sd_);
  if (values_.size() < window_) {
    values_.push_back(value);
    const double n = static_cast<double>(values_.size());
    const double delta = value - mean_;
    mean_ += delta / n;
    m2_ += delta * (value - mean_);
    sd_ = std::sqrt(m2_ / n);
    if (sd_ == 0.0) sd_ = 1e-6;
  } else {
    pending_.push_back(value);
    if (pending_.size() == step_) {
      values_.erase(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(step_));
      values_.insert(values_.end(), pending_.begin(), pending_.end());
      pending_.clear();
      refit();
    }
  }
  return score;
}

// The window's mean and population standard deviation, computed afresh (two passes: no
// cancellation on large values with a small spread).
void WindowedGaussian::refit() {
  double sum = 0;
  for (double v : values_) sum += v;
  const double n = static_cast<double>(values_.size());
  mean_ = sum / n;
  double squares = 0;
  for (double v : values_) squares += (v - mean_) * (v - mean_);
  sd_ = std::sqrt(squares / n);
  if (sd_ == 0.0) sd_ = 1e-6;
}

DeviationDetector::DeviationDetector(DeviationOptions options)
    : options_(options), alpha_(1.0 - std::pow(0.5, 1.0 / options.half_life)) {}

double DeviationDetector::observe(double value) {
  // A value so far from the rest that its square deviation, or the range with it, overflows
  // (beyond about 1e154 from the mean) cannot be learned from: it would leave the variance or the
  // range infinite, and the mean NaN, for good. It is scored as an infinite one is.
  const bool measurable =
      std::isfinite(value) &&
      (seen_ == 0 || (std::isfinite((value - mean_) * (value - mean_)) &&
                      std::isfinite(std::max(max_, value) - std::min(min_, value))));
  if (!measurable) {
    // Within a hold it is the same incident; a gap does not shorten the hold.
    if (seen_ < options_.warmup || holding_ > 0) return 0;
    const double score = std::isfinite(value) ? 1.0 : non_finite_score(value);
    if (score >= options_.alert_score) holding_ = options_.hold;
    return score;
  }
  double score = 0;
  if (seen_ >= options_.warmup) {
    const double sd = variance_ > 0 ? std::sqrt(variance_) : 1e-9;
    score = 1.0 - normal_tail(value, mean_, sd);
    const double margin = options_.novelty_margin * (max_ - min_);
    if (max_ > min_ && (value > max_ + margin || value < min_ - margin)) score = 1;
  }
  if (seen_ == 0) {
    mean_ = min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
    const double delta = value - mean_;
    mean_ += alpha_ * delta;
    variance_ = (1 - alpha_) * (variance_ + alpha_ * delta * delta);
  }
  ++seen_;
  if (holding_ > 0) {
    --holding_;
    return 0;
  }
  if (score >= options_.alert_score) holding_ = options_.hold;
  return score;
}

std::unique_ptr<AnomalyDetector> make_detector(std::string_view name) {
  if (name == "deviation") return std::make_unique<DeviationDetector>();
  if (name == "windowed_gaussian") return std::make_unique<WindowedGaussian>();
  return nullptr;
}

const std::vector<std::string_view>& detector_names() {
  static const std::vector<std::string_view> names{"deviation", "windowed_gaussian"};
  return names;
}

}  // namespace prescale::healing
