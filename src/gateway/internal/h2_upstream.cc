#include "gateway/internal/h2_upstream.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/host_port.h"
#include "http/body_stream.h"
#include "http/internal/h2_fields.h"
#include "http/internal/wire.h"
#include "http/request_body.h"

namespace prescale::gateway::internal {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr size_t kReadBytes = size_t{16} * 1024;
constexpr size_t kWriteBatchBytes = size_t{64} * 1024;
constexpr int32_t kStreamWindow = int32_t{1} << 20;       // each response may have 1 MiB in flight
constexpr int32_t kConnectionWindow = int32_t{16} << 20;  // all of a connection's, 16 MiB
constexpr uint32_t kMaxStreamsPerConnection = 100;        // or fewer, as the upstream says
// A connection whose write takes none of its bytes for this long is failed: a frozen upstream.
constexpr Clock::Duration kWriteStallTimeout = std::chrono::seconds(10);

Clock::TimePoint now() { return Clock::real().now(); }

}  // namespace

class H2Conn;

// One exchange as a stream.
struct H2Request {
  H2Request() = default;
  H2Request(const H2Request&) = delete;
  H2Request& operator=(const H2Request&) = delete;
  // A body streamed from the client that this stream read some of: no other stream can send it,
  // so what the client still sends is dropped (its windows reopen). One unread stays for the
  // exchange's next stream (a refused stream sent again, a retry), whose on_readable may be set
  // already: it is left alone (this one's would find its stream gone and do nothing).
  ~H2Request() {
    if (body_stream != nullptr && body_read) body_stream->discard();
  }

  Exchange* ex = nullptr;  // null once completed or cancelled (the stream may live on)
  H2Conn* conn = nullptr;
  int32_t id = -1;
  std::string_view body;  // the request's; own_body's once the exchange may drop its own
  std::string own_body;
  size_t body_off = 0;
  // The rest of the body, as the client sends it (Exchange::body_stream): read into `piece`.
  std::shared_ptr<http::RequestBody> body_stream;
  std::string piece;
  size_t piece_off = 0;
  bool body_read = false;
  bool body_sent = false;  // all of body_stream went out
  size_t header_bytes = 0;
  http::Response response;
  bool interim = false;                        // the head being read is a 1xx
  bool got_head = false;                       // the final head is in: further fields are trailers
  bool ended = false;                          // END_STREAM came
  bool sent = false;                           // its HEADERS went out
  bool streaming = false;                      // on_complete() ran; the body goes to `stream`
  ExchangeError error = ExchangeError::kNone;  // set by a callback that failed the stream
  std::string detail;
  std::shared_ptr<http::BodyStream> stream;
  size_t held = 0;  // bytes written to a full stream, not yet given back to the upstream's window
  Clock::TimePoint last_data{};
};

struct H2Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string label;
  std::optional<asio::ip::address> address;
  std::vector<std::shared_ptr<H2Conn>> conns;
};

struct H2Core : std::enable_shared_from_this<H2Core> {
  H2Core(asio::io_context& context, UpstreamPoolOptions o) : io(context), options(o) {
    timer.emplace(context);
  }

  bool start(std::string_view host, uint16_t port, Exchange& ex);
  void ensure_sweep();
  void sweep();
  void stop();
  void remove(H2Conn* conn);
  void cancel(Exchange& ex);

  // The end of an exchange, decided while a step runs and told after it, in order: its owner
  // may start or cancel other exchanges then. From decide() until it is told, the exchange's h2_
  // is &deciding, and a cancel() meanwhile leaves it untold.
  struct Told {
    enum class Kind { kComplete, kStreamEnded, kStreamCut, kRetry };
    Exchange* ex;
    Kind kind;
    const H2Endpoint* ep = nullptr;  // kRetry: where it goes again
  };
  void decide(Exchange& ex) { ex.h2_ = &deciding; }
  void tell(const std::vector<Told>& told);
  // A failure found while start() runs: told from the event loop, unless cancelled first.
  void post_failure(Exchange& ex, ExchangeError error, std::string detail);

  static bool takes_stream(Exchange& ex, const http::Response& r) { return ex.stream_body(r); }
  static void set_request(Exchange& ex, H2Request* r) { ex.h2_ = r; }
  static bool stale_retried(Exchange& ex) { return ex.stale_retried_; }
  static void mark_stale_retried(Exchange& ex) { ex.stale_retried_ = true; }

