#include "scaling/topology_learner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace prescale::scaling {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr auto kScrape = seconds(15);

// Builds the snapshots a Prometheus scrape every 15 s would give: cumulative counters per
// service (served_total) and per edge (calls_total), which a test moves as it likes.
class Counters {
 public:
  void serve(const std::string& service, double requests) { served_[service] += requests; }
  void call(const std::string& caller, const std::string& callee, double calls) {
    calls_[{caller, callee}] += calls;
  }
  void reset_service(const std::string& service) { served_[service] = 0; }
  void reset_edge(const std::string& caller, const std::string& callee) {
    calls_[{caller, callee}] = 0;
  }
  void remove_service(const std::string& service) { served_.erase(service); }
  void remove_edge(const std::string& caller, const std::string& callee) {
    calls_.erase({caller, callee});
  }

  // The scrape at `t` (seconds since the start); `rates` gives served_rps per service.
  Snapshot scrape(Clock::Duration t) const {
    Snapshot snap;
    snap.time = Clock::TimePoint{} + t;
    for (const auto& [name, total] : served_) {
      ServiceObservation o;
      o.name = name;
      o.window.sampled_at = snap.time;
      o.window.length = seconds(30);
      o.window.served_total = total;
      auto rate = last_rate_.find(name);
      o.window.served_rps = rate == last_rate_.end() ? 0 : rate->second;
      snap.services.push_back(std::move(o));
    }
    for (const auto& [key, total] : calls_) {
      snap.edges.push_back({key.first, key.second, total});
    }
    return snap;
  }
  void set_rate(const std::string& service, double rps) { last_rate_[service] = rps; }

 private:
  std::map<std::string, double> served_;
  std::map<std::pair<std::string, std::string>, double> calls_;
  std::map<std::string, double> last_rate_;
};

struct TrueEdge {
  std::string caller, callee;
  double fanout;
};

// Serves `rps` at the entry for one scrape interval; each edge's calls are Poisson with mean
// served(caller) × fanout, and a callee serves the calls it received (Poisson too).
void serve_interval(Counters& counters, std::mt19937_64& rng, const std::string& entry,
                    const std::vector<TrueEdge>& edges, double rps) {
  std::map<std::string, double> served;
  auto poisson = [&rng](double mean) {
    return mean > 0 ? static_cast<double>(std::poisson_distribution<long long>(mean)(rng)) : 0.0;
  };
  served[entry] = poisson(rps * 15);
  // `edges` are listed callers first, so a caller's requests are complete when it calls.
  for (const auto& e : edges) {
    const double calls = poisson(served[e.caller] * e.fanout);
    counters.call(e.caller, e.callee, calls);
    served[e.callee] += calls;
  }
  for (const auto& [name, n] : served) {
    counters.serve(name, n);
    counters.set_rate(name, n / 15);
  }
}

double relative_error(double learned, double truth) { return std::abs(learned / truth - 1); }

// ---------------------------------------------------------------------------------------------

TEST(TopologyLearner, ConvergesWithinTwoPercentOnPoissonCounters) {
  const std::vector<TrueEdge> truth = {
      {"frontend", "cart", 2.5}, {"frontend", "catalog", 4.0}, {"frontend", "ads", 0.4},
      {"cart", "redis", 1.2},    {"catalog", "redis", 0.05},
  };
  std::mt19937_64 rng(42);
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  for (int i = 0; i <= 240; ++i, t += kScrape) {  // one hour; the load swings 40..160 req/s
    const double rps = 100 + 60 * std::sin(2 * M_PI * i / 120.0);
    serve_interval(counters, rng, "frontend", truth, i == 0 ? 0 : rps);  // 0: the baseline
    learner.observe(counters.scrape(t));
  }
  const auto learned = learner.learned_edges();
  ASSERT_EQ(learned.size(), truth.size());
  double worst = 0;
  for (const auto& e : truth) {
    const double f = learner.fanout(e.caller, e.callee);
    worst = std::max(worst, relative_error(f, e.fanout));
    EXPECT_LT(relative_error(f, e.fanout), 0.02) << e.caller << " -> " << e.callee << ": " << f;
  }
  std::printf("[topology] Poisson counters, 1 h: worst fan-out error %.2f %%\n", 100 * worst);
  for (const auto& e : learned) {
    EXPECT_EQ(e.intervals, 240) << e.edge.caller << " -> " << e.edge.callee;
    EXPECT_GT(e.caller_requests, 0);
    EXPECT_NEAR(e.edge.fanout, e.calls / e.caller_requests, 1e-12);
    EXPECT_FALSE(e.seeded);
    ASSERT_TRUE(e.last_call);
  }
  EXPECT_THAT(learner.services(), ElementsAre("ads", "cart", "catalog", "frontend", "redis"));
  EXPECT_EQ(learner.fanout("frontend", "nobody"), 0);
}

