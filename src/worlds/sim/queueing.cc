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

LatencyComponent wait_then_service(double wait_probability, double wait_rate, double mu) {
  LatencyComponent s;
  s.kind = LatencyComponent::Kind::kStationary;
  s.weight = 1;
  s.mu = mu;
  s.a = 1;
  s.b = 0;
  s.d = 0;
  s.g = mu;
  const double c = wait_probability;
  if (c <= 0) return s;
  if (std::abs(wait_rate - mu) < 1e-7 * mu) {
    // Wait Exp(mu) plus service Exp(mu) is Erlang-2: P = (1 + mu t) e^(-mu t).
    s.d = c * mu;
  } else {
    // P(W + S > t) = e^(-mu t) (1 − c) + c (g e^(-mu t) − mu e^(-g t)) / (g − mu).
    s.a = (1.0 - c) + c * wait_rate / (wait_rate - mu);
    s.b = -c * mu / (wait_rate - mu);
    s.g = wait_rate;
  }
  return s;
}

MmcQueue mmc_queue(int servers, double arrival_rps, double mu) {
  MmcQueue q;
  if (arrival_rps <= 0) {
    q.sojourn = wait_then_service(0, mu, mu);
    return q;
  }
  const double load = arrival_rps / mu;
  q.wait_probability = erlang_c(servers, load);
  q.mean_queue_length = q.wait_probability * load / (servers - load);
  // Given a wait, it is Exp(c·mu − λ).
  q.sojourn = wait_then_service(q.wait_probability, servers * mu - arrival_rps, mu);
  return q;
}

MmcOccupancy mmc_occupancy(int servers, double rho, double queue_factor) {
  MmcOccupancy o;
  const double c = servers;
  o.derivative = c;
  if (rho <= 0) return o;
  const double a = c * rho;
  double b = 1.0;
  for (int k = 1; k <= servers; ++k) b = a * b / (k + a * b);
  const double db = b * (c / a - 1.0 + b);  // dB/da for Erlang B
  const double d = 1.0 - rho + rho * b;
  const double erlang_c = b / d;
  const double dd = (b - 1.0) / c + rho * db;
  const double dc = (db * d - b * dd) / (d * d);  // dC/da
  const double idle = 1.0 - rho;
  o.in_system = a + queue_factor * erlang_c * rho / idle;
  o.derivative = c + queue_factor * (c * dc * rho / idle + erlang_c / (idle * idle));
  return o;
}

double psffa_utilization(int servers, double y, double k, double guess, double queue_factor) {
  if (y <= 0 || servers <= 0) return 0.0;
  // g(rho) = L(rho) + k·rho − y rises from −y at 0 to +inf at 1: safeguarded Newton.
  double lo = 0, hi = 1;
  double rho = std::clamp(guess, 0.0, 1.0 - 1e-12);
  for (int i = 0; i < 100; ++i) {
    const MmcOccupancy o = mmc_occupancy(servers, rho, queue_factor);
    const double g = o.in_system + k * rho - y;
    if (g > 0) {
      hi = rho;
    } else {
      lo = rho;
    }
    double next = rho - g / (o.derivative + k);
    if (std::abs(next - rho) <= 1e-12 * std::max(next, 1e-6)) return next;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    rho = next;
  }
  return rho;
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

namespace {

// P(T > t) and the density at t of one component.
void tail_and_density(const LatencyComponent& c, double t, double& p, double& f) {
  if (c.kind == LatencyComponent::Kind::kStationary) {
    const double e = std::exp(-c.mu * t);
    p = (c.a + c.d * t) * e;
    f = (c.mu * (c.a + c.d * t) - c.d) * e;
    if (c.b != 0) {
      const double eg = std::exp(-c.g * t);
      p += c.b * eg;
      f += c.b * c.g * eg;
    }
    return;
  }
  if (t <= c.w0) {
    p = 1;
    f = 0;
    return;
  }
  const double width = c.w1 - c.w0;
  const double far = std::exp(-c.mu * (t - c.w0));
  if (width <= 1e-12 * std::max(1.0, c.w1)) {
    p = far;
    f = c.mu * far;
  } else if (t < c.w1) {
    p = ((1.0 - far) / c.mu + (c.w1 - t)) / width;
    f = (1.0 - far) / width;
  } else {
    const double near = std::exp(-c.mu * (t - c.w1));
    p = (near - far) / (c.mu * width);
    f = (near - far) / width;
  }
}

}  // namespace

double mixture_quantile(std::span<const LatencyComponent> mix, double q, double guess) {
  const double p = 1.0 - q;
  double total = 0, hi = 0;
  for (const auto& c : mix) {
    if (c.weight <= 0) continue;
    total += c.weight;
    hi = std::max(hi, upper_bound(c, p));
  }
  if (total <= 0 || !(p > 0 && p < 1)) return NAN;
  auto eval = [&](double t, double& f) {
    double above = 0, density = 0;
    for (const auto& c : mix) {
      if (c.weight <= 0) continue;
      double cp = 0, cf = 0;
      tail_and_density(c, t, cp, cf);
      above += c.weight * cp;
      density += c.weight * cf;
    }
    f = density / total;
    return above / total - p;
  };
  // F(t) = tail(t) − p decreases from 1 − p at 0; safeguarded Newton inside [lo, hi].
  double lo = 0, density = 0;
  while (eval(hi, density) > 0) {  // the bound is conservative; guard against rounding
    lo = hi;
    hi *= 2;
  }
  double t = guess > lo && guess < hi ? guess : 0.5 * (lo + hi);
  for (int i = 0; i < 200; ++i) {
    const double F = eval(t, density);
    if (F == 0) return t;
    (F > 0 ? lo : hi) = t;
    double next = density > 0 ? t + F / density : 0.5 * (lo + hi);
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (std::abs(next - t) <= 1e-9 * next || hi - lo <= 1e-12 * hi) return next;
    t = next;
  }
  return t;
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
