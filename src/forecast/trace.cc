#include "forecast/trace.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <optional>
#include <utility>

#include "forecast/csv.h"

namespace prescale::forecast {

double Trace::rate_rps(size_t i) const { return counts[i] / step_seconds; }

double Trace::peak_rps() const {
  double peak = 0;
  for (double c : counts) peak = std::max(peak, c);
  return peak / step_seconds;
}

double Trace::total_requests() const { return std::accumulate(counts.begin(), counts.end(), 0.0); }

double Trace::duration_seconds() const { return static_cast<double>(counts.size()) * step_seconds; }

namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
// Gap filling must not turn one stray timestamp into gigabytes of zeros.
constexpr int64_t kMaxSteps = 50'000'000;
// Times are read within ±4.6e9 s of the epoch (the years 1824 to 2115), so that the difference
// of any two, in nanoseconds, fits an int64 (±9.2e18).
constexpr double kMaxUnixSeconds = 4.6e9;
constexpr int64_t kMaxAbsTimeNanos = static_cast<int64_t>(kMaxUnixSeconds) * kNanosPerSecond;
constexpr std::string_view kBoundedTimestamp = "a timestamp in the years 1824 to 2115";
// Step indices are integers a double holds exactly (below 2^53 ≈ 9e15); 1e15 is a round bound.
constexpr double kMaxStepIndex = 1e15;
// A step is at least a millisecond and at most a (leap) year.
constexpr double kMinStepSeconds = 0.001;
constexpr double kMaxStepSeconds = 366 * 86400.0;
// NASA's column is local time at the Kennedy Space Center: EDT, UTC-4, all July.
constexpr int64_t kEdtToUtcNanos = 4 * 3600 * kNanosPerSecond;

std::string stem_of(std::string_view source) {
  size_t slash = source.find_last_of('/');
  if (slash != std::string_view::npos) source.remove_prefix(slash + 1);
  size_t dot = source.find_last_of('.');
  if (dot != std::string_view::npos && dot > 0) source = source.substr(0, dot);
  return std::string(source);
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t seconds_to_nanos(double seconds) {
  return static_cast<int64_t>(std::llround(seconds * static_cast<double>(kNanosPerSecond)));
}

std::string join(const std::vector<std::string_view>& names) {
  std::string out;
  for (auto name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// ---- Series of per-step values (NASA, Alibaba, NAB, generic) -------------------------------

struct SeriesFormat {
  std::vector<size_t> value_columns;  // summed
  double rate_to_count_seconds = 0;   // > 0: values are req/s; count = value * this
  int64_t zone_offset_ns = 0;         // added to every timestamp (local time -> UTC)
  double step_seconds = 0;            // 0: detect from the timestamps
};

enum class TimeKind { kCalendar, kUnixSeconds, kUnixMillis, kStepIndex };

struct Row {
  int64_t time;  // nanoseconds since the epoch, or the step index
  double count;
};

// The step of rows whose times are strictly increasing (at least two rows), in nanoseconds.
// Clock jitter makes the exact differences scatter (59.98 s, 60.03 s, ... in a per-minute
// file), so the differences within 1 % of one another are grouped: the group around the
// difference with the most others within 1 % of it wins (ties: the smaller difference), and the
// step is the median of that group — snapped to whole seconds, else whole milliseconds, when
// that value lies within the group's interquartile range (plus 1 µs for the rounding of decimal
// seconds). The spread of the data, not a fixed tolerance, decides the snap: an exact step of
// 1/3 s stays 333,333,333 ns instead of becoming 333 ms, which would misplace every row after
// the 500th.
int64_t detect_step(const std::vector<Row>& rows) {
  std::vector<int64_t> diffs;
  diffs.reserve(rows.size());
  for (size_t i = 1; i < rows.size(); ++i) diffs.push_back(rows[i].time - rows[i - 1].time);
  std::sort(diffs.begin(), diffs.end());
  auto group_of = [&](int64_t d) {
    const int64_t tolerance = d / 100;
    return std::pair(std::lower_bound(diffs.begin(), diffs.end(), d - tolerance),
                     std::upper_bound(diffs.begin(), diffs.end(), d + tolerance));
  };
  int64_t best = diffs.front();
  long best_size = 0;
  for (size_t i = 0; i < diffs.size(); ++i) {
    if (i > 0 && diffs[i] == diffs[i - 1]) continue;
    const auto [lo, hi] = group_of(diffs[i]);
    if (hi - lo > best_size) {
      best_size = hi - lo;
      best = diffs[i];
    }
  }
  const auto [lo, hi] = group_of(best);
  const std::vector<int64_t> group(lo, hi);  // sorted
  const int64_t median = group[group.size() / 2];
  constexpr int64_t kParseSlackNanos = 1'000;
  const int64_t q25 = group[group.size() / 4] - kParseSlackNanos;
  const int64_t q75 = group[group.size() * 3 / 4] + kParseSlackNanos;
  for (int64_t unit : {kNanosPerSecond, int64_t{1'000'000}}) {
    const int64_t snapped = (median + unit / 2) / unit * unit;
    if (snapped > 0 && snapped >= q25 && snapped <= q75) return snapped;
  }
  return median;
}

// The step `offset` (>= 0) is nearest to, halves rounding up; (offset + step / 2) / step without
// the overflow of the sum.
int64_t nearest_slot(int64_t offset, int64_t step) {
  const int64_t rest = offset % step;
  return offset / step + (rest >= step - rest ? 1 : 0);
}

Result<Trace> parse_series(CsvReader& csv, const std::vector<std::string_view>& header,
                           const SeriesFormat& format, const TraceOptions& options) {
  size_t needed = 1 + *std::max_element(format.value_columns.begin(), format.value_columns.end());
  std::vector<Row> rows;
  std::vector<std::string_view> fields;
  std::optional<TimeKind> kind;
  while (csv.next(fields)) {
    if (fields.size() < needed) {
      return std::unexpected(csv.error("expected " + std::to_string(header.size()) +
                                       " fields like the header, got " +
                                       std::to_string(fields.size())));
    }
    std::string_view time_text = fields[0];
    int64_t time = 0;
    if (!kind) {
      // The first row decides how the first column is read.
      if (parse_timestamp_ns(time_text)) {
        kind = TimeKind::kCalendar;
      } else if (auto v = parse_number(time_text)) {
        bool integral = *v == std::floor(*v);
        kind = integral && std::abs(*v) < 1e8 ? TimeKind::kStepIndex
               : std::abs(*v) >= 1e11         ? TimeKind::kUnixMillis
                                              : TimeKind::kUnixSeconds;
      } else {
        return std::unexpected(csv.field_error(
            header, 0, "a timestamp (ISO-8601 or Unix seconds) or a step index", time_text));
      }
    }
    switch (*kind) {
      case TimeKind::kCalendar: {
        auto t = parse_timestamp_ns(time_text);
        if (!t) return std::unexpected(csv.field_error(header, 0, "a timestamp", time_text));
        time = *t + format.zone_offset_ns;
        if (std::abs(time) > kMaxAbsTimeNanos) {
          return std::unexpected(csv.field_error(header, 0, kBoundedTimestamp, time_text));
        }
        break;
      }
      case TimeKind::kUnixSeconds:
      case TimeKind::kUnixMillis: {
        auto v = parse_number(time_text);
        if (!v) return std::unexpected(csv.field_error(header, 0, "Unix seconds", time_text));
        double seconds = *kind == TimeKind::kUnixMillis ? *v / 1000 : *v;
        if (std::abs(seconds) > kMaxUnixSeconds) {
          return std::unexpected(csv.field_error(
              header, 0, "Unix seconds within ±4.6e9 (the years 1824 to 2115)", time_text));
        }
        time = seconds_to_nanos(seconds);
        break;
      }
      case TimeKind::kStepIndex: {
        auto v = parse_number(time_text);
        if (!v || *v != std::floor(*v) || std::abs(*v) >= kMaxStepIndex) {
          return std::unexpected(
              csv.field_error(header, 0, "a step index (an integer below 1e15)", time_text));
        }
        time = static_cast<int64_t>(*v);
        break;
      }
    }
    if (!rows.empty() && time <= rows.back().time) {
      return std::unexpected(csv.error(
          std::string(time == rows.back().time ? "duplicate" : "decreasing") + " time \"" +
          std::string(time_text) + "\": each row must come after the previous one"));
    }
    double count = 0;
    for (size_t column : format.value_columns) {
      auto v = parse_number(fields[column]);
      if (!v) return std::unexpected(csv.field_error(header, column, "a number", fields[column]));
      if (*v < 0) {
        return std::unexpected(
            csv.field_error(header, column, "a non-negative count", fields[column]));
      }
      count += *v;
    }
    rows.push_back({time, count});
  }
  if (rows.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(csv.source()) + ": no data rows after the header");
  }

  Trace trace;
  trace.name = stem_of(csv.source());
  int64_t step = 1;  // in the unit of Row::time
  if (*kind == TimeKind::kStepIndex) {
    trace.step_seconds = options.step_seconds > 0 ? options.step_seconds : 60;
    trace.start_unix_seconds = 0;
  } else {
    if (format.step_seconds > 0) {
      step = seconds_to_nanos(format.step_seconds);
    } else if (rows.size() > 1) {
      step = detect_step(rows);
    } else {
      step = seconds_to_nanos(options.step_seconds > 0 ? options.step_seconds : 60);
    }
    trace.step_seconds = static_cast<double>(step) / kNanosPerSecond;
    trace.start_unix_seconds = static_cast<double>(rows.front().time) / kNanosPerSecond;
  }
  // Rows off the step grid (clock jitter) go to the nearest step; two rows landing on one step
  // add up. Missing steps stay 0. Times are bounded (kMaxAbsTimeNanos), so differences fit.
  const int64_t t0 = rows.front().time;
  const int64_t last_slot = nearest_slot(rows.back().time - t0, step);
  if (last_slot >= kMaxSteps) {
    return make_error(ErrorCode::kOutOfRange,
                      std::string(csv.source()) + ": the rows span " +
                          std::to_string(last_slot + 1) + " steps of " +
                          std::to_string(trace.step_seconds) + " s, more than the limit of " +
                          std::to_string(kMaxSteps) + " (a stray timestamp?)");
  }
  trace.counts.assign(static_cast<size_t>(last_slot + 1), 0.0);
  const double to_count = format.rate_to_count_seconds > 0 ? format.rate_to_count_seconds : 1;
  for (const Row& row : rows) {
    trace.counts[static_cast<size_t>(nearest_slot(row.time - t0, step))] += row.count * to_count;
  }
  if (*kind != TimeKind::kStepIndex && options.step_seconds > 0 &&
      options.step_seconds != trace.step_seconds) {
    if (trace.duration_seconds() / options.step_seconds >= static_cast<double>(kMaxSteps)) {
      return make_error(ErrorCode::kOutOfRange, std::string(csv.source()) + ": a step of " +
                                                    std::to_string(options.step_seconds) +
                                                    " s makes more than " +
                                                    std::to_string(kMaxSteps) + " steps");
    }
    trace = resample(trace, options.step_seconds);
  }
  return trace;
}

// ---- Per-request traces (Azure LLM) --------------------------------------------------------

struct Request {
  int64_t time_ns;
  double cost;
};

Result<Trace> parse_requests(CsvReader& csv, const std::vector<std::string_view>& header,
                             size_t time_column, size_t context_column, size_t generated_column,
                             const TraceOptions& options) {
  size_t needed = 1 + std::max({time_column, context_column, generated_column});
  std::vector<Request> requests;
  std::vector<std::string_view> fields;
  bool sorted = true;
  while (csv.next(fields)) {
    if (fields.size() < needed) {
      return std::unexpected(csv.error("expected " + std::to_string(header.size()) +
                                       " fields like the header, got " +
                                       std::to_string(fields.size())));
    }
    auto t = parse_timestamp_ns(fields[time_column]);
    if (!t) {
      return std::unexpected(
          csv.field_error(header, time_column, "a timestamp", fields[time_column]));
    }
    if (std::abs(*t) > kMaxAbsTimeNanos) {
      return std::unexpected(
          csv.field_error(header, time_column, kBoundedTimestamp, fields[time_column]));
    }
    double tokens[2] = {0, 0};
    size_t columns[2] = {context_column, generated_column};
    for (int k = 0; k < 2; ++k) {
      auto v = parse_number(fields[columns[k]]);
      if (!v || *v < 0) {
        return std::unexpected(
            csv.field_error(header, columns[k], "a non-negative token count", fields[columns[k]]));
      }
      tokens[k] = *v;
    }
    if (!requests.empty() && *t < requests.back().time_ns) sorted = false;
    requests.push_back({*t, tokens[0] + options.decode_token_weight * tokens[1]});
  }
  if (requests.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(csv.source()) + ": no data rows after the header");
  }
  // Request logs are not always in arrival order; arrivals are.
  if (!sorted) {
    std::stable_sort(requests.begin(), requests.end(),
                     [](const Request& a, const Request& b) { return a.time_ns < b.time_ns; });
  }

  Trace trace;
  trace.name = stem_of(csv.source());
  trace.step_seconds = options.step_seconds > 0 ? options.step_seconds : 1;
  const int64_t step = std::max<int64_t>(1, seconds_to_nanos(trace.step_seconds));
  const int64_t start = floor_div(requests.front().time_ns, step) * step;
  const int64_t last_slot = (requests.back().time_ns - start) / step;
  if (last_slot >= kMaxSteps) {
    return make_error(ErrorCode::kOutOfRange, std::string(csv.source()) + ": the requests span " +
                                                  std::to_string(last_slot + 1) +
                                                  " steps, more than the limit of " +
                                                  std::to_string(kMaxSteps));
  }
  trace.start_unix_seconds = static_cast<double>(start) / kNanosPerSecond;
  trace.counts.assign(static_cast<size_t>(last_slot + 1), 0.0);
  trace.arrival_seconds.reserve(requests.size());
  trace.request_cost.reserve(requests.size());
  double total_cost = 0;
  for (const Request& r : requests) {
    trace.counts[static_cast<size_t>((r.time_ns - start) / step)] += 1;
    trace.arrival_seconds.push_back(static_cast<double>(r.time_ns - start) / kNanosPerSecond);
    trace.request_cost.push_back(r.cost);
    total_cost += r.cost;
  }
  const double mean = total_cost / static_cast<double>(requests.size());
  for (double& c : trace.request_cost) c = mean > 0 ? c / mean : 1.0;
  return trace;
}

bool looks_like_data(std::string_view field) {
  return parse_number(field).has_value() || parse_timestamp_ns(field).has_value();
}

Result<size_t> value_column(CsvReader& csv, const std::vector<std::string_view>& header,
                            const std::string& name) {
  auto column = find_column(header, name);
  if (!column || *column == 0) {
    return std::unexpected(csv.error("column \"" + name + "\" not found; value columns are: " +
                                     join({header.begin() + 1, header.end()})));
  }
  return *column;
}

// ---- Rescaling per-request traces ----------------------------------------------------------

// The step an arrival falls in; arrivals outside [0, duration) (read_trace() makes none) count
// in the first or last step rather than being lost.
size_t step_of(double arrival_seconds, const Trace& trace) {
  if (!(arrival_seconds > 0)) return 0;
  return std::min(static_cast<size_t>(arrival_seconds / trace.step_seconds),
                  trace.counts.size() - 1);
}

// Counts rebuilt from the arrivals, so that the two never disagree after a rescale.
void bin_arrivals(Trace& trace) {
  std::fill(trace.counts.begin(), trace.counts.end(), 0.0);
  for (double a : trace.arrival_seconds) trace.counts[step_of(a, trace)] += 1;
}

void normalise_mean_cost(std::vector<double>& costs) {
  if (costs.empty()) return;
  const double mean =
      std::accumulate(costs.begin(), costs.end(), 0.0) / static_cast<double>(costs.size());
  if (mean > 0) {
    for (double& c : costs) c /= mean;
  }
}

// SplitMix64 (Steele, Lea, Flood 2014): fully specified, so a rescaled trace is the same with
// every standard library; std::shuffle and the std distributions are implementation-defined.
uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A time moved into [0, duration) by reflecting at both ends, so a copy shifted past an end
// lands where the trace's rate is about the same (mirrored), not at the other end of the trace.
double reflect_into(double t, double duration) {
  const double period = 2 * duration;
  double x = std::fmod(t, period);
  if (x < 0) x += period;
  if (x >= duration) x = period - x;  // in [0, duration]
  return x < duration ? x : std::nextafter(duration, 0.0);
}

// Scale-up by superposition. Duplicating each request in place keeps the copies next to each
// other: per-step counts become exactly f times the original's, so their variance grows as f²
// where a real stream f times as busy grows as f (index of dispersion ≈ f instead of 1), and a
// queue sees clusters. A busier real stream is more independent users with the same daily
// shape; whole copies of the trace, each shifted in time, approximate that:
//
// - Copy j (j = 1, 2, …; copy 0 is the trace) is shifted by +1, −1, +2, −2, … times
//   d = φ·min(step, 1 s), φ = 1.618…. For steps up to 1 s (per-request traces default to 1 s),
//   any two copies are ≥ 1.6 steps apart, so in any window up to one step long they contribute
//   disjoint stretches of the original: for a Poisson-like source each step's count is Poisson
//   again, not f times one draw. The irrational spacing puts each copy at another phase within
//   the step, so consecutive steps do not repeat one pattern.
// - The shifts are short instead of wrapping around the trace, so the rate profile is kept at
//   time scales longer than their span and only smoothed below it, where a per-request trace's
//   per-step variation is mostly sampling noise. The span is about ±30 s at most: past f ≈ 37 the
//   spacing shrinks to 60 s / f, so a minute's shape (what the simulator records, and what the
//   CLI's --peak-rps measures) survives any factor, at the price of copies less than a step
//   apart (a Poisson source's per-step index of dispersion is then about f·step / 60 s). Capping
//   d at 1 s keeps the span short for coarse steps too (f copies of 60 s would smooth away a
//   60 s-step trace's shape); their per-step counts then stay correlated, but the sub-second
//   clusters a queue reacts to are still broken up.
// - Shifts past either end reflect back into the trace, where the rate is about the same.
// - The last copy is partial: a uniform random subset (seeded, so deterministic) of a full copy,
//   i.e. independent thinning, which keeps a Poisson-like copy Poisson-like.
//
// The factor is the load's, not the busiest step's: superposed copies no longer line up on the
// original's busiest step, so the result's busiest step is what a stream f times as busy shows,
// less than f times a spike of sampling noise or a burst. Choosing f to make the busiest step
// peak_rps instead lets one noisy step set the load: the Azure code trace's busiest second is a
// burst of 67 requests in a minute of 10 req/s, and aiming it at 9.6 × 67 took f = 99.
Trace superpose_copies(Trace trace, double factor) {
  constexpr double kGoldenRatio = 1.6180339887498949;
  constexpr uint64_t kSeed = 0x5052455343414c45ULL;  // "PRESCALE"
  const size_t n = trace.arrival_seconds.size();
  const bool has_cost = trace.request_cost.size() == n;
  const double duration = trace.duration_seconds();
  constexpr double kMaxSpanSeconds = 60;
  const double spacing =
      std::min(kGoldenRatio * std::min(trace.step_seconds, 1.0), kMaxSpanSeconds / factor);
  const auto wanted = static_cast<size_t>(std::llround(factor * static_cast<double>(n)));

  struct Arrival {
    double seconds;
    double cost;
  };
  std::vector<Arrival> arrivals;
  arrivals.reserve(std::max(wanted, n));
  for (size_t i = 0; i < n; ++i) {
    arrivals.push_back({trace.arrival_seconds[i], has_cost ? trace.request_cost[i] : 1.0});
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  uint64_t random = kSeed;
  for (int64_t copy = 1; arrivals.size() < wanted; ++copy) {
    const double shift =
        (copy % 2 == 1 ? 1.0 : -1.0) * static_cast<double>((copy + 1) / 2) * spacing;
    if (wanted - arrivals.size() < n) {  // the partial copy: Fisher-Yates, modulo bias < n/2^64
      for (size_t i = n - 1; i > 0; --i) {
        std::swap(order[i], order[next_random(random) % (i + 1)]);
      }
    }
    for (size_t i : order) {
      if (arrivals.size() >= wanted) break;
      arrivals.push_back({reflect_into(trace.arrival_seconds[i] + shift, duration),
                          has_cost ? trace.request_cost[i] : 1.0});
    }
  }

  // Ties in time are ordered by cost, so the result does not depend on the sort algorithm.
  std::sort(arrivals.begin(), arrivals.end(), [](const Arrival& a, const Arrival& b) {
    return a.seconds != b.seconds ? a.seconds < b.seconds : a.cost < b.cost;
  });
  trace.arrival_seconds.resize(arrivals.size());
  trace.request_cost.resize(has_cost ? arrivals.size() : 0);
  for (size_t i = 0; i < arrivals.size(); ++i) {
    trace.arrival_seconds[i] = arrivals[i].seconds;
    if (has_cost) trace.request_cost[i] = arrivals[i].cost;
  }
  normalise_mean_cost(trace.request_cost);
  bin_arrivals(trace);
  return trace;
}

// Scale-down by deterministic thinning: arrival i is kept when ⌊f(i+1)⌋ − ⌊fi⌋ = 1, so any run of
// consecutive arrivals — each step's in particular — keeps within one request of f times its
// length, and the busiest step lands within one request of f times the old busiest.
Trace thin_arrivals(Trace trace, double factor) {
  const size_t n = trace.arrival_seconds.size();
  const bool has_cost = trace.request_cost.size() == n;
  auto kept_before = [factor](size_t i) {
    return static_cast<int64_t>(std::floor(factor * static_cast<double>(i) + 1e-9));
  };
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (kept_before(i + 1) == kept_before(i)) continue;
    trace.arrival_seconds[kept] = trace.arrival_seconds[i];
    if (has_cost) trace.request_cost[kept] = trace.request_cost[i];
    ++kept;
  }
  trace.arrival_seconds.resize(kept);
  trace.request_cost.resize(has_cost ? kept : 0);
  normalise_mean_cost(trace.request_cost);
  bin_arrivals(trace);
  return trace;
}

}  // namespace

Result<Trace> parse_trace(std::string_view text, std::string_view source,
                          const TraceOptions& options) {
  if (!std::isfinite(options.step_seconds) || options.step_seconds < 0 ||
      (options.step_seconds > 0 &&
       (options.step_seconds < kMinStepSeconds || options.step_seconds > kMaxStepSeconds))) {
    char message[160];
    std::snprintf(message, sizeof message,
                  "trace step must be 0 (the file's own) or at least %g s and at most %.0f s (a "
                  "year), got %g s",
                  kMinStepSeconds, kMaxStepSeconds, options.step_seconds);
    return make_error(ErrorCode::kInvalidArgument, message);
  }
  CsvReader csv(text, source);
  std::vector<std::string_view> header;
  if (!csv.next(header)) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(source) + ": empty file (expected a header row)");
  }
  if (header.size() < 2) {
    return std::unexpected(csv.error("bad header \"" + join(header) +
                                     "\": expected at least two columns, a time and a count"));
  }
  if (looks_like_data(header[0])) {
    return std::unexpected(
        csv.error("expected a header row naming the columns, got data \"" + join(header) + "\""));
  }

  auto time = find_column(header, "TIMESTAMP");
  auto context = find_column(header, "ContextTokens");
  auto generated = find_column(header, "GeneratedTokens");
  if (time && context && generated) {  // Azure LLM inference requests
    if (!options.column.empty()) {
      return std::unexpected(
          csv.error("a column cannot be chosen in a per-request trace (one row per request)"));
    }
    return parse_requests(csv, header, *time, *context, *generated, options);
  }

  SeriesFormat format;
  if (header[0] == "minute_ts_anon" && find_column(header, "generative_qps_sum") &&
      find_column(header, "api_qps_sum")) {
    // Alibaba GenAI: per-minute sums of per-second rates (docs/traces.md explains the units).
    format.step_seconds = 60;
    format.rate_to_count_seconds = 60;
    if (options.column.empty()) {
      format.value_columns = {*find_column(header, "generative_qps_sum"),
                              *find_column(header, "api_qps_sum")};
    }
  } else if (header[0] == "timestamp_local_edt") {  // NASA HTTP requests per minute
    format.step_seconds = 60;
    format.zone_offset_ns = kEdtToUtcNanos;
  }
  if (!options.column.empty()) {
    auto column = value_column(csv, header, options.column);
    if (!column) return std::unexpected(column.error());
    format.value_columns = {*column};
  } else if (format.value_columns.empty()) {
    format.value_columns = {1};
  }
  return parse_series(csv, header, format, options);
}

