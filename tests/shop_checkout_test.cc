// examples/shop's checkout service (shop-checkout) against a stand-in gateway: what a client
// sees when the order itself is bad, as opposed to when fraud or recommend are down.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "http/client.h"
#include "http/json.h"
#include "http/server.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;
using testing::TempDir;

// The gateway as checkout reaches it: fraud answers /v1/score as `prescale serve fraud` does,
// recommend the rest; it keeps the targets it was asked for.
struct FakeGateway {
  explicit FakeGateway(http::Response score,
                       http::Response recommendations = http::json_response(
                           200, nlohmann::json{{"items", nlohmann::json::array()}}))
      : server(http::ServerOptions{},
               [this, score, recommendations](http::Request& req, http::Responder respond) {
                 {
                   std::lock_guard lock(mu);
                   targets.push_back(req.target);
                   traceparents.emplace_back(req.headers.get("traceparent").value_or(""));
                   tracestates.emplace_back(req.headers.get("tracestate").value_or(""));
                 }
                 respond(req.target == "/v1/score" ? score : recommendations);
               }) {
    EXPECT_TRUE(server.start());
  }
  ~FakeGateway() { server.shutdown(1s); }
  std::vector<std::string> asked() {
    std::lock_guard lock(mu);
    return targets;
  }
  std::mutex mu;
  std::vector<std::string> targets, traceparents, tracestates;
  http::Server server;
};

// A shop-checkout replica whose gateway is on `gateway_port`.
struct Checkout {
  explicit Checkout(uint16_t gateway_port) {
    const std::string url = "http://127.0.0.1:" + std::to_string(gateway_port);
    ::setenv("PRESCALE_GATEWAY_URL", url.c_str(), 1);
    const std::string port_file = dir.file("port");
    proc = std::make_unique<Subprocess>(
        std::vector<std::string>{PRESCALE_SHOP_CHECKOUT, "--port", "0", "--port-file", port_file,
                                 "--work-ms", "0"},
        dir.file("checkout.log"));
    EXPECT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 10s));
    port = static_cast<uint16_t>(std::stoi(testing::read_file(port_file)));
  }
  Result<http::Response> post(std::string body, std::string traceparent = "") {
    http::Client client(http::ClientOptions{.request_timeout = 10s, .threads = 1});
    http::Request req;
    if (!traceparent.empty()) {
      req.headers.set("traceparent", traceparent);
      req.headers.set("tracestate", "shop=1");
    }
    req.method = http::Method::kPost;
    req.method_name = "POST";
    req.target = "/v1/checkout";
    req.headers.set("Content-Type", "application/json");
    req.body = std::move(body);
    return client.request("127.0.0.1", port, std::move(req));
  }
  TempDir dir;
  std::unique_ptr<Subprocess> proc;
  uint16_t port = 0;
};

