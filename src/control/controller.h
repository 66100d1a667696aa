// The controller loop: observe -> update history -> policy -> act. The same code drives the
// simulator, the local world and Kubernetes; only the World and the Clock differ.
//
// tick() performs one iteration at clock.now(): it observes the world, feeds the snapshot to
// the policy, and when the policy's period has elapsed asks it for a plan and applies the plan.
// Every applied change is recorded as an Event with the policy's reason, kept until taken.
//
// Thread safety: one thread drives a Controller.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "control/event.h"
#include "control/world.h"
#include "core/clock.h"
#include "scaling/policy.h"

namespace prescale::control {

class Controller {
 public:
  Controller(World& world, scaling::Policy& policy, std::vector<scaling::ServiceSpec> services,
             Clock& clock);

  // One iteration at clock.now(). Returns the plan if the policy decided this tick.
  std::optional<scaling::Plan> tick();
  // When the next tick has work to do: the earlier of the next observation and the next
  // decision. Ticking earlier is harmless; a driver may sleep (or a simulator step) until then.
  Clock::TimePoint next_tick() const;

  // The changes applied and not yet taken, oldest first.
  const std::vector<Event>& events() const { return events_; }
  // Hands over the changes applied since the last take and forgets them. A driver that runs for
  // months takes them as it goes (prescale up's dashboard feed does); otherwise every change is
  // kept for the life of the Controller, as the simulator wants them.
  std::vector<Event> take_events() { return std::exchange(events_, {}); }
  // The latest observation (empty before the first tick); the World owns it.
  const scaling::Snapshot& last_snapshot() const { return last_ ? *last_ : empty_; }
  const std::vector<scaling::ServiceSpec>& services() const { return services_; }

 private:
  void apply(const scaling::Plan& plan);

  World& world_;
  scaling::Policy& policy_;
  std::vector<scaling::ServiceSpec> services_;
  Clock& clock_;
  std::optional<Clock::TimePoint> next_decision_;
  std::optional<Clock::TimePoint> next_observation_;
  const scaling::Snapshot* last_ = nullptr;
  scaling::Snapshot empty_;
  std::vector<Event> events_;
};

}  // namespace prescale::control
