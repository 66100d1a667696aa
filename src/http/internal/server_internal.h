// Internal: the pieces of http::Server — per-thread Worker (io_context, acceptor, timeout sweep,
// list of connections) and Connection (one client socket, one request at a time). Includes
// Boost; only .cc files of src/http may include this header.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "http/body_stream.h"
#include "http/internal/io_thread.h"
#include "http/internal/parsers.h"
#include "http/internal/poller.h"
#include "http/server.h"
#include "http/tls.h"
#include "http/tunnel.h"

struct ssl_st;  // OpenSSL's SSL

namespace prescale::http::internal {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Connection;
class H2Session;

// The server's own error answers (400, 408, 413, 414, 431, 500, 503); bodies follow the project
// error shape. `detail` says what was malformed in a 400 (fixed text, nothing that needs JSON
// escaping).
Response rejection(int status, std::string_view detail = {});

// State shared by all workers of one Server; immutable after start() except the counters.
struct ServerShared {
  ServerOptions options;
  Handler handler;
  Clock::Duration sweep_period{};
  std::atomic<size_t> connections{0};
  std::atomic<bool> draining{false};
  // Signalled when `connections` drops to zero while draining.
  std::mutex drain_mu;
  std::condition_variable drain_cv;

  void reject(int status) const;
  void connection_closed();
  // The TLS context new connections take; null for plain HTTP.
  std::shared_ptr<const TlsContext> current_tls() const {
    std::lock_guard lock(tls_mu);
    return tls;
  }
  void set_tls(std::shared_ptr<const TlsContext> next) {
    std::lock_guard lock(tls_mu);
    tls = std::move(next);
  }

 private:
  mutable std::mutex tls_mu;
  std::shared_ptr<const TlsContext> tls;  // options.tls, then what replace_tls() swapped in
};

// One I/O thread: its io_context, its acceptor (or none, in round-robin fallback mode), the
// timeout sweep and the connections living on it.
class Worker : public std::enable_shared_from_this<Worker> {
 public:
  explicit Worker(std::shared_ptr<ServerShared> shared);
  ~Worker();

  ServerShared& shared() { return *shared_; }
  asio::io_context& io() { return ioc_; }
  std::atomic<size_t>& inflight() { return inflight_; }

  // Opens, binds and listens; `reuse_port` sets SO_REUSEPORT first.
  boost::system::error_code listen(const tcp::endpoint& endpoint, bool reuse_port);
  uint16_t local_port() const;
  void close_acceptor();
  // Where accepted sockets go: this worker only, or round-robin over `targets`.
  void set_accept_targets(std::vector<std::shared_ptr<Worker>> targets);

  // Starts the accept loop (if listening), the sweep timer and the thread.
  void run();
  void join();

  // On this worker's thread: stop accepting, close idle connections, mark the rest to close
  // after their current response.
  void begin_drain();
  // On this worker's thread: close every connection, stop the sweep and run the IoThread's stop
  // hooks, so run() returns.
  void force_close_all();
  // After join(): refuse further posts, then run what was posted before that.
  void finish();

  // Posts `fn` to the io_context unless the worker has finished; false when dropped.
  template <class Fn>
  bool post_if_running(Fn&& fn) {
    std::lock_guard lock(post_mu_);
    if (!accepting_posts_) return false;
    asio::post(ioc_, std::forward<Fn>(fn));
    return true;
  }

  void link(Connection* c);
  void unlink(Connection* c);

 private:
  void do_accept();
  void on_accepted(tcp::socket socket);
  void arm_sweep();
  void sweep();
  template <class Fn>
  void for_each_connection(Fn&& fn);

  std::shared_ptr<ServerShared> shared_;
  alignas(64) std::atomic<size_t> inflight_{0};

  // Declared before the io_context: handlers destroyed with it may destroy connections, which
  // unlink themselves from this list.
  std::mutex list_mu_;
  Connection* head_ = nullptr;
  std::vector<std::shared_ptr<Connection>> scratch_;  // sweep snapshot, reused

  std::mutex post_mu_;
  bool accepting_posts_ = true;

  asio::io_context ioc_{1};
  // What handlers on this thread may use of it (http/internal/io_thread.h); after ioc_, so it is
  // destroyed first.
  IoThread io_thread_{ioc_};
  std::optional<tcp::acceptor> acceptor_;
  asio::steady_timer sweep_timer_{ioc_};
  asio::steady_timer accept_retry_timer_{ioc_};
  std::vector<std::shared_ptr<Worker>> accept_targets_;
  size_t next_target_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

// One client connection. Lives on its worker's thread; only deliver() may be called from
// other threads.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Worker> worker, tcp::socket socket);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // Answers `status` (503 when over max_connections) and closes.
  void start_rejected(int status);
  void on_sweep(Clock::TimePoint now);
  void begin_drain();
  void close();
  // The response for request number `seq`, from any thread.
  void deliver(uint64_t seq, Response&& response);

  Connection* prev = nullptr;
  Connection* next = nullptr;

 private:
  // kTunnel: after a 101's head, the bytes of another protocol both ways (http/tunnel.h).
  enum class State { kIdle, kReading, kHandling, kWriting, kTunnel, kLingering, kClosed };
  // Whether the connection speaks HTTP/2: ALPN chose h2, or the client opened with the preface.
  enum class H2Check { kYes, kNo, kMore };
  // TLS only: how an SSL call ended.
  enum class TlsStep {
    kDone,      // it did what was asked
    kReadable,  // it waits for the socket to be readable
    kWritable,  // ... to be writable
    kEof,       // the peer closed (close_notify, or TCP's FIN)
    kLost,      // the socket failed
    kRefused,   // a TLS protocol error: not TLS, nothing in common, a bad record
  };
  struct SslFree {
    void operator()(ssl_st* ssl) const;
  };