// A transaction fraud refuses is the client's mistake: it was answered 502 "fraud_unavailable",
// which the gateway counts as this replica failing (three in a row eject it, with the shop's
// outlier_detection) and which told the client nothing of what was wrong.
TEST(ShopCheckoutTest, ATransactionFraudRefusesIsTheClientsError) {
  FakeGateway gateway(http::error_response(400, "invalid_argument",
                                           "V1: missing (send null for an unknown value)"));
  Checkout checkout(gateway.server.port());
  auto r = checkout.post(R"({"user": 42, "transaction": {"Amount": 9.99}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 400) << r->body;
  const auto body = nlohmann::json::parse(r->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r->body;
  EXPECT_EQ(body["error"]["code"], "invalid_field");
  EXPECT_EQ(body["error"]["message"], "transaction: V1: missing (send null for an unknown value)");
}

TEST(ShopCheckoutTest, FraudFailingIsStillAnUpstreamError) {
  FakeGateway gateway(http::error_response(503, "unavailable", "no healthy replica"));
  Checkout checkout(gateway.server.port());
  auto r = checkout.post(R"({"user": 42, "transaction": {"Amount": 9.99}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 502) << r->body;
}

// Both calls of an order carry its trace on: with tracing off, the caller's traceparent as it
// came; with it on (OTEL_EXPORTER_OTLP_ENDPOINT), checkout's own span's, the child of the caller's
// (docs/tracing.md).
TEST(ShopCheckoutTest, AnOrdersCallsCarryItsTrace) {
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string caller = "00-" + trace + "-00f067aa0ba902b7-01";
  const std::string order = R"({"user": 42, "transaction": {"Amount": 9.99}})";
  const auto legit =
      http::json_response(200, nlohmann::json{{"decision", "legit"}, {"fraud_probability", 0.01}});
  {
    FakeGateway gateway(legit);
    Checkout checkout(gateway.server.port());
    auto r = checkout.post(order, caller);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200) << r->body;
    std::lock_guard lock(gateway.mu);
    ASSERT_EQ(gateway.traceparents.size(), 2u);
    EXPECT_EQ(gateway.traceparents[0], caller);
    EXPECT_EQ(gateway.traceparents[1], caller);
    EXPECT_EQ(gateway.tracestates[0], "shop=1");
  }
  FakeGateway collector(legit);  // takes the spans too (any 200 will do here)
  FakeGateway gateway(legit);
  ::setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
           ("http://127.0.0.1:" + std::to_string(collector.server.port()) + "/v1/traces").c_str(),
           1);
  Checkout checkout(gateway.server.port());
  ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  auto r = checkout.post(order, caller);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
  std::lock_guard lock(gateway.mu);
  ASSERT_EQ(gateway.traceparents.size(), 2u);
  const std::string own = gateway.traceparents[0];
  EXPECT_EQ(own.substr(0, 35), "00-" + trace);        // the same trace
  EXPECT_NE(own.substr(36, 16), "00f067aa0ba902b7");  // checkout's span, not the caller's
  EXPECT_EQ(own.substr(52), "-01");
  EXPECT_EQ(gateway.traceparents[1], own);
  EXPECT_EQ(gateway.tracestates[1], "shop=1");
}

// A user id past what an int64 holds (what recommend's ids are) was read as a negative one:
// 2^64 - 1 was accepted and recommended for as user -1.
TEST(ShopCheckoutTest, AUserIdPastInt64IsRefused) {
  FakeGateway gateway(
      http::json_response(200, nlohmann::json{{"decision", "legit"}, {"fraud_probability", 0.01}}));
  Checkout checkout(gateway.server.port());
  auto r = checkout.post(R"({"user": 18446744073709551615, "transaction": {"Amount": 9.99}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_TRUE(gateway.asked().empty()) << gateway.asked().back();

  // The largest one is an id like any other.
  r = checkout.post(R"({"user": 9223372036854775807, "transaction": {"Amount": 9.99}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(gateway.asked().back(), "/v1/users/9223372036854775807/recommendations?k=5");
}

// A gateway URL it cannot use stops the replica at once, exit 2, naming the variable and what is
// wrong: "80x" was read as port 80, an empty host as nothing to connect to, and "080" as 80
// where every other host:port of the platform (core/host_port.h) refuses a leading zero.
TEST(ShopCheckoutTest, AGatewayUrlItCannotUseIsRefused) {
  const std::pair<const char*, const char*> cases[] = {
      {"http://127.0.0.1:80x", "port must be 1..65535, got \"80x\""},
      {"http://127.0.0.1:8o", "port must be 1..65535, got \"8o\""},
      {"http://127.0.0.1:+80", "port must be 1..65535, got \"+80\""},
      {"http://127.0.0.1:0", "port must be 1..65535, got \"0\""},
      {"http://127.0.0.1:080", "without leading zeros, got \"080\""},
      {"http://127.0.0.1:0080/", "without leading zeros, got \"0080\""},
      {"http://[::1]:080", "without leading zeros, got \"080\""},
      {"http://:8080", "host"},
      {"http://a b:8080", "host"},
      {"http://[zz]:8080", "IPv6"},
      {"127.0.0.1:8080", "http://"},
  };
  for (const auto& [url, why] : cases) {
    ::setenv("PRESCALE_GATEWAY_URL", url, 1);
    TempDir dir;
    Subprocess proc({PRESCALE_SHOP_CHECKOUT, "--port", "0"}, dir.file("checkout.log"));
    EXPECT_EQ(proc.wait(10s), 2) << url;
    EXPECT_NE(proc.log().find("PRESCALE_GATEWAY_URL"), std::string::npos) << url;
    EXPECT_NE(proc.log().find(why), std::string::npos) << url << ": " << proc.log();
  }
}

}  // namespace
}  // namespace prescale
