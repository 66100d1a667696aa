#include "scaling/capacity_model.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace prescale::scaling {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

ServiceSpec spec(std::string name, double capacity_rps, int max_concurrency = 4,
                 double slo_seconds = 0.2) {
  ServiceSpec s;
  s.name = std::move(name);
  s.capacity_rps = capacity_rps;
  s.max_concurrency = max_concurrency;
  s.slo_latency_p99_seconds = slo_seconds;
  return s;
}

// A scrape of a service whose replicas share one M/M/c queue, as the model assumes: the
// window's concurrency and p99 are the stationary ones at `rps` with service time `s`.
struct Scrape {
  double rps = 100;
  double service_time = 0.02;
  int replicas = 1;
  int workers = 4;
  double p99_factor = 1;  // the observed p99 is this × the M/M/c one
  bool report_concurrency = true;
  double idle_cpu = 0.05;
};

ServiceObservation observe(const std::string& name, Clock::Duration at, const Scrape& x) {
  ServiceObservation o;
  o.name = name;
  for (int i = 0; i < x.replicas; ++i) {
    ReplicaObservation r;
    r.id = name + "-" + std::to_string(i);
    r.state = ReplicaState::kReady;
    r.ready_at = Clock::TimePoint{} - minutes(10);
    o.replicas.push_back(r);
  }
  const int servers = x.replicas * x.workers;
  const double busy = x.rps * x.service_time;
  WindowMetrics& w = o.window;
  w.sampled_at = Clock::TimePoint{} + at;
  w.length = seconds(30);
  w.arrival_rps = w.served_rps = x.rps;
  w.concurrency = x.report_concurrency ? mmc_mean_in_system(servers, busy) : 0;
  w.latency_p99_seconds = x.p99_factor * mmc_p99_seconds(servers, x.rps, x.service_time);
  w.mean_cpu_utilization = x.idle_cpu + (1 - x.idle_cpu) * busy / servers;
  return o;
}

Snapshot snapshot_of(ServiceObservation o) {
  Snapshot snap;
  snap.time = o.window.sampled_at;
  snap.services.push_back(std::move(o));
  return snap;
}

// Every 15 s for `duration`, starting at `from`; the load swings between 20 % and 90 % of
// what `x.replicas` replicas sustain at `truth_rps` each.
Clock::Duration feed(CapacityModel& model, const std::string& name, Scrape x, double truth_rps,
                     Clock::Duration from, Clock::Duration duration) {
  Clock::Duration t = from;
  for (; t < from + duration; t += seconds(15)) {
    const double phase = std::chrono::duration<double>(t).count() / 600.0 * 2 * M_PI;
    x.rps = x.replicas * truth_rps * (0.55 + 0.35 * std::sin(phase));
    model.observe(snapshot_of(observe(name, t, x)));
  }
  return t;
}

// ---- the M/M/c formulas --------------------------------------------------------------------

TEST(MmcFormulas, MatchClosedFormsForOneServer) {
  // M/M/1: the wait probability is ρ, the number in system ρ/(1−ρ), the sojourn Exp(μ − λ).
  EXPECT_NEAR(erlang_c(1, 0.5), 0.5, 1e-12);
  EXPECT_NEAR(mmc_mean_in_system(1, 0.5), 1.0, 1e-12);
  EXPECT_NEAR(mmc_p99_seconds(1, 30, 0.02), std::log(100.0) / (50 - 30), 1e-8);
  // Capacity at the SLO: μ − ln(100) / SLO.
  EXPECT_NEAR(mmc_capacity_rps(1, 0.02, 0.2), 50 - std::log(100.0) / 0.2, 1e-6);
  EXPECT_EQ(erlang_c(2, 2.5), 1);
  EXPECT_TRUE(std::isinf(mmc_p99_seconds(2, 100, 0.02)));
}

TEST(MmcFormulas, CapacityOfTheSimulatorDefaults) {
  // 20 ms, 4 workers, p99 200 ms: 175.0 req/s per replica (docs/simulator.md).
  const double cap = mmc_capacity_rps(4, 0.02, 0.2);
  EXPECT_NEAR(cap, 175.0, 0.05);
  EXPECT_NEAR(mmc_p99_seconds(4, cap, 0.02), 0.2, 1e-8);
  // Two-server Erlang C by hand: a = 1, C = (a²/2 · 2/(2−a)) / (1 + a + a²/2 · 2/(2−a)) = 1/3.
  EXPECT_NEAR(erlang_c(2, 1.0), 1.0 / 3, 1e-12);
  // An idle replica alone misses an SLO below ln(100) × S.
  EXPECT_EQ(mmc_capacity_rps(4, 0.05, 0.2), 0);
  EXPECT_EQ(mmc_capacity_rps(4, 0.0, 0.2), 0);
}

