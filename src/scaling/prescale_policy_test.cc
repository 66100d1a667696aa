#include "scaling/prescale_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>

#include "forecast/gbt_model.h"

namespace prescale::scaling {
namespace {

using testing::HasSubstr;
using testing::Not;
using namespace std::chrono_literals;

Clock::TimePoint at(double seconds) {
  return Clock::TimePoint(
      std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(seconds)));
}

// A tiny world: services with a load each, edges with fan-outs, replicas always ready, scraped
// every 15 s over 30 s windows; counters accumulate exactly.
struct FakeWorld {
  struct Svc {
    std::string name;
    double rps = 0;
    int replicas = 1;
    double served_total = 0;
    double slow_rps = 0;        // served slower than the SLO
    double external_rps = NAN;  // of rps, from outside the call graph; NaN: not reported
  };
  std::vector<Svc> services;
  std::vector<std::tuple<std::string, std::string, double, double>> edges;  // a, b, fanout, total

  Snapshot at_time(double t) {
    Snapshot s;
    s.time = at(t);
    for (auto& svc : services) {
      svc.served_total += svc.rps * 15;
      ServiceObservation o;
      o.name = svc.name;
      o.desired_replicas = svc.replicas;
      for (int i = 0; i < svc.replicas; ++i) {
        ReplicaObservation r;
        r.id = svc.name + "-" + std::to_string(i);
        r.state = ReplicaState::kReady;
        o.replicas.push_back(r);
      }
      o.window.sampled_at = at(t);
      o.window.length = 30s;
      o.window.arrival_rps = svc.rps;
      o.window.served_rps = svc.rps;
      o.window.served_total = svc.served_total;
      o.window.slow_rps = svc.slow_rps;
      o.window.external_rps = svc.external_rps;
      o.last_second = {at(t), 0, svc.rps, true};
      s.services.push_back(o);
    }
    for (auto& [a, b, fanout, total] : edges) {
      for (const auto& svc : services) {
        if (svc.name == a) total += svc.rps * 15 * fanout;
      }
      s.edges.push_back({a, b, total});
    }
    return s;
  }
};

ServiceSpec spec(std::string name, double capacity = 100) {
  ServiceSpec s;
  s.name = std::move(name);
  s.min_replicas = 1;
  s.max_replicas = 200;
  s.capacity_rps = capacity;
  s.max_concurrency = 4;
  s.startup_time = 60s;
  return s;
}

// spec(name) within other bounds.
ServiceSpec bounded(std::string name, int min_replicas, int max_replicas) {
  ServiceSpec s = spec(std::move(name));
  s.min_replicas = min_replicas;
  s.max_replicas = max_replicas;
  return s;
}

// A copy: decide()'s Plan is often a temporary.
std::optional<Decision> decision_for(const Plan& plan, std::string_view service) {
  for (const auto& d : plan.decisions) {
    if (d.service == service) return d;
  }
  return std::nullopt;
}

TEST(PrescalePolicyTest, WithoutHistoryItIsTheReactiveFloor) {
  PrescalePolicy policy;
  policy.init({spec("api")});
  FakeWorld world{{{"api", 500, 1, 0}}, {}};
  const Snapshot s = world.at_time(15);
  policy.observe(s);
  const Plan plan = policy.decide(s, at(15));
  const std::optional<Decision> d = decision_for(plan, "api");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->replicas, 6);  // 500 rps × 1.05 headroom / 100 per replica
  EXPECT_THAT(d->reason, HasSubstr("reactive floor"));
}

// A snapshot of one service "api" at `t` with `rps` and these replicas: (started, ready or <0
// while starting) in seconds; one asked for.
Snapshot with_replicas(double t, double rps, const std::vector<std::pair<double, double>>& rs) {
  Snapshot s;
  s.time = at(t);
  ServiceObservation o;
  o.name = "api";
  o.desired_replicas = 1;
  for (size_t i = 0; i < rs.size(); ++i) {
    ReplicaObservation r;
    r.id = "api-" + std::to_string(i);
    r.started_at = at(rs[i].first);
    if (rs[i].second >= 0) {
      r.state = ReplicaState::kReady;
      r.ready_at = at(rs[i].second);
    }
    o.replicas.push_back(r);
  }
  o.window.sampled_at = at(t);
  o.window.length = 30s;
  o.window.arrival_rps = o.window.served_rps = rps;
  o.last_second = {at(t), 0, rps, true};
  s.services.push_back(o);
  return s;
}

// The reason of the decision for "api" on `s` (empty: no decision).
std::string decide_reason(PrescalePolicy& policy, const Snapshot& s) {
  policy.observe(s);
  const std::optional<Decision> d = decision_for(policy.decide(s, s.time), "api");
  return d ? d->reason : std::string();
}

// The lead time is the replicas' own startup, once three have been seen starting: the spec's 60 s
// until then. Replicas found running are not counted, nor is a ready one counted twice.
TEST(PrescalePolicyTest, TheStartupTimeIsLearnedFromTheReplicasStarted) {
  PrescalePolicy policy;
  policy.init({spec("api")});
  auto reason = [&](const Snapshot& s) { return decide_reason(policy, s); };
  // Found running: one replica, started long before.
  EXPECT_THAT(reason(with_replicas(15, 150, {{-100, -90}})), HasSubstr("60 s startup /"));
  // Two started since, ready 12 and 8 s later: seen again and again, each counts once.
  for (double t : {30.0, 45.0, 60.0}) {
    const std::string r = reason(with_replicas(t, 150, {{-100, -90}, {16, 28}, {17, 25}}));
    EXPECT_THAT(r, Not(HasSubstr("learned"))) << t;
  }
  // A third, 10 s: the largest of three (the 90th percentile of fewer than ten) is planned with.
  const std::string r = reason(with_replicas(75, 150, {{-100, -90}, {16, 28}, {17, 25}, {62, 72}}));
  EXPECT_THAT(r, HasSubstr("12 s startup (learned) /")) << r;
}

// A replica out of service for a while (failing its readiness: draining) and ready again, its
// readiness newer, is not a new start; one that starts again (a restart) is.
TEST(PrescalePolicyTest, AReplicaReadyAgainAfterASpellOutIsNotANewStart) {
  PrescalePolicy policy;
  policy.init({spec("api")});
  auto reason = [&](const Snapshot& s) { return decide_reason(policy, s); };
  reason(with_replicas(15, 150, {{-100, -90}}));
  reason(with_replicas(30, 150, {{-100, -90}, {16, 28}, {17, 25}}));
  Snapshot out = with_replicas(45, 150, {{-100, -90}, {16, 28}, {17, 25}});
  out.services[0].replicas[1].state = ReplicaState::kDraining;
  out.services[0].replicas[1].ready_at.reset();
  reason(out);
  // Ready again at 50 (50 - 16 = 34 s would be no startup): still two learned, 60 s planned.
  EXPECT_THAT(reason(with_replicas(60, 150, {{-100, -90}, {16, 50}, {17, 25}})),
              HasSubstr("60 s startup /"));
  // A third start, of 10 s: the largest of 12, 8 and 10.
  EXPECT_THAT(reason(with_replicas(75, 150, {{-100, -90}, {16, 50}, {17, 25}, {62, 72}})),
              HasSubstr("12 s startup (learned) /"));
}

TEST(PrescalePolicyTest, DownstreamScalesWithItsCallersAtOnce) {
  PrescalePolicy policy;
  policy.init({spec("front"), spec("back")});
  // The back end has seen no load yet; the front end's calls teach a fan-out of 2.
  FakeWorld world{{{"front", 100, 2, 0}, {"back", 200, 4, 0}}, {{"front", "back", 2.0, 0}}};
  double t = 0;
  for (int i = 0; i < 8; ++i) {
    t += 15;
    policy.observe(world.at_time(t));
  }
  EXPECT_NEAR(policy.topology().fanout("front", "back"), 2.0, 1e-6);
  // A surge at the front: the back end is planned for it before its own metrics move.
  world.services[0].rps = 400;
  world.services[1].rps = 200;
  t += 60;  // a new minute, so the propagation order is refreshed
  const Snapshot s = world.at_time(t);
  policy.observe(s);
  const Plan plan = policy.decide(s, at(t));
  const std::optional<Decision> back = decision_for(plan, "back");
  ASSERT_TRUE(back);
  EXPECT_GE(back->replicas, 8);  // 400 × 2 / 100
  EXPECT_THAT(back->reason, HasSubstr("callers"));

  // The topology ablation waits for the back end's own load.
  PrescalePolicyOptions alone;
  alone.use_topology = false;
  PrescalePolicy blind(alone);
  blind.init({spec("front"), spec("back")});
  FakeWorld same{{{"front", 400, 2, 0}, {"back", 200, 4, 0}}, {{"front", "back", 2.0, 0}}};
  for (double u = 15; u <= 180; u += 15) blind.observe(same.at_time(u));
  const Snapshot s2 = same.at_time(195);
  const Plan blind_plan = blind.decide(s2, at(195));
  const std::optional<Decision> blind_back = decision_for(blind_plan, "back");
  EXPECT_TRUE(!blind_back || blind_back->replicas < 8);
}

// A back end that its front end calls and that also has clients of its own (its own route):
// those requests recur every hour with a ramp (50 → 300 req/s at minutes 40-49). They are
// forecast on their own and added to what the front end sends, so the back end is ready for
// the ramp; planned from its callers alone it would not be.
TEST(PrescalePolicyTest, ABackEndsOwnClientsAreForecastBesideItsCallers) {
  auto plan_at_minute_35 = [](bool report_external) {
    PrescalePolicyOptions options;
    options.forecaster.model.day_seconds = 3600;
    PrescalePolicy policy(options);
    ServiceSpec back = spec("back");
    back.startup_time = 10min;  // the plan at minute 35 covers the ramp at 40
    policy.init({spec("front"), back});
    FakeWorld world{{{"front", 100, 1, 0}, {"back", 150, 2, 0}}, {{"front", "back", 1.0, 0}}};
    Snapshot last;
    double t = 0;
    for (int minute = 0; minute < 4 * 60 + 35; ++minute) {
      const double own = minute % 60 >= 40 && minute % 60 < 50 ? 300 : 50;
      world.services[1].rps = 100 + own;
      world.services[0].external_rps = report_external ? 100 : NAN;
      world.services[1].external_rps = report_external ? own : NAN;
      for (int k = 0; k < 4; ++k) {
        t += 15;
        last = world.at_time(t);
        policy.observe(last);
      }
    }
    const Plan plan = policy.decide(last, at(t));
    const std::optional<Decision> d = decision_for(plan, "back");
    return d ? *d : Decision{"back", 2, ""};
  };
  const Decision with_own = plan_at_minute_35(true);
  EXPECT_GE(with_own.replicas, 4) << with_own.reason;  // (100 + 300) / 100 before minute 40
  EXPECT_THAT(with_own.reason, HasSubstr("callers + own forecast"));
  const Decision callers_only = plan_at_minute_35(false);
  EXPECT_LT(callers_only.replicas, with_own.replicas) << callers_only.reason;
}

