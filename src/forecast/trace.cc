#include "forecast/trace.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
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
// NASA's column is local time at the Kennedy Space Center: EDT, UTC-4, all July.
// Nanoseconds since the epoch fit an int64 until 2262.
constexpr double kMaxUnixSeconds = 9e9;
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

// Most common positive difference between consecutive times; ties go to the smaller step.
int64_t most_common_step(const std::vector<Row>& rows) {
  std::vector<int64_t> diffs;
  diffs.reserve(rows.size());
  for (size_t i = 1; i < rows.size(); ++i) diffs.push_back(rows[i].time - rows[i - 1].time);
  std::sort(diffs.begin(), diffs.end());
  int64_t best = diffs.front();
  size_t best_run = 0;
  for (size_t i = 0; i < diffs.size();) {
    size_t j = i;
    while (j < diffs.size() && diffs[j] == diffs[i]) ++j;
    if (j - i > best_run) {
      best_run = j - i;
      best = diffs[i];
    }
    i = j;
  }
  return best;
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
        break;
      }
      case TimeKind::kUnixSeconds:
      case TimeKind::kUnixMillis: {
        auto v = parse_number(time_text);
        if (!v) return std::unexpected(csv.field_error(header, 0, "Unix seconds", time_text));
        double seconds = *kind == TimeKind::kUnixMillis ? *v / 1000 : *v;
        if (std::abs(seconds) > kMaxUnixSeconds) {
          return std::unexpected(csv.field_error(header, 0, "Unix seconds", time_text));
        }
        time = seconds_to_nanos(seconds);
        break;
      }
      case TimeKind::kStepIndex: {
        auto v = parse_number(time_text);
        if (!v || *v != std::floor(*v)) {
          return std::unexpected(csv.field_error(header, 0, "a step index", time_text));
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
      step = most_common_step(rows);
    } else {
      step = seconds_to_nanos(options.step_seconds > 0 ? options.step_seconds : 60);
    }
    trace.step_seconds = static_cast<double>(step) / kNanosPerSecond;
    trace.start_unix_seconds = static_cast<double>(rows.front().time) / kNanosPerSecond;
  }
  // Rows off the step grid (clock jitter) go to the nearest step; two rows landing on one step
  // add up. Missing steps stay 0.
  const int64_t t0 = rows.front().time;
  const int64_t last_slot = (rows.back().time - t0 + step / 2) / step;
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
    trace.counts[static_cast<size_t>((row.time - t0 + step / 2) / step)] += row.count * to_count;
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

}  // namespace

Result<Trace> parse_trace(std::string_view text, std::string_view source,
                          const TraceOptions& options) {
  if (!std::isfinite(options.step_seconds) || options.step_seconds < 0 ||
      (options.step_seconds > 0 && options.step_seconds < 0.001)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "trace step must be 0 (the file's own) or at least 0.001 s, got " +
                          std::to_string(options.step_seconds));
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
  const double factor = peak_rps / peak;
  for (double& c : trace.counts) c *= factor;
  if (trace.arrival_seconds.empty()) return trace;

  // Arrival i gets floor(f*(i+1)) - floor(f*i) copies: over any run of consecutive arrivals the
  // number of copies is within one of f times the run's length, so every step stays within one
  // request of its scaled count. Copies spread evenly from the arrival towards the next one,
  // without leaving the arrival's step.
  const size_t n = trace.arrival_seconds.size();
  const bool has_cost = trace.request_cost.size() == n;
  std::vector<double> arrivals;
  std::vector<double> costs;
  arrivals.reserve(static_cast<size_t>(static_cast<double>(n) * factor) + 1);
  auto copies_before = [factor](size_t i) {
    return static_cast<int64_t>(std::floor(factor * static_cast<double>(i) + 1e-9));
  };
  for (size_t i = 0; i < n; ++i) {
    const int64_t copies = copies_before(i + 1) - copies_before(i);
    if (copies <= 0) continue;
    const double at = trace.arrival_seconds[i];
    const double step_end = (std::floor(at / trace.step_seconds) + 1) * trace.step_seconds;
    const double until = i + 1 < n ? std::min(trace.arrival_seconds[i + 1], step_end) : step_end;
    const double spacing = (until - at) / static_cast<double>(copies);
    for (int64_t k = 0; k < copies; ++k) {
      arrivals.push_back(at + static_cast<double>(k) * spacing);
      if (has_cost) costs.push_back(trace.request_cost[i]);
    }
  }
  if (has_cost && !costs.empty()) {
    const double mean =
        std::accumulate(costs.begin(), costs.end(), 0.0) / static_cast<double>(costs.size());
    if (mean > 0) {
      for (double& c : costs) c /= mean;
    }
  }
  trace.arrival_seconds = std::move(arrivals);
  trace.request_cost = std::move(costs);
  return trace;
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

}  // namespace prescale::forecast
