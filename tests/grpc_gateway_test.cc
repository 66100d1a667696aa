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
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "externalscaler.grpc.pb.h"
#include "gateway/balancer.h"
#include "gateway/cluster.h"
#include "gateway/gateway.h"
#include "http/client.h"
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

// A user's gRPC service under `prescale up`: its replica is found ready over HTTP/2, the gateway
// relays unary and streaming calls with their trailers and statuses, and the checks keep it in
// service.
TEST(GrpcUpTest, APythonGrpcServiceRunsBehindTheGateway) {
  if (access("/usr/bin/python3", X_OK) != 0 ||
      std::system("/usr/bin/python3 -c 'import grpc' 2>/dev/null") != 0) {
    GTEST_SKIP() << "needs /usr/bin/python3 with grpc (Debian: python3-grpcio; "
                    "scripts/install-deps installs it)";
  }
  testing::TempDir dir;
  const std::string config = dir.file("prescale.yaml");
  testing::write_file(config, R"(version: 1
services:
  - name: echo
    kind: command
    command: [/usr/bin/python3, )" + std::string(GRPC_ECHO) + R"(, serve, "{port}"]
    protocol: http2
    replicas: {min: 1, max: 1, initial: 1}
    startup_time: 2s
gateway:
  listen: "127.0.0.1:0"
  health_check: {interval: 200ms, timeout: 190ms, unhealthy_threshold: 2}
)");
  testing::Platform up(PRESCALE_BIN, dir, config, dir.file("state"), {"--ready-wait", "20"},
                       "up");
  ASSERT_TRUE(up.started()) << up.log();
  testing::Subprocess client(
      {"/usr/bin/python3", GRPC_ECHO, "call", "127.0.0.1:" + std::to_string(up.gateway_port())},
      dir.file("client.log"));
  const auto status = client.wait(30s);
  ASSERT_TRUE(status.has_value()) << client.log();
  EXPECT_EQ(*status, 0) << client.log() << up.log();
  EXPECT_NE(client.log().find("unary echo:hi python"), std::string::npos) << client.log();
  EXPECT_NE(client.log().find("stream 0:x 1:x 2:x"), std::string::npos) << client.log();
  EXPECT_NE(client.log().find("fail NOT_FOUND no such item: 42"), std::string::npos)
      << client.log();
  EXPECT_EQ(up.stop(), 0);
  EXPECT_EQ(up.log().find("unhealthy"), std::string::npos) << up.log();
}

}  // namespace
}  // namespace prescale
