// H2Session: see h2_session.h.
#include "http/internal/h2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>
#include <cstring>
#include <optional>
#include <utility>

#include "http/internal/h2_fields.h"
#include "http/internal/parsers.h"
#include "http/internal/wire.h"
#include "http/request_body.h"

namespace prescale::http::internal {
namespace {

// Receive windows, a stream's (SETTINGS_INITIAL_WINDOW_SIZE) and the connection's, reopened as
// bytes arrive: they pace the client, they do not bound what it may send (a window held shut
// until some body completes can deadlock a client interleaving large uploads).
constexpr int32_t kStreamWindow = 1 << 20;
constexpr int32_t kConnectionWindow = 16 << 20;
// What the request bodies of one connection may hold, while they arrive or their handlers run:
// at least this, and twice max_body_bytes. A stream whose bytes would go past it is refused
// (RST_STREAM REFUSED_STREAM: not processed, so a client may retry it).
constexpr size_t kMinBufferedBodyBytes = 16 << 20;
// Counted per field as HTTP/1.1 would spend on it: ": " and CRLF.
constexpr size_t kFieldOverhead = 4;

Clock::TimePoint now() { return Clock::real().now(); }

std::string_view view(const uint8_t* p, size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

// Connection-specific fields have no place in HTTP/2 (RFC 9113 section 8.2.2); Content-Length is
// the server's own.
bool dropped_response_field(std::string_view lower_name) {
  return lower_name == "connection" || lower_name == "keep-alive" ||
         lower_name == "proxy-connection" || lower_name == "transfer-encoding" ||
         lower_name == "upgrade" || lower_name == "content-length";
}

}  // namespace

struct H2Stream {
  int32_t id = 0;
  Request req;
  std::string authority;
  std::string cookie;
  size_t header_bytes = 0;
  size_t body_bytes = 0;  // of the request's body, counted in the session's buffered_
  Clock::TimePoint deadline{};
  // Since when the answer has had bytes to send that the client's windows hold back, with none
  // framed meanwhile.
  std::optional<Clock::TimePoint> stalled_since;
  int reject = 0;  // the server's answer instead of the handler's
  std::string reject_detail;
  bool complete = false;    // headers and body are in
  // The handler reads the body as it arrives (ServerOptions::stream_request_body): DATA goes
  // here, not into req.body, and the windows reopen as it is read.
  std::shared_ptr<RequestBody> body_stream;
  bool dispatched = false;  // the handler has it
  bool responded = false;   // the response went to nghttp2
  bool closed = false;      // nghttp2 closed the stream
  bool refused = false;     // RST_STREAM(REFUSED_STREAM): over the connection's body budget
  // The request was not read whole (413, 408): once the answer is out, RST_STREAM(NO_ERROR)
  // tells the client to stop sending (RFC 9113 section 8.1).
  bool cut_after_answer = false;
  // The response's body: `body`, then `stream`'s pieces through `piece`.
  std::string body;
  size_t body_off = 0;
  std::shared_ptr<BodyStream> stream;
  bool attached = false;
  std::string piece;
  size_t piece_off = 0;
  size_t unacked = 0;  // body bytes of `stream` put into frames, not yet reported as sent
  Headers trailers;    // sent after the body: the response's, or the stream's at its end
};

namespace {

// The Responder's callable, as over HTTP/1.1: exactly one response per stream, or 500 when the
// last copy is dropped uncalled.
class H2ResponderFn {
 public:
  H2ResponderFn(std::shared_ptr<H2Session> session, std::shared_ptr<H2Stream> stream)
      : session_(std::move(session)), stream_(std::move(stream)) {}
  H2ResponderFn(H2ResponderFn&& o) noexcept
      : session_(std::move(o.session_)), stream_(std::move(o.stream_)), called_(o.called_) {}
  H2ResponderFn(const H2ResponderFn& o) = default;  // required by std::function; never used
  H2ResponderFn& operator=(const H2ResponderFn&) = delete;
  H2ResponderFn& operator=(H2ResponderFn&&) = delete;

