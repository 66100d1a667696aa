// The dashboard in a real browser (issue "Dashboard"): headless Chromium, driven through
// ChromeDriver's W3C WebDriver HTTP API, loads /ui from a Dashboard over a model filled with
// synthetic data and must draw every chart with data, draw the call graph, log no errors, and
// show a point appended to the model within a few seconds (live updates). It saves a screenshot
// to ${CMAKE_BINARY_DIR}/artifacts/dashboard.png.
//
// Needs the Debian packages chromium and chromium-driver (scripts/install-deps); skips without.
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "dashboard/dashboard.h"
#include "dashboard/dashboard_model.h"
#include "http/client.h"
#include "http/router.h"
#include "http/server.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Subprocess;
using testing::TempDir;

constexpr const char* kChromium = "/usr/bin/chromium";
constexpr const char* kChromedriver = "/usr/bin/chromedriver";
// A fixed time base (2023-11-14 22:13:20 UTC): the data, and so the screenshot, are the same in
// every run.
constexpr double kT0 = 1'700'000'000;
constexpr double kStepSeconds = 5;
constexpr int kPoints = 180;  // 15 minutes

std::string base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0;
  unsigned acc = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) continue;  // '=' padding, line breaks
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Three services behind a gateway, with a daily-ish ramp, a forecast band, a scale-up, a crash.
void fill(dashboard::DashboardModel& m) {
  m.set_services({{"frontend", "gateway", 250, 2, 12},
                  {"recommend", "recommend", 120, 2, 20},
                  {"fraud", "fraud", 60, 1, 8}});
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

// The few WebDriver calls the test needs, over the project's HTTP client.
class WebDriver {
 public:
  explicit WebDriver(uint16_t port) : port_(port) {}

  // The "value" member of the answer; a JSON null with the error in `error()` on failure.
  json call(http::Method method, const std::string& path, const json& body = nullptr) {
    http::Request req;
    req.method = method;
    req.method_name = std::string(http::to_string(method));
    req.target = path;
    if (!body.is_null()) {
      req.body = body.dump();
      req.headers.set("Content-Type", "application/json");
    }
    auto r = client_.request("127.0.0.1", port_, std::move(req), 60s);
    if (!r) {
      error_ = path + ": " + r.error().to_string();
      return nullptr;
    }
    json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    if (r->status != 200 || j.is_discarded()) {
      error_ = path + ": HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 500);
      return nullptr;
    }
    error_.clear();
    return j.value("value", json(nullptr));
  }
  const std::string& error() const { return error_; }

 private:
  uint16_t port_;
  http::Client client_;
  std::string error_;
};

// Kills the processes whose parent is `pid` (the browser ChromeDriver started), so a failed
// test leaves no Chromium behind. Its own children exit when it does.
void kill_children_of(pid_t pid) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  while (dirent* e = readdir(proc)) {
    const pid_t child = static_cast<pid_t>(std::atoi(e->d_name));
    if (child <= 0) continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    std::getline(stat, line);
    // "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == pid) {
      ::kill(child, SIGKILL);
    }
  }
  closedir(proc);
}

class DashboardBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kChromium, X_OK) != 0 || access(kChromedriver, X_OK) != 0) {
      GTEST_SKIP() << "needs " << kChromium << " and " << kChromedriver
                   << " (Debian packages chromium chromium-driver; run scripts/install-deps)";
    }
    fill(model_);
    dashboard::Dashboard(model_).add_routes(router_);
    http::ServerOptions options;
    options.threads = 2;
    server_ = std::make_unique<http::Server>(options, router_.as_handler());
    ASSERT_TRUE(server_->start());

    const int driver_port = testing::free_port();
    driver_ = std::make_unique<Subprocess>(
        std::vector<std::string>{kChromedriver, "--port=" + std::to_string(driver_port)},
        dir_.file("chromedriver.log"));
    wd_ = std::make_unique<WebDriver>(static_cast<uint16_t>(driver_port));
    ASSERT_TRUE(testing::wait_for(
        [&] {
          json s = wd_->call(http::Method::kGet, "/status");
          return s.is_object() && s.value("ready", false);
        },
        20s))
        << "chromedriver did not start: " << wd_->error() << "\n"
        << driver_->log();

    json caps = {
        {"capabilities",
         {{"alwaysMatch",
           {{"browserName", "chrome"},
            {"goog:chromeOptions",
             {{"binary", kChromium},
              {"args",
               {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--user-data-dir=" + dir_.file("profile")}}}},
            {"goog:loggingPrefs", {{"browser", "ALL"}}}}}}}};
    json session = wd_->call(http::Method::kPost, "/session", caps);
    ASSERT_TRUE(session.is_object()) << wd_->error() << "\n" << driver_->log();
    session_ = "/session/" + session.value("sessionId", std::string());
  }

  void TearDown() override {
    if (!session_.empty()) wd_->call(http::Method::kDelete, session_);
    if (driver_) {
      kill_children_of(driver_->pid());
      driver_.reset();
    }
    if (server_) server_->shutdown(1s);
  }

  // Runs `body` (a JavaScript function body) in the page and returns what it returns.
  json script(const std::string& body) {
    return wd_->call(http::Method::kPost, session_ + "/execute/sync",
                     {{"script", body}, {"args", json::array()}});
  }

  // What the page drew: per chart its data-points, the graph's counts, the events shown.
  json page_state() {
    return script(R"js(
      const charts = [...document.querySelectorAll('.card .chart')].map((c) => ({
        service: c.closest('.card').dataset.service, chart: c.dataset.chart,
        points: Number(c.dataset.points), canvases: c.querySelectorAll('canvas').length }));
      const g = document.getElementById('graph');
      return { charts, nodes: Number(g.dataset.nodes), edges: Number(g.dataset.edges),
               edge_elements: [...g.querySelectorAll('g.edge')].map(
                   (e) => e.dataset.caller + '>' + e.dataset.callee),
               events: [...document.querySelectorAll('#events li')].map((li) => li.dataset.kind),
               requests: document.getElementById('ov-requests').textContent,
               status: document.getElementById('status').dataset.state };)js");
  }

  json browser_log() {
    json log = wd_->call(http::Method::kPost, session_ + "/se/log", {{"type", "browser"}});
    if (log.is_null())
      log = wd_->call(http::Method::kPost, session_ + "/log", {{"type", "browser"}});
    return log;
  }

  int points_of(const json& state, const std::string& service, const std::string& chart) {
    for (const auto& c : state["charts"]) {
      if (c["service"] == service && c["chart"] == chart) return c["points"].get<int>();
    }
    return -1;
  }

  TempDir dir_;
  dashboard::DashboardModel model_;
  http::Router router_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<Subprocess> driver_;
  std::unique_ptr<WebDriver> wd_;
  std::string session_;
};

TEST_F(DashboardBrowserTest, ChartsDrawDataWithoutErrorsAndUpdateLive) {
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port()) + "/ui";
  wd_->call(http::Method::kPost, session_ + "/url", {{"url", url}});
  ASSERT_EQ(wd_->error(), "");

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
  ASSERT_TRUE(drawn) << "page state: " << state.dump() << "\n" << wd_->error();
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

  // Nothing went wrong in the page: no failed resource, no script error.
  json log = browser_log();
  ASSERT_TRUE(log.is_array()) << "browser log: " << wd_->error();
  for (const auto& entry : log) {
    EXPECT_NE(entry.value("level", ""), "SEVERE") << entry.dump();
  }

  json png = wd_->call(http::Method::kGet, session_ + "/screenshot");
  ASSERT_TRUE(png.is_string()) << wd_->error();
  const std::string bytes = base64_decode(png.get<std::string>());
  ASSERT_GT(bytes.size(), 10000u);
  ASSERT_EQ(bytes.substr(1, 3), "PNG");
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

  log = browser_log();
  ASSERT_TRUE(log.is_array());
  for (const auto& entry : log) EXPECT_NE(entry.value("level", ""), "SEVERE") << entry.dump();
}

}  // namespace
}  // namespace prescale
