// The queueing model of one service for one time step (docs/simulator.md, "Queueing"): a FIFO
// backlog of per-step cohorts in front of `servers` exponential servers. While the service keeps
// up (no backlog, arrivals below capacity) its requests see the stationary M/M/c sojourn time;
// otherwise the backlog is served as a fluid, oldest first, and each served group's wait follows
// from its position. Requests that waited past the timeout are dropped at step boundaries.
//
// No allocation after construction: the backlog is a fixed ring of cohorts (older ones time
// out), and the M/M/c solution is memoised on (servers, arrival rate, service rate).
//
// Thread safety: none.
#pragma once

#include <array>
#include <vector>

#include "worlds/sim/queueing.h"

namespace prescale::sim::internal {

struct StepOutcome {
  double arrived = 0;
  double served = 0;  // started service in the step (fluid count)
  double dropped = 0;
  double queued_start = 0;  // backlog before the step
  double queued_end = 0;    // backlog after it
  double served_within_slo = 0;
  double busy_worker_seconds = 0;  // work served × service time
  double concurrency_seconds = 0;  // ∫ (waiting + in service) dt over the step
  std::array<LatencyComponent, 3> components;  // latency of the served requests
  int component_count = 0;
};

class ServiceQueue {
 public:
  // Seconds; `step_seconds` is the step length.
  ServiceQueue(double mean_service_time_seconds, double timeout_seconds, double slo_seconds,
               double step_seconds);

  // Runs the step [t0, t0 + step) (t0 seconds since the start) with `servers` servers and
  // `arrivals` requests of mean cost `cost` arriving uniformly over the step.
  void step(double t0, int servers, double arrivals, double cost, StepOutcome& out);

  double queued() const;  // backlog, requests

  // The p99 of a mixture, memoised for the frequent case of one stationary component.
  double p99(std::span<const LatencyComponent> mix);

 private:
  struct Cohort {
    double n;     // requests
    double cost;  // mean cost
    double a0;    // arrival times are uniform on [a0, a1), seconds since the start
    double a1;
  };
  struct Stationary {
    int servers = -1;
    double arrival_rps = -1, mu = -1;
    MmcQueue queue;
    double within_slo = 0;  // P(T <= SLO)
  };

  const Stationary& stationary(int servers, double arrival_rps, double mu);
  Cohort& cohort(size_t i) { return ring_[(head_ + i) % ring_.size()]; }
  void push(const Cohort& c);
  void pop() {
    head_ = (head_ + 1) % ring_.size();
    --size_;
  }
  void add(StepOutcome& out, const LatencyComponent& c, double within_share);

  double service_time_;
  double timeout_;
  double slo_;
  double dt_;
  std::vector<Cohort> ring_;
  size_t head_ = 0, size_ = 0;
  Stationary memo_;
  LatencyComponent p99_shape_;
  double p99_value_ = -1;
};

}  // namespace prescale::sim::internal
