#include "admission_feed.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "admission_test_util.h"
#include "http/test_util.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

using testing::admitted_service;

TEST(AdmissionLimits, EachGatewayTakesItsShareRoundedUp) {
  const std::vector<ServiceConfig> services = {admitted_service("api", 100, 100ms),
                                               admitted_service("batch", 100, 0ms),
                                               admitted_service("tiny", 1, 100ms)};
  const LearnedAdmission admission(services);
  const AdmissionLimits one = share_admission(admission, services, 1);
  EXPECT_EQ(one.gateways, 1);
  ASSERT_EQ(one.services.size(), 2u) << "batch has no admission limit";
  EXPECT_EQ(one.services.at("api").per_replica, 12);  // concurrency + ceil(100 req/s × 0.1 s)
  EXPECT_EQ(one.services.at("api").per_gateway, 12);
  EXPECT_EQ(one.services.at("api").queue_limit_ms, 100);
  EXPECT_EQ(one.services.at("api").capacity_rps, 100);

  const AdmissionLimits three = share_admission(admission, services, 3);
  EXPECT_EQ(three.services.at("api").per_gateway, 4);
  EXPECT_EQ(three.services.at("tiny").per_replica, 3);
  EXPECT_EQ(three.services.at("tiny").per_gateway, 1);
  const AdmissionLimits five = share_admission(admission, services, 5);
  EXPECT_EQ(five.services.at("api").per_gateway, 3) << "12 / 5 rounded up";
  EXPECT_EQ(five.services.at("tiny").per_gateway, 1) << "at least one each";
  EXPECT_EQ(share_admission(admission, services, 0).gateways, 1) << "none in service yet";
}

TEST(AdmissionLimits, TheGatewaysPartsAddUpToTheNumber) {
  auto parts = [](int n, std::vector<double> shares) { return apportion(n, shares); };
  // Two Poisson loads never split exactly: ceil of each would let 7 of 6 in.
  EXPECT_EQ(parts(6, {0.51, 0.49}), (std::vector<int>{3, 3}));
  EXPECT_EQ(parts(6, {0.62, 0.38}), (std::vector<int>{4, 2}));  // 3.72 and 2.28: the larger rest
  EXPECT_EQ(parts(12, {0.5, 0.25, 0.25}), (std::vector<int>{6, 3, 3}));
  EXPECT_EQ(parts(12, {0.4, 0.3, 0.3}), (std::vector<int>{5, 4, 3})) << "4.8, 3.6, 3.6: one rest";
  // At least half an even share: the floors add to the number (9 of 6 at most for two).
  EXPECT_EQ(parts(6, {1.0, 0.0}), (std::vector<int>{6, 2}));  // 6 and 1.5: ceil(6 × 1.25) = 8
  EXPECT_EQ(parts(12, {0.0}), (std::vector<int>{12})) << "alone: all of it";
  EXPECT_EQ(parts(1, {0.5, 0.5}), (std::vector<int>{1, 1})) << "at least one each";
  std::vector<double> raised = {0.9, 0.1, 0.0, 0.0};
  (void)apportion(8, raised);
  EXPECT_EQ(raised, (std::vector<double>{0.9, 0.125, 0.125, 0.125}));
  ServiceConfig huge = admitted_service("huge", 1e12, 100ms);
  EXPECT_EQ(share_admission(LearnedAdmission({huge}), {huge}, 1).services.at("huge").per_replica,
            kMaxAdmissionPerReplica);
}

TEST(AdmissionBoard, ServesEachGatewayItsOwnOnceTheGatewaysAreKnown) {
  const std::vector<ServiceConfig> services = {admitted_service("api", 100, 100ms)};
  const LearnedAdmission admission(services);
  AdmissionBoard board;
  const auto shares = [](std::string_view) {
    return std::map<std::string, double>{{"gw-a", 0.75}, {"gw-b", 0.25}};
  };
  EXPECT_EQ(board.document("gw-a"), std::nullopt);
  board.publish(admission, services, std::nullopt, shares);
  EXPECT_EQ(board.document(""), std::nullopt) << "the gateways not known yet";
  board.publish(admission, services, std::vector<std::string>{"gw-a", "gw-b", "gw-c"}, shares);
  auto per_gateway = [&](std::string_view gateway) {
    auto doc = parse_admission_limits(board.document(gateway).value_or(""));
    return doc ? doc->services.at("api").per_gateway : -1;
  };
  EXPECT_EQ(per_gateway("gw-a"), 9);    // 12 × 0.75
  EXPECT_EQ(per_gateway("gw-b"), 3);    // 12 × 0.25
  EXPECT_EQ(per_gateway("gw-c"), 2);    // not read yet: half an even share, 12 / 6
  EXPECT_EQ(per_gateway(""), 4);        // an even share
  EXPECT_EQ(per_gateway("gw-new"), 4);  // not listed yet: an even share
  // A look whose list of pods is stale (no shares either): the gateways and shares last known
  // stand.
  board.publish(admission, services, std::nullopt,
                [](std::string_view) { return std::map<std::string, double>{}; });
  EXPECT_EQ(per_gateway("gw-a"), 9);
}

