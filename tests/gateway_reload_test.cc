// `prescale gateway -f FILE` reloading its configuration under load (issue "Configuration from
// prescale.yaml; reload on SIGHUP or file change with zero failed requests"): two `prescale
// serve echo` replicas behind the gateway, a client loop for ten seconds, and meanwhile the file
// rewritten (a route's timeout changed, a route added, a rate limit on another path, a broken
// file) and SIGHUP sent, several times each. No request may fail, and afterwards the new routes
// answer. Real processes on port 0; the only waits are the load's own duration and polls.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http/client.h"
#include "support/platform.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;
using testing::TempDir;

// A counter's value in Prometheus text, or -1.
double metric(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");  // not the # HELP line
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

class GatewayReloadCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      const std::string port_file = dir.file("echo" + std::to_string(i) + ".port");
      replicas.push_back(std::make_unique<Subprocess>(
          std::vector<std::string>{PRESCALE_BIN, "serve", "echo", "--port", "0", "--threads", "1",
                                   "--port-file", port_file},
          dir.file("echo" + std::to_string(i) + ".log")));
      const int port = testing::port_from_file(port_file);
      ASSERT_GT(port, 0) << port_file;
      upstreams += (i ? ", \"127.0.0.1:" : "[\"127.0.0.1:") + std::to_string(port) + "\"";
    }
    upstreams += "]";
  }

  // The configuration, version by version: `echo_timeout` of the /echo route, and the routes
  // added later.
  std::string yaml(const std::string& echo_timeout, bool delay_route, bool status_limit) const {
    std::string y = R"(version: 1
gateway:
  health_check: {interval: 1s, timeout: 500ms}
  upstreams:
    echo: )" + upstreams +
                    R"(
  routes:
    - match: {path_prefix: /echo}
      service: echo
      timeout: )" + echo_timeout +
                    "\n";
    if (delay_route) y += "    - {match: {path_prefix: /delay}, service: echo, timeout: 2s}\n";
    if (status_limit) {
      y += "    - match: {path_prefix: /status}\n"
           "      service: echo\n"
           "      rate_limit: {requests_per_second: 1, burst: 1}\n";
    }
    return y;
  }

  TempDir dir;
  std::vector<std::unique_ptr<Subprocess>> replicas;
  std::string upstreams;
};

TEST_F(GatewayReloadCliTest, ReloadsUnderLoadWithZeroFailedRequests) {
  const std::string config = dir.file("prescale.yaml");
  testing::save_file(config, yaml("10s", false, false));
  Subprocess gateway(
      {PRESCALE_BIN, "gateway", "-f", config, "--port", "0", "--port-file", dir.file("gw.port"),
       "--admin-port", "0", "--admin-port-file", dir.file("admin.port"), "--threads", "2"},
      dir.file("gateway.log"));
  const auto port = static_cast<uint16_t>(testing::port_from_file(dir.file("gw.port")));
  const auto admin = static_cast<uint16_t>(testing::port_from_file(dir.file("admin.port")));
  ASSERT_GT(port, 0) << gateway.log();
  ASSERT_GT(admin, 0) << gateway.log();
  http::Client client(http::ClientOptions{.request_timeout = 10s, .threads = 2});
  auto status = [&](const std::string& target) {
    auto r = client.request("127.0.0.1", port, testing::get_request(target));
    return r ? r->status : 0;
  };
  ASSERT_EQ(status("/echo"), 200);
  ASSERT_EQ(status("/delay/1"), 404);  // not routed yet

  // Four clients, 50 requests/s each, for ten seconds; a change to the file or a SIGHUP every
  // half second meanwhile.
  std::atomic<int> requests{0};
  std::mutex mu;
  std::vector<std::string> failures;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + 10s;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      for (auto next = std::chrono::steady_clock::now(); next < end; next += 20ms) {
        std::this_thread::sleep_until(next);
        auto r = client.request("127.0.0.1", port, testing::get_request("/echo"));
        requests.fetch_add(1);
        if (!r || r->status != 200) {
          std::lock_guard lock(mu);
          failures.push_back(r ? std::to_string(r->status) + " " + r->body : r.error().message);
        }
      }
    });
  }
  // The reload counters, read from the admin port: {ok, failed}.
  auto reload_counts = [&]() -> std::pair<double, double> {
    auto m = client.request("127.0.0.1", admin, testing::get_request("/metrics"));
    if (!m) return {-1, -1};
    return {metric(m->body, R"(prescale_gateway_config_reloads_total{result="ok"})"),
            metric(m->body, R"(prescale_gateway_config_reloads_total{result="failed"})")};
  };
  // Each SIGHUP, and the broken file, is waited for until the gateway has counted its reload:
  // the file watcher looks once a second, and on a busy machine a change paced by the clock alone
  // could be overwritten before the gateway saw it (the broken file then never fails).
  auto sighup = [&] {
    const auto [ok, failed] = reload_counts();
    gateway.signal(SIGHUP);
    EXPECT_TRUE(testing::wait_for(
        [&] {
          const auto [ok_now, failed_now] = reload_counts();
          return ok_now + failed_now > ok + failed;
        },
        10s))
        << "no reload counted after a SIGHUP\n"
        << gateway.log();
  };
  const std::vector<std::function<void()>> changes = {
      [&] { testing::save_file(config, yaml("5s", false, false)); },  // a route's timeout
      sighup,  // same content: reloaded anyway
      [&] { testing::save_file(config, yaml("5s", true, false)); },  // a route added
      sighup,
      [&] { testing::save_file(config, yaml("4s", true, true)); },  // a rate limit on another path
      [&] {
        const double failed = reload_counts().second;
        testing::save_file(config, "version: 1\ngateway:\n  routes: [\n");  // kept the old
        EXPECT_TRUE(testing::wait_for([&] { return reload_counts().second > failed; }, 10s))
            << "the broken file was not seen\n"
            << gateway.log();
      },
      sighup,  // still broken: fails again
      [&] { testing::save_file(config, yaml("3s", true, true)); },
      sighup,
      [&] { testing::save_file(config, yaml("2s", true, true)); },
      sighup,
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    std::this_thread::sleep_until(start + 500ms * static_cast<int>(i + 1) + 1s);
    changes[i]();
  }
  for (auto& t : clients) t.join();
  std::string why;
  for (const std::string& f : failures) why += "\n  " + f;
  std::printf("reload under load: %d requests, %zu failed\n", requests.load(), failures.size());
  EXPECT_GT(requests.load(), 1000);
  EXPECT_EQ(failures.size(), 0u) << why << "\n" << gateway.log();

  // The last version is in force: the added route answers, the rate limit holds.
  EXPECT_TRUE(testing::wait_for([&] { return status("/delay/1") == 200; }, 5s)) << gateway.log();
  EXPECT_TRUE(testing::wait_for(
      [&] { return status("/status/200") == 200 && status("/status/200") == 429; }, 5s));
  auto m = client.request("127.0.0.1", admin, testing::get_request("/metrics"));
  ASSERT_TRUE(m);
  const double ok = metric(m->body, R"(prescale_gateway_config_reloads_total{result="ok"})");
  const double failed =
      metric(m->body, R"(prescale_gateway_config_reloads_total{result="failed"})");
  std::printf("reloads: %.0f ok, %.0f failed\n", ok, failed);
  // Five SIGHUPs, of which one while the file is broken, plus the changes the watcher saw (some
  // may be caught by a SIGHUP first); the broken file fails once by the watcher, and again by the
  // SIGHUP that follows.
  EXPECT_GE(ok, 4);
  EXPECT_GE(failed, 2);
  EXPECT_GT(metric(m->body, "prescale_gateway_config_last_reload_success_timestamp_seconds"), 1e9);
  const std::string log = gateway.log();
  EXPECT_NE(log.find("reloaded configuration from " + config + " (3 routes)"), std::string::npos)
      << log;
  // The broken file's error names the file and line.
  EXPECT_TRUE(std::regex_search(log, std::regex("reload \\(.*\\) failed, keeping the running "
                                                "configuration: .*prescale\\.yaml:[0-9]+")))
      << log;

  gateway.signal(SIGTERM);
  EXPECT_EQ(gateway.wait(15s), 0);
}

