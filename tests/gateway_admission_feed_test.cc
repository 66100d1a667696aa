// `prescale gateway --admission-from URL` (docs/kubernetes.md, "Admission limits"): the gateway
// puts the controller's part of a service's admission limit in force, keeps it while the
// controller does not answer and over a reload of its file, and gives the service the file's
// number back when the controller stops listing it. The gateway is the real binary; the
// controller's endpoint answers as the test sets it. Real processes on port 0; the waits are
// polls.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "http/client.h"
#include "http/test_util.h"
#include "support/platform.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;
using testing::TempDir;

// web: 50 req/s a replica, one at a time; the file's number is 1 + ceil(50 × queue_limit).
std::string config(const std::string& queue_limit) {
  return "version: 1\n"
         "services:\n"
         "  - name: web\n"
         "    kind: builtin/echo\n"
         "    capacity_rps: 50\n"
         "    concurrency: 1\n"
         "    queue_limit: " +
         queue_limit +
         "\n"
         "gateway:\n"
         "  routes:\n"
         "    - service: web\n";
}

TEST(GatewayAdmissionFeedTest, TheControllersPartStandsUntilItStopsGivingOne) {
  TempDir dir;
  http::testing::CannedServer controller("/v1/admission/{gateway}");
  controller.set(
      R"({"gateways":2,"services":{"web":{"per_replica":8,"per_gateway":4,"share":0.5}}})");
  const std::string file = dir.file("prescale.yaml");
  testing::save_file(file, config("100ms"));  // the file's number: 6
  Subprocess gateway(
      {PRESCALE_BIN, "gateway", "-f", file, "--upstream", "web=127.0.0.1:9", "--port", "0",
       "--port-file", dir.file("gw.port"), "--admin-port", "0", "--admin-port-file",
       dir.file("admin.port"), "--admission-from",
       "http://127.0.0.1:" + std::to_string(controller.port()) + "/v1/admission/gw-a"},
      dir.file("gateway.log"));
  const int admin = testing::port_from_file(dir.file("admin.port"));
  ASSERT_GT(admin, 0) << gateway.log();
  http::Client client(http::ClientOptions{.request_timeout = 5s, .threads = 1});
  auto limit_is = [&](int n) {
    auto r =
        client.request("127.0.0.1", static_cast<uint16_t>(admin), testing::get_request("/metrics"));
    return r && r->body.find("\nprescale_gateway_admission_limit{service=\"web\"} " +
                             std::to_string(n) + "\n") != std::string::npos;
  };

  auto logged = [&](const std::string& line) {
    return testing::wait_for([&] { return gateway.log().find(line) != std::string::npos; }, 15s);
  };
  EXPECT_TRUE(testing::wait_for([&] { return limit_is(4); }, 15s)) << gateway.log();
  EXPECT_TRUE(
      logged("web: admission limit 4 requests in flight per replica, from the controller "
             "(8 for all 2 gateways, 50 % of the requests here"))
      << gateway.log();

  // The controller restarting: the part stands, and that is said once over several reads.
  controller.set(R"({"error":{"code":"not_ready"}})", 503);
  EXPECT_TRUE(logged("HTTP 503")) << gateway.log();
  std::this_thread::sleep_for(2500ms);  // a few more reads
  EXPECT_TRUE(limit_is(4)) << gateway.log();
  const std::string log = gateway.log();
  const size_t first = log.find("HTTP 503");
  EXPECT_EQ(log.find("HTTP 503", first + 1), std::string::npos) << log;

  // A reload of an edited file (the file's number now 11): the controller's part stays.
  testing::save_file(file, config("200ms"));
  EXPECT_TRUE(testing::wait_for(
      [&] { return gateway.log().find("reloaded configuration") != std::string::npos; }, 15s))
      << gateway.log();
  EXPECT_TRUE(limit_is(4)) << gateway.log();

  // The controller answers again and no longer lists web (its queue_limit 0 there): the file's.
  controller.set(R"({"gateways":2,"services":{}})");
  EXPECT_TRUE(testing::wait_for([&] { return limit_is(11); }, 15s)) << gateway.log();
  EXPECT_TRUE(logged("are read again")) << gateway.log();
  EXPECT_TRUE(logged("web: no admission limit from the controller any more")) << gateway.log();
}

}  // namespace
}  // namespace prescale
