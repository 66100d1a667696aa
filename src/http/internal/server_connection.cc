// Connection: one client socket of http::Server. See server_internal.h.
//
// Life of a request: kIdle (waiting for a first byte; idle_timeout, or read_timeout on a fresh
// connection) -> kReading (read_timeout from the first byte) -> kHandling (the handler has it;
// no timeout) -> kWriting (write_timeout) -> back to kIdle/kReading, or close. Error answers
// go through kLingering (discard input for a moment after the answer) before closing.
// Timeouts are enforced by Worker::sweep() calling on_sweep().
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>
#include <cstring>
#include <exception>
#include <utility>

#include "http/internal/h2_session.h"
#include "http/internal/server_internal.h"
#include "http/internal/wire.h"
#include "http/tunnel.h"

namespace prescale::http::internal {
namespace {

namespace beast_error = boost::beast::http;

constexpr size_t kReadChunkBytes = 8 * 1024;
// A body buffer that grew past this is released after its request instead of being reused.
constexpr size_t kMaxRetainedBodyBytes = 64 * 1024;
constexpr Clock::Duration kLingerTime = std::chrono::seconds(1);
// Bodies this small are copied behind the header block so the response is one buffer.
constexpr size_t kInlineBodyBytes = 2048;
// Over TLS each write is a record and a send(); a response this small goes as one of each.
constexpr size_t kTlsInlineBytes = 16 * 1024;
// A streamed body's write buffer is kept up to a batch (BodyStream::kHighWater) and this much of
// chunk framing and a piece past it.
constexpr size_t kStreamFramingSlack = 16 * 1024;
// Responses written synchronously back to back (pipelining) before yielding to the scheduler.
constexpr int kMaxSyncWriteDepth = 8;

Clock::TimePoint now() { return Clock::real().now(); }

}  // namespace

Response rejection(int status, std::string_view detail) {
  std::string_view code = "bad_request";
  std::string_view message = "malformed request";
  switch (status) {
    case 408:
      code = "request_timeout";
      message = "request not received in time";
      break;
    case 413:
      code = "body_too_large";
      message = "request body exceeds the limit";
      break;
    case 414:
      code = "target_too_long";
      message = "request target exceeds the header limit";
      break;
    case 431:
      code = "header_too_large";
      message = "request header exceeds the limit";
      break;
    case 500:
      code = "internal";
      message = "the handler did not respond";
      break;
    case 503:
      code = "unavailable";
      message = "too many connections";
      break;
    default:
      break;
  }
  std::string body = R"({"error":{"code":")";
  body += code;
  body += R"(","message":")";
  body += message;
  if (status == 400 && !detail.empty()) {
    body += ": ";
    body += detail;
  }
  body += R"("}})";
  return Response::json(status, std::move(body));
}

namespace {

// A header over the limit whose request line alone is that long is an over-long target (RFC 9112
// section 3: 414), not over-long fields. `line_too_long`: the request line was not read whole
// and no line end is within the limit of the bytes waiting (however they arrived).
int status_for(const boost::system::error_code& ec, bool line_too_long) {
  if (ec == beast_error::error::header_limit) return line_too_long ? 414 : 431;
  if (ec == beast_error::error::body_limit) return 413;
  return 400;
}

// The callable inside each Responder. Delivers exactly one response for request `seq`: the
// handler's, or a 500 when the last copy of the Responder is dropped without being called.
// Responder never copies its function (it shares it), so the destructor runs once.
class ResponderFn {
 public:
  ResponderFn(std::shared_ptr<Connection> conn, uint64_t seq) : conn_(std::move(conn)), seq_(seq) {}
  ResponderFn(ResponderFn&& o) noexcept
      : conn_(std::move(o.conn_)), seq_(o.seq_), called_(o.called_) {}
  // Required by std::function; never used by Responder.
  ResponderFn(const ResponderFn& o) = default;
  ResponderFn& operator=(const ResponderFn&) = delete;
  ResponderFn& operator=(ResponderFn&&) = delete;

  ~ResponderFn() {
    if (conn_ && !called_) conn_->deliver(seq_, rejection(500));
  }

  void operator()(Response response) {
    if (called_ || !conn_) return;  // a second call is a handler bug; ignore it
    called_ = true;
    conn_->deliver(seq_, std::move(response));
  }

 private:
  std::shared_ptr<Connection> conn_;
  uint64_t seq_;
  bool called_ = false;
};

}  // namespace

void Connection::SslFree::operator()(ssl_st* ssl) const { SSL_free(ssl); }

Connection::Connection(std::shared_ptr<Worker> worker, tcp::socket socket)
    : worker_(std::move(worker)),
      shared_(worker_->shared()),
      socket_(std::move(socket)),
      poller_(&Poller::of(worker_->io())) {
  worker_->link(this);
}

