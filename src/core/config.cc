#include "core/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "core/host_port.h"
#include "core/internal/config_rules.h"
#include "core/internal/config_schema.h"
#include "core/internal/yaml_schema.h"

namespace prescale {

using internal::Checker;
using internal::grpc_health_service_problem;
using internal::quote;
using internal::request_path_problem;
using internal::Schema;
using internal::service_name_problem;
using internal::unknown_service;
using internal::valid_env_name;
using internal::version_problem;

// ---- Enums: one table per enum gives both parsing and to_string. --------------------------

template <typename E, std::size_t N>
using NameTable = std::array<std::pair<std::string_view, E>, N>;

constexpr NameTable<WorldKind, 3> kWorldNames{
    {{"sim", WorldKind::kSim}, {"local", WorldKind::kLocal}, {"kube", WorldKind::kKube}}};
constexpr NameTable<LogLevel, 5> kLogLevelNames{{{"trace", LogLevel::kTrace},
                                                 {"debug", LogLevel::kDebug},
                                                 {"info", LogLevel::kInfo},
                                                 {"warn", LogLevel::kWarn},
                                                 {"error", LogLevel::kError}}};
constexpr NameTable<LogFormat, 2> kLogFormatNames{
    {{"text", LogFormat::kText}, {"json", LogFormat::kJson}}};
constexpr NameTable<PolicyName, 6> kPolicyNames{{{"prescale", PolicyName::kPrescale},
                                                 {"hpa", PolicyName::kHpa},
                                                 {"kpa", PolicyName::kKpa},
                                                 {"aws", PolicyName::kAws},
                                                 {"static", PolicyName::kStatic},
                                                 {"oracle", PolicyName::kOracle}}};
constexpr NameTable<ServiceKind, 5> kServiceKindNames{
    {{"builtin/recommend", ServiceKind::kRecommend},
     {"builtin/fraud", ServiceKind::kFraud},
     {"builtin/forecast", ServiceKind::kForecast},
     {"builtin/echo", ServiceKind::kEcho},
     {"command", ServiceKind::kCommand}}};
constexpr NameTable<RetryOn, 5> kRetryOnNames{
    {{"5xx", RetryOn::k5xx},
     {"gateway-error", RetryOn::kGatewayError},
     {"connect-failure", RetryOn::kConnectFailure},
     {"reset", RetryOn::kReset},
     {"retriable-status-codes", RetryOn::kRetriableStatusCodes}}};
constexpr NameTable<LoadBalancerKind, 3> kLoadBalancerNames{
    {{"p2c_peak_ewma", LoadBalancerKind::kP2cPeakEwma},
     {"least_request", LoadBalancerKind::kLeastRequest},
     {"round_robin", LoadBalancerKind::kRoundRobin}}};
constexpr NameTable<UpstreamProtocol, 3> kUpstreamProtocolNames{
    {{"http1", UpstreamProtocol::kHttp1},
     {"http2", UpstreamProtocol::kHttp2},
     {"grpc", UpstreamProtocol::kGrpc}}};

// Found by ADL from the schema machinery, in every part of the loader (config_schema.h).
internal::EnumNames<WorldKind> enum_names(WorldKind /*tag*/) { return kWorldNames; }
internal::EnumNames<LogLevel> enum_names(LogLevel /*tag*/) { return kLogLevelNames; }
internal::EnumNames<LogFormat> enum_names(LogFormat /*tag*/) { return kLogFormatNames; }
internal::EnumNames<PolicyName> enum_names(PolicyName /*tag*/) { return kPolicyNames; }
internal::EnumNames<ServiceKind> enum_names(ServiceKind /*tag*/) { return kServiceKindNames; }
internal::EnumNames<RetryOn> enum_names(RetryOn /*tag*/) { return kRetryOnNames; }
internal::EnumNames<LoadBalancerKind> enum_names(LoadBalancerKind /*tag*/) {
  return kLoadBalancerNames;
}
internal::EnumNames<UpstreamProtocol> enum_names(UpstreamProtocol /*tag*/) {
  return kUpstreamProtocolNames;
}

template <typename E>
static std::string_view name_of(E value) {
  for (const auto& [name, v] : enum_names(value)) {
    if (v == value) return name;
  }
  return "?";
}

std::string_view to_string(WorldKind v) { return name_of(v); }
std::string_view to_string(LogLevel v) { return name_of(v); }
std::string_view to_string(LogFormat v) { return name_of(v); }
std::string_view to_string(PolicyName v) { return name_of(v); }
std::string_view to_string(ServiceKind v) { return name_of(v); }
std::string_view to_string(RetryOn v) { return name_of(v); }
std::string_view to_string(LoadBalancerKind v) { return name_of(v); }
std::string_view to_string(UpstreamProtocol v) { return name_of(v); }

std::chrono::milliseconds default_queue_limit(double slo_latency_p99_ms) {
  return std::chrono::milliseconds(std::llround(std::clamp(slo_latency_p99_ms / 2, 1.0, 3.6e6)));
}

std::chrono::milliseconds ServiceConfig::effective_queue_limit() const {
  return queue_limit != kQueueLimitAuto ? queue_limit : default_queue_limit(slo.latency_p99_ms);
}

int ServiceConfig::max_requests_per_replica_at(double sustained_rps) const {
  const auto limit_ms = static_cast<double>(effective_queue_limit().count());
  if (limit_ms <= 0) return 0;
  // In milliseconds, so that 100 req/s × 150ms is 15, not ceil(15.000000000000002); the
  // epsilon absorbs what rounding is left. Capped far above any real replica's queue.
  auto completed_within = [&](double ms) {
    return static_cast<int>(std::clamp(std::ceil(sustained_rps * ms / 1000.0 - 1e-9), 0.0, 1e9));
  };
  if (const int at_once = effective_concurrency(); at_once > 0) {
    return at_once + completed_within(limit_ms);
  }
  // Concurrency not known: at capacity a replica has sustained_rps × (its service time) requests
  // in service, and its service time is at most the SLO's p99 — so it is given that many, not
  // one, lest it be refused below its capacity (a few slow requests served in parallel).
  return std::max(1, completed_within(slo.latency_p99_ms + limit_ms));
}

std::map<std::string, int> admission_limits(const std::vector<ServiceConfig>& services) {
  std::map<std::string, int> out;
  for (const ServiceConfig& s : services) {
    if (const int n = s.max_requests_per_replica(); n > 0) out[s.name] = n;
  }
  return out;
}

std::map<std::string, std::string> health_check_paths(const std::vector<ServiceConfig>& services) {
  std::map<std::string, std::string> out;
  for (const ServiceConfig& s : services) {
    if (!s.readiness_path.empty()) out[s.name] = s.readiness_path;
  }
  return out;
}

std::vector<std::string> serve_http_flags(const HttpConfig& http) {
  const HttpConfig defaults;
  std::vector<std::string> flags;
  auto add = [&](const char* flag, auto value, auto default_value) {
    if (value == default_value) return;
    flags.emplace_back(flag);
    flags.push_back(std::to_string(value));
  };
  add("--max-header-bytes", http.max_header_bytes, defaults.max_header_bytes);
  add("--max-body-bytes", http.max_body_bytes, defaults.max_body_bytes);
  add("--read-timeout-ms", http.read_timeout.count(), defaults.read_timeout.count());
  add("--idle-timeout-ms", http.idle_timeout.count(), defaults.idle_timeout.count());
  add("--max-connections", http.max_connections, defaults.max_connections);
  if (!http.http2) flags.emplace_back("--no-http2");
  return flags;
}

std::set<std::string> hold_for_replica(const std::vector<ServiceConfig>& services) {
  std::set<std::string> out;
  for (const ServiceConfig& s : services) {
    if (s.replicas.min == 0) out.insert(s.name);
  }
  return out;
}

std::set<std::string> http2_upstreams(const std::vector<ServiceConfig>& services) {
  std::set<std::string> out;
  for (const ServiceConfig& s : services) {
    if (s.speaks_http2()) out.insert(s.name);
  }
  return out;
}

std::map<std::string, std::string> grpc_health_checks(const std::vector<ServiceConfig>& services) {
  std::map<std::string, std::string> out;
  for (const ServiceConfig& s : services) {
    if (s.protocol == UpstreamProtocol::kGrpc) out[s.name] = s.grpc_health_service;
  }
  return out;
}

// ---- The schema: one line per field. docs/config.md mirrors this. --------------------------

static void describe(Schema<HttpConfig>& s) {
  using std::chrono::milliseconds;
  s.field("threads", &HttpConfig::threads).at_least(0);
  s.field("max_header_bytes", &HttpConfig::max_header_bytes).greater_than(0);
  s.field("max_body_bytes", &HttpConfig::max_body_bytes).at_least(0);
  s.field("read_timeout", &HttpConfig::read_timeout).greater_than(milliseconds(0));
  s.field("idle_timeout", &HttpConfig::idle_timeout).greater_than(milliseconds(0));
  s.field("max_connections", &HttpConfig::max_connections).greater_than(0);
  s.field("shutdown_grace", &HttpConfig::shutdown_grace).at_most(milliseconds(3'600'000));
  s.field("http2", &HttpConfig::http2);
}

static void describe(Schema<LoggingConfig>& s) {
  s.field("level", &LoggingConfig::level);
  s.field("format", &LoggingConfig::format);
}

static void describe(Schema<PolicyConfig>& s) {
  s.field("name", &PolicyConfig::name);
  s.field("period", &PolicyConfig::period).greater_than(std::chrono::milliseconds(0));
  s.field("quantile", &PolicyConfig::quantile).at_least(0.5).at_most(0.9999);
  s.field("steer_to_slo", &PolicyConfig::steer_to_slo);
  s.field("scale_down_delay", &PolicyConfig::scale_down_delay);
  s.field("forecast_scale_down_delay", &PolicyConfig::forecast_scale_down_delay);
}

static void describe(Schema<ReplicaBounds>& s) {
  s.field("min", &ReplicaBounds::min).at_least(0);
  s.field("max", &ReplicaBounds::max).at_least(1);
  s.field("initial", &ReplicaBounds::initial).at_least(0);
  s.check([](ReplicaBounds& r, const Checker& c) {
    if (!c.has("initial")) r.initial = r.min;
    const std::string got_max = std::to_string(r.max) + (c.has("max") ? "" : " (the default)");
    if (r.max < r.min) {
      c.at("max").error("must be >= replicas.min (" + std::to_string(r.min) + "), got " + got_max);
    } else if (r.initial < r.min || r.initial > r.max) {
      c.at("initial").error("must be between replicas.min (" + std::to_string(r.min) +
                            ") and replicas.max (" + std::to_string(r.max) + "), got " +
                            std::to_string(r.initial));
    }
  });
}

static void describe(Schema<SloConfig>& s) {
  s.field("latency_p99_ms", &SloConfig::latency_p99_ms).greater_than(0.0);
  s.field("error_budget", &SloConfig::error_budget).greater_than(0.0).less_than(1.0);
}

static void describe(Schema<LivenessConfig>& s) {
  using std::chrono::milliseconds;
  s.field("enabled", &LivenessConfig::enabled);
  s.field("path", &LivenessConfig::path).check(request_path_problem);
  s.field("interval", &LivenessConfig::interval).greater_than(milliseconds(0));
  s.field("timeout", &LivenessConfig::timeout).greater_than(milliseconds(0));
  s.field("failure_threshold", &LivenessConfig::failure_threshold).at_least(1).at_most(1000);
  s.check([](LivenessConfig& l, const Checker& c) {
    if (l.enabled && l.timeout >= l.interval) {  // checks that never run need no room
      c.at("timeout").error("must be < interval (" + internal::format_duration(l.interval) +
                            "), got " + internal::format_duration(l.timeout));
    }
  });
}

static void describe(Schema<ServiceConfig>& s) {
  s.field("name", &ServiceConfig::name).required().check(service_name_problem);
  s.field("kind", &ServiceConfig::kind).required();
  s.field("command", &ServiceConfig::command);
  s.field("image", &ServiceConfig::image).check(internal::image_problem);
  s.field("env", &ServiceConfig::env);
  s.field("replicas", &ServiceConfig::replicas);
  s.field("startup_time", &ServiceConfig::startup_time);
  s.field("capacity_rps", &ServiceConfig::capacity_rps).greater_than(0.0);
  s.field("concurrency", &ServiceConfig::concurrency).at_least(0).at_most(1'000'000);
  s.field("queue_limit", &ServiceConfig::queue_limit).at_least(std::chrono::milliseconds(0));
  s.field("slo", &ServiceConfig::slo);
  s.field("depends_on", &ServiceConfig::depends_on);
  s.field("model_dir", &ServiceConfig::model_dir);
  s.field("readiness_path", &ServiceConfig::readiness_path).check(request_path_problem);
  s.field("liveness", &ServiceConfig::liveness);
  s.field("protocol", &ServiceConfig::protocol);
  s.field("grpc_health_service", &ServiceConfig::grpc_health_service)
      .check(grpc_health_service_problem);
  s.field("memory_limit", &ServiceConfig::memory_limit).at_least(ByteSize{1U << 20});
  s.check([](ServiceConfig& svc, const Checker& c) {
    svc.line = c.line();
    if (!svc.model_dir.empty() && svc.kind != ServiceKind::kRecommend &&
        svc.kind != ServiceKind::kFraud && svc.kind != ServiceKind::kForecast) {
      c.at("model_dir")
          .error(
              "only allowed for builtin/recommend, builtin/fraud and builtin/forecast (kind is \"" +
              std::string(to_string(svc.kind)) + "\")");
    }
    if (svc.protocol == UpstreamProtocol::kGrpc) {
      // Its checks ask the health service: a path written for them would be silently unused.
      if (c.has("readiness_path")) {
        c.at("readiness_path")
            .error(
                "not used with protocol grpc (readiness asks grpc.health.v1.Health/Check; "
                "grpc_health_service names what it asks about)");
      }
      if (c.at("liveness").has("path")) {
        c.at("liveness")
            .at("path")
            .error("not used with protocol grpc (liveness asks grpc.health.v1.Health/Check)");
      }
    } else if (c.has("grpc_health_service")) {
      c.at("grpc_health_service")
          .error("only allowed with protocol grpc (protocol is \"" +
                 std::string(to_string(svc.protocol)) + "\")");
    }
    if (svc.kind == ServiceKind::kCommand && svc.command.empty()) {
      c.at("command").error("required when kind is \"command\"");
    } else if (svc.kind != ServiceKind::kCommand && c.has("command")) {
      c.at("command").error("only allowed when kind is \"command\" (kind is \"" +
                            std::string(to_string(svc.kind)) + "\")");
    }
    // exec() takes C strings: a NUL ("\0" in YAML) would silently cut the argument or value.
    constexpr std::string_view kNul("\0", 1);
    for (std::size_t i = 0; i < svc.command.size(); ++i) {
      if (svc.command[i].empty()) c.at("command").at(i).error("must not be empty");
      if (svc.command[i].find(kNul) != std::string::npos) {
        c.at("command").at(i).error("must not hold a NUL character");
      }
    }
    for (const auto& [key, value] : svc.env) {
      if (value.find(kNul) != std::string::npos) {
        c.at("env").key(key).error("must not hold a NUL character");
      }
      if (!valid_env_name(key)) {
        c.at("env").key(key).error(
            "not a valid environment variable name (letters, digits and "
            "\"_\", not starting with a digit)");
      }
    }
  });
}

// Rules across services and between the gateway and services.
static void check_references(Config& cfg, const Checker& c) {
  std::vector<std::string> names;
  std::map<std::string, std::size_t> first_index;
  for (std::size_t i = 0; i < cfg.services.size(); ++i) {
    const std::string& name = cfg.services[i].name;
    auto [it, inserted] = first_index.emplace(name, i);
    if (inserted) {
      names.push_back(name);
    } else {
      const Checker first = c.at("services").at(it->second).at("name");
      c.at("services")
          .at(i)
          .at("name")
          .error("duplicate service name " + quote(name) + " (first defined at " + first.path() +
                 ", line " + std::to_string(first.line()) + ")");
    }
  }
  for (std::size_t i = 0; i < cfg.services.size(); ++i) {
    const ServiceConfig& svc = cfg.services[i];
    if (svc.protocol == UpstreamProtocol::kGrpc && svc.kind != ServiceKind::kCommand) {
      c.at("services")
          .at(i)
          .at("protocol")
          .error(
              "grpc is for a gRPC server of your own (kind command): the built-in services answer "
              "HTTP, not gRPC");
    } else if (svc.protocol == UpstreamProtocol::kHttp2 && svc.kind != ServiceKind::kCommand &&
               !cfg.http.http2) {
      c.at("services").at(i).at("protocol").error(
          "http2 needs http.http2: true (the built-in replicas would not take HTTP/2)");
    }
    std::set<std::string> listed;
    for (std::size_t j = 0; j < svc.depends_on.size(); ++j) {
      const std::string& dep = svc.depends_on[j];
      const Checker at = c.at("services").at(i).at("depends_on").at(j);
      if (dep == svc.name) {
        at.error("a service cannot depend on itself");
      } else if (!first_index.contains(dep)) {
        at.error(unknown_service(dep, names));
      } else if (!listed.insert(dep).second) {
        at.error("lists " + quote(dep) + " twice");
      }
    }
  }
  // A route may also lead to a service the gateway only knows by its static upstreams.
  for (const auto& [service, endpoints] : cfg.gateway.upstreams) {
    if (!first_index.contains(service)) names.push_back(service);
  }
  for (std::size_t i = 0; i < cfg.gateway.routes.size(); ++i) {
    const std::string& target = cfg.gateway.routes[i].service;
    if (std::find(names.begin(), names.end(), target) == names.end()) {
      c.at("gateway").at("routes").at(i).at("service").error(unknown_service(target, names));
    }
  }
}

static void describe(Schema<HealerConfig>& s) {
  using std::chrono::milliseconds;
  s.field("enabled", &HealerConfig::enabled);
  s.field("ejections", &HealerConfig::ejections).at_least(1).at_most(1000);
  s.field("window", &HealerConfig::window).greater_than(milliseconds(0));
  s.field("min_interval", &HealerConfig::min_interval).at_least(milliseconds(0));
  s.field("rollout_analysis", &HealerConfig::rollout_analysis);
}

static void describe(Schema<TracingConfig>& s) {
  s.field("otlp_endpoint", &TracingConfig::otlp_endpoint).check([](const std::string& url) {
    if (url.empty()) return std::string();
    auto parsed = parse_web_url(url);
    if (!parsed) {
      return parsed.error().message +
             " (an OTLP/HTTP receiver's base URL, e.g. http://localhost:4318)";
    }
    std::string_view path = parsed->path;
    while (path.ends_with('/')) path.remove_suffix(1);
    if (path.ends_with("/v1/traces")) {
      return std::string(
          "the receiver's base URL, without /v1/traces: Prescale adds it (as OpenTelemetry's "
          "OTEL_EXPORTER_OTLP_ENDPOINT)");
    }
    return std::string();
  });
  s.field("sample_ratio", &TracingConfig::sample_ratio).at_least(0.0).at_most(1.0);
  s.field("headers", &TracingConfig::headers);
  s.check([](TracingConfig& t, const Checker& c) {
    if (t.otlp_endpoint.empty()) {
      for (const char* field : {"sample_ratio", "headers"}) {
        if (c.has(field)) c.at(field).error("has no effect without tracing.otlp_endpoint");
      }
    }
    for (const auto& [name, value] : t.headers) {
      if (!internal::valid_header_name(name)) {
        c.at("headers").key(name).error("not a valid HTTP header name");
      }
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        c.at("headers").key(name).error("must not hold a line break or NUL character");
      }
    }
  });
}

