#include "services/forecast/forecast_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numbers>
#include <set>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "http/client.h"
#include "runtime/runtime.h"
#include "services/forecast/forecast_test_util.h"
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

// At the value limit the forecast's arithmetic does not overflow: the cycle, scaled so that it
// peaks at kMaxValue, is forecast as it is at its own scale.
TEST_F(ForecastServiceTest, ForecastsValuesUpToTheLimit) {
  nlohmann::json body = hourly_points(1'767'225'600, 6 * 60);
  const double scale = forecast_service::kMaxValue / 150;
  for (auto& v : body["values"]) v = v.get<double>() * scale;
  body["horizon"] = 5;
  const http::Response r = call(http::Method::kPost, "/v1/forecast", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_NEAR(j["p50"][0].get<double>() / scale, 100, 5) << r.body;
  EXPECT_TRUE(j["backtest"]["mae"].is_number()) << r.body;
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
  nlohmann::json huge = hourly_points(0, 120);
  huge["values"][7] = 1e307;  // beyond the cap: the fit's sums of squares would overflow
  EXPECT_THAT(error_of(huge.dump()), HasSubstr("values[7]: 1e+307 is above the limit of 1e+15"));
  nlohmann::json body = hourly_points(0, 120);
  body["horizon"] = 0;
  EXPECT_THAT(error_of(body.dump()),
              HasSubstr("horizon: expected a whole number of steps in 1..1440"));
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
  // Without a model directory there is nothing to reload.
  EXPECT_EQ(call(http::Method::kPost, "/v1/model/reload").status, 409);
  EXPECT_THAT(call(http::Method::kGet, "/v1/model").body,
              HasSubstr("\"model_version\":\"forecaster-1\""));
}

// ---- With a model directory

using forecast_service::testing::TempDir;

class ForecastServiceModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(save(1), 1);
    ForecastServiceOptions o;
    o.store.forecaster.model.day_seconds = 3600;
    o.workers = 2;
    o.registry = &registry_;
    o.model_dir = dir_.str();
    o.poll_interval = 5s;
    o.background_poll = false;  // the test polls, on its own clock
    o.clock = &clock_;
    service_ = std::make_unique<ForecastService>(o);
    runtime::RuntimeOptions ro;
    ro.server.port = 0;
    ro.server.threads = 2;
    ro.shutdown_grace = 5s;
    ro.registry = &registry_;
    runtime_ = std::make_unique<runtime::Runtime>(*service_, ro);
    ASSERT_TRUE(runtime_->start());
  }

  int save(unsigned seed) {
    auto booster = forecast_service::testing::small_booster(seed);
    EXPECT_NE(booster, nullptr);
    auto saved = forecast_service::save_model(*booster, dir_.str(),
                                              forecast_service::testing::save_options(&clock_));
    EXPECT_TRUE(saved) << saved.error().to_string();
    return saved ? saved->version : 0;
  }

  http::Response call(http::Client& client, http::Method m, std::string target,
                      std::string body = {}) {
    auto r = client.request("127.0.0.1", runtime_->port(), request(m, std::move(target), body));
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : http::Response{};
  }
  http::Response call(http::Method m, std::string target, std::string body = {}) {
    return call(client_, m, std::move(target), std::move(body));
  }
  std::string metrics() { return call(http::Method::kGet, "/metrics").body; }

  TempDir dir_;
  ManualClock clock_;
  telemetry::Registry registry_;
  std::unique_ptr<ForecastService> service_;
  std::unique_ptr<runtime::Runtime> runtime_;
  http::Client client_;
};

