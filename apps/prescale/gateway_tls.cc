#include "gateway_tls.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "command_util.h"
#include "core/clock.h"
#include "core/sha256.h"
#include "http/server.h"

namespace prescale {
namespace {

constexpr auto kExpiryWarning = std::chrono::days(14);

// "CN=shop.example.com, expires 2027-03-01 (in 88 days)", and a warning when that is soon.
void describe(const http::TlsContext& tls, std::string_view what) {
  const auto now = Clock::real().wall_now();
  const auto left = tls.not_after() - now;
  const auto days = std::chrono::duration_cast<std::chrono::days>(left).count();
  const std::chrono::year_month_day date(std::chrono::floor<std::chrono::days>(tls.not_after()));
  const std::string when =
      fmt::format("{:04}-{:02}-{:02}", static_cast<int>(date.year()),
                  static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  if (left <= decltype(left)::zero()) {
    spdlog::warn("{} {} ({}) expired on {}: clients will refuse it", what, tls.subject(),
                 tls.files().cert_file, when);
  } else if (left < kExpiryWarning) {
    spdlog::warn(
        "{} {} ({}) expires on {}, in {} days: renew it (the gateway reads a renewed one "
        "by itself)",
        what, tls.subject(), tls.files().cert_file, when, days);
  } else {
    spdlog::info("{} {} ({}), expires on {} (in {} days)", what, tls.subject(),
                 tls.files().cert_file, when, days);
  }
}

}  // namespace

std::optional<http::TlsFiles> gateway_tls_files(const GatewayTlsConfig& tls,
                                                const std::filesystem::path& config_dir) {
  if (!tls.enabled()) return std::nullopt;
  auto resolve = [&](const std::string& file) {
    const std::filesystem::path p(file);
    return (p.is_absolute() ? p : config_dir / p).lexically_normal().string();
  };
  return http::TlsFiles{resolve(tls.cert_file), resolve(tls.key_file)};
}

Result<std::unique_ptr<GatewayTls>> GatewayTls::load(const http::TlsFiles& files,
                                                     telemetry::Registry& registry) {
  std::unique_ptr<GatewayTls> tls(new GatewayTls());
  tls->files_ = files;
  auto pem = tls->read_files();
  auto context = pem ? http::TlsContext::load_pem(files, pem->cert, pem->key)
                     : http::TlsContext::load(files);  // says which file cannot be read
  if (!context) return std::unexpected(context.error());
  tls->in_use_digest_ = tls->tried_digest_ = tls->seen_digest_ = pem ? pem->digest : "";
  tls->handshake_errors_ = &registry
                                .counter("prescale_gateway_tls_handshake_errors_total",
                                         "TLS handshakes that failed: not TLS, nothing in "
                                         "common, or the client refused the certificate")
                                .with();
  auto& reloads =
      registry.counter("prescale_gateway_tls_certificate_reloads_total",
                       "Certificates read again after their files changed, by result", {"result"});
  tls->reloads_ok_ = &reloads.with({"ok"});
  tls->reloads_failed_ = &reloads.with({"failed"});
  tls->expiry_ = &registry
                      .gauge("prescale_gateway_tls_certificate_expiry_timestamp_seconds",
                             "When the certificate the gateway serves expires, Unix seconds")
                      .with();
  tls->use(std::move(*context));
  describe(*tls->context_, "serving the certificate of");
  return tls;
}

std::function<void()> GatewayTls::handshake_failed() const {
  return [counter = handshake_errors_] { counter->inc(); };
}

std::optional<GatewayTls::Pem> GatewayTls::read_files() const {
  auto cert = read_whole_file(files_.cert_file);
  auto key = read_whole_file(files_.key_file);
  if (!cert || !key) return std::nullopt;
  Pem pem{std::move(*cert), std::move(*key), ""};
  pem.digest = sha256_hex(sha256_hex(pem.cert) + sha256_hex(pem.key));
  return pem;
}

void GatewayTls::use(std::shared_ptr<const http::TlsContext> context) {
  context_ = std::move(context);
  expiry_->set(std::chrono::duration<double>(context_->not_after().time_since_epoch()).count());
}

void GatewayTls::refresh(http::Server& server, std::string_view why, bool force) {
  std::optional<Pem> pem = read_files();
  const std::string digest = pem ? pem->digest : std::string("unreadable");
  const bool settled = digest == seen_digest_;
  seen_digest_ = digest;
  if (digest == in_use_digest_) {  // what is served (again, after a moment unreadable)
    tried_digest_ = digest;
    return;
  }
  // A renewal writes two files, or one in several writes: what is loaded is the same bytes two
  // looks a second apart read, so a half-written pair is not tried; one that fails (a key not
  // the certificate's) is not tried again until a file changes (or SIGHUP), the pair in use
  // served meanwhile.
  if (!force && (digest == tried_digest_ || !settled)) return;
  tried_digest_ = digest;
  if (!pem) {
    // Only for its message: what it might read now has not been looked at twice.
    auto unreadable = http::TlsContext::load(files_);
    reloads_failed_->inc();
    spdlog::error(
        "TLS ({}): keeping the certificate in use: {}", why,
        unreadable ? std::string("a file could not be read") : unreadable.error().message);
    return;
  }
  auto context = http::TlsContext::load_pem(files_, pem->cert, pem->key);
  if (!context) {
    reloads_failed_->inc();
    spdlog::error("TLS ({}): keeping the certificate in use: {}", why, context.error().message);
    return;
  }
  if (auto r = server.replace_tls(*context); !r) {
    reloads_failed_->inc();
    spdlog::error("TLS ({}): {}", why, r.error().message);
    return;
  }
  use(std::move(*context));
  in_use_digest_ = digest;
  reloads_ok_->inc();
  describe(*context_, fmt::format("TLS ({}): now serving the certificate of", why));
}

void GatewayTls::change_files(const http::TlsFiles& files, http::Server& server) {
  if (files == files_) return;
  files_ = files;
  seen_digest_.clear();
  refresh(server, "gateway.tls changed", /*force=*/true);
}

}  // namespace prescale