Connection::~Connection() {
  if (stream_ != nullptr) {
    // Destroyed without close() (its worker's loop ended): the producer is told all the same.
    auto stream = std::move(stream_);
    if (!worker_->post_if_running([stream] { stream->client_gone(); })) stream->client_gone();
  }
  if (tunnel_ != nullptr) {
    auto tunnel = std::move(tunnel_);
    if (!worker_->post_if_running([tunnel] { tunnel->closed(); })) tunnel->closed();
  }
  if (counted_) {
    counted_ = false;
    shared_.connection_closed();
  }
  // The worker, and so its io_context and Poller, outlive its connections.
  poller_->remove(read_key_);
  worker_->unlink(this);
}

void Connection::reset_parser() {
  parser_.emplace(req_);
  parser_->eager(true);
  parser_->header_limit(
      static_cast<std::uint32_t>(std::min<size_t>(shared_.options.max_header_bytes, UINT32_MAX)));
  parser_->body_limit(static_cast<std::uint64_t>(shared_.options.max_body_bytes));
  continue_sent_ = false;
}

void Connection::start() {
  boost::system::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  if (!ec) req_.remote_address = remote.address().to_string();
  if (!watch()) return;
  if (auto tls = shared_.current_tls()) {
    // OpenSSL reads and writes the (non-blocking) socket itself; the Poller and Asio only wait.
    ERR_clear_error();
    tls_.reset(SSL_new(tls->native()));
    if (!tls_ || SSL_set_fd(tls_.get(), static_cast<int>(socket_.native_handle())) != 1) {
      ERR_clear_error();
      close();
      return;
    }
    SSL_set_accept_state(tls_.get());
    // The ALPN callback (http/tls.cc) offers h2 where this is set.
    if (shared_.options.http2) SSL_set_app_data(tls_.get(), tls_.get());
    req_.secure = true;
  }
  state_ = State::kIdle;
  deadline_ = now() + shared_.options.read_timeout;
  reset_parser();
  // The request often arrived with the connection, possibly before the socket was watched:
  // read at once, then wait for readiness.
  read_paused_ = true;
  arm_read();
}

void Connection::start_rejected(int status) {
  if (!watch()) return;
  state_ = State::kReading;
  fail(status);
}

bool Connection::watch() {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);  // reads and writes are attempted directly, never blocking
  if (!ec) read_key_ = poller_->add(socket_.native_handle(), ec);
  if (ec) {
    close();  // a blocking read would stall every connection of this thread
    return false;
  }
  return true;
}

size_t Connection::read_cap() const {
  // Unparsed bytes are at most an incomplete header or chunk header (the parser consumes
  // everything else), or pipelined requests waiting for their turn.
  return shared_.options.max_header_bytes + kReadChunkBytes;
}

// Reading is readiness-based: a wait for "readable" is kept armed whenever the connection may
// receive, and on readiness the socket is read until it is drained (a short read). The wait is
// the Poller's (http/internal/poller.h), so arming it costs no system call; Asio's would cost a
// speculative recv() that fails with EAGAIN, or an epoll_ctl(), on every request. Invariant: on
// return to the event loop either a wait is armed, or reading is paused (read_paused_; resumed with
// an immediate read), or the peer finished sending, or the connection is closed.
void Connection::arm_read() {
  if (wait_pending_ || peer_eof_ || state_ == State::kClosed) return;
  if (state_ != State::kLingering && buffer_.size() >= read_cap()) {
    read_paused_ = true;  // TCP flow control holds the client back meanwhile
    return;
  }
  wait_pending_ = true;
  if (read_paused_) {
    // Data may have arrived while paused without a readiness edge we could see: read now.
    read_paused_ = false;
    asio::post(socket_.get_executor(),
               [self = shared_from_this()] { self->on_readable(boost::system::error_code()); });
    return;
  }
  if (tls_read_wants_write_) {  // rare: a TLS read must write first (a key update's answer)
    socket_.async_wait(tcp::socket::wait_write,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->on_readable(ec);
                       });
    return;
  }
  poller_->arm(read_key_,
               [self = shared_from_this()] { self->on_readable(boost::system::error_code()); });
}

Connection::TlsStep Connection::tls_step(int result) {
  switch (SSL_get_error(tls_.get(), result)) {
    case SSL_ERROR_WANT_READ:
      return TlsStep::kReadable;
    case SSL_ERROR_WANT_WRITE:
      return TlsStep::kWritable;
    case SSL_ERROR_ZERO_RETURN:  // also a FIN without close_notify (SSL_OP_IGNORE_UNEXPECTED_EOF)
      return TlsStep::kEof;
    case SSL_ERROR_SSL:
      tls_broken_ = true;
      return TlsStep::kRefused;
    default:
      tls_broken_ = true;
      return TlsStep::kLost;
  }
}

Connection::TlsStep Connection::handshake() {
  ERR_clear_error();
  const int r = SSL_do_handshake(tls_.get());
  if (r == 1) {
    tls_handshake_done_ = true;
    return TlsStep::kDone;
  }
  const TlsStep step = tls_step(r);
  ERR_clear_error();
  if (step == TlsStep::kRefused && shared_.options.on_tls_handshake_failed) {
    try {
      shared_.options.on_tls_handshake_failed();
    } catch (...) {
      // A failing observer must not take the thread down.
    }
  }
  return step;
}

