#include "load_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "cli_checks.h"
#include "command_util.h"
#include "core/clock.h"
#include "core/internal/config_scalars.h"
#include "core/splitmix.h"
#include "forecast/trace.h"
#include "http/tls.h"
#include "loadgen/arrival_schedule.h"
#include "loadgen/http_target.h"
#include "loadgen/load_generator.h"
#include "loadgen/mix.h"

namespace prescale {

struct LoadFlags {
  std::string trace;
  std::string column;
  double speedup = 1;
  double scale = 1;
  std::string offset = "0s";
  double rate = 0;  // with --rate only
  std::string duration;
  double max_rps = 0;
  std::string arrivals = "poisson";
  uint64_t seed = 1;
  std::string target;
  std::string ca_file;  // "": the system's CAs (an https:// target)
  std::string mix = "GET /:1";
  std::string user_range = "1-610";
  int connections = 64;
  std::string timeout = "10s";
  std::string drain;  // "": the timeout
  std::string slo;    // "": none
  int threads = 2;
  std::string json_path;
  bool timeline = false;
};

namespace {

using Json = nlohmann::ordered_json;
using loadgen::LatencyHistogram;
using loadgen::LoadReport;

constexpr std::chrono::milliseconds kDefaultRateDuration{10000};
// Beyond this, arrivals are closer than the clock's nanosecond, or 1/rate vanishes next to the
// arrival time: they pile up at one instant and the run never ends.
constexpr double kMaxLiveRps = 1e9;

double ms(Clock::Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Milliseconds with three significant decimals at most, for JSON: stable and readable.
double ms_rounded(Clock::Duration d) { return std::round(ms(d) * 1000.0) / 1000.0; }

std::string fmt_ms(Clock::Duration d) {
  char buf[32];
  const double v = ms(d);
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f ms" : v < 1000 ? "%.1f ms" : "%.0f ms", v);
  return buf;
}

std::string fmt_number(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// The JSON key of a quantile: 0.5 → "p50", 0.999 → "p99_9", 1 → "max".
std::string quantile_key(double q) {
  if (q >= 1.0) return "max";
  std::string s = internal::format_number(std::round(q * 1e6) / 1e4);
  for (char& c : s) {
    if (c == '.') c = '_';
  }
  return "p" + s;
}

Json latency_json(const LatencyHistogram& h) {
  Json j;
  j["count"] = h.count();
  j["min"] = ms_rounded(h.min());
  j["mean"] = ms_rounded(h.mean());
  for (const auto& p : h.percentile_table()) j[quantile_key(p.quantile)] = ms_rounded(p.value);
  return j;
}

// `slo`: --slo, when given (the within-SLO count is null without one).
Json report_json(const LoadReport& r, const LoadFlags& f,
                 std::optional<std::chrono::milliseconds> slo) {
  Json j;
  j["target"] = f.target;
  j["trace"] = f.trace.empty() ? Json(nullptr) : Json(f.trace);
  j["duration_s"] = r.duration_seconds;
  j["elapsed_s"] = r.elapsed_seconds;
  j["offered_rps"] = r.offered_rps();
  j["achieved_rps"] = r.achieved_rps();
  j["connections"] = f.connections;
  j["requests"] = {{"scheduled", r.scheduled}, {"sent", r.sent},
                   {"completed", r.completed}, {"ok", r.ok},
                   {"errors", r.errors},       {"unfinished", r.unfinished},
                   {"queued", r.queued},       {"late", r.late}};
  j["requests"]["ok_within_slo"] = slo ? Json(r.ok_within_slo) : Json(nullptr);
  j["slo_ms"] = slo ? Json(static_cast<double>(slo->count())) : Json(nullptr);
  Json status = Json::object();
  for (const auto& [code, n] : r.status_counts) status[std::to_string(code)] = n;
  j["status"] = status;
  j["errors"] = {{"timeout", r.errors_timeout},
                 {"unavailable", r.errors_unavailable},
                 {"other", r.errors_other}};
  j["latency_ms"] = latency_json(r.latency);
  j["latency_ok_ms"] = latency_json(r.latency_ok);
  j["start_delay_ms"] = latency_json(r.start_delay);
  Json routes = Json::array();
  for (const loadgen::RouteStats& route : r.routes) {
    routes.push_back({{"name", route.name},
                      {"weight", route.weight},
                      {"scheduled", route.scheduled},
                      {"completed", route.completed},
                      {"ok", route.ok},
                      {"errors", route.errors},
                      {"latency_ms", latency_json(route.latency)}});
  }
  j["routes"] = routes;
  Json timeline = Json::array();
  for (const loadgen::TimelineStep& s : r.timeline) {
    timeline.push_back({{"second", s.start_seconds},
                        {"sent", s.sent},
                        {"ok", s.ok},
                        {"errors", s.errors},
                        {"p50_ms", ms_rounded(s.p50)},
                        {"p99_ms", ms_rounded(s.p99)}});
  }
  j["timeline_step_s"] = r.timeline_step_seconds;
  j["timeline"] = timeline;
  return j;
}

void print_report(std::ostream& out, const LoadReport& r, const LoadFlags& f) {
  out << "prescale load " << f.target << ": " << fmt_number(r.duration_seconds, 1) << " s planned, "
      << fmt_number(r.elapsed_seconds, 2) << " s elapsed\n";
  out << "requests     " << r.scheduled << " scheduled, " << r.sent << " sent, " << r.completed
      << " completed, " << r.ok << " ok (< 400), " << r.errors << " errors, " << r.unfinished
      << " unfinished\n";
  out << "rate         " << fmt_number(r.offered_rps(), 1) << " req/s offered, "
      << fmt_number(r.achieved_rps(), 1) << " req/s achieved\n";
  out << "status       ";
  if (r.status_counts.empty()) out << "none";
  const char* sep = "";
  for (const auto& [code, n] : r.status_counts) {
    out << sep << code << ": " << n;
    sep = ", ";
  }
  out << "\n";
  out << "errors       timeout " << r.errors_timeout << ", unavailable " << r.errors_unavailable
      << ", other " << r.errors_other << "\n";
  const LatencyHistogram& l = r.latency;
  out << "latency      p50 " << fmt_ms(l.value_at_quantile(0.5)) << ", p90 "
      << fmt_ms(l.value_at_quantile(0.9)) << ", p99 " << fmt_ms(l.value_at_quantile(0.99))
      << ", p99.9 " << fmt_ms(l.value_at_quantile(0.999)) << ", max " << fmt_ms(l.max())
      << " (mean " << fmt_ms(l.mean()) << "; from the scheduled time)\n";
  if (r.ok < r.completed) {
    const LatencyHistogram& k = r.latency_ok;
    out << "latency ok   p50 " << fmt_ms(k.value_at_quantile(0.5)) << ", p99 "
        << fmt_ms(k.value_at_quantile(0.99)) << ", max " << fmt_ms(k.max())
        << " (answers below 400 only)\n";
  }
  if (!f.slo.empty()) {
    out << "within SLO   " << r.ok_within_slo << " of " << r.scheduled << " scheduled ("
        << fmt_number(r.scheduled > 0 ? 100.0 * static_cast<double>(r.ok_within_slo) /
                                            static_cast<double>(r.scheduled)
                                      : 0.0,
                      2)
        << " %) answered below 400 within " << f.slo << "\n";
  }
  const LatencyHistogram& d = r.start_delay;
  out << "start delay  p50 " << fmt_ms(d.value_at_quantile(0.5)) << ", p99 "
      << fmt_ms(d.value_at_quantile(0.99)) << ", max " << fmt_ms(d.max()) << "; " << r.late
      << " late starts (> 1 ms), " << r.queued << " queued for one of " << f.connections
      << " connections\n";
  if (r.routes.size() > 1 || f.timeline) {
    out << "routes\n";
    for (const loadgen::RouteStats& route : r.routes) {
      out << "  " << route.name << ": " << route.scheduled << " scheduled, " << route.ok << " ok, "
          << route.errors << " errors, p50 " << fmt_ms(route.latency.value_at_quantile(0.5))
          << ", p99 " << fmt_ms(route.latency.value_at_quantile(0.99)) << ", max "
          << fmt_ms(route.latency.max()) << "\n";
    }
  }
  if (f.timeline) {
    out << "second   sent     ok errors        p50        p99\n";
    for (const loadgen::TimelineStep& s : r.timeline) {
      char line[128];
      std::snprintf(line, sizeof line, "%6.0f %6llu %6llu %6llu %10s %10s\n", s.start_seconds,
                    static_cast<unsigned long long>(s.sent), static_cast<unsigned long long>(s.ok),
                    static_cast<unsigned long long>(s.errors), fmt_ms(s.p50).c_str(),
                    fmt_ms(s.p99).c_str());
      out << line;
    }
  }
}

}  // namespace

LoadCommand::LoadCommand(CLI::App& app) : flags_(std::make_unique<LoadFlags>()) {
  LoadFlags& f = *flags_;
  command_ = app.add_subcommand(
      "load", "Replay a trace or a constant rate open-loop against a URL and report latencies");
  command_->add_option("--trace", f.trace, "Demand trace to replay (docs/traces.md)");
  command_->add_option("--column", f.column, "Trace value column (default: the format's)");
  command_
      ->add_option("--speedup", f.speedup,
                   "Time compression: a trace step of S s lasts S/N s and keeps its requests")
      ->capture_default_str();
  command_->add_option("--scale", f.scale, "Multiplies the trace's requests per step")
      ->capture_default_str();
  command_->add_option("--offset", f.offset, "Trace time skipped at the start, e.g. 6h")
      ->capture_default_str();
  command_->add_option("--rate", f.rate, "Constant rate in req/s instead of a trace");
  command_->add_option("--duration", f.duration,
                       "Run length, e.g. 2s, 10m (default: the whole trace; 10s with --rate)");
  command_->add_option("--max-rps", f.max_rps, "Cap on the live rate in req/s; 0 = none")
      ->capture_default_str();
  command_->add_option("--arrivals", f.arrivals, "poisson or uniform arrivals within a step")
      ->capture_default_str();
  command_->add_option("--seed", f.seed, "Seed of arrivals, mix and user ids")
      ->check(non_negative())
      ->capture_default_str();
  command_->add_option("--target", f.target, "Base URL, http[s]://HOST[:PORT][/PREFIX]")
      ->required();
  command_->add_option("--ca-file", f.ca_file,
                       "With an https:// target: a PEM bundle of the CAs its certificate is "
                       "verified by (default: the system's)");
  command_->add_option("--mix", f.mix, "METHOD PATH[@BODY_FILE][:WEIGHT],... (docs/cli.md)")
      ->capture_default_str();
  command_->add_option("--user-range", f.user_range, "User ids for {user}: FIRST-LAST")
      ->capture_default_str();
  command_
      ->add_option("--connections", f.connections,
                   "Most requests in flight; later arrivals queue (the wait counts)")
      ->capture_default_str();
  command_->add_option("--timeout", f.timeout, "Per request, from when it is sent")
      ->capture_default_str();
  command_->add_option("--drain", f.drain,
                       "After the last arrival, how long to wait for answers (default: --timeout)");
  command_->add_option("--slo", f.slo,
                       "Latency objective, e.g. 200ms: count the ok answers within it of their "
                       "scheduled time (ok_within_slo)");
  command_->add_option("--threads", f.threads, "HTTP client I/O threads")->capture_default_str();
  command_->add_option("--json", f.json_path, "Write the report as JSON to this file");
  command_->add_flag("--timeline", f.timeline, "Print per-route lines and a per-second table");
}

LoadCommand::~LoadCommand() = default;

bool LoadCommand::parsed() const { return command_->parsed(); }

int LoadCommand::run() const {
  const LoadFlags& f = *flags_;
  auto bad = [](const std::string& flag, const std::string& message) {
    std::cerr << "prescale load: " << flag << ": " << message << "\n";
    return 2;
  };
  auto duration_flag = [&](const std::string& flag,
                           const std::string& text) -> std::optional<std::chrono::milliseconds> {
    auto d = internal::parse_duration(text);
    if (!d) {
      bad(flag, d.error());
      return std::nullopt;
    }
    return *d;
  };

  const bool have_trace = !f.trace.empty();
  // Given, whatever its value: a negative or NaN rate is refused, not taken for none.
  const bool have_rate = command_->count("--rate") > 0;
  if (have_trace == have_rate) {
    return bad("--trace, --rate", have_trace ? "give one, not both" : "give one of them");
  }
  // "inf" is a number to the flag parser.
  if (have_rate && (!(f.rate >= 0) || !std::isfinite(f.rate))) {
    return bad("--rate", "expected a finite number >= 0");
  }
  if (!(f.speedup > 0) || !std::isfinite(f.speedup)) {
    return bad("--speedup", "expected a finite number > 0");
  }
  if (!(f.scale >= 0) || !std::isfinite(f.scale)) {
    return bad("--scale", "expected a finite number >= 0");
  }
  if (!(f.max_rps >= 0) || !std::isfinite(f.max_rps)) {
    return bad("--max-rps", "expected a finite number >= 0");
  }
  if (f.connections < 1 || f.connections > 1000000) {
    return bad("--connections", "expected 1..1000000, got " + std::to_string(f.connections));
  }
  if (f.threads < 1 || f.threads > 256) {
    return bad("--threads", "expected 1..256, got " + std::to_string(f.threads));
  }
  // Before the run, as sim and eval check theirs: a mistyped path lost the run's report.
  if (!f.json_path.empty() && !output_path_usable("prescale load", "--json", f.json_path)) {
    return 2;
  }
  auto arrivals = loadgen::parse_arrival_process(f.arrivals);
  if (!arrivals) return bad("--arrivals", arrivals.error().message);
  auto url = loadgen::parse_target_url(f.target);
  if (!url) return bad("--target", url.error().message);
  auto mix = loadgen::parse_mix(f.mix);
  if (!mix) return bad("--mix", mix.error().message);
  if (auto loaded = loadgen::load_bodies(*mix); !loaded)
    return bad("--mix", loaded.error().message);
  auto users = loadgen::parse_user_range(f.user_range);
  if (!users) return bad("--user-range", users.error().message);
  const auto timeout = duration_flag("--timeout", f.timeout);
  if (!timeout) return 2;
  if (timeout->count() == 0) return bad("--timeout", "must be > 0");
  auto drain = timeout;
  if (!f.drain.empty() && !(drain = duration_flag("--drain", f.drain))) return 2;
  std::optional<std::chrono::milliseconds> slo;
  if (!f.slo.empty()) {
    if (!(slo = duration_flag("--slo", f.slo))) return 2;
    if (slo->count() == 0) return bad("--slo", "must be > 0");
  }
  std::optional<std::chrono::milliseconds> duration;
  if (!f.duration.empty()) {
    if (!(duration = duration_flag("--duration", f.duration))) return 2;
    if (duration->count() == 0) return bad("--duration", "must be > 0");
  }
  const auto offset = duration_flag("--offset", f.offset);
  if (!offset) return 2;

  loadgen::RatePlan plan;
  if (have_trace) {
    auto trace = forecast::read_trace(f.trace, forecast::TraceOptions{.column = f.column});
    if (!trace) return bad("--trace", trace.error().message);
    loadgen::TraceReplayOptions o{.speedup = f.speedup,
                                  .scale = f.scale,
                                  .max_rps = f.max_rps,
                                  .offset = *offset,
                                  .duration = duration};
    auto made = loadgen::plan_from_trace(*trace, o);
    // The flags plan_from_trace() checks were checked above, but for --offset and the trace.
    if (!made) {
      const std::string& m = made.error().message;
      return bad(m.starts_with("offset") ? "--offset" : "--trace", m);
    }
    plan = std::move(*made);
  } else {
    double rate = f.rate * f.scale;
    if (f.max_rps > 0) rate = std::min(rate, f.max_rps);
    plan = loadgen::constant_rate(rate, duration.value_or(kDefaultRateDuration));
  }
  for (const loadgen::RateSegment& s : plan.segments) {
    if (s.duration > Clock::Duration::zero() && !(s.rate_rps <= kMaxLiveRps)) {
      return bad(
          have_trace ? "--speedup, --scale" : "--rate, --scale",
          "the live rate reaches " + internal::format_number(s.rate_rps) + " req/s; at most 1e9");
    }
  }

  std::shared_ptr<const http::ClientTlsContext> tls;
  if (url->https) {
    auto created = http::ClientTlsContext::create(f.ca_file);
    if (!created) return bad("--ca-file", created.error().message);
    tls = std::move(*created);
  } else if (!f.ca_file.empty()) {
    return bad("--ca-file", "goes with an https:// --target");
  }
  loadgen::HttpTarget target(
      *url, loadgen::HttpTargetOptions{.max_idle_connections = static_cast<size_t>(f.connections),
                                       .io_threads = f.threads,
                                       .tls = std::move(tls)});
  // The picker draws from a seed of its own: the schedule's XOR a fixed constant.
  loadgen::LoadGenerator generator(
      Clock::real(), target, loadgen::ArrivalSchedule(std::move(plan), *arrivals, f.seed),
      loadgen::RequestPicker(std::move(*mix), *users, f.seed ^ kSplitMix64Gamma),
      loadgen::LoadOptions{.connections = static_cast<size_t>(f.connections),
                           .timeout = *timeout,
                           .drain = *drain,
                           .slo = slo ? std::optional<Clock::Duration>(*slo) : std::nullopt});
  const LoadReport report = generator.run();

  print_report(std::cout, report, f);
  if (!f.json_path.empty()) {
    const std::string json = report_json(report, f, slo).dump(2) + "\n";
    if (!write_command_output("prescale load", "--json", f.json_path, json)) return 1;
  }
  return 0;
}

}  // namespace prescale
