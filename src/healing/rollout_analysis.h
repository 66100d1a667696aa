// Rollout analysis: a rolling update's new revision judged against the old one while both serve
// the same traffic at the same time — a canary against its baseline, as Kayenta and Flagger judge
// them — so that a release that fails more often or answers more slowly than the one it replaces
// is rolled back, not only one that crashes or that the gateway's outlier detection ejects.
//
// Each side is what the gateway counted of its replicas' attempts: how many, how many failed (a
// 5xx, or no answer), and their latency histogram. The new revision fails when, with at least
// `min_attempts` on each side:
// - errors: it fails more often than the old one by more than `error_margin` (absolute), and a
//   one-sided two-proportion z-test puts the difference at least `z` standard errors above 0,
//   with at least 5 failures (fewer are too rare for the test's normal approximation);
// - latency: more than `slow_share` of its attempts took longer than the old revision's 90th
//   percentile (10 % would, were they alike), at least `z` standard errors above 10 % (the
//   error of a two-proportion test: the old revision's percentile is a sample's too). Bucketed
//   latencies are interpolated within their bucket, as Prometheus' histogram_quantile does.
// Comparing with the baseline's own percentile needs no absolute threshold and holds under any
// load: both revisions see the same requests at the same time.
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
};

// The new revision may get few attempts: a latency-aware balancer sends a slow replica little.
// A rollout is judged again at every look as its attempts grow, hence a strict `z`.
struct RolloutAnalysisOptions {
  double min_attempts = 20;
  double error_margin = 0.01;
  double slow_share = 0.25;
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
