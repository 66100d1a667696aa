#include "healing/rollout_analysis.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace prescale::healing {
namespace {

// The gateway's latency buckets (telemetry::default_latency_buckets()).
const std::vector<double> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};

RevisionSample sample(const std::vector<double>& latencies, double failed = 0) {
  RevisionSample s;
  s.attempts = static_cast<double>(latencies.size());
  s.failed = failed;
  s.upper_bounds = kBounds;
  s.cumulative.assign(kBounds.size() + 1, 0);
  for (double l : latencies) {
    s.latency_sum += l;
    for (std::size_t i = 0; i < s.cumulative.size(); ++i) {
      if (i == kBounds.size() || l <= kBounds[i]) s.cumulative[i] += 1;
    }
  }
  return s;
}

// `n` latencies, log-normal around `median` seconds (a service's usual shape).
std::vector<double> latencies(std::mt19937& rng, int n, double median, double spread = 0.5) {
  std::lognormal_distribution<double> d(std::log(median), spread);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(d(rng));
  return out;
}

TEST(RolloutAnalysis, QuantilesAndSharesInterpolateWithinBuckets) {
  // 10 attempts at 1..2.5 ms, 10 at 2.5..5 ms.
  RevisionSample s = sample(std::vector<double>(10, 0.002));
  const RevisionSample t = sample(std::vector<double>(10, 0.004));
  for (std::size_t i = 0; i < s.cumulative.size(); ++i) s.cumulative[i] += t.cumulative[i];
  s.attempts = 20;
  EXPECT_NEAR(latency_quantile(s, 0.5), 0.0025, 1e-12);
  EXPECT_NEAR(latency_quantile(s, 0.75), 0.00375, 1e-12);  // half way through 2.5..5 ms
  EXPECT_NEAR(share_slower_than(s, 0.00375), 0.25, 1e-12);
  EXPECT_NEAR(share_slower_than(s, 0.001), 1.0, 1e-12);
  EXPECT_NEAR(share_slower_than(s, 20), 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(latency_quantile(RevisionSample{}, 0.9)));
  // In the +Inf bucket: the last finite bound, and every such attempt is slower.
  const RevisionSample slow = sample({30, 40});
  EXPECT_EQ(latency_quantile(slow, 0.5), 10);
  EXPECT_EQ(share_slower_than(slow, 10), 1.0);
}

TEST(RolloutAnalysis, RevisionsAlikeAreNeverFailedWhateverTheNoise) {
  std::mt19937 rng(7);
  int failed = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const int n_old = 20 + static_cast<int>(rng() % 400),
              n_new = 20 + static_cast<int>(rng() % 400);
    const double median = 0.001 * (1 + rng() % 80);
    std::binomial_distribution<int> errors_old(n_old, 0.02), errors_new(n_new, 0.02);
    const RolloutVerdict v =
        compare_revisions(sample(latencies(rng, n_old, median), errors_old(rng)),
                          sample(latencies(rng, n_new, median), errors_new(rng)));
    failed += v.failed ? 1 : 0;
    if (v.failed) ADD_FAILURE() << n_old << " and " << n_new << " attempts: " << v.why;
  }
  EXPECT_EQ(failed, 0);
}

