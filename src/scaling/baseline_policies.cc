#include "scaling/baseline_policies.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

namespace prescale::scaling {
namespace {

// The pod as the HPA sees it: a replica still starting is Running but not Ready (its
// readiness probe fails until the service has loaded), a draining one is being deleted.
PodSample pod_sample(const ReplicaObservation& r) {
  PodSample p;
  p.name = r.id;
  p.phase = PodSample::Phase::kRunning;
  p.being_deleted = r.state == ReplicaState::kDraining;
  p.ready = r.state == ReplicaState::kReady;
  p.start_time = r.started_at;
  p.ready_transition_time = r.ready_at.value_or(r.started_at);
  if (r.cpu_utilization) p.cpu_usage_millicores = *r.cpu_utilization * p.cpu_request_millicores;
  p.metric_timestamp = r.metric_time;
  p.metric_window = r.metric_window;
  return p;
}

}  // namespace

HpaPolicy::HpaPolicy(HpaPolicyOptions options) : options_(std::move(options)) {}

HorizontalPodAutoscaler HpaPolicy::make_hpa(const ServiceSpec& s) const {
  HpaSpec spec;
  // The API server rejects minReplicas 0 for an HPA on Resource metrics only (scale to zero
  // needs the HPAScaleToZero gate and an Object or External metric), so the CPU HPA a user can
  // create keeps at least one pod; at 0 it would have no CPU sample to scale up on again.
  spec.min_replicas = std::max(1, s.min_replicas);
  spec.max_replicas = s.max_replicas;
  spec.target_cpu_utilization_percent = options_.target_cpu_utilization_percent;
  spec.tolerance = options_.tolerance;
  spec.behavior = options_.behavior;
  return HorizontalPodAutoscaler(spec);
}

void HpaPolicy::init(const std::vector<ServiceSpec>& services) {
  hpas_.clear();
  for (const auto& s : services) hpas_.emplace(s.name, make_hpa(s));
}

Result<void> HpaPolicy::add_service(const ServiceSpec& spec) {
  if (!hpas_.emplace(spec.name, make_hpa(spec)).second) {
    return make_error(ErrorCode::kInvalidArgument, spec.name + ": the hpa policy has it already");
  }
  return {};
}

void HpaPolicy::remove_service(std::string_view service) {
  if (auto it = hpas_.find(service); it != hpas_.end()) hpas_.erase(it);
}

void HpaPolicy::respec(const ServiceSpec& spec) {
  auto it = hpas_.find(spec.name);
  if (it == hpas_.end()) return;
  // At least one pod, as at init().
  it->second.set_replica_bounds(std::max(1, spec.min_replicas), std::max(1, spec.max_replicas));
}

Plan HpaPolicy::decide(const Snapshot& snapshot, Clock::TimePoint now) {
  Plan plan{now, {}};
  std::vector<PodSample> pods;
  for (const auto& svc : snapshot.services) {
    auto it = hpas_.find(svc.name);
    if (it == hpas_.end()) continue;
    pods.clear();
    for (const auto& r : svc.replicas) pods.push_back(pod_sample(r));
    HpaDecision d = it->second.reconcile(now, svc.desired_replicas, pods);
    plan.decisions.push_back(Decision{svc.name, d.desired, "hpa: " + d.reason});
  }
  return plan;
}

KpaPolicy::KpaPolicy(KpaPolicyOptions options) : options_(std::move(options)) {}

KpaSpec KpaPolicy::kpa_spec(const ServiceSpec& s) const {
  KpaSpec spec = options_.spec;
  // Upstream's ResolveMetricTarget: containerConcurrency, or without one the default target
  // (container-concurrency-target-default, 100), times the utilisation.
  constexpr double kConcurrencyTargetDefault = 100;
  spec.target_concurrency =
      (s.max_concurrency > 0 ? s.max_concurrency : kConcurrencyTargetDefault) *
      options_.target_utilization;
  spec.min_scale = s.min_replicas;
  spec.max_scale = s.max_replicas;
  return spec;
}

void KpaPolicy::init(const std::vector<ServiceSpec>& services) {
  services_.clear();
  // The autoscaler comes with the first snapshot.
  for (const auto& s : services) services_[s.name].spec = kpa_spec(s);
}

Result<void> KpaPolicy::add_service(const ServiceSpec& spec) {
  if (services_.contains(spec.name)) {
    return make_error(ErrorCode::kInvalidArgument, spec.name + ": the kpa policy has it already");
  }
  services_[spec.name].spec = kpa_spec(spec);
  return {};
}

void KpaPolicy::remove_service(std::string_view service) {
  if (auto it = services_.find(service); it != services_.end()) services_.erase(it);
}

void KpaPolicy::respec(const ServiceSpec& spec) {
  auto it = services_.find(spec.name);
  if (it == services_.end()) return;
  const int min_replicas = spec.min_replicas;
  const int max_replicas = spec.max_replicas;
  // The revision's min-scale and max-scale annotations changed: the autoscaler keeps its metric
  // windows and panic state, and bounds its next decision by the new ones.
  PerService& ps = it->second;
  ps.spec.min_scale = min_replicas;
  ps.spec.max_scale = max_replicas;
  if (ps.autoscaler) ps.autoscaler->set_scale_bounds(min_replicas, max_replicas);
}

KnativeAutoscaler& KpaPolicy::autoscaler_for(PerService& ps, const ServiceObservation& svc,
                                             Clock::TimePoint now) {
  if (!ps.autoscaler) {
    // Like upstream's newAutoscaler: with more than one ready pod and no metric history yet it
    // starts in panic, holding the ready pods until a stable window shows what the load needs.
    ps.autoscaler =
        std::make_unique<KnativeAutoscaler>(ps.spec, now, svc.count(ReplicaState::kReady));
    ps.autoscaler->set_explain(false);  // explained in decide() when the count changes
  }
  return *ps.autoscaler;
}

void KpaPolicy::observe(const Snapshot& snapshot) {
  for (const auto& svc : snapshot.services) {
    auto it = services_.find(svc.name);
    if (it == services_.end() || !svc.last_second.valid) continue;
    PerService& ps = it->second;
    if (svc.last_second.at <= ps.last_recorded) continue;  // already seen this second
    // The collector stores the second's sample in the bucket of the second it describes. A world
    // observed less often than every second (the simulator at --step 15s) gives one sample a
    // step: it stands for the seconds since the last one too, which Knative's queue-proxies would
    // each have reported, rather than leaving them empty buckets that average as no load (at a
    // 15 s step the kpa served 56 % within the SLO, not 99.99 %). A gap of a stable window or
    // more is a new start, as the averager takes it.
    // Counted in whole seconds (the averager's buckets): a sample a little more than a second
    // after the last (a real clock's tick running late) fills one second, not two.
    // A sample less than a second after the last within the same whole second (a decision tick,
    // which observes too, a few ms early) describes the second already recorded: the collector
    // scrapes once a second, so it is not added to that second's bucket a second time.
    const Clock::Duration gap = svc.last_second.at - ps.last_recorded;
    std::int64_t seconds = 1;
    if (gap < options_.spec.stable_window) {
      using std::chrono::floor;
      seconds = (floor<std::chrono::seconds>(svc.last_second.at.time_since_epoch()) -
                 floor<std::chrono::seconds>(ps.last_recorded.time_since_epoch()))
                    .count();
      if (seconds < 1 && ps.last_recorded != Clock::TimePoint{}) {
        // Except at zero: upstream records the activator's stat of the requests it holds and
        // then pokes the autoscaler (decide_early), which must find them in its window. What the
        // second gained over its first sample is added to it, so that it is not counted twice.
        if (!pokes(svc) || svc.last_second.concurrency <= ps.recorded.concurrency) continue;
        autoscaler_for(ps, svc, snapshot.time)
            .record(svc.last_second.at - std::chrono::seconds(1),
                    svc.last_second.concurrency - ps.recorded.concurrency,
                    std::max(0.0, svc.last_second.requests - ps.recorded.requests));
        ps.last_recorded = svc.last_second.at;
        ps.recorded = svc.last_second;
        continue;
      }
      seconds = std::max<std::int64_t>(1, seconds);
    }
    KnativeAutoscaler& autoscaler = autoscaler_for(ps, svc, snapshot.time);
    for (std::int64_t k = seconds; k >= 1; --k) {
      autoscaler.record(svc.last_second.at - k * std::chrono::seconds(1),
                        svc.last_second.concurrency, svc.last_second.requests);
    }
    ps.last_recorded = svc.last_second.at;
    ps.recorded = svc.last_second;
  }
}

bool KpaPolicy::pokes(const ServiceObservation& svc) {
  return svc.desired_replicas == 0 && svc.last_second.valid && svc.last_second.concurrency > 0;
}

bool KpaPolicy::decide_early(const Snapshot& snapshot) const {
  for (const auto& svc : snapshot.services) {
    if (pokes(svc) && services_.contains(svc.name)) return true;
  }
  return false;
}

Plan KpaPolicy::decide(const Snapshot& snapshot, Clock::TimePoint now) {
  Plan plan{now, {}};
  for (const auto& svc : snapshot.services) {
    auto it = services_.find(svc.name);
    if (it == services_.end()) continue;
    KnativeAutoscaler& autoscaler = autoscaler_for(it->second, svc, now);
    auto d = autoscaler.scale(now, svc.count(ReplicaState::kReady));
    if (!d.valid) continue;  // no data: keep the current scale
    // The grace keeps a pod of a revision going to zero; one at zero (a service started with no
    // replica, replicas.initial 0) has none to keep and stays there, as upstream's inactive
    // PodAutoscaler does.
    if (d.zero_grace && svc.desired_replicas == 0) continue;
    // An unchanged count needs no decision (nor the cost of its words).
    if (d.desired == svc.desired_replicas) continue;
    plan.decisions.push_back(Decision{svc.name, d.desired, "kpa: " + autoscaler.explain(d)});
  }
  return plan;
}

}  // namespace prescale::scaling
