// Internal: HTTP/2 (RFC 9113) on one client connection of http::Server, through libnghttp2's
// framing, flow control and header compression (HPACK). Includes Boost; only .cc files of
// src/http may include this header.
//
// The connection carries the session as a tunnel of its own (http/tunnel.h): what the client
// sends goes to the session (the 24-byte preface first), the session's frames go back through
// the tunnel's out(), whose flow control holds the session back when the client reads slowly.
// Each request stream, once its headers and body are in, is one call of the server's Handler
// with a Request and a Responder, exactly as over HTTP/1.1: the handler does not know which
// protocol carried it. Streams are answered in any order; a streamed body (Response::stream)
// goes out as DATA frames as it is produced.
//
// Limits: ServerOptions' max_header_bytes (each field counted as name + value + 4, pseudo-fields
// too; more -> 431) and max_body_bytes (more -> 413, at once, then RST_STREAM NO_ERROR) per
// stream; read_timeout for a stream's headers and body from its first frame (-> 408);
// idle_timeout with no stream open (-> GOAWAY, close); write_timeout for each write to the socket
// (the connection's). At most kMaxConcurrentStreams streams open at once (SETTINGS); nghttp2
// refuses more, and protects the session against floods of control frames.
//
// Not supported: server push, Upgrade from HTTP/1.1 (h2c), CONNECT and extended CONNECT (400),
// a 101 or tunnel from a handler (500), request trailers (dropped).
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "http/internal/server_internal.h"

struct nghttp2_session;

namespace prescale::http::internal {

// The client preface (RFC 9113 section 3.4) that opens HTTP/2 with prior knowledge.
inline constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr uint32_t kMaxConcurrentStreams = 128;

struct H2Stream;

class H2Session : public std::enable_shared_from_this<H2Session> {
 public:
  // On `worker`'s thread. Each request gets `remote_address` and `secure`.
  H2Session(std::shared_ptr<Worker> worker, std::string remote_address, bool secure);
  ~H2Session();
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  // Sets the session up and queues the server's SETTINGS; false when nghttp2 cannot.
  bool start();
  // What the connection carries.
  const std::shared_ptr<Tunnel>& tunnel() const { return tunnel_; }
  // The server drains: GOAWAY naming the last stream taken; those finish, then the connection
  // ends. On the worker's thread.
  void drain();
  // A handler's response for `stream`, from any thread.
  void deliver(const std::shared_ptr<H2Stream>& stream, Response&& response);

 private:
  friend struct H2Callbacks;

  void on_data(std::string_view bytes);
  void on_input_ended();
  void on_closed();
  void on_response(const std::shared_ptr<H2Stream>& stream, Response&& response);
  // Calls the handler for each stream whose request is complete (outside nghttp2's calls).
  void dispatch_ready();
  void dispatch(const std::shared_ptr<H2Stream>& stream);
  // What the server checks of a request's head before a handler has it, and leaves in the form
  // handlers see (Host, path and query, one Cookie): status 0 when fine, else the answer (400,
  // or 200 to "OPTIONS *"). Repeatable.
  struct HeadCheck {
    int status = 0;
    std::string_view detail;
  };
  HeadCheck check_head(H2Stream& stream);
  // The handler will read the body as it arrives (Request::body_stream).
  void start_body_stream(H2Stream& stream);
  // The stream closed: its streamed body ends (aborted unless complete).
  void end_body_stream(H2Stream& stream);
  // A reader took `bytes` of stream `id`'s body: the client's windows reopen for them.
  void consume(int32_t id, size_t bytes);
  // The request's body is freed and leaves the connection's budget.
  void drop_body(H2Stream& stream);
  // Runs the request's on_client_gone unless it was answered (or told) meanwhile.
  static void tell_gone(H2Stream& stream);
  // The server's own answer (400, 408, 413, 431, or 200 to "OPTIONS *").
  void answer(H2Stream& stream, int status, std::string_view detail = {});
  void submit(H2Stream& stream, Response&& response);
  // Moves what nghttp2 has to send into the tunnel, while the tunnel takes it; then ends the
  // connection when the session is over.
  void flush();
  void resume_stream(int32_t id);
  void arm_tick();
  void tick();
  H2Stream* find(int32_t id);

  std::shared_ptr<Worker> worker_;
  ServerShared& shared_;
  std::string remote_address_;
  bool secure_;
  std::shared_ptr<Tunnel> tunnel_;
  nghttp2_session* session_ = nullptr;
  boost::asio::steady_timer timer_;
  std::unordered_map<int32_t, std::shared_ptr<H2Stream>> streams_;
  std::vector<int32_t> ready_;                      // complete requests, from the last input
  std::vector<std::shared_ptr<H2Stream>> sending_;  // streams whose body bytes went into frames
  Clock::TimePoint last_active_{};                  // the last stream opened or closed
  size_t buffered_ = 0;                             // bytes of request bodies held by streams
  size_t body_budget_ = 0;                          // what buffered_ may reach
  bool had_stream_ = false;
  bool flushing_ = false;
  bool failed_ = false;  // nghttp2 gave up on the connection
  bool draining_ = false;
  bool input_ended_ = false;
  bool ended_ = false;   // out() ended
  bool closed_ = false;  // the connection closed
};

}  // namespace prescale::http::internal