TEST(TopologyLearner, SnapshotWithoutANewScrapeChangesNothing) {
  Counters counters;
  TopologyLearner learner;
  counters.serve("a", 0);
  counters.call("a", "b", 0);
  learner.observe(counters.scrape(seconds(15)));
  counters.serve("a", 100);
  counters.call("a", "b", 300);
  const Snapshot snap = counters.scrape(seconds(30));
  learner.observe(snap);
  learner.observe(snap);
  learner.observe(counters.scrape(seconds(20)));  // older than the last scrape
  ASSERT_EQ(learner.learned_edges().size(), 1u);
  EXPECT_EQ(learner.learned_edges()[0].intervals, 1);
  EXPECT_NEAR(learner.fanout("a", "b"), 3.0, 1e-12);
  // No service has a window yet: nothing to learn from.
  Snapshot empty = snap;
  for (auto& s : empty.services) s.window.length = Clock::Duration::zero();
  empty.services[0].window.sampled_at += minutes(5);
  learner.observe(empty);
  EXPECT_EQ(learner.learned_edges()[0].intervals, 1);
}

TEST(TopologyLearner, CounterResetsRestartFromZero) {
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  auto step = [&](double served, double calls) {
    counters.serve("a", served);
    counters.set_rate("a", served / 15);
    counters.call("a", "b", calls);
    t += kScrape;
    learner.observe(counters.scrape(t));
  };
  step(0, 0);
  for (int i = 0; i < 20; ++i) step(1500, 3000);
  EXPECT_NEAR(learner.fanout("a", "b"), 2.0, 1e-12);

  // Both counters restart (the service restarted): the new values are the interval's counts.
  counters.reset_service("a");
  counters.reset_edge("a", "b");
  step(1500, 3000);
  EXPECT_NEAR(learner.fanout("a", "b"), 2.0, 1e-12);
  EXPECT_EQ(learner.learned_edges()[0].intervals, 21);

  // Only the edge counter restarts: the two no longer cover the same interval, so it is skipped.
  counters.reset_edge("a", "b");
  step(1500, 900);
  EXPECT_NEAR(learner.fanout("a", "b"), 2.0, 1e-12);
  EXPECT_EQ(learner.learned_edges()[0].intervals, 21);
  step(1500, 3000);  // the next interval pairs again
  EXPECT_EQ(learner.learned_edges()[0].intervals, 22);
}

TEST(TopologyLearner, AResetOfSummedCountersWeighsOneInterval) {
  // a's counters are sums over its replicas, which have been up a long time.
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  counters.serve("a", 3e6);
  counters.call("a", "b", 6e6);
  learner.observe(counters.scrape(t));
  for (int i = 0; i < 20; ++i) {
    counters.serve("a", 1500);
    counters.set_rate("a", 100);
    counters.call("a", "b", 3000);
    t += kScrape;
    learner.observe(counters.scrape(t));
  }
  EXPECT_NEAR(learner.fanout("a", "b"), 2.0, 1e-12);
  // One replica restarts: both sums fall, and what is left is the other replicas' history (at
  // the fan-out of an old release). As a "delta" it would swamp the estimate (≈ 1.01); it
  // weighs one interval's requests (100 req/s × 15 s) instead.
  t += kScrape;
  Snapshot snap = counters.scrape(t);
  snap.services[0].window.served_total = 2e6;
  snap.edges[0].calls_total = 2e6;
  learner.observe(snap);
  EXPECT_LT(learner.fanout("a", "b"), 2.0);
  EXPECT_GT(learner.fanout("a", "b"), 1.9);
}

