// Point-in-time copies of metric families: what the registry hands to the exposition and what
// collectors produce at scrape time (e.g. process metrics).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace prescale::telemetry {

enum class MetricType { kCounter, kGauge, kHistogram, kSummary, kUntyped };

// "counter", "gauge", "histogram", "summary", "untyped": the TYPE line's spelling.
std::string_view to_string(MetricType type);

struct HistogramSnapshot {
  std::vector<double> upper_bounds;         // ascending, finite; the +Inf bucket is implied
  std::vector<uint64_t> cumulative_counts;  // upper_bounds.size() + 1 entries, the last is +Inf
  double sum = 0;

  uint64_t count() const { return cumulative_counts.empty() ? 0 : cumulative_counts.back(); }
};

struct SeriesSnapshot {
  std::vector<std::string> label_values;  // parallel to FamilySnapshot::label_names
  double value = 0;                       // counter, gauge, untyped
  HistogramSnapshot histogram;            // histogram only
};

// A family as exposed. Collectors may produce counters, gauges, untyped and histograms
// (summaries are not exposed).
struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kUntyped;
  std::vector<std::string> label_names;
  std::vector<SeriesSnapshot> series;
};

// Called at every scrape to append dynamic families (e.g. process metrics); runs on the
// scraping thread, so it must be thread-safe and should be quick.
using Collector = std::function<void(std::vector<FamilySnapshot>& out)>;

}  // namespace prescale::telemetry
