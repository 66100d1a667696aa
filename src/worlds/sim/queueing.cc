#include "worlds/sim/queueing.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace prescale::sim {

double erlang_c(int servers, double offered_load) {
  if (servers <= 0 || offered_load >= servers) return 1.0;
  if (offered_load <= 0) return 0.0;
  double b = 1.0;  // Erlang B with 0 servers
  for (int k = 1; k <= servers; ++k) b = offered_load * b / (k + offered_load * b);
  const double rho = offered_load / servers;
  return b / (1.0 - rho * (1.0 - b));
}

MmcQueue mmc_queue(int servers, double arrival_rps, double mu) {
  MmcQueue q;
  LatencyComponent& s = q.sojourn;
  s.kind = LatencyComponent::Kind::kStationary;
  s.weight = 1;
  s.mu = mu;
  s.a = 1;
  s.b = 0;
  s.d = 0;
  s.g = mu;
  if (arrival_rps <= 0) return q;
  const double load = arrival_rps / mu;
  const double c = erlang_c(servers, load);
  const double gamma = servers * mu - arrival_rps;  // rate of the conditional wait
  q.wait_probability = c;
  q.mean_queue_length = c * load / (servers - load);
  if (std::abs(gamma - mu) < 1e-7 * mu) {
    // Wait Exp(mu) plus service Exp(mu) is Erlang-2: P = (1 + mu t) e^(-mu t).
    s.d = c * mu;
  } else {
    s.a = (1.0 - c) + c * gamma / (gamma - mu);
    s.b = -c * mu / (gamma - mu);
    s.g = gamma;
  }
  return q;
}

LatencyComponent fluid_sojourn(double wait_a, double wait_b, double mu, double weight) {
  LatencyComponent f;
  f.kind = LatencyComponent::Kind::kFluid;
  f.weight = weight;
  f.mu = mu;
  f.w0 = std::max(0.0, std::min(wait_a, wait_b));
  f.w1 = std::max(0.0, std::max(wait_a, wait_b));
  return f;
}

double tail(const LatencyComponent& c, double t) {
  if (t <= 0) return 1.0;
  if (c.kind == LatencyComponent::Kind::kStationary) {
    double p = (c.a + c.d * t) * std::exp(-c.mu * t);
    if (c.b != 0) p += c.b * std::exp(-c.g * t);
    return std::clamp(p, 0.0, 1.0);
  }
  if (t <= c.w0) return 1.0;
  const double width = c.w1 - c.w0;
  if (width <= 1e-12 * std::max(1.0, c.w1)) return std::exp(-c.mu * (t - c.w0));
  // Average of P(service > t - u) over u uniform on [w0, w1].
  const double far = std::exp(-c.mu * (t - c.w0));
  if (t < c.w1) return std::min(1.0, ((1.0 - far) / c.mu + (c.w1 - t)) / width);
  return std::max(0.0, (std::exp(-c.mu * (t - c.w1)) - far) / (c.mu * width));
}

double mixture_tail(std::span<const LatencyComponent> mix, double t) {
  double total = 0, above = 0;
  for (const auto& c : mix) {
    if (c.weight <= 0) continue;
    total += c.weight;
    above += c.weight * tail(c, t);
  }
  return total > 0 ? above / total : 0.0;
}

namespace {

// A time by which at most `p` of the component lies above (an upper bound on its quantile).
double upper_bound(const LatencyComponent& c, double p) {
  if (c.kind == LatencyComponent::Kind::kFluid) return c.w1 + std::log(1.0 / p) / c.mu;
  // T = S + W: P(T > t) <= P(S > t/2) + P(W > t/2) <= 2 e^(-min(mu, g) t / 2); the Erlang-2
  // form (d > 0) has g = mu and is bounded the same way (its wait is Exp(mu)).
  const double rate = c.b != 0 ? std::min(c.mu, c.g) : c.mu;
  const double bound = 2.0 * std::log(2.0 / p) / rate;
  return c.d > 0 ? 2.0 * bound : bound;
}

}  // namespace

double mixture_quantile(std::span<const LatencyComponent> mix, double q) {
  const double p = 1.0 - q;
  double total = 0, hi = 0;
  for (const auto& c : mix) {
    if (c.weight <= 0) continue;
    total += c.weight;
    hi = std::max(hi, upper_bound(c, p));
  }
  if (total <= 0 || !(p > 0 && p < 1)) return NAN;
  // f(t) = tail(t) - p is decreasing; Illinois (modified regula falsi) on [lo, hi].
  double lo = 0, f_lo = 1.0 - p;
  double f_hi = mixture_tail(mix, hi) - p;
  while (f_hi > 0) {  // the bound is conservative, but guard against rounding
    lo = hi;
    f_lo = f_hi;
    hi *= 2;
    f_hi = mixture_tail(mix, hi) - p;
  }
  int side = 0;
  for (int i = 0; i < 200 && hi - lo > 1e-10 * hi; ++i) {
    const double t = (lo * f_hi - hi * f_lo) / (f_hi - f_lo);
    const double f = mixture_tail(mix, t) - p;
    if (f == 0) return t;
    if (f > 0) {
      lo = t;
      f_lo = f;
      if (side == 1) f_hi /= 2;
      side = 1;
    } else {
      hi = t;
      f_hi = f;
      if (side == -1) f_lo /= 2;
      side = -1;
    }
  }
  return 0.5 * (lo + hi);
}

Result<double> slo_capacity_rps(double mean_service_time_seconds, int workers_per_replica,
                                double slo_seconds, double q) {
  if (!(mean_service_time_seconds > 0) || workers_per_replica <= 0 || !(slo_seconds > 0) ||
      !(q > 0 && q < 1)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "capacity: service time, workers, SLO must be positive and 0 < q < 1");
  }
  const double mu = 1.0 / mean_service_time_seconds;
  const double idle = std::log(1.0 / (1.0 - q)) * mean_service_time_seconds;
  if (idle >= slo_seconds) {
    return make_error(ErrorCode::kInvalidArgument,
                      "SLO p99 " + std::to_string(slo_seconds) +
                          " s is not reachable: an idle replica's p99 is " + std::to_string(idle) +
                          " s (exponential service of mean " +
                          std::to_string(mean_service_time_seconds) + " s)");
  }
  // The sojourn quantile grows with the arrival rate; bisect on (0, c·mu).
  double lo = 0, hi = workers_per_replica * mu;
  while (hi - lo > 1e-12 * hi) {
    const double mid = 0.5 * (lo + hi);
    const double p99 = quantile(mmc_queue(workers_per_replica, mid, mu).sojourn, q);
    (p99 > slo_seconds ? hi : lo) = mid;
  }
  return lo;
}

}  // namespace prescale::sim
