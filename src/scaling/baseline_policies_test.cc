#include "scaling/baseline_policies.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace prescale::scaling {
namespace {

using namespace std::chrono_literals;

Clock::TimePoint at(int seconds) { return Clock::TimePoint{} + std::chrono::seconds(seconds); }

ServiceObservation service_with_cpu(int ready, double cpu, Clock::TimePoint now) {
  ServiceObservation s;
  s.name = "api";
  s.desired_replicas = ready;
  for (int i = 0; i < ready; ++i) {
    ReplicaObservation r;
    r.id = "api-" + std::to_string(i);
    r.state = ReplicaState::kReady;
    r.started_at = at(0);
    r.ready_at = at(60);
    r.cpu_utilization = cpu;
    r.metric_time = now;
    s.replicas.push_back(r);
  }
  return s;
}

TEST(HpaPolicyTest, ScalesOnCpuLikeTheHpa) {
  HpaPolicy policy({.target_cpu_utilization_percent = 50});
  policy.init({{.name = "api", .min_replicas = 1, .max_replicas = 20}});
  // 4 pods at 100 % of request against a 50 % target: desired = ceil(2.0 * 4) = 8, which the
  // legacy normalisation allows (at most max(2 x 4, 4)).
  Snapshot snap{at(900), {service_with_cpu(4, 1.0, at(900))}, {}};
  Plan plan = policy.decide(snap, at(900));
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].replicas, 8);
  EXPECT_NE(plan.decisions[0].reason.find("hpa"), std::string::npos);
}

TEST(HpaPolicyTest, StartingReplicasAreUnreadyAndDrainingIgnored) {
  HpaPolicy policy({.target_cpu_utilization_percent = 50});
  policy.init({{.name = "api", .min_replicas = 1, .max_replicas = 20}});
  ServiceObservation s = service_with_cpu(2, 0.5, at(900));  // exactly on target
  ReplicaObservation starting;
  starting.id = "api-new";
  starting.state = ReplicaState::kStarting;
  starting.started_at = at(890);
  s.replicas.push_back(starting);
  ReplicaObservation draining = s.replicas[0];
  draining.id = "api-old";
  draining.state = ReplicaState::kDraining;
  draining.cpu_utilization = 0.0;
  s.replicas.push_back(draining);
  s.desired_replicas = 3;
  Plan plan = policy.decide({at(900), {s}, {}}, at(900));
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].replicas, 3);  // within tolerance: keep current
}

// The default is an HPA without `behavior` (upstream autoscaling/v2 defaults.go fills it only
// when the object has one): normalizeDesiredReplicas keeps the maximum recommendation not
// Before(now - 300 s), so one exactly 300 s old still holds the count.
// Ten pods on target at t = 900 s (recommendation 10), then at 8 % every 15 s (recommendation
// 1): the count held until 1185 s, and the one decided at 1200 s, 300 s after the peak.
int count_300s_after_the_peak(HpaPolicy& policy) {
  policy.init({{.name = "api", .min_replicas = 1, .max_replicas = 20}});
  for (int t = 900; t < 1200; t += 15) {
    const double cpu = t == 900 ? 0.8 : 0.08;
    const Plan p = policy.decide({at(t), {service_with_cpu(10, cpu, at(t))}, {}}, at(t));
    EXPECT_EQ(p.decisions.at(0).replicas, 10) << "t=" << t;
  }
  const Plan p = policy.decide({at(1200), {service_with_cpu(10, 0.08, at(1200))}, {}}, at(1200));
  return p.decisions.at(0).replicas;
}

TEST(HpaPolicyTest, DefaultHoldsTheRecommendationExactly300sOld) {
  HpaPolicy policy;  // target 80 %, sync 15 s
  EXPECT_EQ(count_300s_after_the_peak(policy), 10);
}

TEST(HpaPolicyTest, BehaviorIsAnOption) {
  // The behavior scale-down window is exclusive: the 900 s recommendation has left it.
  HpaPolicy policy({.behavior = HpaBehavior::defaults()});
  EXPECT_EQ(count_300s_after_the_peak(policy), 1);
}