// ---- the model -----------------------------------------------------------------------------

TEST(CapacityModel, StartsFromTheSeed) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  EXPECT_DOUBLE_EQ(model.capacity_rps("api"), 175.0);
  EXPECT_NEAR(model.service_time_seconds("api"), 0.02, 1e-5);
  EXPECT_EQ(model.samples("api"), 0);
  EXPECT_EQ(model.latency_correction("api"), 1);
  EXPECT_EQ(model.capacity_rps("ghost"), 0);
  EXPECT_TRUE(std::isnan(model.service_time_seconds("ghost")));
  EXPECT_EQ(model.samples("ghost"), 0);
}

TEST(CapacityModel, LearnsTheServiceTimeByLittlesLaw) {
  CapacityModel model;
  model.init({spec("api", 175.0)});  // the seed thinks 20 ms; the truth is 30 ms
  const double truth = mmc_capacity_rps(4, 0.03, 0.2);
  feed(model, "api", {.service_time = 0.03, .replicas = 3}, truth, seconds(15), minutes(30));
  EXPECT_EQ(model.samples("api"), 120);
  EXPECT_NEAR(model.service_time_seconds("api"), 0.03, 1e-8);
  EXPECT_NEAR(model.capacity_rps("api") / truth, 1.0, 1e-6) << truth;
  EXPECT_NEAR(model.latency_correction("api"), 1.0, 1e-6);
}

TEST(CapacityModel, BlendsWithTheSeedWhileSamplesAreFew) {
  CapacityModelOptions options;
  options.min_samples = 4;
  CapacityModel model(options);
  model.init({spec("api", 175.0)});
  const double truth = mmc_capacity_rps(4, 0.03, 0.2);
  Scrape x{.rps = 150, .service_time = 0.03, .replicas = 2};
  for (int i = 1; i <= 5; ++i) {
    model.observe(snapshot_of(observe("api", seconds(15 * i), x)));
    const double weight = std::min(1.0, i / 4.0);
    EXPECT_NEAR(model.capacity_rps("api"), weight * truth + (1 - weight) * 175.0, 1e-3) << i;
  }
}

TEST(CapacityModel, UsesCpuWhenNoConcurrencyIsReported) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  const double truth = mmc_capacity_rps(4, 0.025, 0.2);
  feed(model, "api", {.service_time = 0.025, .replicas = 2, .report_concurrency = false}, truth,
       seconds(15), minutes(10));
  EXPECT_NEAR(model.service_time_seconds("api"), 0.025, 1e-9);
  EXPECT_NEAR(model.capacity_rps("api") / truth, 1.0, 1e-6);
}

TEST(CapacityModel, SeparateQueuesPerReplica) {
  CapacityModelOptions options;
  options.shared_queue = false;
  CapacityModel model(options);
  model.init({spec("api", 175.0)});
  // Three replicas each an M/M/4 queue at a third of the load.
  Clock::Duration t = seconds(15);
  for (int i = 0; i < 40; ++i, t += seconds(15)) {
    Scrape one{.rps = 50.0 + i, .service_time = 0.03, .replicas = 1};
    ServiceObservation o = observe("api", t, one);
    Scrape all = one;
    all.replicas = 3;
    ServiceObservation three = observe("api", t, all);
    three.window.served_rps = three.window.arrival_rps = 3 * one.rps;
    three.window.concurrency = 3 * o.window.concurrency;
    three.window.latency_p99_seconds = o.window.latency_p99_seconds;
    three.window.mean_cpu_utilization = o.window.mean_cpu_utilization;
    model.observe(snapshot_of(three));
  }
  EXPECT_NEAR(model.service_time_seconds("api"), 0.03, 1e-8);
  EXPECT_NEAR(model.capacity_rps("api") / mmc_capacity_rps(4, 0.03, 0.2), 1.0, 1e-6);
}

