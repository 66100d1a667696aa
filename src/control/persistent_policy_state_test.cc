#include "control/persistent_policy_state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>

#include "scaling/capacity_model.h"

namespace prescale::control {
namespace {

using namespace std::chrono_literals;
using scaling::PrescalePolicy;
using scaling::PrescalePolicyOptions;

// The "day" of the forecasting models is an hour, so a few hours of history teach the season.
PrescalePolicyOptions options() {
  PrescalePolicyOptions o;
  o.forecaster.model.day_seconds = 3600;
  o.forecaster.model.week_seconds = 7 * 3600;
  o.min_history = 120min;
  return o;
}

scaling::ServiceSpec spec(std::string name) {
  scaling::ServiceSpec s;
  s.name = std::move(name);
  s.min_replicas = 1;
  s.max_replicas = 100;
  s.capacity_rps = 100;
  s.max_concurrency = 4;
  s.startup_time = 60s;
  return s;
}

std::vector<scaling::ServiceSpec> specs() { return {spec("front"), spec("back")}; }

// front serves an hourly season with noise and calls back 1.5 times a request; back also has
// clients of its own (a steady 40 req/s with noise, reported as external); replicas stay ready, and
// the windows carry the M/M/c occupancy of a 20 ms service time, so both learners learn. Scraped
// every 15 s over 30 s windows.
class World {
 public:
  scaling::Snapshot scrape(Clock::TimePoint now) {
    const double t = to_seconds(now.time_since_epoch());
    const double front =
        std::max(0.0, 200 + 120 * std::sin(2 * std::numbers::pi * t / 3600) + noise_(rng_));
    const double own = std::max(0.0, 40 + noise_(rng_) / 2);
    const double rates[] = {front, 1.5 * front + own};
    const double external[] = {front, own};
    scaling::Snapshot snap;
    snap.time = now;
    for (int i = 0; i < 2; ++i) {
      served_[i] += rates[i] * 15;
      scaling::ServiceObservation o;
      o.name = i == 0 ? "front" : "back";
      o.desired_replicas = kReplicas;
      for (int r = 0; r < kReplicas; ++r) {
        scaling::ReplicaObservation replica;
        replica.id = o.name + "-" + std::to_string(r);
        replica.state = scaling::ReplicaState::kReady;
        replica.ready_at = Clock::TimePoint{} - 1h;
        o.replicas.push_back(replica);
      }
      scaling::WindowMetrics& w = o.window;
      w.sampled_at = now;
      w.length = 30s;
      w.arrival_rps = w.served_rps = rates[i];
      w.external_rps = external[i];
      w.served_total = served_[i];
      w.concurrency = scaling::mmc_mean_in_system(kReplicas * 4, rates[i] * 0.02);
      w.latency_p99_seconds = scaling::mmc_p99_seconds(kReplicas * 4, rates[i], 0.02);
      o.last_second = {now, w.concurrency, rates[i], true};
      snap.services.push_back(std::move(o));
    }
    calls_ += front * 1.5 * 15;
    snap.edges.push_back({"front", "back", calls_});
    return snap;
  }

 private:
  static constexpr int kReplicas = 10;
  std::mt19937_64 rng_{7};
  std::normal_distribution<double> noise_{0, 10};
  double served_[2] = {0, 0};
  double calls_ = 0;
};

void run(PrescalePolicy& policy, World& world, ManualClock& clock, Clock::Duration duration) {
  const Clock::TimePoint until = clock.now() + duration;
  while (clock.now() < until) {
    clock.advance(15s);
    const scaling::Snapshot s = world.scrape(clock.now());
    policy.observe(s);
    (void)policy.decide(s, clock.now());
  }
}

// The largest relative difference between two forecasts' quantile paths.
double max_relative_difference(const forecast::QuantileForecast& a,
                               const forecast::QuantileForecast& b) {
  EXPECT_EQ(a.p50.size(), b.p50.size());
  double worst = 0;
  auto compare = [&](const std::vector<double>& x, const std::vector<double>& y) {
    for (size_t h = 0; h < std::min(x.size(), y.size()); ++h) {
      worst = std::max(worst, std::abs(x[h] - y[h]) / std::max(std::abs(x[h]), 1e-9));
    }
  };
  compare(a.p50, b.p50);
  compare(a.p90, b.p90);
  compare(a.p99, b.p99);
  return worst;
}

class PersistentPolicyStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "prescale-state-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  HistoryStore open() {
    auto store = HistoryStore::open(dir_);
    EXPECT_TRUE(store) << store.error().to_string();
    return std::move(*store);
  }

