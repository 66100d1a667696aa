#include "services/echo/echo_service.h"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <queue>
#include <thread>
#include <vector>

#include "http/body_stream.h"
#include "http/internal/wire.h"
#include "http/json.h"
#include "http/tunnel.h"
#include "http/websocket.h"

namespace prescale::services {
namespace {

constexpr int kMaxDelayMs = 60000;
constexpr int kMaxEvents = 100000;
constexpr int kMaxEventIntervalMs = 10000;
constexpr int kMaxEventBytes = 65536;
constexpr int kMaxLeakKib = 65536;                             // 64 MiB a request
constexpr std::size_t kMaxLeakedBytes = std::size_t{2} << 30;  // 2 GiB in all
// The largest payload of a GET /ws frame (1 MiB): the parser holds a frame whole before it is
// echoed, so this bounds what a connection keeps. A larger one is answered with close 1009.
constexpr std::size_t kMaxWebSocketPayloadBytes = std::size_t{1} << 20;
constexpr uint16_t kCloseGoingAway = 1001;  // RFC 6455 section 7.4.1: the replica stops

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// The request's header fields as GET /echo shows them: one member per field, named as it first
// came; a field sent more than once (in any case) has its values joined with ", ", in the order
// they came, as HTTP allows (RFC 9110 section 5.3).
nlohmann::json echoed_headers(const http::Headers& headers) {
  std::vector<std::pair<std::string, std::string>> fields;
  for (const auto& field : headers.fields()) {
    auto same = std::find_if(fields.begin(), fields.end(), [&](const auto& seen) {
      return http::internal::iequals(seen.first, field.first);
    });
    if (same == fields.end()) {
      fields.push_back(field);
    } else {
      same->second += ", " + field.second;
    }
  }
  nlohmann::json out = nlohmann::json::object();
  for (auto& [name, value] : fields) out[name] = std::move(value);
  return out;
}

// A status code that a close frame may carry (RFC 6455 section 7.4 and the IANA registry):
// 1004 is reserved, 1005, 1006 and 1015 stand for "none" and must never be sent, the rest of
// 0..2999 is unassigned; 3000..4999 belong to libraries and applications.
bool sendable_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

// The payload of the close frame answering a client's: its status code (RFC 6455 section
// 5.5.1), or none when it sent none. A code that may not be sent is the client's protocol error.
std::string close_reply(std::string_view payload) {
  if (payload.size() < 2) return {};  // the parser refuses a payload of 1 byte
  const auto code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                          static_cast<uint8_t>(payload[1]));
  if (!sendable_close_code(code)) {
    return http::websocket::close_payload(
        http::websocket::kCloseProtocolError,
        "close code " + std::to_string(code) + " is not one an endpoint may send");
  }
  return std::string(payload.substr(0, 2));
}

}  // namespace

// One GET /ws connection. The frames the client sends are parsed and answered on the
// connection's I/O thread; on_drain() closes it from another, so whether a close frame went out
// is kept under a lock (nothing may follow it). The tunnel is held weakly: its callbacks own
// this, and a strong reference back would keep both if the connection never ran them.
class EchoService::WebSocket {
 public:
  explicit WebSocket(const std::shared_ptr<http::Tunnel>& tunnel) : tunnel_(tunnel) {}

  // What the client sent: each frame it completes is answered, a close or an error closes.
  void received(std::string_view data) {
    auto tunnel = tunnel_.lock();
    if (tunnel == nullptr || closed()) return;  // after a close, what comes is dropped
    namespace ws = http::websocket;
    std::vector<ws::Frame> frames;
    const Result<void> parsed = parser_.parse(data, frames);
    std::string reply;
    std::optional<std::string> close_with;  // the payload of the close frame to send
    for (const ws::Frame& frame : frames) {
      switch (frame.opcode) {
        case ws::Opcode::kText:
        case ws::Opcode::kBinary:
        case ws::Opcode::kContinuation:
          ws::append_frame(reply, frame.opcode, frame.payload, frame.fin);
          break;
        case ws::Opcode::kPing:
          ws::append_frame(reply, ws::Opcode::kPong, frame.payload);
          break;
        case ws::Opcode::kPong:
          break;  // unsolicited (this server sends no pings): a heartbeat, RFC 6455 section 5.5.3
        case ws::Opcode::kClose:
          close_with = close_reply(frame.payload);
          break;
      }
      if (close_with) break;  // nothing after a close frame is answered
    }
    if (!close_with && !parsed) {
      close_with = ws::close_payload(ws::close_code(parsed.error()), parsed.error().message);
    }
    send(*tunnel, std::move(reply), close_with);
  }

  // The client ended its side without the close handshake: the server ends its own too (else the
  // connection would stay half open, as no timeout applies to a tunnel).
  void client_ended() {
    if (auto tunnel = tunnel_.lock()) send(*tunnel, {}, std::nullopt, /*end=*/true);
  }