TEST(PrescalePolicyTest, ScalesUpAheadOfAForecastRamp) {
  // A load that repeats every hour: flat at 100 rps, then 400 rps for minutes 40-49. The "day"
  // of the forecasting models is set to an hour so a few hours of history teach the pattern.
  PrescalePolicyOptions options;
  options.forecaster.model.day_seconds = 3600;
  options.forecaster.model.week_seconds = 7 * 3600;
  options.min_history = 120min;
  PrescalePolicy policy(options);
  policy.init({spec("api")});
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  auto load = [](double t) {
    const int minute = static_cast<int>(t / 60) % 60;
    return minute >= 40 && minute < 50 ? 400.0 : 100.0;
  };
  int before_ramp = 0, mid_flat = 0;
  for (double t = 15; t <= 6 * 3600; t += 15) {
    world.services[0].rps = load(t - 15);  // the window just ended
    const Snapshot s = world.at_time(t);
    policy.observe(s);
    if (static_cast<int>(t) % 5 != 0) continue;
    const Plan plan = policy.decide(s, at(t));
    if (const auto d = decision_for(plan, "api")) world.services[0].replicas = d->replicas;
    // In the last hour, 30 s before the ramp (the load is still 100 rps): the plan already holds
    // enough for 400 rps, because a replica started later would not be ready in time.
    if (t == 5 * 3600 + 39 * 60 + 30) before_ramp = world.services[0].replicas;
    if (t == 5 * 3600 + 30 * 60) mid_flat = world.services[0].replicas;
  }
  EXPECT_GE(before_ramp, 4);
  EXPECT_LE(mid_flat, 3);  // and not all the time
  const auto f = policy.demand_forecast("api");
  ASSERT_FALSE(f.p50.empty());
  EXPECT_NE(f.model, "naive");
}

TEST(PrescalePolicyTest, ScaleDownWaitsForTheDelay) {
  PrescalePolicyOptions options;
  options.scale_down_delay = 60s;
  PrescalePolicy policy(options);
  policy.init({spec("api")});
  FakeWorld world{{{"api", 500, 6, 0}}, {}};
  Snapshot s = world.at_time(15);
  policy.observe(s);
  policy.decide(s, at(15));
  world.services[0].rps = 100;
  s = world.at_time(30);
  policy.observe(s);
  EXPECT_FALSE(decision_for(policy.decide(s, at(30)), "api"));  // held at 6
  s = world.at_time(90);
  policy.observe(s);
  const std::optional<Decision> d = decision_for(policy.decide(s, at(90)), "api");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->replicas, 2);  // 100 × 1.05 / 100, after the 60 s delay
}

TEST(PrescalePolicyTest, AForecastShortensTheScaleDownDelay) {
  // Six replicas for 100 rps (two are enough): with two hours of flat history the forecast
  // plans the service and the shorter delay applies; without history, the longer one.
  PrescalePolicyOptions options;
  options.scale_down_delay = 5min;
  options.forecast_scale_down_delay = 60s;
  const double start = 2 * 3600;
  forecast::Series flat;
  flat.step_seconds = 60;
  flat.values.assign(120, 100.0);
  std::optional<double> with_forecast, without;  // seconds until the count fell to 2
  for (const bool with_history : {true, false}) {
    PrescalePolicy policy(options);
    policy.init({spec("api")});
    if (with_history) {
      ASSERT_TRUE(policy.load_history("api", flat, at(start)));
    }
    std::optional<double>& released = with_history ? with_forecast : without;
    FakeWorld world{{{"api", 100, 6, 0}}, {}};
    for (double t = start + 15; t <= start + 400 && !released; t += 15) {
      const Snapshot s = world.at_time(t);
      policy.observe(s);
      const std::optional<Decision> d = decision_for(policy.decide(s, at(t)), "api");
      if (!d) continue;
      EXPECT_EQ(d->replicas, 2);
      released = t - start;
    }
  }
  ASSERT_TRUE(with_forecast);
  ASSERT_TRUE(without);
  EXPECT_EQ(*with_forecast, 15 + 60);  // a minute after the first decision
  EXPECT_EQ(*without, 15 + 300);       // five minutes after it
}

// A fresh policy's decision for `service` after one scrape of `world`, at 15 s.
// Seven minutes at 500 rps without a forecast plan six replicas, held for the 5-minute delay;
// then a forecast arrives (two hours of history, 100 rps) with its 1-minute delay, and the load
// falls to it. The plans made without a forecast are still held for their own 5 minutes: the
// forecast's shorter delay applies to the plans it makes, not to those before it.
TEST(PrescalePolicyTest, APlanMadeBeforeTheFirstForecastKeepsItsOwnDelay) {
  PrescalePolicyOptions options;
  options.scale_down_delay = 5min;
  options.forecast_scale_down_delay = 60s;
  PrescalePolicy policy(options);
  policy.init({spec("api")});
  FakeWorld world{{{"api", 500, 6, 0}}, {}};
  const double switch_at = 2 * 3600 + 420;
  std::optional<double> released;
  for (double t = 2 * 3600 + 15; t <= switch_at + 600 && !released; t += 15) {
    if (t > switch_at && world.services[0].rps != 100) {
      forecast::Series flat;
      flat.step_seconds = 60;
      flat.values.assign(120, 100.0);
      ASSERT_TRUE(policy.load_history("api", flat, at(switch_at)));
      world.services[0].rps = 100;
    }
    const Snapshot s = world.at_time(t);
    policy.observe(s);
    if (const auto d = decision_for(policy.decide(s, at(t)), "api")) {
      world.services[0].replicas = d->replicas;
      if (d->replicas < 6) released = t;
    }
  }
  ASSERT_TRUE(released);
  // The last plan of six was made at switch_at: held until 300 s later, released at the next
  // decision (it used to go a minute after the forecast arrived).
  EXPECT_EQ(*released, switch_at + 315);
}

std::optional<Decision> first_decision(const ServiceSpec& service, FakeWorld world) {
  PrescalePolicy policy;
  policy.init({service});
  const Snapshot s = world.at_time(15);
  policy.observe(s);
  return decision_for(policy.decide(s, at(15)), service.name);
}

TEST(PrescalePolicyTest, RespectsBoundsAndDrainsBacklogs) {
  ServiceSpec capped = spec("api");
  capped.max_replicas = 3;
  const std::optional<Decision> d = first_decision(capped, {{{"api", 1000, 2, 0}}, {}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->replicas, 3);
  EXPECT_THAT(d->reason, HasSubstr("capped at max 3"));

  // A backlog (concurrency far above what the ready replicas serve) adds its drain rate.
  PrescalePolicy drain;
  drain.init({spec("api")});
  FakeWorld backlog{{{"api", 100, 1, 0}}, {}};
  Snapshot b = backlog.at_time(15);
  b.services[0].last_second.concurrency = 4 + 1000;  // 1000 queued, drained in 10 s
  drain.observe(b);
  const std::optional<Decision> bd = decision_for(drain.decide(b, at(15)), "api");
  ASSERT_TRUE(bd);
  EXPECT_EQ(bd->replicas, 3);  // (100 × 1.05 + 1000 queued / 10 s) / 100 per replica
  EXPECT_THAT(bd->reason, HasSubstr("backlog"));
}

// One replica of 100 req/s serving 90 req/s, past the first scale-down delay; then a step to
// 300 req/s, detected at t = 400 s with 100 requests queued.
struct StepOnOneReplica {
  explicit StepOnOneReplica(const ServiceSpec& service) {
    policy.init({service});
    for (double t = 15; t < 400; t += 15) {
      const Snapshot quiet = world.at_time(t);
      policy.observe(quiet);
      policy.decide(quiet, at(t));
    }
  }
  std::optional<Decision> decide_at_the_step() {
    world.services[0].rps = 300;
    Snapshot s = world.at_time(400);
    s.services[0].last_second.concurrency = 4 + 100;
    policy.observe(s);
    return decision_for(policy.decide(s, at(400)), "api");
  }
  PrescalePolicy policy;
  FakeWorld world{{{"api", 90, 1, 0}}, {}};
};

TEST(PrescalePolicyTest, SizesABacklogForWhenHelpArrivesAndReleasesItOnceDrained) {
  // A step from 100 to 300 req/s on one replica of 100: detected with 100 requests queued, but
  // by the time replicas started now are ready (60 s) another 200 × 60 have queued. Draining
  // that within 10 s takes (12,100 / 10 + 300 × 1.05) / 100 = 16 replicas.
  StepOnOneReplica step(spec("api"));
  PrescalePolicy& policy = step.policy;
  FakeWorld& world = step.world;
  const std::optional<Decision> d = step.decide_at_the_step();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->replicas, 16);
  EXPECT_THAT(d->reason, HasSubstr("backlog 1210.0 rps"));

  // 15 s later 15 replicas are starting (45 s to go) and the queue has grown by 200 × 15: they
  // will find 100 + 200 × 60 = 12,100 queued, as planned — no more are asked for.
  world.services[0].replicas = 16;
  auto starting = [&](double t, double queued) {
    Snapshot snap = world.at_time(t);
    for (size_t i = 1; i < snap.services[0].replicas.size(); ++i) {
      snap.services[0].replicas[i].state = ReplicaState::kStarting;
      snap.services[0].replicas[i].started_at = at(400);
    }
    snap.services[0].last_second.concurrency = 4 + queued;
    return snap;
  };
  Snapshot growing = starting(415, 100 + 200 * 15);
  policy.observe(growing);
  EXPECT_FALSE(decision_for(policy.decide(growing, at(415)), "api"));
  // A second with an empty queue while they start does not cancel them.
  Snapshot lull = starting(430, 0);
  policy.observe(lull);
  EXPECT_FALSE(decision_for(policy.decide(lull, at(430)), "api"));

  // Once they are ready and the queue is gone, the replicas that drained it are not held for the
  // scale-down delay: a startup time after the backlog was last seen, the steady floor
  // (300 × 1.05 / 100 → 4) applies.
  Snapshot later = world.at_time(480);
  policy.observe(later);
  const std::optional<Decision> after = decision_for(policy.decide(later, at(480)), "api");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->replicas, 4);
}

TEST(PrescalePolicyTest, BehindAQueueLimitABacklogIsSizedForTheLimitNotForAFifoQueue) {
  // The step above (100 → 300 req/s on one replica of 100, 100 queued), behind admission control
  // of 0.1 s: what the replica cannot serve is refused, not queued, so help finds the queue of
  // now at most, drained in 10 s: (300 × 1.05 + 100 / 10) / 100 → 4 replicas, not 16.
  ServiceSpec limited = spec("api");
  limited.queue_limit_seconds = 0.1;
  const std::optional<Decision> d = StepOnOneReplica(limited).decide_at_the_step();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->replicas, 4);
  EXPECT_THAT(d->reason, HasSubstr("backlog 10.0 rps"));

  // With no replica ready, requests wait for one (as for an activator): the FIFO sizing stands.
  PrescalePolicy cold;
  cold.init({limited});
  FakeWorld none{{{"api", 300, 1, 0}}, {}};
  Snapshot c = none.at_time(15);
  c.services[0].replicas[0].state = ReplicaState::kStarting;
  c.services[0].replicas[0].started_at = at(0);
  c.services[0].last_second.concurrency = 100;
  cold.observe(c);
  const std::optional<Decision> cd = decision_for(cold.decide(c, at(15)), "api");
  ASSERT_TRUE(cd);
  EXPECT_GT(cd->replicas, 4);
}

