// Gateway::reload: routes added, removed and changed take effect for the next request; a bad
// configuration changes nothing; endpoints, rate-limit buckets and requests in flight survive.
// The gateway and its upstreams are real servers on port 0; the gateway's clock (rate limits,
// breakers) is a ManualClock that never moves unless a test moves it.
#include "gateway/gateway.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "core/config.h"
#include "gateway/cluster.h"
#include "http/h2_test_client.h"
#include "http/server.h"
#include "http/test_util.h"
#include "telemetry/exposition.h"
#include "telemetry/registry.h"
#include "telemetry/trace_context.h"

namespace prescale::gateway {
namespace {

using http::testing::RawSocket;
using std::chrono::milliseconds;

http::ServerOptions local() {
  http::ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  return o;
}

// An upstream answering "<name> <path>"; requests to /hold are kept until release().
class Upstream {
 public:
  explicit Upstream(std::string name)
      : server_(local(), [this, name](http::Request& req, http::Responder respond) {
          if (req.path == "/hold") {
            std::lock_guard lock(mu_);
            held_.push_back(std::move(respond));
            return;
          }
          respond(http::Response::text(200, name + " " + req.path));
        }) {
    EXPECT_TRUE(server_.start());
  }
  ~Upstream() { release(); }
  uint16_t port() const { return server_.port(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
  size_t held() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  void release() {
    std::vector<http::Responder> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& r : held) r(http::Response::text(200, "released"));
  }

 private:
  std::mutex mu_;
  std::vector<http::Responder> held_;
  http::Server server_;
};

bool eventually(const std::function<bool()>& cond, milliseconds within = milliseconds(3000)) {
  const auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return cond();
}

GatewayConfig parse(const std::string& yaml) {
  auto c = load_config_string("version: 1\ngateway:\n" + yaml, "gateway_test.yaml");
  EXPECT_TRUE(c) << c.error().message;
  return c ? c->gateway : GatewayConfig{};
}

struct Answer {
  int status = 0;
  std::string body;
};

// A Gateway serving on port 0, its clock manual, health checks off.
class TestGateway {
 public:
  explicit TestGateway(const GatewayConfig& config, GatewayOptions o = {}) {
    o.clock = &clock;
    o.registry = &registry;
    o.health_checks = false;
    auto g = Gateway::create(config, o);
    EXPECT_TRUE(g) << g.error().message;
    gw = std::move(*g);
    server = std::make_unique<http::Server>(local(), gw->handler());
    EXPECT_TRUE(server->start());
  }
  ~TestGateway() { server->shutdown(milliseconds(1000)); }

