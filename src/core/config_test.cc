#include "core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/host_port.h"
#include "core/internal/config_scalars.h"

namespace prescale {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// The repository root: ctest sets PRESCALE_SOURCE_DIR; a direct run falls back to this file's.
std::filesystem::path source_dir() {
  if (const char* src = std::getenv("PRESCALE_SOURCE_DIR")) return src;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

// The error message of a load that must fail.
std::string error_of(std::string_view yaml) {
  Result<Config> r = load_config_string(yaml, "prescale.yaml");
  if (r.has_value()) return "<loaded without error>";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  return r.error().message;
}

// ---- Valid files ---------------------------------------------------------------------------

TEST(ConfigLoad, FullFileLoadsWithExpectedValues) {
  const std::string path = (source_dir() / "src/core/testdata/full.yaml").string();
  Result<Config> r = load_config_file(path);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const Config& c = *r;

  EXPECT_EQ(c.version, 1);
  EXPECT_EQ(c.world, WorldKind::kLocal);
  EXPECT_EQ(c.http.threads, 4);
  EXPECT_EQ(c.http.max_header_bytes, 32768);
  EXPECT_EQ(c.http.max_body_bytes, 1048576);
  EXPECT_EQ(c.http.read_timeout, 5s);
  EXPECT_EQ(c.http.idle_timeout, 2min);
  EXPECT_EQ(c.http.max_connections, 2000);
  EXPECT_EQ(c.http.shutdown_grace, 15s);
  EXPECT_FALSE(c.http.http2);
  EXPECT_EQ(c.logging.level, LogLevel::kDebug);
  EXPECT_EQ(c.logging.format, LogFormat::kJson);
  EXPECT_EQ(c.policy.name, PolicyName::kPrescale);
  EXPECT_EQ(c.policy.period, 10s);

  ASSERT_EQ(c.services.size(), 3u);
  const ServiceConfig& rec = c.services[0];
  EXPECT_EQ(rec.name, "recommend");
  EXPECT_EQ(rec.kind, ServiceKind::kRecommend);
  EXPECT_TRUE(rec.command.empty());
  EXPECT_EQ(rec.replicas.min, 2);
  EXPECT_EQ(rec.replicas.max, 20);
  EXPECT_EQ(rec.replicas.initial, 3);
  EXPECT_EQ(rec.startup_time, 45s);
  EXPECT_DOUBLE_EQ(rec.capacity_rps, 150);
  EXPECT_DOUBLE_EQ(rec.slo.latency_p99_ms, 200);
  EXPECT_DOUBLE_EQ(rec.slo.error_budget, 0.001);
  EXPECT_THAT(rec.depends_on, ElementsAre("fraud"));

  const ServiceConfig& fraud = c.services[1];
  EXPECT_EQ(fraud.kind, ServiceKind::kFraud);
  EXPECT_EQ(fraud.replicas.initial, 1);  // defaults to min
  EXPECT_DOUBLE_EQ(fraud.slo.error_budget, 0.0005);

  const ServiceConfig& checkout = c.services[2];
  EXPECT_EQ(checkout.kind, ServiceKind::kCommand);
  EXPECT_THAT(checkout.command, ElementsAre("./checkout", "--port", "{port}"));
  EXPECT_THAT(checkout.env, ElementsAre(Pair("CHECKOUT_MODE", "fast"), Pair("WORKERS", "4")));
  EXPECT_EQ(checkout.replicas.min, 0);
  EXPECT_EQ(checkout.startup_time, 1500ms);
  EXPECT_DOUBLE_EQ(checkout.capacity_rps, 75.5);
  EXPECT_THAT(checkout.depends_on, ElementsAre("fraud", "recommend"));

  EXPECT_EQ(c.gateway.listen, "0.0.0.0:8080");
  ASSERT_EQ(c.gateway.routes.size(), 3u);
  EXPECT_EQ(c.gateway.routes[0].match.path_prefix, "/v1/recommend");
  EXPECT_EQ(c.gateway.routes[0].service, "recommend");
  EXPECT_EQ(c.gateway.routes[0].timeout, 2s);
  EXPECT_EQ(c.gateway.routes[0].retries.num_retries, 1);  // `retries: 1`, the integer form
  EXPECT_EQ(c.gateway.routes[1].match.host, "shop.example.com");
  EXPECT_THAT(c.gateway.routes[1].match.headers, ElementsAre(Pair("x-tenant", "acme")));
  EXPECT_EQ(c.gateway.routes[1].retries.num_retries, 0);
  EXPECT_EQ(c.gateway.routes[2].service, "fraud");
  EXPECT_EQ(c.gateway.routes[2].timeout, 15s);            // default
  EXPECT_EQ(c.gateway.routes[2].retries.num_retries, 1);  // default
}

TEST(ConfigLoad, GatewayFileLoadsWithExpectedValues) {
  const std::string path = (source_dir() / "src/core/testdata/gateway.yaml").string();
  Result<Config> r = load_config_file(path);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const GatewayConfig& g = r->gateway;

  EXPECT_EQ(g.listen, "[::]:9090");
  EXPECT_EQ(g.threads, 8);
  EXPECT_EQ(g.load_balancer, LoadBalancerKind::kLeastRequest);
  EXPECT_EQ(g.load_balancer_tolerance, 1.5);
  EXPECT_EQ(g.health_check.path, "/healthz");
  EXPECT_EQ(g.health_check.interval, 5s);
  EXPECT_EQ(g.health_check.timeout, 500ms);
  EXPECT_EQ(g.health_check.healthy_threshold, 2);
  EXPECT_EQ(g.health_check.unhealthy_threshold, 4);
  EXPECT_EQ(g.outlier_detection.consecutive_5xx, 3);
  EXPECT_EQ(g.outlier_detection.consecutive_gateway_failure, 2);
  EXPECT_EQ(g.outlier_detection.interval, 5s);
  EXPECT_EQ(g.outlier_detection.base_ejection_time, 10s);
  EXPECT_EQ(g.outlier_detection.max_ejection_time, 2min);
  EXPECT_EQ(g.outlier_detection.max_ejection_percent, 50);
  const CircuitBreakerConfig& cb = g.circuit_breakers;
  EXPECT_EQ(cb.max_connections, 100);
  EXPECT_EQ(cb.max_pending_requests, 50);
  EXPECT_EQ(cb.max_requests, 200);
  EXPECT_EQ(cb.max_retries, 5);
  EXPECT_DOUBLE_EQ(cb.failure_rate_threshold, 25);
  EXPECT_EQ(cb.slow_call_duration, 2s);
  EXPECT_DOUBLE_EQ(cb.slow_call_rate_threshold, 80);
  EXPECT_EQ(cb.minimum_requests, 10);
  EXPECT_EQ(cb.window, 30s);
  EXPECT_EQ(cb.open_duration, 15s);
  EXPECT_EQ(cb.half_open_trials, 3);
  EXPECT_DOUBLE_EQ(g.retry_budget.budget_percent, 10);
  EXPECT_EQ(g.retry_budget.min_retry_concurrency, 5);
  EXPECT_THAT(g.upstreams,
              ElementsAre(Pair("checkout", ElementsAre("127.0.0.1:9001")),
                          Pair("payments", ElementsAre("10.0.0.7:8443", "10.0.0.8:8443"))));

  ASSERT_EQ(g.routes.size(), 4u);
  const RouteConfig& canary = g.routes[0];
  EXPECT_EQ(canary.service, "checkout-canary");
  EXPECT_EQ(canary.match.host, "shop.example.com");
  EXPECT_THAT(canary.match.headers, ElementsAre(Pair("x-canary", "1")));
  EXPECT_EQ(canary.timeout, 15s);
  EXPECT_EQ(canary.per_try_timeout, 0ms);
  EXPECT_EQ(canary.websocket_idle_timeout, 5min);
  EXPECT_EQ(canary.retries.num_retries, 1);
  EXPECT_THAT(canary.retries.retry_on,
              ElementsAre(RetryOn::kGatewayError, RetryOn::kConnectFailure, RetryOn::kReset));
  EXPECT_FALSE(canary.retries.retryable);
  EXPECT_EQ(canary.rate_limit.requests_per_second, 0);

  const RouteConfig& checkout = g.routes[1];
  EXPECT_EQ(checkout.timeout, 10s);
  EXPECT_EQ(checkout.per_try_timeout, 3s);
  EXPECT_EQ(checkout.websocket_idle_timeout, 1min);
  EXPECT_EQ(checkout.retries.num_retries, 2);
  // Listing codes turns on retrying by code.
  EXPECT_THAT(checkout.retries.retry_on,
              ElementsAre(RetryOn::k5xx, RetryOn::kConnectFailure, RetryOn::kRetriableStatusCodes));
  EXPECT_THAT(checkout.retries.retriable_status_codes, ElementsAre(409));
  EXPECT_TRUE(checkout.retries.retryable);

  const RouteConfig& users = g.routes[2];
  EXPECT_EQ(users.match.host, "*.example.com");
  EXPECT_EQ(users.match.path, "/v1/users/{id}/recommendations");
  EXPECT_EQ(users.match.path_prefix, "");  // `path` replaces the default prefix
  EXPECT_THAT(users.match.headers_present, ElementsAre("authorization"));
  EXPECT_DOUBLE_EQ(users.rate_limit.requests_per_second, 50);
  EXPECT_EQ(users.rate_limit.burst, 100);
  EXPECT_EQ(users.rate_limit.key, "header:x-api-key");

  const RouteConfig& pay = g.routes[3];
  EXPECT_EQ(pay.service, "payments");  // known only through gateway.upstreams
  EXPECT_EQ(pay.retries.num_retries, 0);
  EXPECT_EQ(pay.rate_limit.burst, 3);  // one second's worth, rounded up
  EXPECT_EQ(pay.rate_limit.key, "client_ip");
}

TEST(ConfigLoad, GatewayDefaults) {
  Result<Config> r = load_config_string(R"(
version: 1
services: [{name: echo, kind: builtin/echo}]
gateway:
  routes: [{service: echo}]
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const GatewayConfig& g = r->gateway;
  EXPECT_EQ(g.threads, 0);
  EXPECT_EQ(g.load_balancer, LoadBalancerKind::kP2cPeakEwma);
  EXPECT_EQ(g.load_balancer_tolerance, 2.0);
  EXPECT_EQ(g.health_check.path, "/readyz");
  EXPECT_EQ(g.health_check.interval, 10s);
  EXPECT_EQ(g.health_check.timeout, 1s);
  EXPECT_EQ(g.health_check.healthy_threshold, 1);
  EXPECT_EQ(g.health_check.unhealthy_threshold, 3);
  EXPECT_EQ(g.outlier_detection.consecutive_5xx, 5);
  EXPECT_EQ(g.outlier_detection.consecutive_gateway_failure, 5);
  EXPECT_EQ(g.outlier_detection.interval, 10s);
  EXPECT_EQ(g.outlier_detection.base_ejection_time, 30s);
  EXPECT_EQ(g.outlier_detection.max_ejection_time, 300s);
  EXPECT_EQ(g.outlier_detection.max_ejection_percent, 10);
  const CircuitBreakerConfig& cb = g.circuit_breakers;
  EXPECT_EQ(cb.max_connections, 1024);
  EXPECT_EQ(cb.max_pending_requests, 1024);
  EXPECT_EQ(cb.max_requests, 1024);
  EXPECT_EQ(cb.max_retries, 3);
  EXPECT_DOUBLE_EQ(cb.failure_rate_threshold, 50);
  EXPECT_EQ(cb.slow_call_duration, 60s);
  EXPECT_DOUBLE_EQ(cb.slow_call_rate_threshold, 100);
  EXPECT_EQ(cb.minimum_requests, 20);
  EXPECT_EQ(cb.window, 10s);
  EXPECT_EQ(cb.open_duration, 5s);
  EXPECT_EQ(cb.half_open_trials, 1);
  EXPECT_DOUBLE_EQ(g.retry_budget.budget_percent, 20);
  EXPECT_EQ(g.retry_budget.min_retry_concurrency, 3);
  EXPECT_TRUE(g.upstreams.empty());

  const RouteConfig& route = g.routes[0];
  EXPECT_EQ(route.match.path_prefix, "/");
  EXPECT_EQ(route.match.path, "");
  EXPECT_TRUE(route.match.headers_present.empty());
  EXPECT_EQ(route.timeout, 15s);
  EXPECT_EQ(route.per_try_timeout, 0ms);
  EXPECT_EQ(route.retries.num_retries, 1);
  EXPECT_THAT(route.retries.retry_on,
              ElementsAre(RetryOn::kGatewayError, RetryOn::kConnectFailure, RetryOn::kReset));
  EXPECT_TRUE(route.retries.retriable_status_codes.empty());
  EXPECT_FALSE(route.retries.retryable);
  EXPECT_EQ(route.rate_limit.requests_per_second, 0);
  EXPECT_EQ(route.rate_limit.burst, 0);
  EXPECT_EQ(route.rate_limit.key, "client_ip");
  EXPECT_EQ(to_string(LoadBalancerKind::kP2cPeakEwma), "p2c_peak_ewma");
  EXPECT_EQ(to_string(RetryOn::kRetriableStatusCodes), "retriable-status-codes");
}

TEST(ConfigLoad, RetriesIntegerIsShortForNumRetries) {
  Result<Config> r = load_config_string(R"(
version: 1
services: [{name: a, kind: builtin/echo}]
gateway:
  routes:
    - {match: {path_prefix: /x}, service: a, retries: 3}
    - {match: {path_prefix: /y}, service: a, retries: {num_retries: 3}}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  for (const RouteConfig& route : r->gateway.routes) {
    EXPECT_EQ(route.retries.num_retries, 3);
    EXPECT_EQ(route.retries.retry_on.size(), 3u);
  }
}

TEST(ConfigLoad, DocsCompleteExampleLoads) {
  // The complete example in docs/config.md is the YAML block after this marker.
  std::ifstream in(source_dir() / "docs/config.md");
  ASSERT_TRUE(in) << "docs/config.md not found";
  std::ostringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const std::size_t marker = doc.find("<!-- example: complete -->\n```yaml\n");
  ASSERT_NE(marker, std::string::npos);
  const std::size_t begin = doc.find('\n', doc.find("```yaml", marker)) + 1;
  const std::size_t end = doc.find("```", begin);
  ASSERT_NE(end, std::string::npos);

  Result<Config> r = load_config_string(doc.substr(begin, end - begin), "docs/config.md");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services.size(), 4u);
  EXPECT_EQ(r->gateway.routes.size(), 4u);
  EXPECT_EQ(r->gateway.upstreams.size(), 1u);
}

TEST(ConfigLoad, MinimalFileGetsDefaults) {
  Result<Config> r = load_config_string("version: 1\n");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.world, WorldKind::kLocal);
  EXPECT_EQ(c.http.threads, 0);
  EXPECT_EQ(c.http.max_header_bytes, 16384);
  EXPECT_EQ(c.http.max_body_bytes, 4194304);
  EXPECT_EQ(c.http.read_timeout, 10s);
  EXPECT_EQ(c.http.idle_timeout, 60s);
  EXPECT_EQ(c.http.max_connections, 10000);
  EXPECT_EQ(c.http.shutdown_grace, 10s);
  EXPECT_TRUE(c.http.http2);
  EXPECT_EQ(c.logging.level, LogLevel::kInfo);
  EXPECT_EQ(c.logging.format, LogFormat::kText);
  EXPECT_EQ(c.policy.name, PolicyName::kPrescale);
  EXPECT_EQ(c.policy.period, 15s);
  EXPECT_TRUE(c.services.empty());
  EXPECT_EQ(c.gateway.listen, "127.0.0.1:8080");
  EXPECT_TRUE(c.gateway.routes.empty());
}

TEST(ConfigLoad, ServiceDefaults) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - name: echo
    kind: builtin/echo
  - name: big
    kind: builtin/echo
    replicas: {min: 3}
gateway:
  routes:
    - service: echo
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const ServiceConfig& s = r->services[0];
  EXPECT_EQ(s.replicas.min, 1);
  EXPECT_EQ(s.replicas.max, 10);
  EXPECT_EQ(s.replicas.initial, 1);
  EXPECT_EQ(s.startup_time, 30s);
  EXPECT_DOUBLE_EQ(s.capacity_rps, 100);
  // Admission control at half the SLO's p99 unless written: ceil(100 req/s × (0.2 + 0.1 s)).
  EXPECT_EQ(s.queue_limit, ServiceConfig::kQueueLimitAuto);
  EXPECT_EQ(s.effective_queue_limit(), 100ms);
  EXPECT_EQ(s.max_requests_per_replica(), 30);
  EXPECT_DOUBLE_EQ(s.slo.latency_p99_ms, 200);
  EXPECT_DOUBLE_EQ(s.slo.error_budget, 0.001);
  EXPECT_TRUE(s.env.empty());
  EXPECT_TRUE(s.depends_on.empty());
  EXPECT_EQ(r->services[1].replicas.initial, 3);  // follows min when not written
  EXPECT_EQ(r->gateway.routes[0].match.path_prefix, "/");
  EXPECT_EQ(r->gateway.routes[0].match.host, "");
}

TEST(ConfigLoad, QueueLimitGivesTheRequestsPerReplicaByLittlesLaw) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - {name: echo, kind: builtin/echo, capacity_rps: 100, queue_limit: 150ms}
  - {name: wide, kind: builtin/echo, capacity_rps: 100, concurrency: 4, queue_limit: 0.15}
  - {name: rec, kind: builtin/recommend, capacity_rps: 75.5, queue_limit: 150ms}
  - {name: tiny, kind: builtin/echo, capacity_rps: 1, queue_limit: 1ms}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services[0].queue_limit, 150ms);
  // Echo's concurrency is not known: what it completes within the SLO's p99 (200 ms by
  // default) and the limit, 100 req/s × 0.35 s (exactly 35).
  EXPECT_EQ(r->services[0].max_requests_per_replica(), 35);
  EXPECT_EQ(r->services[1].queue_limit, 150ms);  // a bare number is seconds
  EXPECT_EQ(r->services[1].max_requests_per_replica(), 4 + 15);
  EXPECT_EQ(r->services[2].max_requests_per_replica(), 1 + 12);  // ceil(11.325)
  EXPECT_EQ(r->services[3].max_requests_per_replica(), 1);  // ceil(1 req/s × 0.201 s), at least 1
  // prescale up and prescale gateway -f hand these to the gateway; the gateway section itself
  // never sets them. A service with queue_limit 0 has no entry.
  EXPECT_TRUE(r->gateway.max_requests_per_replica.empty());
  r->services.push_back(r->services[0]);
  r->services.back().name = "unlimited";
  r->services.back().queue_limit = 0ms;
  const std::map<std::string, int> limits = admission_limits(r->services);
  EXPECT_EQ(limits, (std::map<std::string, int>{{"echo", 35}, {"wide", 19}, {"rec", 13},
                                                 {"tiny", 1}}));
  // prescale up recomputes it from the learned capacity: 4 + ceil(300 req/s × 0.15 s).
  EXPECT_EQ(r->services[1].max_requests_per_replica_at(300), 4 + 45);
  EXPECT_EQ(r->services.back().max_requests_per_replica_at(300), 0);
}

