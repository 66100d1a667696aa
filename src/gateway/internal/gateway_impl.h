// Internal: the state behind a Gateway (gateway.h): the published Routing of one configuration
// and Gateway::Impl, which builds, publishes and retires routings. Building is in
// gateway_routing.cc, the clusters' metrics in gateway_metrics.cc, the rest of the Gateway in
// gateway.cc. Not public API.
//
// Thread safety: as Gateway's.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/result.h"
#include "gateway/cluster.h"
#include "gateway/endpoint_table.h"
#include "gateway/gateway.h"
#include "gateway/health_checker.h"
#include "gateway/internal/gateway_config.h"
#include "gateway/internal/thread_cached.h"
#include "gateway/proxy.h"
#include "gateway/rate_limiter.h"
#include "gateway/route_table.h"
#include "http/client.h"
#include "telemetry/registry.h"

namespace prescale::gateway {

// One configuration's routes and the clusters they lead to. Immutable once published: the I/O
// threads read it without a lock (Impl::current()); a reload publishes a new one, and so does the
// upkeep when it drops a cluster no longer needed (a copy without it). A request that was routed
// keeps what it started with: its proxy route holds its selector, which holds its cluster.
struct Gateway::Routing {
  struct RouteRuntime {
    Proxy::RouteId id = Proxy::kNoRoute;
    std::shared_ptr<Cluster> cluster;
    std::shared_ptr<KeyedRateLimiter> limiter;  // shared with the next routing when unchanged
    telemetry::Counter* rate_limited = nullptr;
    telemetry::Counter* external_calls = nullptr;  // prescale_calls_total{external, service}
  };

  GatewayConfig config;  // as applied, for the next reload's comparison
  std::shared_ptr<const RouteTable> table;  // shared by the copies the upkeep makes
  std::vector<RouteRuntime> runtime;  // by Route::index
  std::vector<std::string> names;     // the `route` label, by Route::index
  std::vector<std::pair<std::string, std::string>> route_services;  // route label -> service
  // Every service's cluster: those of the routes and upstreams, and those of earlier
  // configurations' services that still have endpoints (a service no longer named keeps its
  // cluster while its endpoints drain, or while a controller lists some for it).
  std::map<std::string, std::shared_ptr<Cluster>, std::less<>> clusters;

  Cluster* find(std::string_view service) const {
    auto it = clusters.find(service);
    return it == clusters.end() ? nullptr : it->second.get();
  }
};

struct Gateway::Impl {
  explicit Impl(GatewayOptions o)
      : options(std::move(o)),
        clock(*options.clock),
        table(clock, options.drain_timeout),
        dns(table, options.resolve),
        proxy(ProxyOptions{.connect_timeout = options.connect_timeout,
                           .registry = options.registry,
                           .service_label = options.service_label,
                           .on_hold = options.on_hold}) {}

  GatewayOptions options;
  Clock& clock;
  EndpointTable table;
  // gateway.upstreams: addresses, and the addresses of names (config_mu for follow()).
  DnsUpstreams dns;
  Proxy proxy;
  telemetry::CounterFamily* calls = nullptr;
  telemetry::CounterFamily* rate_limited = nullptr;

  // Writers (reload, endpoint changes) one at a time, so an endpoint change never lands on a
  // cluster that a concurrent reload is replacing.
  std::mutex config_mu;
  // Admission limits set while serving (set_max_requests_per_replica), by service (config_mu):
  // a cluster a reload renews starts from them, until the file's own limit for the service
  // changes.
  std::map<std::string, std::uint32_t, std::less<>> admission_overrides;
  std::atomic<std::shared_ptr<const Routing>> routing;
  std::atomic<std::uint64_t> routing_version{0};
  // Proxy routes of earlier routings, removed once no thread holds that routing (config_mu).
  // Watched through its route table, which the copies the upkeep publishes share: a thread may
  // still hold the routing a copy was made of.
  struct Retired {
    std::weak_ptr<const RouteTable> routing;
    std::vector<Proxy::RouteId> routes;
  };
  std::vector<Retired> retired;

  std::mutex upkeep_mu;  // one upkeep() at a time; guards health
  std::uint64_t seen_version = 0;
  http::Client health_client;
  // For the services that speak HTTP/2 only (GatewayConfig::http2_upstreams), made with the first.
  std::unique_ptr<http::Client> health_client_h2;
  std::unique_ptr<HealthChecker> health;

  std::atomic<bool> stopping{false};
  std::thread upkeep_thread;
  std::thread dns_thread;
  std::mutex dns_mu;                      // one refresh_dns() at a time; guards dns_problems
  std::vector<std::string> dns_problems;  // the last refresh's, reported when they change

  // The routing as the data path reads it: a per-thread copy, taken again only when the version
  // moved.
  const Routing& current() const {
    return internal::thread_cached<Routing>(
        this, routing_version, [this] { return routing.load(std::memory_order_acquire); });
  }
  std::shared_ptr<const Routing> snapshot() const {
    return routing.load(std::memory_order_acquire);
  }

  // Builds the routing of `config` over `previous` (nullptr at creation); with config_mu held.
  // Changes nothing outside the result and the proxy's route list until publish(), but for
  // dropping the admission_overrides whose service's own limit `config` changes or whose
  // cluster it does not keep (after every check, so a refused reload keeps them). A cluster kept
  // from `previous` keeps its admission limit until set_admission_limits() after publish().
  Result<std::shared_ptr<Routing>> build(const GatewayConfig& config, const Routing* previous,
                                         std::vector<Proxy::RouteId>& reused);
  // Puts each cluster of `published` at its service's admission limit: the override set while
  // serving, or `published`'s config's.
  void set_admission_limits(const Routing& published);
  // Makes `next` the routing of every new request.
  void publish(std::shared_ptr<const Routing> next);
  // Publishes the routing without the clusters of services that neither its configuration
  // names nor have endpoints left (a removed service's, once drained), with their admission
  // overrides: a name named again starts afresh. With config_mu held.
  void drop_unneeded_clusters();
  // With config_mu held.
  void remove_retired_routes() {
    std::erase_if(retired, [this](const Retired& r) {
      if (!r.routing.expired()) return false;
      for (Proxy::RouteId id : r.routes) proxy.remove_route(id);
      return true;
    });
  }
  // The endpoint, breaker, ejection, overflow and admission families of every service's
  // cluster, read at each scrape.
  void collect_cluster_metrics(std::vector<telemetry::FamilySnapshot>& out) const;
  void set_health_checks(const GatewayConfig& config) {
    if (!options.health_checks) return;
    std::lock_guard lock(upkeep_mu);
    if (!config.http2_upstreams.empty() && !health_client_h2) {
      health_client_h2 = std::make_unique<http::Client>(http::ClientOptions{.http2 = true});
    }
    health = std::make_unique<HealthChecker>(internal::health_check_config(config), clock,
                                             health_client, HealthChecker::StateChange{},
                                             health_client_h2.get());
  }
};

}  // namespace prescale::gateway
