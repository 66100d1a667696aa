#include "services/fraud/fraud_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

#include "http/client.h"
#include "runtime/runtime.h"
#include "services/fraud/fraud_test_util.h"
#include "services/fraud/model_file.h"
#include "services/fraud/rules.h"
#include "telemetry/registry.h"

namespace prescale::services {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;

json transaction_json(const fraud::Features& x) {
  json t = json::object();
  const auto names = fraud::feature_names();
  for (size_t j = 0; j < fraud::kFeatureCount; ++j) t[std::string(names[j])] = x[j];
  return t;
}

class FraudServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new fraud::Transactions(fraud::testing::generated_transactions(600, 17));
    auto trained =
        fraud::train_model(*data_, fraud::testing::quick_options(), 1, "2026-01-01T00:00:00Z");
    ASSERT_TRUE(trained) << trained.error().message;
    trained_ = new fraud::TrainedModel(std::move(*trained));
  }
  static void TearDownTestSuite() {
    delete trained_;
    delete data_;
  }

  void write_version(int version) {
    fraud::ModelInfo info = trained_->model->info();
    info.version = version;
    ASSERT_TRUE(fraud::write_model_file(dir_.str(), info, trained_->body));
  }

  // Starts the service on port 0; with `model`, fraud-v1.json is in its directory first.
  void start(bool model, std::optional<double> threshold = std::nullopt) {
    if (model) write_version(1);
    FraudServiceOptions o;
    o.model_dir = dir_.str();
    o.poll_period = 0ms;  // reloads are explicit in tests
    o.threshold = threshold;
    o.max_batch = 50;
    o.registry = &registry_;
    auto service = make_fraud_service(o);
    ASSERT_TRUE(service) << service.error().message;
    service_ = std::move(*service);
    runtime::RuntimeOptions ro;
    ro.server.port = 0;
    ro.server.threads = 2;
    ro.server.max_body_bytes = 64 * 1024;
    ro.shutdown_grace = 5s;
    ro.registry = &registry_;
    runtime_ = std::make_unique<runtime::Runtime>(*service_, ro);
    ASSERT_TRUE(runtime_->start());
  }
  FraudService& fraud_service() { return static_cast<FraudService&>(*service_); }

  http::Response call(http::Method method, std::string target, std::string body = {}) {
    http::Request req;
    req.method = method;
    req.method_name = std::string(http::to_string(method));
    req.target = std::move(target);
    req.body = std::move(body);
    if (!req.body.empty()) req.headers.set("Content-Type", "application/json");
    auto r = client_.request("127.0.0.1", runtime_->port(), std::move(req));
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : http::Response{};
  }
  http::Response score(const json& body) {
    return call(http::Method::kPost, "/v1/score", body.dump());
  }
  std::string error_of(const std::string& target, const std::string& body, int status = 400) {
    const http::Response r = call(http::Method::kPost, target, body);
    EXPECT_EQ(r.status, status) << r.body;
    return r.body;
  }

  static fraud::Transactions* data_;
  static fraud::TrainedModel* trained_;
  fraud::testing::TempDir dir_;
  telemetry::Registry registry_;
  std::unique_ptr<runtime::Service> service_;
  std::unique_ptr<runtime::Runtime> runtime_;
  http::Client client_;
};
fraud::Transactions* FraudServiceTest::data_ = nullptr;
fraud::TrainedModel* FraudServiceTest::trained_ = nullptr;

TEST_F(FraudServiceTest, ScoresOneTransaction) {
  start(/*model=*/true);
  const fraud::Features& x = data_->rows[10];
  const http::Response r = score(transaction_json(x));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  // Field order as documented.
  EXPECT_EQ(r.body.find("{\"fraud_probability\":"), 0u) << r.body;
  const double p = j["fraud_probability"];
  EXPECT_DOUBLE_EQ(p, trained_->model->probability(x));
  const double threshold = trained_->model->info().threshold;
  EXPECT_EQ(j["threshold"], threshold);
  EXPECT_EQ(j["decision"], p >= threshold ? "fraud" : "legit");
  EXPECT_EQ(j["model_version"], "fraud-v1");
  EXPECT_EQ(j["fallback"], false);
  ASSERT_EQ(j["top_features"].size(), 3u);
  double previous = INFINITY;
  for (const json& f : j["top_features"]) {
    EXPECT_TRUE(fraud::feature_index(f["feature"].get<std::string>()));
    const double c = f["contribution"];
    EXPECT_LE(std::abs(c), previous);
    previous = std::abs(c);
  }
}