// A service scaled to zero (min 0) whose first request waits in the gateway: its window counted
// nothing yet and the last second's rate is no surge against it, but none of its replicas serves
// the request at all: it gets one at once, saying why. Without requests it stays at zero.
TEST(PrescalePolicyTest, AServiceScaledToZeroThatARequestWaitsForGetsAReplicaAtOnce) {
  ServiceSpec zero = spec("api");
  zero.min_replicas = 0;
  zero.max_concurrency = 0;  // unbounded: no backlog counted from the requests in flight
  PrescalePolicy policy;
  policy.init({zero});
  FakeWorld world{{{"api", 0, 0, 0}}, {}};
  Snapshot idle = world.at_time(15);
  policy.observe(idle);
  EXPECT_FALSE(policy.decide_early(idle));
  EXPECT_FALSE(decision_for(policy.decide(idle, at(15)), "api")) << "stays at zero";
  // Its last replica draining a long request, just scaled to zero: that request waits for no
  // replica, so nothing wakes it (it would flap back to one).
  Snapshot draining = world.at_time(15.5);
  ReplicaObservation last;
  last.id = "api-0";
  last.state = ReplicaState::kDraining;
  draining.services[0].replicas.push_back(last);
  draining.services[0].last_second.concurrency = 1;
  EXPECT_FALSE(policy.decide_early(draining));

  // Idle past the scale-down delay (5 minutes) since its first decision.
  Snapshot later = world.at_time(400);
  policy.observe(later);
  EXPECT_FALSE(decision_for(policy.decide(later, at(400)), "api"));

  Snapshot waiting = world.at_time(401);
  waiting.services[0].last_second.concurrency = 0.8;  // held in the gateway most of the second
  policy.observe(waiting);
  EXPECT_TRUE(policy.decide_early(waiting));
  const std::optional<Decision> d = decision_for(policy.decide(waiting, at(401)), "api");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->replicas, 1);
  EXPECT_EQ(d->reason, "prescale: requests wait and no replica serves them (scaled to zero)");
  // Asked for: not again at the next second, while it starts.
  EXPECT_FALSE(policy.decide_early(waiting));
  // Served, and quiet again a minute later: held as a plan of one for the scale-down delay, not
  // dropped at once.
  world.services[0].replicas = 1;
  Snapshot quiet = world.at_time(461);
  policy.observe(quiet);
  EXPECT_FALSE(decision_for(policy.decide(quiet, at(461)), "api"));
  // Once the delay has passed since the wake: back to zero.
  Snapshot idle_again = world.at_time(710);
  policy.observe(idle_again);
  const std::optional<Decision> zero_again =
      decision_for(policy.decide(idle_again, at(710)), "api");
  ASSERT_TRUE(zero_again);
  EXPECT_EQ(zero_again->replicas, 0);
}

TEST(PrescalePolicyTest, ObservesEverySecondAndDecidesEarlyOnASurgeItsReplicasCannotServe) {
  PrescalePolicy policy;
  policy.init({spec("api")});
  EXPECT_EQ(policy.observe_interval(), 1s);
  EXPECT_EQ(policy.period(), 5s);
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  auto with_last_second = [&](double rps, int desired) {
    world.services[0].replicas = desired;
    Snapshot s = world.at_time(15);
    s.services[0].last_second.requests = rps;
    return s;
  };
  // 400 req/s in the last second against a 100 req/s window: 2 replicas of 100 cannot serve it.
  EXPECT_TRUE(policy.decide_early(with_last_second(400, 2)));
  // Already asked for enough (400 × 1.05 / 100 → 5): the next period will do.
  EXPECT_FALSE(policy.decide_early(with_last_second(400, 5)));
  // Counted as the floor counts it: 476.1904762 × 1.05 is 500.00000001 req/s, which 5 replicas
  // of 100 serve to the floor's rounding (1e-9 of a replica), so a decision would change nothing.
  EXPECT_FALSE(policy.decide_early(with_last_second(476.1904762, 5)));
  // Not a surge (at most 1.5× the window), however few the replicas: the period's decision.
  EXPECT_FALSE(policy.decide_early(with_last_second(150, 1)));
  // At its max_replicas (200) already, or not a service the policy manages: nothing to gain.
  EXPECT_FALSE(policy.decide_early(with_last_second(1e6, 200)));
  Snapshot other = with_last_second(400, 2);
  other.services[0].name = "other";
  EXPECT_FALSE(policy.decide_early(other));

  // Once decided for the surge, not again every second when the world does not follow (a
  // recommend-only world keeps its replica count).
  const Snapshot surge = with_last_second(400, 2);
  policy.observe(surge);
  const std::optional<Decision> d = decision_for(policy.decide(surge, at(15)), "api");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->replicas, 5);
  EXPECT_FALSE(policy.decide_early(with_last_second(400, 2)));
  EXPECT_TRUE(policy.decide_early(with_last_second(600, 2)));  // a larger surge still is

  // Without the reactive floor nothing is acted on between decisions, nor observed.
  PrescalePolicyOptions no_floor;
  no_floor.reactive_floor = false;
  PrescalePolicy ablated(no_floor);
  ablated.init({spec("api")});
  EXPECT_EQ(ablated.observe_interval(), 5s);
  EXPECT_FALSE(ablated.decide_early(with_last_second(400, 2)));
}

TEST(PrescalePolicyTest, LoadsHistoryAndForecastsFromIt) {
  PrescalePolicyOptions options;
  options.forecaster.model.day_seconds = 3600;
  PrescalePolicy policy(options);
  policy.init({spec("api")});
  forecast::Series minutes;
  minutes.step_seconds = 60;
  // Five hours and 35 minutes of an hourly pattern: the ramp (minutes 40-49) is 5 minutes away.
  for (int m = 0; m < 5 * 60 + 35; ++m) {
    minutes.values.push_back(m % 60 >= 40 && m % 60 < 50 ? 400 : 100);
  }
  ASSERT_TRUE(policy.load_history("api", minutes, at((5 * 60 + 35) * 60)));
  const forecast::QuantileForecast f = policy.demand_forecast("api");
  ASSERT_EQ(f.p50.size(), 15u);
  EXPECT_NEAR(f.p50[0], 100, 20);  // minute 35
  EXPECT_NEAR(f.p50[6], 400, 60);  // minute 41: the recurring ramp

  auto unknown = policy.load_history("nope", minutes, at(0));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  minutes.step_seconds = 300;
  EXPECT_FALSE(policy.load_history("api", minutes, at(0)));

  // A service's own clients' requests, as a series of its own (a service callers call too).
  minutes.step_seconds = 60;
  minutes.values.assign(90, 7.0);
  ASSERT_TRUE(policy.load_history("api", minutes, at(5 * 3600), std::nullopt,
                                  PrescalePolicy::SeriesKind::kExternal));
  auto external = policy.history("api", PrescalePolicy::SeriesKind::kExternal);
  ASSERT_TRUE(external);
  EXPECT_EQ(external->values.size(), 90u);
  EXPECT_EQ(external->start_seconds, 5 * 3600 - 90 * 60);
  PrescalePolicyOptions alone;
  alone.use_topology = false;
  PrescalePolicy without_topology(alone);
  without_topology.init({spec("api")});
  auto refused = without_topology.load_history("api", minutes, at(5 * 3600), std::nullopt,
                                               PrescalePolicy::SeriesKind::kExternal);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
}

// Load above the forecast's P99 lifts the whole path, but only when the window counted enough
// requests to tell: 150 req/s against a band near 100 is a surprise over 30 s of traffic (4,500
// requests), and noise over 20 ms of it (3 requests; a clock compressed for a demo).
TEST(PrescalePolicyTest, LiftsTheForecastOnlyBeyondCountingNoise) {
  auto decide_with = [](double traffic_seconds) {
    PrescalePolicyOptions options;
    options.forecaster.model.day_seconds = 3600;
    PrescalePolicy policy(options);
    ServiceSpec api = spec("api");
    api.startup_time = 10min;  // the plan covers the ramp at minutes 40-49
    policy.init({api});
    forecast::Series minutes;
    minutes.step_seconds = 60;
    for (int m = 0; m < 5 * 60 + 35; ++m) {
      minutes.values.push_back(m % 60 >= 40 && m % 60 < 50 ? 400 : 100);
    }
    EXPECT_TRUE(policy.load_history("api", minutes, at((5 * 60 + 35) * 60)));
    FakeWorld world{{{"api", 150, 4, 0}}, {}};
    Snapshot snap = world.at_time((5 * 60 + 35) * 60 + 15);
    snap.services[0].window.traffic_seconds = traffic_seconds;
    policy.observe(snap);
    const Plan plan = policy.decide(snap, snap.time);
    const std::optional<Decision> d = decision_for(plan, "api");
    return d ? *d : Decision{};
  };
  const Decision counted = decide_with(0);  // 0: the window's 30 s
  EXPECT_THAT(counted.reason, HasSubstr("lifted x1.5"));
  EXPECT_GE(counted.replicas, 6);  // the ramp's 400 × 1.5 / 100
  const Decision few = decide_with(0.02);
  EXPECT_THAT(few.reason, Not(HasSubstr("lifted")));
  EXPECT_LT(few.replicas, counted.replicas);
}

TEST(PrescalePolicyTest, PlansAtQuantilesBetweenTheCalibratedOnes) {
  // A noisy hourly pattern: P50 < P90 < P99 differ. One replica serves 1 rps, so the replicas
  // asked for read the planned demand directly.
  forecast::Series minutes;
  minutes.step_seconds = 60;
  std::uint32_t seed = 12345;
  for (int m = 0; m < 6 * 60; ++m) {
    seed = seed * 1664525u + 1013904223u;
    const double noise = static_cast<double>(seed >> 8) / (1 << 24) - 0.5;  // [-0.5, 0.5)
    minutes.values.push_back((m % 60 >= 40 && m % 60 < 50 ? 400 : 100) * (1 + 0.4 * noise));
  }
  auto replicas_at = [&](double quantile) {
    PrescalePolicyOptions options;
    options.forecaster.model.day_seconds = 3600;
    options.quantile = quantile;
    PrescalePolicy policy(options);
    ServiceSpec s = spec("api", 1);
    s.max_replicas = 10000;
    policy.init({s});
    EXPECT_TRUE(policy.load_history("api", minutes, at(6 * 3600)));
    FakeWorld world{{{"api", 10, 1, 0}}, {}};  // little load now: the forecast decides
    const Snapshot snap = world.at_time(6 * 3600 + 15);
    policy.observe(snap);
    const std::optional<Decision> d = decision_for(policy.decide(snap, at(6 * 3600 + 15)), "api");
    EXPECT_TRUE(d);
    return !d ? 0 : d->replicas;
  };
  const int p50 = replicas_at(0.5), p90 = replicas_at(0.9), p95 = replicas_at(0.95),
            p99 = replicas_at(0.99), p999 = replicas_at(0.999);
  EXPECT_LT(p50, p90);
  EXPECT_LT(p90, p95);
  EXPECT_LT(p95, p99);
  EXPECT_LT(p99, p999);  // past P99: extended with the P90-P99 slope
}

