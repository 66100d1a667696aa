#include "dashboard/dashboard_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

namespace prescale::dashboard {
namespace {

using nlohmann::json;

// A model with the two services "frontend" and "recommend".
std::unique_ptr<DashboardModel> two_services(DashboardLimits limits = {}) {
  auto m = std::make_unique<DashboardModel>(limits);
  m->set_services({{"frontend", "gateway", 200, 1, 10, kNoValue},
                   {"recommend", "recommend", 100, 2, 20, 512, 2, "rolling out: 1 of 2 updated"}});
  return m;
}

ServicePoint point(double t, double load) {
  ServicePoint p;
  p.t = t;
  p.load_rps = load;
  p.planned_replicas = 3;
  p.ready_replicas = 2;
  p.p99_ms = 80;
  p.errors_rps = 0.5;
  p.memory_mib = 231.5;
  return p;
}

TEST(DashboardModelTest, ServiceJsonHasInfoSeriesColumnsAndForecast) {
  auto owned = two_services();
  DashboardModel& m = *owned;
  ServicePoint p = point(100, 50);
  p.forecast_p50 = 48;
  p.forecast_p90 = 55;
  p.forecast_p99 = 60;
  ASSERT_TRUE(m.append_point("recommend", p));
  ASSERT_TRUE(m.set_forecast("recommend", {{105, 52, 58, 64}, {110, 53, 59, 66}}));
  ASSERT_TRUE(m.set_decision("recommend", 100, 4, "forecast p90 58 rps needs 4"));

  auto j = m.service_json("recommend");
  ASSERT_TRUE(j) << j.error().to_string();
  EXPECT_EQ((*j)["name"], "recommend");
  EXPECT_EQ((*j)["kind"], "recommend");
  EXPECT_EQ((*j)["slo_p99_ms"], 100.0);
  EXPECT_EQ((*j)["min_replicas"], 2);
  EXPECT_EQ((*j)["max_replicas"], 20);
  EXPECT_EQ((*j)["memory_limit_mib"], 512.0);
  EXPECT_EQ((*j)["revision"], 2);
  EXPECT_EQ((*j)["rollout"], "rolling out: 1 of 2 updated");
  EXPECT_EQ((*j)["last_t"], 100.0);
  EXPECT_TRUE((*j)["since"].is_null());
  const json& s = (*j)["series"];
  EXPECT_EQ(s["t"], json::array({100.0}));
  EXPECT_EQ(s["load_rps"], json::array({50.0}));
  EXPECT_EQ(s["forecast_p50"], json::array({48.0}));
  EXPECT_EQ(s["forecast_p90"], json::array({55.0}));
  EXPECT_EQ(s["forecast_p99"], json::array({60.0}));
  EXPECT_EQ(s["planned_replicas"], json::array({3}));
  EXPECT_EQ(s["ready_replicas"], json::array({2}));
  EXPECT_EQ(s["p99_ms"], json::array({80.0}));
  EXPECT_EQ(s["errors_rps"], json::array({0.5}));
  EXPECT_EQ(s["memory_mib"], json::array({231.5}));
  EXPECT_EQ((*j)["forecast"]["t"], json::array({105.0, 110.0}));
  EXPECT_EQ((*j)["forecast"]["p99"], json::array({64.0, 66.0}));
  EXPECT_EQ((*j)["decision"]["planned_replicas"], 4);
  EXPECT_EQ((*j)["decision"]["reason"], "forecast p90 58 rps needs 4");
}

TEST(DashboardModelTest, NanRendersAsNull) {
  auto owned = two_services();
  DashboardModel& m = *owned;
  ASSERT_TRUE(m.append_point("frontend", point(1, 10)));  // forecasts default to NaN
  auto j = m.service_json("frontend");
  ASSERT_TRUE(j);
  EXPECT_TRUE((*j)["series"]["forecast_p50"][0].is_null());
  EXPECT_TRUE((*j)["memory_limit_mib"].is_null()) << "no limit";
  EXPECT_TRUE((*j)["revision"].is_null()) << "no revisions in this world";
  EXPECT_EQ((*j)["rollout"], "");
  EXPECT_NE(j->dump().find("null"), std::string::npos);
  EXPECT_EQ(j->dump().find("NaN"), std::string::npos);
  EXPECT_TRUE(m.overview_json()["within_slo_share"].is_null());
}

TEST(DashboardModelTest, SinceReturnsOnlyLaterPoints) {
  auto owned = two_services();
  DashboardModel& m = *owned;
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(m.append_point("frontend", point(i * 5.0, i)));
  auto j = m.service_json("frontend", 15.0);
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["series"]["t"], json::array({20.0, 25.0}));
  EXPECT_EQ((*j)["series"]["load_rps"], json::array({4.0, 5.0}));
  EXPECT_EQ((*j)["since"], 15.0);
  EXPECT_EQ((*j)["last_t"], 25.0);
  EXPECT_TRUE((*m.service_json("frontend", 25.0))["series"]["t"].empty());
  EXPECT_EQ((*m.service_json("frontend", 0.0))["series"]["t"].size(), 5u);
}

TEST(DashboardModelTest, RingBufferKeepsTheNewestPoints) {
  auto owned = two_services({.points_per_service = 3, .max_events = 10});
  DashboardModel& m = *owned;
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(m.append_point("frontend", point(i, i)));
  auto j = m.service_json("frontend");
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["series"]["t"], json::array({8.0, 9.0, 10.0}));
  EXPECT_EQ(m.services_json()["services"][0]["points"], 3);
}

