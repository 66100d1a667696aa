// The controller loop: observe -> update history -> policy -> act. The same code drives the
// simulator, the local world and Kubernetes; only the World and the Clock differ.
//
// tick() performs one iteration at clock.now(): it observes the world, feeds the snapshot to
// the policy, and when the policy's period has elapsed asks it for a plan and applies the plan.
// Every applied change is recorded as an Event with the policy's reason, kept until taken.
//
// Thread safety: one thread drives a Controller.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/event.h"
#include "control/world.h"
#include "core/clock.h"
#include "core/result.h"
#include "scaling/policy.h"

namespace prescale::control {

class Controller {
 public:
  Controller(World& world, scaling::Policy& policy, std::vector<scaling::ServiceSpec> services,
             Clock& clock);

  // One iteration at clock.now(). Returns the plan if the policy decided this tick.
  std::optional<scaling::Plan> tick();
  // The next tick observes, however soon after the last observation: something cannot wait for
  // the policy's interval (a request held in the gateway for a service with no replica). The
  // policy decides on it at once where it would on a surge (Policy::decide_early).
  void observe_now() { next_observation_.reset(); }
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
  // The operator changed what a service is given while it runs (prescale up reloading its file):
  // its replica bounds, SLO, seed capacity, queue limit or seed startup time. The world and the
  // policy take the new spec, and the next tick decides: a count now outside new bounds is
  // brought within them then, whatever the policy asks (as the HPA clamps a count above a
  // lowered maxReplicas at its next sync). Errors: kNotFound, kInvalidArgument (not
  // 0 <= min <= max, max >= 1; another concurrency, which the policy's model of the replicas was
  // made from; or a world whose services are fixed); nothing changes then.
  Result<void> respec(const scaling::ServiceSpec& next);
  // A service added while it runs (prescale up reloading a file that lists a new one): the
  // world and the policy take it, and the next tick decides on it too. Errors: kInvalidArgument
  // (a name it has, bad bounds; a world or policy whose services are fixed); nothing changes
  // then.
  Result<void> add_service(const scaling::ServiceSpec& spec);
  // A service removed while it runs: the policy forgets it and the world no longer reports it;
  // its events already recorded stay. Errors: kNotFound; a world's refusal (nothing changes).
  Result<void> remove_service(std::string_view service);

 private:
  void apply(const scaling::Plan& plan);
  void reindex();  // index_ from services_
  // The spec of a service by name; nullptr for one the controller was not given.
  scaling::ServiceSpec* spec(std::string_view service);

  World& world_;
  scaling::Policy& policy_;
  std::vector<scaling::ServiceSpec> services_;
  std::map<std::string, size_t, std::less<>> index_;  // services_' positions by name
  Clock& clock_;
  std::optional<Clock::TimePoint> next_decision_;
  std::optional<Clock::TimePoint> next_observation_;
  const scaling::Snapshot* last_ = nullptr;
  scaling::Snapshot empty_;
  std::vector<Event> events_;
  // Services whose bounds changed and whose count is not yet known to be within them.
  std::set<std::string, std::less<>> rebounded_;
};

}  // namespace prescale::control