  asio::io_context& io;
  const UpstreamPoolOptions options;
  std::chrono::milliseconds timeout_resolution = options.timeout_resolution;
  EndpointMap<H2Endpoint> endpoints;
  std::optional<asio::steady_timer> timer;  // reset at stop(): the io_context may go first
  bool sweep_armed = false;
  bool stopped = false;
  std::atomic<uint64_t> opened{0}, reused{0}, stale_retries{0}, idle{0}, active{0};
  H2Request deciding;                              // see Told
  std::vector<std::unique_ptr<H2Request>> posted;  // post_failure()'s, until told
};

// One connection to one endpoint, carrying many streams.
class H2Conn : public std::enable_shared_from_this<H2Conn> {
 public:
  enum class State { kConnecting, kOpen, kClosed };

  H2Conn(std::shared_ptr<H2Core> core, H2Endpoint& ep)
      : core_(std::move(core)), ep_(ep), socket_(core_->io) {}
  ~H2Conn() {
    if (session_ != nullptr) nghttp2_session_del(session_);
    count_as(Count::kNone);
  }
  H2Conn(const H2Conn&) = delete;
  H2Conn& operator=(const H2Conn&) = delete;

  State state() const { return state_; }
  // Takes one more stream now.
  bool has_room() const { return state_ != State::kClosed && !goaway_ && load() < max_streams_; }
  size_t load() const { return streams_.size() + waiting_.size(); }

  // Each exchange waiting for it also fails at its own deadline (sweep()).
  void connect(std::unique_ptr<ConnectionAdmission::Permit> permit) {
    permit_ = std::move(permit);
    state_ = State::kConnecting;
    connect_deadline_ = now() + core_->options.connect_timeout;
    count_as(Count::kActive);
    auto self = shared_from_this();
    if (ep_.address) {
      socket_.async_connect(tcp::endpoint(*ep_.address, ep_.port),
                            [self](const error_code& ec) { self->on_connected(ec); });
      return;
    }
    resolver_.emplace(core_->io);
    resolver_->async_resolve(
        ep_.host, std::to_string(ep_.port),
        [self](const error_code& ec, const tcp::resolver::results_type& results) {
          if (self->state_ != State::kConnecting) return;
          if (ec) {
            self->fail(ExchangeError::kConnectFailed,
                       "cannot resolve " + self->ep_.host + ": " + ec.message());
            return;
          }
          asio::async_connect(self->socket_, results,
                              [self](const error_code& e, const auto&) { self->on_connected(e); });
        });
  }

  // Runs `ex` on this connection: at once when open, once connected otherwise.
  void add(Exchange& ex, bool reused) {
    auto r = std::make_unique<H2Request>();
    r->ex = &ex;
    r->conn = this;
    r->body = ex.body;
    r->body_stream = ex.body_stream;
    ex.reused = reused;
    H2Core::set_request(ex, r.get());
    if (state_ == State::kConnecting) {
      waiting_.push_back(std::move(r));
      return;
    }
    submit(std::move(r));
    post_flush();
  }

