#include "runtime/runtime.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/port_file.h"
#include "http/router.h"
#include "telemetry/exposition.h"
#include "telemetry/process_metrics.h"
#include "telemetry/trace_context.h"
#include "telemetry/tracing.h"

namespace prescale::runtime {

namespace internal {
// Whether the Runtime (its route metrics, and the registry it may own) is still there.
struct Lifetime {
  std::shared_mutex mu;
  bool over = false;  // under mu, held exclusively to set it
};
}  // namespace internal

namespace {

// Per-route instruments. Counters per status code are looked up once and cached, so the
// request path touches only atomics.
class RouteMetrics {
 public:
  RouteMetrics(telemetry::CounterFamily& requests, telemetry::HistogramFamily& durations,
               std::string service, std::string route)
      : requests_(requests),
        duration_(durations.with({service, route})),
        service_(std::move(service)),
        route_(std::move(route)) {}

  void record(int status, Clock::Duration elapsed) {
    counter(status).inc();
    duration_.observe(to_seconds(elapsed));
  }

 private:
  telemetry::Counter& counter(int status) {
    // What the server answers for an interim or out-of-range status; but a 101 switches the
    // connection to another protocol (http/tunnel.h), a success.
    if ((status < 200 && status != 101) || status > 999) status = 500;
    auto& slot = by_status_[static_cast<size_t>(status)];
    telemetry::Counter* c = slot.load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &requests_.with({service_, route_, std::to_string(status)});
      slot.store(c, std::memory_order_release);
    }
    return *c;
  }

  telemetry::CounterFamily& requests_;
  telemetry::Histogram& duration_;
  std::string service_;
  std::string route_;
  std::array<std::atomic<telemetry::Counter*>, 1000> by_status_{};
};

// The Responder a route's handler gets: counts the answer under its status, times it and lowers
// the in-flight gauge, once, as the server delivers one answer per request (http/server.h): a
// second call is ignored, and a Responder dropped without being called (the handler threw or
// forgot it) is answered 500 by the server, so it is counted as a 500 here. Once the Runtime is
// gone it counts nothing (the server, stopped, ignores the answer).
class CountedResponder {
 public:
  CountedResponder(RouteMetrics& metrics, Clock& clock, telemetry::Gauge& inflight,
                   std::shared_ptr<internal::Lifetime> lifetime, http::Responder respond)
      : metrics_(&metrics),
        clock_(&clock),
        inflight_(&inflight),
        lifetime_(std::move(lifetime)),
        respond_(std::move(respond)),
        start_(clock.now()) {
    inflight_->inc();
  }
  CountedResponder(CountedResponder&& o) noexcept
      : metrics_(o.metrics_),
        clock_(o.clock_),
        inflight_(o.inflight_),
        lifetime_(std::move(o.lifetime_)),
        respond_(std::move(o.respond_)),
        start_(o.start_),
        pending_(std::exchange(o.pending_, false)) {}
  // Required by std::function; never used by Responder, which shares its function.
  CountedResponder(const CountedResponder&) = default;
  CountedResponder& operator=(const CountedResponder&) = delete;
  CountedResponder& operator=(CountedResponder&&) = delete;

  ~CountedResponder() {
    if (pending_) finish(500);  // dropping respond_ makes the server answer 500
  }

  void operator()(http::Response r) {
    if (!pending_) return;
    finish(r.status);
    respond_(std::move(r));
  }

 private:
  void finish(int status) {
    pending_ = false;
    std::shared_lock lock(lifetime_->mu);
    if (lifetime_->over) return;
    metrics_->record(status, clock_->now() - start_);
    inflight_->dec();
  }

