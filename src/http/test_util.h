// Test-only helpers for the HTTP tests: a blocking raw TCP client (plain or TLS) for sending
// exact bytes and reading responses, a self-signed certificate writer, a minimal response reader, a
// scripted TCP server for what no real server does on purpose, and a real server answering one path
// as the test sets it. Not part of prescale_http (library prescale_http_testing).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

struct ssl_st;
struct ssl_ctx_st;

namespace prescale::http {
class Router;
class Server;
}  // namespace prescale::http

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
  // Reads until what is buffered (pending()) holds `needle`; false on EOF, error or timeout first.
  bool read_until(std::string_view needle);
  // Reads into pending() until the peer closes (EOF or reset): true, or false when it has not
  // closed within `within`. Plain TCP only.
  bool read_to_close(std::chrono::milliseconds within);
  // Bytes buffered but not yet consumed by read_response().
  const std::string& pending() const { return buf_; }
  // Drops what is buffered.
  void clear_pending() { buf_.clear(); }
  void shutdown_write();

  // Turns the connection into TLS: a handshake trusting only `ca_file` (PEM) and checking the
  // name `host`, offering `alpn` (protocol names, e.g. {"h2", "http/1.1"}; none: no ALPN).
  // False with `error` set when it fails; send() and read_response() then go through TLS.
  bool start_tls(const std::string& ca_file, std::string* error = nullptr,
                 const std::vector<std::string>& alpn = {}, const std::string& host = "localhost");
  // After start_tls(): the protocol ALPN chose ("" for none) and the TLS version ("TLSv1.3").
  std::string alpn() const;
  std::string tls_version() const;
  // After start_tls(): reads to the end of the stream, true when it ended with the server's
  // close_notify (not a bare TCP close, which truncation looks like).
  bool tls_closed_cleanly();

 private:
  bool fill();  // reads more into buf_; false on EOF/error/timeout

  int fd_ = -1;
  std::string buf_;
  ssl_ctx_st* tls_ctx_ = nullptr;
  ssl_st* tls_ = nullptr;
};

// A self-signed certificate for `common_name`, also naming localhost, 127.0.0.1 and ::1 unless
// `loopback_names` is false, valid from an hour ago for `valid_days`, and its EC P-256 key,
// written as PEM to DIR/NAME.crt and DIR/NAME.key. Aborts when it cannot.
struct TestCertificate {
  std::string cert_file;
  std::string key_file;
};
TestCertificate write_test_certificate(const std::string& dir, const std::string& name,
                                       const std::string& common_name = "localhost",
                                       int valid_days = 30, bool loopback_names = true);

// What `command` (run by /bin/sh, e.g. a curl) writes to its standard output; "" if it cannot
// run.
std::string command_output(const std::string& command);

// True when a TCP connect to 127.0.0.1:port is refused.
bool connect_refused(uint16_t port);

// A port on 127.0.0.1 with nothing listening (bound, then released).
uint16_t unused_port();

// A TCP server on 127.0.0.1 for failure modes a real server never produces: each accepted
// connection is handed to `script` (on the server's thread, one connection at a time) with its fd
// and its 0-based index, and closed when the script returns.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int fd, int index)> script);
  ~ScriptedServer();
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }  // connections so far

  // Reads one request's head (the requests sent to it carry no body); false at EOF.
  static bool read_request(int fd);
  static void write(int fd, std::string_view s);

 private:
  std::function<void(int, int)> script_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A real http::Server on 127.0.0.1 (one thread) answering GET `path` (a Router pattern) with the
// status and body last set: a gateway's /metrics, a controller's endpoint, changed as a test
// goes on. Other paths are 404.
class CannedServer {
 public:
  explicit CannedServer(std::string path);
  ~CannedServer();
  CannedServer(const CannedServer&) = delete;
  CannedServer& operator=(const CannedServer&) = delete;

  void set(std::string body, int status = 200);
  uint16_t port() const;

 private:
  struct Canned;
  std::shared_ptr<Canned> canned_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<Server> server_;
};

}  // namespace prescale::http::testing
