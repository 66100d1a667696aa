#include "services/forecast/model_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "core/clock.h"
#include "services/forecast/forecast_test_util.h"
#include "telemetry/registry.h"

namespace prescale::services::forecast_service {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::TempDir;

class ForecastModelStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<ModelStore> make_store(std::string dir) {
    return std::make_unique<ModelStore>(ModelStoreOptions{.directory = std::move(dir),
                                                          .clock = &clock_,
                                                          .poll_interval = 5s,
                                                          .background_poll = false,
                                                          .registry = &registry_});
  }
  int save(unsigned seed = 1) {
    auto booster = testing::small_booster(seed);
    EXPECT_NE(booster, nullptr);
    auto saved = save_model(*booster, dir_.str(), testing::save_options(&clock_));
    EXPECT_TRUE(saved) << saved.error().to_string();
    return saved ? saved->version : 0;
  }
  double info(const std::string& version) {
    return registry_
        .gauge("prescale_model_info", "The model a service serves: 1 for its version",
               {"service", "version"})
        .with({"forecast", version})
        .value();
  }
  double reloads(const std::string& result) {
    return registry_
        .counter("prescale_forecast_reloads_total",
                 "Model versions the forecast service tried to load, by result", {"result"})
        .with({result})
        .value();
  }

  TempDir dir_;
  ManualClock clock_;
  telemetry::Registry registry_;
};

TEST_F(ForecastModelStoreTest, WithoutADirectoryServesTheMethodAlone) {
  auto store = make_store("");
  EXPECT_EQ(store->current()->version, 0);
  EXPECT_EQ(store->current()->booster, nullptr);
  EXPECT_EQ(store->current()->version_label(), "forecaster-1");
  EXPECT_EQ(info("forecaster-1"), 1);
  EXPECT_EQ(store->reload().value(), false);
}

TEST_F(ForecastModelStoreTest, PollsForTheHighestVersionOnTheClock) {
  save();
  auto store = make_store(dir_.str());
  ASSERT_EQ(store->reload().value(), true);
  EXPECT_EQ(store->current()->version_label(), "v1");
  EXPECT_EQ(info("v1"), 1);
  EXPECT_EQ(info("forecaster-1"), 0);

  save(2);
  const std::shared_ptr<const ForecastModel> in_flight = store->current();
  EXPECT_EQ(store->poll().value(), false);  // not due yet
  clock_.advance(5s);
  EXPECT_EQ(store->poll().value(), true);
  EXPECT_EQ(store->current()->version_label(), "v2");
  EXPECT_EQ(info("v1"), 0);
  EXPECT_EQ(info("v2"), 1);
  EXPECT_EQ(reloads("loaded"), 2);
  // A fit that started on v1 keeps its booster.
  EXPECT_EQ(in_flight->version, 1);
  EXPECT_NE(in_flight->booster, nullptr);
  EXPECT_NE(in_flight->booster, store->current()->booster);

  clock_.advance(5s);
  EXPECT_EQ(store->poll().value(), false);  // nothing new
  EXPECT_EQ(reloads("loaded"), 2);

  // Removing the newest rolls back to the one before.
  std::filesystem::remove(dir_.path() / "forecast-v2.json");
  EXPECT_EQ(store->reload().value(), true);
  EXPECT_EQ(store->current()->version_label(), "v1");
}

TEST_F(ForecastModelStoreTest, ABrokenNewVersionKeepsTheServedOneAndIsCountedOnce) {
  save();
  auto store = make_store(dir_.str());
  ASSERT_TRUE(store->reload());
  const int v2 = save(2);
  const auto ubj = dir_.path() / booster_file_name(v2);
  const std::string good = testing::read_text(ubj);
  testing::write_text(ubj, good.substr(0, 100));

  auto r = store->reload();
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("forecast-v2.ubj"));
  EXPECT_EQ(store->current()->version_label(), "v1");
  EXPECT_EQ(info("v1"), 1);
  EXPECT_EQ(reloads("failed"), 1);
  EXPECT_FALSE(store->reload());  // not retried until the manifest changes
  EXPECT_EQ(reloads("failed"), 1);

  // A good newer version is picked up.
  testing::write_text(ubj, good);
  save(3);
  EXPECT_EQ(store->reload().value(), true);
  EXPECT_EQ(store->current()->version_label(), "v3");
}

TEST_F(ForecastModelStoreTest, AtStartABrokenNewestFallsBackToTheOneBefore) {
  save();
  const int v2 = save(2);
  testing::write_text(dir_.path() / manifest_file_name(v2), "{\"format\":");
  auto store = make_store(dir_.str());
  auto r = store->reload();
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("forecast-v2.json: invalid JSON"));
  EXPECT_EQ(store->current()->version_label(), "v1");
  EXPECT_EQ(reloads("failed"), 1);
  EXPECT_EQ(reloads("loaded"), 1);
}

// The booster is part of a version: a manifest copied before its .ubj fails, and is read again
// once the .ubj is there, not only when the manifest changes.
TEST_F(ForecastModelStoreTest, AManifestCopiedBeforeItsBoosterLoadsOnceTheBoosterIsThere) {
  save();
  auto store = make_store(dir_.str());
  ASSERT_EQ(store->reload().value(), true);
  const int v2 = save(2);
  const auto ubj = dir_.path() / booster_file_name(v2);
  const std::string booster = testing::read_text(ubj);
  std::filesystem::remove(ubj);

  auto r = store->reload();
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("forecast-v2.ubj"));
  EXPECT_EQ(reloads("failed"), 1);
  clock_.advance(5s);
  EXPECT_FALSE(store->poll());  // nothing changed: not read again
  EXPECT_EQ(reloads("failed"), 1);

  testing::write_text(ubj, booster);
  clock_.advance(5s);
  auto polled = store->poll();
  ASSERT_TRUE(polled) << polled.error().message;
  EXPECT_TRUE(*polled);
  EXPECT_EQ(store->current()->version_label(), "v2");
}

// An explicit reload reads a failed version again even when its files look unchanged (here: the
// booster mended in place with the same size and time).
TEST_F(ForecastModelStoreTest, AnExplicitReloadReadsAFailedVersionAgain) {
  save();
  auto store = make_store(dir_.str());
  ASSERT_TRUE(store->reload());
  const int v2 = save(2);
  const auto ubj = dir_.path() / booster_file_name(v2);
  const std::string good = testing::read_text(ubj);
  const auto written = std::filesystem::last_write_time(ubj);
  std::string corrupt = good;
  corrupt[corrupt.size() / 2] ^= 1;
  testing::write_text(ubj, corrupt);
  std::filesystem::last_write_time(ubj, written);
  EXPECT_FALSE(store->reload());
  EXPECT_EQ(reloads("failed"), 1);

  testing::write_text(ubj, good);
  std::filesystem::last_write_time(ubj, written);
  EXPECT_FALSE(store->reload());  // the poller's look: unchanged, not read again
  EXPECT_EQ(reloads("failed"), 1);
  auto r = store->reload_retrying_failed();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(*r);
  EXPECT_EQ(store->current()->version_label(), "v2");
}

}  // namespace
}  // namespace prescale::services::forecast_service
