#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
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

#include "core/internal/yaml_schema.h"

namespace prescale {

using internal::Checker;
using internal::quote;
using internal::Schema;

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

// Found by ADL from the schema machinery (so not in an anonymous namespace, which ADL skips).
static internal::EnumNames<WorldKind> enum_names(WorldKind /*tag*/) { return kWorldNames; }
static internal::EnumNames<LogLevel> enum_names(LogLevel /*tag*/) { return kLogLevelNames; }
static internal::EnumNames<LogFormat> enum_names(LogFormat /*tag*/) { return kLogFormatNames; }
static internal::EnumNames<PolicyName> enum_names(PolicyName /*tag*/) { return kPolicyNames; }
static internal::EnumNames<ServiceKind> enum_names(ServiceKind /*tag*/) {
  return kServiceKindNames;
}
static internal::EnumNames<RetryOn> enum_names(RetryOn /*tag*/) { return kRetryOnNames; }
static internal::EnumNames<LoadBalancerKind> enum_names(LoadBalancerKind /*tag*/) {
  return kLoadBalancerNames;
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

// ---- Single-value rules. Each returns what is wrong, or "" when the value is fine. ----------

// Service names become process names, metric labels and Kubernetes object names, so they
// follow the DNS label rules Kubernetes applies.
static std::string service_name_problem(const std::string& name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  bool ok = !name.empty() && name.size() <= 63 && alnum(name.front()) && alnum(name.back());
  for (char c : name) ok = ok && (alnum(c) || c == '-');
  if (ok) return "";
  return "must be 1 to 63 characters of a-z, 0-9 and \"-\", starting and ending with a letter "
         "or digit, got " +
         quote(name);
}

// "host:port" or "[ipv6]:port". `example` shows a valid value in the message.
static std::string host_port_problem(const std::string& value, std::string_view example,
                                     int min_port) {
  const std::string hint = "must be \"host:port\" (e.g. " + std::string(example) + "), got ";
  const std::size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0) return hint + quote(value);
  const std::string host = value.substr(0, colon);
  if (host.front() == '[' ? host.back() != ']' || host.size() < 3
                          : host.find_first_of(":[] \t/") != std::string::npos) {
    return hint + quote(value);
  }
  const std::string port = value.substr(colon + 1);
  const std::optional<std::int64_t> n = internal::parse_integer(port);
  if (!n || port.front() == '+' || port.front() == '-' || *n < min_port || *n > 65535) {
    return "port must be " + std::to_string(min_port) + "..65535, got " + quote(port);
  }
  return "";
}

// Where a server binds; port 0 picks a free port.
static std::string listen_problem(const std::string& listen) {
  return host_port_problem(listen, R"("127.0.0.1:8080", "[::]:8080")", 0);
}

// An upstream endpoint to connect to.
static std::string endpoint_problem(const std::string& endpoint) {
  return host_port_problem(endpoint, R"("10.0.0.7:8080", "[::1]:8080")", 1);
}

static std::string path_prefix_problem(const std::string& prefix) {
  if (!prefix.empty() && prefix.front() == '/') return "";
  return "must start with \"/\", got " + quote(prefix);
}

// The pattern syntax of http::Router: "/" or "/"-separated non-empty segments, each a literal,
// a `{name}` parameter or, last only, a `{name...}` catch-all; names are [A-Za-z_][A-Za-z0-9_]*
// and unique in the pattern.
static std::string path_pattern_problem(const std::string& pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    return "must start with \"/\", got " + quote(pattern);
  }
  if (pattern == "/") return "";
  auto name_char = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
  };
  std::vector<std::string_view> names;
  std::string_view rest = std::string_view(pattern).substr(1);
  bool after_catch_all = false;
  while (true) {
    const std::size_t slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (after_catch_all) return "a {name...} segment must be the last one, in " + quote(pattern);
    if (seg.empty()) return "empty path segment in " + quote(pattern);
    if (seg.front() == '{') {
      if (seg.back() != '}' || seg.size() < 3) {
        return "malformed parameter " + quote(seg) + ": write {name} or {name...}";
      }
      std::string_view name = seg.substr(1, seg.size() - 2);
      after_catch_all = name.ends_with("...");
      if (after_catch_all) name.remove_suffix(3);
      bool ok = !name.empty() && name_char(name.front(), true);
      for (char ch : name) ok = ok && name_char(ch, false);
      if (!ok) return "parameter names must match [A-Za-z_][A-Za-z0-9_]*, got " + quote(seg);
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        return "parameter " + quote(name) + " appears twice in " + quote(pattern);
      }
      names.push_back(name);
    } else if (seg.find_first_of("{}") != std::string_view::npos) {
      return "\"{\" and \"}\" may only enclose a whole segment, got " + quote(seg);
    }
    if (slash == std::string_view::npos) return "";
    rest = rest.substr(slash + 1);
  }
}

