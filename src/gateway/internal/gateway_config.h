// Internal: what a GatewayConfig means to the gateway's parts: the checks a configuration must
// pass before anything changes, the options of its clusters and health checks, and the `route`
// labels of its routes. Configuration time only. Not public API.
//
// Thread safety: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/result.h"
#include "gateway/cluster.h"
#include "gateway/health_checker.h"
#include "gateway/route_table.h"

namespace prescale::gateway::internal {

inline Clock::Duration to_clock(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<Clock::Duration>(d);
}

// Everything the gateway relies on, checked before anything changes; messages name the field
// as the file does (gateway.routes[2].timeout). The config loader checks the same and more,
// with file:line; this guards configs built in code and keeps a bad reload from half applying.
Result<void> validate(const GatewayConfig& c);

ClusterOptions cluster_options(const GatewayConfig& c);
HealthCheckConfig health_check_config(const GatewayConfig& c);

// The service's admission limit per replica in service; 0 = none.
std::uint32_t max_requests_per_replica(const GatewayConfig& c, const std::string& service);
// Where the service's hosts are health-checked (GatewayConfig::health_check_paths); "" = the
// gateway's health_check.path.
std::string health_check_path(const GatewayConfig& c, const std::string& service);
// What the service's hosts' gRPC health checks ask about (GatewayConfig::grpc_health_checks);
// nullopt = they are not checked over gRPC.
std::optional<std::string> grpc_health_service(const GatewayConfig& c, const std::string& service);

// Whether `service`'s cluster built for `a` fits `b` as it is, with its learned state. The
// admission limit is not compared: a cluster takes a new one in place.
bool same_cluster_settings(const GatewayConfig& a, const GatewayConfig& b,
                           const std::string& service);

// The `route` label: host (when the route has one) and path rule, made unique.
std::vector<std::string> route_names(std::span<const Route> routes);

}  // namespace prescale::gateway::internal