TEST_F(ForecastServiceModelTest, ServesTheModelFilesVersionInResponsesAndMetrics) {
  const http::Response r =
      call(http::Method::kPost, "/v1/forecast", hourly_points(1'767'225'600, 6 * 60).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["model_version"], "v1");
  ASSERT_EQ(
      call(http::Method::kPost, "/v1/series/s/points", hourly_points(0, 4 * 60).dump()).status,
      200);
  const http::Response f = call(http::Method::kGet, "/v1/series/s/forecast");
  ASSERT_EQ(f.status, 200) << f.body;
  EXPECT_EQ(nlohmann::json::parse(f.body)["model_version"], "v1");

  const std::string m = metrics();
  EXPECT_THAT(m, HasSubstr("prescale_model_info{service=\"forecast\",version=\"v1\"} 1"));
  EXPECT_THAT(m, HasSubstr("prescale_model_info{service=\"forecast\",version=\"forecaster-1\"} 0"));
  EXPECT_THAT(m, HasSubstr("prescale_forecast_reloads_total{result=\"loaded\"} 1"));

  const auto model = nlohmann::json::parse(call(http::Method::kGet, "/v1/model").body);
  EXPECT_EQ(model["model_version"], "v1");
  EXPECT_EQ(model["model"], "gbt_global");
  EXPECT_EQ(model["metrics"]["pinball_p90"], 1.5);
}

TEST_F(ForecastServiceModelTest, TheBoosterIsOneMoreCandidateOfEachFit) {
  const auto model = service_->model_store().current();
  const forecast::ForecasterOptions options =
      forecast_service::with_model(forecast::ForecasterOptions{}, model.get());
  EXPECT_EQ(options.candidates.back(), "gbt_global");
  forecast::Forecaster f(options);
  forecast::Series s = forecast_service::testing::daily_series(7, 3);
  ASSERT_TRUE(f.fit(s));
  size_t scored = 0;
  for (const auto& score : f.backtest()) scored += score.model == "gbt_global" ? 1 : 0;
  EXPECT_EQ(scored, 15u);  // every horizon of the backtest
  // Without a booster the options stay as they are.
  const forecast_service::ForecastModel none;
  EXPECT_EQ(forecast_service::with_model(forecast::ForecasterOptions{}, &none).candidates.size(),
            forecast::ForecasterOptions{}.candidates.size());
}

TEST_F(ForecastServiceModelTest, ReloadsUnderConcurrentRequestsWithoutFailures) {
  ASSERT_EQ(
      call(http::Method::kPost, "/v1/series/s/points", hourly_points(0, 4 * 60).dump()).status,
      200);
  std::atomic<bool> stop{false};
  std::atomic<int> requests{0}, failures{0};
  std::mutex mu;
  std::set<std::string> versions;
  std::vector<std::jthread> clients;
  for (int c = 0; c < 3; ++c) {
    clients.emplace_back([&, c] {
      http::Client client;
      const std::string body = hourly_points(1'767'225'600, 6 * 60).dump();
      for (int i = 0; !stop.load() || i < 5; ++i) {
        const http::Response r = (c + i) % 2 == 0
                                     ? call(client, http::Method::kPost, "/v1/forecast", body)
                                     : call(client, http::Method::kGet, "/v1/series/s/forecast");
        ++requests;
        if (r.status != 200) {
          ++failures;
          continue;
        }
        std::lock_guard lock(mu);
        versions.insert(nlohmann::json::parse(r.body)["model_version"].get<std::string>());
      }
    });
  }
  auto wait_for = [&](int n) {
    while (requests.load() < n) std::this_thread::sleep_for(1ms);
  };
  wait_for(10);
  ASSERT_EQ(save(2), 2);
  clock_.advance(5s);
  EXPECT_EQ(service_->model_store().poll().value(), true);
  wait_for(25);
  // A broken version 3: a partial booster file.
  const int v3 = save(3);
  const auto ubj = dir_.path() / forecast_service::booster_file_name(v3);
  forecast_service::testing::write_text(ubj,
                                        forecast_service::testing::read_text(ubj).substr(0, 64));
  clock_.advance(5s);
  EXPECT_FALSE(service_->model_store().poll());
  wait_for(40);
  stop = true;
  clients.clear();

  EXPECT_EQ(failures.load(), 0) << "of " << requests.load();
  EXPECT_TRUE(versions.contains("v1"));
  EXPECT_TRUE(versions.contains("v2"));
  EXPECT_FALSE(versions.contains("v3"));
  // New fits, and the stream's next forecast, use v2.
  EXPECT_EQ(nlohmann::json::parse(
                call(http::Method::kGet, "/v1/series/s/forecast").body)["model_version"],
            "v2");
  const std::string m = metrics();
  EXPECT_THAT(m, HasSubstr("prescale_model_info{service=\"forecast\",version=\"v1\"} 0"));
  EXPECT_THAT(m, HasSubstr("prescale_model_info{service=\"forecast\",version=\"v2\"} 1"));
  EXPECT_THAT(m, ::testing::Not(HasSubstr("version=\"v3\"")));
  EXPECT_THAT(m, HasSubstr("prescale_forecast_reloads_total{result=\"loaded\"} 2"));
  EXPECT_THAT(m, HasSubstr("prescale_forecast_reloads_total{result=\"failed\"} 1"));
}

TEST_F(ForecastServiceModelTest, ReloadsOnRequest) {
  auto reload = [&] {
    const http::Response r = call(http::Method::kPost, "/v1/model/reload");
    return std::pair(r.status, r.body.empty() ? nlohmann::json() : nlohmann::json::parse(r.body));
  };
  auto [status, body] = reload();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body["reloaded"], false);
  ASSERT_EQ(save(2), 2);
  std::tie(status, body) = reload();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body["reloaded"], true);
  EXPECT_EQ(body["model_version"], "v2");
  forecast_service::testing::write_text(dir_.path() / "forecast-v3.json", "{}");
  std::tie(status, body) = reload();
  EXPECT_EQ(status, 500);
  EXPECT_THAT(body["error"]["message"].get<std::string>(), HasSubstr("forecast-v3.json: format"));
  EXPECT_EQ(service_->model_store().current()->version_label(), "v2");
}

// POST /v1/model/reload reads a version the poller gave up on, even with its files unchanged
// since (here: the booster mended in place with the same size and time).
TEST_F(ForecastServiceModelTest, AnExplicitReloadRetriesAVersionThatFailed) {
  ASSERT_EQ(save(2), 2);
  const auto ubj = dir_.path() / forecast_service::booster_file_name(2);
  const std::string good = forecast_service::testing::read_text(ubj);
  const auto written = std::filesystem::last_write_time(ubj);
  std::string corrupt = good;
  corrupt[corrupt.size() / 2] ^= 1;
  forecast_service::testing::write_text(ubj, corrupt);
  std::filesystem::last_write_time(ubj, written);
  clock_.advance(5s);
  EXPECT_FALSE(service_->model_store().poll());

  forecast_service::testing::write_text(ubj, good);
  std::filesystem::last_write_time(ubj, written);
  const http::Response r = call(http::Method::kPost, "/v1/model/reload");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["reloaded"], true);
  EXPECT_EQ(service_->model_store().current()->version_label(), "v2");
}