  Answer get(const std::string& path) {
    RawSocket s(server->port());
    if (!s.send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n")) return {};
    auto r = s.read_response();
    return r ? Answer{r->status, r->body} : Answer{};
  }
  std::string metrics() { return telemetry::expose(registry); }

  ManualClock clock;
  telemetry::Registry registry;
  std::unique_ptr<Gateway> gw;
  std::unique_ptr<http::Server> server;
};

TEST(GatewayReloadTest, RoutesAddedRemovedAndChangedTakeEffect) {
  Upstream a("A"), b("B");
  const std::string upstreams =
      "  upstreams:\n    a: [\"" + a.address() + "\"]\n    b: [\"" + b.address() + "\"]\n";
  TestGateway g(parse(upstreams + R"(  routes:
    - match: {path_prefix: /one}
      service: a
    - match: {path_prefix: /two}
      service: a
)"));
  EXPECT_EQ(g.get("/one").body, "A /one");
  EXPECT_EQ(g.get("/two").body, "A /two");
  EXPECT_EQ(g.get("/three").status, 404);

  ASSERT_TRUE(g.gw->reload(parse(upstreams + R"(  routes:
    - match: {path_prefix: /two}
      service: b
    - match: {path_prefix: /three}
      service: b
)")));
  EXPECT_EQ(g.get("/one").status, 404);         // removed
  EXPECT_EQ(g.get("/two").body, "B /two");      // changed: another service
  EXPECT_EQ(g.get("/three").body, "B /three");  // added
  EXPECT_EQ(g.gw->route_count(), 2u);
  const auto routes = g.gw->route_services();
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0], (std::pair<std::string, std::string>{"/two", "b"}));
  EXPECT_EQ(routes[1], (std::pair<std::string, std::string>{"/three", "b"}));
  // What another process (prescale controller) reads the labels by, without a gateway.
  const auto unstarted = route_services(parse(upstreams + R"(  routes:
    - match: {path_prefix: /two}
      service: b
    - match: {path_prefix: /three}
      service: b
)"));
  ASSERT_TRUE(unstarted.has_value());
  EXPECT_EQ(*unstarted, routes);
  // Request metrics of a route continue under the same label.
  EXPECT_NE(g.metrics().find(R"(route="/two",code="200"} 2)"), std::string::npos) << g.metrics();
}

// A path is routed and forwarded without its dot segments, as the upstream will read it:
// "/public/../admin" must not pass for a "/public" request when no route serves "/admin".
TEST(GatewayRoutingTest, DotSegmentsAreRemovedBeforeRoutingAndForwarding) {
  Upstream a("A");
  TestGateway g(parse("  upstreams:\n    a: [\"" + a.address() + R"("]
  routes:
    - match: {path_prefix: /public}
      service: a
)"));
  EXPECT_EQ(g.get("/public/../admin").status, 404);
  EXPECT_EQ(g.get("/public/%2e%2E/admin").status, 404);
  EXPECT_EQ(g.get("/public/./x/../y?q=1").body, "A /public/y");
  EXPECT_EQ(g.get("/public/x").body, "A /public/x");
}

// RFC 3986 section 6.2.2: "%2D" is "-", so "/items%2Dx" is "/items-x" to the upstream and must
// be routed as such; an encoded slash is not decoded.
TEST(GatewayRoutingTest, EncodedUnreservedCharactersAreDecodedBeforeRoutingAndForwarding) {
  Upstream a("A"), b("B");
  TestGateway g(parse("  upstreams:\n    a: [\"" + a.address() + "\"]\n    b: [\"" + b.address() +
                      R"("]
  routes:
    - match: {path_prefix: /public}
      service: a
    - match: {path: /items-x}
      service: b
)"));
  EXPECT_EQ(g.get("/items%2Dx").body, "B /items-x");
  EXPECT_EQ(g.get("/%69tems%2dx?q=%41").body, "B /items-x");
  EXPECT_EQ(g.get("/%70ublic/a%2fb").body, "A /public/a%2Fb");
  EXPECT_EQ(g.get("/public/%2e%2E/items%2dx").body, "B /items-x");
}

// W3C Trace Context (section 3.3.1.1) and RFC 9110 section 5.3: several tracestate fields are
// one list, and are forwarded as one field holding all of it (only the first was forwarded);
// more than 32 members in all make the list invalid, and it is dropped.
TEST(GatewayTraceTest, SeveralTracestateFieldsAreForwardedAsOneList) {
  http::Server upstream(local(), [](http::Request& req, http::Responder respond) {
    std::string states;  // every tracestate field the upstream got, each in brackets
    for (const auto& [name, value] : req.headers.fields()) {
      if (name == "tracestate" || name == "Tracestate") states += "[" + value + "]";
    }
    respond(http::Response::text(200, states));
  });
  ASSERT_TRUE(upstream.start());
  TestGateway g(parse("  upstreams:\n    a: [\"127.0.0.1:" + std::to_string(upstream.port()) +
                      "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n"));
  auto forwarded = [&](const std::string& fields) {
    RawSocket s(g.server->port());
    EXPECT_TRUE(
        s.send("GET / HTTP/1.1\r\nHost: test\r\n"
               "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n" +
               fields + "\r\n"));
    auto r = s.read_response();
    return r ? r->body : std::string("(no answer)");
  };
  auto members = [](int from, int to) {
    std::string list;
    for (int i = from; i < to; ++i) list += (list.empty() ? "k" : ",k") + std::to_string(i) + "=v";
    return list;
  };
  EXPECT_EQ(forwarded("tracestate: a=1\r\n"), "[a=1]");
  EXPECT_EQ(forwarded("tracestate: a=1,b=2\r\nX-Other: x\r\nTracestate: c=3\r\n"), "[a=1,b=2,c=3]");
  EXPECT_EQ(
      forwarded("tracestate: " + members(0, 16) + "\r\ntracestate: " + members(16, 32) + "\r\n"),
      "[" + members(0, 32) + "]");
  EXPECT_EQ(
      forwarded("tracestate: " + members(0, 16) + "\r\ntracestate: " + members(16, 33) + "\r\n"),
      "");
  EXPECT_EQ(forwarded("tracestate: a=1\r\ntracestate: a=2\r\n"), "");  // a key twice
}

// Two traceparent fields name two parents: neither can be trusted, so a new trace starts (the
// W3C trace-context test suite, test_traceparent_duplicated). The gateway continued the first.
TEST(GatewayTraceTest, TwoTraceparentFieldsStartANewTrace) {
  http::Server upstream(local(), [](http::Request& req, http::Responder respond) {
    respond(http::Response::text(200, std::string(req.headers.get("traceparent").value_or("")) +
                                          "|" +
                                          std::string(req.headers.get("tracestate").value_or(""))));
  });
  ASSERT_TRUE(upstream.start());
  TestGateway g(parse("  upstreams:\n    a: [\"127.0.0.1:" + std::to_string(upstream.port()) +
                      "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n"));
  auto forwarded = [&](const std::string& fields) {
    RawSocket s(g.server->port());
    EXPECT_TRUE(s.send("GET / HTTP/1.1\r\nHost: test\r\n" + fields + "\r\n"));
    auto r = s.read_response();
    return r ? r->body : std::string("(no answer)");
  };
  const std::string one = "00-12345678901234567890123456789011-1234567890123456-01";
  const std::string two = "00-12345678901234567890123456789012-1234567890123456-01";
  std::string got = forwarded("traceparent: " + one + "\r\ntracestate: a=1\r\n");
  EXPECT_EQ(got.substr(0, 36), one.substr(0, 36));  // one: continued, its tracestate kept
  EXPECT_TRUE(got.ends_with("|a=1")) << got;
  got = forwarded("traceparent: " + one + "\r\nTraceparent: " + two + "\r\ntracestate: a=1\r\n");
  ASSERT_EQ(got.size(), telemetry::kTraceparentSize + 1) << got;  // a new trace, no tracestate
  EXPECT_TRUE(telemetry::parse_traceparent(got.substr(0, telemetry::kTraceparentSize))) << got;
  EXPECT_NE(got.substr(3, 32), one.substr(3, 32));
  EXPECT_NE(got.substr(3, 32), two.substr(3, 32));
}

// retriable_status_codes (docs/config.md: "answers retried like failures, e.g. [409]"): the
// proxy relayed every answer below 500 without asking, so a listed 4xx was never retried.
TEST(GatewayRetryTest, ARetriableStatusCodeBelow500IsRetried) {
  std::atomic<int> seen{0};
  http::Server upstream(local(), [&](http::Request& req, http::Responder respond) {
    const int n = seen.fetch_add(1) + 1;
    respond(http::Response::text(n == 1 || req.path == "/always" ? 409 : 200,
                                 "attempt " + std::to_string(n)));
  });
  ASSERT_TRUE(upstream.start());
  TestGateway g(parse("  upstreams:\n    a: [\"127.0.0.1:" + std::to_string(upstream.port()) +
                      "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a, retries: "
                      "{num_retries: 2, retriable_status_codes: [409]}}\n"));
  Answer a = g.get("/");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "attempt 2");

  seen = 0;  // every attempt answers 409: after the retries, the last 409 is relayed
  a = g.get("/always");
  EXPECT_EQ(a.status, 409);
  EXPECT_EQ(a.body, "attempt 3");
  EXPECT_EQ(seen.load(), 3);

  seen = 1;  // a 409 on a route that does not list it is relayed at once
  TestGateway plain(parse("  upstreams:\n    a: [\"127.0.0.1:" + std::to_string(upstream.port()) +
                          "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n"));
  a = plain.get("/always");
  EXPECT_EQ(a.status, 409);
  EXPECT_EQ(seen.load(), 2);
}

TEST(GatewayReloadTest, ChangedTimeoutAppliesToTheNextRequest) {
  Upstream a("A");
  const std::string upstreams = "  upstreams:\n    a: [\"" + a.address() + "\"]\n";
  TestGateway g(parse(upstreams + "  routes:\n    - {match: {path_prefix: /}, service: a}\n"));
  ASSERT_TRUE(g.gw->reload(parse(upstreams + R"(  routes:
    - match: {path_prefix: /}
      service: a
      timeout: 150ms
      retries: 0
)")));
  const Answer r = g.get("/hold");
  EXPECT_EQ(r.status, 504);
  EXPECT_NE(r.body.find("timed out after 150 ms"), std::string::npos) << r.body;
}

TEST(GatewayReloadTest, BadConfigNamesTheFieldAndChangesNothing) {
  Upstream a("A");
  const std::string upstreams = "  upstreams:\n    a: [\"" + a.address() + "\"]\n";
  const GatewayConfig good =
      parse(upstreams + "  routes:\n    - {match: {path_prefix: /one}, service: a}\n");
  TestGateway g(good);

  GatewayConfig bad = good;
  bad.routes.push_back(bad.routes[0]);
  bad.routes[1].match.path_prefix = "/two";
  bad.routes[1].timeout = milliseconds(0);
  auto r = g.gw->reload(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message, "gateway.routes[1].timeout: must be > 0, got 0ms");

  bad = good;
  bad.upstreams["b"] = {"127.0.0.1:99999"};
  r = g.gw->reload(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("gateway.upstreams.b[0]: "), std::string::npos)
      << r.error().message;

  bad = good;
  bad.routes[0].match.path_prefix = "";
  bad.routes[0].match.path = "/v1/{id";  // a malformed pattern: refused by the route table
  r = g.gw->reload(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("gateway.routes[0]"), std::string::npos) << r.error().message;

  bad = good;
  bad.circuit_breakers.max_requests = 0;
  r = g.gw->reload(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "gateway.circuit_breakers.max_requests: must be >= 1");

  // The old configuration still serves, whole.
  EXPECT_EQ(g.get("/one").body, "A /one");
  EXPECT_EQ(g.get("/two").status, 404);
  EXPECT_EQ(g.gw->route_count(), 1u);
  EXPECT_EQ(g.gw->services(), std::vector<std::string>{"a"});
}

// A config built in code (or handed to reload()) is not checked by the loader, which refuses a
// bucket that refills over more than 1e9 s; such a bucket overflowed the limiter's nanosecond
// arithmetic and let every request through.
TEST(GatewayReloadTest, ARateLimitTooSlowToCountIsRefusedNamingTheField) {
  Upstream a("A");
  const GatewayConfig good =
      parse("  upstreams:\n    a: [\"" + a.address() +
            "\"]\n  routes:\n    - {match: {path_prefix: /one}, service: a}\n");
  TestGateway g(good);
  GatewayConfig bad = good;
  bad.routes[0].rate_limit.requests_per_second = 1e-12;
  bad.routes[0].rate_limit.burst = 1;
  auto r = g.gw->reload(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "gateway.routes[0].rate_limit.requests_per_second: too low: refilling the bucket "
            "must take at most 1e9 s (about 31 years), got 1e-12 for a burst of 1");
  EXPECT_FALSE(Gateway::create(bad, GatewayOptions{.clock = &g.clock, .health_checks = false}));

  GatewayConfig slow = good;  // one request per 1000 s is a limit, not a bug
  slow.routes[0].rate_limit.requests_per_second = 0.001;
  EXPECT_TRUE(g.gw->reload(slow));
}

// Settings the config loader refuses must be refused for a config built in code too: the
// gateway's own check promises it, and each of these silently broke a mechanism (a 0 % failure
// threshold opened every breaker on healthy traffic, -1 consecutive 5xx turned into 2^32 - 1
// and never ejected, a 0 s ejection ejected nothing, a 150 % budget retried beyond the load).
TEST(GatewayReloadTest, ResilienceSettingsTheLoaderRefusesAreRefusedNamingTheField) {
  Upstream a("A");
  const GatewayConfig good =
      parse("  upstreams:\n    a: [\"" + a.address() +
            "\"]\n  routes:\n    - {match: {path_prefix: /one}, service: a}\n");
  TestGateway g(good);
  const std::vector<std::pair<std::function<void(GatewayConfig&)>, std::string>> cases = {
      {[](GatewayConfig& c) { c.circuit_breakers.failure_rate_threshold = 0; },
       "gateway.circuit_breakers.failure_rate_threshold: must be in (0, 100], got 0"},
      {[](GatewayConfig& c) { c.circuit_breakers.failure_rate_threshold = 150; },
       "gateway.circuit_breakers.failure_rate_threshold: must be in (0, 100], got 150"},
      {[](GatewayConfig& c) { c.circuit_breakers.slow_call_rate_threshold = std::nan(""); },
       "gateway.circuit_breakers.slow_call_rate_threshold: must be in (0, 100], got nan"},
      {[](GatewayConfig& c) { c.circuit_breakers.slow_call_duration = milliseconds(0); },
       "gateway.circuit_breakers.slow_call_duration: must be > 0"},
      {[](GatewayConfig& c) { c.circuit_breakers.minimum_requests = -1; },
       "gateway.circuit_breakers.minimum_requests: must be >= 1"},
      {[](GatewayConfig& c) { c.outlier_detection.consecutive_5xx = -1; },
       "gateway.outlier_detection.consecutive_5xx: must be >= 0"},
      {[](GatewayConfig& c) { c.outlier_detection.consecutive_gateway_failure = -1; },
       "gateway.outlier_detection.consecutive_gateway_failure: must be >= 0"},
      {[](GatewayConfig& c) { c.outlier_detection.base_ejection_time = milliseconds(0); },
       "gateway.outlier_detection.base_ejection_time: must be > 0"},
      {[](GatewayConfig& c) { c.outlier_detection.max_ejection_time = milliseconds(1000); },
       "gateway.outlier_detection.max_ejection_time: must be >= base_ejection_time (30000ms), "
       "got 1000ms"},
      {[](GatewayConfig& c) { c.retry_budget.budget_percent = 150; },
       "gateway.retry_budget.budget_percent: must be 0..100"},
      {[](GatewayConfig& c) { c.retry_budget.budget_percent = std::nan(""); },
       "gateway.retry_budget.budget_percent: must be 0..100"},
      {[](GatewayConfig& c) { c.routes[0].per_try_timeout = c.routes[0].timeout * 2; },
       "gateway.routes[0].per_try_timeout: must be <= timeout (15000ms), got 30000ms"},
      {[](GatewayConfig& c) { c.routes[0].retries.num_retries = 11; },
       "gateway.routes[0].retries.num_retries: must be 0..10, got 11"},
      {[](GatewayConfig& c) {
         c.routes[0].retries.retriable_status_codes = {409, 42};
       },
       "gateway.routes[0].retries.retriable_status_codes[1]: must be an HTTP status (100..599), "
       "got 42"},
      {[](GatewayConfig& c) { c.routes[0].rate_limit.requests_per_second = std::nan(""); },
       "gateway.routes[0].rate_limit.requests_per_second: must be >= 0"},
      {[](GatewayConfig& c) { c.health_check.timeout = c.health_check.interval * 2; },
       "gateway.health_check.timeout: must be <= interval (10000ms), got 20000ms"},
      {[](GatewayConfig& c) { c.health_check.path = "/ready now"; },
       "gateway.health_check.path: must not hold a space or a control character (percent-encode "
       "it: %20 for a space), got \"/ready now\""},
      {[](GatewayConfig& c) { c.health_check_paths["a"] = "ready"; },
       "gateway.health_check_paths.a: must start with \"/\", got \"ready\""},
      {[](GatewayConfig& c) { c.grpc_health_checks["a"] = ""; },
       "gateway.grpc_health_checks.a: the service is not in http2_upstreams (gRPC's health "
       "checks go over HTTP/2)"},
      {[](GatewayConfig& c) {
         c.http2_upstreams = {"a"};
         c.grpc_health_checks["a"] = "shop\nCart";
       },
       "gateway.grpc_health_checks.a: must not hold a control character, got \"shop\\u000aCart\""},
  };
  for (const auto& [mutate, message] : cases) {
    GatewayConfig bad = good;
    mutate(bad);
    auto r = g.gw->reload(bad);
    ASSERT_FALSE(r) << message;
    EXPECT_EQ(r.error().message, message);
  }
  EXPECT_EQ(g.get("/one").body, "A /one");
}

// A service's readiness_path (prescale up hands the gateway health_check_paths) is where its
// hosts are checked; a reload that changes it renews that service's cluster only.
TEST(GatewayReloadTest, AServicesHealthCheckPathReachesItsHosts) {
  Upstream a("A"), b("B");
  GatewayConfig config = parse("  upstreams:\n    a: [\"" + a.address() + "\"]\n    b: [\"" +
                               b.address() +
                               "\"]\n  routes:\n    - {match: {path_prefix: /one}, service: a}\n"
                               "    - {match: {path_prefix: /two}, service: b}\n");
  TestGateway g(config);
  const std::shared_ptr<const Cluster> b_before = g.gw->cluster("b");
  config.health_check_paths["a"] = "/health/ready";
  ASSERT_TRUE(g.gw->reload(config));
  ASSERT_EQ(g.gw->cluster("a")->hosts().size(), 1u);
  EXPECT_EQ(g.gw->cluster("a")->hosts()[0]->health_check_path(), "/health/ready");
  EXPECT_EQ(g.gw->cluster("b"), b_before);
  EXPECT_EQ(g.gw->cluster("b")->hosts()[0]->health_check_path(), "");
  EXPECT_EQ(g.get("/one").body, "A /one");

  // gRPC health checks (protocol grpc): the name they ask about reaches a's hosts, and changing
  // it renews a's cluster only.
  config.http2_upstreams = {"a"};
  config.grpc_health_checks["a"] = "shop.Cart";
  ASSERT_TRUE(g.gw->reload(config));
  const std::shared_ptr<const Cluster> a_grpc = g.gw->cluster("a");
  EXPECT_EQ(a_grpc->hosts()[0]->grpc_health_service(), "shop.Cart");
  EXPECT_TRUE(a_grpc->hosts()[0]->health_check_http2());
  EXPECT_EQ(g.gw->cluster("b"), b_before);
  EXPECT_FALSE(g.gw->cluster("b")->hosts()[0]->grpc_health_service().has_value());
  config.grpc_health_checks["a"] = "";
  ASSERT_TRUE(g.gw->reload(config));
  EXPECT_NE(g.gw->cluster("a"), a_grpc);
  EXPECT_EQ(g.gw->cluster("a")->hosts()[0]->grpc_health_service(), "");
  EXPECT_EQ(g.gw->cluster("b"), b_before);
}

// The gateway counts time in int64 nanoseconds, which end at ~292 years. "Practically never"
// written as 2600000h wrapped round to a negative duration: a route's deadline in the past,
// health checks and outlier sweeps on every upkeep tick, breakers that reopen at once, ejections
// that end before they start. The file loader refuses durations over a century; a config built
// in code or handed to reload() is checked by the gateway itself.
TEST(GatewayReloadTest, DurationsTheClockCannotHoldAreRefusedNamingTheField) {
  Upstream a("A");
  const std::string upstreams = "  upstreams:\n    a: [\"" + a.address() + "\"]\n";
  const std::string route = "  routes:\n    - {match: {path_prefix: /one}, service: a";
  const GatewayConfig good = parse(upstreams + route + "}\n");
  using std::chrono::hours;
  const hours never{2600000};
  const std::vector<std::pair<std::function<void(GatewayConfig&)>, std::string>> cases = {
      {[&](GatewayConfig& c) { c.routes[0].timeout = never; }, "gateway.routes[0].timeout"},
      {[&](GatewayConfig& c) { c.health_check.interval = never; }, "gateway.health_check.interval"},
      {[&](GatewayConfig& c) { c.outlier_detection.interval = never; },
       "gateway.outlier_detection.interval"},
      {[&](GatewayConfig& c) { c.outlier_detection.max_ejection_time = never; },
       "gateway.outlier_detection.max_ejection_time"},
      {[&](GatewayConfig& c) { c.circuit_breakers.open_duration = never; },
       "gateway.circuit_breakers.open_duration"},
  };
  for (const auto& [mutate, field] : cases) {
    GatewayConfig config = good;
    mutate(config);
    auto g = Gateway::create(config, GatewayOptions{.health_checks = false});
    ASSERT_FALSE(g) << field;
    EXPECT_EQ(g.error().message, field + ": must be <= 876000h (100 years), got 9360000000000ms");
  }
  auto loaded = load_config_string(
      "version: 1\ngateway:\n" + upstreams + route + ", timeout: 2600000h}\n", "g.yaml");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("gateway.routes[0].timeout: durations are at most a century"),
            std::string::npos)
      << loaded.error().message;
  // 100 years is still "practically never".
  EXPECT_TRUE(Gateway::create(parse(upstreams + route + ", timeout: 876000h}\n"),
                              GatewayOptions{.health_checks = false}));
}

// The server reads a body as it comes (http::ServerOptions::stream_request_body) for gRPC calls
// routed to a service reached over HTTP/2: the proxy streams those upstream. Any other body is
// read whole first.
TEST(GatewayTest, OnlyGrpcCallsToHttp2ServicesAreStreamedAsTheyCome) {
  GatewayConfig config;
  config.routes.emplace_back().service = "web";
  config.routes.back().match.path_prefix = "/web/";
  config.routes.emplace_back().service = "grpc";
  config.routes.back().match.path_prefix = "/";
  config.upstreams["web"] = {"127.0.0.1:1"};
  config.upstreams["grpc"] = {"127.0.0.1:2"};
  config.http2_upstreams = {"grpc"};
  auto gw = Gateway::create(config, GatewayOptions{});
  ASSERT_TRUE(gw) << gw.error().message;
  const auto streams = (*gw)->request_body_streaming();
  auto request = [](std::string path, std::string content_type) {
    http::Request r;
    r.method = http::Method::kPost;
    r.method_name = "POST";
    r.target = r.path = std::move(path);
    r.headers.add("Host", "gw");
    if (!content_type.empty()) r.headers.add("Content-Type", std::move(content_type));
    return r;
  };
  EXPECT_TRUE(streams(request("/pkg.Svc/Chat", "application/grpc")));
  EXPECT_TRUE(streams(request("/pkg.Svc/Chat", "application/grpc+proto")));
  EXPECT_FALSE(streams(request("/pkg.Svc/Chat", "application/json")));
  EXPECT_FALSE(streams(request("/pkg.Svc/Chat", "application/grpc-web")));
  EXPECT_FALSE(streams(request("/web/pkg.Svc/Chat", "application/grpc")));  // HTTP/1.1 upstream
  // Matched as the handler will route it: the normalized path.
  EXPECT_FALSE(streams(request("/x/../web/pkg.Svc/Chat", "application/grpc")));
}

// A body the server streams for a route that reads bodies whole (a reload between the
// server's decision and the gateway's routing; here a server that streams every body) is read
// whole first and reaches the HTTP/1.1 upstream with its length.
TEST(GatewayTest, AStreamedBodyForAnHttp1RouteIsReadWholeFirst) {
  http::Server upstream(local(), [](http::Request& req, http::Responder respond) {
    respond(http::Response::text(
        200, std::string(req.headers.get("Content-Length").value_or("-")) + " " + req.body));
  });
  ASSERT_TRUE(upstream.start());
  GatewayConfig config;
  config.routes.emplace_back().service = "web";
  config.upstreams["web"] = {"127.0.0.1:" + std::to_string(upstream.port())};
  auto gw = Gateway::create(config, GatewayOptions{.health_checks = false});
  ASSERT_TRUE(gw) << gw.error().message;
  http::ServerOptions options = local();
  options.stream_request_body = [](const http::Request&) { return true; };
  http::Server server(options, (*gw)->handler());
  ASSERT_TRUE(server.start());
  http::testing::H2Client client(server.port());
  const int32_t id = client.submit_streaming("POST", "/upload");
  client.send_body(id, "first,");
  client.send_body(id, "second", true);
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).status, 200);
  EXPECT_EQ(client.reply(id).body, "12 first,second");
  server.shutdown(milliseconds(500));
  upstream.shutdown(milliseconds(500));
}

TEST(GatewayReloadTest, EndpointsSurviveAReload) {
  Upstream a("A");
  // Endpoints from the controller (a service of the platform), not gateway.upstreams.
  GatewayConfig config;
  config.routes.emplace_back().service = "a";
  TestGateway g(config);
  ASSERT_TRUE(g.gw->set_endpoints("a", {{"a-1", "127.0.0.1", a.port()}}));
  EXPECT_EQ(g.get("/x").body, "A /x");

  GatewayConfig routes_changed = config;
  routes_changed.routes[0].timeout = milliseconds(5000);
  ASSERT_TRUE(g.gw->reload(routes_changed));
  EXPECT_EQ(g.get("/x").body, "A /x");

  GatewayConfig clusters_changed = routes_changed;  // a new cluster over the same endpoints
  clusters_changed.circuit_breakers.max_requests = 10;
  clusters_changed.load_balancer = LoadBalancerKind::kRoundRobin;
  ASSERT_TRUE(g.gw->reload(clusters_changed));
  EXPECT_EQ(g.get("/x").body, "A /x");
  const std::shared_ptr<const Cluster> c = g.gw->cluster("a");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->view()->specs.size(), 1u);
  EXPECT_EQ(c->view()->specs[0].id, "a-1");
  // The controller still reaches the service's (new) cluster.
  ASSERT_TRUE(g.gw->add_endpoint("a", {"a-2", "127.0.0.1", a.port()}));
  EXPECT_EQ(g.gw->cluster("a")->view()->specs.size(), 2u);
}

// A service no route names any more (prescale up removed it) keeps its cluster while its
// replicas drain, then loses it: services coming and going do not pile clusters up, and a name
// named again starts afresh, not with the old breakers, ejections and learned admission limit.
TEST(GatewayReloadTest, AServiceNoLongerNamedLosesItsClusterOnceItsEndpointsAreGone) {
  Upstream a("A"), b("B");
  GatewayConfig config;
  config.routes.emplace_back().service = "a";
  config.routes.emplace_back().service = "b";
  config.routes[0].match.path_prefix = "/a";
  config.routes[1].match.path_prefix = "/b";
  TestGateway g(config);
  ASSERT_TRUE(g.gw->set_endpoints("a", {{"a-1", "127.0.0.1", a.port()}}));
  ASSERT_TRUE(g.gw->set_endpoints("b", {{"b-1", "127.0.0.1", b.port()}}));
  ASSERT_TRUE(g.gw->set_max_requests_per_replica("b", 3));
  const std::shared_ptr<const Cluster> old_b = g.gw->cluster("b");
  ASSERT_NE(old_b, nullptr);
  EXPECT_EQ(old_b->max_requests_per_replica(), 3u);

  GatewayConfig without_b = config;
  without_b.routes.pop_back();
  ASSERT_TRUE(g.gw->reload(without_b));
  EXPECT_EQ(g.get("/b").status, 404);
  // Its endpoint is still listed (a controller's, or a replica not yet stopped): kept.
  g.gw->upkeep();
  EXPECT_EQ(g.gw->cluster("b"), old_b);
  EXPECT_NE(g.metrics().find(R"(prescale_gateway_endpoints{service="b")"), std::string::npos);
  // Its replica stops: drained (nothing in flight) and reaped, the cluster goes with it.
  ASSERT_TRUE(g.gw->remove_endpoint("b", "b-1"));
  g.gw->upkeep();
  EXPECT_EQ(g.gw->cluster("b"), nullptr);
  EXPECT_EQ(g.gw->services(), std::vector<std::string>{"a"});
  EXPECT_EQ(g.metrics().find(R"(prescale_gateway_endpoints{service="b")"), std::string::npos);
  EXPECT_EQ(g.get("/a").body, "A /a");

  // Named again: a new cluster at the configuration's own admission limit.
  ASSERT_TRUE(g.gw->reload(config));
  const std::shared_ptr<const Cluster> new_b = g.gw->cluster("b");
  ASSERT_NE(new_b, nullptr);
  EXPECT_NE(new_b, old_b);
  EXPECT_EQ(new_b->max_requests_per_replica(), 0u);
  EXPECT_TRUE(new_b->view()->specs.empty());
  ASSERT_TRUE(g.gw->set_endpoints("b", {{"b-2", "127.0.0.1", b.port()}}));
  EXPECT_EQ(g.get("/b").body, "B /b");

  // A service with no endpoints when a reload stops naming it loses its cluster with that
  // reload, its admission limit too.
  ASSERT_TRUE(g.gw->set_max_requests_per_replica("b", 5));
  ASSERT_TRUE(g.gw->remove_endpoint("b", "b-2"));
  g.gw->upkeep();
  ASSERT_NE(g.gw->cluster("b"), nullptr);  // still named
  ASSERT_TRUE(g.gw->reload(without_b));
  EXPECT_EQ(g.gw->cluster("b"), nullptr);
  ASSERT_TRUE(g.gw->reload(config));
  EXPECT_EQ(g.gw->cluster("b")->max_requests_per_replica(), 0u);
}

// A service scaled to zero (replicas.min 0): its request waits for the replica the load brings,
// as Knative's activator holds it, instead of getting 503 at once; one of another service is
// answered at once as before, and a held one whose replica never comes gets 503 at its route's
// timeout, saying it waited.
TEST(GatewayHoldTest, ARequestForAServiceScaledToZeroWaitsForItsFirstReplica) {
  Upstream z("Z");
  GatewayConfig config;
  for (const char* service : {"z", "never", "plain"}) {
    RouteConfig& r = config.routes.emplace_back();
    r.service = service;
    r.match.path_prefix = std::string("/") + service;
    r.timeout = milliseconds(5000);
  }
  config.routes[1].timeout = milliseconds(400);
  config.hold_for_replica = {"z", "never"};
  std::mutex told_mu;
  std::vector<std::string> told;  // the services on_hold was told of
  std::promise<void> z_held;
  GatewayOptions options;
  options.on_hold = [&](std::string_view service) {
    std::lock_guard lock(told_mu);
    told.emplace_back(service);
    if (service == "z") z_held.set_value();
  };
  TestGateway g(config, options);
  using Steady = std::chrono::steady_clock;

  Steady::time_point ready_at{};
  const Steady::time_point sent = Steady::now();
  std::string while_held;  // the metrics while the request waits
  std::thread replica_starts([&, held = z_held.get_future()] {
    held.wait();  // the request waits: its replica comes 300 ms later
    while_held = g.metrics();
    std::this_thread::sleep_for(milliseconds(300));
    ready_at = Steady::now();
    EXPECT_TRUE(g.gw->set_endpoints("z", {{"z-1", "127.0.0.1", z.port()}}));
  });
  const Answer held = g.get("/z/a");
  const Steady::time_point answered = Steady::now();
  replica_starts.join();
  EXPECT_EQ(held.status, 200) << held.body;
  EXPECT_EQ(held.body, "Z /z/a");
  EXPECT_GE(answered, ready_at) << "answered only once the replica was there";
  EXPECT_GE(answered - sent, milliseconds(300));

  const Steady::time_point before_plain = Steady::now();
  const Answer plain = g.get("/plain");
  EXPECT_EQ(plain.status, 503);
  EXPECT_NE(plain.body.find("no_healthy_upstream"), std::string::npos) << plain.body;
  EXPECT_LT(Steady::now() - before_plain, milliseconds(2500)) << "not held for its 5 s timeout";

  const Steady::time_point before_never = Steady::now();
  const Answer never = g.get("/never");
  EXPECT_EQ(never.status, 503);
  EXPECT_NE(never.body.find("no replica of service never came into service within route /never's "
                            "timeout of 400 ms (the request waited for one)"),
            std::string::npos)
      << never.body;
  EXPECT_GE(Steady::now() - before_never, milliseconds(380));
  // Told once per request held, so that what starts replicas looks at once.
  {
    std::lock_guard lock(told_mu);
    EXPECT_EQ(told, (std::vector<std::string>{"z", "never"}));
  }
  // Found no endpoint once each, not once per look while held.
  const std::string metrics = g.metrics();
  for (const char* service : {"z", "never", "plain"}) {
    EXPECT_NE(metrics.find(std::string(R"(prescale_gateway_overflows_total{service=")") + service +
                           R"(",reason="no_endpoint"} 1)" + "\n"),
              std::string::npos)
        << service << "\n"
        << metrics;
  }
  // Waiting, then how each wait ended and how long the one sent on waited; nothing for a route
  // that holds nothing.
  EXPECT_NE(while_held.find("prescale_gateway_held_requests{route=\"/z\"} 1\n"), std::string::npos)
      << while_held;
  for (const char* line :
       {R"(prescale_gateway_held_requests{route="/z"} 0)",
        R"(prescale_gateway_held_requests{route="/never"} 0)",
        R"(prescale_gateway_held_requests_total{route="/z",outcome="sent"} 1)",
        R"(prescale_gateway_held_requests_total{route="/z",outcome="timed_out"} 0)",
        R"(prescale_gateway_held_requests_total{route="/never",outcome="timed_out"} 1)",
        R"(prescale_gateway_held_requests_total{route="/never",outcome="sent"} 0)",
        R"(prescale_gateway_hold_duration_seconds_count{route="/z"} 1)",
        R"(prescale_gateway_hold_duration_seconds_bucket{route="/z",le="0.25"} 0)",
        R"(prescale_gateway_hold_duration_seconds_count{route="/never"} 0)"}) {
    EXPECT_NE(metrics.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << metrics;
  }
  EXPECT_EQ(metrics.find(R"(prescale_gateway_held_requests{route="/plain")"), std::string::npos);
}

// Two requests wait for the first replica of a service allowed one upstream connection: once it
// comes, one is sent and the other refused by the connection limit, and the metrics say so (not
// two sent).
TEST(GatewayHoldTest, AHeldRequestTheConnectionLimitRefusesIsCountedRefused) {
  Upstream z("Z");
  GatewayConfig config;
  config.routes.emplace_back().service = "z";
  config.circuit_breakers.max_connections = 1;
  config.hold_for_replica = {"z"};
  std::mutex mu;
  int holding = 0;
  std::promise<void> both_held;
  GatewayOptions options;
  options.on_hold = [&](std::string_view) {
    std::lock_guard lock(mu);
    if (++holding == 2) both_held.set_value();
  };
  TestGateway g(config, options);
  std::vector<Answer> answers(2);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < answers.size(); ++i) {
    clients.emplace_back([&, i] { answers[i] = g.get("/hold"); });
  }
  // (Not ASSERT: the clients must be joined; a refused hold answers them at once anyway.)
  EXPECT_EQ(both_held.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(g.gw->set_endpoints("z", {{"z-1", "127.0.0.1", z.port()}}));
  EXPECT_TRUE(eventually([&] { return z.held() == 1; }, milliseconds(10000)));
  // The refused one is answered while the other waits at the upstream; then that one is.
  EXPECT_TRUE(eventually(
      [&] {
        return g.metrics().find(
                   R"(prescale_gateway_held_requests_total{route="/",outcome="refused"} 1)") !=
               std::string::npos;
      },
      milliseconds(10000)))
      << g.metrics();
  z.release();
  for (std::thread& t : clients) t.join();
  std::vector<int> statuses = {answers[0].status, answers[1].status};
  std::sort(statuses.begin(), statuses.end());
  EXPECT_EQ(statuses, (std::vector<int>{200, 503}));
  const std::string metrics = g.metrics();
  for (const char* line : {R"(prescale_gateway_held_requests{route="/"} 0)",
                           R"(prescale_gateway_held_requests_total{route="/",outcome="sent"} 1)",
                           R"(prescale_gateway_held_requests_total{route="/",outcome="refused"} 1)",
                           R"(prescale_gateway_hold_duration_seconds_count{route="/"} 1)"}) {
    EXPECT_NE(metrics.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << metrics;
  }
}

// A reload that gives the service a new cluster (new breaker settings) while a request waits for
// its first replica: the endpoints reach the new cluster, not the one the request watches, so it
// is answered at once, saying so, rather than at its timeout.
TEST(GatewayHoldTest, AHeldRequestWhoseClusterAReloadReplacedIsAnswered) {
  GatewayConfig config;
  config.routes.emplace_back().service = "z";
  config.routes[0].timeout = milliseconds(10000);
  config.hold_for_replica = {"z"};
  std::promise<void> holding;
  GatewayOptions options;
  options.on_hold = [&](std::string_view) { holding.set_value(); };
  TestGateway g(config, options);
  using Steady = std::chrono::steady_clock;
  const Steady::time_point sent = Steady::now();
  std::thread reload([&, waiting = holding.get_future()] {
    waiting.wait();  // the request waits: now the reload
    GatewayConfig renewed = config;
    renewed.circuit_breakers.max_requests = 7;
    EXPECT_TRUE(g.gw->reload(renewed));
  });
  const Answer held = g.get("/x");
  reload.join();
  EXPECT_EQ(held.status, 503);
  EXPECT_NE(held.body.find("the gateway's configuration changed while the request waited for a "
                           "replica of service z: send it again"),
            std::string::npos)
      << held.body;
  EXPECT_LT(Steady::now() - sent, milliseconds(5000)) << "not at its 10 s timeout";
  const std::string metrics = g.metrics();
  EXPECT_NE(metrics.find(R"(,outcome="superseded"} 1)"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find(R"(,outcome="sent"} 1)"), std::string::npos) << metrics;
}

// An upstream named by a host name: until the first lookup the name is the endpoint; then each
// address it resolves to is one (DnsUpstreams), here over the real resolver: localhost is
// 127.0.0.1, its IPv6 address left out.
TEST(GatewayDnsTest, AnUpstreamNamedByItsHostBecomesTheAddressesItResolvesTo) {
  Upstream a("A");
  const std::string name = "localhost:" + std::to_string(a.port());
  TestGateway g(parse("  upstreams:\n    a: [\"" + name +
                      "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n"));
  auto ids = [&] {
    std::vector<std::string> out;
    for (const EndpointSpec& s : g.gw->cluster("a")->view()->specs) out.push_back(s.id);
    return out;
  };
  EXPECT_EQ(g.get("/x").body, "A /x");
  EXPECT_EQ(ids(), std::vector<std::string>{name});

  g.gw->refresh_dns();
  g.gw->upkeep();  // the cluster takes the table's change
  EXPECT_EQ(ids(), std::vector<std::string>{"127.0.0.1:" + std::to_string(a.port())});
  EXPECT_EQ(g.get("/x").body, "A /x");

  // A reload that lists the address instead: the name's endpoints go, the address stays.
  ASSERT_TRUE(g.gw->reload(parse("  upstreams:\n    a: [\"127.0.0.1:" + std::to_string(a.port()) +
                                 "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n")));
  g.gw->refresh_dns();
  g.gw->upkeep();
  EXPECT_EQ(ids(), std::vector<std::string>{"127.0.0.1:" + std::to_string(a.port())});
  EXPECT_EQ(g.get("/x").body, "A /x");
}

// What goes wrong with the lookups is told once each time it changes, not at every refresh.
TEST(GatewayDnsTest, ALookupProblemIsToldOnceWhenItChanges) {
  Upstream a("A");
  GatewayOptions o;
  std::string answer = "fail";
  o.resolve = [&](const std::string&) {
    DnsAnswer d;
    if (answer == "fail") {
      d.kind = DnsAnswer::Kind::kFailed;
      d.error = "Temporary failure in name resolution";
    } else {
      d.addresses = {"127.0.0.1"};
    }
    return d;
  };
  std::vector<std::string> told;
  o.on_dns_problem = [&](const std::string& line) { told.push_back(line); };
  TestGateway g(parse("  upstreams:\n    a: [\"a.internal:" + std::to_string(a.port()) +
                      "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n"),
                o);
  g.gw->refresh_dns();
  g.gw->refresh_dns();
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0], "a.internal:" + std::to_string(a.port()) +
                         ": lookup failed (Temporary failure in name resolution); keeping the "
                         "name as its endpoint");
  answer = "ok";
  g.gw->refresh_dns();
  answer = "fail";
  g.gw->refresh_dns();
  g.gw->refresh_dns();
  ASSERT_EQ(told.size(), 2u);
  EXPECT_EQ(told[1], "a.internal:" + std::to_string(a.port()) +
                         ": lookup failed (Temporary failure in name resolution); keeping 1 "
                         "endpoints it had");
  g.gw->upkeep();
  EXPECT_EQ(g.get("/x").body, "A /x");  // through the address of the last answer
}

TEST(GatewayReloadTest, RateLimitBucketsOfAnUnchangedRouteSurvive) {
  Upstream a("A");
  const std::string upstreams = "  upstreams:\n    a: [\"" + a.address() + "\"]\n";
  const std::string limited = R"(  routes:
    - match: {path_prefix: /limited}
      service: a
      rate_limit: {requests_per_second: 1, burst: 2}
)";
  TestGateway g(parse(upstreams + limited));
  EXPECT_EQ(g.get("/limited").status, 200);
  EXPECT_EQ(g.get("/limited").status, 200);
  EXPECT_EQ(g.get("/limited").status, 429);  // the clock does not move: no refill

