#include "services/forecast/forecast_service.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "http/json.h"
#include "telemetry/registry.h"

namespace prescale::services {
namespace {

using forecast_service::ForecastModel;
using forecast_service::ForecastResult;
using forecast_service::Points;

int status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kOutOfRange:
      return 507;  // the store is full: nothing a retry of the same request fixes
    default:
      return 500;
  }
}

http::Response error(const Error& e) {
  const char* code = e.code == ErrorCode::kInvalidArgument ? "invalid_argument"
                     : e.code == ErrorCode::kNotFound      ? "not_found"
                     : e.code == ErrorCode::kOutOfRange    ? "limit_exceeded"
                                                           : "internal";
  return http::error_response(status_of(e.code), code, e.message);
}

http::Response invalid(std::string message) {
  return http::error_response(400, "invalid_argument", message);
}

// Rejects fields other than `allowed`.
std::optional<std::string> unknown_field(const nlohmann::json& body,
                                         std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : body.items()) {
    bool ok = false;
    for (std::string_view a : allowed) ok = ok || key == a;
    if (!ok) return key + ": unknown field";
  }
  return std::nullopt;
}

// An optional positive number field.
Result<std::optional<double>> optional_number(const nlohmann::json& body, const char* field) {
  if (!body.contains(field)) return std::optional<double>{};
  const nlohmann::json& v = body.at(field);  // present: at() does not throw
  if (v.is_null()) return std::optional<double>{};
  if (!v.is_number())
    return make_error(ErrorCode::kInvalidArgument, std::string(field) + ": expected a number");
  return std::optional<double>{v.get<double>()};
}

Result<int> horizon_from(std::optional<double> v, int default_horizon, int max_horizon,
                         std::string_view field) {
  if (!v) return default_horizon;
  if (*v != std::floor(*v) || *v < 1 || *v > max_horizon) {
    return make_error(ErrorCode::kInvalidArgument, std::string(field) +
                                                       ": expected a whole number of steps in 1.." +
                                                       std::to_string(max_horizon));
  }
  return static_cast<int>(*v);
}

nlohmann::json to_json(const ForecastResult& r) {
  const size_t n = r.quantiles.p50.size();
  std::vector<double> timestamps(n);
  for (size_t i = 0; i < n; ++i) {
    timestamps[i] = r.start_seconds + static_cast<double>(i) * r.step_seconds;
  }
  return {{"model", r.quantiles.model},
          {"model_version", r.model_version},
          {"step_seconds", r.step_seconds},
          {"timestamps", timestamps},
          {"p50", r.quantiles.p50},
          {"p90", r.quantiles.p90},
          {"p99", r.quantiles.p99},
          {"backtest",
           {{"horizons", r.backtest.horizons},
            {"mae", r.backtest.mae},
            {"mase", r.backtest.mase},
            {"pinball_p90", r.backtest.pinball_p90},
            {"coverage_p90", r.backtest.coverage_p90}}},
          {"history_points", r.history_points}};
}

}  // namespace

