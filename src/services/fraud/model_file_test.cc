#include "services/fraud/model_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "forecast/csv.h"
#include "services/fraud/fraud_test_util.h"

namespace prescale::fraud {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class ModelFileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new Transactions(testing::generated_transactions(600, 4));
    auto trained = train_model(*data_, testing::quick_options(), 3, "2026-01-01T00:00:00Z");
    ASSERT_TRUE(trained) << trained.error().message;
    gbt_ = new TrainedModel(std::move(*trained));
  }
  static void TearDownTestSuite() {
    delete gbt_;
    delete data_;
  }

  // The GBT file's text with `edit` applied to its JSON, written as fraud-v3.json.
  std::string write_edited(const std::function<void(json&)>& edit) {
    json m = json::parse(model_file_text(gbt_->model->info(), gbt_->body));
    edit(m);
    const auto path = dir_.path() / "fraud-v3.json";
    testing::write_text(path, m.dump());
    return path.string();
  }
  std::string load_error(const std::function<void(json&)>& edit) {
    auto model = load_model_file(write_edited(edit));
    EXPECT_FALSE(model);
    return model ? std::string() : model.error().message;
  }

  static Transactions* data_;
  static TrainedModel* gbt_;
  testing::TempDir dir_;
};
Transactions* ModelFileTest::data_ = nullptr;
TrainedModel* ModelFileTest::gbt_ = nullptr;

TEST(ModelFileNames, CarryTheVersion) {
  EXPECT_EQ(model_file_name(3), "fraud-v3.json");
  EXPECT_EQ(model_file_version("fraud-v3.json"), 3);
  EXPECT_EQ(model_file_version("fraud-v120.json"), 120);
  EXPECT_FALSE(model_file_version("fraud-v03.json"));
  EXPECT_FALSE(model_file_version("fraud-v.json"));
  EXPECT_FALSE(model_file_version("fraud-v3.json.tmp"));
  EXPECT_FALSE(model_file_version(".fraud-v3.json.tmp"));
  EXPECT_FALSE(model_file_version("fraud-v3a.json"));
  EXPECT_FALSE(model_file_version("recommend-v3.json"));
}

TEST_F(ModelFileTest, RoundTripsBothKinds) {
  auto path = write_model_file(dir_.str(), gbt_->model->info(), gbt_->body);
  ASSERT_TRUE(path) << path.error().message;
  EXPECT_EQ(std::filesystem::path(*path).filename(), "fraud-v3.json");
  auto loaded = load_model_file(*path);
  ASSERT_TRUE(loaded) << loaded.error().message;
  const Model& m = **loaded;
  EXPECT_EQ(m.name(), "fraud-v3");
  EXPECT_EQ(m.info().kind, ModelKind::kGradientBoostedTrees);
  EXPECT_EQ(m.info().threshold, gbt_->model->info().threshold);
  EXPECT_EQ(m.info().positive_weight, gbt_->model->info().positive_weight);
  EXPECT_EQ(m.info().training["data_sha256"], std::string(64, '0'));
  EXPECT_EQ(m.info().metrics["baseline"]["model"], "logistic_regression");
  ASSERT_NE(m.trees(), nullptr);
  for (size_t i = 0; i < data_->size(); i += 7) {
    EXPECT_EQ(m.probability(data_->rows[i]), gbt_->model->probability(data_->rows[i]));
  }

  auto lr = train_model(*data_, testing::quick_options(ModelKind::kLogisticRegression), 4,
                        "2026-01-01T00:00:00Z");
  ASSERT_TRUE(lr) << lr.error().message;
  auto lr_path = write_model_file(dir_.str(), lr->model->info(), lr->body);
  ASSERT_TRUE(lr_path);
  auto lr_loaded = load_model_file(*lr_path);
  ASSERT_TRUE(lr_loaded) << lr_loaded.error().message;
  ASSERT_NE((*lr_loaded)->logistic(), nullptr);
  EXPECT_EQ((*lr_loaded)->probability(data_->rows[5]), lr->model->probability(data_->rows[5]));

  auto versions = list_model_files(dir_.str());
  ASSERT_TRUE(versions);
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].version, 4);
  EXPECT_EQ(next_model_version(dir_.str()), 5);
  EXPECT_EQ(next_model_version((dir_.path() / "none").string()), 1);
}

TEST_F(ModelFileTest, NeverOverwritesAVersion) {
  ASSERT_TRUE(write_model_file(dir_.str(), gbt_->model->info(), gbt_->body));
  auto again = write_model_file(dir_.str(), gbt_->model->info(), gbt_->body);
  ASSERT_FALSE(again);
  EXPECT_THAT(again.error().message, HasSubstr("fraud-v3.json: exists"));
}

