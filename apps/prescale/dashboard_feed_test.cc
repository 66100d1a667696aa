#include "dashboard_feed.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "control/controller.h"
#include "core/clock.h"
#include "dashboard/dashboard_model.h"
#include "feed_state.h"
#include "scaling/capacity_model.h"
#include "telemetry/registry.h"
#include "worlds/local/local_world.h"
#include "worlds/local/test_util.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;

// Observes every second, as prescale, kpa and aws do; decides every 5 s and never scales.
class EverySecond final : public scaling::Policy {
 public:
  std::string_view name() const override { return "every-second"; }
  Clock::Duration period() const override { return 5s; }
  Clock::Duration observe_interval() const override { return 1s; }
  void init(const std::vector<scaling::ServiceSpec>&) override {}
  scaling::Plan decide(const scaling::Snapshot&, Clock::TimePoint now) override {
    return {now, {}};
  }
};

// The model's events of `kind`.
int events_of(const dashboard::DashboardModel& model, const std::string& kind) {
  int n = 0;
  const nlohmann::json events = model.events_json();
  for (const auto& e : events.at("events")) n += e.at("kind") == kind ? 1 : 0;
  return n;
}

// The first series' value of the family `name`; -1 when it has none.
double first_value(const telemetry::Registry& registry, const std::string& name) {
  for (const auto& f : registry.collect()) {
    if (f.name == name && !f.series.empty()) return f.series[0].value;
  }
  return -1.0;
}

// One service "web" on a world without processes, its controller (an EverySecond policy) on
// `clock`, and the dashboard model it feeds.
struct OneService {
  explicit OneService(ManualClock& clock)
      : supervisor(local::SupervisorOptions{}, none, none, none),
        spec(web_spec()),
        world(supervisor, gateway_registry, {spec}, world_options(clock)),
        controller(world, policy, {spec}, clock) {
    EXPECT_TRUE(supervisor.add_service({"web", {"server", "{port}"}, {}}));
    model.set_services({{"web", "command", 200, 1, 4, dashboard::kNoValue}});
  }
  static scaling::ServiceSpec web_spec() {
    scaling::ServiceSpec s;
    s.name = "web";
    return s;
  }
  static local::LocalWorldOptions world_options(ManualClock& clock) {
    local::LocalWorldOptions wo;
    wo.clock = &clock;
    wo.real_clock = &clock;
    return wo;
  }

  local::testing::NoProcesses none;
  local::Supervisor supervisor;
  scaling::ServiceSpec spec;
  telemetry::Registry gateway_registry;
  local::LocalWorld world;
  EverySecond policy;
  control::Controller controller;
  dashboard::DashboardModel model;
};

// The model keeps 2880 points a service, "4 h of 5 s points" (docs/dashboard.md): a policy that
// observes every second adds a point every 5 s of the controller's time, not every tick. At
// --time-scale 1 a real second is a controller second, so the once-a-real-second limit alone would
// keep 48 minutes.
TEST(DashboardFeedTest, APolicyObservingEverySecondAddsAPointEveryFiveSeconds) {
  ManualClock clock;  // the controller's and the real one
  OneService platform(clock);
  control::Controller& controller = platform.controller;
  dashboard::DashboardModel& model = platform.model;
  DashboardFeed feed(model, totals_of(platform.world), nullptr, {"every-second"}, clock);

  for (int s = 0; s < 60; ++s) {
    const std::optional<scaling::Plan> plan = controller.tick();
    feed.after_tick(controller, plan, controller.take_events());
    clock.advance(1s);
  }
  // Points at 10, 15, ..., 55 s: the scrape at 0 s has an empty window, and the one at 5 s is the
  // base of the first point's rates. One a second, there were 54.
  EXPECT_EQ(model.services_json().at("services").at(0).at("points"), 10);
}

// The machine's clock: monotonic time from a ManualClock, and a wall time that can be stepped
// apart from it (NTP after a suspend, `date -s`).
class SteppedWallClock final : public Clock {
 public:
  explicit SteppedWallClock(ManualClock& clock) : clock_(clock) {}
  TimePoint now() const override { return clock_.now(); }
  WallTime wall_now() const override { return clock_.wall_now() + step_; }
  void sleep_until(TimePoint deadline) override { clock_.sleep_until(deadline); }
  void step(Duration d) { step_ += d; }

