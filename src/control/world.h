// World: where the controller acts — the simulator, local child processes, or Kubernetes.
// The controller loop is the same for all of them; only the World and the Clock differ.
//
// Thread safety: used from the controller's thread only.
#pragma once

#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"
#include "scaling/observation.h"
#include "scaling/policy.h"

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

// Whether [min_replicas, max_replicas] can bound a service: 0 <= min <= max, max >= 1.
// kInvalidArgument naming the service and the rule otherwise.
inline Result<void> check_replica_bounds(std::string_view service, int min_replicas,
                                         int max_replicas) {
  if (min_replicas >= 0 && max_replicas >= 1 && max_replicas >= min_replicas) return {};
  return make_error(ErrorCode::kInvalidArgument,
                    std::string(service) + ": replica bounds [" + std::to_string(min_replicas) +
                        ", " + std::to_string(max_replicas) + "] need 0 <= min <= max, max >= 1");
}

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
  // The operator changed what a service is given while it runs (its replica bounds, 0 <= min <=
  // max, max >= 1; its SLO; seeds): scale() takes counts within the new bounds from now on, and
  // its requests count as within the SLO by the new one; the replicas are not changed here.
  // Errors: kNotFound (unknown service); kInvalidArgument from a world whose services are fixed
  // for its life (the simulator's).
  virtual Result<void> respec(const scaling::ServiceSpec& spec) {
    return make_error(ErrorCode::kInvalidArgument,
                      spec.name + ": this world's services cannot change while it runs");
  }
  // A service added while it runs, whose replicas the caller has declared where they run (the
  // local supervisor's template; nothing on Kubernetes, where its Deployment is applied): scale()
  // takes it from now on, and observe() reports it. Errors: kInvalidArgument for a name it has,
  // bad bounds, or from a world whose services are fixed.
  virtual Result<void> add_service(const scaling::ServiceSpec& spec) {
    return make_error(ErrorCode::kInvalidArgument,
                      spec.name + ": this world's services cannot change while it runs");
  }
  // A service removed while it runs: observe() no longer reports it and scale() refuses it; its
  // replicas are the caller's to stop. Route labels it counted are free for another service.
  // Errors: kNotFound, or kInvalidArgument from a world whose services are fixed.
  virtual Result<void> remove_service(std::string_view service) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(service) + ": this world's services cannot change while it runs");
  }
};

}  // namespace prescale::control
