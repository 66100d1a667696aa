#include "scaling/hpa.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace prescale::scaling {
namespace {

using std::chrono::seconds;

constexpr int kIntMax = std::numeric_limits<int>::max();
constexpr int kIntMin = std::numeric_limits<int>::min();

// Go's int32(x) for the values the HPA produces, saturating instead of wrapping.
int to_int(double x) {
  if (std::isnan(x)) return 0;
  if (x >= static_cast<double>(kIntMax)) return kIntMax;
  if (x <= static_cast<double>(kIntMin)) return kIntMin;
  return static_cast<int>(x);
}

int to_int(std::int64_t x) {
  return static_cast<int>(std::clamp<std::int64_t>(x, kIntMin, kIntMax));
}

// resource.Quantity.MilliValue() rounds up to a whole milli-unit. Values that are integral up to
// floating-point noise (0.3 * 1000) are taken as that integer rather than rounded up.
std::int64_t ceil_units(double v) {
  const double r = std::round(v);
  if (std::abs(v - r) < 1e-6) return static_cast<std::int64_t>(r);
  return static_cast<std::int64_t>(std::ceil(v));
}

std::string fmt(double v, int decimals) {
  std::array<char, 64> buf{};
  std::snprintf(buf.data(), buf.size(), "%.*f", decimals, v);
  return buf.data();
}

std::string secs(Clock::Duration d) {
  const double s = to_seconds(d);
  return (s == std::floor(s) ? std::to_string(static_cast<long long>(s)) : fmt(s, 3)) + "s";
}

std::string describe(const HpaScalingPolicy& p) {
  return p.type == HpaScalingPolicy::Type::kPods
             ? "Pods policy (" + std::to_string(p.value) + " per " + secs(p.period) + ")"
             : "Percent policy (" + std::to_string(p.value) + "% per " + secs(p.period) + ")";
}

struct Utilization {
  double ratio = 0;
  int percent = 0;
  std::int64_t raw_average = 0;
};

// metricsclient.GetResourceUtilizationRatio over (pod index, usage) entries.
Utilization utilization_of(const std::vector<std::pair<size_t, std::int64_t>>& metrics,
                           const std::vector<std::int64_t>& requests, int target) {
  std::int64_t usage_total = 0;
  std::int64_t request_total = 0;
  for (const auto& [pod, usage] : metrics) {
    usage_total += usage;
    request_total += requests[pod];
  }
  Utilization u;
  u.percent = to_int(usage_total * 100 / request_total);  // integer division, as upstream
  u.ratio = static_cast<double>(u.percent) / static_cast<double>(target);
  u.raw_average = usage_total / static_cast<std::int64_t>(metrics.size());
  return u;
}

// Upstream replica_calculator.go Tolerances.isWithin: `(1.0-t.scaleDown) <= ratio && ratio <=
// (1.0+t.scaleUp)`. Not |1 - ratio| <= t: in doubles |1 - 1.1| > 0.1, which would scale up.
bool within_tolerance(double ratio, double tolerance) {
  return 1.0 - tolerance <= ratio && ratio <= 1.0 + tolerance;
}

}  // namespace

HpaBehavior HpaBehavior::defaults() {
  using Type = HpaScalingPolicy::Type;
  HpaBehavior b;
  b.scale_up.stabilization_window = seconds(0);
  b.scale_up.select_policy = HpaScalingRules::Select::kMax;
  b.scale_up.policies = {{Type::kPods, 4, seconds(15)}, {Type::kPercent, 100, seconds(15)}};
  b.scale_down.stabilization_window = seconds(300);
  b.scale_down.select_policy = HpaScalingRules::Select::kMax;
  b.scale_down.policies = {{Type::kPercent, 100, seconds(15)}};
  return b;
}