  // Makes the socket non-blocking and registers it with the Poller; closes it when it cannot.
  bool watch();
  void reset_parser();
  size_t read_cap() const;
  void arm_read();
  bool read_available();
  void on_readable(const boost::system::error_code& ec);
  void parse();
  void dispatch();
  void on_response(uint64_t seq, Response&& response);
  void write_response();
  void send(std::array<asio::const_buffer, 2> buffers);
  // TLS: the handshake's next step; kDone once it is over.
  TlsStep handshake();
  // TLS: writes tls_out_ through the session, waiting as it must; then tls_written().
  void tls_write();
  // After tls_write(): on_written() for a response, parse() after a "100 Continue".
  void tls_written(const boost::system::error_code& ec);
  // TLS: what a failed SSL call's `result` means (marks the session broken where it failed).
  TlsStep tls_step(int result);
  // Half-closes the connection: TLS's close_notify first, then TCP's FIN.
  void shutdown_send();
  // TLS: close_notify, once, unless the session failed or a record is half written.
  void send_close_notify();
  void on_written(const boost::system::error_code& ec);
  void write_continue();
  // The request line is over the header limit by itself (answered 414, not 431).
  bool request_line_too_long() const;
  // Consumes the empty lines (CRLF) at the front of the buffer, before a request line: RFC 9112
  // section 2.2 has a server ignore them (some clients send one after a POST body). Returns the
  // bytes consumed.
  size_t skip_empty_lines();
  // Answers `status` and closes; `detail` says what was malformed in a 400.
  void fail(int status, std::string_view detail = {});
  void linger();
  void finish_after_response();
  void notify_client_gone();
  // A streamed body (Response::stream): sends what the producer queued, its end, or waits.
  void stream_step();
  // The stream leaves the connection; its producer is told the client went away unless it ended.
  void drop_stream();
  // Whether the response may switch protocols: a 101 with a tunnel, to a request that asked.
  // Otherwise the tunnel (if any) is told it closed and the answer becomes 500 or 503.
  bool accept_switch();
  // The connection carries tunnel_ from now on: its out() is what goes to the client, and the
  // connection holds itself until close().
  void carry_tunnel();
  // The 101's head is out: the tunnel starts both ways.
  void start_tunnel();
  // Hands what the client sent to the tunnel; then reads on, waits (paused), or ends.
  void tunnel_input();
  // The tunnel's side to the client ended: a half-close, then reading until the client's end.
  void tunnel_output_ended();
  H2Check speaks_h2() const;
  // The connection carries HTTP/2 from now on: a session (http/internal/h2_session.h) as its
  // tunnel.
  void start_h2();

  std::shared_ptr<Worker> worker_;
  ServerShared& shared_;
  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  Request req_;
  std::optional<RequestParser> parser_;
  std::unique_ptr<ssl_st, SslFree> tls_;  // null: plain HTTP
  std::array<asio::const_buffer, 2> tls_out_{};
  bool tls_handshake_done_ = false;
  bool tls_read_wants_write_ = false;  // the session must send before it can read on
  bool tls_out_is_continue_ = false;
  bool tls_broken_ = false;  // a failed SSL call, or close_notify sent: none may follow
  Response resp_;
  std::string head_;
  std::shared_ptr<BodyStream> stream_;  // the response's body in pieces, while it is sent
  std::string stream_buf_;              // what stream_step() is writing
  size_t stream_data_bytes_ = 0;        // of which the producer's bytes
  bool stream_chunked_ = false;
  bool stream_attached_ = false;  // the producer's writes wake this connection
  // This connection, while its stream waits for the producer: then nothing else may hold it.
  std::shared_ptr<Connection> stream_hold_;
  bool stream_done_ = false;  // the last chunk is on its way (or the body ends with the connection)
  // The response's switched protocol (101), from its head on; stream_ is then its out().
  std::shared_ptr<Tunnel> tunnel_;
  // This connection while it carries a tunnel: until close(), whatever waits or not.
  std::shared_ptr<Connection> tunnel_hold_;
  bool tunnel_input_ended_ = false;  // the client ended its side, and the tunnel was told
  bool upgrade_asked_ = false;       // the request asked to switch protocols
  std::shared_ptr<H2Session> h2_;    // HTTP/2: the session its tunnel carries
  State state_ = State::kIdle;
  Clock::TimePoint deadline_{};
  uint64_t seq_ = 0;
  int version_ = 11;
  int sync_write_depth_ = 0;
  bool keep_alive_ = true;
  bool draining_ = false;
  bool in_handler_ = false;
  bool have_response_ = false;
  bool is_head_ = false;
  bool continue_sent_ = false;
  // The socket's registration with its thread's Poller (http/internal/poller.h): readiness
  // waits cost no system call each.
  Poller* poller_;
  Poller::Key read_key_ = Poller::kNone;
  bool wait_pending_ = false;
  bool read_paused_ = false;
  bool peer_eof_ = false;
  bool write_pending_ = false;
  bool error_close_ = false;
  bool counted_ = true;
};

}  // namespace prescale::http::internal
