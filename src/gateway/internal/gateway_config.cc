#include "gateway/internal/gateway_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <utility>
#include <vector>

#include "core/internal/config_rules.h"
#include "gateway/endpoint_table.h"
#include "gateway/rate_limiter.h"

namespace prescale::gateway::internal {
namespace {

// A duration as prescale.yaml writes one ("150ms"): these messages name a setting of that file.
// (Messages about requests write format_millis()'s "150 ms".)
std::string millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

// The longest duration the gateway takes, as the file loader (a century). It counts time in
// Clock's int64 nanoseconds, which end at ~292 years: beyond, a duration would wrap round to a
// negative one, and "practically never" would become "at once". Checked again here for configs
// built in code and handed to create() or reload().
constexpr std::chrono::hours kMaxDuration{24 * 365 * 100};

}  // namespace

ClusterOptions cluster_options(const GatewayConfig& c) {
  ClusterOptions o;
  switch (c.load_balancer) {
    case LoadBalancerKind::kP2cPeakEwma:
      o.balancer.policy = BalancerPolicy::kPeakEwma;
      break;
    case LoadBalancerKind::kLeastRequest:
      o.balancer.policy = BalancerPolicy::kLeastRequest;
      break;
    case LoadBalancerKind::kRoundRobin:
      o.balancer.policy = BalancerPolicy::kRoundRobin;
      break;
  }
  o.balancer.tolerance = c.load_balancer_tolerance;
  const CircuitBreakerConfig& b = c.circuit_breakers;
  FailureRateBreakerConfig breaker;
  breaker.window = to_clock(b.window);
  breaker.minimum_requests = static_cast<std::uint32_t>(b.minimum_requests);
  breaker.failure_rate_threshold_percent = b.failure_rate_threshold;
  breaker.slow_call_duration = to_clock(b.slow_call_duration);
  breaker.slow_call_rate_threshold_percent = b.slow_call_rate_threshold;
  breaker.open_duration = to_clock(b.open_duration);
  breaker.half_open_trials = static_cast<std::uint32_t>(b.half_open_trials);
  o.host.breaker = breaker;
  o.limits.max_connections = static_cast<std::uint32_t>(b.max_connections);
  o.limits.max_pending_requests = static_cast<std::uint32_t>(b.max_pending_requests);
  o.limits.max_requests = static_cast<std::uint32_t>(b.max_requests);
  o.limits.max_retries = static_cast<std::uint32_t>(b.max_retries);
  const auto& od = c.outlier_detection;
  o.outlier.consecutive_5xx = static_cast<std::uint32_t>(od.consecutive_5xx);
  o.outlier.consecutive_gateway_failure =
      static_cast<std::uint32_t>(od.consecutive_gateway_failure);
  o.outlier.interval = to_clock(od.interval);
  o.outlier.base_ejection_time = to_clock(od.base_ejection_time);
  o.outlier.max_ejection_time = to_clock(od.max_ejection_time);
  o.outlier.max_ejection_percent = od.max_ejection_percent;
  o.retry_budget.budget_percent = c.retry_budget.budget_percent;
  o.retry_budget.min_retry_concurrency =
      static_cast<std::uint32_t>(c.retry_budget.min_retry_concurrency);
  return o;
}

std::uint32_t max_requests_per_replica(const GatewayConfig& c, const std::string& service) {
  auto it = c.max_requests_per_replica.find(service);
  return it != c.max_requests_per_replica.end() && it->second > 0
             ? static_cast<std::uint32_t>(it->second)
             : 0;
}

std::vector<std::string> route_names(std::span<const Route> routes) {
  std::vector<std::string> names;
  std::map<std::string, int> seen;
  for (const Route& r : routes) {
    std::string name = r.host + r.path_rule;
    if (int n = ++seen[name]; n > 1) name += "#" + std::to_string(n);
    names.push_back(std::move(name));
  }
  return names;
}

Result<void> validate(const GatewayConfig& c) {
  auto bad = [](const std::string& field, const std::string& what) -> Result<void> {
    return make_error(ErrorCode::kInvalidArgument, "gateway." + field + ": " + what);
  };
  std::vector<std::pair<std::string, std::chrono::milliseconds>> durations = {
      {"circuit_breakers.slow_call_duration", c.circuit_breakers.slow_call_duration},
      {"circuit_breakers.window", c.circuit_breakers.window},
      {"circuit_breakers.open_duration", c.circuit_breakers.open_duration},
      {"health_check.interval", c.health_check.interval},
      {"health_check.timeout", c.health_check.timeout},
      {"outlier_detection.interval", c.outlier_detection.interval},
      {"outlier_detection.base_ejection_time", c.outlier_detection.base_ejection_time},
      {"outlier_detection.max_ejection_time", c.outlier_detection.max_ejection_time},
  };
  for (size_t i = 0; i < c.routes.size(); ++i) {
    const std::string at = "routes[" + std::to_string(i) + "].";
    durations.emplace_back(at + "timeout", c.routes[i].timeout);
    durations.emplace_back(at + "per_try_timeout", c.routes[i].per_try_timeout);
    durations.emplace_back(at + "websocket_idle_timeout", c.routes[i].websocket_idle_timeout);
  }
  for (const auto& [field, d] : durations) {
    if (d > kMaxDuration) return bad(field, "must be <= 876000h (100 years), got " + millis(d));
  }
  if (!(c.load_balancer_tolerance >= 1.0)) {
    char got[32];
    std::snprintf(got, sizeof got, "%g", c.load_balancer_tolerance);
    return bad("load_balancer_tolerance", std::string("must be >= 1, got ") + got);
  }
  for (size_t i = 0; i < c.routes.size(); ++i) {
    const RouteConfig& r = c.routes[i];
    const std::string at = "routes[" + std::to_string(i) + "].";
    if (r.service.empty()) return bad(at + "service", "must name a service");
    if (r.timeout.count() <= 0) return bad(at + "timeout", "must be > 0, got " + millis(r.timeout));
    if (r.websocket_idle_timeout.count() <= 0) {
      return bad(at + "websocket_idle_timeout",
                 "must be > 0, got " + millis(r.websocket_idle_timeout));
    }
    if (r.per_try_timeout.count() < 0) {
      return bad(at + "per_try_timeout", "must be >= 0, got " + millis(r.per_try_timeout));
    }
    if (r.per_try_timeout > r.timeout) {
      return bad(at + "per_try_timeout", "must be <= timeout (" + millis(r.timeout) + "), got " +
                                             millis(r.per_try_timeout));
    }
    if (r.retries.num_retries < 0) {
      return bad(at + "retries.num_retries",
                 "must be >= 0, got " + std::to_string(r.retries.num_retries));
    }
    if (r.retries.num_retries > 10) {
      return bad(at + "retries.num_retries",
                 "must be 0..10, got " + std::to_string(r.retries.num_retries));
    }
    for (size_t k = 0; k < r.retries.retriable_status_codes.size(); ++k) {
      if (const int code = r.retries.retriable_status_codes[k]; code < 100 || code > 599) {
        return bad(at + "retries.retriable_status_codes[" + std::to_string(k) + "]",
                   "must be an HTTP status (100..599), got " + std::to_string(code));
      }
    }
    if (!(r.rate_limit.requests_per_second >= 0)) {
      return bad(at + "rate_limit.requests_per_second", "must be >= 0");
    }
    if (r.rate_limit.burst < 0) return bad(at + "rate_limit.burst", "must be >= 0");
    if (const double rps = r.rate_limit.requests_per_second; rps > 0) {
      // The bucket the route table builds: an unset burst is one second's worth.
      const double burst =
          r.rate_limit.burst > 0 ? r.rate_limit.burst : std::max(1.0, std::ceil(rps));
      if (!validate(TokenBucketConfig{.rate_per_second = rps, .burst = burst})) {
        char got[64];
        std::snprintf(got, sizeof got, "%g for a burst of %g", rps, burst);
        return bad(at + "rate_limit.requests_per_second",
                   std::string("too low: refilling the bucket must take at most 1e9 s (about 31 "
                               "years), got ") +
                       got);
      }
    }
  }
  for (const auto& [service, endpoints] : c.upstreams) {
    for (size_t k = 0; k < endpoints.size(); ++k) {
      if (auto e = parse_endpoint(endpoints[k]); !e) {
        return bad("upstreams." + service + "[" + std::to_string(k) + "]", e.error().message);
      }
    }
  }
  const CircuitBreakerConfig& b = c.circuit_breakers;
  if (b.max_connections < 1) return bad("circuit_breakers.max_connections", "must be >= 1");
  if (b.max_pending_requests < 1) {
    return bad("circuit_breakers.max_pending_requests", "must be >= 1");
  }
  if (b.max_requests < 1) return bad("circuit_breakers.max_requests", "must be >= 1");
  if (b.max_retries < 0) return bad("circuit_breakers.max_retries", "must be >= 0");
  for (const auto& [field, percent] :
       {std::pair{"failure_rate_threshold", b.failure_rate_threshold},
        std::pair{"slow_call_rate_threshold", b.slow_call_rate_threshold}}) {
    if (!(percent > 0 && percent <= 100)) {
      char got[32];
      std::snprintf(got, sizeof got, "%g", percent);
      return bad(std::string("circuit_breakers.") + field,
                 std::string("must be in (0, 100], got ") + got);
    }
  }
  if (b.slow_call_duration.count() <= 0) {
    return bad("circuit_breakers.slow_call_duration", "must be > 0");
  }
  if (b.minimum_requests < 1) return bad("circuit_breakers.minimum_requests", "must be >= 1");
  if (b.window.count() <= 0) return bad("circuit_breakers.window", "must be > 0");
  if (b.open_duration.count() <= 0) return bad("circuit_breakers.open_duration", "must be > 0");
  if (b.half_open_trials < 1) return bad("circuit_breakers.half_open_trials", "must be >= 1");
  const prescale::HealthCheckConfig& h = c.health_check;
  if (std::string problem = prescale::internal::request_path_problem(h.path); !problem.empty()) {
    return bad("health_check.path", problem);
  }
  for (const auto& [service, path] : c.health_check_paths) {
    if (std::string problem = prescale::internal::request_path_problem(path); !problem.empty()) {
      return bad("health_check_paths." + service, problem);
    }
  }
  for (const auto& [service, name] : c.grpc_health_checks) {
    if (!c.http2_upstreams.contains(service)) {
      return bad("grpc_health_checks." + service,
                 "the service is not in http2_upstreams (gRPC's health checks go over HTTP/2)");
    }
    if (std::string problem = prescale::internal::grpc_health_service_problem(name);
        !problem.empty()) {
      return bad("grpc_health_checks." + service, problem);
    }
  }
  if (h.interval.count() <= 0) return bad("health_check.interval", "must be > 0");
  if (h.timeout.count() <= 0) return bad("health_check.timeout", "must be > 0");
  if (h.timeout > h.interval) {
    return bad("health_check.timeout",
               "must be <= interval (" + millis(h.interval) + "), got " + millis(h.timeout));
  }
  if (h.healthy_threshold < 1) return bad("health_check.healthy_threshold", "must be >= 1");
  if (h.unhealthy_threshold < 1) return bad("health_check.unhealthy_threshold", "must be >= 1");
  const prescale::OutlierDetectionConfig& o = c.outlier_detection;
  if (o.consecutive_5xx < 0) return bad("outlier_detection.consecutive_5xx", "must be >= 0");
  if (o.consecutive_gateway_failure < 0) {
    return bad("outlier_detection.consecutive_gateway_failure", "must be >= 0");
  }
  if (o.interval.count() <= 0) return bad("outlier_detection.interval", "must be > 0");
  if (o.base_ejection_time.count() <= 0) {
    return bad("outlier_detection.base_ejection_time", "must be > 0");
  }
  if (o.max_ejection_time < o.base_ejection_time) {
    return bad("outlier_detection.max_ejection_time", "must be >= base_ejection_time (" +
                                                          millis(o.base_ejection_time) + "), got " +
                                                          millis(o.max_ejection_time));
  }
  if (o.max_ejection_percent < 0 || o.max_ejection_percent > 100) {
    return bad("outlier_detection.max_ejection_percent", "must be 0..100");
  }
  if (!(c.retry_budget.budget_percent >= 0 && c.retry_budget.budget_percent <= 100)) {
    return bad("retry_budget.budget_percent", "must be 0..100");
  }
  if (c.retry_budget.min_retry_concurrency < 0) {
    return bad("retry_budget.min_retry_concurrency", "must be >= 0");
  }
  for (const auto& [service, n] : c.max_requests_per_replica) {
    if (n < 0) {
      return bad("max_requests_per_replica." + service, "must be >= 0, got " + std::to_string(n));
    }
  }
  return {};
}

bool same_cluster_settings(const GatewayConfig& a, const GatewayConfig& b,
                           const std::string& service) {
  return a.load_balancer == b.load_balancer &&
         a.load_balancer_tolerance == b.load_balancer_tolerance &&
         a.outlier_detection == b.outlier_detection && a.circuit_breakers == b.circuit_breakers &&
         a.retry_budget == b.retry_budget &&
         health_check_path(a, service) == health_check_path(b, service) &&
         a.http2_upstreams.contains(service) == b.http2_upstreams.contains(service) &&
         grpc_health_service(a, service) == grpc_health_service(b, service);
}

std::string health_check_path(const GatewayConfig& c, const std::string& service) {
  auto it = c.health_check_paths.find(service);
  return it != c.health_check_paths.end() ? it->second : std::string();
}

std::optional<std::string> grpc_health_service(const GatewayConfig& c, const std::string& service) {
  auto it = c.grpc_health_checks.find(service);
  if (it == c.grpc_health_checks.end()) return std::nullopt;
  return it->second;
}

HealthCheckConfig health_check_config(const GatewayConfig& c) {
  HealthCheckConfig hc;
  hc.path = c.health_check.path;
  hc.interval = to_clock(c.health_check.interval);
  hc.timeout = to_clock(c.health_check.timeout);
  hc.healthy_threshold = static_cast<std::uint32_t>(c.health_check.healthy_threshold);
  hc.unhealthy_threshold = static_cast<std::uint32_t>(c.health_check.unhealthy_threshold);
  return hc;
}

}  // namespace prescale::gateway::internal
