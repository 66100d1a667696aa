// PodTimeline: what happened to the services' pods between two looks of `prescale controller` at
// the cluster, for its dashboard's timeline and its incidents' causes — what `prescale up`'s
// supervisor tells of its replicas: a pod created ("start"), ready ("ready"), out of service (not
// ready any more, or being deleted: "drain"), gone ("stop"), restarted in place ("crash") or
// taken out of a gateway's service by its outlier detection or its failure-rate breaker
// ("eject"). The pods there at the first look started
// before the controller: they are not told.
//
// Thread safety: one thread calls everything.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "scaling/observation.h"

namespace prescale {

struct PodEvent {
  std::string kind;  // "start", "ready", "drain", "stop", "crash", "eject"
  std::string service;
  std::string pod;
  std::string message;
};

class PodTimeline {
 public:
  // One look: `snapshot` is the world's observation (each service's pods and their states);
  // `restarted` the pods whose container restarted since the last look (KubeWorld::
  // take_restarted, once per restart), `ejections` the (service, pod) pairs a gateway ejected
  // (KubeWorld::take_ejections), `breaker_openings` those whose breaker a gateway opened
  // (KubeWorld::take_breaker_openings); `stale`: the list of pods behind the snapshot is stale
  // (or none was read yet), so only the restarts, ejections and openings are told, and the pods
  // are compared at the next look that is not. Events pod by pod (a start, then its readiness),
  // then the pods gone, then the restarts, ejections and openings.
  using ServicePods = std::vector<std::pair<std::string, std::string>>;
  std::vector<PodEvent> look(const scaling::Snapshot& snapshot,
                             const std::vector<std::string>& restarted,
                             const ServicePods& ejections, const ServicePods& breaker_openings = {},
                             bool stale = false);

 private:
  struct Seen {
    std::string service;
    scaling::ReplicaState state;
  };
  std::map<std::string, Seen> pods_;  // by pod name, at the last look
  bool looked_ = false;
};

}  // namespace prescale