bool Connection::read_available() {
  if (tls_) {
    tls_read_wants_write_ = false;
    if (!tls_handshake_done_) {
      switch (handshake()) {
        case TlsStep::kDone:
          break;
        case TlsStep::kReadable:
          return true;
        case TlsStep::kWritable:
          tls_read_wants_write_ = true;
          return true;
        default:
          close();  // a failed handshake: nothing can be answered
          return false;
      }
    }
  }
  // While input is discarded (lingering, or after an error answer) the buffer never fills: a
  // client sending without pause is read this many chunks at a time, the loop given back between.
  static constexpr int kMaxDiscardedChunks = 64;
  for (int discarded = 0;; ++discarded) {
    if (state_ != State::kLingering && buffer_.size() >= read_cap()) {
      read_paused_ = true;
      return true;
    }
    if (discarded >= kMaxDiscardedChunks && (state_ == State::kLingering || error_close_)) {
      read_paused_ = true;
      return true;
    }
    if (tls_) {
      // Read until OpenSSL wants the socket: records it holds already raise no readiness edge.
      const auto space = buffer_.prepare(kReadChunkBytes);
      size_t n = 0;
      ERR_clear_error();
      const int r = SSL_read_ex(tls_.get(), space.data(), space.size(), &n);
      if (r == 1) {
        buffer_.commit(n);
        if (state_ == State::kLingering || error_close_) buffer_.clear();
        continue;
      }
      const TlsStep step = tls_step(r);
      ERR_clear_error();
      switch (step) {
        case TlsStep::kReadable:
          return true;
        case TlsStep::kWritable:  // e.g. a TLS 1.3 key update to answer first
          tls_read_wants_write_ = true;
          return true;
        case TlsStep::kEof:
          peer_eof_ = true;
          return true;
        default:
          close();
          return false;
      }
    }
    boost::system::error_code ec;
    const size_t n = socket_.read_some(buffer_.prepare(kReadChunkBytes), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return true;
    if (ec == asio::error::eof) {
      peer_eof_ = true;
      return true;
    }
    if (ec) {
      close();  // reset: nothing can be answered any more
      return false;
    }
    buffer_.commit(n);
    if (state_ == State::kLingering || error_close_) buffer_.clear();
    if (n < kReadChunkBytes) return true;  // drained; new data raises a new readiness edge
  }
}

void Connection::on_readable(const boost::system::error_code& ec) {
  wait_pending_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    close();
    return;
  }
  if (!read_available()) return;
  switch (state_) {
    case State::kIdle:
    case State::kReading:
      if (write_pending_) {  // "100 Continue" is on its way; its completion parses
        arm_read();
        return;
      }
      parse();
      return;
    case State::kLingering:
      if (peer_eof_) {
        close();
        return;
      }
      arm_read();
      return;
    case State::kHandling:
      // The client ended its input with nothing pipelined: it will not read an answer (or only
      // a half-closed one does), so a handler that can stop early is told.
      if (peer_eof_ && buffer_.size() == 0) notify_client_gone();
      if (state_ == State::kClosed) return;
      // Pipelined bytes wait in the buffer until the response is out.
      arm_read();
      return;
    case State::kWriting:
      // A client that ends its input during a streamed body has left (as while handling): its
      // producer is told. (A tunnel's client may end its side and read on.)
      if (stream_ != nullptr && tunnel_ == nullptr && !stream_done_ && peer_eof_ &&
          buffer_.size() == 0) {
        close();
        return;
      }
      // Pipelined bytes wait in the buffer until the response is out.
      arm_read();
      return;
    case State::kTunnel:
      tunnel_input();
      return;
    case State::kClosed:
      return;
  }
}

void Connection::parse() {
  if (seq_ == 0 && shared_.options.http2 && !parser_->got_some()) {
    switch (speaks_h2()) {
      case H2Check::kYes:
        start_h2();
        return;
      case H2Check::kMore:
        if (peer_eof_) {
          close();
        } else {
          arm_read();
        }
        return;
      case H2Check::kNo:
        break;
    }
  }
  while (true) {
    if (buffer_.size() == 0) {
      if (peer_eof_) {
        close();  // the client is done sending; nothing to answer
        return;
      }
      arm_read();
      return;
    }
    if (!parser_->got_some() && static_cast<const char*>(buffer_.data().data())[0] == '\r') {
      if (skip_empty_lines() > 0) continue;
      if (buffer_.size() == 1) {  // a CR whose LF has not arrived yet
        if (peer_eof_) {
          close();
        } else {
          arm_read();
        }
        return;
      }
    }
    if (state_ == State::kIdle) {
      state_ = State::kReading;
      deadline_ = now() + shared_.options.read_timeout;
    }
    boost::system::error_code ec;
    const size_t used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec && ec != beast_error::error::need_more) {
      // What was wrong: the parser's own check, else Beast's message ("bad chunk").
      const std::string detail =
          parser_->problem().empty() ? ec.message() : std::string(parser_->problem());
      fail(status_for(ec, request_line_too_long()), detail);
      return;
    }
    if (parser_->is_done()) {
      dispatch();
      return;
    }
    if (parser_->is_header_done() && parser_->expect_continue() && !continue_sent_ &&
        parser_->version() >= 11) {
      write_continue();
      return;
    }
    if (used == 0) {
      if (peer_eof_) {
        close();  // an incomplete request that will never be completed
        return;
      }
      if (buffer_.size() >= read_cap()) {
        fail(parser_->is_header_done()
                 ? 400
                 : status_for(beast_error::error::header_limit, request_line_too_long()));
        return;
      }
      arm_read();
      return;
    }
  }
}