  std::filesystem::path dir_;
};

void expect_same_learning(const PrescalePolicy& a, const PrescalePolicy& b) {
  EXPECT_DOUBLE_EQ(a.topology().fanout("front", "back"), b.topology().fanout("front", "back"));
  for (const char* service : {"front", "back"}) {
    EXPECT_DOUBLE_EQ(a.capacity().capacity_rps(service), b.capacity().capacity_rps(service));
    EXPECT_DOUBLE_EQ(a.capacity().service_time_seconds(service),
                     b.capacity().service_time_seconds(service));
    EXPECT_EQ(a.capacity().samples(service), b.capacity().samples(service));
  }
  EXPECT_DOUBLE_EQ(a.planning_quantile(), b.planning_quantile());
}

TEST_F(PersistentPolicyStateTest, ARestartKeepsTheForecastTopologyAndCapacity) {
  ManualClock clock;
  World world;
  PrescalePolicy before(options());
  before.init(specs());
  HistoryStore store = open();
  // Saved once a minute, as the controller does, through four hours of demand.
  for (int minute = 0; minute < 4 * 60; ++minute) {
    run(before, world, clock, 1min);
    ASSERT_TRUE(save_policy_state(store, before, clock.now(), clock.wall_now()));
  }
  const auto forecast_before = before.demand_forecast("front");
  ASSERT_FALSE(forecast_before.p50.empty());
  EXPECT_NEAR(before.topology().fanout("front", "back"), 1.5, 0.01);
  EXPECT_GT(before.capacity().samples("front"), 0);

  // A new process: a fresh store handle and policy.
  HistoryStore reopened = open();
  PrescalePolicy after(options());
  after.init(specs());
  auto restored = restore_policy_state(reopened, after, clock.now(), clock.wall_now());
  ASSERT_TRUE(restored) << restored.error().to_string();
  EXPECT_TRUE(*restored);

  const auto forecast_after = after.demand_forecast("front");
  EXPECT_EQ(forecast_after.model, forecast_before.model);
  const double difference = max_relative_difference(forecast_before, forecast_after);
  std::printf("[state] forecast after the restart: largest relative difference %.2g\n", difference);
  EXPECT_LT(difference, 0.01);  // the acceptance criterion
  EXPECT_LT(difference, 1e-5);  // in fact the same, to the float rounding of the history
  expect_same_learning(before, after);
  auto history_before = before.history("front");
  auto history_after = after.history("front");
  ASSERT_TRUE(history_before && history_after);
  EXPECT_EQ(history_before->start_seconds, history_after->start_seconds);
  ASSERT_EQ(history_before->values.size(), history_after->values.size());
  for (size_t i = 0; i < history_before->values.size(); ++i) {
    EXPECT_EQ(history_before->values[i], history_after->values[i]) << i;
  }
  // back's own clients, a series of their own, come back too.
  using Kind = PrescalePolicy::SeriesKind;
  auto own_before = before.history("back", Kind::kExternal);
  auto own_after = after.history("back", Kind::kExternal);
  ASSERT_TRUE(own_before && own_after);
  EXPECT_GT(own_before->values.size(), 200u);
  EXPECT_EQ(own_before->start_seconds, own_after->start_seconds);
  EXPECT_EQ(own_before->values, own_after->values);

  // Both go on learning from the same scrapes and stay together.
  World twin = world;
  ManualClock clock_twin(clock.wall_now() - clock.now().time_since_epoch());
  clock_twin.set(clock.now());
  run(before, world, clock, 30min);
  run(after, twin, clock_twin, 30min);
  EXPECT_LT(
      max_relative_difference(before.demand_forecast("front"), after.demand_forecast("front")),
      0.01);
  EXPECT_NEAR(before.topology().fanout("front", "back"), after.topology().fanout("front", "back"),
              1e-9);
  EXPECT_NEAR(before.capacity().capacity_rps("back"), after.capacity().capacity_rps("back"), 1e-6);
}