// Upstream's API validation rejects minReplicas 0 for an HPA whose metrics are all Resource
// metrics (pkg/apis/autoscaling/validation: below 1 only with the HPAScaleToZero gate and an
// Object or External metric), so a CPU HPA never goes below one pod. A service whose replica
// floor is 0 (for the kpa's scale to zero) must not let the hpa scale an idle service to 0:
// with no pod left there is no CPU sample, and it could never scale up again.
TEST(HpaPolicyTest, CpuHpaKeepsOnePodWhenTheServiceFloorIsZero) {
  HpaPolicy policy;  // target 80 %, sync 15 s, no behavior
  policy.init({{.name = "api", .min_replicas = 0, .max_replicas = 20}});
  int desired = 2;
  for (int t = 900; t <= 1500; t += 15) {
    // Idle pods: 0.5 % of request is 5 millicores, int(5 * 100 / 1000) = 0 % utilisation.
    ServiceObservation s = service_with_cpu(desired, 0.005, at(t));
    const Plan p = policy.decide({at(t), {s}, {}}, at(t));
    desired = p.decisions.at(0).replicas;
    ASSERT_GE(desired, 1) << "t=" << t;
  }
  EXPECT_EQ(desired, 1);
}

// A kpa on one service ("api", containerConcurrency 10) that observed 70 requests in flight at
// each of `times`, asked at the last one with 4 replicas.
// `added`: the service is added to a running policy (add_service), not listed at init().
Plan kpa_after_seventy_in_flight(KpaPolicy& policy, const std::vector<Clock::TimePoint>& times,
                                 bool added = false) {
  const ServiceSpec api{
      .name = "api", .min_replicas = 1, .max_replicas = 50, .max_concurrency = 10};
  if (added) {
    policy.init({});
    EXPECT_TRUE(policy.add_service(api));
    EXPECT_FALSE(policy.add_service(api));
  } else {
    policy.init({api});
  }
  for (Clock::TimePoint t : times) {
    ServiceObservation s = service_with_cpu(10, 0.5, t);
    s.last_second = {t, 70.0, 700.0, true};
    policy.observe({t, {s}, {}});
  }
  ServiceObservation s = service_with_cpu(10, 0.5, times.back());
  s.desired_replicas = 4;
  return policy.decide({times.back(), {s}, {}}, times.back());
}

// 70 concurrent requests against a per-pod target of 10 x 0.7 = 7 -> 10 pods.
void expect_ten_pods_for_seventy(const Plan& plan) {
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].replicas, 10);
  EXPECT_THAT(plan.decisions[0].reason, testing::HasSubstr("kpa: stable concurrency 70.00"));
}

TEST(KpaPolicyTest, TargetsContainerConcurrencyTimesUtilization) {
  KpaPolicy policy;
  std::vector<Clock::TimePoint> every_second;
  for (int t = 1; t <= 60; ++t) every_second.push_back(at(t));
  expect_ten_pods_for_seventy(kpa_after_seventy_in_flight(policy, every_second));
  // Already at 10: no decision.
  ServiceObservation s = service_with_cpu(10, 0.5, at(60));
  s.desired_replicas = 10;
  EXPECT_TRUE(policy.decide({at(62), {s}, {}}, at(62)).decisions.empty());
}

// Without containerConcurrency Knative targets its default, 100, times the utilisation too
// (upstream's ResolveMetricTarget): at 0.5, 50 in flight a pod. The utilisation was applied
// only to services with a concurrency limit.
TEST(KpaPolicyTest, WithoutContainerConcurrencyTargetsTheDefaultTimesUtilization) {
  KpaPolicyOptions options;
  options.target_utilization = 0.5;
  KpaPolicy policy(options);
  policy.init({{.name = "api", .min_replicas = 1, .max_replicas = 50}});
  for (int t = 1; t <= 60; ++t) {
    ServiceObservation s = service_with_cpu(1, 0.5, at(t));
    s.last_second = {at(t), 200.0, 2000.0, true};
    policy.observe({at(t), {s}, {}});
  }
  ServiceObservation s = service_with_cpu(1, 0.5, at(60));
  s.desired_replicas = 1;
  const Plan plan = policy.decide({at(60), {s}, {}}, at(60));
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].replicas, 4);  // 200 / (100 x 0.5); at 0.7's 70 it was 3
}

// A world observed every 15 s (the simulator at --step 15s): each sample stands for the seconds
// since the one before, so the stable window averages the load, not the load diluted by
// fourteen empty seconds in fifteen.
TEST(KpaPolicyTest, ASampleEveryFifteenSecondsFillsTheSecondsBetween) {
  KpaPolicy policy;
  expect_ten_pods_for_seventy(kpa_after_seventy_in_flight(policy, {at(15), at(30), at(45), at(60)}));
}

