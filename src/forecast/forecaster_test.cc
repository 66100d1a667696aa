#include "forecast/forecaster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <random>

namespace prescale::forecast {
namespace {

// A daily cycle at 1-minute steps (a "day" of `day` steps) with multiplicative noise.
Series cyclic(int days, int day = 1440, double noise = 0.05, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0, noise);
  Series s;
  s.step_seconds = 60;
  for (int i = 0; i < days * day; ++i) {
    const double phase = 2 * std::numbers::pi * (i % day) / day;
    s.values.push_back(std::max(0.0, (100 + 60 * std::sin(phase)) * (1 + n(rng))));
  }
  return s;
}

ForecasterOptions hourly_day() {
  ForecasterOptions o;
  o.model.day_seconds = 3600;  // a 60-step "day" keeps the tests fast
  o.model.week_seconds = 7 * 3600;
  return o;
}

TEST(PinballTest, WeighsUnderAndOverForecastsByTheQuantile) {
  EXPECT_DOUBLE_EQ(pinball(10, 8, 0.9), 0.9 * 2);
  EXPECT_DOUBLE_EQ(pinball(8, 10, 0.9), 0.1 * 2);
  EXPECT_DOUBLE_EQ(pinball(5, 5, 0.5), 0);
}

TEST(ForecasterTest, SelectsASeasonalModelAndOrdersQuantiles) {
  Forecaster f(hourly_day());
  ASSERT_TRUE(f.fit(cyclic(48, 60)));
  EXPECT_NE(f.selected(), "naive");
  // The "day" (an hour here) is the only cycle, so the two "_cycle" models sit out.
  EXPECT_EQ(f.cycle_seconds(), 0);
  ASSERT_EQ(f.backtest().size(), (std::size(kDefaultCandidates) - 2) * 15);
  const QuantileForecast q = f.predict(20);
  ASSERT_EQ(q.p50.size(), 20u);
  EXPECT_EQ(q.model, f.selected());
  for (size_t h = 0; h < q.p50.size(); ++h) {
    EXPECT_GE(q.p50[h], 0);
    EXPECT_LE(q.p50[h], q.p90[h]);
    EXPECT_LE(q.p90[h], q.p99[h]);
  }
}

TEST(ForecasterTest, FindsAndForecastsRecurringBursts) {
  // A wandering level with a burst every 19 steps (a batch job), as in Alibaba's trace.
  std::mt19937 rng(17);
  std::normal_distribution<double> step(0, 2);
  Series s;
  double level = 100;
  for (int i = 0; i < 1200; ++i) {
    level = std::max(20.0, level + step(rng));
    s.values.push_back(level + (i % 19 == 0 ? 300 : 0));
  }
  Forecaster f;
  ASSERT_TRUE(f.fit(s));
  EXPECT_DOUBLE_EQ(f.cycle_seconds(), 19 * 60);
  EXPECT_TRUE(f.selected().ends_with("_cycle")) << f.selected();
  // The next burst (1197 = 63 × 19 was the last; the next is at 1216, index 16) is forecast.
  const QuantileForecast q = f.predict(19);
  EXPECT_GT(q.p50[16], q.p50[15] + 150);
}

TEST(ForecasterTest, CalibratedP90CoversAboutNineInTen) {
  const Series all = cyclic(60, 60, 0.08, 11);
  const size_t split = 48 * 60;
  Series train = all;
  train.values.resize(split);
  Forecaster f(hourly_day());
  ASSERT_TRUE(f.fit(train));
  int covered = 0, total = 0;
  for (size_t t = split; t + 5 < all.values.size(); ++t) {
    const QuantileForecast q = f.predict(5);
    covered += all.values[t + 4] <= q.p90[4] ? 1 : 0;
    ++total;
    f.update(all.values[t]);
  }
  const double coverage = static_cast<double>(covered) / total;
  EXPECT_GT(coverage, 0.8);
  EXPECT_LT(coverage, 0.97);
}

TEST(ForecasterTest, OnlineCalibrationFollowsAChangeInNoise) {
  // Fitted on a noisy stretch, then the noise drops to a quarter. With a constant unit of error
  // (nothing else adapts), the fitted P90 is far too high afterwards; tracking the outcomes
  // brings its coverage back toward 90 % and lowers its pinball loss.
  const Series noisy = cyclic(40, 60, 0.2, 5);
  const Series calm = cyclic(40, 60, 0.05, 6);
  auto run = [&](double rate) {
    ForecasterOptions o = hourly_day();
    o.error_units = {ErrorUnit::kConstant};
    o.online_calibration_rate = rate;
    Forecaster f(o);
    EXPECT_TRUE(f.fit(noisy));
    int covered = 0, total = 0;
    double loss = 0;
    for (size_t t = 0; t + 1 < calm.values.size(); ++t) {
      const QuantileForecast q = f.predict(1);
      if (t >= calm.values.size() / 2) {  // after the tracking has had time
        covered += calm.values[t] <= q.p90[0] ? 1 : 0;
        loss += pinball(calm.values[t], q.p90[0], 0.9);
        ++total;
      }
      f.update(calm.values[t]);
    }
    return std::pair(static_cast<double>(covered) / total, loss / total);
  };
  const auto [fixed_coverage, fixed_loss] = run(0);
  const auto [tracked_coverage, tracked_loss] = run(0.02);
  EXPECT_GT(fixed_coverage, 0.99);
  EXPECT_GT(tracked_coverage, 0.8);
  EXPECT_LT(tracked_coverage, 0.97);
  EXPECT_LT(tracked_loss, 0.8 * fixed_loss);
}

TEST(ForecasterTest, ConstantUnitGivesTheSameIntervalWhateverTheRecentErrors) {
  ForecasterOptions o = hourly_day();
  o.error_units = {ErrorUnit::kConstant};
  o.online_calibration_rate = 0;
  Forecaster f(o);
  ASSERT_TRUE(f.fit(cyclic(20, 60)));
  EXPECT_EQ(f.error_unit(), ErrorUnit::kConstant);
  const QuantileForecast before = f.predict(3);
  Forecaster g = f;
  for (int i = 0; i < 10; ++i) g.update(i % 2 == 0 ? 400 : 0);  // wild errors
  const QuantileForecast after = g.predict(3);
  for (size_t h = 0; h < 3; ++h) {
    EXPECT_NEAR(after.p90[h] - after.p50[h], before.p90[h] - before.p50[h], 1e-9);
  }
}

// `n` minutes of a random walk from 500 with steps of standard deviation `sd`.
Series random_walk(int n, double sd, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> step(0, sd);
  Series s;
  s.step_seconds = 60;
  double v = 500;
  for (int i = 0; i < n; ++i) s.values.push_back(v += step(rng));
  return s;
}

TEST(ForecasterTest, ShortHistoryGivesSaneQuantilesFarAhead) {
  // 150 steps of a random walk and forecasts 60 steps ahead: few backtest origins see that far,
  // so far horizons borrow the calibration of a well-measured one. Quantiles stay near what a
  // random walk implies: median at the last value, P90 − P50 ≈ 1.28 √h.
  const Series s = random_walk(150, 1, 23);
  const double v = s.values.back();
  ForecasterOptions o;
  o.candidates = {"naive"};
  o.max_horizon = 60;
  Forecaster f(o);
  ASSERT_TRUE(f.fit(s));
  const QuantileForecast q = f.predict(60);
  for (size_t h = 0; h < 60; ++h) {
    const double root = std::sqrt(static_cast<double>(h + 1));
    EXPECT_NEAR(q.p50[h], v, 3 * root) << "h " << h + 1;
    EXPECT_GT(q.p90[h] - q.p50[h], 0.3 * root) << "h " << h + 1;
    EXPECT_LT(q.p90[h] - q.p50[h], 4 * root) << "h " << h + 1;
  }
}

TEST(ForecasterTest, HorizonsTooFarForTheHistoryFollowTheOutcomesFaster) {
  // 150 steps of a volatile random walk, forecast 60 steps ahead: the far horizons' quantiles
  // are borrowed (fewer than four windows of them). Then the series goes flat. With a constant
  // unit of error only the tracking moves the quantiles: a borrowed horizon's P90 falls toward
  // the outcomes at 1 / 4 of its spread per outcome, a measured one's at the configured rate.
  const Series s = random_walk(150, 5, 29);
  const double v = s.values.back();
  ForecasterOptions o;
  o.candidates = {"naive"};
  o.max_horizon = 60;
  o.error_units = {ErrorUnit::kConstant};
  Forecaster f(o);
  ASSERT_TRUE(f.fit(s));
  const QuantileForecast before = f.predict(60);
  for (int i = 0; i < 120; ++i) f.update(v);
  const QuantileForecast after = f.predict(60);
  auto shrink = [&](size_t h) {
    return (after.p90[h] - after.p50[h]) / (before.p90[h] - before.p50[h]);
  };
  EXPECT_GT(shrink(0), 0.7);   // measured: 120 outcomes at the 0.02 rate
  EXPECT_LT(shrink(59), 0.3);  // borrowed: most of the way to the flat outcomes
}

TEST(ForecasterTest, TheWinnerGetsASeasonTheWholeHistoryHoldsButItsFittedPartDidNot) {
  // Two "weeks" of 60-step "days", the first two of each week quiet. The candidates are fitted
  // on the part before the backtest (half the history here, 14 days of minutes in the policy):
  // under two weeks, no weekly season. The winner must have it, as the model fitted on all of
  // the history has: the next "day" is a quiet one.
  ForecasterOptions o = hourly_day();
  o.candidates = {"double_seasonal"};
  o.detect_cycle = false;
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0, 0.03);
  Series history;
  history.step_seconds = 60;
  for (int i = 0; i < 14 * 60; ++i) {
    const bool quiet = (i / 60) % 7 < 2;
    const double phase = 2 * std::numbers::pi * (i % 60) / 60;
    const double base = quiet ? 20 + 5 * std::sin(phase) : 100 + 30 * std::sin(phase);
    history.values.push_back(base * (1 + noise(rng)));
  }
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return sum / static_cast<double>(v.size());
  };
  auto model = make_model("double_seasonal", o.model);
  ASSERT_TRUE(model);
  (*model)->fit(history);
  std::vector<double> path(60);
  (*model)->predict(path);
  ASSERT_LT(mean(path), 60);  // the model on the whole history knows the quiet day

  Forecaster f(o);
  ASSERT_TRUE(f.fit(history));
  EXPECT_NEAR(mean(f.predict(60).p50), mean(path), 10);
}

