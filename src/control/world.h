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

// What a world counted since it began, for a platform's summary and its dashboard: requests the
// gateways answered, those within the SLO, those answered 5xx (by a replica or by a gateway), the
// gateways' outlier ejections, and replica-seconds (of the controller's clock).
struct WorldTotals {
  double requests = 0;
  double within_slo = 0;
  double failed = 0;
  double ejections = 0;
  double replica_seconds = 0;
};

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
