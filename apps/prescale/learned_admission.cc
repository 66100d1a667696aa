#include "learned_admission.h"

#include <spdlog/spdlog.h>

#include <cmath>

namespace prescale {

LearnedAdmission::LearnedAdmission(const std::vector<ServiceConfig>& services) {
  for (const ServiceConfig& s : services) {
    if (const int n = s.max_requests_per_replica(); n > 0) {
      in_force_[s.name] = {s, n, s.capacity_rps};
    }
  }
}

void LearnedAdmission::follow(const CapacityOf& capacity, const Apply& apply) {
  for (auto& [name, f] : in_force_) {
    const double learned = capacity(name);
    if (!(learned > 0) || !std::isfinite(learned)) continue;
    if (std::abs(learned / f.capacity_rps - 1) < kCapacityStep) continue;
    const int n = f.service.max_requests_per_replica_at(learned);
    if (n != f.per_replica) {
      if (auto applied = apply(name, n); !applied) {
        spdlog::warn("admission limit of {}: {}", name, applied.error().message);
        continue;
      }
      spdlog::info(
          "{}: admission limit {} requests in flight per replica (learned capacity "
          "{:.1f} req/s, queue limit {} ms)",
          name, n, learned, f.service.effective_queue_limit().count());
    }
    f.per_replica = n;
    f.capacity_rps = learned;
    f.learned = true;
  }
}

void LearnedAdmission::respec(const std::vector<ServiceConfig>& services,
                              const CapacityOf& capacity) {
  for (const ServiceConfig& s : services) {
    if (s.max_requests_per_replica() <= 0) {  // no admission limit now
      in_force_.erase(s.name);
      continue;
    }
    auto [it, added] = in_force_.try_emplace(s.name);
    InForce& f = it->second;
    f.service = s;
    if (const double now = capacity(s.name); now > 0 && std::isfinite(now)) {
      f.capacity_rps = now;
    } else if (added || !f.learned) {
      f.capacity_rps = s.capacity_rps;
    }
    f.per_replica = s.max_requests_per_replica_at(f.capacity_rps);
  }
}

void LearnedAdmission::forget(std::string_view service) {
  if (auto it = in_force_.find(service); it != in_force_.end()) in_force_.erase(it);
}

int LearnedAdmission::per_replica(std::string_view service) const {
  auto it = in_force_.find(service);
  return it == in_force_.end() ? 0 : it->second.per_replica;
}

double LearnedAdmission::capacity_rps(std::string_view service) const {
  auto it = in_force_.find(service);
  return it == in_force_.end() ? 0 : it->second.capacity_rps;
}

}  // namespace prescale