TEST(PrescalePolicyTest, ErrorBudgetSteersThePlanningQuantile) {
  PrescalePolicyOptions options;
  options.error_budget = 0.001;
  options.budget_step = 0.01;
  PrescalePolicy policy(options);
  policy.init({spec("api")});
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  double t = 0;
  auto run_minutes = [&](int n) {
    for (int i = 0; i < 4 * n; ++i) {
      t += 15;
      const Snapshot s = world.at_time(t);
      policy.observe(s);
      policy.decide(s, at(t));
    }
  };
  EXPECT_DOUBLE_EQ(policy.planning_quantile(), 0.9);
  // No request over the SLO for an hour: the budget is unspent, the headroom shrinks.
  run_minutes(60);
  const double relaxed = policy.planning_quantile();
  EXPECT_LT(relaxed, 0.8);
  EXPECT_GE(relaxed, 0.5);
  // 1 % of requests slow, ten times the budget: the quantile climbs, up to its bound.
  world.services[0].slow_rps = 1;
  run_minutes(30);
  EXPECT_GT(policy.planning_quantile(), 0.99);
  run_minutes(600);
  EXPECT_NEAR(policy.planning_quantile(), 0.9999, 1e-6);
  // Exactly the budget: it stays where it is.
  world.services[0].slow_rps = 0.1;
  const double before = policy.planning_quantile();
  run_minutes(30);
  EXPECT_NEAR(policy.planning_quantile(), before, 1e-3);
  // A scrape without the SLO's bucket (NaN) is left out of the budget, not a NaN quantile.
  world.services[0].slow_rps = NAN;
  run_minutes(1);
  world.services[0].slow_rps = 0.1;
  run_minutes(2);
  EXPECT_NEAR(policy.planning_quantile(), before, 1e-3);
  // A reload's new budget: 0.1 % slow is now far within it, and the quantile comes down from its
  // bound.
  policy.set_error_budget(0.1);
  run_minutes(300);
  EXPECT_LT(policy.planning_quantile(), 0.9);
  policy.set_error_budget(0.001);
  // init() starts the steering anew.
  policy.init({spec("api")});
  EXPECT_DOUBLE_EQ(policy.planning_quantile(), 0.9);

  // The budget is a share of requests: busy minutes weigh more. Minutes of 1,000 req/s with 0.2 %
  // slow alternate with minutes of 100 req/s with none — half the minutes at twice the budget,
  // but 0.18 % of requests: the quantile climbs (an unweighted mean of minute shares, exactly at
  // the budget, would leave it where it is).
  PrescalePolicy weighted(options);
  weighted.init({spec("api")});
  FakeWorld busy{{{"api", 100, 2, 0}}, {}};
  double u = 0;
  for (int minute = 0; minute < 120; ++minute) {
    busy.services[0].rps = minute % 2 == 0 ? 1000 : 100;
    busy.services[0].slow_rps = minute % 2 == 0 ? 2 : 0;
    for (int i = 0; i < 4; ++i) {
      u += 15;
      const Snapshot s = busy.at_time(u);
      weighted.observe(s);
      weighted.decide(s, at(u));
    }
  }
  EXPECT_GT(weighted.planning_quantile(), 0.95);

  // Without a budget the quantile is fixed.
  PrescalePolicy fixed;
  fixed.init({spec("api")});
  FakeWorld slow{{{"api", 100, 2, 0, 50}}, {}};
  for (double v = 15; v <= 3600; v += 15) {
    const Snapshot s = slow.at_time(v);
    fixed.observe(s);
    fixed.decide(s, at(v));
  }
  EXPECT_DOUBLE_EQ(fixed.planning_quantile(), 0.9);
}

// ---- restart support (docs/state.md) ---------------------------------------------------------

// Feeds `minutes` of an hourly pattern with deterministic noise to `policy`, every 15 s.
void feed_hourly(PrescalePolicy& policy, FakeWorld& world, double& t, int minutes) {
  std::uint32_t seed = 777;
  for (int i = 0; i < 4 * minutes; ++i) {
    t += 15;
    seed = seed * 1664525u + 1013904223u;
    const double noise = static_cast<double>(seed >> 8) / (1 << 24) - 0.5;
    const int minute = static_cast<int>(t / 60) % 60;
    world.services[0].rps = (minute >= 40 && minute < 50 ? 400 : 100) * (1 + 0.2 * noise);
    const Snapshot snap = world.at_time(t);
    policy.observe(snap);
    policy.decide(snap, at(t));
  }
}

PrescalePolicyOptions hourly_options() {
  PrescalePolicyOptions options;
  options.forecaster.model.day_seconds = 3600;
  options.forecaster.model.week_seconds = 7 * 3600;
  options.min_history = 120min;
  return options;
}

// A store of the minutes history() gave, on the same clock.
struct MinuteStore {
  std::map<std::int64_t, double> by_minute;

  void keep(const forecast::Series& series) {
    for (size_t i = 0; i < series.values.size(); ++i) {
      by_minute[std::llround(series.start_seconds / 60) + static_cast<std::int64_t>(i)] =
          series.values[i];
    }
  }
  PrescalePolicy::MinuteSource source() const {
    return [this](std::string_view, PrescalePolicy::SeriesKind, Clock::TimePoint from,
                  Clock::TimePoint to) -> Result<forecast::Series> {
      forecast::Series out;
      const auto first = std::chrono::floor<std::chrono::minutes>(from.time_since_epoch()).count();
      const auto last = std::chrono::floor<std::chrono::minutes>(to.time_since_epoch()).count();
      out.start_seconds = static_cast<double>(first * 60);
      for (auto m = first; m < last; ++m) {
        auto it = by_minute.find(m);
        out.values.push_back(it == by_minute.end() ? NAN : it->second);
      }
      return out;
    };
  }
};

TEST(PrescalePolicyTest, ExportedStateRestoresTheForecast) {
  PrescalePolicy before(hourly_options());
  before.init({spec("api")});
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  double t = 0;
  feed_hourly(before, world, t, 200);
  const auto forecast = before.demand_forecast("api");
  ASSERT_FALSE(forecast.p50.empty());
  MinuteStore store;
  auto history = before.history("api");
  ASSERT_TRUE(history);
  store.keep(*history);
  // Through text, as the store keeps it.
  const auto state = nlohmann::json::parse(before.export_state(at(t)).dump());

  PrescalePolicy after(hourly_options());
  after.init({spec("api")});
  auto r = after.import_state(state, store.source(), at(t));
  ASSERT_TRUE(r) << r.error().to_string();
  const auto restored = after.demand_forecast("api");
  EXPECT_EQ(restored.model, forecast.model);
  ASSERT_EQ(restored.p50.size(), forecast.p50.size());
  for (size_t h = 0; h < forecast.p50.size(); ++h) {
    EXPECT_NEAR(restored.p50[h], forecast.p50[h], 1e-5 * forecast.p50[h]) << h;
    EXPECT_NEAR(restored.p90[h], forecast.p90[h], 1e-5 * forecast.p90[h]) << h;
    EXPECT_NEAR(restored.p99[h], forecast.p99[h], 1e-5 * forecast.p99[h]) << h;
  }
  EXPECT_EQ(after.capacity().capacity_rps("api"), before.capacity().capacity_rps("api"));

  // The same decisions from the same load.
  FakeWorld twin = world;
  double u = t;
  for (int i = 0; i < 40; ++i) {
    t += 15;
    u += 15;
    const Snapshot a = world.at_time(t), b = twin.at_time(u);
    before.observe(a);
    after.observe(b);
    const Plan pa = before.decide(a, at(t)), pb = after.decide(b, at(u));
    ASSERT_EQ(pa.decisions.size(), pb.decisions.size()) << i;
    for (size_t k = 0; k < pa.decisions.size(); ++k) {
      EXPECT_EQ(pa.decisions[k].replicas, pb.decisions[k].replicas);
      world.services[0].replicas = twin.services[0].replicas = pa.decisions[k].replicas;
    }
  }
}

// What history() gave for every service and kind, as the history store keeps it.
struct ServiceStores {
  std::map<std::pair<std::string, PrescalePolicy::SeriesKind>, MinuteStore> stores;

  void keep(const PrescalePolicy& policy, const std::string& service) {
    for (auto kind :
         {PrescalePolicy::SeriesKind::kArrivals, PrescalePolicy::SeriesKind::kExternal}) {
      auto history = policy.history(service, kind);
      ASSERT_TRUE(history);
      stores[{service, kind}].keep(*history);
    }
  }
  PrescalePolicy::MinuteSource source() {
    return [this](std::string_view service, PrescalePolicy::SeriesKind kind, Clock::TimePoint from,
                  Clock::TimePoint to) {
      return stores[{std::string(service), kind}].source()(service, kind, from, to);
    };
  }
};

TEST(PrescalePolicyTest, ExportedStateKeepsABackEndsOwnClients) {
  // The back end of ABackEndsOwnClientsAreForecastBesideItsCallers, restarted at minute 30 of
  // its fifth hour: its own clients' series comes back with its forecaster, so the plan at
  // minute 35 is the uninterrupted one, ready for the ramp at 40.
  PrescalePolicyOptions options;
  options.forecaster.model.day_seconds = 3600;
  ServiceSpec back = spec("back");
  back.startup_time = 10min;
  FakeWorld world{{{"front", 100, 1, 0}, {"back", 150, 2, 0}}, {{"front", "back", 1.0, 0}}};
  PrescalePolicy uninterrupted(options);
  uninterrupted.init({spec("front"), back});
  std::optional<PrescalePolicy> restored;
  Snapshot last;
  double t = 0;
  for (int minute = 0; minute < 4 * 60 + 35; ++minute) {
    if (minute == 4 * 60 + 30) {
      ServiceStores stores;
      stores.keep(uninterrupted, "front");
      stores.keep(uninterrupted, "back");
      ASSERT_FALSE(
          uninterrupted.history("back", PrescalePolicy::SeriesKind::kExternal)->values.empty());
      EXPECT_TRUE(uninterrupted.history("front", PrescalePolicy::SeriesKind::kExternal)
                      ->values.empty());  // front has no callers: its arrivals are all its own
      const auto state = nlohmann::json::parse(uninterrupted.export_state(at(t)).dump());
      EXPECT_TRUE(state["services"]["back"].contains("external"));
      restored.emplace(options);
      restored->init({spec("front"), back});
      auto r = restored->import_state(state, stores.source(), at(t));
      ASSERT_TRUE(r) << r.error().to_string();
      EXPECT_EQ(restored->history("back", PrescalePolicy::SeriesKind::kExternal)->values,
                uninterrupted.history("back", PrescalePolicy::SeriesKind::kExternal)->values);
    }
    const double own = minute % 60 >= 40 && minute % 60 < 50 ? 300 : 50;
    world.services[1].rps = 100 + own;
    world.services[0].external_rps = 100;
    world.services[1].external_rps = own;
    for (int k = 0; k < 4; ++k) {
      t += 15;
      last = world.at_time(t);
      uninterrupted.observe(last);
      if (restored) restored->observe(last);
    }
  }
  ASSERT_TRUE(restored);
  const std::optional<Decision> a = decision_for(uninterrupted.decide(last, at(t)), "back");
  const Plan plan = restored->decide(last, at(t));
  const std::optional<Decision> b = decision_for(plan, "back");
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->replicas, a->replicas) << b->reason << " / " << a->reason;
  EXPECT_GE(b->replicas, 4) << b->reason;
  EXPECT_THAT(b->reason, HasSubstr("callers + own forecast"));
}

