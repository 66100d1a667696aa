// The simulated world: a cluster of services replaying a demand trace, time-stepped (1 s by
// default). Entry services receive the trace; every other service receives the calls its
// callers make per request they serve (the call graph's fan-outs). Each service is a FIFO queue
// in front of ready replicas × workers servers with exponential service times: while it keeps
// up, latency follows the M/M/c (Erlang C) sojourn distribution at the utilisation its queue has
// built up to (exactly the stationary one under steady load); when it falls behind, a backlog of
// per-step cohorts carries over, waits grow and requests past the timeout are dropped. Replicas
// go starting → ready → draining → gone and cost from start to gone. Steps in which nothing
// changes are replayed in bulk, so a 28-day trace takes about a second.
//
// Policies see the world only through observe(): replica states as the API server lists them,
// and metrics as a metrics-server / Prometheus scrape every 15 s averaged over 30 s, plus the
// last completed second (Knative's queue-proxy view) and cumulative per-edge call counters.
// Ground truth for results is in recorder(). docs/simulator.md documents the model.
//
// Thread safety: none; one thread drives a SimWorld (the controller's).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "control/world.h"
#include "core/clock.h"
#include "core/result.h"
#include "forecast/trace.h"
#include "scaling/policy.h"
#include "worlds/sim/recorder.h"
#include "worlds/sim/sim_config.h"

namespace prescale::sim {

class SimWorld final : public control::World {
 public:
  // Errors: those of resolve_services() and capacity_rps() (an SLO no replica can meet).
  static Result<std::unique_ptr<SimWorld>> create(SimConfig config, forecast::Trace trace);
  ~SimWorld() override;
  SimWorld(const SimWorld&) = delete;
  SimWorld& operator=(const SimWorld&) = delete;

  // Advances to `now` (see advance_to), then returns what a controller sees at `now`: live
  // replica states, and the metrics of the latest scrape at or before `now`. A `now` earlier than
  // the world's time sees the world's time.
  const scaling::Snapshot& observe(Clock::TimePoint now) override;
  // Takes effect at the world's current time. Errors: kNotFound (unknown service), kOutOfRange
  // (outside [min_replicas, max_replicas]).
  Result<void> scale(std::string_view service, int replicas) override;
  // Drains (or, while starting, removes) the replica and starts a new one. Errors: kNotFound
  // (no starting or ready replica with that id).
  Result<void> restart(std::string_view replica_id) override;

  // Simulates every whole step that ends at or before `t`.
  void advance_to(Clock::TimePoint t);
  void step();  // one step
  Clock::TimePoint now() const;
  Clock::TimePoint trace_end() const;  // config.start + the trace's duration
  // Closes a partly elapsed record interval so recorder() covers the run up to now().
  void flush();

  // Ground truth — for results and tests, never for policies.
  const SimRecorder& recorder() const;
  struct ServiceState {
    int desired = 0, starting = 0, ready = 0, draining = 0;
    double queued = 0;  // backlog, requests
  };
  ServiceState state(std::string_view service) const;  // zeros for an unknown service

  const std::vector<SimServiceConfig>& services() const;  // resolved, in graph order
  // ServiceSpecs for policies (capacity_rps from capacity_rps()), in graph order.
  const std::vector<scaling::ServiceSpec>& specs() const;

 private:
  struct Impl;
  explicit SimWorld(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace prescale::sim
