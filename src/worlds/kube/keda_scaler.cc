#include "worlds/kube/keda_scaler.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "externalscaler.grpc.pb.h"

namespace prescale::kube {
namespace {

std::string code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    default:
      return std::to_string(static_cast<int>(code));
  }
}

}  // namespace

struct KedaScaler::Impl final : externalscaler::ExternalScaler::Service {
  explicit Impl(KedaScalerOptions o) : options(std::move(o)) {}

  // The service a ScaledObject's trigger means: its metadata's `service`, else its own name.
  grpc::Status service_of(const externalscaler::ScaledObjectRef& ref, std::string& out) const {
    const auto named = ref.scalermetadata().find("service");
    out = named != ref.scalermetadata().end() ? named->second : ref.name();
    if (out.empty()) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "no service named: set the trigger's metadata `service` (a service of the "
              "controller's prescale.yaml)"};
    }
    if (!options.name_space.empty() && !ref.namespace_().empty() &&
        ref.namespace_() != options.name_space) {
      return {grpc::StatusCode::NOT_FOUND,
              "the ScaledObject " + ref.name() + " is in namespace " + ref.namespace_() +
                  "; this controller scales namespace " + options.name_space};
    }
    if (std::find(options.services.begin(), options.services.end(), out) ==
        options.services.end()) {
      std::string known;
      for (const std::string& s : options.services) known += (known.empty() ? "" : ", ") + s;
      return {grpc::StatusCode::NOT_FOUND,
              "no service \"" + out + "\" in the controller's prescale.yaml (its services: " +
                  known + "); the trigger's metadata `service` names one"};
    }
    return grpc::Status::OK;
  }
  // The replicas planned for `service`, or UNAVAILABLE before the policy's first decision.
  grpc::Status planned_for(const std::string& service, int& out) const {
    std::lock_guard lock(mu);
    const auto it = planned.find(service);
    if (it == planned.end()) {
      return {grpc::StatusCode::UNAVAILABLE,
              "no plan for " + service +
                  " yet: the controller has neither decided nor read its Deployment since it "
                  "started"};
    }
    out = it->second;
    return grpc::Status::OK;
  }
  grpc::Status said(std::string_view method, grpc::Status status) const {
    if (options.on_call) options.on_call(method, code_name(status.error_code()));
    return status;
  }

  grpc::Status IsActive(grpc::ServerContext*, const externalscaler::ScaledObjectRef* request,
                        externalscaler::IsActiveResponse* response) override {
    std::string service;
    int replicas = 0;
    grpc::Status status = service_of(*request, service);
    if (status.ok()) status = planned_for(service, replicas);
    if (status.ok()) response->set_result(replicas > 0);
    return said("IsActive", status);
  }

  grpc::Status StreamIsActive(
      grpc::ServerContext* context, const externalscaler::ScaledObjectRef* request,
      grpc::ServerWriter<externalscaler::IsActiveResponse>* writer) override {
    std::string service;
    if (grpc::Status status = service_of(*request, service); !status.ok()) {
      return said("StreamIsActive", status);
    }
    // What it last said; checked at each change, and each second for a client gone.
    std::optional<bool> sent;
    std::unique_lock lock(mu);
    while (!stopping && !context->IsCancelled()) {
      const auto it = planned.find(service);
      if (it != planned.end() && sent != (it->second > 0)) {
        const bool active = it->second > 0;
        lock.unlock();
        externalscaler::IsActiveResponse response;
        response.set_result(active);
        if (!writer->Write(response)) return said("StreamIsActive", grpc::Status::CANCELLED);
        sent = active;
        lock.lock();
        continue;
      }
      changed.wait_for(lock, std::chrono::seconds(1));
    }
    return said("StreamIsActive",
                stopping ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "the controller stops")
                         : grpc::Status::CANCELLED);
  }

  grpc::Status GetMetricSpec(grpc::ServerContext*, const externalscaler::ScaledObjectRef* request,
                             externalscaler::GetMetricSpecResponse* response) override {
    std::string service;
    grpc::Status status = service_of(*request, service);
    if (status.ok()) {
      externalscaler::MetricSpec* spec = response->add_metricspecs();
      spec->set_metricname("prescale-" + service);
      spec->set_targetsize(1);
      spec->set_targetsizefloat(1);
    }
    return said("GetMetricSpec", status);
  }

  grpc::Status GetMetrics(grpc::ServerContext*, const externalscaler::GetMetricsRequest* request,
                          externalscaler::GetMetricsResponse* response) override {
    std::string service;
    int replicas = 0;
    grpc::Status status = service_of(request->scaledobjectref(), service);
    const std::string metric = "prescale-" + service;
    if (status.ok() && !request->metricname().empty() && request->metricname() != metric) {
      status = {grpc::StatusCode::INVALID_ARGUMENT, "metric \"" + request->metricname() +
                                                        "\" is not " + service + "'s (\"" + metric +
                                                        "\", as GetMetricSpec said)"};
    }
    if (status.ok()) status = planned_for(service, replicas);
    if (status.ok()) {
      externalscaler::MetricValue* value = response->add_metricvalues();
      value->set_metricname(metric);
      value->set_metricvalue(replicas);
      value->set_metricvaluefloat(replicas);
    }
    return said("GetMetrics", status);
  }

  const KedaScalerOptions options;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  mutable std::mutex mu;
  std::condition_variable changed;     // planned or stopping changed
  std::map<std::string, int> planned;  // guarded by mu
  bool stopping = false;               // guarded by mu
};

KedaScaler::KedaScaler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KedaScaler::~KedaScaler() { stop(); }

Result<std::unique_ptr<KedaScaler>> KedaScaler::start(KedaScalerOptions options) {
  const std::string host = options.address.find(':') != std::string::npos
                               ? "[" + options.address + "]"
                               : options.address;
  const std::string address = host + ":" + std::to_string(options.port);
  auto impl = std::make_unique<Impl>(std::move(options));
  grpc::ServerBuilder builder;
  // gRPC binds with SO_REUSEPORT by default: a second controller on the same port would then
  // share KEDA's calls with this one rather than fail.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl->port);
  builder.RegisterService(impl.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return make_error(ErrorCode::kUnavailable,
                      "the KEDA external scaler cannot listen on " + address +
                          " (the port taken, or the address not this host's)");
  }
  return std::unique_ptr<KedaScaler>(new KedaScaler(std::move(impl)));
}

int KedaScaler::port() const { return impl_->port; }

void KedaScaler::publish(const std::map<std::string, int>& planned) {
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [service, replicas] : planned) impl_->planned[service] = replicas;
  }
  impl_->changed.notify_all();
}

void KedaScaler::stop() {
  if (impl_->server == nullptr) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->changed.notify_all();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace prescale::kube
