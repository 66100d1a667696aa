#include "worlds/kube/keda_scaler.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "externalscaler.grpc.pb.h"

namespace prescale::kube {
namespace {

using namespace std::chrono_literals;

// The scaler on a free port of 127.0.0.1 for "web" and "db", and KEDA's side: a client of the
// same interface, as KEDA's is generated from it.
struct KedaScalerTest : ::testing::Test {
  void SetUp() override {
    KedaScalerOptions o{
        .address = "127.0.0.1", .port = 0, .services = {"web", "db"}, .name_space = "shop"};
    o.on_call = [this](std::string_view method, std::string_view code) {
      std::lock_guard lock(mu);
      calls.push_back(std::string(method) + " " + std::string(code));
    };
    auto started = KedaScaler::start(std::move(o));
    ASSERT_TRUE(started) << started.error().message;
    scaler = std::move(*started);
    ASSERT_GT(scaler->port(), 0);
    stub = externalscaler::ExternalScaler::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(scaler->port()), grpc::InsecureChannelCredentials()));
  }
  // A ScaledObject `name` whose trigger's metadata names `service` ("": none).
  static externalscaler::ScaledObjectRef ref(const std::string& name, const std::string& service) {
    externalscaler::ScaledObjectRef r;
    r.set_name(name);
    r.set_namespace_("shop");
    if (!service.empty()) (*r.mutable_scalermetadata())["service"] = service;
    return r;
  }
  static std::unique_ptr<grpc::ClientContext> context() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 5s);
    return c;
  }
  grpc::Status metrics(const externalscaler::ScaledObjectRef& r, const std::string& metric,
                       externalscaler::GetMetricsResponse& out) {
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = r;
    request.set_metricname(metric);
    return stub->GetMetrics(context().get(), request, &out);
  }

  std::unique_ptr<KedaScaler> scaler;
  std::unique_ptr<externalscaler::ExternalScaler::Stub> stub;
  std::mutex mu;
  std::vector<std::string> calls;  // guarded by mu
};

// KEDA's HPA asks for ceil(value / target) replicas: the metric is the plan, its target 1.
TEST_F(KedaScalerTest, TheMetricIsThePlannedReplicasAndItsTargetOne) {
  externalscaler::GetMetricSpecResponse spec;
  ASSERT_TRUE(stub->GetMetricSpec(context().get(), ref("web-scaler", "web"), &spec).ok());
  ASSERT_EQ(spec.metricspecs_size(), 1);
  EXPECT_EQ(spec.metricspecs(0).metricname(), "prescale-web");
  EXPECT_EQ(spec.metricspecs(0).targetsizefloat(), 1);
  EXPECT_EQ(spec.metricspecs(0).targetsize(), 1);

  externalscaler::GetMetricsResponse values;
  grpc::Status status = metrics(ref("web-scaler", "web"), "prescale-web", values);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << "no plan yet";
  EXPECT_EQ(status.error_message(),
            "no plan for web yet: the controller has neither decided nor read its Deployment "
            "since it started");

  scaler->publish({{"web", 7}});
  status = metrics(ref("web-scaler", "web"), "prescale-web", values);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(values.metricvalues_size(), 1);
  EXPECT_EQ(values.metricvalues(0).metricname(), "prescale-web");
  EXPECT_EQ(values.metricvalues(0).metricvaluefloat(), 7);
  EXPECT_EQ(values.metricvalues(0).metricvalue(), 7);
  // The ScaledObject's name stands for the service when its metadata names none; a service
  // planned later keeps its last plan meanwhile.
  scaler->publish({{"db", 2}});
  values.Clear();
  ASSERT_TRUE(metrics(ref("web", ""), "", values).ok());
  EXPECT_EQ(values.metricvalues(0).metricvaluefloat(), 7);

  std::lock_guard lock(mu);
  EXPECT_EQ(calls, (std::vector<std::string>{"GetMetricSpec OK", "GetMetrics UNAVAILABLE",
                                             "GetMetrics OK", "GetMetrics OK"}));
}

// What names no service of the file, another's metric, or a ScaledObject of another namespace is
// refused, saying what to set.
TEST_F(KedaScalerTest, AServiceNotInTheFileOrAnotherMetricIsRefusedNamingIt) {
  scaler->publish({{"web", 3}});
  externalscaler::GetMetricsResponse values;
  grpc::Status status = metrics(ref("checkout", ""), "", values);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(),
            "no service \"checkout\" in the controller's prescale.yaml (its services: web, db); "
            "the trigger's metadata `service` names one");
  status = metrics(ref("web-scaler", "web"), "prescale-db", values);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "metric \"prescale-db\" is not web's (\"prescale-web\", as GetMetricSpec said)");
  externalscaler::IsActiveResponse active;
  status = stub->IsActive(context().get(), ref("", ""), &active);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  externalscaler::ScaledObjectRef elsewhere = ref("web", "web");
  elsewhere.set_namespace_("billing");
  status = stub->IsActive(context().get(), elsewhere, &active);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(),
            "the ScaledObject web is in namespace billing; this controller scales namespace shop");
  EXPECT_TRUE(values.metricvalues().empty());
}

// Active while the policy plans a replica: KEDA scales 0 <-> 1 on it. The stream says it at once,
// then at each change only, and ends when the scaler stops.
TEST_F(KedaScalerTest, ActiveWhileAReplicaIsPlannedAndTheStreamSaysEachChange) {
  scaler->publish({{"web", 2}, {"db", 0}});
  externalscaler::IsActiveResponse active;
  ASSERT_TRUE(stub->IsActive(context().get(), ref("web", "web"), &active).ok());
  EXPECT_TRUE(active.result());
  ASSERT_TRUE(stub->IsActive(context().get(), ref("db", "db"), &active).ok());
  EXPECT_FALSE(active.result());

  grpc::ClientContext stream_context;
  stream_context.set_deadline(std::chrono::system_clock::now() + 10s);
  auto stream = stub->StreamIsActive(&stream_context, ref("db", "db"));
  ASSERT_TRUE(stream->Read(&active));
  EXPECT_FALSE(active.result()) << "at once";
  scaler->publish({{"db", 0}, {"web", 3}});  // no change of db's: nothing said
  scaler->publish({{"db", 1}});
  ASSERT_TRUE(stream->Read(&active));
  EXPECT_TRUE(active.result());
  scaler->publish({{"db", 4}});  // still active: nothing said
  scaler->publish({{"db", 0}});
  ASSERT_TRUE(stream->Read(&active));
  EXPECT_FALSE(active.result());
  std::thread stopper([&] { scaler->stop(); });
  EXPECT_FALSE(stream->Read(&active)) << "the stream ends with the scaler";
  const grpc::Status status = stream->Finish();
  stopper.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

// A port taken is said, naming the address.
TEST(KedaScaler, APortTakenIsSaid) {
  auto first = KedaScaler::start({.address = "127.0.0.1", .port = 0, .services = {"web"}});
  ASSERT_TRUE(first) << first.error().message;
  const int port = (*first)->port();
  auto second = KedaScaler::start({.address = "127.0.0.1", .port = port, .services = {"web"}});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message,
            "the KEDA external scaler cannot listen on 127.0.0.1:" + std::to_string(port) +
                " (the port taken, or the address not this host's)");
}

}  // namespace
}  // namespace prescale::kube
