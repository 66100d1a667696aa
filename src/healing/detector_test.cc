#include "healing/detector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace prescale::healing {
namespace {

std::string nab_dir() {
  const char* root = std::getenv("PRESCALE_SOURCE_DIR");
  return std::string(root ? root : PRESCALE_TEST_SOURCE_DIR) + "/../shared/data/nab";
}

TEST(NormalTail, IsTheQFunctionOfTheDistanceOnEitherSide) {
  EXPECT_DOUBLE_EQ(normal_tail(5, 5, 2), 0.5);
  EXPECT_NEAR(normal_tail(5 + 1.959964 * 2, 5, 2), 0.025, 1e-7);
  EXPECT_NEAR(normal_tail(5 - 1.959964 * 2, 5, 2), 0.025, 1e-7);
}

// The peer is NAB's own windowedGaussian: its scores are those of the reference results NAB
// publishes (results/windowedGaussian/), row by row, on every file of a category whose longest
// series (22,695 rows) fills and slides the window many times.
TEST(WindowedGaussian, ReproducesNabsReferenceScores) {
  const std::filesystem::path results = nab_dir() + "/results/windowedGaussian/realKnownCause";
  if (!std::filesystem::exists(results)) {
    GTEST_SKIP() << "skipped: ../shared/data/nab missing (NAB's windowedGaussian results)";
  }
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(results)) {
    std::ifstream in(entry.path());
    std::string line;
    std::getline(in, line);  // timestamp,value,anomaly_score,label,...
    WindowedGaussian detector;
    int row = 0;
    double worst = 0;
    while (std::getline(in, line)) {
      std::stringstream fields(line);
      std::string time, value, score;
      std::getline(fields, time, ',');
      std::getline(fields, value, ',');
      std::getline(fields, score, ',');
      worst = std::max(worst, std::abs(detector.observe(std::stod(value)) - std::stod(score)));
      ++row;
    }
    EXPECT_GT(row, 1000) << entry.path();
    EXPECT_LT(worst, 1e-9) << entry.path();
    ++files;
  }
  EXPECT_EQ(files, 7);
}

TEST(WindowedGaussian, SlidesItsWindowAStepAtATime) {
  WindowedGaussian detector(4, 2);
  EXPECT_EQ(detector.observe(1), 0.0) << "nothing to compare the first value with";
  detector.observe(3);  // window {1, 3}: mean 2, sd 1
  EXPECT_NEAR(detector.observe(2), 0.5, 1e-12);
  detector.observe(2);  // full: {1, 3, 2, 2}, mean 2
  EXPECT_NEAR(detector.observe(100), 1.0, 1e-12);
  // {1, 3, 2, 2} until two more have come: 100 has not entered it.
  EXPECT_NEAR(detector.observe(2), 0.5, 1e-12);
  // Now {2, 2, 100, 2}: mean 26.5.
  EXPECT_NEAR(detector.observe(26.5), 0.5, 1e-12);
}

// A step longer than the window would erase more values than the window holds (undefined
// behaviour), and a step of 0 would never slide it while its pending values grew without bound.
TEST(WindowedGaussian, RefusesAStepItCannotSlide) {
  EXPECT_THROW(WindowedGaussian(4, 5), std::invalid_argument);
  EXPECT_THROW(WindowedGaussian(4, 0), std::invalid_argument);
  EXPECT_THROW(WindowedGaussian(0, 1), std::invalid_argument);
  EXPECT_NO_THROW(WindowedGaussian(4, 4));
}

std::vector<double> noise(int n, double mean, double sd, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(mean, sd);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(d(rng));
  return out;
}

// A spike in steady noise alerts once: the observations after it are the same incident.
TEST(DeviationDetector, ASpikeAlertsOnceThenHolds) {
  DeviationDetector detector({.half_life = 100, .warmup = 30, .alert_score = 0.99999, .hold = 50});
  int alerts = 0;
  for (double v : noise(2000, 100, 5, 1)) alerts += detector.observe(v) >= 0.99999 ? 1 : 0;
  // Normal noise: seldom past 4.27 deviations, or a new extreme by 5 % of the range.
  EXPECT_LE(alerts, 3);
  EXPECT_GE(detector.observe(200), 0.99999) << "20 deviations out";
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(detector.observe(i % 2 == 0 ? 200 : 100), 0.0) << "held, observation " << i;
  }
  const double after = detector.observe(100);
  EXPECT_GT(after, 0.0);
  EXPECT_LT(after, 0.99999);
}

TEST(DeviationDetector, WarmsUpAndTakesAnyChangeOfAConstantSeries) {
  DeviationDetector warming({.half_life = 1000, .warmup = 30, .alert_score = 0.99999, .hold = 10});
  for (int i = 0; i < 30; ++i) EXPECT_EQ(warming.observe(i == 5 ? 1e6 : 7), 0.0) << i;
  DeviationDetector detector({.half_life = 1000, .warmup = 30, .alert_score = 0.99999, .hold = 10});
  for (int i = 0; i < 230; ++i) detector.observe(7);
  EXPECT_LT(detector.observe(7), 1.0);
  EXPECT_GE(detector.observe(7.5), 0.99999);
}