TEST(PrescalePolicyTest, ImportRefitsWhenTheFitWindowIsGone) {
  PrescalePolicy before(hourly_options());
  before.init({spec("api")});
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  double t = 0;
  feed_hourly(before, world, t, 200);
  MinuteStore store;
  auto history = before.history("api");
  ASSERT_TRUE(history);
  store.keep(*history);
  // A store that has the history but lost the minutes of the forecaster's fit window (minutes
  // 0-119): every read that does not reach the end of the history comes back empty.
  const auto end = at(history->end_seconds());
  auto whole = store.source();
  PrescalePolicy::MinuteSource lossy = [&](std::string_view service,
                                           PrescalePolicy::SeriesKind kind, Clock::TimePoint from,
                                           Clock::TimePoint to) -> Result<forecast::Series> {
    auto series = whole(service, kind, from, to);
    if (series && to != end) std::fill(series->values.begin(), series->values.end(), NAN);
    return series;
  };
  PrescalePolicy after(hourly_options());
  after.init({spec("api")});
  ASSERT_TRUE(after.import_state(before.export_state(at(t)), lossy, at(t)));
  // Refitted on the whole history instead, as load_history() would.
  PrescalePolicy loaded(hourly_options());
  loaded.init({spec("api")});
  ASSERT_TRUE(loaded.load_history("api", *history, end));
  const auto refitted = after.demand_forecast("api");
  ASSERT_FALSE(refitted.p50.empty());
  EXPECT_EQ(refitted.p50, loaded.demand_forecast("api").p50);
}

TEST(PrescalePolicyTest, ImportRefusesAMalformedStateAndChangesNothing) {
  PrescalePolicy policy(hourly_options());
  policy.init({spec("api")});
  MinuteStore store;
  auto r = policy.import_state({{"version", 99}}, store.source(), at(0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  auto state = policy.export_state(at(0));
  state["services"]["api"] = {{"history_from_minute", "yesterday"}};
  EXPECT_FALSE(policy.import_state(state, store.source(), at(0)));
  EXPECT_TRUE(policy.demand_forecast("api").p50.empty());
  EXPECT_FALSE(policy.history("nope"));
  auto empty = policy.history("api");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->values.empty());
}

// The state is restored with the startup times learned (12, 8 and 9 s), and refused with one
// that is not a duration: negative, or beyond what a clock duration holds (no replica's ready_at
// - started_at can be 1e300 s; planned with, its conversion to nanoseconds is undefined behaviour,
// on x86 a startup of -9223372037 s).
TEST(PrescalePolicyTest, ExportedStateKeepsTheLearnedStartupTimes) {
  PrescalePolicy before;
  before.init({spec("api")});
  (void)decide_reason(before, with_replicas(15, 150, {{-100, -90}}));
  (void)decide_reason(before, with_replicas(30, 150, {{-100, -90}, {16, 28}, {17, 25}, {18, 27}}));
  MinuteStore store;
  store.keep(*before.history("api"));
  auto state = nlohmann::json::parse(before.export_state(at(30)).dump());
  EXPECT_EQ(state["services"]["api"]["startup_seconds"], nlohmann::json({12.0, 8.0, 9.0}));

  PrescalePolicy after;
  after.init({spec("api")});
  ASSERT_TRUE(after.import_state(state, store.source(), at(30)));
  EXPECT_THAT(decide_reason(after, with_replicas(45, 150, {{-100, -90}})),
              HasSubstr("12 s startup (learned) /"));

  for (double bad : {-1.0, 1e300, 1e10}) {
    state["services"]["api"]["startup_seconds"] = {12.0, bad, bad};
    PrescalePolicy refusing;
    refusing.init({spec("api")});
    const auto refused = refusing.import_state(state, store.source(), at(30));
    ASSERT_FALSE(refused) << bad << ": "
                          << decide_reason(refusing, with_replicas(45, 150, {{-100, -90}}));
    EXPECT_THAT(refused.error().message, HasSubstr("services.api.startup_seconds")) << bad;
  }
}

// On a clock compressed 2× (prescale up --time-scale 2) replicas ready 12, 8 and 9 controller
// seconds after they started took 6, 4 and 4.5 real seconds: saved so, and planned with at 4×
// by a restart at --time-scale 4, 24 s of its clock.
TEST(PrescalePolicyTest, StartupTimesAreKeptInRealSeconds) {
  PrescalePolicyOptions twice;
  twice.time_scale = 2;
  PrescalePolicy before(twice);
  before.init({spec("api")});
  (void)decide_reason(before, with_replicas(15, 150, {{-100, -90}}));
  (void)decide_reason(before, with_replicas(30, 150, {{-100, -90}, {16, 28}, {17, 25}, {18, 27}}));
  EXPECT_THAT(decide_reason(before, with_replicas(45, 150, {{-100, -90}})),
              HasSubstr("12 s startup (learned) /"));
  MinuteStore store;
  store.keep(*before.history("api"));
  const auto state = nlohmann::json::parse(before.export_state(at(45)).dump());
  EXPECT_EQ(state["services"]["api"]["startup_seconds"], nlohmann::json({6.0, 4.0, 4.5}));

  PrescalePolicyOptions four_times;
  four_times.time_scale = 4;
  PrescalePolicy after(four_times);
  after.init({spec("api")});
  ASSERT_TRUE(after.import_state(state, store.source(), at(45)));
  EXPECT_THAT(decide_reason(after, with_replicas(60, 150, {{-100, -90}})),
              HasSubstr("24 s startup (learned) /"));
}

// A start-to-ready time over kMaxStartupTime is a clock that jumped while replicas started, not
// a startup: not counted (it was, and the next decisions planned a billion seconds ahead, one
// entry a minute: 16.7 million). Ordinary ones are learned after it as before; a saved state with
// one over the bound is refused.
TEST(PrescalePolicyTest, AStartupTimeOverTheBoundIsNotLearned) {
  PrescalePolicy policy;
  policy.init({spec("api")});
  auto reason = [&](const Snapshot& s) { return decide_reason(policy, s); };
  (void)reason(with_replicas(15, 150, {{-100, -90}}));
  // Three replicas started at 16-18 s, ready once the clock has leapt by a billion seconds.
  const double leap = 1e9;
  const std::string leapt = reason(with_replicas(
      leap + 30, 150, {{-100, -90}, {16, leap + 20}, {17, leap + 21}, {18, leap + 22}}));
  EXPECT_THAT(leapt, HasSubstr("60 s startup /")) << leapt;
  // Three more, ready 12, 8 and 9 s after they started.
  const std::string learned = reason(with_replicas(leap + 75, 150,
                                                   {{-100, -90},
                                                    {16, leap + 20},
                                                    {17, leap + 21},
                                                    {18, leap + 22},
                                                    {leap + 31, leap + 43},
                                                    {leap + 32, leap + 40},
                                                    {leap + 33, leap + 42}}));
  EXPECT_THAT(learned, HasSubstr("12 s startup (learned) /")) << learned;

  MinuteStore store;
  store.keep(*policy.history("api"));
  auto state = policy.export_state(at(leap + 75));
  state["services"]["api"]["startup_seconds"] = {12.0, 7200.0, 8.0};
  PrescalePolicy refusing;
  refusing.init({spec("api")});
  const auto refused = refusing.import_state(state, store.source(), at(leap + 75));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("services.api.startup_seconds"));
}

// The minute in progress is saved as a sum over `minute_samples` scrapes. A state whose sum is no
// mean (a sum over no scrape, a negative count) was accepted: with 1e9 over none,
// the next scrape of that minute recorded it as a minute of 1e9 req/s, which the forecaster took
// in; with -2 scrapes, the minute's scrapes were dropped for a gap. It is refused.
TEST(PrescalePolicyTest, ImportRefusesAMinuteInProgressThatIsNoMean) {
  PrescalePolicy before;
  before.init({spec("api")});
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  for (double t : {15.0, 30.0, 45.0}) before.observe(world.at_time(t));
  MinuteStore store;
  store.keep(*before.history("api"));
  const auto state = nlohmann::json::parse(before.export_state(at(45)).dump());
  ASSERT_EQ(state["services"]["api"]["minute_samples"], 3);  // windows centred in minute 0
  {
    PrescalePolicy same;
    same.init({spec("api")});
    ASSERT_TRUE(same.import_state(state, store.source(), at(45)));
  }
  for (const auto& [sum, samples] :
       std::vector<std::pair<double, int>>{{1e9, 0}, {200, -2}}) {
    auto malformed = state;
    malformed["services"]["api"]["minute_sum"] = sum;
    malformed["services"]["api"]["minute_samples"] = samples;
    PrescalePolicy refusing;
    refusing.init({spec("api")});
    const auto refused = refusing.import_state(malformed, store.source(), at(45));
    ASSERT_FALSE(refused) << sum << " over " << samples;
    EXPECT_THAT(refused.error().message, HasSubstr("services.api")) << sum << " over " << samples;
  }
}

