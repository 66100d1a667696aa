// gRPC through the gateway, with gRPC's own stacks at both ends: KEDA's external scaler
// interface as `prescale controller --keda-port` serves it (grpc++), and a grpc++ client
// generated from the same interface, talking to the gateway instead of the scaler; then a
// Python gRPC service run by `prescale up` (services[].protocol http2) and a Python client. The
// gateway reaches the services over HTTP/2 (GatewayConfig::http2_upstreams; docs/gateway.md,
// "gRPC and HTTP/2 upstreams"), health and readiness checks included.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "externalscaler.grpc.pb.h"
#include "gateway/balancer.h"
#include "gateway/cluster.h"
#include "gateway/gateway.h"
#include "http/client.h"
#include "http/grpc_health.h"
#include "http/server.h"
#include "support/platform.h"
#include "support/subprocess.h"
#include "worlds/kube/keda_scaler.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;

struct GrpcGatewayTest : ::testing::Test {
  void SetUp() override {
    auto started = kube::KedaScaler::start(kube::KedaScalerOptions{
        .address = "127.0.0.1", .port = 0, .services = {"web"}, .name_space = "shop"});
    ASSERT_TRUE(started) << started.error().message;
    scaler = std::move(*started);

    GatewayConfig config;
    config.routes.emplace_back().service = "keda";
    config.upstreams["keda"] = {"127.0.0.1:" + std::to_string(scaler->port())};
    config.http2_upstreams = {"keda"};
    config.health_check.interval = 50ms;
    config.health_check.timeout = 50ms;
    auto gw = gateway::Gateway::create(config, gateway::GatewayOptions{});
    ASSERT_TRUE(gw) << gw.error().message;
    gateway = std::move(*gw);
    http::ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    server = std::make_unique<http::Server>(options, gateway->handler());
    ASSERT_TRUE(server->start().has_value());
    gateway->start_upkeep();
    stub = externalscaler::ExternalScaler::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (gateway) gateway->stop_upkeep();
    if (server) server->shutdown(1000ms);
    server.reset();
    gateway.reset();
  }

  static externalscaler::ScaledObjectRef ref(const std::string& service) {
    externalscaler::ScaledObjectRef r;
    r.set_name(service + "-scaler");
    r.set_namespace_("shop");
    (*r.mutable_scalermetadata())["service"] = service;
    return r;
  }
  static std::unique_ptr<grpc::ClientContext> context() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 5s);
    return c;
  }
  grpc::Status metrics(const std::string& service, externalscaler::GetMetricsResponse& out) {
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = ref(service);
    request.set_metricname("prescale-" + service);
    return stub->GetMetrics(context().get(), request, &out);
  }

  std::unique_ptr<kube::KedaScaler> scaler;
  std::unique_ptr<gateway::Gateway> gateway;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<externalscaler::ExternalScaler::Stub> stub;
};

TEST_F(GrpcGatewayTest, UnaryCallsAndTheirStatusesPassThrough) {
  externalscaler::GetMetricSpecResponse spec;
  grpc::Status status = stub->GetMetricSpec(context().get(), ref("web"), &spec);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  ASSERT_EQ(spec.metricspecs_size(), 1);
  EXPECT_EQ(spec.metricspecs(0).metricname(), "prescale-web");

  // An error status comes back with its message (trailers of a response without a body).
  externalscaler::GetMetricsResponse values;
  status = metrics("web", values);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(),
            "no plan for web yet: the controller has neither decided nor read its Deployment "
            "since it started");
  status = metrics("nope", values);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();

  scaler->publish({{"web", 7}});
  status = metrics("web", values);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(values.metricvalues_size(), 1);
  EXPECT_EQ(values.metricvalues(0).metricvaluefloat(), 7);
}

TEST_F(GrpcGatewayTest, ManyConcurrentCallsShareTheUpstreamConnections) {
  scaler->publish({{"web", 3}});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        externalscaler::GetMetricsResponse values;
        if (metrics("web", values).ok() && values.metricvalues_size() == 1 &&
            values.metricvalues(0).metricvaluefloat() == 3) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
}

