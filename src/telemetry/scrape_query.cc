#include "telemetry/scrape_query.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "telemetry/internal/text.h"

namespace prescale::telemetry {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool has_label(const Labels& labels, const std::pair<std::string, std::string>& wanted) {
  return std::find(labels.begin(), labels.end(), wanted) != labels.end();
}

bool includes_all(const Labels& labels, const Labels& selector) {
  return std::all_of(selector.begin(), selector.end(),
                     [&](const auto& pair) { return has_label(labels, pair); });
}

// The family that holds samples named `sample_name`: the exact name, or the histogram/summary
// it is a _bucket, _sum or _count of.
const ParsedFamily* family_of_sample(std::span<const ParsedFamily> families,
                                     std::string_view sample_name) {
  if (const ParsedFamily* f = find_family(families, sample_name)) return f;
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (sample_name.size() > suffix.size() && sample_name.ends_with(suffix)) {
      return find_family(families, sample_name.substr(0, sample_name.size() - suffix.size()));
    }
  }
  return nullptr;
}

// `le` as written by any client ("0.005", "1", "1e+06", "+Inf").
std::optional<double> parse_le(const Labels& labels) {
  for (const auto& [name, value] : labels) {
    if (name != "le") continue;
    double v = 0;
    if (!internal::parse_float(value, &v)) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

// `buckets` as histogram_quantile() reads them: sorted by bound, without NaN bounds, equal
// bounds (e.g. "1" and "1.0" from two clients) merged, counts forced monotonic. Empty when the
// highest bound is not +Inf.
std::vector<std::pair<double, double>> readable_buckets(
    std::vector<std::pair<double, double>> buckets) {
  std::erase_if(buckets, [](const auto& bucket) { return std::isnan(bucket.first); });
  std::sort(buckets.begin(), buckets.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  if (buckets.empty() || buckets.back().first != kInf) return {};
  std::vector<std::pair<double, double>> merged;
  for (const auto& b : buckets) {
    if (!merged.empty() && merged.back().first == b.first) {
      merged.back().second += b.second;
    } else {
      merged.push_back(b);
    }
  }
  for (size_t i = 1; i < merged.size(); ++i) {
    merged[i].second = std::max(merged[i].second, merged[i - 1].second);
  }
  return merged;
}

}  // namespace

const ParsedFamily* find_family(std::span<const ParsedFamily> families, std::string_view name) {
  for (const ParsedFamily& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const ParsedSample* find_sample(std::span<const ParsedFamily> families,
                                std::string_view sample_name, const Labels& labels) {
  const ParsedFamily* family = family_of_sample(families, sample_name);
  if (family == nullptr) return nullptr;
  for (const ParsedSample& s : family->samples) {
    if (s.name == sample_name && s.labels.size() == labels.size() &&
        includes_all(s.labels, labels)) {
      return &s;
    }
  }
  return nullptr;
}

std::optional<double> find_value(std::span<const ParsedFamily> families,
                                 std::string_view sample_name, const Labels& labels) {
  const ParsedSample* s = find_sample(families, sample_name, labels);
  if (s == nullptr) return std::nullopt;
  return s->value;
}

double sum_values(std::span<const ParsedFamily> families, std::string_view sample_name,
                  const Labels& selector) {
  const ParsedFamily* family = family_of_sample(families, sample_name);
  if (family == nullptr) return 0;
  double total = 0;
  for (const ParsedSample& s : family->samples) {
    if (s.name == sample_name && includes_all(s.labels, selector)) total += s.value;
  }
  return total;
}

Result<HistogramData> histogram_data(const ParsedFamily& family, const Labels& selector) {
  if (family.type != MetricType::kHistogram) {
    return make_error(ErrorCode::kInvalidArgument, "metric " + family.name + " is a " +
                                                       std::string(to_string(family.type)) +
                                                       ", not a histogram");
  }
  const std::string bucket_name = family.name + "_bucket";
  const std::string sum_name = family.name + "_sum";
  const std::string count_name = family.name + "_count";
  std::map<double, double> by_bound;
  HistogramData data;
  for (const ParsedSample& s : family.samples) {
    if (!includes_all(s.labels, selector)) continue;
    if (s.name == bucket_name) {
      // The parser guarantees a float `le` on buckets of a typed histogram.
      if (std::optional<double> le = parse_le(s.labels); le && !std::isnan(*le)) {
        by_bound[*le] += s.value;
      }
    } else if (s.name == sum_name) {
      data.sum += s.value;
    } else if (s.name == count_name) {
      data.count += s.value;
    }
  }
  data.buckets.assign(by_bound.begin(), by_bound.end());
  return data;
}

HistogramData histogram_delta(const HistogramData& later, const HistogramData& earlier) {
  if (later.count < earlier.count) return later;
  // Other bucket bounds mean another process (a restart with a new layout), whose counts may
  // well have passed the earlier ones: subtracting them would mix two histograms.
  if (later.buckets.size() != earlier.buckets.size()) return later;
  HistogramData delta;
  delta.sum = later.sum - earlier.sum;
  delta.count = later.count - earlier.count;
  delta.buckets.reserve(later.buckets.size());
  for (size_t i = 0; i < later.buckets.size(); ++i) {
    const auto& [le, count] = later.buckets[i];
    const auto& [earlier_le, before] = earlier.buckets[i];
    if (le != earlier_le || count < before) return later;
    delta.buckets.emplace_back(le, count - before);
  }
  return delta;
}

void add_histogram(HistogramData& total, const HistogramSnapshot& series) {
  for (size_t i = 0; i < series.cumulative_counts.size(); ++i) {
    const double le = i < series.upper_bounds.size() ? series.upper_bounds[i] : kInf;
    const double count = static_cast<double>(series.cumulative_counts[i]);
    auto at =
        std::lower_bound(total.buckets.begin(), total.buckets.end(), le,
                         [](const auto& bucket, double bound) { return bucket.first < bound; });
    if (at != total.buckets.end() && at->first == le) {
      at->second += count;
    } else {
      total.buckets.emplace(at, le, count);
    }
  }
  total.sum += series.sum;
  total.count += static_cast<double>(series.count());
}

double histogram_quantile(double q, std::vector<std::pair<double, double>> buckets) {
  if (std::isnan(q)) return kNaN;
  if (q < 0) return -kInf;
  if (q > 1) return kInf;
  const std::vector<std::pair<double, double>> merged = readable_buckets(std::move(buckets));
  if (merged.size() < 2) return kNaN;
  double observations = merged.back().second;
  if (observations == 0) return kNaN;

  double rank = q * observations;
  // The first bucket (excluding +Inf) whose cumulative count reaches the rank.
  size_t b = 0;
  while (b < merged.size() - 1 && merged[b].second < rank) ++b;
  if (b == merged.size() - 1) return merged[merged.size() - 2].first;
  if (b == 0 && merged[0].first <= 0) return merged[0].first;

  double bucket_start = 0;
  double bucket_end = merged[b].first;
  double count = merged[b].second;
  if (b > 0) {
    bucket_start = merged[b - 1].first;
    count -= merged[b - 1].second;
    rank -= merged[b - 1].second;
  }
  return bucket_start + (bucket_end - bucket_start) * (rank / count);
}

double histogram_count_above(double threshold, std::vector<std::pair<double, double>> buckets) {
  if (std::isnan(threshold)) return kNaN;
  const std::vector<std::pair<double, double>> merged = readable_buckets(std::move(buckets));
  if (merged.size() < 2) return kNaN;
  const double observations = merged.back().second;
  if (threshold == kInf) return 0;  // the +Inf bucket holds observations up to +Inf
  // The first bucket whose bound reaches the threshold; +Inf at the latest.
  size_t b = 0;
  while (merged[b].first < threshold) ++b;
  if (b == merged.size() - 1) return observations - merged[b - 1].second;
  if (b == 0 && merged[0].first <= 0) {
    return threshold < merged[0].first ? observations : observations - merged[0].second;
  }
  if (b == 0 && threshold <= 0) return observations;

  double bucket_start = 0;
  double below = 0;
  if (b > 0) {
    bucket_start = merged[b - 1].first;
    below = merged[b - 1].second;
  }
  const double bucket_end = merged[b].first;
  const double within =
      (merged[b].second - below) * (threshold - bucket_start) / (bucket_end - bucket_start);
  return observations - below - within;
}

std::vector<FamilySnapshot> to_snapshots(std::span<const ParsedFamily> families) {
  std::vector<FamilySnapshot> out;
  for (const ParsedFamily& family : families) {
    if (family.type == MetricType::kSummary) continue;
    const bool histogram = family.type == MetricType::kHistogram;
    FamilySnapshot f;
    f.name = family.name;
    f.help = family.help;
    f.type = family.type;
    for (const ParsedSample& s : family.samples) {
      for (const auto& [name, value] : s.labels) {
        if (histogram && name == "le") continue;
        if (std::find(f.label_names.begin(), f.label_names.end(), name) == f.label_names.end()) {
          f.label_names.push_back(name);
        }
      }
    }
    std::map<std::vector<std::string>, size_t> index;  // label values -> series
    std::vector<std::map<double, double>> buckets;     // per series, by bound (histograms)
    for (const ParsedSample& s : family.samples) {
      std::vector<std::string> values(f.label_names.size());
      for (const auto& [name, value] : s.labels) {
        const auto at = std::find(f.label_names.begin(), f.label_names.end(), name);
        if (at != f.label_names.end()) values[at - f.label_names.begin()] = value;
      }
      auto [it, added] = index.emplace(values, f.series.size());
      if (added) {
        f.series.push_back(SeriesSnapshot{std::move(values), 0, {}});
        buckets.emplace_back();
      }
      SeriesSnapshot& series = f.series[it->second];
      if (!histogram) {
        series.value = s.value;
      } else if (s.name == family.name + "_bucket") {
        if (std::optional<double> le = parse_le(s.labels); le && !std::isnan(*le)) {
          buckets[it->second][*le] = s.value;
        }
      } else if (s.name == family.name + "_sum") {
        series.histogram.sum = s.value;
      }
    }
    if (histogram) {
      for (size_t i = 0; i < f.series.size(); ++i) {
        HistogramSnapshot& h = f.series[i].histogram;
        double inf = 0;
        for (const auto& [bound, count] : buckets[i]) {
          const auto whole = static_cast<uint64_t>(std::llround(std::max(0.0, count)));
          if (std::isinf(bound)) {
            inf = count;
            continue;
          }
          h.upper_bounds.push_back(bound);
          h.cumulative_counts.push_back(whole);
        }
        h.cumulative_counts.push_back(static_cast<uint64_t>(std::llround(std::max(0.0, inf))));
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace prescale::telemetry
