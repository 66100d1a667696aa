#include "gateway/retry.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;

const UpstreamOutcome kConnectFailure = UpstreamOutcome::failure(UpstreamError::kConnectFailure);
const UpstreamOutcome kReset = UpstreamOutcome::failure(UpstreamError::kReset);
const UpstreamOutcome kTimeout = UpstreamOutcome::failure(UpstreamError::kTimeout);

UpstreamOutcome status(int code) { return UpstreamOutcome::response(code); }

TEST(Retry, IdempotentMethodsAreRfc9110s) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    EXPECT_TRUE(is_idempotent_method(m)) << m;
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get", ""}) {
    EXPECT_FALSE(is_idempotent_method(m)) << m;
  }
}

TEST(Retry, DefaultPolicyRetriesGatewayErrorsResetsAndConnectFailures) {
  const RetryPolicy policy;
  EXPECT_EQ(policy.num_retries, 1u);
  for (const UpstreamOutcome& o :
       {kConnectFailure, kReset, kTimeout, status(502), status(503), status(504)}) {
    EXPECT_TRUE(is_retryable(policy, o)) << o.status;
  }
  for (int code : {200, 404, 409, 429, 500, 501}) {
    EXPECT_FALSE(is_retryable(policy, status(code))) << code;
  }
}

TEST(Retry, EachRetryOnConditionAlone) {
  auto only = [](auto set) {
    RetryPolicy p;
    p.retry_on = RetryOn{.server_error = false,
                         .gateway_error = false,
                         .reset = false,
                         .connect_failure = false,
                         .retriable_status_codes = false};
    set(p);
    return p;
  };
  const RetryPolicy server = only([](RetryPolicy& p) { p.retry_on.server_error = true; });
  EXPECT_TRUE(is_retryable(server, status(500)));
  EXPECT_TRUE(is_retryable(server, kReset));
  EXPECT_FALSE(is_retryable(server, status(429)));

  const RetryPolicy connect = only([](RetryPolicy& p) { p.retry_on.connect_failure = true; });
  EXPECT_TRUE(is_retryable(connect, kConnectFailure));
  EXPECT_FALSE(is_retryable(connect, kReset));
  EXPECT_FALSE(is_retryable(connect, status(503)));

  const RetryPolicy reset = only([](RetryPolicy& p) { p.retry_on.reset = true; });
  EXPECT_TRUE(is_retryable(reset, kReset));
  EXPECT_TRUE(is_retryable(reset, kTimeout));
  EXPECT_TRUE(is_retryable(reset, kConnectFailure));
  EXPECT_FALSE(is_retryable(reset, status(503)));

  RetryPolicy codes = only([](RetryPolicy& p) { p.retry_on.retriable_status_codes = true; });
  codes.retriable_status_codes = {409, 429};
  EXPECT_TRUE(is_retryable(codes, status(409)));
  EXPECT_TRUE(is_retryable(codes, status(429)));
  EXPECT_FALSE(is_retryable(codes, status(503)));
  codes.retry_on.retriable_status_codes = false;  // the list alone does nothing
  EXPECT_FALSE(is_retryable(codes, status(409)));
}

TEST(Retry, ShouldRetryCountsRetriesAndProtectsNonIdempotentRequests) {
  RetryPolicy policy;
  policy.num_retries = 2;
  EXPECT_TRUE(should_retry(policy, "GET", status(503), 0));
  EXPECT_TRUE(should_retry(policy, "GET", status(503), 1));
  EXPECT_FALSE(should_retry(policy, "GET", status(503), 2));
  EXPECT_FALSE(should_retry(policy, "GET", status(404), 0));
  // A POST may have reached the application: only a failed connect is safe to resend...
  EXPECT_FALSE(should_retry(policy, "POST", status(503), 0));
  EXPECT_FALSE(should_retry(policy, "POST", kReset, 0));
  EXPECT_TRUE(should_retry(policy, "POST", kConnectFailure, 0));
  // ...unless the route says its POSTs are safe to retry.
  policy.idempotent_methods_only = false;
  EXPECT_TRUE(should_retry(policy, "POST", status(503), 0));
  policy.num_retries = 0;
  EXPECT_FALSE(should_retry(policy, "GET", kConnectFailure, 0));
}

