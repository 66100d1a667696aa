#include "services/forecast/model_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "forecast/gbt_file.h"
#include "services/forecast/forecast_test_util.h"

namespace prescale::services::forecast_service {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

class ForecastModelFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    booster_ = testing::small_booster();
    ASSERT_NE(booster_, nullptr);
  }
  SavedModel save() {
    auto saved = save_model(*booster_, dir_.str(), testing::save_options(&clock_));
    EXPECT_TRUE(saved) << saved.error().to_string();
    return saved ? *saved : SavedModel{};
  }
  std::string load_error(const std::string& manifest) {
    auto m = load_model(manifest);
    EXPECT_FALSE(m);
    return m ? std::string() : m.error().message;
  }

  TempDir dir_;
  ManualClock clock_;
  std::shared_ptr<const forecast::GbtBooster> booster_;
};

TEST_F(ForecastModelFileTest, SavesTheNextVersionWithItsManifest) {
  EXPECT_EQ(save().version, 1);
  const SavedModel v2 = save();
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(std::filesystem::path(v2.manifest_path).filename(), "forecast-v2.json");
  EXPECT_EQ(std::filesystem::path(v2.booster_path).filename(), "forecast-v2.ubj");
  auto list = list_manifests(dir_.str());
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].version, 2);  // newest first

  const auto m = nlohmann::json::parse(testing::read_text(v2.manifest_path));
  EXPECT_EQ(m["format"], kModelFileFormat);
  EXPECT_EQ(m["version"], 2);
  EXPECT_EQ(m["model"], "gbt_global");
  EXPECT_EQ(m["created_at"], "2026-01-01T00:00:00Z");  // the ManualClock's wall time
  EXPECT_EQ(m["training"]["data_sha256"], sha256_hex("test data"));
  EXPECT_EQ(m["metrics"]["pinball_p90"], 1.5);
  EXPECT_EQ(m["booster_file"]["name"], "forecast-v2.ubj");
  EXPECT_EQ(m["booster_file"]["bytes"], std::filesystem::file_size(v2.booster_path));
  EXPECT_EQ(m["booster"]["features"][0], "horizon");
  // No temporary file is left behind.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
    ++files;
  }
  EXPECT_EQ(files, 4u);
}

TEST_F(ForecastModelFileTest, LoadsWhatItSaved) {
  const SavedModel saved = save();
  auto model = load_model(saved.manifest_path);
  ASSERT_TRUE(model) << model.error().to_string();
  EXPECT_EQ((*model)->version, 1);
  EXPECT_EQ((*model)->version_label(), "v1");
  EXPECT_EQ((*model)->created_at, "2026-01-01T00:00:00Z");
  EXPECT_EQ((*model)->booster->training_rows(), booster_->training_rows());
  EXPECT_EQ((*model)->booster->xgboost_model().value(), booster_->xgboost_model().value());
  EXPECT_EQ(ForecastModel{}.version_label(), "forecaster-1");
}

TEST_F(ForecastModelFileTest, SkipsABoosterLeftWithoutAManifest) {
  testing::write_text(dir_.path() / "forecast-v1.ubj", "interrupted save");
  EXPECT_EQ(save().version, 2);
  EXPECT_EQ(testing::read_text(dir_.path() / "forecast-v1.ubj"), "interrupted save");
}

// Two `prescale train forecast` runs that save into one directory at once: each gets a version
// of its own, and each version loads (its manifest and booster are one save's).
TEST_F(ForecastModelFileTest, ConcurrentSavesGetVersionsOfTheirOwn) {
  constexpr int kSavers = 4;
  std::vector<std::shared_ptr<const forecast::GbtBooster>> boosters;
  for (int w = 0; w < kSavers; ++w) {
    boosters.push_back(testing::small_booster(static_cast<unsigned>(w + 1)));
    ASSERT_NE(boosters.back(), nullptr);
  }
  for (int round = 0; round < 5; ++round) {
    TempDir dir;
    std::atomic<int> ready{0};
    std::vector<int> versions(kSavers, 0);
    std::vector<std::thread> savers;
    for (int w = 0; w < kSavers; ++w) {
      savers.emplace_back([&, w] {
        ready.fetch_add(1);
        while (ready.load() < kSavers) std::this_thread::yield();
        auto saved = save_model(*boosters[static_cast<size_t>(w)], dir.str(),
                                testing::save_options(&clock_));
        if (saved) versions[static_cast<size_t>(w)] = saved->version;
      });
    }
    for (std::thread& t : savers) t.join();
    std::vector<int> sorted = versions;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int>{1, 2, 3, 4})) << "round " << round;
    for (int version : sorted) {
      if (version == 0) continue;  // a save that failed, counted above
      auto model = load_model((dir.path() / manifest_file_name(version)).string());
      EXPECT_TRUE(model) << "round " << round << ": " << model.error().message;
    }
  }
}