  ~H2ResponderFn() {
    if (session_ && !called_) session_->deliver(stream_, rejection(500));
  }

  void operator()(Response response) {
    if (called_ || !session_) return;
    called_ = true;
    session_->deliver(stream_, std::move(response));
  }

 private:
  std::shared_ptr<H2Session> session_;
  std::shared_ptr<H2Stream> stream_;
  bool called_ = false;
};

}  // namespace

// nghttp2's callbacks, with access to the session.
struct H2Callbacks {
  static H2Session& of(void* user) { return *static_cast<H2Session*>(user); }

  static int begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    H2Session& self = of(user);
    auto s = std::make_shared<H2Stream>();
    s->id = frame->hd.stream_id;
    s->req.remote_address = self.remote_address_;
    s->req.secure = self.secure_;
    s->deadline = now() + self.shared_.options.read_timeout;
    self.streams_[s->id] = std::move(s);
    self.had_stream_ = true;
    self.last_active_ = now();
    return 0;
  }

  static int header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                    size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    H2Session& self = of(user);
    H2Stream* s = self.find(frame->hd.stream_id);
    if (s == nullptr || frame->hd.type != NGHTTP2_HEADERS) return 0;
    s->header_bytes += namelen + valuelen + kFieldOverhead;
    if (s->header_bytes > self.shared_.options.max_header_bytes) {
      if (s->reject == 0) s->reject = 431;
      return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST || s->reject != 0) return 0;  // trailers
    const std::string_view n = view(name, namelen);
    const std::string_view v = view(value, valuelen);
    if (!n.empty() && n[0] == ':') {
      if (n == ":method") {
        s->req.method_name.assign(v);
        s->req.method = method_from_string(v);
      } else if (n == ":path") {
        s->req.target.assign(v);
      } else if (n == ":authority") {
        s->authority.assign(v);
      }
      return 0;  // :scheme, :protocol
    }
    if (n == "cookie") {
      // Split across fields for compression; one field again for HTTP/1.1 handlers (RFC 9113
      // section 8.2.3).
      if (!s->cookie.empty()) s->cookie += "; ";
      s->cookie += v;
      return 0;
    }
    s->req.headers.add(std::string(n), std::string(v));
    return 0;
  }

