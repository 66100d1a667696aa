#include "telemetry/tracing.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <map>

#include "http/body_stream.h"
#include "http/test_util.h"
#include "http/tls.h"
#include "telemetry/registry.h"
#include "telemetry/testing/otlp_receiver.h"

namespace prescale::telemetry {
namespace {

using testing::OtlpReceiver;

Getenv env_of(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

TracerOptions options_of(std::map<std::string, std::string> vars) {
  auto o = tracer_options_from_env(env_of(std::move(vars)), "prescale-gateway");
  EXPECT_TRUE(o.has_value()) << o.error().to_string();
  EXPECT_TRUE(o.has_value() && o->has_value());
  return o && *o ? **o : TracerOptions{};
}

std::string error_of(std::map<std::string, std::string> vars) {
  auto o = tracer_options_from_env(env_of(std::move(vars)), "x");
  return o ? std::string("no error") : o.error().message;
}

TEST(TracerOptionsFromEnv, TracingIsOffWithoutAnEndpoint) {
  auto o = tracer_options_from_env(env_of({}), "x");
  ASSERT_TRUE(o.has_value());
  EXPECT_FALSE(o->has_value());
  o = tracer_options_from_env(env_of({{"OTEL_TRACES_SAMPLER", "always_on"}}), "x");
  ASSERT_TRUE(o.has_value());
  EXPECT_FALSE(o->has_value());
  // Set but disabled.
  for (auto vars :
       {std::map<std::string, std::string>{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                                           {"OTEL_SDK_DISABLED", "TRUE"}},
        std::map<std::string, std::string>{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                                           {"OTEL_TRACES_EXPORTER", "none"}}}) {
    o = tracer_options_from_env(env_of(vars), "x");
    ASSERT_TRUE(o.has_value());
    EXPECT_FALSE(o->has_value());
  }
  // An exporter named with no endpoint sends to OpenTelemetry's default.
  const TracerOptions d = options_of({{"OTEL_TRACES_EXPORTER", "otlp"}});
  EXPECT_EQ(d.host, "localhost");
  EXPECT_EQ(d.port, 4318);
  EXPECT_EQ(d.path, "/v1/traces");
}

TEST(TracerOptionsFromEnv, ReadsOpenTelemetrysVariables) {
  TracerOptions o =
      options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.monitoring:4318"}});
  EXPECT_EQ(o.host, "otel-collector.monitoring");
  EXPECT_EQ(o.port, 4318);
  EXPECT_EQ(o.path, "/v1/traces");
  EXPECT_TRUE(o.sampler.parent_based);  // parentbased_always_on
  EXPECT_EQ(o.sampler.ratio, 1.0);
  EXPECT_EQ(o.resource, (ResourceAttributes{{"service.name", "prescale-gateway"}}));
  EXPECT_EQ(o.max_queue_size, 2048u);
  EXPECT_EQ(o.max_export_batch_size, 512u);
  EXPECT_EQ(o.schedule_delay, std::chrono::milliseconds(5000));
  EXPECT_EQ(o.export_timeout, std::chrono::milliseconds(10000));

  // The base URL's path keeps its own; the traces URL is taken as it is and wins.
  EXPECT_EQ(options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw/otlp/"}}).path,
            "/otlp/v1/traces");
  EXPECT_EQ(options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw"}}).port, 80);
  EXPECT_FALSE(options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw"}}).https);
  // A hosted backend over HTTPS: port 443 unless written, the CAs named or the system's.
  o = options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp.example.com/otlp"}});
  EXPECT_TRUE(o.https);
  EXPECT_EQ(o.port, 443);
  EXPECT_EQ(o.path, "/otlp/v1/traces");
  EXPECT_EQ(o.ca_file, "");
  o = options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
                  {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "HTTPS://b:4318/v1/traces"},
                  {"OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ssl/all.pem"},
                  {"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", " /etc/otel/ca.pem "}});
  EXPECT_TRUE(o.https);
  EXPECT_EQ(o.host, "b");
  EXPECT_EQ(o.port, 4318);
  EXPECT_EQ(o.ca_file, "/etc/otel/ca.pem");
  o = options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
                  {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://[::1]:9411/api/traces"}});
  EXPECT_EQ(o.host, "::1");
  EXPECT_EQ(o.port, 9411);
  EXPECT_EQ(o.path, "/api/traces");

  o = options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                  {"OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc , x-scope-orgid=t1"},
                  {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=shop"},
                  {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
                  {"OTEL_EXPORTER_OTLP_TIMEOUT", "3000"},
                  {"OTEL_TRACES_SAMPLER", "parentbased_traceidratio"},
                  {"OTEL_TRACES_SAMPLER_ARG", "0.25"},
                  {"OTEL_RESOURCE_ATTRIBUTES", "service.name=shop-gw,deployment.environment=prod"},
                  {"OTEL_BSP_SCHEDULE_DELAY", "200"},
                  {"OTEL_BSP_MAX_QUEUE_SIZE", "100"},
                  {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"}});
  // The traces' own headers replace the general ones.
  EXPECT_EQ(o.headers, (std::vector<std::pair<std::string, std::string>>{{"x-tenant", "shop"}}));
  EXPECT_EQ(o.export_timeout, std::chrono::milliseconds(3000));
  EXPECT_TRUE(o.sampler.parent_based);
  EXPECT_EQ(o.sampler.ratio, 0.25);
  EXPECT_EQ(o.resource,
            (ResourceAttributes{{"service.name", "shop-gw"}, {"deployment.environment", "prod"}}));
  EXPECT_EQ(o.schedule_delay, std::chrono::milliseconds(200));
  EXPECT_EQ(o.max_queue_size, 100u);
  EXPECT_EQ(o.max_export_batch_size, 10u);

  o = options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                  {"OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc"},
                  {"OTEL_RESOURCE_ATTRIBUTES", "service.name=a"},
                  {"OTEL_SERVICE_NAME", "b"},
                  {"OTEL_TRACES_SAMPLER", "traceidratio"},
                  {"OTEL_TRACES_SAMPLER_ARG", "0"}});
  EXPECT_EQ(o.headers,
            (std::vector<std::pair<std::string, std::string>>{{"authorization", "Bearer abc"}}));
  EXPECT_EQ(o.resource, (ResourceAttributes{{"service.name", "b"}}));
  EXPECT_FALSE(o.sampler.parent_based);
  EXPECT_EQ(o.sampler.ratio, 0.0);
  EXPECT_EQ(options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                        {"OTEL_TRACES_SAMPLER", "parentbased_always_off"}})
                .sampler.ratio,
            0.0);
}

TEST(TracerOptionsFromEnv, NamesTheVariableThatIsWrong) {
  const std::string endpoint = "http://c:4318";
  EXPECT_EQ(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://c:4317"}})
                .rfind("OTEL_EXPORTER_OTLP_ENDPOINT=\"grpc://c:4317\": ", 0),
            0u)
      << error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://c:4317"}});
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "https://c"},
                      {"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/client.key"}})
                .find("OTEL_EXPORTER_OTLP_CLIENT_KEY=\"/etc/otel/client.key\": Prescale sends no "
                      "client certificate"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint}, {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}})
          .find("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\": Prescale sends OTLP over HTTP"),
      std::string::npos);
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint},
                      {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"}})
                .find("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=\"gzip\""),
            std::string::npos);
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint},
                      {"OTEL_TRACES_SAMPLER", "jaeger_remote"}})
                .find("OTEL_TRACES_SAMPLER=\"jaeger_remote\": not a sampler"),
            std::string::npos);
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint},
                      {"OTEL_TRACES_SAMPLER", "traceidratio"},
                      {"OTEL_TRACES_SAMPLER_ARG", "1.5"}})
                .find("OTEL_TRACES_SAMPLER_ARG=\"1.5\": not a ratio from 0 to 1"),
            std::string::npos);
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint}, {"OTEL_BSP_MAX_QUEUE_SIZE", "0"}})
                .find("OTEL_BSP_MAX_QUEUE_SIZE=\"0\": not a whole number from 1 to 1000000"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint}, {"OTEL_EXPORTER_OTLP_TIMEOUT", "10s"}})
          .find("OTEL_EXPORTER_OTLP_TIMEOUT=\"10s\""),
      std::string::npos);
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint},
                      {"OTEL_EXPORTER_OTLP_HEADERS", "authorization"}})
                .find("\"authorization\" is not key=value"),
            std::string::npos);
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint},
                      {"OTEL_RESOURCE_ATTRIBUTES", "team=a%2"}})
                .find("the value of \"team\" has a '%'"),
            std::string::npos);
  EXPECT_NE(
      error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint}, {"OTEL_TRACES_EXPORTER", "zipkin"}})
          .find("OTEL_TRACES_EXPORTER=\"zipkin\""),
      std::string::npos);
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint},
                      {"OTEL_BSP_MAX_QUEUE_SIZE", "10"},
                      {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"}})
                .find("a batch must fit in the queue"),
            std::string::npos);
}