TEST(ConfigLoad, AnImageIsAContainerImageReference) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - {name: own, kind: command, command: [svc, "{port}"], image: "registry.example.com/a/b:1.4"}
  - {name: echo, kind: builtin/echo}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services[0].image, "registry.example.com/a/b:1.4");
  EXPECT_EQ(r->services[1].image, "");

  Result<Config> bad = load_config_string(R"(
version: 1
services:
  - {name: own, kind: command, command: [svc, "{port}"], image: "shop checkout:1"}
  - {name: echo, kind: builtin/echo, image: ""}
)");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message,
            "<string>:4:65: services[0].image: must be a container image reference such as "
            "\"registry.example.com/shop/checkout:1.4\", with no space or control character, got "
            "\"shop checkout:1\"\n"
            "<string>:5:45: services[1].image: must not be empty");
}

TEST(ConfigLoad, ReadinessPathIsTheServicesProbeForTheSupervisorAndTheGateway) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - {name: own, kind: command, command: [./svc, "{port}"], readiness_path: /health/ready}
  - {name: echo, kind: builtin/echo}
gateway:
  health_check: {path: /livez}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services[0].readiness_path, "/health/ready");
  EXPECT_EQ(r->services[0].effective_readiness_path(), "/health/ready");
  // Not written: the runtime's /readyz for the supervisor, the gateway's own path for its checks.
  EXPECT_EQ(r->services[1].readiness_path, "");
  EXPECT_EQ(r->services[1].effective_readiness_path(), "/readyz");
  // The gateway section never sets the per-service paths; prescale up and prescale gateway -f
  // hand it those the services write.
  EXPECT_TRUE(r->gateway.health_check_paths.empty());
  EXPECT_EQ(health_check_paths(r->services),
            (std::map<std::string, std::string>{{"own", "/health/ready"}}));
}

