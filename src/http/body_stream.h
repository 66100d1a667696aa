// BodyStream: a response body sent as it is produced — server-sent events, a model's tokens, a
// proxied stream of unknown length. A handler creates one, sets Response::stream and responds;
// the server writes the head, then each piece as it is written here: chunked to an HTTP/1.1
// client, delimited by the end of the connection to an HTTP/1.0 one. The response's `body`, if
// any, goes first. A response that has no body (to HEAD, 204, 304) leaves the stream gone.
//
// Flow control: write() never blocks. A producer that can wait (an upstream connection) stops
// once full() — more than kHighWater bytes not yet on the socket — and goes on when
// `on_drained` runs, once they are down to kLowWater. On another thread than the connection's,
// it marks itself paused first and then asks full() again (on_drained may have run between its
// write and its mark). The server writes at most about kHighWater at a time (or one larger
// piece), and each write must be taken within its write_timeout: a client that reads more slowly
// than that (under 64 KiB in 10 s by default) is cut off. It sets no limit on the time between
// pieces (the producer bounds its own silence). The callbacks are dropped once the body ended.
//
// Thread safety: the producer's methods from any thread. Set the callbacks before responding.
// They run on the I/O thread of the client's connection, never from within a producer's call,
// so they may call back in (but once the server has stopped, on_gone runs where it learns so).
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "http/message.h"

namespace prescale::http {

namespace internal {
class Connection;
struct H2Callbacks;
class H2Session;
}  // namespace internal
class Tunnel;

// How a streamed body ended (BodyStream::set_on_over).
enum class BodyEnd { kEnded, kAborted, kClientGone };

class BodyStream {
 public:
  static constexpr size_t kHighWater = 64 * 1024;
  static constexpr size_t kLowWater = 16 * 1024;

  BodyStream() = default;
  BodyStream(const BodyStream&) = delete;
  BodyStream& operator=(const BodyStream&) = delete;

  // Queues `data` (an empty piece is nothing). False, dropping it, once the client is gone or
  // after end() or abort().
  bool write(std::string_view data);
  // The body is complete: what was queued is sent, then its end.
  void end();
  // The same, with fields sent after the body (Response::trailers explains where they go).
  void end(Headers trailers);
  // The body cannot be completed: the connection is closed after what was queued, without the
  // last chunk, so the client sees a cut body (not a complete one).
  void abort();

  // More than kHighWater bytes wait for the socket.
  bool full() const;
  // Bytes written here that have not reached the socket yet.
  size_t queued() const;
  // The client's connection closed (or the response could have no body): writes are dropped.
  bool gone() const;

  // Runs when what was queued falls to kLowWater after full() was true.
  void set_on_drained(std::function<void()> fn);
  // Runs once, when the client goes away before end() or abort() (the connection closed, or the
  // response can have no body).
  void set_on_gone(std::function<void()> fn);
  // For an observer of the whole response (a tracing span): runs once, when the body is over —
  // end() (kEnded), abort() (kAborted), or the client going away before either (kClientGone) —
  // on the thread that ended it, outside the lock (from within end() or abort(), unlike the
  // other callbacks); at once, from within this call, when the body is over already. Dropped
  // unrun when the stream is destroyed first.
  void set_on_over(std::function<void(BodyEnd)> fn);

 private:
  friend class internal::Connection;
  friend struct internal::H2Callbacks;
  friend class internal::H2Session;
  friend class Tunnel;

  enum class Take { kData, kWait, kEnd, kAbort };

  // The server's side, on the connection's I/O thread. `wake` is called (from the producer's
  // thread, outside the lock) when something was written while the server was waiting.
  void attach(std::function<void()> wake);
  // Appends what is queued to `out`, framed as chunks when `chunked`; kWait when nothing is and
  // the body goes on.
  Take take(std::string& out, bool chunked, size_t& data_bytes);
  // end() or abort(): sets `how` (ended_ or aborted_) unless the body is over already.
  void finish(bool& how);
  // `data_bytes` of what take() gave reached the socket.
  void sent(size_t data_bytes);
  // The client went away: producers are told (on_gone), writes are dropped from now on.
  void client_gone();
  // After take() gave kEnd: the trailers end() was given (moved out).
  Headers take_trailers();

  mutable std::mutex mu_;
  std::deque<std::string> pieces_;
  Headers trailers_;
  size_t queued_ = 0;
  bool ended_ = false;
  bool aborted_ = false;
  bool gone_ = false;
  bool was_full_ = false;
  bool waiting_ = false;  // the server waits for a piece: the next write() wakes it
  std::function<void()> wake_;
  std::function<void()> on_drained_;
  std::function<void()> on_gone_;
  std::function<void(BodyEnd)> on_over_;
};

}  // namespace prescale::http