Result<Trace> read_trace(const std::string& path, const TraceOptions& options) {
  auto text = read_text_file(path);
  if (!text) return std::unexpected(text.error());
  return parse_trace(*text, path, options);
}

Trace rescale_to_peak(Trace trace, double peak_rps) {
  const double peak = trace.peak_rps();
  if (!(peak > 0) || !(peak_rps > 0) || !std::isfinite(peak_rps)) return trace;
  if (trace.arrival_seconds.empty()) {
    for (double& c : trace.counts) c *= peak_rps / peak;
    return trace;
  }
  return peak_rps > peak ? superpose_copies(std::move(trace), peak_rps / peak)
                         : thin_arrivals(std::move(trace), peak_rps / peak);
}

Trace resample(const Trace& trace, double step_seconds) {
  if (!(step_seconds > 0) || !std::isfinite(step_seconds) || step_seconds == trace.step_seconds) {
    return trace;
  }
  Trace out;
  out.name = trace.name;
  out.step_seconds = step_seconds;
  out.start_unix_seconds = trace.start_unix_seconds;
  out.arrival_seconds = trace.arrival_seconds;
  out.request_cost = trace.request_cost;
  const double old_step = trace.step_seconds;
  const double duration = trace.duration_seconds();
  const auto n = static_cast<size_t>(std::max(0.0, std::ceil(duration / step_seconds - 1e-9)));
  out.counts.assign(n, 0.0);
  if (n == 0) return out;
  for (size_t i = 0; i < trace.counts.size(); ++i) {
    const double count = trace.counts[i];
    if (count == 0) continue;
    double lo = static_cast<double>(i) * old_step;
    const double hi = lo + old_step;
    auto j = static_cast<size_t>(lo / step_seconds);
    // Spread `count` over [lo, hi) by overlap; the last new step takes any rounding remainder.
    double left = count;
    while (left > 0 && j < n) {
      const double end = std::min(hi, static_cast<double>(j + 1) * step_seconds);
      const double share = j + 1 == n || end >= hi ? left : count * (end - lo) / old_step;
      out.counts[j] += share;
      left -= share;
      lo = end;
      ++j;
    }
  }
  return out;
}