TEST_F(PersistentPolicyStateTest, AFirstStartHasNothingToRestore) {
  ManualClock clock;
  HistoryStore store = open();
  PrescalePolicy policy(options());
  policy.init(specs());
  auto restored = restore_policy_state(store, policy, clock.now(), clock.wall_now());
  ASSERT_TRUE(restored);
  EXPECT_FALSE(*restored);
  EXPECT_TRUE(policy.demand_forecast("front").p50.empty());
}

TEST_F(PersistentPolicyStateTest, MinutesWhileDownAreGapsAndTheSeasonStaysAligned) {
  ManualClock clock;
  World world;
  PrescalePolicy before(options());
  before.init(specs());
  HistoryStore store = open();
  run(before, world, clock, 150min);
  ASSERT_TRUE(save_policy_state(store, before, clock.now(), clock.wall_now()));
  const Clock::WallTime saved_wall = clock.wall_now();
  auto saved_history = before.history("front");
  ASSERT_TRUE(saved_history);

  // Down for ten minutes, then up on the same machine ...
  const Clock::TimePoint later = clock.now() + 10min;
  PrescalePolicy same_boot(options());
  same_boot.init(specs());
  ASSERT_TRUE(restore_policy_state(store, same_boot, later, saved_wall + 10min));
  EXPECT_LT(
      max_relative_difference(same_boot.demand_forecast("front"), before.demand_forecast("front")),
      1e-5);
  auto restored_history = same_boot.history("front");
  ASSERT_TRUE(restored_history);
  EXPECT_EQ(restored_history->start_seconds, saved_history->start_seconds);

  // ... or after a reboot, whose monotonic clock starts again near 0: the same wall-clock minutes
  // give the same forecast, and the learners do not care.
  PrescalePolicy rebooted(options());
  rebooted.init(specs());
  const Clock::TimePoint boot_now = Clock::TimePoint{} + 3min;
  ASSERT_TRUE(restore_policy_state(store, rebooted, boot_now, saved_wall + 10min, "rebooted"));
  EXPECT_LT(max_relative_difference(same_boot.demand_forecast("front"),
                                    rebooted.demand_forecast("front")),
            1e-9);
  expect_same_learning(same_boot, rebooted);

  // The first scrape after the restart records the minute in progress at the save (its scrapes
  // were saved too) and the minutes while down as gaps; the forecast rolls through them.
  World world_same = world, world_rebooted = world;
  same_boot.observe(world_same.scrape(later));
  rebooted.observe(world_rebooted.scrape(boot_now));
  auto history = same_boot.history("front");
  ASSERT_TRUE(history);
  ASSERT_EQ(history->values.size(), saved_history->values.size() + 10);
  for (size_t i = 0; i < saved_history->values.size(); ++i) {
    EXPECT_EQ(history->values[i], saved_history->values[i]);
  }
  EXPECT_TRUE(std::isfinite(history->values[saved_history->values.size()]));
  for (size_t i = saved_history->values.size() + 1; i < history->values.size(); ++i) {
    EXPECT_TRUE(std::isnan(history->values[i])) << i;
  }
  auto rebooted_history = rebooted.history("front");
  ASSERT_TRUE(rebooted_history);
  EXPECT_EQ(rebooted_history->values.size(), history->values.size());
  EXPECT_LT(max_relative_difference(same_boot.demand_forecast("front"),
                                    rebooted.demand_forecast("front")),
            1e-9);
}

TEST_F(PersistentPolicyStateTest, SavesOnlyNewMinutesAndPrunesOldOnes) {
  ManualClock clock;
  World world;
  PrescalePolicyOptions o = options();
  o.max_history = 60min;
  o.refit_interval = 60min;
  PrescalePolicy policy(o);
  policy.init(specs());
  HistoryStore store = open();
  // A sample far older than the policy can need is pruned by the next save.
  const std::int64_t wall0 =
      std::chrono::floor<std::chrono::seconds>(clock.wall_now().time_since_epoch()).count();
  ASSERT_TRUE(store.append("front", kArrivalMetric, wall0 - 3 * 86400, 1));
  run(policy, world, clock, 10min);
  ASSERT_TRUE(save_policy_state(store, policy, clock.now(), clock.wall_now()));
  auto old = store.series("front", kArrivalMetric, wall0 - 3 * 86400, wall0 - 3 * 86400 + 60);
  ASSERT_TRUE(old);
  EXPECT_TRUE(std::isnan(old->values.at(0)));
  auto history = policy.history("front");
  ASSERT_TRUE(history);
  ASSERT_EQ(history->values.size(), 9u);  // minutes 0-8; the scrape at 10:00 was in minute 9
  auto latest = store.latest_minute("front", kArrivalMetric);
  ASSERT_TRUE(latest && latest->has_value());
  EXPECT_EQ(**latest, wall0 + 8 * 60);
  auto stored = store.series("front", kArrivalMetric, wall0, wall0 + 600);
  ASSERT_TRUE(stored);
  // The monotonic clock started at the wall clock's wall0.
  const auto offset = static_cast<size_t>(history->start_seconds / 60);
  for (size_t i = 0; i < history->values.size(); ++i) {
    if (std::isfinite(history->values[i])) {
      EXPECT_EQ(stored->values[offset + i], history->values[i]);
    }
  }
}

