// ReplicaMetrics: what `prescale up` says of its replicas at the controller's /metrics
// (docs/local.md, "Metrics of the platform"): each running replica's memory and limit, each
// service's revision, and its rolling updates by result.
//
// Replicas come and go (every restart of a crashed one keeps its id, a scale-up adds new ones):
// their series are made at each scrape from the last look, so a replica that has left leaves
// the scrape too, and the registry keeps no series for it.
//
// Thread safety: look() and count() from the platform's thread; scrapes from any.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "telemetry/registry.h"
#include "worlds/local/supervisor.h"

namespace prescale {

class ReplicaMetrics {
 public:
  // Registers its families in `registry`, which must outlive it (its collector holds this
  // object: it must outlive the registry's scrapes too).
  explicit ReplicaMetrics(telemetry::Registry& registry);
  ReplicaMetrics(const ReplicaMetrics&) = delete;
  ReplicaMetrics& operator=(const ReplicaMetrics&) = delete;

  struct Service {
    std::string name;
    int revision = 1;
    std::vector<local::ReplicaStatus> replicas;
  };
  // The supervisor's services and replicas as of now (Supervisor::replicas(), rollout()).
  void look(const std::vector<Service>& services);
  // A supervisor event: "rolled-out" and "rollback" count in prescale_rollouts_total.
  void count(const local::ReplicaEvent& event);

 private:
  void collect(std::vector<telemetry::FamilySnapshot>& out) const;

  telemetry::CounterFamily& rollouts_;
  mutable std::mutex mu_;
  std::vector<Service> services_;  // the last look
};

}  // namespace prescale
