// Internal: the Proxy's state (proxy.h) as its parts share it: the routes with their request
// metrics, the Call of one request being proxied, and ProxyCore, the Proxy's state and attempt
// loop. The loop is in proxy_attempt.cc, the per-thread part in proxy_thread.h, the public API
// over it in proxy.cc. Not public API; no Asio here.
//
// Thread safety: as Proxy's. A Call and everything it reaches through its ThreadState belong to
// the I/O thread that runs it.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "gateway/proxy.h"
#include "gateway/upstream_pool.h"
#include "telemetry/registry.h"

namespace prescale::gateway::internal {

class ThreadState;

// The proxy's time: request durations, deadlines and back-off run on the real clock.
inline Clock::TimePoint now() { return Clock::real().now(); }

// Requests in flight on a route and the seconds they have spent in flight, kept by the I/O
// threads that run them: the route's concurrency over any span is the growth of a reading's
// busy_ns over it, those still in flight counted up to the end of the span (Little's law that
// need not wait for the answers). A seqlock: a change takes it (one uncontended compare-and-swap when one
// thread writes a slot, as each I/O thread writes its own), a read retries until it saw no change.
class alignas(64) RouteLoad {
 public:
  // A request began (+1) or ended (−1) at `now`.
  void change(Clock::TimePoint now, int delta) {
    uint64_t s = seq_.load(std::memory_order_relaxed);
    while ((s & 1) != 0 ||
           !seq_.compare_exchange_weak(s, s + 1, std::memory_order_seq_cst,
                                       std::memory_order_relaxed)) {
      std::this_thread::yield();  // the other writer was preempted mid-change
      s = seq_.load(std::memory_order_relaxed);
    }
    // The odd sequence before the data: a reader that sees any of this change sees it odd or
    // moved on (the seqlock's writer fence; free on x86).
    std::atomic_thread_fence(std::memory_order_release);
    // Not dated before a reading already made: the caller read its clock a moment before this
    // change, and a reading meanwhile counted the request in flight up to its own time; an end
    // dated earlier would take the counter back (to Prometheus, a reset). Sequentially
    // consistent with read()'s: either this sees the reading's time or the reading sees this.
    const int64_t t =
        std::max(now.time_since_epoch().count(), read_ns_.load(std::memory_order_seq_cst));
    const int64_t since = since_ns_.load(std::memory_order_relaxed);
    const int64_t n = inflight_.load(std::memory_order_relaxed);
    if (t > since) {  // two threads sharing a slot may come a little out of order
      busy_ns_.store(busy_ns_.load(std::memory_order_relaxed) +
                         static_cast<uint64_t>(n) * static_cast<uint64_t>(t - since),
                     std::memory_order_relaxed);
      since_ns_.store(t, std::memory_order_relaxed);
    }
    inflight_.store(n + delta, std::memory_order_relaxed);
    seq_.store(s + 2, std::memory_order_release);
  }
  struct Reading {
    int64_t inflight = 0;
    uint64_t busy_ns = 0;  // up to the time read; wraps after 584 years of request-time
  };
  Reading read(Clock::TimePoint now) const {
    const int64_t at = now.time_since_epoch().count();
    int64_t latest = read_ns_.load(std::memory_order_seq_cst);
    while (latest < at && !read_ns_.compare_exchange_weak(latest, at, std::memory_order_seq_cst,
                                                          std::memory_order_seq_cst)) {
    }
    for (;;) {
      const uint64_t s = seq_.load(std::memory_order_seq_cst);
      if ((s & 1) != 0) {
        std::this_thread::yield();  // a writer was preempted mid-change
        continue;
      }
      const Reading r{inflight_.load(std::memory_order_relaxed),
                      busy_ns_.load(std::memory_order_relaxed)};
      const int64_t since = since_ns_.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) != s) continue;
      const int64_t t = now.time_since_epoch().count();
      const uint64_t open = r.inflight > 0 && t > since ? static_cast<uint64_t>(r.inflight) *
                                                              static_cast<uint64_t>(t - since)
                                                        : 0;
      return {r.inflight, r.busy_ns + open};
    }
  }

 private:
  std::atomic<uint64_t> seq_{0};       // odd while a change is being written
  std::atomic<int64_t> inflight_{0};   // requests in flight
  std::atomic<int64_t> since_ns_{0};   // when inflight_ last changed (Clock time, ns)
  std::atomic<uint64_t> busy_ns_{0};   // request-nanoseconds in flight up to since_ns_
  mutable std::atomic<int64_t> read_ns_{0};  // the latest reading's time (Clock time, ns)
};