TEST(TopologyLearner, EdgesAppearAndVanish) {
  TopologyLearnerOptions options;
  options.edge_expiry = minutes(10);
  Counters counters;
  TopologyLearner learner(options);
  Clock::Duration t{0};
  bool calls_c = true;
  bool calls_d = false;
  auto step = [&] {
    counters.serve("a", 1500);
    counters.set_rate("a", 100);
    counters.call("a", "b", 1500);
    if (calls_c) counters.call("a", "c", 750);
    if (calls_d) counters.call("a", "d", 300);
    t += kScrape;
    learner.observe(counters.scrape(t));
  };
  counters.serve("a", 0);
  counters.call("a", "b", 0);
  counters.call("a", "c", 0);
  learner.observe(counters.scrape(t));
  for (int i = 0; i < 40; ++i) step();  // 10 min
  EXPECT_NEAR(learner.fanout("a", "c"), 0.5, 1e-12);

  // A new edge: its series appears with the calls made since the previous scrape.
  calls_d = true;
  step();
  EXPECT_NEAR(learner.fanout("a", "d"), 0.2, 1e-12);
  EXPECT_EQ(learner.learned_edges().size(), 3u);

  // a stops calling c: the counter stays flat, the fan-out decays and the edge goes 10 min
  // after the last call (a keeps serving, so the silence is evidence).
  calls_c = false;
  const Clock::Duration last_call = t;
  double previous = learner.fanout("a", "c");
  while (t < last_call + minutes(10) - kScrape) {
    step();
    const double f = learner.fanout("a", "c");
    ASSERT_LT(f, previous);
    previous = f;
  }
  EXPECT_GT(previous, 0);
  EXPECT_LT(previous, 0.5 * 0.5) << "10 min of silence is a half-life: below half";
  EXPECT_EQ(learner.learned_edges().size(), 3u);
  step();
  EXPECT_EQ(learner.fanout("a", "c"), 0);
  EXPECT_EQ(learner.learned_edges().size(), 2u);
  // Its series is still scraped, flat: it stays gone.
  for (int i = 0; i < 4; ++i) step();
  EXPECT_EQ(learner.fanout("a", "c"), 0);
  EXPECT_EQ(learner.learned_edges().size(), 2u);

  // An edge whose series disappears from the scrape made no calls either.
  calls_d = false;
  counters.remove_edge("a", "d");
  for (int i = 0; i < 39; ++i) step();
  EXPECT_GT(learner.fanout("a", "d"), 0);
  step();
  EXPECT_EQ(learner.fanout("a", "d"), 0);
  // ...and if it comes back later, it is learned afresh from its new series.
  calls_d = true;
  step();
  EXPECT_NEAR(learner.fanout("a", "d"), 0.2, 1e-12);
}

TEST(TopologyLearner, AnIdleCallerKeepsItsEdges) {
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  counters.serve("a", 0);
  counters.call("a", "b", 0);
  learner.observe(counters.scrape(t));
  for (int i = 0; i < 8; ++i) {
    counters.serve("a", 150);
    counters.call("a", "b", 450);
    t += kScrape;
    learner.observe(counters.scrape(t));
  }
  // An hour in which a serves nothing: no calls expected, so none missing.
  for (int i = 0; i < 240; ++i) {
    t += kScrape;
    learner.observe(counters.scrape(t));
  }
  EXPECT_NEAR(learner.fanout("a", "b"), 3.0, 1e-12);
}