TEST(TracerOptionsFromEnv, TakesWhatOtherSdksAreGivenToo) {
  // An exporter list with otlp in it; none alone is off.
  EXPECT_EQ(options_of({{"OTEL_TRACES_EXPORTER", "otlp,console"}}).host, "localhost");
  auto o = tracer_options_from_env(
      env_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"}, {"OTEL_TRACES_EXPORTER", "none"}}),
      "x");
  ASSERT_TRUE(o.has_value());
  EXPECT_FALSE(o->has_value());
  // The ratio's argument is read only by the samplers that have one.
  EXPECT_EQ(options_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                        {"OTEL_TRACES_SAMPLER", "always_on"},
                        {"OTEL_TRACES_SAMPLER_ARG", "not a ratio"}})
                .sampler.ratio,
            1.0);
  // A header that could not be sent is named.
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                      {"OTEL_EXPORTER_OTLP_HEADERS", "bad name=x"}})
                .find("\"bad name\" is not an HTTP header name"),
            std::string::npos);
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                      {"OTEL_EXPORTER_OTLP_HEADERS", "authorization=a%0D%0Ab"}})
                .find("the value of \"authorization\" holds a line break"),
            std::string::npos);
  // Times are bounded (a day), so that one in nanoseconds cannot overflow.
  EXPECT_NE(error_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"},
                      {"OTEL_BSP_SCHEDULE_DELAY", "99999999999999"}})
                .find("not a whole number from 0 to 86400000"),
            std::string::npos);
}