  static int data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                        size_t len, void* user) {
    H2Session& self = of(user);
    H2Stream* s = self.find(stream_id);
    if (s != nullptr && s->body_stream != nullptr) {
      // The connection's window reopens at once: bytes held unread for one stream must not stop
      // the others (nor, past half the window, every later WINDOW_UPDATE). The stream's own
      // reopens as the handler reads; the body budget bounds what all of them hold.
      nghttp2_session_consume_connection(session, len);
      if (s->refused) return 0;
      if (self.buffered_ + len > self.body_budget_) {
        // Not REFUSED_STREAM: its handler has it, and may have read some of it. (gRPC takes
        // ENHANCE_YOUR_CALM for RESOURCE_EXHAUSTED.)
        s->refused = true;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_ENHANCE_YOUR_CALM);
        return 0;
      }
      std::function<void()> wake;
      if (s->body_stream->push(reinterpret_cast<const char*>(data), len, wake)) {
        self.buffered_ += len;  // until read (consume()) or the stream's end
      } else {
        nghttp2_session_consume_stream(session, stream_id, len);  // discarded: nobody holds it
      }
      if (wake) boost::asio::post(self.worker_->io(), std::move(wake));
      return 0;
    }
    // Read whole: the windows reopen as the bytes arrive (the body budget bounds them).
    nghttp2_session_consume(session, stream_id, len);
    if (s == nullptr || s->reject != 0 || s->refused || s->complete) return 0;
    if (s->body_bytes + len > self.shared_.options.max_body_bytes) {
      s->reject = 413;  // answered now, not after a body we will not read
      s->cut_after_answer = true;
      self.drop_body(*s);
      self.ready_.push_back(stream_id);
      return 0;
    }
    if (self.buffered_ + len > self.body_budget_) {
      s->refused = true;
      self.drop_body(*s);
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    s->req.body.append(reinterpret_cast<const char*>(data), len);
    s->body_bytes += len;
    self.buffered_ += len;
    return 0;
  }

  static int frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    H2Session& self = of(user);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    H2Stream* s = self.find(frame->hd.stream_id);
    if (s == nullptr) return 0;
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      if (s->body_stream != nullptr) {
        s->complete = true;
        std::function<void()> wake;
        s->body_stream->finish(true, wake);
        if (wake) boost::asio::post(self.worker_->io(), std::move(wake));
      } else if (!s->complete && !s->cut_after_answer) {
        s->complete = true;
        self.ready_.push_back(s->id);
      }
      return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (s->reject == 0) {
      // A body announced over the limit is refused before it comes (as over HTTP/1.1).
      if (auto cl = s->req.headers.get("content-length")) {
        uint64_t n = 0;
        auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
        if (ec == std::errc() && end == cl->data() + cl->size() &&
            n > self.shared_.options.max_body_bytes) {
          s->reject = 413;
        }
      }
    }
    if (s->reject != 0) {
      // Fields over the limit, or a body too large, to follow: answered now, the body not read.
      s->cut_after_answer = true;
      self.ready_.push_back(s->id);
    } else {
      // The client waits for a go-ahead before its body (RFC 9110 section 10.1.1).
      auto expect = s->req.headers.get("expect");
      if (expect && iequals(trim(*expect), "100-continue")) {
        const nghttp2_nv nv = h2_field(":status", "100");
        nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, s->id, nullptr, &nv, 1, nullptr);
      }
      // A handler that reads the body as it comes has the request now (a head the checks refuse
      // is answered once its body is in, as any other).
      const auto& stream_body = self.shared_.options.stream_request_body;
      if (stream_body && self.check_head(*s).status == 0 && stream_body(s->req)) {
        self.start_body_stream(*s);
        self.ready_.push_back(s->id);
      }
    }
    return 0;
  }

  static int frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
      // A request nghttp2 found malformed itself (a connection-specific field, `te` other than
      // "trailers", a body longer or shorter than its content-length, ...): it resets the
      // stream with PROTOCOL_ERROR (this server never does) before the handler saw it. Counted
      // as the server's 400, as HTTP/1.1's malformed requests are.
      const H2Stream* s = of(user).find(frame->hd.stream_id);
      if (frame->rst_stream.error_code == NGHTTP2_PROTOCOL_ERROR && s != nullptr &&
          !s->dispatched) {
        of(user).shared_.reject(400);
      }
      return 0;
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
    H2Stream* s = of(user).find(frame->hd.stream_id);
    // Not once the client has ended its side too: the stream is closed then (RFC 9113 section
    // 5.1).
    // Nor a streamed body's client (the answer is complete, what it still sends is of no use).
    if (s != nullptr && (s->cut_after_answer || (s->body_stream != nullptr && !s->complete)) &&
        nghttp2_session_get_stream_remote_close(session, s->id) == 0) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
    return 0;
  }

  static int stream_close(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
    H2Session& self = of(user);
    auto it = self.streams_.find(stream_id);
    if (it == self.streams_.end()) return 0;
    auto s = std::move(it->second);
    self.streams_.erase(it);
    s->closed = true;
    if (s->body_stream != nullptr) self.end_body_stream(*s);
    // A handler that has the request may read its body until it answers (the gateway writes it
    // upstream from there): its budget goes back when it answers.
    if (!s->dispatched) self.drop_body(*s);
    self.last_active_ = now();
    // Told from the event loop: nothing of a handler's or producer's may run inside nghttp2. The
    // handler may have answered meanwhile (on_response clears the callback): then it is not.
    if (s->dispatched && !s->responded && s->req.on_client_gone) {
      boost::asio::post(self.worker_->io(), [s] { H2Session::tell_gone(*s); });
    }
    if (s->stream != nullptr) {
      boost::asio::post(self.worker_->io(), [b = std::move(s->stream)] { b->client_gone(); });
    }
    return 0;
  }

  // Queues the stream's trailers as a HEADERS frame that ends it; false when none are allowed.
  static bool submit_trailers(nghttp2_session* session, H2Stream& s) {
    // The values are viewed until nghttp2 has copied them, at the submit below.
    const Headers trailers = std::exchange(s.trailers, Headers());
    std::vector<std::string> names;  // lower case; reserved: views stay valid
    names.reserve(trailers.fields().size());
    std::vector<nghttp2_nv> nva;
    nva.reserve(trailers.fields().size());
    for (const auto& [name, value] : trailers.fields()) {
      if (!trailer_allowed(name, value)) continue;
      names.push_back(lower_cased(name));
      nva.push_back(h2_field(names.back(), value));
    }
    // nghttp2 copies the fields.
    return !nva.empty() && nghttp2_submit_trailer(session, s.id, nva.data(), nva.size()) == 0;
  }

  static ssize_t read_body(nghttp2_session* ng, int32_t, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source* source, void* user) {
    H2Session& self = of(user);
    auto* s = static_cast<H2Stream*>(source->ptr);
    size_t n = 0;
    if (s->body_off < s->body.size()) {
      n = std::min(length, s->body.size() - s->body_off);
      std::memcpy(buf, s->body.data() + s->body_off, n);
      s->body_off += n;
      s->stalled_since.reset();  // progress
      if (s->body_off == s->body.size()) {
        std::string().swap(s->body);
        s->body_off = 0;
      }
    }
    while (n < length && s->stream != nullptr) {
      if (s->piece_off < s->piece.size()) {
        const size_t k = std::min(length - n, s->piece.size() - s->piece_off);
        std::memcpy(buf + n, s->piece.data() + s->piece_off, k);
        s->piece_off += k;
        n += k;
        s->stalled_since.reset();  // progress
        if (s->unacked == 0) {
          auto it = self.streams_.find(s->id);
          if (it != self.streams_.end()) self.sending_.push_back(it->second);
        }
        s->unacked += k;
        continue;
      }
      s->piece.clear();
      s->piece_off = 0;
      if (!s->attached) {
        s->attached = true;
        // Woken from the producer's thread; resumed on this one.
        s->stream->attach([weak = self.weak_from_this(), worker = self.worker_, id = s->id] {
          worker->post_if_running([weak, id] {
            if (auto session = weak.lock()) session->resume_stream(id);
          });
        });
      }
      size_t taken = 0;
      switch (s->stream->take(s->piece, false, taken)) {
        case BodyStream::Take::kData:
          continue;
        case BodyStream::Take::kWait:
          return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
        case BodyStream::Take::kEnd:
          s->trailers = s->stream->take_trailers();
          s->stream.reset();
          break;
        case BodyStream::Take::kAbort:
          s->stream.reset();
          // nghttp2 resets the stream (INTERNAL_ERROR): the client sees a cut body.
          return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      }
    }
    if (s->body_off == 0 && s->body.empty() && s->stream == nullptr) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!s->trailers.empty() && submit_trailers(ng, *s))
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;  // the trailers' HEADERS ends the stream
    }
    return static_cast<ssize_t>(n);
  }
};