// A fixed pool of threads for the fits, so I/O threads only parse and answer.
class ForecastService::Workers {
 public:
  Workers(int n, size_t max_queued) : max_queued_(max_queued) {
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Workers() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  // False, the task dropped, when max_queued tasks wait already.
  bool post(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      if (tasks_.size() >= max_queued_) return false;
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return true;
  }

 private:
  // Runs queued tasks until stopped and the queue is empty: accepted requests are answered.
  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

struct ForecastService::Metrics {
  telemetry::Gauge* series = nullptr;
};

ForecastService::ForecastService(ForecastServiceOptions options)
    : options_(std::move(options)),
      store_(options_.store),
      workers_(std::make_unique<Workers>(options_.workers, options_.max_queued)),
      metrics_(std::make_unique<Metrics>()) {
  models_ = std::make_unique<forecast_service::ModelStore>(forecast_service::ModelStoreOptions{
      .directory = options_.model_dir,
      .clock = options_.clock,
      .poll_interval = options_.poll_interval,
      .background_poll = options_.background_poll,
      .registry = options_.registry,
  });
  if (!options_.model_dir.empty()) {
    (void)models_->reload();  // a failure is logged and counted by the store
    if (models_->current()->version == 0) {
      spdlog::warn("forecast: no model loaded from \"{}\"; forecasting with the method alone ({})",
                   options_.model_dir, forecast_service::kMethodVersion);
    }
    models_->start_polling();
  }
  if (options_.registry != nullptr) {
    metrics_->series =
        &options_.registry->gauge("prescale_forecast_series", "Series the forecast service keeps")
             .with();
  }
}

ForecastService::~ForecastService() = default;

forecast_service::SeriesStore& ForecastService::store() { return store_; }
forecast_service::ModelStore& ForecastService::model_store() { return *models_; }

void ForecastService::on_drain() { models_->stop_polling(); }

void ForecastService::run_queued(http::Responder respond,
                                 std::function<void(http::Responder)> work) {
  // The responder stays out of the task until it is queued: a full queue answers here.
  auto answer = std::make_shared<http::Responder>(std::move(respond));
  if (workers_->post([answer, work = std::move(work)] { work(std::move(*answer)); })) return;
  http::Response busy =
      http::error_response(503, "overloaded",
                           std::to_string(options_.max_queued) +
                               " requests wait for a fitting thread already (the limit); retry");
  busy.headers.set("Retry-After", "1");
  (*answer)(std::move(busy));
}

void ForecastService::register_routes(runtime::Routes& routes) {
  routes.post("/v1/forecast", [this](http::Request& req, http::Responder respond) {
    run_queued(std::move(respond), [this, body = std::move(req.body)](http::Responder reply) {
      auto json = http::parse_json(body);
      if (!json) return reply(invalid(json.error().message));
      if (!json->is_object()) return reply(invalid("body: expected a JSON object"));
      if (auto bad = unknown_field(*json, {"timestamps", "values", "step_seconds", "horizon"})) {
        return reply(invalid(*bad));
      }
      auto points = forecast_service::parse_points(*json);
      if (!points) return reply(error(points.error()));
      auto step = optional_number(*json, "step_seconds");
      if (!step) return reply(error(step.error()));
      auto h = optional_number(*json, "horizon");
      if (!h) return reply(error(h.error()));
      auto horizon = horizon_from(*h, options_.default_horizon, options_.max_horizon, "horizon");
      if (!horizon) return reply(error(horizon.error()));
      auto series = forecast_service::to_series(*points, *step);
      if (!series) return reply(error(series.error()));
      // The fit keeps this model to the end, whatever a reload swaps in meanwhile.
      const std::shared_ptr<const ForecastModel> model = models_->current();
      auto result = forecast_service::forecast_once(*series, *horizon, options_.store.forecaster,
                                                    model.get());
      if (!result) return reply(error(result.error()));
      reply(http::json_response(200, to_json(*result)));
    });
  });

  routes.post("/v1/series/{name}/points", [this](http::Request& req, http::Responder respond) {
    const std::string name(*req.param("name"));
    if (!forecast_service::valid_series_name(name)) {
      return respond(invalid("path parameter name: expected 1..128 of [a-zA-Z0-9_.-]"));
    }
    auto json = http::parse_json(req.body);
    if (!json) return respond(invalid(json.error().message));
    if (!json->is_object()) return respond(invalid("body: expected a JSON object"));
    if (auto bad = unknown_field(*json, {"timestamps", "values", "step_seconds"})) {
      return respond(invalid(*bad));
    }
    auto points = forecast_service::parse_points(*json);
    if (!points) return respond(error(points.error()));
    auto step = optional_number(*json, "step_seconds");
    if (!step) return respond(error(step.error()));
    auto r = store_.append(name, *points, *step);
    if (!r) return respond(error(r.error()));
    if (metrics_->series != nullptr) metrics_->series->set(static_cast<double>(store_.size()));
    respond(http::json_response(200, {{"series", name},
                                      {"appended", r->appended},
                                      {"points", r->points},
                                      {"step_seconds", r->step_seconds},
                                      {"last_timestamp", r->last_timestamp}}));
  });

  routes.get("/v1/series/{name}/forecast", [this](http::Request& req, http::Responder respond) {
    std::string name(*req.param("name"));
    std::optional<double> h;
    if (auto q = req.query_param("horizon")) {
      double v = 0;
      auto [p, ec] = std::from_chars(q->data(), q->data() + q->size(), v);
      if (ec != std::errc() || p != q->data() + q->size()) {
        return respond(invalid("query parameter horizon: expected a whole number of steps"));
      }
      h = v;
    }
    auto horizon =
        horizon_from(h, options_.default_horizon, options_.max_horizon, "query parameter horizon");
    if (!horizon) return respond(error(horizon.error()));
    run_queued(std::move(respond),
               [this, name = std::move(name), horizon = *horizon](http::Responder reply) {
                 auto r = store_.forecast(name, horizon, models_->current());
                 if (!r) return reply(error(r.error()));
                 nlohmann::json body = to_json(*r);
                 body["series"] = name;
                 reply(http::json_response(200, body));
               });
  });

  routes.get("/v1/series", [this](http::Request&, http::Responder respond) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& s : store_.list()) {
      list.push_back({{"name", s.name},
                      {"points", s.points},
                      {"step_seconds", s.step_seconds},
                      {"first_timestamp", s.first_timestamp},
                      {"last_timestamp", s.last_timestamp},
                      {"model", s.model}});
    }
    respond(http::json_response(200, {{"series", list}}));
  });

  routes.del("/v1/series/{name}", [this](http::Request& req, http::Responder respond) {
    const std::string name(*req.param("name"));
    if (!store_.erase(name)) {
      return respond(
          http::error_response(404, "not_found", "series \"" + name + "\" does not exist"));
    }
    if (metrics_->series != nullptr) metrics_->series->set(static_cast<double>(store_.size()));
    respond(http::json_response(200, {{"deleted", name}}));
  });

  routes.get("/v1/model", [this](http::Request&, http::Responder respond) {
    const std::shared_ptr<const ForecastModel> m = models_->current();
    nlohmann::json body = {{"model_version", m->version_label()}};
    if (m->version > 0) {
      body["model"] = forecast_service::kGlobalModelName;
      body["created_at"] = m->created_at;
      body["training_rows"] = m->booster->training_rows();
      body["training"] = m->training;
      body["metrics"] = m->metrics;
    }
    respond(http::json_response(200, body));
  });

  routes.post("/v1/model/reload", [this](http::Request&, http::Responder respond) {
    if (options_.model_dir.empty()) {
      return respond(http::error_response(409, "no_model_dir",
                                          "the service was started without a model directory"));
    }
    // Loading reads and checks the file: a worker's job, not an I/O thread's. An explicit
    // reload reads a version that failed again, whatever the poller remembers of it.
    run_queued(std::move(respond), [this](http::Responder reply) {
      auto r = models_->reload_retrying_failed();
      if (!r) return reply(http::error_response(500, "reload_failed", r.error().message));
      reply(http::json_response(
          200, {{"reloaded", *r}, {"model_version", models_->current()->version_label()}}));
    });
  });
}

}  // namespace prescale::services
