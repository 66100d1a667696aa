// What `prescale gateway` and `prescale up` serve with, and how they stop it: the gateway's
// listener, a listener beside it (the admin endpoints of `prescale gateway`, the dashboard of
// `prescale up`), and the gateway whose upkeep runs beside both.
//
// Thread safety: the command's controlling thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/result.h"
#include "gateway/gateway.h"
#include "http/server.h"
#include "telemetry/registry.h"

namespace prescale {

class GatewayTls;

// I/O threads of the gateway's plain listener for the services' own calls, beside its TLS one of
// `threads` (0: one per core): half as many, at least one.
int inside_threads(int threads);

// The options of the gateway's listener: `host`:`port`, `threads` I/O threads (0: one per core),
// the limits of `http`, and with `tls` HTTPS with its certificate and its handshake counter.
// The requests it refuses itself are counted in `registry` (runtime::count_rejections).
http::ServerOptions gateway_server_options(const HttpConfig& http, const std::string& host,
                                           std::uint16_t port, int threads, const GatewayTls* tls,
                                           telemetry::Registry& registry);

// Starts the gateway's plain listener for the services' own calls, beside its TLS one of
// `options`: on `address`:`port` (0: a free one), with inside_threads() of its I/O threads and
// its limits. Errors: those of http::Server::start().
Result<std::unique_ptr<http::Server>> start_inside_listener(const http::ServerOptions& options,
                                                            const std::string& address,
                                                            std::uint16_t port,
                                                            http::Handler handler);

struct GatewayListeners {
  gateway::Gateway& gateway;
  http::Server& listener;          // the gateway's
  http::Server* inside = nullptr;  // with TLS, the gateway's plain listener for calls from
                                   // inside (the services' own); null: none
  http::Server* beside = nullptr;  // null: none (the admin endpoints turned off, not yet started)

  // Stops serving: the gateway's listener once the requests in flight are done or `grace` is
  // over, then its inside listener (the services' calls those requests made go on meanwhile)
  // in what is left of `grace`, then the one beside them at once, then the gateway's upkeep
  // (where it was started).
  void stop(std::chrono::milliseconds grace) const;
};

}  // namespace prescale