TEST(DashboardModelTest, DefaultCapIsFourHoursOfFiveSecondTicks) {
  EXPECT_EQ(DashboardLimits{}.points_per_service, 4u * 3600 / 5);
  EXPECT_EQ(DashboardLimits{}.max_events, 2000u);
}

TEST(DashboardModelTest, RejectsPointsOutOfOrderAndUnknownServices) {
  auto owned = two_services();
  DashboardModel& m = *owned;
  ASSERT_TRUE(m.append_point("frontend", point(10, 1)));
  auto same = m.append_point("frontend", point(10, 2));
  ASSERT_FALSE(same);
  EXPECT_EQ(same.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(m.append_point("frontend", point(9, 2)));

  auto unknown = m.append_point("nope", point(11, 1));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(unknown.error().message, testing::HasSubstr("\"nope\""));
  EXPECT_FALSE(m.set_forecast("nope", {}));
  EXPECT_FALSE(m.set_decision("nope", 1, 1, ""));
  auto j = m.service_json("nope");
  ASSERT_FALSE(j);
  EXPECT_EQ(j.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(j.error().message, testing::HasSubstr("nope"));
}

TEST(DashboardModelTest, SetServicesKeepsSeriesOfServicesStillListed) {
  auto owned = two_services();
  DashboardModel& m = *owned;
  ASSERT_TRUE(m.append_point("frontend", point(1, 1)));
  ASSERT_TRUE(m.append_point("recommend", point(1, 1)));
  m.set_services(
      {{"recommend", "recommend", 150, 1, 5, kNoValue}, {"fraud", "fraud", 50, 1, 5, kNoValue}});
  json list = m.services_json()["services"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["name"], "recommend");
  EXPECT_EQ(list[0]["slo_p99_ms"], 150.0);  // the info is replaced
  EXPECT_EQ(list[0]["points"], 1);          // the series is kept
  EXPECT_EQ(list[0]["latest"]["load_rps"], 1.0);
  EXPECT_EQ(list[1]["points"], 0);
  EXPECT_TRUE(list[1]["latest"].is_null());
  EXPECT_TRUE(list[1]["decision"].is_null());
  EXPECT_FALSE(m.service_json("frontend"));
}

TEST(DashboardModelTest, OverviewHasTotals) {
  auto owned = two_services();
  DashboardModel& m = *owned;
  m.set_overview({.policy = "prescale",
                  .recommend_only = true,
                  .started_at = 1000,
                  .now = 1600,
                  .requests = 12345,
                  .within_slo_share = 0.995,
                  .replica_hours = 1.5,
                  .scaling_events = 7});
  json o = m.overview_json();
  EXPECT_EQ(o["policy"], "prescale");
  EXPECT_EQ(o["recommend_only"], true);
  EXPECT_EQ(o["started_at"], 1000.0);
  EXPECT_EQ(o["now"], 1600.0);
  EXPECT_EQ(o["requests"], 12345.0);
  EXPECT_EQ(o["within_slo_share"], 0.995);
  EXPECT_EQ(o["replica_hours"], 1.5);
  EXPECT_EQ(o["scaling_events"], 7);
  EXPECT_EQ(o["services"], 2);
}

TEST(DashboardModelTest, GraphListsServicesAndExternalNodes) {
  auto owned = two_services();
  DashboardModel& m = *owned;
  m.set_graph({{"frontend", "recommend", 1.5, 30}, {"recommend", "feature-store", 2, 60}});
  json g = m.graph_json();
  ASSERT_EQ(g["nodes"].size(), 3u);
  EXPECT_EQ(g["nodes"][0], (json{{"name", "frontend"}, {"kind", "gateway"}}));
  EXPECT_EQ(g["nodes"][2], (json{{"name", "feature-store"}, {"kind", "external"}}));
  ASSERT_EQ(g["edges"].size(), 2u);
  EXPECT_EQ(
      g["edges"][0],
      (json{
          {"caller", "frontend"}, {"callee", "recommend"}, {"fanout", 1.5}, {"calls_rps", 30.0}}));
}

TEST(DashboardModelTest, EventsNewestFirstWithSinceAfterIdAndCap) {
  auto owned = two_services({.points_per_service = 10, .max_events = 3});
  DashboardModel& m = *owned;
  EXPECT_EQ(m.add_event({10, "scale", "frontend", "", "2 -> 3: forecast"}), 1u);
  EXPECT_EQ(m.add_event({20, "crash", "recommend", "recommend-1", "exit 137"}), 2u);
  EXPECT_EQ(m.add_event({15, "restart", "recommend", "recommend-1", ""}), 3u);  // late arrival
  json all = m.events_json();
  EXPECT_EQ(all["last_id"], 3);
  ASSERT_EQ(all["events"].size(), 3u);
  EXPECT_EQ(all["events"][0]["t"], 20.0);
  EXPECT_EQ(all["events"][1]["t"], 15.0);
  EXPECT_EQ(all["events"][2]["kind"], "scale");
  EXPECT_EQ(all["events"][2]["message"], "2 -> 3: forecast");
  EXPECT_EQ(all["events"][0]["replica"], "recommend-1");

  EXPECT_EQ(m.events_json(15.0)["events"].size(), 1u);
  json after = m.events_json(std::nullopt, 2);
  ASSERT_EQ(after["events"].size(), 1u);
  EXPECT_EQ(after["events"][0]["id"], 3);

  m.add_event({30, "eject", "recommend", "recommend-2", "5xx"});
  json capped = m.events_json();
  ASSERT_EQ(capped["events"].size(), 3u);  // the oldest (id 1) is gone
  for (const auto& e : capped["events"]) EXPECT_NE(e["id"], 1);

  // The kept ones in the order they came, for a restart's saved timeline.
  const std::vector<EventRecord> kept = m.events();
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].kind, "crash");
  EXPECT_EQ(kept[1].t, 15.0);
  EXPECT_EQ(kept[2].replica, "recommend-2");
  EXPECT_EQ(m.last_event_id(), 4u);
}