// RouteLoad slots per route: an I/O thread writes slot (its id % kLoadSlots).
inline constexpr size_t kLoadSlots = 16;
using RouteLoads = std::array<RouteLoad, kLoadSlots>;

// How a request held for an upstream (ProxyRoute::hold_for_upstream) stopped waiting: the label
// `outcome` of prescale_gateway_held_requests_total.
enum class HoldOutcome {
  kSent,        // an upstream came into service: the request went on to it
  kTimedOut,    // none came within the route's timeout
  kSuperseded,  // a reload replaced or dropped the cluster it waited on
  kRefused,     // one came, and the cluster refused the request (a limit, admission control)
  kCancelled,   // the client went away, or the gateway stopped
};
inline constexpr size_t kHoldOutcomes = 5;
static_assert(static_cast<size_t>(HoldOutcome::kCancelled) + 1 == kHoldOutcomes);
std::string_view to_string(HoldOutcome o);

// The metrics of a route's held requests (null without a registry, or for a route that holds
// none). In the registry: they outlive the route, so a call that may be over can still count.
struct HoldSeries {
  telemetry::Gauge* held = nullptr;
  std::array<telemetry::Counter*, kHoldOutcomes> by_outcome{};
  telemetry::Histogram* duration = nullptr;

  // A wait that began at `since` ended for `outcome`.
  void ended(HoldOutcome outcome, Clock::TimePoint since, Clock::TimePoint now) const;
};

// A route and its request metrics (shared by all threads; the series are found once).
struct RouteState {
  ProxyRoute route;
  size_t index = 0;  // its RouteId
  telemetry::CounterFamily* requests = nullptr;
  telemetry::Histogram* duration = nullptr;
  telemetry::Counter* retries = nullptr;
  // A route that holds requests for an upstream: those waiting, how each wait ended, and how long
  // those sent on waited.
  HoldSeries hold;
  std::string service_label;
  std::array<std::atomic<telemetry::Counter*>, 600> by_status{};
  // Shared by every route of its name the Proxy has had (ProxyCore::Threads::loads), so that a
  // route replaced by a reload goes on counting where it left off.
  std::shared_ptr<RouteLoads> load;

  void count(int status) {
    if (requests == nullptr) return;
    if (status < 100 || status > 599) status = 500;
    auto& slot = by_status[static_cast<size_t>(status)];
    telemetry::Counter* c = slot.load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &requests->with({service_label, route.name, std::to_string(status)});
      slot.store(c, std::memory_order_release);
    }
    c->inc();
  }
};

// Upstream attempt metrics of one (route, endpoint), cached per thread.
struct UpstreamSeries {
  telemetry::Histogram* duration = nullptr;
  std::vector<std::pair<int, telemetry::Counter*>> by_status;
  std::array<telemetry::Counter*, 8> by_error{};  // by ExchangeError
};

// One request being proxied: the attempt loop's state. Pooled per thread (its buffers keep
// their capacity), so a request costs no allocation here.
class Call final : public Exchange {
 public:
  explicit Call(ThreadState& ts) : ts_(ts) {}

  enum class Phase { kIdle, kRunning, kBackoff };

