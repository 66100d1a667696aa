// Runs a `Service` as an HTTP server with the standard endpoints and instrumentation:
//   GET /metrics  Prometheus text format 0.0.4 (metrics contract of ARCHITECTURE.md)
//   GET /healthz  200 while the process is alive
//   GET /readyz   200 when ready for traffic; 503 while draining or while Service::ready() is false
// and, for every route, prescale_requests_total{service,route,code} and
// prescale_request_duration_seconds{service,route}, plus prescale_inflight_requests{service}.
//
// Drain (on SIGTERM/SIGINT in run(), or drain() directly): /readyz turns 503, the listener
// closes, in-flight requests finish up to `shutdown_grace`, then the server stops.
//
// Thread safety: start()/drain()/run() from one controlling thread; handlers run on I/O threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "http/server.h"
#include "runtime/service.h"
#include "telemetry/registry.h"

namespace prescale::http {
class Router;
}  // namespace prescale::http

namespace prescale::runtime::internal {
struct Lifetime;
}  // namespace prescale::runtime::internal

namespace prescale::telemetry {
class Tracer;
}

namespace prescale::runtime {

struct RuntimeOptions {
  http::ServerOptions server;
  std::chrono::milliseconds shutdown_grace{10000};
  Clock* clock = &Clock::real();  // measures request latency
  // Defaults to a registry owned by the runtime (one per service process).
  telemetry::Registry* registry = nullptr;
  // A server span of each sampled request, to an OTLP receiver (docs/tracing.md); the handler
  // then sees this hop's `traceparent`, so that forwarding it makes the calls it makes children
  // of the span. nullptr: no spans, and the request's headers are the caller's.
  telemetry::Tracer* tracer = nullptr;
  // start() writes the bound port here (core/port_file.h); "" = nowhere. A port file that
  // cannot be written fails start().
  std::string port_file;
};

// An http::ServerOptions::on_rejected that counts the requests a server refuses itself, before
// any handler sees them, in `registry`: prescale_http_rejected_total{service, code} (docs/
// metrics.md). Every code the server may answer so starts at 0, so that rate() works at once.
std::function<void(int status)> count_rejections(telemetry::Registry& registry,
                                                 const std::string& service);

class Runtime {
 public:
  Runtime(Service& service, RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Registers routes and binds the listener. After success, port() is the bound port. A route
  // the service cannot have (one of the standard endpoints above, a pattern the router refuses)
  // is kInvalidArgument, naming it.
  Result<void> start();
  uint16_t port() const;

  // Blocks until SIGTERM or SIGINT, then drains. Returns the process exit code (0 after a clean
  // drain, 1 when the grace ran out with requests still unanswered). start() must have succeeded.
  // The signals must be blocked in every thread, which block_termination_signals() does; call it
  // first thing in main(). It also ignores SIGPIPE, so that a server whose output pipe closed
  // serves on (its writes fail) rather than die.
  int run();
  static void block_termination_signals();

  // Readiness off, stop accepting, finish in-flight requests up to shutdown_grace. Returns how
  // many were still unanswered when it ran out (cut off); 0 on a second call.
  size_t drain();
  bool draining() const { return draining_.load(std::memory_order_acquire); }

  telemetry::Registry& registry() { return *registry_; }

 private:
  class InstrumentedRoutes;

  Service& service_;
  RuntimeOptions options_;
  std::unique_ptr<telemetry::Registry> owned_registry_;
  telemetry::Registry* registry_;
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<Routes> routes_;  // an InstrumentedRoutes; owns per-route metrics
  std::unique_ptr<http::Server> server_;
  // Shared with every request's Responder: one a service answers after the Runtime is gone (a
  // queue it empties as it is destroyed) counts nothing.
  std::shared_ptr<internal::Lifetime> lifetime_;
  std::atomic<bool> draining_{false};
};

}  // namespace prescale::runtime
