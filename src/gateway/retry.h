// Retries (docs/gateway-resilience.md): which outcomes may be retried, how long to wait before
// each retry (Envoy's fully jittered exponential back-off), and whether the cluster can afford
// another retry now (Envoy's retry budget).
//
// Thread safety: the free functions are pure. RetryBudget is lock-free and may be shared by all
// threads that send to one cluster.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "gateway/circuit_breaker.h"
#include "gateway/upstream_outcome.h"

namespace prescale::gateway {

// Envoy's retry_on conditions.
struct RetryOn {
  bool server_error = false;           // "5xx": any 5xx response or local error
  bool gateway_error = true;           // "gateway-error": 502, 503, 504 or a local error
  bool reset = true;                   // "reset": reset, or no response before the per-try timeout
  bool connect_failure = true;         // "connect-failure"
  bool retriable_status_codes = true;  // "retriable-status-codes": RetryPolicy's list
};

struct BackoffConfig {
  Clock::Duration base_interval{std::chrono::milliseconds(25)};
  Clock::Duration max_interval{std::chrono::milliseconds(250)};  // Envoy: 10 × base_interval
};

struct RetryPolicy {
  std::uint32_t num_retries = 1;  // retries after the first attempt
  RetryOn retry_on;
  std::vector<int> retriable_status_codes;  // e.g. {409} with retry_on.retriable_status_codes
  // Retry a method that is not idempotent only when the request was never sent (connect
  // failure). Envoy has no such check; the gateway adds it to stay safe by default.
  bool idempotent_methods_only = true;
  BackoffConfig backoff;
};

Result<void> validate(const RetryPolicy& policy);

// Whether `outcome` matches one of the policy's retry_on conditions.
bool is_retryable(const RetryPolicy& policy, const UpstreamOutcome& outcome);
// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2); case-sensitive, as methods are.
bool is_idempotent_method(std::string_view method);
// Retries left, a retryable outcome and a method safe to resend. `retries_done`: retries already
// made for this request (0 after the first attempt). The budget is asked separately.
bool should_retry(const RetryPolicy& policy, std::string_view method,
                  const UpstreamOutcome& outcome, std::uint32_t retries_done);

// The wait before retry number `retry` (1 = the first retry): uniform in
// [0, min((2^retry − 1) × base_interval, max_interval)]. `random` is a uniform 64-bit draw from
// the caller's generator.
Clock::Duration backoff_delay(const BackoffConfig& config, std::uint32_t retry,
                              std::uint64_t random);

// Envoy's circuit_breakers.thresholds.retry_budget.
struct RetryBudgetConfig {
  double budget_percent = 20;               // of active + pending requests
  std::uint32_t min_retry_concurrency = 3;  // retries always allowed in flight
};

Result<void> validate(const RetryBudgetConfig& config);

// Retries allowed in flight: max(floor(budget_percent % × (active + pending)), min concurrency).
std::uint32_t retry_budget_limit(const RetryBudgetConfig& config, std::uint32_t active_requests,
                                 std::uint32_t pending_requests);

// Counts retries in flight against the budget. Pass the cluster's current active and pending
// request counts (UpstreamLimits::in_use). Replaces UpstreamLimits' max_retries when configured.
class RetryBudget {
 public:
  explicit RetryBudget(RetryBudgetConfig config = {});

  // A retry slot (released when the guard is destroyed), or nullopt: the budget is spent.
  std::optional<ResourceGuard> try_start_retry(std::uint32_t active_requests,
                                               std::uint32_t pending_requests);
  std::uint32_t retries_in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  std::uint64_t overflows() const { return overflows_.load(std::memory_order_relaxed); }

 private:
  const RetryBudgetConfig config_;
  std::atomic<std::uint32_t> in_flight_{0};
  std::atomic<std::uint64_t> overflows_{0};
};

}  // namespace prescale::gateway
