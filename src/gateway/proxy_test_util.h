// Test-only helpers for the gateway's data-path tests: an upstream that answers with exact
// bytes (to misbehave on purpose: close mid-response, send garbage, hop-by-hop fields the
// http::Server would never write) and counts the connections it accepts. Blocking sockets, a
// thread per connection. Not part of prescale_gateway.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace prescale::gateway::testing {

class RawUpstream {
 public:
  struct Reply {
    std::string bytes;         // written as is
    bool close_after = false;  // then close the connection
  };
  // Answers request `index` (0-based) of connection `conn` (0-based, in accept order); nullopt
  // closes the connection without answering.
  using Script =
      std::function<std::optional<Reply>(int conn, int index, const std::string& request)>;

  explicit RawUpstream(Script script);
  ~RawUpstream();
  RawUpstream(const RawUpstream&) = delete;
  RawUpstream& operator=(const RawUpstream&) = delete;

  uint16_t port() const { return port_; }
  int accepts() const { return accepts_.load(); }
  // Every request received so far, head and body as sent.
  std::vector<std::string> requests() const;

  // A 200 response with `body` and Content-Length.
  static Reply ok(std::string body);

 private:
  void accept_loop();
  void serve(int fd, int conn);
  void close_fd(int fd);

  Script script_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepts_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace prescale::gateway::testing
