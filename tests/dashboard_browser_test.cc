// The dashboard in a real browser (issue "Dashboard"): headless Chromium, driven through
// ChromeDriver's W3C WebDriver HTTP API, loads /ui from a Dashboard over a model filled with
// synthetic data and must draw every chart with data, draw the call graph, log no errors, and
// show a point appended to the model within a few seconds (live updates). It saves a screenshot
// to ${CMAKE_BINARY_DIR}/artifacts/dashboard.png.
//
// Needs the Debian packages chromium and chromium-driver (scripts/install-deps); skips without.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

#include "dashboard/dashboard.h"
#include "dashboard/dashboard_model.h"
#include "http/router.h"
#include "http/server.h"
#include "support/browser.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Browser;
using testing::TempDir;

// A fixed time base (2023-11-14 22:13:20 UTC): the data, and so the screenshot, are the same in
// every run.
constexpr double kT0 = 1'700'000'000;
constexpr double kStepSeconds = 5;
constexpr int kPoints = 180;  // 15 minutes

// Three services behind a gateway, with a daily-ish ramp, a forecast band, a scale-up, a crash.
void fill(dashboard::DashboardModel& m) {
  // recommend has a memory limit, fraud none; the frontend's memory is not known.
  m.set_services({{"frontend", "gateway", 250, 2, 12, dashboard::kNoValue},
                  {"recommend", "recommend", 120, 2, 20, 512},
                  {"fraud", "fraud", 60, 1, 8, dashboard::kNoValue}});
  const struct {
    const char* name;
    double base_rps, per_replica_rps, p99_base_ms;
  } kShapes[] = {{"frontend", 120, 60, 90}, {"recommend", 120, 25, 55}, {"fraud", 60, 30, 22}};
  for (const auto& s : kShapes) {
    for (int i = 0; i < kPoints; ++i) {
      const double x = static_cast<double>(i) / kPoints;
      const double load = s.base_rps * (1 + 1.5 * x + 0.15 * std::sin(i / 6.0));
      dashboard::ServicePoint p;
      p.t = kT0 + i * kStepSeconds;
      p.load_rps = load;
      p.forecast_p50 = s.base_rps * (1 + 1.5 * x);
      p.forecast_p90 = p.forecast_p50 * 1.12;
      p.forecast_p99 = p.forecast_p50 * 1.25;
      p.planned_replicas = static_cast<int>(std::ceil(p.forecast_p90 / s.per_replica_rps));
      p.ready_replicas = i % 40 < 6 ? p.planned_replicas - 1 : p.planned_replicas;  // lag
      p.p99_ms = s.p99_base_ms * (1 + 0.3 * (p.ready_replicas < p.planned_replicas)) +
                 3 * std::sin(i / 3.0);
      p.errors_rps = i % 40 == 3 ? 0.8 : 0.02;
      if (std::string_view(s.name) == "recommend") p.memory_mib = 200 + 0.2 * i;  // 235.8 last
      if (std::string_view(s.name) == "fraud") p.memory_mib = 80;
      ASSERT_TRUE(m.append_point(s.name, p));
    }
    std::vector<dashboard::ForecastPoint> band;
    const double last = kT0 + (kPoints - 1) * kStepSeconds;
    for (int k = 1; k <= 36; ++k) {
      const double p50 = s.base_rps * (2.5 + 0.01 * k);
      band.push_back(
          {last + k * kStepSeconds, p50, p50 * (1.1 + 0.004 * k), p50 * (1.22 + 0.008 * k)});
    }
    ASSERT_TRUE(m.set_forecast(s.name, std::move(band)));
  }
  ASSERT_TRUE(m.set_decision("recommend", kT0 + 800, 13, "forecast P90 312 rps in 60 s needs 13"));
  m.set_graph({{"frontend", "recommend", 1.0, 290},
               {"frontend", "fraud", 0.5, 145},
               {"recommend", "feature-store", 2.0, 580}});
  m.add_event({kT0 + 60, "scale", "recommend", "", "6 -> 8: forecast P90 180 rps ahead"});
  m.add_event({kT0 + 200, "crash", "fraud", "fraud-2", "exited with status 137"});
  m.add_event({kT0 + 203, "restart", "fraud", "fraud-2", "restarted after crash"});
  m.add_event({kT0 + 215, "ready", "fraud", "fraud-2", ""});
  m.add_event({kT0 + 420, "eject", "recommend", "recommend-4", "5 consecutive 5xx"});
  m.add_event({kT0 + 800, "scale", "recommend", "", "11 -> 13: forecast P90 312 rps in 60 s"});
  dashboard::Overview o;
  o.policy = "prescale";
  o.started_at = kT0;
  o.now = kT0 + (kPoints - 1) * kStepSeconds;
  o.requests = 412345;
  o.within_slo_share = 0.9987;
  o.replica_hours = 6.4;
  o.scaling_events = 2;
  m.set_overview(o);
}

class DashboardBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Browser::available()) {
      GTEST_SKIP() << "needs " << Browser::kChromium << " and " << Browser::kChromedriver
                   << " (Debian packages chromium chromium-driver; run scripts/install-deps)";
    }
    fill(model_);
    dashboard::Dashboard(model_).add_routes(router_);
    http::ServerOptions options;
    options.threads = 2;
    server_ = std::make_unique<http::Server>(options, router_.as_handler());
    ASSERT_TRUE(server_->start());

    auto browser = Browser::start(dir_.path());
    ASSERT_TRUE(browser) << browser.error();
    browser_ = std::move(*browser);
  }

  void TearDown() override {
    browser_.reset();
    if (server_) server_->shutdown(1s);
  }

  // What the page drew: per chart its data-points, the graph's counts, the events shown.
  json page_state() {
    return browser_->script(R"js(
      const charts = [...document.querySelectorAll('.card .chart')].map((c) => ({
        service: c.closest('.card').dataset.service, chart: c.dataset.chart,
        points: Number(c.dataset.points), gaps: Number(c.dataset.gaps),
        canvases: c.querySelectorAll('canvas').length }));
      const g = document.getElementById('graph');
      return { charts, nodes: Number(g.dataset.nodes), edges: Number(g.dataset.edges),
               edge_elements: [...g.querySelectorAll('g.edge')].map(
                   (e) => e.dataset.caller + '>' + e.dataset.callee),
               events: [...document.querySelectorAll('#events li')].map((li) => li.dataset.kind),
               requests: document.getElementById('ov-requests').textContent,
               memory: Object.fromEntries([...document.querySelectorAll('.card')].map((c) => [
                   c.dataset.service, c.querySelector('.facts span:last-child b').textContent])),
               status: document.getElementById('status').dataset.state };)js");
  }

  // Nothing went wrong in the page since the last look: no failed resource, no script error.
  void expect_no_errors_logged() {
    const json log = browser_->log();
    ASSERT_TRUE(log.is_array()) << "browser log: " << browser_->error();
    for (const auto& entry : log) {
      const auto level = entry.find("level");
      EXPECT_FALSE(level != entry.end() && *level == "SEVERE") << entry.dump();
    }
  }

  // A chart's data-points or data-gaps as the page set it; -1 for no such chart.
  int chart_count(const json& state, const std::string& service, const std::string& chart,
                  const char* key) {
    for (const auto& c : state["charts"]) {
      if (c["service"] == service && c["chart"] == chart) return c.value(key, -1);
    }
    return -1;
  }
  int points_of(const json& state, const std::string& service, const std::string& chart) {
    return chart_count(state, service, chart, "points");
  }
  int gaps_of(const json& state, const std::string& service, const std::string& chart) {
    return chart_count(state, service, chart, "gaps");
  }

  TempDir dir_;
  dashboard::DashboardModel model_;
  http::Router router_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<Browser> browser_;
};

