// UpstreamPool: the gateway's HTTP/1.1 connections to upstream endpoints, for ONE http::Server
// I/O thread. It runs on that thread's io_context, the one the request arrived on, so a proxied
// request never changes threads and nothing on its path takes a lock.
//
// Per endpoint (host:port) it keeps idle keep-alive connections LIFO (the most recently used
// first: the least likely to have been closed by the upstream), at most max_idle_per_endpoint,
// each for at most idle_timeout. An idle connection stays watched, so one the upstream closes
// is dropped at once. Connecting has its own timeout (connect_timeout, within the exchange's
// deadline). An exchange that fails on a reused connection before any byte of the response
// arrived is sent again, once, on a fresh connection when that is safe: nothing of it was
// written, or it is idempotent (the upstream may have closed the connection as we reused it).
//
// Timeouts are checked by a sweep every `timeout_resolution`, so they fire up to that late; the
// sweep timer runs only while the pool has connections.
//
// Thread safety: every method but stats() on the I/O thread of the io_context. stop() must run
// on that thread before the io_context stops (the server's IoThread stop hook).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"
#include "http/message.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace prescale::gateway {

namespace internal {
class UpstreamConnection;
struct PoolCore;
class H2Conn;
struct H2Core;
struct H2Request;
}  // namespace internal

// How an exchange failed. Local failures only: any HTTP status is a success here.
enum class ExchangeError : uint8_t {
  kNone,
  kConnectFailed,   // cannot resolve, refused, unreachable: nothing was sent
  kConnectTimeout,  // nothing was sent
  kReset,           // the connection failed or closed before the response was complete
  kMalformed,       // not an HTTP/1.1 response, or over the size limits
  kTimeout,         // the deadline passed after connecting
  kCancelled,       // the pool stopped
  kOverflow,        // a new connection was needed and the exchange's admission refused it
};

// "connect_failed", "connect_timeout", "reset", "malformed", "timeout", "cancelled",
// "overflow", "none".
std::string_view to_string(ExchangeError error);

// Admission of new upstream connections, shared by the pools of every I/O thread: a service's
// circuit_breakers.max_connections (connections open, idle or busy) and max_pending_requests
// (exchanges waiting for a connection being established). Implemented by the gateway's Cluster.
// Thread safety: try_open() and the permits from any thread.
class ConnectionAdmission {
 public:
  // Held by an admitted connection: it counts as pending until connected(), as open until the
  // permit is destroyed (when the connection closes).
  class Permit {
   public:
    virtual ~Permit() = default;
    virtual void connected() = 0;
  };
  virtual ~ConnectionAdmission() = default;
  // A permit for one more connection, or nullptr with `why` set when a limit is reached.
  virtual std::unique_ptr<Permit> try_open(std::string& why) = 0;
};

struct UpstreamPoolOptions {
  std::chrono::milliseconds connect_timeout{2000};
  size_t max_idle_per_endpoint = 1024;
  std::chrono::milliseconds idle_timeout{30000};  // shorter than common upstream keep-alives
  size_t max_response_header_bytes = 64 * 1024;
  size_t max_response_body_bytes = 64 * 1024 * 1024;
  std::chrono::milliseconds timeout_resolution{50};
};

// One request/response exchange, owned by the caller and driven by UpstreamPool::start(). It
// must stay alive, its inputs unchanged, until on_complete() runs or cancel() returns.
class Exchange {
 public:
  virtual ~Exchange() = default;

  // Inputs, set before start().
  std::string_view head;        // request line and header block, ending with the empty line
  std::string_view body;        // sent as is after the head (the head frames it)
  bool head_request = false;    // a response to HEAD has no body
  bool idempotent = false;      // may be sent again after failing on a stale reused connection
  Clock::TimePoint deadline{};  // ends the exchange, connecting included
  // Asked before a new connection is opened for this exchange (not for a pooled one); nullptr:
  // no limit. Must outlive the exchange's start().
  ConnectionAdmission* admission = nullptr;
  // For a streamed body (stream_body()): the longest silence of the upstream once the head has
  // come; then the body is cut.
  Clock::Duration stream_idle_timeout = std::chrono::seconds(15);
  // The head asks the upstream to switch to WebSocket (`Connection: upgrade`, `Upgrade:
  // websocket`). Its 101 completes the exchange with `response.tunnel` (http/tunnel.h): the
  // connection then carries the bytes of both sides as they come, read no faster than the other
  // side takes them, until both have ended theirs, the client's connection closes, either
  // fails, nothing passes for tunnel_idle_timeout, or the pool stops; the exchange must live
  // until on_stream_end(). Without it a 101 is malformed.
  bool upgrade = false;
  Clock::Duration tunnel_idle_timeout = std::chrono::minutes(5);
  // The upstream speaks HTTP/2 (clear text, prior knowledge; gRPC servers): `head` is turned
  // into HTTP/2 fields and the exchange runs as a stream of a shared connection
  // (internal/h2_upstream.h). `upgrade` is not taken (there is no 101 over HTTP/2). The
  // response's trailers come in `response.trailers`, or at the end of its streamed body.
  bool http2 = false;
  // With `http2`: the body follows `body` as the client sends it (http/request_body.h), read as
  // the upstream's windows take it, also after on_complete() of a streamed response (a
  // bidirectional stream). An exchange that read some of it (`body_stream_read`) cannot be sent
  // again. Null: `body` is all of it.
  std::shared_ptr<http::RequestBody> body_stream;
  bool body_stream_read = false;  // some of body_stream was taken (set by the pool)