TEST(CapacityModel, LatencyWorseThanTheModelLowersCapacity) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  // Same service time, but the tail is 25 % slower than M/M/c (e.g. heavier-tailed service).
  const double plain = mmc_capacity_rps(4, 0.02, 0.2);
  feed(model, "api", {.service_time = 0.02, .replicas = 1, .p99_factor = 1.25}, plain, seconds(15),
       minutes(30));
  EXPECT_NEAR(model.service_time_seconds("api"), 0.02, 1e-8);
  EXPECT_NEAR(model.latency_correction("api"), 1.25, 1e-6);
  EXPECT_NEAR(model.capacity_rps("api"), mmc_capacity_rps(4, 0.02, 0.2 / 1.25), 1e-3);
  // Near the SLO the p99 climbs steeply with load: a tail 25 % slower costs 4 % of capacity.
  EXPECT_LT(model.capacity_rps("api"), 0.96 * plain);
}

TEST(CapacityModel, FollowsASlowerReleaseWithinMinutes) {
  CapacityModel model;
  model.init({spec("api", mmc_capacity_rps(4, 0.01, 0.2))});
  const double fast = mmc_capacity_rps(4, 0.01, 0.2);
  const double slow = mmc_capacity_rps(4, 0.02, 0.2);
  Clock::Duration t =
      feed(model, "api", {.service_time = 0.01, .replicas = 2}, fast, seconds(15), minutes(30));
  EXPECT_NEAR(model.capacity_rps("api") / fast, 1.0, 1e-6);
  // The release doubles the service time; the replicas are resized to keep 20..90 %.
  const Clock::Duration release = t;
  std::optional<Clock::Duration> within;
  for (int i = 0; i < 60; ++i) {
    t = feed(model, "api", {.service_time = 0.02, .replicas = 4}, slow, t, seconds(15));
    const bool close = std::abs(model.capacity_rps("api") / slow - 1) <= 0.1;
    if (close && !within) within = t - release;
    if (!close) within.reset();
  }
  ASSERT_TRUE(within);
  std::printf("[capacity] 10 ms -> 20 ms: within 10 %% of the new capacity after %.1f min\n",
              std::chrono::duration<double>(*within).count() / 60);
  // Three scrapes in a row well above the estimate restart it from them (shift_scrapes): under a
  // minute, where the 3-minute half-life alone took 7.5.
  EXPECT_LE(*within, minutes(1));
  EXPECT_NEAR(model.capacity_rps("api") / slow, 1.0, 0.02);
}

// The same without restarting from a run of scrapes: the half-life alone.
TEST(CapacityModel, FollowsASlowerReleaseByItsHalfLifeWithoutShiftDetection) {
  CapacityModel model({.shift_scrapes = 0});
  model.init({spec("api", mmc_capacity_rps(4, 0.01, 0.2))});
  const double slow = mmc_capacity_rps(4, 0.02, 0.2);
  Clock::Duration t = feed(model, "api", {.service_time = 0.01, .replicas = 2},
                           mmc_capacity_rps(4, 0.01, 0.2), seconds(15), minutes(30));
  t = feed(model, "api", {.service_time = 0.02, .replicas = 4}, slow, t, minutes(3));
  EXPECT_GT(model.capacity_rps("api") / slow, 1.1) << "still more than 10 % off";
}

// A faster release is left to the half-life: until it follows, the service keeps replicas it no
// longer needs, which costs replicas, not requests — a restart from three fast scrapes would
// risk the reverse on a service whose cost per request swings.
TEST(CapacityModel, FollowsAFasterReleaseByItsHalfLife) {
  CapacityModel model;
  const double slow = mmc_capacity_rps(4, 0.02, 0.2);
  const double fast = mmc_capacity_rps(4, 0.01, 0.2);
  model.init({spec("api", slow)});
  Clock::Duration t =
      feed(model, "api", {.service_time = 0.02, .replicas = 4}, slow, seconds(15), minutes(30));
  t = feed(model, "api", {.service_time = 0.01, .replicas = 2}, fast, t, minutes(1));
  EXPECT_LT(model.capacity_rps("api") / fast, 0.9) << "not restarted from the fast scrapes";
  feed(model, "api", {.service_time = 0.01, .replicas = 2}, fast, t, minutes(30));
  EXPECT_NEAR(model.capacity_rps("api") / fast, 1.0, 0.02);
}