TEST_F(DashboardBrowserTest, ChartsDrawDataWithoutErrorsAndUpdateLive) {
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port()) + "/ui";
  ASSERT_TRUE(browser_->navigate(url)) << browser_->error();

  // Every chart of every service has drawn its points.
  json state;
  const bool drawn = testing::wait_for(
      [&] {
        state = page_state();
        if (!state.is_object() || state["charts"].size() != 9) return false;
        for (const auto& c : state["charts"]) {
          if (c["points"].get<int>() < kPoints) return false;
        }
        return state["edges"] == 3;
      },
      20s);
  ASSERT_TRUE(drawn) << "page state: " << state.dump() << "\n" << browser_->error();
  for (const auto& c : state["charts"]) {
    EXPECT_EQ(c["points"], kPoints) << c.dump();
    EXPECT_GE(c["canvases"].get<int>(), 1) << c.dump();  // uPlot drew on a canvas
  }
  EXPECT_EQ(state["nodes"], 4);  // three services and the external feature-store
  EXPECT_THAT(state["edge_elements"].get<std::vector<std::string>>(),
              ::testing::UnorderedElementsAre("frontend>recommend", "frontend>fraud",
                                              "recommend>feature-store"));
  EXPECT_EQ(state["events"].size(), 6u);
  EXPECT_EQ(state["events"][0], "scale");  // newest first
  EXPECT_EQ(state["requests"], "412.3k");
  EXPECT_EQ(state["status"], "live");
  // The largest replica's memory, against the limit where there is one.
  EXPECT_EQ(state["memory"]["recommend"], "236 of 512 MiB");
  EXPECT_EQ(state["memory"]["fraud"], "80 MiB");
  EXPECT_EQ(state["memory"]["frontend"], "–");

  expect_no_errors_logged();

  auto png = browser_->screenshot_png();
  ASSERT_TRUE(png) << png.error();
  const std::string& bytes = *png;
  ASSERT_GT(bytes.size(), 10000u);
  testing::write_file(dir_.file("dashboard.png"), bytes);
  std::filesystem::create_directories(PRESCALE_ARTIFACTS_DIR);
  const std::string artifact = std::string(PRESCALE_ARTIFACTS_DIR) + "/dashboard.png";
  testing::write_file(artifact, bytes);
  std::printf("dashboard screenshot: %s\n", artifact.c_str());

  // Live: a new point and a new event appear without reloading the page.
  dashboard::ServicePoint p;
  p.t = kT0 + kPoints * kStepSeconds;
  p.load_rps = 400;
  p.planned_replicas = 14;
  p.ready_replicas = 13;
  p.p99_ms = 70;
  p.errors_rps = 0;
  ASSERT_TRUE(model_.append_point("recommend", p));
  model_.add_event({p.t, "drain", "recommend", "recommend-1", "draining for the update"});
  const bool live = testing::wait_for(
      [&] {
        state = page_state();
        return state.is_object() && points_of(state, "recommend", "load") == kPoints + 1 &&
               !state["events"].empty() && state["events"][0] == "drain";
      },
      10s);
  EXPECT_TRUE(live) << "page state: " << state.dump();
  EXPECT_EQ(points_of(state, "recommend", "replicas"), kPoints + 1);
  EXPECT_EQ(points_of(state, "frontend", "load"), kPoints);  // untouched
  EXPECT_EQ(gaps_of(state, "recommend", "load"), 0);

  // A point an hour later (the platform was stopped): the lines break there instead of drawing
  // a straight line across the hour nobody measured.
  p.t += 3600;
  ASSERT_TRUE(model_.append_point("recommend", p));
  const bool broken = testing::wait_for(
      [&] {
        state = page_state();
        return state.is_object() && points_of(state, "recommend", "load") == kPoints + 2;
      },
      10s);
  EXPECT_TRUE(broken) << "page state: " << state.dump();
  for (const char* chart : {"load", "replicas", "latency"}) {
    EXPECT_EQ(gaps_of(state, "recommend", chart), 1) << chart;
    EXPECT_EQ(gaps_of(state, "frontend", chart), 0) << chart;
  }

  expect_no_errors_logged();
}

}  // namespace
}  // namespace prescale
