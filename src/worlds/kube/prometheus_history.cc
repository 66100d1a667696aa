#include "worlds/kube/prometheus_history.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/internal/config_scalars.h"
#include "http/client.h"
#include "scaling/prescale_policy.h"

namespace prescale::kube {

namespace {

using Json = nlohmann::json;

std::unexpected<Error> bad_answer(std::string_view where, std::string_view what) {
  return make_error(ErrorCode::kInvalidArgument,
                    fmt::format("not a Prometheus range answer: {}: {}", where, what));
}

// A sample's value as Prometheus writes it: a string ("1.5", "NaN", "+Inf").
std::optional<double> sample_value(const Json& text) {
  if (!text.is_string()) return std::nullopt;
  const std::string& s = text.get_ref<const std::string&>();
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// application/x-www-form-urlencoded: every byte but the unreserved ones as %XX.
void append_form_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
}

std::string label_value(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The minute index of `t` on the grid first_at + 60 i: the point within half a minute of it.
std::optional<std::size_t> minute_index(double t, double first_at, std::size_t count) {
  const double at = (t - first_at) / 60.0;
  const double i = std::round(at);
  if (!(std::abs(at - i) < 0.5) || i < 0 || i >= static_cast<double>(count)) return std::nullopt;
  return static_cast<std::size_t>(i);
}

double unix_seconds(Clock::WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

Result<std::vector<RangeSeries>> parse_range_answer(std::string_view body) {
  Json answer = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (answer.is_discarded() || !answer.is_object()) return bad_answer("body", "not a JSON object");
  auto status = answer.find("status");
  if (status == answer.end() || !status->is_string()) {
    return bad_answer("status", "missing or not a string");
  }
  if (*status != "success") {
    const auto text = [&](const char* key) {
      auto it = answer.find(key);
      return it != answer.end() && it->is_string() ? it->get<std::string>() : std::string("?");
    };
    return make_error(ErrorCode::kUnavailable, fmt::format("Prometheus refused the query ({}): {}",
                                                           text("errorType"), text("error")));
  }
  auto data = answer.find("data");
  if (data == answer.end() || !data->is_object()) return bad_answer("data", "not an object");
  auto type = data->find("resultType");
  if (type == data->end() || *type != "matrix") {
    return bad_answer("data.resultType", "not \"matrix\"");
  }
  auto result = data->find("result");
  if (result == data->end() || !result->is_array()) {
    return bad_answer("data.result", "not an array");
  }
  std::vector<RangeSeries> out;
  out.reserve(result->size());
  for (std::size_t i = 0; i < result->size(); ++i) {
    const Json& series = (*result)[i];
    const std::string at = fmt::format("data.result[{}]", i);
    if (!series.is_object()) return bad_answer(at, "not an object");
    RangeSeries s;
    if (auto metric = series.find("metric"); metric != series.end()) {
      if (!metric->is_object()) return bad_answer(at + ".metric", "not an object");
      for (const auto& [name, value] : metric->items()) {
        if (!value.is_string()) return bad_answer(at + ".metric." + name, "not a string");
        s.labels[name] = value.get<std::string>();
      }
    }
    auto values = series.find("values");
    if (values == series.end() || !values->is_array()) {
      return bad_answer(at + ".values", "missing or not an array");
    }
    s.points.reserve(values->size());
    for (std::size_t k = 0; k < values->size(); ++k) {
      const Json& point = (*values)[k];
      std::optional<double> value;
      if (point.is_array() && point.size() == 2 && point[0].is_number()) {
        value = sample_value(point[1]);
      }
      if (!value) {
        return bad_answer(fmt::format("{}.values[{}]", at, k), "not a [time, \"value\"] pair");
      }
      s.points.emplace_back(point[0].get<double>(), *value);
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::string> normalize_selector(std::string_view selector) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0)
      s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0)
      s.remove_suffix(1);
    return s;
  };
  std::string_view s = trim(selector);
  if (s.size() >= 2 && s.front() == '{' && s.back() == '}') s = trim(s.substr(1, s.size() - 2));
  if (s.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "an empty selector would count every pod's calls, the services' own too");
  }
  char quote = 0;  // the quote a string is in: ", ' or ` (PromQL's three)
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quote != 0) {
      if (c == '\\' && quote != '`') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '"' || c == '\'' || c == '`') {
      quote = c;
    } else if (c == '{' || c == '}') {
      return make_error(ErrorCode::kInvalidArgument,
                        fmt::format("a brace at byte {} of the selector: write the label "
                                    "matchers only (job=\"x\",namespace=\"y\")",
                                    i + 1));
    }
  }
  if (quote != 0) {
    return make_error(ErrorCode::kInvalidArgument, "a quote of the selector is not closed");
  }
  // The query adds its own matcher after a comma: one written last would make two.
  while (!s.empty() &&
         (s.back() == ',' || std::isspace(static_cast<unsigned char>(s.back())) != 0)) {
    s.remove_suffix(1);
  }
  if (s.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "an empty selector would count every pod's calls, the services' own too");
  }
  return std::string(s);
}

