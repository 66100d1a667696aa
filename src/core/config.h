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
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/byte_size.h"
#include "core/logging.h"  // LogFormat
#include "core/result.h"

namespace prescale {

enum class WorldKind { kSim, kLocal, kKube };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class PolicyName { kPrescale, kHpa, kKpa, kAws, kStatic, kOracle };
enum class ServiceKind { kRecommend, kFraud, kForecast, kEcho, kCommand };
// What makes a failed attempt worth another one (Envoy's retry_on names).
enum class RetryOn { k5xx, kGatewayError, kConnectFailure, kReset, kRetriableStatusCodes };
enum class LoadBalancerKind { kP2cPeakEwma, kLeastRequest, kRoundRobin };
// What a service's replicas speak to the gateway (ServiceConfig::protocol): kGrpc is HTTP/2 as
// kHttp2, and its health is asked over gRPC's health checking protocol.
enum class UpstreamProtocol { kHttp1, kHttp2, kGrpc };

// The spelling used in prescale.yaml: "local", "builtin/recommend", "hpa", ...
std::string_view to_string(WorldKind v);
std::string_view to_string(LogLevel v);
std::string_view to_string(LogFormat v);
std::string_view to_string(PolicyName v);
std::string_view to_string(ServiceKind v);
std::string_view to_string(RetryOn v);
std::string_view to_string(LoadBalancerKind v);
std::string_view to_string(UpstreamProtocol v);

// Defaults for every HTTP server Prescale runs (gateway, services, dashboard).
struct HttpConfig {
  int threads = 0;  // 0 = one per core
  std::int64_t max_header_bytes = 16 * 1024;
  std::int64_t max_body_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds read_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  int max_connections = 10'000;
  std::chrono::milliseconds shutdown_grace = std::chrono::seconds(10);  // drain on SIGTERM
  bool http2 = true;  // HTTP/2 from clients, besides HTTP/1.1 (http::ServerOptions::http2)

  friend bool operator==(const HttpConfig&, const HttpConfig&) = default;
};

struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;

  friend bool operator==(const LoggingConfig&, const LoggingConfig&) = default;
};

struct PolicyConfig {
  PolicyName name = PolicyName::kPrescale;
  std::chrono::milliseconds period = std::chrono::seconds(15);  // controller loop period
  // prescale: the demand quantile replicas are planned for, in [0.5, 0.9999].
  double quantile = 0.9;
  // prescale: steer that quantile so the share of requests over their SLO or dropped tracks the
  // tightest services[].slo.error_budget (PrescalePolicyOptions::error_budget).
  bool steer_to_slo = false;
  // prescale: a lower replica count is applied only once the plan has stayed lower this long
  // (PrescalePolicyOptions::scale_down_delay; the HPA's scale-down stabilisation window).
  std::chrono::milliseconds scale_down_delay = std::chrono::minutes(5);
  // prescale: the same while a forecast plans the service
  // (PrescalePolicyOptions::forecast_scale_down_delay).
  std::chrono::milliseconds forecast_scale_down_delay = std::chrono::minutes(3);

  friend bool operator==(const PolicyConfig&, const PolicyConfig&) = default;
};

// 0 <= min <= initial <= max, max >= 1. `initial` defaults to `min`.
struct ReplicaBounds {
  int min = 1;
  int max = 10;
  int initial = 1;

  friend bool operator==(const ReplicaBounds&, const ReplicaBounds&) = default;
};

struct SloConfig {
  double latency_p99_ms = 200;
  double error_budget = 0.001;  // allowed fraction of failed requests, in (0, 1)

  friend bool operator==(const SloConfig&, const SloConfig&) = default;
};

// A Kubernetes liveness probe of each ready replica (`prescale up`): GET `path` every `interval`;
// `failure_threshold` failures in a row — no answer within `timeout`, or a 5xx — and the replica
// is killed and restarted. Any other answer, a 404 included, is alive (docs/config.md).
struct LivenessConfig {
  bool enabled = true;
  std::string path = "/healthz";
  std::chrono::milliseconds interval = std::chrono::seconds(10);
  std::chrono::milliseconds timeout = std::chrono::seconds(1);
  int failure_threshold = 3;

  friend bool operator==(const LivenessConfig&, const LivenessConfig&) = default;
};