H2Session::H2Session(std::shared_ptr<Worker> worker, std::string remote_address, bool secure)
    : worker_(std::move(worker)),
      shared_(worker_->shared()),
      remote_address_(std::move(remote_address)),
      secure_(secure),
      tunnel_(std::make_shared<Tunnel>()),
      timer_(worker_->io()) {}

H2Session::~H2Session() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

bool H2Session::start() {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, H2Callbacks::begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, H2Callbacks::header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, H2Callbacks::data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, H2Callbacks::frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, H2Callbacks::frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, H2Callbacks::stream_close);
  nghttp2_option* option = nullptr;
  if (nghttp2_option_new(&option) != 0) {
    nghttp2_session_callbacks_del(callbacks);
    return false;
  }
  // Stated, not left to the library's defaults: bursts of RST_STREAM (CVE-2023-44487, "rapid
  // reset") and endless CONTINUATION frames end the connection.
  // The windows reopen as request bodies are taken: at once for one read whole, as the handler
  // reads for one it reads as it comes (nghttp2 itself takes back padding and ignored DATA).
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33);
  nghttp2_option_set_max_continuations(option, 8);
  const int rv = nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) return false;
  body_budget_ = std::max(kMinBufferedBodyBytes, 2 * shared_.options.max_body_bytes);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<uint32_t>(std::min<size_t>(shared_.options.max_header_bytes, UINT32_MAX))},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0 ||
      nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow) !=
          0) {
    return false;
  }
  // The tunnel's callbacks hold the session until the connection closes (Tunnel::closed() drops
  // them); the timer's only while it is armed.
  auto self = shared_from_this();
  tunnel_->set_on_data([self](std::string_view bytes) { self->on_data(bytes); });
  tunnel_->set_on_end([self] { self->on_input_ended(); });
  tunnel_->set_on_closed([self] { self->on_closed(); });
  tunnel_->out().set_on_drained([self] { self->flush(); });
  last_active_ = now();
  arm_tick();
  flush();
  return true;
}