// A world on the real clock (the local world) is observed a little more than a second apart (a
// tick runs a few ms late). Each sample describes one second: it must land in that second's
// bucket only, not also in the next one, which the next sample fills too (records in the same
// second add up, doubling the concurrency).
TEST(KpaPolicyTest, ASampleALittleMoreThanASecondAfterTheLastFillsOneSecond) {
  KpaPolicy policy;
  std::vector<Clock::TimePoint> late;
  for (Clock::TimePoint t = at(1); late.size() < 60;) late.push_back(t += 1005ms);
  expect_ten_pods_for_seventy(kpa_after_seventy_in_flight(policy, late));
}

// The controller observes at every decision too, and a decision tick (due 2 s after the last
// one) can come a few ms less than a second after the observation before it, when that one ran
// later than the decision had. Both samples then describe the same whole second (10.003 s and
// 10.999 s): Knative's collector scrapes once a second, so that second's bucket must hold one
// sample, not their sum (one second counted twice averages 71.19: 11 pods, not 10).
TEST(KpaPolicyTest, TwoSamplesInOneSecondFillItOnce) {
  KpaPolicy policy;
  std::vector<Clock::TimePoint> times;
  for (int i = 1; i <= 10; ++i) times.push_back(at(i) + 3ms);
  for (int i = 10; times.size() < 61; ++i) times.push_back(at(i) + 999ms);
  expect_ten_pods_for_seventy(kpa_after_seventy_in_flight(policy, times));
}

// Upstream's newAutoscaler starts in panic mode when the revision already has more than one ready
// pod (autoscaler.go: "We always start in the panic mode, if the deployment is scaled up over 1
// pod"), with maxPanicPods = those pods: a new autoscaler without metric history keeps the scale
// for a stable window instead of halving it on its first seconds of data. The kpa of a run starts
// like that, on services already up with their initial replicas.
TEST(KpaPolicyTest, StartsInPanicHoldingTheReadyPods) {
  KpaPolicy policy;
  policy.init({{.name = "api", .min_replicas = 1, .max_replicas = 50, .max_concurrency = 10}});
  auto snapshot = [](int t) {
    ServiceObservation s = service_with_cpu(10, 0.1, at(t));
    s.last_second = {at(t), 7.0, 70.0, true};  // one pod's worth (target 10 x 0.7 = 7)
    return Snapshot{at(t), {s}, {}};
  };
  for (int t = 1; t <= 60; ++t) {
    policy.observe(snapshot(t));
    if (t % 2 == 0) {
      EXPECT_TRUE(policy.decide(snapshot(t), at(t)).decisions.empty()) << "t=" << t;
    }
  }
  // A stable window after the start without a reason to panic: halving, as the rate allows.
  for (int t = 61; t <= 62; ++t) policy.observe(snapshot(t));
  const Plan plan = policy.decide(snapshot(62), at(62));
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].replicas, 5);
}

// Upstream's MultiScaler.Poke: a revision at zero whose stat shows requests in flight (held by
// the activator, or by Prescale's gateway) is decided on at once, not at its next 2 s tick; one
// with a replica asked for, or with nothing in flight, waits for the tick.
TEST(KpaPolicyTest, ARevisionAtZeroWithRequestsInFlightIsDecidedAtOnce) {
  KpaPolicy policy;
  policy.init({{.name = "api", .min_replicas = 0, .max_replicas = 5, .max_concurrency = 10}});
  auto snapshot = [](int t, double in_flight, int desired) {
    ServiceObservation s;
    s.name = "api";
    s.desired_replicas = desired;
    s.last_second = {at(t), in_flight, in_flight, true};
    return Snapshot{at(t), {s}, {}};
  };
  // Started with no replica (replicas.initial 0) and idle: it stays at zero, no pod started for
  // the scale-to-zero grace (which keeps one of a revision going to zero).
  for (int t = 1; t <= 90; ++t) {
    policy.observe(snapshot(t, 0, 0));
    if (t % 2 == 0) {
      EXPECT_TRUE(policy.decide(snapshot(t, 0, 0), at(t)).decisions.empty()) << t;
    }
  }
  EXPECT_FALSE(policy.decide_early(snapshot(90, 0, 0)));  // idle at zero
  // The held request shows 300 ms after the second's first sample, which recorded nothing: it
  // counts in that second all the same, so that the decision it asks for finds it.
  Snapshot held = snapshot(90, 0.01, 0);
  held.time += 300ms;
  held.services[0].last_second.at = held.time;
  policy.observe(held);
  EXPECT_TRUE(policy.decide_early(held));
  const Plan plan = policy.decide(held, held.time);
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].replicas, 1);
  EXPECT_FALSE(policy.decide_early(snapshot(92, 1, 1)));  // its replica asked for
  ServiceObservation other = snapshot(92, 1, 0).services[0];
  other.name = "other";  // not the policy's
  EXPECT_FALSE(policy.decide_early({at(92), {other}, {}}));
}