TEST_F(GrpcGatewayTest, AServerStreamIsRelayedMessageByMessageUntilTheClientCancels) {
  scaler->publish({{"web", 2}});
  auto ctx = context();
  auto reader = stub->StreamIsActive(ctx.get(), ref("web"));
  externalscaler::IsActiveResponse message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_TRUE(message.result());
  // The next message comes when the plan changes, through the open stream.
  scaler->publish({{"web", 0}});
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_FALSE(message.result());
  ctx->TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(GrpcGatewayTest, HealthChecksReachTheServerOverHttp2) {
  // A gRPC server answers a GET over HTTP/2 (a gRPC error in its trailers), so the check passes;
  // over HTTP/1.1 it gets no answer at all.
  http::Client h2(http::ClientOptions{.http2 = true});
  http::Request get;
  get.method = http::Method::kGet;
  get.method_name = "GET";
  get.target = "/readyz";
  auto answer = h2.request("127.0.0.1", scaler->port(), get, 2000ms);
  ASSERT_TRUE(answer.has_value()) << answer.error().to_string();
  EXPECT_GE(answer->status, 200);  // gRPC's C core answers 200, the status in grpc-status
  EXPECT_LE(answer->status, 399);
  http::Client h1;
  EXPECT_FALSE(h1.request("127.0.0.1", scaler->port(), get, 2000ms).has_value());
  // After many checks (every 50 ms), the scaler is still in service.
  std::this_thread::sleep_for(500ms);
  const auto cluster = gateway->cluster("keda");
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(cluster->hosts().size(), 1u);
  EXPECT_TRUE(cluster->hosts()[0]->healthy());
  externalscaler::GetMetricSpecResponse spec;
  EXPECT_TRUE(stub->GetMetricSpec(context().get(), ref("web"), &spec).ok());
}

// What the gateway answers itself reaches a gRPC client as gRPC: a path no route takes is
// UNIMPLEMENTED, a service with no replica to reach UNAVAILABLE, each with the gateway's reason;
// and a call's grpc-timeout, sooner than its route's timeout, is its deadline there:
// DEADLINE_EXCEEDED when it passes.
TEST(GrpcLocalAnswersTest, TheGatewaysOwnAnswersAreGrpcStatuses) {
  // An HTTP/2 upstream that never answers (until it stops).
  std::mutex mu;
  std::vector<http::Responder> held;
  http::ServerOptions so;
  so.address = "127.0.0.1";
  so.port = 0;
  so.threads = 1;
  http::Server silent(so, [&](http::Request&, http::Responder respond) {
    std::lock_guard lock(mu);
    held.push_back(std::move(respond));
  });
  ASSERT_TRUE(silent.start().has_value());

  GatewayConfig config;
  auto& down = config.routes.emplace_back();
  down.match.path_prefix = "/externalscaler.ExternalScaler/GetMetricSpec";
  down.service = "down";
  auto& slow = config.routes.emplace_back();
  slow.match.path_prefix = "/slow/";
  slow.service = "slow";
  config.upstreams["down"] = {"127.0.0.1:1"};  // refused
  config.upstreams["slow"] = {"127.0.0.1:" + std::to_string(silent.port())};
  config.http2_upstreams = {"down", "slow"};
  auto gw = gateway::Gateway::create(config, gateway::GatewayOptions{.health_checks = false});
  ASSERT_TRUE(gw) << gw.error().message;
  http::ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  http::Server server(o, (*gw)->handler());
  ASSERT_TRUE(server.start().has_value());
  auto stub = externalscaler::ExternalScaler::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server.port()), grpc::InsecureChannelCredentials()));
  auto context = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 5s);
    return c;
  };

  externalscaler::ScaledObjectRef ref;
  externalscaler::IsActiveResponse active;
  grpc::Status status = stub->IsActive(context().get(), ref, &active);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
  EXPECT_EQ(status.error_message().substr(0, 10), "no_route: ") << status.error_message();

  externalscaler::GetMetricSpecResponse spec;
  status = stub->GetMetricSpec(context().get(), ref, &spec);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_FALSE(status.error_message().empty());

  // grpc-timeout 200 ms against the route's 15 s: answered at 200 ms, not when the client gives up.
  http::Client h2(http::ClientOptions{.http2 = true});
  http::Request call = http::grpc_health_request("");  // any unary gRPC call
  call.target = "/slow/Call";
  call.headers.set("grpc-timeout", "200m");
  const auto started = std::chrono::steady_clock::now();
  auto answer = h2.request("127.0.0.1", server.port(), call, 5000ms);
  ASSERT_TRUE(answer.has_value()) << answer.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(answer->headers.get("grpc-status"), "4");  // DEADLINE_EXCEEDED
  const std::string message(answer->headers.get("grpc-message").value_or(""));
  EXPECT_TRUE(message.starts_with("upstream_timeout: the call's grpc-timeout of 200 ms passed"))
      << message;
  EXPECT_FALSE(answer->headers.get("x-prescale-grpc-status").has_value());
  // Hours of grpc-timeout: the route's 15 s stands (and no clock overflows).
  call.headers.set("grpc-timeout", "99999999H");
  http::Client quick(http::ClientOptions{.http2 = true});
  EXPECT_FALSE(quick.request("127.0.0.1", server.port(), call, 500ms).has_value())
      << "still waiting for the silent upstream";
  {
    std::lock_guard lock(mu);
    for (auto& r : held) r(http::Response::text(200, "late"));
  }
  server.shutdown(1000ms);
  silent.shutdown(1000ms);
}

