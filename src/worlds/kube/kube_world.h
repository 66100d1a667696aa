// KubeWorld: the controller's World on a Kubernetes cluster, for the manifests `prescale render
// kubernetes` writes (docs/kubernetes.md). Each service is a Deployment of its name; the gateway's
// pods are labelled app.kubernetes.io/name=prescale-gateway. observe() reads:
//   replicas   the pods labelled app.kubernetes.io/part-of=prescale, one list per observation:
//              ready when their Ready condition is True (ready since its lastTransitionTime),
//              draining once deleted (metadata.deletionTimestamp), starting otherwise; a pod that
//              has finished (phase Succeeded or Failed) no longer costs and is left out;
//   requests   every gateway pod's /metrics (its container port named "admin"), at every
//              observation, as gateway_traffic.h reads them; each pod's counters grow on their
//              own, a restarted pod's from zero, and the gateways' growth adds up;
//   CPU, memory  each ready pod's /metrics (its port named "http": process_cpu_seconds_total,
//              process_resident_memory_bytes), once a scrape_interval;
//   desired    the Deployments' spec.replicas, once a scrape_interval, and what scale() set.
// scale() patches the Deployment's scale subresource; restart() deletes the pod, and the
// Deployment starts another. The controller's clock is the cluster's: timestamps are wall-clock
// times, placed on the controller's monotonic axis by the clock's wall_now().
//
// An observation the API does not answer keeps the last one's replicas (said once per change of
// problem, through `on_problem`); a gateway pod that does not answer its scrape counts its
// growth at the next one that does.
//
// Thread safety: one thread calls everything.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "control/world.h"
#include "core/clock.h"
#include "scaling/policy.h"

namespace prescale::kube {

class ApiClient;

struct KubeWorldOptions {
  Clock* clock = &Clock::real();
  std::chrono::milliseconds scrape_timeout{1000};
  // The gateway's route labels and the service each leads to (Gateway::route_services() of the
  // same file).
  std::map<std::string, std::string> route_service;
  // What each observation's request figures cover (LocalWorldOptions::metric_window).
  Clock::Duration metric_window = std::chrono::seconds(30);
  // How often the pods' /metrics and the Deployments are read; the observations between read
  // the pods and the gateways only. 0: every observation.
  Clock::Duration scrape_interval = std::chrono::seconds(5);
  // app.kubernetes.io/name of the gateway's pods.
  std::string gateway_name = "prescale-gateway";
  // Problems reading the cluster (an API error, a gateway that does not answer), each said when
  // it starts and when it ends; spdlog's warn when unset.
  std::function<void(const std::string&)> on_problem;
};

class KubeWorld final : public control::World {
 public:
  // `api` is the client of the namespace the manifests were applied in (its config().name_space;
  // "default" when it names none); it must outlive this.
  KubeWorld(ApiClient& api, std::vector<scaling::ServiceSpec> services,
            KubeWorldOptions options = {});
  ~KubeWorld() override;

  const scaling::Snapshot& observe(Clock::TimePoint now) override;
  // Errors: kNotFound (unknown service, or no Deployment of its name), kOutOfRange (outside the
  // service's bounds), the API's own errors.
  Result<void> scale(std::string_view service, int replicas) override;
  // Deletes the pod named `replica_id`. Errors: the API's (kNotFound for a pod gone already).
  Result<void> restart(std::string_view replica_id) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace prescale::kube
