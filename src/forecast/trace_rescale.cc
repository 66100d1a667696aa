// Rescaling traces: per-request traces superposed or thinned to a load, counts resampled to
// another step, and the counting noise of count traces (docs/traces.md).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "core/splitmix.h"
#include "forecast/trace.h"

namespace prescale::forecast {
namespace {

// ---- Rescaling per-request traces ----------------------------------------------------------

// The step an arrival falls in; arrivals outside [0, duration) (read_trace() makes none) count
// in the first or last step rather than being lost.
size_t step_of(double arrival_seconds, const Trace& trace) {
  if (!(arrival_seconds > 0)) return 0;
  return std::min(static_cast<size_t>(arrival_seconds / trace.step_seconds),
                  trace.counts.size() - 1);
}

// Counts rebuilt from the arrivals, so that the two never disagree after a rescale.
void bin_arrivals(Trace& trace) {
  std::fill(trace.counts.begin(), trace.counts.end(), 0.0);
  for (double a : trace.arrival_seconds) trace.counts[step_of(a, trace)] += 1;
}

void normalise_mean_cost(std::vector<double>& costs) {
  if (costs.empty()) return;
  const double mean =
      std::accumulate(costs.begin(), costs.end(), 0.0) / static_cast<double>(costs.size());
  if (mean > 0) {
    for (double& c : costs) c /= mean;
  }
}

// A time moved into [0, duration) by reflecting at both ends, so a copy shifted past an end
// lands where the trace's rate is about the same (mirrored), not at the other end of the trace.
double reflect_into(double t, double duration) {
  const double period = 2 * duration;
  double x = std::fmod(t, period);
  if (x < 0) x += period;
  if (x >= duration) x = period - x;  // in [0, duration]
  return x < duration ? x : std::nextafter(duration, 0.0);
}

// Scale-up by superposition. Duplicating each request in place keeps the copies next to each
// other: per-step counts become exactly f times the original's, so their variance grows as f²
// where a real stream f times as busy grows as f (index of dispersion ≈ f instead of 1), and a
// queue sees clusters. A busier real stream is more independent users with the same daily
// shape; whole copies of the trace, each shifted in time, approximate that:
//
// - Copy j (j = 1, 2, …; copy 0 is the trace) is shifted by +1, −1, +2, −2, … times
//   d = φ·min(step, 1 s), φ = 1.618…. For steps up to 1 s (per-request traces default to 1 s),
//   any two copies are ≥ 1.6 steps apart, so in any window up to one step long they contribute
//   disjoint stretches of the original: for a Poisson-like source each step's count is Poisson
//   again, not f times one draw. The irrational spacing puts each copy at another phase within
//   the step, so consecutive steps do not repeat one pattern.
// - The shifts are short instead of wrapping around the trace, so the rate profile is kept at
//   time scales longer than their span and only smoothed below it, where a per-request trace's
//   per-step variation is mostly sampling noise. The span is about ±30 s at most: past f ≈ 37 the
//   spacing shrinks to 60 s / f, so a minute's shape (what the simulator records, and what the
//   CLI's --peak-rps measures) survives any factor, at the price of copies less than a step
//   apart (a Poisson source's per-step index of dispersion is then about f·step / 60 s). Capping
//   d at 1 s keeps the span short for coarse steps too (f copies of 60 s would smooth away a
//   60 s-step trace's shape); their per-step counts then stay correlated, but the sub-second
//   clusters a queue reacts to are still broken up.
// - Shifts past either end reflect back into the trace, where the rate is about the same.
// - The last copy is partial: a uniform random subset (seeded, so deterministic) of a full copy,
//   i.e. independent thinning, which keeps a Poisson-like copy Poisson-like.
//
// The factor is the load's, not the busiest step's: superposed copies no longer line up on the
// original's busiest step, so the result's busiest step is what a stream f times as busy shows,
// less than f times a spike of sampling noise or a burst. Choosing f to make the busiest step
// peak_rps instead lets one noisy step set the load: the Azure code trace's busiest second is a
// burst of 67 requests in a minute of 10 req/s, and aiming it at 9.6 × 67 took f = 99.
Trace superpose_copies(Trace trace, double factor) {
  constexpr double kGoldenRatio = 1.6180339887498949;
  constexpr uint64_t kSeed = 0x5052455343414c45ULL;  // "PRESCALE"
  const size_t n = trace.arrival_seconds.size();
  const bool has_cost = trace.request_cost.size() == n;
  const double duration = trace.duration_seconds();
  constexpr double kMaxSpanSeconds = 60;
  const double spacing =
      std::min(kGoldenRatio * std::min(trace.step_seconds, 1.0), kMaxSpanSeconds / factor);
  const auto wanted = static_cast<size_t>(std::llround(factor * static_cast<double>(n)));

  struct Arrival {
    double seconds;
    double cost;
  };
  std::vector<Arrival> arrivals;
  arrivals.reserve(std::max(wanted, n));
  for (size_t i = 0; i < n; ++i) {
    arrivals.push_back({trace.arrival_seconds[i], has_cost ? trace.request_cost[i] : 1.0});
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  // SplitMix64 (fully specified): a rescaled trace is the same with every standard library;
  // std::shuffle and the std distributions are implementation-defined.
  uint64_t random = kSeed;
  for (int64_t copy = 1; arrivals.size() < wanted; ++copy) {
    const double shift =
        (copy % 2 == 1 ? 1.0 : -1.0) * static_cast<double>((copy + 1) / 2) * spacing;
    if (wanted - arrivals.size() < n) {  // the partial copy: Fisher-Yates, modulo bias < n/2^64
      for (size_t i = n - 1; i > 0; --i) {
        std::swap(order[i], order[splitmix64_next(random) % (i + 1)]);
      }
    }
    for (size_t i : order) {
      if (arrivals.size() >= wanted) break;
      arrivals.push_back({reflect_into(trace.arrival_seconds[i] + shift, duration),
                          has_cost ? trace.request_cost[i] : 1.0});
    }
  }

  // Ties in time are ordered by cost, so the result does not depend on the sort algorithm.
  std::sort(arrivals.begin(), arrivals.end(), [](const Arrival& a, const Arrival& b) {
    return a.seconds != b.seconds ? a.seconds < b.seconds : a.cost < b.cost;
  });
  trace.arrival_seconds.resize(arrivals.size());
  trace.request_cost.resize(has_cost ? arrivals.size() : 0);
  for (size_t i = 0; i < arrivals.size(); ++i) {
    trace.arrival_seconds[i] = arrivals[i].seconds;
    if (has_cost) trace.request_cost[i] = arrivals[i].cost;
  }
  normalise_mean_cost(trace.request_cost);
  bin_arrivals(trace);
  return trace;
}

// Scale-down by deterministic thinning: arrival i is kept when ⌊f(i+1)⌋ − ⌊fi⌋ = 1, so any run of
// consecutive arrivals — each step's in particular — keeps within one request of f times its
// length, and the busiest step lands within one request of f times the old busiest.
Trace thin_arrivals(Trace trace, double factor) {
  const size_t n = trace.arrival_seconds.size();
  const bool has_cost = trace.request_cost.size() == n;
  auto kept_before = [factor](size_t i) {
    return static_cast<int64_t>(std::floor(factor * static_cast<double>(i) + 1e-9));
  };
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (kept_before(i + 1) == kept_before(i)) continue;
    trace.arrival_seconds[kept] = trace.arrival_seconds[i];
    if (has_cost) trace.request_cost[kept] = trace.request_cost[i];
    ++kept;
  }
  trace.arrival_seconds.resize(kept);
  trace.request_cost.resize(has_cost ? kept : 0);
  normalise_mean_cost(trace.request_cost);
  bin_arrivals(trace);
  return trace;
}

}  // namespace

Trace rescale_to_peak(Trace trace, double peak_rps) {
  const double peak = trace.peak_rps();
  if (!(peak > 0) || !(peak_rps > 0) || !std::isfinite(peak_rps)) return trace;
  if (trace.arrival_seconds.empty()) {
    for (double& c : trace.counts) c *= peak_rps / peak;
    return trace;
  }
  return peak_rps > peak ? superpose_copies(std::move(trace), peak_rps / peak)
                         : thin_arrivals(std::move(trace), peak_rps / peak);
}

Trace resample(const Trace& trace, double step_seconds) {
  if (!(step_seconds > 0) || !std::isfinite(step_seconds) || step_seconds == trace.step_seconds) {
    return trace;
  }
  Trace out;
  out.name = trace.name;
  out.step_seconds = step_seconds;
  out.start_unix_seconds = trace.start_unix_seconds;
  out.arrival_seconds = trace.arrival_seconds;
  out.request_cost = trace.request_cost;
  const double old_step = trace.step_seconds;
  const double duration = trace.duration_seconds();
  const auto n = static_cast<size_t>(std::max(0.0, std::ceil(duration / step_seconds - 1e-9)));
  out.counts.assign(n, 0.0);
  if (n == 0) return out;
  for (size_t i = 0; i < trace.counts.size(); ++i) {
    const double count = trace.counts[i];
    if (count == 0) continue;
    double lo = static_cast<double>(i) * old_step;
    const double hi = lo + old_step;
    auto j = static_cast<size_t>(lo / step_seconds);
    // Spread `count` over [lo, hi) by overlap; the last new step takes any rounding remainder.
    double left = count;
    while (left > 0 && j < n) {
      const double end = std::min(hi, static_cast<double>(j + 1) * step_seconds);
      const double share = j + 1 == n || end >= hi ? left : count * (end - lo) / old_step;
      out.counts[j] += share;
      left -= share;
      lo = end;
      ++j;
    }
  }
  return out;
}

namespace {

// The local level of step i: the mean of the steps within ±half_window, each clipped to within
// 3 noise deviations (3·sqrt(dispersion × median)) of their median, so a burst does not lift its
// neighbours (a mean is less noisy than a median).
double local_level(const std::vector<double>& c, size_t i, int half_window, double dispersion,
                   std::vector<double>& window) {
  const size_t lo = i >= static_cast<size_t>(half_window) ? i - half_window : 0;
  const size_t hi = std::min(c.size(), i + static_cast<size_t>(half_window) + 1);
  window.assign(c.begin() + static_cast<long>(lo), c.begin() + static_cast<long>(hi));
  auto mid = window.begin() + static_cast<long>(window.size() / 2);
  std::nth_element(window.begin(), mid, window.end());
  const double median = *mid;
  const double clip = 3 * std::sqrt(dispersion * std::max(median, 1.0));
  double sum = 0;
  for (double x : window) sum += std::clamp(x, median - clip, median + clip);
  return sum / static_cast<double>(window.size());
}

}  // namespace

bool is_count_trace(const Trace& trace) {
  if (!trace.arrival_seconds.empty()) return false;
  return std::ranges::all_of(trace.counts, [](double c) { return c >= 0 && c == std::floor(c); });
}

double counting_dispersion(const Trace& trace, int half_window) {
  const std::vector<double>& c = trace.counts;
  if (half_window < 1 || c.size() < static_cast<size_t>(4 * half_window + 2) ||
      !is_count_trace(trace)) {
    return 1.0;
  }
  std::vector<double> z, window;
  z.reserve(c.size());
  for (size_t i = static_cast<size_t>(half_window); i + half_window < c.size(); ++i) {
    const double m = local_level(c, i, half_window, 1.0, window);
    if (m >= 1) z.push_back((c[i] - m) / std::sqrt(m));
  }
  if (z.size() < 20) return 1.0;
  // Robust spread (1.4826 × the median absolute deviation): the bursts do not widen it. The
  // level includes the step itself, which shrinks a deviation's variance by (w − 1) / w.
  auto mid = z.begin() + static_cast<long>(z.size() / 2);
  std::nth_element(z.begin(), mid, z.end());
  const double median = *mid;
  for (double& x : z) x = std::abs(x - median);
  std::nth_element(z.begin(), mid, z.end());
  const double w = 2.0 * half_window + 1;
  const double sd = 1.4826 * *mid * std::sqrt(w / (w - 1));
  return std::max(1.0, sd * sd);
}

Trace remove_counting_noise(Trace trace, double dispersion, int half_window, double k) {
  if (trace.counts.empty() || half_window < 1 || !is_count_trace(trace)) return trace;
  if (!(dispersion > 0)) dispersion = counting_dispersion(trace, half_window);
  const std::vector<double>& c = trace.counts;
  std::vector<double> out(c.size());
  std::vector<double> window;
  for (size_t i = 0; i < c.size(); ++i) {
    const double m = local_level(c, i, half_window, dispersion, window);
    const double deviation = c[i] - m;
    const double excess = std::max(0.0, std::abs(deviation) - k * std::sqrt(dispersion * m));
    out[i] = std::max(0.0, m + (deviation < 0 ? -excess : excess));
  }
  trace.counts = std::move(out);
  return trace;
}

}  // namespace prescale::forecast
