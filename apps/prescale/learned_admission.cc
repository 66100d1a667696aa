#include "learned_admission.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdint>

#include "gateway/gateway.h"
#include "scaling/capacity_model.h"

namespace prescale {

LearnedAdmission::LearnedAdmission(const std::vector<ServiceConfig>& services) {
  for (const ServiceConfig& s : services) {
    if (const int n = s.max_requests_per_replica(); n > 0) {
      in_force_[s.name] = {s, n, s.capacity_rps};
    }
  }
}

std::optional<int> LearnedAdmission::update(std::string_view service, double learned_capacity_rps) {
  auto it = in_force_.find(service);
  if (it == in_force_.end()) return std::nullopt;
  InForce& f = it->second;
  if (!(learned_capacity_rps > 0) || !std::isfinite(learned_capacity_rps)) return std::nullopt;
  if (std::abs(learned_capacity_rps / f.capacity_rps - 1) < kCapacityStep) return std::nullopt;
  f.capacity_rps = learned_capacity_rps;
  const int n = f.service.max_requests_per_replica_at(learned_capacity_rps);
  if (n == f.per_replica) return std::nullopt;
  f.per_replica = n;
  return n;
}

void LearnedAdmission::follow(gateway::Gateway& gw, const scaling::CapacityModel& capacity) {
  for (auto& [name, f] : in_force_) {
    const double learned = capacity.capacity_rps(name);
    const int per_replica = f.per_replica;
    const double capacity_rps = f.capacity_rps;
    const std::optional<int> n = update(name, learned);
    if (!n) continue;
    if (auto set = gw.set_max_requests_per_replica(name, static_cast<std::uint32_t>(*n)); !set) {
      spdlog::warn("admission limit of {}: {}", name, set.error().message);
      f.per_replica = per_replica;  // not in force: the next decision tries again
      f.capacity_rps = capacity_rps;
      continue;
    }
    spdlog::info(
        "{}: admission limit {} requests in flight per replica (learned capacity "
        "{:.1f} req/s, queue limit {} ms)",
        name, *n, learned, f.service.effective_queue_limit().count());
  }
}

int LearnedAdmission::per_replica(std::string_view service) const {
  auto it = in_force_.find(service);
  return it == in_force_.end() ? 0 : it->second.per_replica;
}

}  // namespace prescale