Result<void> validate_hpa_spec(const HpaSpec& spec) {
  auto bad = [](std::string what) {
    return make_error(ErrorCode::kInvalidArgument, std::move(what));
  };
  // minReplicas 0 is the alpha HPAScaleToZero gate (External/Object metrics only upstream).
  if (spec.min_replicas < 0) return bad("hpa: min_replicas must be >= 0");
  if (spec.max_replicas < 1 || spec.max_replicas < spec.min_replicas) {
    return bad("hpa: max_replicas must be >= 1 and >= min_replicas");
  }
  if (spec.target_cpu_utilization_percent <= 0) {
    return bad("hpa: target_cpu_utilization_percent must be > 0");
  }
  if (!(spec.tolerance >= 0) || !std::isfinite(spec.tolerance)) {
    return bad("hpa: tolerance must be a finite number >= 0");
  }
  if (spec.cpu_initialization_period < Clock::Duration::zero() ||
      spec.initial_readiness_delay < Clock::Duration::zero() ||
      spec.downscale_stabilization < Clock::Duration::zero()) {
    return bad("hpa: controller periods must not be negative");
  }
  if (!spec.behavior) return {};
  const std::array<std::pair<const char*, const HpaScalingRules*>, 2> directions = {
      {{"scale_up", &spec.behavior->scale_up}, {"scale_down", &spec.behavior->scale_down}}};
  for (const auto& [name, rules] : directions) {
    const std::string where = std::string("hpa: behavior.") + name;
    if (rules->stabilization_window < Clock::Duration::zero() ||
        rules->stabilization_window > seconds(3600)) {
      return bad(where + ".stabilization_window must be in [0, 3600] s");
    }
    if (rules->policies.empty()) return bad(where + ": must specify at least one policy");
    for (const auto& p : rules->policies) {
      if (p.value <= 0) return bad(where + ": policy value must be > 0");
      if (p.period <= Clock::Duration::zero() || p.period > seconds(1800)) {
        return bad(where + ": policy period must be in (0, 1800] s");
      }
    }
  }
  return {};
}

ReplicaCalculation calc_cpu_replicas(Clock::TimePoint now, int current_replicas,
                                     int target_utilization, double tolerance,
                                     std::span<const PodSample> pods,
                                     Clock::Duration cpu_init_period,
                                     Clock::Duration initial_readiness_delay) {
  ReplicaCalculation out;
  if (target_utilization <= 0) {
    out.reason = "invalid cpu utilization target " + std::to_string(target_utilization) + "%";
    return out;
  }
  if (pods.empty()) {
    out.reason = "no pods returned by selector while calculating replica count";
    return out;
  }
  if (std::none_of(pods.begin(), pods.end(),
                   [](const PodSample& p) { return p.cpu_usage_millicores.has_value(); })) {
    out.reason =
        "unable to get metrics for resource cpu: no metrics returned from resource "
        "metrics API";
    return out;
  }

  const internal::PodGroups groups =
      internal::group_pods(now, pods, cpu_init_period, initial_readiness_delay);
  std::vector<std::pair<size_t, std::int64_t>> metrics;  // pod index -> usage (millicores)
  for (size_t i : groups.ready) metrics.emplace_back(i, ceil_units(*pods[i].cpu_usage_millicores));
  const std::vector<size_t>& unready = groups.unready;
  const std::vector<size_t>& missing = groups.missing;
  const int ready_pod_count = static_cast<int>(groups.ready.size());
  if (metrics.empty()) {
    out.reason = "did not receive metrics for targeted pods (pods might be unready)";
    return out;
  }
  std::vector<std::int64_t> requests(pods.size());
  for (size_t i = 0; i < pods.size(); ++i) {
    requests[i] = ceil_units(pods[i].cpu_request_millicores);
    if (requests[i] <= 0) {
      out.reason = "missing request for cpu in pod " + pods[i].name;
      return out;
    }
  }

  const Utilization u = utilization_of(metrics, requests, target_utilization);
  out.valid = true;
  out.utilization_percent = u.percent;
  out.raw_average_millicores = u.raw_average;
  const std::string observed = "cpu utilization " + std::to_string(u.percent) + "% vs target " +
                               std::to_string(target_utilization) + "%";

  const bool scale_up_with_unready = !unready.empty() && u.ratio > 1.0;
  if (!scale_up_with_unready && missing.empty()) {
    if (within_tolerance(u.ratio, tolerance)) {
      out.replicas = current_replicas;
      out.reason = observed + ": within tolerance " + fmt(tolerance, 2);
      return out;
    }
    out.replicas = to_int(std::ceil(u.ratio * static_cast<double>(ready_pod_count)));
    out.reason = observed + " over " + std::to_string(ready_pod_count) + " ready pods";
    return out;
  }

  // Rebalance: assume the least favourable usage for pods we know nothing reliable about.
  if (!missing.empty()) {
    if (u.ratio < 1.0) {
      // Scale-down: missing pods use their whole request, or the target if it is above 100 %.
      const std::int64_t fallback = std::max(100, target_utilization);
      for (size_t i : missing) metrics.emplace_back(i, requests[i] * fallback / 100);
    } else if (u.ratio > 1.0) {
      for (size_t i : missing) metrics.emplace_back(i, 0);
    }
  }
  if (scale_up_with_unready) {
    for (size_t i : unready) metrics.emplace_back(i, 0);
  }
  const double new_ratio = utilization_of(metrics, requests, target_utilization).ratio;
  const std::string rebalanced = observed + "; with " + std::to_string(missing.size()) +
                                 " missing and " + std::to_string(unready.size()) +
                                 " unready pods rebalanced the ratio is " + fmt(new_ratio, 3);
  if (within_tolerance(new_ratio, tolerance) || (u.ratio < 1.0 && new_ratio > 1.0) ||
      (u.ratio > 1.0 && new_ratio < 1.0)) {
    out.replicas = current_replicas;
    out.reason = rebalanced + ": within tolerance or direction reversed, keep current";
    return out;
  }
  const int new_replicas = to_int(std::ceil(new_ratio * static_cast<double>(metrics.size())));
  if ((new_ratio < 1.0 && new_replicas > current_replicas) ||
      (new_ratio > 1.0 && new_replicas < current_replicas)) {
    out.replicas = current_replicas;
    out.reason = rebalanced + ": pod count would reverse the direction, keep current";
    return out;
  }
  out.replicas = new_replicas;
  out.reason = rebalanced + " over " + std::to_string(metrics.size()) + " pods";
  return out;
}