std::vector<std::pair<std::string, std::string>> otel_environment(const TracingConfig& tracing) {
  if (tracing.otlp_endpoint.empty()) return {};
  // The traces' own endpoint too, so that one a process inherits does not win over the file's.
  std::string traces = tracing.otlp_endpoint;
  if (!traces.ends_with('/')) traces += '/';
  traces += "v1/traces";
  std::vector<std::pair<std::string, std::string>> env = {
      {"OTEL_EXPORTER_OTLP_ENDPOINT", tracing.otlp_endpoint},
      {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", std::move(traces)},
      {"OTEL_TRACES_EXPORTER", "otlp"},
      {"OTEL_TRACES_SAMPLER", "parentbased_traceidratio"},
      {"OTEL_TRACES_SAMPLER_ARG", fmt::format("{}", tracing.sample_ratio)}};
  if (!tracing.headers.empty()) {
    // W3C Baggage's encoding, which the variable has: a value's ',', '%', '=', spaces and
    // bytes outside printable ASCII percent-encoded.
    std::string list;
    for (const auto& [name, value] : tracing.headers) {
      if (!list.empty()) list += ',';
      list += name;
      list += '=';
      for (unsigned char ch : value) {
        if (ch <= 0x20 || ch >= 0x7f || ch == ',' || ch == '%' || ch == '=' || ch == ';' ||
            ch == '"' || ch == '\\') {
          list += fmt::format("%{:02X}", ch);
        } else {
          list += static_cast<char>(ch);
        }
      }
    }
    env.emplace_back("OTEL_EXPORTER_OTLP_HEADERS", list);
    env.emplace_back("OTEL_EXPORTER_OTLP_TRACES_HEADERS", std::move(list));
  }
  return env;
}

static void describe(Schema<Config>& s) {
  s.field("version", &Config::version).required().check(version_problem);
  s.field("world", &Config::world);
  s.field("http", &Config::http);
  s.field("logging", &Config::logging);
  s.field("tracing", &Config::tracing);
  s.field("policy", &Config::policy);
  s.field("healer", &Config::healer);
  s.field("services", &Config::services);
  s.field("gateway", &Config::gateway);
  s.check(check_references);
}

// ---- Loading. ------------------------------------------------------------------------------

namespace {

// Whether line `line` (from 0) of `yaml` has a tab in its indentation, which yaml-cpp reports
// as "illegal block entry" or "illegal map value" without naming the tab.
bool indented_with_tab(std::string_view yaml, int line) {
  size_t begin = 0;
  for (int i = 0; i < line && begin != std::string_view::npos; ++i) {
    begin = yaml.find('\n', begin);
    if (begin != std::string_view::npos) ++begin;
  }
  if (line < 0 || begin == std::string_view::npos) return false;
  const size_t text = yaml.find_first_not_of(" \t", begin);
  return yaml.substr(begin, text == std::string_view::npos ? text : text - begin).find('\t') !=
         std::string_view::npos;
}

}  // namespace

Result<Config> load_config_string(std::string_view yaml, std::string_view source_name) {
  internal::Diagnostics diag{std::string(source_name)};
  Config config;
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml));
    const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
    // An empty document has no position; point at its start.
    const YAML::Mark mark = root.Mark().is_null() ? YAML::Mark() : root.Mark();
    internal::read_value(internal::Site{root, "", mark}, config, diag);
    // Silently reading only the first would hide everything after a `---`. An empty document
    // (a trailing `---`, as files joined for kubectl often end) holds nothing to hide.
    const auto more = std::find_if(documents.begin() + (documents.empty() ? 0 : 1),
                                   documents.end(), [](const YAML::Node& d) { return !d.IsNull(); });
    if (more != documents.end()) {
      const auto found = 1 + std::count_if(more, documents.end(),
                                           [](const YAML::Node& d) { return !d.IsNull(); });
      diag.report(more->Mark(), "",
                  "a config file holds one YAML document, found " + std::to_string(found));
    }
  } catch (const YAML::Exception& e) {
    std::string message = "invalid YAML: " + e.msg;
    if (!e.mark.is_null() && indented_with_tab(yaml, e.mark.line)) {
      message +=
          " (a tab indents line " + std::to_string(e.mark.line + 1) + "; YAML indents with spaces)";
    }
    diag.report(e.mark, "", message);
  } catch (const std::exception& e) {
    diag.report(YAML::Mark::null_mark(), "", std::string("cannot load config: ") + e.what());
  }
  if (diag.count() > 0) return make_error(ErrorCode::kInvalidArgument, diag.joined());
  return config;
}

Result<Config> load_config_file(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return make_error(ErrorCode::kNotFound, path + ": no such file");
  }
  if (status.type() == std::filesystem::file_type::directory) {
    return make_error(ErrorCode::kInvalidArgument, path + ": is a directory, not a config file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return make_error(ErrorCode::kInvalidArgument, path + ": cannot open: " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return make_error(ErrorCode::kInvalidArgument, path + ": cannot read: " + std::strerror(errno));
  }
  return load_config_string(text.str(), path);
}

}  // namespace prescale