namespace {

// The local level of step i: the mean of the steps within ±half_window, each clipped to within
// 3 noise deviations (3·sqrt(dispersion × median)) of their median, so a burst does not lift its
// neighbours (a mean is less noisy than a median).
double local_level(const std::vector<double>& c, size_t i, int half_window, double dispersion,
                   std::vector<double>& window) {
  const size_t lo = i >= static_cast<size_t>(half_window) ? i - half_window : 0;
  const size_t hi = std::min(c.size(), i + static_cast<size_t>(half_window) + 1);
  window.assign(c.begin() + static_cast<long>(lo), c.begin() + static_cast<long>(hi));
  auto mid = window.begin() + static_cast<long>(window.size() / 2);
  std::nth_element(window.begin(), mid, window.end());
  const double median = *mid;
  const double clip = 3 * std::sqrt(dispersion * std::max(median, 1.0));
  double sum = 0;
  for (double x : window) sum += std::clamp(x, median - clip, median + clip);
  return sum / static_cast<double>(window.size());
}

}  // namespace

bool is_count_trace(const Trace& trace) {
  if (!trace.arrival_seconds.empty()) return false;
  return std::ranges::all_of(trace.counts, [](double c) { return c >= 0 && c == std::floor(c); });
}

double counting_dispersion(const Trace& trace, int half_window) {
  const std::vector<double>& c = trace.counts;
  if (half_window < 1 || c.size() < static_cast<size_t>(4 * half_window + 2) ||
      !is_count_trace(trace)) {
    return 1.0;
  }
  std::vector<double> z, window;
  z.reserve(c.size());
  for (size_t i = static_cast<size_t>(half_window); i + half_window < c.size(); ++i) {
    const double m = local_level(c, i, half_window, 1.0, window);
    if (m >= 1) z.push_back((c[i] - m) / std::sqrt(m));
  }
  if (z.size() < 20) return 1.0;
  // Robust spread (1.4826 × the median absolute deviation): the bursts do not widen it. The
  // level includes the step itself, which shrinks a deviation's variance by (w − 1) / w.
  auto mid = z.begin() + static_cast<long>(z.size() / 2);
  std::nth_element(z.begin(), mid, z.end());
  const double median = *mid;
  for (double& x : z) x = std::abs(x - median);
  std::nth_element(z.begin(), mid, z.end());
  const double w = 2.0 * half_window + 1;
  const double sd = 1.4826 * *mid * std::sqrt(w / (w - 1));
  return std::max(1.0, sd * sd);
}

Trace remove_counting_noise(Trace trace, double dispersion, int half_window, double k) {
  if (trace.counts.empty() || half_window < 1 || !is_count_trace(trace)) return trace;
  if (!(dispersion > 0)) dispersion = counting_dispersion(trace, half_window);
  const std::vector<double>& c = trace.counts;
  std::vector<double> out(c.size());
  std::vector<double> window;
  for (size_t i = 0; i < c.size(); ++i) {
    const double m = local_level(c, i, half_window, dispersion, window);
    const double deviation = c[i] - m;
    const double excess = std::max(0.0, std::abs(deviation) - k * std::sqrt(dispersion * m));
    out[i] = std::max(0.0, m + (deviation < 0 ? -excess : excess));
  }
  trace.counts = std::move(out);
  return trace;
}

}  // namespace prescale::forecast