// "" (any host), a host name or IP address, "[ipv6]", or "*." followed by a host name. Matched
// case-insensitively against the Host header without its port.
static std::string host_match_problem(const std::string& host) {
  if (host.empty()) return "";
  const std::string hint =
      "must be a host name (\"api.example.com\"), a wildcard "
      "(\"*.example.com\") or an IP address, without a port; got ";
  if (host.front() == '[') {
    const bool ok = host.size() > 2 && host.back() == ']' &&
                    host.find_first_not_of("0123456789abcdefABCDEF:.", 1) == host.size() - 1;
    return ok ? "" : hint + quote(host);
  }
  std::string_view name = host;
  if (name.starts_with("*.")) name.remove_prefix(2);
  auto label_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  };
  bool ok = !name.empty() && name.size() <= 253;
  bool label_start = true;
  for (char c : name) {
    if (c == '.') {
      ok = ok && !label_start;
      label_start = true;
    } else {
      ok = ok && label_char(c);
      label_start = false;
    }
  }
  return ok && !label_start ? "" : hint + quote(host);
}

// RFC 9110 token characters, which header field names are made of.
static bool valid_header_name(std::string_view name) {
  auto tchar = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  };
  return !name.empty() && std::all_of(name.begin(), name.end(), tchar);
}

static std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

static std::string rate_limit_key_problem(const std::string& key) {
  if (key == "client_ip") return "";
  if (key.starts_with("header:") && valid_header_name(std::string_view(key).substr(7))) return "";
  return "must be \"client_ip\" or \"header:<name>\" (e.g. \"header:x-api-key\"), got " +
         quote(key);
}

static std::string version_problem(const int& version) {
  if (version == 1) return "";
  return "unsupported version " + std::to_string(version) + "; this Prescale reads version 1";
}

// Environment variable names as POSIX shells accept them.
static bool valid_env_name(const std::string& name) {
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  return !name.empty() && !(name.front() >= '0' && name.front() <= '9') &&
         std::all_of(name.begin(), name.end(), allowed);
}