TEST(TopologyLearner, ServicesAppearAndVanish) {
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  auto step = [&](bool with_c) {
    counters.serve("a", 1500);
    counters.call("a", "b", 1500);
    counters.serve("b", 1500);
    if (with_c) {
      counters.call("b", "c", 300);
      counters.serve("c", 300);
    }
    t += kScrape;
    learner.observe(counters.scrape(t));
  };
  counters.serve("a", 0);
  counters.serve("b", 0);
  counters.call("a", "b", 0);
  learner.observe(counters.scrape(t));
  step(false);
  EXPECT_THAT(learner.services(), ElementsAre("a", "b"));
  // c is deployed: its first scrape is a baseline; b's new edge to it counts from the start.
  counters.serve("c", 0);
  step(true);
  EXPECT_THAT(learner.services(), ElementsAre("a", "b", "c"));
  EXPECT_NEAR(learner.fanout("b", "c"), 0.2, 1e-12);
  for (int i = 0; i < 4; ++i) step(true);

  // c is removed: it and its edges disappear from the scrapes, and are forgotten 10 min later.
  counters.remove_service("c");
  counters.remove_edge("b", "c");
  const Clock::Duration gone = t;
  while (t < gone + minutes(10) - kScrape) step(false);
  EXPECT_THAT(learner.services(), ElementsAre("a", "b", "c"));
  step(false);
  EXPECT_THAT(learner.services(), ElementsAre("a", "b"));
  EXPECT_EQ(learner.fanout("b", "c"), 0);
  auto graph = learner.graph();
  ASSERT_TRUE(graph) << graph.error().to_string();
  EXPECT_THAT(graph->services, ElementsAre("a", "b"));
}

TEST(TopologyLearner, SeedGivesTheStartAndDataTakesOver) {
  auto seed = make_callgraph({{"a", "b", 1.0, 3.5}, {"a", "x", 0.3, 0}}, {"lonely"});
  ASSERT_TRUE(seed);
  TopologyLearner learner({}, *seed);
  EXPECT_NEAR(learner.fanout("a", "b"), 1.0, 1e-12);
  EXPECT_NEAR(learner.fanout("a", "x"), 0.3, 1e-12);
  EXPECT_THAT(learner.services(), ElementsAre("a", "b", "lonely", "x"));
  ASSERT_EQ(learner.learned_edges().size(), 2u);
  EXPECT_TRUE(learner.learned_edges()[0].seeded);
  EXPECT_EQ(learner.learned_edges()[0].edge.mean_callee_span_ms, 3.5);

  Counters counters;
  Clock::Duration t{0};
  counters.serve("a", 0);
  counters.call("a", "b", 0);
  learner.observe(counters.scrape(t));
  for (int i = 0; i < 4; ++i) {  // one minute at fan-out 2: 6000 requests outweigh the seed's 100
    counters.serve("a", 1500);
    counters.call("a", "b", 3000);
    t += kScrape;
    learner.observe(counters.scrape(t));
  }
  EXPECT_NEAR(learner.fanout("a", "b"), 2.0, 0.02);
  EXPECT_GT(learner.fanout("a", "b"), 1.98);
  // The seeded a -> x never shows calls while a serves: it expires like a vanished edge.
  EXPECT_GT(learner.fanout("a", "x"), 0);
  while (t < minutes(10)) {
    counters.serve("a", 1500);
    counters.call("a", "b", 3000);
    t += kScrape;
    learner.observe(counters.scrape(t));
  }
  EXPECT_EQ(learner.fanout("a", "x"), 0);
  // Seeded services never observed stay: nothing says they are gone.
  EXPECT_THAT(learner.services(), ElementsAre("a", "b", "lonely", "x"));
}

TEST(TopologyLearner, CallsWithoutServedRequestsTeachNoFanout) {
  // A world that exports calls_total but not served_total: nothing to divide by.
  auto seed = make_callgraph({{"a", "b", 1.5, 0}});
  ASSERT_TRUE(seed);
  TopologyLearner learner({}, *seed);
  Counters counters;
  Clock::Duration t{0};
  counters.serve("a", 0);
  for (int i = 0; i <= 80; ++i, t += kScrape) {  // 20 min
    counters.call("a", "b", i == 0 ? 0 : 3000);
    counters.call("a", "c", i == 0 ? 0 : 300);
    learner.observe(counters.scrape(t));
  }
  EXPECT_NEAR(learner.fanout("a", "b"), 1.5, 1e-12);  // the seed stands, and does not expire
  ASSERT_EQ(learner.learned_edges().size(), 2u);
  EXPECT_EQ(learner.learned_edges()[1].edge.callee, "c");
  EXPECT_EQ(learner.learned_edges()[1].edge.fanout, 0);  // known to exist, ratio unknown
  EXPECT_EQ(learner.learned_edges()[1].intervals, 0);
}

