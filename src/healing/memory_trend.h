// MemoryTrend: where a replica's resident memory is heading. A leak grows a replica's memory
// steadily until its limit kills it — in Kubernetes OOMKilled: every request it holds fails, and
// its share of the service's capacity is gone for a restart. Seen early, the replica can instead
// be replaced while it still serves: a new one starts, and the old one drains once the new one
// is ready (the healer, healer.h).
//
// The trend is the least-squares line through the samples of the last `window`. It projects a
// time to the limit only for growth that is steady — the line explains at least `min_fit` of the
// samples' variance over at least `min_span` — and already past `min_share` of the limit, so a
// replica loading a model or warming a cache (fast growth to a plateau, early in its life) is
// not taken for a leak.
//
// Time is the caller's. Thread safety: one thread uses an instance.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "core/clock.h"

namespace prescale::healing {

struct MemoryTrendOptions {
  Clock::Duration window = std::chrono::minutes(5);
  Clock::Duration min_span = std::chrono::seconds(30);
  double min_fit = 0.8;    // R² of the line
  double min_share = 0.5;  // of the limit, at the last sample
};

class MemoryTrend {
 public:
  explicit MemoryTrend(MemoryTrendOptions options = {}) : options_(options) {}

  // A sample; one not after the last is ignored.
  void add(Clock::TimePoint t, std::uint64_t bytes);

  struct Projection {
    double bytes_per_second = 0;  // the line's slope, > 0
    Clock::Duration to_limit{0};  // from the last sample, at that growth
  };
  // Where steady growth (above) reaches `limit` from the last sample; nullopt when the growth is
  // not steady, not growth, or the last sample is below min_share of the limit. A last sample
  // already over the limit projects 0.
  std::optional<Projection> project(std::uint64_t limit) const;

  std::uint64_t last() const { return samples_.empty() ? 0 : samples_.back().bytes; }

 private:
  struct Sample {
    Clock::TimePoint t;
    std::uint64_t bytes;
  };
  MemoryTrendOptions options_;
  std::deque<Sample> samples_;  // within the window of the last, oldest first
};

}  // namespace prescale::healing
