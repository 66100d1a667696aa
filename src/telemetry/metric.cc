#include "telemetry/metric.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace prescale::telemetry {

std::string_view to_string(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kSummary:
      return "summary";
    case MetricType::kUntyped:
      return "untyped";
  }
  return "untyped";
}

namespace internal {

std::vector<double> checked_upper_bounds(std::span<const double> upper_bounds) {
  std::vector<double> bounds(upper_bounds.begin(), upper_bounds.end());
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (std::isnan(bounds[i])) throw std::invalid_argument("histogram bucket bound is NaN");
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      throw std::invalid_argument("histogram bucket bounds must be strictly ascending (" +
                                  std::to_string(bounds[i - 1]) + " then " +
                                  std::to_string(bounds[i]) + ")");
    }
  }
  return bounds;
}

}  // namespace internal

Histogram::Histogram(std::span<const double> upper_bounds)
    : upper_bounds_(internal::checked_upper_bounds(upper_bounds)),
      lines_(std::make_unique<CountLine[]>(upper_bounds_.size() / kCountsPerLine + 1)) {}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  s.upper_bounds = upper_bounds_;
  s.cumulative_counts.resize(upper_bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    total += bucket(i).load(std::memory_order_relaxed);
    s.cumulative_counts[i] = total;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> default_latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace prescale::telemetry