// Two `prescale train fraud` runs that picked the same version write at once: one writes the
// file, whole, and the other is told it exists (neither replaces the other's file).
TEST_F(ModelFileTest, ConcurrentWritersOfOneVersionLeaveOneWholeFile) {
  constexpr int kWriters = 4;
  for (int round = 0; round < 10; ++round) {
    testing::TempDir dir;
    std::atomic<int> ready{0};
    std::atomic<int> written{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&] {
        ready.fetch_add(1);
        while (ready.load() < kWriters) std::this_thread::yield();
        if (write_model_file(dir.str(), gbt_->model->info(), gbt_->body)) written.fetch_add(1);
      });
    }
    for (std::thread& t : writers) t.join();
    EXPECT_EQ(written.load(), 1) << "round " << round;
    auto loaded = load_model_file((dir.path() / "fraud-v3.json").string());
    EXPECT_TRUE(loaded) << loaded.error().message;
    size_t files = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      ++files;
    }
    EXPECT_EQ(files, 1u) << "round " << round << ": temporary files left";
  }
}

// A stray file with the largest int in its name: "newest + 1" overflowed, and the next model
// was written as fraud-v-2147483648.json, which no listing ever serves.
TEST_F(ModelFileTest, NoVersionAfterTheLargestOneAFileCanHave) {
  testing::write_text(dir_.path() / "fraud-v2147483647.json", "{}");
  auto next = next_model_version(dir_.str());
  ASSERT_FALSE(next) << "next version " << *next;
  EXPECT_EQ(next.error().code, ErrorCode::kOutOfRange);
  EXPECT_THAT(next.error().message, HasSubstr("fraud-v2147483647.json"));
}

TEST_F(ModelFileTest, ErrorsNameTheFileAndTheField) {
  const std::string file = (dir_.path() / "fraud-v3.json").string();
  EXPECT_THAT(load_error([](json& m) { m["threshold"] = 1.5; }),
              HasSubstr(file + ": threshold: expected a number in (0, 1)"));
  EXPECT_THAT(load_error([](json& m) { m.erase("threshold"); }),
              HasSubstr(file + ": threshold: missing"));
  EXPECT_THAT(load_error([](json& m) { m["version"] = 4; }),
              HasSubstr(file + ": version: 4 differs from the file name's 3"));
  EXPECT_THAT(load_error([](json& m) { m["feature_names"][3] = "V4"; }),
              HasSubstr(file + ": feature_names[3]: expected \"V3\""));
  EXPECT_THAT(load_error([](json& m) { m["format_version"] = 2; }),
              HasSubstr(file + ": format_version: expected 1"));
  EXPECT_THAT(load_error([](json& m) { m["model"] = "random_forest"; }),
              HasSubstr(file + ": model: expected \"gradient_boosted_trees\" or"));
  EXPECT_THAT(load_error([](json& m) { m["training"]["data_sha256"] = "abc"; }),
              HasSubstr(file + ": training.data_sha256: expected 64 lowercase hex digits"));
  EXPECT_THAT(load_error([](json& m) { m["positive_weight"] = 0; }),
              HasSubstr(file + ": positive_weight: expected a number > 0"));
  EXPECT_THAT(load_error([](json& m) { m.erase("xgboost_model"); }),
              HasSubstr(file + ": xgboost_model: missing"));
  EXPECT_THAT(load_error([](json& m) {
                m["xgboost_model"]["learner"]["gradient_booster"]["model"]["trees"][2]
                 ["split_conditions"][0] = "x";
              }),
              HasSubstr(file + ": xgboost_model.learner.gradient_booster.model.trees[2]."
                               "split_conditions[0]: expected a finite number"));

  const auto path = dir_.path() / "fraud-v3.json";
  testing::write_text(path, "{\"format\": \"prescale-fraud-model\",");
  auto truncated = load_model_file(path.string());
  ASSERT_FALSE(truncated);
  EXPECT_THAT(truncated.error().message, HasSubstr(file + ": invalid JSON at byte"));
}

TEST_F(ModelFileTest, ValidatesLogisticCoefficients) {
  auto lr = train_model(*data_, testing::quick_options(ModelKind::kLogisticRegression), 3,
                        "2026-01-01T00:00:00Z");
  ASSERT_TRUE(lr);
  json m = json::parse(model_file_text(lr->model->info(), lr->body));
  m["logistic_regression"]["scales"][7] = 0;
  const auto path = dir_.path() / "fraud-v3.json";
  testing::write_text(path, m.dump());
  auto loaded = load_model_file(path.string());
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message, HasSubstr(": logistic_regression.scales[7]: expected > 0"));
  m["logistic_regression"]["coefficients"] = json::array({1, 2});
  testing::write_text(path, m.dump());
  loaded = load_model_file(path.string());
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message,
              HasSubstr(": logistic_regression.coefficients: expected an array of 30 numbers"));
}

}  // namespace
}  // namespace prescale::fraud