// gRPC's own health service (grpc++'s default one, grpc.health.v1) answers the Check that
// http::grpc_health_request() encodes, and read_grpc_health() reads what it says: the server as
// a whole, a service it serves or not, and one it does not know.
struct GrpcHealthServer {
  GrpcHealthServer() {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    // grpc++ serves the health service on the threads of its synchronous services: it needs one
    // (every method of this one answers UNIMPLEMENTED).
    builder.RegisterService(&unimplemented);
    server = builder.BuildAndStart();
  }
  ~GrpcHealthServer() {
    if (server) server->Shutdown(std::chrono::system_clock::now() + 1s);
  }
  void set(const std::string& service, bool serving) {
    server->GetHealthCheckService()->SetServingStatus(service, serving);
  }
  int port = 0;
  externalscaler::ExternalScaler::Service unimplemented;
  std::unique_ptr<grpc::Server> server;
};

TEST(GrpcHealthCheckTest, GrpcsOwnHealthServiceAnswersTheCheck) {
  GrpcHealthServer health;
  ASSERT_NE(health.server, nullptr);
  ASSERT_GT(health.port, 0);
  health.set("shop.Cart", true);
  health.set("shop.Ranking", false);
  http::Client h2(http::ClientOptions{.http2 = true});
  auto ask = [&](const std::string& service) {
    auto answer = h2.request("127.0.0.1", static_cast<std::uint16_t>(health.port),
                             http::grpc_health_request(service), 2000ms);
    EXPECT_TRUE(answer.has_value()) << answer.error().to_string();
    return answer ? http::read_grpc_health(*answer).describe(answer->status) : std::string();
  };
  EXPECT_EQ(ask(""), "SERVING");
  EXPECT_EQ(ask("shop.Cart"), "SERVING");
  EXPECT_EQ(ask("shop.Ranking"), "NOT_SERVING");
  EXPECT_EQ(ask("shop.Nothing").substr(0, 26), "grpc-status 5 (NOT_FOUND: ");
  health.set("shop.Cart", false);
  EXPECT_EQ(ask("shop.Cart"), "NOT_SERVING");
}

// The gateway's health checks of a service with gRPC health checks (GatewayConfig::
// grpc_health_checks) ask about its name: a replica that says NOT_SERVING leaves service, and
// comes back when it says SERVING again.
TEST(GrpcHealthCheckTest, TheGatewayTakesAReplicaThatIsNotServingOutOfService) {
  GrpcHealthServer health;
  ASSERT_NE(health.server, nullptr);
  health.set("shop.Cart", true);
  GatewayConfig config;
  config.routes.emplace_back().service = "cart";
  config.upstreams["cart"] = {"127.0.0.1:" + std::to_string(health.port)};
  config.http2_upstreams = {"cart"};
  config.grpc_health_checks = {{"cart", "shop.Cart"}};
  config.health_check.interval = 50ms;
  config.health_check.timeout = 50ms;
  config.health_check.unhealthy_threshold = 2;
  auto gw = gateway::Gateway::create(config, gateway::GatewayOptions{});
  ASSERT_TRUE(gw) << gw.error().message;
  (*gw)->start_upkeep();
  const auto cluster = (*gw)->cluster("cart");
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(cluster->hosts().size(), 1u);
  // Real network checks every 50 ms: wait for a state, up to 5 s.
  auto becomes = [&](bool healthy) {
    for (int i = 0; i < 500 && cluster->hosts()[0]->healthy() != healthy; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    return cluster->hosts()[0]->healthy() == healthy;
  };
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(cluster->hosts()[0]->healthy()) << "SERVING";
  health.set("shop.Cart", false);
  EXPECT_TRUE(becomes(false)) << "NOT_SERVING";
  health.set("shop.Cart", true);
  EXPECT_TRUE(becomes(true)) << "SERVING again";
  (*gw)->stop_upkeep();
}

bool python_grpc() {
  return access("/usr/bin/python3", X_OK) == 0 &&
         std::system("/usr/bin/python3 -c 'import grpc' 2>/dev/null") == 0;
}

// A prescale.yaml running tests/grpc_echo.py as service `echo`, one replica, with `settings`
// (lines of the service's entry) and checks every 200 ms.
std::string grpc_echo_yaml(const std::string& settings) {
  return R"(version: 1
services:
  - name: echo
    kind: command
    command: [/usr/bin/python3, )" +
         std::string(GRPC_ECHO) + R"(, serve, "{port}"]
    replicas: {min: 1, max: 1, initial: 1}
    startup_time: 2s
)" + settings +
         R"(gateway:
  listen: "127.0.0.1:0"
  health_check: {interval: 200ms, timeout: 190ms, unhealthy_threshold: 2}
)";
}

