// Proxy: the gateway's data path. Forwards a request to an upstream endpoint (method, target,
// fields, body) and the upstream's response back, over keep-alive connections that live on the
// I/O thread the request arrived on (UpstreamPool): no thread hops, no locks on the way.
//
// The integrator matches the route, applies rate limits and then calls forward(). The proxy
// runs the attempt loop and asks the route's UpstreamSelector, the seam to routing and
// resilience (balancer, breakers, outlier ejection, retry budget), three things:
//   select()  where attempt N goes, or why nowhere (answered 503, or the previous answer);
//   report()  how each attempt ended: status or local failure, latency, or "cancelled";
//   retry()   whether, and after what back-off, to try again after a failed attempt (or an
//             answer whose status the route retries, retries_status()).
// Every select() that returns a pick is followed by exactly one report() for it; the pick is
// released (its `context` destroyed) after it, or, for an answer whose body streams on, once that
// body ends.
//
// Header handling (docs/gateway.md): hop-by-hop fields (Connection and the fields it names,
// Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) are dropped both ways (a
// WebSocket's upgrade excepted: docs/gateway.md, "WebSocket") and the
// body is reframed with Content-Length; X-Forwarded-For gets the client address appended,
// X-Forwarded-Proto and X-Forwarded-Host are set unless present (X-Forwarded-Proto: https always
// for a request that came over TLS), Host is kept, and
// `x-request-id` is added when absent. Failures are JSON bodies: 503 no_healthy_upstream /
// upstream_unavailable (nothing could be connected to), 502 bad_gateway (reset, closed or
// malformed response), 504 upstream_timeout (connect, per-try or route timeout), 503
// upstream_overflow (the service's connection or request limits), 503 overloaded with
// Retry-After (the service's admission control).
//
// Thread safety: add_route() and remove_route() from any thread, before or while serving; the
// I/O threads see a change at their next request (one atomic load). forward() and answer() on
// http::Server I/O threads, any number at once; stats() anywhere. The Proxy must outlive every
// Server that calls it, and those servers must be shut down before it is destroyed (declare it
// first).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "gateway/upstream_outcome.h"
#include "http/message.h"

namespace prescale::telemetry {
class Registry;
}  // namespace prescale::telemetry

namespace prescale::gateway {

class ConnectionAdmission;  // upstream_pool.h

// Where one attempt goes.
struct UpstreamPick {
  std::string host;  // IP literal or DNS name; IPv6 without brackets
  uint16_t port = 0;
  // Handed back untouched (previous pick, report): whatever the selector needs to account for
  // the attempt, e.g. an endpoint index in `tag`, a balancer's UpstreamRequest in `context`.
  // The proxy releases `context` after the attempt's report().
  uint64_t tag = 0;
  std::shared_ptr<void> context;
  // Asked before a new upstream connection is opened for the attempt (the service's
  // max_connections / max_pending_requests); a refusal answers 503 upstream_overflow, not
  // retried. nullptr: no limit. Must outlive the attempt.
  ConnectionAdmission* admission = nullptr;
};

// Why select() has no endpoint for an attempt: what a refused first attempt is answered (a
// refused retry ends with the previous attempt's answer whatever the reason).
struct NoPick {
  enum class Reason {
    kNoHealthyUpstream,  // 503 no_healthy_upstream: no endpoint in service
    kOverflow,           // 503 upstream_overflow: a static limit (max_requests, retry budget)
    // 503 overloaded with Retry-After: admission control refused what the service's replicas
    // cannot complete in time; the client should back off, not retry at once.
    kOverloaded,
  };
  Reason reason = Reason::kNoHealthyUpstream;
  std::string message;  // the answer's message; empty: the proxy's own for `reason`
};
using UpstreamSelection = std::expected<UpstreamPick, NoPick>;

// How one attempt ended.
struct AttemptReport {
  const UpstreamPick& pick;
  int attempt = 0;  // 0 = the first
  // The HTTP status, or the local failure as the resilience primitives classify it: connect
  // failures and connect timeouts are kConnectFailure (nothing was sent), a reset or
  // malformed response kReset, no complete response before the try's deadline kTimeout.
  UpstreamOutcome outcome;
  // Ended without an outcome: the client went away, the gateway is stopping, or the pick's
  // admission refused a new connection. Not the endpoint's doing; `outcome` is empty (e.g.
  // UpstreamRequest::cancel()).
  bool cancelled = false;
  bool request_sent = false;  // some of the request was written: the upstream may have acted
  // The answer's body streams on (docs/gateway.md, "Streamed responses"): the attempt is judged
  // by its head, but the endpoint is busy with it until the pick is released, at the body's end.
  bool streaming = false;
  Clock::Duration latency{};  // from the attempt's start, connecting included
  Clock::TimePoint finished_at{};
  std::string_view detail;  // what failed, for logs; empty on a response
};

struct RetryDecision {
  bool retry = false;
  Clock::Duration backoff{0};  // wait before the next attempt (its resolution: 5..250 ms)
};

// Implemented by the integrator (balancer, breakers, outlier detection, retry budget), or
// RoundRobinSelector. Called concurrently on every I/O thread: thread-safe, never blocking.
class UpstreamSelector {
 public:
  virtual ~UpstreamSelector() = default;
  // The endpoint for attempt `attempt` of `request`; `previous` is the previous attempt's pick
  // (nullptr for the first). A NoPick: nothing may take it — the first attempt is answered as
  // its reason says, a retry ends with the previous attempt's answer.
  virtual UpstreamSelection select(const http::Request& request, int attempt,
                                   const UpstreamPick* previous) = 0;
  // Every attempt's end, on the I/O thread that ran it. Default: nothing.
  virtual void report(const http::Request& request, const AttemptReport& report);
  // Asked after an attempt that failed locally, answered 5xx or answered a status below 500 that
  // retries_status() names (not when cancelled, past the route's timeout, or at max_attempts).
  // Default: retry a connect failure once, at once, whatever the method (nothing was sent).
  virtual RetryDecision retry(const http::Request& request, const AttemptReport& report);
  // Whether an answer below 500 with `status` may be worth another attempt (Envoy's
  // retriable-status-codes, e.g. 409); other such answers are relayed at once. Default: none.
  virtual bool retries_status(int status) const;
  // False when select() could find nothing because the service lists no endpoint it could pick
  // (none: scaled to zero, its first replica starting; or only draining ones and ones whose
  // breaker is open): a request held for one (ProxyRoute::hold_for_upstream) waits on without
  // asking select() again, which would count a refusal each time. Default: true.
  virtual bool has_usable_upstream() const { return true; }
  // True once a reload has replaced what this selector picks from (the gateway gave the service
  // a new cluster, which the endpoints now reach): a request held for an upstream would wait on
  // in vain, and is answered. Default: false.
  virtual bool superseded() const { return false; }
};

// Round robin over fixed endpoints; a retry goes to the endpoint after the previous one. For a
// gateway without a balancer (the CLI's static upstreams, tests).
class RoundRobinSelector final : public UpstreamSelector {
 public:
  explicit RoundRobinSelector(std::vector<std::pair<std::string, uint16_t>> endpoints);
  UpstreamSelection select(const http::Request& request, int attempt,
                           const UpstreamPick* previous) override;

