// The gateway's certificate (gateway.tls, or --tls-cert/--tls-key): loaded before the gateway
// listens, and read again whenever its files change, so that a renewed certificate (certbot,
// cert-manager, a mounted Secret) is served without a restart. Connections already open keep the
// certificate they began with. Metrics (docs/gateway.md): handshakes that failed, reloads by
// result, and when the certificate in use expires.
//
// Thread safety: the command's controlling thread only, except the handshake counter, which the
// server's I/O threads call.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/result.h"
#include "http/tls.h"
#include "telemetry/registry.h"

namespace prescale {

namespace http {
class Server;
}

// The files gateway.tls names, relative paths taken from `config_dir`; nullopt when it names
// none.
std::optional<http::TlsFiles> gateway_tls_files(const GatewayTlsConfig& tls,
                                                const std::filesystem::path& config_dir);

class GatewayTls {
 public:
  // Loads the certificate and its key; the error names the files and what is wrong. Registers
  // the metrics in `registry` and warns when the certificate has expired or expires within 14
  // days.
  static Result<std::unique_ptr<GatewayTls>> load(const http::TlsFiles& files,
                                                  telemetry::Registry& registry);

  // What the server takes: ServerOptions::tls and ::on_tls_handshake_failed.
  std::shared_ptr<const http::TlsContext> context() const { return context_; }
  std::function<void()> handshake_failed() const;

  // Reads the files again, and when their content changed since the last load and read the same
  // at the call before (a renewal written in several steps is taken once it is whole), or at
  // once when `force`, hands a good certificate to `server`; a bad one is logged and counted,
  // and the one in use stays. `why` says what asked ("file changed", "SIGHUP"). Called every
  // second.
  void refresh(http::Server& server, std::string_view why, bool force = false);
  // A configuration reload named other files: loads those.
  void change_files(const http::TlsFiles& files, http::Server& server);

 private:
  GatewayTls() = default;
  struct Pem {
    std::string cert;
    std::string key;
    std::string digest;  // SHA-256 of both, to tell a change without keeping the key twice
  };
  // The files' bytes; nullopt when one cannot be read.
  std::optional<Pem> read_files() const;
  void use(std::shared_ptr<const http::TlsContext> context);

  http::TlsFiles files_;
  std::string in_use_digest_;  // of the bytes served
  std::string tried_digest_;   // of the bytes last tried (served, or refused)
  std::string seen_digest_;    // of the bytes the look before read
  std::shared_ptr<const http::TlsContext> context_;
  telemetry::Counter* handshake_errors_ = nullptr;
  telemetry::Counter* reloads_ok_ = nullptr;
  telemetry::Counter* reloads_failed_ = nullptr;
  telemetry::Gauge* expiry_ = nullptr;
};

}  // namespace prescale