// Admission control's queue limit where a service does not set one: half its SLO's p99 latency,
// in whole milliseconds, 1 ms to 1 h (ServiceConfig::queue_limit; `prescale sim` applies the
// same to its built-in topologies).
std::chrono::milliseconds default_queue_limit(double slo_latency_p99_ms);

struct ServiceConfig {
  std::string name;  // [a-z0-9-], 1..63 chars, unique
  ServiceKind kind = ServiceKind::kCommand;
  std::vector<std::string> command;  // argv; only for kind == kCommand; "{port}" is the port
  // The container image that runs the service on Kubernetes (`prescale render kubernetes`):
  // required there for kind == kCommand, whose `command` it holds; for a built-in kind, an image
  // of Prescale to use instead of the one the render names (one holding its model files, say).
  // `prescale up` does not read it. "" = not written.
  std::string image;
  std::map<std::string, std::string> env;
  ReplicaBounds replicas;
  std::chrono::milliseconds startup_time = std::chrono::seconds(30);  // start to ready
  double capacity_rps = 100;  // seed for requests/s one replica sustains within its SLO
  // Requests one replica works on at once (Knative's containerConcurrency); 0 = not limited, or
  // the kind's own (the built-in recommend and fraud replicas serve one at a time).
  int concurrency = 0;
  // `concurrency`, or the kind's own when it is 0: 1 for builtin/recommend and builtin/fraud
  // (one I/O thread computes each answer), 0 (not limited) for the others.
  int effective_concurrency() const {
    if (concurrency > 0) return concurrency;
    return kind == ServiceKind::kRecommend || kind == ServiceKind::kFraud ? 1 : 0;
  }
  // Admission control in the gateway: the longest a request should wait for a replica. The
  // gateway refuses (503 overloaded) what the replicas in service cannot start within this at
  // capacity_rps; 0 = no admission limit; kQueueLimitAuto (not written in the file) = half the
  // SLO's p99 latency. docs/gateway-resilience.md, "Admission control".
  static constexpr std::chrono::milliseconds kQueueLimitAuto{-1};
  std::chrono::milliseconds queue_limit = kQueueLimitAuto;
  // queue_limit as it applies: kQueueLimitAuto resolved by default_queue_limit().
  std::chrono::milliseconds effective_queue_limit() const;
  // Requests one replica may have in flight under effective_queue_limit(), by Little's law: those
  // it works on at once (effective_concurrency()) plus those it completes within the limit
  // (ceil(capacity_rps × limit)); with no known concurrency, what it completes within the
  // SLO's p99 latency plus the limit. 0 when the limit is 0.
  int max_requests_per_replica() const { return max_requests_per_replica_at(capacity_rps); }
  // The same for replicas that sustain `sustained_rps` (a learned capacity, not the seed).
  int max_requests_per_replica_at(double sustained_rps) const;
  SloConfig slo;
  std::vector<std::string> depends_on;  // names of services this one calls
  // builtin/recommend and builtin/fraud: the directory of versioned model files (prescale
  // train); relative paths are relative to the config file's directory. "" = the serve default.
  std::string model_dir;
  // The path polled for readiness (GET; 200..399 is ready, as for a Kubernetes probe) by the
  // supervisor before a replica gets traffic, and by the gateway's health checks after. "" = not
  // written: "/readyz" (the runtime's) for the supervisor, gateway.health_check.path for the
  // gateway.
  std::string readiness_path;
  std::string_view effective_readiness_path() const {
    return readiness_path.empty() ? std::string_view("/readyz") : std::string_view(readiness_path);
  }
  LivenessConfig liveness;
  // What the replicas speak to the gateway: "http1" (HTTP/1.1; Prescale's own replicas take
  // HTTP/2 too), "http2" (HTTP/2 in clear text with prior knowledge only, as gRPC servers do) or
  // "grpc" (the same, and a gRPC server that serves grpc.health.v1). The gateway, its health
  // checks and `prescale up`'s readiness and liveness checks reach an http2 or grpc service over
  // HTTP/2 (docs/gateway.md, "gRPC and HTTP/2 upstreams"); for a grpc one, they ask the health
  // service (grpc.health.v1.Health/Check) instead of GETting paths.
  UpstreamProtocol protocol = UpstreamProtocol::kHttp1;
  bool speaks_http2() const { return protocol != UpstreamProtocol::kHttp1; }
  // With protocol grpc: the name the health checks ask about ("" = the server as a whole, as
  // Kubernetes' gRPC probes ask by default).
  std::string grpc_health_service;
  // The most resident memory one replica may hold, its whole process group counted (a
  // Kubernetes memory limit): over it the replica is killed and restarts as a crashed one; the
  // healer replaces a replica whose memory grows toward it before it gets there. Not written: 0,
  // no limit (a written one is at least 1Mi).
  ByteSize memory_limit;
  int line = 0;  // where the service's entry starts in its file (1-based), for later messages
};