TEST(KpaPolicyTest, NoDecisionWithoutData) {
  KpaPolicy policy;
  policy.init({{.name = "api"}});
  ServiceObservation s = service_with_cpu(3, 0.5, at(10));
  EXPECT_TRUE(policy.decide({at(10), {s}, {}}, at(10)).decisions.empty());
}

// minReplicas and maxReplicas edited while it runs: the next sync clamps to them, a count above
// the new max brought down at once (upstream: "current replicas above max").
TEST(HpaPolicyTest, NewBoundsHoldFromTheNextSync) {
  HpaPolicy policy({.target_cpu_utilization_percent = 50});
  policy.init({{.name = "api", .min_replicas = 1, .max_replicas = 20}});
  EXPECT_EQ(policy.decide({at(900), {service_with_cpu(4, 1.0, at(900))}, {}}, at(900))
                .decisions.at(0)
                .replicas,
            8);
  policy.respec({.name = "api", .min_replicas = 1, .max_replicas = 6});
  Plan plan = policy.decide({at(915), {service_with_cpu(8, 0.5, at(915))}, {}}, at(915));
  EXPECT_EQ(plan.decisions.at(0).replicas, 6);
  EXPECT_THAT(plan.decisions[0].reason, testing::HasSubstr("clamped to max 6"));
  policy.respec({.name = "api", .min_replicas = 7, .max_replicas = 20});
  plan = policy.decide({at(930), {service_with_cpu(6, 0.5, at(930))}, {}}, at(930));
  EXPECT_EQ(plan.decisions.at(0).replicas, 7);
  EXPECT_THAT(plan.decisions[0].reason, testing::HasSubstr("clamped to min 7"));
  policy.respec({.name = "web", .min_replicas = 1, .max_replicas = 1});  // unknown: ignored
}

TEST(KpaPolicyTest, NewBoundsHoldFromTheNextDecision) {
  KpaPolicy policy;
  std::vector<Clock::TimePoint> every_second;
  for (int t = 1; t <= 60; ++t) every_second.push_back(at(t));
  expect_ten_pods_for_seventy(kpa_after_seventy_in_flight(policy, every_second));
  // The autoscaler made, its windows full.
  policy.respec({.name = "api", .min_replicas = 1, .max_replicas = 6});
  ServiceObservation s = service_with_cpu(10, 0.5, at(60));
  s.desired_replicas = 10;
  const Plan plan = policy.decide({at(62), {s}, {}}, at(62));
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].replicas, 6);
}

// A service added while it runs gets an autoscaler of its own from the next decision; one
// removed gets no decision. Each port does the same (AWS, static: below).
TEST(HpaPolicyTest, AnAddedServiceIsDecidedOnAndARemovedOneNoLonger) {
  HpaPolicy policy({.target_cpu_utilization_percent = 50});
  policy.init({{.name = "api", .min_replicas = 1, .max_replicas = 20}});
  ASSERT_TRUE(policy.add_service({.name = "web", .min_replicas = 1, .max_replicas = 20}));
  EXPECT_FALSE(policy.add_service({.name = "web"}));
  ServiceObservation web = service_with_cpu(2, 1.0, at(900));
  web.name = "web";
  Plan plan = policy.decide({at(900), {service_with_cpu(4, 0.5, at(900)), web}, {}}, at(900));
  ASSERT_EQ(plan.decisions.size(), 2u);
  EXPECT_EQ(plan.decisions[1].service, "web");
  EXPECT_EQ(plan.decisions[1].replicas, 4);  // 2 × 100 % / 50 %
  policy.remove_service("api");
  plan = policy.decide({at(915), {service_with_cpu(4, 0.5, at(915)), web}, {}}, at(915));
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].service, "web");
}

TEST(KpaPolicyTest, AnAddedServiceIsDecidedOnAndARemovedOneNoLonger) {
  KpaPolicy policy;
  std::vector<Clock::TimePoint> every_second;
  for (int t = 1; t <= 60; ++t) every_second.push_back(at(t));
  expect_ten_pods_for_seventy(kpa_after_seventy_in_flight(policy, every_second, /*added=*/true));
  policy.remove_service("api");
  ServiceObservation s = service_with_cpu(10, 0.5, at(60));
  EXPECT_TRUE(policy.decide({at(62), {s}, {}}, at(62)).decisions.empty());
}

}  // namespace
}  // namespace prescale::scaling
