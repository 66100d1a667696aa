// The topology and capacity learners against the simulator's ground truth: the graph's fan-outs
// and sim::capacity_rps(). docs/learning.md reports the figures these tests print.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scaling/callgraph.h"
#include "scaling/capacity_model.h"
#include "scaling/topology_learner.h"
#include "worlds/sim/sim_config.h"
#include "worlds/sim/sim_world.h"

namespace prescale::sim {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

constexpr Clock::Duration kScrape = seconds(15);

std::string shared_data() {
  const char* root = std::getenv("PRESCALE_SOURCE_DIR");
  return std::string(root ? root : ".") + "/../shared/data";
}

#define SKIP_WITHOUT_SHARED_DATA()                                                 \
  if (!std::filesystem::exists(shared_data() + "/callgraphs") ||                   \
      !std::filesystem::exists(shared_data() + "/traces/nasa-http-1995-07.csv")) { \
    GTEST_SKIP() << "skipped: ../shared/data (call graphs, NASA trace) missing";   \
  }

scaling::CallGraph topology(const std::string& name) {
  auto graph = scaling::builtin_topology(name, shared_data());
  EXPECT_TRUE(graph) << graph.error().to_string();
  return graph ? *graph : scaling::CallGraph{};
}

// Per second, swinging between `low` and `high` req/s with a 20-minute period.
forecast::Trace swinging(double low, double high, int seconds_long) {
  forecast::Trace t;
  t.name = "swing";
  t.step_seconds = 1;
  for (int i = 0; i < seconds_long; ++i) {
    const double phase = 2 * M_PI * i / 1200.0;
    t.counts.push_back(0.5 * (high + low) - 0.5 * (high - low) * std::cos(phase));
  }
  return t;
}

// The first hour of NASA July 1995 (per minute), rescaled to a peak of `peak_rps`.
forecast::Trace nasa_hour(double peak_rps) {
  auto trace = forecast::read_trace(shared_data() + "/traces/nasa-http-1995-07.csv");
  EXPECT_TRUE(trace) << trace.error().to_string();
  if (!trace) return {};
  const auto steps = static_cast<size_t>(std::lround(3600 / trace->step_seconds));
  trace->counts.resize(std::min(trace->counts.size(), steps));
  return forecast::rescale_to_peak(*trace, peak_rps);
}

// A world whose every service has fixed replicas: enough that its peak load is at most
// `peak_share` of what they sustain at the SLO. `service_times` overrides
// service times by name.
SimConfig fixed_world(scaling::CallGraph graph, double entry_peak_rps, double peak_share,
                      const std::map<std::string, double>& service_times = {},
                      Clock::TimePoint start = {}) {
  SimConfig config;
  config.graph = std::move(graph);
  config.start = start;
  for (const auto& name : config.graph.services) {
    SimServiceConfig s = config.service_defaults;
    s.name = name;
    if (auto it = service_times.find(name); it != service_times.end()) {
      s.mean_service_time_seconds = it->second;
    }
    config.services.push_back(s);
  }
  const auto load = config.graph.service_load(entry_peak_rps);
  for (size_t i = 0; i < config.services.size(); ++i) {
    SimServiceConfig& s = config.services[i];
    const double cap = *capacity_rps(s);
    // (A hair below 1 so that a peak of exactly n replicas' worth needs n, not n + 1.)
    const int n = std::max(1, static_cast<int>(std::ceil(load[i] / (peak_share * cap) - 1e-9)));
    s.min_replicas = s.initial_replicas = n;
    s.max_replicas = std::max(n, s.max_replicas);
  }
  return config;
}

std::unique_ptr<SimWorld> make(SimConfig config, forecast::Trace trace) {
  auto w = SimWorld::create(std::move(config), std::move(trace));
  EXPECT_TRUE(w) << w.error().to_string();
  return w ? std::move(*w) : nullptr;
}

// Observes the world every 15 s up to its trace's end; `visit` sees each snapshot.
template <typename Visit>
void run(SimWorld& world, Clock::TimePoint start, Visit visit) {
  for (Clock::TimePoint t = start + kScrape; t <= world.trace_end(); t += kScrape) {
    visit(world.observe(t), t);
  }
}

// ---- what the learners read -----------------------------------------------------------------

// served_total is the scrape's cumulative count of completed requests: what the ground truth
// records, including under overload (served < arrived), and fixed between scrapes.
TEST(SimServedTotal, CountsCompletedRequestsAsOfTheLatestScrape) {
  SimConfig c;
  c.graph = *scaling::make_callgraph({{"a", "b", 2.0, 0}});
  c.record_interval = seconds(1);
  forecast::Trace t;
  t.step_seconds = 1;
  t.counts.assign(120, 300);  // one replica of a serves at most 200 req/s
  c.service_defaults.initial_replicas = 1;
  c.services = {{.name = "b", .initial_replicas = 4}};
  auto w = make(c, t);
  ASSERT_TRUE(w);
  const scaling::Snapshot at_60 = w->observe(Clock::TimePoint{} + seconds(60));
  const scaling::Snapshot at_70 = w->observe(Clock::TimePoint{} + seconds(70));
  for (size_t s = 0; s < 2; ++s) {
    double served = 0;
    for (size_t k = 0; k < 60; ++k) served += w->recorder().records(s)[k].served;
    EXPECT_NEAR(at_60.services[s].window.served_total, served, 1e-6 * served) << s;
    EXPECT_EQ(at_70.services[s].window.served_total, at_60.services[s].window.served_total);
  }
  EXPECT_LT(at_60.services[0].window.served_total, 300 * 60);
  EXPECT_NEAR(at_60.edges[0].calls_total, 2 * at_60.services[0].window.served_total, 1e-6);
}

// ---- TopologyLearner ------------------------------------------------------------------------

// "online-boutique" -> "online_boutique": test names allow only letters, digits and '_'.
std::string param_name(const ::testing::TestParamInfo<const char*>& param) {
  std::string name = param.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

class LearnedFanouts : public ::testing::TestWithParam<const char*> {};

TEST_P(LearnedFanouts, WithinFivePercentOfTheGraphAfterAnHour) {
  SKIP_WITHOUT_SHARED_DATA();
  const scaling::CallGraph truth = topology(GetParam());
  ASSERT_FALSE(truth.edges.empty());
  auto world = make(fixed_world(truth, 300, 0.6), nasa_hour(300));
  ASSERT_TRUE(world);
  scaling::TopologyLearner learner;
  scaling::Snapshot last;
  run(*world, {}, [&](const scaling::Snapshot& snap, Clock::TimePoint) {
    learner.observe(snap);
    last = snap;
  });

  // Served requests per caller over the hour: too few and a fan-out is not measurable.
  constexpr double kMinCallerRequests = 100;
  int checked = 0, skipped = 0;
  double worst = 0;
  for (const auto& e : truth.edges) {
    const scaling::ServiceObservation* caller = last.service(e.caller);
    ASSERT_NE(caller, nullptr) << e.caller;
    if (caller->window.served_total < kMinCallerRequests) {
      std::printf("[topology] %s: skipped %s -> %s, its caller served %.0f requests\n", GetParam(),
                  e.caller.c_str(), e.callee.c_str(), caller->window.served_total);
      ++skipped;
      continue;
    }
    const double learned = learner.fanout(e.caller, e.callee);
    const double error = std::abs(learned / e.fanout - 1);
    worst = std::max(worst, error);
    ++checked;
    EXPECT_LE(error, 0.05) << e.caller << " -> " << e.callee << ": learned " << learned
                           << ", truth " << e.fanout;
  }
  // Nothing learned that the graph does not have.
  for (const auto& e : learner.edges()) {
    EXPECT_TRUE(std::any_of(
        truth.edges.begin(), truth.edges.end(),
        [&](const scaling::CallEdge& t) { return t.caller == e.caller && t.callee == e.callee; }))
        << e.caller << " -> " << e.callee;
  }
  auto graph = learner.graph();
  ASSERT_TRUE(graph) << graph.error().to_string();
  EXPECT_EQ(graph->services.size(), truth.services.size());
  EXPECT_EQ(graph->entries, truth.entries);
  std::printf("[topology] %s: %d edges within %.2g %% of the truth (worst), %d skipped\n",
              GetParam(), checked, 100 * worst, skipped);
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Topologies, LearnedFanouts,
                         ::testing::Values("online-boutique", "train-ticket"), param_name);

// ---- CapacityModel --------------------------------------------------------------------------

// The policies' view with a deliberately wrong seed, so the learning shows.
std::vector<scaling::ServiceSpec> seeded_specs(const SimWorld& world, double seed_rps) {
  std::vector<scaling::ServiceSpec> specs = world.specs();
  for (auto& s : specs) s.capacity_rps = seed_rps;
  return specs;
}

// The entry rate at which the busiest service (per entry request) runs at `share` of its
// capacity per replica, with `replicas_of_busiest` replicas.
double entry_peak_for(const scaling::CallGraph& graph, double capacity, double share,
                      int replicas_of_busiest) {
  const auto per_entry = graph.service_load(1.0);
  const double busiest = *std::max_element(per_entry.begin(), per_entry.end());
  return share * capacity * replicas_of_busiest / busiest;
}

class LearnedCapacity : public ::testing::TestWithParam<const char*> {};

TEST_P(LearnedCapacity, WithinTenPercentAfterAnHourAtTwentyToNinetyPercent) {
  const std::string name = GetParam();
  if (name != "single") {
    SKIP_WITHOUT_SHARED_DATA();
  }
  const scaling::CallGraph graph = topology(name);
  ASSERT_FALSE(graph.services.empty());
  const double cap = *capacity_rps(SimServiceConfig{});  // the defaults: 20 ms, 4 workers, 0.2 s
  const double peak = entry_peak_for(graph, cap, 0.9, 3);
  auto world = make(fixed_world(graph, peak, 0.9), swinging(peak * 0.2 / 0.9, peak, 3600));
  ASSERT_TRUE(world);
  scaling::CapacityModel model;
  model.init(seeded_specs(*world, 100));
  run(*world, {}, [&](const scaling::Snapshot& snap, Clock::TimePoint) { model.observe(snap); });

  int checked = 0;
  double worst = 0;
  for (const auto& s : world->services()) {
    const double truth = *capacity_rps(s);
    const int samples = model.samples(s.name);
    const double learned = model.capacity_rps(s.name);
    const double error = std::abs(learned / truth - 1);
    // A service that served enough traffic: learned from at least half of the hour's scrapes.
    if (samples < 120) {
      std::printf("[capacity] %s: skipped %s, %d samples\n", name.c_str(), s.name.c_str(), samples);
      continue;
    }
    ++checked;
    worst = std::max(worst, error);
    EXPECT_LE(error, 0.10) << s.name << ": learned " << learned << " req/s, truth " << truth
                           << ", service time " << model.service_time_seconds(s.name);
  }
  std::printf("[capacity] %s: %d services within %.2g %% of sim::capacity_rps (worst)\n",
              name.c_str(), checked, 100 * worst);
  EXPECT_GT(checked, 0);
}

// Replicas that come and go (windows in which one joins or drains are skipped, and the queue
// relaxes after each change) and a real demand curve with minute steps: six hours of NASA July
// on Online Boutique, scaled every 15 s to the window's arrivals at 95 % of capacity.
// With and without admission control: behind a queue limit an overload's latency is capped
// and the excess refused, which must not read as a faster replica. The rule sizes replicas at
// 95 % of the capacity (a few overloaded scrapes) and, behind the limit, at 110 % (many).
class LearnedCapacityUnderAutoscaling : public ::testing::TestWithParam<double> {};

TEST_P(LearnedCapacityUnderAutoscaling, WithinTenPercentOnNasa) {
  SKIP_WITHOUT_SHARED_DATA();
  const double queue_limit = GetParam();
  const double sizing = queue_limit > 0 ? 1.1 : 0.95;
  const scaling::CallGraph graph = topology("online-boutique");
  auto trace = forecast::read_trace(shared_data() + "/traces/nasa-http-1995-07.csv");
  ASSERT_TRUE(trace);
  trace->counts = std::vector<double>(trace->counts.begin() + 600, trace->counts.begin() + 960);
  SimConfig config;
  config.graph = graph;
  config.service_defaults.startup_time = seconds(30);
  config.service_defaults.queue_limit_seconds = queue_limit;
  auto world = make(config, forecast::rescale_to_peak(*trace, 300));
  ASSERT_TRUE(world);
  const double cap = *capacity_rps(SimServiceConfig{});
  scaling::CapacityModel model;
  model.init(seeded_specs(*world, 100));
  int scale_actions = 0;
  run(*world, {}, [&](const scaling::Snapshot& snap, Clock::TimePoint) {
    model.observe(snap);
    for (const auto& o : snap.services) {
      const int n =
          std::clamp(static_cast<int>(std::ceil(o.window.arrival_rps / (sizing * cap))), 1, 100);
      if (n != o.desired_replicas && world->scale(o.name, n)) ++scale_actions;
    }
  });
  double worst = 0;
  int checked = 0;
  for (const auto& s : world->services()) {
    if (model.samples(s.name) < 720) continue;  // half of the six hours' scrapes
    const double error = std::abs(model.capacity_rps(s.name) / cap - 1);
    worst = std::max(worst, error);
    ++checked;
    EXPECT_LE(error, 0.10) << s.name << ": " << model.capacity_rps(s.name) << " req/s, latency "
                           << "correction " << model.latency_correction(s.name);
  }
  std::printf(
      "[capacity] online-boutique, NASA 6 h, queue limit %.0f ms, %d scale actions: %d services "
      "within %.2g %% (worst)\n",
      1000 * queue_limit, scale_actions, checked, 100 * worst);
  EXPECT_EQ(checked, static_cast<int>(graph.services.size()));
}

INSTANTIATE_TEST_SUITE_P(QueueLimit, LearnedCapacityUnderAutoscaling, ::testing::Values(0.0, 0.15));

// A release makes one service twice as slow. SimWorld cannot change a service time while it
// runs, so the hour before and the half hour after are two worlds (the second starting where the
// first ended, its replicas resized for the new capacity), both observed by the same model.
TEST_P(LearnedCapacity, FollowsASlowerReleaseWithinTwoMinutes) {
  const std::string name = GetParam();
  if (name != "single") {
    SKIP_WITHOUT_SHARED_DATA();
  }
  const scaling::CallGraph graph = topology(name);
  ASSERT_FALSE(graph.services.empty());
  // The busiest service slows from 10 ms to 20 ms (20 → 40 ms would leave an idle replica at
  // 0.18 s of its 0.2 s SLO, where capacity is a sliver that no estimate pins within 10 %).
  const auto per_entry = graph.service_load(1.0);
  const std::string& slowed = graph.services[static_cast<size_t>(
      std::max_element(per_entry.begin(), per_entry.end()) - per_entry.begin())];
  SimServiceConfig before, after;
  before.mean_service_time_seconds = 0.01;
  after.mean_service_time_seconds = 0.02;
  const double cap_before = *capacity_rps(before), cap_after = *capacity_rps(after);
  const double peak = entry_peak_for(graph, cap_before, 0.9, 3);
  const forecast::Trace hour = swinging(peak * 0.2 / 0.9, peak, 3600);

  scaling::CapacityModel model;
  auto first = make(fixed_world(graph, peak, 0.9, {{slowed, 0.01}}), hour);
  ASSERT_TRUE(first);
  model.init(seeded_specs(*first, 100));
  run(*first, {}, [&](const scaling::Snapshot& snap, Clock::TimePoint) { model.observe(snap); });
  const double error_before = std::abs(model.capacity_rps(slowed) / cap_before - 1);
  EXPECT_LE(error_before, 0.10) << model.capacity_rps(slowed) << " vs " << cap_before;

  const Clock::TimePoint release = first->trace_end();
  auto second = make(fixed_world(graph, peak, 0.9, {{slowed, 0.02}}, release),
                     swinging(peak * 0.2 / 0.9, peak, 1800));
  ASSERT_TRUE(second);
  std::optional<Clock::Duration> settled;  // since when within 10 % for good
  run(*second, release, [&](const scaling::Snapshot& snap, Clock::TimePoint t) {
    model.observe(snap);
    const bool close = std::abs(model.capacity_rps(slowed) / cap_after - 1) <= 0.10;
    if (close && !settled) settled = t - release;
    if (!close) settled.reset();
  });
  ASSERT_TRUE(settled) << "never within 10 % of " << cap_after << ": "
                       << model.capacity_rps(slowed);
  const double minutes_taken = std::chrono::duration<double>(*settled).count() / 60;
  std::printf(
      "[capacity] %s: %s 10 -> 20 ms (capacity %.1f -> %.1f req/s): before %.2g %% off; within "
      "10 %% after %.2f min, %.2g %% off after 30 min\n",
      name.c_str(), slowed.c_str(), cap_before, cap_after, 100 * error_before, minutes_taken,
      100 * std::abs(model.capacity_rps(slowed) / cap_after - 1));
  EXPECT_LE(*settled, minutes(2));  // three scrapes off the estimate restart it (shift_scrapes)
}

INSTANTIATE_TEST_SUITE_P(Topologies, LearnedCapacity,
                         ::testing::Values("single", "online-boutique"), param_name);

}  // namespace
}  // namespace prescale::sim