// The file's tracing (over) replaces the exporter's and the sampler's variables of the
// environment; a variable that cannot be used turns tracing off rather than stopping the process.
TEST(TracerFromEnv, TheFilesTracingWinsAndABadVariableTurnsTracingOff) {
  ::setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://elsewhere:9/v1/traces", 1);
  ::setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-other=1", 1);
  ::setenv("OTEL_SDK_DISABLED", "true", 1);
  ::setenv("OTEL_SERVICE_NAME", "from-env", 1);
  auto tracer = tracer_from_env("prescale-gateway", nullptr,
                                {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"},
                                 {"OTEL_EXPORTER_OTLP_HEADERS", "authorization=t"}});
  ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
  ::unsetenv("OTEL_SDK_DISABLED");
  ::unsetenv("OTEL_SERVICE_NAME");
  ASSERT_NE(tracer, nullptr);
  EXPECT_EQ(tracer->options().host, "collector");
  EXPECT_EQ(tracer->options().path, "/v1/traces");
  EXPECT_EQ(tracer->options().headers,
            (std::vector<std::pair<std::string, std::string>>{{"authorization", "t"}}));
  EXPECT_EQ(tracer->options().resource.front().second, "from-env");  // the resource's: the env's

  // A file without headers leaves the environment's (a token from a Secret) in force.
  ::setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=from-secret", 1);
  tracer = tracer_from_env("prescale-gateway", nullptr,
                           {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"}});
  ::unsetenv("OTEL_EXPORTER_OTLP_HEADERS");
  ASSERT_NE(tracer, nullptr);
  EXPECT_EQ(tracer->options().headers,
            (std::vector<std::pair<std::string, std::string>>{{"authorization", "from-secret"}}));

  ::setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", 1);
  ::setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
  EXPECT_EQ(tracer_from_env("x", nullptr), nullptr);
  ::unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");
  EXPECT_NE(tracer_from_env("x", nullptr), nullptr);
  ::unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
  EXPECT_EQ(tracer_from_env("x", nullptr), nullptr);  // nowhere to send
}

TEST(TracerSampling, TheRatioTakesTracesByTheirIds) {
  TracerOptions o;
  o.host = "127.0.0.1";
  o.start_thread = false;
  o.sampler = {.parent_based = true, .ratio = 0.25};
  auto tracer = Tracer::create(o, nullptr);
  ASSERT_TRUE(tracer.has_value());
  int sampled = 0;
  for (int i = 0; i < 20000; ++i) {
    const TraceContext t = new_trace(false);
    const bool s = (*tracer)->sample_new(t.trace_id);
    EXPECT_EQ(s, (*tracer)->sample_new(t.trace_id));  // the same trace, the same decision
    sampled += s ? 1 : 0;
  }
  EXPECT_NEAR(sampled / 20000.0, 0.25, 0.02);
  // Parent-based: a caller's decision is followed whatever the ratio.
  const TraceContext t = new_trace(false);
  EXPECT_TRUE((*tracer)->sample_child(t.trace_id, true));
  EXPECT_FALSE((*tracer)->sample_child(t.trace_id, false));

  o.sampler = {.parent_based = false, .ratio = 1.0};
  auto always = Tracer::create(o, nullptr);
  ASSERT_TRUE(always.has_value());
  EXPECT_TRUE((*always)->sample_child(t.trace_id, false));
  o.sampler = {.parent_based = false, .ratio = 0.0};
  auto never = Tracer::create(o, nullptr);
  ASSERT_TRUE(never.has_value());
  EXPECT_FALSE((*never)->sample_child(t.trace_id, true));
}

SpanRecord span_named(std::string name) {
  SpanRecord s;
  s.context = new_trace(true);
  s.name = std::move(name);
  s.start_unix_nano = 1;
  s.end_unix_nano = 2;
  return s;
}

struct TracerFixture : ::testing::Test {
  OtlpReceiver receiver;
  ManualClock clock;
  Registry registry;

  std::unique_ptr<Tracer> make(std::size_t queue = 100, std::size_t batch = 10) {
    TracerOptions o;
    o.host = "127.0.0.1";
    o.port = receiver.port();
    o.headers = {{"authorization", "Bearer t0ken"}};
    o.resource = {{"service.name", "prescale-gateway"}};
    o.max_queue_size = queue;
    o.max_export_batch_size = batch;
    o.export_timeout = std::chrono::milliseconds(10000);
    o.clock = &clock;
    o.start_thread = false;
    auto t = Tracer::create(o, &registry);
    EXPECT_TRUE(t.has_value());
    return std::move(*t);
  }

  // flush() on another thread while this one drives the clock through its back-offs.
  void flush_driving_the_clock(Tracer& tracer) {
    auto done = std::async(std::launch::async, [&] { tracer.flush(); });
    while (done.wait_for(std::chrono::milliseconds(2)) != std::future_status::ready) {
      clock.advance(std::chrono::milliseconds(50));
    }
  }

  double counter(const std::string& name, const std::string& reason = "") {
    for (const auto& f : registry.collect()) {
      if (f.name != name) continue;
      for (const auto& s : f.series) {
        if (reason.empty() || (!s.label_values.empty() && s.label_values[0] == reason)) {
          return s.value;
        }
      }
    }
    return -1;
  }
};

TEST_F(TracerFixture, SendsQueuedSpansInBatchesWithTheHeadersAndResource) {
  auto tracer = make(100, 10);
  for (int i = 0; i < 25; ++i) tracer->record(span_named("s" + std::to_string(i)));
  tracer->flush();
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3u);  // 10 + 10 + 5
  EXPECT_EQ(requests[0].spans, 10u);
  EXPECT_EQ(requests[2].spans, 5u);
  EXPECT_EQ(requests[0].path, "/v1/traces");
  EXPECT_EQ(requests[0].content_type, "application/x-protobuf");
  EXPECT_EQ(requests[0].headers.at("authorization"), "Bearer t0ken");
  const auto spans = receiver.spans();
  ASSERT_EQ(spans.size(), 25u);
  for (int i = 0; i < 25; ++i)
    EXPECT_EQ(spans[static_cast<std::size_t>(i)].name, "s" + std::to_string(i));
  EXPECT_EQ(spans[0].resource.at("service.name"), "prescale-gateway");
  EXPECT_EQ(spans[0].scope, "prescale");
  EXPECT_EQ(counter("prescale_tracing_spans_exported_total"), 25);
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "queue_full"), 0);
}

