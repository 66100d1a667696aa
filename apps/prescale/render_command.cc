#include "render_command.h"

#include <iostream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/text_file.h"
#include "core/versioned_file.h"
#include "version.h"
#include "worlds/kube/manifests.h"
#include "worlds/kube/prometheus_history.h"

namespace prescale {

struct RenderFlags {
  std::string config_path = "prescale.yaml";
  std::string image;
  std::string name_space;
  std::string gateway_service_type = "ClusterIP";
  int gateway_replicas = 1;
  bool no_controller = false;
  std::string controller_state_claim;
  bool keda = false;
  std::string history_from;
  std::string history_selector;
  std::string history_window;
  std::string history_ca_file;
  std::string history_token_file;
  bool pod_monitors = false;
  bool prometheus_rules = false;
  bool grafana_dashboard = false;
  std::vector<std::string> pod_monitor_labels;  // KEY=VALUE
  std::string output;  // "" = standard output
};

RenderCommand::RenderCommand(CLI::App& app) : flags_(std::make_unique<RenderFlags>()) {
  RenderFlags& f = *flags_;
  auto* render = app.add_subcommand("render", "Turn prescale.yaml into another system's files");
  render->require_subcommand(1);
  command_ = render->add_subcommand(
      "kubernetes",
      "Kubernetes manifests: a Deployment, headless Service and PodDisruptionBudget per service, "
      "the gateway's own, the controller's with its access to the API, and a ConfigMap of the "
      "file (docs/kubernetes.md)");
  command_->add_option("-f,--config", f.config_path, "The file to render")->capture_default_str();
  command_
      ->add_option("--image", f.image,
                   "The Prescale image (prescale on its PATH): runs the gateway and the built-in "
                   "services that name no image of their own")
      ->required();
  command_->add_option("-n,--namespace", f.name_space,
                       "metadata.namespace of every object (default: none written, kubectl's "
                       "current namespace)");
  command_
      ->add_option("--gateway-service-type", f.gateway_service_type,
                   "The gateway Service's type: ClusterIP, NodePort or LoadBalancer")
      ->check(CLI::IsMember({"ClusterIP", "NodePort", "LoadBalancer"}))
      ->capture_default_str();
  command_
      ->add_option("--gateway-replicas", f.gateway_replicas,
                   "Gateway pods; the controller shares each service's admission limit among "
                   "them (without it, each keeps the file's, so n gateways admit up to n times a "
                   "service's queue)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  command_->add_flag("--no-controller", f.no_controller,
                     "Leave out the controller (prescale controller) and its access to the API: "
                     "the Deployments then keep replicas.initial pods");
  command_->add_option("--controller-state-claim", f.controller_state_claim,
                       "A PersistentVolumeClaim (yours, in the namespace) for the controller's "
                       "learned state, kept across its new pods (default: an emptyDir, kept while "
                       "the pod lives)");
  command_->add_flag("--keda", f.keda,
                     "KEDA scales the Deployments to the controller's plan: a ScaledObject per "
                     "service whose external trigger calls the controller (--keda-port 9903); "
                     "needs --namespace (docs/kubernetes.md, \"KEDA\")");
  command_->add_option("--history-from", f.history_from,
                       "A Prometheus that scrapes the gateway pods, e.g. "
                       "http://prometheus-server.monitoring:80 (or https://): the controller reads "
                       "the services' history it lacks from it at each start (docs/kubernetes.md, "
                       "\"History from Prometheus\")");
  command_->add_option("--history-selector", f.history_selector,
                       "The controller's --history-selector: the gateway pods' series in that "
                       "Prometheus (default: namespace=\"NS\",app_kubernetes_io_component="
                       "\"gateway\")");
  command_->add_option("--history-window", f.history_window,
                       "The controller's --history-window, 1m to 10m (default: 2m)");
  command_->add_option("--history-ca-file", f.history_ca_file,
                       "The controller's --history-ca-file: a path in its pod, the CAs an https:// "
                       "--history-from is verified by (default: the system's)");
  command_->add_option("--history-token-file", f.history_token_file,
                       "The controller's --history-token-file: a path in its pod whose token it "
                       "sends that Prometheus, e.g. "
                       "/var/run/secrets/kubernetes.io/serviceaccount/token");
  command_->add_flag("--pod-monitors", f.pod_monitors,
                     "The Prometheus Operator's PodMonitors for the gateway's, the controller's "
                     "and the services' metrics, with the labels --history-from's default "
                     "selector reads (docs/kubernetes.md, \"Prometheus\")");
  command_->add_flag("--prometheus-rules", f.prometheus_rules,
                     "The Prometheus Operator's PrometheusRule of Prescale's alerts: open "
                     "incidents and slowdown warnings, rollbacks, a controller or gateway not "
                     "scraped (docs/kubernetes.md, \"Alerts\")");
  command_->add_flag("--grafana-dashboard", f.grafana_dashboard,
                     "A ConfigMap of Prescale's Grafana dashboard (deploy/grafana/prescale.json), "
                     "labelled grafana_dashboard: \"1\" for the Grafana Helm chart's dashboard "
                     "sidecar (docs/kubernetes.md, \"Grafana\")");
  command_->add_option("--pod-monitor-label", f.pod_monitor_labels,
                       "KEY=VALUE: a label of the PodMonitors and the PrometheusRule, for a "
                       "Prometheus whose podMonitorSelector or ruleSelector asks for it (e.g. "
                       "release=kube-prometheus-stack); repeatable");
  command_->add_option("-o,--output", f.output,
                       "Write the manifests to this file, whole or not at all (default: standard "
                       "output)");
}

RenderCommand::~RenderCommand() = default;

bool RenderCommand::parsed() const { return command_->parsed(); }

int RenderCommand::run() const {
  const RenderFlags& f = *flags_;
  auto text = read_text_file(f.config_path);
  if (!text) {
    std::cerr << "prescale render kubernetes: " << text.error().message << "\n";
    return 2;
  }
  auto config = load_config_string(*text, f.config_path);
  if (!config) {
    std::cerr << "prescale render kubernetes: " << config.error().message << "\n";
    return 2;
  }
  kube::ManifestOptions options;
  options.image = f.image;
  options.name_space = f.name_space;
  options.gateway_service_type = f.gateway_service_type;
  options.gateway_replicas = f.gateway_replicas;
  options.controller = !f.no_controller;
  options.controller_state_claim = f.controller_state_claim;
  options.keda = f.keda;
  options.history_from = f.history_from;
  options.history_selector = f.history_selector;
  options.history_window = f.history_window;
  options.history_ca_file = f.history_ca_file;
  options.history_token_file = f.history_token_file;
  options.pod_monitors = f.pod_monitors;
  options.prometheus_rules = f.prometheus_rules;
  options.grafana_dashboard = f.grafana_dashboard;
  for (const std::string& label : f.pod_monitor_labels) {
    const auto eq = label.find('=');
    if (eq == std::string::npos) {
      std::cerr << "prescale render kubernetes: --pod-monitor-label " << label
                << ": expected KEY=VALUE\n";
      return 2;
    }
    options.pod_monitor_labels[label.substr(0, eq)] = label.substr(eq + 1);
  }
  // What the controller would refuse at its start, refused here.
  if (!f.history_selector.empty()) {
    if (auto selector = kube::normalize_selector(f.history_selector); !selector) {
      std::cerr << "prescale render kubernetes: --history-selector " << f.history_selector << ": "
                << selector.error().message << "\n";
      return 2;
    }
  }
  if (!f.history_window.empty()) {
    if (auto window = kube::history_window(f.history_window); !window) {
      std::cerr << "prescale render kubernetes: --history-window " << f.history_window << ": "
                << window.error().message << "\n";
      return 2;
    }
  }
  options.config_text = *text;
  options.config_name = f.config_path;
  auto objects = kube::kubernetes_objects(*config, options);
  if (!objects) {
    std::cerr << "prescale render kubernetes: " << objects.error().message << "\n";
    return 2;
  }
  for (const std::string& line : kube::cold_start_warnings(*config, options)) {
    std::cerr << "prescale render kubernetes: warning: " << line << "\n";
  }
  const std::string yaml = "# prescale render kubernetes -f " + f.config_path + " (prescale " +
                           PRESCALE_VERSION + ")\n" + kube::to_yaml_stream(*objects);
  if (f.output.empty()) {
    std::cout << yaml << std::flush;
    return std::cout ? 0 : 1;
  }
  if (auto written = write_file_atomically(f.output, yaml); !written) {
    std::cerr << "prescale render kubernetes: " << written.error().message << "\n";
    return 1;
  }
  return 0;
}

}  // namespace prescale
