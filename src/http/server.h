// Server: an asynchronous HTTP/1.1 server (Boost.Beast parser, Boost.Asio sockets) that calls
// one Handler per request.
//
// Threading: `threads` I/O threads, each with its own io_context and its own acceptor bound to
// the same port with SO_REUSEPORT, so the kernel spreads connections across threads and a
// connection lives on one thread for its whole life (no locks on the request path). Where
// SO_REUSEPORT is unavailable one acceptor hands sockets to the threads round-robin.
// A handler runs on its connection's I/O thread and must not block it; the Responder may be
// called later from any thread. Requests on one connection are processed strictly in order
// (pipelining-safe): the next request is not parsed before the previous response is written.
// The Request passed to a handler stays valid until its Responder is called.
// A Responder dropped without being called is a handler bug; the server then answers 500, as it
// does when a handler throws. A final status outside 200..999 is answered as 500.
//
// Responses always carry `Server: prescale` and `Date` (unless the handler set them), and
// Content-Length except on 1xx and 204 — and on a bodiless answer to HEAD or a bodiless 304,
// which carry the handler's own Content-Length field if it set one and none otherwise (the
// length a GET would get). A response to HEAD has no body.
// A handler that answers later may set Request::on_client_gone to learn that its client left.
// Keep-alive is the default for HTTP/1.1 and for HTTP/1.0 with `Connection: keep-alive`.
//
// Limits and their defaults (ServerOptions):
//   max_header_bytes  16 KiB  request line + header fields; larger          -> 431, close
//                             (414 when the request line alone is that long)
//   max_body_bytes     4 MiB  body by Content-Length or chunked total; more -> 413, close
//   read_timeout        10 s  a whole request (headers + body) must arrive within this,
//                             counted from its first byte (from accept for a new connection);
//                             late -> 408 and close (just close if nothing was received)
//   idle_timeout        60 s  keep-alive connection waiting for its next request -> close
//   write_timeout       10 s  writing one response; slower readers are cut off
//   max_connections    10000  open connections; the next one gets 503 and is closed
// Malformed requests get 400 and the connection is closed: a bad request line, bad header
// syntax, Content-Length together with Transfer-Encoding, two Content-Length fields (equal or
// not), a Transfer-Encoding other than exactly "chunked", invalid chunked framing, a target that
// is neither a path, an absolute URI, nor "*" with OPTIONS (RFC 9112 section 3.2).
// "OPTIONS *" asks about the server, not a resource (RFC 9110 section 9.3.7): the server answers
// it, 200 with no content, without calling the handler.
// Timeouts are real (socket) time, checked by a per-thread sweep, so they fire up to ~1/8 of
// the shortest timeout (at most 250 ms) late. After an error answer the server reads and discards
// what the client still sends for up to 1 s, so the client sees the answer instead of a connection
// reset.
//
// HTTPS: with ServerOptions::tls the server speaks TLS on its port (http/tls.h), nothing else.
// The handshake counts against read_timeout from accept; a failed one is closed and reported
// to on_tls_handshake_failed. Over max_connections a TLS connection is closed unanswered (an
// answer would need a handshake first). Requests that arrived over TLS have Request::secure.
//
// Thread safety: start() and shutdown() are meant for one controlling thread; port(),
// inflight(), connections() and replace_tls() may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/result.h"
#include "http/message.h"

namespace prescale::http {

class TlsContext;

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0 = an ephemeral port; read it back with Server::port()
  int threads = 0;    // I/O threads; 0 = std::thread::hardware_concurrency()
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds read_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{10000};
  size_t max_connections = 10000;
  // Called (on an I/O thread; keep it cheap and thread-safe) whenever the server itself answers
  // 400, 408, 413, 414, 431 or 503, with that status.
  std::function<void(int status)> on_rejected;
  // Null: plain HTTP. Otherwise every connection speaks TLS with this context.
  std::shared_ptr<const TlsContext> tls;
  // Called (on an I/O thread; cheap and thread-safe) for each TLS handshake that failed: not
  // TLS, no protocol or cipher in common, or the client refused the certificate.
  std::function<void()> on_tls_handshake_failed;
  // HTTP/2 (RFC 9113) beside HTTP/1.1: over TLS when the client's ALPN offers h2, in clear text
  // when a connection opens with HTTP/2's preface (prior knowledge). False: HTTP/1.1 only.
  bool http2 = true;
  // Asked (on an I/O thread, from within the connection's processing: cheap, thread-safe, no
  // calls back into the server) when an HTTP/2 request's head is in and a body follows. True:
  // the handler is called at once, with Request::body empty, and reads the body from
  // Request::body_stream as it arrives (http/request_body.h), with no max_body_bytes and no
  // read_timeout for it. Unset or false, and for every HTTP/1.x request: the body is read whole
  // first. For gRPC's streaming calls, whose clients wait for answers before they send more.
  std::function<bool(const Request&)> stream_request_body;
};

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  // Calls shutdown(0 ms) if still running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (SO_REUSEADDR), listens and starts the I/O threads. Fails with kUnavailable when the
  // address cannot be bound, kInvalidArgument for a bad address, kInternal if already started.
  Result<void> start();

  // The bound port (the ephemeral one when options.port was 0); 0 before start().
  uint16_t port() const;

  // Graceful stop: stops accepting, closes idle keep-alive connections, lets requests already
  // received finish and be written (with `Connection: close`), then at `deadline` (from now)
  // force-closes whatever is left and joins the I/O threads. Returns when the threads are gone.
  // Idempotent. Responders called after this are ignored.
  void shutdown(std::chrono::milliseconds deadline);

  // A renewed certificate: connections accepted from now on use `tls`; those open keep theirs.
  // kInvalidArgument when the server was made without TLS or `tls` is null.
  Result<void> replace_tls(std::shared_ptr<const TlsContext> tls);

  // Requests handed to the handler whose response has not been produced yet.
  size_t inflight() const;
  // Open client connections.
  size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prescale::http
