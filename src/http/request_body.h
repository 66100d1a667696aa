// RequestBody: a request's body read as it arrives, for a handler that must not wait for all of
// it — a gRPC client-streaming or bidirectional call, whose client waits for answers before it
// sends more. The server hands one over (Request::body_stream) when ServerOptions::
// stream_request_body says so for an HTTP/2 request; the handler is called once the head is in,
// with Request::body empty, and reads the body from here, also after it has answered (a
// bidirectional stream's body outlives its response's head).
//
// Flow control: the client may send only as far as its HTTP/2 windows allow, and the server
// reopens them as the reader takes the bytes, not as they arrive: a reader that stops reading
// holds its client back (at most HTTP/2's stream window, 1 MiB, waits here). No total size limit
// applies (ServerOptions::max_body_bytes bounds bodies read whole); the reader sets its own.
//
// Ends: the client ends the body (kEnd, once all was read), or resets its stream or leaves
// (kAborted). A reader that wants no more calls discard(): what still comes is dropped, the
// client's windows reopened as it comes.
//
// Thread safety: the reader's methods from any thread. on_readable runs on the connection's I/O
// thread, never from within a reader's call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace prescale::http {

namespace internal {
struct H2Callbacks;
class H2Session;
}  // namespace internal

class RequestBody {
 public:
  enum class Read {
    kData,     // bytes were appended to `out` (more, the end or an abort may follow)
    kWait,     // nothing new yet: on_readable runs when something comes
    kEnd,      // the body is complete and all of it was read
    kAborted,  // the client reset its stream or left: the body will not be complete
  };

  RequestBody() = default;
  RequestBody(const RequestBody&) = delete;
  RequestBody& operator=(const RequestBody&) = delete;

  // Appends what has arrived and not been read to `out`. After kEnd or kAborted, gives the same
  // again.
  Read read(std::string& out);
  // Runs once after a read() that gave kWait, when data, the end or an abort comes. Set it
  // before reading.
  void set_on_readable(std::function<void()> fn);
  // The reader wants no more of the body: what waits and what still comes is dropped.
  void discard();
  // Bytes of the body received so far (read or not).
  uint64_t received() const;

 private:
  friend struct internal::H2Callbacks;
  friend class internal::H2Session;

  // The server's side, on the connection's I/O thread. `consumed(n)` is called from the reader's
  // thread, outside the lock, once n more bytes were read or discarded.
  void bind(std::function<void(size_t)> consumed);
  // Data arrived: false when the reader discarded the body (the caller reopens the windows for
  // it itself). `wake` is set to on_readable when the reader waits for this.
  bool push(const char* data, size_t size, std::function<void()>& wake);
  // The client ended the body, or will not (`complete` false).
  void finish(bool complete, std::function<void()>& wake);
  // The stream is over: read() reports nothing more to `consumed`. Returns the bytes that wait
  // unread (the server takes them back itself).
  size_t unbind();

  // Moves on_readable into `wake` when the reader waits. Under mu_.
  void take_waiter(std::function<void()>& wake);

  mutable std::mutex mu_;
  std::string data_;
  uint64_t received_ = 0;
  bool ended_ = false;
  bool aborted_ = false;
  bool discarded_ = false;
  bool waiting_ = false;  // the last read() gave kWait: the next arrival runs on_readable
  std::function<void()> on_readable_;
  std::function<void(size_t)> consumed_;
};

}  // namespace prescale::http
