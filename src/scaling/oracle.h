// OraclePolicy ("oracle", simulator only): perfect foresight of each service's demand. It plans,
// offline, the replica schedule with the least replica-seconds such that at every step the READY
// replicas cover the demand, ceil(demand / capacity_rps) (at least min replicas, at most max),
// knowing that a replica costs from the moment it starts and is ready only startup_time later.
// It is the lower bound that the other policies' cost is compared against.
//
// The optimal schedule is replicas(t) = max of the need over the steps [t, t + startup]
// (startup rounded up to whole steps): replica k runs while the need is ≥ k or will be within
// its startup time, so it starts exactly `startup` before each need interval, and a gap no longer
// than the startup is bridged rather than paid for with a restart. oracle.cc proves that no
// feasible schedule costs less.
//
// Assumptions (docs/baselines.md, "## oracle"): the replicas the schedule has at `start` are
// ready at `start` (the world's initial replicas); cost is counted from `start`; when the count
// drops, the world removes the youngest replicas first (starting before ready, as a Kubernetes
// ReplicaSet does), so the replicas kept are the ones the schedule counted on; a draining
// replica's extra seconds are the world's, not the plan's.
//
// Thread safety: none; a Policy is driven by one controller thread.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "scaling/policy.h"

namespace prescale::scaling {

// The true demand of one service: the mean arrival rate (req/s) of each step, the first step
// starting at the oracle's `start`.
struct OracleDemand {
  std::string service;
  std::vector<double> demand_rps;
};

class OraclePolicy final : public Policy {
 public:
  // `step`: the length of one demand entry, also the oracle's decision period.
  OraclePolicy(Clock::TimePoint start, Clock::Duration step, std::vector<OracleDemand> demand);

  std::string_view name() const override { return "oracle"; }
  Clock::Duration period() const override { return step_; }
  // Plans every service with a demand series, using its capacity_rps, startup_time, min and max.
  void init(const std::vector<ServiceSpec>& services) override;
  // The schedule's replica count (running, starting ones included) for the step containing `now`;
  // before `start` the first step's, after the series the last step's.
  Plan decide(const Snapshot& snapshot, Clock::TimePoint now) override;

  // Σ over services and steps of the planned replicas × step, in replica-seconds.
  double planned_replica_seconds() const;
  // Per step: the replicas the plan runs, and the ready replicas it must have. Empty for a
  // service without demand (or before init()).
  std::span<const int> schedule(std::string_view service) const;
  std::span<const int> need(std::string_view service) const;

 private:
  struct ServicePlan {
    ServiceSpec spec;
    std::vector<int> need;
    std::vector<int> replicas;
    int startup_steps = 0;
  };
  const ServicePlan* find(std::string_view service) const;

  Clock::TimePoint start_;
  Clock::Duration step_;
  std::vector<OracleDemand> demand_;
  std::vector<ServicePlan> plans_;
  std::vector<ServiceSpec> unplanned_;  // services without a demand series: kept at min
};

// The planning steps, exposed for tests; not a stable API.
namespace internal {

// Ready replicas needed per step: ceil(demand / capacity_rps) clamped to [min, max].
std::vector<int> oracle_need(std::span<const double> demand_rps, double capacity_rps,
                             int min_replicas, int max_replicas);
// The startup time in whole steps (rounded up: the oracle only acts at step boundaries).
int oracle_startup_steps(Clock::Duration startup, Clock::Duration step);
// The least-cost schedule: replicas[t] = max(need[t .. t + startup_steps]).
std::vector<int> oracle_schedule(std::span<const int> need, int startup_steps);

}  // namespace internal
}  // namespace prescale::scaling