// `prescale gateway -f` learns no capacity: it applies a service's queue_limit only where the file
// writes it (left out, `prescale up` makes it half the SLO and counts with what it learns).
TEST_F(GatewayReloadCliTest, OnlyWrittenQueueLimitsAreApplied) {
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, R"(version: 1
services:
  - {name: echo, kind: builtin/echo, capacity_rps: 100, concurrency: 2, queue_limit: 100ms}
  - {name: other, kind: builtin/echo, capacity_rps: 100, concurrency: 2}
gateway:
  upstreams:
    echo: )" + upstreams + R"(
    other: )" + upstreams + R"(
  routes:
    - {match: {path_prefix: /other}, service: other}
    - {match: {path_prefix: /}, service: echo}
)");
  Subprocess gateway(
      {PRESCALE_BIN, "gateway", "-f", config, "--port", "0", "--port-file", dir.file("gw.port"),
       "--admin-port", "0", "--admin-port-file", dir.file("admin.port")},
      dir.file("gateway.log"));
  const auto admin = static_cast<uint16_t>(testing::port_from_file(dir.file("admin.port")));
  ASSERT_GT(admin, 0) << gateway.log();
  http::Client client;
  auto m = client.request("127.0.0.1", admin, testing::get_request("/metrics"));
  ASSERT_TRUE(m.has_value()) << m.error().message;
  // 2 + ceil(100 req/s × 100 ms) for the written limit; none for the other.
  EXPECT_EQ(metric(m->body, R"(prescale_gateway_admission_limit{service="echo"})"), 12) << m->body;
  EXPECT_EQ(metric(m->body, R"(prescale_gateway_admission_limit{service="other"})"), 0) << m->body;
}

// gateway.md: the port files are written once listening; local.md: one that cannot be written
// stops the command with exit status 1 and the file named (after its flag), rather than leaving
// whoever waits for it waiting. The file before it is written.
TEST(GatewayCliTest, APortFileThatCannotBeWrittenStopsTheGatewayNamingIt) {
  TempDir dir;
  const std::string gone = dir.file("gone/admin.port");
  Subprocess gateway(
      {PRESCALE_BIN, "gateway", "--upstream", "echo=127.0.0.1:1", "--port", "0", "--port-file",
       dir.file("gw.port"), "--admin-port", "0", "--admin-port-file", gone},
      dir.file("gateway.log"));
  EXPECT_EQ(gateway.wait(10s), 1);
  EXPECT_NE(gateway.log().find("prescale gateway: --admin-port-file: " + gone + ": "),
            std::string::npos)
      << gateway.log();
  EXPECT_FALSE(testing::read_file(dir.file("gw.port")).empty());
}

}  // namespace
}  // namespace prescale
