// Admission control that follows what the replicas are learned to sustain (prescale up): each
// service's requests in flight per replica in service become what its learned capacity starts
// within its queue_limit — the file's capacity_rps is only the seed. The capacity is a moving
// average, so the number changes only once the capacity has moved kCapacityStep from the one it
// was set for: it must not flap between two integers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace prescale {
namespace gateway {
class Gateway;
}
namespace scaling {
class CapacityModel;
}

class LearnedAdmission {
 public:
  static constexpr double kCapacityStep = 0.1;

  // The limits in force at start: each service's from its capacity_rps seed; services without an
  // admission limit (queue_limit: 0) are left alone throughout.
  explicit LearnedAdmission(const std::vector<ServiceConfig>& services);

  // The requests per replica a learned capacity asks for, when it should replace the number in
  // force (and records it as in force); nullopt when it should not: an unknown service or one
  // without a limit, a capacity that is 0 (even an idle replica misses the SLO at the learned
  // service time — refusing nearly everything would not help it) or not finite, or one within
  // kCapacityStep of the capacity the number in force was computed from.
  std::optional<int> update(std::string_view service, double learned_capacity_rps);

  // After each decision: every service's number from `capacity`, applied to `gw` where it changed
  // (logged).
  void follow(gateway::Gateway& gw, const scaling::CapacityModel& capacity);

  // The number in force; 0 for a service without an admission limit.
  int per_replica(std::string_view service) const;

 private:
  struct InForce {
    ServiceConfig service;
    int per_replica = 0;
    double capacity_rps = 0;  // what it was computed from
  };
  std::map<std::string, InForce, std::less<>> in_force_;
};

}  // namespace prescale