TEST(PrescalePolicyTest, ImportKeepsTheSteeredQuantileOnlyWithABudget) {
  PrescalePolicyOptions options;
  options.error_budget = 0.001;
  options.budget_step = 0.01;
  PrescalePolicy steered(options);
  steered.init({spec("api")});
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  double t = 0;
  for (int i = 0; i < 4 * 60; ++i) {
    t += 15;
    const Snapshot s = world.at_time(t);
    steered.observe(s);
    steered.decide(s, at(t));
  }
  ASSERT_LT(steered.planning_quantile(), 0.8);
  MinuteStore store;
  const auto state = steered.export_state(at(t));

  PrescalePolicy restored(options);
  restored.init({spec("api")});
  ASSERT_TRUE(restored.import_state(state, store.source(), at(t)));
  EXPECT_DOUBLE_EQ(restored.planning_quantile(), steered.planning_quantile());
  // The budget's weight unit comes back too: a restart weighs the next minutes as before.
  ASSERT_EQ(state.at("typical_minute").at("minutes").get<double>(), 60);  // an hour seen
  EXPECT_EQ(restored.export_state(at(t)).at("typical_minute"), state.at("typical_minute"));
  for (const auto& [field, bad] : std::vector<std::pair<std::string, double>>{
           {"minutes", 2000}, {"minutes", 12.5}, {"requests", -1}, {"requests", INFINITY}}) {
    auto malformed = state;
    malformed["typical_minute"][field] = bad;
    PrescalePolicy refused(options);
    refused.init({spec("api")});
    const auto error = refused.import_state(malformed, store.source(), at(t));
    ASSERT_FALSE(error) << field << " " << bad;
    EXPECT_NE(error.error().message.find("typical_minute"), std::string::npos);
  }

  PrescalePolicy fixed;  // no budget now: the configured quantile
  fixed.init({spec("api")});
  ASSERT_TRUE(fixed.import_state(state, store.source(), at(t)));
  EXPECT_DOUBLE_EQ(fixed.planning_quantile(), 0.9);
}

// ---- edges: bounds, the minute a forecast is read at, reseeding, gaps ------------------------

TEST(PrescalePolicyTest, ACountAboveMaxReplicasIsBroughtDownToTheMaxEvenDuringTheFirstDelay) {
  ServiceSpec capped = spec("api");
  capped.max_replicas = 3;
  // The world runs 10 replicas (the bound was lowered and the controller restarted); 100 req/s
  // needs 2. The first scale-down delay holds counts, but never above the bound.
  const std::optional<Decision> d = first_decision(capped, {{{"api", 100, 10, 0}}, {}});
  ASSERT_TRUE(d) << "10 replicas kept against max_replicas = 3";
  EXPECT_LE(d->replicas, 3);
}

// The decision for "api" at t with `replicas` of it running, taken up by the world; replicas -1
// for none.
Decision decide_api(PrescalePolicy& policy, FakeWorld& world, double t, int replicas) {
  world.services[0].replicas = replicas;
  const Snapshot s = world.at_time(t);
  policy.observe(s);
  std::optional<Decision> d = decision_for(policy.decide(s, at(t)), "api");
  return d.value_or(Decision{"api", -1, "no decision"});
}

// Bounds changed while it runs (a reload of the file): the next decision is within them, with
// the reason, and the history goes on.
TEST(PrescalePolicyTest, NewBoundsHoldFromTheNextDecision) {
  PrescalePolicy policy;
  policy.init({spec("api")});
  FakeWorld world{{{"api", 1000, 10, 0}}, {}};  // 1000 req/s on 10 replicas of 100
  auto decide_at = [&](double t, int replicas) { return decide_api(policy, world, t, replicas); };
  EXPECT_EQ(decide_at(15, 10).replicas, 11);  // 1000 × 1.05 / 100
  policy.respec(bounded("api", 1, 4));
  Decision d = decide_at(30, 11);
  EXPECT_EQ(d.replicas, 4);
  EXPECT_THAT(d.reason, HasSubstr("capped at max 4"));
  world.services[0].rps = 100;
  policy.respec(bounded("api", 6, 20));
  d = decide_at(45, 4);
  EXPECT_EQ(d.replicas, 6);
  EXPECT_THAT(d.reason, HasSubstr("raised to min 6"));
  policy.respec(bounded("web", 1, 1));  // unknown: ignored
}

// A new capacity seed while it runs (a reload of the file), before any capacity is learned: the
// next decision sizes by it. (A new SLO moves a learned capacity: CapacityModel's Respec tests.)
TEST(PrescalePolicyTest, ANewCapacitySeedHoldsFromTheNextDecision) {
  PrescalePolicy policy;
  policy.init({spec("api")});
  FakeWorld world{{{"api", 1000, 10, 0}}, {}};  // 1000 req/s on 10 replicas of 100
  auto decide_at = [&](double t, int replicas) { return decide_api(policy, world, t, replicas); };
  EXPECT_EQ(decide_at(15, 10).replicas, 11);  // 1000 × 1.05 / 100
  policy.respec(spec("api", 50));
  EXPECT_DOUBLE_EQ(policy.capacity().capacity_rps("api"), 50);
  EXPECT_EQ(decide_at(30, 11).replicas, 21);  // 1000 × 1.05 / 50
}

// A service added while it runs is planned from the next decision (through the call graph once
// its calls are counted); one removed gets no decision, and what was learned of it goes.
TEST(PrescalePolicyTest, AnAddedServiceIsPlannedAndARemovedOneForgotten) {
  PrescalePolicy policy;
  policy.init({spec("front")});
  FakeWorld world{{{"front", 100, 2, 0}}, {}};
  double t = 0;
  for (int i = 0; i < 4; ++i) policy.observe(world.at_time(t += 15));
  ASSERT_TRUE(policy.add_service(spec("back")));
  EXPECT_FALSE(policy.add_service(spec("back")));
  EXPECT_DOUBLE_EQ(policy.capacity().capacity_rps("back"), 100);  // its seed
  world.services.push_back({"back", 200, 4, 0});
  world.edges = {{"front", "back", 2.0, 0}};
  for (int i = 0; i < 8; ++i) policy.observe(world.at_time(t += 15));
  EXPECT_NEAR(policy.topology().fanout("front", "back"), 2.0, 1e-6);
  world.services[0].rps = 400;
  t += 60;  // a new minute: the propagation order is refreshed
  Snapshot s = world.at_time(t);
  policy.observe(s);
  const std::optional<Decision> back = decision_for(policy.decide(s, at(t)), "back");
  ASSERT_TRUE(back);
  EXPECT_GE(back->replicas, 8);  // 400 × 2 / 100
  EXPECT_THAT(back->reason, HasSubstr("callers"));

  policy.remove_service("front");
  policy.remove_service("front");  // unknown now: ignored
  EXPECT_DOUBLE_EQ(policy.capacity().capacity_rps("front"), 0);
  EXPECT_FALSE(policy.history("front"));
  world.services.erase(world.services.begin());
  world.services[0] = {"back", 1000, 8, 0};
  s = world.at_time(t += 15);
  policy.observe(s);
  const Plan plan = policy.decide(s, at(t));
  EXPECT_FALSE(decision_for(plan, "front"));
  const std::optional<Decision> alone = decision_for(plan, "back");
  ASSERT_TRUE(alone);
  EXPECT_EQ(alone->replicas, 11) << alone->reason;  // its own 1000 × 1.05 / 100
  EXPECT_THAT(alone->reason, Not(HasSubstr("callers")));
}

// A lowered min is not held by the plans of the scale-down delay, which the old min had raised:
// 90 req/s needs one replica of 100, and five were kept only by the min.
TEST(PrescalePolicyTest, ALoweredMinIsNotHeldByEarlierPlans) {
  ServiceSpec floor5 = spec("api");
  floor5.min_replicas = 5;
  PrescalePolicy policy;
  policy.init({floor5});
  FakeWorld world{{{"api", 90, 5, 0}}, {}};
  for (double t = 15; t < 400; t += 15) {
    const Snapshot s = world.at_time(t);
    policy.observe(s);
    EXPECT_FALSE(decision_for(policy.decide(s, at(t)), "api")) << "t=" << t;
  }
  policy.respec(bounded("api", 1, 100));
  const Snapshot s = world.at_time(400);
  policy.observe(s);
  const std::optional<Decision> d = decision_for(policy.decide(s, at(400)), "api");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->replicas, 1) << d->reason;
}

TEST(PrescalePolicyTest, MoreLoadNeverMeansFewerReplicasWhenCapacityIsZero) {
  // A capacity of 0 (a seed of 0, or an idle replica that misses the SLO after a slow release)
  // asks for the bound, whatever the load — not a count that overflowed.
  auto replicas_for = [](double rps) {
    const std::optional<Decision> d = first_decision(spec("api", 0), {{{"api", rps, 2, 0}}, {}});
    return d ? d->replicas : 2;
  };
  EXPECT_EQ(replicas_for(1), 200);
  EXPECT_EQ(replicas_for(500), 200);
}

// 100 req/s, 400 in minutes 40-49 of every hour.
double hourly_load(int minute) { return minute % 60 >= 40 && minute % 60 < 50 ? 400.0 : 100.0; }

forecast::Series hourly_series(int minutes, double scale = 1) {
  forecast::Series s;
  s.step_seconds = 60;
  for (int m = 0; m < minutes; ++m) s.values.push_back(scale * hourly_load(m));
  return s;
}

// Every 15 s from 15 s to `until`: `set_load(t)` (the window ending at t), a scrape of `world`,
// a decision. The decisions for services[`service`] are applied to the world and shown to `seen`.
void follow(PrescalePolicy& policy, FakeWorld& world, double until, size_t service,
            const std::function<void(double)>& set_load,
            const std::function<void(double, const Decision&)>& seen = {}) {
  for (double t = 15; t <= until; t += 15) {
    if (set_load) set_load(t);
    const Snapshot s = world.at_time(t);
    policy.observe(s);
    if (const auto d = decision_for(policy.decide(s, at(t)), world.services[service].name)) {
      world.services[service].replicas = d->replicas;
      if (seen) seen(t, *d);
    }
  }
}

TEST(PrescalePolicyTest, ThePlanAtTheStartOfAMinuteCoversTheMinuteAStartupTimeAhead) {
  // At 5:39:00 the latest 30 s window's middle is still in minute 38; the forecast made then
  // starts at 38, but the plan must cover minute 40, when a replica started now is ready.
  PrescalePolicy policy(hourly_options());
  policy.init({spec("api")});
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  follow(policy, world, 5 * 3600 + 39 * 60, 0,
         [&](double t) { world.services[0].rps = hourly_load(static_cast<int>((t - 15) / 60)); });
  ASSERT_FALSE(policy.demand_forecast("api").p50.empty());
  EXPECT_GE(world.services[0].replicas, 4) << "the plan at 5:39:00 did not cover minute 40";
}

TEST(PrescalePolicyTest, ABackEndsOwnForecastIsReadAtTheMinuteOfNowToo) {
  // A back-end called by a flat front-end, whose own clients bring 300 req/s more in minutes
  // 40-49 of every hour: at 5:39:00 its plan covers minute 40 (100 + 300 req/s).
  PrescalePolicy policy(hourly_options());
  policy.init({spec("front"), spec("back")});
  FakeWorld world{{{"front", 100, 1, 0, 0, 100}, {"back", 150, 2, 0, 0, 50}},
                  {{"front", "back", 1.0, 0}}};
  follow(policy, world, 5 * 3600 + 39 * 60, 1, [&](double t) {
    const int minute = static_cast<int>((t - 15) / 60) % 60;
    const double own = minute >= 40 && minute < 50 ? 300 : 50;
    world.services[1].rps = 100 + own;
    world.services[1].external_rps = own;
  });
  EXPECT_GE(world.services[1].replicas, 4) << "the plan at 5:39:00 did not cover minute 40";
}