int calc_external_average_value_replicas(int current_replicas, double metric_total,
                                         double average_value_target, double tolerance) {
  // GetExternalPerPodMetricReplicas works on milli-units (Quantity.MilliValue()).
  const double usage = static_cast<double>(ceil_units(metric_total * 1000.0));
  const double target = static_cast<double>(ceil_units(average_value_target * 1000.0));
  const double ratio = usage / (target * static_cast<double>(current_replicas));
  if (!within_tolerance(ratio, tolerance)) return to_int(std::ceil(usage / target));
  return current_replicas;
}

HorizontalPodAutoscaler::HorizontalPodAutoscaler(HpaSpec spec) : spec_(std::move(spec)) {}

template <typename ComputeProposal>
HpaDecision HorizontalPodAutoscaler::reconcile_with(Clock::TimePoint now, int current_replicas,
                                                    ComputeProposal&& compute) {
  // recordInitialRecommendation: the first sync remembers the current size, so that the
  // stabilisation window starts from it.
  if (recommendations_.empty()) recommendations_.push_back({current_replicas, now});

  const int min_replicas = spec_.min_replicas;
  const int max_replicas = spec_.max_replicas;
  HpaDecision d;
  int desired = 0;
  if (current_replicas == 0 && min_replicas != 0) {
    d.desired = current_replicas;
    d.reason = "scaling disabled: the target's replica count is zero";
    return d;
  }
  if (current_replicas > max_replicas) {
    desired = max_replicas;
    d.reason = "current replicas above max: clamped to max " + std::to_string(max_replicas);
  } else if (current_replicas < min_replicas) {
    desired = min_replicas;
    d.reason = "current replicas below min: clamped to min " + std::to_string(min_replicas);
  } else {
    const Proposal p = compute();
    d.utilization_percent = p.utilization_percent;
    if (!p.valid) {
      d.desired = current_replicas;
      d.reason = "no change: " + p.reason;
      return d;
    }
    d.proposal = p.replicas;
    desired = std::max(0, p.replicas);
    d.reason = p.reason + ": proposes " + std::to_string(desired);
    int stabilized = 0;
    internal::Limited limited;
    if (!spec_.behavior) {
      stabilized =
          internal::stabilize_legacy(recommendations_, now, spec_.downscale_stabilization, desired);
      if (stabilized != desired) {
        d.reason += "; stabilized (max of last " + secs(spec_.downscale_stabilization) + ") to " +
                    std::to_string(stabilized);
      }
      limited = internal::clamp_legacy(current_replicas, stabilized, min_replicas, max_replicas);
    } else {
      const HpaBehavior& b = *spec_.behavior;
      stabilized =
          internal::stabilize_with_behavior(recommendations_, now, b, current_replicas, desired);
      if (stabilized != desired) {
        d.reason += desired >= current_replicas
                        ? "; stabilized (min of last " + secs(b.scale_up.stabilization_window)
                        : "; stabilized (max of last " + secs(b.scale_down.stabilization_window);
        d.reason += ") to " + std::to_string(stabilized);
      }
      limited =
          internal::limit_with_behavior(now, current_replicas, stabilized, min_replicas,
                                        max_replicas, b, scale_up_events_, scale_down_events_);
    }
    if (limited.replicas != stabilized) d.reason += "; " + limited.reason;
    desired = limited.replicas;
  }

  if (desired != current_replicas && spec_.behavior) {
    // storeScaleEvent (only kept when `behavior` is set: nothing else reads the events).
    if (desired > current_replicas) {
      internal::store_scale_event(scale_up_events_, now, spec_.behavior->scale_up,
                                  desired - current_replicas);
    } else {
      internal::store_scale_event(scale_down_events_, now, spec_.behavior->scale_down,
                                  current_replicas - desired);
    }
  }
  d.desired = desired;
  return d;
}

