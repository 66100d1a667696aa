#include "worlds/sim/internal/service_queue.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace prescale::sim::internal {

CostMix CostMix::from_costs(std::vector<double> costs) {
  CostMix mix;
  if (costs.size() < 20) return mix;
  std::sort(costs.begin(), costs.end());
  double sum = 0, squares = 0;
  for (double c : costs) {
    sum += c;
    squares += c * c;
  }
  const auto n = static_cast<double>(costs.size());
  const double mean = sum / n;
  if (!(mean > 0)) return mix;
  const double cv2 = std::max(0.0, squares / n / (mean * mean) - 1.0);
  mix.share.clear();
  mix.relative_cost.clear();
  static constexpr std::array<double, kMaxCostClasses + 1> kBands = {
      0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1};
  for (size_t b = 0; b + 1 < kBands.size(); ++b) {
    const auto lo = static_cast<size_t>(kBands[b] * n);
    const auto hi = static_cast<size_t>(kBands[b + 1] * n);
    if (hi <= lo) continue;
    double band = 0;
    for (size_t i = lo; i < hi; ++i) band += costs[i];
    mix.share.push_back(static_cast<double>(hi - lo) / n);
    mix.relative_cost.push_back(band / static_cast<double>(hi - lo) / mean);
  }
  mix.wait_factor = 1.0 + cv2;  // (1 + Cs²) / 2 with Cs² = 1 + 2·CV²
  return mix;
}

double capacity_rps(double mean_service_time_seconds, int workers, double slo_seconds,
                    const CostMix& costs) {
  const double mu = 1.0 / mean_service_time_seconds;
  std::array<LatencyComponent, kMaxCostClasses> mix;
  auto p99 = [&](double rate) {
    const MmcQueue q = mmc_queue(workers, rate, mu);
    const double wait_rate = (workers * mu - rate) / costs.wait_factor;
    for (size_t k = 0; k < costs.classes(); ++k) {
      mix[k] = wait_then_service(q.wait_probability, wait_rate, mu / costs.relative_cost[k]);
      mix[k].weight = costs.share[k];
    }
    return mixture_quantile(std::span<const LatencyComponent>(mix.data(), costs.classes()), 0.99);
  };
  if (p99(0) >= slo_seconds) return NAN;
  double lo = 0, hi = workers * mu;
  while (hi - lo > 1e-9 * hi) {
    const double mid = 0.5 * (lo + hi);
    (p99(mid) > slo_seconds ? hi : lo) = mid;
  }
  return lo;
}

ServiceQueue::ServiceQueue(double mean_service_time_seconds, double timeout_seconds,
                           double slo_seconds, double step_seconds, CostMix costs,
                           double queue_limit_seconds)
    : costs_(std::move(costs)),
      service_time_(mean_service_time_seconds),
      timeout_(timeout_seconds),
      queue_limit_(queue_limit_seconds),
      slo_(slo_seconds),
      dt_(step_seconds) {
  // A cohort is gone (dropped) once the step boundary is a timeout past its last arrival, so at
  // most ceil(timeout / step) + 2 cohorts are queued at once.
  ring_.resize(static_cast<size_t>(std::ceil(timeout_seconds / step_seconds)) + 3);
}

double ServiceQueue::queued() const {
  double n = 0;
  for (size_t i = 0; i < size_; ++i) n += ring_[(head_ + i) % ring_.size()].n;
  return n;
}

void ServiceQueue::push(const Cohort& c) {
  if (size_ == ring_.size()) {
    // Unreachable by the bound above; keep the requests rather than lose them.
    Cohort& last = cohort(size_ - 1);
    const double n = last.n + c.n;
    last.cost = (last.n * last.cost + c.n * c.cost) / n;
    last.n = n;
    last.a1 = c.a1;
    return;
  }
  ring_[(head_ + size_) % ring_.size()] = c;
  ++size_;
}

