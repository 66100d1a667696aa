// Policy: decides how many replicas each service should have. Implementations: hpa, kpa, aws,
// static, oracle (simulator only) and prescale. A policy never knows which world it runs in.
//
// The controller calls observe() with a snapshot every observe_interval() so policies that keep their own metric history (Knative's per-second buckets,
// AWS's hourly load) can record it, and decide() once per period(). Thread safety: a policy is
// used from the controller's thread only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "scaling/observation.h"

namespace prescale::scaling {

// What the operator declared about a service (from prescale.yaml or the simulator's setup).
struct ServiceSpec {
  std::string name;
  int min_replicas = 1;
  int max_replicas = 100;
  double capacity_rps = 100;              // per replica, at which the latency SLO is just met
  double slo_latency_p99_seconds = 0.2;
  // Requests one replica serves at once (Knative's containerConcurrency); 0 = unbounded.
  int max_concurrency = 0;
  // Admission control in front of the service (a gateway's queue_limit), seconds of queued work
  // past which a request is refused at once; 0 = none, a FIFO queue that grows without bound.
  double queue_limit_seconds = 0;
  Clock::Duration startup_time{std::chrono::seconds(60)};
};

struct Decision {
  std::string service;
  int replicas = 0;
  // Why, for the dashboard and logs, e.g. "cpu 93% > target 80%", "forecast p90 412 rps",
  // "reactive floor", "clamped to max".
  std::string reason;
};

struct Plan {
  Clock::TimePoint time;
  std::vector<Decision> decisions;  // services without a decision keep their replica count
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  // How often decide() runs (the HPA's sync period, Knative's tick, ...).
  virtual Clock::Duration period() const = 0;
  // How often the policy needs a fresh snapshot (observe()). Knative's collector reads every
  // second; a policy that only looks at scrapes is served by its decision period.
  virtual Clock::Duration observe_interval() const { return period(); }
  // Called once before the first observe() with the services it manages.
  virtual void init(const std::vector<ServiceSpec>& services) = 0;
  virtual void observe(const Snapshot& snapshot) { (void)snapshot; }
  // Asked after each observe() that falls between decisions: whether what the snapshot shows
  // cannot wait for the next period (prescale: a surge beyond what its replicas serve). The
  // controller then decides at once, and the next period counts from then.
  virtual bool decide_early(const Snapshot& snapshot) const {
    (void)snapshot;
    return false;
  }
  virtual Plan decide(const Snapshot& snapshot, Clock::TimePoint now) = 0;
  // The operator changed what a service is given while it runs (`prescale up` reloading its
  // file): its replica bounds (0 <= min <= max), SLO, seed capacity, queue limit or seed startup
  // time; its name and concurrency are as before. The controller clamps every decision to the
  // bounds anyway; a policy takes what it sizes by from here (the HPA's and Knative's clamps,
  // prescale's capacity at the SLO, its plan and its reasons) for its next decision, and what it
  // learned goes on. An unknown service is ignored, as is the call by a policy that keeps no spec.
  virtual void respec(const ServiceSpec& spec) { (void)spec; }
  // A service added while it runs (`prescale up` reloading a file that lists a new one): decided
  // on from the next decision, from what is observed of it from now on, as one init() listed.
  // Errors: kInvalidArgument for a name it has, or from a policy whose services are fixed for its
  // life (the oracle's, read from a trace's future).
  virtual Result<void> add_service(const ServiceSpec& spec) {
    return make_error(ErrorCode::kInvalidArgument,
                      spec.name + ": the " + std::string(name()) +
                          " policy's services cannot change while it runs");
  }
  // A service removed while it runs: no decision names it from now on, and what was learned of
  // it alone is forgotten. An unknown name is ignored.
  virtual void remove_service(std::string_view service) { (void)service; }
};

}  // namespace prescale::scaling
