// Config: the typed form of prescale.yaml, and the one loader for it.
//
// A Config is a plain value: every field has the default a user would pick, and the loaders
// below fill in what the file sets, after checking each field and every cross-field rule
// (unique service names, replica bounds, references between services and routes, ...).
// docs/config.md documents every field.
//
// A failed load returns kInvalidArgument (kNotFound for a missing file) whose message lists
// each problem on its own line as `file:line:column: field.path: what is wrong`, e.g.
//   prescale.yaml:12:7: services[1].replicas.max: must be >= replicas.min (2), got 1
//
// Durations are std::chrono::milliseconds. Thread safety: the loaders are pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/logging.h"  // LogFormat
#include "core/result.h"

namespace prescale {

enum class WorldKind { kSim, kLocal, kKube };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class PolicyName { kPrescale, kHpa, kKpa, kAws, kStatic, kOracle };
enum class ServiceKind { kRecommend, kFraud, kForecast, kEcho, kCommand };

// The spelling used in prescale.yaml: "local", "builtin/recommend", "hpa", ...
std::string_view to_string(WorldKind v);
std::string_view to_string(LogLevel v);
std::string_view to_string(LogFormat v);
std::string_view to_string(PolicyName v);
std::string_view to_string(ServiceKind v);

// Defaults for every HTTP server Prescale runs (gateway, services, dashboard).
struct HttpConfig {
  int threads = 0;  // 0 = one per core
  std::int64_t max_header_bytes = 16 * 1024;
  std::int64_t max_body_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds read_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  int max_connections = 10'000;
  std::chrono::milliseconds shutdown_grace = std::chrono::seconds(10);  // drain on SIGTERM
};

struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
};

struct PolicyConfig {
  PolicyName name = PolicyName::kPrescale;
  std::chrono::milliseconds period = std::chrono::seconds(15);  // controller loop period
};

// 0 <= min <= initial <= max, max >= 1. `initial` defaults to `min`.
struct ReplicaBounds {
  int min = 1;
  int max = 10;
  int initial = 1;
};

struct SloConfig {
  double latency_p99_ms = 200;
  double error_budget = 0.001;  // allowed fraction of failed requests, in (0, 1)
};

struct ServiceConfig {
  std::string name;  // [a-z0-9-], 1..63 chars, unique
  ServiceKind kind = ServiceKind::kCommand;
  std::vector<std::string> command;  // argv; only for kind == kCommand; "{port}" is the port
  std::map<std::string, std::string> env;
  ReplicaBounds replicas;
  std::chrono::milliseconds startup_time = std::chrono::seconds(30);  // start to ready
  double capacity_rps = 100;  // seed for requests/s one replica sustains within its SLO
  SloConfig slo;
  std::vector<std::string> depends_on;  // names of services this one calls
};

struct RouteMatch {
  std::string path_prefix = "/";
  std::string host;                            // empty = any host
  std::map<std::string, std::string> headers;  // all must match exactly
};

struct RouteConfig {
  RouteMatch match;
  std::string service;
  std::chrono::milliseconds timeout = std::chrono::seconds(15);  // per attempt
  int retries = 2;
};

struct GatewayConfig {
  std::string listen = "127.0.0.1:8080";  // host:port
  std::vector<RouteConfig> routes;
};

struct Config {
  int version = 1;
  WorldKind world = WorldKind::kLocal;
  HttpConfig http;
  LoggingConfig logging;
  PolicyConfig policy;
  std::vector<ServiceConfig> services;
  GatewayConfig gateway;
};

// Reads and validates a prescale.yaml. Messages name `path` as given.
Result<Config> load_config_file(const std::string& path);

// Same, from text; `source_name` stands in for the file name in messages.
Result<Config> load_config_string(std::string_view yaml, std::string_view source_name = "<string>");

}  // namespace prescale