TEST(TopologyLearner, GraphBreaksCyclesAtTheWeakestEdgeDeterministically) {
  auto learn = [](bool reversed) {
    Counters counters;
    TopologyLearner learner;
    // a -> b -> c -> a, where c -> a carries few calls; and d -> e <-> d with a tie.
    const std::vector<TrueEdge> edges = {
        {"a", "b", 2}, {"b", "c", 1}, {"c", "a", 0.01}, {"d", "e", 1}, {"e", "d", 1}};
    Clock::Duration t{0};
    for (int i = 0; i < 10; ++i) {
      for (size_t k = 0; k < edges.size(); ++k) {
        const TrueEdge& e = edges[reversed ? edges.size() - 1 - k : k];
        counters.serve(e.caller, i == 0 ? 0 : 1000);
        counters.call(e.caller, e.callee, i == 0 ? 0 : 1000 * e.fanout);
      }
      learner.observe(counters.scrape(t));
      t += kScrape;
    }
    return learner.graph();
  };
  auto graph = learn(false);
  ASSERT_TRUE(graph) << graph.error().to_string();
  std::vector<std::string> edges;
  for (const auto& e : graph->edges) edges.push_back(e.caller + ">" + e.callee);
  // The tie between d -> e and e -> d goes to the first edge of the cycle in name order.
  EXPECT_THAT(edges, ElementsAre("a>b", "e>d", "b>c"));
  EXPECT_THAT(graph->entries, ElementsAre("a", "e"));
  ASSERT_EQ(graph->warnings.size(), 2u);
  EXPECT_THAT(graph->warnings[0], HasSubstr("dropped c -> a"));
  EXPECT_THAT(graph->warnings[0], HasSubstr("a -> b -> c -> a"));
  EXPECT_THAT(graph->warnings[1], HasSubstr("dropped d -> e"));

  auto again = learn(true);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->services, graph->services);
  EXPECT_EQ(again->warnings, graph->warnings);
  // The learned graph propagates load like any other.
  const auto load = graph->service_load(10);
  EXPECT_NEAR(load[static_cast<size_t>(graph->index_of("c"))], 20, 1e-9);
}

TEST(TopologyLearner, GraphNeedsAService) {
  TopologyLearner learner;
  auto graph = learner.graph();
  ASSERT_FALSE(graph);
  EXPECT_EQ(graph.error().code, ErrorCode::kNotFound);
}

// ---- saving and restoring (docs/state.md) ----------------------------------------------------

void expect_same_edges(const TopologyLearner& a, const TopologyLearner& b) {
  const auto x = a.learned_edges(), y = b.learned_edges();
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].edge.caller, y[i].edge.caller);
    EXPECT_EQ(x[i].edge.callee, y[i].edge.callee);
    EXPECT_EQ(x[i].edge.fanout, y[i].edge.fanout) << x[i].edge.caller << " -> " << x[i].edge.callee;
    EXPECT_EQ(x[i].edge.mean_callee_span_ms, y[i].edge.mean_callee_span_ms);
    EXPECT_EQ(x[i].caller_requests, y[i].caller_requests);
    EXPECT_EQ(x[i].calls, y[i].calls);
    EXPECT_EQ(x[i].intervals, y[i].intervals);
    EXPECT_EQ(x[i].seeded, y[i].seeded);
    EXPECT_EQ(x[i].last_call.has_value(), y[i].last_call.has_value());
  }
  EXPECT_EQ(a.services(), b.services());
}

