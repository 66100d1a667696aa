#include "replica_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "telemetry/exposition.h"

namespace prescale {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

local::ReplicaStatus replica(std::string id, int pid, std::uint64_t memory, std::uint64_t limit) {
  local::ReplicaStatus r;
  r.id = std::move(id);
  r.pid = pid;
  r.memory_bytes = memory;
  if (memory > 0) r.memory_at = Clock::TimePoint{};
  r.memory_limit_bytes = limit;
  return r;
}

// Each running replica's memory and limit, each service's revision; a replica that has left, or
// waits to restart, is not in the scrape.
TEST(ReplicaMetrics, RunningReplicasMemoryAndEachServicesRevision) {
  telemetry::Registry registry;
  ReplicaMetrics metrics(registry);
  metrics.look(
      {{"web", 2, {replica("web-3", 101, 5 << 20, 64 << 20), replica("web-4", 0, 0, 64 << 20)}},
       {"api", 1, {replica("api-1", 102, 3 << 20, 0)}}});
  std::string text = telemetry::expose(registry);
  EXPECT_THAT(
      text,
      HasSubstr("prescale_replica_memory_bytes{service=\"web\",replica=\"web-3\"} 5242880\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "prescale_replica_memory_limit_bytes{service=\"web\",replica=\"web-3\"} 67108864\n"));
  EXPECT_THAT(
      text,
      HasSubstr("prescale_replica_memory_bytes{service=\"api\",replica=\"api-1\"} 3145728\n"));
  EXPECT_THAT(text, Not(HasSubstr("replica=\"web-4\""))) << "waiting to restart: not running";
  EXPECT_THAT(text, Not(HasSubstr("prescale_replica_memory_limit_bytes{service=\"api\"")));
  EXPECT_THAT(text, HasSubstr("prescale_service_revision{service=\"web\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("prescale_rollouts_total{service=\"web\",result=\"rolled_back\"} 0\n"));
  metrics.look({{"web", 2, {replica("web-4", 103, 1 << 20, 64 << 20)}}, {"api", 1, {}}});
  text = telemetry::expose(registry);
  EXPECT_THAT(text, Not(HasSubstr("replica=\"web-3\""))) << "gone";
  EXPECT_THAT(text, HasSubstr("replica=\"web-4\"} 1048576\n"));
}

TEST(ReplicaMetrics, RollingUpdatesAreCountedByResult) {
  telemetry::Registry registry;
  ReplicaMetrics metrics(registry);
  metrics.look({{"web", 1, {}}});
  metrics.count({Clock::TimePoint{}, "rollout", "web", "", "revision 2: ..."});
  metrics.count({Clock::TimePoint{}, "rolled-out", "web", "", "revision 2: every replica updated"});
  metrics.count({Clock::TimePoint{}, "rollout", "web", "", "revision 3: ..."});
  metrics.count({Clock::TimePoint{}, "rollback", "web", "", "revision 3 failed: ..."});
  metrics.count({Clock::TimePoint{}, "crash", "web", "web-5", "exited with status 3"});
  const std::string text = telemetry::expose(registry);
  EXPECT_THAT(text,
              HasSubstr("prescale_rollouts_total{service=\"web\",result=\"rolled_out\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("prescale_rollouts_total{service=\"web\",result=\"rolled_back\"} 1\n"));
}

}  // namespace
}  // namespace prescale
