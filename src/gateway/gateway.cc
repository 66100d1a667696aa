#include "gateway/gateway.h"

#include <cstdio>
#include <map>
#include <mutex>
#include <optional>

#include "gateway/cluster.h"
#include "gateway/health_checker.h"
#include "gateway/proxy.h"
#include "gateway/rate_limiter.h"
#include "gateway/route_table.h"
#include "gateway/trace_context.h"
#include "http/client.h"
#include "http/internal/wire.h"
#include "http/json.h"
#include "telemetry/registry.h"

namespace prescale::gateway {
namespace {

constexpr std::string_view kCallerHeader = "x-prescale-caller";
constexpr std::string_view kExternalCaller = "external";

Clock::Duration to_clock(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<Clock::Duration>(d);
}

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

// The service's admission limit per replica in service; 0 = none.
std::uint32_t max_requests_per_replica(const GatewayConfig& c, const std::string& service) {
  auto it = c.max_requests_per_replica.find(service);
  return it != c.max_requests_per_replica.end() && it->second > 0
             ? static_cast<std::uint32_t>(it->second)
             : 0;
}

// The `route` label: host (when the route has one) and path rule, made unique.
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

std::string millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

// Everything the gateway relies on, checked before anything changes; messages name the field
// as the file does (gateway.routes[2].timeout). The config loader checks the same and more,
// with file:line; this guards configs built in code and keeps a bad reload from half applying.
Result<void> validate(const GatewayConfig& c) {
  auto bad = [](const std::string& field, const std::string& what) -> Result<void> {
    return make_error(ErrorCode::kInvalidArgument, "gateway." + field + ": " + what);
  };
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
    if (r.per_try_timeout.count() < 0) {
      return bad(at + "per_try_timeout", "must be >= 0, got " + millis(r.per_try_timeout));
    }
    if (r.retries.num_retries < 0) {
      return bad(at + "retries.num_retries",
                 "must be >= 0, got " + std::to_string(r.retries.num_retries));
    }
    if (r.rate_limit.requests_per_second < 0) {
      return bad(at + "rate_limit.requests_per_second", "must be >= 0");
    }
    if (r.rate_limit.burst < 0) return bad(at + "rate_limit.burst", "must be >= 0");
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
  if (b.window.count() <= 0) return bad("circuit_breakers.window", "must be > 0");
  if (b.open_duration.count() <= 0) return bad("circuit_breakers.open_duration", "must be > 0");
  if (b.half_open_trials < 1) return bad("circuit_breakers.half_open_trials", "must be >= 1");
  const prescale::HealthCheckConfig& h = c.health_check;
  if (!h.path.starts_with('/')) return bad("health_check.path", "must start with \"/\"");
  if (h.interval.count() <= 0) return bad("health_check.interval", "must be > 0");
  if (h.timeout.count() <= 0) return bad("health_check.timeout", "must be > 0");
  if (h.healthy_threshold < 1) return bad("health_check.healthy_threshold", "must be >= 1");
  if (h.unhealthy_threshold < 1) return bad("health_check.unhealthy_threshold", "must be >= 1");
  const prescale::OutlierDetectionConfig& o = c.outlier_detection;
  if (o.interval.count() <= 0) return bad("outlier_detection.interval", "must be > 0");
  if (o.max_ejection_percent < 0 || o.max_ejection_percent > 100) {
    return bad("outlier_detection.max_ejection_percent", "must be 0..100");
  }
  if (c.retry_budget.budget_percent < 0) return bad("retry_budget.budget_percent", "must be >= 0");
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

// Whether `service`'s cluster built for `a` fits `b` as it is. The admission limit is
// compared per service: a new limit for one service leaves the others' learned state alone.
bool same_cluster_settings(const GatewayConfig& a, const GatewayConfig& b,
                           const std::string& service) {
  return a.load_balancer == b.load_balancer &&
         a.load_balancer_tolerance == b.load_balancer_tolerance &&
         a.outlier_detection == b.outlier_detection && a.circuit_breakers == b.circuit_breakers &&
         a.retry_budget == b.retry_budget &&
         max_requests_per_replica(a, service) == max_requests_per_replica(b, service);
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

// Versions of published routings come from one process-wide counter, so a thread's cached
// routing of a destroyed Gateway is never taken for one of a new Gateway at the same address.
std::atomic<std::uint64_t> routing_versions{0};

}  // namespace

// One configuration's routes and the clusters they lead to. Immutable once published: the I/O
// threads read it without a lock (Impl::current()); a reload publishes a new one. A request that
// was routed keeps what it started with: its proxy route holds its selector, which holds its
// cluster.
struct Gateway::Routing {
  struct RouteRuntime {
    Proxy::RouteId id = Proxy::kNoRoute;
    std::shared_ptr<Cluster> cluster;
    std::shared_ptr<KeyedRateLimiter> limiter;  // shared with the next routing when unchanged
    telemetry::Counter* rate_limited = nullptr;
    telemetry::Counter* external_calls = nullptr;  // prescale_calls_total{external, service}
  };

  GatewayConfig config;  // as applied, for the next reload's comparison
  RouteTable table;
  std::vector<RouteRuntime> runtime;  // by Route::index
  std::vector<std::string> names;     // the `route` label, by Route::index
  std::vector<std::pair<std::string, std::string>> route_services;  // route label -> service
  // Every service's cluster: those of the routes and upstreams, and those of earlier
  // configurations (a service no longer named keeps its cluster and endpoints).
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
        proxy(ProxyOptions{.connect_timeout = options.connect_timeout,
                           .registry = options.registry,
                           .service_label = options.service_label}) {}

  GatewayOptions options;
  Clock& clock;
  EndpointTable table;
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
  struct Retired {
    std::weak_ptr<const Routing> routing;
    std::vector<Proxy::RouteId> routes;
  };
  std::vector<Retired> retired;

  std::mutex upkeep_mu;  // one upkeep() at a time; guards health
  std::uint64_t seen_version = 0;
  http::Client health_client;
  std::unique_ptr<HealthChecker> health;

  std::atomic<bool> stopping{false};
  std::thread upkeep_thread;

  // The routing as the data path reads it: a per-thread copy, taken again only when the version
  // moved (libstdc++'s atomic<shared_ptr> load takes a lock; this is one atomic read).
  const Routing& current() const {
    struct Cached {
      const Impl* impl;
      std::uint64_t version;
      std::shared_ptr<const Routing> routing;
    };
    thread_local std::vector<Cached> cache;
    const std::uint64_t version = routing_version.load(std::memory_order_acquire);
    for (Cached& c : cache) {
      if (c.impl != this) continue;
      if (c.version != version) {
        c.routing = routing.load(std::memory_order_acquire);
        c.version = version;
      }
      return *c.routing;
    }
    cache.push_back(Cached{this, version, routing.load(std::memory_order_acquire)});
    return *cache.back().routing;
  }
  std::shared_ptr<const Routing> snapshot() const {
    return routing.load(std::memory_order_acquire);
  }

  // Builds the routing of `config` over `previous` (nullptr at creation); with config_mu held.
  // Changes nothing outside the result and the proxy's route list until publish(), but for
  // dropping the admission_overrides whose service's own limit `config` changes (after every
  // check, so a refused reload keeps them).
  Result<std::shared_ptr<Routing>> build(const GatewayConfig& config, const Routing* previous,
                                         std::vector<Proxy::RouteId>& reused);
  void publish(std::shared_ptr<const Routing> next) {
    routing.store(std::move(next), std::memory_order_release);
    routing_version.store(routing_versions.fetch_add(1, std::memory_order_relaxed) + 1,
                          std::memory_order_release);
  }
  // Static endpoints (gateway.upstreams) of `config` over those of `previous`: new ones are
  // added, ones no longer listed drain. Services not listed keep their endpoints.
  void apply_upstreams(const GatewayConfig& config, const GatewayConfig* previous);
  // With config_mu held.
  void remove_retired_routes() {
    std::erase_if(retired, [this](const Retired& r) {
      if (!r.routing.expired()) return false;
      for (Proxy::RouteId id : r.routes) proxy.remove_route(id);
      return true;
    });
  }
  void set_health_checks(const GatewayConfig& config) {
    if (!options.health_checks) return;
    std::lock_guard lock(upkeep_mu);
    health = std::make_unique<HealthChecker>(health_check_config(config), clock, health_client);
  }
};

Result<std::shared_ptr<Gateway::Routing>> Gateway::Impl::build(
    const GatewayConfig& config, const Routing* previous, std::vector<Proxy::RouteId>& reused) {
  if (auto v = validate(config); !v) return std::unexpected(v.error());
  auto table_or = RouteTable::build(config);
  if (!table_or) {
    return make_error(ErrorCode::kInvalidArgument, "gateway." + table_or.error().message);
  }
  auto next = std::make_shared<Routing>(Routing{config, std::move(*table_or), {}, {}, {}, {}});

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
      slot = std::make_shared<Cluster>(service, std::move(o), table, clock);
    }
    return slot;
  };
  if (previous != nullptr) {
    for (const auto& [service, c] : previous->clusters) {
      if (same_cluster_settings(previous->config, config, service)) {
        next->clusters.emplace(service, c);
      } else {
        cluster_for(service)->adopt_health(*c);
      }
    }
  }
  for (const auto& [service, endpoints] : config.upstreams) cluster_for(service);