H2Stream* H2Session::find(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void H2Session::on_data(std::string_view bytes) {
  if (closed_ || failed_) return;
  const auto used = nghttp2_session_mem_recv(
      session_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  // A bad preface, a flood of control frames, no memory: nothing more is read. (Protocol errors
  // nghttp2 answers with GOAWAY itself, then wants no more input.)
  if (used < 0) failed_ = true;
  if (!failed_) dispatch_ready();
  flush();
}

void H2Session::on_input_ended() {
  input_ended_ = true;
  // As over HTTP/1.1: a client that ended its input while its requests are handled has left.
  for (auto& [id, s] : streams_) {
    if (s->dispatched && !s->responded && s->req.on_client_gone) {
      boost::asio::post(worker_->io(), [s = s] { tell_gone(*s); });
    }
  }
  flush();
}

void H2Session::tell_gone(H2Stream& stream) {
  if (!stream.req.on_client_gone) return;  // answered meanwhile, or told already
  auto gone = std::move(stream.req.on_client_gone);
  stream.req.on_client_gone = nullptr;
  try {
    gone();
  } catch (...) {
    // A handler bug; the session is consistent already.
  }
}

void H2Session::on_closed() {
  closed_ = true;
  timer_.cancel();
  auto streams = std::move(streams_);
  streams_.clear();
  ready_.clear();
  sending_.clear();
  for (auto& [id, s] : streams) {
    s->closed = true;
    if (s->body_stream != nullptr) end_body_stream(*s);
    if (s->dispatched && !s->responded) tell_gone(*s);
    if (s->stream != nullptr) std::exchange(s->stream, nullptr)->client_gone();
  }
}

void H2Session::drain() {
  if (closed_ || draining_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  flush();
}

void H2Session::dispatch_ready() {
  if (ready_.empty()) return;
  auto ready = std::move(ready_);
  ready_.clear();
  for (const int32_t id : ready) {
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    auto s = it->second;
    if (s->dispatched || s->responded || s->refused) continue;
    if (s->reject != 0) {
      answer(*s, s->reject, s->reject_detail);
      continue;
    }
    const HeadCheck check = check_head(*s);
    if (check.status != 0) {
      answer(*s, check.status, check.detail);
    } else {
      dispatch(s);
    }
  }
}

H2Session::HeadCheck H2Session::check_head(H2Stream& s) {
  Request& req = s.req;
  size_t hosts = 0;
  for (const auto& [name, value] : req.headers.fields()) hosts += iequals(name, "host") ? 1 : 0;
  if (!s.cookie.empty()) req.headers.add("Cookie", std::move(s.cookie));
  s.cookie.clear();
  // The host routing relies on, unambiguous as over HTTP/1.1: :authority (which a Host field
  // gives way to, RFC 9113 section 8.3.1), else exactly one Host.
  if (!s.authority.empty() && valid_host(s.authority)) {
    req.headers.set("Host", s.authority);
  } else if (!s.authority.empty()) {
    return {400, ":authority is not host[:port]"};
  } else if (hosts != 1) {
    return {400, hosts == 0 ? "no :authority and no Host" : "more than one Host field"};
  } else if (!valid_host(*req.headers.get("Host"))) {
    return {400, "Host is not host[:port]"};
  }
  if (req.method_name == "CONNECT") return {400, "CONNECT is not supported"};
  // "OPTIONS *" asks about the server (RFC 9110 section 9.3.7); nghttp2 lets "*" through for
  // OPTIONS only.
  if (req.target == "*") return {200, {}};
  if (req.target.empty() || req.target[0] != '/' || !valid_target(req.target)) {
    return {400, "bad :path"};
  }
  split_target(req.target, req.path, req.query);
  return {};
}

void H2Session::start_body_stream(H2Stream& s) {
  s.body_stream = std::make_shared<RequestBody>();
  s.req.body_stream = s.body_stream;
  // Read bytes reopen the client's windows, from the event loop (the reader may be anywhere).
  s.body_stream->bind([weak = weak_from_this(), worker = worker_, id = s.id](size_t n) {
    worker->post_if_running([weak, id, n] {
      if (auto session = weak.lock()) session->consume(id, n);
    });
  });
}

void H2Session::end_body_stream(H2Stream& s) {
  std::function<void()> wake;
  s.body_stream->finish(s.complete, wake);
  if (wake) boost::asio::post(worker_->io(), std::move(wake));
  // Bytes still unread leave the budget now (the stream's window is gone with it), and read
  // later they are not reported again.
  const size_t unread = s.body_stream->unbind();
  buffered_ -= std::min(buffered_, unread);
}

void H2Session::consume(int32_t id, size_t bytes) {
  buffered_ -= std::min(buffered_, bytes);
  if (closed_) return;
  // The connection's window was given back on arrival.
  if (nghttp2_session_find_stream(session_, id) != nullptr) {
    nghttp2_session_consume_stream(session_, id, bytes);
    flush();
  }
}

void H2Session::drop_body(H2Stream& stream) {
  buffered_ -= std::min(buffered_, std::exchange(stream.body_bytes, 0));
  std::string().swap(stream.req.body);
}

void H2Session::dispatch(const std::shared_ptr<H2Stream>& stream) {
  stream->dispatched = true;
  worker_->inflight().fetch_add(1, std::memory_order_relaxed);
  try {
    shared_.handler(stream->req, Responder(H2ResponderFn(shared_from_this(), stream)));
  } catch (...) {
    // The Responder's guard answers 500 if the handler threw before responding.
  }
}

void H2Session::answer(H2Stream& stream, int status, std::string_view detail) {
  if (status != 200) shared_.reject(status);
  if (status == 408 || status == 413) stream.cut_after_answer = true;
  drop_body(stream);
  submit(stream, status == 200 ? Response{} : rejection(status, detail));
}

void H2Session::deliver(const std::shared_ptr<H2Stream>& stream, Response&& response) {
  if (worker_->io().get_executor().running_in_this_thread()) {
    on_response(stream, std::move(response));
    return;
  }
  std::shared_ptr<BodyStream> body = response.stream;
  std::shared_ptr<Tunnel> tunnel = response.tunnel;
  const bool posted = worker_->post_if_running(
      [self = shared_from_this(), stream, r = std::move(response)]() mutable {
        self->on_response(stream, std::move(r));
      });
  if (!posted) {
    worker_->inflight().fetch_sub(1, std::memory_order_relaxed);
    // The server has stopped: nothing of it will be sent.
    if (body != nullptr) body->client_gone();
    if (tunnel != nullptr) tunnel->closed();
  }
}

void H2Session::on_response(const std::shared_ptr<H2Stream>& stream, Response&& response) {
  worker_->inflight().fetch_sub(1, std::memory_order_relaxed);
  stream->req.on_client_gone = nullptr;
  // The handler answered: the body leaves the budget. Its bytes stay with the stream, which a
  // producer's write of them (the gateway's to its upstream) may still be reading.
  buffered_ -= std::min(buffered_, std::exchange(stream->body_bytes, 0));
  if (closed_ || stream->closed || stream->responded) {
    if (response.stream != nullptr) {
      boost::asio::post(worker_->io(), [b = std::move(response.stream)] { b->client_gone(); });
    }
    if (response.tunnel != nullptr) {
      boost::asio::post(worker_->io(), [t = std::move(response.tunnel)] { t->closed(); });
    }
    return;
  }
  submit(*stream, std::move(response));
  flush();
}

void H2Session::submit(H2Stream& s, Response&& r) {
  s.responded = true;
  if (r.tunnel != nullptr || r.status < 200 || r.status > 999) {
    // HTTP/2 switches no protocol (RFC 9113 section 8.6), and a 1xx cannot be final.
    if (r.tunnel != nullptr) {
      boost::asio::post(worker_->io(), [t = std::move(r.tunnel)] { t->closed(); });
    }
    if (r.stream != nullptr) {
      boost::asio::post(worker_->io(), [b = std::move(r.stream)] { b->client_gone(); });
    }
    r = rejection(500);
  }
  const bool head = s.req.method == Method::kHead;
  const bool body_allowed = !head && r.status != 204 && r.status != 304;
  const bool had_stream = r.stream != nullptr;
  if (had_stream && !body_allowed) {
    boost::asio::post(worker_->io(), [b = std::move(r.stream)] { b->client_gone(); });
    r.stream = nullptr;
  }

  char status[4];
  const auto status_end = std::to_chars(status, status + sizeof status, r.status).ptr;
  std::string content_length;
  if (r.status != 204) {
    if ((head || r.status == 304) && r.body.empty()) {
      // The length a GET would get, when the handler knows it (as over HTTP/1.1).
      if (auto cl = r.headers.get("Content-Length")) {
        uint64_t n = 0;
        auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
        if (ec == std::errc() && end == cl->data() + cl->size()) content_length.assign(*cl);
      }
    } else if (!had_stream) {
      content_length = std::to_string(r.body.size());
    }
  }
  const auto& fields = r.headers.fields();
  std::vector<std::string> names;  // lower case, as HTTP/2 requires; reserved: views stay valid
  names.reserve(fields.size());
  std::vector<nghttp2_nv> nva;
  nva.reserve(fields.size() + 4);
  nva.push_back(h2_field(":status", std::string_view(status, status_end - status)));
  bool has_server = false;
  bool has_date = false;
  for (const auto& [name, value] : fields) {
    if (!valid_field(name, value)) continue;
    std::string lower = lower_cased(name);
    if (dropped_response_field(lower)) continue;
    has_server = has_server || lower == "server";
    has_date = has_date || lower == "date";
    names.push_back(std::move(lower));
    nva.push_back(h2_field(names.back(), value));
  }
  if (!has_server) nva.push_back(h2_field("server", "prescale"));
  const std::string_view date = has_date ? std::string_view() : http_date_now();
  if (!has_date) nva.push_back(h2_field("date", date));
  if (!content_length.empty()) nva.push_back(h2_field("content-length", content_length));

  if (body_allowed) {
    s.body = std::move(r.body);
    s.body_off = 0;
    s.stream = std::move(r.stream);
    if (s.stream == nullptr) s.trailers = std::move(r.trailers);  // a stream ends with its own
  }
  nghttp2_data_provider provider{};
  provider.source.ptr = &s;
  provider.read_callback = H2Callbacks::read_body;
  const bool has_body =
      body_allowed && (!s.body.empty() || s.stream != nullptr || !s.trailers.empty());
  // nghttp2 copies the fields; the stream outlives its data provider (it leaves streams_ only
  // when nghttp2 closes it).
  if (nghttp2_submit_response(session_, s.id, nva.data(), nva.size(),
                              has_body ? &provider : nullptr) != 0) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_INTERNAL_ERROR);
  }
}

void H2Session::resume_stream(int32_t id) {
  if (closed_ || find(id) == nullptr) return;
  nghttp2_session_resume_data(session_, id);  // fails harmlessly when it was not deferred
  flush();
}

void H2Session::flush() {
  if (flushing_ || closed_ || ended_) return;
  flushing_ = true;
  BodyStream& out = tunnel_->out();
  // Also after a failure: what nghttp2 queued then (a GOAWAY naming the error) goes out.
  while (!out.full()) {
    const uint8_t* data = nullptr;
    const auto n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      failed_ = true;
      break;
    }
    if (n == 0) break;
    out.write(view(data, static_cast<size_t>(n)));
  }
  flushing_ = false;
  // Body bytes now in frames: their producers may go on (on_drained), from the event loop, so
  // never within a producer's own call (flush() may run inside a handler's respond()).
  if (!sending_.empty()) {
    std::vector<std::pair<std::shared_ptr<BodyStream>, size_t>> sent;
    for (auto& s : sending_) {
      if (s->stream != nullptr && s->unacked > 0) {
        sent.emplace_back(s->stream, std::exchange(s->unacked, 0));
      }
    }
    sending_.clear();
    if (!sent.empty()) {
      boost::asio::post(worker_->io(), [sent = std::move(sent)] {
        for (const auto& [stream, bytes] : sent) stream->sent(bytes);
      });
    }
  }
  // The client's frames wait while it does not read ours (TCP's flow control holds it back).
  if (out.full()) {
    tunnel_->pause();
  } else {
    tunnel_->resume();
  }
  const bool want_write = nghttp2_session_want_write(session_) != 0;
  const bool over = failed_ || (nghttp2_session_want_read(session_) == 0 && !want_write) ||
                    ((draining_ || input_ended_) && streams_.empty() && !want_write);
  if (over && !out.full()) {
    ended_ = true;
    out.end();  // after what is queued: the connection half-closes, then closes
  }
}

