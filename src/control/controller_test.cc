#include "control/controller.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <utility>
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
  Result<void> respec(const scaling::ServiceSpec& spec) override {
    if (bounds_fixed) return World::respec(spec);
    bounds[spec.name] = {spec.min_replicas, spec.max_replicas};
    slos[spec.name] = spec.slo_latency_p99_seconds;
    return {};
  }
  // An added service starts at its min, as a supervisor would start its initial count.
  Result<void> add_service(const scaling::ServiceSpec& spec) override {
    if (bounds_fixed) return World::add_service(spec);
    desired[spec.name] = spec.min_replicas;
    return {};
  }
  Result<void> remove_service(std::string_view service) override {
    if (bounds_fixed) return World::remove_service(service);
    return desired.erase(std::string(service)) == 1
               ? Result<void>{}
               : make_error(ErrorCode::kNotFound, "no " + std::string(service));
  }

  std::map<std::string, int> desired{{"api", 1}};
  std::map<std::string, std::pair<int, int>> bounds;
  std::map<std::string, double> slos;
  bool bounds_fixed = false;
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
  Result<void> add_service(const scaling::ServiceSpec& spec) override {
    if (!services.insert(spec.name).second) return Policy::add_service(spec);
    return {};
  }
  void remove_service(std::string_view service) override { services.erase(std::string(service)); }
  size_t inited = 0;
  int observed = 0;
  std::set<std::string> services;  // added while it runs
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
  void respec(const scaling::ServiceSpec& spec) override {
    told[spec.name] = {spec.min_replicas, spec.max_replicas};
    told_specs[spec.name] = spec;
  }
  int observed = 0;
  int decided = 0;
  std::map<std::string, std::pair<int, int>> told;
  std::map<std::string, scaling::ServiceSpec> told_specs;
};

// The spec "api" runs with, and the same with other bounds.
scaling::ServiceSpec api_spec(int min_replicas = 1, int max_replicas = 5) {
  return {.name = "api", .min_replicas = min_replicas, .max_replicas = max_replicas};
}
scaling::ServiceSpec named(std::string name, int min_replicas, int max_replicas) {
  scaling::ServiceSpec spec = api_spec(min_replicas, max_replicas);
  spec.name = std::move(name);
  return spec;
}

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

// A request held for a service with no replica: the controller observes at its next tick, a
// moment after the last observation, and the policy decides at once if it asks to.
TEST(ControllerTest, ObservesNowWhenAskedAndDecidesIfThePolicyAsks) {
  ManualClock clock;
  RecordingWorld world;
  EarlyDecider policy;
  const Clock::TimePoint t0 = clock.now();
  policy.early_at = {t0 + 200ms};
  Controller controller(world, policy, {{.name = "api"}}, clock);
  controller.tick();  // observes and decides at t0
  clock.advance(200ms);
  EXPECT_EQ(controller.next_tick(), t0 + 1s);
  EXPECT_FALSE(controller.tick()) << "not due";
  controller.observe_now();
  EXPECT_EQ(controller.next_tick(), clock.now());
  EXPECT_TRUE(controller.tick()) << "observed now, and the policy decided early";
  EXPECT_EQ(policy.decided_at, (std::vector<Clock::TimePoint>{t0, t0 + 200ms}));
  EXPECT_EQ(controller.next_tick(), t0 + 1200ms);
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

// New bounds (prescale up reloading its file) reach the world and the policy, and the next tick
// decides: a count outside them is brought within them though the policy decides nothing.
TEST(ControllerTest, NewReplicaBoundsApplyAtTheNextTickWithoutADecision) {
  ManualClock clock;
  RecordingWorld world;
  world.desired["api"] = 4;
  FastObserver policy;  // never decides anything
  Controller controller(world, policy, {api_spec()}, clock);
  controller.tick();
  clock.advance(1s);
  ASSERT_TRUE(controller.respec(api_spec(1, 2)));
  EXPECT_EQ(world.bounds["api"], std::make_pair(1, 2));
  EXPECT_EQ(policy.told["api"], std::make_pair(1, 2));
  EXPECT_EQ(controller.services()[0].max_replicas, 2);
  EXPECT_EQ(controller.next_tick(), clock.now()) << "decides at the next tick, not in 14 s";
  ASSERT_TRUE(controller.tick());
  EXPECT_EQ(policy.decided, 2);
  EXPECT_EQ(world.desired["api"], 2);
  std::vector<Event> taken = controller.take_events();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].from_replicas, 4);
  EXPECT_EQ(taken[0].to_replicas, 2);
  EXPECT_EQ(taken[0].reason, "replicas outside [1, 2] (changed): clamped to 2");
  clock.advance(15s);
  controller.tick();
  EXPECT_TRUE(controller.take_events().empty()) << "within the bounds now: nothing more";

  ASSERT_TRUE(controller.respec(api_spec(3, 6)));  // a raised min
  controller.tick();
  EXPECT_EQ(world.desired["api"], 3);
}