// Calls each of the echo's methods through the platform's gateway (grpc_echo.py call), expects
// every answer to be the one expected, and returns what the client printed.
std::string call_echo(testing::Platform& up, const testing::TempDir& dir) {
  testing::Subprocess client(
      {"/usr/bin/python3", GRPC_ECHO, "call", "127.0.0.1:" + std::to_string(up.gateway_port())},
      dir.file("client.log"));
  const auto status = client.wait(30s);
  EXPECT_TRUE(status.has_value()) << client.log();
  EXPECT_EQ(status.value_or(-1), 0) << client.log() << up.log();
  return client.log();
}

// A user's gRPC service under `prescale up`: its replica is found ready over HTTP/2, the gateway
// relays unary and streaming calls with their trailers and statuses, and the checks keep it in
// service.
TEST(GrpcUpTest, APythonGrpcServiceRunsBehindTheGateway) {
  if (!python_grpc()) {
    GTEST_SKIP() << "needs /usr/bin/python3 with grpc (Debian: python3-grpcio; "
                    "scripts/install-deps installs it)";
  }
  testing::TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, grpc_echo_yaml("    protocol: http2\n"));
  testing::Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {"--ready-wait", "20"}, "up");
  ASSERT_TRUE(up.started()) << up.log();
  const std::string log = call_echo(up, dir);
  EXPECT_NE(log.find("unary echo:hi python"), std::string::npos) << log;
  EXPECT_NE(log.find("stream 0:x 1:x 2:x"), std::string::npos) << log;
  // A bidirectional call whose client waits for each answer before its next message: the
  // gateway passes the messages on as they come (a body read whole would never end).
  EXPECT_NE(log.find("chat re:m0 re:m1 re:m2"), std::string::npos) << log;
  EXPECT_NE(log.find("fail NOT_FOUND no such item: 42"), std::string::npos) << log;
  EXPECT_EQ(up.stop(), 0);
  EXPECT_EQ(up.log().find("unhealthy"), std::string::npos) << up.log();
}

// The same service declared `protocol: grpc`: its replica's readiness, its liveness and the
// gateway's checks ask its health service about prescale.test.Echo, which says SERVING. Asked
// about a name it does not know, the replica is never ready, and the wait says what it answered.
TEST(GrpcUpTest, AServiceWithAHealthServiceIsReadyWhenItSaysServing) {
  if (!python_grpc()) {
    GTEST_SKIP() << "needs /usr/bin/python3 with grpc (Debian: python3-grpcio; "
                    "scripts/install-deps installs it)";
  }
  for (const std::string name : {"prescale.test.Echo", "prescale.test.Nothing"}) {
    SCOPED_TRACE(name);
    const bool known = name == "prescale.test.Echo";
    testing::TempDir dir;
    const std::string config = dir.file("prescale.yaml");
    testing::write_file(config,
                        grpc_echo_yaml("    protocol: grpc\n    grpc_health_service: " + name +
                                       "\n    liveness: {interval: 300ms, timeout: 290ms}\n"));
    testing::Platform up(PRESCALE_BIN, dir, config, dir.file("state"),
                         {"--ready-wait", known ? "20" : "3"}, "up");
    ASSERT_TRUE(up.started()) << up.log();
    if (!known) {
      EXPECT_EQ(up.stop(), 0);
      EXPECT_NE(up.log().find("echo-1 starting for 3 s, not ready yet: "
                              "grpc.health.v1.Health/Check for \"prescale.test.Nothing\" "
                              "answered grpc-status 5 (NOT_FOUND: unknown service "
                              "prescale.test.Nothing)"),
                std::string::npos)
          << up.log();
      continue;
    }
    call_echo(up, dir);
    // A second of liveness checks (every 300 ms) and health checks (every 200 ms).
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(up.stop(), 0);
    EXPECT_EQ(up.log().find("unhealthy"), std::string::npos) << up.log();
    EXPECT_EQ(up.log().find("not alive"), std::string::npos) << up.log();
  }
}

}  // namespace
}  // namespace prescale