Result<std::chrono::seconds> history_window(std::string_view text) {
  auto window = internal::parse_duration(text);
  if (!window || *window < std::chrono::minutes(1) || *window > std::chrono::minutes(10) ||
      *window % std::chrono::seconds(1) != std::chrono::milliseconds(0)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "expected whole seconds from 1m to 10m (at least twice Prometheus' scrape "
                      "interval)");
  }
  return std::chrono::duration_cast<std::chrono::seconds>(*window);
}

std::string calls_by_caller_query(std::string_view selector, std::string_view service,
                                  std::chrono::seconds window) {
  return fmt::format("sum by (caller) (rate(prescale_calls_total{{{},callee=\"{}\"}}[{}s]))",
                     selector, label_value(service), window.count());
}

PrometheusMinutes minutes_of(const std::vector<RangeSeries>& series, double first_at,
                             std::size_t count) {
  PrometheusMinutes out;
  out.arrivals.assign(count, NAN);
  out.external.assign(count, NAN);
  auto add = [](double& to, double v) { to = std::isfinite(to) ? to + v : v; };
  for (const RangeSeries& s : series) {
    auto caller = s.labels.find("caller");
    const bool external =
        caller == s.labels.end() || caller->second.empty() || caller->second == "external";
    for (const auto& [t, v] : s.points) {
      if (!std::isfinite(v) || v < 0) continue;
      const std::optional<std::size_t> i = minute_index(t, first_at, count);
      if (!i) continue;
      add(out.arrivals[*i], v);
      if (external) {
        add(out.external[*i], v);
      } else if (v > 0) {
        out.called = true;
      }
    }
  }
  return out;
}

PrometheusHistory::PrometheusHistory(PrometheusHistoryOptions options, http::Client& client)
    : options_(std::move(options)), client_(&client) {}