TEST(AdmissionLimits, TheDocumentReadsBack) {
  const std::vector<ServiceConfig> services = {admitted_service("api", 100, 100ms)};
  const AdmissionLimits limits = share_admission(LearnedAdmission(services), services, 2);
  auto back = parse_admission_limits(to_json(limits));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->gateways, 2);
  EXPECT_EQ(back->services.at("api").per_replica, 12);
  EXPECT_EQ(back->services.at("api").per_gateway, 6);
  EXPECT_EQ(back->services.at("api").capacity_rps, 100);
  EXPECT_EQ(back->services.at("api").queue_limit_ms, 100);
}

TEST(AdmissionLimits, ABadDocumentIsRefusedNamingWhere) {
  auto message = [](std::string_view body) {
    auto parsed = parse_admission_limits(body);
    EXPECT_FALSE(parsed.has_value()) << body;
    return parsed ? std::string() : parsed.error().message;
  };
  EXPECT_THAT(message("{\"gateways\": 1,"), HasSubstr("at byte"));
  EXPECT_THAT(message("[]"), HasSubstr("expected a JSON object"));
  EXPECT_THAT(message("{\"services\": {}}"), HasSubstr("gateways: missing"));
  EXPECT_THAT(message("{\"gateways\": 0, \"services\": {}}"),
              HasSubstr("gateways: expected an integer from 1 to 1000000, got 0"));
  EXPECT_THAT(message("{\"gateways\": 1}"), HasSubstr("services: expected an object"));
  EXPECT_THAT(message("{\"gateways\": 1, \"services\": {\"web\": 3}}"),
              HasSubstr("services.web: expected an object"));
  EXPECT_THAT(
      message("{\"gateways\": 1, \"services\": {\"web\": {\"per_gateway\": \"6\", \"per_replica\": "
              "6}}}"),
      HasSubstr("services.web.per_gateway: expected an integer from 1 to 1000000, got \"6\""));
  EXPECT_THAT(message("{\"gateways\": 1, \"services\": {\"web\": {\"per_gateway\": 6}}}"),
              HasSubstr("services.web.per_replica: missing"));
}

// The controller's admin port, as the test sets it.
class FakeController : public http::testing::CannedServer {
 public:
  FakeController() : CannedServer("/v1/admission") {}
  HttpUrl url() const { return {.host = "127.0.0.1", .port = port(), .path = "/v1/admission"}; }
};

std::string document(int gateways, std::map<std::string, int> per_gateway) {
  AdmissionLimits limits;
  limits.gateways = gateways;
  for (const auto& [name, n] : per_gateway) {
    limits.services[name] = {.per_replica = n * gateways, .per_gateway = n};
  }
  return to_json(limits);
}

class AdmissionFeedTest : public ::testing::Test {
 protected:
  AdmissionFeedTest() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(log_)) {
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink_));
  }
  ~AdmissionFeedTest() override { spdlog::set_default_logger(previous_); }

  // What the gateway was told, in order; services outside `known` are refused as the gateway
  // refuses a service it has no cluster for.
  AdmissionFeed::Apply apply() {
    return [this](std::string_view service, int n) -> Result<void> {
      if (!known.contains(std::string(service))) {
        return make_error(ErrorCode::kNotFound, "no cluster for service " + std::string(service));
      }
      applied.emplace_back(std::string(service), n);
      return {};
    };
  }
  int count(std::string_view text) const {
    const std::string log = log_.str();
    int n = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
  }

  std::set<std::string> known = {"web", "api"};
  std::vector<std::pair<std::string, int>> applied;
  std::ostringstream log_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