  const std::span<const Route> all = next->table.routes();
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
    if (before != nullptr && *before_config == rc && before->cluster == rr.cluster) {
      rr.id = before->id;
      reused.push_back(rr.id);
    } else {
      ProxyRoute pr;
      pr.name = name;
      pr.service = route.service;
      pr.timeout = route.timeout;
      pr.per_try_timeout = route.per_try_timeout;
      pr.selector = std::make_shared<RouteSelector>(rr.cluster, route.retry);
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
  return next;
}

void Gateway::Impl::apply_upstreams(const GatewayConfig& config, const GatewayConfig* previous) {
  for (const auto& [service, endpoints] : config.upstreams) {
    for (const std::string& text : endpoints) {
      if (auto spec = parse_endpoint(text)) (void)table.add_static(service, std::move(*spec));
    }
  }
  if (previous == nullptr) return;
  for (const auto& [service, endpoints] : previous->upstreams) {
    auto now = config.upstreams.find(service);
    if (now == config.upstreams.end()) continue;  // not listed: left as it is
    for (const std::string& text : endpoints) {
      if (std::find(now->second.begin(), now->second.end(), text) == now->second.end()) {
        if (auto spec = parse_endpoint(text)) table.remove(service, spec->id);
      }
    }
  }
}

Result<std::unique_ptr<Gateway>> Gateway::create(const GatewayConfig& config,
                                                 GatewayOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (auto v = validate(config); !v) return std::unexpected(v.error());
  if (auto r = add_upstreams(impl->table, config.upstreams); !r) {
    return std::unexpected(r.error());
  }
  telemetry::Registry* reg = impl->options.registry;
  if (reg != nullptr) {
    impl->rate_limited = &reg->counter("prescale_gateway_rate_limited_total",
                                       "Requests answered 429 by a route's rate limit", {"route"});
    impl->calls = &reg->counter("prescale_calls_total",
                                "Calls from a caller to a service through the gateway "
                                "(caller from the x-prescale-caller header, else \"external\")",
                                {"caller", "callee"});
  }
  std::vector<Proxy::RouteId> reused;
  auto first = impl->build(config, nullptr, reused);
  if (!first) return std::unexpected(first.error());
  impl->publish(std::move(*first));

  if (reg != nullptr) {
    // Endpoint states and resilience counters per service, read at each scrape.
    Impl* raw = impl.get();
    reg->add_collector([raw](std::vector<telemetry::FamilySnapshot>& out) {
      using telemetry::MetricType;
      telemetry::FamilySnapshot endpoints{"prescale_gateway_endpoints",
                                          "Endpoints of an upstream service by state",
                                          MetricType::kGauge,
                                          {"service", "state"},
                                          {}};
      telemetry::FamilySnapshot open{"prescale_gateway_breakers_open",
                                     "Endpoints whose failure-rate breaker is open or half-open",
                                     MetricType::kGauge,
                                     {"service"},
                                     {}};
      telemetry::FamilySnapshot ejections{"prescale_gateway_ejections_total",
                                          "Outlier ejections of an upstream service's endpoints",
                                          MetricType::kCounter,
                                          {"service"},
                                          {}};
      telemetry::FamilySnapshot overflows{
          "prescale_gateway_overflows_total",
          "Attempts refused: no endpoint in service, max_requests, max_connections, "
          "max_pending_requests, the retry budget, or admission control (queue_limit)",
          MetricType::kCounter,
          {"service", "reason"},
          {}};
      telemetry::FamilySnapshot admission{
          "prescale_gateway_admission_limit",
          "Admission control: requests in flight each endpoint in service may have (its "
          "concurrency plus what it starts within the service's queue_limit); 0 = no limit",
          MetricType::kGauge,
          {"service"},
          {}};
      const Clock::TimePoint now = raw->clock.now();
      const std::shared_ptr<const Routing> routing = raw->snapshot();
      for (const auto& [name, c] : routing->clusters) {
        double ready = 0, draining = 0, unhealthy = 0, ejected = 0, breakers = 0;
        const auto view = c->view();
        for (const auto& h : view->hosts.hosts()) {
          if (h->draining()) {
            ++draining;
          } else if (!h->healthy()) {
            ++unhealthy;
          } else if (h->outlier().ejected(now)) {
            ++ejected;
          } else {
            ++ready;
          }
          if (const FailureRateBreaker* b = h->breaker(); b != nullptr && !b->is_accepting(now)) {
            ++breakers;
          }
        }
        endpoints.series.push_back({{name, "ready"}, ready, {}});
        endpoints.series.push_back({{name, "draining"}, draining, {}});
        endpoints.series.push_back({{name, "unhealthy"}, unhealthy, {}});
        endpoints.series.push_back({{name, "ejected"}, ejected, {}});
        open.series.push_back({{name}, breakers, {}});
        const OutlierStats os = c->detector().stats();
        ejections.series.push_back({{name},
                                    static_cast<double>(os.ejections_consecutive_5xx +
                                                        os.ejections_consecutive_gateway_failure +
                                                        os.ejections_success_rate),
                                    {}});
        const Cluster::Stats cs = c->stats();
        overflows.series.push_back({{name, "no_endpoint"}, static_cast<double>(cs.no_host), {}});
        overflows.series.push_back(
            {{name, "max_requests"}, static_cast<double>(cs.limit_overflows), {}});
        overflows.series.push_back(
            {{name, "retry_budget"}, static_cast<double>(cs.budget_overflows), {}});
        overflows.series.push_back(
            {{name, "max_connections"}, static_cast<double>(cs.connection_overflows), {}});
        overflows.series.push_back(
            {{name, "max_pending_requests"}, static_cast<double>(cs.pending_overflows), {}});
        overflows.series.push_back(
            {{name, "admission"}, static_cast<double>(cs.admission_refusals), {}});
        admission.series.push_back(
            {{name}, static_cast<double>(c->max_requests_per_replica()), {}});
      }
      out.push_back(std::move(endpoints));
      out.push_back(std::move(open));
      out.push_back(std::move(ejections));
      out.push_back(std::move(overflows));
      out.push_back(std::move(admission));
    });
  }

  impl->set_health_checks(config);
  impl->seen_version = impl->table.snapshot()->version;
  for (const auto& [name, c] : impl->snapshot()->clusters) c->refresh();
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Result<void> Gateway::reload(const GatewayConfig& config) {
  Impl& g = *impl_;
  std::lock_guard lock(g.config_mu);
  const std::shared_ptr<const Routing> previous = g.snapshot();
  std::vector<Proxy::RouteId> reused;
  auto next = g.build(config, previous.get(), reused);
  if (!next) return std::unexpected(next.error());
  // Valid: from here on nothing fails. Endpoints first, so the new clusters see them.
  g.apply_upstreams(config, &previous->config);
  for (const auto& [name, c] : (*next)->clusters) c->refresh();
  const bool new_health_checks = !(previous->config.health_check == config.health_check);
  g.publish(std::move(*next));
  std::vector<Proxy::RouteId> gone;
  for (const Routing::RouteRuntime& rr : previous->runtime) {
    if (std::find(reused.begin(), reused.end(), rr.id) == reused.end()) gone.push_back(rr.id);
  }
  if (!gone.empty()) g.retired.push_back({previous, std::move(gone)});
  if (new_health_checks) g.set_health_checks(config);
  g.remove_retired_routes();
  return {};
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() {
  stop_upkeep();
  impl_->health.reset();  // waits for probes in flight
}

http::Handler Gateway::handler() {
  return [this](http::Request& request, http::Responder respond) {
    handle(request, std::move(respond));
  };
}

void Gateway::handle(http::Request& request, http::Responder respond) {
  Impl& g = *impl_;
  // Routed and forwarded as the upstream will read it: "/public/../admin" and "/%61dmin" are
  // "/admin", and an absolute-form target ("http://host/x", its host already the Host field)
  // goes on in origin-form.
  auto clean = normalized_path(request.path);
  if (clean) request.path = std::move(*clean);
  if (clean || !request.target.starts_with('/')) {
    request.target = request.query.empty() ? request.path : request.path + "?" + request.query;
  }
  const Routing& routing = g.current();
  const Route* route = routing.table.match(request);
  if (route == nullptr) {
    g.proxy.answer(Proxy::kNoRoute,
                   http::error_response(404, "no_route",
                                        "no route for " + request.method_name + " " +
                                            std::string(request.headers.get("host").value_or("")) +
                                            request.path),
                   std::move(respond));
    return;
  }
  const Routing::RouteRuntime& rr = routing.runtime[route->index];
  if (rr.limiter) {
    const RateLimitDecision d = rr.limiter->check(
        client_key(route->rate_limit->api_key(request), request.remote_address), g.clock.now());
    if (!d.allowed) {
      if (rr.rate_limited != nullptr) rr.rate_limited->inc();
      const int wait = retry_after_seconds(d.retry_after);
      http::Response r =
          http::error_response(429, "rate_limited",
                               "rate limit of route " + route->path_rule + " exceeded; retry in " +
                                   std::to_string(wait) + " s");
      r.headers.set("Retry-After", std::to_string(wait));
      g.proxy.answer(rr.id, std::move(r), std::move(respond));
      return;
    }
  }
  // Trace context: continue the caller's trace (or start one) with a span for this hop.
  {
    const std::optional<std::string_view> parent = request.headers.get("traceparent");
    // Several tracestate fields are one list (RFC 9110 section 5.3, W3C Trace Context section
    // 3.3.1.1): joined, so all of it goes on and its limits (32 members) hold for all of it.
    std::optional<std::string_view> state;
    std::string joined;
    for (const auto& [name, value] : request.headers.fields()) {
      if (!http::internal::iequals(name, "tracestate")) continue;
      if (!state) {
        state = value;
        continue;
      }
      if (joined.empty()) joined.assign(*state);
      joined += ',';
      joined += value;
      state = joined;
    }
    UpstreamTrace t = propagate(parent, state, /*sample_new_trace=*/false);
    std::string tracestate(t.tracestate);  // a copy: it points into the headers changed below
    request.headers.set("traceparent", std::move(t.traceparent));
    if (tracestate.empty()) {
      request.headers.remove("tracestate");
    } else {
      request.headers.set("tracestate", std::move(tracestate));
    }
  }
  // Per-edge call counts, for the controller's topology learner. Only known services name a
  // caller (a header must not create unbounded series).
  if (g.calls != nullptr) {
    const auto caller = request.headers.get(kCallerHeader);
    if (caller && routing.clusters.contains(*caller)) {
      g.calls->with({*caller, std::string_view(route->service)}).inc();
    } else if (rr.external_calls != nullptr) {
      rr.external_calls->inc();
    }
  }
  g.proxy.forward(rr.id, request, std::move(respond));
}

Result<void> Gateway::set_endpoints(std::string_view service, std::vector<EndpointSpec> endpoints) {
  std::lock_guard lock(impl_->config_mu);
  Cluster* c = impl_->snapshot()->find(service);
  if (c == nullptr) {
    return make_error(ErrorCode::kNotFound, "gateway: no route or upstream names service \"" +
                                                std::string(service) + "\"");
  }
  if (auto r = impl_->table.set(service, std::move(endpoints)); !r) return r;
  c->refresh();
  return {};
}

Result<void> Gateway::add_endpoint(std::string_view service, EndpointSpec endpoint) {
  std::lock_guard lock(impl_->config_mu);
  Cluster* c = impl_->snapshot()->find(service);
  if (c == nullptr) {
    return make_error(ErrorCode::kNotFound, "gateway: no route or upstream names service \"" +
                                                std::string(service) + "\"");
  }
  if (auto r = impl_->table.add(service, std::move(endpoint)); !r) return r;
  c->refresh();
  return {};
}

bool Gateway::remove_endpoint(std::string_view service, std::string_view id) {
  std::lock_guard lock(impl_->config_mu);
  Cluster* c = impl_->snapshot()->find(service);
  if (c == nullptr || !impl_->table.remove(service, id)) return false;
  c->refresh();
  return true;
}

void Gateway::upkeep() {
  Impl& g = *impl_;
  {
    std::lock_guard lock(g.config_mu);
    g.remove_retired_routes();
  }
  std::lock_guard lock(g.upkeep_mu);
  const std::shared_ptr<const Routing> routing = g.snapshot();
  g.table.reap();
  if (const std::uint64_t v = g.table.snapshot()->version; v != g.seen_version) {
    g.seen_version = v;
    for (const auto& [name, c] : routing->clusters) c->refresh();
  }
  std::vector<std::shared_ptr<UpstreamHost>> hosts;
  for (const auto& [name, c] : routing->clusters) {
    c->evaluate_outliers();
    for (auto& h : c->hosts()) hosts.push_back(std::move(h));
  }
  if (g.health) {
    g.health->set_hosts(hosts);
    g.health->tick();
  }
}

void Gateway::start_upkeep() {
  Impl& g = *impl_;
  if (g.upkeep_thread.joinable()) return;
  g.stopping = false;
  g.upkeep_thread = std::thread([this] {
    Impl& s = *impl_;
    while (!s.stopping.load()) {
      upkeep();
      s.clock.sleep_until(s.clock.now() + to_clock(s.options.upkeep_interval));
    }
  });
}

void Gateway::stop_upkeep() {
  Impl& g = *impl_;
  g.stopping = true;
  if (g.upkeep_thread.joinable()) g.upkeep_thread.join();
}

const Cluster* Gateway::cluster(std::string_view service) const {
  return impl_->snapshot()->find(service);
}

Result<void> Gateway::set_max_requests_per_replica(std::string_view service, std::uint32_t n) {
  std::lock_guard lock(impl_->config_mu);
  Cluster* c = impl_->snapshot()->find(service);
  if (c == nullptr) {
    return make_error(ErrorCode::kNotFound, "gateway: no route or upstream names service \"" +
                                                std::string(service) + "\"");
  }
  c->set_max_requests_per_replica(n);
  impl_->admission_overrides.insert_or_assign(std::string(service), n);
  return {};
}

std::vector<std::pair<std::string, std::string>> Gateway::route_services() const {
  return impl_->snapshot()->route_services;
}

std::vector<std::string> Gateway::services() const {
  std::vector<std::string> out;
  for (const auto& [name, c] : impl_->snapshot()->clusters) out.push_back(name);
  return out;
}

std::size_t Gateway::route_count() const { return impl_->snapshot()->runtime.size(); }

}  // namespace prescale::gateway