  ThreadState& ts_;
  RouteState* route = nullptr;  // kept alive by its ThreadState while the call runs
  http::Request* req = nullptr;
  http::Responder respond;
  Clock::TimePoint started{};
  Clock::TimePoint attempt_started{};
  Clock::TimePoint route_deadline{};
  // The call's grpc-timeout, where it set route_deadline (sooner than the route's timeout).
  std::optional<std::chrono::milliseconds> grpc_timeout;
  Clock::TimePoint wake_at{};
  int attempt = 0;
  Phase phase = Phase::kIdle;
  bool client_gone = false;
  bool held = false;  // waits for an upstream in service (ProxyRoute::hold_for_upstream)
  Clock::TimePoint held_since{};  // when it began to wait, while held
  std::optional<UpstreamPick> pick;
  std::string head_buf;
  std::string request_id;
  std::string upstream_label;  // "host:port" of the last attempt, for messages
  // The previous attempt's outcome while a retry starts: a retry the pool refuses before it
  // runs (a connection limit, shutdown) ends with this answer, not with its own refusal.
  struct Outcome {
    ExchangeError error = ExchangeError::kNone;
    std::string detail;
    http::Response response;
    Clock::TimePoint deadline{};
    std::string upstream_label;
  };
  Outcome previous;
  bool retry_refused = false;
  // Answered with a streamed body, which the upstream connection still writes: the call ends
  // (its route's load and duration, its return to the pool) at on_stream_end().
  bool streaming = false;

 private:
  void on_complete() override;
  bool stream_body(const http::Response& answer) override;
  void on_stream_end(bool complete) override;
};

// The Proxy's state and attempt loop (Proxy::Impl, named so the per-thread parts can use it).
struct ProxyCore {
  explicit ProxyCore(ProxyOptions o);

  ThreadState* thread_state();
  void start_attempt(Call& c);
  // Puts a first attempt that found no upstream to wait for one (ProxyRoute::hold_for_upstream),
  // if its route holds, its timeout leaves time to look again and the thread has room; false
  // when it is to be answered now.
  bool hold(Call& c);
  // A held call stops waiting, for `outcome`: counted, and no longer held.
  void end_hold(Call& c, HoldOutcome outcome);
  void on_attempt_done(Call& c);
  void finish_failed(Call& c);
  void relay(Call& c);
  // Answers a first attempt select() refused, as its reason says.
  void refuse(Call& c, const NoPick& why);
  void fail(Call& c, int status, std::string_view code, const std::string& message);
  void finish(Call& c, http::Response&& response);
  // The end of a call answered with a streamed body, once that body ended.
  void end_stream(Call& c, bool complete);
  void client_gone(Call& c);
  std::chrono::milliseconds timeout_resolution() const;
  std::chrono::milliseconds timeout_resolution(
      const std::vector<std::shared_ptr<RouteState>>& of_routes) const;

  ProxyOptions options;
  uint64_t id;
  // Routes by RouteId (null once removed). Written under routes_mu; each I/O thread reads its
  // own copy, taken again when routes_version moves (ThreadState::route).
  mutable std::mutex routes_mu;
  std::vector<std::shared_ptr<RouteState>> routes;
  std::atomic<uint64_t> routes_version{0};
  telemetry::CounterFamily* requests = nullptr;
  telemetry::HistogramFamily* durations = nullptr;
  telemetry::CounterFamily* upstream_requests = nullptr;
  telemetry::HistogramFamily* upstream_durations = nullptr;
  telemetry::CounterFamily* retries = nullptr;
  telemetry::GaugeFamily* held = nullptr;
  telemetry::CounterFamily* held_total = nullptr;
  telemetry::HistogramFamily* hold_durations = nullptr;

  // The per-thread states, shared with the metrics collector (which may outlive the Proxy
  // inside the registry and then finds nothing).
  struct Threads {
    std::mutex mu;
    std::vector<std::shared_ptr<ThreadState>> states;
    // The loads of every route name ever added, removed ones too: their busy seconds are
    // counters, which must not go back when a configuration reload replaces a route by one of
    // the same name. Only the counters are kept (1 KB a name), not the routes.
    std::map<std::string, std::shared_ptr<RouteLoads>, std::less<>> loads;
  };
  std::shared_ptr<Threads> threads = std::make_shared<Threads>();
};

}  // namespace prescale::gateway::internal
