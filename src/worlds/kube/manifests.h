// Manifests: prescale.yaml as Kubernetes objects (`prescale render kubernetes`,
// docs/kubernetes.md).
//
// Each service becomes a Deployment, a headless Service and a PodDisruptionBudget of the same
// name; the gateway a Deployment, a Service and a PodDisruptionBudget named prescale-gateway,
// reading the file from the ConfigMap prescale-config; the controller (`prescale controller`,
// which scales the services' Deployments) a Deployment of one pod named prescale-controller, with
// a ServiceAccount, Role and RoleBinding of that name letting it read pods and Deployments,
// evict pods and change the Deployments' scale, and a Service of that name for its admin port,
// where each gateway pod reads its part of the admission limits it learns (`--admission-from`).
// Only the controller's pod gets an API token. What the local platform does for a replica, the
// manifests ask of the kubelet:
// - the replica's program: `prescale serve KIND` in the Prescale image for a built-in service,
//   the service's own `image` and `command` for a command service; "{port}" is 8080;
// - readiness at services[].readiness_path (a startup probe covers the first 120 s, as the
//   supervisor's ready timeout does, then a readiness probe on the gateway's health-check
//   rhythm), liveness as services[].liveness says, the memory limit as limit and request;
// - rolling updates as `prescale up` makes them: maxUnavailable 0, maxSurge 25 %,
//   minReadySeconds 10;
// - PRESCALE_GATEWAY_URL pointing at the gateway, and Prometheus' scrape annotations.
// Replica counts start at replicas.initial. Durations become whole seconds (rounded up, at least
// one), as the Kubernetes API counts them.
//
// A file that cannot run on Kubernetes — a command service with no image, a "{port_file}"
// argument, a name a Kubernetes Service cannot have — is refused whole, each problem on its own
// line as `file:line: services[i] (name).field: what is wrong`.
//
// Thread safety: pure functions.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace prescale::kube {

struct ManifestOptions {
  std::string image;       // the Prescale image: runs the gateway and the built-in services
  std::string name_space;  // metadata.namespace of every object; "" = none written
  std::string gateway_service_type = "ClusterIP";  // ClusterIP, NodePort or LoadBalancer
  int gateway_replicas = 1;
  std::string config_text;  // the file as written, for the ConfigMap
  std::string config_name;  // the file's name, for messages
  // The controller's Deployment (`prescale controller`), Service, ServiceAccount, Role and
  // RoleBinding, and the gateway's --admission-from.
  bool controller = true;
  // A PersistentVolumeClaim the controller keeps its learned state on, across new pods (an
  // edited file, a reschedule); "" = an emptyDir, kept while the pod lives.
  std::string controller_state_claim;
  // KEDA scales the Deployments (docs/kubernetes.md, "KEDA"): a ScaledObject per service whose
  // external trigger calls the controller's external scaler (`--keda-port`, on its Service's port
  // "keda"), and the controller scales none itself. Needs the controller and a namespace (KEDA's
  // operator calls prescale-controller.NAMESPACE.svc from its own).
  bool keda = false;
  // A Prometheus that scrapes the gateway pods (`prescale controller --history-from`): the
  // controller reads the history it lacks from it at each start. "" = none. Needs the controller
  // and the prescale policy.
  std::string history_from;
  std::string history_selector;  // its --history-selector; "" = the controller's default
  std::string history_window;    // its --history-window; "" = the controller's default
  // Its --history-ca-file (an https:// one) and --history-token-file: paths in the controller's
  // pod (the service account's files are there: /var/run/secrets/kubernetes.io/serviceaccount/).
  std::string history_ca_file;
  std::string history_token_file;
  // The Prometheus Operator's PodMonitors (monitoring.coreos.com/v1): the gateway's and the
  // controller's admin ports, and the services' own, scraped with the pods' name and component
  // as labels (what --history-from's default selector reads). `pod_monitor_labels` go on them,
  // for a Prometheus whose podMonitorSelector asks for some (release: NAME).
  bool pod_monitors = false;
  std::map<std::string, std::string> pod_monitor_labels;
  // The Operator's PrometheusRule `prescale`: alerts on open incidents and slowdown warnings, a
  // rollback, requests that timed out waiting for a replica of a service scaled to zero, and a
  // controller or gateway Prometheus cannot scrape (docs/kubernetes.md, "Alerts"). Labelled as
  // the PodMonitors are.
  bool prometheus_rules = false;
  // A ConfigMap `prescale-grafana-dashboard` of deploy/grafana/prescale.json, labelled
  // grafana_dashboard: "1", which the Grafana Helm chart's dashboard sidecar loads.
  bool grafana_dashboard = false;
};

// deploy/grafana/prescale.json, as built in.
extern const std::string_view kGrafanaDashboard;

// The port every rendered container serves on, and the gateway's admin port.
inline constexpr int kServicePort = 8080;
inline constexpr int kGatewayAdminPort = 9901;
// With gateway.tls: the gateway's plain listener for the services' own calls, inside the
// cluster only (Service prescale-gateway-inside, port 80).
inline constexpr int kGatewayInsidePort = 8081;
inline constexpr int kControllerAdminPort = 9902;
inline constexpr int kKedaScalerPort = 9903;
// Where a built-in service's model directory is, in its image, when services[].model_dir is not
// an absolute path: <this>/<service name>.
inline constexpr std::string_view kModelRoot = "/var/lib/prescale/models";

// The objects, in the order `kubectl apply` should create them (ConfigMap, then each service's
// Service, Deployment and PodDisruptionBudget, then the gateway's).
Result<std::vector<nlohmann::ordered_json>> kubernetes_objects(const Config& config,
                                                               const ManifestOptions& options);

// How long a pod out of its Service's endpoints may still get requests from the gateway: its DNS
// refresh (gateway.dns_refresh_rate) plus the cluster DNS' time to live, and a second. The
// rendered pods serve this long through their preStop wait after deletion.
int pod_leave_seconds(const Config& config);

// What the file asks that Kubernetes cannot give in time, said but rendered anyway: for each
// route to a service that scales to zero (replicas.min 0), when its `timeout` is shorter than a
// cold request's wait there — the controller's look at the gateways (a second for the prescale
// and kpa policies, which wake a service at once; the period for the others), KEDA's
// pollingInterval (the period) with `keda`, the pod's `startup_time`, and the gateways' DNS (the
// refresh, the answers' time to live, a second). One line each, naming the route and the
// timeout it needs. (Only routes the file writes: a file without routes renders only with one
// service, whose catch-all route has the default 15 s.)
std::vector<std::string> cold_start_warnings(const Config& config, const ManifestOptions& options);

// A YAML stream of the objects, one document each ("---" between), strings quoted wherever YAML
// would read them as something else ("8080", "true", "") and multi-line ones as literal blocks.
std::string to_yaml_stream(const std::vector<nlohmann::ordered_json>& objects);

}  // namespace prescale::kube