  // Abandons the exchange of `r`, whose on_complete() has not run (no callback).
  void cancel(H2Request* r) {
    auto it =
        std::find_if(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w.get() == r; });
    if (it != waiting_.end()) {
      H2Core::set_request(*r->ex, nullptr);
      waiting_.erase(it);
      settle();
      return;
    }
    if (r->ex != nullptr) H2Core::set_request(*r->ex, nullptr);
    r->ex = nullptr;
    if (session_ != nullptr && r->id > 0) {
      release_held(*r);
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, r->id, NGHTTP2_CANCEL);
    }
    post_flush();
  }

  // Deadlines: connecting, each response, each streamed body's silence, a stalled write, the
  // idle connection. An exchange past its deadline is told at once; its stream's reset follows.
  void sweep(Clock::TimePoint t) {
    auto self = shared_from_this();
    std::vector<H2Core::Told> told;
    if (state_ == State::kConnecting) {
      if (t >= connect_deadline_) {
        fail(ExchangeError::kConnectTimeout,
             "connecting to " + ep_.label + " timed out after " +
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    core_->options.connect_timeout)
                                    .count()) +
                 " ms");
        return;
      }
      std::erase_if(waiting_, [&](const std::unique_ptr<H2Request>& w) {
        if (t < w->ex->deadline) return false;
        w->ex->error = ExchangeError::kConnectTimeout;
        w->ex->detail = "connecting to " + ep_.label + " took longer than the request's time";
        core_->decide(*w->ex);
        told.push_back({w->ex, H2Core::Told::Kind::kComplete});
        return true;
      });
      settle();
      core_->tell(told);
      return;
    }
    if (state_ != State::kOpen) return;
    if (writing_ && t - write_started_ >= kWriteStallTimeout) {
      fail(ExchangeError::kReset, ep_.label + " took none of what was written to it for 10 s");
      return;
    }
    for (auto& [id, r] : streams_) {
      Exchange* ex = r->ex;
      if (ex == nullptr) continue;
      if (!r->streaming && t >= ex->deadline) {
        ex->error = ExchangeError::kTimeout;
        ex->detail = "no response from " + ep_.label + " before the deadline";
        ex->request_sent = r->sent;
        told.push_back({ex, H2Core::Told::Kind::kComplete});
      } else if (r->streaming && r->held == 0 && t - r->last_data >= ex->stream_idle_timeout) {
        // (While bytes are held for the client, the upstream's silence is the gateway's doing.)
        r->stream->abort();
        told.push_back({ex, H2Core::Told::Kind::kStreamCut});
      } else {
        continue;
      }
      r->ex = nullptr;
      core_->decide(*ex);
      release_held(*r);
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    }
    if (!told.empty()) {
      core_->tell(told);
      if (state_ == State::kOpen) flush();
      return;
    }
    if (load() == 0 && t - idle_since_ >= core_->options.idle_timeout) {
      nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);  // GOAWAY, then the end
      goaway_ = true;
      flush();
    }
  }

  // Fails every exchange on the connection (waiting ones with `error`, sent ones with kReset
  // unless `error` is kCancelled) and closes it.
  void fail(ExchangeError error, const std::string& detail) {
    if (state_ == State::kClosed) return;
    auto self = shared_from_this();
    const bool connecting = state_ == State::kConnecting;
    state_ = State::kClosed;
    std::vector<H2Core::Told> told;
    for (auto& w : waiting_) {
      Exchange* ex = w->ex;
      ex->error = error;
      ex->detail = detail;
      core_->decide(*ex);
      told.push_back({ex, H2Core::Told::Kind::kComplete});
    }
    waiting_.clear();
    heads_.clear();
    const ExchangeError sent_error =
        error == ExchangeError::kCancelled || connecting ? error : ExchangeError::kReset;
    for (auto& [id, r] : streams_) {
      Exchange* ex = r->ex;
      if (ex == nullptr) continue;
      r->ex = nullptr;
      core_->decide(*ex);
      if (r->streaming) {
        r->stream->abort();
        told.push_back({ex, H2Core::Told::Kind::kStreamCut});
      } else {
        ex->error = sent_error;
        ex->detail = detail;
        ex->request_sent = r->sent;
        told.push_back({ex, H2Core::Told::Kind::kComplete});
      }
    }
    streams_.clear();
    error_code ignored;
    socket_.close(ignored);
    count_as(Count::kNone);
    permit_.reset();
    core_->remove(this);
    core_->tell(told);
  }

 private:
  friend struct H2Callbacks;
  enum class Count { kNone, kIdle, kActive };

  void count_as(Count c) {
    if (c == counted_) return;
    if (counted_ == Count::kIdle) core_->idle.fetch_sub(1, std::memory_order_relaxed);
    if (counted_ == Count::kActive) core_->active.fetch_sub(1, std::memory_order_relaxed);
    if (c == Count::kIdle) core_->idle.fetch_add(1, std::memory_order_relaxed);
    if (c == Count::kActive) core_->active.fetch_add(1, std::memory_order_relaxed);
    counted_ = c;
  }

  // Gives the upstream back the window of bytes held for a full stream that no longer needs them
  // (nghttp2 does not when the stream closes).
  void release_held(H2Request& r) {
    if (r.held == 0 || session_ == nullptr) return;
    nghttp2_session_consume_connection(session_, r.held);
    if (nghttp2_session_find_stream(session_, r.id) != nullptr) {
      nghttp2_session_consume_stream(session_, r.id, r.held);
    }
    r.held = 0;
  }

  // Counts the connection idle or active; an idle one starts its idle time.
  void settle() {
    if (state_ == State::kClosed) return;
    if (load() == 0 && state_ == State::kOpen) {
      if (counted_ != Count::kIdle) idle_since_ = now();
      count_as(Count::kIdle);
    } else {
      count_as(Count::kActive);
    }
  }

  void on_connected(const error_code& ec);
  void submit(std::unique_ptr<H2Request> r);
  // Writes what nghttp2 has to send; exchanges that ended meanwhile hear of it. Not from within
  // start() or cancel(), whose callers must not be called back: they post_flush().
  void flush();
  void post_flush() {
    if (flush_posted_) return;
    flush_posted_ = true;
    asio::post(core_->io, [self = shared_from_this()] {
      self->flush_posted_ = false;
      self->flush();
    });
  }
  void read();
  void after_input();
  // Streams nghttp2 closed: their exchanges end (called outside nghttp2).
  void finish_closed();
  void start_streaming(H2Request& r);

  std::shared_ptr<H2Core> core_;
  H2Endpoint& ep_;
  tcp::socket socket_;
  std::optional<tcp::resolver> resolver_;
  std::unique_ptr<ConnectionAdmission::Permit> permit_;
  nghttp2_session* session_ = nullptr;
  State state_ = State::kConnecting;
  Count counted_ = Count::kNone;
  Clock::TimePoint connect_deadline_{};
  Clock::TimePoint idle_since_{};
  Clock::TimePoint write_started_{};
  std::vector<std::unique_ptr<H2Request>> waiting_;  // until connected
  std::unordered_map<int32_t, std::unique_ptr<H2Request>> streams_;
  std::vector<std::pair<int32_t, uint32_t>> closed_;  // stream, error code: to finish
  std::vector<H2Request*> heads_;                     // streamed heads to hand on
  std::array<uint8_t, kReadBytes> in_{};
  std::string out_;
  // submit()'s scratch, kept for the next request: its fields, lower-cased names and nghttp2's
  // view of them (nghttp2 copies them when the request is submitted).
  std::vector<std::pair<std::string_view, std::string_view>> fields_;
  std::string field_names_;
  std::vector<nghttp2_nv> nva_;
  bool writing_ = false;
  bool flush_posted_ = false;
  bool goaway_ = false;  // no new streams (ours or the upstream's GOAWAY)
  uint32_t max_streams_ = kMaxStreamsPerConnection;
};