 private:
  ManualClock& clock_;
  Duration step_{};
};

// A series is strictly increasing in time (the model refuses a point not after the last one), and
// the events list is newest first by time: a wall clock set back an hour while the platform runs
// must neither stop the charts for that hour nor put what happens next below what came before.
TEST(DashboardFeedTest, AWallClockSetBackNeitherStopsTheChartsNorBuriesNewEvents) {
  ManualClock clock;  // the controller's, and the machine's monotonic time
  SteppedWallClock real(clock);
  OneService platform(clock);
  control::Controller& controller = platform.controller;
  dashboard::DashboardModel& model = platform.model;
  DashboardFeed feed(model, totals_of(platform.world), nullptr, {"every-second"}, real);
  auto points = [&] { return model.services_json().at("services").at(0).at("points").get<int>(); };

  for (int s = 0; s < 30; ++s) {
    const std::optional<scaling::Plan> plan = controller.tick();
    feed.after_tick(controller, plan, controller.take_events());
    clock.advance(1s);
  }
  const int before = points();
  ASSERT_GT(before, 0);
  feed.on_replica_event({clock.now(), "ready", "web", "web-1", "before the step"});
  real.step(-1h);
  for (int s = 0; s < 30; ++s) {
    const std::optional<scaling::Plan> plan = controller.tick();
    feed.after_tick(controller, plan, controller.take_events());
    clock.advance(1s);
  }
  feed.on_replica_event({clock.now(), "ready", "web", "web-2", "after the step"});
  EXPECT_EQ(points(), before + 6) << "a point every 5 s went on";
  const nlohmann::json events = model.events_json().at("events");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events.at(0).at("message"), "after the step");
}

// One service "web" with an error budget of 0.1 %, its feed counting into `registry`, and the
// world's traffic as the test says: 100 answered a second, `failing` of them failed and `slow` of
// them slower than the SLO.
struct WatchedService {
  explicit WatchedService(std::map<std::string, double> budgets = {{"web", 0.001}})
      : platform(clock),
        feed(
            platform.model, [this](std::string_view) { return totals; }, nullptr,
            options(registry, std::move(budgets)), clock) {}
  static DashboardFeedOptions options(telemetry::Registry& registry,
                                      std::map<std::string, double> budgets) {
    DashboardFeedOptions o{"every-second"};
    o.error_budgets = std::move(budgets);
    o.registry = &registry;
    return o;
  }
  // `d` of ticks, one a second, each followed by a second of the traffic.
  void run(Clock::Duration d) {
    control::Controller& controller = platform.controller;
    for (Clock::Duration t{0}; t < d; t += std::chrono::seconds(1)) {
      const std::optional<scaling::Plan> plan = controller.tick();
      feed.after_tick(controller, plan, controller.take_events());
      clock.advance(std::chrono::seconds(1));
      totals.requests += 100;
      totals.failed += failing;
      totals.within_slo += 100 - failing - slow;
    }
  }
  ManualClock clock;
  OneService platform;
  telemetry::Registry registry;
  control::WorldTotals totals;
  double failing = 0;
  double slow = 0;
  DashboardFeed feed;
};