TEST(PrescalePolicyTest, ALoadOnItsForecastIsNotLiftedAtAMinuteBoundary) {
  // 400 req/s in minutes 40-49 and 51-55, 100 otherwise. At 5:50:00 the latest window (5:49:30
  // to 5:50:00) saw minute 49's 400 req/s, which its own minute's band expects: the plan for
  // minutes 50-51 stays at 400 req/s (a few replicas), not 4 × that.
  PrescalePolicy policy(hourly_options());
  policy.init({spec("api")});
  auto load = [](int minute) {
    const int m = minute % 60;
    return (m >= 40 && m < 50) || (m >= 51 && m < 56) ? 400.0 : 100.0;
  };
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  int most = 0;
  std::string reason;
  follow(
      policy, world, 5 * 3600 + 52 * 60, 0,
      [&](double t) { world.services[0].rps = load(static_cast<int>((t - 15) / 60)); },
      [&](double t, const Decision& d) {
        if (t > 5 * 3600 && d.replicas > most) {
          most = d.replicas;
          reason = d.reason;
        }
      });
  EXPECT_LE(most, 6) << reason;
  EXPECT_THAT(reason, Not(HasSubstr("lifted")));
}

TEST(PrescalePolicyTest, AForecastIsReadAtTheMinuteOfNowNotTheMinuteItWasMadeFor) {
  PrescalePolicy policy(hourly_options());
  policy.init({spec("api")});
  // History up to 5:30; the forecast made then starts at 5:31 (400 req/s from 5:40).
  ASSERT_TRUE(policy.load_history("api", hourly_series(5 * 60 + 31), at((5 * 60 + 31) * 60)));
  const auto f = policy.demand_forecast("api");
  ASSERT_GE(f.p50.size(), 10u);
  ASSERT_GT(f.p50[9], 300);
  // 5:39 with no window scrape since (only the per-second figures): the plan covers 5:40.
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  Snapshot s = world.at_time(5 * 3600 + 39 * 60);
  s.services[0].window.length = 0s;
  const std::optional<Decision> d = decision_for(policy.decide(s, at(5 * 3600 + 39 * 60)), "api");
  ASSERT_TRUE(d) << "kept 2: the plan read 5:31-5:32 of the forecast";
  EXPECT_GE(d->replicas, 4) << d->reason;
}

TEST(PrescalePolicyTest, LoadingHistoryAgainReplacesTheForecast) {
  PrescalePolicy policy(hourly_options());
  policy.init({spec("api")});
  ASSERT_TRUE(policy.load_history("api", hourly_series(200), at(200 * 60)));
  ASSERT_FALSE(policy.demand_forecast("api").p50.empty());
  // The same minutes at five times the load (a corrected store).
  ASSERT_TRUE(policy.load_history("api", hourly_series(200, 5), at(200 * 60)));
  const auto f = policy.demand_forecast("api");
  ASSERT_FALSE(f.p50.empty());
  EXPECT_GT(f.p50[0], 300) << "still the first history's forecast";
}

TEST(PrescalePolicyTest, ARestartAfterSeedingWithAFittedForecasterStillForecasts) {
  const auto options = hourly_options();
  const forecast::Series minutes = hourly_series(300);
  forecast::Forecaster fitted(options.forecaster);
  ASSERT_TRUE(fitted.fit(minutes));
  const Clock::TimePoint end = at(300 * 60);
  PrescalePolicy before(options);
  before.init({spec("api")});
  ASSERT_TRUE(before.load_history("api", minutes, end, std::move(fitted)));
  ASSERT_FALSE(before.demand_forecast("api").p50.empty());
  MinuteStore store;
  auto history = before.history("api");
  ASSERT_TRUE(history);
  store.keep(*history);
  // A forecaster handed in has no fit window to restore: the restart fits on the history.
  PrescalePolicy after(options);
  after.init({spec("api")});
  auto r = after.import_state(nlohmann::json::parse(before.export_state(end).dump()),
                              store.source(), end);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(after.demand_forecast("api").p50.empty()) << "no forecast after the restart";
}

TEST(PrescalePolicyTest, ADayWithoutScrapesLeavesTheForecastItsBand) {
  // Two days of 100 req/s ± 10 %, then no scrape for a day (a suspended machine, a metrics
  // outage): the first scrape after it records the day as missing minutes and refits (the
  // refit interval has passed). The fit's backtest origins all fall in the missing day, so no
  // error is measured; the P90 the policy plans for must still be above the P50.
  forecast::Series minutes;
  minutes.step_seconds = 60;
  std::uint32_t seed = 12345;
  for (int m = 0; m < 2 * 1440; ++m) {
    seed = seed * 1664525u + 1013904223u;
    const double noise = static_cast<double>(seed >> 8) / (1 << 24) - 0.5;  // [-0.5, 0.5)
    minutes.values.push_back(100 * (1 + 0.2 * noise));
  }
  PrescalePolicy policy;
  policy.init({spec("api")});
  const double end = 2 * 86400;
  ASSERT_TRUE(policy.load_history("api", minutes, at(end)));
  const forecast::QuantileForecast before = policy.demand_forecast("api");
  ASSERT_FALSE(before.p50.empty());
  ASSERT_GT(before.p90[0], before.p50[0]);
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  const Snapshot s = world.at_time(end + 86400 + 45);
  policy.observe(s);
  policy.decide(s, s.time);
  const forecast::QuantileForecast after = policy.demand_forecast("api");
  ASSERT_FALSE(after.p50.empty());
  EXPECT_GT(after.p90[0], after.p50[0])
      << "P50 = P90 = P99 = " << after.p50[0] << " req/s after the day without scrapes";
}

// One service, "api", keeping a day of history, given two hours at 100 req/s ending at `end`.
std::unique_ptr<PrescalePolicy> two_hours_at_100(double end) {
  PrescalePolicyOptions options;
  options.max_history = 24h;
  auto policy = std::make_unique<PrescalePolicy>(options);
  policy->init({spec("api")});
  forecast::Series minutes;
  minutes.step_seconds = 60;
  minutes.values.assign(2 * 60, 100);
  EXPECT_TRUE(policy->load_history("api", minutes, at(end)));
  return policy;
}

TEST(PrescalePolicyTest, AScrapeBeyondTheKeptHistoryStartsTheHistoryOver) {
  // A scrape time further ahead than max_history (a clock that leapt, a bogus timestamp): every
  // kept minute would be a gap. The history starts over at that scrape's minute, in one step
  // rather than one per missing minute (a jump of years is millions of them), and no forecast
  // is made from a state nothing kept backs.
  const double end = 2 * 3600;
  const std::unique_ptr<PrescalePolicy> seeded = two_hours_at_100(end);
  PrescalePolicy& policy = *seeded;
  ASSERT_FALSE(policy.demand_forecast("api").p50.empty());
  FakeWorld world{{{"api", 100, 2, 0}}, {}};

  double t = end + 2 * 86400 + 45;
  policy.observe(world.at_time(t));
  auto history = policy.history("api");
  ASSERT_TRUE(history);
  ASSERT_THAT(history->values, testing::IsEmpty());
  EXPECT_THAT(policy.demand_forecast("api").p50, testing::IsEmpty());
  t += 60;
  policy.observe(world.at_time(t));
  history = policy.history("api");
  ASSERT_TRUE(history);
  EXPECT_THAT(history->values, testing::ElementsAre(100.0));

  // Years ahead: as quick, and the history goes on from there.
  t += 20.0 * 365 * 86400;
  policy.observe(world.at_time(t));
  t += 60;
  policy.observe(world.at_time(t));
  history = policy.history("api");
  ASSERT_TRUE(history);
  EXPECT_THAT(history->values, testing::ElementsAre(100.0));
  EXPECT_DOUBLE_EQ(history->start_seconds, 60 * std::floor((t - 15 - 60) / 60));
}

TEST(PrescalePolicyTest, RefusesForecastingCandidatesThatReadTheCalendar) {
  // The policy's minutes are timed on the monotonic clock: a model that takes the hour and the
  // weekday from a series' start would read them wrong.
  EXPECT_TRUE(validate_prescale_policy_options({}));
  PrescalePolicyOptions options;
  options.forecaster.candidates = {"naive", "gbt"};
  auto refused = validate_prescale_policy_options(options);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(refused.error().message, HasSubstr("\"gbt\" reads the calendar"));

  // A booster trained elsewhere reads it just the same, whatever its candidate name.
  options.forecaster.candidates = {"naive", "gbt_global"};
  options.forecaster.custom_models = {{"gbt_global", forecast::make_gbt_model(nullptr)}};
  refused = validate_prescale_policy_options(options);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("\"gbt_global\" reads the calendar"));

  // A name no model answers to would fail every fit: the policy would never forecast.
  options.forecaster.candidates = {"naive", "holt_winter"};
  refused = validate_prescale_policy_options(options);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("unknown forecasting candidate \"holt_winter\""));
}

// Past 1e6, a learned startup (at most an hour of real time) times the scale no longer fits a
// Clock duration (int64 nanoseconds, ~292 years): the conversion in startup_time() would be
// undefined.
TEST(PrescalePolicyTest, RefusesATimeScaleThatIsNoRate) {
  for (double bad : {0.0, -2.0, std::nan(""), 1.1e6, HUGE_VAL}) {
    PrescalePolicyOptions options;
    options.time_scale = bad;
    auto refused = validate_prescale_policy_options(options);
    ASSERT_FALSE(refused) << bad;
    EXPECT_THAT(refused.error().message, HasSubstr("time_scale")) << bad;
  }
  PrescalePolicyOptions options;
  options.time_scale = 1e6;
  EXPECT_TRUE(validate_prescale_policy_options(options));
}

TEST(PrescalePolicyTest, ScrapesBehindAScrapeStampedAheadRewindTheHistory) {
  // One scrape stamped an hour ahead (a clock that leapt and was set back, a bogus timestamp),
  // then scrapes at the real time again: more than 5 minutes behind the last one, they mean the
  // clock was set back. The minutes from theirs on (those the stamp ahead recorded) are dropped
  // and the forecast refitted on the rest, rather than every later scrape being ignored as not
  // later than the last until the real clock reached the stamp.
  const double end = 2 * 3600;
  const std::unique_ptr<PrescalePolicy> seeded = two_hours_at_100(end);
  PrescalePolicy& policy = *seeded;
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  double t = end + 45;
  for (; t <= end + 75; t += 15) policy.observe(world.at_time(t));  // into minute 121
  auto history = policy.history("api");
  ASSERT_TRUE(history);
  ASSERT_EQ(history->values.size(), 121u);

  policy.observe(world.at_time(t - 75));  // behind by a minute: a late scrape, ignored
  history = policy.history("api");
  ASSERT_TRUE(history);
  ASSERT_EQ(history->values.size(), 121u);

  policy.observe(world.at_time(t - 15 + 3600));  // an hour ahead: 60 minutes recorded
  history = policy.history("api");
  ASSERT_TRUE(history);
  ASSERT_EQ(history->values.size(), 181u);

  for (; t <= end + 135; t += 15) policy.observe(world.at_time(t));  // into minute 122
  history = policy.history("api");
  ASSERT_TRUE(history);
  EXPECT_EQ(history->start_seconds, 0);
  ASSERT_EQ(history->values.size(), 122u);
  for (double v : history->values) EXPECT_EQ(v, 100);
  const forecast::QuantileForecast forecast = policy.demand_forecast("api");
  ASSERT_FALSE(forecast.p50.empty());
  EXPECT_NEAR(forecast.p50[0], 100, 1);
}