void H2Session::arm_tick() {
  timer_.expires_after(shared_.sweep_period);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec && !self->closed_) self->tick();
  });
}

void H2Session::tick() {
  const auto t = now();
  // A connection that never opened a stream has read_timeout for its first, as over HTTP/1.1.
  const auto idle_limit = had_stream_ ? shared_.options.idle_timeout : shared_.options.read_timeout;
  if (streams_.empty() && !ended_ && t - last_active_ >= idle_limit) {
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);  // GOAWAY, then the end
  }
  const int32_t connection_window = nghttp2_session_get_remote_window_size(session_);
  for (auto& [id, s] : streams_) {
    if (!s->complete && !s->dispatched && !s->responded && s->reject == 0 && !s->refused &&
        t >= s->deadline) {
      s->reject = 408;
      ready_.push_back(id);
    }
    // A client that opens no window for an answer waiting to go is cut off after write_timeout,
    // as a client reading too slowly is over HTTP/1.1 (there the socket fills instead).
    const bool waiting =
        s->responded && (s->body_off < s->body.size() || s->piece_off < s->piece.size() ||
                         (s->stream != nullptr && s->stream->queued() > 0));
    const bool held_back =
        waiting && (connection_window <= 0 ||
                    nghttp2_session_get_stream_remote_window_size(session_, id) <= 0);
    if (!held_back) {
      s->stalled_since.reset();
    } else if (!s->stalled_since) {
      s->stalled_since = t;
    } else if (t - *s->stalled_since >= shared_.options.write_timeout) {
      s->stalled_since.reset();
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    }
  }
  dispatch_ready();
  flush();
  if (!ended_) arm_tick();
}

}  // namespace prescale::http::internal