// A noisy service (each scrape's service time off by a log-normal factor, σ = 0.15: 20 % off
// one scrape in six) is not taken for a changing one: the bar for a run is 3 of the noise's
// deviations, so for hours the estimate is the one the half-life alone gives.
TEST(CapacityModel, NoiseIsNotTakenForARelease) {
  const double truth = mmc_capacity_rps(4, 0.02, 0.2);
  CapacityModel model, half_life_only({.shift_scrapes = 0});
  model.init({spec("api", truth)});
  half_life_only.init({spec("api", truth)});
  std::uint64_t state = 42;
  auto uniform = [&] {  // (0, 1)
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  };
  for (int i = 1; i <= 6 * 240; ++i) {  // 6 h of 15 s scrapes
    const double normal = std::sqrt(-2 * std::log(uniform())) * std::cos(2 * M_PI * uniform());
    const Scrape x{
        .rps = 0.6 * 2 * truth, .service_time = 0.02 * std::exp(0.15 * normal), .replicas = 2};
    const Snapshot snapshot = snapshot_of(observe("api", seconds(15 * i), x));
    model.observe(snapshot);
    half_life_only.observe(snapshot);
    ASSERT_EQ(model.capacity_rps("api"), half_life_only.capacity_rps("api")) << "scrape " << i;
  }
}

TEST(CapacityModel, SkipsScrapesThatDoNotDescribeASteadyQueue) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  const Scrape x{.rps = 200, .service_time = 0.03, .replicas = 2};
  auto counted = [&](ServiceObservation o) {
    const int before = model.samples("api");
    model.observe(snapshot_of(std::move(o)));
    return model.samples("api") - before;
  };
  Clock::Duration t = seconds(15);
  EXPECT_EQ(counted(observe("api", t, x)), 1);
  EXPECT_EQ(counted(observe("api", t, x)), 0) << "the same scrape again";
  t += seconds(15);
  ServiceObservation joined = observe("api", t, x);
  joined.replicas[1].ready_at = Clock::TimePoint{} + t - seconds(10);  // within the window
  EXPECT_EQ(counted(joined), 0);
  t += seconds(15);
  ServiceObservation draining = observe("api", t, x);
  draining.replicas[1].state = ReplicaState::kDraining;
  EXPECT_EQ(counted(draining), 0);
  t += seconds(15);
  ServiceObservation dropping = observe("api", t, x);
  dropping.window.dropped_rps = 10;
  EXPECT_EQ(counted(dropping), 0);
  t += seconds(15);
  ServiceObservation saturated = observe("api", t, x);
  saturated.window.concurrency = 500;  // a backlog: no stationary queue has this occupancy
  EXPECT_EQ(counted(saturated), 0);
  t += seconds(15);
  ServiceObservation quiet = observe("api", t, {.rps = 0.5, .replicas = 2});
  EXPECT_EQ(counted(quiet), 0);
  t += seconds(15);
  ServiceObservation none_ready = observe("api", t, x);
  for (auto& r : none_ready.replicas) r.state = ReplicaState::kStarting;
  EXPECT_EQ(counted(none_ready), 0);
  t += seconds(15);
  ServiceObservation unscraped = observe("api", t, x);
  unscraped.window.length = Clock::Duration::zero();
  EXPECT_EQ(counted(unscraped), 0);
  t += seconds(15);
  EXPECT_EQ(counted(observe("api", t, x)), 1);
  EXPECT_NEAR(model.service_time_seconds("api"), 0.03, 1e-8);
}

TEST(CapacityModel, AReplicaOutOfServiceSinceBeforeTheWindowDoesNotStopLearning) {
  // A pod that crash-loops, or never passed its readiness, is draining for as long as it is
  // there: it served none of the window, so the ready replicas' window is still a steady queue.
  CapacityModel model;
  model.init({spec("api", 175.0)});
  const Scrape x{.rps = 200, .service_time = 0.03, .replicas = 2};
  auto with_draining = [&](Clock::Duration at, std::optional<Clock::Duration> since) {
    ServiceObservation o = observe("api", at, x);
    ReplicaObservation r;
    r.id = "api-crashing";
    r.state = ReplicaState::kDraining;
    if (since) r.draining_since = Clock::TimePoint{} + *since;
    o.replicas.push_back(r);
    const int before = model.samples("api");
    model.observe(snapshot_of(std::move(o)));
    return model.samples("api") - before;
  };
  const Clock::Duration t = minutes(30);
  EXPECT_EQ(with_draining(t, std::nullopt), 0) << "since when is not known: it may have served";
  EXPECT_EQ(with_draining(t + seconds(15), t), 0) << "it left within the window";
  EXPECT_EQ(with_draining(t + seconds(30), t - seconds(15)), 0)
      << "it left within the settling window before it (2 windows of 30 s)";
  EXPECT_EQ(with_draining(t + seconds(45), t - minutes(10)), 1);
  EXPECT_NEAR(model.service_time_seconds("api"), 0.03, 1e-8) << "two replicas served the window";
}

