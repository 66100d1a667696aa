#include "worlds/local/local_world.h"

#include <gtest/gtest.h>

#include <cmath>

namespace prescale::local {
namespace {

TEST(HistogramTest, QuantileInterpolatesWithinTheBucket) {
  const std::vector<double> bounds = {0.1, 0.2, 0.5};
  // 50 in (0, 0.1], 40 in (0.1, 0.2], 10 in (0.2, 0.5], none above.
  const std::vector<double> cumulative = {50, 90, 100, 100};
  EXPECT_NEAR(histogram_quantile(0.5, bounds, cumulative), 0.1, 1e-12);
  EXPECT_NEAR(histogram_quantile(0.25, bounds, cumulative), 0.05, 1e-12);
  EXPECT_NEAR(histogram_quantile(0.95, bounds, cumulative), 0.35, 1e-12);
  EXPECT_TRUE(std::isnan(histogram_quantile(0.99, bounds, {0, 0, 0, 0})));
  // In the +Inf bucket: the last finite bound, as Prometheus answers.
  EXPECT_EQ(histogram_quantile(0.99, bounds, {0, 0, 0, 10}), 0.5);
}

TEST(HistogramTest, CountAboveAThreshold) {
  const std::vector<double> bounds = {0.1, 0.2, 0.5};
  const std::vector<double> cumulative = {50, 90, 100, 104};
  EXPECT_NEAR(histogram_count_above(0.2, bounds, cumulative), 14, 1e-9);
  EXPECT_NEAR(histogram_count_above(0.15, bounds, cumulative), 34, 1e-9);
  EXPECT_NEAR(histogram_count_above(0.05, bounds, cumulative), 79, 1e-9);
  EXPECT_NEAR(histogram_count_above(1.0, bounds, cumulative), 4, 1e-9);
  EXPECT_EQ(histogram_count_above(0.1, {}, {}), 0);
}

}  // namespace
}  // namespace prescale::local