// The unit of the intervals is the recent one-step error as the backtest measured it: an
// exponentially weighted mean of |y − ŷ|, floored at 2 % of the mean when it is read. update()
// floored the mean itself before adding each error, so after a calm history (errors far below
// the floor) it started from the floor and rose above it on errors the backtest's mean would
// still have kept under it: here 30 steps of errors 1.5 × the floor made the intervals 25 %
// wider than calibrated, where the unit is still the floor.
TEST(ForecasterTest, UpdateMeasuresTheRecentErrorAsTheBacktestDid) {
  Series s;
  std::mt19937 rng(3);
  std::normal_distribution<double> calm(0, 0.1);
  for (int i = 0; i < 3000; ++i) s.values.push_back(100 + calm(rng));  // the floor: 2 req/s
  ForecasterOptions o;
  o.candidates = {"naive"};
  o.error_units = {ErrorUnit::kRecentError};
  o.online_calibration_rate = 0;  // the quantiles stay as fitted: widths follow the unit
  Forecaster f(o);
  ASSERT_TRUE(f.fit(s));
  const QuantileForecast before = f.predict(1);
  ASSERT_GT(before.p90[0] - before.p50[0], 0);
  for (int i = 0; i < 30; ++i) f.update(i % 2 == 0 ? 101.5 : 98.5);  // one-step errors of 3
  const QuantileForecast after = f.predict(1);
  // The mean of |y − ŷ|: about 0.1 before, 0.1 / 2 + 3 / 2 = 1.55 after a half-life, under 2.
  EXPECT_NEAR((after.p90[0] - after.p50[0]) / (before.p90[0] - before.p50[0]), 1.0, 1e-9);
}

