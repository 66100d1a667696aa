// LatencyHistogram: an HDR-style log-linear histogram of durations, for the load generator's
// latency report. Values are nanoseconds; each power of two is split into 2^precision_bits equal
// sub-buckets, so a bucket is at most 1/2^precision_bits of its lower bound wide. With the
// default 7 bits every reported value is within 0.4 % of a recorded one (the bucket midpoint,
// clamped to the exact min and max), from 1 ns to kMaxTrackable (about 137 s); larger values are
// recorded as kMaxTrackable and counted in clamped().
//
// Thread safety: record() and merge() may be called from any number of threads at once (relaxed
// atomics, no locks); readers see a value that may lag concurrent records. Copying takes a
// snapshot.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace prescale::loadgen {

class LatencyHistogram {
 public:
  using Duration = std::chrono::nanoseconds;
  static constexpr Duration kMaxTrackable = Duration((int64_t{1} << 37) - 1);

  // precision_bits in [1, 14], clamped: buckets per octave = 2^precision_bits. 7 (the
  // default): ≤0.4 % error, 32 KiB of counters; 5: ≤1.6 %, 8 KiB.
  explicit LatencyHistogram(int precision_bits = 7);
  LatencyHistogram(const LatencyHistogram& other);
  LatencyHistogram& operator=(const LatencyHistogram& other);
  ~LatencyHistogram();

  // Negative durations count as 0.
  void record(Duration d);
  // Adds every count of `other`, which must have the same precision_bits.
  void merge(const LatencyHistogram& other);

  uint64_t count() const;
  uint64_t clamped() const;  // values above kMaxTrackable
  Duration min() const;      // exact; 0 when empty
  Duration max() const;      // exact (after clamping); 0 when empty
  Duration mean() const;     // exact up to the sum's rounding; 0 when empty

  // The value at quantile q in [0, 1]: the value of rank ceil(q * count) (at least 1) in sorted
  // order, to within the histogram's precision. 0 when empty; q = 1 gives max().
  Duration value_at_quantile(double q) const;

  struct Percentile {
    double quantile;  // e.g. 0.99
    Duration value;
  };
  // value_at_quantile() for each of `quantiles`.
  std::vector<Percentile> percentiles(std::span<const double> quantiles) const;
  // The usual report set: p50, p75, p90, p95, p99, p99.9, p99.99 and max.
  std::vector<Percentile> percentile_table() const;

  int precision_bits() const { return bits_; }

 private:
  size_t bucket_of(uint64_t v) const;
  uint64_t midpoint_of(size_t bucket) const;

  int bits_;
  int linear_bits_;
  size_t buckets_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> clamped_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> min_ns_;
  std::atomic<uint64_t> max_ns_{0};
};

}  // namespace prescale::loadgen