TEST(TopologyLearner, JsonRoundTripRestoresTheLearnedGraph) {
  const std::vector<TrueEdge> truth = {
      {"frontend", "cart", 2.5}, {"frontend", "catalog", 4.0}, {"cart", "redis", 1.2}};
  auto seed = make_callgraph({{"frontend", "cart", 2.0, 3.5}}, {});
  ASSERT_TRUE(seed);
  std::mt19937_64 rng(1);
  Counters counters;
  TopologyLearner learner({}, *seed);
  Clock::Duration t{0};
  for (int i = 0; i <= 120; ++i, t += kScrape) {
    serve_interval(counters, rng, "frontend", truth, i == 0 ? 0 : 100);
    learner.observe(counters.scrape(t));
  }
  const Clock::TimePoint saved_at = Clock::TimePoint{} + t;
  // Through text, as the store keeps it: doubles survive exactly.
  const auto text = learner.to_json(saved_at).dump();

  // Restored at the same time: the same state, and the same learning from then on.
  TopologyLearner same({}, *seed);
  ASSERT_TRUE(same.from_json(nlohmann::json::parse(text), saved_at));
  expect_same_edges(learner, same);
  // Restored an hour later (the platform was down): evidence has not aged, so the next scrape
  // teaches what it would have taught right away.
  TopologyLearner later({}, *seed);
  ASSERT_TRUE(later.from_json(nlohmann::json::parse(text), saved_at + std::chrono::hours(1)));
  expect_same_edges(learner, later);

  Counters shifted = counters;
  for (int i = 0; i < 20; ++i, t += kScrape) {
    std::mt19937_64 step_rng(100 + i);
    std::mt19937_64 step_rng2(100 + i);
    serve_interval(counters, step_rng, "frontend", truth, 100);
    serve_interval(shifted, step_rng2, "frontend", truth, 100);
    const Snapshot snap = counters.scrape(t);
    learner.observe(snap);
    same.observe(snap);
    later.observe(shifted.scrape(t + std::chrono::hours(1)));
  }
  expect_same_edges(learner, same);
  for (const auto& e : truth) {
    EXPECT_NEAR(later.fanout(e.caller, e.callee), learner.fanout(e.caller, e.callee), 1e-9);
  }
}

// Two scrapes, 15 s and 30 s in, between which a served 100 requests and called b 300 times: the
// learned fan-out a -> b is 3.
void learn_three_calls_a_to_b(Counters& counters, TopologyLearner& learner) {
  counters.serve("a", 0);
  counters.call("a", "b", 0);
  learner.observe(counters.scrape(seconds(15)));
  counters.serve("a", 100);
  counters.call("a", "b", 300);
  learner.observe(counters.scrape(seconds(30)));
}

TEST(TopologyLearner, RestoringKeepsSeededEdgesTheStateLacks) {
  Counters counters;
  TopologyLearner learner;
  learn_three_calls_a_to_b(counters, learner);
  const auto state = learner.to_json(Clock::TimePoint{} + seconds(30));

  // The configuration now seeds a -> c as well.
  auto seed = make_callgraph({{"a", "c", 0.5, 0}}, {});
  ASSERT_TRUE(seed);
  TopologyLearner restored({}, *seed);
  ASSERT_TRUE(restored.from_json(state, Clock::TimePoint{} + seconds(30)));
  EXPECT_NEAR(restored.fanout("a", "b"), 3.0, 1e-12);
  EXPECT_NEAR(restored.fanout("a", "c"), 0.5, 1e-12);
  EXPECT_THAT(restored.services(), ElementsAre("a", "c"));  // b is known by its edge only
  // The seed's evidence ages from the restored last scrape (30 s), not from time 0: after 10
  // requests of a without calls to c, the fan-out is 50 k / (100 k + 10), k = 2^(-15 s / 10 min).
  counters.serve("a", 10);
  counters.call("a", "b", 30);
  restored.observe(counters.scrape(seconds(45)));
  const double k = std::exp2(-15.0 / 600);
  EXPECT_NEAR(restored.fanout("a", "c"), 50 * k / (100 * k + 10), 1e-12);
}