// Which requests a route takes. After loading, exactly one of `path_prefix` and `path` is
// non-empty.
struct RouteMatch {
  std::string host;               // "" = any; "api.example.com", or "*.example.com"
  std::string path_prefix = "/";  // request paths starting with this (characters, not segments)
  std::string path;               // whole-path pattern: "/v1/users/{id}", "/static/{rest...}"
  std::map<std::string, std::string> headers;  // all must be present with exactly these values
  std::vector<std::string> headers_present;    // all must be present, any value

  friend bool operator==(const RouteMatch&, const RouteMatch&) = default;
};

struct RetryPolicyConfig {
  int num_retries = 1;  // further attempts after the first; 0 = never retry
  std::vector<RetryOn> retry_on = {RetryOn::kGatewayError, RetryOn::kConnectFailure,
                                   RetryOn::kReset};
  std::vector<int> retriable_status_codes;  // listing codes turns on kRetriableStatusCodes
  bool retryable = false;  // retry POST, PATCH on every cause, not only on connect failure

  friend bool operator==(const RetryPolicyConfig&, const RetryPolicyConfig&) = default;
};

// A token bucket per key (client IP, or the value of a header).
struct RateLimitConfig {
  double requests_per_second = 0;  // 0 = no limit
  int burst = 0;  // bucket size; the loader turns 0 into one second's worth (at least 1)
  std::string key = "client_ip";  // "client_ip" or "header:<name>"

  friend bool operator==(const RateLimitConfig&, const RateLimitConfig&) = default;
};

struct RouteConfig {
  RouteMatch match;
  std::string service;
  std::chrono::milliseconds timeout = std::chrono::seconds(15);  // whole request, retries included
  std::chrono::milliseconds per_try_timeout{0};                  // per attempt; 0 = only `timeout`
  // A relayed WebSocket with nothing passing either way for this long is closed.
  std::chrono::milliseconds websocket_idle_timeout = std::chrono::minutes(5);
  RetryPolicyConfig retries;  // `retries: 2` in a file is short for `retries: {num_retries: 2}`
  RateLimitConfig rate_limit;

  friend bool operator==(const RouteConfig&, const RouteConfig&) = default;
};

// Active health checks of upstream endpoints (Kubernetes readiness probe defaults).
struct HealthCheckConfig {
  std::string path = "/readyz";
  std::chrono::milliseconds interval = std::chrono::seconds(10);
  std::chrono::milliseconds timeout = std::chrono::seconds(1);
  int healthy_threshold = 1;    // consecutive successes to mark an endpoint healthy
  int unhealthy_threshold = 3;  // consecutive failures to mark it unhealthy

  friend bool operator==(const HealthCheckConfig&, const HealthCheckConfig&) = default;
};

// Passive ejection of failing endpoints (Envoy's defaults, except that consecutive gateway
// failures are enforced: they are the gateway's own signal). A threshold of 0 turns it off.
struct OutlierDetectionConfig {
  int consecutive_5xx = 5;
  int consecutive_gateway_failure = 5;  // 502/503/504 and connect failures only
  std::chrono::milliseconds interval = std::chrono::seconds(10);
  std::chrono::milliseconds base_ejection_time = std::chrono::seconds(30);  // x times ejected
  std::chrono::milliseconds max_ejection_time = std::chrono::seconds(300);
  int max_ejection_percent = 10;  // of a service's endpoints; one may always be ejected (not at 0)

  friend bool operator==(const OutlierDetectionConfig&, const OutlierDetectionConfig&) = default;
};

