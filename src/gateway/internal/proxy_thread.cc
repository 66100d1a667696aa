#include "gateway/internal/proxy_thread.h"

#include <random>
#include <utility>

#include "http/internal/io_thread.h"

namespace prescale::gateway::internal {
namespace {

uint64_t random_seed(const http::internal::IoThread& thread) {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ thread.id();
}

}  // namespace

ThreadState::ThreadState(ProxyCore& proxy, http::internal::IoThread& thread)
    : proxy_(proxy),
      io_thread_id_(thread.id()),
      pool_(thread.io(),
            UpstreamPoolOptions{
                .connect_timeout = proxy.options.connect_timeout,
                .max_idle_per_endpoint = proxy.options.max_idle_per_endpoint,
                .idle_timeout = proxy.options.idle_timeout,
                .max_response_header_bytes = proxy.options.max_response_header_bytes,
                .max_response_body_bytes = proxy.options.max_response_body_bytes,
                .timeout_resolution = proxy.timeout_resolution(),
            }),
      backoff_timer_(std::in_place, thread.io()),
      timeout_resolution_(proxy.timeout_resolution()),
      request_ids_(random_seed(thread)) {}

void ThreadState::stop() {
  if (stopped_) return;
  stopped_ = true;
  backoff_timer_.reset();
  pool_.stop();  // running attempts complete as cancelled; their calls answer 503
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (Call* c : waiting) {
    proxy_.fail(*c, 503, "shutting_down", "the gateway is shutting down");
  }
  free_.clear();
}

void ThreadState::refresh_routes(uint64_t version) {
  std::vector<std::shared_ptr<RouteState>> before;
  {
    std::lock_guard lock(proxy_.routes_mu);
    before = std::exchange(routes_, proxy_.routes);
    routes_version_ = version;
  }
  for (auto& r : before) {  // removed, with calls still running here
    if (r && !routes_[r->index] && r->index < route_calls_.size() && route_calls_[r->index] > 0) {
      retired_.push_back(std::move(r));
    }
  }
  // A route added later may have a shorter timeout than any before it.
  const std::chrono::milliseconds r = proxy_.timeout_resolution(routes_);
  if (r != timeout_resolution_) {
    timeout_resolution_ = r;
    pool_.set_timeout_resolution(r);
  }
}

void ThreadState::arm_backoff(Clock::TimePoint earliest) {
  if (stopped_) return;
  backoff_armed_ = true;
  backoff_at_ = earliest;
  // Re-arming cancels the wait before (its handler sees operation_aborted and does nothing).
  backoff_timer_->expires_after(std::max(earliest - now(), Clock::Duration::zero()));
  backoff_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed, or cancelled by stop(); `this` may be gone with the Proxy
    backoff_armed_ = false;
    if (stopped_) return;
    wake_due();
  });
}

void ThreadState::wake_due() {
  const Clock::TimePoint t = now();
  due_.clear();
  std::erase_if(waiting_, [&](Call* c) {
    if (c->wake_at > t) return false;
    due_.push_back(c);
    return true;
  });
  for (Call* c : due_) proxy_.start_attempt(*c);
  due_.clear();
  // A call those attempts put back to wait (a request held for an upstream) armed the timer for
  // itself: one that waited before them may be due sooner.
  if (!waiting_.empty()) {
    Clock::TimePoint earliest = waiting_.front()->wake_at;
    for (const Call* c : waiting_) earliest = std::min(earliest, c->wake_at);
    if (!backoff_armed_ || earliest < backoff_at_) arm_backoff(earliest);
  }
}

}  // namespace prescale::gateway::internal
