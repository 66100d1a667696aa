#include "services/fraud/model_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "services/fraud/fraud_test_util.h"
#include "services/fraud/model_file.h"
#include "telemetry/registry.h"

namespace prescale::fraud {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

double gauge(telemetry::Registry& r, const std::string& version) {
  return r
      .gauge("prescale_model_info", "The model a service serves: 1 for its version",
             {"service", "version"})
      .with({"fraud", version})
      .value();
}
double reloads(telemetry::Registry& r, std::string_view result) {
  return r
      .counter("prescale_fraud_model_reloads_total",
               "Model files the fraud service tried to load, by result", {"result"})
      .with({result})
      .value();
}

class ModelStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new Transactions(testing::generated_transactions(500, 9));
    auto trained = train_model(*data_, testing::quick_options(), 1, "2026-01-01T00:00:00Z");
    ASSERT_TRUE(trained) << trained.error().message;
    trained_ = new TrainedModel(std::move(*trained));
  }
  static void TearDownTestSuite() {
    delete trained_;
    delete data_;
  }

  // Writes the trained model as `version` (the same trees under another version number).
  void write_version(int version) {
    ModelInfo info = trained_->model->info();
    info.version = version;
    ASSERT_TRUE(write_model_file(dir_.str(), info, trained_->body));
  }
  int served_version(const ModelStore& store) {
    auto m = store.current();
    return m ? m->info().version : 0;
  }

  static Transactions* data_;
  static TrainedModel* trained_;
  testing::TempDir dir_;
  telemetry::Registry registry_;
};
Transactions* ModelStoreTest::data_ = nullptr;
TrainedModel* ModelStoreTest::trained_ = nullptr;

TEST_F(ModelStoreTest, LoadsTheNewestVersionAndOnlyChangesOnce) {
  ModelStore store({.directory = dir_.str(),
                    .clock = &Clock::real(),
                    .poll_period = 1s,
                    .registry = &registry_});
  EXPECT_EQ(store.current(), nullptr);
  EXPECT_EQ(gauge(registry_, "rules-v1"), 1);
  EXPECT_EQ(store.reload(), false);  // an empty directory

  write_version(1);
  write_version(2);
  EXPECT_EQ(store.reload(), true);
  EXPECT_EQ(served_version(store), 2);
  EXPECT_EQ(store.reload(), false);
  EXPECT_EQ(gauge(registry_, "fraud-v2"), 1);
  EXPECT_EQ(gauge(registry_, "rules-v1"), 0);

  write_version(5);
  EXPECT_EQ(store.reload(), true);
  EXPECT_EQ(served_version(store), 5);
  EXPECT_EQ(gauge(registry_, "fraud-v5"), 1);
  EXPECT_EQ(gauge(registry_, "fraud-v2"), 0);
  EXPECT_EQ(reloads(registry_, "loaded"), 2);

  // Removing the newest file rolls back to the one before.
  std::filesystem::remove(dir_.path() / "fraud-v5.json");
  EXPECT_EQ(store.reload(), true);
  EXPECT_EQ(served_version(store), 2);
  // Removing every file keeps the model in memory.
  std::filesystem::remove(dir_.path() / "fraud-v2.json");
  std::filesystem::remove(dir_.path() / "fraud-v1.json");
  EXPECT_EQ(store.reload(), false);
  EXPECT_EQ(served_version(store), 2);
}

TEST_F(ModelStoreTest, KeepsServingWhenANewFileIsBroken) {
  ModelStore store({.directory = dir_.str(),
                    .clock = &Clock::real(),
                    .poll_period = 1s,
                    .registry = &registry_});
  write_version(1);
  ASSERT_EQ(store.reload(), true);
  testing::write_text(dir_.path() / "fraud-v2.json", "{\"format\": \"prescale-fraud-model\"}");
  auto failed = store.reload();
  ASSERT_FALSE(failed);
  EXPECT_THAT(failed.error().message, HasSubstr("fraud-v2.json: format_version: missing"));
  EXPECT_EQ(served_version(store), 1);
  EXPECT_EQ(reloads(registry_, "failed"), 1);
  // Unchanged, it is not retried (nor counted) again, but still reported.
  EXPECT_FALSE(store.reload());
  EXPECT_EQ(reloads(registry_, "failed"), 1);
  // Fixed in place (a new write), it loads.
  std::filesystem::remove(dir_.path() / "fraud-v2.json");
  write_version(2);
  EXPECT_EQ(store.reload(), true);
  EXPECT_EQ(served_version(store), 2);
}

TEST_F(ModelStoreTest, StartsFromAnOlderFileWhenTheNewestIsBroken) {
  write_version(1);
  testing::write_text(dir_.path() / "fraud-v2.json", "not json");
  ModelStore store({.directory = dir_.str(),
                    .clock = &Clock::real(),
                    .poll_period = 1s,
                    .registry = &registry_});
  auto result = store.reload();
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error().message, HasSubstr("fraud-v2.json: invalid JSON at byte"));
  EXPECT_EQ(served_version(store), 1);
}

TEST_F(ModelStoreTest, WatcherReloadsOnTheInjectedClock) {
  ManualClock clock;
  ModelStore store(
      {.directory = dir_.str(), .clock = &clock, .poll_period = 5s, .registry = &registry_});
  store.start_watching();
  write_version(1);
  // The watcher looks only when the injected clock has moved a poll period on.
  const auto wait_for_version = [&](int version) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (served_version(store) != version && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    return served_version(store);
  };
  clock.advance(5s);
  EXPECT_EQ(wait_for_version(1), 1);
  write_version(2);
  clock.advance(5s);
  EXPECT_EQ(wait_for_version(2), 2);
  store.stop_watching();
}

TEST_F(ModelStoreTest, SwapsWhileScoringWithoutAFailure) {
  ModelStore store({.directory = dir_.str(),
                    .clock = &Clock::real(),
                    .poll_period = 1s,
                    .registry = &registry_});
  write_version(1);
  ASSERT_EQ(store.reload(), true);
  std::atomic<bool> stop{false};
  std::atomic<size_t> scored{0}, failures{0};
  std::vector<std::thread> scorers;
  for (int t = 0; t < 4; ++t) {
    scorers.emplace_back([&, t] {
      int last = 0;
      for (size_t i = static_cast<size_t>(t); !stop.load(); i = (i + 1) % data_->size()) {
        auto model = store.current();
        const int version = model ? model->info().version : 0;
        const double p = model ? model->score(data_->rows[i]).probability : -1;
        // Never without a model, never an older version than seen before, always a probability.
        if (model == nullptr || version < last || !(p >= 0 && p <= 1)) ++failures;
        last = version;
        ++scored;
      }
    });
  }
  for (int version = 2; version <= 30; ++version) {
    write_version(version);
    auto changed = store.reload();
    EXPECT_TRUE(changed && *changed) << version;
  }
  while (scored.load() < 20000) std::this_thread::yield();
  stop = true;
  for (auto& t : scorers) t.join();
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_EQ(served_version(store), 30);
}

}  // namespace
}  // namespace prescale::fraud
