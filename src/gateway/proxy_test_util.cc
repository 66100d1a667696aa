#include "gateway/proxy_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace prescale::gateway::testing {
namespace {

// The Content-Length of a request head, 0 when absent.
size_t content_length(const std::string& head) {
  std::string lower = head;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = lower.find("\r\ncontent-length:");
  if (at == std::string::npos) return 0;
  return static_cast<size_t>(std::strtoull(lower.c_str() + at + 17, nullptr, 10));
}

bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

RawUpstream::Reply RawUpstream::ok(std::string body) {
  return Reply{
      "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
      false};
}

RawUpstream::RawUpstream(Script script) : script_(std::move(script)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::listen(listen_fd_, 128);
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

RawUpstream::~RawUpstream() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  {
    std::lock_guard lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : threads_) t.join();
}

std::vector<std::string> RawUpstream::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void RawUpstream::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    const int conn = accepts_.fetch_add(1);
    std::lock_guard lock(mu_);
    fds_.push_back(fd);
    threads_.emplace_back([this, fd, conn] { serve(fd, conn); });
  }
}

void RawUpstream::close_fd(int fd) {
  // Under the lock, so the destructor never shuts down a number already reused elsewhere.
  std::lock_guard lock(mu_);
  std::erase(fds_, fd);
  ::close(fd);
}

void RawUpstream::serve(int fd, int conn) {
  std::string buf;
  char chunk[65536];
  for (int index = 0;; ++index) {
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        close_fd(fd);
        return;
      }
      buf.append(chunk, static_cast<size_t>(n));
    }
    const size_t total = head_end + 4 + content_length(buf.substr(0, head_end + 2));
    while (buf.size() < total) {
      const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        close_fd(fd);
        return;
      }
      buf.append(chunk, static_cast<size_t>(n));
    }
    std::string request = buf.substr(0, total);
    buf.erase(0, total);
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
    }
    auto reply = script_(conn, index, request);
    if (!reply || !send_all(fd, reply->bytes) || reply->close_after) {
      ::shutdown(fd, SHUT_RDWR);
      close_fd(fd);
      return;
    }
  }
}

}  // namespace prescale::gateway::testing