// A rollout is judged at every look, on counts that grow: 40 looks over 40 s of a service at 10
// to 100 attempts a second, half to each side. Replicas differ in speed by themselves (each its
// own factor, log-normal with a spread of 0.1: one in twenty 20 % off), and errors come at 2 % on
// both.
TEST(RolloutAnalysis, RolloutsOfAReleaseAsGoodAsTheOldAreNotFailedLookAfterLook) {
  std::mt19937 rng(23);
  std::lognormal_distribution<double> replica_speed(0, 0.1);
  int failed = 0;
  for (int rollout = 0; rollout < 300; ++rollout) {
    const double median = 0.001 * (1 + rng() % 80);
    const double per_look = 5 + rng() % 45;
    const double old_speed = replica_speed(rng), new_speed = replica_speed(rng);
    std::vector<double> old_l, new_l;
    double old_failed = 0, new_failed = 0;
    std::bernoulli_distribution error(0.02);
    for (int look = 0; look < 40 && failed == 0; ++look) {
      for (double& l : latencies(rng, static_cast<int>(per_look), median * old_speed)) {
        old_l.push_back(l);
        old_failed += error(rng) ? 1 : 0;
      }
      for (double& l : latencies(rng, static_cast<int>(per_look), median * new_speed)) {
        new_l.push_back(l);
        new_failed += error(rng) ? 1 : 0;
      }
      const RolloutVerdict v =
          compare_revisions(sample(old_l, old_failed), sample(new_l, new_failed));
      if (v.failed) {
        ++failed;
        ADD_FAILURE() << "rollout " << rollout << ", look " << look << ": " << v.why;
      }
    }
  }
  EXPECT_EQ(failed, 0);
}

// Not judged: a difference that does not matter, however sure (2.4 ms against 2.6 ms, across a
// bucket bound), and attempts past the last bucket on both sides alike (long polls).
TEST(RolloutAnalysis, SmallDifferencesAndTheLastBucketAreNotFailures) {
  EXPECT_FALSE(compare_revisions(sample(std::vector<double>(5000, 0.0024)),
                                 sample(std::vector<double>(5000, 0.0026)))
                   .failed);
  // A release 30 % slower that times out 0.9 % of its attempts at 15 s (fewer than the error
  // margin): its mean is many times the old one's, its median not.
  std::mt19937 rng(5);
  std::vector<double> slower = latencies(rng, 1000, 0.0052);
  for (int i = 0; i < 9; ++i) slower[static_cast<std::size_t>(i)] = 15;
  EXPECT_FALSE(compare_revisions(sample(latencies(rng, 1000, 0.004)), sample(slower, 9)).failed);
  std::vector<double> polls(700, 0.004);
  polls.insert(polls.end(), 300, 30.0);
  EXPECT_FALSE(compare_revisions(sample(polls), sample(polls)).failed);
}

TEST(RolloutAnalysis, ARevisionThreeTimesAsSlowIsFailedNamingTheLatencies) {
  std::mt19937 rng(11);
  const RolloutVerdict v =
      compare_revisions(sample(latencies(rng, 300, 0.004)), sample(latencies(rng, 200, 0.012)));
  ASSERT_TRUE(v.failed);
  EXPECT_NE(v.why.find("answers more slowly: "), std::string::npos) << v.why;
  EXPECT_NE(v.why.find("of its attempts took longer than the old revision's 90th percentile ("),
            std::string::npos)
      << v.why;
  EXPECT_NE(v.why.find(" over 200 attempts"), std::string::npos) << v.why;
  // 50 % slower is within what a release may change, or replicas differ by themselves.
  EXPECT_FALSE(
      compare_revisions(sample(latencies(rng, 3000, 0.004)), sample(latencies(rng, 3000, 0.006)))
          .failed);
}

TEST(RolloutAnalysis, ARevisionThatFailsMoreOftenIsFailed) {
  std::mt19937 rng(3);
  const RolloutVerdict v = compare_revisions(sample(latencies(rng, 400, 0.004), 0),
                                             sample(latencies(rng, 400, 0.004), 32));
  ASSERT_TRUE(v.failed);
  EXPECT_EQ(v.why, "fails 8.0 % of its attempts (the old revision 0.0 %) over 400 attempts");
  // Within the margin: 0.5 % more.
  EXPECT_FALSE(compare_revisions(sample(latencies(rng, 4000, 0.004), 20),
                                 sample(latencies(rng, 4000, 0.004), 40))
                   .failed);
  // Too few attempts to tell.
  EXPECT_FALSE(
      compare_revisions(sample(latencies(rng, 19, 0.004), 0), sample(latencies(rng, 19, 0.004), 19))
          .failed);
}

}  // namespace
}  // namespace prescale::healing
