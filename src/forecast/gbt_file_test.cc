#include "forecast/gbt_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "forecast/gbt_model.h"
#include "forecast/model.h"

namespace prescale::forecast {
namespace {

using ::testing::HasSubstr;

// 2024-01-01 00:00 UTC, a Monday.
constexpr double kMonday = 1704067200;

// A daily cycle with noise at 5-minute steps: enough for a booster in a fraction of a second.
Series daily(size_t steps, unsigned seed, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0, 1);
  Series s;
  s.start_seconds = kMonday;
  s.step_seconds = 300;
  for (size_t i = 0; i < steps; ++i) {
    const double t = static_cast<double>(i) * s.step_seconds;
    const double v = scale * (100 + 50 * std::sin(2 * std::numbers::pi * t / 86400));
    s.values.push_back(std::max(0.0, v * (1 + 0.05 * gauss(rng))));
  }
  return s;
}

// One booster for the suite, released in TearDownTestSuite: a static one would be freed after
// XGBoost's own globals at exit.
class GbtFileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::vector<Series> series = {daily(6 * 288, 1, 1), daily(5 * 288, 2, 40)};
    GbtOptions options;
    options.rounds = 60;
    options.max_depth = 5;
    options.seed = 7;
    auto b = train_gbt(series, options);
    ASSERT_TRUE(b) << b.error().to_string();
    booster_ = *b;
  }
  static void TearDownTestSuite() { booster_.reset(); }
  static std::shared_ptr<const GbtBooster> trained() { return booster_; }

  static inline std::shared_ptr<const GbtBooster> booster_;
};

// Forecasts of `booster` for a series it never saw, at several origins.
std::vector<double> forecasts(std::shared_ptr<const GbtBooster> booster) {
  const Series s = daily(4 * 288, 9, 3);
  Series head = s;
  head.values.resize(3 * 288);
  auto model = make_gbt_model(std::move(booster));
  model->fit(head);
  std::vector<double> all;
  std::vector<double> out(15);
  for (size_t i = head.values.size(); i < s.values.size(); ++i) {
    model->update(s.values[i]);
    if (i % 37 != 0) continue;
    model->predict(out);
    all.insert(all.end(), out.begin(), out.end());
  }
  return all;
}

TEST_F(GbtFileTest, ALoadedBoosterPredictsBitForBitAsTheSavedOne) {
  auto booster = trained();
  ASSERT_NE(booster, nullptr);
  auto saved = save_gbt(*booster);
  ASSERT_TRUE(saved) << saved.error().to_string();
  // Through text, as a model file carries the definition.
  const auto definition = nlohmann::json::parse(saved->definition.dump());
  auto loaded = load_gbt(definition, saved->xgboost_model);
  ASSERT_TRUE(loaded) << loaded.error().to_string();

  const std::vector<double> expected = forecasts(booster);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(forecasts(*loaded), expected);  // exact equality: bit for bit

  const GbtOptions& a = booster->options();
  const GbtOptions& b = (*loaded)->options();
  EXPECT_EQ(b.rounds, a.rounds);
  EXPECT_EQ(b.max_depth, a.max_depth);
  EXPECT_EQ(b.seed, a.seed);
  EXPECT_EQ(b.eta, a.eta);
  EXPECT_EQ(b.objective, a.objective);
  EXPECT_EQ(b.seasons.day_seconds, a.seasons.day_seconds);
  EXPECT_EQ((*loaded)->training_rows(), booster->training_rows());
  // Saving the loaded booster gives the same bytes again.
  auto again = save_gbt(**loaded);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->xgboost_model, saved->xgboost_model);
  EXPECT_EQ(again->definition, saved->definition);
}

TEST_F(GbtFileTest, TheDefinitionNamesTheFeaturesAndOptions) {
  auto saved = save_gbt(*trained());
  ASSERT_TRUE(saved);
  const auto& d = saved->definition;
  EXPECT_EQ(d["definition_version"], kGbtDefinitionVersion);
  ASSERT_EQ(d["features"].size(), gbt_feature_names().size());
  EXPECT_EQ(d["features"][0], "horizon");
  EXPECT_EQ(d["features"][1], "lag_1");
  EXPECT_EQ(d["features"].back(), "day_of_week");
  EXPECT_EQ(d["options"]["rounds"], 60);
  EXPECT_EQ(d["options"]["seasons"]["day_seconds"], 86400.0);
}

TEST_F(GbtFileTest, RefusesWhatItCannotTrust) {
  auto saved = save_gbt(*trained());
  ASSERT_TRUE(saved);
  const nlohmann::json good = nlohmann::json::parse(saved->definition.dump());
  auto fails = [&](const nlohmann::json& definition, std::string_view bytes) {
    auto r = load_gbt(definition, bytes);
    EXPECT_FALSE(r);
    return r ? std::string() : r.error().message;
  };
  nlohmann::json d = good;
  d["definition_version"] = 2;
  EXPECT_THAT(fails(d, saved->xgboost_model), HasSubstr("definition_version: 2"));
  d = good;
  d["features"][3] = "lag_4";
  EXPECT_THAT(fails(d, saved->xgboost_model), HasSubstr("features[3]: expected \"lag_3\""));
  d = good;
  d["options"]["max_depth"] = 0;
  EXPECT_THAT(fails(d, saved->xgboost_model), HasSubstr("options.max_depth: expected"));
  d = good;
  d["options"].erase("eta");
  EXPECT_THAT(fails(d, saved->xgboost_model), HasSubstr("options.eta: missing"));
  EXPECT_THAT(fails(good, ""), HasSubstr("no XGBoost model bytes"));
  const std::string half = saved->xgboost_model.substr(0, saved->xgboost_model.size() / 2);
  EXPECT_THAT(fails(good, half), HasSubstr("XGBoosterLoadModelFromBuffer"));
  EXPECT_THAT(fails(good, "not a model at all"), HasSubstr("XGBoosterLoadModelFromBuffer"));
}

}  // namespace
}  // namespace prescale::forecast