TEST(TopologyLearner, MalformedStateIsRefusedAndChangesNothing) {
  auto seed = make_callgraph({{"a", "b", 2.0, 0}}, {});
  ASSERT_TRUE(seed);
  TopologyLearner learner({}, *seed);
  auto r = learner.from_json({{"services", nlohmann::json::array()}}, Clock::TimePoint{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  auto state = learner.to_json(Clock::TimePoint{});
  state["edges"][0]["calls"] = "many";
  EXPECT_FALSE(learner.from_json(state, Clock::TimePoint{}));
  EXPECT_NEAR(learner.fanout("a", "b"), 2.0, 1e-12);
}

// A state whose edge is no fan-out (negative or infinite sums, a negative span) was accepted,
// and then graph() failed on that edge (make_callgraph refuses it): the policy lost the whole
// learned graph, every edge, and planned each service alone (negative requests: a fan-out of 0,
// then one skewed by them). It is refused as malformed.
TEST(TopologyLearner, AStateWithAnEdgeThatIsNoFanoutIsRefused) {
  Counters counters;
  TopologyLearner learner;
  learn_three_calls_a_to_b(counters, learner);
  const auto state = learner.to_json(Clock::TimePoint{} + seconds(30));
  ASSERT_TRUE(learner.graph());
  for (const auto& [field, bad] : std::vector<std::pair<std::string, double>>{
           {"calls", -5}, {"requests", -1}, {"calls", INFINITY}, {"span_ms", -1}}) {
    auto malformed = state;
    malformed["edges"][0][field] = bad;
    TopologyLearner restored;
    const auto r = restored.from_json(malformed, Clock::TimePoint{} + seconds(30));
    ASSERT_FALSE(r) << field << " " << bad << ": graph "
                    << (restored.graph() ? "built" : restored.graph().error().message);
    EXPECT_THAT(r.error().message, HasSubstr("a -> b")) << field;
  }
}

// ---- review: inputs the spec says the learner must survive ----------------------------------

// Spec: fan-outs are "robust to noise"; graph() is always an acyclic, usable CallGraph. One
// unreadable (NaN) sample of an edge counter must not spoil the edge, let alone the graph, for
// the hour of clean counters that follows.
TEST(TopologyLearner, ANanCounterSampleDoesNotPoisonTheFanoutForGood) {
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  auto step = [&] {
    counters.serve("a", 1500);
    counters.set_rate("a", 100);
    counters.call("a", "b", 3000);
    t += kScrape;
    return counters.scrape(t);
  };
  counters.serve("a", 0);
  counters.call("a", "b", 0);
  learner.observe(counters.scrape(t));
  for (int i = 0; i < 20; ++i) learner.observe(step());
  ASSERT_NEAR(learner.fanout("a", "b"), 2.0, 1e-12);
  Snapshot glitch = step();
  glitch.edges[0].calls_total = NAN;  // one scrape of the series failed to parse
  learner.observe(glitch);
  for (int i = 0; i < 240; ++i) learner.observe(step());  // an hour of clean counters
  EXPECT_NEAR(learner.fanout("a", "b"), 2.0, 0.1);
  auto graph = learner.graph();
  EXPECT_TRUE(graph) << graph.error().to_string();
}

// Spec (docs/learning.md, vanishing edges): an edge silent for edge_expiry is removed, and a
// removed edge whose series is still scraped "keeps its counter baseline, so a later call counts
// from there". When a later release calls it again it is a new edge: its fan-out is what it is
// called at now, as for a series that reappears (EdgesAppearAndVanish) — not that diluted by
// every request the caller served while the edge was gone.
TEST(TopologyLearner, AnExpiredEdgeCalledAgainIsLearnedAfresh) {
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  bool calls_c = true;
  auto step = [&] {
    counters.serve("a", 1500);
    counters.set_rate("a", 100);
    counters.call("a", "b", 1500);
    if (calls_c) counters.call("a", "c", 750);
    t += kScrape;
    learner.observe(counters.scrape(t));
  };
  counters.serve("a", 0);
  counters.call("a", "b", 0);
  counters.call("a", "c", 0);
  learner.observe(counters.scrape(t));
  for (int i = 0; i < 40; ++i) step();
  ASSERT_NEAR(learner.fanout("a", "c"), 0.5, 1e-12);
  calls_c = false;  // a release stops calling c; its series stays, flat
  for (int i = 0; i < 40; ++i) step();
  ASSERT_EQ(learner.fanout("a", "c"), 0);  // removed after 10 min of silence
  for (int i = 0; i < 240; ++i) step();    // an hour later...
  calls_c = true;                          // ...the next release calls c again, at 0.5
  step();
  EXPECT_NEAR(learner.fanout("a", "c"), 0.5, 0.025) << "after one interval of calls";
  for (int i = 0; i < 39; ++i) step();
  EXPECT_NEAR(learner.fanout("a", "c"), 0.5, 0.025) << "after 10 minutes of calls";
}

// Spec (docs/learning.md, services): a service missing from the snapshots for service_expiry is
// forgotten with its edges. Its caller's counter series for it is still scraped (a Prometheus
// counter lives as long as the caller's process); forgetting must not turn that series' whole
// history into one interval's calls: a -> c was 0.2 and c is gone, so nothing above 0.2 may be
// learned for it.
TEST(TopologyLearner, AForgottenCalleeDoesNotComeBackWithItsCounterHistoryAsOneInterval) {
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  bool with_c = true;
  auto step = [&] {
    counters.serve("a", 1500);
    counters.set_rate("a", 100);
    counters.call("a", "b", 1500);
    counters.serve("b", 1500);
    if (with_c) {
      counters.call("a", "c", 300);
      counters.serve("c", 300);
    }
    t += kScrape;
    learner.observe(counters.scrape(t));
  };
  counters.serve("a", 0);
  counters.serve("b", 0);
  counters.serve("c", 0);
  counters.call("a", "b", 0);
  counters.call("a", "c", 0);
  learner.observe(counters.scrape(t));
  for (int i = 0; i < 240; ++i) step();  // an hour at a -> c = 0.2
  ASSERT_NEAR(learner.fanout("a", "c"), 0.2, 1e-12);
  // c is removed (or renamed); a's series for it stays in the scrape, flat.
  with_c = false;
  counters.remove_service("c");
  double worst = 0;
  for (int i = 0; i < 80; ++i) {  // 20 min: c is forgotten after 10
    step();
    worst = std::max(worst, learner.fanout("a", "c"));
  }
  EXPECT_LE(worst, 0.2) << "a -> c after c was forgotten: " << learner.fanout("a", "c");
}

// As the prescale policy's history (docs/prescale_policy.md): a scrape more than 5 minutes behind
// the last one means the clock was set back, or the last one was stamped ahead. Before, every
// later scrape was ignored as not later than that stamp, and the call graph stopped learning
// until the clock reached it (a year here). The learned fan-out is kept and followed from there;
// its evidence decays from the set-back scrape on (never by a negative age: with the sums timed
// a year ahead they would not decay at all), and a service gone meanwhile still expires.
TEST(TopologyLearner, ScrapesBehindAScrapeStampedAheadAreLearnedFrom) {
  Counters counters;
  TopologyLearner learner;
  Clock::Duration t{0};
  double fanout = 2;
  auto step = [&] {
    counters.serve("a", 1500);
    counters.set_rate("a", 100);
    counters.call("a", "b", 1500 * fanout);
    t += kScrape;
    return counters.scrape(t);
  };
  counters.serve("a", 0);
  counters.serve("gone", 0);
  counters.call("a", "b", 0);
  learner.observe(counters.scrape(t));
  for (int i = 0; i < 40; ++i) learner.observe(step());
  ASSERT_NEAR(learner.fanout("a", "b"), 2.0, 1e-12);
  Snapshot ahead = step();
  for (auto& s : ahead.services) s.window.sampled_at += std::chrono::hours(24 * 365);
  learner.observe(ahead);
  counters.remove_service("gone");
  learner.observe(step());    // 15 s after the last real scrape: the counters' baseline
  fanout = 3;                 // a release
  const int intervals = 120;  // 30 minutes: three half-lives
  for (int i = 0; i < intervals; ++i) learner.observe(step());
  const auto edges = learner.learned_edges();
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_NEAR(learner.fanout("a", "b"), 3.0, 0.01);
  // Each interval's 1500 requests, decayed by their age from the last scrape.
  double requests = 0;
  for (int i = 0; i < intervals; ++i) requests = requests * std::exp2(-15.0 / 600) + 1500;
  EXPECT_NEAR(edges[0].caller_requests, requests, 0.01 * requests);
  EXPECT_THAT(learner.services(), ElementsAre("a"));  // "gone" expired 10 minutes on
}

}  // namespace
}  // namespace prescale::scaling
