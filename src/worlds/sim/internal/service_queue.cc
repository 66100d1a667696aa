#include "worlds/sim/internal/service_queue.h"

#include <algorithm>
#include <cmath>

namespace prescale::sim::internal {

ServiceQueue::ServiceQueue(double mean_service_time_seconds, double timeout_seconds,
                           double slo_seconds, double step_seconds)
    : service_time_(mean_service_time_seconds),
      timeout_(timeout_seconds),
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
    memo_.queue = mmc_queue(servers, arrival_rps, mu);
    memo_.within_slo = 1.0 - tail(memo_.queue.sojourn, slo_);
  }
  return memo_;
}

void ServiceQueue::add(StepOutcome& out, const LatencyComponent& c, double within_share) {
  out.components[static_cast<size_t>(out.component_count++)] = c;
  out.served_within_slo += c.weight * within_share;
}

void ServiceQueue::step(double t0, int servers, double arrivals, double cost, StepOutcome& out) {
  out = StepOutcome{};
  out.arrived = arrivals;
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
    const LatencyComponent f =
        fluid_sojourn(first_wait, last_wait, backlog_served / (used * service_time_),
                      backlog_served);
    add(out, f, 1.0 - tail(f, slo_));
  }
  out.served = backlog_served;
  double stationary_queue_seconds = 0;

  // This step's arrivals, uniform over [t0, t1), behind whatever backlog is left.
  if (arrivals > 0) {
    const double mu = 1.0 / (service_time_ * cost);
    if (size_ > 0 || servers == 0) {
      push(Cohort{arrivals, cost, t0, t1});
    } else {
      // The backlog took used/rate of the step. Work arrives at `inflow`; an arrival at offset u
      // starts at max(u, (used + inflow·u) / rate): the backlog clears at u* when inflow < rate.
      const double inflow = arrivals * cost / dt_;
      const double clear = inflow < rate ? used / (rate - inflow) : INFINITY;
      if (clear < dt_) {
        const double fluid_n = arrivals * clear / dt_;
        if (fluid_n > 0) {
          const LatencyComponent f = fluid_sojourn(used / rate, 0.0, mu, fluid_n);
          add(out, f, 1.0 - tail(f, slo_));
        }
        const Stationary& st = stationary(servers, arrivals / dt_, mu);
        LatencyComponent m = st.queue.sojourn;
        m.weight = arrivals - fluid_n;
        add(out, m, st.within_slo);
        stationary_queue_seconds = st.queue.mean_queue_length * (dt_ - clear);
        out.served += arrivals;
        used += arrivals * cost;
      } else {
        // Still behind at the end of the step: arrivals before u_s start within it.
        const double u_s = std::clamp((budget - used) / inflow, 0.0, dt_);
        const double n = arrivals * u_s / dt_;
        if (n > 0) {
          const LatencyComponent f = fluid_sojourn(used / rate, dt_ - u_s, mu, n);
          add(out, f, 1.0 - tail(f, slo_));
          out.served += n;
          used += n * cost;
        }
        if (arrivals - n > 0) push(Cohort{arrivals - n, cost, t0 + u_s, t1});
      }
    }
  }

  double queued_end = 0;
  for (size_t i = 0; i < size_; ++i) queued_end += cohort(i).n;
  out.queued_end = queued_end;
  out.busy_worker_seconds = used * service_time_;
  out.concurrency_seconds = out.busy_worker_seconds +
                            0.5 * (queued_after_drops + queued_end) * dt_ +
                            stationary_queue_seconds;
}

double ServiceQueue::p99(std::span<const LatencyComponent> mix) {
  if (mix.size() == 1) {
    if (p99_value_ < 0 || !mix[0].same_shape(p99_shape_)) {
      p99_shape_ = mix[0];
      p99_value_ = quantile(mix[0], 0.99);
    }
    return p99_value_;
  }
  return mixture_quantile(mix, 0.99);
}

}  // namespace prescale::sim::internal
