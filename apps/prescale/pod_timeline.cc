#include "pod_timeline.h"

namespace prescale {

std::vector<PodEvent> PodTimeline::look(const scaling::Snapshot& snapshot,
                                        const std::vector<std::string>& restarted,
                                        const ServicePods& ejections,
                                        const ServicePods& breaker_openings, bool stale) {
  using scaling::ReplicaState;
  std::vector<PodEvent> events;
  std::map<std::string, Seen> now;
  for (const scaling::ServiceObservation& s : snapshot.services) {
    for (const scaling::ReplicaObservation& r : s.replicas) {
      now[r.id] = {s.name, r.state};
      if (!looked_ || stale) continue;
      const auto before = pods_.find(r.id);
      if (before == pods_.end()) {
        events.push_back({"start", s.name, r.id, "pod created"});
        if (r.state == ReplicaState::kReady) events.push_back({"ready", s.name, r.id, "ready"});
        continue;
      }
      if (r.state == before->second.state) continue;
      if (r.state == ReplicaState::kReady) {
        events.push_back({"ready", s.name, r.id, "ready"});
      } else if (r.state == ReplicaState::kDraining &&
                 before->second.state == ReplicaState::kReady) {
        events.push_back({"drain", s.name, r.id, "out of service: not ready, or being deleted"});
      }
    }
  }
  if (looked_ && !stale) {
    for (const auto& [pod, seen] : pods_) {
      if (!now.contains(pod)) events.push_back({"stop", seen.service, pod, "pod gone"});
    }
  }
  for (const std::string& pod : restarted) {
    // Among the pods of this look, or of the last one when this one's list is stale.
    const auto at = now.find(pod);
    const auto before = pods_.find(pod);
    const Seen* seen = at != now.end()                  ? &at->second
                       : stale && before != pods_.end() ? &before->second
                                                        : nullptr;
    if (seen == nullptr) continue;
    events.push_back({"crash", seen->service, pod, "its container restarted"});
  }
  for (const auto& [service, pod] : ejections) {
    events.push_back({"eject", service, pod, "ejected by a gateway's outlier detection"});
  }
  for (const auto& [service, pod] : breaker_openings) {
    events.push_back({"eject", service, pod,
                      "its requests failed too often: a gateway's circuit breaker opened"});
  }
  if (!stale) {
    pods_ = std::move(now);
    looked_ = true;
  }
  return events;
}

}  // namespace prescale
