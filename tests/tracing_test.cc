// Traces end to end (docs/tracing.md): a request through the gateway to a service that calls
// another through the gateway is one trace of four spans, each the child of the one before; an
// OTLP receiver reads them with protobuf's own parser. Then `prescale up` with a `tracing:`
// section: its gateway and a replica of `prescale serve echo` send their spans where the file
// says, named after their services.
#include "telemetry/tracing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/config.h"
#include "gateway/gateway.h"
#include "http/body_stream.h"
#include "http/client.h"
#include "http/server.h"
#include "runtime/runtime.h"
#include "support/platform.h"
#include "support/subprocess.h"
#include "telemetry/registry.h"
#include "telemetry/testing/otlp_receiver.h"
#include "telemetry/trace_context.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using telemetry::testing::OtlpReceiver;
using telemetry::testing::ReceivedSpan;

http::Request get(std::string target, std::optional<std::string> traceparent = std::nullopt) {
  http::Request req;
  req.method = http::Method::kGet;
  req.method_name = "GET";
  req.target = std::move(target);
  if (traceparent) req.headers.set("traceparent", *traceparent);
  return req;
}

std::unique_ptr<telemetry::Tracer> tracer_to(const OtlpReceiver& receiver, std::string name,
                                             double ratio = 1.0) {
  telemetry::TracerOptions o;
  o.host = "127.0.0.1";
  o.port = receiver.port();
  o.resource = {{"service.name", std::move(name)}};
  o.sampler.ratio = ratio;
  o.start_thread = false;  // flushed by the test
  auto t = telemetry::Tracer::create(o, nullptr);
  EXPECT_TRUE(t.has_value());
  return std::move(*t);
}

// A service of the runtime: `front` asks `back` through the gateway, forwarding the trace
// context its request has (this hop's, as the runtime set it).
class Hop final : public runtime::Service {
 public:
  Hop(std::string name, std::string next, std::uint16_t* gateway_port)
      : name_(std::move(name)), next_(std::move(next)), gateway_port_(gateway_port) {}
  std::string_view name() const override { return name_; }
  void register_routes(runtime::Routes& routes) override {
    routes.get("/" + name_ + "/v1/{what}", [this](http::Request& req, http::Responder respond) {
      {
        std::lock_guard lock(mu_);
        seen_.emplace_back(req.headers.get("traceparent").value_or(""));
      }
      if (next_.empty()) {
        respond(http::Response::text(200, name_));
        return;
      }
      http::Request call = get("/" + next_ + "/v1/x");
      call.headers.set("x-prescale-caller", name_);
      for (const char* field : {"traceparent", "tracestate"}) {
        if (auto v = req.headers.get(field)) call.headers.set(field, std::string(*v));
      }
      auto got = client_.request("127.0.0.1", *gateway_port_, std::move(call), 5s);
      respond(http::Response::text(got ? got->status : 502, got ? got->body : "failed"));
    });
    // A handler that never answers (the server answers 500 for it).
    routes.get("/" + name_ + "/dropped", [](http::Request&, http::Responder) {});
    // Three events 100 ms apart, streamed: the head is answered at once.
    routes.get("/" + name_ + "/stream", [this](http::Request&, http::Responder respond) {
      auto body = std::make_shared<http::BodyStream>();
      http::Response r;
      r.headers.set("Content-Type", "text/event-stream");
      r.stream = body;
      respond(std::move(r));
      std::lock_guard lock(mu_);
      writers_.emplace_back([body] {
        for (int i = 0; i < 3; ++i) {
          body->write("data: " + std::to_string(i) + "\n\n");
          std::this_thread::sleep_for(100ms);
        }
        body->end();
      });
    });
  }
  // The traceparent of each request it was sent.
  std::vector<std::string> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> seen_;
  std::string name_, next_;
  std::uint16_t* gateway_port_;
  http::Client client_;
  std::vector<std::jthread> writers_;  // the streams' events; joined first
};

