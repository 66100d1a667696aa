#include "http/test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "http/internal/wire.h"
#include "http/router.h"
#include "http/server.h"

namespace prescale::http::testing {
namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

}  // namespace

std::optional<std::string> RawResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (internal::iequals(n, name)) return v;
  }
  return std::nullopt;
}

RawSocket::RawSocket(uint16_t port, std::chrono::milliseconds io_timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return;
  timeval tv{};
  tv.tv_sec = io_timeout.count() / 1000;
  tv.tv_usec = (io_timeout.count() % 1000) * 1000;
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr = loopback(port);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawSocket::~RawSocket() {
  SSL_free(tls_);
  SSL_CTX_free(tls_ctx_);
  if (fd_ >= 0) ::close(fd_);
}

bool RawSocket::start_tls(const std::string& ca_file, std::string* error,
                          const std::vector<std::string>& alpn, const std::string& host) {
  auto fail = [&](const std::string& what) {
    if (error) {
      *error = what;
      while (const unsigned long e = ERR_get_error()) {
        char text[256];
        ERR_error_string_n(e, text, sizeof(text));
        *error += "; ";
        *error += text;
      }
    }
    ERR_clear_error();
    SSL_free(tls_);  // later reads and writes go to the socket, not to a dead session
    tls_ = nullptr;
    return false;
  };
  if (fd_ < 0) return fail("not connected");
  tls_ctx_ = SSL_CTX_new(TLS_client_method());
  if (!tls_ctx_) return fail("SSL_CTX_new");
  SSL_CTX_set_verify(tls_ctx_, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(tls_ctx_, ca_file.c_str(), nullptr) != 1) {
    return fail("cannot load " + ca_file);
  }
  if (!alpn.empty()) {
    std::string wire;
    for (const auto& p : alpn) {
      wire += static_cast<char>(p.size());
      wire += p;
    }
    SSL_CTX_set_alpn_protos(tls_ctx_, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned int>(wire.size()));
  }
  tls_ = SSL_new(tls_ctx_);
  if (!tls_) return fail("SSL_new");
  SSL_set_fd(tls_, fd_);
  SSL_set_tlsext_host_name(tls_, host.c_str());
  SSL_set1_host(tls_, host.c_str());
  if (SSL_connect(tls_) != 1) return fail("handshake failed");
  return true;
}

std::string RawSocket::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  if (tls_) SSL_get0_alpn_selected(tls_, &p, &n);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

bool RawSocket::tls_closed_cleanly() {
  if (!tls_) return false;
  char chunk[4096];
  size_t n = 0;
  int r = 0;
  while ((r = SSL_read_ex(tls_, chunk, sizeof(chunk), &n)) == 1) {
  }
  const bool clean = SSL_get_error(tls_, r) == SSL_ERROR_ZERO_RETURN;
  ERR_clear_error();
  return clean;
}

std::string RawSocket::tls_version() const { return tls_ ? SSL_get_version(tls_) : ""; }

bool RawSocket::send(std::string_view data) {
  if (tls_) {
    size_t n = 0;
    const bool ok = data.empty() || SSL_write_ex(tls_, data.data(), data.size(), &n) == 1;
    ERR_clear_error();
    return ok;
  }
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void RawSocket::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

bool RawSocket::fill() {
  char chunk[16384];
  if (tls_) {
    size_t n = 0;
    const bool ok = SSL_read_ex(tls_, chunk, sizeof(chunk), &n) == 1;
    ERR_clear_error();
    if (ok) buf_.append(chunk, n);
    return ok;
  }
  while (true) {
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buf_.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool RawSocket::read_until(std::string_view needle) {
  while (buf_.find(needle) == std::string::npos) {
    if (!fill()) return false;
  }
  return true;
}

bool RawSocket::read_to_close(std::chrono::milliseconds within) {
  const auto until = std::chrono::steady_clock::now() + within;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return false;
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), MSG_DONTWAIT);
    if (n == 0) return true;
    if (n > 0) {
      buf_.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
  }
}

std::optional<RawResponse> RawSocket::read_response(bool head) {
  size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return std::nullopt;
  }
  RawResponse r;
  std::string_view block(buf_.data(), end);
  size_t line_end = block.find("\r\n");
  std::string_view status_line = block.substr(0, line_end);
  if (status_line.size() < 12) return std::nullopt;
  r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  std::string_view rest = line_end == std::string_view::npos ? "" : block.substr(line_end + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view line = rest.substr(0, e);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    if (e == std::string_view::npos) break;
    rest = rest.substr(e + 2);
  }
  buf_.erase(0, end + 4);
  if (head || r.status / 100 == 1 || r.status == 204 || r.status == 304) return r;
  if (auto cl = r.header("Content-Length")) {
    const size_t len = std::strtoull(cl->c_str(), nullptr, 10);
    while (buf_.size() < len) {
      if (!fill()) return std::nullopt;
    }
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    return r;
  }
  if (auto te = r.header("Transfer-Encoding"); te && internal::iequals(*te, "chunked")) {
    while (true) {
      size_t le;
      while ((le = buf_.find("\r\n")) == std::string::npos) {
        if (!fill()) return std::nullopt;
      }
      const size_t size = std::strtoull(buf_.substr(0, le).c_str(), nullptr, 16);
      while (buf_.size() < le + 2 + size + 2) {
        if (!fill()) return std::nullopt;
      }
      r.body += buf_.substr(le + 2, size);
      buf_.erase(0, le + 2 + size + 2);
      if (size == 0) return r;
    }
  }
  while (fill()) {
  }
  r.body = std::move(buf_);
  buf_.clear();
  return r;
}

bool RawSocket::closed_within(std::chrono::milliseconds within) {
  const size_t kept = buf_.size();
  const bool closed = read_to_close(within);
  buf_.resize(kept);  // what arrived meanwhile is discarded
  return closed;
}

TestCertificate write_test_certificate(const std::string& dir, const std::string& name,
                                       const std::string& common_name, int valid_days,
                                       bool loopback_names) {
  auto check = [](bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "write_test_certificate: %s failed\n", what);
    std::abort();
  };
  EVP_PKEY* key = EVP_EC_gen("P-256");
  check(key != nullptr, "EVP_EC_gen");
  X509* cert = X509_new();
  check(cert != nullptr, "X509_new");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), static_cast<long>(std::rand() % 1000000 + 1));
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * valid_days);
  X509_set_pubkey(cert, key);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert, subject);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  const std::string names =
      "DNS:" + common_name + (loopback_names ? ",DNS:localhost,IP:127.0.0.1,IP:::1" : "");
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, names.c_str());
  check(san != nullptr, "subjectAltName");
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  check(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign");

  TestCertificate out{dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  FILE* f = std::fopen(out.cert_file.c_str(), "w");
  check(f != nullptr && PEM_write_X509(f, cert) == 1, "writing the certificate");
  std::fclose(f);
  f = std::fopen(out.key_file.c_str(), "w");
  check(f != nullptr && PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "writing the key");
  std::fclose(f);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

std::string command_output(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

bool connect_refused(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(port);
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(fd);
  return rc != 0 && err == ECONNREFUSED;
}

uint16_t unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(0);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

ScriptedServer::ScriptedServer(std::function<void(int fd, int index)> script)
    : script_(std::move(script)) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(0);
  ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  ::listen(fd_, 16);
  thread_ = std::thread([this] {
    for (int i = 0;; ++i) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      accepted_.fetch_add(1);
      script_(c, i);
      ::close(c);
    }
  });
}

ScriptedServer::~ScriptedServer() {
  ::shutdown(fd_, SHUT_RDWR);
  ::close(fd_);
  thread_.join();
}

bool ScriptedServer::read_request(int fd) {
  std::string buf;
  char chunk[4096];
  while (buf.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
  }
  return true;
}

void ScriptedServer::write(int fd, std::string_view s) {
  ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
}

struct CannedServer::Canned {
  std::mutex mu;
  std::string body;
  int status = 200;
};

CannedServer::CannedServer(std::string path)
    : canned_(std::make_shared<Canned>()), router_(std::make_unique<Router>()) {
  router_->add(Method::kGet, std::move(path), [canned = canned_](Request&, Responder respond) {
    std::lock_guard lock(canned->mu);
    respond(Response::text(canned->status, canned->body));
  });
  ServerOptions o;
  o.address = "127.0.0.1";
  o.threads = 1;
  server_ = std::make_unique<Server>(o, router_->as_handler());
  if (auto started = server_->start(); !started) {
    std::fprintf(stderr, "CannedServer: %s\n", started.error().to_string().c_str());
    std::abort();
  }
}

CannedServer::~CannedServer() { server_->shutdown(std::chrono::milliseconds(0)); }

void CannedServer::set(std::string body, int status) {
  std::lock_guard lock(canned_->mu);
  canned_->body = std::move(body);
  canned_->status = status;
}

uint16_t CannedServer::port() const { return server_->port(); }

}  // namespace prescale::http::testing