// A service removed by a reload with its incident open: the incident is closed (said, shown as
// resolved, its gauge 0), the service no longer watched. One added is counted from the start.
TEST(DashboardFeedTest, ARemovedServicesIncidentIsClosedAndAnAddedOneIsCounted) {
  WatchedService watched;
  dashboard::DashboardModel& model = watched.platform.model;
  telemetry::Registry& registry = watched.registry;
  DashboardFeed& feed = watched.feed;
  double& failing = watched.failing;
  auto run = [&](Clock::Duration d) { watched.run(d); };
  auto series_of = [&](const std::string& family) {
    std::map<std::string, double> out;
    for (const auto& f : registry.collect()) {
      if (f.name != family) continue;
      for (const auto& series : f.series) out[series.label_values.at(0)] = series.value;
    }
    return out;
  };
  run(10min);
  failing = 50;
  run(1min);
  ASSERT_EQ(events_of(model, "incident"), 1);
  EXPECT_EQ(series_of("prescale_incidents_open")["web"], 1);

  feed.remove_service("web");
  EXPECT_EQ(events_of(model, "resolved"), 1);
  const nlohmann::json incidents = model.incidents_json().at("incidents");
  ASSERT_EQ(incidents.size(), 1u);
  EXPECT_FALSE(incidents[0].at("resolved_at").is_null());
  EXPECT_EQ(series_of("prescale_incidents_open")["web"], 0);
  EXPECT_EQ(series_of("prescale_incidents_total")["web"], 1) << "counted, and kept";
  run(2min);
  EXPECT_EQ(events_of(model, "incident"), 1) << "no longer watched";

  feed.add_service("api", 0.001, 0);
  EXPECT_EQ(series_of("prescale_incidents_total").count("api"), 1u);
  EXPECT_EQ(series_of("prescale_slowdown_warning_open").count("api"), 1u);
}

// The same removal while the platform was stopped: the restore closes the incident and keeps it,
// resolved as of the restart (it vanished from the list before).
TEST(DashboardFeedTest, AnIncidentOfAServiceRemovedWhileStoppedIsClosedByTheRestore) {
  WatchedService before;
  before.run(10min);
  before.failing = 50;
  before.run(1min);
  ASSERT_EQ(events_of(before.platform.model, "incident"), 1);
  const nlohmann::json saved = before.feed.export_state(before.clock.now());

  WatchedService after(std::map<std::string, double>{});  // web is no longer in the file
  after.clock.advance(before.clock.now() - Clock::TimePoint{} + 5min);  // restarted later
  ASSERT_TRUE(after.feed.import_state(saved, after.clock.now()));
  const nlohmann::json incidents = after.platform.model.incidents_json().at("incidents");
  ASSERT_EQ(incidents.size(), 1u) << incidents.dump();
  EXPECT_EQ(incidents[0].at("service"), "web");
  EXPECT_TRUE(incidents[0].at("resolved_at").is_number()) << incidents.dump();
  EXPECT_GE(incidents[0].at("resolved_at").get<double>(),
            incidents[0].at("opened_at").get<double>());
}

// A service failing half its requests opens an incident: said, shown (an event, the incident's
// list, the service's card) and counted; it is resolved once the failures stop.
TEST(DashboardFeedTest, AnIncidentIsShownCountedAndResolved) {
  WatchedService watched;
  ManualClock& clock = watched.clock;
  dashboard::DashboardModel& model = watched.platform.model;
  telemetry::Registry& registry = watched.registry;
  DashboardFeed& feed = watched.feed;
  double& failing = watched.failing;
  double& slow = watched.slow;
  auto run = [&](Clock::Duration d) { watched.run(d); };
  auto count = [&](const std::string& kind) { return events_of(model, kind); };
  auto metric = [&](const std::string& name) { return first_value(registry, name); };

  run(10min);
  EXPECT_EQ(count("incident"), 0);
  EXPECT_EQ(metric("prescale_incidents_total"), 0) << "each service's series from the start";
  feed.on_replica_event({clock.now(), "crash", "web", "web-1", "exited with status 1"});
  failing = 40;
  slow = 10;
  run(1min);
  ASSERT_EQ(count("incident"), 1);
  const nlohmann::json incidents = model.incidents_json().at("incidents");
  ASSERT_EQ(incidents.size(), 1u);
  EXPECT_EQ(incidents[0].at("service"), "web");
  EXPECT_TRUE(incidents[0].at("resolved_at").is_null());
  EXPECT_EQ(incidents[0].at("cause").get<std::string>().rfind("a crash ", 0), 0u)
      << incidents[0].at("cause");
  EXPECT_EQ(model.services_json().at("services").at(0).at("incident").at("id"), 1);
  EXPECT_NEAR(incidents[0].at("slow").get<double>(), incidents[0].at("failed").get<double>() / 4,
              1e-6)
      << "10 slow for every 40 failed";
  const nlohmann::json events = model.events_json();
  for (const auto& e : events.at("events")) {
    if (e.at("kind") == "incident") {
      EXPECT_EQ(e.at("t"), incidents[0].at("opened_at"));
    }
  }
  EXPECT_EQ(metric("prescale_incidents_total"), 1);
  EXPECT_EQ(metric("prescale_incidents_open"), 1);

  failing = 0;
  slow = 0;
  run(40min);
  EXPECT_EQ(count("resolved"), 1);
  EXPECT_EQ(count("incident"), 1) << "one incident, not one per point";
  EXPECT_FALSE(model.incidents_json().at("incidents").at(0).at("resolved_at").is_null());
  EXPECT_TRUE(model.services_json().at("services").at(0).at("incident").is_null());
  EXPECT_EQ(metric("prescale_incidents_open"), 0);
}