const ServiceQueue::Stationary& ServiceQueue::stationary(int servers, double arrival_rps,
                                                         double mu) {
  if (servers != memo_.servers || arrival_rps != memo_.arrival_rps || mu != memo_.mu) {
    memo_.servers = servers;
    memo_.arrival_rps = arrival_rps;
    memo_.mu = mu;
    const MmcQueue q = mmc_queue(servers, arrival_rps, mu);
    // M/G/c (Allen–Cunneen): the M/M/c probability of waiting, waits longer by wait_factor.
    const double wait_rate = (servers * mu - arrival_rps) / costs_.wait_factor;
    memo_.within_slo = 0;
    for (size_t k = 0; k < costs_.classes(); ++k) {
      LatencyComponent& c = memo_.sojourn[k];
      c = costs_.classes() == 1
              ? q.sojourn
              : wait_then_service(q.wait_probability, wait_rate, mu / costs_.relative_cost[k]);
      c.weight = costs_.share[k];
      memo_.within_slo += c.weight * (1.0 - tail(c, slo_));
    }
    memo_.mean_queue_length = q.mean_queue_length * costs_.wait_factor;
    memo_.refused = 0;
    if (queue_limit_ > 0) {
      // M/M/c/K: the M/M/c state distribution cut at K = c + m, m = limit × c·mu queue places,
      // and renormalised; an arrival sees it (PASTA). With C the Erlang-C probability of
      // waiting, rho the utilisation and cut = e^(−wait_rate × limit) ≈ rho^m, the share of
      // waiting arrivals that would wait past the limit: arrivals are refused with probability
      // C (1 − rho) cut / Z, start at once with (1 − C) / Z and wait with C (1 − cut) / Z,
      // Z = 1 − C rho cut. The admitted waits are the exponential cut at the limit, taken as
      // an exponential of the same mean: exact when the limit does not bind (cut → 0), a little
      // pessimistic in its tail when it binds hard.
      const double c = q.wait_probability;
      const double rho = std::clamp(arrival_rps / (servers * mu), 0.0, 1.0);
      const double cut = std::exp(-wait_rate * queue_limit_);
      const double z = 1 - c * rho * cut;
      memo_.refused = c * (1 - rho) * cut / z;
      const double admitted = 1 - memo_.refused;
      const double waits = c * (1 - cut) / z / admitted;  // P(wait | admitted)
      const double mean_wait =
          cut < 1 ? 1 / wait_rate - queue_limit_ * cut / (1 - cut) : queue_limit_ / 2;
      const double cut_rate = 1 / std::max(mean_wait, 1e-9 * queue_limit_);
      memo_.within_slo = 0;
      for (size_t k = 0; k < costs_.classes(); ++k) {
        LatencyComponent& s = memo_.sojourn[k];
        s = wait_then_service(waits, cut_rate, mu / costs_.relative_cost[k]);
        s.weight = costs_.share[k] * admitted;
        memo_.within_slo += s.weight * (1.0 - tail(s, slo_));
      }
      const double m = queue_limit_ * servers * mu;
      memo_.mean_queue_length = costs_.wait_factor * c * rho *
                                std::max(0.0, 1 - (m + 1) * cut + m * rho * cut) / ((1 - rho) * z);
    }
  }
  return memo_;
}

void ServiceQueue::add_fluid(StepOutcome& out, double wait_a, double wait_b, double mu, double n) {
  for (size_t k = 0; k < costs_.classes(); ++k) {
    const LatencyComponent f =
        fluid_sojourn(wait_a, wait_b, mu / costs_.relative_cost[k], n * costs_.share[k]);
    out.components[static_cast<size_t>(out.component_count++)] = f;
    out.served_within_slo += f.weight * (1.0 - tail(f, slo_));
  }
}

