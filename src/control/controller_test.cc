#include "control/controller.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

namespace prescale::control {
namespace {

using namespace std::chrono_literals;

// A world that records what the controller asks of it and reports its replica counts.
class RecordingWorld final : public World {
 public:
  const scaling::Snapshot& observe(Clock::TimePoint now) override {
    ++observations;
    scaling::Snapshot& s = snapshot;
    s = {};
    s.time = now;
    for (const auto& [name, n] : desired) {
      scaling::ServiceObservation o;
      o.name = name;
      o.desired_replicas = n;
      s.services.push_back(o);
    }
    return s;
  }
  Result<void> scale(std::string_view service, int replicas) override {
    desired[std::string(service)] = replicas;
    return {};
  }
  Result<void> restart(std::string_view) override { return {}; }

  std::map<std::string, int> desired{{"api", 1}};
  int observations = 0;
  scaling::Snapshot snapshot;
};

// Asks for one more replica at every decision.
class GrowPolicy final : public scaling::Policy {
 public:
  std::string_view name() const override { return "grow"; }
  Clock::Duration period() const override { return 15s; }
  void init(const std::vector<scaling::ServiceSpec>& s) override { inited = s.size(); }
  void observe(const scaling::Snapshot&) override { ++observed; }
  scaling::Plan decide(const scaling::Snapshot& snap, Clock::TimePoint now) override {
    scaling::Plan p{now, {}};
    for (const auto& s : snap.services) {
      p.decisions.push_back({s.name, s.desired_replicas + 1, "grow by one"});
    }
    return p;
  }
  size_t inited = 0;
  int observed = 0;
};

// Observes every second, decides every 15 s.
class FastObserver final : public scaling::Policy {
 public:
  std::string_view name() const override { return "fast"; }
  Clock::Duration period() const override { return 15s; }
  Clock::Duration observe_interval() const override { return 1s; }
  void init(const std::vector<scaling::ServiceSpec>&) override {}
  void observe(const scaling::Snapshot&) override { ++observed; }
  scaling::Plan decide(const scaling::Snapshot&, Clock::TimePoint now) override {
    ++decided;
    return {now, {}};
  }
  int observed = 0;
  int decided = 0;
};

TEST(ControllerTest, ObserveIntervalAndNextTick) {
  ManualClock clock;
  RecordingWorld world;
  FastObserver policy;
  Controller controller(world, policy, {{.name = "api"}}, clock);
  for (int t = 0; t < 30; ++t) {
    controller.tick();
    clock.advance(1s);
  }
  EXPECT_EQ(policy.observed, 30);
  EXPECT_EQ(policy.decided, 2);
  EXPECT_EQ(controller.next_tick(), clock.now());
}

// Observes every second, decides every 15 s, and asks to decide early at the times listed.
class EarlyDecider final : public scaling::Policy {
 public:
  std::string_view name() const override { return "early"; }
  Clock::Duration period() const override { return 15s; }
  Clock::Duration observe_interval() const override { return 1s; }
  void init(const std::vector<scaling::ServiceSpec>&) override {}
  bool decide_early(const scaling::Snapshot& snap) const override {
    return early_at.contains(snap.time);
  }
  scaling::Plan decide(const scaling::Snapshot&, Clock::TimePoint now) override {
    decided_at.push_back(now);
    return {now, {}};
  }
  std::set<Clock::TimePoint> early_at;
  std::vector<Clock::TimePoint> decided_at;
};

TEST(ControllerTest, DecidesAtOnceWhenThePolicyAsksAndCountsThePeriodFromThen) {
  ManualClock clock;
  RecordingWorld world;
  EarlyDecider policy;
  const Clock::TimePoint t0 = clock.now();
  policy.early_at = {t0 + 4s};
  Controller controller(world, policy, {{.name = "api"}}, clock);
  for (int t = 0; t < 40; ++t) {
    controller.tick();
    clock.advance(1s);
  }
  EXPECT_EQ(policy.decided_at,
            (std::vector<Clock::TimePoint>{t0, t0 + 4s, t0 + 19s, t0 + 34s}));
}

TEST(ControllerTest, ObservesEveryTickAndDecidesEveryPeriod) {
  ManualClock clock;
  RecordingWorld world;
  GrowPolicy policy;
  Controller controller(world, policy, {{.name = "api", .min_replicas = 1, .max_replicas = 3}},
                        clock);
  EXPECT_EQ(policy.inited, 1u);

  int decisions = 0;
  for (int t = 0; t < 60; ++t) {
    if (controller.tick()) ++decisions;
    clock.advance(1s);
  }
  // Observes once per decision period (the policy's default observe interval).
  EXPECT_EQ(world.observations, 4);
  EXPECT_EQ(policy.observed, 4);
  EXPECT_EQ(decisions, 4);  // t = 0, 15, 30, 45
  // Grows 1 -> 2 -> 3, then the max bound holds it at 3 (no event for a no-op).
  EXPECT_EQ(world.desired["api"], 3);
  ASSERT_EQ(controller.events().size(), 2u);
  EXPECT_EQ(controller.events()[0].from_replicas, 1);
  EXPECT_EQ(controller.events()[0].to_replicas, 2);
  EXPECT_EQ(controller.events()[0].reason, "grow by one");
  EXPECT_EQ(controller.events()[1].time, Clock::TimePoint{} + 15s);
}

// A driver that runs for months takes the events as it goes; the controller then keeps only the
// changes since (before, it kept every change for the life of the process).
TEST(ControllerTest, TakenEventsAreNotKept) {
  ManualClock clock;
  RecordingWorld world;
  GrowPolicy policy;
  Controller controller(world, policy, {{.name = "api", .min_replicas = 1, .max_replicas = 5}},
                        clock);
  controller.tick();  // t = 0: 1 -> 2
  std::vector<Event> taken = controller.take_events();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].to_replicas, 2);
  EXPECT_TRUE(controller.events().empty());
  clock.advance(15s);
  controller.tick();  // 2 -> 3
  ASSERT_EQ(controller.events().size(), 1u);
  EXPECT_EQ(controller.events()[0].from_replicas, 2);
  taken = controller.take_events();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].to_replicas, 3);
  EXPECT_TRUE(controller.take_events().empty());
}

TEST(ControllerTest, IgnoresDecisionsForUnknownServices) {
  ManualClock clock;
  RecordingWorld world;
  world.desired["other"] = 5;
  GrowPolicy policy;
  Controller controller(world, policy, {{.name = "api", .max_replicas = 10}}, clock);
  controller.tick();
  EXPECT_EQ(world.desired["api"], 2);
  EXPECT_EQ(world.desired["other"], 5);
}

}  // namespace
}  // namespace prescale::control