 private:
  std::vector<std::pair<std::string, uint16_t>> endpoints_;
};

struct ProxyRoute {
  std::string name;     // the `route` label of metrics, e.g. the route's path rule
  std::string service;  // the service behind it, for messages
  std::chrono::milliseconds timeout{15000};      // the whole request, retries included
  std::chrono::milliseconds per_try_timeout{0};  // one attempt, connecting included; 0 = none
  // A WebSocket relayed on this route is closed after this long with nothing passing either way.
  std::chrono::milliseconds websocket_idle_timeout{300000};
  // The service's replicas speak HTTP/2 in clear text (prior knowledge; gRPC servers): requests
  // go to them as streams of a few shared connections, trailers come back (docs/gateway.md,
  // "gRPC and HTTP/2 upstreams"). No WebSocket to them.
  bool upstream_http2 = false;
  std::shared_ptr<UpstreamSelector> selector;  // required
  // A first attempt that finds no upstream in service (NoPick::kNoHealthyUpstream) waits for one,
  // looking again every Proxy::kHoldPoll, until the route's timeout: a service scaled to zero
  // gets its request served once the replica the load brings is ready (Knative's activator),
  // not 503. At most Proxy::kMaxWaitingPerThread requests wait on an I/O thread (held or backing
  // off before a retry); past that they are answered at once.
  bool hold_for_upstream = false;
};

struct ProxyOptions {
  std::chrono::milliseconds connect_timeout{2000};
  // Idle upstream connections kept, per endpoint and I/O thread: as many as were busy at once
  // (a service's circuit_breakers.max_connections bounds them all). A smaller cap closes the
  // connections a burst of answers frees and opens them again for the next requests (64: -45 %
  // of the requests/s with 128 HTTP/2 streams in flight, bench/RESULTS.md).
  size_t max_idle_per_endpoint = 1024;
  std::chrono::milliseconds idle_timeout{30000};
  size_t max_response_header_bytes = 64 * 1024;
  size_t max_response_body_bytes = 64 * 1024 * 1024;  // larger -> 502
  int max_attempts = 11;                              // retries included
  // Metrics go here (docs/gateway.md); nullptr: none. Must outlive the Proxy.
  telemetry::Registry* registry = nullptr;
  std::string service_label = "gateway";  // `service` label of the request metrics
  // Called on the I/O thread when a request starts waiting for an upstream of its route's
  // service (ProxyRoute::hold_for_upstream); must be quick and thread-safe. nullptr: none.
  std::function<void(std::string_view service)> on_hold = nullptr;
};

class Proxy {
 public:
  using RouteId = uint32_t;
  static constexpr RouteId kNoRoute = UINT32_MAX;
  static constexpr std::chrono::milliseconds kHoldPoll{20};
  static constexpr size_t kMaxWaitingPerThread = 4096;

  struct Stats {
    uint64_t inflight = 0;            // requests in forward() not yet answered
    uint64_t connections_opened = 0;  // upstream TCP connections established
    uint64_t reused = 0;              // attempts on a pooled upstream connection
    uint64_t stale_retries = 0;       // attempts sent again after a stale pooled connection
    uint64_t idle_connections = 0;
    uint64_t active_connections = 0;  // connecting, running an exchange, streaming, a WebSocket
  };

  explicit Proxy(ProxyOptions options = {});
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Registers a route, before or while serving (a configuration reload). Throws
  // std::invalid_argument without a selector or with a timeout <= 0 (configuration time, not
  // the request path). RouteIds are never reused.
  RouteId add_route(ProxyRoute route);
  // Unregisters a route: forward() on it answers 500 from now on; requests already on it
  // finish with it. False when unknown or already removed.
  bool remove_route(RouteId route);

  // Forwards `request` on `route` and answers through `respond`. On an http::Server I/O thread
  // (from a Handler); elsewhere it answers 500. Sets request.on_client_gone.
  void forward(RouteId route, http::Request& request, http::Responder respond);

  // Answers a request the gateway handles itself (no route: 404, rate limited: 429), counted
  // in the request metrics of `route` (kNoRoute: route="unmatched").
  void answer(RouteId route, http::Response response, http::Responder respond);

  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prescale::gateway
