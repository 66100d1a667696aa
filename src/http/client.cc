#include "http/client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/clock.h"
#include "core/host_port.h"
#include "http/internal/h2_client_exchange.h"
#include "http/internal/parsers.h"
#include "http/internal/wire.h"
#include "http/tls.h"

namespace prescale::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr size_t kReadChunkBytes = 16 * 1024;
constexpr std::uint32_t kMaxResponseHeaderBytes = 64 * 1024;

Clock::TimePoint now() { return Clock::real().now(); }

bool idempotent(Method m) {
  return m == Method::kGet || m == Method::kHead || m == Method::kPut || m == Method::kDelete ||
         m == Method::kOptions;
}

}  // namespace

namespace internal {

// One request in flight, with everything needed to finish or retry it.
struct Exchange {
  std::string host;
  uint16_t port = 0;
  std::string key;  // host_port(): "host:port", "[::1]:port"; the pool key
  Request req;
  std::function<void(Result<Response>)> done;
  Clock::TimePoint deadline;
  bool retried = false;
};

class ClientConnection;

struct ClientCore : std::enable_shared_from_this<ClientCore> {
  explicit ClientCore(ClientOptions o);

  void start_threads();
  void stop();
  // Hands `ex` to a pooled connection or a new one.
  void submit(std::unique_ptr<Exchange> ex);
  void start_fresh(std::unique_ptr<Exchange> ex);
  // Puts a connection that finished an exchange cleanly back into the pool (or drops it).
  void release(const std::shared_ptr<ClientConnection>& conn);
  void arm_pool_sweep();
  void sweep_pool();
  bool on_client_thread() const;

  ClientOptions options;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::atomic<size_t> next_context{0};
  std::optional<asio::steady_timer> pool_sweep_timer;

  mutable std::mutex mu;
  std::unordered_map<std::string, std::vector<std::shared_ptr<ClientConnection>>> idle;
  std::unordered_set<ClientConnection*> live;  // every connection, for cancellation at destruction
  bool stopping = false;

  std::atomic<uint64_t> opened{0};
  std::atomic<uint64_t> reused{0};
  std::atomic<uint64_t> timeouts{0};
};

namespace {
thread_local const ClientCore* current_client = nullptr;
}  // namespace

// One TCP connection to one host:port, running one exchange at a time on its io_context.
class ClientConnection : public std::enable_shared_from_this<ClientConnection> {
 public:
  ClientConnection(std::shared_ptr<ClientCore> client, asio::io_context& ioc, std::string key)
      : client_(std::move(client)),
        ioc_(ioc),
        key_(std::move(key)),
        socket_(ioc),
        resolver_(ioc),
        timer_(ioc) {
    std::lock_guard lock(client_->mu);
    client_->live.insert(this);
  }

  ~ClientConnection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    std::lock_guard lock(client_->mu);
    client_->live.erase(this);
  }

  asio::io_context& io() { return ioc_; }
  const std::string& key() const { return key_; }
  Clock::TimePoint idle_since() const { return idle_since_; }
  void mark_idle() { idle_since_ = now(); }

