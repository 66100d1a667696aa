#include "learned_admission.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

namespace prescale {
namespace {

ServiceConfig service(std::string name, double capacity_rps, std::chrono::milliseconds limit) {
  ServiceConfig s;
  s.name = std::move(name);
  s.concurrency = 2;
  s.capacity_rps = capacity_rps;
  s.queue_limit = limit;
  return s;
}

TEST(LearnedAdmission, StartsFromTheSeedAndLeavesServicesWithoutALimitAlone) {
  const LearnedAdmission a({service("api", 100, std::chrono::milliseconds(100)),
                            service("batch", 100, std::chrono::milliseconds(0))});
  EXPECT_EQ(a.per_replica("api"), 2 + 10);  // concurrency + ceil(100 req/s × 0.1 s)
  EXPECT_EQ(a.per_replica("batch"), 0);
  EXPECT_EQ(a.per_replica("unknown"), 0);
}

TEST(LearnedAdmission, FollowsALearnedCapacityOnceItMovedATenth) {
  LearnedAdmission a({service("api", 100, std::chrono::milliseconds(100)),
                      service("batch", 100, std::chrono::milliseconds(0))});
  EXPECT_EQ(a.update("api", 109), std::nullopt);  // within 10 % of the seed
  EXPECT_EQ(a.per_replica("api"), 12);
  EXPECT_EQ(a.update("api", 250), 2 + 25);
  EXPECT_EQ(a.per_replica("api"), 27);
  // Measured from the capacity the number in force was computed from, not the seed.
  EXPECT_EQ(a.update("api", 240), std::nullopt);
  EXPECT_EQ(a.update("api", 200), 2 + 20);
  // A slower release lowers it.
  EXPECT_EQ(a.update("api", 50), 2 + 5);
  EXPECT_EQ(a.update("batch", 500), std::nullopt);
  EXPECT_EQ(a.update("unknown", 500), std::nullopt);
}

TEST(LearnedAdmission, ACapacityOfZeroOrNotFiniteLeavesTheNumberInForce) {
  LearnedAdmission a({service("api", 100, std::chrono::milliseconds(100))});
  EXPECT_EQ(a.update("api", 0), std::nullopt);
  EXPECT_EQ(a.update("api", NAN), std::nullopt);
  EXPECT_EQ(a.update("api", INFINITY), std::nullopt);
  EXPECT_EQ(a.per_replica("api"), 12);
}

TEST(LearnedAdmission, AMoveThatGivesTheSameNumberStillMovesTheReference) {
  // 100 → 111 req/s at 10 ms: ceil(1.0) → ceil(1.11) = 1 → 2; 111 → 124: 2 → 2 (no change, but
  // the reference is now 124, so 130 is within a tenth of it).
  LearnedAdmission a({service("api", 100, std::chrono::milliseconds(10))});
  EXPECT_EQ(a.per_replica("api"), 3);
  EXPECT_EQ(a.update("api", 111), 4);
  EXPECT_EQ(a.update("api", 124), std::nullopt);
  EXPECT_EQ(a.update("api", 130), std::nullopt);
  EXPECT_EQ(a.per_replica("api"), 4);
}

}  // namespace
}  // namespace prescale
