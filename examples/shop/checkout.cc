// shop-checkout: the shop example's own service — what a user's service looks like on the
// Prescale runtime. A checkout scores the transaction with the built-in fraud service and, when
// it is accepted, asks the built-in recommend service what to suggest next; both calls go
// through the gateway (PRESCALE_GATEWAY_URL) and name their caller in `x-prescale-caller`, which
// is how Prescale learns the call graph. Both carry the order's trace context (traceparent,
// tracestate), so that with tracing on (OTEL_EXPORTER_OTLP_ENDPOINT, docs/tracing.md) an order
// is one trace: gateway, checkout, gateway, fraud, gateway, recommend.
//
//   POST /v1/checkout   {"user": 42, "transaction": {"Time": 406, "V1": ..., "Amount": 9.99}}
//     -> {"order": "accepted"|"held", "fraud_probability": 0.01, "recommendations": [...]}
//     400 when the order is bad (a transaction fraud refuses too), 502 when fraud fails.
//
//   shop-checkout --port 0 --port-file F [--work-ms 20]
// --work-ms stands for the service's own work per order (a database write, say): the handler
// holds its thread that long, so one replica with one thread serves about 1000 / work-ms orders/s.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "core/host_port.h"
#include "core/result.h"
#include "http/client.h"
#include "runtime/runtime.h"
#include "runtime/service.h"
#include "telemetry/process_metrics.h"
#include "telemetry/registry.h"
#include "telemetry/tracing.h"

namespace {

using prescale::http::Request;
using prescale::http::Response;
using prescale::http::Responder;
using Json = nlohmann::json;

struct Upstream {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
};

// PRESCALE_GATEWAY_URL, "http://host[:port]" (core/host_port.h's parse_http_url: the same rules
// as every other host:port of the platform; the path, if any, is not used).
prescale::Result<Upstream> parse_gateway_url(std::string_view url) {
  prescale::Result<prescale::HttpUrl> parsed = prescale::parse_http_url(url);
  if (!parsed) {
    return prescale::make_error(
        prescale::ErrorCode::kInvalidArgument,
        parsed.error().message + " (expected http://host:port, got \"" + std::string(url) + "\")");
  }
  return Upstream{std::move(parsed->host), parsed->port};
}

Response json_error(int status, const std::string& code, const std::string& message) {
  return Response::json(status, Json{{"error", {{"code", code}, {"message", message}}}}.dump());
}

class Checkout final : public prescale::runtime::Service {
 public:
  Checkout(Upstream gateway, std::chrono::milliseconds work)
      : gateway_(std::move(gateway)),
        work_(work),
        client_(prescale::http::ClientOptions{.request_timeout = std::chrono::seconds(5),
                                              .threads = 1}) {}

  std::string_view name() const override { return "checkout"; }

  void register_routes(prescale::runtime::Routes& routes) override {
    routes.post("/v1/checkout",
                [this](Request& req, Responder respond) { respond(checkout(req)); });
  }

 private:
  // A call through the gateway, in the trace of `incoming`: its traceparent (the runtime's span of
  // this request when tracing is on) and tracestate go on.
  prescale::Result<prescale::http::Response> call(const Request& incoming,
                                                  const std::string& method,
                                                  const std::string& target, std::string body) {
    Request req;
    for (const char* field : {"traceparent", "tracestate"}) {
      if (auto value = incoming.headers.get(field)) req.headers.set(field, std::string(*value));
    }
    req.method = method == "POST" ? prescale::http::Method::kPost : prescale::http::Method::kGet;
    req.method_name = method;
    req.target = target;
    req.headers.set("x-prescale-caller", "checkout");
    if (!body.empty()) {
      req.headers.set("Content-Type", "application/json");
      req.body = std::move(body);
    }
    return client_.request(gateway_.host, gateway_.port, std::move(req));
  }