// nghttp2's callbacks: they record what happened; the exchanges hear of it after nghttp2
// returns (H2Conn::after_input), as their owners may start other exchanges then.
struct H2Callbacks {
  static H2Conn& of(void* user) { return *static_cast<H2Conn*>(user); }

  static H2Request* request(nghttp2_session* session, int32_t id) {
    return static_cast<H2Request*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static int header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                    size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    H2Request* r = request(session, frame->hd.stream_id);
    if (r == nullptr || r->ex == nullptr) return 0;
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    r->header_bytes += namelen + valuelen + 4;
    if (r->header_bytes > of(user).core_->options.max_response_header_bytes) {
      r->error = ExchangeError::kMalformed;
      r->detail = "response fields over " +
                  std::to_string(of(user).core_->options.max_response_header_bytes) + " bytes";
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    }
    if (n == ":status") {
      int status = 0;
      std::from_chars(v.data(), v.data() + v.size(), status);
      r->interim = status < 200;
      if (!r->interim) r->response.status = status;
      return 0;
    }
    if (r->interim) return 0;  // a 100 Continue's fields
    if (r->got_head) {
      r->response.trailers.add(std::string(n), std::string(v));
    } else {
      r->response.headers.add(std::string(n), std::string(v));
    }
    return 0;
  }

