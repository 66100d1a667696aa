// The Kubernetes HPA and Knative KPA ports (hpa.h, kpa.h) as Policies: one autoscaler per
// service, fed from the Snapshot exactly as the real controllers are fed from their metric
// pipelines (metrics-server CPU samples for the HPA, per-second queue-proxy concurrency for
// the KPA).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "scaling/hpa.h"
#include "scaling/kpa.h"
#include "scaling/policy.h"

namespace prescale::scaling {

struct HpaPolicyOptions {
  int target_cpu_utilization_percent = 80;  // the API default; users often pick 50-70
  Clock::Duration sync_period{std::chrono::seconds(15)};
  // nullopt: an HPA without `behavior`, as `kubectl autoscale` or a plain autoscaling/v2 object
  // creates it (upstream autoscaling/v2 defaults.go fills behavior only when the object has one),
  // normalised the legacy way: the maximum recommendation of the last 300 s, inclusive. Set it,
  // e.g. to HpaBehavior::defaults(), for an HPA that declares `behavior`.
  std::optional<HpaBehavior> behavior = std::nullopt;
  double tolerance = 0.1;
};

class HpaPolicy final : public Policy {
 public:
  explicit HpaPolicy(HpaPolicyOptions options = {});
  std::string_view name() const override { return "hpa"; }
  Clock::Duration period() const override { return options_.sync_period; }
  void init(const std::vector<ServiceSpec>& services) override;
  Plan decide(const Snapshot& snapshot, Clock::TimePoint now) override;
  // The bounds (its CPU target is the policy's, not the service's).
  void respec(const ServiceSpec& spec) override;
  // A new HorizontalPodAutoscaler, as `kubectl apply` of a new one creates it (no recommendations
  // yet); a removed one is deleted.
  Result<void> add_service(const ServiceSpec& spec) override;
  void remove_service(std::string_view service) override;

 private:
  HorizontalPodAutoscaler make_hpa(const ServiceSpec& s) const;
  HpaPolicyOptions options_;
  std::map<std::string, HorizontalPodAutoscaler, std::less<>> hpas_;
};

struct KpaPolicyOptions {
  KpaSpec spec;  // Knative's defaults; target_concurrency is replaced per service (below)
  // The per-pod target is a service's max_concurrency (containerConcurrency), or Knative's
  // default target of 100 without one, times this utilisation, as Knative computes it.
  double target_utilization = 0.7;
};

class KpaPolicy final : public Policy {
 public:
  explicit KpaPolicy(KpaPolicyOptions options = {});
  std::string_view name() const override { return "kpa"; }
  Clock::Duration period() const override { return options_.spec.tick; }
  // The collector scrapes every second.
  Clock::Duration observe_interval() const override { return std::chrono::seconds(1); }
  void init(const std::vector<ServiceSpec>& services) override;
  void observe(const Snapshot& snapshot) override;
  // Upstream's MultiScaler.Poke: a revision at zero whose stat shows requests in flight (the
  // activator's, holding them) is decided on at once, not at the next tick.
  bool decide_early(const Snapshot& snapshot) const override;
  Plan decide(const Snapshot& snapshot, Clock::TimePoint now) override;
  // The bounds (its target is the service's concurrency, which does not change while it runs).
  void respec(const ServiceSpec& spec) override;
  // A new revision's autoscaler, made at the first snapshot that shows it; a removed one goes.
  Result<void> add_service(const ServiceSpec& spec) override;
  void remove_service(std::string_view service) override;

 private:
  KpaSpec kpa_spec(const ServiceSpec& s) const;
  struct PerService {
    KpaSpec spec;
    // Created at the first snapshot that shows the service, with its ready pods then (upstream
    // starts a new autoscaler in panic when the revision already has more than one).
    std::unique_ptr<KnativeAutoscaler> autoscaler;
    Clock::TimePoint last_recorded{};
    SecondMetrics recorded;  // the sample last recorded (at last_recorded)
  };
  // Whether `svc` is at zero with requests in flight (upstream's MultiScaler.Poke condition).
  static bool pokes(const ServiceObservation& svc);
  static KnativeAutoscaler& autoscaler_for(PerService& ps, const ServiceObservation& svc,
                                           Clock::TimePoint now);
  KpaPolicyOptions options_;
  std::map<std::string, PerService, std::less<>> services_;
};

}  // namespace prescale::scaling