// A policy's decision is clamped to the new bounds at once.
TEST(ControllerTest, ADecisionIsClampedToTheNewBounds) {
  ManualClock clock;
  RecordingWorld world;
  GrowPolicy policy;
  Controller controller(world, policy, {{.name = "api", .min_replicas = 1, .max_replicas = 10}},
                        clock);
  controller.tick();  // 1 -> 2
  clock.advance(1s);
  ASSERT_TRUE(controller.respec(api_spec(1, 1)));
  ASSERT_TRUE(controller.tick());  // grow asks 3: clamped to 1
  EXPECT_EQ(world.desired["api"], 1);
  const std::vector<Event>& events = controller.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].to_replicas, 1);
  EXPECT_EQ(events[1].reason, "grow by one; clamped to [1, 1]");
}

TEST(ControllerTest, BadOrUnknownBoundsChangeNothing) {
  ManualClock clock;
  RecordingWorld world;
  FastObserver policy;
  Controller controller(world, policy, {api_spec()}, clock);
  controller.tick();
  auto refused = controller.respec(named("web", 1, 2));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kNotFound);
  for (auto [min, max] : {std::pair{3, 2}, std::pair{0, 0}, std::pair{-1, 4}}) {
    refused = controller.respec(api_spec(min, max));
    ASSERT_FALSE(refused) << min << " " << max;
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(refused.error().message.find("need 0 <= min <= max, max >= 1"), std::string::npos)
        << refused.error().message;
  }
  scaling::ServiceSpec concurrent = api_spec();
  concurrent.max_concurrency = 4;  // the policy was made with 0 (unbounded)
  refused = controller.respec(concurrent);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message,
            "api: its concurrency cannot change while it runs (0 -> 4): the policy's model of "
            "its replicas was made from it");
  world.bounds_fixed = true;  // the simulator's
  refused = controller.respec(api_spec(1, 2));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("cannot change while it runs"), std::string::npos);
  EXPECT_EQ(controller.services()[0].max_replicas, 5);
  EXPECT_TRUE(policy.told.empty());
  EXPECT_TRUE(world.bounds.empty());
}

// A new SLO (or seed) within the same bounds reaches the world and the policy and is decided on
// at the next tick; the count, within its bounds, is left to the policy.
TEST(ControllerTest, ANewSloReachesTheWorldAndThePolicyAndIsDecidedOnAtTheNextTick) {
  ManualClock clock;
  RecordingWorld world;
  world.desired["api"] = 4;
  FastObserver policy;
  Controller controller(world, policy, {api_spec()}, clock);
  controller.tick();
  clock.advance(1s);
  scaling::ServiceSpec next = api_spec();
  next.slo_latency_p99_seconds = 0.1;
  next.capacity_rps = 40;
  next.startup_time = 5s;
  ASSERT_TRUE(controller.respec(next));
  EXPECT_EQ(world.slos["api"], 0.1);
  EXPECT_EQ(policy.told_specs["api"].capacity_rps, 40);
  EXPECT_EQ(policy.told_specs["api"].startup_time, 5s);
  EXPECT_EQ(controller.services()[0].slo_latency_p99_seconds, 0.1);
  EXPECT_EQ(controller.next_tick(), clock.now());
  ASSERT_TRUE(controller.tick());
  EXPECT_EQ(policy.decided, 2);
  EXPECT_EQ(world.desired["api"], 4);
  EXPECT_TRUE(controller.take_events().empty()) << "nothing to clamp";
}