struct Shop {
  explicit Shop(double gateway_ratio = 1.0)
      : gateway_tracer(tracer_to(receiver, "prescale-gateway", gateway_ratio)),
        front_tracer(tracer_to(receiver, "front")),
        back_tracer(tracer_to(receiver, "back")),
        front("front", "back", &gateway_port),
        back("back", "", &gateway_port) {
    front_rt = start(front, front_tracer.get());
    back_rt = start(back, back_tracer.get());
    auto config = load_config_string(R"(version: 1
services:
  - {name: front, kind: builtin/echo}
  - {name: back, kind: builtin/echo}
gateway:
  routes:
    - {match: {path_prefix: /front/}, service: front}
    - {match: {path_prefix: /back/}, service: back}
)",
                                     "tracing_test.yaml");
    EXPECT_TRUE(config) << config.error().message;
    gateway::GatewayOptions o;
    o.registry = &registry;
    o.tracer = gateway_tracer.get();
    o.health_checks = false;
    auto g = gateway::Gateway::create(config->gateway, o);
    EXPECT_TRUE(g) << g.error().message;
    gw = std::move(*g);
    EXPECT_TRUE(gw->set_endpoints("front", {{"front-1", "127.0.0.1", front_rt->port()}}));
    EXPECT_TRUE(gw->set_endpoints("back", {{"back-1", "127.0.0.1", back_rt->port()}}));
    http::ServerOptions so;
    so.threads = 2;
    server = std::make_unique<http::Server>(so, gw->handler());
    EXPECT_TRUE(server->start());
    gateway_port = server->port();
  }
  ~Shop() {
    server->shutdown(1s);
    front_rt->drain();
    back_rt->drain();
  }
  std::unique_ptr<runtime::Runtime> start(runtime::Service& s, telemetry::Tracer* tracer) {
    runtime::RuntimeOptions o;
    o.server.threads = 2;
    o.shutdown_grace = 1s;
    o.tracer = tracer;
    auto rt = std::make_unique<runtime::Runtime>(s, o);
    EXPECT_TRUE(rt->start());
    return rt;
  }
  void flush() {
    gateway_tracer->flush();
    front_tracer->flush();
    back_tracer->flush();
  }

  OtlpReceiver receiver;
  telemetry::Registry registry;
  std::unique_ptr<telemetry::Tracer> gateway_tracer, front_tracer, back_tracer;
  std::uint16_t gateway_port = 0;
  Hop front, back;
  std::unique_ptr<runtime::Runtime> front_rt, back_rt;
  std::unique_ptr<gateway::Gateway> gw;
  std::unique_ptr<http::Server> server;
};

const ReceivedSpan* find_span(const std::vector<ReceivedSpan>& spans, const std::string& service,
                              const std::string& route) {
  for (const ReceivedSpan& s : spans) {
    if (s.resource.at("service.name") == service && s.attributes.count("http.route") &&
        s.attributes.at("http.route") == route) {
      return &s;
    }
  }
  return nullptr;
}