TEST(CapacityModel, InitKeepsWhatWasLearnedForListedServices) {
  CapacityModel model;
  model.init({spec("a", 175.0), spec("b", 175.0)});
  model.observe(snapshot_of(observe("a", seconds(15), {.service_time = 0.03})));
  model.init({spec("a", 175.0, 4, 0.3)});  // a's SLO changes; b is gone
  EXPECT_EQ(model.samples("a"), 1);
  EXPECT_NEAR(model.service_time_seconds("a"), 0.03, 1e-8);
  EXPECT_EQ(model.capacity_rps("b"), 0);
}

TEST(CapacityModel, InitFollowsANewNumberOfWorkersPerReplica) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  feed(model, "api", {.service_time = 0.03}, mmc_capacity_rps(4, 0.03, 0.2), seconds(15),
       minutes(10));
  const double s = model.service_time_seconds("api");
  ASSERT_NEAR(s, 0.03, 1e-6);
  ASSERT_NEAR(model.capacity_rps("api"), mmc_capacity_rps(4, s, 0.2), 1e-3);
  model.init({spec("api", 175.0, 8)});  // the same service now runs 8 workers per replica
  EXPECT_NEAR(model.capacity_rps("api"), mmc_capacity_rps(8, s, 0.2), 1e-3)
      << "still the 4-worker capacity " << mmc_capacity_rps(4, s, 0.2);
}

// A reload's new SLO: the capacity is the learned service time's at it, at once; the samples go
// on. Before any sample, a new seed is the capacity (the file's capacity_rps is at its SLO).
TEST(CapacityModel, RespecTakesANewSloAtTheLearnedServiceTime) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  model.respec(spec("api", 90.0));
  EXPECT_DOUBLE_EQ(model.capacity_rps("api"), 90.0);
  model.respec(spec("api", 175.0));
  feed(model, "api", {.service_time = 0.03}, mmc_capacity_rps(4, 0.03, 0.2), seconds(15),
       minutes(10));
  const double s = model.service_time_seconds("api");
  ASSERT_NEAR(s, 0.03, 1e-6);
  const int samples = model.samples("api");
  model.respec(spec("api", 175.0, 4, 0.1));  // a tighter SLO
  EXPECT_NEAR(model.capacity_rps("api"), mmc_capacity_rps(4, s, 0.1), 1e-3)
      << "still the 200 ms capacity " << mmc_capacity_rps(4, s, 0.2);
  EXPECT_LT(model.capacity_rps("api"), mmc_capacity_rps(4, s, 0.2));
  EXPECT_EQ(model.samples("api"), samples);
  EXPECT_NEAR(model.service_time_seconds("api"), s, 1e-12);
  model.respec(spec("ghost", 10.0));  // unknown: ignored
  EXPECT_EQ(model.capacity_rps("ghost"), 0);
}

// ---- saving and restoring (docs/state.md) ----------------------------------------------------

TEST(CapacityModel, JsonRoundTripRestoresWhatWasLearned) {
  CapacityModel model;
  model.init({spec("api", 175.0), spec("db", 50.0)});
  const auto end = feed(model, "api", {.service_time = 0.03, .replicas = 3, .p99_factor = 1.3},
                        mmc_capacity_rps(4, 0.03, 0.2), seconds(15), minutes(20));
  const Clock::TimePoint saved_at = Clock::TimePoint{} + end;
  const auto text = model.to_json(saved_at).dump();

  auto expect_same = [](const CapacityModel& a, const CapacityModel& b) {
    for (const char* s : {"api", "db"}) {
      EXPECT_EQ(a.capacity_rps(s), b.capacity_rps(s)) << s;
      EXPECT_EQ(a.service_time_seconds(s), b.service_time_seconds(s)) << s;
      EXPECT_EQ(a.samples(s), b.samples(s)) << s;
      EXPECT_EQ(a.latency_correction(s), b.latency_correction(s)) << s;
    }
  };
  CapacityModel same;
  same.init({spec("api", 175.0), spec("db", 50.0)});
  ASSERT_TRUE(same.from_json(nlohmann::json::parse(text), saved_at));
  expect_same(model, same);
  EXPECT_GT(same.samples("api"), 0);
  EXPECT_NE(same.latency_correction("api"), 1.0);

  // Restored a day later: nothing aged while down, so the same scrapes teach the same.
  CapacityModel later;
  later.init({spec("api", 175.0), spec("db", 50.0)});
  ASSERT_TRUE(later.from_json(nlohmann::json::parse(text), saved_at + std::chrono::hours(24)));
  expect_same(model, later);
  const Scrape slower{.service_time = 0.04, .replicas = 3};
  const double truth = mmc_capacity_rps(4, 0.04, 0.2);
  feed(model, "api", slower, truth, end, minutes(5));
  feed(same, "api", slower, truth, end, minutes(5));
  feed(later, "api", slower, truth, end + std::chrono::hours(24), minutes(5));
  expect_same(model, same);
  EXPECT_NEAR(later.service_time_seconds("api"), model.service_time_seconds("api"), 1e-9);
}