TEST(ConfigLoad, ProtocolSaysWhichServicesTheGatewayReachesOverHttp2) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - {name: grpc, kind: command, command: [./svc, "{port}"], protocol: http2}
  - {name: web, kind: command, command: [./web, "{port}"], protocol: http1}
  - {name: echo, kind: builtin/echo, protocol: http2}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services[0].protocol, UpstreamProtocol::kHttp2);
  EXPECT_EQ(r->services[1].protocol, UpstreamProtocol::kHttp1);
  EXPECT_EQ(to_string(UpstreamProtocol::kHttp2), "http2");
  EXPECT_TRUE(r->gateway.http2_upstreams.empty());  // never from the gateway section
  EXPECT_EQ(http2_upstreams(r->services), (std::set<std::string>{"echo", "grpc"}));

  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: grpc, kind: command, command: [./svc], protocol: h2}
)"),
              HasSubstr("services[0].protocol"));
  // A built-in replica takes HTTP/2 only when the http section lets it.
  EXPECT_THAT(error_of(R"(
version: 1
http: {http2: false}
services:
  - {name: echo, kind: builtin/echo, protocol: http2}
)"),
              HasSubstr("services[0].protocol: http2 needs http.http2: true"));
}

// protocol grpc: reached over HTTP/2 as http2, and health-checked through grpc.health.v1 about
// grpc_health_service; the paths its checks would not use are refused, as is the name elsewhere.
TEST(ConfigLoad, ProtocolGrpcChecksTheHealthService) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - {name: cart, kind: command, command: [./cart, "{port}"], protocol: grpc,
     grpc_health_service: shop.Cart}
  - {name: rank, kind: command, command: [./rank, "{port}"], protocol: grpc}
  - {name: web, kind: command, command: [./web, "{port}"]}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services[0].protocol, UpstreamProtocol::kGrpc);
  EXPECT_EQ(to_string(UpstreamProtocol::kGrpc), "grpc");
  EXPECT_TRUE(r->services[0].speaks_http2());
  EXPECT_FALSE(r->services[2].speaks_http2());
  EXPECT_EQ(r->services[0].grpc_health_service, "shop.Cart");
  EXPECT_EQ(http2_upstreams(r->services), (std::set<std::string>{"cart", "rank"}));
  EXPECT_EQ(grpc_health_checks(r->services),
            (std::map<std::string, std::string>{{"cart", "shop.Cart"}, {"rank", ""}}));
  EXPECT_TRUE(r->gateway.grpc_health_checks.empty());  // never from the gateway section

  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: cart, kind: command, command: [./cart], protocol: grpc, readiness_path: /readyz}
)"),
              HasSubstr("services[0].readiness_path: not used with protocol grpc"));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: cart, kind: command, command: [./cart], protocol: grpc, liveness: {path: /healthz}}
)"),
              HasSubstr("services[0].liveness.path: not used with protocol grpc"));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: cart, kind: command, command: [./cart], protocol: http2, grpc_health_service: x}
)"),
              HasSubstr("services[0].grpc_health_service: only allowed with protocol grpc "
                        "(protocol is \"http2\")"));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: cart, kind: command, command: [./cart], protocol: grpc, grpc_health_service: "a\tb"}
)"),
              HasSubstr("services[0].grpc_health_service: must not hold a control character"));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: echo, kind: builtin/echo, protocol: grpc}
)"),
              HasSubstr("services[0].protocol: grpc is for a gRPC server of your own"));
  // Liveness may still be turned off, or timed.
  EXPECT_TRUE(load_config_string(R"(
version: 1
services:
  - {name: cart, kind: command, command: [./cart], protocol: grpc,
     liveness: {enabled: false, interval: 5s}}
)")
                  .has_value());
}

// A program's arguments and environment reach exec() as C strings: "\0" in YAML would cut one
// short without a word.
TEST(ConfigError, ANulInACommandOrAnEnvValueIsRefused) {
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: own, kind: command, command: [./svc, "--mode=a\0b"]}
)"),
              HasSubstr("services[0].command[1]: must not hold a NUL character"));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: own, kind: command, command: [./svc], env: {MODE: "a\0b"}}
)"),
              HasSubstr("services[0].env.MODE: must not hold a NUL character"));
}

TEST(ConfigLoad, ReadinessPathMustBeAnOriginFormPath) {
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: own, kind: builtin/echo, readiness_path: health}
)"),
              HasSubstr("services[0].readiness_path: must start with \"/\""));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: own, kind: builtin/echo, readiness_path: "/ready now"}
)"),
              HasSubstr("services[0].readiness_path: must not hold a space or a control character"));
}

// Liveness is a Kubernetes liveness probe's settings, on by default (/healthz every 10 s, 1 s to
// answer, 3 failures in a row), and may be turned off.
TEST(ConfigLoad, LivenessHasKubernetesDefaultsAndItsOwnSettings) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - {name: echo, kind: builtin/echo}
  - name: own
    kind: command
    command: [./svc, "{port}"]
    liveness: {path: /alive, interval: 5s, timeout: 250ms, failure_threshold: 2}
  - {name: off, kind: builtin/echo, liveness: {enabled: false}}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const LivenessConfig& echo = r->services[0].liveness;
  EXPECT_TRUE(echo.enabled);
  EXPECT_EQ(echo.path, "/healthz");
  EXPECT_EQ(echo.interval, std::chrono::seconds(10));
  EXPECT_EQ(echo.timeout, std::chrono::seconds(1));
  EXPECT_EQ(echo.failure_threshold, 3);
  const LivenessConfig& own = r->services[1].liveness;
  EXPECT_EQ(own.path, "/alive");
  EXPECT_EQ(own.interval, std::chrono::seconds(5));
  EXPECT_EQ(own.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(own.failure_threshold, 2);
  EXPECT_FALSE(r->services[2].liveness.enabled);
}

// A memory limit is written as Kubernetes writes one; none by default.
TEST(ConfigLoad, AMemoryLimitReadsKubernetesSizes) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - {name: echo, kind: builtin/echo}
  - {name: web, kind: builtin/echo, memory_limit: 512Mi}
  - {name: big, kind: builtin/echo, memory_limit: 1.5G}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services[0].memory_limit.bytes, 0u);
  EXPECT_EQ(r->services[1].memory_limit.bytes, 512u << 20);
  EXPECT_EQ(r->services[2].memory_limit.bytes, 1'500'000'000u);
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: web, kind: builtin/echo, memory_limit: 512MB}
)"),
              HasSubstr("prescale.yaml:4:51: services[0].memory_limit: expected bytes, or a size "
                        "such as \"512Mi\""));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: web, kind: builtin/echo, memory_limit: 64Ki}
)"),
              HasSubstr("services[0].memory_limit: must be >= 1Mi, got 64Ki"));
}

TEST(ConfigLoad, BadLivenessSettingsAreNamed) {
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: own, kind: builtin/echo, liveness: {path: alive}}
)"),
              HasSubstr("services[0].liveness.path: must start with \"/\""));
  EXPECT_THAT(
      error_of(R"(
version: 1
services:
  - {name: own, kind: builtin/echo, liveness: {interval: 1s, timeout: 1s}}
)"),
      HasSubstr(
          "prescale.yaml:4:71: services[0].liveness.timeout: must be < interval (1s), got 1s"));
  // Turned off, the checks need no room between them: only the interval is written.
  EXPECT_TRUE(load_config_string(R"(
version: 1
services:
  - {name: own, kind: builtin/echo, liveness: {enabled: false, interval: 1s}}
)"));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: own, kind: builtin/echo, liveness: {failure_threshold: 0}}
)"),
              HasSubstr("services[0].liveness.failure_threshold: must be >= 1"));
  EXPECT_THAT(error_of(R"(
version: 1
services:
  - {name: own, kind: builtin/echo, liveness: {enabled: maybe}}
)"),
              HasSubstr("services[0].liveness.enabled"));
}