TEST(Tracing, ARequestThroughTwoServicesIsOneTraceOfChildSpans) {
  Shop shop;
  constexpr std::string_view kClientSpan = "00f067aa0ba902b7";
  const std::string incoming =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-" + std::string(kClientSpan) + "-01";
  http::Client client;
  http::Request req = get("/front/v1/order", incoming);
  req.headers.set("tracestate", "vendor=abc");
  auto answer = client.request("127.0.0.1", shop.gateway_port, std::move(req), 10s);
  ASSERT_TRUE(answer.has_value()) << answer.error().to_string();
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(answer->body, "back");
  shop.flush();

  const std::vector<ReceivedSpan> spans = shop.receiver.spans();
  ASSERT_EQ(spans.size(), 4u);
  const ReceivedSpan* gw_front = find_span(spans, "prescale-gateway", "/front/");
  const ReceivedSpan* front = find_span(spans, "front", "/front/v1/{what}");
  const ReceivedSpan* gw_back = find_span(spans, "prescale-gateway", "/back/");
  const ReceivedSpan* back = find_span(spans, "back", "/back/v1/{what}");
  ASSERT_TRUE(gw_front && front && gw_back && back);
  for (const ReceivedSpan* s : {gw_front, front, gw_back, back}) {
    EXPECT_EQ(s->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") << s->name;
    EXPECT_EQ(s->kind, 2) << s->name;  // server
    EXPECT_EQ(s->trace_state, "vendor=abc") << s->name;
    EXPECT_EQ(s->attributes.at("http.response.status_code"), "200");
    EXPECT_EQ(s->attribute_types.at("http.response.status_code"), 'i');
    EXPECT_EQ(s->status_code, 0);                    // unset: not an error
    EXPECT_EQ(s->flags & 0xff, 1u) << s->name;       // sampled
    EXPECT_EQ(s->flags & 0x300, 0x300u) << s->name;  // each parent came over the wire
    EXPECT_GT(s->start_unix_nano, 1'700'000'000'000'000'000ULL) << "Unix nanoseconds";
    EXPECT_EQ(s->scope, "prescale");
  }
  // Each hop the child of the one before it.
  EXPECT_EQ(gw_front->parent_span_id, kClientSpan);
  EXPECT_EQ(front->parent_span_id, gw_front->span_id);
  EXPECT_EQ(gw_back->parent_span_id, front->span_id);
  EXPECT_EQ(back->parent_span_id, gw_back->span_id);
  // Each within its parent.
  EXPECT_LE(gw_front->start_unix_nano, front->start_unix_nano);
  EXPECT_GE(gw_front->end_unix_nano, front->end_unix_nano);
  EXPECT_LE(front->start_unix_nano, gw_back->start_unix_nano);
  EXPECT_GE(front->end_unix_nano, gw_back->end_unix_nano);

  EXPECT_EQ(gw_front->name, "GET /front/");
  EXPECT_EQ(gw_front->attributes.at("prescale.service"), "front");
  EXPECT_EQ(gw_front->attributes.at("url.path"), "/front/v1/order");
  EXPECT_EQ(gw_back->attributes.at("prescale.caller"), "front");
  EXPECT_EQ(front->name, "GET /front/v1/{what}");
  EXPECT_EQ(front->attributes.at("http.request.method"), "GET");
  EXPECT_EQ(front->attributes.at("url.path"), "/front/v1/order");
}

// A streamed answer's spans, the gateway's and the service's, last until its body ends (300 ms
// of events), not until its head (at once), and say that it ended.
TEST(Tracing, AStreamedAnswersSpansCoverItsWholeBody) {
  Shop shop;
  http::Client client;
  auto answer = client.request("127.0.0.1", shop.gateway_port, get("/back/stream"), 10s);
  ASSERT_TRUE(answer.has_value()) << answer.error().to_string();
  EXPECT_EQ(answer->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  shop.flush();
  const std::vector<ReceivedSpan> spans = shop.receiver.spans();
  ASSERT_EQ(spans.size(), 2u);
  for (const ReceivedSpan& s : spans) {
    EXPECT_GE(s.end_unix_nano - s.start_unix_nano, 290'000'000u) << s.name;
    EXPECT_EQ(s.attributes.at("prescale.body_end"), "ended") << s.name;
    EXPECT_EQ(s.status_code, 0) << s.name;
  }
}

TEST(Tracing, ACallersDecisionNotToSampleIsFollowedAndCarriedOn) {
  Shop shop;
  http::Client client;
  auto answer = client.request(
      "127.0.0.1", shop.gateway_port,
      get("/front/v1/order", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), 10s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200);
  shop.flush();
  EXPECT_TRUE(shop.receiver.spans().empty());
  EXPECT_TRUE(shop.receiver.requests().empty());
  // Carried on unsampled, through front to back, in the caller's trace.
  for (const Hop* hop : {&shop.front, &shop.back}) {
    ASSERT_EQ(hop->seen().size(), 1u);
    EXPECT_EQ(hop->seen()[0].substr(0, 35), "00-4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_TRUE(hop->seen()[0].ends_with("-00")) << hop->seen()[0];
  }
}

// A handler that never answers still has its span, as the server's 500.
TEST(Tracing, ARequestItsHandlerNeverAnsweredIsAnErrorSpan) {
  Shop shop;
  http::Client client;
  auto answer = client.request("127.0.0.1", shop.gateway_port, get("/back/dropped"), 10s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 500);
  shop.flush();
  const auto spans = shop.receiver.spans();
  const ReceivedSpan* back = find_span(spans, "back", "/back/dropped");
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->attributes.at("http.response.status_code"), "500");
  EXPECT_EQ(back->status_code, 2);
  const ReceivedSpan* gw = find_span(spans, "prescale-gateway", "/back/");
  ASSERT_NE(gw, nullptr);
  EXPECT_EQ(back->parent_span_id, gw->span_id);
}

TEST(Tracing, NewTracesAreSampledAtTheGatewaysRatioAndTheServicesFollow) {
  Shop none(0.0);
  http::Client client;
  for (int i = 0; i < 5; ++i) {
    auto answer = client.request("127.0.0.1", none.gateway_port, get("/front/v1/order"), 10s);
    ASSERT_TRUE(answer.has_value());
  }
  none.flush();
  EXPECT_TRUE(none.receiver.spans().empty()) << "the services follow the gateway's no";

  Shop all(1.0);
  for (int i = 0; i < 5; ++i) {
    auto answer = client.request("127.0.0.1", all.gateway_port, get("/front/v1/order"), 10s);
    ASSERT_TRUE(answer.has_value());
  }
  all.flush();
  const auto spans = all.receiver.spans();
  ASSERT_EQ(spans.size(), 20u);
  std::map<std::string, int> per_trace;
  for (const auto& s : spans) {
    ++per_trace[s.trace_id];
    if (s.resource.at("service.name") == "prescale-gateway" &&
        s.attributes.at("http.route") == "/front/") {
      EXPECT_EQ(s.parent_span_id, "") << "a new trace's first span is its root";
      EXPECT_EQ(s.flags, 0x101u) << "sampled, no remote parent";
    }
  }
  EXPECT_EQ(per_trace.size(), 5u);
  for (const auto& [trace, n] : per_trace) EXPECT_EQ(n, 4) << trace;
}

TEST(Tracing, AServerErrorIsAnErrorSpan) {
  OtlpReceiver receiver;
  auto tracer = tracer_to(receiver, "prescale-gateway");
  auto config = load_config_string(R"(version: 1
gateway:
  upstreams: {gone: ["127.0.0.1:1"]}
  routes: [{match: {path_prefix: /}, service: gone}]
)",
                                   "tracing_test.yaml");
  ASSERT_TRUE(config) << config.error().message;
  gateway::GatewayOptions o;
  o.tracer = tracer.get();
  o.health_checks = false;
  auto gw = gateway::Gateway::create(config->gateway, o);
  ASSERT_TRUE(gw) << gw.error().message;
  http::ServerOptions so;
  so.threads = 1;
  http::Server server(so, (*gw)->handler());
  ASSERT_TRUE(server.start());
  http::Client client;
  auto answer = client.request("127.0.0.1", server.port(), get("/x"), 10s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_GE(answer->status, 500);
  tracer->flush();
  server.shutdown(1s);
  const auto spans = receiver.spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].status_code, 2);
  EXPECT_EQ(spans[0].status_message, "HTTP " + std::to_string(answer->status));
  EXPECT_EQ(spans[0].attributes.at("http.response.status_code"), std::to_string(answer->status));
}

