#include "healing/memory_trend.h"

#include <algorithm>
#include <cmath>

namespace prescale::healing {

void MemoryTrend::add(Clock::TimePoint t, std::uint64_t bytes) {
  if (!samples_.empty() && t <= samples_.back().t) return;
  samples_.push_back({t, bytes});
  while (t - samples_.front().t > options_.window) samples_.pop_front();
}

std::optional<MemoryTrend::Projection> MemoryTrend::project(std::uint64_t limit) const {
  if (samples_.size() < 3 || limit == 0) return std::nullopt;
  const Sample& last = samples_.back();
  if (static_cast<double>(last.bytes) < options_.min_share * static_cast<double>(limit)) {
    return std::nullopt;
  }
  if (last.t - samples_.front().t < options_.min_span) return std::nullopt;
  // Least squares on (seconds before the last sample, bytes), centred.
  const double n = static_cast<double>(samples_.size());
  double mean_x = 0, mean_y = 0;
  for (const Sample& s : samples_) {
    mean_x += std::chrono::duration<double>(s.t - last.t).count() / n;
    mean_y += static_cast<double>(s.bytes) / n;
  }
  double sxx = 0, sxy = 0, syy = 0;
  for (const Sample& s : samples_) {
    const double dx = std::chrono::duration<double>(s.t - last.t).count() - mean_x;
    const double dy = static_cast<double>(s.bytes) - mean_y;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (!(sxx > 0) || !(syy > 0)) return std::nullopt;  // flat: no growth
  const double slope = sxy / sxx;
  const double fit = sxy * sxy / (sxx * syy);  // R²
  if (!(slope > 0) || fit < options_.min_fit) return std::nullopt;
  const double left = static_cast<double>(limit) - static_cast<double>(last.bytes);
  const double seconds = std::max(0.0, left / slope);
  return Projection{slope, std::chrono::duration_cast<Clock::Duration>(
                               std::chrono::duration<double>(std::min(seconds, 1e9)))};
}

}  // namespace prescale::healing