// Per upstream service: Envoy's admission limits, and a failure-rate breaker per endpoint
// (Hystrix's window and sleep, resilience4j's slow-call rule). Rates are percentages.
struct CircuitBreakerConfig {
  int max_connections = 1024;
  int max_pending_requests = 1024;
  int max_requests = 1024;
  int max_retries = 3;                 // retries in flight at once
  double failure_rate_threshold = 50;  // % of requests in the window; opens at or above
  std::chrono::milliseconds slow_call_duration = std::chrono::seconds(60);
  double slow_call_rate_threshold = 100;  // % of requests slower than slow_call_duration
  int minimum_requests = 20;              // in the window, before the rates are judged
  std::chrono::milliseconds window = std::chrono::seconds(10);
  std::chrono::milliseconds open_duration = std::chrono::seconds(5);
  int half_open_trials = 1;

  friend bool operator==(const CircuitBreakerConfig&, const CircuitBreakerConfig&) = default;
};

// Retries allowed in flight: budget_percent of active + pending requests, never fewer than
// min_retry_concurrency (Envoy defaults).
struct RetryBudgetConfig {
  double budget_percent = 20;
  int min_retry_concurrency = 3;

  friend bool operator==(const RetryBudgetConfig&, const RetryBudgetConfig&) = default;
};

// HTTPS on the gateway's listener (docs/gateway.md, "TLS"): both files or neither. Relative
// paths are relative to the config file's directory. The files are read again when they change.
struct GatewayTlsConfig {
  std::string cert_file;  // PEM: the certificate, then its intermediates
  std::string key_file;   // PEM: its private key, not encrypted

  bool enabled() const { return !cert_file.empty(); }
  friend bool operator==(const GatewayTlsConfig&, const GatewayTlsConfig&) = default;
};

struct GatewayConfig {
  std::string listen = "127.0.0.1:8080";  // host:port
  GatewayTlsConfig tls;
  int threads = 0;                        // I/O threads; 0 = one per core
  LoadBalancerKind load_balancer = LoadBalancerKind::kP2cPeakEwma;
  // P2C policies: the replica next in turn keeps the request unless the other candidate's cost
  // is lower by more than this factor (1: always the cheaper, Linkerd's and Envoy's rule).
  double load_balancer_tolerance = 2.0;
  HealthCheckConfig health_check;
  OutlierDetectionConfig outlier_detection;
  CircuitBreakerConfig circuit_breakers;
  RetryBudgetConfig retry_budget;
  // Static endpoints per service, "host:port" each, for a gateway run without a controller. A
  // host name is resolved every dns_refresh_rate and each address it resolves to is an endpoint
  // (gateway/dns_upstreams.h: Envoy's STRICT_DNS).
  std::map<std::string, std::vector<std::string>> upstreams;
  std::chrono::milliseconds dns_refresh_rate = std::chrono::seconds(5);
  std::vector<RouteConfig> routes;
  // Admission control per service: requests in flight one replica in service may have
  // (ServiceConfig::max_requests_per_replica()); a service not listed has no such limit. Not
  // read from the gateway section: `prescale up` fills it in from services[].queue_limit.
  std::map<std::string, int> max_requests_per_replica;
  // The path each service's replicas are health-checked at, where it is not health_check.path
  // (ServiceConfig::readiness_path). Not read from the gateway section: `prescale up` and
  // `prescale gateway -f` fill it in from services[].readiness_path.
  std::map<std::string, std::string> health_check_paths;
  // Services that may scale to zero (replicas.min 0): a request for one that finds none of its
  // replicas in service waits for one, up to its route's timeout, as Knative's activator holds
  // it, instead of being answered 503 at once. Not read from the gateway section: `prescale up`
  // and `prescale gateway -f` fill it in from services[].replicas.min.
  std::set<std::string> hold_for_replica;
  // Services whose replicas speak HTTP/2 only (ServiceConfig::protocol http2): requests, health
  // checks included, go to them over HTTP/2. Not read from the gateway section: `prescale up`
  // and `prescale gateway -f` fill it in from services[].protocol.
  std::set<std::string> http2_upstreams;
  // Services whose replicas are health-checked over gRPC's health checking protocol
  // (ServiceConfig::protocol grpc), each with the name its checks ask about ("" = the server as
  // a whole); they are in http2_upstreams too. Not read from the gateway section: `prescale up`
  // and `prescale gateway -f` fill it in from services[].protocol and grpc_health_service.
  std::map<std::string, std::string> grpc_health_checks;