// A stray manifest with the largest int in its name: "newest + 1" overflowed, and the model was
// saved as forecast-v-2147483648, which no listing ever serves.
TEST_F(ForecastModelFileTest, NoVersionAfterTheLargestOneAFileCanHave) {
  testing::write_text(dir_.path() / "forecast-v2147483647.json", "{}");
  auto saved = save_model(*booster_, dir_.str(), testing::save_options(&clock_));
  ASSERT_FALSE(saved) << "saved as " << saved->manifest_path;
  EXPECT_EQ(saved.error().code, ErrorCode::kOutOfRange);
  EXPECT_THAT(saved.error().message, HasSubstr("forecast-v2147483647.json"));
}

TEST_F(ForecastModelFileTest, RefusesCorruptOrPartialFilesNamingThem) {
  const SavedModel saved = save();
  const std::string ubj = testing::read_text(saved.booster_path);
  const std::string manifest = testing::read_text(saved.manifest_path);

  testing::write_text(saved.booster_path, ubj.substr(0, ubj.size() / 2));
  EXPECT_THAT(load_error(saved.manifest_path),
              HasSubstr(saved.booster_path + ": (file): " + std::to_string(ubj.size() / 2) +
                        " bytes; the manifest says " + std::to_string(ubj.size())));
  std::string flipped = ubj;
  flipped[flipped.size() / 2] ^= 0x55;
  testing::write_text(saved.booster_path, flipped);
  EXPECT_THAT(load_error(saved.manifest_path), HasSubstr(saved.booster_path + ": (file): SHA-256"));
  std::filesystem::remove(saved.booster_path);
  EXPECT_THAT(load_error(saved.manifest_path), HasSubstr(saved.booster_path));
  testing::write_text(saved.booster_path, ubj);

  testing::write_text(saved.manifest_path, manifest.substr(0, manifest.size() / 2));
  EXPECT_THAT(load_error(saved.manifest_path),
              HasSubstr(saved.manifest_path + ": invalid JSON at byte"));

  auto with = [&](auto edit) {
    auto m = nlohmann::json::parse(manifest);
    edit(m);
    testing::write_text(saved.manifest_path, m.dump());
    return load_error(saved.manifest_path);
  };
  EXPECT_THAT(with([](auto& m) { m["version"] = 3; }),
              HasSubstr("forecast-v1.json: version: 3 differs from the file name's 1"));
  EXPECT_THAT(with([](auto& m) { m["format_version"] = 2; }), HasSubstr("format_version"));
  EXPECT_THAT(with([](auto& m) { m.erase("metrics"); }), HasSubstr("metrics: missing"));
  EXPECT_THAT(with([](auto& m) { m["training"]["data_sha256"] = "abc"; }),
              HasSubstr("training.data_sha256: expected 64 lowercase hex digits"));
  EXPECT_THAT(with([](auto& m) { m["booster"]["options"]["max_depth"] = -1; }),
              HasSubstr("forecast-v1.json: booster.options.max_depth: expected"));
  EXPECT_THAT(with([](auto& m) { m["booster_file"]["name"] = "../other.ubj"; }),
              HasSubstr("booster_file.name: expected \"forecast-v1.ubj\""));
}

TEST_F(ForecastModelFileTest, NamesOnlyWellFormedManifests) {
  EXPECT_EQ(manifest_version("forecast-v12.json"), 12);
  EXPECT_EQ(manifest_version("forecast-v012.json"), std::nullopt);
  EXPECT_EQ(manifest_version("forecast-v1.ubj"), std::nullopt);
  EXPECT_EQ(manifest_version(".forecast-v1.json.tmp"), std::nullopt);
  EXPECT_EQ(manifest_version("fraud-v1.json"), std::nullopt);
  auto missing = list_manifests((dir_.path() / "none").string());
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->empty());
}

TEST_F(ForecastModelFileTest, SaveNeedsTheTrainingDataHash) {
  SaveOptions o = testing::save_options();
  o.training = {{"traces", 1}};
  auto saved = save_model(*booster_, dir_.str(), o);
  ASSERT_FALSE(saved);
  EXPECT_THAT(saved.error().message, HasSubstr("data_sha256"));
}

}  // namespace
}  // namespace prescale::services::forecast_service
