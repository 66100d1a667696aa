#include "healing/rollout_analysis.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace prescale::healing {
namespace {

double total(const RevisionSample& s) { return s.cumulative.empty() ? 0 : s.cumulative.back(); }

// Attempts that took at most `seconds`, interpolated within the bucket that holds it.
double count_within(const RevisionSample& s, double seconds) {
  double lower = 0, below = 0;
  for (std::size_t i = 0; i < s.upper_bounds.size() && i < s.cumulative.size(); ++i) {
    const double upper = s.upper_bounds[i];
    if (seconds <= upper) {
      const double width = upper - lower;
      const double part = width > 0 ? std::clamp((seconds - lower) / width, 0.0, 1.0) : 1.0;
      return below + (s.cumulative[i] - below) * part;
    }
    lower = upper;
    below = s.cumulative[i];
  }
  return below;  // beyond the last finite bound: the +Inf bucket counts as slower
}

std::string percent(double share) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %%", 100 * share);
  return text;
}

std::string millis(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, seconds < 0.01 ? "%.2f ms" : "%.0f ms", 1000 * seconds);
  return text;
}

}  // namespace

double latency_quantile(const RevisionSample& s, double q) {
  const double n = total(s);
  if (n <= 0 || s.upper_bounds.empty()) return NAN;
  const double rank = q * n;
  double lower = 0, below = 0;
  for (std::size_t i = 0; i < s.upper_bounds.size() && i < s.cumulative.size(); ++i) {
    const double upper = s.upper_bounds[i];
    if (s.cumulative[i] >= rank && s.cumulative[i] > below) {
      return lower + (upper - lower) * (rank - below) / (s.cumulative[i] - below);
    }
    lower = upper;
    below = s.cumulative[i];
  }
  return s.upper_bounds.back();
}

double share_slower_than(const RevisionSample& s, double seconds) {
  const double n = total(s);
  return n > 0 ? (n - count_within(s, seconds)) / n : NAN;
}

RolloutVerdict compare_revisions(const RevisionSample& old_revision,
                                 const RevisionSample& new_revision,
                                 const RolloutAnalysisOptions& o) {
  const double n_old = old_revision.attempts, n_new = new_revision.attempts;
  if (n_old < o.min_attempts || n_new < o.min_attempts) return {};

  const double p_old = old_revision.failed / n_old, p_new = new_revision.failed / n_new;
  const double pooled = (old_revision.failed + new_revision.failed) / (n_old + n_new);
  const double se = std::sqrt(pooled * (1 - pooled) * (1 / n_old + 1 / n_new));
  // At least 5 failures: below that the normal approximation of a rare count misleads.
  if (new_revision.failed >= 5 && p_new - p_old > o.error_margin && p_new >= 2 * p_old && se > 0 &&
      (p_new - p_old) / se >= o.z) {
    return {true, "fails " + percent(p_new) + " of its attempts (the old revision " +
                      percent(p_old) + ") over " + std::to_string(static_cast<long>(n_new)) +
                      " attempts"};
  }

  // Latency, of the attempts the histograms hold (both sides need enough of them too).
  if (total(old_revision) < o.min_attempts || total(new_revision) < o.min_attempts) return {};
  const double mean_old = old_revision.latency_sum / total(old_revision);
  const double mean_new = new_revision.latency_sum / total(new_revision);
  const double old_p90 = latency_quantile(old_revision, 0.9);
  const double new_p90 = latency_quantile(new_revision, 0.9);
  const double slower = share_slower_than(new_revision, old_p90);
  // About 10 % of the old revision's attempts lie beyond its own percentile; more where it falls
  // in the last bucket (the +Inf one holds them all).
  const double old_slower = share_slower_than(old_revision, old_p90);
  const double n = total(new_revision), n_old_latency = total(old_revision);
  const double share = (slower * n + old_slower * n_old_latency) / (n + n_old_latency);
  const double se_share = std::sqrt(share * (1 - share) * (1 / n + 1 / n_old_latency));
  const double median_old = latency_quantile(old_revision, 0.5);
  const double median_new = latency_quantile(new_revision, 0.5);
  if (std::isfinite(slower) && mean_new >= o.slowdown * mean_old &&
      median_new >= o.slowdown * median_old && slower - old_slower > o.slow_margin &&
      se_share > 0 && (slower - old_slower) / se_share >= o.z) {
    // A percentile in the +Inf bucket is only known to lie beyond the last bound.
    auto p90 = [&](double q) {
      return (q >= old_revision.upper_bounds.back() ? "over " : "") + millis(q);
    };
    return {true, "answers more slowly: " + percent(slower) +
                      " of its attempts took longer than the old revision's 90th percentile (" +
                      p90(old_p90) + "; its own " + p90(new_p90) + "), a mean of " +
                      millis(mean_new) + " against " + millis(mean_old) + " over " +
                      std::to_string(static_cast<long>(n)) + " attempts"};
  }
  return {};
}

}  // namespace prescale::healing
