#include "worlds/sim/sim_world.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "scaling/callgraph.h"
#include "worlds/sim/queueing.h"
#include "worlds/sim/sim_results.h"

namespace prescale::sim {
namespace {

using scaling::ReplicaState;
using std::chrono::milliseconds;
using std::chrono::seconds;

Clock::TimePoint at(double s) {
  return Clock::TimePoint{} +
         std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(s));
}

forecast::Trace per_second(std::vector<double> counts) {
  forecast::Trace t;
  t.name = "test";
  t.step_seconds = 1;
  t.counts = std::move(counts);
  return t;
}

forecast::Trace constant(double rps, int seconds_long) {
  return per_second(std::vector<double>(static_cast<size_t>(seconds_long), rps));
}

SimConfig single(SimServiceConfig s = {}) {
  SimConfig c;
  c.graph = *scaling::single_service_graph("app");
  s.name = "app";
  c.services.push_back(s);
  return c;
}

SimConfig chain(double ab, double bc) {
  SimConfig c;
  c.graph = *scaling::make_callgraph({{"a", "b", ab, 0}, {"b", "c", bc, 0}});
  return c;
}

std::unique_ptr<SimWorld> make(SimConfig c, forecast::Trace t) {
  auto w = SimWorld::create(std::move(c), std::move(t));
  EXPECT_TRUE(w) << w.error().to_string();
  return std::move(*w);
}

// The observation of a service that must exist.
const scaling::ServiceObservation& obs(const scaling::Snapshot& snap, std::string_view name) {
  const scaling::ServiceObservation* o = snap.service(name);
  if (o == nullptr) std::abort();
  return *o;
}

void expect_conserved(const SimRecorder& rec, const std::string& context) {
  for (size_t s = 0; s < rec.services().size(); ++s) {
    const auto r = rec.records(s);
    for (size_t i = 0; i < r.size(); ++i) {
      const IntervalRecord& x = r[i];
      const double scale = std::max(1.0, x.arrived + x.queued_start);
      ASSERT_NEAR(x.served + x.dropped + x.queued_end, x.arrived + x.queued_start, 1e-9 * scale)
          << context << " service " << rec.services()[s].name << " record " << i;
      ASSERT_GE(x.served, -1e-12);
      ASSERT_GE(x.dropped, -1e-12);
      ASSERT_GE(x.queued_end, -1e-9 * scale);
      ASSERT_LE(x.served_within_slo, x.served * (1 + 1e-12) + 1e-12);
      if (i > 0) {
        ASSERT_NEAR(x.queued_start, r[i - 1].queued_end, 1e-9 * scale);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

TEST(SimWorldConfig, RejectsInvalidSettings) {
  SimConfig c = single();
  c.services[0].min_replicas = 3;  // above initial_replicas
  EXPECT_FALSE(SimWorld::create(c, constant(1, 10)));
  c = single();
  c.step = milliseconds(700);  // neither divides 1 s nor whole seconds
  EXPECT_FALSE(SimWorld::create(c, constant(1, 10)));
  c = single();
  c.scrape_interval = milliseconds(1500);
  c.step = seconds(1);
  EXPECT_FALSE(SimWorld::create(c, constant(1, 10)));
  c = single();
  c.services.push_back(SimServiceConfig{.name = "ghost"});
  auto bad = SimWorld::create(c, constant(1, 10));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("ghost"), std::string::npos);
  c = single();
  c.services[0].mean_service_time_seconds = 0.05;  // p99 of service alone 0.23 s > 0.2 s
  bad = SimWorld::create(c, constant(1, 10));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("not reachable"), std::string::npos);
  // The queue keeps a slot per service time of the timeout: an infinite one sized it by an
  // undefined conversion, and 1e9 s asked for ~32 GB.
  for (const double timeout : {std::numeric_limits<double>::infinity(), 1e9}) {
    c = single();
    c.services[0].request_timeout_seconds = timeout;
    bad = SimWorld::create(c, constant(1, 10));
    ASSERT_FALSE(bad) << timeout;
    EXPECT_NE(bad.error().message.find("request_timeout_seconds must be positive and at most"),
              std::string::npos)
        << bad.error().message;
  }
}

TEST(SimWorldConfig, SpecsCarryTheSloCapacity) {
  SimServiceConfig s;
  s.mean_service_time_seconds = 0.02;
  s.workers_per_replica = 4;
  s.slo_latency_p99_seconds = 0.2;
  s.startup_time = seconds(45);
  s.max_replicas = 7;
  auto specs = service_specs(single(s));
  ASSERT_TRUE(specs);
  ASSERT_EQ(specs->size(), 1u);
  EXPECT_EQ((*specs)[0].name, "app");
  EXPECT_EQ((*specs)[0].max_replicas, 7);
  EXPECT_EQ((*specs)[0].startup_time, seconds(45));
  const double p99 = quantile(mmc_queue(4, (*specs)[0].capacity_rps, 50).sojourn, 0.99);
  EXPECT_NEAR(p99, 0.2, 0.002);
}

// A replica cap meant as "no cap" (prescale.yaml's replicas.max has no upper bound) costs
// nothing until replicas are started: the world's memory follows the replicas it runs.
TEST(SimWorldConfig, AHugeReplicaCapAllocatesNothingUpFront) {
  SimServiceConfig s;
  s.max_replicas = std::numeric_limits<int>::max();
  auto w = SimWorld::create(single(s), constant(100, 60));
  ASSERT_TRUE(w) << w.error().to_string();
  ASSERT_TRUE((*w)->scale("app", 40));
  (*w)->advance_to(at(60));
  EXPECT_EQ((*w)->state("app").ready, 40);
}

TEST(SimWorldActions, ScaleAndRestartValidate) {
  auto w = make(single(), constant(1, 100));
  EXPECT_EQ(w->scale("nope", 2).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(w->scale("app", 101).error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(w->scale("app", 0).error().code, ErrorCode::kOutOfRange);  // min 1
  EXPECT_EQ(w->restart("app-99").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(w->restart("app-1"));
  const auto st = w->state("app");
  EXPECT_EQ(st.desired, 1);
  EXPECT_EQ(st.draining, 1);  // the old one drains
  EXPECT_EQ(st.starting, 1);  // its replacement starts
  EXPECT_EQ(st.ready, 0);
  EXPECT_FALSE(w->restart("app-1"));  // draining: nothing to restart
}

TEST(SimWorldConservation, HoldsOnRandomLoadsAndScaleActions) {
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    SimConfig c = chain(0.5 + 2 * u(rng), 0.2 + 1.5 * u(rng));
    c.step = seed % 3 == 0 ? milliseconds(500) : milliseconds(1000);
    c.record_interval = c.step;
    c.seed = seed;
    c.service_defaults.min_replicas = 0;
    c.service_defaults.max_replicas = 8;
    c.service_defaults.initial_replicas = 1 + static_cast<int>(seed % 3);
    c.service_defaults.workers_per_replica = 1 + static_cast<int>(seed % 4);
    c.service_defaults.mean_service_time_seconds = 0.01 + 0.04 * u(rng);
    c.service_defaults.slo_latency_p99_seconds = 0.5;
    c.service_defaults.request_timeout_seconds = 1 + 20 * u(rng);
    c.service_defaults.startup_time = seconds(static_cast<int>(20 * u(rng)));
    c.service_defaults.startup_jitter = 0.3;
    // Every other seed behind a queue limit, shorter or longer than a step.
    if (seed % 4 < 2) c.service_defaults.queue_limit_seconds = 0.05 + 1.5 * u(rng);
    c.service_defaults.drain_time = seconds(static_cast<int>(3 * u(rng)));
    forecast::Trace t;
    const int length = 400;
    if (seed % 2 == 0) {
      // Per-request arrivals with costs, bursty rate.
      double time = 0;
      while (time < length) {
        const double rate = 20 + 400 * (std::sin(time / 30) > 0.5 ? u(rng) : 0.2 * u(rng));
        time += -std::log(1 - u(rng)) / rate;
        if (time >= length) break;
        t.arrival_seconds.push_back(time);
        t.request_cost.push_back(0.2 + 2.8 * u(rng));
      }
      t.step_seconds = 1;
      t.counts.assign(length, 0);
      for (double a : t.arrival_seconds) t.counts[static_cast<size_t>(a)] += 1;
    } else {
      std::vector<double> counts(length);
      for (auto& x : counts) x = u(rng) < 0.2 ? 600 * u(rng) : 100 * u(rng);
      t = per_second(counts);
    }
    auto w = make(c, t);
    const double dt = to_seconds(c.step);
    int next_action = 0;
    for (int k = 0; k * dt < length + 40; ++k) {
      if (k == next_action) {
        const std::string svc = std::string(1, static_cast<char>('a' + rng() % 3));
        if (u(rng) < 0.15) {
          const auto snap = w->observe(w->now());
          const auto& o = obs(snap, svc);
          if (!o.replicas.empty()) {
            (void)w->restart(o.replicas[rng() % o.replicas.size()].id);
          }
        } else {
          ASSERT_TRUE(w->scale(svc, static_cast<int>(rng() % 9)));
        }
        next_action = k + 1 + static_cast<int>(rng() % 20);
      }
      w->step();
    }
    const std::string ctx = "seed " + std::to_string(seed);
    expect_conserved(w->recorder(), ctx);
    // The recorder's last backlog is the world's.
    for (size_t s = 0; s < 3; ++s) {
      const auto r = w->recorder().records(s);
      EXPECT_NEAR(r.back().queued_end, w->state(w->services()[s].name).queued, 1e-9) << ctx;
    }
  }
}

TEST(SimWorldReplicas, StartupDelayAndCostFromStart) {
  SimServiceConfig s;
  s.startup_time = seconds(60);
  s.drain_time = seconds(2);
  SimConfig c = single(s);
  c.record_interval = seconds(1);
  auto w = make(c, constant(10, 300));
  w->advance_to(at(10));
  ASSERT_TRUE(w->scale("app", 3));
  auto snap = w->observe(at(10));
  const auto& o = obs(snap, "app");
  ASSERT_EQ(o.replicas.size(), 3u);
  EXPECT_EQ(o.desired_replicas, 3);
  EXPECT_EQ(o.count(ReplicaState::kReady), 1);
  EXPECT_EQ(o.count(ReplicaState::kStarting), 2);
  for (const auto& r : o.replicas) {
    if (r.state != ReplicaState::kStarting) continue;
    EXPECT_EQ(r.started_at, at(10));
    EXPECT_FALSE(r.ready_at.has_value());
  }
  snap = w->observe(at(69));
  EXPECT_EQ(obs(snap, "app").count(ReplicaState::kStarting), 2);  // not ready before 60 s
  snap = w->observe(at(70));
  EXPECT_EQ(obs(snap, "app").count(ReplicaState::kReady), 3);
  for (const auto& r : obs(snap, "app").replicas) {
    if (r.id != "app-1") {
      EXPECT_EQ(r.ready_at, at(70));
    }
  }

  // Scale down at 100: the two most recently ready drain for 2 s, then are gone.
  w->advance_to(at(100));
  ASSERT_TRUE(w->scale("app", 1));
  snap = w->observe(at(100));
  EXPECT_EQ(obs(snap, "app").count(ReplicaState::kDraining), 2);
  for (const auto& r : obs(snap, "app").replicas) {
    if (r.state == ReplicaState::kReady) {
      EXPECT_EQ(r.id, "app-1");
    }
  }
  snap = w->observe(at(102));
  EXPECT_EQ(obs(snap, "app").replicas.size(), 1u);

  // Scale-down removes starting replicas first, newest first; they stop costing at once.
  w->advance_to(at(120));
  ASSERT_TRUE(w->scale("app", 3));  // app-4, app-5 start
  w->advance_to(at(130));
  ASSERT_TRUE(w->scale("app", 2));
  snap = w->observe(at(130));
  ASSERT_EQ(obs(snap, "app").replicas.size(), 2u);
  EXPECT_EQ(obs(snap, "app").replicas[1].id, "app-4");
  w->advance_to(at(140));

  const auto rec = w->recorder().records(0);
  ASSERT_EQ(rec.size(), 140u);
  auto cost = [&](int k) { return rec[static_cast<size_t>(k)].replica_seconds(); };
  EXPECT_DOUBLE_EQ(cost(9), 1);
  EXPECT_DOUBLE_EQ(cost(10), 3);  // costed from start
  EXPECT_DOUBLE_EQ(cost(69), 3);
  EXPECT_DOUBLE_EQ(rec[69].ready_replica_seconds, 1);
  EXPECT_DOUBLE_EQ(rec[70].ready_replica_seconds, 3);
  EXPECT_DOUBLE_EQ(cost(100), 3);  // 1 ready + 2 draining
  EXPECT_DOUBLE_EQ(rec[100].draining_replica_seconds, 2);
  EXPECT_DOUBLE_EQ(cost(102), 1);
  EXPECT_DOUBLE_EQ(cost(125), 3);
  EXPECT_DOUBLE_EQ(cost(130), 2);
  // The ready log (what the discrete-event mode replays).
  const auto log = w->recorder().ready_changes(0);
  ASSERT_GE(log.size(), 3u);
  EXPECT_EQ(log[0].ready, 1);
  EXPECT_DOUBLE_EQ(log[1].at_seconds, 70);
  EXPECT_EQ(log[1].ready, 3);
  EXPECT_DOUBLE_EQ(log[2].at_seconds, 100);
  EXPECT_EQ(log[2].ready, 1);
}

TEST(SimWorldReplicas, StartupJitterSpreadsReadiness) {
  SimServiceConfig s;
  s.startup_time = seconds(60);
  s.startup_jitter = 0.5;
  auto w = make(single(s), constant(1, 200));
  ASSERT_TRUE(w->scale("app", 21));
  int first = -1, last = -1;
  for (int t = 1; t <= 100; ++t) {
    w->advance_to(at(t));
    const int ready = w->state("app").ready;
    if (ready > 1 && first < 0) first = t;
    if (ready == 21 && last < 0) last = t;
  }
  EXPECT_GE(first, 30);
  EXPECT_LE(last, 90);
  EXPECT_LT(first + 20, last);  // spread, not all at once
}

// One service of 1 replica × 4 workers / 20 ms (200 req/s at most), per-second records, under
// 400 req/s for 60 s and nothing for 60 more.
SimConfig overload_config(SimServiceConfig s) {
  SimConfig c = single(s);
  c.record_interval = seconds(1);
  return c;
}
forecast::Trace overload_load() {
  std::vector<double> load(120, 0.0);
  for (int i = 0; i < 60; ++i) load[static_cast<size_t>(i)] = 400;
  return per_second(load);
}

TEST(SimWorldOverload, BacklogGrowsLatencyGrowsThenDrops) {
  SimServiceConfig s;
  s.request_timeout_seconds = 10;
  const SimConfig c = overload_config(s);
  auto w = make(c, overload_load());
  w->advance_to(at(120));
  const auto r = w->recorder().records(0);
  // Served at 200/s from arrivals at 400/s: at time t the head of the queue arrived at t/2, so
  // waits grow as t/2 and nobody times out before t = 2 × timeout = 20 s.
  for (int k = 0; k < 19; ++k) {
    EXPECT_EQ(r[static_cast<size_t>(k)].dropped, 0) << k;
    EXPECT_NEAR(r[static_cast<size_t>(k)].served, 200, 1e-6) << k;
    EXPECT_NEAR(r[static_cast<size_t>(k)].queued_end, 200.0 * (k + 1), 1e-6) << k;
  }
  EXPECT_LT(r[2].latency_p99_seconds, r[5].latency_p99_seconds);
  EXPECT_LT(r[5].latency_p99_seconds, r[15].latency_p99_seconds);
  EXPECT_NEAR(r[15].latency_p99_seconds, 8, 1.0);
  // Then the oldest time out: 200/s are dropped, the backlog holds ~ timeout × 400/s and every
  // served request waited about the timeout.
  double dropped = 0;
  for (int k = 20; k < 60; ++k) {
    dropped += r[static_cast<size_t>(k)].dropped;
    EXPECT_NEAR(r[static_cast<size_t>(k)].latency_p99_seconds, 10.5, 0.6) << k;
  }
  EXPECT_NEAR(dropped, 40 * 200, 200);
  EXPECT_NEAR(r[40].queued_end, 400 * 10, 400);
  EXPECT_EQ(r[40].served_within_slo, 0);
  // A scrape in the overload counts every request it saw served as slower than the SLO.
  auto again = make(c, overload_load());
  again->advance_to(at(45));
  const auto m = obs(again->observe(at(45)), "app").window;
  EXPECT_NEAR(m.slow_rps, m.served_rps, 1e-6);
  EXPECT_GT(m.slow_rps, 100);
  // Load stops at 60 s: the backlog drains within its timeout, then the service is idle.
  EXPECT_EQ(r[75].queued_end, 0);
  EXPECT_EQ(r[119].arrived, 0);
  expect_conserved(w->recorder(), "overload");
}

TEST(SimWorldOverload, AQueueLimitRefusesTheExcessAndKeepsTheRestWithinTheSlo) {
  SimServiceConfig s;  // SLO p99 200 ms
  s.queue_limit_seconds = 0.1;
  auto w = make(overload_config(s), overload_load());
  w->advance_to(at(120));
  const auto r = w->recorder().records(0);
  // The queue holds 0.1 s of work for 4 workers of 20 ms (20 requests); the other 200 a second
  // are refused as they come, and what is admitted waits at most 0.1 s: within the SLO.
  for (int k = 1; k < 60; ++k) {
    const IntervalRecord& m = r[static_cast<size_t>(k)];
    EXPECT_NEAR(m.served, 200, 1e-6) << k;
    EXPECT_NEAR(m.dropped, 200, 1e-6) << k;
    EXPECT_NEAR(m.queued_end, 20, 1e-6) << k;
    EXPECT_LT(m.latency_p99_seconds, 0.2) << k;
    EXPECT_GT(m.served_within_slo, 0.97 * m.served) << k;
  }
  EXPECT_EQ(r[61].queued_end, 0);
  expect_conserved(w->recorder(), "queue limit");
  // No ready replica: requests wait for one (up to the timeout) instead of being refused.
  SimServiceConfig none = s;
  none.min_replicas = none.initial_replicas = 0;
  auto idle = make(single(none), constant(50, 10));
  idle->advance_to(at(10));
  EXPECT_EQ(idle->state("app").ready, 0);
  const auto q = idle->recorder().records(0);
  double dropped = 0;
  for (const IntervalRecord& m : q) dropped += m.dropped;
  EXPECT_EQ(dropped, 0);
}

TEST(SimWorldOverload, AQueueLimitThatNeverBindsChangesNothing) {
  // 150 req/s on 200 req/s of servers: waits are tens of milliseconds; a 2 s limit refuses
  // (almost) nothing and must leave the latency as it was.
  SimServiceConfig s;
  SimConfig plain = single(s);
  s.queue_limit_seconds = 2;
  SimConfig limited = single(s);
  auto a = make(plain, constant(150, 300));
  auto b = make(limited, constant(150, 300));
  a->advance_to(at(300));
  b->advance_to(at(300));
  const auto ra = a->recorder().records(0), rb = b->recorder().records(0);
  for (size_t k = 1; k < ra.size(); ++k) {
    EXPECT_NEAR(rb[k].latency_p99_seconds, ra[k].latency_p99_seconds,
                1e-3 * ra[k].latency_p99_seconds)
        << k;
    EXPECT_NEAR(rb[k].served_within_slo, ra[k].served_within_slo, 1e-6 * ra[k].arrived) << k;
    EXPECT_LT(rb[k].dropped, 1e-6 * ra[k].arrived) << k;
  }
}

TEST(SimWorldFanout, LoadFollowsServedRequestsAlongAChain) {
  SimConfig c = chain(2.0, 0.5);
  c.service_defaults.initial_replicas = 4;
  c.record_interval = seconds(1);
  auto w = make(c, constant(100, 120));
  const auto snap = w->observe(at(60));
  const auto& rec = w->recorder();
  for (size_t k = 0; k < 60; ++k) {
    EXPECT_NEAR(rec.records(0)[k].arrived, 100, 1e-9);
    EXPECT_NEAR(rec.records(1)[k].arrived, 200, 1e-9);
    EXPECT_NEAR(rec.records(2)[k].arrived, 100, 1e-9);
  }
  ASSERT_EQ(snap.edges.size(), 2u);
  EXPECT_EQ(snap.edges[0].caller, "a");
  EXPECT_EQ(snap.edges[0].callee, "b");
  EXPECT_NEAR(snap.edges[0].calls_total, 200 * 60, 1e-6);  // scraped at 60 s
  EXPECT_NEAR(snap.edges[1].calls_total, 100 * 60, 1e-6);
}

TEST(SimWorldFanout, RequestsADropsNeverCallDownstream) {
  SimConfig c = chain(2.0, 0.5);
  c.service_defaults.min_replicas = 0;
  c.services.push_back(SimServiceConfig{.name = "a", .min_replicas = 0, .initial_replicas = 0});
  c.services.back().request_timeout_seconds = 5;
  c.record_interval = seconds(1);
  auto w = make(c, constant(100, 60));
  w->advance_to(at(60));
  const auto& rec = w->recorder();
  double dropped = 0;
  for (size_t k = 0; k < 60; ++k) {
    EXPECT_EQ(rec.records(0)[k].served, 0);
    EXPECT_EQ(rec.records(1)[k].arrived, 0);
    dropped += rec.records(0)[k].dropped;
  }
  EXPECT_GT(dropped, 100 * 50);
  expect_conserved(rec, "a has no replicas");
}

TEST(SimWorldObservation, ScrapesLagAStepChangeInLoad) {
  SimServiceConfig s;
  s.initial_replicas = 4;
  std::vector<double> load(300, 50.0);
  for (size_t i = 100; i < load.size(); ++i) load[i] = 150;
  auto w = make(single(s), per_second(load));
  auto window = [&](double t) { return obs(w->observe(at(t)), "app").window; };

  auto m = window(100);
  EXPECT_EQ(m.sampled_at, at(90));
  EXPECT_NEAR(m.arrival_rps, 50, 1e-9);
  EXPECT_EQ(m.length, seconds(30));
  m = window(104.5);  // still the scrape of 90 s: the step change is invisible
  EXPECT_EQ(m.sampled_at, at(90));
  EXPECT_NEAR(m.arrival_rps, 50, 1e-9);
  m = window(105);
  EXPECT_EQ(m.sampled_at, at(105));
  EXPECT_NEAR(m.arrival_rps, (25 * 50 + 5 * 150) / 30.0, 1e-9);
  m = window(134);
  EXPECT_EQ(m.sampled_at, at(120));
  EXPECT_NEAR(m.arrival_rps, (10 * 50 + 20 * 150) / 30.0, 1e-9);
  m = window(135);
  EXPECT_NEAR(m.arrival_rps, 150, 1e-9);
  EXPECT_NEAR(m.served_rps, 150, 1e-6);
  EXPECT_EQ(m.dropped_rps, 0);
  EXPECT_LT(m.slow_rps, 1e-3 * m.served_rps);  // 4 replicas for 150 req/s: well within the SLO
  EXPECT_GT(m.latency_p99_seconds, 0.0);

  // The per-second pipeline sees the last completed second, no more.
  auto fresh = make(single(s), per_second(load));
  EXPECT_FALSE(obs(fresh->observe(at(0)), "app").last_second.valid);
  EXPECT_EQ(obs(fresh->observe(at(0)), "app").window.length, Clock::Duration{0});
  auto sec = obs(fresh->observe(at(100)), "app").last_second;
  EXPECT_TRUE(sec.valid);
  EXPECT_EQ(sec.at, at(100));
  EXPECT_NEAR(sec.requests, 50, 1e-9);
  sec = obs(fresh->observe(at(101)), "app").last_second;
  EXPECT_NEAR(sec.requests, 150, 1e-9);
  // Little's law: concurrency = arrival rate × mean sojourn (> service time alone).
  EXPECT_GT(sec.concurrency, 150 * 0.02);
  EXPECT_LT(sec.concurrency, 150 * 0.04);
}

// The p99 of any period is that of the mixture of its steps' components (docs/simulator.md,
// "Latency of a step, a minute, a scrape window"): a scrape window that covers exactly one record
// interval must report that interval's p99. Here the load steps up at 60 s (the queue relaxes,
// then rests and repeats its steps beyond one window) and down at 100 s (new, distinct steps
// that land in the ring slot the resting steps still take their components from).
TEST(SimWorldObservation, AScrapeWindowsP99IsThatOfTheRecordIntervalItCovers) {
  std::vector<double> load(150, 100.0);
  for (size_t i = 60; i < 100; ++i) load[i] = 185;
  for (size_t i = 100; i < 150; ++i) load[i] = 120;
  SimConfig c = single();
  c.record_interval = seconds(30);  // record 3 is [90, 120), the window scraped at 120
  auto w = make(c, per_second(load));
  const scaling::WindowMetrics m = obs(w->observe(at(120)), "app").window;
  ASSERT_EQ(m.sampled_at, at(120));
  ASSERT_EQ(m.length, seconds(30));
  const IntervalRecord& record = w->recorder().records(0)[3];
  // The same steps: the same requests within the SLO...
  EXPECT_NEAR(m.slow_rps * 30, record.served - record.served_within_slo, 1e-6);
  // ...and the same p99 (merging near-identical components moves it by < 1e-3).
  EXPECT_NEAR(m.latency_p99_seconds, record.latency_p99_seconds, 1e-3 * record.latency_p99_seconds);
}

TEST(SimWorldObservation, LastSecondWithShorterAndLongerSteps) {
  for (auto step : {Clock::Duration(milliseconds(250)), Clock::Duration(seconds(3))}) {
    SimConfig c = single();
    c.step = step;
    c.record_interval = seconds(60);
    auto w = make(c, constant(100, 120));
    const auto snap = w->observe(at(30));
    const auto& sec = obs(snap, "app").last_second;
    EXPECT_TRUE(sec.valid);
    EXPECT_EQ(sec.at, at(30));
    EXPECT_NEAR(sec.requests, 100, 1e-9);
    EXPECT_NEAR(obs(snap, "app").window.arrival_rps, 100, 1e-9);  // scraped at 30 s
  }
}

TEST(SimWorldObservation, NewReplicasHaveNoCpuSampleForAWindow) {
  SimServiceConfig s;
  s.initial_replicas = 2;
  s.startup_time = seconds(20);
  auto w = make(single(s), constant(100, 400));
  w->advance_to(at(200));
  ASSERT_TRUE(w->scale("app", 3));  // app-3 starts at 200, ready at 220
  auto cpu_of = [&](double t, const std::string& id) -> std::optional<double> {
    const scaling::Snapshot snap = w->observe(at(t));
    for (const auto& r : obs(snap, "app").replicas) {
      if (r.id == id) return r.cpu_utilization;
    }
    return std::nullopt;
  };
  EXPECT_TRUE(cpu_of(200, "app-1").has_value());
  EXPECT_FALSE(cpu_of(225, "app-3").has_value());  // scrape at 225: ran 25 s < 30 s
  const auto first = cpu_of(240, "app-3");         // scrape at 240: window [210, 240)
  ASSERT_TRUE(first.has_value());
  const auto old = cpu_of(240, "app-1");
  // 10 of its 30 s were startup at the idle baseline: less than an old replica's.
  EXPECT_LT(*first, *old);
  EXPECT_GT(*first, s.idle_cpu_utilization);
  const auto snap = w->observe(at(240));
  for (const auto& r : obs(snap, "app").replicas) {
    EXPECT_EQ(r.metric_time, at(240));
    EXPECT_EQ(r.metric_window, seconds(30));
  }
}

TEST(SimWorldCpu, UtilizationFollowsLoadOverCapacity) {
  for (double share : {0.1, 0.5, 0.8}) {
    SimServiceConfig s;
    s.initial_replicas = 2;
    const double max_rps = 2 * 4 / 0.02;
    auto w = make(single(s), constant(share * max_rps, 120));
    const scaling::Snapshot snap = w->observe(at(90));
    const auto m = obs(snap, "app").window;
    const double expected = s.idle_cpu_utilization + (1 - s.idle_cpu_utilization) * share;
    EXPECT_NEAR(m.mean_cpu_utilization, expected, 1e-9) << share;
    for (const auto& r : obs(snap, "app").replicas) {
      ASSERT_TRUE(r.cpu_utilization.has_value());
      EXPECT_NEAR(*r.cpu_utilization, expected, 1e-9);
    }
  }
}

TEST(SimWorldCapacity, P99AtCapacityRpsMeetsTheSlo) {
  for (int workers : {1, 4, 8}) {
    for (int replicas : {1, 3}) {
      SimServiceConfig s;
      s.workers_per_replica = workers;
      s.initial_replicas = replicas;
      s.slo_latency_p99_seconds = 0.25;
      const double cap = *capacity_rps(s);
      SimConfig c = single(s);
      auto w = make(c, constant(cap * replicas, 600));
      w->advance_to(at(600));
      const auto r = w->recorder().records(0);
      const IntervalRecord& last = r.back();
      if (replicas == 1) {
        EXPECT_NEAR(last.latency_p99_seconds, 0.25, 0.0025) << workers;
        EXPECT_NEAR(last.served_within_slo / last.served, 0.99, 1e-6);
      } else {
        // c = replicas × workers pools more servers: better than the SLO.
        EXPECT_LT(last.latency_p99_seconds, 0.25) << workers;
      }
    }
  }
}

TEST(SimWorldProperty, MoreReplicasNeverLowerSloAttainment) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<double> counts(300);
    for (size_t i = 0; i < 240; ++i) counts[i] = u(rng) < 0.3 ? 900 * u(rng) : 300 * u(rng);
    SimConfig base = chain(1.0 + u(rng), 0.5 + u(rng));
    base.service_defaults.request_timeout_seconds = 2 + 10 * u(rng);
    base.service_defaults.workers_per_replica = 1 + static_cast<int>(seed % 4);
    base.service_defaults.slo_latency_p99_seconds = 0.3;
    // Half the seeds behind a queue limit: more replicas also admit more.
    if (seed % 2 == 0) base.service_defaults.queue_limit_seconds = 0.05 + 0.3 * u(rng);
    // More replicas of a service never lower its own attainment; more replicas of the leaf
    // never lower the total either. (More replicas of a caller pass more load downstream, so
    // there only the caller's own attainment is monotone.)
    for (const std::string target : {"a", "b", "c"}) {
      const size_t idx = static_cast<size_t>(target[0] - 'a');
      double previous[3] = {-1, -1e9, -1};
      for (int n = 1; n <= 6; ++n) {
        SimConfig c = base;
        c.services.push_back(base.service_defaults);
        c.services.back().name = target;
        c.services.back().initial_replicas = n;
        auto w = make(c, per_second(counts));
        w->advance_to(at(300));
        const SimResults res = compute_results(w->recorder());
        // Minutes that miss (a share of minutes is not monotone: with more replicas a trailing
        // minute whose backlog was served within the SLO may have no requests at all).
        const ServiceResults& mine = res.services[idx];
        const double now[3] = {mine.slo_attainment,
                               -static_cast<double>(mine.minutes - mine.minutes_meeting_slo),
                               target == "c" ? res.total.slo_attainment : 0.0};
        for (int i = 0; i < 3; ++i) {
          EXPECT_GE(now[i], previous[i] - 1e-9)
              << "seed " << seed << " service " << target << " n " << n << " figure " << i;
          previous[i] = now[i];
        }
      }
    }
  }
}

TEST(SimWorldResults, ComputedFromRecords) {
  std::vector<ServiceInfo> infos = {{"x", 0.2, 10, 2}, {"y", 0.2, 5, 1}};
  SimRecorder rec(infos, seconds(60), Clock::TimePoint{});
  IntervalRecord good{.seconds = 60, .arrived = 600, .served = 600, .served_within_slo = 597};
  good.ready_replica_seconds = 120;
  good.busy_worker_seconds = 60;
  IntervalRecord bad = good;
  bad.served = 500;
  bad.dropped = 100;
  bad.served_within_slo = 450;
  rec.append(0, good);
  rec.append(0, bad);
  IntervalRecord idle{.seconds = 60};
  idle.ready_replica_seconds = 60;
  rec.append(1, good);
  rec.append(1, idle);
  const SimResults r = compute_results(rec);
  ASSERT_EQ(r.services.size(), 2u);
  const ServiceResults& x = r.services[0];
  EXPECT_DOUBLE_EQ(x.arrived, 1200);
  EXPECT_DOUBLE_EQ(x.dropped, 100);
  EXPECT_DOUBLE_EQ(x.slo_attainment, (597.0 + 450) / 1200);
  EXPECT_EQ(x.minutes, 2);
  EXPECT_EQ(x.minutes_meeting_slo, 1);
  EXPECT_DOUBLE_EQ(x.replica_hours, 240.0 / 3600);
  // Needed: 1200 requests / 10 req/s = 120 replica-seconds; had 240 ready.
  EXPECT_DOUBLE_EQ(x.mean_overprovisioning, 2.0);
  EXPECT_DOUBLE_EQ(x.mean_cpu_utilization, 120.0 / (240 * 2));
  const ServiceResults& y = r.services[1];
  EXPECT_EQ(y.minutes, 1);  // the idle minute has no requests
  EXPECT_EQ(r.total.minutes, 2);
  EXPECT_EQ(r.total.minutes_meeting_slo, 1);  // minute 2: x missed
  EXPECT_DOUBLE_EQ(r.total.arrived, 1800);
  EXPECT_DOUBLE_EQ(r.total.replica_hours, (240.0 + 180) / 3600);
  // x's second minute misses with 150 of its 600 requests (25 %, 250x the 0.1 % error budget's
  // rate): an incident, open at the end of the run; y's 3 slow requests are too few for one.
  EXPECT_EQ(x.incidents, 1);
  EXPECT_DOUBLE_EQ(x.incident_hours, 1.0 / 60);
  EXPECT_EQ(y.incidents, 0);
  EXPECT_EQ(r.total.incidents, 1);
}

// An hour of 1 % of requests missing (10x the error budget's rate: under the 14.4x rule) opens
// no incident after six good hours, unless the budget is ten times smaller.
TEST(SimWorldResults, IncidentsFollowTheErrorBudget) {
  SimRecorder rec({{"x", 0.2, 10, 1}}, seconds(60), Clock::TimePoint{});
  for (int m = 0; m < 7 * 60; ++m) {
    IntervalRecord r{.seconds = 60, .arrived = 600, .served = 600, .served_within_slo = 600};
    if (m >= 6 * 60) r.served_within_slo = 594;
    rec.append(0, r);
  }
  EXPECT_EQ(compute_results(rec).total.incidents, 0);
  ResultOptions tight;
  tight.error_budget = 0.0001;
  const SimResults r = compute_results(rec, tight);
  EXPECT_EQ(r.total.incidents, 1);
  EXPECT_GT(r.total.incident_hours, 0.5);
}

// Six hours of requests taking 20 ms in service, then an hour at 30 ms (a release: 1.5x) and
// back: one slowdown warning, opened at the third slow minute (the median of the last five
// turns) and cleared at the third good one.
TEST(SimWorldResults, ASlowerHourIsOneSlowdownWarning) {
  SimRecorder rec({{"x", 0.2, 10, 1}}, seconds(60), Clock::TimePoint{});
  for (int m = 0; m < 8 * 60; ++m) {
    const double s = (m >= 6 * 60 && m < 7 * 60 ? 0.03 : 0.02) * (1 + 0.05 * (m % 3 - 1));
    rec.append(0, {.seconds = 60,
                   .arrived = 600,
                   .served = 600,
                   .served_within_slo = 600,
                   .latency_p99_seconds = 0.1,
                   .busy_worker_seconds = 600 * s});
  }
  const SimResults r = compute_results(rec);
  ASSERT_EQ(r.services[0].slowdowns, 1);
  ASSERT_EQ(r.services[0].slowdowns_at.size(), 1U);
  EXPECT_DOUBLE_EQ(r.services[0].slowdowns_at[0], (6 * 60 + 3) * 60.0);
  EXPECT_NEAR(r.services[0].slowdown_hours, 1.0, 1e-9);
  EXPECT_EQ(r.total.slowdowns, 1);
  EXPECT_EQ(r.services[0].incidents, 0);  // every request within the SLO
}

// 28 days of NASA July on Online Boutique: the speed figure (printed, not asserted).
TEST(SimWorldSpeed, NasaJulyOnlineBoutique) {
  const char* root = std::getenv("PRESCALE_SOURCE_DIR");
  const std::string data = std::string(root ? root : ".") + "/../shared/data";
  if (!std::filesystem::exists(data + "/traces/nasa-http-1995-07.csv")) {
    GTEST_SKIP() << "skipped: ../shared/data missing";
  }
  auto trace = forecast::read_trace(data + "/traces/nasa-http-1995-07.csv");
  ASSERT_TRUE(trace);
  auto graph = scaling::builtin_topology("online-boutique", data);
  ASSERT_TRUE(graph);
  SimConfig c;
  c.graph = *graph;
  c.service_defaults.max_replicas = 50;
  const forecast::Trace scaled = forecast::rescale_to_peak(*trace, 300);
  const auto specs = *service_specs(c);

  // A simple reactive rule every 15 s: enough replicas for the window's arrivals at 70 % of
  // the SLO capacity. Three ways to drive it: the world advanced straight to each decision (a
  // controller that sleeps until its next tick), advanced every second, and advanced and
  // observed (a Snapshot built) every second, as a Knative-style policy needs.
  const char* modes[] = {"advance 15 s, observe 15 s", "advance 1 s, observe 15 s",
                         "advance 1 s, observe 1 s"};
  const char* only = std::getenv("PRESCALE_SIM_SPEED_MODE");  // profile one mode: 0, 1 or 2
  for (int mode = 0; mode < 3; ++mode) {
    if (only != nullptr && std::atoi(only) != mode) continue;
    auto w = make(c, scaled);
    const auto begin = std::chrono::steady_clock::now();
    const auto end = w->trace_end();
    const auto jump = seconds(mode == 0 ? 15 : 1);
    int64_t seconds_run = 0;
    for (Clock::TimePoint t = at(0) + jump; t <= end; t += jump) {
      seconds_run += mode == 0 ? 15 : 1;
      w->advance_to(t);
      if (mode == 2 || seconds_run % 15 == 0) {
        const scaling::Snapshot snap = w->observe(t);
        if (seconds_run % 15 != 0) continue;
        for (size_t s = 0; s < specs.size(); ++s) {
          const double rps = snap.services[s].window.arrival_rps;
          const int n =
              std::clamp(static_cast<int>(std::ceil(rps / (0.7 * specs[s].capacity_rps))), 1, 50);
          if (n != snap.services[s].desired_replicas) (void)w->scale(specs[s].name, n);
        }
      }
    }
    w->flush();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    const SimResults r = compute_results(w->recorder());
    std::printf(
        "[sim speed] NASA July (%lld s) x online-boutique (%zu services), %s: %.2f s "
        "wall; SLO attainment %.4f, minutes meeting p99 %.4f, replica-hours %.1f\n",
        static_cast<long long>(seconds_run), specs.size(), modes[mode], wall,
        r.total.slo_attainment, r.total.minute_slo_share, r.total.replica_hours);
    expect_conserved(w->recorder(), "nasa");
  }
}

}  // namespace
}  // namespace prescale::sim

namespace prescale::sim {
namespace {

TEST(SimWorldConfig, FromPrescaleYaml) {
  auto config = load_config_string(R"(version: 1
services:
  - name: checkout
    kind: command
    command: ["./checkout", "--port", "{port}"]
    replicas: {min: 2, max: 20, initial: 3}
    startup_time: 45s
    capacity_rps: 120
    slo: {latency_p99_ms: 300}
    depends_on: [fraud]
  - name: fraud
    kind: builtin/fraud
    capacity_rps: 400
)");
  ASSERT_TRUE(config) << config.error().message;
  auto sim = sim_config_from(*config);
  ASSERT_TRUE(sim) << sim.error().message;
  EXPECT_EQ(sim->graph.entries, std::vector<std::string>{"checkout"});
  ASSERT_EQ(sim->graph.edges.size(), 1u);
  EXPECT_EQ(sim->graph.edges[0].fanout, 1.0);
  auto specs = service_specs(*sim);
  ASSERT_TRUE(specs) << specs.error().message;
  ASSERT_EQ(specs->size(), 2u);
  const scaling::ServiceSpec& checkout = (*specs)[sim->graph.index_of("checkout")];
  EXPECT_NEAR(checkout.capacity_rps, 120, 120e-6);
  EXPECT_EQ(checkout.min_replicas, 2);
  EXPECT_EQ(checkout.max_replicas, 20);
  EXPECT_EQ(checkout.startup_time, std::chrono::seconds(45));
  EXPECT_DOUBLE_EQ(checkout.slo_latency_p99_seconds, 0.3);
  EXPECT_NEAR((*specs)[sim->graph.index_of("fraud")].capacity_rps, 400, 400e-6);

  // No queue_limit written: half the SLO, 150 ms — the queue the gateway lets a replica hold
  // (its max_requests_per_replica, ceil(120 × (0.3 + 0.15)) = 54 with no concurrency given,
  // less the 4 the simulated replica serves at once: 50 requests), in seconds of its workers'
  // work. queue_limit: 0, no limit.
  const SimServiceConfig& l = sim->services[sim->graph.index_of("checkout")];
  EXPECT_NEAR(l.queue_limit_seconds, 50 * l.mean_service_time_seconds / l.workers_per_replica,
              1e-12);
  // With its concurrency given, what it serves at once is known: 4 + ceil(120 × 0.15) = 22 in
  // flight, 18 queued — about the limit times the utilisation at the SLO.
  config->services[0].concurrency = 4;
  auto known = sim_config_from(*config);
  ASSERT_TRUE(known) << known.error().message;
  const SimServiceConfig& k = known->services[known->graph.index_of("checkout")];
  EXPECT_NEAR(k.queue_limit_seconds, 18 * k.mean_service_time_seconds / 4, 1e-12);
  EXPECT_GT(k.queue_limit_seconds, 0.08);
  EXPECT_LT(k.queue_limit_seconds, 0.15);
  config->services[0].concurrency = 0;
  config->services[0].queue_limit = std::chrono::milliseconds(0);
  SimServiceConfig limited_defaults;  // as prescale sim's: a limit for every service
  limited_defaults.queue_limit_seconds = 0.1;
  auto unlimited = sim_config_from(*config, limited_defaults);
  ASSERT_TRUE(unlimited) << unlimited.error().message;
  EXPECT_EQ(unlimited->services[unlimited->graph.index_of("checkout")].queue_limit_seconds, 0);

  // Any capacity is reachable: a shorter service time serves more within the SLO.
  for (double capacity : {0.5, 5.0, 1e5}) {
    config->services[1].capacity_rps = capacity;
    auto other = sim_config_from(*config);
    ASSERT_TRUE(other) << other.error().message;
    EXPECT_NEAR((*service_specs(*other))[other->graph.index_of("fraud")].capacity_rps, capacity,
                capacity * 1e-6);
  }
}

}  // namespace
}  // namespace prescale::sim