TEST(ForecasterTest, CopiesAreIndependent) {
  Forecaster a(hourly_day());
  ASSERT_TRUE(a.fit(cyclic(10, 60)));
  Forecaster b = a;
  for (int i = 0; i < 70; ++i) b.update(500);  // more than a (60-step) season
  EXPECT_LT(a.predict(1).p50[0], 300);
  EXPECT_GT(b.predict(1).p50[0], 300);
}

TEST(ForecasterTest, RejectsTooLittleHistoryAndUnknownModels) {
  Series s;
  s.values = {1, 2, 3};
  auto r = Forecaster().fit(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("need at least 32"), std::string::npos);

  ForecasterOptions o;
  o.candidates = {"prophet"};
  r = Forecaster(o).fit(cyclic(2, 60));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("prophet"), std::string::npos);
  EXPECT_TRUE(Forecaster().predict(5).p50.empty());  // before fit
}

// Only "_cycle" candidates and no cycle in the history is kNotFound, told apart from bad input
// (kInvalidArgument): `prescale eval forecast` notes the first and exits 2 on the second, and it
// used to note "no cycle" for any error of a cycle model, a history too short among them.
TEST(ForecasterTest, NoCycleForTheCycleModelsIsNotFoundTooLittleHistoryIsInvalid) {
  ForecasterOptions o;
  o.candidates = {"seasonal_naive_cycle", "holt_winters_cycle"};
  Series noise;
  std::mt19937 rng(5);
  std::normal_distribution<double> n(0, 1);
  for (int i = 0; i < 600; ++i) noise.values.push_back(50 + n(rng));
  auto r = Forecaster(o).fit(noise);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound) << r.error().message;

  noise.values.resize(30);
  r = Forecaster(o).fit(noise);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("need at least 32"), std::string::npos);
}

