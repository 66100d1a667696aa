#include "services/recommend/model_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "services/recommend/internal/test_interactions.h"

namespace prescale::recommend {
namespace {

std::string KindName(const ::testing::TestParamInfo<ModelKind>& info) {
  return std::string(to_string(info.param));
}

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class RecommendModelFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("recommend_model_file_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::shared_ptr<const Model> train(ModelKind kind) {
    TrainOptions o;
    o.kind = kind;
    o.als.factors = 8;
    o.ease.min_item_interactions = 1;
    auto m = Model::train(testing::two_groups(), o);
    EXPECT_TRUE(m);
    return *m;
  }

  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static void write(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  }

  fs::path dir_;
};

class RecommendModelRoundTrip : public RecommendModelFileTest,
                                public ::testing::WithParamInterface<ModelKind> {};

TEST_P(RecommendModelRoundTrip, LoadedModelRecommendsExactlyAsTheSavedOne) {
  auto model = train(GetParam());
  SaveOptions so;
  so.data_hash = "0123456789abcdef";
  so.metrics = {{"ndcg_at_10", 0.25}};
  ManualClock clock;
  so.clock = &clock;
  auto saved = save_model(*model, dir_.string(), so);
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(saved->version, 1);
  EXPECT_EQ(fs::path(saved->model_path).filename(), "recommend-v1.bin");

  auto loaded = load_model(saved->manifest_path);
  ASSERT_TRUE(loaded) << loaded.error().message;
  const Model& m = **loaded;
  EXPECT_EQ(m.version(), 1);
  EXPECT_EQ(m.version_label(), "v1");
  EXPECT_EQ(m.kind(), GetParam());
  EXPECT_EQ(m.data_hash(), "0123456789abcdef");
  EXPECT_EQ(m.created_at(), "2026-01-01T00:00:00Z");
  EXPECT_EQ(m.metrics().at("ndcg_at_10"), 0.25);
  EXPECT_EQ(m.trained_through(), model->trained_through());
  for (int64_t user : {1, 25}) {
    Model::Query a, b;
    a.history = model->history(user);
    a.factors = model->factors(user);
    b.history = m.history(user);
    b.factors = m.factors(user);
    a.k = b.k = 10;
    const auto ra = model->recommend(a), rb = m.recommend(b);
    ASSERT_EQ(ra.size(), rb.size());
    for (size_t i = 0; i < ra.size(); ++i) {
      EXPECT_EQ(ra[i].item, rb[i].item);
      EXPECT_EQ(ra[i].score, rb[i].score);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, RecommendModelRoundTrip,
                         ::testing::Values(ModelKind::kTopPop, ModelKind::kItemKnn, ModelKind::kAls,
                                           ModelKind::kEase),
                         KindName);

TEST_F(RecommendModelFileTest, VersionsIncreaseAndTheLatestIsFound) {
  auto model = train(ModelKind::kTopPop);
  EXPECT_EQ(latest_manifest(dir_.string()).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(save_model(*model, dir_.string()));
  auto second = save_model(*model, dir_.string());
  ASSERT_TRUE(second);
  EXPECT_EQ(second->version, 2);
  auto latest = latest_manifest(dir_.string());
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->version, 2);
  EXPECT_EQ(latest->path, second->manifest_path);
}

// Two `prescale train recommend` runs that save into one directory at once: each gets a
// version of its own, and each version loads (its manifest and model file are one save's).
TEST_F(RecommendModelFileTest, ConcurrentSavesGetVersionsOfTheirOwn) {
  const std::vector<std::shared_ptr<const Model>> models = {
      train(ModelKind::kTopPop), train(ModelKind::kItemKnn), train(ModelKind::kAls),
      train(ModelKind::kEase)};
  for (int round = 0; round < 5; ++round) {
    fs::remove_all(dir_);
    std::atomic<int> ready{0};
    std::vector<int> versions(models.size(), 0);
    std::vector<std::thread> savers;
    for (size_t w = 0; w < models.size(); ++w) {
      savers.emplace_back([&, w] {
        ready.fetch_add(1);
        while (ready.load() < static_cast<int>(models.size())) std::this_thread::yield();
        if (auto saved = save_model(*models[w], dir_.string())) versions[w] = saved->version;
      });
    }
    for (std::thread& t : savers) t.join();
    std::vector<int> sorted = versions;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int>{1, 2, 3, 4})) << "round " << round;
    for (size_t w = 0; w < models.size(); ++w) {
      if (versions[w] == 0) continue;  // a save that failed, counted above
      auto loaded =
          load_model((dir_ / ("recommend-v" + std::to_string(versions[w]) + ".json")).string());
      ASSERT_TRUE(loaded) << "round " << round << ": " << loaded.error().message;
      EXPECT_EQ((*loaded)->kind(), models[w]->kind()) << "round " << round;
    }
  }
}

TEST_F(RecommendModelFileTest, ManifestErrorsNameTheFileAndField) {
  auto saved = save_model(*train(ModelKind::kAls), dir_.string());
  ASSERT_TRUE(saved);
  const std::string original = read(saved->manifest_path);

  auto manifest = nlohmann::json::parse(original);
  manifest["hyperparameters"]["factors"] = "many";
  write(saved->manifest_path, manifest.dump());
  auto r = load_model(saved->manifest_path);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr(saved->manifest_path + ": hyperparameters.factors"));

  manifest = nlohmann::json::parse(original);
  manifest.erase("file_hash");
  write(saved->manifest_path, manifest.dump());
  r = load_model(saved->manifest_path);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("file_hash: missing"));

  manifest = nlohmann::json::parse(original);
  manifest["model"] = "svd";
  write(saved->manifest_path, manifest.dump());
  r = load_model(saved->manifest_path);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("model: expected toppop, itemknn, als or ease"));

  write(saved->manifest_path, "{\"format\": ");
  r = load_model(saved->manifest_path);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr(saved->manifest_path + ": invalid JSON at byte"));
}

TEST_F(RecommendModelFileTest, ModelFileErrorsNameTheFileAndSection) {
  auto saved = save_model(*train(ModelKind::kAls), dir_.string());
  ASSERT_TRUE(saved);
  const std::string bytes = read(saved->model_path);

  // A changed byte: the hash no longer matches.
  std::string changed = bytes;
  changed[changed.size() / 2] ^= 0x5a;
  write(saved->model_path, changed);
  auto r = load_model(saved->manifest_path);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("file_hash: does not match " + saved->model_path));

  // A truncated file whose manifest agrees with it: the section that ends early is named.
  const std::string truncated = bytes.substr(0, bytes.size() - 100);
  write(saved->model_path, truncated);
  auto manifest = nlohmann::json::parse(read(saved->manifest_path));
  manifest["file_bytes"] = truncated.size();
  char hash[17];
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : truncated) h = (h ^ c) * 0x100000001b3ull;
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(h));
  manifest["file_hash"] = hash;
  write(saved->manifest_path, manifest.dump());
  r = load_model(saved->manifest_path);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr(saved->model_path + ": als.item_factors"));
  EXPECT_THAT(r.error().message, HasSubstr("truncated"));

  fs::remove(saved->model_path);
  r = load_model(saved->manifest_path);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr(saved->model_path));
}

}  // namespace
}  // namespace prescale::recommend
