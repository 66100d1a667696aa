#include "gateway/gateway.h"

#include <algorithm>
#include <optional>

#include "gateway/internal/gateway_config.h"
#include "gateway/internal/gateway_impl.h"
#include "gateway/internal/grpc_reply.h"
#include "http/json.h"
#include "http/request_body.h"
#include "telemetry/trace_context.h"
#include "telemetry/tracing.h"

namespace prescale::gateway {
namespace {

constexpr std::string_view kCallerHeader = "x-prescale-caller";

}  // namespace

using internal::to_clock;
using internal::validate;

Result<std::unique_ptr<Gateway>> Gateway::create(const GatewayConfig& config,
                                                 GatewayOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (auto v = validate(config); !v) return std::unexpected(v.error());
  impl->dns.follow(config.upstreams);  // every entry parses: validate() said so
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
    const Impl* raw = impl.get();
    reg->add_collector(
        [raw](std::vector<telemetry::FamilySnapshot>& out) { raw->collect_cluster_metrics(out); });
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
  // New entries are added, ones no longer listed drain; services not listed keep theirs.
  // (build() kept a service no longer named only if it has endpoints.)
  g.dns.follow(config.upstreams);
  for (const auto& [name, c] : (*next)->clusters) c->refresh();
  // A service that turns HTTP/2-only needs the checker's HTTP/2 client, made with it.
  const bool new_health_checks =
      !(previous->config.health_check == config.health_check) ||
      (previous->config.http2_upstreams.empty() && !config.http2_upstreams.empty());
  const std::shared_ptr<const Routing> published = *next;
  g.publish(std::move(*next));
  for (const auto& [service, c] : previous->clusters) {
    if (published->find(service) != c.get()) c->supersede();
  }
  g.set_admission_limits(*published);
  std::vector<Proxy::RouteId> gone;
  for (const Routing::RouteRuntime& rr : previous->runtime) {
    if (std::find(reused.begin(), reused.end(), rr.id) == reused.end()) gone.push_back(rr.id);
  }
  if (!gone.empty()) g.retired.push_back({previous->table, std::move(gone)});
  if (new_health_checks) g.set_health_checks(config);
  g.remove_retired_routes();
  return {};
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {

// The gateway's span of a request the tracer samples, ended when it is answered; `t` carries
// the sampling decision upstream.
void trace(telemetry::Tracer& tracer, telemetry::UpstreamTrace& t, const http::Request& request,
           const Route& route, http::Responder& respond) {
  auto span = tracer.server_span(t, request.method_name, route.path_rule);
  if (!span) return;
  span->attribute("http.request.method", request.method_name);
  span->attribute("url.path", request.path);
  span->attribute("http.route", route.path_rule);
  span->attribute("client.address", request.remote_address);
  span->attribute("prescale.service", route.service);
  if (auto caller = request.headers.get(kCallerHeader)) {
    span->attribute("prescale.caller", std::string(*caller));
  }
  respond = telemetry::ending(std::move(*span), std::move(respond));
}

}  // namespace

Gateway::~Gateway() {
  stop_upkeep();
  impl_->health.reset();  // waits for probes in flight
}

http::Handler Gateway::handler() {
  return [this](http::Request& request, http::Responder respond) {
    handle(request, std::move(respond));
  };
}

std::function<bool(const http::Request&)> Gateway::request_body_streaming() {
  return [this](const http::Request& request) { return streams_request_body(request); };
}

bool Gateway::streams_request_body(const http::Request& request) {
  if (!internal::is_grpc_request(request)) return false;
  const Routing& routing = impl_->current();
  const auto clean = normalized_path(request.path);
  const Route* route =
      routing.table->match(request.headers.get("host").value_or(""),
                           clean ? std::string_view(*clean) : request.path, request.headers);
  return route != nullptr && routing.config.http2_upstreams.contains(route->service);
}

namespace {

// What a body streamed to a route that reads bodies whole may hold (a reload between the
// request's head and its handling made the route another's): the server's default
// max_body_bytes.
constexpr size_t kMaxGatheredBody = size_t{4} << 20;

// Reads a streamed request body whole into request.body, then hands the request on to `then`.
class BodyGatherer : public std::enable_shared_from_this<BodyGatherer> {
 public:
  using Then = std::function<void(http::Request&, http::Responder)>;
  BodyGatherer(http::Request& request, http::Responder respond, Then then)
      : request_(request), respond_(std::move(respond)), then_(std::move(then)) {}

  // Keeps itself alive until the body is in (or refused).
  void start() {
    self_ = shared_from_this();
    request_.body_stream->set_on_readable([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->pump();
    });
    pump();
  }

 private:
  void pump() {
    const std::shared_ptr<http::RequestBody> body = request_.body_stream;
    if (body == nullptr) return;           // handed on already
    const auto keep = shared_from_this();  // done() lets go of it
    for (;;) {
      switch (body->read(request_.body)) {
        case http::RequestBody::Read::kData:
          if (request_.body.size() <= kMaxGatheredBody) continue;
          body->discard();
          done();
          respond_(http::error_response(
              413, "body_too_large",
              "request body exceeds the limit of " + std::to_string(kMaxGatheredBody) + " bytes"));
          return;
        case http::RequestBody::Read::kWait:
          return;
        case http::RequestBody::Read::kEnd:
          done();
          then_(request_, std::move(respond_));
          return;
        case http::RequestBody::Read::kAborted:
          done();
          respond_(http::error_response(400, "bad_request", "the client reset its stream"));
          return;
      }
    }
  }
  void done() {
    // The callback holds no reference to this; dropping it ends the gatherer's life.
    auto body = std::exchange(request_.body_stream, nullptr);
    body->set_on_readable(nullptr);
    self_.reset();
  }

  http::Request& request_;
  http::Responder respond_;
  Then then_;
  std::shared_ptr<BodyGatherer> self_;  // set while it waits for the body
};

}  // namespace

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
  // One routing from here to the proxy: the route decides whether a streamed body goes on.
  const Routing& routing = g.current();
  const Route* route = routing.table->match(request);
  // Streamed by the server for a route that reads bodies whole (a reload since its head made it
  // another's): read whole first, then handled as any other request.
  if (request.body_stream != nullptr && route != nullptr &&
      !routing.config.http2_upstreams.contains(route->service)) {
    std::make_shared<BodyGatherer>(
        request, std::move(respond),
        [this](http::Request& r, http::Responder then) { handle(r, std::move(then)); })
        ->start();
    return;
  }
  // A gRPC client reads grpc-status: the gateway's own answers, and an upstream's that are not
  // gRPC, reach it as gRPC answers (their status counted and traced as they were).
  if (internal::is_grpc_request(request)) {
    respond = http::Responder([inner = std::move(respond)](http::Response r) {
      internal::to_grpc_answer(r);
      inner(std::move(r));
    });
  }
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
  // Trace context: continue the caller's trace (or start one) with a span for this hop. Several
  // tracestate fields are one list (RFC 9110 section 5.3, W3C Trace Context section 3.3.1.1):
  // joined, so all of it goes on and its limits (32 members) hold for all of it.
  {
    std::string joined;
    telemetry::UpstreamTrace t = telemetry::continue_trace(request.headers, joined);
    if (g.options.tracer != nullptr) trace(*g.options.tracer, t, request, *route, respond);
    telemetry::set_trace_headers(request.headers, std::move(t));
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
    g.table.reap();
    g.drop_unneeded_clusters();
  }
  std::lock_guard lock(g.upkeep_mu);
  const std::shared_ptr<const Routing> routing = g.snapshot();
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
  // Lookups block, so they have a thread of their own; it wakes on the upkeep's rhythm to see
  // whether it is stopping or due.
  g.dns_thread = std::thread([this] {
    Impl& s = *impl_;
    Clock::TimePoint due{};
    while (!s.stopping.load()) {
      if (s.clock.now() >= due) {
        refresh_dns();
        due = s.clock.now() + to_clock(s.snapshot()->config.dns_refresh_rate);
      }
      s.clock.sleep_until(s.clock.now() + to_clock(s.options.upkeep_interval));
    }
  });
}

void Gateway::refresh_dns() {
  Impl& g = *impl_;
  std::lock_guard lock(g.dns_mu);
  std::vector<std::string> problems = g.dns.refresh([&g] { return g.stopping.load(); });
  if (g.stopping.load() || problems == g.dns_problems) return;  // a stopped refresh knows nothing
  if (g.options.on_dns_problem) {
    for (const std::string& p : problems) {
      if (std::find(g.dns_problems.begin(), g.dns_problems.end(), p) == g.dns_problems.end()) {
        g.options.on_dns_problem(p);
      }
    }
  }
  g.dns_problems = std::move(problems);
}

void Gateway::stop_upkeep() {
  Impl& g = *impl_;
  g.stopping = true;
  if (g.upkeep_thread.joinable()) g.upkeep_thread.join();
  if (g.dns_thread.joinable()) g.dns_thread.join();
}

std::shared_ptr<const Cluster> Gateway::cluster(std::string_view service) const {
  const std::shared_ptr<const Routing> routing = impl_->snapshot();
  auto it = routing->clusters.find(service);
  return it == routing->clusters.end() ? nullptr : it->second;
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

Result<void> Gateway::clear_max_requests_per_replica(std::string_view service) {
  std::lock_guard lock(impl_->config_mu);
  const std::shared_ptr<const Routing> routing = impl_->snapshot();
  Cluster* c = routing->find(service);
  if (c == nullptr) {
    return make_error(ErrorCode::kNotFound, "gateway: no route or upstream names service \"" +
                                                std::string(service) + "\"");
  }
  c->set_max_requests_per_replica(
      internal::max_requests_per_replica(routing->config, std::string(service)));
  if (auto it = impl_->admission_overrides.find(service); it != impl_->admission_overrides.end()) {
    impl_->admission_overrides.erase(it);
  }
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

Result<std::vector<std::pair<std::string, std::string>>> route_services(
    const GatewayConfig& config) {
  auto table = RouteTable::build(config);
  if (!table) return std::unexpected(table.error());
  const std::span<const Route> routes = table->routes();
  const std::vector<std::string> names = internal::route_names(routes);
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < routes.size(); ++i) out.emplace_back(names[i], routes[i].service);
  return out;
}

}  // namespace prescale::gateway