  // For a pooled (idle, unused) connection: false when the peer closed it or sent something
  // unsolicited. A non-blocking peek, safe from any thread while the connection is idle.
  bool usable() {
    if (!socket_.is_open()) return false;
    if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return false;
    char c;
    const ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  // On this connection's thread.
  void connect_and_run(std::unique_ptr<Exchange> ex) {
    begin(std::move(ex), /*reused=*/false);
    if (abort_if_stopping()) return;
    const auto connect_deadline = std::min(ex_->deadline, now() + client_->options.connect_timeout);
    arm_timer(connect_deadline);
    error_code ec;
    auto address = asio::ip::make_address(ex_->host, ec);
    if (!ec) {
      std::array<tcp::endpoint, 1> endpoints = {tcp::endpoint(address, ex_->port)};
      asio::async_connect(
          socket_, endpoints,
          [self = shared_from_this(), id = id_](const error_code& e, const tcp::endpoint&) {
            self->on_connected(id, e);
          });
      return;
    }
    resolver_.async_resolve(
        ex_->host, std::to_string(ex_->port),
        [self = shared_from_this(), id = id_](const error_code& e,
                                              const tcp::resolver::results_type& results) {
          if (id != self->id_ || !self->ex_) return;
          // The timer may have fired after the name was resolved and before this ran: its
          // cancel() then came too late, and a connect started now would have no timer left.
          if (e || self->timed_out_) {
            self->finish_error(self->timed_out_ ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
                               self->timed_out_
                                   ? "connect timed out"
                                   : "cannot resolve " + self->ex_->host + ": " + e.message(),
                               false);
            return;
          }
          asio::async_connect(self->socket_, results,
                              [self, id](const error_code& e2, const tcp::endpoint&) {
                                self->on_connected(id, e2);
                              });
        });
  }

  // On this connection's thread; the connection came from the pool.
  void run_reused(std::unique_ptr<Exchange> ex) {
    begin(std::move(ex), /*reused=*/true);
    if (abort_if_stopping()) return;
    arm_timer(ex_->deadline);
    send();
  }

  // On this connection's thread, at Client destruction.
  void cancel() {
    cancelled_ = true;
    error_code ignored;
    resolver_.cancel();
    socket_.close(ignored);
  }

 private:
  void begin(std::unique_ptr<Exchange> ex, bool reused) {
    ex_ = std::move(ex);
    ++id_;
    reused_ = reused;
    timed_out_ = false;
    got_response_bytes_ = false;
    tls_read_wants_write_ = false;
    resp_ = Response();
  }

  bool abort_if_stopping() {
    if (!cancelled_) {
      std::lock_guard lock(client_->mu);
      if (!client_->stopping) return false;
    }
    finish_error(ErrorCode::kCancelled, "client is shutting down", false);
    return true;
  }

  void arm_timer(Clock::TimePoint deadline) {
    timer_.expires_at(std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            deadline.time_since_epoch())));
    timer_.async_wait([self = shared_from_this(), id = id_](const error_code& ec) {
      if (ec || id != self->id_ || !self->ex_) return;
      self->timed_out_ = true;
      error_code ignored;
      self->resolver_.cancel();
      self->socket_.close(ignored);
    });
  }

  void on_connected(uint64_t id, const error_code& ec) {
    if (id != id_ || !ex_) return;
    if (ec) {
      if (timed_out_) {
        finish_error(ErrorCode::kTimeout, "connect to " + ex_->key + " timed out", false);
      } else if (cancelled_) {
        finish_error(ErrorCode::kCancelled, "client is shutting down", false);
      } else {
        finish_error(ErrorCode::kUnavailable, "connect to " + ex_->key + ": " + ec.message(),
                     false);
      }
      return;
    }
    client_->opened.fetch_add(1, std::memory_order_relaxed);
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    socket_.non_blocking(true, ignored);  // reads are attempted directly on readiness
    arm_timer(ex_->deadline);             // from here the request timeout alone applies
    if (client_->options.http2) {
      start_h2();
      return;
    }
    if (client_->options.tls) {
      start_tls();
      return;
    }
    send();
  }

  // ClientOptions::http2: the request as one stream, then the connection's end.
  void start_h2() {
    if (client_->options.tls) {
      finish_error(ErrorCode::kInvalidArgument, "HTTP/2 is not offered over TLS", false);
      return;
    }
    if (!valid_request()) return;
    out_.clear();
    internal::append_request_head(out_, ex_->req, internal::host_field(ex_->host, ex_->port));
    h2_ = std::make_unique<internal::H2ClientExchange>(
        out_, ex_->req.body, kMaxResponseHeaderBytes, client_->options.max_response_body_bytes);
    h2_step(id_);
    h2_read(id_);
  }

  void h2_step(uint64_t id) {
    if (id != id_ || !ex_) return;
    if (h2_->finished()) {
      finish_h2();
      return;
    }
    if (h2_writing_) return;
    h2_out_.clear();
    h2_->output(h2_out_);
    if (h2_out_.empty()) return;
    h2_writing_ = true;
    asio::async_write(socket_, asio::buffer(h2_out_),
                      [self = shared_from_this(), id](const error_code& ec, size_t) {
                        self->h2_writing_ = false;
                        if (id != self->id_ || !self->ex_) return;
                        if (ec) {
                          self->h2_failed(ec);
                          return;
                        }
                        self->h2_step(id);
                      });
  }

  void h2_read(uint64_t id) {
    socket_.async_read_some(asio::buffer(h2_in_),
                            [self = shared_from_this(), id](const error_code& ec, size_t n) {
                              if (id != self->id_ || !self->ex_) return;
                              if (ec) {
                                self->h2_failed(ec);
                                return;
                              }
                              self->h2_->input(self->h2_in_.data(), n);
                              self->h2_step(id);
                              if (id == self->id_ && self->ex_) self->h2_read(id);
                            });
  }

  void h2_failed(const error_code& ec) {
    if (timed_out_) {
      finish_error(ErrorCode::kTimeout, "request to " + ex_->key + " timed out", false);
    } else if (cancelled_) {
      finish_error(ErrorCode::kCancelled, "client is shutting down", false);
    } else {
      finish_error(ErrorCode::kUnavailable,
                   "connection to " + ex_->key + " failed: " +
                       (ec == asio::error::eof ? std::string("closed") : ec.message()),
                   false);
    }
  }

  void finish_h2() {
    Result<Response> r = h2_->result();
    if (!r) {
      finish_error(r.error().code, "HTTP/2 exchange with " + ex_->key + ": " + r.error().message,
                   false);
      return;
    }
    timer_.cancel();
    error_code ignored;
    socket_.close(ignored);
    auto ex = std::move(ex_);
    ++id_;
    ex->done(std::move(*r));
  }

  // TLS, as the server does it: OpenSSL on the non-blocking socket, waiting on its readiness.
  void start_tls() {
    ERR_clear_error();
    ssl_ = SSL_new(client_->options.tls->native());
    if (ssl_ == nullptr || SSL_set_fd(ssl_, socket_.native_handle()) != 1) {
      finish_error(ErrorCode::kInternal, "TLS to " + ex_->key + ": " + client_tls_error(ssl_),
                   false);
      return;
    }
    // The certificate must name the host: its DNS name, or its IP address (an IPv6 one without
    // its zone id, which names an interface of this machine); a name goes by SNI. Nothing is
    // sent unless the name to check was taken.
    error_code not_ip;
    asio::ip::address ip = asio::ip::make_address(ex_->host, not_ip);
    bool named = false;
    if (!not_ip) {
      if (ip.is_v6()) {
        asio::ip::address_v6 v6 = ip.to_v6();
        v6.scope_id(0);
        ip = v6;
      }
      named = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), ip.to_string().c_str()) == 1;
    } else {
      named = SSL_set1_host(ssl_, ex_->host.c_str()) == 1 &&
              SSL_set_tlsext_host_name(ssl_, ex_->host.c_str()) == 1;
    }
    if (!named) {
      finish_error(
          ErrorCode::kInternal,
          "TLS to " + ex_->key + ": cannot set the name to verify: " + client_tls_error(ssl_),
          false);
      return;
    }
    SSL_set_connect_state(ssl_);
    handshake(id_);
  }

  // The timer and a cancel close the socket: a readiness handler already queued may still run,
  // and OpenSSL, which holds the descriptor's number, must not touch it then (another
  // connection of the process may have it by now).
  bool tls_socket_gone() const { return !socket_.is_open(); }

  void handshake(uint64_t id) {
    if (id != id_ || !ex_) return;
    if (tls_socket_gone()) {
      fail_handshake("the connection was closed");
      return;
    }
    ERR_clear_error();
    errno = 0;
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      send();
      return;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      tls_wait(e, id, &ClientConnection::handshake,
               [](ClientConnection& c, const std::string& why) { c.fail_handshake(why); });
      return;
    }
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
      fail_handshake("the server closed the connection");
      return;
    }
    const std::string why = e == SSL_ERROR_SYSCALL ? std::strerror(errno) : client_tls_error(ssl_);
    ERR_clear_error();
    fail_handshake(why);
  }

  // Waits for the readiness OpenSSL asked for (`ssl_error`: SSL_ERROR_WANT_READ or _WRITE), then
  // takes up `step` again, or calls `fail` with the reason when the wait fails; nothing once the
  // exchange `id` is over.
  void tls_wait(int ssl_error, uint64_t id, void (ClientConnection::*step)(uint64_t),
                void (*fail)(ClientConnection&, const std::string&)) {
    socket_.async_wait(
        ssl_error == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
        [self = shared_from_this(), id, step, fail](const error_code& ec) {
          if (id != self->id_ || !self->ex_) return;
          if (ec) {
            fail(*self, ec.message());
            return;
          }
          ((*self).*step)(id);
        });
  }

  void fail_handshake(const std::string& why) {
    if (timed_out_) {
      finish_error(ErrorCode::kTimeout, "TLS handshake with " + ex_->key + " timed out", false);
    } else if (cancelled_) {
      finish_error(ErrorCode::kCancelled, "client is shutting down", false);
    } else {
      finish_error(ErrorCode::kUnavailable, "TLS handshake with " + ex_->key + " failed: " + why,
                   false);
    }
  }

  // Writes what is left of tls_out_, waiting for the socket when OpenSSL asks.
  void tls_write(uint64_t id) {
    if (id != id_ || !ex_ || write_done_) return;
    if (tls_socket_gone()) {
      fail_io(asio::error::operation_aborted, tls_sent_ == 0);
      return;
    }
    while (tls_sent_ < tls_out_.size()) {
      ERR_clear_error();
      errno = 0;
      size_t n = 0;
      const int r =
          SSL_write_ex(ssl_, tls_out_.data() + tls_sent_, tls_out_.size() - tls_sent_, &n);
      if (r == 1) {
        tls_sent_ += n;
        continue;
      }
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        tls_wait(e, id, &ClientConnection::tls_write,
                 [](ClientConnection& c, const std::string& why) {
                   if (!c.write_done_) c.fail_io(why, c.tls_sent_ == 0);
                 });
        return;
      }
      const std::string why = e == SSL_ERROR_SYSCALL ? std::strerror(errno != 0 ? errno : EPIPE)
                                                     : client_tls_error(ssl_);
      ERR_clear_error();
      fail_io(why, tls_sent_ == 0);
      return;
    }
    write_done_ = true;
    tls_out_ = std::string();  // the body's copy
  }

  // Whether the request can be written; fails the exchange when not.
  bool valid_request() {
    const std::string_view method = internal::request_method_token(ex_->req);
    if (method.empty() || !internal::valid_target(method)) {  // no space, no control character
      finish_error(ErrorCode::kInvalidArgument,
                   "request method is empty or holds a space or a control character", false);
      return false;
    }
    const Request& req = ex_->req;
    if (!internal::valid_target(req.target) || !internal::valid_target(req.path) ||
        !internal::valid_target(req.query)) {
      // CR or LF would end the request line early and make the rest further headers or
      // requests (request splitting).
      finish_error(ErrorCode::kInvalidArgument,
                   "request target holds a space or a control character", false);
      return false;
    }
    return true;
  }

  void send() {
    out_.clear();
    const std::string host_header =
        internal::host_field(ex_->host, ex_->port, client_->options.tls ? 443 : 80);
    if (!valid_request()) return;
    internal::append_request_head(out_, ex_->req, host_header);
    expect_close_ = false;
    if (auto c = ex_->req.headers.get("Connection"); c && internal::has_token(*c, "close")) {
      expect_close_ = true;
    }
    buffer_.clear();
    start_parser();
    write_done_ = false;
    peer_eof_ = false;
    if (ssl_ != nullptr) {
      arm_wait();
      tls_out_ = out_;
      tls_out_ += ex_->req.body;
      tls_sent_ = 0;
      tls_write(id_);
      return;
    }
    std::array<asio::const_buffer, 2> buffers = {asio::buffer(out_), asio::buffer(ex_->req.body)};
    asio::async_write(socket_, buffers,
                      [self = shared_from_this(), id = id_](const error_code& ec, size_t n) {
                        self->on_written(id, ec, n);
                      });
    // Watch for the response from now on (not from the write's completion): readiness that
    // arrived with nothing waiting for it would be lost with the edge-triggered reactor.
    arm_wait();
  }

  void on_written(uint64_t id, const error_code& ec, size_t n) {
    if (id != id_ || !ex_) return;
    write_done_ = true;
    if (ec) fail_io(ec, /*nothing_sent=*/n == 0);
  }

  void start_parser() {
    parser_.emplace(resp_);
    parser_->eager(true);
    parser_->header_limit(kMaxResponseHeaderBytes);
    parser_->body_limit(static_cast<std::uint64_t>(client_->options.max_response_body_bytes));
    if (ex_->req.method == Method::kHead) parser_->skip(true);
  }

  // Readiness-based reading, as in the server: no speculative recv() per response.
  void arm_wait() {
    if (tls_read_wants_write_) {
      socket_.async_wait(tcp::socket::wait_write,
                         [self = shared_from_this(), id = id_](const error_code& ec) {
                           self->on_readable(id, ec);
                         });
      return;
    }
    socket_.async_wait(
        tcp::socket::wait_read,
        [self = shared_from_this(), id = id_](const error_code& ec) { self->on_readable(id, ec); });
  }

  void on_readable(uint64_t id, const error_code& ec) {
    if (id != id_ || !ex_) return;
    if (ec) {
      fail_io(ec, /*nothing_sent=*/false);
      return;
    }
    if (ssl_ != nullptr) {
      if (tls_socket_gone()) {
        fail_io(asio::error::operation_aborted, false);
        return;
      }
      if (!tls_read()) return;
    } else {
      // Read until drained: a short read means the socket is empty and new data raises a new
      // readiness edge.
      while (true) {
        error_code rec;
        const size_t n = socket_.read_some(buffer_.prepare(kReadChunkBytes), rec);
        if (rec == asio::error::would_block || rec == asio::error::try_again) break;
        if (rec == asio::error::eof) {
          peer_eof_ = true;
          break;
        }
        if (rec) {
          fail_io(rec, /*nothing_sent=*/false);
          return;
        }
        buffer_.commit(n);
        if (n < kReadChunkBytes) break;
      }
    }
    if (!parse_response()) return;
    if (peer_eof_) {
      if (parser_->got_some()) {
        // A body delimited by the end of the connection ends here.
        error_code e;
        parser_->put_eof(e);
        if (!e && parser_->is_done()) {
          expect_close_ = true;
          finish_ok();
          return;
        }
      }
      fail_io(asio::error::eof, /*nothing_sent=*/false);
      return;
    }
    arm_wait();
  }

  // Reads what OpenSSL has until it wants more from the socket (records may be shorter than a
  // chunk with more behind them); false when the exchange failed.
  bool tls_read() {
    tls_read_wants_write_ = false;
    while (true) {
      ERR_clear_error();
      errno = 0;
      size_t n = 0;
      auto space = buffer_.prepare(kReadChunkBytes);
      const int r = SSL_read_ex(ssl_, space.data(), space.size(), &n);
      if (r == 1) {
        buffer_.commit(n);
        continue;
      }
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ) break;
      if (e == SSL_ERROR_WANT_WRITE) {  // a record it must send first (a key update's answer)
        tls_read_wants_write_ = true;
        break;
      }
      if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
        peer_eof_ = true;  // close_notify, or a FIN (SSL_OP_IGNORE_UNEXPECTED_EOF)
        break;
      }
      const std::string why =
          e == SSL_ERROR_SYSCALL ? std::strerror(errno) : client_tls_error(ssl_);
      ERR_clear_error();
      fail_io(why, false);
      return false;
    }
    // A write that waited on the peer's records (a key update) may go on now.
    if (!write_done_ && tls_sent_ < tls_out_.size()) tls_write(id_);
    return ex_ != nullptr;
  }

  // Feeds the buffer to the parser; false when the exchange finished (either way).
  bool parse_response() {
    while (buffer_.size() > 0) {
      got_response_bytes_ = true;
      error_code ec;
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec && ec != boost::beast::http::error::need_more) {
        if (ec == boost::beast::http::error::body_limit) {
          finish_error(ErrorCode::kOutOfRange,
                       "response body from " + ex_->key + " exceeds max_response_body_bytes",
                       false);
        } else {
          finish_error(ErrorCode::kUnavailable,
                       "malformed response from " + ex_->key + ": " + ec.message(), false);
        }
        return false;
      }
      if (parser_->is_done()) {
        if (resp_.status / 100 == 1 && resp_.status != 101) {
          resp_ = Response();  // interim (e.g. 100 Continue): the real response follows
          start_parser();
          continue;
        }
        finish_ok();
        return false;
      }
      if (used == 0) break;
    }
    return true;
  }

  void fail_io(const error_code& ec, bool nothing_sent) { fail_io(ec.message(), nothing_sent); }

  void fail_io(const std::string& why, bool nothing_sent) {
    if (timed_out_) {
      finish_error(ErrorCode::kTimeout, "request to " + ex_->key + " timed out", false);
      return;
    }
    if (cancelled_) {
      finish_error(ErrorCode::kCancelled, "client is shutting down", false);
      return;
    }
    // A reused connection the server had already closed: retry once on a fresh one if the
    // server cannot have acted on the request.
    const bool retry =
        reused_ && !got_response_bytes_ && (nothing_sent || idempotent(ex_->req.method));
    finish_error(ErrorCode::kUnavailable, "connection to " + ex_->key + " failed: " + why, retry);
  }

  void finish_ok() {
    timer_.cancel();
    auto ex = std::move(ex_);
    ++id_;
    Response resp = std::move(resp_);
    // An early response (before the request was fully written) leaves the stream unusable.
    const bool reusable = parser_->keep_alive() && !expect_close_ && buffer_.size() == 0 &&
                          !cancelled_ && write_done_ && resp.status != 101;
    if (reusable) {
      client_->release(shared_from_this());
    } else {
      if (ssl_ != nullptr && !peer_eof_ && !tls_socket_gone()) {
        SSL_shutdown(ssl_);  // close_notify, not waited for
        ERR_clear_error();
      }
      error_code ignored;
      socket_.close(ignored);
    }
    ex->done(std::move(resp));
  }

  void finish_error(ErrorCode code, std::string message, bool retry) {
    timer_.cancel();
    error_code ignored;
    socket_.close(ignored);
    auto ex = std::move(ex_);
    ++id_;
    if (retry && !ex->retried) {
      ex->retried = true;
      client_->start_fresh(std::move(ex));
      return;
    }
    if (code == ErrorCode::kTimeout) client_->timeouts.fetch_add(1, std::memory_order_relaxed);
    ex->done(make_error(code, std::move(message)));
  }

  std::shared_ptr<ClientCore> client_;
  asio::io_context& ioc_;
  std::string key_;
  tcp::socket socket_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  boost::beast::flat_buffer buffer_;
  std::optional<internal::ResponseParser> parser_;
  Response resp_;
  std::string out_;
  std::unique_ptr<Exchange> ex_;
  std::unique_ptr<internal::H2ClientExchange> h2_;  // with ClientOptions::http2
  std::array<uint8_t, kReadChunkBytes> h2_in_{};
  std::string h2_out_;
  bool h2_writing_ = false;
  SSL* ssl_ = nullptr;   // with ClientOptions::tls, once connected
  std::string tls_out_;  // the request's head and body, as TLS writes them
  size_t tls_sent_ = 0;
  bool tls_read_wants_write_ = false;  // the last SSL_read asked for the socket to be writable
  uint64_t id_ = 0;  // bumps per exchange, so stale completions are recognized
  Clock::TimePoint idle_since_{};
  bool reused_ = false;
  bool timed_out_ = false;
  bool cancelled_ = false;
  bool got_response_bytes_ = false;
  bool expect_close_ = false;
  bool write_done_ = false;
  bool peer_eof_ = false;
};