size_t Connection::skip_empty_lines() {
  const auto* data = static_cast<const char*>(buffer_.data().data());
  size_t n = 0;
  while (n + 1 < buffer_.size() && data[n] == '\r' && data[n + 1] == '\n') n += 2;
  buffer_.consume(n);
  if (n > 0 && buffer_.size() == 0 && state_ == State::kReading) {
    // Only empty lines followed the last response: the connection is idle, not reading.
    state_ = State::kIdle;
    deadline_ = now() + shared_.options.idle_timeout;
  }
  return n;
}

bool Connection::request_line_too_long() const {
  if (parser_->request_line_done()) return false;
  const auto* data = static_cast<const char*>(buffer_.data().data());
  const size_t within = std::min(buffer_.size(), shared_.options.max_header_bytes);
  return std::memchr(data, '\n', within) == nullptr;
}

void Connection::write_continue() {
  continue_sent_ = true;
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  write_pending_ = true;
  if (tls_) {
    arm_read();
    tls_out_ = {asio::buffer(kContinue.data(), kContinue.size()), asio::const_buffer()};
    tls_out_is_continue_ = true;
    tls_write();
    return;
  }
  asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                    [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                      self->write_pending_ = false;
                      if (self->state_ == State::kClosed) return;
                      if (ec) {
                        self->close();
                        return;
                      }
                      self->parse();
                    });
  arm_read();
}

void Connection::dispatch() {
  state_ = State::kHandling;
  version_ = parser_->version();
  // An HTTP/1.0 request framed by Transfer-Encoding may have been framed otherwise by a 1.0
  // intermediary: answer it, then close (RFC 9112 section 6.1).
  keep_alive_ = parser_->keep_alive() && !draining_ && !(version_ < 11 && parser_->chunked());
  is_head_ = req_.method == Method::kHead;
  // An HTTP/1.0 request cannot switch protocols: its Upgrade field is ignored (RFC 9110 section
  // 7.8), so no handler (or proxy) acts on it.
  if (version_ < 11) req_.headers.remove("Upgrade");
  upgrade_asked_ = upgrade_requested(req_).has_value();
  ++seq_;
  arm_read();  // see arm_read(): watch the socket while the handler works
  worker_->inflight().fetch_add(1, std::memory_order_relaxed);
  in_handler_ = true;
  have_response_ = false;
  try {
    if (req_.target == "*") {
      // "OPTIONS *" (the parser lets "*" through for OPTIONS only) asks about the server in
      // general, not a resource (RFC 9110 section 9.3.7): the server answers, with no content.
      Responder(ResponderFn(shared_from_this(), seq_))(Response{});
    } else {
      shared_.handler(req_, Responder(ResponderFn(shared_from_this(), seq_)));
    }
  } catch (...) {
    // The Responder's guard answers 500 if the handler threw before responding.
  }
  in_handler_ = false;
  if (have_response_) write_response();
}

void Connection::deliver(uint64_t seq, Response&& response) {
  if (worker_->io().get_executor().running_in_this_thread()) {
    on_response(seq, std::move(response));
    return;
  }
  std::shared_ptr<BodyStream> stream = response.stream;
  std::shared_ptr<Tunnel> tunnel = response.tunnel;
  const bool posted =
      worker_->post_if_running([self = shared_from_this(), seq, r = std::move(response)]() mutable {
        self->on_response(seq, std::move(r));
      });
  if (!posted) {
    worker_->inflight().fetch_sub(1, std::memory_order_relaxed);
    // The server has stopped: nothing of the body will be sent (no thread is left to post to).
    if (stream != nullptr) stream->client_gone();
    if (tunnel != nullptr) tunnel->closed();
  }
}