TEST(ConfigLoad, TheHealerHasDefaultsAndItsOwnSettings) {
  Result<Config> defaults = load_config_string("version: 1\n");
  ASSERT_TRUE(defaults.has_value()) << defaults.error().message;
  EXPECT_TRUE(defaults->healer.enabled);
  EXPECT_EQ(defaults->healer.ejections, 3);
  EXPECT_EQ(defaults->healer.window, std::chrono::minutes(10));
  EXPECT_EQ(defaults->healer.min_interval, std::chrono::minutes(5));
  EXPECT_TRUE(defaults->healer.rollout_analysis);
  Result<Config> own = load_config_string(
      "version: 1\nhealer: {enabled: false, ejections: 5, window: 30m, min_interval: 0s, "
      "rollout_analysis: false}\n");
  ASSERT_TRUE(own.has_value()) << own.error().message;
  EXPECT_FALSE(own->healer.enabled);
  EXPECT_FALSE(own->healer.rollout_analysis);
  EXPECT_EQ(own->healer.ejections, 5);
  EXPECT_EQ(own->healer.window, std::chrono::minutes(30));
  EXPECT_EQ(own->healer.min_interval, std::chrono::milliseconds(0));
  EXPECT_THAT(error_of("version: 1\nhealer: {ejections: 0}\n"),
              HasSubstr("prescale.yaml:2:21: healer.ejections: must be >= 1, got 0"));
  EXPECT_THAT(error_of("version: 1\nhealer: {window: 0s}\n"), HasSubstr("healer.window"));
  EXPECT_THAT(error_of("version: 1\nhealer: {eject: 3}\n"),
              HasSubstr("healer: unknown key \"eject\"; valid keys: enabled, ejections"));
}

TEST(ConfigLoad, QueueLimitLeftOutIsHalfTheSlo) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - {name: slow, kind: builtin/echo, concurrency: 2, slo: {latency_p99_ms: 2000}}
  - {name: fast, kind: builtin/echo, concurrency: 2, slo: {latency_p99_ms: 1}}
  - {name: off, kind: builtin/echo, queue_limit: 0}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services[0].effective_queue_limit(), 1000ms);
  EXPECT_EQ(r->services[0].max_requests_per_replica(), 2 + 100);
  EXPECT_EQ(r->services[1].effective_queue_limit(), 1ms);  // whole milliseconds, at least 1
  EXPECT_EQ(r->services[2].effective_queue_limit(), 0ms);
  EXPECT_EQ(admission_limits(r->services),
            (std::map<std::string, int>{{"slow", 102}, {"fast", 3}}));
}

TEST(ConfigLoad, EmptyValueMeansDefault) {
  Result<Config> r = load_config_string("version: 1\nhttp:\nlogging:\n  level: ~\nservices:\n");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->http.max_connections, 10000);
  EXPECT_EQ(r->logging.level, LogLevel::kInfo);
}

TEST(ConfigLoad, DurationForms) {
  Result<Config> r = load_config_string(R"(
version: 1
http: {read_timeout: 500ms, idle_timeout: 5m, shutdown_grace: 0}
policy: {period: 1h}
services:
  - {name: a, kind: builtin/echo, startup_time: 90}
  - {name: b, kind: builtin/echo, startup_time: 0.25}
  - {name: c, kind: builtin/echo, startup_time: 1m30s}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->http.read_timeout, 500ms);
  EXPECT_EQ(r->http.idle_timeout, 5min);
  EXPECT_EQ(r->http.shutdown_grace, 0s);
  EXPECT_EQ(r->policy.period, 1h);
  EXPECT_EQ(r->services[0].startup_time, 90s);  // bare number = seconds
  EXPECT_EQ(r->services[1].startup_time, 250ms);
  EXPECT_EQ(r->services[2].startup_time, 90s);
}

TEST(ConfigLoad, EnumNamesRoundTrip) {
  EXPECT_EQ(to_string(WorldKind::kKube), "kube");
  EXPECT_EQ(to_string(LogLevel::kWarn), "warn");
  EXPECT_EQ(to_string(LogFormat::kJson), "json");
  EXPECT_EQ(to_string(PolicyName::kHpa), "hpa");
  EXPECT_EQ(to_string(ServiceKind::kRecommend), "builtin/recommend");
  EXPECT_EQ(to_string(ServiceKind::kCommand), "command");
}

// ---- Errors: each names file:line:column, the field path and what is wrong -----------------

TEST(ConfigError, UnknownKeyWithSuggestion) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: a
    replcas: {min: 1}
    kind: builtin/echo
)"),
            R"(prescale.yaml:4:5: services[0]: unknown key "replcas"; did you mean "replicas"?)");
}

TEST(ConfigError, UnknownTopLevelKey) {
  EXPECT_EQ(error_of("version: 1\nsevices: []\n"),
            R"(prescale.yaml:2:1: unknown key "sevices"; did you mean "services"?)");
}

TEST(ConfigError, UnknownKeyFarFromAnyListsValidKeys) {
  EXPECT_EQ(error_of("version: 1\nlogging: {colour: red}\n"),
            R"(prescale.yaml:2:11: logging: unknown key "colour"; valid keys: level, format)");
}

TEST(ConfigError, WrongType) {
  EXPECT_EQ(error_of("version: 1\nhttp:\n  threads: abc\n"),
            R"(prescale.yaml:3:12: http.threads: expected an integer, got "abc")");
  EXPECT_EQ(error_of("version: 1\nhttp: [1, 2]\n"),
            "prescale.yaml:2:7: http: expected a mapping, got a list");
  EXPECT_EQ(error_of("version: 1\nservices: {name: a}\n"),
            "prescale.yaml:2:11: services: expected a list, got a mapping");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: [a]\n    kind: builtin/echo\n"),
            "prescale.yaml:3:11: services[0].name: expected a string, got a list");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, capacity_rps: "
                     "lots}\n"),
            R"(prescale.yaml:3:49: services[0].capacity_rps: expected a number, got "lots")");
}

TEST(ConfigError, OutOfRange) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: a
    kind: builtin/echo
  - name: b
    kind: builtin/echo
    slo:
      latency_p99_ms: 0
)"),
            "prescale.yaml:8:23: services[1].slo.latency_p99_ms: must be > 0, got 0");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, slo: "
                     "{error_budget: 1.5}}\n"),
            "prescale.yaml:3:55: services[0].slo.error_budget: must be < 1, got 1.5");
  EXPECT_EQ(error_of("version: 1\nhttp: {threads: -1}\n"),
            "prescale.yaml:2:17: http.threads: must be >= 0, got -1");
  EXPECT_EQ(error_of("version: 1\nhttp: {threads: 99999999999}\n"),
            R"(prescale.yaml:2:17: http.threads: expected an integer between -2147483648 and )"
            R"(2147483647, got "99999999999")");
  EXPECT_THAT(error_of("version: 1\nhttp: {shutdown_grace: 2h}\n"),
              HasSubstr("http.shutdown_grace: must be <= "));
}

TEST(ConfigError, ReplicaBounds) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: a
    kind: builtin/echo
  - name: b
    kind: builtin/echo
    replicas:
      min: 2
      max: 1
)"),
            "prescale.yaml:9:12: services[1].replicas.max: must be >= replicas.min (2), got 1");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, replicas: "
                     "{min: 12}}\n"),
            "prescale.yaml:3:45: services[0].replicas.max: must be >= replicas.min (12), got 10 "
            "(the default)");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, replicas: "
                     "{max: 3, initial: 4}}\n"),
            "prescale.yaml:3:63: services[0].replicas.initial: must be between replicas.min (1) "
            "and replicas.max (3), got 4");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, replicas: "
                     "{min: 0, max: 0}}\n"),
            "prescale.yaml:3:59: services[0].replicas.max: must be >= 1, got 0");
}

TEST(ConfigError, BadEnumListsAllowedValues) {
  EXPECT_EQ(error_of("version: 1\nworld: cloud\n"),
            R"(prescale.yaml:2:8: world: must be one of sim, local, kube; got "cloud")");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: builtin/recomend\n"),
            "prescale.yaml:4:11: services[0].kind: must be one of builtin/recommend, "
            "builtin/fraud, builtin/forecast, builtin/echo, command; got \"builtin/recomend\"");
}

TEST(ConfigError, BadDuration) {
  EXPECT_EQ(error_of("version: 1\npolicy:\n  period: 15 seconds\n"),
            R"(prescale.yaml:3:11: policy.period: expected a duration such as "500ms", "60s", )"
            R"("5m" or "1h" (a bare number means seconds), got "15 seconds")");
  EXPECT_EQ(error_of("version: 1\npolicy:\n  period: -5s\n"),
            R"(prescale.yaml:3:11: policy.period: durations cannot be negative, got "-5s")");
  EXPECT_EQ(error_of("version: 1\npolicy:\n  period: 0s\n"),
            "prescale.yaml:3:11: policy.period: must be > 0s, got 0s");
}