// A service added while it runs is observed and decided on from the next tick; one removed is
// no longer decided on, and what was recorded of it stays.
TEST(ControllerTest, AnAddedServiceIsDecidedOnAtTheNextTickAndARemovedOneNoLonger) {
  ManualClock clock;
  RecordingWorld world;
  GrowPolicy policy;
  Controller controller(world, policy, {api_spec()}, clock);
  ASSERT_TRUE(controller.tick());  // api 1 -> 2
  clock.advance(1s);
  ASSERT_TRUE(controller.add_service(named("web", 2, 4)));
  EXPECT_EQ(world.desired["web"], 2);
  EXPECT_TRUE(policy.services.contains("web"));
  ASSERT_EQ(controller.services().size(), 2u);
  EXPECT_EQ(controller.services()[1].name, "web");
  EXPECT_EQ(controller.next_tick(), clock.now()) << "decided at the next tick, not in 15 s";
  ASSERT_TRUE(controller.tick());
  EXPECT_EQ(world.desired["web"], 3);
  EXPECT_EQ(world.desired["api"], 3);

  ASSERT_TRUE(controller.remove_service("api"));
  EXPECT_FALSE(world.desired.contains("api"));
  ASSERT_EQ(controller.services().size(), 1u);
  EXPECT_EQ(controller.services()[0].name, "web");
  // Its bounds are web's own after the removal moved it up the list.
  ASSERT_TRUE(controller.respec(named("web", 2, 3)));
  clock.advance(15s);
  ASSERT_TRUE(controller.tick());
  EXPECT_EQ(world.desired["web"], 3) << "clamped to web's max, 3";
  EXPECT_FALSE(world.desired.contains("api"));
  const std::vector<Event> events = controller.take_events();
  ASSERT_EQ(events.size(), 3u);         // the last decision was clamped to web's count
  EXPECT_EQ(events[0].service, "api");  // recorded before its removal, kept
  EXPECT_EQ(events[2].service, "web");
}

TEST(ControllerTest, AServiceThatCannotBeAddedOrRemovedChangesNothing) {
  ManualClock clock;
  RecordingWorld world;
  GrowPolicy policy;
  Controller controller(world, policy, {api_spec()}, clock);
  auto refused = controller.add_service(api_spec());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "api: a service of that name runs");
  refused = controller.add_service(named("web", 3, 2));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("need 0 <= min <= max"), std::string::npos);
  world.bounds_fixed = true;  // the simulator's
  refused = controller.add_service(named("web", 1, 2));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("cannot change while it runs"), std::string::npos);
  EXPECT_TRUE(policy.services.empty()) << "the policy took it back";
  refused = controller.remove_service("api");
  ASSERT_FALSE(refused);
  EXPECT_EQ(controller.services().size(), 1u);
  refused = controller.remove_service("web");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kNotFound);
  // A policy whose services are fixed (the oracle's) refuses, naming itself.
  FastObserver fixed;
  world.bounds_fixed = false;
  Controller other(world, fixed, {api_spec()}, clock);
  refused = other.add_service(named("web", 1, 2));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "web: the fast policy's services cannot change while it runs");
  EXPECT_FALSE(world.desired.contains("web"));
}

}  // namespace
}  // namespace prescale::control
