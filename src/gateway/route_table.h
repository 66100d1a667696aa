// RouteTable: which upstream service, timeouts, retry policy and rate limit a request gets.
//
// Built once from the `gateway.routes` of a loaded Config. A request is matched on its host
// (exact, or "*.example.com" for any subdomain; port and a trailing dot ignored; case-insensitive),
// its path (a character prefix, or a whole-path pattern with `{param}` segments and a trailing
// `{rest...}`, as in http::Router) and its headers (exact value, or present with any value).
// When several routes match, the first in this order wins:
//   1. the most specific host: exact, then the longest wildcard, then routes for any host;
//   2. routes with more header conditions (so `x-canary: 1` reaches the canary);
//   3. the most specific path: the longest literal beginning (a prefix, or a pattern up to its
//      first `{`); on a tie a pattern before a prefix, then the pattern with more literal
//      characters, then one without a catch-all;
//   4. the order of the config file.
// docs/config.md (gateway.routes) describes the same rules for users.
//
// Thread safety: immutable after build(); match() is const, allocation-free and safe on any
// number of threads. Returned Routes live as long as the table (a move keeps them in place).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"
#include "gateway/rate_limiter.h"
#include "gateway/retry.h"
#include "http/message.h"

namespace prescale::gateway {

// `path` without its dot segments (RFC 3986 section 5.2.4; "%2e" counts as "."), as the
// upstream will read it: "/public/../admin" is "/admin", "/a/./b" "/a/b", "/.." "/". Routing
// the path as received would let "/public/../admin" past the rules of "/admin". nullopt when
// there is nothing to remove (the common case; no allocation).
std::optional<std::string> without_dot_segments(std::string_view path);

// `path` as the gateway routes and forwards it: its percent-encoding in normal form (RFC 3986
// section 6.2.2: "%2D" is "-", "%2f" is "%2F" and stays an escape), then without its dot
// segments. Routing "/%61dmin" as received would let it past the rules of "/admin". nullopt
// when there is nothing to change (the common case; no allocation).
std::optional<std::string> normalized_path(std::string_view path);

// A route's rate limit: one token bucket per client, kept by a KeyedRateLimiter.
struct RouteRateLimit {
  enum class Key { kClientIp, kHeader };

  TokenBucketConfig bucket;  // rate_per_second and burst, from the route's rate_limit
  Key key = Key::kClientIp;
  std::string header;  // lower case; for Key::kHeader

  // The value of the key header, or "" when the key is the client IP or the header is missing:
  // the limiter's key is client_key(api_key(request), request.remote_address).
  std::string_view api_key(const http::Request& request) const;
};

struct Route {
  std::size_t index = 0;  // position in gateway.routes
  std::string service;
  std::string host;       // lower case; "" = any, "*.example.com" = wildcard
  std::string path_rule;  // the path prefix or pattern as written, for logs and metric labels
  std::chrono::milliseconds timeout{0};          // the whole request, retries included
  std::chrono::milliseconds per_try_timeout{0};  // per attempt; 0 = only `timeout`
  std::chrono::milliseconds websocket_idle_timeout{300000};
  RetryPolicy retry;  // `retryable: true` in the config = !idempotent_methods_only
  std::optional<RouteRateLimit> rate_limit;
};

class RouteTable {
 public:
  // Compiles `config.routes`. Fails (kInvalidArgument) on a route the config loader would
  // have rejected: a malformed path pattern or host.
  static Result<RouteTable> build(const GatewayConfig& config);

  RouteTable(RouteTable&&) noexcept;
  RouteTable& operator=(RouteTable&&) noexcept;
  ~RouteTable();

  // `host` as the client sent it (Host header, port optional), `path` without the query.
  // nullptr when no route matches (answer 404).
  const Route* match(std::string_view host, std::string_view path,
                     const http::Headers& headers) const;
  // Same, with the host taken from the request's Host header.
  const Route* match(const http::Request& request) const;

  // Every route, in config order.
  std::span<const Route> routes() const;

 private:
  struct Impl;
  explicit RouteTable(std::unique_ptr<const Impl> impl);

  std::unique_ptr<const Impl> impl_;
};

}  // namespace prescale::gateway