// `prescale up` with the file's `tracing`: the gateway's spans and the replica's, named after
// their services, in the trace the client began. (About 10 s.)
TEST(Tracing, PrescaleUpSendsTheGatewaysAndReplicasSpansWhereTheFileSays) {
  OtlpReceiver receiver;
  testing::TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  {
    std::ofstream out(config);
    out << R"(version: 1
tracing:
  otlp_endpoint: )"
        << receiver.url() << R"(
  headers: {authorization: "Bearer s3cret"}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 1, max: 1}
    startup_time: 1s
gateway:
  listen: "127.0.0.1:0"
  routes:
    - match: {path_prefix: /}
      service: web
)";
  }
  // The batch span processor's delay, from the environment (the file does not set it).
  ::setenv("OTEL_BSP_SCHEDULE_DELAY", "100", 1);
  testing::Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {}, "up");
  ::unsetenv("OTEL_BSP_SCHEDULE_DELAY");
  ASSERT_TRUE(up.started()) << up.log();
  http::Client client;
  ASSERT_TRUE(testing::wait_for(
      [&] {
        auto r = client.request("127.0.0.1", up.gateway_port(), get("/"), 2s);
        return r && r->status == 200;
      },
      30s))
      << up.log();
  const std::string trace_id = "0af7651916cd43dd8448eb211c80319c";
  auto answer = client.request("127.0.0.1", up.gateway_port(),
                               get("/echo", "00-" + trace_id + "-b7ad6b7169203331-01"), 10s);
  ASSERT_TRUE(answer.has_value());
  ASSERT_EQ(answer->status, 200);
  // The replica saw its own span's context: the same trace, a span id of its own.
  const auto seen = nlohmann::json::parse(answer->body)["headers"];
  const std::string replica_parent = seen.value("traceparent", "");
  EXPECT_EQ(replica_parent.substr(0, 35), "00-" + trace_id);

  auto in_trace = [&] {
    std::vector<ReceivedSpan> out;
    for (const auto& s : receiver.spans()) {
      if (s.trace_id == trace_id) out.push_back(s);
    }
    return out;
  };
  EXPECT_TRUE(testing::wait_for([&] { return in_trace().size() >= 2; }, 20s)) << up.log();
  const auto spans = in_trace();
  ASSERT_EQ(spans.size(), 2u) << up.log();
  const ReceivedSpan* gateway_span = nullptr;
  const ReceivedSpan* web_span = nullptr;
  for (const auto& s : spans) {
    if (s.resource.at("service.name") == "prescale-gateway") gateway_span = &s;
    if (s.resource.at("service.name") == "web") web_span = &s;
  }
  ASSERT_TRUE(gateway_span && web_span);
  EXPECT_EQ(gateway_span->parent_span_id, "b7ad6b7169203331");
  EXPECT_EQ(web_span->parent_span_id, gateway_span->span_id);
  EXPECT_EQ(replica_parent, "00-" + trace_id + "-" + web_span->span_id + "-01");
  EXPECT_EQ(web_span->name, "GET /echo");
  for (const auto& r : receiver.requests()) {
    EXPECT_EQ(r.headers.at("authorization"), "Bearer s3cret");
  }
  EXPECT_EQ(up.stop(), 0);
}

}  // namespace
}  // namespace prescale