TEST(ForecasterTest, HandlesGapsInTheHistory) {
  Series s = cyclic(8, 60);
  for (size_t i = 100; i < 160; ++i) s.values[i] = NAN;
  Forecaster f(hourly_day());
  ASSERT_TRUE(f.fit(s));
  f.update(NAN);
  for (double v : f.predict(15).p99) EXPECT_TRUE(std::isfinite(v));
}

TEST(ForecasterTest, OutageAtTheEndOfTheHistoryDoesNotDecideTheSelection) {
  ForecasterOptions o = hourly_day();
  o.detect_cycle = false;
  Series s;
  s.step_seconds = 60;
  for (int i = 0; i < 48 * 60; ++i) s.values.push_back(i % 60 < 30 ? 100 : 10);  // a square wave
  Forecaster whole(o);
  ASSERT_TRUE(whole.fit(s));
  EXPECT_NE(whole.selected(), "naive");
  // A scrape outage over the last quarter (NaN = missing, as the prescale policy records it)
  // leaves the scoring half of the origins no outcome: every candidate scored 0 samples at a
  // loss of 0, and the first, naive, won. 36 observed cycles still tell the models apart.
  for (size_t i = s.values.size() * 3 / 4; i < s.values.size(); ++i) s.values[i] = NAN;
  Forecaster f(o);
  ASSERT_TRUE(f.fit(s));
  int scored = 0;
  for (const ForecastScore& score : f.backtest()) scored += score.samples;
  EXPECT_GT(scored, 0);
  EXPECT_NE(f.selected(), "naive");
}

TEST(ForecasterTest, AnOutageLongerThanTheBacktestDoesNotCollapseTheIntervals) {
  // 1,700 minutes of noise around 100 req/s, then a scrape outage of 1,300 minutes (a day
  // without metrics): every backtest origin falls in the outage, so no error is measured at any
  // horizon. No evidence is not evidence of no error: the P90 must stay above the P50, and once
  // values arrive again about one in ten may exceed it, not four in ten.
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0, 10);
  Series s;
  s.step_seconds = 60;
  for (int i = 0; i < 3000; ++i) s.values.push_back(i < 1700 ? 100 + noise(rng) : NAN);
  Forecaster f;
  ASSERT_TRUE(f.fit(s));
  const QuantileForecast q = f.predict(15);
  EXPECT_GT(q.p90[0], q.p50[0]) << "P50 = P90 = P99 = " << q.p50[0];
  EXPECT_GT(q.p99[0], q.p90[0]);
  int above = 0;
  for (int i = 0; i < 600; ++i) {
    const double y = 100 + noise(rng);
    above += y > f.predict(1).p90[0] ? 1 : 0;
    f.update(y);
  }
  EXPECT_LT(above, 600 * 0.2) << "outcomes above the P90 over the next 600 minutes";
}

TEST(ForecasterTest, ABurstInTheLastMinuteDoesNotPutTheP99FarAboveIt) {
  // 1,000 minutes of 100 req/s (± 1) whose last minute is a burst of 2,000. The backtest's last
  // origin measured that burst as an error of ~1,900 in the calm unit of the minutes before it
  // (about 1 req/s): a z of ~1,000, the largest error and so the P99 of fewer than 199. The unit
  // now, the recent one-step error, holds the same burst (~45 req/s): the burst is counted twice,
  // and the P99 of the next minute is their product, 20 times the burst itself.
  for (unsigned seed = 1; seed <= 3; ++seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> noise(0, 1);
    Series s;
    s.step_seconds = 60;
    for (int i = 0; i < 999; ++i) s.values.push_back(100 + noise(rng));
    s.values.push_back(2000);
    Forecaster f;
    ASSERT_TRUE(f.fit(s));
    const QuantileForecast q = f.predict(15);
    EXPECT_LT(q.p99[0], 3 * 2000.0) << "seed " << seed << ": P50 " << q.p50[0] << ", P90 "
                                    << q.p90[0] << " (" << f.selected() << ")";
  }
}

