#include "loadgen/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace prescale::loadgen {

namespace {

constexpr uint64_t kMaxNs = static_cast<uint64_t>(LatencyHistogram::kMaxTrackable.count());
constexpr uint64_t kEmptyMin = std::numeric_limits<uint64_t>::max();

}  // namespace

// Layout, with B = linear_bits_ = precision_bits + 1: values below 2^B have one bucket each. A
// value v ≥ 2^B with highest set bit h has exponent e = h - B + 1 ≥ 1 and mantissa v >> e in
// [2^(B-1), 2^B), so each octave has 2^(B-1) = 2^precision_bits buckets of width 2^e, at most
// 2^-precision_bits of their lower bound. Index e * 2^(B-1) + (v >> e) continues the linear
// range without gaps.
LatencyHistogram::LatencyHistogram(int precision_bits)
    : bits_(std::clamp(precision_bits, 1, 14)), linear_bits_(bits_ + 1) {
  buckets_ = bucket_of(kMaxNs) + 1;
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(buckets_);
  for (size_t i = 0; i < buckets_; ++i) counts_[i].store(0, std::memory_order_relaxed);
  min_ns_.store(kEmptyMin, std::memory_order_relaxed);
}

LatencyHistogram::LatencyHistogram(const LatencyHistogram& other)
    : bits_(other.bits_), linear_bits_(other.linear_bits_), buckets_(other.buckets_) {
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(buckets_);
  for (size_t i = 0; i < buckets_; ++i) {
    counts_[i].store(other.counts_[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  total_.store(other.total_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  clamped_.store(other.clamped_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  sum_ns_.store(other.sum_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  min_ns_.store(other.min_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  max_ns_.store(other.max_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

LatencyHistogram& LatencyHistogram::operator=(const LatencyHistogram& other) {
  if (this != &other) {
    LatencyHistogram copy(other);
    bits_ = copy.bits_;
    linear_bits_ = copy.linear_bits_;
    buckets_ = copy.buckets_;
    counts_ = std::move(copy.counts_);
    total_.store(copy.total_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    clamped_.store(copy.clamped_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    sum_ns_.store(copy.sum_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    min_ns_.store(copy.min_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    max_ns_.store(copy.max_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  return *this;
}

LatencyHistogram::~LatencyHistogram() = default;

size_t LatencyHistogram::bucket_of(uint64_t v) const {
  const uint64_t linear = uint64_t{1} << linear_bits_;
  if (v < linear) return static_cast<size_t>(v);
  const int high_bit = std::bit_width(v) - 1;
  const int e = high_bit - linear_bits_ + 1;
  return static_cast<size_t>(e) * (linear / 2) + static_cast<size_t>(v >> e);
}

uint64_t LatencyHistogram::midpoint_of(size_t bucket) const {
  const uint64_t linear = uint64_t{1} << linear_bits_;
  if (bucket < linear) return bucket;
  const uint64_t half = linear / 2;
  // bucket = e * half + m with m in [half, linear): e = bucket / half - 1.
  const uint64_t e = bucket / half - 1;
  const uint64_t m = bucket - e * half;
  const uint64_t lower = m << e;
  return lower + ((uint64_t{1} << e) - 1) / 2;
}

void LatencyHistogram::record(Duration d) {
  uint64_t v = d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
  if (v > kMaxNs) {
    v = kMaxNs;
    clamped_.fetch_add(1, std::memory_order_relaxed);
  }
  counts_[bucket_of(v)].fetch_add(1, std::memory_order_relaxed);
  total_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(v, std::memory_order_relaxed);
  uint64_t seen = min_ns_.load(std::memory_order_relaxed);
  while (v < seen && !min_ns_.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
  seen = max_ns_.load(std::memory_order_relaxed);
  while (v > seen && !max_ns_.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  const size_t n = std::min(buckets_, other.buckets_);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t c = other.counts_[i].load(std::memory_order_relaxed);
    if (c != 0) counts_[i].fetch_add(c, std::memory_order_relaxed);
  }
  total_.fetch_add(other.total_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  clamped_.fetch_add(other.clamped_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  sum_ns_.fetch_add(other.sum_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  const uint64_t omin = other.min_ns_.load(std::memory_order_relaxed);
  uint64_t seen = min_ns_.load(std::memory_order_relaxed);
  while (omin < seen && !min_ns_.compare_exchange_weak(seen, omin, std::memory_order_relaxed)) {
  }
  const uint64_t omax = other.max_ns_.load(std::memory_order_relaxed);
  seen = max_ns_.load(std::memory_order_relaxed);
  while (omax > seen && !max_ns_.compare_exchange_weak(seen, omax, std::memory_order_relaxed)) {
  }
}

uint64_t LatencyHistogram::count() const { return total_.load(std::memory_order_relaxed); }
uint64_t LatencyHistogram::clamped() const { return clamped_.load(std::memory_order_relaxed); }

LatencyHistogram::Duration LatencyHistogram::min() const {
  const uint64_t v = min_ns_.load(std::memory_order_relaxed);
  return Duration(v == kEmptyMin ? 0 : static_cast<int64_t>(v));
}

LatencyHistogram::Duration LatencyHistogram::max() const {
  return Duration(static_cast<int64_t>(max_ns_.load(std::memory_order_relaxed)));
}

LatencyHistogram::Duration LatencyHistogram::mean() const {
  const uint64_t n = count();
  if (n == 0) return Duration(0);
  return Duration(static_cast<int64_t>(sum_ns_.load(std::memory_order_relaxed) / n));
}

LatencyHistogram::Duration LatencyHistogram::value_at_quantile(double q) const {
  const uint64_t n = count();
  if (n == 0) return Duration(0);
  q = std::clamp(q, 0.0, 1.0);
  if (q >= 1.0) return max();
  // q * n may round to just above an integer rank (0.55 * 100 gives 55.000000000000007); an
  // excess of a few ulps is rounding, not a fraction of a rank, so it must not round up.
  const double exact_rank = q * static_cast<double>(n);
  const double rank_rounded =
      std::ceil(exact_rank - 4 * std::numeric_limits<double>::epsilon() * exact_rank);
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(rank_rounded));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_; ++i) {
    seen += counts_[i].load(std::memory_order_relaxed);
    if (seen >= rank) {
      const auto v = static_cast<int64_t>(midpoint_of(i));
      return std::clamp(Duration(v), min(), max());
    }
  }
  return max();
}

std::vector<LatencyHistogram::Percentile> LatencyHistogram::percentiles(
    std::span<const double> quantiles) const {
  std::vector<Percentile> out;
  out.reserve(quantiles.size());
  for (double q : quantiles) out.push_back({q, value_at_quantile(q)});
  return out;
}

std::vector<LatencyHistogram::Percentile> LatencyHistogram::percentile_table() const {
  static constexpr double kTable[] = {0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0};
  return percentiles(kTable);
}

}  // namespace prescale::loadgen