  // Another route added, this one's timeout changed: its bucket is the same.
  ASSERT_TRUE(g.gw->reload(parse(upstreams + limited + R"(      timeout: 5s
    - match: {path_prefix: /other}
      service: a
)")));
  EXPECT_EQ(g.get("/limited").status, 429);
  EXPECT_EQ(g.get("/other").status, 200);

  // A new rate limit starts with full buckets.
  ASSERT_TRUE(g.gw->reload(parse(upstreams + R"(  routes:
    - match: {path_prefix: /limited}
      service: a
      rate_limit: {requests_per_second: 1, burst: 3}
)")));
  EXPECT_EQ(g.get("/limited").status, 200);
  g.clock.advance(std::chrono::seconds(10));
  EXPECT_EQ(g.get("/limited").status, 200);
}

TEST(GatewayReloadTest, RequestInFlightFinishesOnWhatItStartedWith) {
  Upstream a("A"), b("B");
  const std::string upstreams =
      "  upstreams:\n    a: [\"" + a.address() + "\"]\n    b: [\"" + b.address() + "\"]\n";
  TestGateway g(parse(upstreams + "  routes:\n    - {match: {path_prefix: /}, service: a}\n"));
  RawSocket held(g.server->port());
  ASSERT_TRUE(held.send("GET /hold HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return a.held() == 1; }));

  // The route now leads elsewhere, and every cluster is replaced (new settings).
  GatewayConfig next =
      parse(upstreams + "  routes:\n    - {match: {path_prefix: /}, service: b}\n");
  next.circuit_breakers.max_requests = 7;
  ASSERT_TRUE(g.gw->reload(next));
  EXPECT_EQ(g.get("/x").body, "B /x");
  a.release();
  auto r = held.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "released");
  // The replaced route goes once no thread holds the old configuration; upkeep removes it.
  g.gw->upkeep();
  EXPECT_EQ(g.get("/y").body, "B /y");
}

// A replica's health comes from active checks, not from the data path's learned state: a reload
// that renews the clusters (a circuit_breakers change) must not put a replica that is failing its
// readiness back in service until a check passes (docs/gateway.md: "What is kept: every
// service's endpoints"; an endpoint starts healthy only because a replica is registered once its
// readiness passed, which this one is known not to).
TEST(GatewayReloadTest, AReloadThatRenewsClustersKeepsUnhealthyEndpointsOutOfService) {
  http::Server sick(local(), [](http::Request& req, http::Responder respond) {
    respond(http::Response::text(req.path == "/readyz" ? 503 : 200, "A " + req.path));
  });
  ASSERT_TRUE(sick.start());
  Upstream b("B");
  const std::string upstreams = "  upstreams:\n    s: [\"127.0.0.1:" + std::to_string(sick.port()) +
                                "\", \"" + b.address() + "\"]\n";
  const std::string rest =
      "  load_balancer: round_robin\n"
      "  health_check: {interval: 10s, unhealthy_threshold: 1}\n"
      "  routes:\n    - {match: {path_prefix: /}, service: s}\n";
  GatewayConfig config = parse(upstreams + rest);

  ManualClock clock;
  telemetry::Registry registry;
  GatewayOptions o;
  o.clock = &clock;
  o.registry = &registry;
  o.health_checks = true;
  auto created = Gateway::create(config, o);
  ASSERT_TRUE(created) << created.error().message;
  std::unique_ptr<Gateway> gw = std::move(*created);
  http::Server server(local(), gw->handler());
  ASSERT_TRUE(server.start());
  auto get = [&](const std::string& path) {
    RawSocket s(server.port());
    if (!s.send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n")) return std::string();
    auto r = s.read_response();
    return r ? r->body : std::string();
  };
  const std::string unhealthy = R"(prescale_gateway_endpoints{service="s",state="unhealthy"} 1)";
  auto endpoint_states = [&] {  // the prescale_gateway_endpoints lines of the metrics
    std::string all = telemetry::expose(registry), out;
    for (size_t at = 0, end; at < all.size(); at = end + 1) {
      end = all.find('\n', at);
      if (end == std::string::npos) end = all.size();
      if (all.compare(at, 27, "prescale_gateway_endpoints{") == 0) {
        out += all.substr(at, end - at) + "\n";
      }
    }
    return out;
  };

  gw->upkeep();  // the first checks: A fails its readiness and leaves the rotation
  ASSERT_TRUE(eventually([&] { return endpoint_states().find(unhealthy) != std::string::npos; }))
      << endpoint_states();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(get("/before"), "B /before");

  config.circuit_breakers.max_requests = 512;  // renews the service's cluster
  ASSERT_TRUE(gw->reload(config));
  EXPECT_NE(endpoint_states().find(unhealthy), std::string::npos) << endpoint_states();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(get("/after"), "B /after") << "request " << i;
  server.shutdown(milliseconds(1000));
}

// Issue 5's limits "as in the HTTP layer" at the gateway: the server's limits answer before
// routing, so the upstream never sees such a request.
TEST(GatewayLimitsTest, BadInputIsAnsweredByTheGatewayAndNeverReachesTheUpstream) {
  std::atomic<int> seen{0};
  http::Server upstream(local(), [&](http::Request&, http::Responder respond) {
    ++seen;
    respond(http::Response::text(200, "ok"));
  });
  ASSERT_TRUE(upstream.start());
  GatewayOptions o;
  o.health_checks = false;
  auto gw =
      Gateway::create(parse("  upstreams:\n    a: [\"127.0.0.1:" + std::to_string(upstream.port()) +
                            "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n"),
                      o);
  ASSERT_TRUE(gw);
  http::ServerOptions so = local();
  so.max_header_bytes = 1024;  // http.max_header_bytes
  so.max_body_bytes = 1024;    // http.max_body_bytes
  so.read_timeout = milliseconds(300);
  http::Server server(so, (*gw)->handler());
  ASSERT_TRUE(server.start());
  auto answer = [&](const std::string& bytes) {
    RawSocket s(server.port());
    EXPECT_TRUE(s.send(bytes));
    auto r = s.read_response();
    return r ? r->status : 0;
  };

  EXPECT_EQ(answer("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2000, 'x') + "\r\n\r\n"),
            431);
  EXPECT_EQ(
      answer("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'b')),
      413);
  EXPECT_EQ(answer("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4"
                   "\r\n\r\n0\r\n\r\n"),
            400);  // smuggling: both framings
  // A slow client: part of a request, then nothing. Cut off after the read timeout.
  {
    RawSocket slow(server.port());
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(slow.send("GET / HTTP/1.1\r\nHost: t\r\n"));
    auto r = slow.read_response();
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 408);
    EXPECT_GE(waited, milliseconds(250));
    EXPECT_TRUE(slow.closed_within(milliseconds(2000)));
  }
  EXPECT_EQ(seen.load(), 0);
  EXPECT_EQ(answer("GET / HTTP/1.1\r\nHost: t\r\n\r\n"), 200);  // and good requests still pass
  EXPECT_EQ(seen.load(), 1);
  server.shutdown(milliseconds(1000));
}

TEST(GatewayLimitsTest, MaxConnectionsIsEnforcedWith503AndCounted) {
  Upstream a("A");
  TestGateway g(parse("  circuit_breakers: {max_connections: 1}\n  upstreams:\n    a: [\"" +
                      a.address() +
                      "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n"));
  RawSocket first(g.server->port());
  ASSERT_TRUE(first.send("GET /hold HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return a.held() == 1; }));
  // The one connection allowed is busy: a second request would need another.
  const Answer over = g.get("/x");
  EXPECT_EQ(over.status, 503);
  EXPECT_NE(over.body.find(R"("code":"upstream_overflow")"), std::string::npos) << over.body;
  EXPECT_NE(over.body.find("circuit_breakers.max_connections (1 upstream connections open) "
                           "reached for service a"),
            std::string::npos)
      << over.body;
  EXPECT_NE(g.metrics().find(
                R"(prescale_gateway_overflows_total{service="a",reason="max_connections"} 1)"),
            std::string::npos)
      << g.metrics();
  EXPECT_EQ(g.gw->cluster("a")->stats().connection_overflows, 1u);
  a.release();
  auto r = first.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  // The connection is idle again: reused, no new one needed.
  EXPECT_EQ(g.get("/y").body, "A /y");
  EXPECT_EQ(g.gw->cluster("a")->stats().connection_overflows, 1u);
}

TEST(GatewayLimitsTest, MaxPendingRequestsCountsConnectionsBeingEstablished) {
  ManualClock clock;
  EndpointTable table(clock);
  ClusterOptions options;
  options.limits.max_connections = 3;
  options.limits.max_pending_requests = 1;
  Cluster cluster("a", options, table, clock);
  std::string why;
  auto p1 = cluster.connections().try_open(why);
  ASSERT_NE(p1, nullptr);
  EXPECT_EQ(cluster.connections().try_open(why), nullptr);  // p1 still connecting
  EXPECT_EQ(why,
            "circuit_breakers.max_pending_requests (1 requests waiting for an upstream "
            "connection) reached for service a");
  p1->connected();
  auto p2 = cluster.connections().try_open(why);
  ASSERT_NE(p2, nullptr);
  p2->connected();
  auto p3 = cluster.connections().try_open(why);
  ASSERT_NE(p3, nullptr);
  p3->connected();
  EXPECT_EQ(cluster.connections().try_open(why), nullptr);  // three open
  EXPECT_NE(why.find("max_connections (3 upstream connections open)"), std::string::npos);
  p2.reset();  // one closes
  EXPECT_NE(cluster.connections().try_open(why), nullptr);
  EXPECT_EQ(cluster.stats().pending_overflows, 1u);
  EXPECT_EQ(cluster.stats().connection_overflows, 1u);
}

// Admission control end to end: requests held by a slow upstream fill the service's limit
// (one replica × 2); the next is refused at once, 503 overloaded with Retry-After, and counted
// both as a refusal and as a request (the autoscaler's demand includes it).
TEST(GatewayAdmissionTest, BeyondTheLimitIs503OverloadedWithRetryAfter) {
  Upstream a("A");
  GatewayConfig config = parse("  upstreams:\n    a: [\"" + a.address() +
                               "\"]\n  routes:\n    - {match: {path_prefix: /}, service: a}\n");
  config.max_requests_per_replica["a"] = 2;
  TestGateway g(config);
  RawSocket first(g.server->port()), second(g.server->port());
  ASSERT_TRUE(first.send("GET /hold HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(second.send("GET /hold HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return a.held() == 2; }));

  RawSocket third(g.server->port());
  ASSERT_TRUE(third.send("GET /x HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto refused = third.read_response();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->header("Retry-After"), "1");
  EXPECT_EQ(refused->body,
            R"({"error":{"code":"overloaded","message":"service a: 2 requests in flight, )"
            R"(the limit for 1 ready replica is 2"}})");
  EXPECT_EQ(g.gw->cluster("a")->stats().admission_refusals, 1u);
  const std::string m = g.metrics();
  EXPECT_NE(m.find(R"(prescale_gateway_overflows_total{service="a",reason="admission"} 1)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(prescale_requests_total{service="gateway",route="/",code="503"} 1)"),
            std::string::npos)
      << m;

  a.release();
  for (RawSocket* s : {&first, &second}) {
    auto r = s->read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
  }
  // Room again.
  EXPECT_EQ(g.get("/y").body, "A /y");
}

TEST(GatewayAdmissionTest, ANewLimitHoldsOnTheClusterAsItIs) {
  Upstream a("A"), b("B");
  GatewayConfig config =
      parse("  upstreams:\n    a: [\"" + a.address() + "\"]\n    b: [\"" + b.address() +
            "\"]\n  routes:\n    - {match: {path_prefix: /}, "
            "service: a}\n");
  config.max_requests_per_replica["a"] = 4;
  TestGateway g(config);
  const std::shared_ptr<const Cluster> a_before = g.gw->cluster("a");
  const std::shared_ptr<const Cluster> b_before = g.gw->cluster("b");
  ASSERT_TRUE(g.gw->reload(config));
  EXPECT_EQ(g.gw->cluster("a"), a_before);  // nothing changed
  config.max_requests_per_replica["a"] = 1;
  ASSERT_TRUE(g.gw->reload(config));
  EXPECT_EQ(g.gw->cluster("a"), a_before);  // a new limit, on the cluster as it is
  EXPECT_EQ(g.gw->cluster("a")->max_requests_per_replica(), 1u);
  EXPECT_EQ(g.gw->cluster("b"), b_before);

  // The new limit holds: one request in flight fills it.
  RawSocket held(g.server->port());
  ASSERT_TRUE(held.send("GET /hold HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return a.held() == 1; }));
  EXPECT_EQ(g.get("/x").status, 503);
  a.release();
  ASSERT_TRUE(held.read_response().has_value());

  // Set while serving (prescale up, from the learned capacity): the cluster and its learned
  // state stay, the new number holds at once.
  const std::shared_ptr<const Cluster> a_now = g.gw->cluster("a");
  ASSERT_TRUE(g.gw->set_max_requests_per_replica("a", 3));
  EXPECT_EQ(g.gw->cluster("a"), a_now);
  EXPECT_EQ(a_now->max_requests_per_replica(), 3u);
  const std::string m = g.metrics();
  EXPECT_NE(m.find(R"(prescale_gateway_admission_limit{service="a"} 3)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(prescale_gateway_admission_limit{service="b"} 0)"), std::string::npos) << m;
  // It outlives a reload that renews every cluster (another setting changed) ...
  config.circuit_breakers.max_retries += 1;
  ASSERT_TRUE(g.gw->reload(config));
  EXPECT_NE(g.gw->cluster("a"), a_now);
  EXPECT_EQ(g.gw->cluster("a")->max_requests_per_replica(), 3u);
  // ... until a reload changes the service's own limit (on the same cluster).
  const std::shared_ptr<const Cluster> renewed = g.gw->cluster("a");
  config.max_requests_per_replica["a"] = 2;
  ASSERT_TRUE(g.gw->reload(config));
  EXPECT_EQ(g.gw->cluster("a"), renewed);
  EXPECT_EQ(g.gw->cluster("a")->max_requests_per_replica(), 2u);
  ASSERT_TRUE(g.gw->set_max_requests_per_replica("a", 3));
  auto unknown = g.gw->set_max_requests_per_replica("c", 3);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  // Cleared: the file's own limit is back, and a reload that renews the cluster keeps it.
  ASSERT_TRUE(g.gw->clear_max_requests_per_replica("a"));
  EXPECT_EQ(g.gw->cluster("a")->max_requests_per_replica(), 2u);
  config.circuit_breakers.max_retries += 1;
  ASSERT_TRUE(g.gw->reload(config));
  EXPECT_EQ(g.gw->cluster("a")->max_requests_per_replica(), 2u);
  EXPECT_EQ(g.gw->clear_max_requests_per_replica("c").error().code, ErrorCode::kNotFound);

  config.max_requests_per_replica["a"] = -1;
  auto bad = g.gw->reload(config);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message, "gateway.max_requests_per_replica.a: must be >= 0, got -1");
}

}  // namespace
}  // namespace prescale::gateway
