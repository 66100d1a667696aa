// Test-only helpers for the HTTP tests: a blocking raw TCP client for sending exact bytes
// and reading responses, and a minimal response reader. Not part of prescale_http.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prescale::http::testing {

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::optional<std::string> header(std::string_view name) const;
};

// A blocking TCP connection to 127.0.0.1:port. Reads time out after `io_timeout`.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port,
                     std::chrono::milliseconds io_timeout = std::chrono::milliseconds(5000));
  ~RawSocket();
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Sends all bytes; false on error (e.g. the server reset the connection).
  bool send(std::string_view data);
  // Reads one response (status line, headers, Content-Length or chunked body; no body when
  // `head`). nullopt on EOF/error/timeout before a complete response.
  std::optional<RawResponse> read_response(bool head = false);
  // True when the peer closes (EOF or reset) within `within`; bytes that arrive meanwhile are
  // discarded.
  bool closed_within(std::chrono::milliseconds within);
  // Bytes buffered but not yet consumed by read_response().
  const std::string& pending() const { return buf_; }
  void shutdown_write();

 private:
  bool fill();  // reads more into buf_; false on EOF/error/timeout

  int fd_ = -1;
  std::string buf_;
};

// True when a TCP connect to 127.0.0.1:port is refused.
bool connect_refused(uint16_t port);

// A port on 127.0.0.1 with nothing listening (bound, then released).
uint16_t unused_port();

}  // namespace prescale::http::testing
