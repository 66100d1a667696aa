// KubeWorld: the controller's World on a Kubernetes cluster, for the manifests `prescale render
// kubernetes` writes (docs/kubernetes.md). Each service is a Deployment of its name; the gateway's
// pods are labelled app.kubernetes.io/name=prescale-gateway. observe() reads:
//   replicas   the pods labelled app.kubernetes.io/part-of=prescale, one list per observation
//              (from the API server's cache): ready when Running with their Ready condition True
//              (ready since that condition's lastTransitionTime); draining once deleted
//              (metadata.deletionTimestamp), and also when not ready after being seen ready, after
//              a container restart (crash-looping), or after a minute of running (failing their
//              readiness probe): neither capacity nor capacity on the way; starting otherwise. A
//              pod that has finished (Succeeded, Failed) is left out;
//   requests   every gateway pod's /metrics (its container port named "admin"), at every
//              observation, as gateway_traffic.h reads them. Each pod's counters grow on their
//              own and the pods' growth adds up: a pod of the first list counts from its first
//              answer, one that came later, or a new process in it (a later
//              process_start_time_seconds with counters gone down or a container restart), from
//              zero. A look at which a serving gateway pod (ready, not deleted) does not answer
//              records nothing (its counts are short), for up to a metric window; past that its
//              requests are left out and it counts from its next answer. The look after a gap,
//              or one counting a new pod or process, has no valid last second
//              (SecondMetrics::valid false): the growth goes into the window only. With no list
//              read for 30 s neither the gateways nor the pods are read (their addresses may be
//              others' by now);
//   CPU, memory  each ready or draining pod's /metrics (its port named "http":
//              process_cpu_seconds_total in cores, process_resident_memory_bytes), once a
//              scrape_interval, stamped with that scrape's time; the mean CPU is over ready pods;
//   desired    the Deployments' spec.replicas, once a scrape_interval, and what scale() set; until
//              the first read, the pods that are not draining.
//   rollouts  while a Deployment rolls out, its ReplicaSets (pod-template-hash tells each pod's),
//              with the Deployments; and what the gateways counted of each pod's attempts
//              (prescale_gateway_upstream_requests_total and _request_duration_seconds), for
//              the rollout analysis (healing::RolloutWatch).
// scale() patches the Deployment's scale subresource; restart() evicts a service's pod (the
// PodDisruptionBudget applies), and the Deployment starts another; replace_when_ready() starts
// the other first, and the pod leaves once it is ready. The controller's clock is the
// cluster's: timestamps are wall-clock times, placed on the controller's monotonic axis by the
// clock's wall_now(). An API call that times out fails the rest of that observation's calls at
// once.
//
// An API that does not answer keeps the last list of pods (said once per change of problem,
// through `on_problem`, and once when it answers again).
//
// Thread safety: one thread calls everything.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/world.h"
#include "core/clock.h"
#include "healing/rollout_watch.h"
#include "scaling/policy.h"

namespace prescale::kube {

class ApiClient;
struct ApiConfig;

// "<group>/namespaces/<the client's namespace, or default>/<rest>": an API path.
std::string namespace_path(const ApiConfig& api, std::string_view group, std::string_view rest);

struct KubeWorldOptions {
  Clock* clock = &Clock::real();
  std::chrono::milliseconds scrape_timeout{1000};
  // The gateway's route labels and the service each leads to (Gateway::route_services() of the
  // same file).
  std::map<std::string, std::string> route_service;
  // What each observation's request figures cover (LocalWorldOptions::metric_window).
  Clock::Duration metric_window = std::chrono::seconds(30);
  // How often the pods' /metrics and the Deployments are read; the observations between read
  // the pods and the gateways only. 0: every observation.
  Clock::Duration scrape_interval = std::chrono::seconds(5);
  // How long a pod out of its Service's endpoints may still get requests from the gateway (its
  // DNS refresh plus the answers' time to live: kube::pod_leave_seconds of the file).
  Clock::Duration leave_time = std::chrono::seconds(11);
  // app.kubernetes.io/name of the gateway's pods.
  std::string gateway_name = "prescale-gateway";
  // Whether replacements are carried on (replace_when_ready): false (under --recommend-only, or
  // with the healer off) leaves a replacement a controller before this one began as it is.
  bool act_on_replacements = true;
  // Problems reading the cluster (an API error, a gateway that does not answer), each said when
  // it starts and when it ends; spdlog's warn when unset.
  std::function<void(const std::string&)> on_problem;
};

class KubeWorld final : public control::World {
 public:
  // `api` is the client of the namespace the manifests were applied in (its config().name_space;
  // "default" when it names none); it must outlive this.
  KubeWorld(ApiClient& api, std::vector<scaling::ServiceSpec> services,
            KubeWorldOptions options = {});
  ~KubeWorld() override;

