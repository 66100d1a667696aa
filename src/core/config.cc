#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
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

// Found by ADL from the schema machinery (so not in an anonymous namespace, which ADL skips).
static internal::EnumNames<WorldKind> enum_names(WorldKind /*tag*/) { return kWorldNames; }
static internal::EnumNames<LogLevel> enum_names(LogLevel /*tag*/) { return kLogLevelNames; }
static internal::EnumNames<LogFormat> enum_names(LogFormat /*tag*/) { return kLogFormatNames; }
static internal::EnumNames<PolicyName> enum_names(PolicyName /*tag*/) { return kPolicyNames; }
static internal::EnumNames<ServiceKind> enum_names(ServiceKind /*tag*/) {
  return kServiceKindNames;
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

// "host:port" or "[ipv6]:port", port 0..65535 (0 = pick a free port).
static std::string listen_problem(const std::string& listen) {
  const std::string hint = R"(must be "host:port" (e.g. "127.0.0.1:8080", "[::]:8080"), got )";
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return hint + quote(listen);
  const std::string host = listen.substr(0, colon);
  if (host.front() == '[' ? host.back() != ']' || host.size() < 3
                          : host.find(':') != std::string::npos) {
    return hint + quote(listen);
  }
  const std::string port = listen.substr(colon + 1);
  const std::optional<std::int64_t> n = internal::parse_integer(port);
  if (!n || port.front() == '+' || port.front() == '-' || *n > 65535) {
    return "port must be 0..65535, got " + quote(port);
  }
  return "";
}

static std::string path_prefix_problem(const std::string& prefix) {
  if (!prefix.empty() && prefix.front() == '/') return "";
  return "must start with \"/\", got " + quote(prefix);
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
  s.field("shutdown_grace", &HttpConfig::shutdown_grace);
}

static void describe(Schema<LoggingConfig>& s) {
  s.field("level", &LoggingConfig::level);
  s.field("format", &LoggingConfig::format);
}

static void describe(Schema<PolicyConfig>& s) {
  s.field("name", &PolicyConfig::name);
  s.field("period", &PolicyConfig::period).greater_than(std::chrono::milliseconds(0));
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
  s.field("slo", &ServiceConfig::slo);
  s.field("depends_on", &ServiceConfig::depends_on);
  s.check([](ServiceConfig& svc, const Checker& c) {
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
  s.field("path_prefix", &RouteMatch::path_prefix).check(path_prefix_problem);
  s.field("host", &RouteMatch::host);
  s.field("headers", &RouteMatch::headers);
}

static void describe(Schema<RouteConfig>& s) {
  s.field("match", &RouteConfig::match);
  s.field("service", &RouteConfig::service).required();
  s.field("timeout", &RouteConfig::timeout).greater_than(std::chrono::milliseconds(0));
  s.field("retries", &RouteConfig::retries).at_least(0).at_most(10);
}

static void describe(Schema<GatewayConfig>& s) {
  s.field("listen", &GatewayConfig::listen).check(listen_problem);
  s.field("routes", &GatewayConfig::routes);
  s.check([](GatewayConfig& g, const Checker& c) {
    for (std::size_t i = 0; i < g.routes.size(); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        const RouteMatch& a = g.routes[i].match;
        const RouteMatch& b = g.routes[j].match;
        if (a.path_prefix == b.path_prefix && a.host == b.host && a.headers == b.headers) {
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
  for (std::size_t i = 0; i < cfg.gateway.routes.size(); ++i) {
    const std::string& target = cfg.gateway.routes[i].service;
    if (!first_index.contains(target)) {
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
