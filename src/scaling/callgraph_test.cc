#include "scaling/callgraph.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace prescale::scaling {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string source_dir() {
  const char* dir = std::getenv("PRESCALE_SOURCE_DIR");
  return dir != nullptr ? dir : PRESCALE_TEST_SOURCE_DIR;
}

std::string fixture(const std::string& name) {
  return source_dir() + "/src/scaling/testdata/" + name;
}

std::string shared_data() { return source_dir() + "/../shared/data"; }

#define SKIP_WITHOUT_SHARED_DATA()                               \
  if (!std::filesystem::exists(shared_data() + "/callgraphs")) { \
    GTEST_SKIP() << "skipped: ../shared/data missing";           \
  }

const CallEdge* find_edge(const CallGraph& g, std::string_view caller, std::string_view callee) {
  for (const auto& e : g.edges) {
    if (e.caller == caller && e.callee == callee) return &e;
  }
  return nullptr;
}

double load_of(const CallGraph& g, const std::vector<double>& load, std::string_view service) {
  int i = g.index_of(service);
  EXPECT_GE(i, 0) << service;
  return i >= 0 ? load[static_cast<size_t>(i)] : NAN;
}

// Every edge's caller comes before its callee, entries first.
void ExpectTopologicalOrder(const CallGraph& g) {
  for (size_t i = 0; i < g.entries.size(); ++i) EXPECT_EQ(g.services[i], g.entries[i]);
  for (const auto& e : g.edges) {
    EXPECT_LT(g.index_of(e.caller), g.index_of(e.callee)) << e.caller << " -> " << e.callee;
  }
}

CallEdge edge(std::string caller, std::string callee, double fanout) {
  return CallEdge{std::move(caller), std::move(callee), fanout, 0};
}

// ---- explicit graphs -----------------------------------------------------------------------

TEST(CallGraphTest, SingleService) {
  auto g = single_service_graph();
  ASSERT_TRUE(g);
  EXPECT_THAT(g->services, ElementsAre("app"));
  EXPECT_THAT(g->entries, ElementsAre("app"));
  EXPECT_TRUE(g->edges.empty());
  EXPECT_THAT(g->service_load(12.5), ElementsAre(12.5));
  EXPECT_EQ(g->index_of("app"), 0);
  EXPECT_EQ(g->index_of("db"), -1);
  EXPECT_FALSE(single_service_graph(""));
}

TEST(CallGraphTest, HandMadeDagPropagatesAndConservesLoad) {
  // web -> api (x2), web -> auth (x0.5), api -> db (x1.5), auth -> db (x1), api -> cache (x3)
  auto g = make_callgraph({edge("api", "db", 1.5), edge("web", "api", 2), edge("auth", "db", 1),
                           edge("web", "auth", 0.5), edge("api", "cache", 3)},
                          {"batch"});
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_THAT(g->entries, ElementsAre("batch", "web"));
  EXPECT_EQ(g->services.size(), 6u);
  ExpectTopologicalOrder(*g);
  auto load = g->service_load(10);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "web"), 10);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "batch"), 10);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "api"), 20);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "auth"), 5);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "db"), 20 * 1.5 + 5);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "cache"), 60);
  // Conservation: every service receives exactly what its callers send it.
  for (size_t i = 0; i < g->services.size(); ++i) {
    double in = 0;
    bool is_entry = false;
    for (const auto& e : g->edges) {
      if (e.callee == g->services[i]) in += e.fanout * load_of(*g, load, e.caller);
    }
    for (const auto& entry : g->entries) is_entry |= entry == g->services[i];
    EXPECT_DOUBLE_EQ(load[i], is_entry ? 10 : in) << g->services[i];
  }
  // Linear in the entry rate.
  auto doubled = g->service_load(20);
  for (size_t i = 0; i < load.size(); ++i) EXPECT_DOUBLE_EQ(doubled[i], 2 * load[i]);
}

TEST(CallGraphTest, ExplicitEdgesRejectCyclesDuplicatesAndBadFanouts) {
  auto cycle = make_callgraph({edge("a", "b", 1), edge("b", "c", 1), edge("c", "a", 1)});
  ASSERT_FALSE(cycle);
  EXPECT_THAT(cycle.error().message, HasSubstr("cycle: a -> b -> c -> a"));
  auto duplicate = make_callgraph({edge("a", "b", 1), edge("a", "b", 2)});
  ASSERT_FALSE(duplicate);
  EXPECT_THAT(duplicate.error().message, HasSubstr("a -> b is listed twice"));
  EXPECT_FALSE(make_callgraph({edge("a", "b", -1)}));
  EXPECT_FALSE(make_callgraph({edge("a", "b", INFINITY)}));
  EXPECT_FALSE(make_callgraph({edge("", "b", 1)}));
  EXPECT_FALSE(make_callgraph({}));
  auto self = make_callgraph({edge("a", "a", 3), edge("a", "b", 1)});
  ASSERT_TRUE(self);
  EXPECT_EQ(self->edges.size(), 1u);
  ASSERT_EQ(self->warnings.size(), 1u);
  EXPECT_THAT(self->warnings[0], HasSubstr("self-call a -> a"));
}

