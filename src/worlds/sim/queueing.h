// Queueing formulas of the simulator: the M/M/c (Erlang C) sojourn-time distribution, the
// latency of requests that waited in a fluid backlog, mixtures of both, and their quantiles.
// docs/simulator.md derives every formula.
//
// A latency distribution is a mixture of `LatencyComponent`s, each weighted by the (expected)
// number of requests it describes; a step, a minute or a scrape window of the simulator is such
// a mixture. Quantiles of a mixture are exact (solved numerically), so the p99 of a minute is the
// p99 of all requests served in it, as a histogram of real requests would give.
//
// Thread safety: all functions are pure.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "core/result.h"

namespace prescale::sim {

// The sojourn time (wait + service) of one group of requests.
struct LatencyComponent {
  enum class Kind : std::uint8_t {
    // Stationary M/M/c: P(T > t) = (a + d·t)·e^(−mu·t) + b·e^(−g·t).
    kStationary,
    // Waited a time uniform on [w0, w1] in a backlog, then an Exp(mu) service.
    kFluid,
  };
  Kind kind = Kind::kStationary;
  double weight = 0;  // requests
  double mu = 1;      // 1 / mean service time, 1/s
  double a = 1, b = 0, d = 0, g = 1;
  double w0 = 0, w1 = 0;

  // Same distribution (weights may differ): such components merge by adding weights.
  bool same_shape(const LatencyComponent& o) const {
    return kind == o.kind && mu == o.mu && a == o.a && b == o.b && d == o.d && g == o.g &&
           w0 == o.w0 && w1 == o.w1;
  }
};

// Erlang C: the probability that an arrival waits in an M/M/c queue with `servers` servers and
// offered load `offered_load` = λ/μ (erlangs); 1 when offered_load >= servers. Uses the stable
// Erlang B recurrence B(k) = a·B(k−1) / (k + a·B(k−1)).
double erlang_c(int servers, double offered_load);

// The stationary M/M/c queue with `servers` servers, arrivals `arrival_rps` (< servers·mu) and
// service rate `mu` per server (1/s).
struct MmcQueue {
  LatencyComponent sojourn;      // weight 1
  double wait_probability = 0;   // Erlang C
  double mean_queue_length = 0;  // Lq, requests waiting (not in service)
};
MmcQueue mmc_queue(int servers, double arrival_rps, double mu);

// Sojourn = (with probability wait_probability, an Exp(wait_rate) wait) + an Exp(mu) service:
// the M/M/c form, also used with a corrected wait rate for M/G/c (weight 1).
LatencyComponent wait_then_service(double wait_probability, double wait_rate, double mu);

// Mean number in an M/M/c system at utilisation rho in [0, 1): L = c·rho + f·C·rho / (1 − rho),
// and its derivative dL/drho. `queue_factor` f scales the queue (M/G/c, Allen–Cunneen: f =
// (1 + Cs²) / 2 for service times of squared coefficient of variation Cs²).
struct MmcOccupancy {
  double in_system = 0;
  double derivative = 0;
};
MmcOccupancy mmc_occupancy(int servers, double rho, double queue_factor = 1);

// One implicit-Euler step of the pointwise-stationary fluid-flow approximation (PSFFA) of a
// time-varying M/M/c queue: the mean number in system x evolves as dx/dt = λ − c·mu·rho(x), with
// rho(x) the inverse of L(rho). Given y = x0 + λ·dt and k = c·mu·dt, returns rho1 solving
// L(rho1) + k·rho1 = y (then x1 = L(rho1)); `guess` warm-starts Newton's method.
double psffa_utilization(int servers, double y, double k, double guess, double queue_factor = 1);

// Waiting time uniform on [wait_a, wait_b] (either order, seconds) plus an Exp(mu) service.
LatencyComponent fluid_sojourn(double wait_a, double wait_b, double mu, double weight);

// P(T > t) of one component (its weight ignored).
double tail(const LatencyComponent& c, double t_seconds);
// Weighted P(T > t) of a mixture; 0 for an empty or weightless mixture.
double mixture_tail(std::span<const LatencyComponent> mix, double t_seconds);
// The q-quantile of a mixture (seconds), to 1e-9 relative; NaN when it has no weight. `guess`
// (e.g. the previous result) warm-starts the safeguarded Newton iteration.
double mixture_quantile(std::span<const LatencyComponent> mix, double q, double guess = NAN);
inline double quantile(const LatencyComponent& c, double q) {
  LatencyComponent one = c;
  one.weight = 1;
  return mixture_quantile(std::span<const LatencyComponent>(&one, 1), q);
}

// Per-replica capacity, req/s: the arrival rate at which the `quantile` (0.99) of the M/M/c
// sojourn time, with c = workers_per_replica and exponential service of mean
// mean_service_time_seconds, equals slo_seconds. kInvalidArgument when the SLO is below what an
// idle replica achieves (the service time's own quantile, −ln(1−q)·mean) or a parameter is not
// positive.
Result<double> slo_capacity_rps(double mean_service_time_seconds, int workers_per_replica,
                                double slo_seconds, double quantile = 0.99);

}  // namespace prescale::sim
