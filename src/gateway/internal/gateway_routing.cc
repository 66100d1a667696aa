// Gateway::Impl::build: the Routing of a configuration over the one before it, and publishing it.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/internal/gateway_config.h"
#include "gateway/internal/gateway_impl.h"

namespace prescale::gateway {
namespace {

constexpr std::string_view kExternalCaller = "external";

// Whether `service` keeps its cluster under `config`: the configuration routes to it or lists
// upstreams of it, or it still has endpoints (draining, or a controller's).
bool needs_cluster(const GatewayConfig& config, const EndpointSnapshot& endpoints,
                   std::string_view service) {
  return std::any_of(config.routes.begin(), config.routes.end(),
                     [&](const RouteConfig& r) { return r.service == service; }) ||
         config.upstreams.contains(std::string(service)) || endpoints.find(service) != nullptr;
}

// Versions of published routings come from one process-wide counter, so a thread's cached
// routing of a destroyed Gateway is never taken for one of a new Gateway at the same address.
std::atomic<std::uint64_t> routing_versions{0};

}  // namespace

using internal::cluster_options;
using internal::grpc_health_service;
using internal::health_check_path;
using internal::max_requests_per_replica;
using internal::route_names;
using internal::same_cluster_settings;
using internal::validate;

Result<std::shared_ptr<Gateway::Routing>> Gateway::Impl::build(
    const GatewayConfig& config, const Routing* previous, std::vector<Proxy::RouteId>& reused) {
  if (auto v = validate(config); !v) return std::unexpected(v.error());
  auto table_or = RouteTable::build(config);
  if (!table_or) {
    return make_error(ErrorCode::kInvalidArgument, "gateway." + table_or.error().message);
  }
  auto next = std::make_shared<Routing>(
      Routing{config, std::make_shared<const RouteTable>(std::move(*table_or)), {}, {}, {}, {}});

  // Clusters: kept as they are when their settings did not change (their learned state too);
  // otherwise a new one per service over the same endpoints.
  const ClusterOptions copts = cluster_options(config);
  if (previous != nullptr) {
    std::erase_if(admission_overrides, [&](const auto& entry) {
      return max_requests_per_replica(previous->config, entry.first) !=
             max_requests_per_replica(config, entry.first);
    });
  }
  auto cluster_for = [&](const std::string& service) {
    auto& slot = next->clusters[service];
    if (!slot) {
      ClusterOptions o = copts;
      auto set = admission_overrides.find(service);
      o.max_requests_per_replica = set != admission_overrides.end()
                                       ? set->second
                                       : max_requests_per_replica(config, service);
      o.host.health_check_path = health_check_path(config, service);
      o.host.health_check_http2 = config.http2_upstreams.contains(service);
      o.host.grpc_health_service = grpc_health_service(config, service);
      slot = std::make_shared<Cluster>(service, std::move(o), table, clock);
    }
    return slot;
  };
  if (previous != nullptr) {
    const std::shared_ptr<const EndpointSnapshot> endpoints = table.snapshot();
    for (const auto& [service, c] : previous->clusters) {
      // A service no longer named keeps its cluster only while it has endpoints to drain.
      if (!needs_cluster(config, *endpoints, service)) continue;
      if (same_cluster_settings(previous->config, config, service)) {
        // Kept with its learned state; a new admission limit (the service's queue limit or
        // capacity changed) is set on it once the routing is published.
        next->clusters.emplace(service, c);
      } else {
        cluster_for(service)->adopt_health(*c);
      }
    }
  }
  for (const auto& [service, endpoints] : config.upstreams) cluster_for(service);

  const std::span<const Route> all = next->table->routes();
  next->names = route_names(all);
  next->runtime.resize(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    const Route& route = all[i];
    const std::string& name = next->names[i];
    next->route_services.emplace_back(name, route.service);
    Routing::RouteRuntime& rr = next->runtime[route.index];
    rr.cluster = cluster_for(route.service);
    // The same route (same label) in the previous routing: unchanged, it keeps its proxy route;
    // with the same rate limit, its clients' buckets.
    const Routing::RouteRuntime* before = nullptr;
    const RouteConfig* before_config = nullptr;
    if (previous != nullptr) {
      for (size_t j = 0; j < previous->names.size(); ++j) {
        if (previous->names[j] == name) {
          before = &previous->runtime[j];
          before_config = &previous->config.routes[j];
          break;
        }
      }
    }
    const RouteConfig& rc = config.routes[route.index];
    const bool hold = config.hold_for_replica.contains(route.service);
    const bool http2 = config.http2_upstreams.contains(route.service);
    if (before != nullptr && *before_config == rc && before->cluster == rr.cluster &&
        previous->config.hold_for_replica.contains(route.service) == hold &&
        previous->config.http2_upstreams.contains(route.service) == http2) {
      rr.id = before->id;
      reused.push_back(rr.id);
    } else {
      ProxyRoute pr;
      pr.name = name;
      pr.service = route.service;
      pr.timeout = route.timeout;
      pr.per_try_timeout = route.per_try_timeout;
      pr.websocket_idle_timeout = route.websocket_idle_timeout;
      pr.selector = std::make_shared<RouteSelector>(rr.cluster, route.retry);
      pr.hold_for_upstream = hold;
      pr.upstream_http2 = http2;
      rr.id = proxy.add_route(std::move(pr));
    }
    if (route.rate_limit) {
      if (before != nullptr && before->limiter && before_config->rate_limit == rc.rate_limit) {
        rr.limiter = before->limiter;
      } else {
        KeyedRateLimiterConfig lc;
        lc.bucket = route.rate_limit->bucket;
        rr.limiter = std::make_shared<KeyedRateLimiter>(lc);
      }
    }
    if (rate_limited != nullptr) rr.rate_limited = &rate_limited->with({name});
    if (calls != nullptr) rr.external_calls = &calls->with({kExternalCaller, route.service});
  }
  // What was set while serving goes with a cluster not kept.
  std::erase_if(admission_overrides,
                [&](const auto& entry) { return !next->clusters.contains(entry.first); });
  return next;
}

void Gateway::Impl::set_admission_limits(const Routing& published) {
  for (const auto& [service, cluster] : published.clusters) {
    auto set = admission_overrides.find(service);
    cluster->set_max_requests_per_replica(
        set != admission_overrides.end() ? set->second
                                         : max_requests_per_replica(published.config, service));
  }
}

void Gateway::Impl::drop_unneeded_clusters() {
  const std::shared_ptr<const Routing> now = snapshot();
  const std::shared_ptr<const EndpointSnapshot> endpoints = table.snapshot();
  auto unneeded = [&](const std::string& service) {
    return !needs_cluster(now->config, *endpoints, service);
  };
  if (std::none_of(now->clusters.begin(), now->clusters.end(),
                   [&](const auto& entry) { return unneeded(entry.first); })) {
    return;
  }
  auto next = std::make_shared<Routing>(*now);
  std::erase_if(next->clusters, [&](const auto& entry) {
    if (!unneeded(entry.first)) return false;
    entry.second->supersede();
    return true;
  });
  std::erase_if(admission_overrides,
                [&](const auto& entry) { return !next->clusters.contains(entry.first); });
  publish(std::move(next));
}

void Gateway::Impl::publish(std::shared_ptr<const Routing> next) {
  routing.store(std::move(next), std::memory_order_release);
  routing_version.store(routing_versions.fetch_add(1, std::memory_order_relaxed) + 1,
                        std::memory_order_release);
}

}  // namespace prescale::gateway
