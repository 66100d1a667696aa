// Tunnel: a connection switched to another protocol — WebSocket, or any the client named in its
// Upgrade field (RFC 9110 section 7.8). A handler asked to upgrade (upgrade_requested()) that
// agrees answers 101 Switching Protocols with the Upgrade field it chose, `Connection: upgrade`
// and Response::tunnel set. The server writes that head, then the connection carries the new
// protocol's bytes both ways until it closes; it never returns to HTTP.
//
//   - To the client: out() is a BodyStream written as is, without chunk framing, with its flow
//     control (full(), on_drained). end(): once what was queued is sent, the server ends its side
//     of the connection (TLS close_notify, then TCP's FIN) and reads on until the client ends
//     its side too (or for at most the server's idle_timeout). abort(): the connection is closed
//     after what was queued (over TLS without close_notify).
//   - From the client: each piece it sends runs on_data, in order; bytes the client sent before
//     the 101 (right behind its request) come first. pause() stops reading the client (TCP's flow
//     control then holds it back) until resume(). The client ending its side runs on_end.
//   - on_closed runs once, last, when the connection closed: both sides ended, a failure, the
//     server's shutdown deadline, abort(). out() is gone then (its on_gone ran unless it had
//     ended or been aborted), and the callbacks of both are dropped.
//
// No timeout applies but the server's write_timeout to each write: the handler bounds how long
// the tunnel may stay silent (out().abort()). A draining server (graceful shutdown) lets its
// tunnels run until the shutdown deadline. The server answers 500 instead, and runs on_closed,
// when a handler sets a tunnel without 101 (or 101 without a tunnel or an Upgrade field), or for a
// request that did not ask to upgrade or is a HEAD; 503 when it is draining.
//
// Thread safety: pause(), resume(), abort() and out()'s producer methods from any thread. Set the
// callbacks before responding; they run on the I/O thread of the client's connection, never within
// a call of the handler's, so they may call back in (but once the server has stopped, on_closed
// runs where it learns of the tunnel: within respond()).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "http/body_stream.h"
#include "http/message.h"

namespace prescale::http {

namespace internal {
class Connection;
class H2Session;
}  // namespace internal

// The protocols an HTTP/1.1 request asks to switch to (its Upgrade field, e.g. "websocket"), when
// its Connection field names "upgrade"; nullopt otherwise. The server drops the Upgrade field of
// an HTTP/1.0 request (RFC 9110 section 7.8), so such a request never asks.
std::optional<std::string_view> upgrade_requested(const Request& request);

class Tunnel {
 public:
  Tunnel();
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  // What goes to the client.
  BodyStream& out() const { return *out_; }

  void set_on_data(std::function<void(std::string_view data)> fn) { on_data_ = std::move(fn); }
  void set_on_end(std::function<void()> fn) { on_end_ = std::move(fn); }
  void set_on_closed(std::function<void()> fn) { on_closed_ = std::move(fn); }

  // Stops reading what the client sends, until resume().
  void pause();
  void resume();
  // Closes the connection at once, whatever is queued and even after out().end(): a cut, not an
  // end (over TLS without close_notify). Before the 101's head is written, right after it (the
  // client sees the switch, then the cut). on_closed follows.
  void abort();

 private:
  friend class internal::Connection;
  friend class internal::H2Session;

  // The server's side, on the connection's I/O thread. `wake` is called (from the thread calling
  // resume(), outside the lock) when reading may go on.
  void attach(std::function<void()> wake);
  bool paused() const;
  bool aborted() const;
  void data(std::string_view bytes);
  void input_ended();
  // The connection closed: on_closed, then every callback dropped. Idempotent.
  void closed();

  std::shared_ptr<BodyStream> out_;
  mutable std::mutex mu_;
  bool paused_ = false;
  bool aborted_ = false;
  bool closed_ = false;
  std::function<void()> wake_;
  // Set before responding, then used on the connection's thread only: no lock.
  std::function<void(std::string_view)> on_data_;
  std::function<void()> on_end_;
  std::function<void()> on_closed_;
};

}  // namespace prescale::http
