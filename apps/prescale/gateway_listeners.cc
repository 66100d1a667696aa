#include "gateway_listeners.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "core/clock.h"
#include "gateway_tls.h"
#include "runtime/runtime.h"

namespace prescale {

int inside_threads(int threads) {
  const int all = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, all / 2);
}

http::ServerOptions gateway_server_options(const HttpConfig& http, const std::string& host,
                                           std::uint16_t port, int threads, const GatewayTls* tls,
                                           telemetry::Registry& registry) {
  http::ServerOptions options;
  options.address = host;
  options.port = port;
  options.threads = threads;
  options.max_header_bytes = static_cast<size_t>(http.max_header_bytes);
  options.max_body_bytes = static_cast<size_t>(http.max_body_bytes);
  options.read_timeout = http.read_timeout;
  options.idle_timeout = http.idle_timeout;
  options.max_connections = static_cast<size_t>(http.max_connections);
  options.http2 = http.http2;
  options.on_rejected = runtime::count_rejections(registry, "gateway");
  if (tls != nullptr) {
    options.tls = tls->context();
    options.on_tls_handshake_failed = tls->handshake_failed();
  }
  return options;
}

Result<std::unique_ptr<http::Server>> start_inside_listener(const http::ServerOptions& options,
                                                            const std::string& address,
                                                            std::uint16_t port,
                                                            http::Handler handler) {
  http::ServerOptions inside = options;
  inside.address = address;
  inside.port = port;
  inside.threads = inside_threads(options.threads);
  inside.tls = nullptr;
  inside.on_tls_handshake_failed = nullptr;
  auto server = std::make_unique<http::Server>(inside, std::move(handler));
  if (auto started = server->start(); !started) return std::unexpected(started.error());
  return server;
}

void GatewayListeners::stop(std::chrono::milliseconds grace) const {
  // The public listener first: its requests in flight may call other services through the inside
  // one, which serves on meanwhile and then drains in what is left of the one grace period.
  const Clock::TimePoint start = Clock::real().now();
  listener.shutdown(grace);
  if (inside != nullptr) {
    const auto spent =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::real().now() - start);
    inside->shutdown(std::max(std::chrono::milliseconds(0), grace - spent));
  }
  if (beside != nullptr) beside->shutdown(std::chrono::milliseconds(0));
  gateway.stop_upkeep();
}

}  // namespace prescale