void Connection::on_response(uint64_t seq, Response&& response) {
  worker_->inflight().fetch_sub(1, std::memory_order_relaxed);
  if (seq != seq_ || state_ != State::kHandling) {  // closed meanwhile
    if (response.stream != nullptr) {
      asio::post(socket_.get_executor(), [s = std::move(response.stream)] { s->client_gone(); });
    }
    if (response.tunnel != nullptr) {
      asio::post(socket_.get_executor(), [t = std::move(response.tunnel)] { t->closed(); });
    }
    return;
  }
  req_.on_client_gone = nullptr;
  resp_ = std::move(response);
  if (in_handler_) {
    have_response_ = true;  // written once the handler returns
    return;
  }
  write_response();
}

void Connection::write_response() {
  state_ = State::kWriting;  // the write deadline is set only if the write has to wait
  if ((resp_.status == 101 || resp_.tunnel != nullptr) && accept_switch()) {
    carry_tunnel();
    deadline_ = now() + shared_.options.write_timeout;
    head_.clear();
    append_response_head(head_, resp_, std::nullopt, ConnectionHeader::kUpgrade, false);
    head_ += resp_.body;  // the new protocol's first bytes, if the handler had any
    resp_.body.clear();
    send({asio::buffer(head_), asio::const_buffer()});
    return;
  }
  if (resp_.status < 200 || resp_.status > 999) {
    // Interim (1xx) and out-of-range statuses cannot be final answers.
    stream_ = std::move(resp_.stream);
    drop_stream();
    resp_ = rejection(500);
  }
  const bool body_allowed = !is_head_ && resp_.status != 204 && resp_.status != 304;
  if (!resp_.trailers.empty() && body_allowed && resp_.stream == nullptr && version_ >= 11) {
    // Trailers follow a chunked body: the body goes as its first chunk, the stream ends at once.
    auto trailing = std::make_shared<BodyStream>();
    trailing->end(std::move(resp_.trailers));
    resp_.stream = std::move(trailing);
  }
  const bool had_stream = resp_.stream != nullptr;
  if (draining_) keep_alive_ = false;
  if (auto c = resp_.headers.get("Connection"); c && has_token(*c, "close")) keep_alive_ = false;
  if (resp_.stream) {
    stream_ = std::move(resp_.stream);
    resp_.stream = nullptr;
    if (!body_allowed) {
      drop_stream();  // nothing of it can be sent: its producer is told to stop
    } else {
      // Chunked to HTTP/1.1; to HTTP/1.0 the body ends with the connection.
      stream_chunked_ = version_ >= 11;
      if (!stream_chunked_) keep_alive_ = false;
      stream_done_ = false;
      stream_attached_ = false;
      stream_data_bytes_ = 0;
      // The request's read deadline may be past already (a slow first piece): the head's write
      // has its own, and the body's first step sets the next.
      deadline_ = now() + shared_.options.write_timeout;
    }
  }
  const bool streaming = stream_ != nullptr;
  const ConnectionHeader connection = !keep_alive_    ? ConnectionHeader::kClose
                                      : version_ < 11 ? ConnectionHeader::kKeepAlive
                                                      : ConnectionHeader::kNone;
  std::optional<uint64_t> content_length = resp_.body.size();
  if (had_stream) content_length.reset();  // of unknown length, even where it is not sent
  if ((is_head_ || resp_.status == 304) && resp_.body.empty()) {
    // A bodiless answer to HEAD, or a 304 (e.g. relayed by the gateway), may state the length
    // of the body a GET would get, and only that (RFC 9110 sections 8.6 and 9.3.2): the
    // handler's, or none when it is unknown.
    content_length.reset();
    if (auto cl = resp_.headers.get("Content-Length")) {
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
      if (ec == std::errc() && end == cl->data() + cl->size()) content_length = n;
    }
  }
  head_.clear();
  append_response_head(head_, resp_, content_length, connection, streaming && stream_chunked_);
  if (streaming && !resp_.body.empty()) {
    // What the handler had before the stream: its first piece.
    if (stream_chunked_) {
      char size[16];
      auto r = std::to_chars(size, size + sizeof size, resp_.body.size(), 16);
      head_.append(size, r.ptr);
      head_ += "\r\n";
      head_ += resp_.body;
      head_ += "\r\n";
    } else {
      head_ += resp_.body;
    }
    resp_.body.clear();
  }
  const bool send_body = body_allowed && !resp_.body.empty();
  std::array<asio::const_buffer, 2> buffers = {asio::buffer(head_), asio::const_buffer()};
  const size_t inline_bytes =
      tls_ ? kTlsInlineBytes - std::min(kTlsInlineBytes, head_.size()) : kInlineBodyBytes;
  if (send_body && resp_.body.size() > inline_bytes) {
    buffers[1] = asio::buffer(resp_.body);
  } else if (send_body) {
    head_ += resp_.body;
    buffers[0] = asio::buffer(head_);
  }
  send(buffers);
}

