#include "services/fraud/fraud_service.h"

#include <spdlog/spdlog.h>

#include <string>
#include <utility>

#include "http/json.h"
#include "services/fraud/rules.h"
#include "services/fraud/transaction_json.h"
#include "telemetry/registry.h"

namespace prescale::services {
namespace {

http::Response invalid(std::string_view message) {
  return http::error_response(400, "invalid_argument", message);
}

http::Response ok(const nlohmann::ordered_json& body) {
  return http::Response::json(
      200, body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

}  // namespace

struct FraudService::Metrics {
  // [fallback][fraud]
  telemetry::Counter* decisions[2][2] = {{nullptr, nullptr}, {nullptr, nullptr}};

  void count(bool fallback, bool fraud) const {
    if (decisions[fallback][fraud] != nullptr) decisions[fallback][fraud]->inc();
  }
};

FraudService::FraudService(FraudServiceOptions options)
    : options_(std::move(options)), metrics_(std::make_unique<Metrics>()) {
  store_ = std::make_unique<fraud::ModelStore>(fraud::ModelStoreOptions{
      .directory = options_.model_dir,
      .clock = options_.clock,
      .poll_period = options_.poll_period,
      .registry = options_.registry,
  });
  if (options_.registry != nullptr) {
    auto& family = options_.registry->counter(
        "prescale_fraud_decisions_total", "Transactions scored by the fraud service, by decision",
        {"decision", "fallback"});
    for (int fallback = 0; fallback < 2; ++fallback) {
      for (int fraud = 0; fraud < 2; ++fraud) {
        metrics_->decisions[fallback][fraud] =
            &family.with({fraud ? "fraud" : "legit", fallback ? "true" : "false"});
      }
    }
  }
  (void)store_->reload();  // a failure is logged and counted by the store
  if (store_->current() == nullptr) {
    spdlog::warn("fraud: no model loaded from \"{}\"; scoring with the fallback rules ({})",
                 options_.model_dir, fraud::kRulesVersion);
  }
  if (options_.poll_period.count() > 0 && !options_.model_dir.empty()) store_->start_watching();
}

FraudService::~FraudService() = default;

void FraudService::on_drain() { store_->stop_watching(); }

void FraudService::register_routes(runtime::Routes& routes) {
  // One model for the whole request: a batch is scored by one version even across a reload.
  auto score_one = [this](const fraud::Model* model, const fraud::Features& x) {
    fraud::Score score;
    fraud::Decision decision;
    if (model != nullptr) {
      score = model->score(x);
      decision = {options_.threshold.value_or(model->info().threshold), model->name(), false};
    } else {
      score = fraud::score_by_rules(x);
      decision = {fraud::kRulesThreshold, fraud::kRulesVersion, true};
    }
    metrics_->count(decision.fallback, score.probability >= decision.threshold);
    return fraud::score_json(score, decision);
  };

  routes.post("/v1/score", [this, score_one](http::Request& req, http::Responder respond) {
    auto body = http::parse_json(req.body);
    if (!body) return respond(invalid(body.error().message));
    auto x = fraud::parse_transaction(*body, "");
    if (!x) return respond(invalid(x.error().message));
    const std::shared_ptr<const fraud::Model> model = store_->current();
    respond(ok(score_one(model.get(), *x)));
  });

  routes.post("/v1/score:batch", [this, score_one](http::Request& req, http::Responder respond) {
    auto body = http::parse_json(req.body);
    if (!body) return respond(invalid(body.error().message));
    if (!body->is_object()) return respond(invalid("body: expected a JSON object"));
    for (const auto& [key, value] : body->items()) {
      if (key != "transactions") return respond(invalid(key + ": unknown field"));
    }
    auto list = body->find("transactions");
    if (list == body->end()) return respond(invalid("transactions: missing"));
    if (!list->is_array()) return respond(invalid("transactions: expected an array"));
    if (list->size() > options_.max_batch) {
      return respond(http::error_response(413, "limit_exceeded",
                                          "transactions: " + std::to_string(list->size()) +
                                              " transactions; at most " +
                                              std::to_string(options_.max_batch) + " per request"));
    }
    // Every transaction is checked before any is scored: a batch is answered whole or not at all.
    std::vector<fraud::Features> rows;
    rows.reserve(list->size());
    for (size_t i = 0; i < list->size(); ++i) {
      auto x = fraud::parse_transaction((*list)[i], "transactions[" + std::to_string(i) + "].");
      if (!x) return respond(invalid(x.error().message));
      rows.push_back(*x);
    }
    const std::shared_ptr<const fraud::Model> model = store_->current();
    nlohmann::ordered_json results = nlohmann::ordered_json::array();
    for (const fraud::Features& x : rows) results.push_back(score_one(model.get(), x));
    nlohmann::ordered_json out;
    out["model_version"] =
        model != nullptr ? std::string_view(model->name()) : std::string_view(fraud::kRulesVersion);
    out["fallback"] = model == nullptr;
    out["results"] = std::move(results);
    respond(ok(out));
  });

  routes.get("/v1/model", [this](http::Request&, http::Responder respond) {
    const std::shared_ptr<const fraud::Model> model = store_->current();
    nlohmann::ordered_json out;
    if (model == nullptr) {
      out["model_version"] = fraud::kRulesVersion;
      out["model"] = "rules";
      out["threshold"] = fraud::kRulesThreshold;
      out["fallback"] = true;
      return respond(ok(out));
    }
    const fraud::ModelInfo& info = model->info();
    out["model_version"] = model->name();
    out["model"] = fraud::to_string(info.kind);
    out["threshold"] = options_.threshold.value_or(info.threshold);
    out["file_threshold"] = info.threshold;
    out["fallback"] = false;
    out["created_at"] = info.created_at;
    out["feature_names"] = nlohmann::ordered_json::array();
    for (std::string_view name : fraud::feature_names()) out["feature_names"].push_back(name);
    out["training"] = info.training;
    out["metrics"] = info.metrics;
    respond(ok(out));
  });
}

Result<std::unique_ptr<runtime::Service>> make_fraud_service(FraudServiceOptions options) {
  if (options.threshold && !(*options.threshold > 0 && *options.threshold < 1)) {
    return make_error(ErrorCode::kInvalidArgument, "fraud: threshold: expected a number in (0, 1)");
  }
  if (options.max_batch == 0) {
    return make_error(ErrorCode::kInvalidArgument, "fraud: max_batch: expected at least 1");
  }
  if (options.poll_period.count() < 0) {
    return make_error(ErrorCode::kInvalidArgument, "fraud: poll_period: expected ≥ 0");
  }
  return std::unique_ptr<runtime::Service>(std::make_unique<FraudService>(std::move(options)));
}

}  // namespace prescale::services
