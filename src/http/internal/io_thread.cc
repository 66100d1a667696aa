#include "http/internal/io_thread.h"

#include <atomic>
#include <utility>

namespace prescale::http::internal {
namespace {

std::atomic<uint64_t> next_id{1};
thread_local IoThread* current = nullptr;

}  // namespace

IoThread::IoThread(boost::asio::io_context& io)
    : io_(io), id_(next_id.fetch_add(1, std::memory_order_relaxed)) {}

void IoThread::on_stop(std::function<void()> fn) {
  if (stopped_) {
    fn();
    return;
  }
  stop_hooks_.push_back(std::move(fn));
}

void IoThread::stop() {
  if (stopped_) return;
  stopped_ = true;
  // A hook may register another (it then runs at once, see on_stop()).
  auto hooks = std::move(stop_hooks_);
  stop_hooks_.clear();
  for (auto& hook : hooks) hook();
}

IoThread* current_io_thread() { return current; }

void set_current_io_thread(IoThread* thread) { current = thread; }

}  // namespace prescale::http::internal