  // Closes the connection with `code` unless it is closing already.
  void close(uint16_t code, std::string_view reason) {
    if (auto tunnel = tunnel_.lock()) {
      send(*tunnel, {}, http::websocket::close_payload(code, reason));
    }
  }

 private:
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

  // Writes `frames` (whole frames) unless the connection is closing, then a close frame with
  // `close_with` as its payload, when given, and the server's end.
  void send(http::Tunnel& tunnel, std::string frames, const std::optional<std::string>& close_with,
            bool end = false) {
    namespace ws = http::websocket;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      if (close_with) ws::append_frame(frames, ws::Opcode::kClose, *close_with);
      // One write: frames written from two threads do not interleave.
      tunnel.out().write(frames);
      if (!close_with && !end) {
        // A client that sends faster than it reads is not read on until what waits for it is
        // down to BodyStream::kLowWater (the stream's on_drained resumes). Asked under the lock,
        // so that a close from on_drain() (which resumes) cannot come between the ask and the
        // pause. on_drained runs on this I/O thread, never between the write and the ask.
        if (tunnel.out().full()) tunnel.pause();
        return;
      }
      closed_ = true;
      tunnel.out().end();  // the server half-closes; the connection closes once the client does
    }
    // Read on to the client's end (what it sends meanwhile is dropped): the server closes the
    // connection then, or after its idle_timeout.
    tunnel.resume();
  }

  std::weak_ptr<http::Tunnel> tunnel_;
  // Used on the connection's I/O thread only.
  http::websocket::FrameParser parser_{http::websocket::FrameParser::Role::kServer,
                                       kMaxWebSocketPayloadBytes};
  std::mutex mu_;
  bool closed_ = false;  // a close frame or the server's end went out: nothing more does
};

// Runs timed work (delayed answers, the next event of a stream) on one background thread, so
// that neither blocks an I/O thread.
class EchoService::DelayQueue {
 public:
  explicit DelayQueue(Clock& clock) : clock_(clock), thread_([this] { loop(); }) {}

  ~DelayQueue() {
    stop();
    thread_.join();
  }

  // Runs `fn` on the queue's thread at `due` (at once once stopping); `fn` may push more.
  void push(Clock::TimePoint due, std::function<void()> fn) {
    {
      std::lock_guard lock(mu_);
      pending_.push(Item{due, std::move(fn)});
    }
    cv_.notify_one();
  }

  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  // Runs everything still waiting at once (delayed answers are answered, event streams cut).
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
  }

 private:
  struct Item {
    Clock::TimePoint due;
    std::function<void()> run;
    bool operator>(const Item& o) const { return due > o.due; }
  };

  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (pending_.empty()) {
        if (stopping_) return;
        cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
        continue;
      }
      auto wait = pending_.top().due - clock_.now();
      if (wait > Clock::Duration::zero() && !stopping_) {
        cv_.wait_for(lock, wait);
        continue;
      }
      Item item = pending_.top();
      pending_.pop();
      lock.unlock();
      item.run();
      lock.lock();
    }
  }

  Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> pending_;
  bool stopping_ = false;
  std::thread thread_;
};

void EchoService::send_events(DelayQueue& queue, const std::shared_ptr<EventStream>& events) {
  EventStream& e = *events;
  if (queue.stopping()) {
    // The replica stops: the stream is cut, not hurried through its remaining events.
    e.stream->set_on_drained(nullptr);
    e.stream->abort();
    return;
  }
  std::string data = std::to_string(e.next);
  if (e.bytes > data.size() + 1) {
    data += ' ';
    data.append(e.bytes - data.size(), 'x');
  }
  if (!e.stream->write("id: " + std::to_string(e.next) + "\ndata: " + data + "\n\n")) {
    return;  // the client left (which cleared the stream's callbacks)
  }
  if (++e.next == e.n) {
    e.stream->set_on_drained(nullptr);
    e.stream->end();
    return;
  }
  e.due += e.interval;
  if (e.stream->full()) {
    // The client reads more slowly than events come: wait for on_drained, which may have run
    // between the write and the mark (then go on now).
    e.paused = true;
    if (e.stream->full() || !e.paused.exchange(false)) return;
  }
  queue.push(e.due, [&queue, events] { send_events(queue, events); });
}

void EchoService::on_drain() {
  std::vector<std::weak_ptr<EventStream>> open;
  {
    std::lock_guard lock(events_mu_);
    open.swap(events_);
  }
  for (const auto& weak : open) {
    if (auto e = weak.lock()) {
      e->stream->set_on_drained(nullptr);  // a paused stream is not resumed
      e->stream->end();                    // its next write fails: no more events
    }
  }
  std::vector<std::weak_ptr<WebSocket>> sockets;
  {
    std::lock_guard lock(websockets_mu_);
    draining_ = true;
    sockets.swap(websockets_);
  }
  for (const auto& weak : sockets) {
    if (auto socket = weak.lock()) socket->close(kCloseGoingAway, "the replica is shutting down");
  }
}