// A streamed answer's span (a model's tokens, server-sent events) covers its whole body: it ends
// when the body is over, not when the head is answered, and says how the body ended.
TEST_F(TracerFixture, AStreamedAnswersSpanEndsWhenItsBodyIsOver) {
  auto tracer = make();
  enum Case { kEnd, kAbort, kEndedBeforeTheAnswer, kDroppedUnended };
  for (const Case c : {kEnd, kAbort, kEndedBeforeTheAnswer, kDroppedUnended}) {
    std::string joined;
    UpstreamTrace t = continue_trace(http::Headers{}, joined);
    auto span = tracer->server_span(t, "GET", "/v1/chat");
    ASSERT_TRUE(span.has_value());
    int answered = 0;
    http::Responder respond =
        ending(std::move(*span), http::Responder([&](http::Response) { ++answered; }));
    auto body = std::make_shared<http::BodyStream>();
    body->write("data: 1\n\n");
    if (c == kEndedBeforeTheAnswer) body->end();
    http::Response r;
    r.stream = body;
    respond(std::move(r));
    EXPECT_EQ(answered, 1);
    clock.advance(std::chrono::seconds(3));
    tracer->flush();
    if (c != kEndedBeforeTheAnswer) {
      EXPECT_EQ(receiver.spans().size(), static_cast<std::size_t>(c))
          << "the body goes on: no span yet";
      if (c == kEnd) body->end();
      if (c == kAbort) body->abort();
      // The server dropped the stream without telling it its client left (its loop stopped).
      if (c == kDroppedUnended) {
        respond = http::Responder();
        body.reset();
      }
      tracer->flush();
    }
    const auto spans = receiver.spans();
    ASSERT_EQ(spans.size(), static_cast<std::size_t>(c) + 1);
    const auto& s = spans.back();
    EXPECT_EQ(s.name, "GET /v1/chat");
    EXPECT_EQ(s.attributes.at("http.response.status_code"), "200");
    if (c == kAbort) {
      EXPECT_EQ(s.attributes.at("prescale.body_end"), "aborted");
      EXPECT_EQ(s.attributes.at("error.type"), "body_aborted");
      EXPECT_EQ(s.status_code, 2);  // STATUS_CODE_ERROR
    } else if (c == kDroppedUnended) {
      EXPECT_EQ(s.attributes.at("prescale.body_end"), "client_gone");
      EXPECT_EQ(s.status_code, 0) << "answered 200: not an error";
    } else {
      EXPECT_EQ(s.attributes.at("prescale.body_end"), "ended");
      EXPECT_EQ(s.attributes.count("error.type"), 0u);
    }
    EXPECT_EQ(s.end_unix_nano - s.start_unix_nano,
              c == kEndedBeforeTheAnswer ? 0u : 3'000'000'000u);
  }
}

TEST_F(TracerFixture, AFullQueueDropsNewSpansAndCountsThem) {
  auto tracer = make(5, 5);
  for (int i = 0; i < 8; ++i) tracer->record(span_named("s" + std::to_string(i)));
  tracer->flush();
  const auto spans = receiver.spans();
  ASSERT_EQ(spans.size(), 5u);
  EXPECT_EQ(spans.back().name, "s4");  // the first five kept
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "queue_full"), 3);
}