void Connection::send(std::array<asio::const_buffer, 2> buffers) {
  write_pending_ = true;
  if (tls_) {
    tls_out_ = buffers;
    tls_out_is_continue_ = false;
    if (sync_write_depth_ >= kMaxSyncWriteDepth) {  // a pipelined burst: yield first
      deadline_ = now() + shared_.options.write_timeout;
      asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (self->state_ == State::kClosed) {
          self->tls_written(asio::error::operation_aborted);
          return;
        }
        self->tls_write();
      });
      return;
    }
    ++sync_write_depth_;
    tls_write();
    --sync_write_depth_;
    return;
  }
  // Most responses fit the socket buffer: write at once (one sendmsg, no trip through the
  // scheduler) and fall back to an asynchronous write for what does not fit. Nesting is
  // bounded because a pipelined burst would otherwise recurse request by request.
  const size_t total = buffers[0].size() + buffers[1].size();
  boost::system::error_code ec;
  size_t n = 0;
  if (sync_write_depth_ < kMaxSyncWriteDepth) n = socket_.write_some(buffers, ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    on_written(ec);
    return;
  }
  if (sync_write_depth_ < kMaxSyncWriteDepth && n == total) {
    ++sync_write_depth_;
    on_written({});
    --sync_write_depth_;
    return;
  }
  deadline_ = now() + shared_.options.write_timeout;
  const size_t first = std::min(n, buffers[0].size());
  buffers[0] += first;
  buffers[1] += n - first;
  asio::async_write(socket_, buffers,
                    [self = shared_from_this()](const boost::system::error_code& e, size_t) {
                      self->on_written(e);
                    });
}

void Connection::tls_write() {
  while (tls_out_[0].size() + tls_out_[1].size() > 0) {
    asio::const_buffer& out = tls_out_[0].size() > 0 ? tls_out_[0] : tls_out_[1];
    size_t n = 0;
    ERR_clear_error();
    const int r = SSL_write_ex(tls_.get(), out.data(), out.size(), &n);
    if (r == 1) {
      out += n;
      continue;
    }
    const TlsStep step = tls_step(r);
    ERR_clear_error();
    if (step != TlsStep::kReadable && step != TlsStep::kWritable) {
      tls_written(asio::error::connection_reset);
      return;
    }
    // The rest waits for the socket (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: the same bytes are
    // offered again, from wherever they are).
    if (!tls_out_is_continue_) deadline_ = now() + shared_.options.write_timeout;
    socket_.async_wait(
        step == TlsStep::kWritable ? tcp::socket::wait_write : tcp::socket::wait_read,
        [self = shared_from_this()](const boost::system::error_code& ec) {
          if (ec || self->state_ == State::kClosed) {
            self->tls_written(ec ? ec : asio::error::operation_aborted);
            return;
          }
          self->tls_write();
        });
    return;
  }
  tls_written({});
}

void Connection::tls_written(const boost::system::error_code& ec) {
  if (!tls_out_is_continue_) {
    on_written(ec);
    return;
  }
  write_pending_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    close();
    return;
  }
  parse();
}

void Connection::on_written(const boost::system::error_code& ec) {
  write_pending_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    close();
    return;
  }
  if (error_close_) {
    linger();
    return;
  }
  if (stream_ != nullptr) {
    if (!stream_done_) {
      if (stream_data_bytes_ > 0) {
        // May run the producer's on_drained: this is never within a producer's call (the first
        // step is posted, the rest follow its writes).
        stream_->sent(std::exchange(stream_data_bytes_, 0));
        if (state_ == State::kClosed) return;
        stream_step();
      } else if (tunnel_ != nullptr && state_ == State::kWriting) {
        start_tunnel();
      } else {
        // The head is out. It may have been written within the producer's respond(): the body
        // starts from the event loop, so that no callback of the stream runs inside that call.
        asio::post(socket_.get_executor(), [self = shared_from_this()] { self->stream_step(); });
      }
      return;
    }
    stream_.reset();
  }
  if (!keep_alive_ || draining_) {
    finish_after_response();
    return;
  }
  // Ready for the next request on this connection; buffers keep their capacity.
  req_.headers.clear();
  if (req_.body.capacity() > kMaxRetainedBodyBytes) {
    std::string().swap(req_.body);
  } else {
    req_.body.clear();
  }
  req_.path_params.clear();
  req_.route.clear();
  req_.on_client_gone = nullptr;
  resp_ = Response();
  reset_parser();
  if (buffer_.size() > 0) {
    state_ = State::kReading;  // a pipelined request is already here
    deadline_ = now() + shared_.options.read_timeout;
  } else {
    state_ = State::kIdle;
    deadline_ = now() + shared_.options.idle_timeout;
  }
  parse();
}

