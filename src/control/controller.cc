#include "control/controller.h"

#include <algorithm>

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

void Controller::apply(const scaling::Plan& plan) {
  for (const auto& d : plan.decisions) {
    auto spec = std::find_if(services_.begin(), services_.end(),
                             [&](const scaling::ServiceSpec& s) { return s.name == d.service; });
    if (spec == services_.end()) continue;
    const int target = std::clamp(d.replicas, spec->min_replicas, spec->max_replicas);
    const scaling::ServiceObservation* seen = last_->service(d.service);
    const int current = seen ? seen->desired_replicas : -1;
    if (target == current) continue;
    if (world_.scale(d.service, target)) {
      events_.push_back(Event{plan.time, d.service, current, target, d.reason});
    }
  }
}

}  // namespace prescale::control

namespace prescale::control {

Clock::TimePoint Controller::next_tick() const {
  if (!next_decision_ || !next_observation_) return clock_.now();
  return std::min(*next_decision_, *next_observation_);
}

}  // namespace prescale::control