TEST_F(TracerFixture, RetriesWhatTheReceiverCannotTakeNowAndDropsWhatItRefuses) {
  auto tracer = make();
  // Unavailable twice (Retry-After 1 s, then 2 s of the doubled back-off: 3 s of the 10 s), then
  // taken: nothing lost.
  receiver.answer_next(2, 503, 1);
  tracer->record(span_named("a"));
  flush_driving_the_clock(*tracer);
  EXPECT_EQ(receiver.requests().size(), 3u);
  ASSERT_EQ(receiver.spans().size(), 1u);
  EXPECT_EQ(counter("prescale_tracing_spans_exported_total"), 1);
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "export_failed"), 0);

  // A bad request is not tried again.
  receiver.answer_next(1, 400, -1, 0, "bad span");
  tracer->record(span_named("b"));
  flush_driving_the_clock(*tracer);
  EXPECT_EQ(receiver.requests().size(), 4u);
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "export_failed"), 1);

  // Unavailable for longer than the export timeout: given up.
  receiver.answer_next(1000, 503);
  tracer->record(span_named("c"));
  tracer->record(span_named("d"));
  flush_driving_the_clock(*tracer);
  EXPECT_GT(receiver.requests().size(), 5u);
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "export_failed"), 3);
  EXPECT_EQ(receiver.spans().size(), 1u);

  // A partial success: the refused spans are counted as such.
  receiver.answer_next(1, 200, -1, 1, "one span too old");
  tracer->record(span_named("e"));
  tracer->record(span_named("f"));
  tracer->flush();
  EXPECT_EQ(counter("prescale_tracing_spans_exported_total"), 2);
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "rejected"), 1);
}

