// Admission control that follows what the replicas are learned to sustain (prescale up): each
// service's requests in flight per replica in service become what its learned capacity starts
// within its queue_limit — the file's capacity_rps is only the seed. The capacity is a moving
// average, so the number changes only once the capacity has moved kCapacityStep from the one it
// was set for: it must not flap between two integers.
//
// Thread safety: none; the controller's loop drives it.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace prescale {

class LearnedAdmission {
 public:
  static constexpr double kCapacityStep = 0.1;

  // A service's learned capacity per replica, req/s (scaling::CapacityModel::capacity_rps).
  using CapacityOf = std::function<double(std::string_view service)>;
  // Puts a number of requests per replica in force
  // (gateway::Gateway::set_max_requests_per_replica).
  using Apply = std::function<Result<void>(std::string_view service, int per_replica)>;

  // The limits in force at start: each service's from its capacity_rps seed; services without an
  // admission limit (queue_limit: 0) are left alone throughout.
  explicit LearnedAdmission(const std::vector<ServiceConfig>& services);

  // After each decision: every service's number from its learned capacity, applied (and logged)
  // where it changed. A capacity of 0 (even an idle replica misses the SLO at the learned service
  // time — refusing nearly everything would not help it) or not finite changes nothing, nor does
  // one within kCapacityStep of the capacity the number in force was computed from. A number
  // `apply` refuses is not in force: the next call tries again.
  void follow(const CapacityOf& capacity, const Apply& apply);
  // The file was reloaded with new settings for `services` (prescale up; their SLO, seeds or
  // queue limit changed): each one's number from its new queue_limit (or SLO, which the
  // automatic limit is half of) at `capacity` (the policy's capacity at the new SLO: the new seed
  // until one is learned) where that is a number > 0; otherwise at the capacity learned so far,
  // or at the new capacity_rps seed while nothing was learned. A service whose queue_limit is
  // now 0 is left alone from now on. Nothing is applied here: the caller puts per_replica() in
  // force, as after a start.
  // A service it does not know (one a reload added) is taken the same way.
  void respec(const std::vector<ServiceConfig>& services, const CapacityOf& capacity);
  // A service a reload removed: what was learned of it goes.
  void forget(std::string_view service);

  // The number in force; 0 for a service without an admission limit.
  int per_replica(std::string_view service) const;
  // The capacity per replica that number was computed from; 0 for a service without a limit.
  double capacity_rps(std::string_view service) const;

 private:
  struct InForce {
    ServiceConfig service;
    int per_replica = 0;
    double capacity_rps = 0;  // what it was computed from
    bool learned = false;     // capacity_rps is a learned capacity, not the file's seed
  };
  std::map<std::string, InForce, std::less<>> in_force_;
};

}  // namespace prescale