void Connection::stream_step() {
  const auto hold = std::move(stream_hold_);  // kept to the end of this step
  if (state_ == State::kClosed || write_pending_ || stream_ == nullptr || stream_done_) return;
  if (stream_buf_.capacity() > BodyStream::kHighWater + kStreamFramingSlack) {
    std::string().swap(stream_buf_);
  } else {
    stream_buf_.clear();
  }
  if (!stream_attached_) {
    stream_attached_ = true;
    // Woken from the producer's thread: the step runs on this one.
    stream_->attach([weak = weak_from_this(), worker = worker_] {
      worker->post_if_running([weak] {
        if (auto self = weak.lock()) self->stream_step();
      });
    });
  }
  size_t data_bytes = 0;
  switch (stream_->take(stream_buf_, stream_chunked_, data_bytes)) {
    case BodyStream::Take::kData:
      stream_data_bytes_ = data_bytes;
      send({asio::buffer(stream_buf_), asio::const_buffer()});
      return;
    case BodyStream::Take::kWait:
      if (tunnel_ == nullptr && peer_eof_ && buffer_.size() == 0) {
        close();  // the client ended its input (before the body began, or while reading was off)
        return;
      }
      deadline_ = Clock::TimePoint::max();  // the producer bounds its own silence
      // Nothing else may hold the connection now (no write, and no read when the client's input
      // ended or waits, pipelined): the producer's next piece, or close(), lets it go.
      stream_hold_ = shared_from_this();
      return;
    case BodyStream::Take::kEnd:
      stream_done_ = true;
      if (tunnel_ != nullptr) {
        tunnel_output_ended();
      } else if (stream_chunked_) {
        stream_buf_.clear();
        append_last_chunk(stream_buf_, stream_->take_trailers());
        send({asio::buffer(stream_buf_), asio::const_buffer()});
      } else {
        on_written({});  // an HTTP/1.0 body ends with the connection
      }
      return;
    case BodyStream::Take::kAbort:
      stream_.reset();     // it ended, by its producer's choice
      tls_broken_ = true;  // no close_notify: over TLS too, a cut is not a clean end
      close();             // without the last chunk: the client sees a cut body
      return;
  }
}

void Connection::drop_stream() {
  if (stream_ == nullptr) return;
  // Posted: close() may run within the producer's respond(), and its callbacks must not.
  asio::post(socket_.get_executor(), [s = std::move(stream_)] { s->client_gone(); });
  stream_ = nullptr;
}

bool Connection::accept_switch() {
  auto tunnel = std::move(resp_.tunnel);
  int status = 0;  // the answer instead, when the switch is refused
  if (resp_.status != 101 || tunnel == nullptr || !upgrade_asked_ || is_head_ ||
      resp_.stream != nullptr || !resp_.headers.get("Upgrade")) {
    status = 500;  // a handler bug
  } else if (draining_) {
    status = 503;  // a tunnel would outlive the drain
  }
  if (status == 0) {
    tunnel_ = std::move(tunnel);
    return true;
  }
  if (tunnel != nullptr) {
    asio::post(socket_.get_executor(), [t = std::move(tunnel)] { t->closed(); });
  }
  stream_ = std::move(resp_.stream);
  drop_stream();
  if (status == 503) {
    keep_alive_ = false;
    resp_ = Response::json(
        503, R"({"error":{"code":"unavailable","message":"the server is shutting down"}})");
  } else {
    resp_ = rejection(500);
  }
  return false;
}

void Connection::carry_tunnel() {
  stream_ = tunnel_->out_;
  stream_chunked_ = false;
  stream_done_ = false;
  stream_attached_ = false;
  stream_data_bytes_ = 0;
  tunnel_hold_ = shared_from_this();
}

void Connection::start_tunnel() {
  state_ = State::kTunnel;
  deadline_ = Clock::TimePoint::max();  // the handler bounds the tunnel's silence
  // resume() and abort() wake it, from the caller's thread.
  tunnel_->attach([weak = weak_from_this(), worker = worker_] {
    worker->post_if_running([weak] {
      if (auto self = weak.lock()) self->tunnel_input();
    });
  });
  // From the event loop: the head may have been written within the handler's respond(), and no
  // callback of the tunnel may run inside that call.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->stream_step();
    self->tunnel_input();
  });
}

void Connection::tunnel_input() {
  if (state_ != State::kTunnel) return;
  if (tunnel_->aborted()) {
    tls_broken_ = true;  // a cut: no close_notify
    close();
    return;
  }
  const bool paused = tunnel_->paused();
  // Once the server's side ended, the client has idle_timeout from its last bytes to end its own;
  // none while the handler holds it back.
  if (stream_done_) {
    deadline_ = paused ? Clock::TimePoint::max() : now() + shared_.options.idle_timeout;
  }
  if (buffer_.size() > 0) {
    if (paused) {
      read_paused_ = true;  // resume() reads again (at once: data may have come meanwhile)
      return;
    }
    const auto data = buffer_.data();
    tunnel_->data(std::string_view(static_cast<const char*>(data.data()), data.size()));
    buffer_.consume(data.size());
    if (state_ != State::kTunnel) return;
  }
  if (peer_eof_) {
    if (!tunnel_input_ended_) {
      tunnel_input_ended_ = true;
      tunnel_->input_ended();
      if (state_ != State::kTunnel) return;
    }
    if (stream_done_) close();  // both sides ended
    return;
  }
  if (tunnel_->paused()) {
    read_paused_ = true;
    if (stream_done_) deadline_ = Clock::TimePoint::max();
    return;
  }
  arm_read();
}