TEST(ConfigLoad, PolicyPlanningLevel) {
  Result<Config> r = load_config_string(R"(
version: 1
policy: {quantile: 0.96, steer_to_slo: true, scale_down_delay: 2m}
services:
  - {name: a, kind: builtin/echo}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_DOUBLE_EQ(r->policy.quantile, 0.96);
  EXPECT_TRUE(r->policy.steer_to_slo);
  EXPECT_EQ(r->policy.scale_down_delay, 2min);
  Result<Config> d = load_config_string("version: 1\n");
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_DOUBLE_EQ(d->policy.quantile, 0.9);
  EXPECT_FALSE(d->policy.steer_to_slo);
  EXPECT_EQ(d->policy.scale_down_delay, 5min);
  EXPECT_EQ(error_of("version: 1\npolicy:\n  scale_down_delay: -1m\n"),
            R"(prescale.yaml:3:21: policy.scale_down_delay: durations cannot be negative, got "-1m")");
  // The forecast delay: read, defaulted and checked like scale_down_delay (review).
  Result<Config> f = load_config_string(
      "version: 1\npolicy: {forecast_scale_down_delay: 90s}\n");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_EQ(f->policy.forecast_scale_down_delay, 90s);
  EXPECT_EQ(f->policy.scale_down_delay, 5min);
  EXPECT_EQ(d->policy.forecast_scale_down_delay, 3min);
  EXPECT_EQ(error_of("version: 1\npolicy:\n  forecast_scale_down_delay: -1m\n"),
            R"(prescale.yaml:3:30: policy.forecast_scale_down_delay: durations cannot be negative, got "-1m")");
  EXPECT_EQ(error_of("version: 1\npolicy:\n  quantile: 0.3\n"),
            "prescale.yaml:3:13: policy.quantile: must be >= 0.5, got 0.3");
  EXPECT_EQ(error_of("version: 1\npolicy:\n  quantile: 1\n"),
            "prescale.yaml:3:13: policy.quantile: must be <= 0.9999, got 1");
}

TEST(ConfigError, DuplicateServiceName) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: fraud
    kind: builtin/fraud
  - name: fraud
    kind: builtin/echo
)"),
            R"(prescale.yaml:5:11: services[1].name: duplicate service name "fraud" )"
            R"((first defined at services[0].name, line 3))");
}

TEST(ConfigError, DependsOnUnknownService) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: fraud
    kind: builtin/fraud
  - name: recommend
    kind: builtin/recommend
    depends_on: [fruad]
)"),
            R"(prescale.yaml:7:18: services[1].depends_on[0]: unknown service "fruad"; )"
            R"(did you mean "fraud"?)");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, depends_on: "
                     "[a]}\n"),
            "prescale.yaml:3:48: services[0].depends_on[0]: a service cannot depend on itself");
}

TEST(ConfigError, RouteToUnknownService) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: recommend
    kind: builtin/recommend
gateway:
  routes:
    - match: {path_prefix: /v1/recommend}
      service: recomend
)"),
            R"(prescale.yaml:8:16: gateway.routes[0].service: unknown service "recomend"; )"
            R"(did you mean "recommend"?)");
  EXPECT_EQ(error_of("version: 1\ngateway: {routes: [{service: x}]}\n"),
            R"(prescale.yaml:2:30: gateway.routes[0].service: unknown service "x"; )"
            "no services are defined");
}

TEST(ConfigError, MissingRequiredField) {
  EXPECT_EQ(error_of("world: sim\n"), "prescale.yaml:1:1: version: required field is missing");
  EXPECT_EQ(error_of(""), "prescale.yaml:1:1: version: required field is missing");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - kind: builtin/echo\n"),
            "prescale.yaml:3:5: services[0].name: required field is missing");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind:\n"),
            "prescale.yaml:4:5: services[0].kind: required field is missing");
}

TEST(ConfigError, CommandRequiredIffKindCommand) {
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: command\n"),
            R"(prescale.yaml:3:5: services[0].command: required when kind is "command")");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: builtin/echo\n"
                     "    command: [x]\n"),
            R"(prescale.yaml:5:14: services[0].command: only allowed when kind is "command" )"
            R"((kind is "builtin/echo"))");
}

TEST(ConfigError, ModelDirOnlyForModelServices) {
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: builtin/echo\n"
                     "    model_dir: m\n"),
            R"(prescale.yaml:5:16: services[0].model_dir: only allowed for builtin/recommend, )"
            R"(builtin/fraud and builtin/forecast (kind is "builtin/echo"))");
  auto ok = load_config_string(
      "version: 1\nservices:\n  - name: a\n    kind: builtin/echo\n  - name: f\n"
      "    kind: builtin/fraud\n    model_dir: models/fraud\n",
      "prescale.yaml");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->services[1].model_dir, "models/fraud");
  EXPECT_EQ(ok->services[0].line, 3) << "each service remembers where it was written";
  EXPECT_EQ(ok->services[1].line, 5);
}

TEST(ConfigError, ConcurrencyIsNotNegative) {
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: builtin/echo\n"
                     "    concurrency: -1\n"),
            "prescale.yaml:5:18: services[0].concurrency: must be >= 0, got -1");
}

TEST(ConfigTracing, SendsSpansWhereTheFileSays) {
  Result<Config> c = load_config_string(R"(version: 1
tracing:
  otlp_endpoint: http://otel-collector.monitoring:4318
  sample_ratio: 0.05
  headers: {authorization: "Bearer x y", x-scope-orgid: "a,b"}
)");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->tracing.otlp_endpoint, "http://otel-collector.monitoring:4318");
  EXPECT_EQ(c->tracing.sample_ratio, 0.05);
  using Env = std::vector<std::pair<std::string, std::string>>;
  const std::string headers = "authorization=Bearer%20x%20y,x-scope-orgid=a%2Cb";
  EXPECT_EQ(otel_environment(c->tracing),
            (Env{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.monitoring:4318"},
                 {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "http://otel-collector.monitoring:4318/v1/traces"},
                 {"OTEL_TRACES_EXPORTER", "otlp"},
                 {"OTEL_TRACES_SAMPLER", "parentbased_traceidratio"},
                 {"OTEL_TRACES_SAMPLER_ARG", "0.05"},
                 {"OTEL_EXPORTER_OTLP_HEADERS", headers},
                 {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", headers}}));
  // None written: no spans, no variables.
  Result<Config> none = load_config_string("version: 1\n");
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(otel_environment(none->tracing).empty());
  EXPECT_EQ(none->tracing.sample_ratio, 1.0);
}

TEST(ConfigError, TracingNamesWhatIsWrong) {
  EXPECT_EQ(error_of("version: 1\ntracing:\n  otlp_endpoint: grpc://c:4317\n"),
            "prescale.yaml:3:18: tracing.otlp_endpoint: " +
                parse_web_url("grpc://c:4317").error().message +
                " (an OTLP/HTTP receiver's base URL, e.g. http://localhost:4318)");
  // A hosted backend's HTTPS endpoint.
  EXPECT_TRUE(
      load_config_string("version: 1\ntracing:\n  otlp_endpoint: https://otlp.example.com/otlp\n",
                         "prescale.yaml")
          .has_value());
  EXPECT_EQ(error_of("version: 1\ntracing: {otlp_endpoint: \"http://c\", sample_ratio: 2}\n"),
            "prescale.yaml:2:52: tracing.sample_ratio: must be <= 1, got 2");
  EXPECT_EQ(error_of("version: 1\ntracing: {sample_ratio: 0.5}\n"),
            "prescale.yaml:2:25: tracing.sample_ratio: has no effect without "
            "tracing.otlp_endpoint");
  EXPECT_EQ(error_of("version: 1\ntracing:\n  otlp_endpoint: http://c:4318/v1/traces/\n"),
            "prescale.yaml:3:18: tracing.otlp_endpoint: the receiver's base URL, without "
            "/v1/traces: Prescale adds it (as OpenTelemetry's OTEL_EXPORTER_OTLP_ENDPOINT)");
  EXPECT_EQ(error_of("version: 1\ntracing: {otlp_endpoint: \"http://c\", headers: "
                     "{\"bad header\": x}}\n"),
            "prescale.yaml:2:48: tracing.headers.bad header: not a valid HTTP header name");
}

TEST(ConfigError, GatewayTlsNeedsBothFiles) {
  EXPECT_NE(error_of("version: 1\ngateway:\n  tls: {cert_file: a.crt}\n")
                .find("gateway.tls.cert_file: needs key_file beside it"),
            std::string::npos);
  EXPECT_NE(error_of("version: 1\ngateway:\n  tls: {key_file: a.key}\n")
                .find("gateway.tls.key_file: needs cert_file beside it"),
            std::string::npos);
  EXPECT_NE(error_of("version: 1\ngateway:\n  tls: {cert_file: a.crt, key_file: a.key, x: 1}\n")
                .find("gateway.tls"),
            std::string::npos);
  auto both =
      load_config_string("version: 1\ngateway:\n  tls: {cert_file: a.crt, key_file: a.key}\n");
  ASSERT_TRUE(both.has_value()) << both.error().message;
  EXPECT_TRUE(both->gateway.tls.enabled());
  EXPECT_EQ(both->gateway.tls.key_file, "a.key");
}

TEST(ConfigError, QueueLimitIsADurationNotNegative) {
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: builtin/echo\n"
                     "    queue_limit: -150ms\n"),
            R"(prescale.yaml:5:18: services[0].queue_limit: durations cannot be negative, )"
            R"(got "-150ms")");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: builtin/echo\n"
                     "    queue_limit: fast\n"),
            R"(prescale.yaml:5:18: services[0].queue_limit: expected a duration such as )"
            R"("500ms", "60s", "5m" or "1h" (a bare number means seconds), got "fast")");
}

TEST(ConfigError, MalformedYamlReportsItsLine) {
  EXPECT_EQ(error_of("version: 1\nservices: [a, b\nworld: sim\n"),
            "prescale.yaml:3:6: invalid YAML: end of sequence flow not found");
  EXPECT_THAT(error_of("version: 1\n  bad indent: 2\n"), HasSubstr("prescale.yaml:2:"));
}

