#include "learned_admission.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <vector>

#include "admission_test_util.h"

namespace prescale {
namespace {

using testing::admitted_service;

// Drives LearnedAdmission with set capacities and records what it applies.
struct Harness {
  explicit Harness(std::vector<ServiceConfig> services) : admission(services) {}
  // Follows `learned` for "api" (and any other service in it); returns what was applied.
  std::vector<std::pair<std::string, int>> follow(std::map<std::string, double> learned) {
    std::vector<std::pair<std::string, int>> applied;
    admission.follow(
        [&](std::string_view s) {
          auto it = learned.find(std::string(s));
          return it == learned.end() ? NAN : it->second;
        },
        [&](std::string_view s, int n) -> Result<void> {
          if (refuse) return make_error(ErrorCode::kNotFound, "no such service");
          applied.emplace_back(std::string(s), n);
          return {};
        });
    return applied;
  }
  LearnedAdmission admission;
  bool refuse = false;
};

using Applied = std::vector<std::pair<std::string, int>>;

TEST(LearnedAdmission, StartsFromTheSeedAndLeavesServicesWithoutALimitAlone) {
  Harness h({admitted_service("api", 100, std::chrono::milliseconds(100)),
             admitted_service("batch", 100, std::chrono::milliseconds(0))});
  EXPECT_EQ(h.admission.per_replica("api"), 2 + 10);  // concurrency + ceil(100 req/s × 0.1 s)
  EXPECT_EQ(h.admission.per_replica("batch"), 0);
  EXPECT_EQ(h.admission.per_replica("unknown"), 0);
  EXPECT_EQ(h.follow({{"batch", 500}, {"unknown", 500}}), Applied{});
  EXPECT_EQ(h.admission.per_replica("batch"), 0);
}

// A service a reload added starts from its seed, as at a start; one removed and added again
// under its name starts from its seed again, not from what was learned of the one removed.
TEST(LearnedAdmission, AServiceAddedStartsFromItsSeedAndOneRemovedIsForgotten) {
  Harness h({admitted_service("api", 100, std::chrono::milliseconds(100))});
  EXPECT_EQ(h.follow({{"api", 250}}), (Applied{{"api", 2 + 25}}));
  const ServiceConfig web = admitted_service("web", 50, std::chrono::milliseconds(100));
  h.admission.respec({web}, [](std::string_view) { return NAN; });
  EXPECT_EQ(h.admission.per_replica("web"), 2 + 5);
  h.admission.forget("api");
  h.admission.forget("unknown");
  EXPECT_EQ(h.admission.per_replica("api"), 0);
  EXPECT_EQ(h.follow({{"api", 500}}), Applied{}) << "no longer followed";
  h.admission.respec({admitted_service("api", 100, std::chrono::milliseconds(100))},
                     [](std::string_view) { return NAN; });
  EXPECT_EQ(h.admission.per_replica("api"), 2 + 10) << "its seed's, not the 25 learned before";
}

TEST(LearnedAdmission, FollowsALearnedCapacityOnceItMovedATenth) {
  Harness h({admitted_service("api", 100, std::chrono::milliseconds(100))});
  EXPECT_EQ(h.follow({{"api", 109}}), Applied{});  // within 10 % of the seed
  EXPECT_EQ(h.admission.per_replica("api"), 12);
  EXPECT_EQ(h.follow({{"api", 250}}), (Applied{{"api", 2 + 25}}));
  EXPECT_EQ(h.admission.per_replica("api"), 27);
  // Measured from the capacity the number in force was computed from, not the seed.
  EXPECT_EQ(h.follow({{"api", 240}}), Applied{});
  EXPECT_EQ(h.follow({{"api", 200}}), (Applied{{"api", 2 + 20}}));
  // A slower release lowers it.
  EXPECT_EQ(h.follow({{"api", 50}}), (Applied{{"api", 2 + 5}}));
}

TEST(LearnedAdmission, ACapacityOfZeroOrNotFiniteLeavesTheNumberInForce) {
  Harness h({admitted_service("api", 100, std::chrono::milliseconds(100))});
  EXPECT_EQ(h.follow({{"api", 0}}), Applied{});
  EXPECT_EQ(h.follow({{"api", NAN}}), Applied{});
  EXPECT_EQ(h.follow({{"api", INFINITY}}), Applied{});
  EXPECT_EQ(h.admission.per_replica("api"), 12);
}

TEST(LearnedAdmission, AMoveThatGivesTheSameNumberStillMovesTheReference) {
  // At 10 ms: 100 → 150 req/s takes ceil(1.0) = 1 to ceil(1.5) = 2; 190 gives 2 again, applies
  // nothing, but is the new reference — so 205, within a tenth of 190 (not of 150), changes
  // nothing, although it would give 3.
  Harness h({admitted_service("api", 100, std::chrono::milliseconds(10))});
  EXPECT_EQ(h.admission.per_replica("api"), 3);
  EXPECT_EQ(h.follow({{"api", 150}}), (Applied{{"api", 4}}));
  EXPECT_EQ(h.follow({{"api", 190}}), Applied{});
  EXPECT_EQ(h.follow({{"api", 205}}), Applied{});
  EXPECT_EQ(h.admission.per_replica("api"), 4);
  EXPECT_EQ(h.follow({{"api", 260}}), (Applied{{"api", 5}}));
}

TEST(LearnedAdmission, ANumberTheGatewayRefusesIsNotInForceAndIsTriedAgain) {
  Harness h({admitted_service("api", 100, std::chrono::milliseconds(100))});
  h.refuse = true;
  EXPECT_EQ(h.follow({{"api", 250}}), Applied{});
  EXPECT_EQ(h.admission.per_replica("api"), 12);
  h.refuse = false;
  EXPECT_EQ(h.follow({{"api", 250}}), (Applied{{"api", 27}}));
  EXPECT_EQ(h.admission.per_replica("api"), 27);
}

// A reload's new queue limit and seed: at the capacity learned so far, or at the new seed while
// none was learned; a limit taken away leaves the service alone, one given starts from its seed.
TEST(LearnedAdmission, ARespecTakesTheNewQueueLimitAtWhatWasLearned) {
  Harness h({admitted_service("api", 100, std::chrono::milliseconds(100)),
             admitted_service("seeded", 100, std::chrono::milliseconds(100)),
             admitted_service("batch", 100, std::chrono::milliseconds(0))});
  EXPECT_EQ(h.follow({{"api", 250}}), (Applied{{"api", 27}}));
  const auto none = [](std::string_view) { return NAN; };  // no capacity at the new SLO yet
  h.admission.respec({admitted_service("api", 100, std::chrono::milliseconds(200)),
                      admitted_service("seeded", 50, std::chrono::milliseconds(100)),
                      admitted_service("batch", 100, std::chrono::milliseconds(100))},
                     none);
  EXPECT_EQ(h.admission.per_replica("api"), 2 + 50) << "250 req/s learned × 0.2 s";
  EXPECT_EQ(h.admission.capacity_rps("api"), 250);
  EXPECT_EQ(h.admission.per_replica("seeded"), 2 + 5) << "the new seed: 50 req/s × 0.1 s";
  EXPECT_EQ(h.admission.per_replica("batch"), 2 + 10) << "a limit now: from its seed";
  EXPECT_EQ(h.follow({{"api", 260}, {"seeded", 52}}), Applied{}) << "within a tenth";
  // The policy's capacity at a new SLO, where there is one.
  h.admission.respec({admitted_service("api", 100, std::chrono::milliseconds(200)),
                      admitted_service("seeded", 50, std::chrono::milliseconds(100))},
                     [](std::string_view s) { return s == "api" ? 300.0 : 60.0; });
  EXPECT_EQ(h.admission.per_replica("api"), 2 + 60) << "300 req/s × 0.2 s";
  EXPECT_EQ(h.admission.capacity_rps("api"), 300);
  EXPECT_EQ(h.admission.per_replica("seeded"), 2 + 6) << "60 req/s × 0.1 s";
  h.admission.respec({admitted_service("api", 100, std::chrono::milliseconds(0))}, none);
  EXPECT_EQ(h.admission.per_replica("api"), 0);
  EXPECT_EQ(h.follow({{"api", 500}}), Applied{}) << "no limit: left alone";
}

}  // namespace
}  // namespace prescale
