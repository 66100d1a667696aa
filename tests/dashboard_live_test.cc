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
// GCC 12 at -O3 reports null dereferences inside nlohmann::json's inlined accessors that cannot
// happen (the objects are checked first); the warning is an error in this build.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/browser.h"
#include "support/platform.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Browser;
using testing::Platform;
using testing::replica_pids;
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

TEST(DashboardLiveTest, ChartsOfTheRunningPlatformDrawRealDataWithoutErrors) {
  if (!Browser::available()) {
    GTEST_SKIP() << "needs " << Browser::kChromium << " and " << Browser::kChromedriver
                 << " (Debian packages chromium chromium-driver; run scripts/install-deps)";
  }
  TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, kConfig);
  Platform platform(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ASSERT_TRUE(platform.started()) << platform.log();
  const int gateway_port = platform.gateway_port();
  const uint16_t ui_port = platform.ui_port();

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
                   incidents: document.getElementById('incidents').dataset.key !== undefined &&
                       (document.getElementById('incidents-empty').hidden ===
                        document.querySelectorAll('#incidents li').length > 0),
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
  EXPECT_EQ(state["incidents"], true)
      << "the incidents' panel was drawn: its rows, or \"None.\" without any";

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
  const std::vector<int> pids = replica_pids(platform.events());
  EXPECT_GE(pids.size(), 3u);
  load.signal(SIGINT);
  EXPECT_EQ(platform.stop(), 0) << platform.log();
  for (const int pid : pids) {
    EXPECT_FALSE(testing::process_alive(pid)) << "replica pid " << pid << " still runs";
  }
}

}  // namespace
}  // namespace prescale