// A tab in the indentation (YAML indents with spaces) was reported as yaml-cpp words it,
// "illegal block entry" or "illegal map value", which does not say what to change.
TEST(ConfigError, ATabInTheIndentationIsNamed) {
  EXPECT_EQ(error_of("version: 1\nservices:\n\t- name: api\n"),
            "prescale.yaml:3:2: invalid YAML: illegal block entry (a tab indents line 3; YAML "
            "indents with spaces)");
  EXPECT_EQ(error_of("version: 1\npolicy:\n\tname: hpa\n"),
            "prescale.yaml:3:6: invalid YAML: illegal map value (a tab indents line 3; YAML "
            "indents with spaces)");
  // A tab elsewhere is no indentation.
  EXPECT_EQ(error_of("version: 1\nservices: [a,\tb\nworld: sim\n"),
            "prescale.yaml:3:6: invalid YAML: end of sequence flow not found");
}

TEST(ConfigError, OtherRules) {
  EXPECT_EQ(error_of("version: 2\n"),
            "prescale.yaml:1:10: version: unsupported version 2; this Prescale reads version 1");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: Recommend, kind: builtin/echo}\n"),
            "prescale.yaml:3:12: services[0].name: must be 1 to 63 characters of a-z, 0-9 and "
            "\"-\", starting and ending with a letter or digit, got \"Recommend\"");
  EXPECT_EQ(error_of("version: 1\ngateway: {listen: \"localhost:70000\"}\n"),
            R"(prescale.yaml:2:19: gateway.listen: port must be 0..65535, got "70000")");
  EXPECT_EQ(error_of("version: 1\ngateway: {listen: \"8080\"}\n"),
            R"(prescale.yaml:2:19: gateway.listen: must be "host:port" (e.g. "127.0.0.1:8080", )"
            R"("[::]:8080"), got "8080")");
  EXPECT_EQ(error_of("version: 1\ngateway:\n  routes:\n    - {match: {path_prefix: v1}, service: "
                     "a}\n"),
            R"(prescale.yaml:4:29: gateway.routes[0].match.path_prefix: must start with "/", )"
            R"(got "v1")");
  EXPECT_EQ(error_of("version: 1\nversion: 1\n"), "prescale.yaml:2:1: version: duplicate key");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, env: {1X: y}}\n"),
            "prescale.yaml:3:41: services[0].env.1X: not a valid environment variable name "
            "(letters, digits and \"_\", not starting with a digit)");
}

TEST(ConfigError, DuplicateRouteAndDependency) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - {name: a, kind: builtin/echo}
  - {name: b, kind: builtin/echo, depends_on: [a, a]}
)"),
            R"(prescale.yaml:4:51: services[1].depends_on[1]: lists "a" twice)");
  EXPECT_EQ(error_of(R"(version: 1
services:
  - {name: a, kind: builtin/echo}
gateway:
  routes:
    - {match: {path_prefix: /x}, service: a}
    - {match: {path_prefix: /x}, service: a, timeout: 1s}
)"),
            "prescale.yaml:7:7: gateway.routes[1]: same match as routes[0]; only one of them can "
            "receive requests");
}

// A config with one service `a` and the given gateway block, for gateway error tests.
std::string gateway_error(std::string_view gateway_block) {
  return error_of("version: 1\nservices: [{name: a, kind: builtin/echo}]\ngateway:\n" +
                  std::string(gateway_block));
}

TEST(ConfigError, GatewayTopLevel) {
  EXPECT_EQ(gateway_error("  load_balancer: random\n"),
            R"(prescale.yaml:4:18: gateway.load_balancer: must be one of p2c_peak_ewma, )"
            R"(least_request, round_robin; got "random")");
  EXPECT_EQ(gateway_error("  load_balancer_tolerance: 0.5\n"),
            "prescale.yaml:4:28: gateway.load_balancer_tolerance: must be >= 1, got 0.5");
  EXPECT_EQ(gateway_error("  listen: \"local host:80\"\n"),
            R"(prescale.yaml:4:11: gateway.listen: must be "host:port" (e.g. "127.0.0.1:8080", )"
            R"("[::]:8080"), got "local host:80")");
  EXPECT_EQ(gateway_error("  listen: \"[a b]:80\"\n"),
            R"(prescale.yaml:4:11: gateway.listen: must be "host:port" with an IPv6 address in )"
            R"(brackets (e.g. "[::1]:8080"), got "[a b]:80")");
  EXPECT_EQ(gateway_error("  threads: -2\n"),
            "prescale.yaml:4:12: gateway.threads: must be >= 0, got -2");
  EXPECT_EQ(gateway_error("  health_check: {interval: 1s, timeout: 2s}\n"),
            "prescale.yaml:4:41: gateway.health_check.timeout: must be <= interval (1s), got 2s");
  EXPECT_EQ(gateway_error("  health_check: {path: readyz}\n"),
            R"(prescale.yaml:4:24: gateway.health_check.path: must start with "/", got "readyz")");
  EXPECT_EQ(
      gateway_error("  outlier_detection: {base_ejection_time: 1m, max_ejection_time: 30s}\n"),
      "prescale.yaml:4:66: gateway.outlier_detection.max_ejection_time: must be >= "
      "base_ejection_time (1m), got 30s");
  EXPECT_EQ(gateway_error("  outlier_detection: {interval: -1s}\n"),
            R"(prescale.yaml:4:33: gateway.outlier_detection.interval: durations cannot be )"
            R"(negative, got "-1s")");
  EXPECT_EQ(gateway_error("  circuit_breakers: {failure_rate_threshold: 150}\n"),
            "prescale.yaml:4:46: gateway.circuit_breakers.failure_rate_threshold: must be <= 100, "
            "got 150");
  EXPECT_EQ(gateway_error("  circuit_breakers: {max_rquests: 5}\n"),
            R"(prescale.yaml:4:22: gateway.circuit_breakers: unknown key "max_rquests"; )"
            R"(did you mean "max_requests"?)");
  EXPECT_EQ(gateway_error("  retry_budget: {budget_percent: 120}\n"),
            "prescale.yaml:4:34: gateway.retry_budget.budget_percent: must be <= 100, got 120");
}

TEST(ConfigError, GatewayUpstreams) {
  EXPECT_EQ(gateway_error("  upstreams: {pay: [\"10.0.0.1\"]}\n"),
            R"(prescale.yaml:4:21: gateway.upstreams.pay[0]: must be "host:port" )"
            R"((e.g. "10.0.0.7:8080", "[::1]:8080"), got "10.0.0.1")");
  EXPECT_EQ(gateway_error("  upstreams: {pay: [\"10.0.0.1:0\"]}\n"),
            R"(prescale.yaml:4:21: gateway.upstreams.pay[0]: port must be 1..65535, got "0")");
  EXPECT_EQ(gateway_error("  listen: \"[::]:8080\"\n  upstreams: {pay: [\"[::1]:80\", "
                          "\"[fe80::1%eth0]:443\", \"h-1.example:0080\"]}\n"),
            R"(prescale.yaml:5:55: gateway.upstreams.pay[2]: port must be written without )"
            R"(leading zeros, got "0080")");
  EXPECT_EQ(gateway_error("  listen: \"[::]:8080\"\n  upstreams: {pay: [\"[::1]:80\", "
                          "\"[fe80::1%eth0]:443\", \"h-1.example:80\"]}\n"),
            "<loaded without error>");
  // Refused at load, not when the gateway first connects.
  EXPECT_EQ(gateway_error("  upstreams: {pay: [\"[a b]:80\"]}\n"),
            R"(prescale.yaml:4:21: gateway.upstreams.pay[0]: must be "host:port" with an IPv6 )"
            R"(address in brackets (e.g. "[::1]:8080"), got "[a b]:80")");
  EXPECT_EQ(gateway_error("  upstreams: {pay: [\"[fe80::1%]:80\"]}\n"),
            R"(prescale.yaml:4:21: gateway.upstreams.pay[0]: must be "host:port" with an IPv6 )"
            R"(address in brackets (e.g. "[::1]:8080"), got "[fe80::1%]:80")");
  EXPECT_EQ(gateway_error("  upstreams: {pay: [\"h\\x01:80\"]}\n"),
            R"(prescale.yaml:4:21: gateway.upstreams.pay[0]: must be "host:port" )"
            "(e.g. \"10.0.0.7:8080\", \"[::1]:8080\"), got \"h\\u0001:80\"");
  // "h:080" and "h:80" would be one host under two names.
  EXPECT_EQ(gateway_error("  upstreams: {pay: [\"h:80\", \"h:080\"]}\n"),
            R"(prescale.yaml:4:29: gateway.upstreams.pay[1]: port must be written without )"
            R"(leading zeros, got "080")");
  EXPECT_EQ(gateway_error("  upstreams: {pay: [\"h:1\", \"h:1\"]}\n"),
            R"(prescale.yaml:4:28: gateway.upstreams.pay[1]: lists "h:1" twice)");
  EXPECT_EQ(gateway_error("  upstreams: {Pay: [\"h:1\"]}\n"),
            "prescale.yaml:4:15: gateway.upstreams.Pay: must be 1 to 63 characters of a-z, 0-9 "
            "and \"-\", starting and ending with a letter or digit, got \"Pay\"");
}

