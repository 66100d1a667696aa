// The Kubernetes HorizontalPodAutoscaler (HPA) as a pure algorithm: the replica calculator of
// kubernetes/kubernetes pkg/controller/podautoscaler/replica_calculator.go and the reconcile /
// normalisation logic of horizontal.go (autoscaling/v2, with and without `behavior`).
//
// One HorizontalPodAutoscaler object is one HPA resource: it keeps the controller's per-HPA
// memory (timestamped recommendations for stabilisation, scale events for rate limits). Nothing
// here reads a clock, a metrics API or a pod lister: the caller passes the time, the target's
// spec.replicas and the pods as the controller would see them. docs/baselines.md explains every
// parameter, its default, and the few places where this port differs from upstream.
//
// Thread safety: none; one object per HPA, driven by one controller loop.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::scaling {

// One pod matched by the HPA's selector, as seen through the pod lister and the resource
// metrics API (metrics-server).
struct PodSample {
  std::string name;
  enum class Phase { kPending, kRunning, kSucceeded, kFailed } phase = Phase::kRunning;
  bool being_deleted = false;              // metadata.deletionTimestamp is set
  bool ready = true;                       // status of the Ready condition
  Clock::TimePoint start_time;             // status.startTime
  Clock::TimePoint ready_transition_time;  // lastTransitionTime of the Ready condition
  // The pod's CPU usage over the metrics window, millicores; nullopt = no metric for the pod.
  std::optional<double> cpu_usage_millicores;
  Clock::TimePoint metric_timestamp;                        // end of the metrics window
  Clock::Duration metric_window{std::chrono::seconds(30)};  // metrics-server's window
  double cpu_request_millicores = 1000;                     // sum of the containers' requests
};

struct HpaScalingPolicy {
  enum class Type { kPods, kPercent };
  Type type = Type::kPods;
  int value = 0;                                     // pods, or percent of periodStart
  Clock::Duration period{std::chrono::seconds(15)};  // periodSeconds
};

struct HpaScalingRules {
  Clock::Duration stabilization_window{0};  // stabilizationWindowSeconds
  enum class Select { kMax, kMin, kDisabled };
  Select select_policy = Select::kMax;
  std::vector<HpaScalingPolicy> policies;
};

struct HpaBehavior {
  HpaScalingRules scale_up;
  HpaScalingRules scale_down;
  // The API defaults: scale up with no stabilisation, at most max(4 pods, 100 %) per 15 s;
  // scale down after a 300 s stabilisation window, at most 100 % per 15 s.
  static HpaBehavior defaults();
};

struct HpaSpec {
  int min_replicas = 1;
  int max_replicas = 10;
  int target_cpu_utilization_percent = 80;  // of the pods' CPU requests
  // kube-controller-manager flags (--horizontal-pod-autoscaler-*).
  double tolerance = 0.1;
  Clock::Duration cpu_initialization_period{std::chrono::minutes(5)};
  Clock::Duration initial_readiness_delay{std::chrono::seconds(30)};
  Clock::Duration downscale_stabilization{std::chrono::minutes(5)};  // used without `behavior`
  // nullopt: the legacy normalisation (maximum recommendation over downscale_stabilization,
  // then clamp to [min, min(max, max(2 * current, 4))]).
  std::optional<HpaBehavior> behavior;
};

// The API server's validation of the fields above (min ≥ 0 — 0 needs the HPAScaleToZero gate
// upstream, and a CPU-only HPA keeps one pod: HpaPolicy —, max ≥ min, target > 0,
// behavior: windows in [0, 3600] s, at least one policy per direction, values > 0, periods in
// (0, 1800] s) plus sane controller flags.
Result<void> validate_hpa_spec(const HpaSpec& spec);

struct HpaDecision {
  int desired = 0;     // the replica count to set (== current when nothing changes)
  std::string reason;  // e.g. "cpu utilization 93% above target 80% ...; rate limited by ..."
  // The metric's proposal before normalisation; -1 when metrics were not consulted.
  int proposal = -1;
  std::optional<int> utilization_percent;  // CPU, when the calculator ran
};

// What upstream's ReplicaCalculator.GetResourceReplicas returns for a CPU utilisation target.
struct ReplicaCalculation {
  int replicas = 0;
  int utilization_percent = 0;              // int(Σ usage · 100 / Σ requests), ready pods only
  std::int64_t raw_average_millicores = 0;  // Σ usage / number of pods with metrics
  bool valid = false;  // false: upstream returns an error and the HPA does not scale
  std::string reason;
};

// Desired replicas for a CPU utilisation target (percent of request). `now` is the controller's
// clock (pod start times and metric timestamps are compared with it).
ReplicaCalculation calc_cpu_replicas(Clock::TimePoint now, int current_replicas,
                                     int target_utilization, double tolerance,
                                     std::span<const PodSample> pods,
                                     Clock::Duration cpu_init_period,
                                     Clock::Duration initial_readiness_delay);

// Desired replicas for an External metric with an AverageValue target (what KEDA creates):
// ceil(total / target) unless total / (target · current) is within tolerance of 1.
int calc_external_average_value_replicas(int current_replicas, double metric_total,
                                         double average_value_target, double tolerance);

