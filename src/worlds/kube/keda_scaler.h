// KedaScaler: KEDA's external scaler interface (gRPC, externalscaler.proto), served from the
// controller's plan, so that a cluster that scales with KEDA scales its Deployments to what the
// policy plans (docs/kubernetes.md, "KEDA"). A ScaledObject's trigger of type `external` (or
// `external-push`) names the service in its metadata (`service: web`; without it, the
// ScaledObject's own name). For that service:
//   - GetMetricSpec: the metric `prescale-<service>`, target 1 per replica;
//   - GetMetrics: the replicas the policy plans for it, so that KEDA's HorizontalPodAutoscaler
//     (desired = ceil(value / target)) asks for the planned count;
//   - IsActive: whether it plans any replica (KEDA scales 0 <-> 1 on it); StreamIsActive says it
//     at once and again at each change.
// A service the controller's file does not have is NOT_FOUND; one with nothing published yet
// UNAVAILABLE: KEDA keeps the Deployment as it is then, or applies its ScaledObject's `fallback`.
// (The controller publishes, before the policy's first decision, the replicas the Deployment has.)
//
// The gRPC server runs on threads of its own; publish() is called from the controller's.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prescale::kube {

struct KedaScalerOptions {
  std::string address = "0.0.0.0";    // an IPv6 one without brackets ("::")
  int port = 9903;                    // 0: a free one (port() tells which)
  std::vector<std::string> services;  // those it answers for: the controller's file's
  // The controller's namespace: a ScaledObject of another one is not its ("": any).
  std::string name_space = {};
  // Called after each call, on a gRPC thread: the method ("GetMetrics") and the status code's
  // name ("OK", "NOT_FOUND"), for the controller's metrics.
  std::function<void(std::string_view method, std::string_view code)> on_call = {};
};

class KedaScaler {
 public:
  // Listens; kUnavailable (naming the address) when it cannot.
  static Result<std::unique_ptr<KedaScaler>> start(KedaScalerOptions options);
  ~KedaScaler();  // stop()
  KedaScaler(const KedaScaler&) = delete;
  KedaScaler& operator=(const KedaScaler&) = delete;

  int port() const;
  // The policy's latest decisions: replicas by service. A service not in it keeps its last.
  void publish(const std::map<std::string, int>& planned);
  // Ends the open streams (UNAVAILABLE: KEDA reconnects to the next controller) and the server,
  // waiting up to a second for calls in flight.
  void stop();

 private:
  struct Impl;
  explicit KedaScaler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace prescale::kube
