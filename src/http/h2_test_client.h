// Test-only: a blocking HTTP/2 client with prior knowledge (clear text), on libnghttp2's client
// session, for the server's HTTP/2 tests: several streams at once, resets, GOAWAY, and the
// frames' details curl does not show. Part of prescale_http_testing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct nghttp2_session;

namespace prescale::http::testing {

struct H2Reply {
  int status = 0;          // the final status
  bool continued = false;  // a "100 Continue" came first
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::vector<std::pair<std::string, std::string>> trailers;  // a HEADERS frame after the head
  bool head_done = false;  // the final head is in: further fields are trailers
  bool closed = false;  // the stream is over
  bool reset = false;   // ... by the server's RST_STREAM
  uint32_t reset_code = 0;

  std::optional<std::string> header(std::string_view name) const;
};

class H2Client {
 public:
  using Fields = std::vector<std::pair<std::string, std::string>>;

  // Connects to 127.0.0.1:port and queues the preface and SETTINGS; `window` is the receive
  // window it announces for each stream.
  explicit H2Client(uint16_t port, int32_t window = 65535);
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Queues a request (`body` sent as DATA when not empty); returns its stream id, or -1.
  int32_t submit(std::string_view method, std::string_view path, Fields fields = {},
                 std::string body = {});
  // Queues a request's HEADERS announcing a body that never comes; returns its stream id.
  int32_t submit_open(std::string_view method, std::string_view path);
  // Queues a request's HEADERS whose body follows through send_body(); returns its stream id.
  int32_t submit_streaming(std::string_view method, std::string_view path, Fields fields = {});
  // Queues more of a submit_streaming() request's body (sent as the server's windows allow);
  // `end` ends it.
  void send_body(int32_t id, std::string_view data, bool end = false);
  // Bytes of `id`'s body the server's windows have let out so far.
  size_t body_sent(int32_t id) const;
  // Queues RST_STREAM(CANCEL) for `id`.
  void cancel(int32_t id);
  // Sends and receives until `done()` holds (true), or the connection ends or `timeout` passes
  // first (false).
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // run_until() every stream in `ids` is over.
  bool finish(const std::vector<int32_t>& ids,
              std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sends and receives until the server closes the connection.
  bool run_to_close(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Writes raw bytes to the socket, past the session.
  bool send_raw(std::string_view bytes);

  H2Reply& reply(int32_t id) { return replies_[id]; }
  bool got_goaway() const { return goaway_; }
  uint32_t goaway_code() const { return goaway_code_; }
  int32_t goaway_last_stream() const { return goaway_last_; }
  bool server_closed() const { return eof_; }

 private:
  friend struct H2ClientCallbacks;
  bool pump(std::chrono::steady_clock::time_point deadline);
  // `open`: the body goes on after `body` (send_body()).
  int32_t submit(std::string_view method, std::string_view path, Fields fields, std::string body,
                 bool open);

  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, H2Reply> replies_;
  struct Outgoing {
    std::string data;
    size_t off = 0;     // sent up to here
    bool more = false;  // more follows data (send_body())
  };
  std::map<int32_t, Outgoing> bodies_;  // request bodies being sent
  bool goaway_ = false;
  uint32_t goaway_code_ = 0;
  int32_t goaway_last_ = 0;
  bool eof_ = false;
};

}  // namespace prescale::http::testing