// The controller's per-HPA memory, exposed so that tests can seed it like upstream's do.
struct HpaRecommendation {
  int replicas = 0;
  Clock::TimePoint at;
};
struct HpaScaleEvent {
  int replica_change = 0;  // always positive; the direction is the list it is in
  Clock::TimePoint at;
  bool outdated = false;  // older than the longest policy period; may be reused
};

class HorizontalPodAutoscaler {
 public:
  explicit HorizontalPodAutoscaler(HpaSpec spec);

  // One sync of this HPA (the controller runs one every 15 s by default) with CPU utilisation as
  // the metric. `current_replicas` is the scale target's spec.replicas. The decision is assumed
  // to be applied: a change is recorded as a scale event for the `behavior` rate limits.
  HpaDecision reconcile(Clock::TimePoint now, int current_replicas,
                        std::span<const PodSample> pods);
  // The same sync for an HPA whose only metric is External with an AverageValue target (KEDA's
  // ScaledObject): `metric_total` is the metric summed over its series, in the metric's unit.
  HpaDecision reconcile_external(Clock::TimePoint now, int current_replicas, double metric_total,
                                 double average_value_target);

  const HpaSpec& spec() const { return spec_; }
  // minReplicas and maxReplicas edited on the live object: the next sync clamps to them (a count
  // above the new max is brought down to it at once, as the controller does).
  void set_replica_bounds(int min_replicas, int max_replicas) {
    spec_.min_replicas = min_replicas;
    spec_.max_replicas = max_replicas;
  }
  const std::vector<HpaRecommendation>& recommendations() const { return recommendations_; }
  const std::vector<HpaScaleEvent>& scale_up_events() const { return scale_up_events_; }
  const std::vector<HpaScaleEvent>& scale_down_events() const { return scale_down_events_; }

 private:
  struct Proposal {
    bool valid = false;
    int replicas = 0;
    std::string reason;
    std::optional<int> utilization_percent;
  };
  template <typename ComputeProposal>
  HpaDecision reconcile_with(Clock::TimePoint now, int current_replicas, ComputeProposal&& compute);

  HpaSpec spec_;
  std::vector<HpaRecommendation> recommendations_;
  std::vector<HpaScaleEvent> scale_up_events_;
  std::vector<HpaScaleEvent> scale_down_events_;
};

// Upstream's normalisation steps as free functions on explicit state, so that the tests can
// re-derive horizontal_test.go's cases. Not a stable API; use HorizontalPodAutoscaler.
namespace internal {

// groupPods, as indices into `pods`.
struct PodGroups {
  std::vector<size_t> ready;    // counted, with a CPU sample
  std::vector<size_t> unready;  // Pending, or a CPU sample that may reflect start-up
  std::vector<size_t> missing;  // no CPU sample
  std::vector<size_t> ignored;  // being deleted, or Failed
};
PodGroups group_pods(Clock::TimePoint now, std::span<const PodSample> pods,
                     Clock::Duration cpu_init_period, Clock::Duration initial_readiness_delay);

struct Limited {
  int replicas = 0;
  std::string reason;  // "DesiredWithinRange", "ScaleUpLimit (...)", "TooManyReplicas", ...
};

// stabilizeRecommendation: records `desired` (reusing one entry older than the window) and
// returns the maximum recommendation not older than `window` (the new one included).
int stabilize_legacy(std::vector<HpaRecommendation>& recs, Clock::TimePoint now,
                     Clock::Duration window, int desired);
// convertDesiredReplicasWithRules: clamp to [min, min(max, max(2 · current, 4))].
Limited clamp_legacy(int current, int desired, int min_replicas, int max_replicas);

// stabilizeRecommendationWithBehaviors: clamp `current` into [min of the recommendations inside
// the scale-up window, max of those inside the scale-down window] (the new one included), then
// record `desired`, reusing one entry older than both windows.
int stabilize_with_behavior(std::vector<HpaRecommendation>& recs, Clock::TimePoint now,
                            const HpaBehavior& behavior, int current, int desired);
// Sum of replica changes of `events` strictly newer than now - period.
int replicas_changed_in_period(std::span<const HpaScaleEvent> events, Clock::TimePoint now,
                               Clock::Duration period);
// calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors. `policy` (if
// given) receives a description of the policy that set the limit.
int scale_up_limit(Clock::TimePoint now, int current, std::span<const HpaScaleEvent> up_events,
                   std::span<const HpaScaleEvent> down_events, const HpaScalingRules& rules,
                   std::string* policy = nullptr);
int scale_down_limit(Clock::TimePoint now, int current, std::span<const HpaScaleEvent> up_events,
                     std::span<const HpaScaleEvent> down_events, const HpaScalingRules& rules,
                     std::string* policy = nullptr);
// convertDesiredReplicasWithBehaviorRate.
Limited limit_with_behavior(Clock::TimePoint now, int current, int desired, int min_replicas,
                            int max_replicas, const HpaBehavior& behavior,
                            std::span<const HpaScaleEvent> up_events,
                            std::span<const HpaScaleEvent> down_events);
// storeScaleEvent for one direction: marks events older than the rules' longest policy period
// as outdated and stores `change`, reusing the last outdated entry.
void store_scale_event(std::vector<HpaScaleEvent>& events, Clock::TimePoint now,
                       const HpaScalingRules& rules, int change);

}  // namespace internal
}  // namespace prescale::scaling
