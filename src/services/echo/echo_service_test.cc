#include "services/echo/echo_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "http/client.h"
#include "runtime/runtime.h"

namespace prescale::services {
namespace {

using namespace std::chrono_literals;

class EchoServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime::RuntimeOptions options;
    options.server.port = 0;
    options.server.threads = 1;
    options.shutdown_grace = 5s;
    runtime_ = std::make_unique<runtime::Runtime>(echo_, options);
    ASSERT_TRUE(runtime_->start());
  }

  nlohmann::json echo(http::Request req) {
    auto r = client_.request("127.0.0.1", runtime_->port(), std::move(req));
    EXPECT_TRUE(r) << r.error().to_string();
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    return nlohmann::json::parse(r->body, nullptr, false);
  }

  EchoService echo_;
  std::unique_ptr<runtime::Runtime> runtime_;
  http::Client client_;
};

TEST_F(EchoServiceTest, ShowsTheRequest) {
  http::Request req;
  req.method = http::Method::kPost;
  req.method_name = "POST";
  req.target = "/echo?a=1";
  req.body = "hi";
  req.headers.set("X-Tag", "one");
  const auto j = echo(std::move(req));
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["path"], "/echo");
  EXPECT_EQ(j["query"], "a=1");
  EXPECT_EQ(j["body"], "hi");
  EXPECT_EQ(j["headers"]["X-Tag"], "one");
}

// A field sent more than once is one field whose values are joined with ", " (RFC 9110 section
// 5.3), whatever the case of its name; only the last one was shown.
TEST_F(EchoServiceTest, ShowsEveryValueOfARepeatedHeaderField) {
  http::Request req;
  req.method = http::Method::kGet;
  req.method_name = "GET";
  req.target = "/echo";
  req.headers.add("X-Tag", "one");
  req.headers.add("Accept", "text/plain");
  req.headers.add("x-tag", "two");
  req.headers.add("X-Tag", "three, four");
  const auto headers = echo(std::move(req))["headers"];
  EXPECT_EQ(headers["X-Tag"], "one, two, three, four") << headers.dump();
  EXPECT_FALSE(headers.contains("x-tag")) << headers.dump();
  EXPECT_EQ(headers["Accept"], "text/plain");
}

}  // namespace
}  // namespace prescale::services
