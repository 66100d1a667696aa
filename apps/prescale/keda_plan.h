// KedaPlan: what `prescale controller --keda-port` hands KEDA's external scaler
// (kube::KedaScaler) and says of it (docs/kubernetes.md, "KEDA"). KEDA's HorizontalPodAutoscaler,
// not the controller, scales the Deployments then, a sync or more after each plan:
//   - published(): each service's replicas as the policy's last plan has them, within the
//     service's bounds (as the controller would scale it); a service the last plan left alone
//     (the policy's target is what it has), or before the first plan, the replicas it has;
//   - to_say(): the controller's events (a plan against a Deployment not there yet) once per
//     planned count, not at every period that finds the Deployment behind; a count the
//     Deployment reached is said again when planned again later.
//
// Thread safety: one thread (the controller's) calls everything.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "control/event.h"
#include "scaling/observation.h"
#include "scaling/policy.h"

namespace prescale {

class KedaPlan {
 public:
  explicit KedaPlan(const std::vector<scaling::ServiceSpec>& services);

  // The policy decided this tick.
  void decided(const scaling::Plan& plan);
  // The service's bounds changed (the controller's file reloaded): the next plan is bounded by
  // them. (KEDA's own HorizontalPodAutoscaler keeps the ScaledObject's until it is applied anew.)
  void respec(const scaling::ServiceSpec& spec) {
    bounds_[spec.name] = {spec.min_replicas, spec.max_replicas};
  }
  // What KEDA reads after the look that made `snapshot`; services with no count yet (none
  // planned, none read) are left out.
  std::map<std::string, int> published(const scaling::Snapshot& snapshot);
  // The events of the tick worth saying (and counting).
  std::vector<control::Event> to_say(std::vector<control::Event> events);

 private:
  std::map<std::string, std::pair<int, int>> bounds_;  // by service: min, max replicas
  std::map<std::string, int> planned_;                 // the last plan's decisions, bounded
  std::map<std::string, int> said_;                    // by service: the count last said
};

}  // namespace prescale