using Applied = std::vector<std::pair<std::string, int>>;

TEST_F(AdmissionFeedTest, AppliesWhatChangedAndKeepsItWhenTheControllerFails) {
  FakeController controller;
  AdmissionFeed feed(controller.url(), 2000ms);
  controller.set(document(2, {{"web", 6}, {"api", 3}}));
  EXPECT_TRUE(feed.poll(apply()));
  EXPECT_EQ(applied, (Applied{{"api", 3}, {"web", 6}}));
  EXPECT_EQ(feed.per_replica("web"), 6);
  EXPECT_TRUE(feed.poll(apply()));
  EXPECT_EQ(applied.size(), 2u) << "nothing changed";
  controller.set(document(3, {{"web", 4}, {"api", 3}}));  // a third gateway
  EXPECT_TRUE(feed.poll(apply()));
  EXPECT_EQ(applied.back(), (std::pair<std::string, int>{"web", 4}));
  EXPECT_EQ(applied.size(), 3u);
  EXPECT_THAT(log_.str(), HasSubstr("web: admission limit 4 requests in flight per replica, from "
                                    "the controller (12 for all 3 gateways"));

  // Failures change nothing, each said when it starts; the recovery said once.
  controller.set("{\"error\":{\"code\":\"not_ready\"}}", 503);
  EXPECT_FALSE(feed.poll(apply()));
  EXPECT_FALSE(feed.poll(apply()));
  EXPECT_EQ(count("HTTP 503"), 1);
  controller.set("{\"gateways\": 0}");
  EXPECT_FALSE(feed.poll(apply()));
  EXPECT_EQ(count("gateways: expected an integer"), 1);
  EXPECT_EQ(applied.size(), 3u);
  EXPECT_EQ(feed.per_replica("web"), 4);
  controller.set(document(3, {{"web", 4}, {"api", 3}}));
  EXPECT_TRUE(feed.poll(apply()));
  EXPECT_EQ(count("are read again"), 1);
  EXPECT_EQ(applied.size(), 3u);
}

TEST_F(AdmissionFeedTest, AControllerThatIsGoneIsSaidOnce) {
  const HttpUrl url{
      .host = "127.0.0.1", .port = http::testing::unused_port(), .path = "/v1/admission"};
  AdmissionFeed feed(url, 500ms);
  EXPECT_FALSE(feed.poll(apply()));
  EXPECT_FALSE(feed.poll(apply()));
  EXPECT_EQ(
      count("admission limits from http://127.0.0.1:" + std::to_string(url.port) + "/v1/admission"),
      1)
      << log_.str();
  EXPECT_THAT(log_.str(), HasSubstr("the limits in force stay"));
  EXPECT_TRUE(applied.empty());
}

TEST_F(AdmissionFeedTest, AReloadGetsTheControllersNumbersBackAndAnUnknownServiceIsTriedAgain) {
  FakeController controller;
  AdmissionFeed feed(controller.url(), 2000ms);
  controller.set(document(1, {{"web", 6}, {"cart", 5}}));
  EXPECT_TRUE(feed.poll(apply()));
  EXPECT_EQ(applied, (Applied{{"web", 6}}));
  EXPECT_TRUE(feed.poll(apply()));
  EXPECT_EQ(count("service cart: no cluster for service cart"), 1) << log_.str();
  EXPECT_EQ(feed.per_replica("cart"), 0);
  // The file's reload set the gateway's own numbers: the controller's go back in force.
  applied.clear();
  feed.reapply(apply());
  EXPECT_EQ(applied, (Applied{{"web", 6}}));
  // A reload that added the service: its number is taken at the next read.
  known.insert("cart");
  applied.clear();
  EXPECT_TRUE(feed.poll(apply()));
  EXPECT_EQ(applied, (Applied{{"cart", 5}}));
  // A service the controller no longer lists (its queue_limit now 0): the gateway's own again.
  controller.set(document(1, {{"web", 6}}));
  applied.clear();
  EXPECT_TRUE(feed.poll(apply()));
  EXPECT_EQ(applied, (Applied{{"cart", 0}}));
  EXPECT_EQ(feed.per_replica("cart"), 0);
  EXPECT_THAT(log_.str(), HasSubstr("cart: no admission limit from the controller any more"));
}

}  // namespace
}  // namespace prescale
