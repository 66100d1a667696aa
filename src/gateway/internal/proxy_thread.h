// Internal: what a Proxy keeps per I/O thread (ThreadState): the upstream pool, pooled calls,
// back-off waits, the thread's copy of the route list and cached metric series. What each
// request uses is inline here; the rest is in proxy_thread.cc. Includes Asio: for the proxy's
// .cc files only. Not public API.
//
// Thread safety: used on its I/O thread only; its counters and pool statistics are read anywhere.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/clock.h"
#include "gateway/internal/proxy_core.h"
#include "gateway/internal/upstream_head.h"
#include "gateway/proxy.h"
#include "gateway/upstream_pool.h"

namespace prescale::http::internal {
class IoThread;
}  // namespace prescale::http::internal

namespace prescale::gateway::internal {

// A single-writer counter readable from any thread (see upstream_pool.cc).
class StatCounter {
 public:
  void add(int64_t delta) {
    v_.store(v_.load(std::memory_order_relaxed) + static_cast<uint64_t>(delta),
             std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

inline constexpr size_t kMaxFreeCalls = 4096;

// What a Proxy keeps per I/O thread. Used on that thread only (its counters are read anywhere).
class ThreadState {
 public:
  ThreadState(ProxyCore& proxy, http::internal::IoThread& thread);

  ProxyCore& proxy() { return proxy_; }
  uint64_t io_thread_id() const { return io_thread_id_; }
  // The RouteLoad slot this thread writes.
  size_t load_slot() const { return io_thread_id_ % kLoadSlots; }

  // Route `id` as this thread sees it: its copy of the route list, taken again (one atomic
  // load when nothing changed) after add_route()/remove_route(). Null when unknown or removed.
  const std::shared_ptr<RouteState>* route(Proxy::RouteId id) {
    const uint64_t v = proxy_.routes_version.load(std::memory_order_acquire);
    if (v != routes_version_) refresh_routes(v);
    if (id >= routes_.size() || !routes_[id]) return nullptr;
    return &routes_[id];
  }
  UpstreamPool& pool() { return pool_; }
  bool stopped() const { return stopped_; }
  StatCounter& inflight() { return inflight_; }
  const StatCounter& inflight() const { return inflight_; }
  const UpstreamPool& pool() const { return pool_; }
  RequestIds& request_ids() { return request_ids_; }

  // A call is owned by this pool while free, and by its request (the server's Request and
  // Responder keep it reachable) while in flight; release() takes it back.
  Call& acquire() {
    if (free_.empty()) return *new Call(*this);
    Call* c = free_.back().release();
    free_.pop_back();
    return *c;
  }

  // A call on `id`: counted on this thread, so that a route removed meanwhile stays alive until
  // its last call here ends (no reference count shared between threads on the request path).
  RouteState* begin_call(Proxy::RouteId id) {
    const std::shared_ptr<RouteState>* r = route(id);
    if (r == nullptr) return nullptr;
    if (route_calls_.size() <= id) route_calls_.resize(id + 1, 0);
    ++route_calls_[id];
    return r->get();
  }

  void release(Call& c) {
    if (c.route != nullptr) {
      const size_t id = c.route->index;
      if (--route_calls_[id] == 0 && !retired_.empty()) {
        std::erase_if(retired_, [id](const auto& r) { return r->index == id; });
      }
    }
    c.route = nullptr;
    c.req = nullptr;
    c.body_stream = nullptr;  // the upstream stream keeps its own while it sends it
    c.pick.reset();
    c.phase = Call::Phase::kIdle;
    c.client_gone = false;
    if (c.attempt > 0) c.previous.response = http::Response();  // a retried body is not kept
    if (stopped_ || free_.size() >= kMaxFreeCalls) {
      delete &c;
      return;
    }
    free_.emplace_back(&c);
  }

  UpstreamSeries* upstream_series(Call& c);

  void wait_backoff(Call& c, Clock::Duration backoff) {
    c.phase = Call::Phase::kBackoff;
    c.wake_at = now() + backoff;
    waiting_.push_back(&c);
    if (!backoff_armed_ || c.wake_at < backoff_at_) arm_backoff(c.wake_at);
  }
  void cancel_backoff(Call& c) { std::erase(waiting_, &c); }
  // Calls waiting here: backing off, or held for an upstream.
  size_t waiting() const { return waiting_.size(); }

  // The IoThread's stop hook: ends everything pending on this thread's io_context.
  void stop();

 private:
  void refresh_routes(uint64_t version);
  // The timer is set for the earliest back-off due, not for the timeout sweep's resolution: a
  // 25 ms back-off waits 25 ms, not up to 250.
  void arm_backoff(Clock::TimePoint earliest);
  void wake_due();

  ProxyCore& proxy_;
  uint64_t io_thread_id_;
  UpstreamPool pool_;
  std::optional<boost::asio::steady_timer> backoff_timer_;
  std::chrono::milliseconds timeout_resolution_;
  std::vector<std::shared_ptr<RouteState>> routes_;  // this thread's copy of proxy_.routes
  uint64_t routes_version_ = UINT64_MAX;
  std::vector<uint32_t> route_calls_;                 // calls running, by route id
  std::vector<std::shared_ptr<RouteState>> retired_;  // removed, calls still running
  std::vector<std::unique_ptr<Call>> free_;
  std::vector<Call*> waiting_;  // in back-off
  std::vector<Call*> due_;
  EndpointMap<std::vector<std::unique_ptr<UpstreamSeries>>> series_;
  RequestIds request_ids_;
  StatCounter inflight_;
  bool backoff_armed_ = false;
  Clock::TimePoint backoff_at_{};  // when the armed timer fires
  bool stopped_ = false;
};

// Inline: every attempt's metrics go through it.
inline UpstreamSeries* ThreadState::upstream_series(Call& c) {
  ProxyCore& p = proxy_;
  if (p.upstream_requests == nullptr) return nullptr;
  auto& by_route = series_(c.pick->host, c.pick->port);
  const size_t index = c.route->index;
  if (by_route.size() <= index) by_route.resize(index + 1);
  auto& series = by_route[index];
  if (!series) {
    series = std::make_unique<UpstreamSeries>();
    series->duration = &p.upstream_durations->with({c.route->route.name, c.upstream_label});
  }
  return series.get();
}

}  // namespace prescale::gateway::internal
