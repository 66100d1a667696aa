#include "scaling/oracle.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <utility>

namespace prescale::scaling {
namespace internal {

std::vector<int> oracle_need(std::span<const double> demand_rps, double capacity_rps,
                             int min_replicas, int max_replicas) {
  const int hi = std::max(min_replicas, max_replicas);
  std::vector<int> need;
  need.reserve(demand_rps.size());
  for (double d : demand_rps) {
    int n = 0;
    if (d > 0 && capacity_rps > 0) {
      // ceil() that does not turn 300.00000000000006 / 100 into 4.
      const double x = std::ceil(d / capacity_rps - 1e-9);
      n = x >= static_cast<double>(hi) ? hi : static_cast<int>(x);
    }
    need.push_back(std::clamp(n, min_replicas, hi));
  }
  return need;
}

int oracle_startup_steps(Clock::Duration startup, Clock::Duration step) {
  if (startup <= Clock::Duration::zero() || step <= Clock::Duration::zero()) return 0;
  return static_cast<int>((startup.count() + step.count() - 1) / step.count());
}

// Why replicas[t] = max(need[t .. t + S]) is the cheapest feasible schedule (S = startup steps).
//
// Model. Steps t = 0 .. T-1. A replica is the interval of steps [s, e) during which it runs (and
// costs); it is ready at step a iff s + S <= a < e. Stopping a replica and starting one later is a
// new replica, which pays its startup again. Replicas with s < 0 are the world's initial ones and
// cost only from step 0. A schedule is feasible iff ready(a) >= need(a) at every step a; its cost
// is Σ_t R(t), R(t) = the replicas running at t.
//
// Lower bound, for ANY feasible schedule. Fix t and any a in [t, t + S]. Each replica ready at a
// has s <= a - S <= t and e > a >= t, so it is running at t. Hence R(t) >= need(a) for every such
// a, i.e. R(t) >= G(t) := max(need[t .. t + S]) pointwise, and cost >= Σ_t G(t).
//
// G is feasible. Run G(t) replicas at step t, starting new ones when G rises and stopping the
// youngest when it falls (a stack). Then the k-th replica from the bottom runs exactly over the
// steps where G >= k. For a step a and any level k <= need(a): every t in [a - S, a] has a in
// [t, t + S], so G(t) >= need(a) >= k, and the level-k replica has run without a break since
// a - S (or since before step 0, an initial replica): it is ready at a. So ready(a) >= need(a),
// at cost Σ_t G(t), which meets the lower bound: G is optimal.
//
// The same schedule, read level by level, is the greedy interval construction: replica k must
// be ready over each maximal interval where need >= k, so it starts S steps before the interval;
// between two such intervals separated by a gap of g steps it either keeps running (cost g) or
// stops and restarts (cost S, its new startup), and G keeps it exactly when g <= S. Levels are
// independent because cost is additive over replicas; that is why the greedy choice per gap is
// globally optimal.
std::vector<int> oracle_schedule(std::span<const int> need, int startup_steps) {
  const int n = static_cast<int>(need.size());
  std::vector<int> replicas(need.size(), 0);
  // Sliding maximum over [t, t + S], scanned right to left with a monotonic deque of indices
  // whose needs decrease from front to back.
  std::deque<int> window;
  for (int t = n - 1; t >= 0; --t) {
    while (!window.empty() && need[window.back()] <= need[t]) window.pop_back();
    window.push_back(t);
    while (window.front() > t + startup_steps) window.pop_front();
    replicas[t] = need[window.front()];
  }
  return replicas;
}

}  // namespace internal

OraclePolicy::OraclePolicy(Clock::TimePoint start, Clock::Duration step,
                           std::vector<OracleDemand> demand)
    : start_(start),
      step_(step > Clock::Duration::zero() ? step : Clock::Duration(std::chrono::seconds(1))),
      demand_(std::move(demand)) {}

void OraclePolicy::init(const std::vector<ServiceSpec>& services) {
  plans_.clear();
  unplanned_.clear();
  for (const auto& spec : services) {
    auto d = std::find_if(demand_.begin(), demand_.end(),
                          [&](const OracleDemand& x) { return x.service == spec.name; });
    if (d == demand_.end() || d->demand_rps.empty()) {
      unplanned_.push_back(spec);
      continue;
    }
    ServicePlan p;
    p.spec = spec;
    p.need = internal::oracle_need(d->demand_rps, spec.capacity_rps, spec.min_replicas,
                                   spec.max_replicas);
    p.startup_steps = internal::oracle_startup_steps(spec.startup_time, step_);
    p.replicas = internal::oracle_schedule(p.need, p.startup_steps);
    plans_.push_back(std::move(p));
  }
}

Plan OraclePolicy::decide(const Snapshot& snapshot, Clock::TimePoint now) {
  (void)snapshot;
  Plan plan;
  plan.time = now;
  const auto elapsed = (now - start_).count();
  const std::int64_t step = elapsed < 0 ? 0 : elapsed / step_.count();
  for (const auto& p : plans_) {
    const auto last = static_cast<std::int64_t>(p.replicas.size()) - 1;
    const auto t = static_cast<size_t>(std::min(step, last));
    const int running = p.replicas[t];
    std::string reason = "oracle: need " + std::to_string(p.need[t]) + " ready now";
    if (running > p.need[t]) {
      reason += ", " + std::to_string(running) + " within startup (" +
                std::to_string(p.startup_steps) + " steps) or bridging a short gap";
    }
    plan.decisions.push_back(Decision{p.spec.name, running, std::move(reason)});
  }
  for (const auto& spec : unplanned_) {
    plan.decisions.push_back(
        Decision{spec.name, spec.min_replicas, "oracle: no demand series, min replicas"});
  }
  return plan;
}

double OraclePolicy::planned_replica_seconds() const {
  double replica_steps = 0;
  for (const auto& p : plans_) {
    for (int r : p.replicas) replica_steps += r;
  }
  return replica_steps * to_seconds(step_);
}

const OraclePolicy::ServicePlan* OraclePolicy::find(std::string_view service) const {
  for (const auto& p : plans_) {
    if (p.spec.name == service) return &p;
  }
  return nullptr;
}

std::span<const int> OraclePolicy::schedule(std::string_view service) const {
  const ServicePlan* p = find(service);
  return p ? std::span<const int>(p->replicas) : std::span<const int>();
}

std::span<const int> OraclePolicy::need(std::string_view service) const {
  const ServicePlan* p = find(service);
  return p ? std::span<const int>(p->need) : std::span<const int>();
}

}  // namespace prescale::scaling