TEST(ConfigError, GatewayRouteMatch) {
  EXPECT_EQ(gateway_error("  routes: [{match: {path: /x, path_prefix: /y}, service: a}]\n"),
            "prescale.yaml:4:27: gateway.routes[0].match.path: set either path or path_prefix, "
            "not both");
  EXPECT_EQ(gateway_error("  routes: [{match: {path: \"/x/{rest...}/y\"}, service: a}]\n"),
            R"(prescale.yaml:4:27: gateway.routes[0].match.path: a {name...} segment must be )"
            R"(the last one, in "/x/{rest...}/y")");
  EXPECT_EQ(gateway_error("  routes: [{match: {path: \"/x/{id}/{id}\"}, service: a}]\n"),
            R"(prescale.yaml:4:27: gateway.routes[0].match.path: parameter "id" appears twice )"
            R"(in "/x/{id}/{id}")");
  EXPECT_EQ(gateway_error("  routes: [{match: {path: \"/x//y\"}, service: a}]\n"),
            R"(prescale.yaml:4:27: gateway.routes[0].match.path: empty path segment in "/x//y")");
  EXPECT_EQ(gateway_error("  routes: [{match: {path: \"/x{id}\"}, service: a}]\n"),
            R"(prescale.yaml:4:27: gateway.routes[0].match.path: "{" and "}" may only enclose )"
            R"(a whole segment, got "x{id}")");
  EXPECT_EQ(gateway_error("  routes: [{match: {host: \"example.com:8080\"}, service: a}]\n"),
            R"(prescale.yaml:4:27: gateway.routes[0].match.host: must be a host name )"
            R"(("api.example.com"), a wildcard ("*.example.com") or an IP address, without a )"
            R"(port; got "example.com:8080")");
  EXPECT_THAT(gateway_error("  routes: [{match: {host: \"a.*.com\"}, service: a}]\n"),
              HasSubstr("gateway.routes[0].match.host: must be a host name"));
  EXPECT_EQ(gateway_error("  routes: [{match: {headers: {X-Canary: \"1\"}, "
                          "headers_present: [x-canary]}, service: a}]\n"),
            R"(prescale.yaml:4:65: gateway.routes[0].match.headers_present[0]: header )"
            R"("x-canary" is already matched by headers.X-Canary)");
  EXPECT_EQ(gateway_error("  routes: [{match: {headers: {\"x canary\": \"1\"}}, service: a}]\n"),
            R"(prescale.yaml:4:31: gateway.routes[0].match.headers.x canary: not a valid header )"
            R"(name (letters, digits and !#$%&'*+-.^_`|~), got "x canary")");
  // Same requests, spelled differently: host case, header name case, parameter names.
  EXPECT_EQ(gateway_error(R"(  routes:
    - {match: {host: Shop.example.com, path: "/u/{id}", headers: {X-A: "1"}}, service: a}
    - {match: {host: shop.example.com, path: "/u/{name}", headers: {x-a: "1"}}, service: a}
)"),
            "prescale.yaml:6:7: gateway.routes[1]: same match as routes[0]; only one of them "
            "can receive requests");
}

TEST(ConfigError, GatewayRouteRetriesAndLimits) {
  EXPECT_EQ(
      gateway_error("  routes: [{service: a, retries: {retriable_status_codes: [409, 42]}}]\n"),
      "prescale.yaml:4:65: gateway.routes[0].retries.retriable_status_codes[1]: not an "
      "HTTP status code (100..599), got 42");
  EXPECT_EQ(gateway_error("  routes: [{service: a, retries: {retry_on: [5xx, timeout]}}]\n"),
            R"(prescale.yaml:4:51: gateway.routes[0].retries.retry_on[1]: must be one of 5xx, )"
            R"(gateway-error, connect-failure, reset, retriable-status-codes; got "timeout")");
  EXPECT_EQ(
      gateway_error("  routes: [{service: a, retries: {retry_on: [retriable-status-codes]}}]\n"),
      "prescale.yaml:4:45: gateway.routes[0].retries.retry_on: lists "
      "\"retriable-status-codes\" but retriable_status_codes is empty");
  EXPECT_EQ(gateway_error("  routes: [{service: a, retries: 11}]\n"),
            "prescale.yaml:4:34: gateway.routes[0].retries: must be 0..10, got 11");
  EXPECT_EQ(gateway_error("  routes: [{service: a, retries: many}]\n"),
            "prescale.yaml:4:34: gateway.routes[0].retries: expected a number of retries or a "
            "mapping (num_retries, retry_on, ...), got \"many\"");
  EXPECT_EQ(gateway_error("  routes: [{service: a, retries: {num_retry: 2}}]\n"),
            R"(prescale.yaml:4:35: gateway.routes[0].retries: unknown key "num_retry"; )"
            R"(did you mean "num_retries"?)");
  EXPECT_EQ(gateway_error("  routes: [{service: a, timeout: 2s, per_try_timeout: 5s}]\n"),
            "prescale.yaml:4:55: gateway.routes[0].per_try_timeout: must be <= timeout (2s), got "
            "5s");
  EXPECT_EQ(gateway_error("  routes: [{service: a, websocket_idle_timeout: 0s}]\n"),
            "prescale.yaml:4:49: gateway.routes[0].websocket_idle_timeout: must be > 0s, got 0s");
  EXPECT_EQ(gateway_error("  routes: [{service: a, per_try_timeout: -5s}]\n"),
            R"(prescale.yaml:4:42: gateway.routes[0].per_try_timeout: durations cannot be )"
            R"(negative, got "-5s")");
  EXPECT_EQ(
      gateway_error("  routes: [{service: a, rate_limit: {requests_per_second: 5, key: ip}}]\n"),
      R"(prescale.yaml:4:67: gateway.routes[0].rate_limit.key: must be "client_ip" or )"
      R"("header:<name>" (e.g. "header:x-api-key"), got "ip")");
  EXPECT_EQ(gateway_error("  routes: [{service: a, rate_limit: {burst: 5}}]\n"),
            "prescale.yaml:4:45: gateway.routes[0].rate_limit.burst: has no effect without "
            "requests_per_second");
  EXPECT_EQ(gateway_error("  routes: [{service: a, rate_limit: {requests_per_second: -1}}]\n"),
            "prescale.yaml:4:59: gateway.routes[0].rate_limit.requests_per_second: must be >= 0, "
            "got -1");
  EXPECT_EQ(gateway_error("  upstreams: {pay: [\"h:1\"]}\n  routes: [{service: pya}]\n"),
            R"(prescale.yaml:5:22: gateway.routes[0].service: unknown service "pya"; )"
            R"(did you mean "pay"?)");
}

TEST(ConfigError, OneDocumentOnly) {
  EXPECT_EQ(error_of("version: 1\n---\nversion: 1\n"),
            "prescale.yaml:3:1: a config file holds one YAML document, found 2");
  EXPECT_EQ(error_of("version: 1\n---\n---\nversion: 1\n"),
            "prescale.yaml:4:1: a config file holds one YAML document, found 2");
  // A trailing `---` starts an empty document: nothing is hidden after it.
  EXPECT_EQ(error_of("version: 1\n---\n"), "<loaded without error>");
  EXPECT_EQ(error_of("version: 1\n---\n# the end\n"), "<loaded without error>");
}

TEST(ConfigError, CollectsEveryProblem) {
  EXPECT_EQ(error_of(R"(version: 1
world: cloud
http:
  threads: many
  max_connections: 0
services:
  - name: a
    kind: builtin/echo
    replicas: {min: 3, max: 2}
)"),
            "prescale.yaml:2:8: world: must be one of sim, local, kube; got \"cloud\"\n"
            "prescale.yaml:4:12: http.threads: expected an integer, got \"many\"\n"
            "prescale.yaml:5:20: http.max_connections: must be > 0, got 0\n"
            "prescale.yaml:9:29: services[0].replicas.max: must be >= replicas.min (3), got 2");
}

TEST(ConfigError, NeverThrowsOnGarbage) {
  for (std::string_view text :
       {"\t\x01\x02", "[[[[[[[[[[", "{a: b", "- - - -", "*alias", "version: 1\n? [a, b]\n: c\n"}) {
    Result<Config> r = load_config_string(text);
    EXPECT_FALSE(r.has_value()) << text;
  }
  EXPECT_FALSE(load_config_string(std::string(100000, '[')).has_value());
}

// ---- Files ---------------------------------------------------------------------------------

TEST(ConfigFile, ErrorsNameTheFile) {
  const std::filesystem::path path =
      std::filesystem::path(testing::TempDir()) / "config_test_bad_prescale.yaml";
  {
    std::ofstream out(path);
    out << "version: 1\nlogging:\n  level: loud\n";
  }
  Result<Config> r = load_config_file(path.string());
  std::filesystem::remove(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, path.string() +
                                   ":3:10: logging.level: must be one of trace, "
                                   "debug, info, warn, error; got \"loud\"");
}

TEST(ConfigFile, MissingFileIsNotFound) {
  Result<Config> r = load_config_file("/nonexistent/prescale.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("/nonexistent/prescale.yaml"));
}

// ---- Scalars -------------------------------------------------------------------------------

TEST(ConfigScalars, Durations) {
  using internal::parse_duration;
  EXPECT_EQ(parse_duration("60s").value(), 60s);
  EXPECT_EQ(parse_duration("500ms").value(), 500ms);
  EXPECT_EQ(parse_duration("5m").value(), 5min);
  EXPECT_EQ(parse_duration("1h").value(), 1h);
  EXPECT_EQ(parse_duration("1.5s").value(), 1500ms);
  EXPECT_EQ(parse_duration("1h30m").value(), 90min);
  EXPECT_EQ(parse_duration("15").value(), 15s);
  EXPECT_FALSE(parse_duration("").has_value());
  EXPECT_FALSE(parse_duration("s").has_value());
  EXPECT_FALSE(parse_duration("5 s").has_value());
  EXPECT_FALSE(parse_duration("5d").has_value());
  EXPECT_FALSE(parse_duration("-1s").has_value());
  EXPECT_FALSE(parse_duration("0.5ms").has_value());
  EXPECT_FALSE(parse_duration("1e300h").has_value());
  // Within what a nanosecond Clock holds (~292 years) with room to add it to a time point: a
  // century at most. 2,600,000 h (297 years) wrapped to a negative Clock duration.
  EXPECT_EQ(parse_duration("876000h").value(), 876000h);
  EXPECT_EQ(parse_duration("876001h").error(),
            R"(durations are at most a century (876000h), got "876001h")");
  EXPECT_FALSE(parse_duration("2600000h").has_value());
  EXPECT_EQ(internal::format_duration(1500ms), "1500ms");
  EXPECT_EQ(internal::format_duration(120s), "2m");
}

TEST(ConfigScalars, Numbers) {
  EXPECT_EQ(internal::parse_integer("42"), 42);
  EXPECT_EQ(internal::parse_integer("+7"), 7);
  EXPECT_EQ(internal::parse_integer("-3"), -3);
  EXPECT_FALSE(internal::parse_integer("4.0"));
  EXPECT_FALSE(internal::parse_integer("++4"));
  EXPECT_FALSE(internal::parse_integer("0x10"));
  EXPECT_EQ(internal::parse_number("0.001"), 0.001);
  EXPECT_FALSE(internal::parse_number("nan"));
  EXPECT_FALSE(internal::parse_number("inf"));
  EXPECT_FALSE(internal::parse_number(".inf"));
  EXPECT_EQ(internal::parse_bool("true"), true);
  EXPECT_EQ(internal::parse_bool("off"), false);
  EXPECT_FALSE(internal::parse_bool("1"));
}

// "+-30" is not a duration: the "-" after the "+" slipped past the negative check, so a bare
// number read as seconds became a negative duration for every field without a lower bound.
TEST(ConfigError, ASignedBareNumberIsNeverANegativeDuration) {
  EXPECT_FALSE(internal::parse_duration("+-5").has_value());
  EXPECT_FALSE(internal::parse_duration("+-0.5").has_value());
  EXPECT_FALSE(internal::parse_integer("+-4"));  // two signs, like "++4"
  EXPECT_THAT(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, "
                       "startup_time: +-30}\n"),
              HasSubstr("prescale.yaml:3:49: services[0].startup_time: "));
  EXPECT_THAT(error_of("version: 1\nhttp: {shutdown_grace: +-5}\n"),
              HasSubstr("prescale.yaml:2:24: http.shutdown_grace: "));
  EXPECT_THAT(error_of("version: 1\npolicy: {scale_down_delay: +-60}\n"),
              HasSubstr("policy.scale_down_delay: "));
}

// requests_per_second above 2^31 gave burst = static_cast<int>(ceil(rps)): INT_MIN, a bucket
// that never holds a token. The loader must refuse it or keep the burst positive.
TEST(ConfigError, ARateTooLargeForItsOneSecondBurstIsRefusedNotWrapped) {
  Result<Config> r = load_config_string(R"(version: 1
services: [{name: a, kind: builtin/echo}]
gateway:
  routes: [{service: a, rate_limit: {requests_per_second: 3e9}}]
)",
                                        "prescale.yaml");
  if (r.has_value()) {
    EXPECT_GT(r->gateway.routes[0].rate_limit.burst, 0);
  } else {
    EXPECT_THAT(r.error().message, HasSubstr("gateway.routes[0].rate_limit"));
  }
}

