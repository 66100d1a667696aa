#include "services/forecast/forecast_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>

#include "http/client.h"
#include "runtime/runtime.h"
#include "telemetry/registry.h"

namespace prescale::services {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

http::Request request(http::Method method, std::string target, std::string body = {}) {
  http::Request req;
  req.method = method;
  req.method_name = std::string(http::to_string(method));
  req.target = std::move(target);
  req.body = std::move(body);
  if (!req.body.empty()) req.headers.set("Content-Type", "application/json");
  return req;
}

nlohmann::json hourly_points(double t0, int minutes) {
  nlohmann::json ts = nlohmann::json::array(), vs = nlohmann::json::array();
  for (int i = 0; i < minutes; ++i) {
    ts.push_back(t0 + 60.0 * i);
    vs.push_back(100 + 50 * std::sin(2 * std::numbers::pi * i / 60.0));
  }
  return {{"timestamps", ts}, {"values", vs}};
}

class ForecastServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ForecastServiceOptions o;
    o.store.forecaster.model.day_seconds = 3600;
    o.workers = 2;
    o.registry = &registry_;
    service_ = std::make_unique<ForecastService>(o);
    runtime::RuntimeOptions ro;
    ro.server.port = 0;
    ro.server.threads = 2;
    ro.shutdown_grace = 5s;
    ro.registry = &registry_;
    runtime_ = std::make_unique<runtime::Runtime>(*service_, ro);
    ASSERT_TRUE(runtime_->start());
  }

  http::Response call(http::Method m, std::string target, std::string body = {}) {
    auto r = client_.request("127.0.0.1", runtime_->port(), request(m, std::move(target), body));
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : http::Response{};
  }

  telemetry::Registry registry_;
  std::unique_ptr<ForecastService> service_;
  std::unique_ptr<runtime::Runtime> runtime_;
  http::Client client_;
};

TEST_F(ForecastServiceTest, ForecastsASeriesInTheBody) {
  nlohmann::json body = hourly_points(1'767'225'600, 6 * 60);
  body["horizon"] = 20;
  const http::Response r = call(http::Method::kPost, "/v1/forecast", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["model_version"], kForecastModelVersion);
  EXPECT_NE(j["model"], "naive");
  EXPECT_EQ(j["step_seconds"], 60);
  ASSERT_EQ(j["p50"].size(), 20u);
  ASSERT_EQ(j["p99"].size(), 20u);
  EXPECT_EQ(j["timestamps"][0], 1'767'225'600 + 360 * 60);
  EXPECT_NEAR(j["p50"][0].get<double>(), 100, 5);  // sin(2π · 360/60) = 0
  EXPECT_LE(j["p50"][5].get<double>(), j["p90"][5].get<double>());
  EXPECT_EQ(j["backtest"]["horizons"], 15);
  EXPECT_EQ(j["history_points"], 360);
}

TEST_F(ForecastServiceTest, BadInputGets400NamingTheField) {
  auto error_of = [&](std::string body) {
    const http::Response r = call(http::Method::kPost, "/v1/forecast", std::move(body));
    EXPECT_EQ(r.status, 400) << r.body;
    return r.body;
  };
  EXPECT_THAT(error_of("{\"timestamps\":[0,60],"), HasSubstr("invalid JSON at byte"));
  EXPECT_THAT(error_of(R"({"timestamps":[0,60],"values":[1,"a"]})"),
              HasSubstr("values[1]: expected a number or null"));
  EXPECT_THAT(error_of(R"({"timestamps":[0,60],"values":[1,2],"horizn":5})"),
              HasSubstr("horizn: unknown field"));
  nlohmann::json body = hourly_points(0, 120);
  body["horizon"] = 0;
  EXPECT_THAT(error_of(body.dump()), HasSubstr("horizon: expected a whole number of steps in 1..1440"));
  EXPECT_THAT(error_of(hourly_points(0, 10).dump()), HasSubstr("a forecast needs at least 32"));
}

TEST_F(ForecastServiceTest, KeepsStreams) {
  const http::Response a =
      call(http::Method::kPost, "/v1/series/checkout/points", hourly_points(0, 4 * 60).dump());
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(nlohmann::json::parse(a.body)["points"], 240);
  const http::Response f = call(http::Method::kGet, "/v1/series/checkout/forecast?horizon=5");
  ASSERT_EQ(f.status, 200) << f.body;
  const auto j = nlohmann::json::parse(f.body);
  EXPECT_EQ(j["series"], "checkout");
  EXPECT_EQ(j["p50"].size(), 5u);
  EXPECT_EQ(j["timestamps"][0], 240 * 60);

  const http::Response late =
      call(http::Method::kPost, "/v1/series/checkout/points", R"({"timestamps":[0],"values":[1]})");
  EXPECT_EQ(late.status, 400);
  EXPECT_THAT(late.body, HasSubstr("timestamps[0]: 0 is not after"));
  EXPECT_EQ(call(http::Method::kGet, "/v1/series/none/forecast").status, 404);
  EXPECT_EQ(call(http::Method::kGet, "/v1/series/checkout/forecast?horizon=x").status, 400);
  EXPECT_EQ(call(http::Method::kPost, "/v1/series/bad%2Fname/points", "{}").status, 400);

  const http::Response list = call(http::Method::kGet, "/v1/series");
  EXPECT_THAT(list.body, HasSubstr("\"name\":\"checkout\""));
  EXPECT_EQ(call(http::Method::kDelete, "/v1/series/checkout").status, 200);
  EXPECT_EQ(call(http::Method::kDelete, "/v1/series/checkout").status, 404);

  const http::Response metrics = call(http::Method::kGet, "/metrics");
  EXPECT_THAT(metrics.body,
              HasSubstr("prescale_model_info{service=\"forecast\",version=\"forecaster-1\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("prescale_forecast_series 0"));
}

}  // namespace
}  // namespace prescale::services
