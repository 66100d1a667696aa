#include "control/controller.h"

#include <algorithm>
#include <string>

namespace prescale::control {

Controller::Controller(World& world, scaling::Policy& policy,
                       std::vector<scaling::ServiceSpec> services, Clock& clock)
    : world_(world), policy_(policy), services_(std::move(services)), clock_(clock) {
  reindex();
  policy_.init(services_);
}

void Controller::reindex() {
  index_.clear();
  for (size_t i = 0; i < services_.size(); ++i) index_.emplace(services_[i].name, i);
}

scaling::ServiceSpec* Controller::spec(std::string_view service) {
  auto it = index_.find(service);
  return it == index_.end() ? nullptr : &services_[it->second];
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

Result<void> Controller::respec(const scaling::ServiceSpec& next) {
  scaling::ServiceSpec* running = spec(next.name);
  if (running == nullptr) return make_error(ErrorCode::kNotFound, "no service named " + next.name);
  if (auto valid = check_replica_bounds(next.name, next.min_replicas, next.max_replicas); !valid) {
    return valid;
  }
  if (next.max_concurrency != running->max_concurrency) {
    return make_error(ErrorCode::kInvalidArgument,
                      next.name + ": its concurrency cannot change while it runs (" +
                          std::to_string(running->max_concurrency) + " -> " +
                          std::to_string(next.max_concurrency) +
                          "): the policy's model of its replicas was made from it");
  }
  if (auto set = world_.respec(next); !set) return set;
  const bool rebounded =
      next.min_replicas != running->min_replicas || next.max_replicas != running->max_replicas;
  *running = next;
  policy_.respec(next);
  if (rebounded) rebounded_.insert(next.name);
  next_decision_.reset();  // decide at the next tick
  return {};
}

Result<void> Controller::add_service(const scaling::ServiceSpec& spec) {
  if (index_.contains(spec.name)) {
    return make_error(ErrorCode::kInvalidArgument, spec.name + ": a service of that name runs");
  }
  if (auto valid = check_replica_bounds(spec.name, spec.min_replicas, spec.max_replicas); !valid) {
    return valid;
  }
  if (auto added = policy_.add_service(spec); !added) return added;
  if (auto added = world_.add_service(spec); !added) {
    policy_.remove_service(spec.name);
    return added;
  }
  index_.emplace(spec.name, services_.size());
  services_.push_back(spec);
  next_decision_.reset();  // decide at the next tick
  return {};
}

Result<void> Controller::remove_service(std::string_view service) {
  auto it = index_.find(service);
  if (it == index_.end()) {
    return make_error(ErrorCode::kNotFound, "no service named " + std::string(service));
  }
  if (auto removed = world_.remove_service(service); !removed) return removed;
  policy_.remove_service(service);
  rebounded_.erase(std::string(service));
  services_.erase(services_.begin() + static_cast<std::ptrdiff_t>(it->second));
  reindex();
  return {};
}

void Controller::apply(const scaling::Plan& plan) {
  // The observed services by name: a policy may decide for every service at every period (the
  // HPA does), and a search of the snapshot for each would cost services² a decision.
  std::map<std::string_view, const scaling::ServiceObservation*> observed;
  for (const scaling::ServiceObservation& o : last_->services) observed.emplace(o.name, &o);
  auto seen_of = [&observed](std::string_view service) -> const scaling::ServiceObservation* {
    auto it = observed.find(service);
    return it == observed.end() ? nullptr : it->second;
  };
  for (const auto& d : plan.decisions) {
    const scaling::ServiceSpec* spec = this->spec(d.service);
    if (spec == nullptr) continue;
    const int target = std::clamp(d.replicas, spec->min_replicas, spec->max_replicas);
    const scaling::ServiceObservation* seen = seen_of(d.service);
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
    const scaling::ServiceSpec* spec = this->spec(*it);
    const scaling::ServiceObservation* seen = seen_of(*it);
    if (spec == nullptr || seen == nullptr) {
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