TEST(Backoff, FullJitterWithinEnvoysBoundsOverManyDraws) {
  const BackoffConfig config;  // 25 ms base, 250 ms cap
  std::mt19937_64 rng(2024);
  const std::vector<Clock::Duration> upper = {25ms, 75ms, 175ms, 250ms, 250ms, 250ms};
  for (std::uint32_t retry = 1; retry <= upper.size(); ++retry) {
    const Clock::Duration bound = upper[retry - 1];
    Clock::Duration lowest = bound, highest{0};
    double sum = 0;
    constexpr int kDraws = 100000;
    for (int i = 0; i < kDraws; ++i) {
      const Clock::Duration d = backoff_delay(config, retry, rng());
      ASSERT_GE(d, 0ns);
      ASSERT_LE(d, bound) << "retry " << retry;
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
      sum += static_cast<double>(d.count());
    }
    // Uniform over [0, bound]: the extremes are reached and the mean is half the bound.
    EXPECT_LT(lowest, bound / 100) << retry;
    EXPECT_GT(highest, bound * 99 / 100) << retry;
    EXPECT_NEAR(sum / kDraws / static_cast<double>(bound.count()), 0.5, 0.01) << retry;
  }
}

TEST(Backoff, EdgeCases) {
  const BackoffConfig config;
  EXPECT_EQ(backoff_delay(config, 0, 12345), 0ns);
  EXPECT_EQ(backoff_delay(config, 1, 0), 0ns);
  EXPECT_EQ(backoff_delay(config, 1, 25'000'000), 25ms);  // random % (bound + 1)
  for (std::uint32_t retry : {10u, 61u, 62u, 63u, 64u, 1000u, 4'000'000'000u}) {
    EXPECT_LE(backoff_delay(config, retry, ~std::uint64_t{0}), 250ms) << retry;
  }
  EXPECT_EQ(backoff_delay(BackoffConfig{.base_interval = 0ms}, 3, 99), 0ns);
}

TEST(RetryBudget, LimitIsTwentyPercentWithAFloorOfThree) {
  const RetryBudgetConfig config;
  EXPECT_EQ(retry_budget_limit(config, 0, 0), 3u);
  EXPECT_EQ(retry_budget_limit(config, 10, 4), 3u);  // 2.8 → floor 3
  EXPECT_EQ(retry_budget_limit(config, 15, 4), 3u);  // 3.8 truncates to 3
  EXPECT_EQ(retry_budget_limit(config, 16, 4), 4u);  // 4
  EXPECT_EQ(retry_budget_limit(config, 100, 0), 20u);
  EXPECT_EQ(retry_budget_limit(config, 60, 44), 20u);  // 20.8 truncates
  EXPECT_EQ(retry_budget_limit(config, 1000, 24), 204u);
  EXPECT_EQ(retry_budget_limit({.budget_percent = 0, .min_retry_concurrency = 1}, 500, 0), 1u);
}

TEST(RetryBudget, CountsRetriesInFlight) {
  RetryBudget budget;
  std::vector<ResourceGuard> retries;
  for (int i = 0; i < 3; ++i) {
    auto g = budget.try_start_retry(10, 0);
    ASSERT_TRUE(g);
    retries.push_back(std::move(*g));
  }
  EXPECT_EQ(budget.retries_in_flight(), 3u);
  EXPECT_FALSE(budget.try_start_retry(10, 0));  // floor reached
  EXPECT_EQ(budget.overflows(), 1u);
  EXPECT_TRUE(budget.try_start_retry(20, 0));  // 20 % of 20 = 4 allows one more
  retries.pop_back();
  EXPECT_EQ(budget.retries_in_flight(), 2u);
  EXPECT_TRUE(budget.try_start_retry(10, 0));
}

TEST(RetryBudget, ConcurrentRetriesStayWithinTheBudget) {
  RetryBudget budget;
  std::atomic<std::uint32_t> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (auto g = budget.try_start_retry(50, 0)) {  // limit 10
          std::uint32_t seen = peak.load();
          const std::uint32_t now_in_flight = budget.retries_in_flight();
          while (now_in_flight > seen && !peak.compare_exchange_weak(seen, now_in_flight)) {
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(peak.load(), 10u);
  EXPECT_EQ(budget.retries_in_flight(), 0u);
}

TEST(Retry, ValidateRejectsNonsense) {
  EXPECT_TRUE(validate(RetryPolicy{}).has_value());
  RetryPolicy p;
  p.retriable_status_codes = {700};
  EXPECT_FALSE(validate(p).has_value());
  p = {};
  p.backoff.max_interval = 10ms;
  EXPECT_FALSE(validate(p).has_value());
  EXPECT_FALSE(validate(RetryBudgetConfig{.budget_percent = 120}).has_value());
  EXPECT_TRUE(validate(RetryBudgetConfig{}).has_value());
}

}  // namespace
}  // namespace prescale::gateway