// ---- learned from per-minute call counts ---------------------------------------------------

TEST(CallGraphLoadTest, FanoutsAreRatiosOfSumsWithBusiestCalleeEntryLoad) {
  auto g = load_callgraph_dir(fixture("dag"));
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_THAT(g->services, ElementsAre("web", "api", "auth", "cache", "db"));
  EXPECT_THAT(g->entries, ElementsAre("web"));
  ASSERT_EQ(g->edges.size(), 5u);
  ExpectTopologicalOrder(*g);
  // Entry load: per minute the busiest callee's calls, 100 + 200 = 300.
  EXPECT_DOUBLE_EQ(find_edge(*g, "web", "api")->fanout, 1.0);
  EXPECT_DOUBLE_EQ(find_edge(*g, "web", "auth")->fanout, 130.0 / 300);
  EXPECT_DOUBLE_EQ(find_edge(*g, "api", "db")->fanout, 450.0 / 300);
  EXPECT_DOUBLE_EQ(find_edge(*g, "api", "cache")->fanout, 800.0 / 300);
  EXPECT_DOUBLE_EQ(find_edge(*g, "auth", "db")->fanout, 1.0);
  // Call-weighted mean span: (100 * 20 ms + 200 * 10 ms) / 300.
  EXPECT_DOUBLE_EQ(find_edge(*g, "web", "api")->mean_callee_span_ms, 40.0 / 3);
  ASSERT_EQ(g->warnings.size(), 1u);
  EXPECT_THAT(g->warnings[0], HasSubstr("ignored 10 self-calls of api"));
  // Replaying the entry's estimated load reproduces every measured total.
  auto load = g->service_load(300);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "api"), 300);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "auth"), 130);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "db"), 450 + 130);
  EXPECT_DOUBLE_EQ(load_of(*g, load, "cache"), 800);
}

TEST(CallGraphLoadTest, AllCallsEntryLoadForRouters) {
  auto g = load_callgraph_dir(fixture("dag"), {.entry_load = EntryLoadEstimate::kAllCalls});
  ASSERT_TRUE(g) << g.error().to_string();
  // Entry load: 100 + 50 + 200 + 80 = 430; the entry's fan-outs sum to 1.
  EXPECT_DOUBLE_EQ(find_edge(*g, "web", "api")->fanout, 300.0 / 430);
  EXPECT_DOUBLE_EQ(find_edge(*g, "web", "auth")->fanout, 130.0 / 430);
  EXPECT_DOUBLE_EQ(find_edge(*g, "api", "db")->fanout, 450.0 / 300);  // downstream unchanged
}

TEST(CallGraphLoadTest, CyclesAreBrokenAtTheWeakestEdgeAndReported) {
  auto g = load_callgraph_dir(fixture("cycle"));
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_THAT(g->services, ElementsAre("front", "a", "b", "c"));
  EXPECT_THAT(g->entries, ElementsAre("front"));
  EXPECT_EQ(find_edge(*g, "b", "a"), nullptr);
  EXPECT_DOUBLE_EQ(find_edge(*g, "front", "a")->fanout, 1.0);
  EXPECT_DOUBLE_EQ(find_edge(*g, "a", "b")->fanout, 0.8);
  EXPECT_DOUBLE_EQ(find_edge(*g, "b", "c")->fanout, 0.5);
  EXPECT_THAT(g->warnings,
              UnorderedElementsAre(HasSubstr("ignored 3 self-calls of c"),
                                   HasSubstr("ignored 7 self-calls of logger"),
                                   HasSubstr("dropped b -> a (5 calls) to break the cycle "
                                             "a -> b -> a"),
                                   HasSubstr("left out logger")));
}