  friend bool operator==(const GatewayConfig&, const GatewayConfig&) = default;
};

// The healer's remedies (docs/healing.md, "The healer"): a replica the gateway's outlier detection
// ejected `ejections` times within `window`, its service's other replicas not, is replaced; at
// most one replacement per service per `min_interval`.
struct HealerConfig {
  bool enabled = true;
  int ejections = 3;
  std::chrono::milliseconds window = std::chrono::minutes(10);
  std::chrono::milliseconds min_interval = std::chrono::minutes(5);
  // A rolling update's new revision judged against the old one while both serve, and rolled back
  // when it fails more often or answers more slowly (healing/rollout_analysis.h); with `enabled`.
  bool rollout_analysis = true;

  friend bool operator==(const HealerConfig&, const HealerConfig&) = default;
};

// Spans of every request to an OTLP/HTTP receiver (docs/tracing.md): `prescale up` gives its
// gateway and each replica the OTEL_* variables that say where (otel_environment()), and
// `prescale render kubernetes` writes them into the pods.
struct TracingConfig {
  // "http://HOST[:PORT][/PATH]": the receiver's base URL (an OpenTelemetry collector's port 4318),
  // "/v1/traces" appended. "" = no spans (what OTEL_* variables the processes have still apply).
  std::string otlp_endpoint;
  double sample_ratio = 1.0;  // the share of new traces sampled; a caller's decision is followed
  std::map<std::string, std::string> headers;  // sent with each export, e.g. authorization

  friend bool operator==(const TracingConfig&, const TracingConfig&) = default;
};

// The OpenTelemetry variables that send spans where `tracing` says: OTEL_EXPORTER_OTLP_ENDPOINT
// and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (its /v1/traces), OTEL_TRACES_EXPORTER (otlp),
// OTEL_TRACES_SAMPLER (parentbased_traceidratio), OTEL_TRACES_SAMPLER_ARG and, with headers,
// OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TRACES_HEADERS (values percent-encoded).
// Empty when no endpoint is set.
std::vector<std::pair<std::string, std::string>> otel_environment(const TracingConfig& tracing);

struct Config {
  int version = 1;
  WorldKind world = WorldKind::kLocal;
  HttpConfig http;
  LoggingConfig logging;
  TracingConfig tracing;
  PolicyConfig policy;
  HealerConfig healer;
  std::vector<ServiceConfig> services;
  GatewayConfig gateway;
};

// The gateway's admission limits from the services' queue_limit
// (GatewayConfig::max_requests_per_replica): every service that has one. `prescale up` and
// `prescale gateway -f` both apply them.
std::map<std::string, int> admission_limits(const std::vector<ServiceConfig>& services);

// The gateway's per-service health check paths (GatewayConfig::health_check_paths): every
// service that writes a readiness_path.
std::map<std::string, std::string> health_check_paths(const std::vector<ServiceConfig>& services);

// The services a gateway holds requests for while they have no replica in service
// (GatewayConfig::hold_for_replica): those whose replicas.min is 0.
std::set<std::string> hold_for_replica(const std::vector<ServiceConfig>& services);

// The services the gateway reaches over HTTP/2 (GatewayConfig::http2_upstreams): those whose
// protocol is http2 or grpc.
std::set<std::string> http2_upstreams(const std::vector<ServiceConfig>& services);

// The services the gateway health-checks over gRPC (GatewayConfig::grpc_health_checks): those
// whose protocol is grpc, with their grpc_health_service.
std::map<std::string, std::string> grpc_health_checks(const std::vector<ServiceConfig>& services);

// Reads and validates a prescale.yaml. Messages name `path` as given.
// The `prescale serve` flags that give a replica the settings of `http` that differ from their
// defaults: --max-header-bytes, --max-body-bytes, --read-timeout-ms, --idle-timeout-ms,
// --max-connections, --no-http2. Not threads and shutdown_grace, which the caller sets.
std::vector<std::string> serve_http_flags(const HttpConfig& http);

Result<Config> load_config_file(const std::string& path);

// Same, from text; `source_name` stands in for the file name in messages.
Result<Config> load_config_string(std::string_view yaml, std::string_view source_name = "<string>");

}  // namespace prescale