Result<PrometheusMinutes> PrometheusHistory::read(std::string_view service, double first_end,
                                                  std::size_t count,
                                                  std::optional<Clock::TimePoint> deadline) {
  const std::string where = std::string("Prometheus at ") +
                            (options_.url.https ? "https" : "http") + "://" +
                            url_authority(options_.url.host, options_.url.port) + options_.url.path;
  const std::string query = calls_by_caller_query(options_.selector, service, options_.rate_window);
  // Each minute at the time its window is centred on it: half the window past its middle.
  const double first_at =
      first_end - 30.0 + static_cast<double>(options_.rate_window.count()) / 2.0;
  // A minute whose window ends after now would be read short (rate() divides by the whole
  // window): it is left to the controller's own looks.
  const double usable =
      std::floor((unix_seconds(options_.clock->wall_now()) - first_at) / 60.0) + 1;
  const std::size_t asked = usable <= 0 ? 0 : std::min(count, static_cast<std::size_t>(usable));
  std::vector<RangeSeries> all;
  for (std::size_t done = 0; done < asked; done += kMaxPointsPerQuery) {
    std::chrono::milliseconds timeout = options_.timeout;
    if (deadline) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - options_.clock->now());
      if (left <= std::chrono::milliseconds(0)) {
        return make_error(ErrorCode::kTimeout,
                          where + ": not asked: the time for the history at the start ran out");
      }
      timeout = std::min(timeout, left);
    }
    const std::size_t n = std::min(kMaxPointsPerQuery, asked - done);
    const double start = first_at + 60.0 * static_cast<double>(done);
    const double end = start + 60.0 * static_cast<double>(n - 1);
    http::Request req;
    req.method = http::Method::kPost;
    req.method_name = "POST";
    std::string path = options_.url.path;
    while (!path.empty() && path.back() == '/') path.pop_back();
    req.target = path + "/api/v1/query_range";
    req.headers.set("Content-Type", "application/x-www-form-urlencoded");
    req.headers.set("Accept", "application/json");
    if (!options_.bearer_token.empty()) {
      req.headers.set("Authorization", "Bearer " + options_.bearer_token);
    }
    req.body = "query=";
    append_form_value(req.body, query);
    req.body += fmt::format("&start={:.3f}&end={:.3f}&step=60", start, end);
    auto answer = client_->request(options_.url.host, options_.url.port, std::move(req), timeout);
    if (!answer) {
      return make_error(ErrorCode::kUnavailable,
                        fmt::format("{}: {}", where, answer.error().message));
    }
    auto series = parse_range_answer(answer->body);
    if (!series) {
      // A proxy's error page, or Prometheus' own refusal (400, 422, 503 carry its JSON).
      std::string message = series.error().message;
      if (answer->status != 200 && series.error().code != ErrorCode::kUnavailable) {
        message = fmt::format("answered HTTP {}", answer->status);
      }
      return make_error(series.error().code == ErrorCode::kUnavailable || answer->status != 200
                            ? ErrorCode::kUnavailable
                            : ErrorCode::kInvalidArgument,
                        fmt::format("{}: {} (query {})", where, message, query));
    }
    for (RangeSeries& s : *series) all.push_back(std::move(s));
  }
  return minutes_of(all, first_at, count);
}

std::vector<BackfillOutcome> backfill_history(scaling::PrescalePolicy& policy,
                                              const std::vector<std::string>& services,
                                              const MinutesReader& read, Clock::TimePoint now,
                                              Clock::WallTime wall_now) {
  using Kind = scaling::PrescalePolicy::SeriesKind;
  const std::int64_t now_minute =
      std::chrono::floor<std::chrono::minutes>(now.time_since_epoch()).count();
  const auto span = static_cast<std::size_t>(
      std::chrono::duration_cast<std::chrono::minutes>(policy.options().max_history).count());
  const std::int64_t first = now_minute - static_cast<std::int64_t>(span);
  // The minute that starts at policy time m*60 starts at m*60 + offset in Unix time.
  const double offset =
      unix_seconds(wall_now) - std::chrono::duration<double>(now.time_since_epoch()).count();
  const double first_end = static_cast<double>(first + 1) * 60.0 + offset;
  auto series_of = [&](std::vector<double> values) {
    forecast::Series series;
    series.step_seconds = 60;
    series.start_seconds = static_cast<double>(first) * 60.0;
    series.values = std::move(values);
    return series;
  };

  std::vector<BackfillOutcome> outcomes;
  for (const std::string& service : services) {
    BackfillOutcome outcome;
    outcome.service = service;
    auto theirs = read(service, first_end, span);
    if (!theirs) {
      outcome.error = theirs.error();
    } else {
      outcome.answered =
          static_cast<std::size_t>(std::count_if(theirs->arrivals.begin(), theirs->arrivals.end(),
                                                 [](double v) { return std::isfinite(v); }));
      const bool has_external = theirs->called && policy.options().use_topology &&
                                std::any_of(theirs->external.begin(), theirs->external.end(),
                                            [](double v) { return std::isfinite(v) && v > 0; });
      if (auto filled = policy.fill_history(service, series_of(std::move(theirs->arrivals)), now);
          !filled) {
        outcome.error = filled.error();
      } else {
        outcome.filled = *filled;
      }
      // A service that other services call and that clients call too: its own clients' requests
      // are forecast apart (PrescalePolicy::SeriesKind::kExternal).
      if (!outcome.error && has_external) {
        auto filled = policy.fill_history(service, series_of(std::move(theirs->external)), now,
                                          Kind::kExternal);
        if (!filled) {
          outcome.error = filled.error();
        } else {
          outcome.external_filled = *filled;
        }
      }
    }
    if (auto history = policy.history(service); history) outcome.minutes = history->values.size();
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace prescale::kube
