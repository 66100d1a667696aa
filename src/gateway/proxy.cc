#include "gateway/proxy.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "gateway/internal/grpc_reply.h"
#include "gateway/internal/proxy_core.h"
#include "gateway/internal/proxy_thread.h"
#include "http/internal/io_thread.h"
#include "http/json.h"
#include "telemetry/registry.h"

namespace prescale::gateway {

struct Proxy::Impl : internal::ProxyCore {
  using ProxyCore::ProxyCore;
};

using internal::Call;
using internal::ProxyCore;
using internal::RouteState;
using internal::ThreadState;

namespace {

constexpr std::string_view kUnmatchedRoute = "unmatched";

thread_local struct {
  uint64_t proxy_id = 0;
  uint64_t io_thread_id = 0;
  ThreadState* state = nullptr;
} tls_thread_state;

std::atomic<uint64_t> next_proxy_id{1};

}  // namespace

void UpstreamSelector::report(const http::Request&, const AttemptReport&) {}

RetryDecision UpstreamSelector::retry(const http::Request&, const AttemptReport& report) {
  return RetryDecision{.retry = report.attempt == 0 && !report.cancelled &&
                                report.outcome.error == UpstreamError::kConnectFailure};
}

bool UpstreamSelector::retries_status(int) const { return false; }

RoundRobinSelector::RoundRobinSelector(std::vector<std::pair<std::string, uint16_t>> endpoints)
    : endpoints_(std::move(endpoints)) {}

UpstreamSelection RoundRobinSelector::select(const http::Request&, int,
                                             const UpstreamPick* previous) {
  if (endpoints_.empty()) return std::unexpected(NoPick{});
  // Each thread rotates on its own, from a start of its own: no shared counter to contend on.
  thread_local uint64_t next = std::hash<std::thread::id>()(std::this_thread::get_id());
  const uint64_t i = (previous != nullptr ? previous->tag + 1 : next++) % endpoints_.size();
  const auto& [host, port] = endpoints_[i];
  return UpstreamPick{.host = host, .port = port, .tag = i, .context = nullptr};
}

ProxyCore::ProxyCore(ProxyOptions o)
    : options(std::move(o)), id(next_proxy_id.fetch_add(1, std::memory_order_relaxed)) {
  options.max_attempts = std::max(options.max_attempts, 1);
  telemetry::Registry* registry = options.registry;
  if (registry == nullptr) return;
  // The same families, help texts and labels as the service runtime's (runtime.cc): the
  // gateway follows the metrics contract of ARCHITECTURE.md.
  requests =
      &registry->counter("prescale_requests_total", "Requests handled, by route and status code.",
                         {"service", "route", "code"});
  durations =
      &registry->histogram("prescale_request_duration_seconds",
                           "Time from request read to response handed to the server, by route.",
                           {"service", "route"}, telemetry::default_latency_buckets());
  upstream_requests = &registry->counter(
      "prescale_gateway_upstream_requests_total",
      "Attempts at upstream endpoints by route, endpoint and outcome: the HTTP status, or "
      "connect_failed, connect_timeout, reset, malformed, timeout, cancelled.",
      {"route", "upstream", "code"});
  upstream_durations = &registry->histogram(
      "prescale_gateway_upstream_request_duration_seconds",
      "Time of one attempt at an upstream endpoint, connecting included, by route and endpoint.",
      {"route", "upstream"}, telemetry::default_latency_buckets());
  retries = &registry->counter("prescale_gateway_retries_total",
                               "Attempts after the first, by route.", {"route"});
  held = &registry->gauge("prescale_gateway_held_requests",
                          "Requests waiting now for a replica of a service scaled to zero, by "
                          "route.",
                          {"route"});
  held_total = &registry->counter(
      "prescale_gateway_held_requests_total",
      "Requests that waited for a replica of a service scaled to zero, by route and how the wait "
      "ended: sent, timed_out, superseded, refused, cancelled.",
      {"route", "outcome"});
  hold_durations = &registry->histogram(
      "prescale_gateway_hold_duration_seconds",
      "How long the requests sent on waited for a replica of a service scaled to zero, by route.",
      {"route"}, {0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60});

  std::weak_ptr<Threads> weak = threads;
  const std::string service = options.service_label;
  registry->add_collector(
      [weak, service](std::vector<telemetry::FamilySnapshot>& out) {
        auto t = weak.lock();
        if (!t) return;
        Proxy::Stats s;
        // Per route name (a reload may replace a route by another of the same name).
        std::map<std::string, internal::RouteLoad::Reading> load;
        {
          std::lock_guard lock(t->mu);
          const Clock::TimePoint at = internal::now();
          for (const auto& [name, slots] : t->loads) {
            auto& sum = load[name];
            for (const auto& slot : *slots) {
              const auto r = slot.read(at);
              sum.inflight += r.inflight;
              sum.busy_ns += r.busy_ns;
            }
          }
          for (const auto& ts : t->states) {
            const auto p = ts->pool().stats();
            s.inflight += ts->inflight().get();
            s.connections_opened += p.connections_opened;
            s.reused += p.reused;
            s.idle_connections += p.idle;
            s.active_connections += p.active;
          }
        }
        auto family = [&](std::string name, std::string help, telemetry::MetricType type) {
          telemetry::FamilySnapshot f;
          f.name = std::move(name);
          f.help = std::move(help);
          f.type = type;
          return f;
        };
        auto inflight = family("prescale_inflight_requests", "Requests being handled now.",
                               telemetry::MetricType::kGauge);
        inflight.label_names = {"service"};
        inflight.series.push_back(
            {.label_values = {service}, .value = static_cast<double>(s.inflight), .histogram = {}});
        out.push_back(std::move(inflight));
        auto route_inflight = family("prescale_gateway_route_inflight_requests",
                                     "Requests being proxied now, by route.",
                                     telemetry::MetricType::kGauge);
        auto busy = family("prescale_gateway_route_busy_seconds_total",
                           "Seconds requests have spent in the gateway, by route, those still in "
                           "flight counted up to now: its rate is the route's mean number of "
                           "requests in flight (its concurrency).",
                           telemetry::MetricType::kCounter);
        route_inflight.label_names = busy.label_names = {"route"};
        for (const auto& [name, r] : load) {
          route_inflight.series.push_back({.label_values = {name},
                                           .value = static_cast<double>(std::max<int64_t>(
                                               r.inflight, 0)),
                                           .histogram = {}});
          busy.series.push_back({.label_values = {name},
                                 .value = static_cast<double>(r.busy_ns) * 1e-9,
                                 .histogram = {}});
        }
        out.push_back(std::move(route_inflight));
        out.push_back(std::move(busy));
        auto conns = family("prescale_gateway_upstream_connections",
                            "Upstream connections now: idle in the pools, or active (connecting "
                            "or running a request).",
                            telemetry::MetricType::kGauge);
        conns.label_names = {"state"};
        conns.series.push_back({.label_values = {"active"},
                                .value = static_cast<double>(s.active_connections),
                                .histogram = {}});
        conns.series.push_back({.label_values = {"idle"},
                                .value = static_cast<double>(s.idle_connections),
                                .histogram = {}});
        out.push_back(std::move(conns));
        auto opened =
            family("prescale_gateway_upstream_connections_opened_total",
                   "Upstream TCP connections established.", telemetry::MetricType::kCounter);
        opened.series.push_back({.label_values = {},
                                 .value = static_cast<double>(s.connections_opened),
                                 .histogram = {}});
        out.push_back(std::move(opened));
        auto reused = family("prescale_gateway_upstream_connections_reused_total",
                             "Attempts sent on a pooled (kept-alive) upstream connection.",
                             telemetry::MetricType::kCounter);
        reused.series.push_back(
            {.label_values = {}, .value = static_cast<double>(s.reused), .histogram = {}});
        out.push_back(std::move(reused));
      },
      "gateway_proxy_" + std::to_string(id));
}

std::chrono::milliseconds ProxyCore::timeout_resolution() const {
  std::lock_guard lock(routes_mu);
  return timeout_resolution(routes);
}

std::chrono::milliseconds ProxyCore::timeout_resolution(
    const std::vector<std::shared_ptr<RouteState>>& of_routes) const {
  // As the server's sweep: 1/8 of the shortest timeout, between 5 and 250 ms.
  std::chrono::milliseconds shortest = std::min(options.connect_timeout, options.idle_timeout);
  for (const auto& r : of_routes) {
    if (!r) continue;
    shortest = std::min({shortest, r->route.timeout, r->route.websocket_idle_timeout});
    if (r->route.per_try_timeout.count() > 0) {
      shortest = std::min(shortest, r->route.per_try_timeout);
    }
  }
  return std::clamp<std::chrono::milliseconds>(shortest / 8, std::chrono::milliseconds(5),
                                               std::chrono::milliseconds(250));
}

ThreadState* ProxyCore::thread_state() {
  http::internal::IoThread* io = http::internal::current_io_thread();
  if (io == nullptr) return nullptr;
  auto& cache = tls_thread_state;
  if (cache.proxy_id == id && cache.io_thread_id == io->id()) return cache.state;
  ThreadState* state = nullptr;
  bool created = false;
  {
    std::lock_guard lock(threads->mu);
    for (const auto& ts : threads->states) {
      if (ts->io_thread_id() == io->id()) state = ts.get();
    }
    if (state == nullptr) {
      threads->states.push_back(std::make_shared<ThreadState>(*this, *io));
      state = threads->states.back().get();
      created = true;
    }
  }
  if (created) io->on_stop([state] { state->stop(); });
  cache = {id, io->id(), state};
  return state;
}

Proxy::Proxy(ProxyOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Proxy::~Proxy() = default;

Proxy::RouteId Proxy::add_route(ProxyRoute route) {
  if (!route.selector) throw std::invalid_argument("proxy route " + route.name + ": no selector");
  if (route.timeout.count() <= 0) {
    throw std::invalid_argument("proxy route " + route.name + ": timeout must be > 0");
  }
  auto state = std::make_shared<RouteState>();
  state->route = std::move(route);
  state->service_label = impl_->options.service_label;
  if (impl_->requests != nullptr) {
    state->requests = impl_->requests;
    state->duration = &impl_->durations->with({state->service_label, state->route.name});
    state->retries = &impl_->retries->with({state->route.name});
    if (state->route.hold_for_upstream) {
      internal::HoldSeries& hold = state->hold;
      hold.held = &impl_->held->with({state->route.name});
      for (size_t i = 0; i < internal::kHoldOutcomes; ++i) {
        const auto outcome = static_cast<internal::HoldOutcome>(i);
        hold.by_outcome[i] =
            &impl_->held_total->with({state->route.name, std::string(to_string(outcome))});
      }
      hold.duration = &impl_->hold_durations->with({state->route.name});
    }
  }
  {
    // Not under routes_mu: a thread's first call holds threads->mu while making its
    // ThreadState, which takes routes_mu.
    std::lock_guard threads_lock(impl_->threads->mu);
    auto& load = impl_->threads->loads[state->route.name];
    if (!load) load = std::make_shared<internal::RouteLoads>();
    state->load = load;
  }
  std::lock_guard lock(impl_->routes_mu);
  if (impl_->routes.size() >= kNoRoute) throw std::length_error("proxy: too many routes");
  state->index = impl_->routes.size();
  impl_->routes.push_back(std::move(state));
  impl_->routes_version.fetch_add(1, std::memory_order_release);
  return static_cast<RouteId>(impl_->routes.size() - 1);
}

bool Proxy::remove_route(RouteId route) {
  std::lock_guard lock(impl_->routes_mu);
  if (route >= impl_->routes.size() || !impl_->routes[route]) return false;
  impl_->routes[route].reset();
  impl_->routes_version.fetch_add(1, std::memory_order_release);
  return true;
}

void Proxy::forward(RouteId route, http::Request& request, http::Responder respond) {
  Impl& p = *impl_;
  ThreadState* ts = p.thread_state();
  RouteState* state = ts != nullptr ? ts->begin_call(route) : nullptr;
  if (state == nullptr) {
    respond(http::error_response(
        500, "internal",
        ts == nullptr ? "the proxy runs only on server I/O threads" : "unknown proxy route"));
    return;
  }
  Call& c = ts->acquire();
  c.route = state;
  if (ts->stopped()) {
    ts->release(c);
    respond(http::error_response(503, "shutting_down", "the gateway is shutting down"));
    return;
  }
  c.req = &request;
  c.respond = std::move(respond);
  c.started = internal::now();
  c.route_deadline = c.started + c.route->route.timeout;
  // A gRPC call's own deadline (its grpc-timeout), when sooner, as Envoy takes it. Compared
  // before it is added: 8 digits of hours would overflow the clock.
  c.grpc_timeout.reset();
  if (const auto timeout = request.headers.get("grpc-timeout");
      timeout && internal::is_grpc_request(request)) {
    if (const auto d = internal::parse_grpc_timeout(*timeout); d && *d < c.route->route.timeout) {
      c.grpc_timeout = *d;
      c.route_deadline = c.started + *d;
    }
  }
  c.attempt = 0;
  c.body_stream = nullptr;
  c.body_stream_read = false;
  c.client_gone = false;
  c.held = false;
  c.request_id.clear();
  ts->inflight().add(1);
  (*state->load)[ts->load_slot()].change(c.started, +1);
  request.on_client_gone = [&c] { c.ts_.proxy().client_gone(c); };
  p.start_attempt(c);
}

void Proxy::answer(RouteId route, http::Response response, http::Responder respond) {
  Impl& p = *impl_;
  std::shared_ptr<RouteState> state;
  if (route != kNoRoute) {
    if (ThreadState* ts = p.thread_state(); ts != nullptr) {
      if (const auto* r = ts->route(route)) state = *r;
    } else {
      std::lock_guard lock(p.routes_mu);
      if (route < p.routes.size()) state = p.routes[route];
    }
  }
  if (state) {
    state->count(response.status);
  } else if (p.requests != nullptr) {
    p.requests->with({p.options.service_label, kUnmatchedRoute, std::to_string(response.status)})
        .inc();
  }
  respond(std::move(response));
}

Proxy::Stats Proxy::stats() const {
  Stats s;
  std::lock_guard lock(impl_->threads->mu);
  for (const auto& ts : impl_->threads->states) {
    const auto p = ts->pool().stats();
    s.inflight += ts->inflight().get();
    s.connections_opened += p.connections_opened;
    s.reused += p.reused;
    s.stale_retries += p.stale_retries;
    s.idle_connections += p.idle;
    s.active_connections += p.active;
  }
  return s;
}

}  // namespace prescale::gateway
