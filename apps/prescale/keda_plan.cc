#include "keda_plan.h"

#include <algorithm>
#include <utility>

namespace prescale {

KedaPlan::KedaPlan(const std::vector<scaling::ServiceSpec>& services) {
  for (const scaling::ServiceSpec& s : services) {
    bounds_[s.name] = {s.min_replicas, s.max_replicas};
  }
}

void KedaPlan::decided(const scaling::Plan& plan) {
  planned_.clear();
  for (const scaling::Decision& d : plan.decisions) {
    const auto bounds = bounds_.find(d.service);
    planned_[d.service] = bounds == bounds_.end()
                              ? d.replicas
                              : std::clamp(d.replicas, bounds->second.first, bounds->second.second);
  }
}

std::map<std::string, int> KedaPlan::published(const scaling::Snapshot& snapshot) {
  std::map<std::string, int> out;
  for (const scaling::ServiceObservation& s : snapshot.services) {
    if (const auto p = planned_.find(s.name); p != planned_.end()) {
      out[s.name] = p->second;
    } else if (s.desired_replicas > 0) {
      out[s.name] = s.desired_replicas;
    }
    if (const auto said = said_.find(s.name);
        said != said_.end() && said->second == s.desired_replicas) {
      said_.erase(said);
    }
  }
  return out;
}

std::vector<control::Event> KedaPlan::to_say(std::vector<control::Event> events) {
  std::erase_if(events, [&](const control::Event& e) {
    auto [said, added] = said_.try_emplace(e.service, e.to_replicas);
    if (added) return false;
    return std::exchange(said->second, e.to_replicas) == e.to_replicas;
  });
  return events;
}

}  // namespace prescale