// The service's routes, called directly (no server): each answer is kept.
class CapturedRoutes final : public runtime::Routes {
 public:
  void add(http::Method method, std::string pattern, http::Handler handler) override {
    handlers_[{method, pattern}] = std::move(handler);
  }
  http::Handler& at(http::Method method, const std::string& pattern) {
    return handlers_.at({method, pattern});
  }

 private:
  std::map<std::pair<http::Method, std::string>, http::Handler> handlers_;
};

// A flood of forecasts is answered 503 past the queue's limit at once, not queued without end
// (each waiting request holds its body), and every request gets exactly one answer.
TEST(ForecastServiceQueue, RequestsPastTheQueuesLimitAre503AtOnce) {
  ForecastServiceOptions o;
  o.store.forecaster.model.day_seconds = 3600;
  o.workers = 1;
  o.max_queued = 1;
  auto service = std::make_unique<ForecastService>(o);
  CapturedRoutes routes;
  service->register_routes(routes);
  nlohmann::json body = hourly_points(1'767'225'600, 20'000);
  body["horizon"] = 60;
  const std::string text = body.dump();
  constexpr int kRequests = 20;
  std::mutex mu;
  std::vector<http::Response> answers;
  std::vector<http::Request> requests;
  requests.reserve(kRequests);  // each stays valid until answered
  for (int i = 0; i < kRequests; ++i) {
    requests.push_back(request(http::Method::kPost, "/v1/forecast", text));
    routes.at(http::Method::kPost, "/v1/forecast")(requests.back(),
                                                   http::Responder([&](http::Response r) {
                                                     std::lock_guard lock(mu);
                                                     answers.push_back(std::move(r));
                                                   }));
  }
  service.reset();  // answers what was queued
  ASSERT_EQ(answers.size(), static_cast<size_t>(kRequests));
  int ok = 0, busy = 0;
  for (const http::Response& r : answers) {
    if (r.status == 200) ++ok;
    if (r.status == 503) {
      ++busy;
      EXPECT_THAT(r.body, HasSubstr("\"overloaded\""));
      EXPECT_EQ(r.headers.get("Retry-After"), "1");
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, kRequests - 2 - 5);  // one fitting, one queued (and a few done meanwhile)
  EXPECT_EQ(ok + busy, kRequests);
}

}  // namespace
}  // namespace prescale::services
