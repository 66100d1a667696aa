// The dashboard of the running platform in a real browser (issue "Dashboard"): `prescale up`
// with one echo service, `prescale load` at three replicas' worth of traffic, and headless
// Chromium on /ui. The echo service's charts must draw real points, the events list must show
// the policy's scale-up, and the page must log no errors. It saves a screenshot to
// ${CMAKE_BINARY_DIR}/artifacts/dashboard-live.png. SIGINT then stops the platform cleanly, with
// no replica left behind.
//
// Needs the Debian packages chromium and chromium-driver (scripts/install-deps); skips without.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "http/client.h"
#include "support/browser.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Browser;
using testing::Subprocess;
using testing::TempDir;

// One echo service of 100 req/s per replica behind the gateway; the policy ticks every 2 s.
constexpr const char* kConfig = R"(version: 1
policy: {name: prescale, period: 2s}
services:
  - name: echo
    kind: builtin/echo
    replicas: {min: 1, max: 4, initial: 1}
    startup_time: 1s
    capacity_rps: 100
    slo: {latency_p99_ms: 100}
gateway:
  listen: "127.0.0.1:0"
  routes:
    - match: {path_prefix: /}
      service: echo
)";

json get_json(uint16_t port, const std::string& target) {
  http::Client client;
  http::Request req;
  req.method = http::Method::kGet;
  req.method_name = "GET";
  req.target = target;
  auto r = client.request("127.0.0.1", port, std::move(req), 5s);
  if (!r || r->status != 200) return nullptr;
  return json::parse(r->body, nullptr, /*allow_exceptions=*/false);
}

// The pids of the replicas the platform started ("start" and "restart" events read "pid N, ...").
std::vector<int> replica_pids(const json& events) {
  std::vector<int> pids;
  if (!events.is_object()) return pids;
  static const std::regex pid_re("pid ([0-9]+)");
  for (const auto& e : events["events"]) {
    const auto kind = e.find("kind"), message = e.find("message");
    if (kind == e.end() || message == e.end() || !message->is_string()) continue;
    if (*kind != "start" && *kind != "restart") continue;
    const std::string& text = message->get_ref<const std::string&>();
    std::smatch m;
    if (std::regex_search(text, m, pid_re)) pids.push_back(std::stoi(m[1]));
  }
  return pids;
}

// Whether `pid` runs; a zombie still answers kill(pid, 0), so its state is read too.
bool alive(int pid) {
  if (::kill(pid, 0) != 0) return false;
  const std::string stat = testing::read_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// Stops `prescale up` with SIGINT however the test ends: the Subprocess's own SIGKILL would
// leave its replicas running.
class StopWithSigint {
 public:
  explicit StopWithSigint(Subprocess& platform) : platform_(platform) {}
  ~StopWithSigint() { stop(); }
  // The platform's exit status; nullopt if it did not exit within 30 s.
  std::optional<int> stop() {
    if (!stopped_) {
      stopped_ = true;
      platform_.signal(SIGINT);
      exit_status_ = platform_.wait(30s);
    }
    return exit_status_;
  }

 private:
  Subprocess& platform_;
  bool stopped_ = false;
  std::optional<int> exit_status_;
};

TEST(DashboardLiveTest, ChartsOfTheRunningPlatformDrawRealDataWithoutErrors) {
  if (!Browser::available()) {
    GTEST_SKIP() << "needs " << Browser::kChromium << " and " << Browser::kChromedriver
                 << " (Debian packages chromium chromium-driver; run scripts/install-deps)";
  }
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, kConfig);
  const std::string gw_file = dir.file("gateway.port"), ui_file = dir.file("ui.port");
  Subprocess platform({PRESCALE_BIN, "up", "-f", config, "--state-dir", dir.file("state"), "--ui",
                       "127.0.0.1:0", "--port-file", gw_file, "--ui-port-file", ui_file},
                      dir.file("up.log"));
  StopWithSigint stopper(platform);
  ASSERT_TRUE(testing::wait_for(
      [&] { return !testing::read_file(gw_file).empty() && !testing::read_file(ui_file).empty(); },
      20s))
      << platform.log();
  const int gateway_port = std::stoi(testing::read_file(gw_file));
  const auto ui_port = static_cast<uint16_t>(std::stoi(testing::read_file(ui_file)));

  // 300 req/s against 100 per replica: the policy scales from 1 to 3 or more.
  Subprocess load({PRESCALE_BIN, "load", "--rate", "300", "--duration", "25s", "--target",
                   "http://127.0.0.1:" + std::to_string(gateway_port), "--mix", "GET /echo:1"},
                  dir.file("load.log"));

  auto browser = Browser::start(dir.path());
  ASSERT_TRUE(browser) << browser.error();
  Browser& b = **browser;
  ASSERT_TRUE(b.navigate("http://127.0.0.1:" + std::to_string(ui_port) + "/ui")) << b.error();

  // The echo card's charts have points of their own and the scale-up is listed.
  json state;
  const bool drawn = testing::wait_for(
      [&] {
        state = b.script(R"js(
          const card = document.querySelector('.card[data-service="echo"]');
          const charts = card ? [...card.querySelectorAll('.chart')].map((c) => ({
            chart: c.dataset.chart, points: Number(c.dataset.points),
            canvases: c.querySelectorAll('canvas').length })) : [];
          return { charts,
                   events: [...document.querySelectorAll('#events li')].map(
                       (li) => li.dataset.kind),
                   status: document.getElementById('status').dataset.state };)js");
        if (!state.is_object() || state["charts"].size() != 3) return false;
        for (const auto& c : state["charts"]) {
          if (c["points"].get<int>() <= 3) return false;
        }
        const auto& events = state["events"];
        return std::find(events.begin(), events.end(), "scale") != events.end();
      },
      30s);
  ASSERT_TRUE(drawn) << "page state: " << state.dump() << "\n"
                     << b.error() << "\nplatform:\n"
                     << platform.log();
  for (const auto& c : state["charts"]) {
    EXPECT_GE(c["canvases"].get<int>(), 1) << c.dump();  // uPlot drew on a canvas
  }
  EXPECT_EQ(state["status"], "live");

  // Nothing went wrong in the page: no failed resource, no script error.
  const json log = b.log();
  ASSERT_TRUE(log.is_array()) << "browser log: " << b.error();
  for (const auto& entry : log) {
    EXPECT_NE(entry.value("level", ""), "SEVERE") << entry.dump();
  }

  auto png = b.screenshot_png();
  ASSERT_TRUE(png) << png.error();
  testing::write_file(dir.file("dashboard-live.png"), *png);
  std::filesystem::create_directories(PRESCALE_ARTIFACTS_DIR);
  const std::string artifact = std::string(PRESCALE_ARTIFACTS_DIR) + "/dashboard-live.png";
  testing::write_file(artifact, *png);
  std::printf("dashboard screenshot: %s\n", artifact.c_str());
  browser->reset();

  // SIGINT stops the platform cleanly and takes every replica with it.
  const std::vector<int> pids = replica_pids(get_json(ui_port, "/api/v1/events"));
  EXPECT_GE(pids.size(), 3u);
  load.signal(SIGINT);
  platform.signal(SIGINT);
  EXPECT_EQ(stopper.stop(), 0) << platform.log();
  for (const int pid : pids) EXPECT_FALSE(alive(pid)) << "replica pid " << pid << " still runs";
}

}  // namespace
}  // namespace prescale