TEST_F(FraudServiceTest, ScoresABatchInOrderWithOneVersion) {
  start(true);
  json body = {{"transactions", json::array()}};
  for (size_t i = 0; i < 20; ++i) body["transactions"].push_back(transaction_json(data_->rows[i]));
  const http::Response r = call(http::Method::kPost, "/v1/score:batch", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  EXPECT_EQ(j["model_version"], "fraud-v1");
  EXPECT_EQ(j["fallback"], false);
  ASSERT_EQ(j["results"].size(), 20u);
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_DOUBLE_EQ(j["results"][i]["fraud_probability"].get<double>(),
                     trained_->model->probability(data_->rows[i]))
        << i;
    EXPECT_EQ(j["results"][i]["model_version"], "fraud-v1");
  }
  const json empty =
      json::parse(call(http::Method::kPost, "/v1/score:batch", R"({"transactions":[]})").body);
  EXPECT_EQ(empty["results"].size(), 0u);
}

TEST_F(FraudServiceTest, MissingFeaturesAreNullAndAThresholdCanBeConfigured) {
  start(true, 0.999);
  json t = transaction_json(data_->rows[3]);
  t["V14"] = nullptr;
  t["Amount"] = nullptr;
  const http::Response r = score(t);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  fraud::Features x = data_->rows[3];
  x[14] = x[29] = NAN;
  EXPECT_DOUBLE_EQ(j["fraud_probability"].get<double>(), trained_->model->probability(x));
  EXPECT_EQ(j["threshold"], 0.999);
  EXPECT_EQ(j["decision"], j["fraud_probability"].get<double>() >= 0.999 ? "fraud" : "legit");
}

TEST_F(FraudServiceTest, ValidationErrorsNameTheField) {
  start(true);
  const json good = transaction_json(data_->rows[0]);
  json bad = good;
  bad["V30"] = 1;
  EXPECT_THAT(error_of("/v1/score", bad.dump()), HasSubstr("V30: unknown field"));
  bad = good;
  bad["V7"] = "1.5";
  EXPECT_THAT(error_of("/v1/score", bad.dump()), HasSubstr("V7: expected a number or null"));
  bad = good;
  bad.erase("Amount");
  EXPECT_THAT(error_of("/v1/score", bad.dump()),
              HasSubstr("Amount: missing (send null for an unknown value)"));
  bad = good;
  bad["V2"] = 1e300;
  EXPECT_THAT(error_of("/v1/score", bad.dump()), HasSubstr("V2: out of range"));
  EXPECT_THAT(error_of("/v1/score", "{\"Time\": 1,"), HasSubstr("invalid JSON at byte"));
  EXPECT_THAT(error_of("/v1/score", "[1, 2]"), HasSubstr("body: expected a JSON object"));
  // A feature given twice was scored on its last value without a word.
  std::string twice = good.dump();
  twice.insert(twice.size() - 1, ",\"V14\":-10");
  EXPECT_THAT(error_of("/v1/score", twice), HasSubstr(R"(key \"V14\" given twice)"));

  json batch = {{"transactions", {good, good, good, good}}};
  batch["transactions"][3]["V7"] = true;
  EXPECT_THAT(error_of("/v1/score:batch", batch.dump()),
              HasSubstr("transactions[3].V7: expected a number or null"));
  batch["transactions"][3] = 5;
  EXPECT_THAT(error_of("/v1/score:batch", batch.dump()),
              HasSubstr("transactions[3]: expected a JSON object"));
  EXPECT_THAT(error_of("/v1/score:batch", R"({"transaction":[]})"),
              HasSubstr("transaction: unknown field"));
  EXPECT_THAT(error_of("/v1/score:batch", R"({})"), HasSubstr("transactions: missing"));
  EXPECT_THAT(error_of("/v1/score:batch", R"({"transactions":{}})"),
              HasSubstr("transactions: expected an array"));
}

TEST_F(FraudServiceTest, SizeLimitsAre413) {
  start(true);
  json batch = {{"transactions", json::array()}};
  for (int i = 0; i < 51; ++i) batch["transactions"].push_back(json::object());
  EXPECT_THAT(error_of("/v1/score:batch", batch.dump(), 413),
              HasSubstr("transactions: 51 transactions; at most 50 per request"));
  // Over the runtime's body limit (64 KiB here): the server answers 413 before the handler.
  const http::Response r =
      call(http::Method::kPost, "/v1/score:batch", std::string(70 * 1024, ' '));
  EXPECT_EQ(r.status, 413);
}