// What the release detection learned of a service's noise is part of what was learned: restored
// without it, the bar for a run is back at its floor (20 %), and three ordinary scrapes of a
// noisy service restart the estimate from them, which the model that saved the state would not
// have done (NoiseIsNotTakenForARelease).
TEST(CapacityModel, JsonRoundTripKeepsTheNoiseTheReleaseDetectionLearned) {
  const double truth = mmc_capacity_rps(4, 0.02, 0.2);
  CapacityModel model;
  model.init({spec("api", truth)});
  std::uint64_t state = 42;
  auto uniform = [&] {  // (0, 1)
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  };
  int i = 1;
  for (; i <= 2 * 240; ++i) {  // 2 h of 15 s scrapes, σ = 0.15
    const double normal = std::sqrt(-2 * std::log(uniform())) * std::cos(2 * M_PI * uniform());
    model.observe(snapshot_of(observe(
        "api", seconds(15 * i),
        {.rps = 0.6 * 2 * truth, .service_time = 0.02 * std::exp(0.15 * normal), .replicas = 2})));
  }
  const Clock::TimePoint saved_at = Clock::TimePoint{} + seconds(15 * (i - 1));
  CapacityModel restored;
  restored.init({spec("api", truth)});
  ASSERT_TRUE(restored.from_json(nlohmann::json::parse(model.to_json(saved_at).dump()), saved_at));
  ASSERT_EQ(restored.capacity_rps("api"), model.capacity_rps("api"));
  // Three scrapes 25 % slower than the estimate: within the noise the model has seen.
  const double slower = 1.25 * model.service_time_seconds("api");
  for (int k = 0; k < 3; ++k, ++i) {
    const Snapshot snapshot = snapshot_of(observe(
        "api", seconds(15 * i), {.rps = 0.6 * 2 * truth, .service_time = slower, .replicas = 2}));
    model.observe(snapshot);
    restored.observe(snapshot);
  }
  EXPECT_EQ(restored.capacity_rps("api"), model.capacity_rps("api"));
  EXPECT_EQ(restored.service_time_seconds("api"), model.service_time_seconds("api"));
}

TEST(CapacityModel, RestoringFollowsTheCurrentSpecs) {
  CapacityModel model;
  model.init({spec("api", 175.0), spec("gone", 10.0)});
  feed(model, "api", {.service_time = 0.03}, mmc_capacity_rps(4, 0.03, 0.2), seconds(15),
       minutes(10));
  const auto state = model.to_json(Clock::TimePoint{});
  // The SLO of api is looser now, and "gone" is no longer configured.
  CapacityModel restored;
  restored.init({spec("api", 175.0, 4, 0.3)});
  ASSERT_TRUE(restored.from_json(state, Clock::TimePoint{}));
  EXPECT_NEAR(restored.service_time_seconds("api"), 0.03, 1e-8);
  EXPECT_NEAR(restored.capacity_rps("api"), mmc_capacity_rps(4, 0.03, 0.3), 1e-3);
  EXPECT_EQ(restored.capacity_rps("gone"), 0);
}

TEST(CapacityModel, RestoringUnderANewNumberOfWorkersFollowsIt) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  feed(model, "api", {.service_time = 0.03}, mmc_capacity_rps(4, 0.03, 0.2), seconds(15),
       minutes(10));
  const auto state = model.to_json(Clock::TimePoint{});
  CapacityModel restored;
  restored.init({spec("api", 175.0, 8)});
  ASSERT_TRUE(restored.from_json(state, Clock::TimePoint{}));
  const double s = restored.service_time_seconds("api");
  EXPECT_NEAR(restored.capacity_rps("api"), mmc_capacity_rps(8, s, 0.2), 1e-3);
  // A state saved before the number of workers was kept is recomputed too.
  auto old = state;
  for (auto& svc : old["services"]) svc.erase("learned_for_servers");
  CapacityModel from_old;
  from_old.init({spec("api", 175.0, 8)});
  ASSERT_TRUE(from_old.from_json(old, Clock::TimePoint{}));
  EXPECT_NEAR(from_old.capacity_rps("api"), mmc_capacity_rps(8, s, 0.2), 1e-3);
}

