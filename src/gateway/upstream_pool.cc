#include "gateway/upstream_pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cerrno>
#include <optional>
#include <vector>

#include "core/host_port.h"
#include "gateway/internal/h2_upstream.h"
#include "http/body_stream.h"
#include "http/internal/parsers.h"
#include "http/internal/poller.h"
#include "http/tunnel.h"

namespace prescale::gateway {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr size_t kReadChunkBytes = size_t{16} * 1024;

Clock::TimePoint now() { return Clock::real().now(); }

// A counter written by one thread and read by any: a plain load and store, no locked
// instruction on the request path.
class StatCounter {
 public:
  void add(int64_t delta) {
    v_.store(v_.load(std::memory_order_relaxed) + static_cast<uint64_t>(delta),
             std::memory_order_relaxed);
  }
  void set(uint64_t v) { v_.store(v, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

}  // namespace

std::string_view to_string(ExchangeError error) {
  switch (error) {
    case ExchangeError::kNone:
      return "none";
    case ExchangeError::kConnectFailed:
      return "connect_failed";
    case ExchangeError::kConnectTimeout:
      return "connect_timeout";
    case ExchangeError::kReset:
      return "reset";
    case ExchangeError::kMalformed:
      return "malformed";
    case ExchangeError::kTimeout:
      return "timeout";
    case ExchangeError::kCancelled:
      return "cancelled";
    case ExchangeError::kOverflow:
      return "overflow";
  }
  return "none";
}

bool Exchange::stream_body(const http::Response&) { return false; }

void Exchange::on_stream_end(bool) {}

namespace internal {

// One endpoint's idle connections, the most recently used last.
struct EndpointPool {
  std::string host;
  uint16_t port = 0;
  std::string label;                         // "host:port", "[::1]:port"
  std::optional<asio::ip::address> address;  // the host as an IP literal; else resolved
  std::vector<std::shared_ptr<UpstreamConnection>> idle;
};

struct PoolCore : std::enable_shared_from_this<PoolCore> {
  PoolCore(asio::io_context& context, UpstreamPoolOptions o) : io(context), options(o) {
    sweep_timer.emplace(io);
  }

  EndpointPool& endpoint(std::string_view host, uint16_t port);
  // False, with ex.error and ex.detail set, when ex.admission refuses a new connection.
  bool start_fresh(EndpointPool& ep, Exchange& ex);
  void release(std::shared_ptr<UpstreamConnection> conn);
  void drop_idle(UpstreamConnection* conn);
  void link(UpstreamConnection* c);
  void unlink(UpstreamConnection* c);
  void ensure_sweep();
  void sweep();
  void stop();

  asio::io_context& io;
  const UpstreamPoolOptions options;
  std::chrono::milliseconds timeout_resolution = options.timeout_resolution;
  EndpointMap<EndpointPool> endpoints;
  UpstreamConnection* active_head = nullptr;  // connecting or busy connections
  std::optional<asio::steady_timer> sweep_timer;
  bool sweep_armed = false;
  bool stopped = false;
  std::vector<std::shared_ptr<UpstreamConnection>> scratch;  // sweep snapshot, reused
  // HTTP/2 upstreams (Exchange::http2), made at the first such exchange.
  std::unique_ptr<H2Upstreams> h2;
  std::atomic<const H2Upstreams*> h2_ready{nullptr};  // h2, for stats() on other threads
  H2Upstreams& http2() {
    if (!h2) {
      h2 = std::make_unique<H2Upstreams>(io, options);
      h2->set_timeout_resolution(timeout_resolution);
      h2_ready.store(h2.get(), std::memory_order_release);
    }
    return *h2;
  }

  StatCounter opened, reused, stale_retries, idle_count, active_count;
};

// One TCP connection to one endpoint, running one exchange at a time.
class UpstreamConnection : public std::enable_shared_from_this<UpstreamConnection> {
 public:
  // kStreaming: the exchange is complete, and the connection writes its response's body to the
  // stream it was handed on in (Exchange::stream_body()). kTunnel: it answered 101 to an
  // upgrade (Exchange::upgrade) and carries the bytes of both sides.
  enum class State { kConnecting, kBusy, kStreaming, kTunnel, kIdle, kClosed };

  UpstreamConnection(std::shared_ptr<PoolCore> pool, EndpointPool& ep)
      : pool_(std::move(pool)),
        ep_(ep),
        socket_(pool_->io),
        poller_(http::internal::Poller::of(pool_->io)) {}
  ~UpstreamConnection() {
    if (linked) pool_->unlink(this);
    poller_.remove(read_key_);
  }
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  State state() const { return state_; }
  EndpointPool& endpoint() const { return ep_; }
  Clock::TimePoint deadline() const { return deadline_; }
  Clock::TimePoint idle_since() const { return idle_since_; }

  // A fresh connection: resolve (unless an IP literal), connect, then run `ex`. `permit`: its
  // admission (ConnectionAdmission), or null.
  void connect(Exchange& ex, std::unique_ptr<ConnectionAdmission::Permit> permit) {
    permit_ = std::move(permit);
    attach(ex, /*reused=*/false);
    state_ = State::kConnecting;
    deadline_ = std::min(ex.deadline, now() + pool_->options.connect_timeout);
    pool_->link(this);
    if (ep_.address) {
      socket_.async_connect(
          tcp::endpoint(*ep_.address, ep_.port),
          [self = shared_from_this()](const error_code& ec) { self->on_connected(ec); });
      return;
    }
    resolver_.emplace(pool_->io);
    resolver_->async_resolve(
        ep_.host, std::to_string(ep_.port),
        [self = shared_from_this()](const error_code& ec,
                                    const tcp::resolver::results_type& results) {
          if (self->state_ != State::kConnecting) return;
          if (ec) {
            self->finish_error(ExchangeError::kConnectFailed,
                               "cannot resolve " + self->ep_.host + ": " + ec.message());
            return;
          }
          asio::async_connect(
              self->socket_, results,
              [self](const error_code& e, const tcp::endpoint&) { self->on_connected(e); });
        });
  }

  // A pooled connection: send `ex` at once.
  void run(Exchange& ex) {
    attach(ex, /*reused=*/true);
    state_ = State::kBusy;
    deadline_ = ex.deadline;
    pool_->link(this);
    send();
  }

  // The owner gave up on the exchange: close without completing it.
  void abort() {
    if (ex_ == nullptr) return;
    detach();
    close();
  }

  void on_deadline() {
    if (state_ == State::kConnecting) {
      finish_error(ExchangeError::kConnectTimeout,
                   "connect to " + ep_.label + " timed out" +
                       (deadline_ == ex_->deadline
                            ? std::string()
                            : " after " + format_millis(pool_->options.connect_timeout)));
    } else if (state_ == State::kBusy) {
      finish_error(ExchangeError::kTimeout, "no complete response from " + ep_.label + " in time");
    } else if (state_ == State::kStreaming) {
      end_stream(false);  // silent for too long
    } else if (state_ == State::kTunnel) {
      end_tunnel(false);
    }
  }

  // Whether the upstream has not closed (or written to) this idle connection. Its FIN drops the
  // connection when its report is delivered, which may come after this request, so the
  // Poller's news is looked at first: an end reported means not usable; other news (possibly
  // spurious, or a read of left data posted) is checked with a recv() peek. With no news,
  // inside the callbacks of a batch that took every report pending (the common case: the
  // client's request reached us so), the socket had nothing new at the batch's fetch: that
  // spares the peek for an idempotent request, which is sent again if the connection turns
  // out closed (a FIN arriving during the batch); any other request has the peek.
  bool usable(bool idempotent) {
    if (!socket_.is_open() || poller_.ended(read_key_)) return false;
    if (idempotent && poller_.current() && !poller_.reported(read_key_)) return true;
    char c;
    const ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  void close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    permit_.reset();
    if (linked) pool_->unlink(this);
    poller_.remove(read_key_);  // drops a pending read, as closing would
    read_key_ = http::internal::Poller::kNone;
    error_code ignored;
    socket_.close(ignored);
    if (resolver_) resolver_->cancel();
  }

  // The pool stops: ends the running exchange, or cuts the body it streams.
  void finish_cancelled() {
    if (state_ == State::kStreaming) {
      end_stream(false);
      return;
    }
    if (state_ == State::kTunnel) {
      end_tunnel(false);
      return;
    }
    finish_error(ExchangeError::kCancelled, "the gateway is stopping");
  }

  UpstreamConnection* prev = nullptr;
  UpstreamConnection* next = nullptr;
  bool linked = false;

 private:
  void attach(Exchange& ex, bool reused) {
    ex_ = &ex;
    ex.conn_ = this;
    reused_ = reused;
    sent_ = false;
    write_done_ = false;
    got_bytes_ = false;
    peer_eof_ = false;
    start_parser();
  }

  // The head of a response whose body streams has come (Exchange::stream_body()): the exchange
  // completes with the stream, and the connection writes the body to it from now on.
  void start_stream() {
    stream_ = std::make_shared<http::BodyStream>();
    parser_->body_limit(boost::none);  // no limit on a stream; its idle timeout bounds it
    parser_->body_to(pump_buf_);
    const std::string first = std::move(ex_->response.body);
    ex_->response.body.clear();
    stream_->write(first);
    ex_->response.stream = stream_;
    idle_timeout_ = ex_->stream_idle_timeout;
    keep_self_ = shared_from_this();  // a paused stream has no read pending to keep it
    Exchange* ex = detach();
    streaming_ex_ = ex;
    state_ = State::kStreaming;
    deadline_ = now() + idle_timeout_;
    pool_->link(this);
    std::weak_ptr<UpstreamConnection> weak = weak_from_this();
    stream_->set_on_drained([weak] {
      if (auto self = weak.lock()) self->resume_stream();
    });
    stream_->set_on_gone([weak] {
      if (auto self = weak.lock()) self->end_stream(false);
    });
    ex->error = ExchangeError::kNone;
    ex->reused = reused_;
    ex->on_complete();
  }

  // Feeds what was read of a streamed body to the parser and its body to the stream.
  void pump() {
    while (state_ == State::kStreaming && buffer_.size() > 0) {
      error_code pec;
      const size_t used = parser_->put(buffer_.data(), pec);
      buffer_.consume(used);
      if (pec && pec != boost::beast::http::error::need_more) {
        end_stream(false);  // malformed framing: the body is cut
        return;
      }
      flush_pump();
      if (parser_->is_done()) {
        end_stream(true);
        return;
      }
      if (used == 0) break;
    }
    if (state_ != State::kStreaming) return;
    if (peer_eof_) {
      // A body delimited by the end of the connection ends here; any other is cut.
      error_code e;
      parser_->put_eof(e);
      flush_pump();
      end_stream(!e && parser_->is_done());
      return;
    }
    if (stream_->full()) {
      // The client reads more slowly than the upstream writes: stop reading (TCP holds the
      // upstream back) until the stream drains. The server's write timeout bounds the client.
      paused_ = true;
      deadline_ = Clock::TimePoint::max();
      return;
    }
    arm_read();
  }

  void flush_pump() {
    if (pump_buf_.empty()) return;
    stream_->write(pump_buf_);
    pump_buf_.clear();
  }

  void resume_stream() {
    if ((state_ != State::kStreaming && state_ != State::kTunnel) || !paused_) return;
    paused_ = false;
    deadline_ = now() + idle_timeout_;
    arm_read();
  }

  // The streamed body ended, `complete` or cut; the connection goes back to the pool when it can.
  void end_stream(bool complete) {
    if (state_ != State::kStreaming) return;
    const auto hold = std::move(keep_self_);
    auto stream = std::move(stream_);
    stream_ = nullptr;
    Exchange* ex = streaming_ex_;
    streaming_ex_ = nullptr;
    paused_ = false;
    // The connection may stream another body next: this one's callbacks must not reach it.
    stream->set_on_drained(nullptr);
    stream->set_on_gone(nullptr);
    if (linked) pool_->unlink(this);
    if (complete) {
      stream->end();
      release_or_close();
    } else {
      stream->abort();
      close();
    }
    ex->on_stream_end(complete);
  }

  // The upstream switched to the protocol asked (Exchange::upgrade): the exchange completes with
  // the tunnel, and the connection relays both sides from now on. Never back to the pool.
  void start_tunnel() {
    tunnel_ = std::make_shared<http::Tunnel>();
    ex_->response.tunnel = tunnel_;
    idle_timeout_ = ex_->tunnel_idle_timeout;
    keep_self_ = shared_from_this();  // paused both ways, nothing pending would keep it
    Exchange* ex = detach();
    streaming_ex_ = ex;
    state_ = State::kTunnel;
    deadline_ = now() + idle_timeout_;
    pool_->link(this);
    std::weak_ptr<UpstreamConnection> weak = weak_from_this();
    tunnel_->out().set_on_drained([weak] {
      if (auto self = weak.lock()) self->resume_stream();
    });
    tunnel_->set_on_data([weak](std::string_view data) {
      if (auto self = weak.lock()) self->to_upstream(data);
    });
    tunnel_->set_on_end([weak] {
      if (auto self = weak.lock()) self->client_ended();
    });
    tunnel_->set_on_closed([weak] {
      if (auto self = weak.lock()) self->client_closed();
    });
    ex->error = ExchangeError::kNone;
    ex->reused = reused_;
    ex->on_complete();
    tunnel_pump();  // what came behind the 101
  }

  // The upstream's bytes to the client, as read.
  void tunnel_pump() {
    if (state_ != State::kTunnel) return;
    if (buffer_.size() > 0) {
      const auto data = buffer_.data();
      tunnel_->out().write(std::string_view(static_cast<const char*>(data.data()), data.size()));
      buffer_.consume(data.size());
    }
    if (peer_eof_) {
      tunnel_->out().end();  // the client reads the end of the upstream's side
      return;
    }
    if (tunnel_->out().full()) {
      // on_drained resumes; meanwhile the server's write timeout bounds the client.
      paused_ = true;
      deadline_ = Clock::TimePoint::max();
      return;
    }
    arm_read();
  }

  // The client's bytes to the upstream: written as they come, the client paused while more than
  // BodyStream::kHighWater wait behind a write.
  void to_upstream(std::string_view data) {
    if (state_ != State::kTunnel) return;
    touch_tunnel();
    tunnel_out_.append(data);
    if (!tunnel_writing_) {
      write_tunnel();
    } else if (tunnel_out_.size() > http::BodyStream::kHighWater && !client_paused_) {
      client_paused_ = true;
      tunnel_->pause();
    }
  }

  void write_tunnel() {
    if (tunnel_out_.empty()) {
      resume_client();
      if (client_ended_ && !upstream_shut_) {
        upstream_shut_ = true;  // the upstream reads the end of the client's side
        error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
      }
      if (client_closed_) end_tunnel(client_ended_ && peer_eof_);
      return;
    }
    // What the socket takes at once (the common case: one send, no trip through the scheduler).
    error_code write_ec;
    const size_t n = socket_.write_some(asio::buffer(tunnel_out_), write_ec);
    if (write_ec && write_ec != asio::error::would_block && write_ec != asio::error::try_again) {
      end_tunnel(false);
      return;
    }
    if (n == tunnel_out_.size()) {
      tunnel_out_.clear();
      touch_tunnel();
      resume_client();
      if (client_ended_ || client_closed_) write_tunnel();  // the end follows what was written
      return;
    }
    // A paused client stays paused until this is written.
    tunnel_writing_buf_.assign(tunnel_out_, n);
    tunnel_out_.clear();
    tunnel_writing_ = true;
    asio::async_write(socket_, asio::buffer(tunnel_writing_buf_),
                      [self = shared_from_this()](const error_code& ec, size_t) {
                        self->tunnel_writing_ = false;
                        if (self->state_ != State::kTunnel) return;
                        if (ec) {
                          self->end_tunnel(false);
                          return;
                        }
                        self->touch_tunnel();
                        self->write_tunnel();
                      });
  }

  // Bytes passed: the tunnel's idle time starts again, unless the client is not taking the
  // upstream's (paused_: the server's write timeout bounds it then).
  void touch_tunnel() {
    if (!paused_) deadline_ = now() + idle_timeout_;
  }

  void resume_client() {
    if (!client_paused_) return;
    client_paused_ = false;
    tunnel_->resume();
  }

  void client_ended() {
    if (state_ != State::kTunnel) return;
    client_ended_ = true;
    if (!tunnel_writing_) write_tunnel();
  }

  // The client's connection closed. When both sides had ended theirs, what the client sent last
  // is written to the upstream first (within the idle timeout), then its end.
  void client_closed() {
    if (state_ != State::kTunnel) return;
    const bool complete = client_ended_ && peer_eof_;
    if (complete && (tunnel_writing_ || !tunnel_out_.empty())) {
      client_closed_ = true;  // write_tunnel() ends it once written
      return;
    }
    end_tunnel(complete);
  }

  // The tunnel is over: the client's connection closed (`complete` when both sides had ended),
  // or the upstream's failed, fell silent, or the pool stops.
  void end_tunnel(bool complete) {
    if (state_ != State::kTunnel) return;
    const auto hold = std::move(keep_self_);
    auto tunnel = std::move(tunnel_);
    tunnel_ = nullptr;
    Exchange* ex = streaming_ex_;
    streaming_ex_ = nullptr;
    paused_ = false;
    tunnel->out().set_on_drained(nullptr);
    if (!complete) {
      tunnel->abort();  // the client's connection is cut, if still open
      // And the upstream's: a reset, not the end of the client's side (which it may await
      // forever, reading on).
      error_code ignored;
      socket_.set_option(asio::socket_base::linger(true, 0), ignored);
    }
    close();
    ex->on_stream_end(complete);
  }

  void start_parser() {
    stream_asked_ = false;
    parser_.emplace(ex_->response);
    parser_->eager(true);
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(pool_->options.max_response_header_bytes, UINT32_MAX)));
    parser_->body_limit(static_cast<std::uint64_t>(pool_->options.max_response_body_bytes));
    if (ex_->head_request) parser_->skip(true);
  }

  Exchange* detach() {
    Exchange* ex = ex_;
    ex_ = nullptr;
    ex->conn_ = nullptr;
    if (linked) pool_->unlink(this);
    return ex;
  }

  void on_connected(const error_code& ec) {
    if (state_ != State::kConnecting) return;  // timed out or aborted meanwhile
    if (ec) {
      finish_error(ExchangeError::kConnectFailed, "connect to " + ep_.label + ": " + ec.message());
      return;
    }
    pool_->opened.add(1);
    if (permit_) permit_->connected();
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    error_code watch_ec;
    socket_.non_blocking(true, watch_ec);  // reads and writes are tried directly, never blocking
    if (!watch_ec) read_key_ = poller_.add(socket_.native_handle(), watch_ec);
    if (watch_ec) {
      finish_error(ExchangeError::kConnectFailed,
                   "connection to " + ep_.label + " cannot be watched: " + watch_ec.message());
      return;
    }
    state_ = State::kBusy;
    deadline_ = ex_->deadline;
    arm_read();
    send();
  }

  // Writes what the socket takes at once (one sendmsg, the common case) and leaves the rest
  // to an asynchronous write.
  void send() {
    std::array<asio::const_buffer, 2> buffers = {
        asio::const_buffer(ex_->head.data(), ex_->head.size()),
        asio::const_buffer(ex_->body.data(), ex_->body.size())};
    const size_t total = buffers[0].size() + buffers[1].size();
    error_code ec;
    const size_t n = socket_.write_some(buffers, ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      fail_io(ec);
      return;
    }
    if (n > 0) mark_sent();
    if (n == total) {
      write_done_ = true;
      return;
    }
    const size_t first = std::min(n, buffers[0].size());
    buffers[0] += first;
    buffers[1] += n - first;
    asio::async_write(socket_, buffers,
                      [self = shared_from_this()](const error_code& e, size_t written) {
                        self->on_written(e, written);
                      });
  }

  void mark_sent() {
    sent_ = true;
    ex_->request_sent = true;
  }

  void on_written(const error_code& ec, size_t written) {
    // A pending write keeps the exchange from completing successfully, so a busy connection
    // here still runs the exchange that wrote.
    if (state_ != State::kBusy) return;
    if (written > 0) mark_sent();
    if (ec) {
      fail_io(ec);
      return;
    }
    write_done_ = true;
  }

  // Keeps one read pending from the connect to the close: it notices an idle connection being
  // closed, and it reads the response of a busy one. The wait is the Poller's
  // (http/internal/poller.h), edge-triggered: arming it costs no system call (Asio's
  // async_read_some would cost a recv() failing with EAGAIN, its async_wait an epoll_ctl()). A
  // read that filled its buffer may have left data, which no new report would announce: the next
  // read is then at once.
  void arm_read() {
    if (read_pending_ || state_ == State::kClosed) return;
    read_pending_ = true;
    if (read_again_) {
      read_again_ = false;
      poller_.post(read_key_, [self = shared_from_this()] { self->on_readable(); });
      return;
    }
    poller_.arm(read_key_, [self = shared_from_this()] { self->on_readable(); });
  }

  void on_readable() {
    read_pending_ = false;
    if (state_ == State::kClosed || state_ == State::kConnecting) return;
    error_code ec;
    const size_t n = socket_.read_some(buffer_.prepare(kReadChunkBytes), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      arm_read();  // reported for data already read
      return;
    }
    read_again_ = !ec && n == kReadChunkBytes;
    on_read(ec, n);
  }

  void on_read(const error_code& ec, size_t n) {
    switch (state_) {
      case State::kClosed:
      case State::kConnecting:
        return;
      case State::kIdle:
        // Readable while idle: the upstream closed it (or sent something unasked).
        pool_->drop_idle(this);
        return;
      case State::kStreaming:
      case State::kTunnel:
      case State::kBusy:
        break;
    }
    if (ec == asio::error::eof) {
      peer_eof_ = true;
    } else if (ec) {
      if (state_ == State::kStreaming) {
        end_stream(false);
      } else if (state_ == State::kTunnel) {
        end_tunnel(false);
      } else {
        fail_io(ec);
      }
      return;
    } else {
      buffer_.commit(n);
      if (state_ == State::kStreaming) deadline_ = now() + idle_timeout_;
      if (state_ == State::kTunnel) touch_tunnel();
    }
    if (state_ == State::kTunnel) {
      tunnel_pump();
      return;
    }
    if (state_ == State::kStreaming) {
      pump();
      return;
    }
    while (buffer_.size() > 0) {
      got_bytes_ = true;
      error_code pec;
      const size_t used = parser_->put(buffer_.data(), pec);
      buffer_.consume(used);
      if (pec && pec != boost::beast::http::error::need_more) {
        if (pec == boost::beast::http::error::body_limit) {
          finish_error(ExchangeError::kMalformed,
                       "response body from " + ep_.label + " exceeds " +
                           std::to_string(pool_->options.max_response_body_bytes) + " bytes");
        } else if (pec == boost::beast::http::error::header_limit) {
          finish_error(ExchangeError::kMalformed,
                       "response header from " + ep_.label + " exceeds " +
                           std::to_string(pool_->options.max_response_header_bytes) + " bytes");
        } else {
          finish_error(ExchangeError::kMalformed,
                       "malformed response from " + ep_.label + ": " + pec.message());
        }
        return;
      }
      if (!parser_->is_done() && parser_->is_header_done() && !stream_asked_) {
        stream_asked_ = true;
        if ((parser_->chunked() || parser_->need_eof()) && ex_->stream_body(ex_->response)) {
          start_stream();
          pump();
          return;
        }
      }
      if (parser_->is_done()) {
        const int status = ex_->response.status;
        if (status / 100 == 1 && status != 101) {
          // Interim (100 Continue, 103 Early Hints): the final response follows.
          ex_->response = http::Response();
          start_parser();
          continue;
        }
        if (status == 101 && ex_->upgrade && write_done_) {
          start_tunnel();
          return;
        }
        if (status == 101) {
          finish_error(ExchangeError::kMalformed,
                       "upstream " + ep_.label + " switched protocols, which is not supported");
          return;
        }
        finish_ok();
        return;
      }
      if (used == 0) break;
    }
    if (peer_eof_) {
      if (parser_->got_some()) {
        // A body delimited by the end of the connection ends here.
        error_code e;
        parser_->put_eof(e);
        if (!e && parser_->is_done()) {
          finish_ok();
          return;
        }
      }
      fail_io(asio::error::eof);
      return;
    }
    arm_read();
  }

  void fail_io(const error_code& ec) {
    if (state_ != State::kBusy) return;
    // A pooled connection the upstream had closed: send again on a fresh one if the upstream
    // cannot have acted on the request.
    if (reused_ && !got_bytes_ && !ex_->stale_retried_ && (!sent_ || ex_->idempotent) &&
        !pool_->stopped) {
      Exchange* ex = detach();
      close();
      ex->stale_retried_ = true;
      ex->request_sent = false;  // the fresh connection sets it again once it writes
      pool_->stale_retries.add(1);
      if (!pool_->start_fresh(ep_, *ex)) ex->on_complete();
      return;
    }
    finish_error(ExchangeError::kReset,
                 ec == asio::error::eof
                     ? "upstream " + ep_.label + " closed the connection" +
                           (got_bytes_ ? " before the response was complete" : "")
                     : "connection to " + ep_.label + " failed: " + ec.message());
  }

  void finish_ok() {
    Exchange* ex = detach();
    ex->error = ExchangeError::kNone;
    ex->reused = reused_;
    release_or_close();
    ex->on_complete();  // last: it may start another exchange on this connection
  }

  // A response is complete: back to the pool when the connection can serve another, else closed.
  void release_or_close() {
    if (parser_->keep_alive() && write_done_ && buffer_.size() == 0 && !peer_eof_ &&
        !pool_->stopped) {
      state_ = State::kIdle;
      idle_since_ = now();
      pool_->release(shared_from_this());
      arm_read();  // a no-op if the pool closed it
    } else {
      close();
    }
  }

  void finish_error(ExchangeError error, std::string detail) {
    Exchange* ex = detach();
    close();
    ex->error = error;
    ex->reused = reused_;
    ex->detail = std::move(detail);
    ex->on_complete();
  }

  std::shared_ptr<PoolCore> pool_;
  EndpointPool& ep_;
  tcp::socket socket_;
  http::internal::Poller& poller_;
  http::internal::Poller::Key read_key_ = http::internal::Poller::kNone;
  std::optional<tcp::resolver> resolver_;
  std::unique_ptr<ConnectionAdmission::Permit> permit_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::internal::ResponseParser> parser_;
  Exchange* ex_ = nullptr;
  State state_ = State::kConnecting;
  Clock::TimePoint deadline_{};
  Clock::TimePoint idle_since_{};
  bool reused_ = false;
  bool sent_ = false;        // some of this exchange's request went out on this connection
  bool write_done_ = false;  // all of it did
  bool got_bytes_ = false;   // some of the response arrived
  bool peer_eof_ = false;
  bool read_pending_ = false;
  bool read_again_ = false;    // the last read filled its buffer: the next one is not waited for
  bool stream_asked_ = false;  // stream_body() was asked about this response
  // While kStreaming: where the body goes, the exchange to tell at its end, and this connection
  // kept alive (a paused stream has no read pending that would).
  std::shared_ptr<http::BodyStream> stream_;
  std::string pump_buf_;
  Exchange* streaming_ex_ = nullptr;
  Clock::Duration idle_timeout_{};
  std::shared_ptr<UpstreamConnection> keep_self_;
  bool paused_ = false;  // the stream is full: nothing is read until it drains
  // While kTunnel (with keep_self_, streaming_ex_, idle_timeout_ and paused_ above): the client's
  // bytes waiting for the upstream, and those being written.
  std::shared_ptr<http::Tunnel> tunnel_;
  std::string tunnel_out_;
  std::string tunnel_writing_buf_;
  bool tunnel_writing_ = false;
  bool client_paused_ = false;  // more than kHighWater of the client's bytes wait
  bool client_ended_ = false;   // the client ended its side
  bool client_closed_ = false;  // its connection closed: the tunnel ends once written
  bool upstream_shut_ = false;  // and the upstream was told, once its bytes were written
};

EndpointPool& PoolCore::endpoint(std::string_view host, uint16_t port) {
  EndpointPool& ep = endpoints(host, port);
  if (ep.label.empty()) {
    ep.host = std::string(host);
    ep.port = port;
    ep.label = host_port(host, port);
    error_code ec;
    auto address = asio::ip::make_address(ep.host, ec);
    if (!ec) ep.address = address;
  }
  return ep;
}

bool PoolCore::start_fresh(EndpointPool& ep, Exchange& ex) {
  std::unique_ptr<ConnectionAdmission::Permit> permit;
  if (ex.admission != nullptr) {
    permit = ex.admission->try_open(ex.detail);
    if (!permit) {
      ex.error = ExchangeError::kOverflow;
      return false;
    }
  }
  auto conn = std::make_shared<UpstreamConnection>(shared_from_this(), ep);
  conn->connect(ex, std::move(permit));
  ensure_sweep();
  return true;
}

void PoolCore::release(std::shared_ptr<UpstreamConnection> conn) {
  auto& idle = conn->endpoint().idle;
  if (stopped || idle.size() >= options.max_idle_per_endpoint) {
    conn->close();
    return;
  }
  idle.push_back(std::move(conn));
  idle_count.add(1);
  ensure_sweep();
}

void PoolCore::drop_idle(UpstreamConnection* conn) {
  auto& idle = conn->endpoint().idle;
  auto it = std::find_if(idle.begin(), idle.end(), [&](const auto& c) { return c.get() == conn; });
  if (it != idle.end()) {
    auto keep = std::move(*it);
    idle.erase(it);
    idle_count.add(-1);
    keep->close();
    return;
  }
  conn->close();
}

void PoolCore::link(UpstreamConnection* c) {
  if (c->linked) return;
  c->linked = true;
  c->prev = nullptr;
  c->next = active_head;
  if (active_head != nullptr) active_head->prev = c;
  active_head = c;
  active_count.add(1);
}

void PoolCore::unlink(UpstreamConnection* c) {
  if (!c->linked) return;
  c->linked = false;
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (active_head == c) active_head = c->next;
  c->prev = c->next = nullptr;
  active_count.add(-1);
}

void PoolCore::ensure_sweep() {
  if (sweep_armed || stopped) return;
  sweep_armed = true;
  sweep_timer->expires_after(timeout_resolution);
  sweep_timer->async_wait([self = shared_from_this()](const error_code& ec) {
    self->sweep_armed = false;
    if (ec || self->stopped) return;
    self->sweep();
  });
}

void PoolCore::sweep() {
  const Clock::TimePoint t = now();
  scratch.clear();
  for (UpstreamConnection* c = active_head; c != nullptr; c = c->next) {
    if (t >= c->deadline()) scratch.push_back(c->shared_from_this());
  }
  // Acting may complete exchanges, whose owners may start others: work on the snapshot.
  for (auto& c : scratch) c->on_deadline();
  scratch.clear();
  const Clock::TimePoint oldest_ok = t - options.idle_timeout;
  endpoints.for_each([&](std::string_view, uint16_t, EndpointPool& ep) {
    std::erase_if(ep.idle, [&](const std::shared_ptr<UpstreamConnection>& c) {
      if (c->idle_since() >= oldest_ok) return false;
      c->close();
      idle_count.add(-1);
      return true;
    });
  });
  if (active_count.get() > 0 || idle_count.get() > 0) ensure_sweep();
}

void PoolCore::stop() {
  if (stopped) return;
  stopped = true;
  sweep_timer.reset();
  if (h2) h2->stop();
  endpoints.for_each([](std::string_view, uint16_t, EndpointPool& ep) {
    for (auto& c : ep.idle) c->close();
    ep.idle.clear();
  });
  idle_count.set(0);
  scratch.clear();
  for (UpstreamConnection* c = active_head; c != nullptr; c = c->next) {
    scratch.push_back(c->shared_from_this());
  }
  for (auto& c : scratch) c->finish_cancelled();
  scratch.clear();
}

}  // namespace internal

UpstreamPool::UpstreamPool(boost::asio::io_context& io, UpstreamPoolOptions options)
    : core_(std::make_shared<internal::PoolCore>(io, options)) {}

UpstreamPool::~UpstreamPool() { core_->stop(); }

bool UpstreamPool::start(std::string_view host, uint16_t port, Exchange& exchange) {
  auto& core = *core_;
  if (core.stopped) {
    exchange.error = ExchangeError::kCancelled;
    return false;
  }
  exchange.error = ExchangeError::kNone;
  exchange.response = http::Response();
  exchange.request_sent = false;
  exchange.reused = false;
  exchange.detail.clear();
  exchange.stale_retried_ = false;
  if (exchange.http2) return core.http2().start(host, port, exchange);
  internal::EndpointPool& ep = core.endpoint(host, port);
  while (!ep.idle.empty()) {
    auto conn = std::move(ep.idle.back());
    ep.idle.pop_back();
    core.idle_count.add(-1);
    if (!conn->usable(exchange.idempotent)) {  // closed by the upstream meanwhile: never sent on
      conn->close();
      continue;
    }
    core.reused.add(1);
    conn->run(exchange);
    core.ensure_sweep();
    return true;
  }
  return core.start_fresh(ep, exchange);
}

void UpstreamPool::cancel(Exchange& exchange) {
  if (exchange.conn_ != nullptr) exchange.conn_->abort();
  if (exchange.h2_ != nullptr && core_->h2) core_->h2->cancel(exchange);
}

void UpstreamPool::stop() { core_->stop(); }

void UpstreamPool::set_timeout_resolution(std::chrono::milliseconds resolution) {
  core_->timeout_resolution = resolution;
  if (core_->h2) core_->h2->set_timeout_resolution(resolution);
}

UpstreamPool::Stats UpstreamPool::stats() const {
  Stats s{core_->opened.get(), core_->reused.get(), core_->stale_retries.get(),
          core_->idle_count.get(), core_->active_count.get()};
  // h2 is made on the pool's thread: h2_ready publishes it to this one.
  if (const internal::H2Upstreams* h2 = core_->h2_ready.load(std::memory_order_acquire)) {
    const auto more = h2->stats();
    s.connections_opened += more.connections_opened;
    s.reused += more.reused;
    s.stale_retries += more.stale_retries;
    s.idle += more.idle;
    s.active += more.active;
  }
  return s;
}

}  // namespace prescale::gateway
