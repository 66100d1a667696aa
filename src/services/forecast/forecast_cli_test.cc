// `prescale train forecast`, run through CLI11 as the prescale binary runs it
// (apps/prescale/train_forecast.cc).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "core/sha256.h"
#include "services/forecast/forecast_test_util.h"
#include "services/forecast/model_file.h"
#include "train_forecast.h"

namespace prescale {
namespace {

using services::forecast_service::testing::TempDir;
namespace testing_util = services::forecast_service::testing;

// Three days of a per-minute count trace ("timestamp,count", Unix seconds) with a daily cycle.
std::string trace_csv(double scale, double phase) {
  std::string csv = "timestamp,count\n";
  for (int i = 0; i < 3 * 1440; ++i) {
    const double day = std::sin(2 * std::numbers::pi * (i / 1440.0 + phase));
    const double count = std::round(scale * (100 + 50 * day + 7 * std::sin(i * 0.7)));
    csv +=
        std::to_string(1704067200 + 60 * i) + "," + std::to_string(static_cast<int>(count)) + "\n";
  }
  return csv;
}

class ForecastCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = (dir_.path() / "a.csv").string();
    b_ = (dir_.path() / "b.csv").string();
    testing_util::write_text(a_, trace_csv(1, 0));
    testing_util::write_text(b_, trace_csv(20, 0.3));
    models_ = (dir_.path() / "models").string();
  }

  int run(std::vector<std::string> args) {
    CLI::App app{"prescale"};
    CLI::App* train = app.add_subcommand("train");
    TrainForecastCommand train_forecast(*train);
    if (auto status = prescale::testing::parse_command_line(app, args)) return *status;
    return train_forecast.parsed() ? train_forecast.run() : -1;
  }

  TempDir dir_;
  std::string a_, b_, models_;
};

TEST_F(ForecastCliTest, TrainsAcrossTracesAndWritesTheNextVersion) {
  ASSERT_EQ(run({"train", "forecast", "--trace", a_, "--trace", b_, "--model-dir", models_,
                 "--rounds", "20", "--max-rows", "20000"}),
            0);
  const auto m = nlohmann::json::parse(testing_util::read_text(models_ + "/forecast-v1.json"));
  EXPECT_EQ(m["version"], 1);
  ASSERT_EQ(m["training"]["traces"].size(), 2u);
  const std::string ha = sha256_hex(testing_util::read_text(a_));
  const std::string hb = sha256_hex(testing_util::read_text(b_));
  EXPECT_EQ(m["training"]["traces"][0]["file"], "a.csv");
  EXPECT_EQ(m["training"]["traces"][0]["sha256"], ha);
  EXPECT_EQ(m["training"]["traces"][0]["step_seconds"], 60);
  EXPECT_EQ(m["training"]["data_sha256"], sha256_hex(ha + hb));
  EXPECT_EQ(m["booster"]["options"]["rounds"], 20);
  ASSERT_EQ(m["metrics"]["traces"].size(), 2u);
  for (const auto& t : m["metrics"]["traces"]) {
    EXPECT_GT(t["gbt_global"]["pinball_p90"].get<double>(), 0);
    EXPECT_GT(t["seasonal_naive_day"]["pinball_p90"].get<double>(), 0);
  }
  EXPECT_TRUE(m["metrics"]["pinball_p90_vs_baseline"].is_number());

  ASSERT_EQ(run({"train", "forecast", "--trace", a_, "--model-dir", models_, "--rounds", "20",
                 "--max-rows", "20000", "--no-validate"}),
            0);
  auto v2 = services::forecast_service::load_model(models_ + "/forecast-v2.json");
  ASSERT_TRUE(v2) << v2.error().to_string();
  EXPECT_EQ((*v2)->version_label(), "v2");
  EXPECT_TRUE((*v2)->metrics.empty());
  EXPECT_EQ((*v2)->training["data_sha256"], ha);  // one trace: its own hash
}

// A --model-dir that cannot be one (a file, or under one) was found when the booster was to be
// saved, after the validation fit and the training (minutes across the shared traces), and exited
// 1; now before them, exit 2, as a bad flag value.
TEST_F(ForecastCliTest, AModelDirItCannotWriteIsRefusedBeforeTraining) {
  for (const std::string& dir : {a_, a_ + "/models"}) {
    ::testing::internal::CaptureStdout();
    EXPECT_EQ(run({"train", "forecast", "--trace", a_, "--model-dir", dir}), 2) << dir;
    EXPECT_EQ(::testing::internal::GetCapturedStdout(), "") << dir;
  }
}

// A trace given twice was trained on twice (its rows weighing double in the booster) and listed
// twice in the manifest's training.traces, without a word.
TEST_F(ForecastCliTest, ATraceGivenTwiceIsRefused) {
  const std::string again = (dir_.path() / "." / "a.csv").string();  // the same file
  EXPECT_EQ(run({"train", "forecast", "--trace", a_, "--trace", b_, "--trace", again, "--model-dir",
                 models_, "--no-validate"}),
            2);
  EXPECT_FALSE(std::filesystem::exists(models_));
}

TEST_F(ForecastCliTest, BadInputExits2) {
  EXPECT_EQ(run({"train", "forecast", "--trace", a_ + ".missing", "--model-dir", models_}), 2);
  EXPECT_EQ(run({"train", "forecast", "--trace", a_}), 2);
  EXPECT_FALSE(std::filesystem::exists(models_));
}

}  // namespace
}  // namespace prescale
