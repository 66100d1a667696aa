#include "http/tls.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <ctime>
#include <utility>

#include "core/text_file.h"

namespace prescale::http {
namespace {

// What OpenSSL said, its queue emptied: "reason; reason".
std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof(text));
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "no reason given" : out;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

BioPtr memory_bio(const std::string& bytes) {
  return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

// An encrypted key is refused rather than asked for on the terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

// ALPN: h2 when the client offers it and the connection may speak HTTP/2 (the server marks such
// a connection with app data), else HTTP/1.1 when offered; otherwise no answer (RFC 7301 allows
// it), and the client decides whether to go on.
int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* out_len,
                const unsigned char* in, unsigned int in_len, void*) {
  static const unsigned char kH2AndHttp11[] = {2,   'h', '2', 8,   'h', 't',
                                               't', 'p', '/', '1', '.', '1'};
  const bool h2 = SSL_get_app_data(ssl) != nullptr;
  const unsigned char* server = h2 ? kH2AndHttp11 : kH2AndHttp11 + 3;
  const unsigned int server_len = h2 ? sizeof(kH2AndHttp11) : sizeof(kH2AndHttp11) - 3;
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_len, server, server_len, in, in_len) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

std::string subject_of(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
    return "";
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::chrono::system_clock::time_point not_after_of(X509* cert) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string fingerprint_of(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert, EVP_sha256(), md, &n) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (unsigned int i = 0; i < n; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

Error invalid(const std::string& file, const std::string& what) {
  return Error{ErrorCode::kInvalidArgument,
               file + ": " + what + " (OpenSSL: " + openssl_errors() + ")"};
}

}  // namespace

Result<std::shared_ptr<const TlsContext>> TlsContext::load(const TlsFiles& files) {
  if (files.cert_file.empty() || files.key_file.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "TLS needs both a certificate file and a key file");
  }
  auto cert_pem = read_text_file(files.cert_file);
  if (!cert_pem) return std::unexpected(cert_pem.error());
  auto key_pem = read_text_file(files.key_file);
  if (!key_pem) return std::unexpected(key_pem.error());
  return load_pem(files, *cert_pem, *key_pem);
}

Result<std::shared_ptr<const TlsContext>> TlsContext::load_pem(const TlsFiles& files,
                                                               const std::string& cert_pem,
                                                               const std::string& key_pem) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> tls(new TlsContext());
  tls->files_ = files;
  tls->ctx_ = SSL_CTX_new(TLS_server_method());
  if (!tls->ctx_) {
    return make_error(ErrorCode::kInternal, "cannot make a TLS context: " + openssl_errors());
  }
  SSL_CTX* ctx = tls->ctx_;

  // The chain: the leaf first, then whatever intermediates follow it.
  BioPtr bio = memory_bio(cert_pem);
  X509Ptr leaf(PEM_read_bio_X509_AUX(bio.get(), nullptr, no_passphrase, nullptr));
  if (!leaf) return std::unexpected(invalid(files.cert_file, "no PEM certificate"));
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return std::unexpected(invalid(files.cert_file, "the certificate cannot be used"));
  }
  while (X509Ptr next{PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)}) {
    if (SSL_CTX_add0_chain_cert(ctx, next.get()) != 1) {
      return std::unexpected(
          invalid(files.cert_file, "an intermediate certificate cannot be used"));
    }
    next.release();  // the context owns it now
  }
  // The loop ends on "no more PEM": expected, not an error.
  if (const unsigned long e = ERR_peek_last_error();
      ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
    ERR_clear_error();
  } else if (e != 0) {
    return std::unexpected(invalid(files.cert_file, "an intermediate certificate is malformed"));
  }

  BioPtr key_bio = memory_bio(key_pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    return std::unexpected(invalid(
        files.key_file, "no PEM private key (an encrypted key is not read: decrypt it first)"));
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return std::unexpected(
        invalid(files.key_file, "the key is not the private key of " + files.cert_file));
  }

  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // TLS 1.2: forward secrecy and AEAD only (TLS 1.3's suites are all so already).
  if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return make_error(ErrorCode::kInternal, "cannot set the TLS 1.2 ciphers: " + openssl_errors());
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Writes may stop part-way on a full socket and resume from wherever the buffer then is;
  // idle connections give their record buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // One recv() takes what the socket holds, not a record's header and then its body.
  SSL_CTX_set_read_ahead(ctx, 1);
  static constexpr unsigned char kSessionContext[] = "prescale";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);

  tls->subject_ = subject_of(leaf.get());
  tls->not_after_ = not_after_of(leaf.get());
  tls->fingerprint_ = fingerprint_of(leaf.get());
  ERR_clear_error();
  return std::shared_ptr<const TlsContext>(std::move(tls));
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Result<std::shared_ptr<const ClientTlsContext>> ClientTlsContext::create(
    const std::string& ca_file) {
  ERR_clear_error();
  std::shared_ptr<ClientTlsContext> out(new ClientTlsContext());
  out->ca_file_ = ca_file;
  out->ctx_ = SSL_CTX_new(TLS_client_method());
  if (out->ctx_ == nullptr) {
    return make_error(ErrorCode::kInternal, "TLS: cannot make a context: " + openssl_errors());
  }
  SSL_CTX* ctx = out->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kHttp11, sizeof(kHttp11));
  if (ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return make_error(ErrorCode::kInternal,
                        "TLS: the system's CAs cannot be read: " + openssl_errors());
    }
    return std::shared_ptr<const ClientTlsContext>(std::move(out));
  }
  auto pem = read_text_file(ca_file);  // its error names the file
  if (!pem) return make_error(ErrorCode::kNotFound, pem.error().message);
  BioPtr bio = memory_bio(*pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)}) {
    if (X509_STORE_add_cert(store, cert.get()) == 1) ++added;
  }
  // The loop ends on "no more PEM"; anything else is a certificate it could not read, and the
  // ones after it would be left out unsaid.
  if (const unsigned long e = ERR_peek_last_error();
      added > 0 && e != 0 &&
      !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
    ERR_clear_error();
    return make_error(ErrorCode::kInvalidArgument,
                      ca_file + ": certificate " + std::to_string(added + 1) + " is malformed");
  }
  ERR_clear_error();
  if (added == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      ca_file + ": no PEM certificate (-----BEGIN CERTIFICATE-----) in it");
  }
  return std::shared_ptr<const ClientTlsContext>(std::move(out));
}

ClientTlsContext::~ClientTlsContext() { SSL_CTX_free(ctx_); }

std::string client_tls_error(ssl_st* ssl) {
  if (ssl == nullptr) return openssl_errors();
  if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
    ERR_clear_error();
    return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  }
  return openssl_errors();
}

}  // namespace prescale::http