TEST(DashboardModelTest, ReadersSeeWholePointsWhileTheWriterAppends) {
  auto owned = two_services({.points_per_service = 100, .max_events = 100});
  DashboardModel& m = *owned;
  std::atomic<bool> done = false;
  std::thread writer([&] {
    for (int i = 1; i <= 2000; ++i) {
      ServicePoint p = point(i, i);
      p.forecast_p50 = i;  // every column equals t, so a torn read shows
      p.p99_ms = i;
      ASSERT_TRUE(m.append_point("frontend", p));
      m.add_event({static_cast<double>(i), "scale", "frontend", "", ""});
    }
    done = true;
  });
  int reads = 0;
  while (!done || reads < 10) {
    auto j = m.service_json("frontend");
    ASSERT_TRUE(j);
    const json& s = (*j)["series"];
    ASSERT_LE(s["t"].size(), 100u);
    for (size_t k = 0; k < s["t"].size(); ++k) {
      ASSERT_EQ(s["t"][k], s["load_rps"][k]);
      ASSERT_EQ(s["t"][k], s["p99_ms"][k]);
    }
    ASSERT_LE(m.events_json()["events"].size(), 100u);
    ++reads;
  }
  writer.join();
}

// A service name listed twice is one service: its series stays whole (the second entry used
// to take the first's moved-from state, an empty series).
TEST(DashboardModelTest, AServiceListedTwiceIsKeptOnceWithItsSeries) {
  auto m = two_services();
  ASSERT_TRUE(m->append_point("frontend", point(10, 5)));
  m->set_services({{"frontend", "gateway", 200, 1, 10, kNoValue},
                   {"frontend", "gateway", 200, 1, 10, kNoValue}});
  const json services = m->services_json();
  EXPECT_EQ(services["services"].size(), 1u) << services.dump();
  auto one = m->service_json("frontend", std::nullopt);
  ASSERT_TRUE(one);
  EXPECT_EQ((*one)["series"]["t"].size(), 1u) << one->dump();
}

// An event without a finite time takes the previous event's, so the list keeps its order and
// renders no null time.
TEST(DashboardModelTest, AnEventWithoutAFiniteTimeTakesThePreviousOnes) {
  DashboardModel m;
  m.add_event({10, "scale", "frontend", "", "up"});
  m.add_event({NAN, "crash", "frontend", "r1", "exit 1"});
  const json events = m.events_json()["events"];
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["t"], 10.0) << events.dump();
}

}  // namespace
}  // namespace prescale::dashboard