  static int frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    H2Conn& conn = of(user);
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
          conn.max_streams_ = std::min<uint32_t>(
              kMaxStreamsPerConnection, nghttp2_session_get_remote_settings(
                                            session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
        }
        return 0;
      case NGHTTP2_GOAWAY:
        conn.goaway_ = true;  // nghttp2 closes the streams past its last with REFUSED_STREAM
        return 0;
      case NGHTTP2_HEADERS:
      case NGHTTP2_DATA:
        break;
      default:
        return 0;
    }
    H2Request* r = request(session, frame->hd.stream_id);
    if (r == nullptr || r->ex == nullptr) return 0;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (r->interim) {
        r->interim = false;
        return 0;
      }
      if (!r->got_head) {
        r->got_head = true;
        if (!end && !r->ex->head_request && !r->response.headers.get("content-length") &&
            H2Core::takes_stream(*r->ex, r->response)) {
          conn.heads_.push_back(r);
        }
      }
    }
    if (end) {
      r->ended = true;
      // The upstream answered whole while the client still sends (a call it ended early): the
      // rest is of no use, and the stream closes once this side ends it (RFC 9113 section 8.1).
      if (r->body_stream != nullptr && !r->body_sent) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
      }
    }
    return 0;
  }

  static int data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                        size_t len, void* user) {
    H2Conn& conn = of(user);
    H2Request* r = request(session, id);
    if (r == nullptr || r->ex == nullptr || r->error != ExchangeError::kNone) {
      nghttp2_session_consume(session, id, len);
      return 0;
    }
    const std::string_view bytes(reinterpret_cast<const char*>(data), len);
    r->last_data = now();
    if (r->streaming) {
      r->stream->write(bytes);
      if (r->held > 0 || r->stream->full()) {
        r->held += len;  // the upstream's window stays shut until the client takes its part
      } else {
        nghttp2_session_consume(session, id, len);
      }
      return 0;
    }
    nghttp2_session_consume(session, id, len);
    if (r->response.body.size() + len > conn.core_->options.max_response_body_bytes) {
      r->error = ExchangeError::kMalformed;
      r->detail = "response body over " +
                  std::to_string(conn.core_->options.max_response_body_bytes) + " bytes";
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      return 0;
    }
    r->response.body.append(bytes);
    return 0;
  }

  static int frame_send(nghttp2_session* session, const nghttp2_frame* frame, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2Request* r = request(session, frame->hd.stream_id);
    if (r != nullptr) {
      r->sent = true;
      if (r->ex != nullptr) r->ex->request_sent = true;
    }
    return 0;
  }

  static int stream_close(nghttp2_session*, int32_t id, uint32_t code, void* user) {
    of(user).closed_.emplace_back(id, code);
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void*) {
    auto* r = static_cast<H2Request*>(source->ptr);
    size_t n = std::min(length, r->body.size() - r->body_off);
    std::memcpy(buf, r->body.data() + r->body_off, n);
    r->body_off += n;
    if (r->body_off < r->body.size()) return static_cast<ssize_t>(n);
    while (r->body_stream != nullptr && n < length) {
      if (r->piece_off < r->piece.size()) {
        const size_t k = std::min(length - n, r->piece.size() - r->piece_off);
        std::memcpy(buf + n, r->piece.data() + r->piece_off, k);
        r->piece_off += k;
        n += k;
        continue;
      }
      r->piece.clear();
      r->piece_off = 0;
      switch (r->body_stream->read(r->piece)) {
        case http::RequestBody::Read::kData:
          r->body_read = true;
          if (r->ex != nullptr) r->ex->body_stream_read = true;
          continue;
        case http::RequestBody::Read::kWait:
          // on_readable resumes it (H2Conn::submit set it).
          return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
        case http::RequestBody::Read::kEnd:
          r->body_sent = true;
          *flags |= NGHTTP2_DATA_FLAG_EOF;
          return static_cast<ssize_t>(n);
        case http::RequestBody::Read::kAborted:
          // The client reset its stream: so is this one (INTERNAL_ERROR), not ended as if whole.
          r->body_read = true;
          return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      }
    }
    if (r->body_stream == nullptr) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

void H2Conn::on_connected(const error_code& ec) {
  if (state_ != State::kConnecting) return;
  if (ec) {
    fail(ExchangeError::kConnectFailed, "cannot connect to " + ep_.label + ": " + ec.message());
    return;
  }
  error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  if (permit_) permit_->connected();
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, H2Callbacks::header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, H2Callbacks::frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, H2Callbacks::data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, H2Callbacks::frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, H2Callbacks::stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // given back as the client takes the body
  nghttp2_option_set_peer_max_concurrent_streams(opt, kMaxStreamsPerConnection);
  const int rv = nghttp2_session_client_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    session_ = nullptr;
    fail(ExchangeError::kConnectFailed, "cannot start an HTTP/2 session");
    return;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<uint32_t>(
           std::min<size_t>(core_->options.max_response_header_bytes * 2, UINT32_MAX))},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  core_->opened.fetch_add(1, std::memory_order_relaxed);
  state_ = State::kOpen;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& r : waiting) submit(std::move(r));
  settle();
  flush();
  read();
}

void H2Conn::submit(std::unique_ptr<H2Request> r) {
  Exchange& ex = *r->ex;
  fields_.clear();
  if (!http::internal::h2_request_fields(ex.head, field_names_, fields_)) {
    core_->post_failure(ex, ExchangeError::kMalformed,
                        "the request cannot be sent over HTTP/2 (it needs a Host)");
    return;
  }
  nva_.clear();
  for (const auto& [name, value] : fields_) nva_.push_back(http::internal::h2_field(name, value));
  nghttp2_data_provider provider{};
  provider.source.ptr = r.get();
  provider.read_callback = H2Callbacks::read_body;
  // nghttp2 copies the fields.
  const bool has_body = !r->body.empty() || r->body_stream != nullptr;
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva_.data(), nva_.size(),
                                            has_body ? &provider : nullptr, r.get());
  if (id < 0) {
    // Stream ids ran out: this connection takes no more (the next exchange opens another).
    goaway_ = true;
    core_->post_failure(ex, ExchangeError::kReset,
                        "the HTTP/2 connection to " + ep_.label + " took no more streams");
    return;
  }
  r->id = id;
  r->last_data = now();
  if (r->body_stream != nullptr) {
    // Runs from the event loop of the client's connection, this connection's thread.
    r->body_stream->set_on_readable([weak = weak_from_this(), id] {
      auto self = weak.lock();
      if (!self || self->state_ != State::kOpen || !self->streams_.contains(id)) return;
      nghttp2_session_resume_data(self->session_, id);
      self->flush();
    });
  }
  streams_.emplace(id, std::move(r));
  settle();
}