  Response checkout(const Request& request) {
    Json order = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (order.is_discarded() || !order.is_object()) {
      return json_error(400, "invalid_json", "the body must be a JSON object");
    }
    // An int64, as recommend's user ids: a larger one would wrap to a negative id.
    if (!order.contains("user") || !order["user"].is_number_integer() ||
        (order["user"].is_number_unsigned() &&
         order["user"].get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})) {
      return json_error(400, "invalid_field",
                        "user: required, an integer user id (at most 2^63 - 1)");
    }
    if (!order.contains("transaction") || !order["transaction"].is_object()) {
      return json_error(400, "invalid_field", "transaction: required, an object of features");
    }
    const auto score = call(request, "POST", "/v1/score", order["transaction"].dump());
    if (score && score->status == 400) {
      // Fraud refused the transaction the client sent: the client's mistake, and a 502 would
      // count against this replica at the gateway (outlier detection ejects it).
      const Json refusal = Json::parse(score->body, nullptr, false);
      std::string why = "refused by fraud";
      if (refusal.is_object() && refusal.contains("error") && refusal["error"].is_object() &&
          refusal["error"].value("message", Json()).is_string()) {
        why = refusal["error"]["message"].get<std::string>();
      }
      return json_error(400, "invalid_field", "transaction: " + why);
    }
    if (!score || score->status != 200) {
      return json_error(502, "fraud_unavailable",
                        score ? "fraud answered " + std::to_string(score->status)
                              : "fraud: " + score.error().message);
    }
    const Json verdict = Json::parse(score->body, nullptr, false);
    const bool fraud = verdict.value("decision", "") == "fraud";
    // The service's own work: an order written to a database, say.
    if (work_.count() > 0) std::this_thread::sleep_for(work_);
    Json out = {{"order", fraud ? "held" : "accepted"},
                {"fraud_probability", verdict.value("fraud_probability", 0.0)},
                {"recommendations", Json::array()}};
    if (!fraud) {
      const auto recs = call(
          request, "GET",
          "/v1/users/" + std::to_string(order["user"].get<long long>()) + "/recommendations?k=5",
          "");
      if (recs && recs->status == 200) {
        const Json r = Json::parse(recs->body, nullptr, false);
        if (r.is_object() && r.contains("items")) out["recommendations"] = r["items"];
      } else {
        out["recommendations_unavailable"] = true;  // an order does not fail for want of them
      }
    }
    return Response::json(200, out.dump());
  }

  Upstream gateway_;
  std::chrono::milliseconds work_;
  prescale::http::Client client_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shop-checkout: the shop example's checkout service"};
  int port = 0;
  std::string address = "127.0.0.1";
  std::string port_file;
  int work_ms = 20;
  int threads = 1;
  app.add_option("--port", port, "Port to listen on; 0 picks a free one")->check(CLI::Range(0, 65535));
  app.add_option("--address", address,
                 "Address to listen on (0.0.0.0: every interface, as in a Kubernetes pod)");
  app.add_option("--port-file", port_file, "Write the bound port here once listening");
  app.add_option("--work-ms", work_ms, "Own work per order, milliseconds")->check(CLI::Range(0, 10000));
  app.add_option("--threads", threads, "I/O threads")->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);

  const char* url = std::getenv("PRESCALE_GATEWAY_URL");
  auto gateway = parse_gateway_url(url != nullptr ? url : "http://127.0.0.1:8080");
  if (!gateway) {
    std::cerr << "shop-checkout: PRESCALE_GATEWAY_URL: " << gateway.error().message << "\n";
    return 2;
  }
  prescale::runtime::Runtime::block_termination_signals();
  prescale::telemetry::Registry registry;
  prescale::telemetry::register_process_metrics(registry);
  // Spans to an OTLP receiver when OTEL_EXPORTER_OTLP_ENDPOINT says where (docs/tracing.md); made
  // before the service, so that it outlives whatever the service still answers.
  const auto tracer = prescale::telemetry::tracer_from_env("checkout", &registry);
  Checkout service(*gateway, std::chrono::milliseconds(work_ms));
  prescale::runtime::RuntimeOptions options;
  options.server.address = address;
  options.server.port = static_cast<uint16_t>(port);
  options.server.threads = threads;
  options.registry = &registry;
  options.port_file = port_file;
  options.tracer = tracer.get();
  prescale::runtime::Runtime rt(service, options);
  if (auto started = rt.start(); !started) {
    std::cerr << "shop-checkout: " << started.error().to_string() << "\n";
    return 1;
  }
  return rt.run();
}