ClientCore::ClientCore(ClientOptions o) : options(std::move(o)) {
  const int n = std::max(options.threads, 1);
  for (int i = 0; i < n; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
    guards.push_back(asio::make_work_guard(*contexts.back()));
  }
  pool_sweep_timer.emplace(*contexts[0]);
}

void ClientCore::start_threads() {
  arm_pool_sweep();
  for (auto& ctx : contexts) {
    threads.emplace_back([this, c = ctx.get()] {
      // As the server's I/O threads: OpenSSL's writes carry no MSG_NOSIGNAL, and a server gone
      // would raise SIGPIPE, whose default kills the process; blocked, the write fails (EPIPE).
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      current_client = this;
      while (true) {
        try {
          c->run();
          return;
        } catch (...) {
          // A throwing `done` callback must not stop the client.
        }
      }
    });
  }
}

void ClientCore::stop() {
  std::vector<std::shared_ptr<ClientConnection>> dropped;
  std::vector<std::weak_ptr<ClientConnection>> active;
  {
    std::lock_guard lock(mu);
    stopping = true;
    for (auto& [key, conns] : idle) {
      for (auto& c : conns) dropped.push_back(std::move(c));
    }
    idle.clear();
    for (ClientConnection* c : live) active.push_back(c->weak_from_this());
  }
  dropped.clear();
  for (auto& w : active) {
    if (auto c = w.lock()) asio::post(c->io(), [c] { c->cancel(); });
  }
  asio::post(*contexts[0], [this] { pool_sweep_timer->cancel(); });
  guards.clear();
  for (auto& t : threads) t.join();
  threads.clear();
}