// A value beyond all seen before by over 5 % of their range is new, however slowly the weighted
// spread would let it through.
TEST(DeviationDetector, AValueBeyondTheRangeSeenIsAnAnomaly) {
  DeviationDetector detector(
      {.half_life = 10, .warmup = 30, .novelty_margin = 0.05, .alert_score = 0.99999, .hold = 10});
  // A wide swing makes the weighted deviation large.
  for (int i = 0; i < 100; ++i) detector.observe(i % 2 == 0 ? 0 : 100);
  for (int i = 0; i < 10; ++i) detector.observe(50);
  EXPECT_LT(detector.observe(104), 0.99999) << "within 5 % of the range [0, 100]";
  EXPECT_EQ(detector.observe(110), 1.0) << "beyond [0, 104] by over 5.2";
}

// A value that is not a number (a gap in a series: no requests, no latency) or not finite (an
// overflow) must not become the detector's state: one NaN would make every later mean, deviation
// and score NaN, and the detector would never alert again.
TEST(Detectors, ANonFiniteValueDoesNotPoisonWhatFollows) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> after(300, 100.0);  // at the mean: no alert, no hold
  after.push_back(200);                   // 20 standard deviations out
  for (std::string_view name : detector_names()) {
    std::unique_ptr<AnomalyDetector> control = make_detector(name);
    for (double v : noise(500, 100, 5, 2)) control->observe(v);
    std::vector<double> expected;
    for (double v : after) expected.push_back(control->observe(v));
    ASSERT_GE(expected.back(), 0.99999) << name;
    for (double bad : {nan, inf, -inf}) {
      std::unique_ptr<AnomalyDetector> detector = make_detector(name);
      for (double v : noise(500, 100, 5, 2)) detector->observe(v);
      const double score = detector->observe(bad);
      EXPECT_FALSE(std::isnan(score)) << name << " scoring " << bad;
      EXPECT_GE(score, 0.0) << name << " scoring " << bad;
      EXPECT_LE(score, 1.0) << name << " scoring " << bad;
      std::vector<double> scores;
      for (double v : after) scores.push_back(detector->observe(v));
      if (std::isnan(bad)) {
        EXPECT_EQ(scores, expected) << name << ": a NaN is not learned from";
      } else {
        for (double s : scores) EXPECT_FALSE(std::isnan(s)) << name << " after " << bad;
        EXPECT_GE(scores.back(), 0.99999) << name << " after " << bad << ": 20 sd out";
      }
    }
  }
}

// A finite value so far out that its square deviation overflows (1e200 in a series near 100,
// ±1e308 alternating) used to leave the variance infinite, or the mean NaN, for good: a later
// value 20 deviations out then scored 0.5, or NaN.
TEST(DeviationDetector, AHugeFiniteValueIsAnAnomalyAndDoesNotPoisonWhatFollows) {
  std::vector<double> after(300, 100.0);
  after.push_back(200);
  // Then 300 at the mean, so that no alert of the noise holds at the huge value.
  std::vector<double> before = noise(500, 100, 5, 2);
  before.insert(before.end(), 300, 100.0);
  DeviationDetector control;
  for (double v : before) control.observe(v);
  std::vector<double> expected;
  for (double v : after) expected.push_back(control.observe(v));
  ASSERT_GE(expected.at(300), 0.99999);
  const std::vector<std::vector<double>> cases = {{1e200}, {1e308, -1e308, 1e308, -1e308}};
  for (const auto& huge : cases) {
    DeviationDetector detector;
    for (double v : before) detector.observe(v);
    const double first = detector.observe(huge.front());
    EXPECT_GE(first, 1.0) << huge.front();
    for (size_t i = 1; i < huge.size(); ++i) detector.observe(huge[i]);  // within the hold
    std::vector<double> scores;
    for (double v : after) scores.push_back(detector.observe(v));
    // Past the alert's hold (200 observations), the same scores as if it never came.
    const std::vector<double> tail(scores.begin() + 200, scores.end());
    const std::vector<double> expected_tail(expected.begin() + 200, expected.end());
    EXPECT_TRUE(tail == expected_tail) << "after " << huge.front() << ": learned from it";
    EXPECT_GE(scores.back(), 0.99999) << huge.front();
  }
}

TEST(Detectors, AreMadeByName) {
  for (std::string_view name : detector_names()) EXPECT_NE(make_detector(name), nullptr) << name;
  EXPECT_EQ(make_detector("htm"), nullptr);
  EXPECT_EQ(detector_names().front(), "deviation");
}

}  // namespace
}  // namespace prescale::healing