// One service "web" of two ready replicas with 4 workers each, scraped every 5 s: 100 req/s,
// each request `service_seconds` in service (the window's mean concurrency is the M/M/8
// queue's, waiting included).
class ScriptedWorld final : public control::World {
 public:
  const scaling::Snapshot& observe(Clock::TimePoint now) override {
    snapshot_ = {};
    snapshot_.time = now;
    scaling::ServiceObservation o;
    o.name = "web";
    o.desired_replicas = 2;
    for (const char* id : {"web-1", "web-2"}) {
      scaling::ReplicaObservation r;
      r.id = id;
      r.state = scaling::ReplicaState::kReady;
      r.ready_at = Clock::TimePoint{};
      o.replicas.push_back(r);
    }
    o.window.sampled_at = now - (now.time_since_epoch() % 5s);
    o.window.length = 30s;
    o.window.arrival_rps = o.window.served_rps = 100;
    o.window.concurrency = scaling::mmc_mean_in_system(8, 100 * service_seconds);
    o.window.latency_p99_seconds = 5 * service_seconds;
    snapshot_.services.push_back(o);
    return snapshot_;
  }
  Result<void> scale(std::string_view, int) override { return {}; }
  Result<void> restart(std::string_view) override { return {}; }
  double service_seconds = 0.02;

 private:
  scaling::Snapshot snapshot_;
};

// Each request of a service taking three times as long in service for minutes gets a slowdown
// warning: said, shown (an event, the service's card) and counted; it clears once it is back.
TEST(DashboardFeedTest, ASlowdownWarningIsShownCountedAndCleared) {
  ManualClock clock;
  ScriptedWorld world;
  EverySecond policy;
  scaling::ServiceSpec spec = OneService::web_spec();
  spec.max_concurrency = 4;
  control::Controller controller(world, policy, {spec}, clock);
  dashboard::DashboardModel model;
  model.set_services({{"web", "command", 200, 1, 4, dashboard::kNoValue}});
  telemetry::Registry registry;
  control::WorldTotals totals;
  const TotalsOf totals_of = [&](std::string_view) { return totals; };
  DashboardFeedOptions options{"every-second"};
  options.error_budgets = {{"web", 0.001}};
  options.registry = &registry;
  options.max_concurrency = {{"web", 4}};
  DashboardFeed feed(model, totals_of, nullptr, options, clock);
  auto run = [&](Clock::Duration d) {
    for (Clock::Duration t{0}; t < d; t += 1s) {
      const std::optional<scaling::Plan> plan = controller.tick();
      feed.after_tick(controller, plan, controller.take_events());
      clock.advance(1s);
      totals.requests += 100;
      totals.within_slo += 100;
    }
  };
  auto count = [&](const std::string& kind) { return events_of(model, kind); };
  auto metric = [&](const std::string& name) { return first_value(registry, name); };
  auto card = [&] { return model.services_json().at("services").at(0).at("slowdown"); };

  run(45min);  // past the watch's warm-up
  EXPECT_EQ(count("slower"), 0);
  EXPECT_EQ(metric("prescale_slowdown_warnings_total"), 0)
      << "each service's series from the start";
  EXPECT_TRUE(card().is_null());
  world.service_seconds = 0.06;
  run(10min);
  ASSERT_EQ(count("slower"), 1);
  ASSERT_FALSE(card().is_null());
  EXPECT_EQ(card().at("id"), 1);
  // 2 replicas of 4 workers: the M/M/8 occupancy at 100 req/s gives the service time back.
  EXPECT_NEAR(card().at("usual_ms").get<double>(), 20, 1e-3);
  // The median of the last 5 minutes' points at the opening: at 1.2 times the usual or more.
  EXPECT_GE(card().at("service_ms").get<double>(), 24);
  EXPECT_LE(card().at("service_ms").get<double>(), 60);
  EXPECT_NEAR(card().at("p99_ms").get<double>(), 300, 1e-6);
  EXPECT_NE(card().at("summary").get<std::string>().find("its usual"), std::string::npos);
  EXPECT_EQ(metric("prescale_slowdown_warnings_total"), 1);
  EXPECT_EQ(metric("prescale_slowdown_warning_open"), 1);
  EXPECT_EQ(feed.slowdowns().opened(), 1U);

  world.service_seconds = 0.02;
  run(10min);
  EXPECT_EQ(count("cleared"), 1);
  EXPECT_EQ(count("slower"), 1) << "one warning, not one per point";
  EXPECT_TRUE(card().is_null());
  EXPECT_EQ(metric("prescale_slowdown_warning_open"), 0);
}