double ServiceQueue::refuse_beyond_limit(int servers) {
  if (!(queue_limit_ > 0) || servers <= 0) return 0;
  // The backlog drains at servers / service time units of work a second.
  const double limit = queue_limit_ * servers / service_time_;
  double work = 0;
  for (size_t i = 0; i < size_; ++i) work += cohort(i).n * cohort(i).cost;
  double refused = 0;
  while (size_ > 0 && work > limit) {
    // The newest cohort is the one that found the queue full. What it keeps was admitted as
    // room freed up, at the service rate, over its span: at the end of the step the queue
    // holds the latest of those, so the kept part takes the cohort's latest arrival times (its
    // requests then wait about the limit, as admitted requests do).
    Cohort& c = cohort(size_ - 1);
    const double excess = work - limit;
    if (c.n * c.cost <= excess) {
      refused += c.n;
      work -= c.n * c.cost;
      --size_;
      continue;
    }
    const double n = excess / c.cost;
    refused += n;
    c.a0 += (c.a1 - c.a0) * n / c.n;
    c.n -= n;
    break;
  }
  return refused;
}

void ServiceQueue::set_mean_service_time(double seconds) {
  service_time_ = seconds;
  // Nothing computed at the old speed is reused: the stationary memo is keyed on the service
  // rate already; the resting state and the repeated outcome are not.
  at_rest_ = false;
  repeat_valid_ = false;
}