// At the stop, what is queued is tried once, not for the export timeout: a receiver that keeps
// refusing does not hold the process up.
TEST_F(TracerFixture, TheStopTriesWhatIsQueuedOnce) {
  auto tracer = make();
  receiver.answer_next(1000, 503);
  tracer->record(span_named("last"));
  tracer.reset();  // no clock is driven: a back-off would wait for good
  EXPECT_EQ(receiver.requests().size(), 1u);
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "export_failed"), 1);
}

// Retry-After: 0 is no busy loop: the back-off still applies.
TEST_F(TracerFixture, ARetryAfterOfNoSecondsStillBacksOff) {
  auto tracer = make();
  receiver.answer_next(1000, 503, 0);
  tracer->record(span_named("a"));
  flush_driving_the_clock(*tracer);
  // 250 ms doubling (less up to 20 %) within 10 s: at most 7 attempts.
  EXPECT_LE(receiver.requests().size(), 7u);
  EXPECT_GE(receiver.requests().size(), 5u);
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "export_failed"), 1);
}

TEST_F(TracerFixture, ANoOneListeningIsGivenUpWithinTheTimeout) {
  TracerOptions o;
  {
    OtlpReceiver gone;  // a port nobody listens on once it is destroyed
    o.port = gone.port();
  }
  o.host = "127.0.0.1";
  o.export_timeout = std::chrono::milliseconds(1000);
  o.clock = &clock;
  o.start_thread = false;
  auto tracer = Tracer::create(o, &registry);
  ASSERT_TRUE(tracer.has_value());
  (*tracer)->record(span_named("lost"));
  flush_driving_the_clock(**tracer);
  EXPECT_EQ(counter("prescale_tracing_spans_dropped_total", "export_failed"), 1);
}