bool ClientCore::on_client_thread() const { return current_client == this; }

void ClientCore::submit(std::unique_ptr<Exchange> ex) {
  std::shared_ptr<ClientConnection> conn;
  std::vector<std::shared_ptr<ClientConnection>> discarded;
  {
    std::lock_guard lock(mu);
    if (!stopping) {
      auto it = idle.find(ex->key);
      if (it != idle.end()) {
        auto& conns = it->second;
        const auto oldest_ok = now() - options.idle_timeout;
        while (!conns.empty()) {
          auto c = std::move(conns.back());
          conns.pop_back();
          if (c->idle_since() >= oldest_ok && c->usable()) {
            conn = std::move(c);
            break;
          }
          discarded.push_back(std::move(c));
        }
      }
    }
  }
  discarded.clear();
  if (!conn) {
    start_fresh(std::move(ex));
    return;
  }
  reused.fetch_add(1, std::memory_order_relaxed);
  auto* raw = conn.get();
  asio::post(raw->io(), [conn = std::move(conn), ex = std::move(ex)]() mutable {
    conn->run_reused(std::move(ex));
  });
}

void ClientCore::start_fresh(std::unique_ptr<Exchange> ex) {
  auto& ctx = *contexts[next_context.fetch_add(1, std::memory_order_relaxed) % contexts.size()];
  auto conn = std::make_shared<ClientConnection>(shared_from_this(), ctx, ex->key);
  asio::post(ctx, [conn = std::move(conn), ex = std::move(ex)]() mutable {
    conn->connect_and_run(std::move(ex));
  });
}