// A state directory of its own, removed at the end.
struct TempStore {
  std::string dir = [] {
    std::string d = (std::filesystem::temp_directory_path() / "prescale-feed-XXXXXX").string();
    if (::mkdtemp(d.data()) == nullptr) d.clear();
    return d;
  }();
  Result<control::HistoryStore> store = control::HistoryStore::open(dir);
  ~TempStore() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
};

// The dashboard's charts across a restart (docs/state.md, "prescale/charts"): saved once a minute
// of their points' time at most, and at the last save; restored before the new run's points,
// those not before now left out, the newest up to the limit; a state this build cannot read adds
// nothing and names what is wrong.
TEST(DashboardFeedTest, TheChartsGoOnAfterARestart) {
  TempStore temp;
  ASSERT_TRUE(temp.store) << temp.store.error().message;
  control::HistoryStore& store = *temp.store;
  const std::vector<dashboard::ServiceInfo> services = {{"web", "command", 200, 1, 4},
                                                        {"db", "command", 200, 1, 4}};
  dashboard::DashboardModel first;
  first.set_services(services);
  auto point = [](double t, double load, int ready) {
    dashboard::ServicePoint p;
    p.t = t;
    p.load_rps = load;
    p.forecast_p90 = load * 1.5;
    p.planned_replicas = ready + 1;
    p.ready_replicas = ready;
    p.p99_ms = 12.25;
    p.errors_rps = 0;
    return p;
  };
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(first.append_point("web", point(1000 + 5 * i, 10 + i, 2)));
  const auto wall = [](double t) {
    return Clock::WallTime(
        std::chrono::duration_cast<Clock::WallTime::duration>(std::chrono::duration<double>(t)));
  };
  auto saved_points = [&] {
    auto blob = store.get_state(kChartsKey);
    return blob && *blob ? (*blob)->value.at("services").at("web").at("t").size() : 0;
  };
  DashboardSaver saver;
  ASSERT_TRUE(saver.save(store, first, wall(1011)));
  EXPECT_EQ(saved_points(), 3U);
  ASSERT_TRUE(first.append_point("web", point(1030, 1.0 / 3, 3)));
  ASSERT_TRUE(saver.save(store, first, wall(1031)));
  EXPECT_EQ(saved_points(), 3U) << "20 s of points since the last write: not yet";
  ASSERT_TRUE(saver.save(store, first, wall(1032), /*last=*/true));
  EXPECT_EQ(saved_points(), 4U) << "the last save of the run";
  ASSERT_TRUE(first.append_point("web", point(1075, 2.5e-7, 3)));
  ASSERT_TRUE(saver.save(store, first, wall(1076)));
  EXPECT_EQ(saved_points(), 4U) << "45 s since";
  ASSERT_TRUE(first.append_point("web", point(1080, 123456789, 3)));
  ASSERT_TRUE(saver.save(store, first, wall(1081)));
  EXPECT_EQ(saved_points(), 6U) << "50 s since: a save a minute writes once a minute";

  // The next run, its services listed: the points come back, 6 significant digits.
  dashboard::DashboardModel second;
  second.set_services(services);
  auto restored = restore_charts(store, second, wall(1100));
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(*restored, 6U);
  const nlohmann::json was = first.service_json("web")->at("series");
  const nlohmann::json is = second.service_json("web")->at("series");
  EXPECT_EQ(is.at("t"), was.at("t"));
  EXPECT_EQ(is.at("ready_replicas"), was.at("ready_replicas"));
  EXPECT_EQ(is.at("memory_mib"), was.at("memory_mib")) << "nulls stay null";
  for (size_t i = 0; i < was.at("t").size(); ++i) {  // to 6 significant digits
    for (const char* column : {"load_rps", "forecast_p90"}) {
      const double v = was.at(column).at(i);
      EXPECT_NEAR(is.at(column).at(i).get<double>(), v, std::abs(v) * 5e-6) << column << i;
    }
  }
  EXPECT_NE(is.at("load_rps").at(3).get<double>(), 1.0 / 3) << "rounded";
  EXPECT_TRUE(second.append_point("web", point(1100, 5, 1))) << "this run's points go on";
  EXPECT_TRUE(second.service_json("db")->at("series").at("t").empty());

  // A clock set back since: the points not before now are left out. A smaller limit keeps the
  // newest.
  dashboard::DashboardModel behind;
  behind.set_services(services);
  EXPECT_EQ(restore_charts(store, behind, wall(1010)).value_or(0), 2U);
  dashboard::DashboardModel small({.points_per_service = 2});
  small.set_services(services);
  EXPECT_EQ(restore_charts(store, small, wall(1100)).value_or(0), 2U);
  EXPECT_EQ(small.service_json("web")->at("series").at("t"), nlohmann::json({1075, 1080}));
  // Started again hours later: only the last 4 hours' points come back.
  dashboard::DashboardModel later;
  later.set_services(services);
  EXPECT_EQ(restore_charts(store, later, wall(1030 + kChartsKept)).value_or(0), 3U);

  // What no run could write.
  nlohmann::json bad = store.get_state(kChartsKey).value()->value;
  bad["services"]["web"]["ready_replicas"][1] = -1;
  ASSERT_TRUE(store.put_state(kChartsKey, bad, 1100));
  dashboard::DashboardModel refused;
  refused.set_services(services);
  auto r = restore_charts(store, refused, wall(1100));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(
                "state \"prescale/charts\": services[web].ready_replicas[1]: not a count of "
                "replicas"),
            std::string::npos)
      << r.error().message;
  bad["services"]["web"]["ready_replicas"][1] = 2;
  bad["services"]["web"]["load_rps"].erase(0);
  ASSERT_TRUE(store.put_state(kChartsKey, bad, 1100));
  r = restore_charts(store, refused, wall(1100));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("services[web].load_rps: not an array of 6 values, as t"),
            std::string::npos)
      << r.error().message;
  bad["services"]["web"] = 7;
  ASSERT_TRUE(store.put_state(kChartsKey, bad, 1100));
  r = restore_charts(store, refused, wall(1100));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("services[web]: not an object"), std::string::npos)
      << r.error().message;
  EXPECT_TRUE(refused.service_json("web")->at("series").at("t").empty()) << "nothing added";
}

