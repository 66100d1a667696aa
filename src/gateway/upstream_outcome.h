// UpstreamOutcome: what happened to one attempt at an upstream host, in the terms the
// resilience primitives (balancer, circuit breaker, outlier detector, retries) classify it.
// docs/gateway-resilience.md.
//
// Thread safety: a plain value type.
#pragma once

namespace prescale::gateway {

// Locally originated failures: no HTTP response came back from the host.
enum class UpstreamError {
  kNone,            // a response arrived; see UpstreamOutcome::status
  kConnectFailure,  // the connection could not be made: the request was never sent
  kReset,           // the connection broke after the request was (maybe) sent
  kTimeout,         // no response within the per-try timeout
};

struct UpstreamOutcome {
  int status = 0;  // the HTTP status when a response arrived; 0 when `error` is set
  UpstreamError error = UpstreamError::kNone;

  static constexpr UpstreamOutcome response(int http_status) { return {http_status}; }
  static constexpr UpstreamOutcome failure(UpstreamError e) { return {0, e}; }

  constexpr bool is_local_error() const { return error != UpstreamError::kNone; }
  // A 5xx response or a local error (Envoy maps local errors to 5xx unless told not to).
  constexpr bool is_5xx() const { return is_local_error() || (status >= 500 && status <= 599); }
  // 502, 503, 504 or a local error: the host, not the application, failed.
  constexpr bool is_gateway_error() const {
    return is_local_error() || status == 502 || status == 503 || status == 504;
  }
  // Whether the outcome counts against the host (breaker failure, outlier success rate).
  constexpr bool is_failure() const { return is_5xx(); }
};

}  // namespace prescale::gateway
