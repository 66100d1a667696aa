// FakeApiServer: for tests, the part of the Kubernetes API that KubeWorld and `prescale
// controller` use, over plain HTTP on 127.0.0.1 (as `kubectl proxy` serves it): pods listed
// by label selector, their annotations merge-patched, deleted and evicted (an eviction refused, as
// the rendered PodDisruptionBudget refuses it, while another pod of the same app is not ready),
// Deployments listed, read and their pod template merge-patched (with the resourceVersion
// precondition), their scale subresource read and merge-patched, ReplicaSets listed. No
// kube-apiserver is packaged for Debian 12, so tests run this in its place; it answers as the real
// one does (the same paths, object shapes, Status errors and content types), and keeps what it was
// asked.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace prescale::kube::fake {

struct FakePod {
  std::string name;
  std::string app;  // app.kubernetes.io/name
  std::string ip = "127.0.0.1";
  std::vector<std::pair<std::string, int>> ports;  // container ports by name ("http", "admin")
  std::string phase = "Running";
  bool ready = true;
  std::string created = "2026-01-01T00:00:00Z";
  std::string ready_since = "2026-01-01T00:00:10Z";
  // The Ready condition's lastTransitionTime while not ready; "" = created.
  std::string not_ready_since = {};
  bool deleting = false;  // deletionTimestamp: deleted_by
  std::string deleted_by = "2026-01-01T00:00:00Z";
  int restarts = 0;  // its container's restartCount
  std::map<std::string, std::string> annotations = {};  // metadata.annotations
  std::string template_hash = {};                       // its pod-template-hash label; "" = none
  // Its container waits for this ("ImagePullBackOff", ...) instead of running; "" = running
  // since it was created.
  std::string waiting = {};
};

// A Deployment's ReplicaSet (owned by it, labelled as its pods are).
struct FakeReplicaSet {
  std::string name;
  std::string deployment;
  std::string hash;                                        // pod-template-hash
  int revision = 1;                                        // deployment.kubernetes.io/revision
  int replicas = 0;                                        // status.replicas
  nlohmann::json pod_template = nlohmann::json::object();  // spec.template
  std::string owner_uid = {};  // its owner's uid; "" = the Deployment's
};

// A pod object as the API returns it.
nlohmann::json pod_object(const FakePod& pod, const std::string& name_space);

class FakeApiServer {
 public:
  explicit FakeApiServer(std::string name_space = "default", std::string token = "");
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  std::uint16_t port() const;
  std::string url() const;  // http://127.0.0.1:<port>

  void set_pod(const FakePod& pod);  // adds or replaces by name
  void remove_pod(const std::string& name);
  std::optional<FakePod> pod(const std::string& name) const;  // as it stands now
  void set_deployment(const std::string& name, int replicas);
  void remove_deployment(const std::string& name);
  // A Deployment's revision (deployment.kubernetes.io/revision; none until this is called) and
  // pod template (spec.template). A change makes a new generation and resourceVersion.
  void set_template(const std::string& deployment, int revision,
                    const nlohmann::json& pod_template);
  nlohmann::json pod_template(const std::string& deployment) const;  // null for none
  // The Deployment controller `behind` generations behind on the Deployment
  // (status.observedGeneration), and its spec.paused.
  void set_observed_lag(const std::string& deployment, int behind);
  void set_paused(const std::string& deployment, bool paused);
  // One of the Deployment's metadata.annotations (besides its revision).
  void set_annotation(const std::string& deployment, const std::string& key,
                      const std::string& value);
  // The merge patches of Deployments (not of their scale) applied, in order: (deployment, patch).
  std::vector<std::pair<std::string, nlohmann::json>> deployment_patches() const;
  void set_replica_set(const FakeReplicaSet& replica_set);  // adds or replaces by name
  // A rollout under way: its status.updatedReplicas (all of its replicas until this is called).
  void set_rollout(const std::string& deployment, int updated_replicas);
  int replicas(const std::string& deployment) const;  // -1 for none
  // The scale patches received, in order: (deployment, replicas).
  std::vector<std::pair<std::string, int>> scaled() const;
  std::vector<std::string> deleted() const;  // pods deleted or evicted, in order
  // The Deployment written by another hand (its status, as the Deployment controller writes it
  // often during a rollout) just before the next merge patch of it arrives: a new
  // resourceVersion, so a patch naming the one it read is refused, 409 Conflict.
  void change_before_next_patch(const std::string& deployment);
  // Every request is answered with this status and a Status body while it is not 0.
  void fail_with(int status);
  int requests() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace prescale::kube::fake
