#include "control/controller.h"

#include <algorithm>
#include <string>

namespace prescale::control {

Controller::Controller(World& world, scaling::Policy& policy,
                       std::vector<scaling::ServiceSpec> services, Clock& clock)
    : world_(world), policy_(policy), services_(std::move(services)), clock_(clock) {
  policy_.init(services_);
}

std::optional<scaling::Plan> Controller::tick() {
  const Clock::TimePoint now = clock_.now();
  const bool decide = !next_decision_ || now >= *next_decision_;
  const bool observe = !next_observation_ || now >= *next_observation_;
  if (!decide && !observe) return std::nullopt;
  last_ = &world_.observe(now);
  policy_.observe(*last_);
  next_observation_ = now + policy_.observe_interval();
  if (!decide && !policy_.decide_early(*last_)) return std::nullopt;
  next_decision_ = now + policy_.period();
  scaling::Plan plan = policy_.decide(*last_, now);
  apply(plan);
  return plan;
}

Result<void> Controller::set_replica_bounds(std::string_view service, int min_replicas,
                                            int max_replicas) {
  auto spec = std::find_if(services_.begin(), services_.end(),
                           [&](const scaling::ServiceSpec& s) { return s.name == service; });
  if (spec == services_.end()) {
    return make_error(ErrorCode::kNotFound, "no service named " + std::string(service));
  }
  if (auto valid = check_replica_bounds(service, min_replicas, max_replicas); !valid) return valid;
  if (auto set = world_.set_replica_bounds(service, min_replicas, max_replicas); !set) return set;
  spec->min_replicas = min_replicas;
  spec->max_replicas = max_replicas;
  policy_.set_replica_bounds(service, min_replicas, max_replicas);
  rebounded_.insert(spec->name);
  next_decision_.reset();  // decide at the next tick
  return {};
}

void Controller::apply(const scaling::Plan& plan) {
  for (const auto& d : plan.decisions) {
    auto spec = std::find_if(services_.begin(), services_.end(),
                             [&](const scaling::ServiceSpec& s) { return s.name == d.service; });
    if (spec == services_.end()) continue;
    const int target = std::clamp(d.replicas, spec->min_replicas, spec->max_replicas);
    const scaling::ServiceObservation* seen = last_->service(d.service);
    const int current = seen ? seen->desired_replicas : -1;
    if (target == current) {
      rebounded_.erase(d.service);  // within the new bounds
      continue;
    }
    if (world_.scale(d.service, target)) {
      rebounded_.erase(d.service);
      std::string reason = d.reason;
      if (target != d.replicas) {
        reason += "; clamped to [" + std::to_string(spec->min_replicas) + ", " +
                  std::to_string(spec->max_replicas) + "]";
      }
      events_.push_back(Event{plan.time, d.service, current, target, std::move(reason)});
    }
  }
  // A service whose bounds changed and that the policy made no decision for (Knative's unchanged
  // count, a static plan): its count is brought within the new bounds, until that succeeds.
  for (auto it = rebounded_.begin(); it != rebounded_.end();) {
    auto spec = std::find_if(services_.begin(), services_.end(),
                             [&](const scaling::ServiceSpec& s) { return s.name == *it; });
    const scaling::ServiceObservation* seen = last_->service(*it);
    if (spec == services_.end() || seen == nullptr) {
      ++it;  // not observed yet
      continue;
    }
    const int current = seen->desired_replicas;
    const int target = std::clamp(current, spec->min_replicas, spec->max_replicas);
    if (target != current) {
      if (!world_.scale(*it, target)) {
        ++it;  // tried again at the next decision
        continue;
      }
      events_.push_back(Event{plan.time, *it, current, target,
                              "replicas outside [" + std::to_string(spec->min_replicas) + ", " +
                                  std::to_string(spec->max_replicas) + "] (changed): clamped to " +
                                  std::to_string(target)});
    }
    it = rebounded_.erase(it);
  }
}

}  // namespace prescale::control

namespace prescale::control {

Clock::TimePoint Controller::next_tick() const {
  if (!next_decision_ || !next_observation_) return clock_.now();
  return std::min(*next_decision_, *next_observation_);
}

}  // namespace prescale::control