void ServiceQueue::step(double t0, int servers, double arrivals, double cost, StepOutcome& out) {
  if (repeat_valid_ && size_ == 0 && servers == rest_servers_ && arrivals == repeat_.arrived &&
      cost == repeat_cost_) {
    // The same inputs at the same resting state: the same outcome (most steps of a trace whose
    // rate changes once a minute).
    out.arrived = repeat_.arrived;
    out.served = repeat_.served;
    out.dropped = repeat_.dropped;  // refused by a queue limit; nothing times out at rest
    out.queued_start = out.queued_end = 0;
    out.served_within_slo = repeat_.served_within_slo;
    out.busy_worker_seconds = repeat_.busy_worker_seconds;
    out.concurrency_seconds = repeat_.concurrency_seconds;
    out.component_count = repeat_.component_count;
    for (int i = 0; i < repeat_.component_count; ++i) {
      out.components[static_cast<size_t>(i)] = repeat_.components[static_cast<size_t>(i)];
    }
    out.repeated = true;
    return;
  }
  repeat_valid_ = false;
  out.repeated = false;
  out.arrived = arrivals;
  out.served = out.dropped = out.served_within_slo = 0;
  out.component_count = 0;
  const double t1 = t0 + dt_;
  double queued_start = 0;
  for (size_t i = 0; i < size_; ++i) queued_start += cohort(i).n;
  out.queued_start = queued_start;

  // Timeouts: requests that arrived a timeout or more before this boundary leave.
  const double deadline = t0 - timeout_;
  while (size_ > 0 && cohort(0).a0 <= deadline) {
    Cohort& h = cohort(0);
    if (h.a1 <= deadline) {
      out.dropped += h.n;
      pop();
      continue;
    }
    const double gone = h.n * (deadline - h.a0) / (h.a1 - h.a0);
    out.dropped += gone;
    h.n -= gone;
    h.a0 = deadline;
    break;
  }
  const double queued_after_drops = queued_start - out.dropped;

  const double rate = servers / service_time_;  // work (cost-1 requests) per second
  const double budget = rate * dt_;
  double used = 0;

  // The backlog, oldest first. Starts are spread at `rate`, so the request at work offset x
  // starts at t0 + x / rate; the served part of a cohort waited from (first start − a0) to
  // (last start − its last arrival), linearly in between.
  double backlog_served = 0, first_wait = 0, last_wait = 0;
  while (size_ > 0 && used < budget) {
    Cohort& h = cohort(0);
    const double work = h.n * h.cost;
    const double start = t0 + used / rate;
    if (backlog_served == 0) first_wait = start - h.a0;
    if (work <= budget - used) {
      last_wait = t0 + (used + work) / rate - h.a1;
      backlog_served += h.n;
      used += work;
      pop();
    } else {
      const double n = (budget - used) / h.cost;
      const double split = h.a0 + (n / h.n) * (h.a1 - h.a0);
      last_wait = t1 - split;
      backlog_served += n;
      h.n -= n;
      h.a0 = split;
      used = budget;
    }
  }
  if (backlog_served > 0) {
    // One component for the served backlog: mean cost from the work it took.
    add_fluid(out, first_wait, last_wait, backlog_served / (used * service_time_), backlog_served);
  }
  out.served = backlog_served;

  // This step's arrivals, uniform over [t0, t1), behind whatever backlog is left. `saturated`
  // is how long the servers run flat out on queued work; after it the step is "stochastic".
  const double mu = 1.0 / (service_time_ * cost);
  double saturated = servers > 0 ? used / rate : dt_;
  double stochastic_arrivals = 0;
  if (arrivals > 0) {
    if (size_ > 0 || servers == 0) {
      push(Cohort{arrivals, cost, t0, t1});
      saturated = dt_;
    } else {
      // Work arrives at `inflow`; an arrival at offset u starts at max(u, (used + inflow·u) /
      // rate): the backlog clears at u* = used / (rate − inflow) when inflow < rate.
      const double inflow = arrivals * cost / dt_;
      const double clear = inflow < rate ? used / (rate - inflow) : INFINITY;
      if (clear < dt_) {
        const double fluid_n = arrivals * clear / dt_;
        if (fluid_n > 0) add_fluid(out, used / rate, 0.0, mu, fluid_n);
        saturated = clear;
        stochastic_arrivals = arrivals - fluid_n;
        out.served += arrivals;
        used += arrivals * cost;
      } else {
        // Still behind at the end of the step: arrivals before u_s start within it. An arrival
        // at offset u waits (used + inflow·u) / rate − u, which grows when inflow > rate; with a
        // queue limit it reaches the limit at u_w, after which requests are admitted at the
        // service rate, each waiting the limit, and the rest are refused.
        const double u_s = std::clamp((budget - used) / inflow, 0.0, dt_);
        const double w0 = used / rate;
        const double growth = inflow / rate - 1;
        const double u_w = queue_limit_ > 0 && servers > 0 && growth > 0
                               ? std::clamp((queue_limit_ - w0) / growth, 0.0, dt_)
                               : dt_;
        const double u_a = std::min(u_s, u_w);
        const double n = arrivals * u_a / dt_;
        if (n > 0) {
          add_fluid(out, w0, w0 + growth * u_a, mu, n);
          out.served += n;
          used += n * cost;
        }
        if (u_w > u_s) push(Cohort{arrivals * (u_w - u_s) / dt_, cost, t0 + u_s, t0 + u_w});
        if (u_w < dt_) {
          const double admitted = rate * (dt_ - u_w) / cost;
          // Those that start within the step: admitted before dt − limit, and no more than the
          // servers have left (a backlog already past the limit, after replicas were lost,
          // takes the step's work first; refuse_beyond_limit() then trims the queue).
          const double started = std::min(rate * std::max(0.0, dt_ - queue_limit_ - u_w),
                                          std::max(0.0, budget - used)) /
                                 cost;
          if (started > 0) {
            add_fluid(out, queue_limit_, queue_limit_, mu, started);
            out.served += started;
            used += started * cost;
          }
          if (admitted > started) {
            push(Cohort{admitted - started, cost, t0 + std::max(u_w, dt_ - queue_limit_), t1});
          }
          out.dropped += std::max(0.0, arrivals * (dt_ - u_w) / dt_ - admitted);
        }
        saturated = dt_;
      }
    }
  }

  // The stochastic queue (PSFFA): x, the mean number in the M/M/c system, is fed at the arrival
  // rate while the service keeps up and at c·mu while saturated, and drained at c·mu·rho(x).
  // Arrivals of the stochastic part see the M/M/c at the utilisation rho(x) reached.
  double stationary_queue_seconds = 0;
  if (servers == 0) {
    x_ = 0;
    rho_ = 0;
    at_rest_ = false;
  } else {
    const double lambda = stochastic_arrivals / (dt_ - saturated > 0 ? dt_ - saturated : dt_);
    const bool pure = saturated == 0;  // no backlog this step: the layer may be at rest
    // A queue limit holds at most servers × (1 + limit × mu) requests in the system.
    if (queue_limit_ > 0) x_ = std::min(x_, servers * (1 + queue_limit_ * mu));
    if (!(pure && at_rest_ && servers == rest_servers_ && lambda == rest_lambda_ &&
          mu == rest_mu_)) {
      const double y = x_ + servers * mu * saturated + lambda * (dt_ - saturated);
      const double k = servers * mu * dt_;
      const double target = lambda / (servers * mu);
      // Within 1e-5 relative of the stationary utilisation the latency differs by < 1e-4
      // (rho <= 0.9): rest exactly there, so that later identical steps are free.
      const double tolerance = 1e-5 * std::max(target, 1e-3);
      at_rest_ = false;
      if (pure && target < 1) {
        // Linearised, the implicit step ends (x − L*) / (L' + k) from the stationary point: a
        // fast-relaxing queue gets there within the step.
        const MmcOccupancy rest = mmc_occupancy(servers, target, costs_.wait_factor);
        if (std::abs(x_ - rest.in_system) / (rest.derivative + k) <= tolerance) {
          at_rest_ = true;
          x_ = rest.in_system;
        }
      }
      if (!at_rest_) {
        rho_ = psffa_utilization(servers, y, k, pure && target < 1 ? target : rho_,
                                 costs_.wait_factor);
        at_rest_ = pure && target < 1 && std::abs(rho_ - target) <= tolerance;
        x_ = mmc_occupancy(servers, at_rest_ ? target : rho_, costs_.wait_factor).in_system;
      }
      if (at_rest_) {
        rho_ = target;
        rest_servers_ = servers;
        rest_lambda_ = lambda;
        rest_mu_ = mu;
      }
    }
    if (stochastic_arrivals > 0) {
      const Stationary& st = stationary(servers, servers * mu * rho_, mu);
      for (size_t c = 0; c < costs_.classes(); ++c) {
        LatencyComponent m = st.sojourn[c];
        m.weight *= stochastic_arrivals;
        out.components[static_cast<size_t>(out.component_count++)] = m;
      }
      if (st.refused > 0) {
        // Refused at the door: neither served nor worked on.
        out.dropped += stochastic_arrivals * st.refused;
        out.served -= stochastic_arrivals * st.refused;
        used -= stochastic_arrivals * st.refused * cost;
      }
      out.served_within_slo += stochastic_arrivals * st.within_slo;
      stationary_queue_seconds = st.mean_queue_length * (dt_ - saturated);
    }
  }

  out.dropped += refuse_beyond_limit(servers);
  double queued_end = 0;
  for (size_t i = 0; i < size_; ++i) queued_end += cohort(i).n;
  out.queued_end = queued_end;
  out.busy_worker_seconds = used * service_time_;
  out.concurrency_seconds = out.busy_worker_seconds +
                            0.5 * (queued_after_drops + queued_end) * dt_ +
                            stationary_queue_seconds;
  if (at_rest_ && queued_start == 0 && size_ == 0) {
    repeat_valid_ = true;
    repeat_cost_ = cost;
    repeat_.arrived = out.arrived;
    repeat_.served = out.served;
    repeat_.dropped = out.dropped;
    repeat_.served_within_slo = out.served_within_slo;
    repeat_.busy_worker_seconds = out.busy_worker_seconds;
    repeat_.concurrency_seconds = out.concurrency_seconds;
    repeat_.component_count = out.component_count;
    for (int i = 0; i < out.component_count; ++i) {
      repeat_.components[static_cast<size_t>(i)] = out.components[static_cast<size_t>(i)];
    }
  }
}

double ServiceQueue::p99(std::span<const LatencyComponent> mix, int stream) {
  if (mix.size() == 1) {
    for (const CachedQuantile& c : p99_cache_) {
      if (c.p99 >= 0 && c.shape.same_shape(mix[0])) return c.p99;
    }
    CachedQuantile& slot = p99_cache_[p99_next_];
    p99_next_ = (p99_next_ + 1) % p99_cache_.size();
    slot.shape = mix[0];
    slot.p99 = quantile(mix[0], 0.99);
    return slot.p99;
  }
  double& last = last_mixture_p99_[static_cast<size_t>(stream)];
  last = mixture_quantile(mix, 0.99, last);
  return last;
}

}  // namespace prescale::sim::internal