  const scaling::Snapshot& observe(Clock::TimePoint now) override;
  // Errors: kNotFound (unknown service, or no Deployment of its name), kOutOfRange (outside the
  // service's bounds), the API's own errors.
  Result<void> scale(std::string_view service, int replicas) override;
  // The controller's file changed (its mounted ConfigMap): new bounds for scale(), a new SLO for
  // the requests counted from now (the current window's too). The Deployments are not touched.
  // Errors: kNotFound, kInvalidArgument (not 0 <= min <= max, max >= 1).
  Result<void> respec(const scaling::ServiceSpec& spec) override;
  // The route labels of a reloaded file (gateway::route_services()): new ones are counted for
  // their service from now; a known label keeps its service (its counts so far are that
  // service's), and one removed keeps what it counted.
  void add_routes(const std::vector<std::pair<std::string, std::string>>& route_services);
  // The service a route label's requests are counted for; nullptr for a label never seen.
  const std::string* route_service(const std::string& route) const;
  // Evicts the pod named `replica_id` (POST pods/NAME/eviction). Errors: kNotFound for a name that
  // is not a pod of a service among those last read (the gateway's, another team's);
  // kOutOfRange for a service's only ready pod (a container restarted in place is back sooner
  // than a new pod); the API's: kUnavailable for a refusal under the PodDisruptionBudget (429).
  Result<void> restart(std::string_view replica_id) override;
  // Replaces a pod that still serves well (one headed for its memory limit) with no pod's
  // capacity missing meanwhile: the pod gets the lowest pod-deletion-cost there is
  // (the controller.kubernetes.io/pod-deletion-cost annotation) and its Deployment one replica
  // more than desired (a surge, as a rolling update's maxSurge; it may pass the service's
  // max_replicas by that one). Observations on a list of pods just read carry it on:
  //   - once the service's other pods ready, not being deleted, are as many as desired, the
  //     Deployment goes back to desired, and its ReplicaSet removes the pod of the lowest cost;
  //   - 10 s later, a pod the ReplicaSet kept (it removed one that was not ready) is evicted
  //     (under the PodDisruptionBudget; tried again at each look);
  //   - it is given up, the pod's mark taken off and said (on_problem, take_given_up()), with no
  //     replacement ready within 5 minutes (the surge taken back), or evictions refused for 5.
  // Meanwhile scale() keeps the surge on top of what it sets, and desired_replicas is what scale()
  // last set. While the surge stands the pod also carries the desired replicas before it
  // (prescale.dev/surged-from), so that a marked pod in the first list read is a replacement a
  // controller before this one began, and it goes on from where that one was (with
  // KubeWorldOptions::act_on_replacements). One pod of a service at a time; the same pod again is
  // no error. Annotations that could not be taken off are tried again at each look. Errors:
  // kNotFound as restart()'s, and for a pod being deleted already; kUnavailable while another of
  // the service's is being replaced, before the Deployment has been read, or for a Deployment
  // not found; the API's (a surge whose patch timed out goes on as if applied).
  Result<void> replace_when_ready(std::string_view replica_id);
  // The pods whose replacement was given up since the last call (they stay, and may be replaced
  // again).
  std::vector<std::string> take_given_up();
  // (service, pod) for each outlier ejection of a service's pod by a gateway pod since the last
  // call, read with the gateways' counters (prescale_gateway_endpoint_ejections_total, by the
  // pod's IP and its port named "http"); at most 10 per pod and gateway at one look, and 1,000
  // kept between calls. A gateway pod of the first list counts from its first answer.
  std::vector<std::pair<std::string, std::string>> take_ejections();
  // (service, pod) for each look that found a service's pod's failure-rate breaker opened by a
  // gateway pod since the last call (prescale_gateway_endpoint_breaker_openings_total), once per
  // look however many openings and gateways; 1,000 kept between calls. An open breaker takes the
  // pod out of that gateway's service, as an ejection does, but is no verdict on a release:
  // overload opens breakers too.
  std::vector<std::pair<std::string, std::string>> take_breaker_openings();
  // The service pods whose containers restarted (restartCount grew: a crash, a failed liveness
  // probe, the kernel at the memory limit) since the last call, once per restart (at most 10 per
  // pod at one look, 1,000 kept between calls): new processes under old names.
  std::vector<std::string> take_restarted();
  // Whether `pod` is being replaced (replace_when_ready, or taken on from a controller before).
  bool replacing(std::string_view pod) const;
  // Each gateway pod in service's share of `service`'s requests over the last seconds (sums
  // decaying over 5 s), by pod name; the shares add up to 1. Empty while the gateways in service
  // carried less than a request of the service's lately, or the list of pods is stale at `now`.
  std::map<std::string, double> gateway_shares(std::string_view service,
                                               Clock::TimePoint now) const;
  // The names of the gateway pods in service (ready, not being deleted) in the last list of pods
  // read; nullopt before one has been read, or while the last is stale (30 s) at `now`.
  std::optional<std::vector<std::string>> gateways_in_service(Clock::TimePoint now) const;
  // Whether the last list of pods is stale (30 s) at `now`, or none has been read.
  bool pods_stale(Clock::TimePoint now) const;
  // The services rolling out, at the last read of the Deployments: each one's Deployment rolling
  // (as `kubectl rollout status` tells it), with a ReplicaSet of its revision
  // (deployment.kubernetes.io/revision) and an old one that still has pods. Each with the
  // revision it rolls out and the one it replaces: the old ReplicaSet with the most pods when
  // the rollout was first seen. A rollout back to the ReplicaSet roll_back() returned to has
  // both the same: a rollback under way is not judged.
  std::map<std::string, healing::RolloutRevisions> rollouts() const;
  // The pods of the services rolling out, as the last observe() saw them: each with its
  // ReplicaSet's revision (by its pod-template-hash; 0 for none known), its uid and restart count
  // as its process, where the gateways reach it (its IP and port named "http") and when it was
  // ready.
  std::vector<healing::RolloutReplica> rollout_replicas() const;
  // What the gateway pods counted of the attempts at each address ("10.1.2.3:8080"), summed over
  // them: each pod's growth from its first answer (all it counted, for a new process or a pod
  // that came after the first list). Counters, for healing::RolloutWatch::look; addresses no
  // pod has any more are dropped.
  const std::map<std::string, healing::RevisionSample>& upstream_attempts() const;
  // Rolls `service` back to the revision its rollout replaces, as `kubectl rollout undo` does:
  // the Deployment's pod template becomes that ReplicaSet's (its pod-template-hash label left
  // out), by a merge patch on the resourceVersion just read, so that an edit made meanwhile is
  // not overwritten; the Deployment controller rolls it out, the old ReplicaSet taking the next
  // revision. The patch also marks the Deployment with the revision that failed and the old
  // ReplicaSet's pod-template-hash (prescale.dev/rolled-back-from and -to), so that the rollout
  // back is not judged, by this controller or the next, and a patch whose answer was lost is
  // found done at the next try. Returns the revision it goes back to. Errors: kNotFound (unknown
  // service, not rolling out, or already back there by another hand); kInvalidArgument when the
  // Deployment was edited since (another revision, or another template); kUnavailable for a
  // refusal for now (a 409 Conflict, a change its controller has not acted on yet, a paused
  // Deployment); the API's.
  Result<int> roll_back(std::string_view service);
  // Whether `service`'s Deployment carries a rollback's mark of `revision` (prescale.dev/
  // rolled-back-from, made on this object: prescale.dev/rolled-back-uid, as last read): it was
  // rolled back from it, by this controller or one before (a patch whose answer was lost).
  bool rolled_back(std::string_view service, int revision) const;
  // The metadata.uid of `service`'s Deployment as last read ("" before): another one when it was
  // deleted and made again.
  std::string deployment_uid(std::string_view service) const;
  // What the gateways counted since the first observation, of `service` or, for "", of every
  // service (zeros for an unknown one), and replica-seconds of its pods (those listed, from one
  // observation to the next): as LocalWorld::totals counts them, for the dashboard.
  control::WorldTotals totals(std::string_view service = "") const;
  // The revision of `service`'s Deployment (deployment.kubernetes.io/revision) as last read; 0
  // before it is, or for an unknown service.
  int revision(std::string_view service) const;
  // The services with no Deployment of their name in the namespace; errors: the API's (one that
  // does not answer, or does not let this account list Deployments).
  Result<std::vector<std::string>> missing_deployments();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace prescale::kube
