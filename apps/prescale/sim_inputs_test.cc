#include "sim_inputs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "command_util.h"
#include "control/history_store.h"
#include "control/persistent_policy_state.h"
#include "scaling/capacity_model.h"
#include "sim_output.h"

namespace prescale {
namespace {

using ::testing::HasSubstr;

// docs/state.md: the "prescale/policy" blob carries `format` (1), and a blob of another format
// (a newer Prescale's) is never read back. `prescale sim --capacity-from` read its "capacity"
// without looking at `format`, so another version's state was taken as this one's (here: as
// "nothing learned", and the file's capacity_rps silently kept).
TEST(LearnedCapacities, AStateOfAnotherFormatIsRefusedNotRead) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("capacity-from-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ServiceConfig svc;
  svc.name = "api";
  svc.kind = ServiceKind::kEcho;
  Config config;
  config.services = {svc};
  scaling::CapacityModel model;
  model.init({service_spec(svc)});
  {
    auto store = control::HistoryStore::open(dir);
    ASSERT_TRUE(store.has_value()) << store.error().message;
    const nlohmann::json blob = {{"format", 99},
                                 {"wall_minus_mono_minutes", 0},
                                 {"policy", {{"capacity", model.to_json(Clock::TimePoint{})}}}};
    ASSERT_TRUE(store->put_state(control::kPolicyStateKey, blob, 1'700'000'000).has_value());
  }
  auto learned = learned_capacities(config, dir.string());
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(learned.has_value()) << "read a state blob of format 99 as " << learned->size()
                                    << " learned capacities";
  EXPECT_THAT(learned.error().message, HasSubstr("format"));
}

// `prescale sim --startup-from`: the median of the startup times a run kept, per service it
// learned them for; a service without any keeps the file's.
TEST(LearnedStartups, TheMedianOfThoseSavedPerServiceThatHasThem) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("startup-from-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ServiceConfig api, db;
  api.name = "api";
  db.name = "db";
  api.kind = db.kind = ServiceKind::kEcho;
  Config config;
  config.services = {api, db};
  {
    auto store = control::HistoryStore::open(dir);
    ASSERT_TRUE(store.has_value()) << store.error().message;
    const nlohmann::json services = {{"api", {{"startup_seconds", {30.0, 10.0, 20.0, 400.0}}}},
                                     {"db", nlohmann::json::object()}};
    const nlohmann::json blob = {{"format", 1},
                                 {"wall_minus_mono_minutes", 0},
                                 {"policy", {{"services", services}}}};
    ASSERT_TRUE(store->put_state(control::kPolicyStateKey, blob, 1'700'000'000).has_value());
  }
  auto learned = learned_startups(config, dir.string());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(learned.has_value()) << learned.error().message;
  EXPECT_EQ(*learned, (std::map<std::string, double>{{"api", 30.0}}));
}

}  // namespace
}  // namespace prescale

namespace prescale {
namespace {

// The CLI's number and span texts, at their ends.
TEST(CommandText, FixedWritesEveryDigitOfTheLargestNumbers) {
  EXPECT_EQ(fixed(2.5, 1), "2.5");
  EXPECT_EQ(fixed(NAN, 1), "-");
  const std::string big = fixed(2e302, 0);  // a 48-byte buffer kept its first 47 characters
  EXPECT_EQ(big.size(), 303u);
  EXPECT_EQ(big.substr(0, 3), "200");
}

TEST(CommandText, ARunUnderAMinuteIsSpannedInSeconds) {
  EXPECT_EQ(span_text(20), "20 s");
  EXPECT_EQ(span_text(90), "2 min");
  EXPECT_EQ(span_text(2 * 86400), "2.0 d");
}

}  // namespace
}  // namespace prescale

namespace prescale {
namespace {

// --history ends where the simulated part begins, also with an --offset between steps: the part
// starts at the step holding the offset, and a history reaching back from the offset itself
// held that step too (the run's first minute, learned before it was simulated).
TEST(SimHistory, EndsWhereTheSimulatedPartBegins) {
  forecast::Trace t;
  t.step_seconds = 60;
  t.counts = {10, 20, 30, 40, 50};
  const forecast::Trace part = slice(t, 150, 60);
  ASSERT_EQ(part.counts, (std::vector<double>{30}));
  EXPECT_EQ(history_before(t, 150, 30).counts, (std::vector<double>{20}));
  EXPECT_EQ(history_before(t, 150, 120).counts, (std::vector<double>{10, 20}));
  EXPECT_EQ(history_before(t, 150, 600).counts, (std::vector<double>{10, 20})) << "from the start";
  EXPECT_TRUE(history_before(t, 30, 60).counts.empty()) << "the offset is in the first step";
}

}  // namespace
}  // namespace prescale