static std::string unknown_service(const std::string& name,
                                   const std::vector<std::string>& services) {
  std::string message = "unknown service " + quote(name);
  if (services.empty()) return message + "; no services are defined";
  if (auto near = internal::closest_match(name, services)) {
    return message + "; did you mean " + quote(*near) + "?";
  }
  return message + "; services are: " + internal::join_names(services);
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

static void describe(Schema<ServiceConfig>& s) {
  s.field("name", &ServiceConfig::name).required().check(service_name_problem);
  s.field("kind", &ServiceConfig::kind).required();
  s.field("command", &ServiceConfig::command);
  s.field("env", &ServiceConfig::env);
  s.field("replicas", &ServiceConfig::replicas);
  s.field("startup_time", &ServiceConfig::startup_time);
  s.field("capacity_rps", &ServiceConfig::capacity_rps).greater_than(0.0);
  s.field("concurrency", &ServiceConfig::concurrency).at_least(0).at_most(1'000'000);
  s.field("queue_limit", &ServiceConfig::queue_limit).at_least(std::chrono::milliseconds(0));
  s.field("slo", &ServiceConfig::slo);
  s.field("depends_on", &ServiceConfig::depends_on);
  s.field("model_dir", &ServiceConfig::model_dir);
  s.check([](ServiceConfig& svc, const Checker& c) {
    svc.line = c.line();
    if (!svc.model_dir.empty() && svc.kind != ServiceKind::kRecommend &&
        svc.kind != ServiceKind::kFraud && svc.kind != ServiceKind::kForecast) {
      c.at("model_dir")
          .error(
              "only allowed for builtin/recommend, builtin/fraud and builtin/forecast (kind is \"" +
              std::string(to_string(svc.kind)) + "\")");
    }
    if (svc.kind == ServiceKind::kCommand && svc.command.empty()) {
      c.at("command").error("required when kind is \"command\"");
    } else if (svc.kind != ServiceKind::kCommand && c.has("command")) {
      c.at("command").error("only allowed when kind is \"command\" (kind is \"" +
                            std::string(to_string(svc.kind)) + "\")");
    }
    for (std::size_t i = 0; i < svc.command.size(); ++i) {
      if (svc.command[i].empty()) c.at("command").at(i).error("must not be empty");
    }
    for (const auto& [key, value] : svc.env) {
      if (!valid_env_name(key)) {
        c.at("env").key(key).error(
            "not a valid environment variable name (letters, digits and "
            "\"_\", not starting with a digit)");
      }
    }
  });
}

static void describe(Schema<RouteMatch>& s) {
  s.field("host", &RouteMatch::host).check(host_match_problem);
  s.field("path_prefix", &RouteMatch::path_prefix).check(path_prefix_problem);
  s.field("path", &RouteMatch::path).check(path_pattern_problem);
  s.field("headers", &RouteMatch::headers);
  s.field("headers_present", &RouteMatch::headers_present);
  s.check([](RouteMatch& m, const Checker& c) {
    if (c.has("path")) {
      if (c.has("path_prefix")) {
        c.at("path").error("set either path or path_prefix, not both");
      }
      m.path_prefix.clear();
    }
    // Field names are case-insensitive, so "X-Canary" and "x-canary" name one header.
    std::map<std::string, std::string> seen;  // lower-case name -> where it was first named
    auto note = [&](const std::string& name, const Checker& at, const std::string& where) {
      if (!valid_header_name(name)) {
        at.error("not a valid header name (letters, digits and !#$%&'*+-.^_`|~), got " +
                 quote(name));
      } else if (auto [it, inserted] = seen.emplace(lowercase(name), where); !inserted) {
        at.error("header " + quote(name) + " is already matched by " + it->second);
      }
    };
    for (const auto& [name, value] : m.headers) {
      note(name, c.at("headers").key(name), "headers." + name);
      if (value.find_first_of("\r\n") != std::string::npos || value.find('\0') != value.npos) {
        c.at("headers").at(name).error("header values cannot hold line breaks or NUL");
      }
    }
    for (std::size_t i = 0; i < m.headers_present.size(); ++i) {
      note(m.headers_present[i], c.at("headers_present").at(i),
           "headers_present[" + std::to_string(i) + "]");
    }
  });
}

static void describe(Schema<RetryPolicyConfig>& s) {
  s.field("num_retries", &RetryPolicyConfig::num_retries).at_least(0).at_most(10);
  s.field("retry_on", &RetryPolicyConfig::retry_on);
  s.field("retriable_status_codes", &RetryPolicyConfig::retriable_status_codes);
  s.field("retryable", &RetryPolicyConfig::retryable);
  s.check([](RetryPolicyConfig& r, const Checker& c) {
    for (std::size_t i = 0; i < r.retriable_status_codes.size(); ++i) {
      const int code = r.retriable_status_codes[i];
      if (code < 100 || code > 599) {
        c.at("retriable_status_codes")
            .at(i)
            .error("not an HTTP status code (100..599), got " + std::to_string(code));
      }
    }
    auto& on = r.retry_on;
    const bool by_code =
        std::find(on.begin(), on.end(), RetryOn::kRetriableStatusCodes) != on.end();
    if (by_code && r.retriable_status_codes.empty()) {
      c.at("retry_on")
          .error("lists \"retriable-status-codes\" but retriable_status_codes is empty");
    } else if (!by_code && !r.retriable_status_codes.empty()) {
      on.push_back(RetryOn::kRetriableStatusCodes);
    }
    std::sort(on.begin(), on.end());
    on.erase(std::unique(on.begin(), on.end()), on.end());
  });
}

// `retries` is either a mapping or, as in earlier files, just the number of retries.
// Found by ADL from the schema machinery, ahead of its generic reader.
static bool read_value(const internal::Site& site, RetryPolicyConfig& out,
                       internal::Diagnostics& diag) {
  if (!site.node.IsScalar()) return internal::schema_of<RetryPolicyConfig>().read(site, out, diag);
  const std::optional<std::int64_t> n = internal::parse_integer(site.node.Scalar());
  if (!n) {
    diag.report(site.mark, site.path,
                "expected a number of retries or a mapping (num_retries, retry_on, ...), got " +
                    quote(site.node.Scalar()));
    return false;
  }
  if (*n < 0 || *n > 10) {
    diag.report(site.mark, site.path, "must be 0..10, got " + std::to_string(*n));
    return false;
  }
  out.num_retries = static_cast<int>(*n);
  return true;
}

static void describe(Schema<RateLimitConfig>& s) {
  s.field("requests_per_second", &RateLimitConfig::requests_per_second)
      .at_least(0.0)
      .at_most(1e9);  // its one-second burst must fit an int
  s.field("burst", &RateLimitConfig::burst).at_least(0);
  s.field("key", &RateLimitConfig::key).check(rate_limit_key_problem);
  s.check([](RateLimitConfig& r, const Checker& c) {
    if (r.requests_per_second == 0 && r.burst > 0) {
      c.at("burst").error("has no effect without requests_per_second");
    } else if (r.requests_per_second > 0 && r.burst == 0) {
      r.burst = static_cast<int>(std::max(1.0, std::ceil(r.requests_per_second)));
    }
  });
}

static void describe(Schema<RouteConfig>& s) {
  using std::chrono::milliseconds;
  s.field("match", &RouteConfig::match);
  s.field("service", &RouteConfig::service).required();
  s.field("timeout", &RouteConfig::timeout).greater_than(milliseconds(0));
  s.field("per_try_timeout", &RouteConfig::per_try_timeout);
  s.field("retries", &RouteConfig::retries);
  s.field("rate_limit", &RouteConfig::rate_limit);
  s.check([](RouteConfig& r, const Checker& c) {
    if (r.per_try_timeout > r.timeout) {
      c.at("per_try_timeout")
          .error("must be <= timeout (" + internal::format_duration(r.timeout) + "), got " +
                 internal::format_duration(r.per_try_timeout));
    }
  });
}

static void describe(Schema<HealthCheckConfig>& s) {
  using std::chrono::milliseconds;
  s.field("path", &HealthCheckConfig::path).check(path_prefix_problem);
  s.field("interval", &HealthCheckConfig::interval).greater_than(milliseconds(0));
  s.field("timeout", &HealthCheckConfig::timeout).greater_than(milliseconds(0));
  s.field("healthy_threshold", &HealthCheckConfig::healthy_threshold).at_least(1);
  s.field("unhealthy_threshold", &HealthCheckConfig::unhealthy_threshold).at_least(1);
  s.check([](HealthCheckConfig& h, const Checker& c) {
    if (h.timeout > h.interval) {
      c.at("timeout").error("must be <= interval (" + internal::format_duration(h.interval) +
                            "), got " + internal::format_duration(h.timeout));
    }
  });
}

static void describe(Schema<OutlierDetectionConfig>& s) {
  using std::chrono::milliseconds;
  using O = OutlierDetectionConfig;
  s.field("consecutive_5xx", &O::consecutive_5xx).at_least(0);
  s.field("consecutive_gateway_failure", &O::consecutive_gateway_failure).at_least(0);
  s.field("interval", &O::interval).greater_than(milliseconds(0));
  s.field("base_ejection_time", &O::base_ejection_time).greater_than(milliseconds(0));
  s.field("max_ejection_time", &O::max_ejection_time);
  s.field("max_ejection_percent", &O::max_ejection_percent).at_least(0).at_most(100);
  s.check([](O& o, const Checker& c) {
    if (o.max_ejection_time < o.base_ejection_time) {
      c.at("max_ejection_time")
          .error("must be >= base_ejection_time (" +
                 internal::format_duration(o.base_ejection_time) + "), got " +
                 internal::format_duration(o.max_ejection_time));
    }
  });
}

static void describe(Schema<CircuitBreakerConfig>& s) {
  using std::chrono::milliseconds;
  using B = CircuitBreakerConfig;
  s.field("max_connections", &B::max_connections).at_least(1);
  s.field("max_pending_requests", &B::max_pending_requests).at_least(1);
  s.field("max_requests", &B::max_requests).at_least(1);
  s.field("max_retries", &B::max_retries).at_least(0);
  s.field("failure_rate_threshold", &B::failure_rate_threshold).greater_than(0.0).at_most(100.0);
  s.field("slow_call_duration", &B::slow_call_duration).greater_than(milliseconds(0));
  s.field("slow_call_rate_threshold", &B::slow_call_rate_threshold)
      .greater_than(0.0)
      .at_most(100.0);
  s.field("minimum_requests", &B::minimum_requests).at_least(1);
  s.field("window", &B::window).greater_than(milliseconds(0));
  s.field("open_duration", &B::open_duration).greater_than(milliseconds(0));
  s.field("half_open_trials", &B::half_open_trials).at_least(1);
}

static void describe(Schema<RetryBudgetConfig>& s) {
  s.field("budget_percent", &RetryBudgetConfig::budget_percent).at_least(0.0).at_most(100.0);
  s.field("min_retry_concurrency", &RetryBudgetConfig::min_retry_concurrency).at_least(0);
}

// One spelling per match, so that two routes written differently but matching the same
// requests are caught: lower-case host and header names, parameter names dropped.
static std::string canonical_match(const RouteMatch& m) {
  std::string key = lowercase(m.host) + '\n';
  if (m.path.empty()) {
    key += "prefix " + m.path_prefix;
  } else {
    key += "path ";
    for (std::size_t i = 0; i < m.path.size(); ++i) {
      if (m.path[i] != '{') {
        key += m.path[i];
        continue;
      }
      const std::size_t close = m.path.find('}', i);  // the pattern is valid: there is one
      key += m.path.compare(close - 3, 3, "...") == 0 ? "{...}" : "{}";
      i = close;
    }
  }
  std::vector<std::string> headers;
  for (const auto& [name, value] : m.headers) headers.push_back(lowercase(name) + ": " + value);
  for (const std::string& name : m.headers_present) headers.push_back(lowercase(name));
  std::sort(headers.begin(), headers.end());
  for (const std::string& h : headers) key += '\n' + h;
  return key;
}

static void describe(Schema<GatewayConfig>& s) {
  s.field("listen", &GatewayConfig::listen).check(listen_problem);
  s.field("threads", &GatewayConfig::threads).at_least(0);
  s.field("load_balancer", &GatewayConfig::load_balancer);
  s.field("load_balancer_tolerance", &GatewayConfig::load_balancer_tolerance).at_least(1.0);
  s.field("health_check", &GatewayConfig::health_check);
  s.field("outlier_detection", &GatewayConfig::outlier_detection);
  s.field("circuit_breakers", &GatewayConfig::circuit_breakers);
  s.field("retry_budget", &GatewayConfig::retry_budget);
  s.field("upstreams", &GatewayConfig::upstreams);
  s.field("routes", &GatewayConfig::routes);
  s.check([](GatewayConfig& g, const Checker& c) {
    for (const auto& [service, endpoints] : g.upstreams) {
      if (std::string problem = service_name_problem(service); !problem.empty()) {
        c.at("upstreams").key(service).error(problem);
      }
      for (std::size_t i = 0; i < endpoints.size(); ++i) {
        const Checker at = c.at("upstreams").at(service).at(i);
        if (std::string problem = endpoint_problem(endpoints[i]); !problem.empty()) {
          at.error(problem);
        } else if (std::find(endpoints.begin(), endpoints.begin() + static_cast<std::ptrdiff_t>(i),
                             endpoints[i]) != endpoints.begin() + static_cast<std::ptrdiff_t>(i)) {
          at.error("lists " + quote(endpoints[i]) + " twice");
        }
      }
    }
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < g.routes.size(); ++i) {
      keys.push_back(canonical_match(g.routes[i].match));
      for (std::size_t j = 0; j < i; ++j) {
        if (keys[i] == keys[j]) {
          c.at("routes").at(i).error("same match as routes[" + std::to_string(j) +
                                     "]; only one of them can receive requests");
          break;
        }
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

static void describe(Schema<Config>& s) {
  s.field("version", &Config::version).required().check(version_problem);
  s.field("world", &Config::world);
  s.field("http", &Config::http);
  s.field("logging", &Config::logging);
  s.field("policy", &Config::policy);
  s.field("services", &Config::services);
  s.field("gateway", &Config::gateway);
  s.check(check_references);
}

// ---- Loading. ------------------------------------------------------------------------------

Result<Config> load_config_string(std::string_view yaml, std::string_view source_name) {
  internal::Diagnostics diag{std::string(source_name)};
  Config config;
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml));
    const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
    // An empty document has no position; point at its start.
    const YAML::Mark mark = root.Mark().is_null() ? YAML::Mark() : root.Mark();
    internal::read_value(internal::Site{root, "", mark}, config, diag);
    if (documents.size() > 1) {
      // Silently reading only the first would hide everything after the `---`.
      diag.report(
          documents[1].Mark(), "",
          "a config file holds one YAML document, found " + std::to_string(documents.size()));
    }
  } catch (const YAML::Exception& e) {
    diag.report(e.mark, "", "invalid YAML: " + e.msg);
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
