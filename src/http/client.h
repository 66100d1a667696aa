// Client: an asynchronous HTTP/1.1 client with a keep-alive connection pool per host:port and
// timeouts, for service-to-service calls (gateway, runtime, load generator). With
// ClientOptions::tls it speaks HTTPS to every host instead (the server's certificate verified, its
// name checked; an OTLP receiver or a Prometheus behind TLS).
//
// Connections are reused (LIFO per host:port, at most max_idle_per_host idle ones kept, each
// for at most idle_timeout). A pooled connection found closed by the server is dropped; if a
// request fails on a reused connection before any response byte arrives, it is retried once
// on a fresh connection when that is safe: nothing of it was written, or its method is
// idempotent (GET, HEAD, PUT, DELETE, OPTIONS).
//
// Errors (Result<Response>): kUnavailable — cannot resolve/connect, refused, reset, closed, or
// a malformed response; kTimeout — connect_timeout or the request timeout elapsed (the whole
// exchange, connecting included); kOutOfRange — response body over max_response_body_bytes;
// kCancelled — the Client was destroyed first; kInvalidArgument — unusable request. Over TLS a
// failed handshake is kUnavailable, its message naming the reason ("TLS handshake with
// example.com:443 failed: certificate verify failed: unable to get local issuer certificate").
// Any HTTP status (including 4xx/5xx) is a successful Response.
//
// Thread safety: all methods may be called from any thread. `done` runs on a client I/O thread
// and must not block it; request() blocks and must not be called from a client I/O thread
// (it then fails with kInternal). Destroying the Client completes outstanding requests with
// kCancelled and joins its threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "http/message.h"

namespace prescale::http {

namespace internal {
struct ClientCore;
}  // namespace internal

class ClientTlsContext;

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{30000};  // default per-request timeout
  size_t max_idle_per_host = 64;
  std::chrono::milliseconds idle_timeout{60000};  // idle pooled connections older are closed
  size_t max_response_body_bytes = 64 * 1024 * 1024;
  int threads = 1;  // I/O threads
  // HTTPS to every host (http/tls.h); null: plain HTTP.
  std::shared_ptr<const ClientTlsContext> tls = nullptr;
  // HTTP/2 in clear text with prior knowledge to every host (health and readiness checks of
  // gRPC servers): one connection per request, closed after it; the response's trailers are in
  // Response::trailers. Not with `tls` (such requests fail with kInvalidArgument).
  bool http2 = false;
};

class Client {
 public:
  struct Stats {
    uint64_t connections_opened = 0;  // TCP connections established
    uint64_t reused = 0;              // requests sent on a pooled connection
    uint64_t timeouts = 0;            // requests that failed with kTimeout
  };

  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `req` to host:port (an IP literal or a name such as "localhost") and calls `done`
  // exactly once with the response or the error. The target is req.target, or req.path plus
  // "?" req.query when target is empty. `timeout` overrides options.request_timeout.
  void async_request(std::string host, uint16_t port, Request req,
                     std::function<void(Result<Response>)> done,
                     std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Blocking form of async_request.
  Result<Response> request(std::string host, uint16_t port, Request req,
                           std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // GET `target` from every (host, port) at once, and blocks until each has been answered, has
  // failed or has timed out: a peer that does not answer holds the caller up for one timeout, not
  // one each (scraping many replicas' /metrics). The results are in the order of `peers`.
  struct Peer {
    std::string host;
    uint16_t port = 0;
  };
  std::vector<Result<Response>> get_all(
      const std::vector<Peer>& peers, const std::string& target,
      std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  Stats stats() const;

 private:
  std::shared_ptr<internal::ClientCore> impl_;
};

}  // namespace prescale::http