  // Results, valid in on_complete().
  ExchangeError error = ExchangeError::kNone;
  http::Response response;    // when error == kNone; fields as received (hop-by-hop included)
  bool request_sent = false;  // some of the request was written: the upstream may have acted
  bool reused = false;        // the (last) connection came from the pool
  std::string detail;         // why it failed, for messages, e.g. "Connection refused"

 private:
  friend class UpstreamPool;
  friend class internal::UpstreamConnection;
  friend struct internal::PoolCore;
  friend class internal::H2Conn;
  friend struct internal::H2Core;

  // Called once per start(), on the I/O thread, never from within start() or cancel().
  virtual void on_complete() = 0;

  // Asked once a final response's head has come whose body has no stated length (chunked, or
  // until the connection closes) and has not all come yet: true streams it. on_complete() then
  // runs at once, with the body in `response.stream` (http::BodyStream): the pool writes it as
  // it comes, ends it when complete and aborts it when the connection fails, the upstream is
  // silent for stream_idle_timeout or the pool stops; the client leaving closes the connection.
  // The exchange must then live until on_stream_end(). Default: false (the body is read whole,
  // within max_response_body_bytes).
  virtual bool stream_body(const http::Response& answer);
  // After on_complete() of a streamed body or a tunnel, once, on the I/O thread: the body ended,
  // `complete` or cut (by the upstream, its silence, the client leaving or the pool stopping);
  // the tunnel closed, `complete` when both sides had ended theirs.
  virtual void on_stream_end(bool complete);

  internal::UpstreamConnection* conn_ = nullptr;  // while running on a connection
  internal::H2Request* h2_ = nullptr;             // while running as an HTTP/2 stream
  bool stale_retried_ = false;
};

class UpstreamPool {
 public:
  struct Stats {
    uint64_t connections_opened = 0;  // TCP connections established
    uint64_t reused = 0;              // exchanges started on a pooled connection
    uint64_t stale_retries = 0;       // exchanges sent again after a stale pooled connection
    uint64_t idle = 0;                // idle connections now
    // Connections connecting, running an exchange, streaming a body or carrying a WebSocket now.
    uint64_t active = 0;
  };

  UpstreamPool(boost::asio::io_context& io, UpstreamPoolOptions options);
  // Stops the pool (see stop()).
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Runs `exchange` against host:port (an IP literal or a name; IPv6 without brackets) on a
  // pooled connection or a new one; its on_complete() follows. Returns false, and on_complete()
  // will not run, when it starts nothing: the pool is stopped (exchange.error kCancelled), or
  // a new connection was needed and exchange.admission refused it (kOverflow, detail why).
  bool start(std::string_view host, uint16_t port, Exchange& exchange);
  // Abandons a started exchange whose on_complete() has not run: its connection is closed and
  // on_complete() will not run.
  void cancel(Exchange& exchange);
  // Closes every connection; running exchanges complete with kCancelled. Idempotent.
  void stop();
  // The sweep's period from its next round on (on the pool's I/O thread).
  void set_timeout_resolution(std::chrono::milliseconds resolution);

  // From any thread.
  Stats stats() const;

 private:
  std::shared_ptr<internal::PoolCore> core_;
};

// A hash map keyed by (host, port) that finds entries without allocating.
template <class T>
class EndpointMap {
 public:
  // The entry for host:port, default-constructed on first use.
  T& operator()(std::string_view host, uint16_t port) {
    auto it = map_.find(KeyView{host, port});
    if (it != map_.end()) return it->second;
    return map_.try_emplace(Key{std::string(host), port}).first->second;
  }
  template <class Fn>
  void for_each(Fn&& fn) {
    for (auto& [key, value] : map_) fn(key.host, key.port, value);
  }

 private:
  struct Key {
    std::string host;
    uint16_t port;
  };
  struct KeyView {
    std::string_view host;
    uint16_t port;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(const KeyView& k) const {
      return std::hash<std::string_view>()(k.host) * 31 + k.port;
    }
    size_t operator()(const Key& k) const { return (*this)(KeyView{k.host, k.port}); }
  };
  struct Equal {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return a.port == b.port && std::string_view(a.host) == std::string_view(b.host);
    }
  };
  std::unordered_map<Key, T, Hash, Equal> map_;
};

}  // namespace prescale::gateway