// Minutes filled in before the newest stored one (history read from elsewhere: a Prometheus) are
// written only by a save of every minute; a save since the latest leaves them out, as minutes it
// wrote before.
TEST_F(PersistentPolicyStateTest, ASaveOfEveryMinuteWritesMinutesFilledBeforeTheLatest) {
  ManualClock clock;
  clock.advance(60min);
  World world;
  PrescalePolicy policy(options());
  policy.init(specs());
  HistoryStore store = open();
  run(policy, world, clock, 10min);
  ASSERT_TRUE(save_policy_state(store, policy, clock.now(), clock.wall_now()));
  auto own = policy.history("front");
  ASSERT_TRUE(own);
  // The 30 minutes before its own, at 7 req/s.
  forecast::Series older;
  older.step_seconds = 60;
  older.start_seconds = own->start_seconds - 30 * 60;
  older.values.assign(30, 7.0);
  auto filled = policy.fill_history("front", older, clock.now());
  ASSERT_TRUE(filled);
  EXPECT_EQ(*filled, 30u);
  const std::int64_t wall_of_first =
      std::chrono::floor<std::chrono::seconds>(clock.wall_now().time_since_epoch()).count() -
      static_cast<std::int64_t>(
          std::chrono::duration<double>(clock.now().time_since_epoch()).count()) +
      static_cast<std::int64_t>(older.start_seconds);
  auto stored = [&] {
    auto series = store.series("front", kArrivalMetric, wall_of_first, wall_of_first + 30 * 60);
    EXPECT_TRUE(series);
    return static_cast<std::size_t>(std::count_if(series->values.begin(), series->values.end(),
                                                  [](double v) { return v == 7.0; }));
  };
  ASSERT_TRUE(save_policy_state(store, policy, clock.now(), clock.wall_now()));
  EXPECT_EQ(stored(), 0u);
  ASSERT_TRUE(
      save_policy_state(store, policy, clock.now(), clock.wall_now(), "", SavedMinutes::kAll));
  EXPECT_EQ(stored(), 30u);
}

TEST_F(PersistentPolicyStateTest, AStateFromAnotherFormatIsRefusedAndChangesNothing) {
  ManualClock clock;
  HistoryStore store = open();
  ASSERT_TRUE(store.put_state(kPolicyStateKey, {{"format", 99}}, 0));
  PrescalePolicy policy(options());
  policy.init(specs());
  auto restored = restore_policy_state(store, policy, clock.now(), clock.wall_now());
  ASSERT_FALSE(restored);
  EXPECT_EQ(restored.error().code, ErrorCode::kInvalidArgument);

  ASSERT_TRUE(store.put_state(kPolicyStateKey,
                              {{"format", 1}, {"wall_minus_mono_minutes", 0}, {"policy", {}}}, 0));
  restored = restore_policy_state(store, policy, clock.now(), clock.wall_now());
  ASSERT_FALSE(restored);
  EXPECT_EQ(restored.error().code, ErrorCode::kInvalidArgument);
}

