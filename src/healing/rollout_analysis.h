// Rollout analysis: a rolling update's new revision judged against the old one while both serve
// the same traffic at the same time — a canary against its baseline, as Kayenta and Flagger judge
// them — so that a release that fails more often or answers more slowly than the one it replaces
// is rolled back, not only one that crashes or that the gateway's outlier detection ejects.
//
// Each side is what the gateway counted of its replicas' attempts: how many, how many failed (a
// 5xx, or no answer), and their latency histogram, over the same stretch of time. The new
// revision fails when, with at least `min_attempts` on each side, it is worse by an amount that
// matters (an effect size) and by more than chance would make it (a one-sided two-proportion
// z-test at `z` standard errors):
// - errors: it fails more often by more than `error_margin` (absolute) and at least twice as
//   often, with at least 5 failures (fewer are too rare for the test's normal approximation);
// - latency: its mean and its median latency are both at least `slowdown` times the old one's
//   (the mean is exact, from the histograms' sums, but a few timeouts sway it; the median holds
//   against them, but is interpolated within a bucket), and the share of its
//   attempts beyond the old revision's 90th percentile exceeds the old revision's own share
//   there (10 %, or more where that percentile falls in the last bucket) by `slow_margin`.
//   Bucketed latencies are interpolated within their bucket, as Prometheus'
//   histogram_quantile does; with the means, a change within a bucket's width (2.4 ms against
//   2.6 ms, across the 2.5 ms bound) is no slowdown.
// A replica's speed varies from process to process, and attempts on one replica are not
// independent, so the effect sizes, not the tests alone, keep a release as good as the old one
// from failing; they also mean a release less than `slowdown` times slower is not judged.
// Replicas of one revision that differ by themselves by that much would fail one.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace prescale::healing {

// One side's attempts since the comparison began.
struct RevisionSample {
  double attempts = 0;
  double failed = 0;
  // Cumulative attempt counts by latency: cumulative[i] took at most upper_bounds[i] seconds; a
  // last entry beyond upper_bounds counts every attempt (+Inf). Both sides share the bounds.
  std::vector<double> upper_bounds;
  std::vector<double> cumulative;
  double latency_sum = 0;  // seconds, of the attempts `cumulative` counts
};

// The new revision may get few attempts: a latency-aware balancer sends a slow replica little.
// A rollout is judged again at every look as its attempts grow, hence a strict `z`.
struct RolloutAnalysisOptions {
  double min_attempts = 20;
  double error_margin = 0.01;
  double slowdown = 2;
  double slow_margin = 0.15;
  double z = 4;
};

struct RolloutVerdict {
  bool failed = false;
  // Why it failed, for the rollback's message: "fails 8.0 % of its attempts (the old revision
  // 0.0 %) over 400 attempts"; "" when it did not.
  std::string why;
};

// The latency below which a share `q` (0..1) of the sample's attempts fall, interpolated within
// its bucket (the first bucket from 0); NaN with no attempts, the last finite bound when it falls
// in the +Inf bucket.
double latency_quantile(const RevisionSample& s, double q);

// The share of the sample's attempts that took longer than `seconds`, interpolated likewise.
double share_slower_than(const RevisionSample& s, double seconds);

RolloutVerdict compare_revisions(const RevisionSample& old_revision,
                                 const RevisionSample& new_revision,
                                 const RolloutAnalysisOptions& options = {});

}  // namespace prescale::healing