  RouteMetrics* metrics_;
  Clock* clock_;
  telemetry::Gauge* inflight_;
  std::shared_ptr<internal::Lifetime> lifetime_;
  http::Responder respond_;
  Clock::TimePoint start_;
  bool pending_ = true;
};

// Continues the request's trace with this hop's span: the handler reads this hop's context in
// `traceparent`, and a sampled request's span ends when it is answered.
void trace(telemetry::Tracer& tracer, const std::string& route, http::Request& request,
           http::Responder& respond) {
  std::string joined;
  telemetry::UpstreamTrace t = telemetry::continue_trace(request.headers, joined);
  auto span = tracer.server_span(t, request.method_name, route);
  telemetry::set_trace_headers(request.headers, std::move(t));
  if (!span) return;
  span->attribute("http.request.method", request.method_name);
  span->attribute("url.path", request.path);
  span->attribute("http.route", route);
  span->attribute("client.address", request.remote_address);
  respond = telemetry::ending(std::move(*span), std::move(respond));
}

}  // namespace

class Runtime::InstrumentedRoutes final : public Routes {
 public:
  InstrumentedRoutes(Runtime& rt, std::string service)
      : rt_(rt),
        service_(std::move(service)),
        requests_(rt.registry_->counter("prescale_requests_total",
                                        "Requests handled, by route and status code.",
                                        {"service", "route", "code"})),
        durations_(rt.registry_->histogram("prescale_request_duration_seconds",
                                           "Time from request read to response handed to the "
                                           "server, by route.",
                                           {"service", "route"},
                                           telemetry::default_latency_buckets())),
        inflight_(rt.registry_
                      ->gauge("prescale_inflight_requests", "Requests being handled now.",
                              {"service"})
                      .with({service_})) {}

  // Throws std::invalid_argument for a route the service cannot have; start() reports it.
  void add(http::Method method, std::string pattern, http::Handler handler) override {
    if (method == http::Method::kGet &&
        (pattern == "/metrics" || pattern == "/healthz" || pattern == "/readyz")) {
      throw std::invalid_argument("GET " + pattern +
                                  " is the runtime's own (/metrics, /healthz and /readyz are "
                                  "served for every service); give the route another path");
    }
    auto& metrics = route_metrics_.emplace_back(
        std::make_unique<RouteMetrics>(requests_, durations_, service_, pattern));
    RouteMetrics* m = metrics.get();
    Clock* clock = rt_.options_.clock;
    telemetry::Gauge* inflight = &inflight_;
    telemetry::Tracer* tracer = rt_.options_.tracer;
    rt_.router_->add(method, pattern,
                     [m, clock, inflight, tracer, lifetime = rt_.lifetime_, route = pattern,
                      handler = std::move(handler)](http::Request& req, http::Responder respond) {
                       if (tracer != nullptr) trace(*tracer, route, req, respond);
                       handler(req, http::Responder(CountedResponder(
                                        *m, *clock, *inflight, lifetime, std::move(respond))));
                     });
  }

 private:
  Runtime& rt_;
  std::string service_;
  telemetry::CounterFamily& requests_;
  telemetry::HistogramFamily& durations_;
  telemetry::Gauge& inflight_;
  std::vector<std::unique_ptr<RouteMetrics>> route_metrics_;
};

std::function<void(int status)> count_rejections(telemetry::Registry& registry,
                                                 const std::string& service) {
  auto& family = registry.counter(
      "prescale_http_rejected_total",
      "Requests the server refused itself, before any handler: malformed (400), not received in "
      "time (408), too large (413, 414, 431), or over the connection limit (503).",
      {"service", "code"});
  // http::ServerOptions::on_rejected's codes, looked up once.
  static constexpr std::array<int, 6> kCodes = {400, 408, 413, 414, 431, 503};
  std::array<telemetry::Counter*, kCodes.size()> counters{};
  for (size_t i = 0; i < kCodes.size(); ++i) {
    counters[i] = &family.with({service, std::to_string(kCodes[i])});
  }
  return [&family, service, counters](int status) {
    for (size_t i = 0; i < kCodes.size(); ++i) {
      if (kCodes[i] == status) {
        counters[i]->inc();
        return;
      }
    }
    family.with({service, std::to_string(status)}).inc();
  };
}

