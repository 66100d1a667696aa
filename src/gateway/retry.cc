#include "gateway/retry.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

namespace prescale::gateway {

Result<void> validate(const RetryPolicy& p) {
  if (p.backoff.base_interval <= Clock::Duration::zero()) {
    return make_error(ErrorCode::kInvalidArgument, "retry.backoff.base_interval must be positive");
  }
  if (p.backoff.max_interval < p.backoff.base_interval) {
    return make_error(ErrorCode::kInvalidArgument,
                      "retry.backoff.max_interval must be at least base_interval");
  }
  for (int code : p.retriable_status_codes) {
    if (code < 100 || code > 599) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "retry.retriable_status_codes: " + std::to_string(code) + " is not an HTTP status");
    }
  }
  return {};
}

bool is_retryable(const RetryPolicy& policy, const UpstreamOutcome& outcome) {
  const RetryOn& on = policy.retry_on;
  if (on.server_error && outcome.is_5xx()) return true;
  if (on.gateway_error && outcome.is_gateway_error()) return true;
  switch (outcome.error) {
    case UpstreamError::kConnectFailure:
      return on.connect_failure || on.reset;  // Envoy's "reset" also covers failed connects
    case UpstreamError::kReset:
    case UpstreamError::kTimeout:
      return on.reset;
    case UpstreamError::kNone:
      break;
  }
  return on.retriable_status_codes &&
         std::find(policy.retriable_status_codes.begin(), policy.retriable_status_codes.end(),
                   outcome.status) != policy.retriable_status_codes.end();
}

bool is_idempotent_method(std::string_view method) {
  static constexpr std::array<std::string_view, 6> kIdempotent = {"GET",   "HEAD", "OPTIONS",
                                                                  "TRACE", "PUT",  "DELETE"};
  return std::find(kIdempotent.begin(), kIdempotent.end(), method) != kIdempotent.end();
}

bool should_retry(const RetryPolicy& policy, std::string_view method,
                  const UpstreamOutcome& outcome, std::uint32_t retries_done) {
  if (retries_done >= policy.num_retries) return false;
  if (!is_retryable(policy, outcome)) return false;
  // A failed connect never sent the request, so resending it is safe whatever the method.
  return !policy.idempotent_methods_only || is_idempotent_method(method) ||
         outcome.error == UpstreamError::kConnectFailure;
}

Clock::Duration backoff_delay(const BackoffConfig& config, std::uint32_t retry,
                              std::uint64_t random) {
  const Clock::Duration::rep base = std::max<Clock::Duration::rep>(config.base_interval.count(), 0);
  const Clock::Duration::rep cap = std::max<Clock::Duration::rep>(config.max_interval.count(), 0);
  if (retry == 0 || base == 0 || cap == 0) return Clock::Duration::zero();
  // (2^retry − 1) × base, saturating at the cap (no overflow for any retry count).
  Clock::Duration::rep upper = cap;
  if (retry < 62) {
    const Clock::Duration::rep factor = (Clock::Duration::rep{1} << retry) - 1;
    if (factor <= cap / base) upper = std::min(cap, factor * base);
  }
  return Clock::Duration(
      static_cast<Clock::Duration::rep>(random % (static_cast<std::uint64_t>(upper) + 1)));
}

Result<void> validate(const RetryBudgetConfig& c) {
  if (!(c.budget_percent >= 0 && c.budget_percent <= 100)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "retry_budget.budget_percent must be in [0, 100]");
  }
  return {};
}

std::uint32_t retry_budget_limit(const RetryBudgetConfig& config, std::uint32_t active_requests,
                                 std::uint32_t pending_requests) {
  const double outstanding =
      static_cast<double>(active_requests) + static_cast<double>(pending_requests);
  // Envoy truncates: max<uint64_t>(budget_percent / 100 × (active + pending), min_concurrency).
  const double budget = std::floor(config.budget_percent / 100.0 * outstanding);
  return std::max(static_cast<std::uint32_t>(std::min(budget, 4294967295.0)),
                  config.min_retry_concurrency);
}

RetryBudget::RetryBudget(RetryBudgetConfig config) : config_(config) {}

std::optional<ResourceGuard> RetryBudget::try_start_retry(std::uint32_t active_requests,
                                                          std::uint32_t pending_requests) {
  std::optional<ResourceGuard> guard = ResourceGuard::try_acquire(
      in_flight_, retry_budget_limit(config_, active_requests, pending_requests));
  if (!guard) overflows_.fetch_add(1, std::memory_order_relaxed);
  return guard;
}

}  // namespace prescale::gateway
