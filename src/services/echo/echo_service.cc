#include "services/echo/echo_service.h"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "http/body_stream.h"
#include "http/json.h"

namespace prescale::services {
namespace {

constexpr int kMaxDelayMs = 60000;
constexpr int kMaxEvents = 100000;
constexpr int kMaxEventIntervalMs = 10000;
constexpr int kMaxEventBytes = 65536;
constexpr int kMaxLeakKib = 65536;                             // 64 MiB a request
constexpr std::size_t kMaxLeakedBytes = std::size_t{2} << 30;  // 2 GiB in all

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

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
}

EchoService::EchoService(Clock& clock)
    : clock_(clock), delays_(std::make_unique<DelayQueue>(clock)) {}
EchoService::~EchoService() = default;

void EchoService::register_routes(runtime::Routes& routes) {
  routes.get("/", [](http::Request&, http::Responder respond) {
    respond(http::Response::text(200, "hello"));
  });

  auto echo = [](http::Request& req, http::Responder respond) {
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& [k, v] : req.headers.fields()) headers[k] = v;
    respond(http::json_response(200, {{"method", req.method_name},
                                      {"path", req.path},
                                      {"query", req.query},
                                      {"headers", headers},
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