TEST(CapacityModel, MalformedStateIsRefusedAndChangesNothing) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  auto r =
      model.from_json({{"services", {{{"name", "api"}, {"samples", "many"}}}}}, Clock::TimePoint{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(model.capacity_rps("api"), 175.0);
  EXPECT_EQ(model.samples("api"), 0);
}

// A state whose sums are no evidence (negative busy time or requests, a negative cached
// capacity) was accepted: the learned capacity came out 0 or negative, and the policy asked for
// max_replicas of the service at every decision. It is refused, and the model is unchanged.
TEST(CapacityModel, AStateWithSumsThatAreNoEvidenceIsRefused) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  feed(model, "api", {.service_time = 0.03}, mmc_capacity_rps(4, 0.03, 0.2), seconds(15),
       minutes(10));
  const auto state = model.to_json(Clock::TimePoint{});
  ASSERT_GT(model.capacity_rps("api"), 0);
  for (const auto& [field, bad] :
       std::vector<std::pair<std::string, double>>{{"busy_seconds", -1},
                                                   {"requests", -1},
                                                   {"learned_capacity", -5},
                                                   {"correction_weight", -1},
                                                   {"log_deviation_square", -1}}) {
    auto malformed = state;
    malformed["services"][0][field] = bad;
    CapacityModel restored;
    restored.init({spec("api", 175.0)});
    const auto r = restored.from_json(malformed, Clock::TimePoint{});
    EXPECT_FALSE(r) << field << " " << bad << ": capacity " << restored.capacity_rps("api");
    EXPECT_EQ(restored.capacity_rps("api"), 175.0) << field;
  }
}

// ---- review: inputs the model must survive ---------------------------------------------------

// docs/learning.md: a scrape "that does not describe a steady queue" is left out, and min_requests
// is an option a user may lower (to learn from quiet services). A window in which requests were
// in flight but none completed (a hung dependency) has no service time to teach; it must not
// turn the learned service time and capacity into NaN for good.
TEST(CapacityModel, AWindowWithRequestsInFlightButNoneServedDoesNotPoisonTheModel) {
  CapacityModelOptions options;
  options.min_requests = 0;
  CapacityModel model(options);
  model.init({spec("api", 175.0)});
  Clock::Duration t = feed(model, "api", {.service_time = 0.02, .replicas = 1},
                           mmc_capacity_rps(4, 0.02, 0.2), seconds(15), minutes(10));
  ASSERT_NEAR(model.service_time_seconds("api"), 0.02, 1e-8);
  ServiceObservation hung = observe("api", t, {.rps = 0, .service_time = 0.02, .replicas = 1});
  hung.window.concurrency = 3;  // three requests stuck in service, none completed
  model.observe(snapshot_of(hung));
  feed(model, "api", {.service_time = 0.02, .replicas = 1}, mmc_capacity_rps(4, 0.02, 0.2),
       t + seconds(15), minutes(30));
  EXPECT_NEAR(model.service_time_seconds("api"), 0.02, 1e-6);
  EXPECT_NEAR(model.capacity_rps("api"), mmc_capacity_rps(4, 0.02, 0.2), 1.0);
}

// As the prescale policy's history (docs/prescale_policy.md): a scrape more than 5 minutes behind
// the last one means the clock was set back, or the last one was stamped ahead. Before, every
// later scrape was ignored as already seen, and the capacity stopped learning until the clock
// reached that stamp (a year here). What was learned is kept and followed from there, the sums
// decaying from the set-back scrape on: aged by the negative year back to it, they would grow
// without bound (the service time NaN).
TEST(CapacityModel, ScrapesBehindAScrapeStampedAheadAreLearnedFrom) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  const double fast = mmc_capacity_rps(4, 0.02, 0.2);
  const double slow = mmc_capacity_rps(4, 0.03, 0.2);
  Clock::Duration t =
      feed(model, "api", {.service_time = 0.02, .replicas = 2}, fast, seconds(15), minutes(30));
  ASSERT_NEAR(model.service_time_seconds("api"), 0.02, 1e-8);
  const int samples = model.samples("api");
  model.observe(snapshot_of(observe("api", t + std::chrono::hours(24 * 365),
                                    {.rps = 200, .service_time = 0.02, .replicas = 2})));
  ASSERT_EQ(model.samples("api"), samples + 1);
  // A minute behind the last scrape is late, and ignored, as before.
  model.observe(snapshot_of(observe("api", t + std::chrono::hours(24 * 365) - minutes(1),
                                    {.rps = 200, .service_time = 0.03, .replicas = 2})));
  EXPECT_EQ(model.samples("api"), samples + 1);
  // Meanwhile a release made the service slower.
  feed(model, "api", {.service_time = 0.03, .replicas = 2}, slow, t + seconds(15), minutes(30));
  EXPECT_EQ(model.samples("api"), samples + 1 + 120);
  EXPECT_NEAR(model.service_time_seconds("api"), 0.03, 1e-4);
  EXPECT_NEAR(model.capacity_rps("api") / slow, 1.0, 0.01);
}