HpaDecision HorizontalPodAutoscaler::reconcile(Clock::TimePoint now, int current_replicas,
                                               std::span<const PodSample> pods) {
  return reconcile_with(now, current_replicas, [&] {
    const ReplicaCalculation calc = calc_cpu_replicas(
        now, current_replicas, spec_.target_cpu_utilization_percent, spec_.tolerance, pods,
        spec_.cpu_initialization_period, spec_.initial_readiness_delay);
    Proposal p{calc.valid, calc.replicas, calc.reason, std::nullopt};
    if (calc.valid) p.utilization_percent = calc.utilization_percent;
    return p;
  });
}

HpaDecision HorizontalPodAutoscaler::reconcile_external(Clock::TimePoint now, int current_replicas,
                                                        double metric_total,
                                                        double average_value_target) {
  return reconcile_with(now, current_replicas, [&] {
    Proposal p;
    if (!(average_value_target > 0) || !std::isfinite(metric_total)) {
      p.reason = "invalid external metric or AverageValue target";
      return p;
    }
    p.valid = true;
    p.replicas = calc_external_average_value_replicas(current_replicas, metric_total,
                                                      average_value_target, spec_.tolerance);
    p.reason = "external metric " + fmt(metric_total, 3) + " vs average value target " +
               fmt(average_value_target, 3) + " per pod";
    return p;
  });
}