// docs/state.md: a state blob of another format "is neither restored nor overwritten: prescale up
// runs without it and every save fails with a warning naming the file" — also when its fields are
// of other types than this build's (a "format" written as text, a "boot" as a number), which must
// be an error, not a JSON exception out of the controller's restore and save.
TEST_F(PersistentPolicyStateTest, AStateWhoseFieldsAreOfOtherTypesIsAnErrorNotAnException) {
  ManualClock clock;
  HistoryStore store = open();
  PrescalePolicy policy(options());
  policy.init(specs());
  World world;
  run(policy, world, clock, 2min);
  const std::string file = store.path().string();

  ASSERT_TRUE(store.put_state(
      kPolicyStateKey, {{"format", "2.0"}, {"wall_minus_mono_minutes", 0}, {"policy", {}}}, 0));
  Result<bool> restored = false;
  EXPECT_NO_THROW(restored = restore_policy_state(store, policy, clock.now(), clock.wall_now()));
  ASSERT_FALSE(restored);
  EXPECT_EQ(restored.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(restored.error().message.find(file), std::string::npos) << restored.error().message;
  Result<void> saved;
  EXPECT_NO_THROW(saved = save_policy_state(store, policy, clock.now(), clock.wall_now()));
  ASSERT_FALSE(saved);
  EXPECT_NE(saved.error().message.find(file), std::string::npos) << saved.error().message;
  EXPECT_EQ((*store.get_state(kPolicyStateKey))->value["format"], "2.0") << "overwritten";

  // This build's format with a boot id that is not text: the boot is not this one's.
  ASSERT_TRUE(store.put_state(kPolicyStateKey,
                              {{"format", 1}, {"wall_minus_mono_minutes", 0}, {"boot", 7}}, 0));
  EXPECT_NO_THROW(saved = save_policy_state(store, policy, clock.now(), clock.wall_now(), "b"));
  EXPECT_TRUE(saved) << saved.error().message;
  EXPECT_EQ((*store.get_state(kPolicyStateKey))->value["boot"], "b");
}

TEST_F(PersistentPolicyStateTest, TheClockOffsetDoesNotFlipNearHalfAMinute) {
  ManualClock clock;
  World world;
  PrescalePolicy policy(options());
  policy.init(specs());
  HistoryStore store = open();
  run(policy, world, clock, 10min);
  // Without a boot id (no /proc), the offset comes from the clocks at every save, kept within
  // 45 s of the last one.
  auto offset_saved = [&](Clock::Duration wall_ahead) {
    EXPECT_TRUE(save_policy_state(store, policy, clock.now(), clock.wall_now() + wall_ahead, ""));
    auto blob = store.get_state(kPolicyStateKey);
    EXPECT_TRUE(blob && blob->has_value());
    return (*blob)->value["wall_minus_mono_minutes"].get<std::int64_t>() -
           std::chrono::floor<std::chrono::minutes>(clock.wall_now().time_since_epoch() -
                                                    clock.now().time_since_epoch())
               .count();
  };
  EXPECT_EQ(offset_saved(29s), 0);
  EXPECT_EQ(offset_saved(31s), 0);  // rounds to 1 on its own; the saved 0 is kept
  EXPECT_EQ(offset_saved(50s), 1);  // too far from the saved one
}

// restore_policy_state() refuses a state of another format "and the policy is then unchanged,
// and the caller may go on without it" (prescale up does). Going on means saving once a minute:
// the save must not replace what this build could not read (a newer Prescale's learned state,
// after a downgrade) with a fresh policy's, as it refuses to replace a blob that is not JSON.
// A wall clock stepped while the platform runs (NTP stepping a VM's clock after a suspend, a
// manual `date -s`): the store maps the policy's monotonic minutes to Unix minutes with the offset
// between the clocks. The minutes already stored were mapped with the old offset; a restart must
// still give back the history the policy had, each minute once, none lost.
TEST_F(PersistentPolicyStateTest, AWallClockStepWhileRunningNeitherLosesNorShiftsMinutes) {
  ManualClock clock;
  World world;
  PrescalePolicy before(options());
  before.init(specs());
  HistoryStore store = open();
  Clock::Duration step = 0s;
  for (int minute = 0; minute < 180; ++minute) {
    if (minute == 120) step = -5min;  // the wall clock is set back five minutes
    run(before, world, clock, 1min);
    ASSERT_TRUE(save_policy_state(store, before, clock.now(), clock.wall_now() + step));
  }
  PrescalePolicy after(options());
  after.init(specs());
  auto restored = restore_policy_state(store, after, clock.now(), clock.wall_now() + step);
  ASSERT_TRUE(restored && *restored);
  auto history_before = before.history("front");
  auto history_after = after.history("front");
  ASSERT_TRUE(history_before && history_after);
  ASSERT_EQ(history_before->values.size(), history_after->values.size());
  EXPECT_EQ(history_before->start_seconds, history_after->start_seconds);
  int differ = 0, lost = 0;
  for (size_t i = 0; i < history_before->values.size(); ++i) {
    if (std::isnan(history_after->values[i]) && !std::isnan(history_before->values[i])) ++lost;
    if (history_after->values[i] != history_before->values[i]) ++differ;
  }
  EXPECT_EQ(lost, 0) << "minutes recorded before the restart are gaps after it";
  EXPECT_EQ(differ, 0) << "of " << history_before->values.size() << " minutes";
  EXPECT_LT(
      max_relative_difference(before.demand_forecast("front"), after.demand_forecast("front")),
      0.01);
}

// A machine without a battery-backed clock starts with its wall clock years behind, and NTP
// steps it forward once the network is up. The offset of the first save is kept for the boot, so
// the minutes are stored where that offset maps them; the prune must measure their age in the
// same mapping, or every save deletes what the previous ones wrote.
TEST_F(PersistentPolicyStateTest, AWallClockStepForwardAfterTheFirstSaveKeepsTheHistory) {
  ManualClock clock;
  World world;
  PrescalePolicy before(options());
  before.init(specs());
  HistoryStore store = open();
  Clock::Duration step = -24h * 365 * 10;  // not yet synchronised
  for (int minute = 0; minute < 60; ++minute) {
    if (minute == 2) step = 0s;  // NTP steps the wall clock to the right time
    run(before, world, clock, 1min);
    ASSERT_TRUE(save_policy_state(store, before, clock.now(), clock.wall_now() + step, "boot"));
  }
  PrescalePolicy after(options());
  after.init(specs());
  auto restored = restore_policy_state(store, after, clock.now(), clock.wall_now(), "boot");
  ASSERT_TRUE(restored && *restored);
  auto history_before = before.history("front");
  auto history_after = after.history("front");
  ASSERT_TRUE(history_before && history_after);
  ASSERT_EQ(history_before->values.size(), history_after->values.size());
  int lost = 0;
  for (size_t i = 0; i < history_before->values.size(); ++i) {
    if (std::isnan(history_after->values[i]) && !std::isnan(history_before->values[i])) ++lost;
  }
  EXPECT_EQ(lost, 0) << "of " << history_before->values.size() << " minutes";
}

// The other way round: a boot whose clock ran ahead stored minutes in the future. After the
// next boot, with the clock right, the minutes recorded must still be stored, not skipped as
// older than the latest stored one.
TEST_F(PersistentPolicyStateTest, MinutesStoredFromAClockAheadDoNotStopLaterSaves) {
  ManualClock clock;
  World world;
  HistoryStore store = open();
  {
    PrescalePolicy ahead(options());
    ahead.init(specs());
    run(ahead, world, clock, 10min);
    ASSERT_TRUE(save_policy_state(store, ahead, clock.now(), clock.wall_now() + 24h, "boot-1"));
  }
  PrescalePolicy before(options());
  before.init(specs());
  ASSERT_TRUE(restore_policy_state(store, before, clock.now(), clock.wall_now(), "boot-2"));
  for (int minute = 0; minute < 30; ++minute) {
    run(before, world, clock, 1min);
    ASSERT_TRUE(save_policy_state(store, before, clock.now(), clock.wall_now(), "boot-2"));
  }
  PrescalePolicy after(options());
  after.init(specs());
  auto restored = restore_policy_state(store, after, clock.now(), clock.wall_now(), "boot-2");
  ASSERT_TRUE(restored && *restored);
  auto history_before = before.history("front");
  auto history_after = after.history("front");
  ASSERT_TRUE(history_before && history_after);
  ASSERT_EQ(history_before->values.size(), history_after->values.size());
  int lost = 0, recorded = 0;
  for (size_t i = 0; i < history_before->values.size(); ++i) {
    if (std::isnan(history_before->values[i])) continue;
    ++recorded;
    if (std::isnan(history_after->values[i])) ++lost;
  }
  EXPECT_GE(recorded, 29);
  EXPECT_EQ(lost, 0) << "of " << recorded << " minutes";
}

// `prescale up --time-scale 144` runs the controller on a clock 144 times real time
// (local_platform.h's ScaledClock). At a restart its wall time goes on after the newest stored
// minute, but its monotonic time starts again from the machine's: hours of controller time behind
// the last save, in the same boot. The offset saved for the boot mapped the first run's
// controller clock, not this one: kept, it put the restored history hours ahead of now, and the
// restart gave back two minutes of four hours.
TEST_F(PersistentPolicyStateTest, ARestartOnACompressedClockInTheSameBootKeepsTheHistory) {
  ManualClock clock;  // the first run's controller clock
  World world;
  PrescalePolicy before(options());
  before.init(specs());
  HistoryStore store = open();
  for (int minute = 0; minute < 4 * 60; ++minute) {
    run(before, world, clock, 1min);
    ASSERT_TRUE(save_policy_state(store, before, clock.now(), clock.wall_now(), "boot"));
  }
  // Four controller hours at 144x are 100 real seconds: restarted two real minutes after the
  // first start, its controller clock reads 2 min, and a minute after the newest stored one.
  ManualClock restarted(clock.wall_now() + 1min - 2min);
  restarted.set(Clock::TimePoint{} + 2min);
  PrescalePolicy after(options());
  after.init(specs());
  auto restored = restore_policy_state(store, after, restarted.now(), restarted.wall_now(), "boot");
  ASSERT_TRUE(restored && *restored);
  auto history_before = before.history("front");
  auto history_after = after.history("front");
  ASSERT_TRUE(history_before && history_after);
  ASSERT_EQ(history_before->values.size(), history_after->values.size());
  for (size_t i = 0; i < history_before->values.size(); ++i) {
    EXPECT_EQ(history_before->values[i], history_after->values[i]) << i;
  }
  EXPECT_LT(
      max_relative_difference(before.demand_forecast("front"), after.demand_forecast("front")),
      0.01);
}

TEST_F(PersistentPolicyStateTest, ASaveDoesNotOverwriteAStateOfAnotherFormat) {
  ManualClock clock;
  HistoryStore store = open();
  const nlohmann::json newer = {
      {"format", 2}, {"wall_minus_mono_minutes", 0}, {"policy", {{"learned", "much"}}}};
  ASSERT_TRUE(store.put_state(kPolicyStateKey, newer, 0));
  PrescalePolicy policy(options());
  policy.init(specs());
  ASSERT_FALSE(restore_policy_state(store, policy, clock.now(), clock.wall_now()));
  World world;
  run(policy, world, clock, 2min);
  (void)save_policy_state(store, policy, clock.now(), clock.wall_now());
  auto blob = store.get_state(kPolicyStateKey);
  ASSERT_TRUE(blob && blob->has_value());
  EXPECT_EQ((*blob)->value["format"], 2) << "the unreadable state was replaced by this build's";
  EXPECT_TRUE((*blob)->value["policy"] == newer["policy"]);
}

// A newer build that bumped only the policy's own version writes format 1 around it: this build
// refuses to restore it, and so must not replace it either.
TEST_F(PersistentPolicyStateTest, ASaveDoesNotOverwriteAPolicyStateOfAnotherVersion) {
  ManualClock clock;
  HistoryStore store = open();
  const nlohmann::json newer = {{"format", 1},
                                {"wall_minus_mono_minutes", 0},
                                {"policy", {{"version", 2}, {"learned", "much"}}}};
  ASSERT_TRUE(store.put_state(kPolicyStateKey, newer, 0));
  PrescalePolicy policy(options());
  policy.init(specs());
  auto restored = restore_policy_state(store, policy, clock.now(), clock.wall_now());
  ASSERT_FALSE(restored);
  EXPECT_THAT(restored.error().message, ::testing::HasSubstr("unsupported version 2"));
  World world;
  run(policy, world, clock, 2min);
  auto saved = save_policy_state(store, policy, clock.now(), clock.wall_now());
  ASSERT_FALSE(saved);
  EXPECT_THAT(saved.error().message,
              ::testing::HasSubstr("holds a policy state of version 2 (this build writes 1"));
  auto blob = store.get_state(kPolicyStateKey);
  ASSERT_TRUE(blob && blob->has_value());
  EXPECT_TRUE((*blob)->value == newer) << "the newer state was replaced by this build's";
}

}  // namespace
}  // namespace prescale::control
