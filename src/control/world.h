// World: where the controller acts — the simulator, local child processes, or Kubernetes.
// The controller loop is the same for all of them; only the World and the Clock differ.
//
// Thread safety: used from the controller's thread only.
#pragma once

#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "scaling/observation.h"

namespace prescale::control {

class World {
 public:
  virtual ~World() = default;
  // What a controller can see at `now` (scraped metrics, replica states, edge counters). The
  // world owns the snapshot and updates it in place (a controller observing every second must
  // not pay for a copy): the reference stays valid, and unchanged, until the next observe().
  virtual const scaling::Snapshot& observe(Clock::TimePoint now) = 0;
  // Sets the desired replica count of a service; replicas start (taking their startup time) or
  // drain accordingly. Errors: unknown service (kNotFound), count out of bounds.
  virtual Result<void> scale(std::string_view service, int replicas) = 0;
  // Replaces one replica (crash recovery, healing).
  virtual Result<void> restart(std::string_view replica_id) = 0;
};

}  // namespace prescale::control
