// The three instruments: Counter, Gauge, Histogram.
//
// Thread safety: every method may be called concurrently from any thread. Updates are lock-free
// relaxed atomics (a few ns uncontended); reads see each update exactly once but are not a
// consistent cut across a histogram's buckets and sum while it is being observed.
//
// Instruments normally come from a Registry family (`family.with({...})`), which owns them;
// they can also be created directly, e.g. in tests.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "telemetry/snapshot.h"

namespace prescale::telemetry {

// Instruments are cache-line aligned so that two hot series never share a line.
inline constexpr size_t kInstrumentAlignment = 64;

// A value that only goes up (requests served, seconds of CPU used).
class alignas(kInstrumentAlignment) Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void inc() noexcept { whole_.fetch_add(1, std::memory_order_relaxed); }
  // `amount` must be >= 0: counters only go up, so negative and NaN amounts are ignored.
  void inc(double amount) noexcept {
    // Integral amounts take the same single fetch_add as inc(); the rest go to a double.
    if (amount >= 0 && amount < 0x1p53) {
      auto whole = static_cast<uint64_t>(amount);
      if (static_cast<double>(whole) == amount) {
        whole_.fetch_add(whole, std::memory_order_relaxed);
        return;
      }
    }
    if (amount > 0) fraction_.fetch_add(amount, std::memory_order_relaxed);
  }
  double value() const noexcept {
    return static_cast<double>(whole_.load(std::memory_order_relaxed)) +
           fraction_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> whole_{0};
  std::atomic<double> fraction_{0};
};

// A value that goes up and down (in-flight requests, queue length, bytes in use).
class alignas(kInstrumentAlignment) Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void add(double delta) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into buckets by upper bound (Prometheus `le`, inclusive) and sums them.
// For latencies, observe seconds.
class alignas(kInstrumentAlignment) Histogram {
 public:
  // `upper_bounds` must be strictly ascending and not NaN; a trailing +Inf is dropped (the +Inf
  // bucket always exists). Throws std::invalid_argument otherwise.
  explicit Histogram(std::span<const double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double value) noexcept {
    // Index of the first bound >= value, as a branch-free count over the (short) bound list;
    // NaN compares false everywhere and so lands in +Inf, as in the Go client.
    size_t index = 0;
    for (double bound : upper_bounds_) index += !(bound >= value);
    bucket(index).fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }

  std::span<const double> upper_bounds() const { return upper_bounds_; }
  HistogramSnapshot snapshot() const;

 private:
  // Bucket counts in whole cache lines of their own, so that histograms updated from different
  // threads never share one.
  static constexpr size_t kCountsPerLine = kInstrumentAlignment / sizeof(std::atomic<uint64_t>);
  struct alignas(kInstrumentAlignment) CountLine {
    std::atomic<uint64_t> counts[kCountsPerLine];
  };
  std::atomic<uint64_t>& bucket(size_t i) noexcept {
    return lines_[i / kCountsPerLine].counts[i % kCountsPerLine];
  }
  const std::atomic<uint64_t>& bucket(size_t i) const noexcept {
    return lines_[i / kCountsPerLine].counts[i % kCountsPerLine];
  }

  std::vector<double> upper_bounds_;
  std::unique_ptr<CountLine[]> lines_;  // per-bucket counts, not cumulative; the last is +Inf
  std::atomic<double> sum_{0};
};

// Upper bounds in seconds for request latencies of microservices: 0.5 ms to 10 s, roughly
// 1-2.5-5 per decade (14 bounds plus +Inf).
std::vector<double> default_latency_buckets();

namespace internal {
// `upper_bounds` without a trailing +Inf; throws std::invalid_argument unless strictly ascending
// and free of NaN.
std::vector<double> checked_upper_bounds(std::span<const double> upper_bounds);
}  // namespace internal

}  // namespace prescale::telemetry