Connection::H2Check Connection::speaks_h2() const {
  if (tls_) {
    // ALPN is chosen at the ClientHello; HTTP/2 begins once the handshake is over.
    if (!tls_handshake_done_) return H2Check::kMore;
    const unsigned char* alpn = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(tls_.get(), &alpn, &n);
    return n == 2 && alpn[0] == 'h' && alpn[1] == '2' ? H2Check::kYes : H2Check::kNo;
  }
  const size_t n = std::min(buffer_.size(), kH2Preface.size());
  if (n == 0) return H2Check::kMore;
  if (std::memcmp(buffer_.data().data(), kH2Preface.data(), n) != 0) return H2Check::kNo;
  return n == kH2Preface.size() ? H2Check::kYes : H2Check::kMore;
}

void Connection::start_h2() {
  auto session = std::make_shared<H2Session>(worker_, req_.remote_address, req_.secure);
  if (!session->start()) {
    close();
    return;
  }
  h2_ = std::move(session);
  tunnel_ = h2_->tunnel();
  carry_tunnel();
  if (draining_) h2_->drain();
  start_tunnel();  // the preface and what follows it go to the session
}

void Connection::tunnel_output_ended() {
  if (h2_ != nullptr) {
    // HTTP/2's session is over (GOAWAY): what the client still sends is discarded for a moment,
    // so it reads the last frames rather than a reset.
    linger();
    return;
  }
  shutdown_send();
  if (tunnel_input_ended_) {
    close();
    return;
  }
  deadline_ = now() + shared_.options.idle_timeout;  // for the client to end its side
}

void Connection::finish_after_response() {
  if (buffer_.size() > 0) {
    // Pipelined requests we will not answer: linger so the client gets our response rather
    // than a reset.
    linger();
    return;
  }
  shutdown_send();
  close();
}

void Connection::shutdown_send() {
  send_close_notify();
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void Connection::send_close_notify() {
  if (!tls_ || !tls_handshake_done_ || tls_broken_ || write_pending_) return;
  ERR_clear_error();
  SSL_shutdown(tls_.get());  // where the socket takes it; the reply is not waited for
  ERR_clear_error();
  tls_broken_ = true;  // sent (or lost): not again
}

void Connection::fail(int status, std::string_view detail) {
  if (state_ == State::kClosed) return;
  if (write_pending_) {  // cannot put an answer on the wire now
    close();
    return;
  }
  shared_.reject(status);
  error_close_ = true;
  keep_alive_ = false;
  is_head_ = false;
  resp_ = rejection(status, detail);
  write_response();
}

void Connection::linger() {
  state_ = State::kLingering;
  deadline_ = now() + std::min<Clock::Duration>(kLingerTime, shared_.options.read_timeout);
  shutdown_send();
  buffer_.clear();
  if (peer_eof_) {
    close();
    return;
  }
  arm_read();
}

void Connection::on_sweep(Clock::TimePoint t) {
  if (t < deadline_) return;
  switch (state_) {
    case State::kIdle:
    case State::kWriting:
    case State::kTunnel:
    case State::kLingering:
      close();
      break;
    case State::kReading:
      fail(408);
      break;
    case State::kHandling:
    case State::kClosed:
      break;
  }
}

void Connection::begin_drain() {
  draining_ = true;
  if (h2_ != nullptr) {
    h2_->drain();  // GOAWAY; its streams finish
  } else if (state_ == State::kIdle) {
    close();
  }
}

void Connection::close() {
  const auto hold = std::move(stream_hold_);  // it may be what keeps this connection alive
  const auto tunnel_hold = std::move(tunnel_hold_);
  if (state_ == State::kClosed) return;
  const bool handling = state_ == State::kHandling;
  state_ = State::kClosed;
  // A stream cut before its end must not look like a clean end to a TLS client.
  if (stream_ != nullptr && !stream_done_) tls_broken_ = true;
  send_close_notify();  // a TLS client told the stream ended here, not cut (idle, drain)
  poller_->remove(read_key_);  // drops a pending wait, as closing would
  read_key_ = Poller::kNone;
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (counted_) {
    counted_ = false;
    shared_.connection_closed();
  }
  drop_stream();
  if (tunnel_ != nullptr) {
    asio::post(socket_.get_executor(), [t = std::move(tunnel_)] { t->closed(); });
    tunnel_ = nullptr;
  }
  h2_.reset();  // its tunnel's on_closed tells it
  if (handling) notify_client_gone();
}

void Connection::notify_client_gone() {
  if (!req_.on_client_gone) return;
  // Moved out first: the callback typically responds, which clears the field.
  auto fn = std::move(req_.on_client_gone);
  req_.on_client_gone = nullptr;
  try {
    fn();
  } catch (...) {
    // A handler bug; the connection's own state is already consistent.
  }
}

}  // namespace prescale::http::internal