void H2Conn::flush() {
  if (state_ != State::kOpen || writing_ || session_ == nullptr) return;
  out_.clear();
  while (out_.size() < kWriteBatchBytes) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      fail(ExchangeError::kReset,
           std::string("HTTP/2 session error: ") + nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    if (n == 0) break;
    out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  finish_closed();  // sending may close streams (a reset we asked for)
  if (state_ != State::kOpen) return;
  if (out_.empty()) {
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      fail(ExchangeError::kReset, "the HTTP/2 connection to " + ep_.label + " ended");
    }
    return;
  }
  writing_ = true;
  write_started_ = now();
  asio::async_write(socket_, asio::buffer(out_),
                    [self = shared_from_this()](const error_code& ec, size_t) {
                      self->writing_ = false;
                      if (self->state_ != State::kOpen) return;
                      if (ec) {
                        self->fail(ExchangeError::kReset,
                                   "writing to " + self->ep_.label + " failed: " + ec.message());
                        return;
                      }
                      self->flush();
                    });
}

void H2Conn::read() {
  socket_.async_read_some(
      asio::buffer(in_), [self = shared_from_this()](const error_code& ec, size_t n) {
        if (self->state_ != State::kOpen) return;
        if (ec) {
          self->fail(ExchangeError::kReset,
                     ec == asio::error::eof
                         ? self->ep_.label + " closed the connection"
                         : "reading from " + self->ep_.label + " failed: " + ec.message());
          return;
        }
        const ssize_t rv = nghttp2_session_mem_recv(self->session_, self->in_.data(), n);
        if (rv < 0) {
          self->fail(ExchangeError::kMalformed,
                     std::string("HTTP/2 protocol error from the upstream: ") +
                         nghttp2_strerror(static_cast<int>(rv)));
          return;
        }
        self->after_input();
        if (self->state_ != State::kOpen) return;
        self->flush();
        if (self->state_ == State::kOpen) self->read();
      });
}

void H2Conn::after_input() {
  auto heads = std::move(heads_);
  heads_.clear();
  for (H2Request* r : heads) {
    // Still running (not reset by a callback meanwhile): its body streams from here.
    if (r->ex != nullptr && r->error == ExchangeError::kNone && !r->streaming) start_streaming(*r);
  }
  finish_closed();
}

void H2Conn::start_streaming(H2Request& r) {
  Exchange& ex = *r.ex;
  r.streaming = true;
  r.last_data = now();  // its silence is counted from here
  r.stream = std::make_shared<http::BodyStream>();
  if (!r.response.body.empty()) {
    r.stream->write(r.response.body);
    r.response.body.clear();
  }
  if (r.body_off < r.body.size()) {  // the exchange may drop its request once answered
    r.own_body.assign(r.body);
    r.body = r.own_body;
  }
  std::weak_ptr<H2Conn> weak = weak_from_this();
  const int32_t id = r.id;
  r.stream->set_on_drained([weak, id] {
    auto self = weak.lock();
    if (!self || self->state_ != State::kOpen) return;
    auto it = self->streams_.find(id);
    if (it == self->streams_.end()) return;
    it->second->last_data = now();  // the upstream may send again: its silence counts from here
    if (it->second->held == 0) return;
    self->release_held(*it->second);
    self->flush();
  });
  r.stream->set_on_gone([weak, id] {
    auto self = weak.lock();
    if (!self || self->state_ != State::kOpen) return;
    auto it = self->streams_.find(id);
    if (it == self->streams_.end() || it->second->ex == nullptr) return;
    it->second->error = ExchangeError::kCancelled;
    it->second->detail = "the client went away";
    self->release_held(*it->second);
    nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    self->flush();
  });
  // Trailers that came in the same read as the head stay for the stream's end.
  http::Headers trailers = std::move(r.response.trailers);
  ex.response = std::move(r.response);
  ex.response.trailers.clear();
  ex.response.stream = r.stream;
  r.response = http::Response();
  r.response.trailers = std::move(trailers);  // the rest come here
  core_->decide(ex);
  core_->tell({{&ex, H2Core::Told::Kind::kComplete}});
  // Streaming: h2_ names the request again until the body's end (cancel() leaves it alone).
  H2Core::set_request(ex, &r);
}