void ClientCore::release(const std::shared_ptr<ClientConnection>& conn) {
  std::lock_guard lock(mu);
  if (stopping) return;
  auto& conns = idle[conn->key()];
  if (conns.size() >= options.max_idle_per_host) return;  // dropped: closes when released
  conn->mark_idle();
  conns.push_back(conn);
}

void ClientCore::arm_pool_sweep() {
  const auto period = std::clamp<std::chrono::milliseconds>(
      options.idle_timeout / 2, std::chrono::milliseconds(50), std::chrono::seconds(5));
  pool_sweep_timer->expires_after(period);
  pool_sweep_timer->async_wait([this](const error_code& ec) {
    if (ec) return;
    sweep_pool();
    // Not again once stop() has begun: a completion queued before its cancel ran has no error,
    // and arming the timer again would keep the I/O thread in run() for good.
    {
      std::lock_guard lock(mu);
      if (stopping) return;
    }
    arm_pool_sweep();
  });
}

void ClientCore::sweep_pool() {
  // Closes idle connections that expired or that the server closed, so they do not linger
  // as half-closed sockets.
  std::vector<std::shared_ptr<ClientConnection>> discarded;
  {
    std::lock_guard lock(mu);
    const auto oldest_ok = now() - options.idle_timeout;
    for (auto it = idle.begin(); it != idle.end();) {
      auto& conns = it->second;
      std::erase_if(conns, [&](std::shared_ptr<ClientConnection>& c) {
        if (c->idle_since() >= oldest_ok && c->usable()) return false;
        discarded.push_back(std::move(c));
        return true;
      });
      it = conns.empty() ? idle.erase(it) : std::next(it);
    }
  }
}

}  // namespace internal

