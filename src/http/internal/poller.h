// Internal: the readiness waits of one io_context's sockets, batched.
//
// Asio costs one system call each time a wait for "readable" is armed on a socket: an
// epoll_ctl() for async_wait, or a speculative recv() that fails with EAGAIN for
// async_read_some. A proxy arms two per request (the client's connection for its next request,
// the upstream's for its response), which is a third of its system calls. The Poller keeps its
// own edge-triggered epoll set, in which a socket is registered once for its life; Asio waits
// on the set's descriptor instead, which costs one epoll_ctl() per batch of ready sockets.
//
// Edge-triggered: a socket is reported when new data (or its end, or an error) arrives, not
// while unread data stays. Whoever is called must read until a read comes back short (or
// EAGAIN) before arming again, or read again at once (not through the Poller) when it stopped
// with data possibly left. The end is the exception: once the peer has ended its side (or the
// socket failed), every arm() is answered at once, so the end that came with the last data is
// read too. The kernel looks at the socket again when a batch is fetched, so a report means
// data (or the end) was there then; it finds nothing only where something read the socket
// since: a read that fails with EAGAIN then just arms again.
//
// A callback that throws leaves the Poller whole: the rest of its batch is posted, the set
// waited on again, and the exception goes on to whoever runs the io_context.
//
// Includes Boost; for .cc files only (of src/http, and of the gateway's data path).
// Thread safety: one thread, the io_context's.
#pragma once

#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <functional>
#include <vector>

namespace prescale::http::internal {

class Poller : public boost::asio::execution_context::service {
 public:
  // Names one registration. Never kNone for a live one; never reused.
  using Key = uint64_t;
  static constexpr Key kNone = 0;

  // The Poller of `io`, made on first use; it lives as long as `io`.
  static Poller& of(boost::asio::io_context& io);

  // Asio's service constructor; use of().
  explicit Poller(boost::asio::execution_context& context);
  ~Poller() override;

  // Watches `fd`, an open non-blocking socket, from now until remove(). kNone, with `ec` set,
  // when it cannot be watched.
  Key add(int fd, boost::system::error_code& ec);
  // Calls `fn` once, on the io_context, at the next report of the socket; posted at once when
  // it was reported since its last `fn` ran, or has ended. Replaces an `fn` not yet called (which
  // is destroyed later, posted: it may own the caller).
  void arm(Key registration, std::function<void()> fn);
  // Posts `fn` at once, as if the socket were reported: for a reader that stopped with data
  // possibly left, which no new report would announce; it takes the place of a report waiting
  // and of an armed `fn`. Until `fn` runs, reported() is true.
  void post(Key registration, std::function<void()> fn);
  // Ends the registration. An armed `fn` is dropped, later (posted): it may own what calls this;
  // one already posted still runs. Call it before the socket closes (a closed descriptor
  // leaves the set only once no process holds it).
  void remove(Key registration);

  // Whether news from the socket may wait unread: a report came while not armed, or in the
  // batch whose callbacks run now, before its own; or a callback for it is posted and has not
  // run; or it has ended. News is not proof of data now (a read may have taken it).
  bool reported(Key registration);
  // Whether the socket's end (or an error) was reported: no more data will come.
  bool ended(Key registration);
  // True while the callbacks of a batch run that took every report pending at its fetch: a
  // socket with nothing reported() had no news at that moment (not necessarily now; the
  // batch's callbacks take time), which a caller that can afford that staleness may take
  // instead of looking at the socket itself (a system call).
  bool current() const { return current_; }

  // Registrations now (for tests).
  size_t watched() const { return live_; }

  static boost::asio::execution_context::id id;

 private:
  struct Slot {
    uint32_t generation = 0;
    bool live = false;
    bool armed = false;     // `fn` waits for the next report
    bool reported = false;  // reported, and its callback not yet called
    bool ended = false;     // the peer ended its side, or the socket failed: reported for good
    uint32_t posted = 0;    // callbacks posted at once and not yet run
    std::function<void()> fn;
  };

  void shutdown() override;
  Slot* find(Key registration);
  // Keeps a wait for the set's readiness pending while anything is watched, and only then, so
  // the io_context can run out of work.
  void wait();
  void poll();
  // Destroys the slot's `fn` later (posted): it may own whoever replaces or removes it.
  void drop_later(Slot& slot);
  // Posts `fn` and counts it in the slot's `posted` until it runs.
  void post_counted(Slot& slot, Key registration, std::function<void()> fn);

  boost::asio::io_context& io_;
  int epoll_fd_ = -1;
  boost::asio::posix::stream_descriptor set_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;  // indexes of slots not live
  size_t live_ = 0;
  bool waiting_ = false;
  bool current_ = false;
  bool shut_down_ = false;
};

}  // namespace prescale::http::internal