// The replicas' ready times are stamped on the same clock: those that became ready while it was
// a year ahead stay a year ahead of every scrape once it is set back. Each window was taken for
// one a replica had just joined, and nothing was learned for that year (docs/learning.md: after
// a set-back "the model learns from that scrape on"). They count as ready from the set-back
// scrape: the windows that follow it by settle_windows are learned from.
TEST(CapacityModel, ReplicasReadyAheadOfAClockSetBackDoNotStopLearning) {
  CapacityModel model;
  model.init({spec("api", 175.0)});
  const double fast = mmc_capacity_rps(4, 0.02, 0.2);
  Clock::Duration t =
      feed(model, "api", {.service_time = 0.02, .replicas = 2}, fast, seconds(15), minutes(30));
  const auto ahead = t + std::chrono::hours(24 * 365);
  auto scrape = [&](Clock::Duration at, double service_time) {
    ServiceObservation o =
        observe("api", at, {.rps = 200, .service_time = service_time, .replicas = 2});
    for (auto& r : o.replicas) r.ready_at = Clock::TimePoint{} + ahead - minutes(10);
    model.observe(snapshot_of(o));
  };
  scrape(ahead, 0.02);
  const int samples = model.samples("api");
  // Set back, and a release made the service slower.
  for (int i = 1; i <= 40; ++i) scrape(t + seconds(15 * i), 0.03);
  // Those within settle_windows (2 × 30 s) of the set-back scrape are not: 4 of the 40.
  EXPECT_EQ(model.samples("api"), samples + 40 - 4);
  EXPECT_NEAR(model.service_time_seconds("api"), 0.03, 1e-4);
}

// One scrape's service time, as the slowdown warnings read it: the M/M/c occupancy gives it back
// at any load below saturation; a replica working on every request at once (0) has no wait.
TEST(ScrapeServiceTimeTest, OneScrapeGivesTheServiceTimeBack) {
  for (const double rps : {20.0, 100.0, 180.0}) {
    const ServiceObservation o = observe("a", seconds(30), {.rps = rps, .replicas = 2});
    EXPECT_NEAR(scrape_service_time(o, 4), 0.02, 1e-6) << rps << " req/s";
  }
  ServiceObservation unlimited = observe("a", seconds(30), {.rps = 100, .replicas = 2});
  unlimited.window.concurrency = 100 * 0.035;
  EXPECT_NEAR(scrape_service_time(unlimited, 0), 0.035, 1e-12);
  // Without concurrency, from the CPU: the busy share of the workers.
  const ServiceObservation cpu =
      observe("a", seconds(30), {.rps = 100, .replicas = 2, .report_concurrency = false});
  EXPECT_NEAR(scrape_service_time(cpu, 4), 0.02, 1e-9);
}

TEST(ScrapeServiceTimeTest, AWindowThatCannotTellIsNaN) {
  ServiceObservation o = observe("a", seconds(30), {.rps = 100, .replicas = 2});
  o.window.served_rps = 0.5;  // 15 requests: under min_requests
  EXPECT_TRUE(std::isnan(scrape_service_time(o, 4)));
  o = observe("a", seconds(30), {.rps = 100, .replicas = 2});
  o.window.dropped_rps = 5;  // 5 % dropped: behind
  EXPECT_TRUE(std::isnan(scrape_service_time(o, 4)));
  o = observe("a", seconds(30), {.rps = 100, .replicas = 2});
  for (ReplicaObservation& r : o.replicas) r.state = ReplicaState::kStarting;
  EXPECT_TRUE(std::isnan(scrape_service_time(o, 4)));
  // Saturated: 8 workers, 7.9 busy.
  o = observe("a", seconds(30), {.rps = 395, .replicas = 2});
  EXPECT_TRUE(std::isnan(scrape_service_time(o, 4)));
}

}  // namespace
}  // namespace prescale::scaling