TEST(PrescalePolicyTest, ScrapesBehindAScrapeStampedBeyondTheHistoryStartItOver) {
  // A stamp further ahead than max_history started the history over there; the scrapes at the
  // real time after it start it over again at theirs (before, they were all ignored: a stamp
  // years ahead stopped the service's history for years).
  PrescalePolicyOptions options;
  options.max_history = 24h;
  PrescalePolicy policy(options);
  policy.init({spec("api")});
  FakeWorld world{{{"api", 100, 2, 0}}, {}};
  double t = 7200 + 45;
  policy.observe(world.at_time(t));
  policy.observe(world.at_time(t + 20.0 * 365 * 86400));
  for (t += 15; t <= 7200 + 180; t += 15) policy.observe(world.at_time(t));
  auto history = policy.history("api");
  ASSERT_TRUE(history);
  EXPECT_EQ(history->start_seconds, 7200);
  EXPECT_THAT(history->values, testing::ElementsAre(100.0, 100.0));
}

TEST(PrescalePolicyTest, AServiceMissingFromOneSnapshotKeepsItsReplicas) {
  PrescalePolicy policy;
  policy.init({spec("api")});
  FakeWorld world{{{"api", 500, 6, 0}}, {}};
  follow(policy, world, 600, 0, {});
  ASSERT_EQ(world.services[0].replicas, 6);
  Snapshot gap;  // a scrape that failed for this service: its count is unknown, not 0
  gap.time = at(615);
  policy.observe(gap);
  EXPECT_FALSE(decision_for(policy.decide(gap, at(615)), "api"));
}

// Two front ends call "back" (fan-out 1 each): "fc" has a forecast (two hours of flat history),
// "obs" has none (planned from its observed load). obs's load stops at `drop`; returns, per
// service, the seconds after the drop at which its count was first lowered.
std::map<std::string, double> release_after_a_reactive_callers_drop(PrescalePolicyOptions options) {
  const double start = 2 * 3600;
  forecast::Series flat;
  flat.step_seconds = 60;
  flat.values.assign(120, 100.0);
  PrescalePolicy policy(options);
  policy.init({spec("fc"), spec("obs"), spec("back")});
  EXPECT_TRUE(policy.load_history("fc", flat, at(start)));
  FakeWorld world{{{"fc", 100, 2, 0}, {"obs", 400, 5, 0}, {"back", 500, 6, 0}},
                  {{"fc", "back", 1.0, 0}, {"obs", "back", 1.0, 0}}};
  const double drop = start + 10 * 60;
  std::map<std::string, double> released;
  for (double t = start + 15; t <= drop + 600; t += 15) {
    if (t > drop) {
      world.services[1].rps = 0;
      world.services[2].rps = 100;
    }
    const Snapshot s = world.at_time(t);
    policy.observe(s);
    for (const Decision& d : policy.decide(s, at(t)).decisions) {
      for (auto& svc : world.services) {
        if (svc.name != d.service) continue;
        if (t > drop && d.replicas < svc.replicas && !released.count(svc.name)) {
          released[svc.name] = t - drop;
        }
        svc.replicas = d.replicas;
      }
    }
  }
  return released;
}

// "back" is planned from fc's forecast plus obs's observed load: the part of its plan that came
// from obs is as reactive as obs's own plan, which holds for scale_down_delay. Released after
// forecast_scale_down_delay, back is short of replicas when obs's on/off traffic resumes while
// obs still holds its own.
TEST(PrescalePolicyTest, ADownstreamOfAReactiveCallerHoldsAsLongAsThatCaller) {
  PrescalePolicyOptions options;
  options.scale_down_delay = 5min;
  options.forecast_scale_down_delay = 60s;
  const std::map<std::string, double> released = release_after_a_reactive_callers_drop(options);
  ASSERT_TRUE(released.count("obs"));
  ASSERT_TRUE(released.count("back"));
  EXPECT_GE(released.at("obs"), 300);
  EXPECT_GE(released.at("back"), released.at("obs"))
      << "back lowered " << released.at("back") << " s after obs's load stopped, obs "
      << released.at("obs") << " s";
}

// The front end's load is inside its forecast band, above the P90 it is planned at: its reactive
// floor adds replicas, its plan — what the back end is planned from — stays at the P90. Its
// ready replicas serve 50 req/s of the load and queue the rest, so the back end sees twice 50;
// once the front's new replicas are ready it receives twice the whole load. It is sized for
// that now, not a startup time after its own metrics move.
TEST(PrescalePolicyTest, ACallersLoadBeyondItsReadyReplicasReachesWhatItCallsAtOnce) {
  auto back_after_a_busy_minute = [](bool use_topology, int front_max = 200) {
    PrescalePolicyOptions options = hourly_options();
    options.use_topology = use_topology;
    PrescalePolicy policy(options);
    ServiceSpec front_spec = spec("front", 10);
    front_spec.max_replicas = front_max;
    policy.init({front_spec, spec("back", 10)});
    // Five hours of a noisy 100 req/s at the front (±40, a fixed pseudo-random sequence), twice
    // that at the back.
    forecast::Series front, back;
    front.step_seconds = back.step_seconds = 60;
    for (int m = 0; m < 5 * 60; ++m) {
      front.values.push_back(100 + (m * 37 % 81) - 40);
      back.values.push_back(2 * front.values.back());
    }
    const double end = 5 * 3600;
    EXPECT_TRUE(policy.load_history("front", front, at(end)));
    EXPECT_TRUE(policy.load_history("back", back, at(end)));
    FakeWorld world{{{"front", 100, 10, 0}, {"back", 200, 20, 0}}, {{"front", "back", 2.0, 0}}};
    for (double t = end + 15; t <= end + 120; t += 15) policy.observe(world.at_time(t));
    const forecast::QuantileForecast f = policy.demand_forecast("front");
    EXPECT_FALSE(f.p90.empty());
    const double load = f.p99.empty() ? 0 : (f.p90[0] + 3 * f.p99[0]) / 4;
    // One ready replica serves its workers over the service time flat out (about 100 req/s at a
    // capacity of 10 within the SLO); the rest queues.
    const double served = 4 / policy.capacity().service_time_seconds("front");
    EXPECT_LT(served, load - 20);
    world.services[0] = {"front", load, 1, 0};
    world.services[1].rps = 2 * served;
    Snapshot s = world.at_time(end + 180);
    s.services[0].last_second.concurrency = 4 + 100;
    policy.observe(s);
    const Plan plan = policy.decide(s, at(end + 180));
    const std::optional<Decision> front_decision = decision_for(plan, "front");
    EXPECT_TRUE(front_max <= 1 ||
                (front_decision && front_decision->replicas >= std::ceil(load * 1.05 / 10)));
    return std::make_pair(decision_for(plan, "back"), load);
  };
  const auto [back, load] = back_after_a_busy_minute(true);
  ASSERT_TRUE(back);
  // Twice what the front serves, and twice the rest once the front passes it on: twice its
  // whole load, with the floor's 5 %.
  EXPECT_EQ(back->replicas, static_cast<int>(std::ceil(2 * load * 1.05 / 10)));
  EXPECT_THAT(back->reason, HasSubstr("callers' load"));
  // Planned from its own load (the ablation), it stays near what it sees.
  const auto [blind, blind_load] = back_after_a_busy_minute(false);
  EXPECT_TRUE(!blind || blind->replicas < back->replicas);
  // A front end already at its maximum (its one ready replica) will never pass more on.
  const auto [capped, capped_load] = back_after_a_busy_minute(true, 1);
  EXPECT_TRUE(!capped || capped->replicas < back->replicas);
  EXPECT_TRUE(!capped || !capped->reason.contains("callers' load"));
}

// Spec (docs/prescale_policy.md, reactive floor): what a caller with a queue will pass on beyond
// what its ready replicas serve counts, times the fan-out, at each callee "down every level of
// the graph". front queues; mid, held back by front, has no queue of its own: the load front
// holds back reaches back through mid too, twice twice.
TEST(PrescalePolicyTest, ACallersUnservedLoadReachesEveryLevelBelowIt) {
  PrescalePolicy policy(hourly_options());
  policy.init({spec("front", 10), spec("mid", 10), spec("back", 10)});
  forecast::Series front, mid, back;
  front.step_seconds = mid.step_seconds = back.step_seconds = 60;
  for (int m = 0; m < 5 * 60; ++m) {
    front.values.push_back(100 + (m * 37 % 81) - 40);
    mid.values.push_back(2 * front.values.back());
    back.values.push_back(4 * front.values.back());
  }
  const double end = 5 * 3600;
  ASSERT_TRUE(policy.load_history("front", front, at(end)));
  ASSERT_TRUE(policy.load_history("mid", mid, at(end)));
  ASSERT_TRUE(policy.load_history("back", back, at(end)));
  FakeWorld world{{{"front", 100, 10, 0}, {"mid", 200, 20, 0}, {"back", 400, 40, 0}},
                  {{"front", "mid", 2.0, 0}, {"mid", "back", 2.0, 0}}};
  for (double t = end + 15; t <= end + 120; t += 15) policy.observe(world.at_time(t));
  const forecast::QuantileForecast f = policy.demand_forecast("front");
  ASSERT_FALSE(f.p99.empty());
  const double load = (f.p90[0] + 3 * f.p99[0]) / 4;
  // front's one ready replica serves its workers over the service time flat out; the rest
  // queues. mid and back see only what it serves (with no queue of their own).
  const double served = 4 / policy.capacity().service_time_seconds("front");
  ASSERT_LT(served, load - 20);
  world.services[0] = {"front", load, 1, 0};
  world.services[1] = {"mid", 2 * served, 10, world.services[1].served_total};
  world.services[2] = {"back", 4 * served, 20, world.services[2].served_total};
  Snapshot s = world.at_time(end + 180);
  s.services[0].last_second.concurrency = 4 + 100;
  policy.observe(s);
  const Plan plan = policy.decide(s, at(end + 180));
  const std::optional<Decision> mid_decision = decision_for(plan, "mid");
  ASSERT_TRUE(mid_decision);
  // mid is sized for what front will pass on: twice its load...
  EXPECT_EQ(mid_decision->replicas, static_cast<int>(std::ceil(2 * load * 1.05 / 10)));
  // ...and back for twice that.
  const std::optional<Decision> back_decision = decision_for(plan, "back");
  ASSERT_TRUE(back_decision);
  EXPECT_EQ(back_decision->replicas, static_cast<int>(std::ceil(4 * load * 1.05 / 10)))
      << "load " << load << "; " << back_decision->reason;
}

}  // namespace
}  // namespace prescale::scaling
