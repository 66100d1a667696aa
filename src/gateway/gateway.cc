#include "gateway/gateway.h"

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
  o.outlier.consecutive_gateway_failure = static_cast<std::uint32_t>(od.consecutive_gateway_failure);
  o.outlier.interval = to_clock(od.interval);
  o.outlier.base_ejection_time = to_clock(od.base_ejection_time);
  o.outlier.max_ejection_time = to_clock(od.max_ejection_time);
  o.outlier.max_ejection_percent = od.max_ejection_percent;
  o.retry_budget.budget_percent = c.retry_budget.budget_percent;
  o.retry_budget.min_retry_concurrency =
      static_cast<std::uint32_t>(c.retry_budget.min_retry_concurrency);
  return o;
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

}  // namespace

struct Gateway::Impl {
  std::vector<std::pair<std::string, std::string>> route_services;  // route label -> service
  struct RouteRuntime {
    Proxy::RouteId id = Proxy::kNoRoute;
    std::shared_ptr<Cluster> cluster;
    std::unique_ptr<KeyedRateLimiter> limiter;
    telemetry::Counter* rate_limited = nullptr;
    telemetry::Counter* external_calls = nullptr;  // prescale_calls_total{external, service}
  };

  Impl(const GatewayConfig& c, GatewayOptions o, RouteTable r)
      : config(c),
        options(std::move(o)),
        clock(*options.clock),
        table(clock, options.drain_timeout),
        routes(std::move(r)),
        proxy(ProxyOptions{.connect_timeout = options.connect_timeout,
                           .registry = options.registry,
                           .service_label = options.service_label}) {}

  GatewayConfig config;
  GatewayOptions options;
  Clock& clock;
  EndpointTable table;
  std::map<std::string, std::shared_ptr<Cluster>, std::less<>> clusters;
  RouteTable routes;
  Proxy proxy;
  std::vector<RouteRuntime> route_runtime;  // by Route::index
  telemetry::CounterFamily* calls = nullptr;

  std::mutex upkeep_mu;  // one upkeep() at a time
  std::uint64_t seen_version = 0;
  http::Client health_client;
  std::unique_ptr<HealthChecker> health;

  std::atomic<bool> stopping{false};
  std::thread upkeep_thread;

  Cluster* find(std::string_view service) {
    auto it = clusters.find(service);
    return it == clusters.end() ? nullptr : it->second.get();
  }
  void refresh_clusters() {
    for (auto& [name, c] : clusters) c->refresh();
  }
};