Client::Client(ClientOptions options)
    : impl_(std::make_shared<internal::ClientCore>(std::move(options))) {
  impl_->start_threads();
}

Client::~Client() { impl_->stop(); }

void Client::async_request(std::string host, uint16_t port, Request req,
                           std::function<void(Result<Response>)> done,
                           std::optional<std::chrono::milliseconds> timeout) {
  auto ex = std::make_unique<internal::Exchange>();
  ex->key = host_port(host, port);
  ex->host = std::move(host);
  ex->port = port;
  ex->req = std::move(req);
  ex->done = std::move(done);
  ex->deadline = now() + timeout.value_or(impl_->options.request_timeout);
  impl_->submit(std::move(ex));
}

Result<Response> Client::request(std::string host, uint16_t port, Request req,
                                 std::optional<std::chrono::milliseconds> timeout) {
  if (impl_->on_client_thread()) {
    return make_error(ErrorCode::kInternal,
                      "Client::request called on a client I/O thread (it would deadlock)");
  }
  std::promise<Result<Response>> promise;
  auto future = promise.get_future();
  async_request(
      std::move(host), port, std::move(req),
      [&promise](Result<Response> r) { promise.set_value(std::move(r)); }, timeout);
  return future.get();
}

std::vector<Result<Response>> Client::get_all(const std::vector<Peer>& peers,
                                              const std::string& target,
                                              std::optional<std::chrono::milliseconds> timeout) {
  struct Answers {
    std::mutex mu;
    std::condition_variable all_in;
    size_t left = 0;
    std::vector<std::optional<Result<Response>>> results;
  };
  auto answers = std::make_shared<Answers>();
  answers->left = peers.size();
  answers->results.resize(peers.size());
  if (impl_->on_client_thread()) {
    return std::vector<Result<Response>>(
        peers.size(),
        make_error(ErrorCode::kInternal,
                   "Client::get_all called on a client I/O thread (it would deadlock)"));
  }
  for (size_t i = 0; i < peers.size(); ++i) {
    Request req;
    req.method = Method::kGet;
    req.method_name = "GET";
    req.target = target;
    async_request(
        peers[i].host, peers[i].port, std::move(req),
        [answers, i](Result<Response> r) {
          std::lock_guard lock(answers->mu);
          answers->results[i] = std::move(r);
          if (--answers->left == 0) answers->all_in.notify_all();
        },
        timeout);
  }
  std::unique_lock lock(answers->mu);
  answers->all_in.wait(lock, [&] { return answers->left == 0; });
  std::vector<Result<Response>> out;
  out.reserve(peers.size());
  for (auto& r : answers->results) out.push_back(std::move(*r));
  return out;
}

Client::Stats Client::stats() const {
  return Stats{impl_->opened.load(), impl_->reused.load(), impl_->timeouts.load()};
}

}  // namespace prescale::http
