#include "http/internal/poller.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <utility>

namespace prescale::http::internal {
namespace {

// Events taken per epoll_wait(); more stay in the set, which Asio then reports again.
constexpr int kBatch = 256;

// A key holds the slot's index + 1 in its low half (so no key is kNone) and the slot's
// generation in its high half (so a stale report, or a stale key, finds nothing).
Poller::Key make_key(uint32_t index, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | (static_cast<uint64_t>(index) + 1);
}

}  // namespace

boost::asio::execution_context::id Poller::id;

Poller& Poller::of(boost::asio::io_context& io) { return boost::asio::use_service<Poller>(io); }

Poller::Poller(boost::asio::execution_context& context)
    : boost::asio::execution_context::service(context),
      io_(static_cast<boost::asio::io_context&>(context)),
      set_(io_) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    throw boost::system::system_error(errno, boost::system::system_category(), "epoll_create1");
  }
  set_.assign(epoll_fd_);  // the descriptor now belongs to set_, which closes it
}

Poller::~Poller() = default;

void Poller::shutdown() {
  shut_down_ = true;
  boost::system::error_code ignored;
  set_.close(ignored);
  // The callbacks own connections whose destructors may come back here: drop them outside.
  std::vector<Slot> slots = std::move(slots_);
  slots_.clear();
  free_.clear();
  live_ = 0;
}

Poller::Key Poller::add(int fd, boost::system::error_code& ec) {
  if (shut_down_) {
    ec = boost::asio::error::shut_down;
    return kNone;
  }
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[index];
  const Key registration = make_key(index, slot.generation);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  event.data.u64 = registration;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    ec.assign(errno, boost::system::system_category());
    free_.push_back(index);
    return kNone;
  }
  slot.live = true;
  slot.armed = false;
  slot.reported = false;
  slot.ended = false;
  slot.posted = 0;
  ++live_;
  wait();
  return registration;
}

Poller::Slot* Poller::find(Key registration) {
  const uint64_t index = (registration & 0xffffffffU);
  if (index == 0 || index > slots_.size()) return nullptr;
  Slot& slot = slots_[index - 1];
  if (!slot.live || slot.generation != static_cast<uint32_t>(registration >> 32)) return nullptr;
  return &slot;
}

void Poller::arm(Key registration, std::function<void()> fn) {
  Slot* slot = find(registration);
  if (slot == nullptr) return;
  drop_later(*slot);
  if (slot->reported || slot->ended) {
    slot->reported = false;
    slot->armed = false;
    post_counted(*slot, registration, std::move(fn));
    return;
  }
  slot->armed = true;
  slot->fn = std::move(fn);
}

void Poller::post(Key registration, std::function<void()> fn) {
  Slot* slot = find(registration);
  if (slot == nullptr) return;
  drop_later(*slot);
  slot->armed = false;
  slot->reported = false;  // what was reported, `fn` reads
  post_counted(*slot, registration, std::move(fn));
}

void Poller::drop_later(Slot& slot) {
  if (slot.fn) boost::asio::post(io_, [dropped = std::move(slot.fn)] {});
  slot.fn = nullptr;
}

void Poller::post_counted(Slot& slot, Key registration, std::function<void()> fn) {
  ++slot.posted;
  boost::asio::post(io_, [this, registration, fn = std::move(fn)] {
    if (Slot* now = find(registration)) --now->posted;  // not if removed (and reused) since
    fn();
  });
}

void Poller::remove(Key registration) {
  Slot* slot = find(registration);
  if (slot == nullptr) return;
  drop_later(*slot);
  slot->live = false;
  slot->armed = false;
  slot->reported = false;
  slot->ended = false;
  slot->posted = 0;
  ++slot->generation;
  free_.push_back(static_cast<uint32_t>(slot - slots_.data()));
  --live_;
  if (live_ == 0 && waiting_) {
    boost::system::error_code ignored;
    set_.cancel(ignored);  // nothing to wait for: the io_context may run out of work
  }
}

void Poller::wait() {
  if (waiting_ || live_ == 0 || shut_down_) return;
  waiting_ = true;
  set_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                  [this](const boost::system::error_code& ec) {
                    waiting_ = false;
                    if (ec == boost::asio::error::operation_aborted || shut_down_) {
                      wait();  // cancelled when nothing was watched; something may be again
                      return;
                    }
                    poll();
                    wait();
                  });
}

void Poller::poll() {
  std::array<epoll_event, kBatch> events;
  const int n = ::epoll_wait(epoll_fd_, events.data(), kBatch, 0);
  // First every report is noted, so that while the callbacks run, each can see which other
  // sockets have news waiting (reported()).
  for (int i = 0; i < n; ++i) {
    const epoll_event& event = events[static_cast<size_t>(i)];
    Slot* slot = find(event.data.u64);
    if (slot == nullptr) continue;
    slot->reported = true;
    if ((event.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) slot->ended = true;
  }
  current_ = n < kBatch;  // the set was emptied: nothing else was pending at the fetch
  int i = 0;
  try {
    for (; i < n; ++i) {
      Slot* slot = find(events[static_cast<size_t>(i)].data.u64);
      // Removed since, perhaps by a callback of this batch; or not armed: its report waits.
      if (slot == nullptr || !slot->armed) continue;
      slot->armed = false;
      slot->reported = false;
      auto fn = std::move(slot->fn);
      slot->fn = nullptr;
      fn();  // may add, arm or remove registrations (slots_ may move)
    }
  } catch (...) {
    // The rest of the batch was reported once and will not be again (edge-triggered): post
    // its callbacks, and wait again, before the exception leaves the io_context's run().
    current_ = false;
    for (++i; i < n; ++i) {
      const Key registration = events[static_cast<size_t>(i)].data.u64;
      Slot* slot = find(registration);
      if (slot == nullptr || !slot->armed) continue;
      slot->armed = false;
      slot->reported = false;
      auto fn = std::move(slot->fn);
      slot->fn = nullptr;
      post_counted(*slot, registration, std::move(fn));
    }
    wait();
    throw;
  }
  current_ = false;
}

bool Poller::reported(Key registration) {
  const Slot* slot = find(registration);
  return slot != nullptr && (slot->reported || slot->ended || slot->posted > 0);
}

bool Poller::ended(Key registration) {
  const Slot* slot = find(registration);
  return slot != nullptr && slot->ended;
}

}  // namespace prescale::http::internal
