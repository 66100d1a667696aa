// The queueing model of one service for one time step (docs/simulator.md, "Queueing"): a FIFO
// backlog of per-step cohorts in front of `servers` exponential servers, plus a stochastic layer.
// While the service keeps up, its requests see the M/M/c sojourn time at the utilisation the
// queue has built up to (the pointwise-stationary fluid approximation, PSFFA, carried from step
// to step); when arrivals exceed capacity the excess waits as a fluid backlog served oldest first,
// each served group's wait following from its position. Requests that waited past the timeout are
// dropped at step boundaries; with a queue limit, those beyond it are refused as they arrive.
// Per-request costs turn the exponential service into a mixture over cost bands (M/G/c,
// Allen–Cunneen).
//
// No allocation after construction: the backlog is a fixed ring of cohorts (older ones time
// out), and the M/M/c solution is memoised on (servers, arrival rate, service rate).
//
// Thread safety: none.
#pragma once

#include <array>
#include <cmath>
#include <vector>

#include "worlds/sim/queueing.h"

namespace prescale::sim::internal {

// Per-request costs (per-request traces): service times are cost × Exp(mean), a mixture, not an
// exponential. The queue keeps a few cost classes (share of requests, mean cost relative to the
// overall mean) and scales M/M/c waits by Allen–Cunneen's (1 + Cs²) / 2 for the service time's
// squared coefficient of variation Cs² = 1 + 2·CV²(cost).
struct CostMix {
  std::vector<double> share{1.0};
  std::vector<double> relative_cost{1.0};
  double wait_factor = 1;
  size_t classes() const { return share.size(); }
  // Classes from a sample of costs: quantile bands 0–25–50–75–90–95–98–99–99.5–99.9–100 %, so the
  // expensive tail that sets a p99 is resolved. Fewer than 20 costs give one class.
  static CostMix from_costs(std::vector<double> costs);
};
constexpr size_t kMaxCostClasses = 10;

// Per-replica capacity (req/s) at which the p99 of the M/G/c approximation with `costs` meets
// the SLO (equals slo_capacity_rps() for one class); NaN when no rate does.
double capacity_rps(double mean_service_time_seconds, int workers, double slo_seconds,
                    const CostMix& costs);
constexpr size_t kMaxComponents = 3 * kMaxCostClasses;  // backlog, catch-up and steady parts

struct StepOutcome {
  double arrived = 0;
  double served = 0;  // started service in the step (fluid count)
  double dropped = 0;
  double queued_start = 0;  // backlog before the step
  double queued_end = 0;    // backlog after it
  double served_within_slo = 0;
  double busy_worker_seconds = 0;  // work served × service time
  double concurrency_seconds = 0;  // ∫ (waiting + in service) dt over the step
  std::array<LatencyComponent, kMaxComponents> components;  // latency of the served requests
  int component_count = 0;
  bool repeated = false;  // the outcome is exactly the previous step's
};

class ServiceQueue {
 public:
  // Seconds; `step_seconds` is the step length. `queue_limit_seconds` > 0: while there are
  // servers, the backlog is held to that many seconds of their work and the newest requests
  // beyond it are refused (dropped) in the step they arrive.
  ServiceQueue(double mean_service_time_seconds, double timeout_seconds, double slo_seconds,
               double step_seconds, CostMix costs = {}, double queue_limit_seconds = 0);

  // Latency components a step produces at most.
  size_t max_components() const { return 3 * costs_.classes(); }

  // Runs the step [t0, t0 + step) (t0 seconds since the start) with `servers` servers and
  // `arrivals` requests of mean cost `cost` arriving uniformly over the step.
  void step(double t0, int servers, double arrivals, double cost, StepOutcome& out);

  double queued() const;  // backlog, requests

  // A release: requests served from now on take this long on average (the backlog too).
  void set_mean_service_time(double seconds);

  // The last step's outcome when the next step, given the same servers and arrivals, is certain
  // to repeat it (no backlog, the stochastic layer at rest); nullptr otherwise.
  const StepOutcome* repeatable() const { return repeat_valid_ ? &repeat_ : nullptr; }

  // The p99 of a mixture. One-component mixtures (a steady service) come from a small cache;
  // others warm-start from the previous result of the same `stream` (0: scrape windows,
  // 1: record intervals), which is usually close.
  double p99(std::span<const LatencyComponent> mix, int stream);

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
    std::array<LatencyComponent, kMaxCostClasses> sojourn;  // per cost class, weight = share
    double within_slo = 0;                                  // P(T <= SLO)
    double mean_queue_length = 0;
    // With a queue limit: the share refused (its wait would pass the limit); `sojourn` is then
    // the admitted requests' (weights per arrival) and within_slo the share of all arrivals
    // served within the SLO.
    double refused = 0;
  };

  const Stationary& stationary(int servers, double arrival_rps, double mu);
  Cohort& cohort(size_t i) { return ring_[(head_ + i) % ring_.size()]; }
  void push(const Cohort& c);
  void pop() {
    head_ = (head_ + 1) % ring_.size();
    --size_;
  }
  // Adds n requests that waited uniformly in [wait_a, wait_b] (mean cost: service rate mu).
  void add_fluid(StepOutcome& out, double wait_a, double wait_b, double mu, double n);
  // Refuses the newest queued requests beyond the queue limit for `servers`; returns how many.
  double refuse_beyond_limit(int servers);

  CostMix costs_;
  double service_time_;
  double timeout_;
  double queue_limit_;
  double slo_;
  double dt_;
  std::vector<Cohort> ring_;
  size_t head_ = 0, size_ = 0;
  Stationary memo_;
  // The stochastic (PSFFA) layer: mean number in the M/M/c system and its utilisation, and
  // the (servers, arrival rate, mu) at whose stationary point it rests, if any.
  double x_ = 0;
  double rho_ = 0;
  bool at_rest_ = false;
  int rest_servers_ = 0;
  double rest_lambda_ = 0, rest_mu_ = 0;
  // The outcome of the last step that ended at rest with no backlog, for identical repeats.
  bool repeat_valid_ = false;
  double repeat_cost_ = 0;
  StepOutcome repeat_;
  struct CachedQuantile {
    LatencyComponent shape;
    double p99 = -1;
  };
  std::array<CachedQuantile, 4> p99_cache_;
  size_t p99_next_ = 0;                               // round-robin replacement
  std::array<double, 2> last_mixture_p99_{NAN, NAN};  // warm starts per stream
};

}  // namespace prescale::sim::internal
