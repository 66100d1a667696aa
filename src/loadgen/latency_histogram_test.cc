#include "loadgen/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace prescale::loadgen {
namespace {

using std::chrono::nanoseconds;

// The exact value of rank ceil(q * n) in sorted order, as value_at_quantile defines it.
int64_t exact_quantile(const std::vector<int64_t>& sorted, double q) {
  const auto n = static_cast<double>(sorted.size());
  const auto rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * n)));
  return sorted[rank - 1];
}

void expect_within(int64_t got, int64_t want, double rel, const char* what, double q) {
  EXPECT_LE(std::abs(static_cast<double>(got - want)), rel * static_cast<double>(want) + 1)
      << what << " q=" << q << " got " << got << " want " << want;
}

TEST(LatencyHistogramTest, QuantilesMatchSortedDataWithinOnePercent) {
  std::mt19937_64 rng(42);
  // Log-normal latencies around 5 ms with a heavy tail, plus some sub-microsecond values.
  std::lognormal_distribution<double> lognormal(std::log(5e6), 1.2);
  std::vector<int64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 200000; ++i) {
    const auto v = i % 1000 == 0 ? static_cast<int64_t>(i % 700)
                                 : static_cast<int64_t>(std::min(lognormal(rng), 9e10));
    values.push_back(v);
    h.record(nanoseconds(v));
  }
  std::sort(values.begin(), values.end());
  ASSERT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min().count(), values.front());
  EXPECT_EQ(h.max().count(), values.back());
  double sum = 0;
  for (int64_t v : values) sum += static_cast<double>(v);
  EXPECT_NEAR(static_cast<double>(h.mean().count()), sum / static_cast<double>(values.size()), 1.0);
  for (double q : {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0}) {
    expect_within(h.value_at_quantile(q).count(), exact_quantile(values, q), 0.01, "lognormal", q);
  }
}

TEST(LatencyHistogramTest, UniformDataAcrossTheRange) {
  std::mt19937_64 rng(7);
  // Uniform in log space from 1 µs to 100 s.
  std::uniform_real_distribution<double> exponent(3, 11);
  std::vector<int64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 50000; ++i) {
    const auto v = static_cast<int64_t>(std::pow(10.0, exponent(rng)));
    values.push_back(v);
    h.record(nanoseconds(v));
  }
  std::sort(values.begin(), values.end());
  for (double q = 0.0; q <= 1.0; q += 0.01) {
    expect_within(h.value_at_quantile(q).count(), exact_quantile(values, q), 0.005, "log-uniform",
                  q);
  }
}

// q * n in floating point can land just above the exact integer rank (0.55 * 100 is
// 55.000000000000007), which must not push the answer to the next value.
TEST(LatencyHistogramTest, RankIsExactWhenQTimesCountIsAnInteger) {
  LatencyHistogram h;
  for (int64_t v = 1; v <= 100; ++v) h.record(nanoseconds(v));  // one exact bucket each
  EXPECT_EQ(h.value_at_quantile(0.55).count(), 55);
  EXPECT_EQ(h.value_at_quantile(0.07).count(), 7);
  EXPECT_EQ(h.value_at_quantile(0.5).count(), 50);
  EXPECT_EQ(h.value_at_quantile(0.551).count(), 56);
}

TEST(LatencyHistogramTest, EmptyAndClamped) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.value_at_quantile(0.5).count(), 0);
  EXPECT_EQ(h.min().count(), 0);
  EXPECT_EQ(h.mean().count(), 0);
  h.record(std::chrono::hours(1));
  h.record(nanoseconds(-5));
  EXPECT_EQ(h.clamped(), 1u);
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxTrackable);
  EXPECT_EQ(h.min().count(), 0);
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> exp(1.0 / 2e6);
  LatencyHistogram all;
  LatencyHistogram a;
  LatencyHistogram b;
  for (int i = 0; i < 10000; ++i) {
    const nanoseconds v(static_cast<int64_t>(exp(rng)));
    all.record(v);
    (i % 3 == 0 ? a : b).record(v);
  }
  LatencyHistogram merged;
  merged.merge(a);
  merged.merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_EQ(merged.mean(), all.mean());
  for (const auto& p : all.percentile_table()) {
    EXPECT_EQ(merged.value_at_quantile(p.quantile), p.value) << p.quantile;
  }
  LatencyHistogram copy = merged;
  EXPECT_EQ(copy.value_at_quantile(0.99), merged.value_at_quantile(0.99));
}

TEST(LatencyHistogramTest, ConcurrentRecordsAreAllCounted) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 1; i <= 25000; ++i) h.record(nanoseconds(i * (t + 1)));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.min().count(), 1);
  EXPECT_EQ(h.max().count(), 100000);
}

TEST(LatencyHistogramTest, PercentileTableIsTheUsualSet) {
  LatencyHistogram h;
  for (int i = 1; i <= 1000; ++i) h.record(std::chrono::microseconds(i));
  const auto table = h.percentile_table();
  ASSERT_EQ(table.size(), 8u);
  EXPECT_DOUBLE_EQ(table.front().quantile, 0.5);
  EXPECT_DOUBLE_EQ(table.back().quantile, 1.0);
  EXPECT_EQ(table.back().value, std::chrono::microseconds(1000));
  EXPECT_NEAR(static_cast<double>(table.front().value.count()), 500e3, 500e3 * 0.005);
  // Lower precision: larger error, still bounded.
  LatencyHistogram coarse(5);
  for (int i = 1; i <= 1000; ++i) coarse.record(std::chrono::microseconds(i));
  EXPECT_NEAR(static_cast<double>(coarse.value_at_quantile(0.9).count()), 900e3, 900e3 * 0.02);
}

}  // namespace
}  // namespace prescale::loadgen