void H2Conn::finish_closed() {
  if (closed_.empty()) return;
  auto self = shared_from_this();
  auto closed = std::move(closed_);
  closed_.clear();
  std::vector<H2Core::Told> told;
  for (const auto& [id, code] : closed) {
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    std::unique_ptr<H2Request> r = std::move(it->second);
    streams_.erase(it);
    release_held(*r);
    Exchange* ex = r->ex;
    if (ex == nullptr) continue;
    core_->decide(*ex);
    const bool clean =
        code == NGHTTP2_NO_ERROR && r->ended && r->got_head && r->error == ExchangeError::kNone;
    if (r->streaming) {
      if (clean) {
        r->stream->end(std::move(r->response.trailers));
      } else {
        r->stream->abort();
      }
      told.push_back(
          {ex, clean ? H2Core::Told::Kind::kStreamEnded : H2Core::Told::Kind::kStreamCut});
      continue;
    }
    if (clean) {
      ex->response = std::move(r->response);
      told.push_back({ex, H2Core::Told::Kind::kComplete});
      continue;
    }
    if (r->error == ExchangeError::kNone && code == NGHTTP2_REFUSED_STREAM &&
        !H2Core::stale_retried(*ex) && !r->body_read) {
      // Not processed (RFC 9113 section 8.7): safe to send again, once.
      H2Core::mark_stale_retried(*ex);
      ex->request_sent = false;
      core_->stale_retries.fetch_add(1, std::memory_order_relaxed);
      told.push_back({ex, H2Core::Told::Kind::kRetry, &ep_});
      continue;
    }
    ex->error = r->error != ExchangeError::kNone ? r->error : ExchangeError::kReset;
    ex->detail = !r->detail.empty()
                     ? r->detail
                     : ep_.label + " reset the stream (" + nghttp2_http2_strerror(code) + ")";
    ex->request_sent = r->sent && code != NGHTTP2_REFUSED_STREAM;
    told.push_back({ex, H2Core::Told::Kind::kComplete});
  }
  settle();
  core_->tell(told);
}

void H2Core::tell(const std::vector<Told>& told) {
  auto self = shared_from_this();
  for (const Told& t : told) {
    Exchange& ex = *t.ex;
    if (ex.h2_ != &deciding) continue;  // cancelled meanwhile
    ex.h2_ = nullptr;
    switch (t.kind) {
      case Told::Kind::kComplete:
        ex.on_complete();
        break;
      case Told::Kind::kStreamEnded:
      case Told::Kind::kStreamCut:
        ex.on_stream_end(t.kind == Told::Kind::kStreamEnded);
        break;
      case Told::Kind::kRetry:
        // Any connection with room (the refusing one too, once the upstream's limit is known).
        if (!start(t.ep->host, t.ep->port, ex)) ex.on_complete();
        break;
    }
  }
}

void H2Core::post_failure(Exchange& ex, ExchangeError error, std::string detail) {
  ex.error = error;
  ex.detail = std::move(detail);
  auto r = std::make_unique<H2Request>();
  r->ex = &ex;  // conn stays null: cancel() clears ex
  ex.h2_ = r.get();
  H2Request* raw = r.get();
  posted.push_back(std::move(r));
  asio::post(io, [self = shared_from_this(), raw] {
    auto it = std::find_if(self->posted.begin(), self->posted.end(),
                           [&](const auto& p) { return p.get() == raw; });
    if (it == self->posted.end()) return;  // told by stop()
    Exchange* failed = (*it)->ex;
    self->posted.erase(it);
    if (failed == nullptr) return;  // cancelled
    self->decide(*failed);
    self->tell({{failed, Told::Kind::kComplete}});
  });
}

void H2Core::cancel(Exchange& ex) {
  H2Request* r = ex.h2_;
  if (r == nullptr) return;
  if (r == &deciding || r->conn == nullptr) {  // its end is decided, or a posted failure
    if (r != &deciding) r->ex = nullptr;
    ex.h2_ = nullptr;
    return;
  }
  if (r->streaming) return;  // on_complete() ran: the body's end (or the client's) ends it
  auto keep = r->conn->shared_from_this();
  keep->cancel(r);
}