Runtime::Runtime(Service& service, RuntimeOptions options)
    : service_(service),
      options_(std::move(options)),
      lifetime_(std::make_shared<internal::Lifetime>()) {
  if (options_.registry == nullptr) {
    owned_registry_ = std::make_unique<telemetry::Registry>();
    registry_ = owned_registry_.get();
  } else {
    registry_ = options_.registry;
  }
  router_ = std::make_unique<http::Router>();
}

Runtime::~Runtime() {
  if (server_) server_->shutdown(std::chrono::milliseconds(0));
  std::unique_lock lock(lifetime_->mu);  // waits for an answer being counted
  lifetime_->over = true;
}

Result<void> Runtime::start() {
  telemetry::register_process_metrics(*registry_);
  routes_ = std::make_unique<InstrumentedRoutes>(*this, std::string(service_.name()));
  try {
    service_.register_routes(*routes_);
  } catch (const std::invalid_argument& e) {
    return make_error(ErrorCode::kInvalidArgument,
                      "service " + std::string(service_.name()) + ": " + e.what());
  }

  // The standard endpoints are not instrumented per route: scrapes and probes would drown the
  // service's own traffic in its metrics.
  router_->add(http::Method::kGet, "/metrics", [this](http::Request&, http::Responder respond) {
    http::Response r;
    r.status = 200;
    r.headers.set("Content-Type", std::string(telemetry::kTextContentType));
    r.body = telemetry::expose(*registry_);
    respond(std::move(r));
  });
  router_->add(http::Method::kGet, "/healthz", [](http::Request&, http::Responder respond) {
    respond(http::Response::text(200, "ok\n"));
  });
  router_->add(http::Method::kGet, "/readyz", [this](http::Request&, http::Responder respond) {
    if (draining()) {
      respond(http::Response::text(503, "draining\n"));
    } else if (!service_.ready()) {
      respond(http::Response::text(503, "not ready\n"));
    } else {
      respond(http::Response::text(200, "ready\n"));
    }
  });

  http::Router* router = router_.get();
  http::ServerOptions server_options = options_.server;
  if (!server_options.on_rejected) {
    server_options.on_rejected = count_rejections(*registry_, std::string(service_.name()));
  }
  server_ = std::make_unique<http::Server>(
      server_options,
      [router](http::Request& req, http::Responder respond) { router->dispatch(req, respond); });
  if (auto started = server_->start(); !started) return started;
  spdlog::info("service {} listening on {}:{}", service_.name(), options_.server.address,
               server_->port());
  if (auto written = write_port_files({{"--port-file", options_.port_file, server_->port()}});
      !written) {
    server_->shutdown(std::chrono::milliseconds(0));
    return std::unexpected(written.error());
  }
  return {};
}

uint16_t Runtime::port() const { return server_ ? server_->port() : 0; }

void Runtime::block_termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A write to a closed pipe (stdout into `| head`, a tee that died) fails with EPIPE instead of
  // killing the server undrained, as nginx does. An ignored signal stays ignored across exec: a
  // child process sets the default back itself (local::Process does, before its exec).
  ::signal(SIGPIPE, SIG_IGN);
}

int Runtime::run() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  spdlog::info("service {} received {}, draining (grace {} ms)", service_.name(),
               sig == SIGTERM ? "SIGTERM" : "SIGINT", options_.shutdown_grace.count());
  if (const size_t cut = drain(); cut > 0) {
    spdlog::error(
        "service {}: the grace period ({} ms) ran out with {} request{} unanswered; "
        "{} cut off, exiting",
        service_.name(), options_.shutdown_grace.count(), cut, cut == 1 ? "" : "s",
        cut == 1 ? "it was" : "they were");
    return 1;
  }
  spdlog::info("service {} drained, exiting", service_.name());
  return 0;
}

size_t Runtime::drain() {
  if (draining_.exchange(true, std::memory_order_acq_rel)) return 0;
  service_.on_drain();
  if (!server_) return 0;
  server_->shutdown(options_.shutdown_grace);
  return server_->inflight();
}

}  // namespace prescale::runtime
