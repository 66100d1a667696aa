// `prescale serve echo`: a small example service on the runtime, used by tests, benchmarks and
// the first `make demo`.
//
//   GET  /                 "hello" (the body nginx returns in bench/http_hello.sh)
//   GET  /echo, POST /echo JSON describing the request: method, path, query, headers (one
//                          member per field; a repeated field's values joined with ", "), body
//   GET  /delay/{ms}       answers 200 after `ms` milliseconds (at most 60000) without
//                          holding an I/O thread; for drain and timeout tests
//   GET  /busy/{ms}        answers after `ms` milliseconds (at most 10000) holding its I/O
//                          thread: with one thread, a replica of fixed capacity
//   GET  /status/{code}    answers with that status code (200..599)
//   GET  /events/{n}       `n` (1..100000) server-sent events ("id: I\ndata: I\n\n"), the first
//                          at once, then one every `interval_ms` (query; default 100, at most
//                          10000), streamed as they come (http/body_stream.h); `bytes` (query,
//                          at most 65536) pads each event's data to that many characters. A
//                          model streaming its tokens, for the gateway's streaming
//   GET  /ws               a WebSocket (RFC 6455): each frame the client sends comes back as
//                          it came (fragments too), a ping gets its pong, a close its close;
//                          frames up to 1 MiB. For the gateway's WebSocket relay
//   GET  /leak/{kib}       keeps `kib` KiB (at most 65536, and 2 GiB in all) resident for the
//                          process's life: a memory leak, to try memory limits and the healer
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "core/clock.h"
#include "runtime/service.h"

namespace prescale::http {
class BodyStream;
}  // namespace prescale::http

namespace prescale::services {

class EchoService final : public runtime::Service {
 public:
  explicit EchoService(Clock& clock = Clock::real());
  ~EchoService() override;

  std::string_view name() const override { return "echo"; }
  void register_routes(runtime::Routes& routes) override;
  // Ends the open GET /events streams (their clients reconnect elsewhere, as an EventSource
  // does) and closes the open GET /ws connections with 1001 (going away), so that a drain does
  // not wait for them to its deadline.
  void on_drain() override;

 private:
  class DelayQueue;
  // One GET /events stream: the next event and its time, written by the queue's thread, paused
  // while the client's socket is full.
  struct EventStream {
    std::shared_ptr<http::BodyStream> stream;
    int next = 0;
    int n = 0;
    std::chrono::milliseconds interval{0};
    std::size_t bytes = 0;  // each event's data padded to this
    Clock::TimePoint due{};
    std::atomic<bool> paused{false};
  };
  // Writes the next event and has `queue` write the one after at its time.
  static void send_events(DelayQueue& queue, const std::shared_ptr<EventStream>& events);
  std::mutex events_mu_;
  std::vector<std::weak_ptr<EventStream>> events_;  // the GET /events streams, some over
  // One GET /ws connection (defined in the .cc). Its tunnel's callbacks own it, so it goes when
  // the connection closes; on_drain() reaches it through websockets_.
  class WebSocket;
  std::mutex websockets_mu_;
  std::vector<std::weak_ptr<WebSocket>> websockets_;  // the GET /ws connections, some closed
  bool draining_ = false;  // on_drain() ran: no more GET /ws connections are opened
  Clock& clock_;
  std::unique_ptr<DelayQueue> delays_;
  std::mutex leak_mu_;
  std::vector<std::unique_ptr<char[]>> leaked_;  // GET /leak
  std::size_t leaked_bytes_ = 0;
};

}  // namespace prescale::services
