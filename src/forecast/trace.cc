#include "forecast/trace.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <optional>
#include <utility>

#include "core/text_file.h"
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
  const double to_count = format.rate_to_count_seconds > 0 ? format.rate_to_count_seconds : 1;
  std::vector<Row> rows;
  std::vector<std::string_view> fields;
  std::optional<TimeKind> kind;
  while (csv.next(fields)) {
    // As many fields as the header: a row with more was read up to the value column and the
    // rest dropped (a decimal comma, "12,5", read as 12).
    if (fields.size() != header.size()) {
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
    if (!std::isfinite(count * to_count)) {
      return std::unexpected(csv.error("the values make more requests than a number holds"));
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
  for (const Row& row : rows) {
    trace.counts[static_cast<size_t>(nearest_slot(row.time - t0, step))] += row.count * to_count;
  }
  if (!std::isfinite(trace.total_requests())) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(csv.source()) +
                          ": the counts add up to more requests than a number holds");
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
  std::vector<Request> requests;
  std::vector<std::string_view> fields;
  bool sorted = true;
  while (csv.next(fields)) {
    if (fields.size() != header.size()) {
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
    const double cost = tokens[0] + options.decode_token_weight * tokens[1];
    if (!std::isfinite(cost)) {
      return std::unexpected(csv.error("the token counts make a cost larger than a number holds"));
    }
    if (!requests.empty() && *t < requests.back().time_ns) sorted = false;
    requests.push_back({*t, cost});
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
  if (!std::isfinite(total_cost)) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(csv.source()) +
                          ": the token counts add up to a cost larger than a number holds");
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

}  // namespace prescale::forecast
