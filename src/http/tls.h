// TlsContext: what a Server needs to speak HTTPS — its certificate chain, its private key and
// the protocol settings — loaded once from PEM files and shared by every connection accepted
// while it is the server's (Server::replace_tls() swaps in a renewed one; connections already
// open keep theirs).
//
// Settings (docs/gateway.md, "TLS"): TLS 1.2 and 1.3 only; ECDHE with AES-GCM or ChaCha20 for
// TLS 1.2, OpenSSL's suites for TLS 1.3 (forward secrecy and AEAD only); no renegotiation; no
// compression; session resumption by tickets and the server's cache; ALPN answers "http/1.1" (a
// client offering only h2 gets no ALPN answer and may go on in HTTP/1.1 or leave). No client
// certificates.
//
// Thread safety: immutable once loaded; share it freely.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/result.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace prescale::http {

struct TlsFiles {
  std::string cert_file;  // PEM: the server's certificate first, then its intermediates
  std::string key_file;   // PEM: its private key, not encrypted (RSA, EC or Ed25519)

  friend bool operator==(const TlsFiles&, const TlsFiles&) = default;
};

class TlsContext {
 public:
  // Reads and checks both files: kNotFound when one cannot be read, kInvalidArgument (naming the
  // file and OpenSSL's reason) when it holds no certificate or no usable key, or when the key
  // is not the certificate's.
  static Result<std::shared_ptr<const TlsContext>> load(const TlsFiles& files);
  // The same from the files' bytes, read by the caller (`files` names them in errors).
  static Result<std::shared_ptr<const TlsContext>> load_pem(const TlsFiles& files,
                                                            const std::string& cert_pem,
                                                            const std::string& key_pem);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  const TlsFiles& files() const { return files_; }
  // The leaf certificate's subject ("CN=shop.example.com,O=...") and the end of its validity,
  // for logs and expiry warnings.
  const std::string& subject() const { return subject_; }
  std::chrono::system_clock::time_point not_after() const { return not_after_; }
  // The SHA-256 of the leaf certificate, hex: tells a renewed certificate from the one in use.
  const std::string& fingerprint() const { return fingerprint_; }

  // OpenSSL's context; for src/http's connections.
  ssl_ctx_st* native() const { return ctx_; }

 private:
  TlsContext() = default;

  ssl_ctx_st* ctx_ = nullptr;
  TlsFiles files_;
  std::string subject_;
  std::chrono::system_clock::time_point not_after_{};
  std::string fingerprint_;
};

// ClientTlsContext: what a Client needs to reach servers over HTTPS: the CAs it verifies their
// certificates by (a PEM bundle, or the system's), TLS 1.2 or later, ALPN "http/1.1". Every
// connection checks the server's name (or IP address) against its certificate and sends the name
// by SNI. No client certificates.
class ClientTlsContext {
 public:
  // `ca_file`: a PEM bundle of the CAs to trust; "" = the system's (/etc/ssl/certs). Errors:
  // kNotFound when the file cannot be read, kInvalidArgument (naming it) when it holds no
  // certificate.
  static Result<std::shared_ptr<const ClientTlsContext>> create(const std::string& ca_file = "");

  ~ClientTlsContext();
  ClientTlsContext(const ClientTlsContext&) = delete;
  ClientTlsContext& operator=(const ClientTlsContext&) = delete;

  const std::string& ca_file() const { return ca_file_; }
  ssl_ctx_st* native() const { return ctx_; }

 private:
  ClientTlsContext() = default;

  ssl_ctx_st* ctx_ = nullptr;
  std::string ca_file_;
};

// What OpenSSL says went wrong with a client's connection `ssl`: the certificate's verify result
// ("certificate verify failed: unable to get local issuer certificate", "... hostname mismatch")
// or OpenSSL's error queue, emptied. For src/http's connections.
std::string client_tls_error(ssl_st* ssl);

}  // namespace prescale::http