TEST(TracerThread, SendsABatchScheduleDelayAfterItsFirstSpan) {
  OtlpReceiver receiver;
  TracerOptions o;
  o.host = "127.0.0.1";
  o.port = receiver.port();
  o.schedule_delay = std::chrono::milliseconds(100);
  auto tracer = Tracer::create(o, nullptr);
  ASSERT_TRUE(tracer.has_value());
  (*tracer)->record(span_named("one"));
  EXPECT_TRUE(receiver.wait_for_spans(1, std::chrono::seconds(10)));
  // What is queued at the end is sent by the destructor.
  (*tracer)->record(span_named("two"));
  tracer->reset();
  EXPECT_EQ(receiver.spans().size(), 2u);
}

// A receiver behind TLS (a hosted backend): its certificate verified by the CAs named; one the
// tracer cannot verify takes no span, and says why.
TEST(TracerTls, SendsSpansOverHttpsToAReceiverItCanVerify) {
  std::string dir = ::testing::TempDir() + "/tracing_tls.XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const http::testing::TestCertificate cert = http::testing::write_test_certificate(dir, "otlp");
  const http::testing::TestCertificate other = http::testing::write_test_certificate(dir, "other");
  auto tls = http::TlsContext::load({cert.cert_file, cert.key_file});
  ASSERT_TRUE(tls.has_value()) << tls.error().to_string();
  OtlpReceiver receiver(*tls);
  EXPECT_EQ(receiver.url().rfind("https://127.0.0.1:", 0), 0u);
  ManualClock clock;
  Registry registry;
  TracerOptions o;
  o.host = "localhost";
  o.port = receiver.port();
  o.https = true;
  o.ca_file = cert.cert_file;
  o.export_timeout = std::chrono::milliseconds(10000);
  o.clock = &clock;
  o.start_thread = false;
  auto tracer = Tracer::create(o, &registry);
  ASSERT_TRUE(tracer.has_value()) << tracer.error().to_string();
  (*tracer)->record(span_named("over-tls"));
  (*tracer)->flush();
  ASSERT_EQ(receiver.spans().size(), 1u);
  EXPECT_EQ(receiver.spans()[0].name, "over-tls");

  // Trusting another CA: the export fails (the handshake), is retried within its timeout, and
  // is dropped, counted.
  o.ca_file = other.cert_file;
  o.export_timeout = std::chrono::milliseconds(500);
  auto stranger = Tracer::create(o, &registry);
  ASSERT_TRUE(stranger.has_value());
  (*stranger)->record(span_named("refused"));
  auto done = std::async(std::launch::async, [&] { (*stranger)->flush(); });
  while (done.wait_for(std::chrono::milliseconds(2)) != std::future_status::ready) {
    clock.advance(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(receiver.spans().size(), 1u);
  double export_failed = -1;
  for (const auto& f : registry.collect()) {
    if (f.name != "prescale_tracing_spans_dropped_total") continue;
    for (const auto& s : f.series) {
      if (!s.label_values.empty() && s.label_values[0] == "export_failed") export_failed = s.value;
    }
  }
  EXPECT_EQ(export_failed, 1);

  // A CA file that cannot be read: no tracer, and the error says which.
  o.ca_file = dir + "/missing.pem";
  auto missing = Tracer::create(o, nullptr);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("missing.pem"), std::string::npos)
      << missing.error().message;
  std::filesystem::remove_all(dir);
}

TEST(TracerCreate, RefusesWhatCannotWork) {
  TracerOptions o;
  EXPECT_FALSE(Tracer::create(o, nullptr).has_value());  // no host
  o.host = "h";
  o.max_export_batch_size = o.max_queue_size + 1;
  EXPECT_FALSE(Tracer::create(o, nullptr).has_value());
  o.max_export_batch_size = 1;
  o.sampler.ratio = -0.1;
  EXPECT_FALSE(Tracer::create(o, nullptr).has_value());
}

}  // namespace
}  // namespace prescale::telemetry