Result<std::unique_ptr<Gateway>> Gateway::create(const GatewayConfig& config,
                                                 GatewayOptions options) {
  auto routes = RouteTable::build(config);
  if (!routes) return std::unexpected(routes.error());
  auto impl = std::make_unique<Impl>(config, std::move(options), std::move(*routes));
  if (auto r = add_upstreams(impl->table, config.upstreams); !r) {
    return std::unexpected(r.error());
  }
  const ClusterOptions copts = cluster_options(config);
  auto cluster_for = [&](const std::string& service) {
    auto& slot = impl->clusters[service];
    if (!slot) slot = std::make_shared<Cluster>(service, copts, impl->table, impl->clock);
    return slot;
  };
  for (const auto& [service, endpoints] : config.upstreams) cluster_for(service);

  telemetry::Registry* reg = impl->options.registry;
  telemetry::CounterFamily* rate_limited = nullptr;
  if (reg != nullptr) {
    rate_limited = &reg->counter("prescale_gateway_rate_limited_total",
                                 "Requests answered 429 by a route's rate limit", {"route"});
    impl->calls = &reg->counter("prescale_calls_total",
                                "Calls from a caller to a service through the gateway "
                                "(caller from the x-prescale-caller header, else \"external\")",
                                {"caller", "callee"});
  }
  const std::span<const Route> all = impl->routes.routes();
  const std::vector<std::string> names = route_names(all);
  impl->route_runtime.resize(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    const Route& route = all[i];
    impl->route_services.emplace_back(names[i], route.service);
    Impl::RouteRuntime& rr = impl->route_runtime[route.index];
    rr.cluster = cluster_for(route.service);
    ProxyRoute pr;
    pr.name = names[i];
    pr.service = route.service;
    pr.timeout = route.timeout;
    pr.per_try_timeout = route.per_try_timeout;
    pr.selector = std::make_shared<RouteSelector>(rr.cluster, route.retry);
    rr.id = impl->proxy.add_route(std::move(pr));
    if (route.rate_limit) {
      KeyedRateLimiterConfig lc;
      lc.bucket = route.rate_limit->bucket;
      rr.limiter = std::make_unique<KeyedRateLimiter>(lc);
    }
    if (rate_limited != nullptr) rr.rate_limited = &rate_limited->with({names[i]});
    if (impl->calls != nullptr) rr.external_calls = &impl->calls->with({kExternalCaller, route.service});
  }

  if (reg != nullptr) {
    // Endpoint states and resilience counters per service, read at each scrape.
    Impl* raw = impl.get();
    reg->add_collector([raw](std::vector<telemetry::FamilySnapshot>& out) {
      using telemetry::MetricType;
      telemetry::FamilySnapshot endpoints{"prescale_gateway_endpoints",
                                          "Endpoints of an upstream service by state",
                                          MetricType::kGauge, {"service", "state"}, {}};
      telemetry::FamilySnapshot open{"prescale_gateway_breakers_open",
                                     "Endpoints whose failure-rate breaker is open or half-open",
                                     MetricType::kGauge, {"service"}, {}};
      telemetry::FamilySnapshot ejections{"prescale_gateway_ejections_total",
                                          "Outlier ejections of an upstream service's endpoints",
                                          MetricType::kCounter, {"service"}, {}};
      telemetry::FamilySnapshot overflows{
          "prescale_gateway_overflows_total",
          "Attempts refused: no endpoint in service, max_requests, or the retry budget",
          MetricType::kCounter, {"service", "reason"}, {}};
      const Clock::TimePoint now = raw->clock.now();
      for (const auto& [name, c] : raw->clusters) {
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
      }
      out.push_back(std::move(endpoints));
      out.push_back(std::move(open));
      out.push_back(std::move(ejections));
      out.push_back(std::move(overflows));
    });
  }

  if (impl->options.health_checks) {
    gateway::HealthCheckConfig hc;
    hc.path = config.health_check.path;
    hc.interval = to_clock(config.health_check.interval);
    hc.timeout = to_clock(config.health_check.timeout);
    hc.healthy_threshold = static_cast<std::uint32_t>(config.health_check.healthy_threshold);
    hc.unhealthy_threshold = static_cast<std::uint32_t>(config.health_check.unhealthy_threshold);
    impl->health = std::make_unique<HealthChecker>(hc, impl->clock, impl->health_client);
  }
  impl->seen_version = impl->table.snapshot()->version;
  impl->refresh_clusters();
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
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
  const Route* route = g.routes.match(request);
  if (route == nullptr) {
    g.proxy.answer(Proxy::kNoRoute,
                   http::error_response(404, "no_route",
                                        "no route for " + request.method_name + " " +
                                            std::string(request.headers.get("host").value_or("")) +
                                            request.path),
                   std::move(respond));
    return;
  }
  Impl::RouteRuntime& rr = g.route_runtime[route->index];
  if (rr.limiter) {
    const RateLimitDecision d = rr.limiter->check(
        client_key(route->rate_limit->api_key(request), request.remote_address), g.clock.now());
    if (!d.allowed) {
      if (rr.rate_limited != nullptr) rr.rate_limited->inc();
      const int wait = retry_after_seconds(d.retry_after);
      http::Response r = http::error_response(
          429, "rate_limited",
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
    const std::optional<std::string_view> state = request.headers.get("tracestate");
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
    if (caller && g.clusters.contains(*caller)) {
      g.calls->with({*caller, std::string_view(route->service)}).inc();
    } else if (rr.external_calls != nullptr) {
      rr.external_calls->inc();
    }
  }
  g.proxy.forward(rr.id, request, std::move(respond));
}

Result<void> Gateway::set_endpoints(std::string_view service, std::vector<EndpointSpec> endpoints) {
  Cluster* c = impl_->find(service);
  if (c == nullptr) {
    return make_error(ErrorCode::kNotFound, "gateway: no route or upstream names service \"" +
                                                std::string(service) + "\"");
  }
  if (auto r = impl_->table.set(service, std::move(endpoints)); !r) return r;
  c->refresh();
  return {};
}

Result<void> Gateway::add_endpoint(std::string_view service, EndpointSpec endpoint) {
  Cluster* c = impl_->find(service);
  if (c == nullptr) {
    return make_error(ErrorCode::kNotFound, "gateway: no route or upstream names service \"" +
                                                std::string(service) + "\"");
  }
  if (auto r = impl_->table.add(service, std::move(endpoint)); !r) return r;
  c->refresh();
  return {};
}

bool Gateway::remove_endpoint(std::string_view service, std::string_view id) {
  Cluster* c = impl_->find(service);
  if (c == nullptr || !impl_->table.remove(service, id)) return false;
  c->refresh();
  return true;
}

void Gateway::upkeep() {
  Impl& g = *impl_;
  std::lock_guard lock(g.upkeep_mu);
  g.table.reap();
  if (const std::uint64_t v = g.table.snapshot()->version; v != g.seen_version) {
    g.seen_version = v;
    g.refresh_clusters();
  }
  std::vector<std::shared_ptr<UpstreamHost>> hosts;
  for (auto& [name, c] : g.clusters) {
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

const Cluster* Gateway::cluster(std::string_view service) const { return impl_->find(service); }

std::vector<std::pair<std::string, std::string>> Gateway::route_services() const {
  return impl_->route_services;
}

std::vector<std::string> Gateway::services() const {
  std::vector<std::string> out;
  for (const auto& [name, c] : impl_->clusters) out.push_back(name);
  return out;
}

}  // namespace prescale::gateway
