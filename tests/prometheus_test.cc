// A real Prometheus (Debian's package) scrapes a running service; the test reads the scraped
// values back through Prometheus's HTTP API, and promtool lints the exposition.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>

#include "http/client.h"
#include "runtime/runtime.h"
#include "services/echo/echo_service.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;
using testing::TempDir;

http::Request get(std::string target) {
  http::Request req;
  req.method_name = "GET";
  req.target = std::move(target);
  return req;
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/usr/bin/prometheus") ||
        !std::filesystem::exists("/usr/bin/promtool")) {
      GTEST_SKIP() << "skipped: Debian package prometheus not installed (scripts/install-deps)";
    }
    runtime::RuntimeOptions options;
    options.server.port = 0;
    options.server.threads = 1;
    rt_ = std::make_unique<runtime::Runtime>(echo_, options);
    ASSERT_TRUE(rt_->start());
  }
  void TearDown() override {
    if (rt_) rt_->drain();
  }

  services::EchoService echo_;
  std::unique_ptr<runtime::Runtime> rt_;
  http::Client client_;
  TempDir dir_;
};

TEST_F(PrometheusTest, PromtoolAcceptsMetricsOutput) {
  ASSERT_EQ(client_.request("127.0.0.1", rt_->port(), get("/"))->status, 200);
  auto metrics = client_.request("127.0.0.1", rt_->port(), get("/metrics"));
  ASSERT_TRUE(metrics);
  testing::write_file(dir_.file("metrics.txt"), metrics->body);
  std::string cmd = "/usr/bin/promtool check metrics < " + dir_.file("metrics.txt") + " > " +
                    dir_.file("promtool.out") + " 2>&1";
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << testing::read_file(dir_.file("promtool.out")) << "\n---\n" << metrics->body;
  EXPECT_EQ(testing::read_file(dir_.file("promtool.out")), "");
}

TEST_F(PrometheusTest, ScrapedValuesReadBackThroughQueryApi) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(client_.request("127.0.0.1", rt_->port(), get("/"))->status, 200);
  }
  ASSERT_EQ(client_.request("127.0.0.1", rt_->port(), get("/status/503"))->status, 503);

  int prom_port = testing::free_port();
  testing::write_file(dir_.file("prometheus.yml"),
                      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                      "scrape_configs:\n  - job_name: echo\n    static_configs:\n"
                      "      - targets: ['127.0.0.1:" +
                          std::to_string(rt_->port()) + "']\n");
  Subprocess prometheus({"/usr/bin/prometheus", "--config.file=" + dir_.file("prometheus.yml"),
                         "--storage.tsdb.path=" + dir_.file("data"),
                         "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
                        dir_.file("prometheus.log"));

  auto query = [&](const std::string& promql) -> std::optional<nlohmann::json> {
    std::string encoded;
    for (unsigned char c : promql) {
      if (std::isalnum(c) || c == '_') {
        encoded += static_cast<char>(c);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        encoded += buf;
      }
    }
    auto r = client_.request("127.0.0.1", static_cast<uint16_t>(prom_port),
                             get("/api/v1/query?query=" + encoded), 10s);  // a loaded machine
    if (!r || r->status != 200) return std::nullopt;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j["status"] != "success" || j["data"]["result"].empty()) {
      return std::nullopt;
    }
    return j["data"]["result"];
  };

  std::optional<nlohmann::json> ok;
  ASSERT_TRUE(testing::wait_for(
      [&] {
        ok = query(R"(prescale_requests_total{service="echo",route="/",code="200"})");
        return ok.has_value();
      },
      60s))
      << prometheus.log();
  EXPECT_EQ((*ok)[0]["value"][1], "5");
  EXPECT_EQ((*ok)[0]["metric"]["job"], "echo");

  auto unavailable = query(R"(prescale_requests_total{route="/status/{code}",code="503"})");
  ASSERT_TRUE(unavailable.has_value());
  EXPECT_EQ((*unavailable)[0]["value"][1], "1");

  auto hist = query(R"(prescale_request_duration_seconds_count{route="/"})");
  ASSERT_TRUE(hist.has_value());
  EXPECT_EQ((*hist)[0]["value"][1], "5");

  auto up = query("up");
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ((*up)[0]["value"][1], "1");

  prometheus.signal(SIGTERM);
  EXPECT_TRUE(prometheus.wait(20s).has_value());
}

}  // namespace
}  // namespace prescale