EchoService::EchoService(Clock& clock)
    : clock_(clock), delays_(std::make_unique<DelayQueue>(clock)) {}
EchoService::~EchoService() = default;

void EchoService::register_routes(runtime::Routes& routes) {
  routes.get("/", [](http::Request&, http::Responder respond) {
    respond(http::Response::text(200, "hello"));
  });

  auto echo = [](http::Request& req, http::Responder respond) {
    respond(http::json_response(200, {{"method", req.method_name},
                                      {"path", req.path},
                                      {"query", req.query},
                                      {"headers", echoed_headers(req.headers)},
                                      {"body", req.body}}));
  };
  routes.get("/echo", echo);
  routes.post("/echo", echo);

  routes.get("/delay/{ms}", [this](http::Request& req, http::Responder respond) {
    auto ms = parse_int(*req.param("ms"));
    if (!ms || *ms < 0 || *ms > kMaxDelayMs) {
      respond(http::error_response(400, "invalid_argument",
                                   "path parameter ms: expected an integer in 0..60000"));
      return;
    }
    delays_->push(clock_.now() + std::chrono::milliseconds(*ms), [respond = std::move(respond)] {
      respond(http::Response::text(200, "delayed\n"));
    });
  });

  // Server-sent events as they come: event 0 at once, the next every interval_ms, until the
  // client leaves. A model streaming its tokens, for the gateway's streaming.
  routes.get("/events/{n}", [this](http::Request& req, http::Responder respond) {
    auto n = parse_int(*req.param("n"));
    if (!n || *n < 1 || *n > kMaxEvents) {
      respond(http::error_response(400, "invalid_argument",
                                   "path parameter n: expected an integer in 1..100000"));
      return;
    }
    int interval_ms = 100;
    if (auto q = req.query_param("interval_ms")) {
      auto v = parse_int(*q);
      if (!v || *v < 0 || *v > kMaxEventIntervalMs) {
        respond(
            http::error_response(400, "invalid_argument",
                                 "query parameter interval_ms: expected an integer in 0..10000"));
        return;
      }
      interval_ms = *v;
    }
    int bytes = 0;
    if (auto q = req.query_param("bytes")) {
      auto v = parse_int(*q);
      if (!v || *v < 0 || *v > kMaxEventBytes) {
        respond(http::error_response(400, "invalid_argument",
                                     "query parameter bytes: expected an integer in 0..65536"));
        return;
      }
      bytes = *v;
    }
    auto events = std::make_shared<EventStream>();
    events->stream = std::make_shared<http::BodyStream>();
    events->n = *n;
    events->interval = std::chrono::milliseconds(interval_ms);
    events->bytes = static_cast<std::size_t>(bytes);
    events->due = clock_.now();
    // While paused the callback holds the events (the stream holds the callback until it ends or
    // its client leaves, either of which clears it).
    DelayQueue& queue = *delays_;
    Clock& clock = clock_;
    events->stream->set_on_drained([&queue, &clock, events] {
      if (!events->paused.exchange(false)) return;
      events->due = std::max(events->due, clock.now());
      queue.push(events->due, [&queue, events] { send_events(queue, events); });
    });
    {
      std::lock_guard lock(events_mu_);
      std::erase_if(events_, [](const std::weak_ptr<EventStream>& e) { return e.expired(); });
      events_.push_back(events);
    }
    http::Response r;
    r.headers.set("Content-Type", "text/event-stream");
    r.headers.set("Cache-Control", "no-cache");
    r.stream = events->stream;
    respond(std::move(r));
    send_events(queue, events);
  });

  // A WebSocket echo (RFC 6455), for the gateway's WebSocket relay. No subprotocol or extension
  // is negotiated: a client's Sec-WebSocket-Protocol and -Extensions go unanswered. No idle
  // timeout applies (none does to a tunnel, http/tunnel.h): an idle connection stays open until
  // its client closes it or the replica drains; through the gateway, the route's
  // websocket_idle_timeout bounds it (docs/gateway.md). Text frames are echoed as they came,
  // their UTF-8 unchecked (an echo hands back what it was given).
  routes.get("/ws", [this](http::Request& req, http::Responder respond) {
    namespace ws = http::websocket;
    // HEAD falls back to this GET route, but a switch is never made for it (http/tunnel.h).
    const auto upgrade = http::upgrade_requested(req);
    if (req.method != http::Method::kGet || !upgrade ||
        !http::internal::has_token(*upgrade, "websocket")) {
      http::Response r =
          http::error_response(426, "upgrade_required",
                               "GET /ws is a WebSocket: expected the fields Connection: Upgrade "
                               "and Upgrade: websocket (RFC 6455 section 4.1)");
      r.headers.set("Upgrade", "websocket");
      respond(std::move(r));
      return;
    }
    const auto version = req.headers.get("Sec-WebSocket-Version");
    if (!version || http::internal::trim(*version) != "13") {
      http::Response r = http::error_response(
          426, "upgrade_required", "header Sec-WebSocket-Version: expected 13 (RFC 6455)");
      r.headers.set("Upgrade", "websocket");  // a 426 names what it requires
      r.headers.set("Sec-WebSocket-Version", "13");
      respond(std::move(r));
      return;
    }
    const auto key = req.headers.get("Sec-WebSocket-Key");
    if (!key || !ws::valid_client_key(http::internal::trim(*key))) {
      respond(http::error_response(
          400, "invalid_argument",
          "header Sec-WebSocket-Key: expected the base64 of 16 bytes (24 characters)"));
      return;
    }
    auto tunnel = std::make_shared<http::Tunnel>();
    auto socket = std::make_shared<WebSocket>(tunnel);
    tunnel->set_on_data([socket](std::string_view data) { socket->received(data); });
    tunnel->set_on_end([socket] { socket->client_ended(); });
    tunnel->out().set_on_drained([weak = std::weak_ptr<http::Tunnel>(tunnel)] {
      if (auto t = weak.lock()) t->resume();
    });
    bool draining = false;
    {
      std::lock_guard lock(websockets_mu_);
      draining = draining_;
      if (!draining) {
        std::erase_if(websockets_, [](const std::weak_ptr<WebSocket>& w) { return w.expired(); });
        websockets_.push_back(socket);
      }
    }
    if (draining) {
      // The server refuses a switch once it drains too, but on_drain() runs before that: a
      // connection opened in between would not be closed with the others.
      respond(http::error_response(503, "unavailable", "the server is shutting down"));
      return;
    }
    http::Response r;
    r.status = 101;
    r.headers.set("Upgrade", "websocket");
    r.headers.set("Sec-WebSocket-Accept", ws::accept_key(http::internal::trim(*key)));
    r.tunnel = std::move(tunnel);
    respond(std::move(r));
  });

  // Holds its I/O thread for `ms` (at most 10000): a replica started with one thread then serves
  // one request at a time, like a program that blocks per request — what capacity tests need.
  routes.get("/busy/{ms}", [](http::Request& req, http::Responder respond) {
    auto ms = parse_int(*req.param("ms"));
    if (!ms || *ms < 0 || *ms > 10000) {
      respond(http::error_response(400, "invalid_argument",
                                   "path parameter ms: expected an integer in 0..10000"));
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(*ms));
    respond(http::Response::text(200, "busy " + std::to_string(*ms) + " ms\n"));
  });

  // A memory leak, to try memory limits and the healer on (docs/healing.md): `kib` KiB allocated,
  // every page touched (so it is resident), and kept for the process's life.
  routes.get("/leak/{kib}", [this](http::Request& req, http::Responder respond) {
    auto kib = parse_int(*req.param("kib"));
    if (!kib || *kib < 1 || *kib > kMaxLeakKib) {
      respond(http::error_response(400, "invalid_argument",
                                   "path parameter kib: expected an integer in 1..65536"));
      return;
    }
    const std::size_t bytes = static_cast<std::size_t>(*kib) << 10;
    std::size_t held = 0;
    {
      std::lock_guard lock(leak_mu_);
      if (leaked_bytes_ + bytes > kMaxLeakedBytes) {
        respond(http::error_response(503, "leak_limit",
                                     "this replica holds " + std::to_string(leaked_bytes_ >> 10) +
                                         " KiB already; it leaks at most 2 GiB"));
        return;
      }
      auto block = std::make_unique_for_overwrite<char[]>(bytes);
      for (std::size_t i = 0; i < bytes; i += 4096) block[i] = 1;  // resident: every page written
      leaked_.push_back(std::move(block));
      leaked_bytes_ += bytes;
      held = leaked_bytes_;
    }
    respond(http::Response::text(200, "leaked " + std::to_string(*kib) + " KiB, " +
                                          std::to_string(held >> 10) + " KiB in all\n"));
  });

  routes.get("/status/{code}", [](http::Request& req, http::Responder respond) {
    auto code = parse_int(*req.param("code"));
    if (!code || *code < 200 || *code > 599) {  // a 1xx is interim, never a final answer
      respond(http::error_response(400, "invalid_argument",
                                   "path parameter code: expected an integer in 200..599"));
      return;
    }
    respond(http::Response::text(*code, "status " + std::to_string(*code) + "\n"));
  });
}

}  // namespace prescale::services