// A restart (docs/state.md): the open warning and incident, their numbers, the timeline and the
// usual service time they are judged on come back from the state directory, and the episode
// goes on where it was.
TEST(DashboardFeedTest, ARestartedPlatformGoesOnWithItsWarningsIncidentsAndTimeline) {
  TempStore temp;
  auto& store = temp.store;
  ASSERT_TRUE(store) << store.error().message;

  ManualClock clock;
  ScriptedWorld world;
  EverySecond policy;
  scaling::ServiceSpec spec = OneService::web_spec();
  spec.max_concurrency = 4;
  control::WorldTotals totals;
  const TotalsOf totals_of = [&](std::string_view) { return totals; };
  bool failing = false;
  // One run of the platform: its model, metrics, controller and feed.
  struct Run {
    dashboard::DashboardModel model;
    telemetry::Registry registry;
    std::unique_ptr<control::Controller> controller;
    std::unique_ptr<DashboardFeed> feed;
  };
  auto start = [&](Run& r) {
    r.model.set_services({{"web", "command", 200, 1, 4, dashboard::kNoValue}});
    r.controller = std::make_unique<control::Controller>(
        world, policy, std::vector<scaling::ServiceSpec>{spec}, clock);
    DashboardFeedOptions options{"every-second"};
    options.error_budgets = {{"web", 0.001}};
    options.registry = &r.registry;
    options.max_concurrency = {{"web", 4}};
    r.feed = std::make_unique<DashboardFeed>(r.model, totals_of, nullptr, options, clock);
  };
  auto run = [&](Run& r, Clock::Duration d) {
    for (Clock::Duration t{0}; t < d; t += 1s) {
      const std::optional<scaling::Plan> plan = r.controller->tick();
      r.feed->after_tick(*r.controller, plan, r.controller->take_events());
      clock.advance(1s);
      totals.requests += 100;
      (failing ? totals.failed : totals.within_slo) += 100;
    }
  };

  Run first;
  start(first);
  run(first, 45min);
  world.service_seconds = 0.06;
  run(first, 10min);
  failing = true;
  run(first, 2min);
  ASSERT_EQ(events_of(first.model, "slower"), 1);
  ASSERT_EQ(events_of(first.model, "incident"), 1);
  // The warning open before the failures is the incident's likely cause.
  EXPECT_EQ(first.model.incidents_json()
                .at("incidents")
                .at(0)
                .at("cause")
                .get<std::string>()
                .substr(0, 28),
            "its slowdown warning 1, open");
  const double opened_at =
      first.model.services_json().at("services").at(0).at("slowdown").at("opened_at");
  ASSERT_TRUE(save_feed_state(*store, *first.feed, clock.now(), clock.wall_now()));
  DashboardSaver saver;
  ASSERT_TRUE(saver.save(*store, first.model, clock.wall_now()));

  // Stopped for ten minutes; the service still slow and failing when it comes back.
  clock.advance(10min);
  Run second;
  auto events = restore_timeline(*store, second.model);
  ASSERT_TRUE(events) << events.error().message;
  EXPECT_EQ(*events, first.model.events().size());
  EXPECT_EQ(events_of(second.model, "slower"), 1);
  start(second);
  auto restored = restore_feed_state(*store, *second.feed, clock.now());
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_TRUE(*restored);
  const nlohmann::json card = second.model.services_json().at("services").at(0);
  ASSERT_FALSE(card.at("slowdown").is_null());
  EXPECT_EQ(card.at("slowdown").at("id"), 1);
  EXPECT_DOUBLE_EQ(card.at("slowdown").at("opened_at").get<double>(), opened_at);
  ASSERT_FALSE(card.at("incident").is_null());
  EXPECT_EQ(card.at("incident").at("id"), 1);
  EXPECT_EQ(first_value(second.registry, "prescale_slowdown_warning_open"), 1);
  EXPECT_EQ(first_value(second.registry, "prescale_incidents_open"), 1);
  EXPECT_EQ(first_value(second.registry, "prescale_slowdown_warnings_total"), 0)
      << "a counter of this process's openings";

  run(second, 5min);  // the same episodes: nothing new
  EXPECT_EQ(events_of(second.model, "slower"), 1);
  EXPECT_EQ(events_of(second.model, "incident"), 1);
  failing = false;
  world.service_seconds = 0.02;
  run(second, 90min);
  EXPECT_EQ(events_of(second.model, "cleared"), 1);
  EXPECT_EQ(events_of(second.model, "resolved"), 1);
  const nlohmann::json incidents = second.model.incidents_json().at("incidents");
  ASSERT_EQ(incidents.size(), 1U);
  EXPECT_EQ(incidents.at(0).at("id"), 1);
  EXPECT_FALSE(incidents.at(0).at("resolved_at").is_null());

  // A state this build cannot read is said, and the feed goes on without it.
  ASSERT_TRUE(store->put_state(kFeedStateKey, {{"format", 2}}, 0));
  Run third;
  start(third);
  auto refused = restore_feed_state(*store, *third.feed, clock.now());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("\"prescale/healing\": not in format 1"),
            std::string::npos)
      << refused.error().message;
  EXPECT_EQ(third.feed->incidents().opened(), 0U);
}

}  // namespace
}  // namespace prescale