// concurrency is an int >= 0 with no upper bound; concurrency + ceil(capacity x limit)
// overflowed to a negative limit, and admission_limits() then dropped the service silently.
TEST(ConfigError, AConcurrencyNearTheIntLimitNeverTurnsAdmissionControlOff) {
  Result<Config> r = load_config_string(
      "version: 1\nservices:\n  - {name: a, kind: builtin/echo, concurrency: 2147483647, "
      "queue_limit: 150ms}\n",
      "prescale.yaml");
  if (r.has_value()) {
    EXPECT_GT(r->services[0].max_requests_per_replica(), 0);
    EXPECT_TRUE(admission_limits(r->services).contains("a"));
  } else {
    EXPECT_THAT(r.error().message, HasSubstr("services[0].concurrency"));
  }
}

// docs/config.md: refilling a whole burst may take at most 1e9 s, "1e-12 is refused". The loader
// took any positive rate, so the file passed every check (prescale up's preflight included) and
// only the gateway refused it later, naming no file or line, and only the first such route.
TEST(ConfigError, ARateLimitTooSlowToRefillItsBurstIsRefusedWithItsLine) {
  EXPECT_EQ(gateway_error("  routes:\n"
                          "    - {service: a, rate_limit: {requests_per_second: 1e-12}}\n"
                          "    - {match: {path_prefix: /b}, service: a,\n"
                          "       rate_limit: {requests_per_second: 1, burst: 2000000000}}\n"),
            "prescale.yaml:5:54: gateway.routes[0].rate_limit.requests_per_second: too low for "
            "a burst of 1: refilling the bucket must take at most 1e9 s (about 31 years), got "
            "1e-12\n"
            "prescale.yaml:7:42: gateway.routes[1].rate_limit.requests_per_second: too low for "
            "a burst of 2000000000: refilling the bucket must take at most 1e9 s (about 31 "
            "years), got 1");
  // One request per 1000 s is a limit, not a mistake; a burst of 1e9 at 1 req/s refills in 1e9 s.
  EXPECT_TRUE(
      load_config_string("version: 1\nservices: [{name: a, kind: builtin/echo}]\n"
                         "gateway:\n  routes:\n"
                         "    - {service: a, rate_limit: {requests_per_second: 0.001}}\n"
                         "    - {match: {path_prefix: /b}, service: a,\n"
                         "       rate_limit: {requests_per_second: 1, burst: 1000000000}}\n"));
}

// The health checker GETs health_check.path on every replica through http::Client, which refuses
// (sends nothing) a target holding a space or a control character. The loader took such a path,
// so every check failed and each replica was taken out of service after unhealthy_threshold
// checks, though every one of them was ready.
TEST(ConfigError, AHealthCheckPathThatCannotBeRequestedIsRefused) {
  EXPECT_EQ(gateway_error("  health_check: {path: \"/ready z\"}\n"),
            R"(prescale.yaml:4:24: gateway.health_check.path: must not hold a space or a control )"
            R"(character (percent-encode it: %20 for a space), got "/ready z")");
  EXPECT_EQ(gateway_error("  health_check: {path: \"/readyz\\t\"}\n"),
            "prescale.yaml:4:24: gateway.health_check.path: must not hold a space or a control "
            "character (percent-encode it: %20 for a space), got \"/readyz\\u0009\"");
  Result<Config> encoded = load_config_string(
      "version: 1\ngateway: {health_check: {path: \"/ready%20z?probe=1\"}}\n", "prescale.yaml");
  ASSERT_TRUE(encoded) << encoded.error().message;
  EXPECT_EQ(encoded->gateway.health_check.path, "/ready%20z?probe=1");
}

// A request target holds no space or control character (RFC 9112 section 3.2; the server refuses
// one), so a route whose path_prefix held one could never match: its requests went to another
// route or were answered 404, with nothing saying why.
TEST(ConfigError, APathPrefixNoRequestCanHoldIsRefused) {
  EXPECT_EQ(
      gateway_error("  routes:\n    - {match: {path_prefix: \"/v1/my orders\"}, service: a}\n"),
      R"(prescale.yaml:5:29: gateway.routes[0].match.path_prefix: must not hold a space or )"
      R"(a control character (percent-encode it: %20 for a space), got "/v1/my orders")");
  EXPECT_EQ(gateway_error("  routes:\n    - {match: {path_prefix: \"/v1\\x7f\"}, service: a}\n"),
            "prescale.yaml:5:29: gateway.routes[0].match.path_prefix: must not hold a space or "
            "a control character (percent-encode it: %20 for a space), got \"/v1\\u007f\"");
  Result<Config> encoded = load_config_string(
      "version: 1\nservices: [{name: a, kind: builtin/echo}]\n"
      "gateway: {routes: [{match: {path_prefix: /v1/my%20orders}, service: a}]}\n",
      "prescale.yaml");
  ASSERT_TRUE(encoded) << encoded.error().message;
  EXPECT_EQ(encoded->gateway.routes[0].match.path_prefix, "/v1/my%20orders");
}

// A whole-path pattern follows the same rule: "/a b/{id}" could never match either.
TEST(ConfigError, APathPatternNoRequestCanHoldIsRefused) {
  EXPECT_EQ(gateway_error("  routes:\n    - {match: {path: \"/my orders/{id}\"}, service: a}\n"),
            R"(prescale.yaml:5:22: gateway.routes[0].match.path: must not hold a space or )"
            R"(a control character (percent-encode it: %20 for a space), got "/my orders/{id}")");
}

TEST(ConfigScalars, Suggestions) {
  const std::vector<std::string> keys = {"min", "max", "initial", "replicas", "latency_p99_ms"};
  EXPECT_EQ(internal::closest_match("replcas", keys), "replicas");
  EXPECT_EQ(internal::closest_match("replicsa", keys), "replicas");  // transposition
  EXPECT_EQ(internal::closest_match("latency_p99", keys), "latency_p99_ms");
  EXPECT_EQ(internal::closest_match("mn", keys), "min");
  EXPECT_FALSE(internal::closest_match("colour", keys));
  EXPECT_EQ(internal::edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace prescale
