// Reading values out of parsed scrapes (see text_parser.h): find a sample, sum a selection, and
// histogram quantiles with PromQL's histogram_quantile() semantics, which is how the controller
// gets a replica's p99 from its latency histogram.
#pragma once

#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "telemetry/snapshot.h"
#include "telemetry/text_parser.h"

namespace prescale::telemetry {

// The family named `name`, or nullptr.
const ParsedFamily* find_family(std::span<const ParsedFamily> families, std::string_view name);

// The sample named `sample_name` (e.g. "x_count") whose label set is exactly `labels` (in any
// order), or nullptr.
const ParsedSample* find_sample(std::span<const ParsedFamily> families,
                                std::string_view sample_name, const Labels& labels = {});
std::optional<double> find_value(std::span<const ParsedFamily> families,
                                 std::string_view sample_name, const Labels& labels = {});

// Sum over the samples named `sample_name` whose labels include every pair in `selector`, like
// PromQL's sum(name{selector}); 0 when none match.
double sum_values(std::span<const ParsedFamily> families, std::string_view sample_name,
                  const Labels& selector = {});

struct HistogramData {
  // (upper bound `le`, cumulative count), ascending by bound; the last bound is +Inf in a
  // well-formed histogram.
  std::vector<std::pair<double, double>> buckets;
  double sum = 0;
  double count = 0;
};

// The histogram of `family` summed over the series whose labels include every pair in
// `selector` (PromQL's sum by (le)); empty buckets when none match. Fails when `family` is not a
// histogram.
Result<HistogramData> histogram_data(const ParsedFamily& family, const Labels& selector = {});

// What was observed between two scrapes of one histogram: `later` minus `earlier`, bucket by
// bucket (both ascending by bound, as histogram_data() gives them). When any count went down,
// or the bucket bounds differ (the replica restarted), returns `later` as is, as PromQL's rate()
// treats a counter reset.
HistogramData histogram_delta(const HistogramData& later, const HistogramData& earlier);

// Adds one series of a registry's snapshot (what an in-process scrape sees) to `total`, bucket
// by bucket as PromQL's sum by (le), with its sum and count.
void add_histogram(HistogramData& total, const HistogramSnapshot& series);

// A scrape as a registry's snapshot gives it (what a reader of a process's own registry reads),
// so one reader serves both: counters, gauges and untyped samples one series per label set, the
// family's label names every name its samples carry (missing ones read ""); histograms one series
// per label set without `le`, cumulative counts rounded to whole ones. Summaries are left out.
std::vector<FamilySnapshot> to_snapshots(std::span<const ParsedFamily> families);

// The q-quantile (0 <= q <= 1) of (upper bound, cumulative count) buckets, as PromQL's
// histogram_quantile(): linear interpolation inside the bucket holding the rank, the lower
// bound of the first bucket taken as 0 (unless its upper bound is <= 0, then that bound); the
// highest finite bound when the rank falls in +Inf; NaN when there are no observations, fewer
// than two buckets or no +Inf bucket; -Inf for q < 0 and +Inf for q > 1. Non-monotonic counts
// (scraped mid-update) are made monotonic first; buckets with a NaN bound are ignored.
double histogram_quantile(double q, std::vector<std::pair<double, double>> buckets);

// How many observations of (upper bound, cumulative count) buckets exceeded `threshold`, read
// as histogram_quantile() reads them: linear interpolation inside the bucket holding
// `threshold` (the first one starting at 0, or all at its bound when that is <= 0), the +Inf
// bucket's count above the highest finite bound. 0 when there are no observations, and for a
// threshold of +Inf (nothing is above it: its bucket holds observations up to +Inf); NaN for a
// NaN threshold, fewer than two buckets or no +Inf bucket.
double histogram_count_above(double threshold, std::vector<std::pair<double, double>> buckets);

}  // namespace prescale::telemetry