TEST_F(FraudServiceTest, FallsBackToRulesWithoutAModel) {
  start(/*model=*/false);
  EXPECT_EQ(call(http::Method::kGet, "/readyz").status, 200);
  fraud::Features x{};
  x[0] = 3600;   // 01:00
  x[29] = 1.0f;  // a card-testing amount
  const http::Response r = score(transaction_json(x));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  EXPECT_EQ(j["fallback"], true);
  EXPECT_EQ(j["model_version"], fraud::kRulesVersion);
  EXPECT_EQ(j["threshold"], fraud::kRulesThreshold);
  EXPECT_EQ(j["decision"], "fraud");
  EXPECT_EQ(j["top_features"][0]["feature"], "Amount");
  EXPECT_EQ(j["top_features"][0]["contribution"], 2.5);
  EXPECT_EQ(j["top_features"][1]["feature"], "Time");

  x[29] = 40;
  x[0] = 13 * 3600;
  const json legit = json::parse(score(transaction_json(x)).body);
  EXPECT_EQ(legit["decision"], "legit");
  EXPECT_EQ(legit["fallback"], true);
  EXPECT_EQ(legit["top_features"].size(), 0u);
  const json batch = json::parse(call(http::Method::kPost, "/v1/score:batch",
                                      json{{"transactions", {transaction_json(x)}}}.dump())
                                     .body);
  EXPECT_EQ(batch["fallback"], true);
  EXPECT_EQ(batch["results"][0]["fallback"], true);
  EXPECT_EQ(json::parse(call(http::Method::kGet, "/v1/model").body)["model"], "rules");

  // A model arriving later replaces the rules.
  write_version(1);
  ASSERT_EQ(fraud_service().models().reload(), true);
  EXPECT_EQ(json::parse(score(transaction_json(x)).body)["fallback"], false);
}

TEST_F(FraudServiceTest, ReportsTheModelAndItsVersionMetric) {
  start(true);
  const json m = json::parse(call(http::Method::kGet, "/v1/model").body);
  EXPECT_EQ(m["model_version"], "fraud-v1");
  EXPECT_EQ(m["model"], "gradient_boosted_trees");
  EXPECT_EQ(m["feature_names"].size(), 30u);
  EXPECT_EQ(m["metrics"]["baseline"]["model"], "logistic_regression");
  ASSERT_EQ(score(transaction_json(data_->rows[0])).status, 200);
  const std::string metrics = call(http::Method::kGet, "/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("prescale_model_info{service=\"fraud\",version=\"fraud-v1\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("prescale_fraud_decisions_total{decision="));
  EXPECT_THAT(metrics, HasSubstr("prescale_requests_total{service=\"fraud\",route=\"/v1/score\""));
}

TEST_F(FraudServiceTest, HotReloadUnderLoadFailsNoRequest) {
  start(true);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&, t] {
      http::Client client;
      int last_version = 1;
      for (size_t i = static_cast<size_t>(t); !stop.load(); i = (i + 1) % data_->size()) {
        http::Request req;
        req.method = http::Method::kPost;
        req.method_name = "POST";
        req.target = "/v1/score";
        req.body = transaction_json(data_->rows[i]).dump();
        auto r = client.request("127.0.0.1", runtime_->port(), std::move(req));
        if (!r || r->status != 200) {
          ++failed;
          continue;
        }
        const json j = json::parse(r->body);
        const std::string v = j["model_version"];
        const int version = std::stoi(v.substr(v.find('v') + 1));
        if (j["fallback"] != false || version < last_version) ++failed;
        last_version = version;
        ++ok;
      }
    });
  }
  for (int version = 2; version <= 12; ++version) {
    write_version(version);
    auto changed = fraud_service().models().reload();
    EXPECT_TRUE(changed && *changed);
    const int before = ok.load();  // let requests land on each version
    while (ok.load() < before + 10 && failed.load() == 0) std::this_thread::yield();
  }
  while (ok.load() < 300 && failed.load() == 0) std::this_thread::yield();
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(json::parse(score(transaction_json(data_->rows[0])).body)["model_version"],
            "fraud-v12");
}

TEST(FraudServiceOptionsTest, RejectsOutOfRangeOptions) {
  FraudServiceOptions o;
  o.model_dir.clear();
  o.threshold = 1.0;
  EXPECT_FALSE(make_fraud_service(o));
  o.threshold.reset();
  o.max_batch = 0;
  EXPECT_FALSE(make_fraud_service(o));
}

}  // namespace
}  // namespace prescale::services