// A model that never forecasts anything (NaN paths).
class SilentModel : public Model {
 public:
  std::string_view name() const override { return "silent"; }
  void fit(const Series&) override {}
  void update(double) override {}
  void predict(std::span<double> out) const override { std::ranges::fill(out, NAN); }
  std::unique_ptr<Model> clone() const override { return std::make_unique<SilentModel>(); }
};

TEST(ForecasterTest, ACandidateThatScoredNothingNeverWins) {
  // Listed first, its loss of 0 over no forecasts used to beat every real candidate.
  ForecasterOptions o = hourly_day();
  o.detect_cycle = false;
  o.candidates = {"silent", "naive"};
  o.custom_models = {{"silent", std::make_shared<SilentModel>()}};
  Forecaster f(o);
  ASSERT_TRUE(f.fit(cyclic(8, 60)));
  EXPECT_EQ(f.selected(), "naive");
}

// The last value one step ahead, nothing (NaN) further: a model that forecasts only its
// first horizon.
class ShortSightedModel : public Model {
 public:
  std::string_view name() const override { return "short_sighted"; }
  void fit(const Series& s) override {
    for (double v : s.values) update(v);
  }
  void update(double value) override {
    if (std::isfinite(value)) last_ = value;
  }
  void predict(std::span<double> out) const override {
    std::ranges::fill(out, NAN);
    if (!out.empty()) out[0] = last_;
  }
  std::unique_ptr<Model> clone() const override {
    return std::make_unique<ShortSightedModel>(*this);
  }

 private:
  double last_ = 0;
};

TEST(ForecasterTest, ACandidateIsScoredAtTheHorizonsItLeavesBlank) {
  // Scored only where it forecast, its loss was the naive's first horizon alone and beat the
  // naive's sum over every horizon; predict() issues a blank forecast as 0, and so it is scored.
  ForecasterOptions o = hourly_day();
  o.detect_cycle = false;
  o.candidates = {"short_sighted", "naive"};
  o.custom_models = {{"short_sighted", std::make_shared<ShortSightedModel>()}};
  Forecaster f(o);
  ASSERT_TRUE(f.fit(cyclic(8, 60)));
  EXPECT_EQ(f.selected(), "naive");
  for (const ForecastScore& score : f.backtest()) {
    if (score.model == "short_sighted" && score.horizon > 1) {
      EXPECT_GT(score.pinball_p90, 0);
    }
  }
}

TEST(EvaluateForecastsTest, NaiveOnARandomWalkHasMaseNearOne) {
  std::mt19937 rng(3);
  std::normal_distribution<double> step(0, 1);
  Series s;
  double v = 1000;
  for (int i = 0; i < 3000; ++i) {
    v += step(rng);
    s.values.push_back(v);
  }
  const int horizons[] = {1, 5};
  auto scores = evaluate_forecasts(s, 2000, "naive", horizons);
  ASSERT_TRUE(scores) << scores.error().message;
  ASSERT_EQ(scores->size(), 2u);
  EXPECT_EQ((*scores)[0].model, "naive");
  EXPECT_EQ((*scores)[0].horizon, 1);
  EXPECT_GT((*scores)[0].samples, 150);
  EXPECT_NEAR((*scores)[0].mase, 1.0, 0.2);
  // Errors of a random walk grow with the horizon (about as its square root).
  EXPECT_GT((*scores)[1].mase, 1.5 * (*scores)[0].mase);
  EXPECT_GT((*scores)[1].coverage_p90, 0.75);

  EXPECT_FALSE(evaluate_forecasts(s, 0, "naive", horizons));
  EXPECT_FALSE(evaluate_forecasts(s, 2000, "naive", std::span<const int>{}));
  auto selected = evaluate_forecasts(s, 2000, "selected", horizons);
  ASSERT_TRUE(selected) << selected.error().message;
  EXPECT_EQ((*selected)[0].model, "selected");

  // The scoring cadence is its own: the forecaster's backtest spacing (options.origin_every, as
  // the policy runs it) does not thin the scored origins, and vice versa.
  ForecasterOptions sparse_backtest;
  sparse_backtest.origin_every = 7;
  auto every_step = evaluate_forecasts(s, 2000, "naive", horizons, sparse_backtest);
  ASSERT_TRUE(every_step);
  EXPECT_EQ((*every_step)[0].samples, 1000);  // one-step forecasts from each of the 1,000 steps
  auto every_fourth = evaluate_forecasts(s, 2000, "naive", horizons, sparse_backtest, 4);
  ASSERT_TRUE(every_fourth);
  EXPECT_EQ((*every_fourth)[0].samples, 250);
}

}  // namespace
}  // namespace prescale::forecast