bool H2Core::start(std::string_view host, uint16_t port, Exchange& ex) {
  if (stopped) {
    ex.error = ExchangeError::kCancelled;
    return false;
  }
  H2Endpoint& ep = endpoints(host, port);
  if (ep.label.empty()) {
    ep.host = std::string(host);
    ep.port = port;
    ep.label = host_port(host, port);
    error_code ec;
    auto address = asio::ip::make_address(ep.host, ec);
    if (!ec) ep.address = address;
  }
  // The least loaded connection with room (all of them are few).
  H2Conn* best = nullptr;
  for (auto& c : ep.conns) {
    if (c->has_room() && (best == nullptr || c->load() < best->load())) best = c.get();
  }
  if (best != nullptr) {
    const bool open = best->state() == H2Conn::State::kOpen;
    if (open) reused.fetch_add(1, std::memory_order_relaxed);
    best->add(ex, open);
    ensure_sweep();
    return true;
  }
  std::unique_ptr<ConnectionAdmission::Permit> permit;
  if (ex.admission != nullptr) {
    permit = ex.admission->try_open(ex.detail);
    if (!permit) {
      ex.error = ExchangeError::kOverflow;
      return false;
    }
  }
  auto conn = std::make_shared<H2Conn>(shared_from_this(), ep);
  ep.conns.push_back(conn);
  conn->add(ex, /*reused=*/false);
  conn->connect(std::move(permit));
  ensure_sweep();
  return true;
}

void H2Core::remove(H2Conn* conn) {
  endpoints.for_each([&](std::string_view, uint16_t, H2Endpoint& ep) {
    std::erase_if(ep.conns, [&](const auto& c) { return c.get() == conn; });
  });
}

void H2Core::ensure_sweep() {
  if (sweep_armed || stopped) return;
  sweep_armed = true;
  timer->expires_after(timeout_resolution);
  timer->async_wait([self = shared_from_this()](const error_code& ec) {
    self->sweep_armed = false;
    if (ec || self->stopped) return;
    self->sweep();
  });
}

void H2Core::sweep() {
  const Clock::TimePoint t = now();
  std::vector<std::shared_ptr<H2Conn>> all;
  endpoints.for_each([&](std::string_view, uint16_t, H2Endpoint& ep) {
    all.insert(all.end(), ep.conns.begin(), ep.conns.end());
  });
  for (auto& c : all) c->sweep(t);
  bool any = false;
  endpoints.for_each(
      [&](std::string_view, uint16_t, H2Endpoint& ep) { any = any || !ep.conns.empty(); });
  if (any) ensure_sweep();
}

void H2Core::stop() {
  if (stopped) return;
  stopped = true;
  timer.reset();
  std::vector<std::shared_ptr<H2Conn>> all;
  endpoints.for_each([&](std::string_view, uint16_t, H2Endpoint& ep) {
    all.insert(all.end(), ep.conns.begin(), ep.conns.end());
  });
  for (auto& c : all) c->fail(ExchangeError::kCancelled, "the pool stopped");
  // Failures posted for the event loop, which may not run again.
  std::vector<Told> told;
  for (auto& r : posted) {
    if (r->ex == nullptr) continue;
    r->ex->error = ExchangeError::kCancelled;
    decide(*r->ex);
    told.push_back({r->ex, Told::Kind::kComplete});
  }
  posted.clear();
  tell(told);
}

H2Upstreams::H2Upstreams(asio::io_context& io, const UpstreamPoolOptions& options)
    : core_(std::make_shared<H2Core>(io, options)) {}

H2Upstreams::~H2Upstreams() { core_->stop(); }

bool H2Upstreams::start(std::string_view host, uint16_t port, Exchange& exchange) {
  return core_->start(host, port, exchange);
}

void H2Upstreams::cancel(Exchange& exchange) { core_->cancel(exchange); }

void H2Upstreams::stop() { core_->stop(); }

void H2Upstreams::set_timeout_resolution(std::chrono::milliseconds resolution) {
  core_->timeout_resolution = resolution;
}

H2Upstreams::Stats H2Upstreams::stats() const {
  return Stats{
      core_->opened.load(std::memory_order_relaxed), core_->reused.load(std::memory_order_relaxed),
      core_->stale_retries.load(std::memory_order_relaxed),
      core_->idle.load(std::memory_order_relaxed), core_->active.load(std::memory_order_relaxed)};
}

}  // namespace prescale::gateway::internal
