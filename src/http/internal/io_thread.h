// Internal: an http::Server I/O thread as seen by code running on it. A handler that does its
// own asynchronous I/O (the gateway's upstream connections) runs that I/O on the same
// io_context, so a request never hops threads and needs no locks. Includes Boost; for .cc files
// only (of src/http, and of the gateway's data path).
//
// Thread safety: everything but id() and io() is for the I/O thread itself.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <vector>

namespace prescale::http::internal {

class IoThread {
 public:
  explicit IoThread(boost::asio::io_context& io);
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  boost::asio::io_context& io() const { return io_; }
  // Unique in the process and never reused (unlike the object's address), so per-thread state
  // can be keyed by it across server restarts.
  uint64_t id() const { return id_; }

  // Registers `fn` to run once, on this thread, when the server force-closes its connections
  // (the end of shutdown, after the connections' on_client_gone callbacks). The thread exits
  // only when its io_context runs out of work, so whoever keeps operations pending there
  // (timers, waits on idle sockets) ends them in `fn`. After stop(), `fn` runs at once.
  void on_stop(std::function<void()> fn);

  // Runs the registered hooks; the server calls it on this thread. Idempotent.
  void stop();
  bool stopped() const { return stopped_; }

 private:
  boost::asio::io_context& io_;
  uint64_t id_;
  std::vector<std::function<void()>> stop_hooks_;
  bool stopped_ = false;
};

// The Server I/O thread the caller runs on; nullptr on any other thread.
IoThread* current_io_thread();

// Marks the calling thread as `thread` (nullptr: none). For the server's thread start-up.
void set_current_io_thread(IoThread* thread);

}  // namespace prescale::http::internal