TEST(CallGraphLoadTest, Errors) {
  auto missing_dir = load_callgraph_dir(fixture("no_such_dir"));
  ASSERT_FALSE(missing_dir);
  EXPECT_EQ(missing_dir.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing_dir.error().message, HasSubstr("no_such_dir"));

  auto missing_file = load_callgraph_dir(fixture(""));  // testdata/ itself has no edges file
  ASSERT_FALSE(missing_file);
  EXPECT_EQ(missing_file.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing_file.error().message, HasSubstr("edges-per-minute.csv"));

  auto bad_header = load_callgraph_dir(fixture("bad_header"));
  ASSERT_FALSE(bad_header);
  EXPECT_THAT(bad_header.error().message, HasSubstr("edges-per-minute.csv:1: bad header"));

  auto bad_calls = load_callgraph_dir(fixture("bad_calls"));
  ASSERT_FALSE(bad_calls);
  EXPECT_THAT(bad_calls.error().message,
              HasSubstr("edges-per-minute.csv:3: column 5 \"calls\": expected a non-negative "
                        "call count, got \"many\""));

  auto unknown = builtin_topology("mesh", shared_data());
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message, HasSubstr("single, online-boutique and train-ticket"));
  auto single = builtin_topology("single", "/nonexistent");
  ASSERT_TRUE(single);
  EXPECT_THAT(single->services, ElementsAre("app"));
}

// ---- the real captures in ../shared/data ---------------------------------------------------

void ExpectSaneFanouts(const CallGraph& g) {
  for (const auto& e : g.edges) {
    EXPECT_TRUE(std::isfinite(e.fanout) && e.fanout > 0) << e.caller << " -> " << e.callee;
    EXPECT_TRUE(std::isfinite(e.mean_callee_span_ms) && e.mean_callee_span_ms > 0);
  }
  auto load = g.service_load(1);
  for (size_t i = 0; i < load.size(); ++i) {
    EXPECT_TRUE(std::isfinite(load[i]) && load[i] > 0) << g.services[i];
  }
}

TEST(CallGraphSharedDataTest, OnlineBoutique) {
  SKIP_WITHOUT_SHARED_DATA();
  auto g = builtin_topology("online-boutique", shared_data());
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_THAT(g->entries, ElementsAre("frontend"));
  EXPECT_EQ(g->services.front(), "frontend");
  EXPECT_EQ(g->services.size(), 10u);
  EXPECT_EQ(g->edges.size(), 13u);
  EXPECT_TRUE(g->warnings.empty());
  ExpectTopologicalOrder(*g);
  ExpectSaneFanouts(*g);
  // productcatalogservice is the frontend's busiest callee in every minute.
  EXPECT_DOUBLE_EQ(find_edge(*g, "frontend", "productcatalogservice")->fanout, 1.0);
  EXPECT_DOUBLE_EQ(find_edge(*g, "frontend", "currencyservice")->fanout, 5473.0 / 8538);
  EXPECT_DOUBLE_EQ(find_edge(*g, "recommendationservice", "productcatalogservice")->fanout, 1.0);
  EXPECT_DOUBLE_EQ(find_edge(*g, "checkoutservice", "cartservice")->fanout, 2.0);
  auto load = g->service_load(1);
  EXPECT_NEAR(load_of(*g, load, "productcatalogservice"), (8538.0 + 1296 + 179) / 8538, 1e-12);
}

TEST(CallGraphSharedDataTest, TrainTicket) {
  SKIP_WITHOUT_SHARED_DATA();
  auto g = builtin_topology("train-ticket", shared_data());
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_THAT(g->entries, ElementsAre("ts-gateway-service"));
  EXPECT_EQ(g->services.front(), "ts-gateway-service");
  EXPECT_EQ(g->edges.size(), 55u);
  EXPECT_EQ(g->services.size(), 28u);
  EXPECT_TRUE(g->warnings.empty());
  ExpectTopologicalOrder(*g);
  ExpectSaneFanouts(*g);
  // The gateway routes each request to one service: its fan-outs sum to 1.
  double gateway_fanout = 0;
  for (const auto& e : g->edges) {
    if (e.caller == "ts-gateway-service") gateway_fanout += e.fanout;
  }
  EXPECT_NEAR(gateway_fanout, 1.0, 1e-12);
  // ts-basic-service is called 241 + 207 + 49 + 41 = 538 times and calls ts-station-service 730.
  EXPECT_DOUBLE_EQ(find_edge(*g, "ts-basic-service", "ts-station-service")->fanout, 730.0 / 538);

  auto busiest = load_callgraph_dir(shared_data() + "/callgraphs/train-ticket");
  ASSERT_TRUE(busiest) << busiest.error().to_string();
  EXPECT_EQ(busiest->edges.size(), 55u);
  ExpectSaneFanouts(*busiest);
}

}  // namespace
}  // namespace prescale::scaling