namespace internal {

PodGroups group_pods(Clock::TimePoint now, std::span<const PodSample> pods,
                     Clock::Duration cpu_init_period, Clock::Duration initial_readiness_delay) {
  // Ignored (deleted or Failed) pods are dropped; Pending pods and pods whose CPU sample may
  // still reflect start-up are unready; pods without a sample are missing.
  PodGroups g;
  for (size_t i = 0; i < pods.size(); ++i) {
    const PodSample& pod = pods[i];
    if (pod.being_deleted || pod.phase == PodSample::Phase::kFailed) {
      g.ignored.push_back(i);
      continue;
    }
    if (pod.phase == PodSample::Phase::kPending) {
      g.unready.push_back(i);
      continue;
    }
    if (!pod.cpu_usage_millicores) {
      g.missing.push_back(i);
      continue;
    }
    bool unready = false;
    if (pod.start_time + cpu_init_period > now) {
      // Still in the initialisation period: drop the sample if the pod is unready or no full
      // metrics window has passed since its last readiness transition.
      unready = !pod.ready || pod.metric_timestamp < pod.ready_transition_time + pod.metric_window;
    } else {
      // Afterwards only if it is unready and has never been ready since it started.
      unready = !pod.ready && pod.start_time + initial_readiness_delay > pod.ready_transition_time;
    }
    (unready ? g.unready : g.ready).push_back(i);
  }
  return g;
}

int stabilize_legacy(std::vector<HpaRecommendation>& recs, Clock::TimePoint now,
                     Clock::Duration window, int desired) {
  int max_recommendation = desired;
  std::optional<size_t> old_sample;
  const Clock::TimePoint cutoff = now - window;
  for (size_t i = 0; i < recs.size(); ++i) {
    if (recs[i].at < cutoff) {
      old_sample = i;
    } else {
      max_recommendation = std::max(max_recommendation, recs[i].replicas);
    }
  }
  if (old_sample) {
    recs[*old_sample] = {desired, now};
  } else {
    recs.push_back({desired, now});
  }
  return max_recommendation;
}

Limited clamp_legacy(int current, int desired, int min_replicas, int max_replicas) {
  // Guards against a bogus usage spike (kubernetes issue #32304): at most double per sync.
  const int scale_up_limit = to_int(std::max(2.0 * current, 4.0));
  int max_allowed = max_replicas;
  std::string limit_reason =
      "clamped to max " + std::to_string(max_replicas) + " (TooManyReplicas)";
  if (max_replicas > scale_up_limit) {
    max_allowed = scale_up_limit;
    limit_reason = "scale-up limit max(2 x current, 4) = " + std::to_string(scale_up_limit) +
                   " (ScaleUpLimit)";
  }
  if (desired < min_replicas) {
    return {min_replicas, "clamped to min " + std::to_string(min_replicas) + " (TooFewReplicas)"};
  }
  if (desired > max_allowed) return {max_allowed, limit_reason};
  return {desired, "DesiredWithinRange"};
}

int stabilize_with_behavior(std::vector<HpaRecommendation>& recs, Clock::TimePoint now,
                            const HpaBehavior& behavior, int current, int desired) {
  int up_recommendation = desired;
  int down_recommendation = desired;
  const Clock::TimePoint up_cutoff = now - behavior.scale_up.stabilization_window;
  const Clock::TimePoint down_cutoff = now - behavior.scale_down.stabilization_window;
  std::optional<size_t> old_sample;
  for (size_t i = 0; i < recs.size(); ++i) {
    const HpaRecommendation& rec = recs[i];
    if (rec.at > up_cutoff) up_recommendation = std::min(up_recommendation, rec.replicas);
    if (rec.at > down_cutoff) down_recommendation = std::max(down_recommendation, rec.replicas);
    if (rec.at < up_cutoff && rec.at < down_cutoff) old_sample = i;
  }
  int recommendation = current;
  if (recommendation < up_recommendation) recommendation = up_recommendation;
  if (recommendation > down_recommendation) recommendation = down_recommendation;
  if (old_sample) {
    recs[*old_sample] = {desired, now};
  } else {
    recs.push_back({desired, now});
  }
  return recommendation;
}

int replicas_changed_in_period(std::span<const HpaScaleEvent> events, Clock::TimePoint now,
                               Clock::Duration period) {
  const Clock::TimePoint cutoff = now - period;
  int replicas = 0;
  for (const HpaScaleEvent& e : events) {
    if (e.at > cutoff) replicas += e.replica_change;
  }
  return replicas;
}

namespace {

// The shared loop of both limits: one proposal per policy from the replica count at the start
// of the policy's period, combined with `pick` from `initial`.
template <typename Propose, typename Pick>
int limit_from_policies(Clock::TimePoint now, int current, std::span<const HpaScaleEvent> up_events,
                        std::span<const HpaScaleEvent> down_events, const HpaScalingRules& rules,
                        int initial, Propose propose, Pick pick, std::string* policy) {
  int result = initial;
  for (const HpaScalingPolicy& p : rules.policies) {
    const int added = replicas_changed_in_period(up_events, now, p.period);
    const int deleted = replicas_changed_in_period(down_events, now, p.period);
    const int period_start = current - added + deleted;
    const int proposed = propose(p, period_start);
    const int picked = pick(result, proposed);
    if (picked != result && policy != nullptr) *policy = describe(p);
    result = picked;
  }
  return result;
}

}  // namespace

int scale_up_limit(Clock::TimePoint now, int current, std::span<const HpaScaleEvent> up_events,
                   std::span<const HpaScaleEvent> down_events, const HpaScalingRules& rules,
                   std::string* policy) {
  using Select = HpaScalingRules::Select;
  if (rules.select_policy == Select::kDisabled) {
    if (policy != nullptr) *policy = "selectPolicy Disabled";
    return current;
  }
  auto propose = [](const HpaScalingPolicy& p, int start) {
    if (p.type == HpaScalingPolicy::Type::kPods) return start + p.value;
    // Rounded up so that a small percentage still adds a pod.
    return to_int(std::ceil(static_cast<double>(start) * (1 + static_cast<double>(p.value) / 100)));
  };
  if (rules.select_policy == Select::kMin) {
    return limit_from_policies(
        now, current, up_events, down_events, rules, kIntMax, propose,
        [](int a, int b) { return std::min(a, b); }, policy);
  }
  return limit_from_policies(
      now, current, up_events, down_events, rules, kIntMin, propose,
      [](int a, int b) { return std::max(a, b); }, policy);
}

int scale_down_limit(Clock::TimePoint now, int current, std::span<const HpaScaleEvent> up_events,
                     std::span<const HpaScaleEvent> down_events, const HpaScalingRules& rules,
                     std::string* policy) {
  using Select = HpaScalingRules::Select;
  if (rules.select_policy == Select::kDisabled) {
    if (policy != nullptr) *policy = "selectPolicy Disabled";
    return current;
  }
  auto propose = [](const HpaScalingPolicy& p, int start) {
    if (p.type == HpaScalingPolicy::Type::kPods) return start - p.value;
    return to_int(static_cast<double>(start) * (1 - static_cast<double>(p.value) / 100));
  };
  // For scale-down the smallest limit allows the biggest change: Max selects the minimum.
  if (rules.select_policy == Select::kMin) {
    return limit_from_policies(
        now, current, up_events, down_events, rules, kIntMin, propose,
        [](int a, int b) { return std::max(a, b); }, policy);
  }
  return limit_from_policies(
      now, current, up_events, down_events, rules, kIntMax, propose,
      [](int a, int b) { return std::min(a, b); }, policy);
}

Limited limit_with_behavior(Clock::TimePoint now, int current, int desired, int min_replicas,
                            int max_replicas, const HpaBehavior& behavior,
                            std::span<const HpaScaleEvent> up_events,
                            std::span<const HpaScaleEvent> down_events) {
  if (desired > current) {
    std::string policy;
    int limit = scale_up_limit(now, current, up_events, down_events, behavior.scale_up, &policy);
    // Past events may put the limit below the current count: then just do not scale up.
    if (limit < current) limit = current;
    int max_allowed = max_replicas;
    std::string reason = "clamped to max " + std::to_string(max_replicas) + " (TooManyReplicas)";
    if (max_allowed > limit) {
      max_allowed = limit;
      reason = "rate limited by " + policy + " to " + std::to_string(limit) + " (ScaleUpLimit)";
    }
    if (desired > max_allowed) return {max_allowed, reason};
  } else if (desired < current) {
    std::string policy;
    int limit =
        scale_down_limit(now, current, up_events, down_events, behavior.scale_down, &policy);
    if (limit > current) limit = current;
    int min_allowed = min_replicas;
    std::string reason = "clamped to min " + std::to_string(min_replicas) + " (TooFewReplicas)";
    if (min_allowed < limit) {
      min_allowed = limit;
      reason = "rate limited by " + policy + " to " + std::to_string(limit) + " (ScaleDownLimit)";
    }
    if (desired < min_allowed) return {min_allowed, reason};
  }
  return {desired, "DesiredWithinRange"};
}

void store_scale_event(std::vector<HpaScaleEvent>& events, Clock::TimePoint now,
                       const HpaScalingRules& rules, int change) {
  Clock::Duration longest{0};
  for (const HpaScalingPolicy& p : rules.policies) longest = std::max(longest, p.period);
  const Clock::TimePoint cutoff = now - longest;
  std::optional<size_t> outdated;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].at < cutoff) events[i].outdated = true;
    if (events[i].outdated) outdated = i;
  }
  const HpaScaleEvent event{change, now, false};
  if (outdated) {
    events[*outdated] = event;
  } else {
    events.push_back(event);
  }
}

}  // namespace internal
}  // namespace prescale::scaling
