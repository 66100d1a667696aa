#include "worlds/kube/manifests.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string_view>

#include "core/byte_size.h"
#include "core/host_port.h"
#include "core/sha256.h"

namespace prescale::kube {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kGatewayName = "prescale-gateway";
constexpr std::string_view kControllerName = "prescale-controller";
constexpr std::string_view kStateDir = "/var/lib/prescale/state";
constexpr std::string_view kConfigMapName = "prescale-config";
constexpr std::string_view kConfigDir = "/etc/prescale";
constexpr std::string_view kConfigKey = "prescale.yaml";
// gateway.tls: the certificate from a Secret of type kubernetes.io/tls (what `kubectl create
// secret tls` and cert-manager write), mounted where the gateway reads it; the kubelet updates a
// renewed one in place and the gateway reads it again.
constexpr std::string_view kGatewayTlsSecret = "prescale-gateway-tls";
constexpr std::string_view kGatewayTlsDir = "/etc/prescale/tls";
// With gateway.tls the services call the gateway over plain HTTP through this ClusterIP Service
// (the gateway's --plain-port), never exposed outside the cluster as the gateway's may be.
constexpr std::string_view kGatewayInsideName = "prescale-gateway-inside";
// The supervisor's ready_timeout: a replica not ready this long after it started has failed.
constexpr int kStartupSeconds = 120;
// How long a cluster's DNS may answer a name from its cache (CoreDNS' kubernetes plugin: 5 s).
constexpr int kDnsTtlSeconds = 5;

// Kubernetes counts probe periods and grace periods in whole seconds, at least 1.
int whole_seconds(std::chrono::milliseconds d) {
  return std::max<int>(1, static_cast<int>((d.count() + 999) / 1000));
}

Json metadata(std::string_view name, const Json& labels, const ManifestOptions& o) {
  Json m = {{"name", name}};
  if (!o.name_space.empty()) m["namespace"] = o.name_space;
  m["labels"] = labels;
  return m;
}

Json labels_of(std::string_view name, std::string_view component) {
  return {{"app.kubernetes.io/name", name},
          {"app.kubernetes.io/component", component},
          {"app.kubernetes.io/part-of", "prescale"},
          {"app.kubernetes.io/managed-by", "prescale"}};
}

// What a Deployment selects its pods by (immutable once created, so the fewest labels).
Json selector_of(std::string_view name) {
  return {{"app.kubernetes.io/name", name}, {"app.kubernetes.io/part-of", "prescale"}};
}

Json http_probe(std::string_view path, std::string_view port) {
  return {{"httpGet", {{"path", path}, {"port", port}}}};
}

// The port of a service's Service object; an HTTP/2-only one says so (appProtocol: h2c).
Json service_port(const ServiceConfig& s) {
  Json port = {{"name", "http"}, {"port", kServicePort}, {"targetPort", "http"}};
  if (s.speaks_http2()) port["appProtocol"] = "kubernetes.io/h2c";
  return port;
}

// A service's probe of `path`: an HTTP GET; for one that speaks HTTP/2 only (Kubernetes' httpGet
// probes speak HTTP/1.1) whether its port takes connections; for a gRPC server with a health
// service, its startup and readiness probes are Kubernetes' own gRPC probes (SERVING passes; they
// take a port number, not a name). Its liveness stays a tcpSocket: `prescale up` counts any
// gRPC answer alive, where a gRPC liveness probe would restart a server that says NOT_SERVING.
Json service_probe(const ServiceConfig& s, std::string_view path, bool liveness = false) {
  if (s.protocol == UpstreamProtocol::kGrpc && !liveness) {
    Json grpc = {{"port", kServicePort}};
    if (!s.grpc_health_service.empty()) grpc["service"] = s.grpc_health_service;
    return {{"grpc", std::move(grpc)}};
  }
  if (s.speaks_http2()) return {{"tcpSocket", {{"port", "http"}}}};
  return http_probe(path, "http");
}

Json scrape_annotations(int port) {
  return {{"prometheus.io/scrape", "true"},
          {"prometheus.io/port", std::to_string(port)},
          {"prometheus.io/path", "/metrics"}};
}

// A Deployment of `replicas` pods running `container`, rolled as `prescale up` rolls a service.
Json deployment(std::string_view name, std::string_view component, int replicas,
                const Json& pod_annotations, Json container, Json volumes, const Config& config,
                const ManifestOptions& o) {
  // A terminating pod leaves its Service's endpoints at once, but the gateway sees that only at
  // its next look at the name, which DNS may answer from a cache for its time to live (CoreDNS:
  // 5 s): the pod goes on accepting until then, and drains after.
  const int leave_seconds = pod_leave_seconds(config);
  container["lifecycle"] = {
      {"preStop", {{"exec", {{"command", {"sleep", std::to_string(leave_seconds)}}}}}}};
  // No FOO_SERVICE_HOST variables per Service; no API token: only the controller talks to the
  // Kubernetes API (it sets its own).
  Json pod_spec = {{"enableServiceLinks", false},
                   {"automountServiceAccountToken", false},
                   {"terminationGracePeriodSeconds",
                    leave_seconds + whole_seconds(config.http.shutdown_grace) + 5},
                   {"containers", Json::array({std::move(container)})}};
  if (!volumes.empty()) pod_spec["volumes"] = std::move(volumes);
  return {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata", metadata(name, labels_of(name, component), o)},
      {"spec",
       {{"replicas", replicas},
        {"selector", {{"matchLabels", selector_of(name)}}},
        {"strategy",
         {{"type", "RollingUpdate"},
          {"rollingUpdate", {{"maxUnavailable", 0}, {"maxSurge", "25%"}}}}},
        {"minReadySeconds", 10},
        {"template",
         {{"metadata", {{"labels", labels_of(name, component)}, {"annotations", pod_annotations}}},
          {"spec", std::move(pod_spec)}}}}}};
}

// Voluntary disruptions (a node drained, a cluster upgrade) take one pod of the Deployment at a
// time, as its rolling updates do; a Deployment of one pod may still lose it.
Json disruption_budget(std::string_view name, std::string_view component,
                       const ManifestOptions& o) {
  return {{"apiVersion", "policy/v1"},
          {"kind", "PodDisruptionBudget"},
          {"metadata", metadata(name, labels_of(name, component), o)},
          {"spec", {{"maxUnavailable", 1}, {"selector", {{"matchLabels", selector_of(name)}}}}}};
}

Json service_object(std::string_view name, std::string_view component, Json spec,
                    const ManifestOptions& o) {
  spec["selector"] = selector_of(name);
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", metadata(name, labels_of(name, component), o)},
          {"spec", std::move(spec)}};
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// Tracing (docs/tracing.md): the file's receiver, the service's name in its spans, and the pod
// and namespace as resource attributes (the kubelet fills in $(POD_NAME) and $(POD_NAMESPACE)).
// What the container's own env sets wins; without an endpoint, only the name.
void add_tracing_env(Json& env, const TracingConfig& tracing,
                     const std::map<std::string, std::string>& own, std::string_view name) {
  auto has = [&](std::string_view variable) {
    return own.contains(std::string(variable)) ||
           std::any_of(env.begin(), env.end(),
                       [&](const Json& e) { return e["name"].get<std::string>() == variable; });
  };
  auto field = [&](const char* variable, const char* path) {
    if (!has(variable)) {
      env.push_back({{"name", variable}, {"valueFrom", {{"fieldRef", {{"fieldPath", path}}}}}});
    }
  };
  if (!has("OTEL_SERVICE_NAME")) env.push_back({{"name", "OTEL_SERVICE_NAME"}, {"value", name}});
  const auto otel = otel_environment(tracing);
  if (otel.empty()) return;
  for (const auto& [k, v] : otel) {
    if (!has(k)) env.push_back({{"name", k}, {"value", v}});
  }
  if (has("OTEL_RESOURCE_ATTRIBUTES")) return;
  field("POD_NAME", "metadata.name");
  field("POD_NAMESPACE", "metadata.namespace");
  env.push_back({{"name", "OTEL_RESOURCE_ATTRIBUTES"},
                 {"value", "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)"}});
}

// The container of one service's replicas, or what is wrong with the service for Kubernetes.
Json service_container(const ServiceConfig& s, std::size_t index, const Config& config,
                       const ManifestOptions& o, std::vector<std::string>& problems) {
  const std::string where = o.config_name + ":" + std::to_string(s.line) + ": services[" +
                            std::to_string(index) + "] (" + s.name + ")";
  auto problem = [&](std::string_view field, std::string_view what) {
    problems.push_back(where + "." + std::string(field) + ": " + std::string(what));
  };
  if (s.name.front() < 'a' || s.name.front() > 'z') {
    problem("name", "a Kubernetes Service name starts with a letter, got \"" + s.name + "\"");
  }
  if (s.name == kGatewayName) {
    problem("name", "\"prescale-gateway\" is the gateway's Deployment and Service");
  }
  if (s.name == kGatewayInsideName) {
    problem("name", "\"prescale-gateway-inside\" is the gateway's Service for the services' calls");
  }
  if (s.name == kControllerName) {
    problem("name", "\"prescale-controller\" is the controller's Deployment");
  }

  if (s.name == "kubernetes") {
    problem("name", "\"kubernetes\" is the Service of the cluster's API server");
  }

  Json c = {{"name", s.name}};
  const std::string port = std::to_string(kServicePort);
  if (s.kind == ServiceKind::kCommand) {
    if (s.image.empty()) {
      problem("image",
              "required on Kubernetes for a command service: the container image that holds \"" +
                  s.command.front() + "\"");
    }
    c["image"] = s.image;
    Json argv = Json::array();
    for (const std::string& a : s.command) {
      if (a.find("{port_file}") != std::string::npos) {
        problem("command",
                "\"{port_file}\" is for prescale up; on Kubernetes the port is "
                "fixed: pass \"{port}\" (" +
                    port + ")");
      }
      argv.push_back(replace_all(a, "{port}", port));
    }
    c["command"] = std::move(argv);
  } else {
    std::string kind(to_string(s.kind));
    kind = kind.substr(kind.find('/') + 1);
    c["image"] = s.image.empty() ? o.image : s.image;
    Json argv = {"prescale", "serve", kind,
                 // On every interface: the kubelet probes, and the gateway reaches, the pod's IP.
                 "--address", "0.0.0.0", "--port", port, "--shutdown-grace-ms",
                 std::to_string(config.http.shutdown_grace.count()), "--threads", "1",
                 "--log-level", to_string(config.logging.level), "--log-format",
                 to_string(config.logging.format)};
    for (const std::string& flag : serve_http_flags(config.http)) argv.push_back(flag);
    const bool model_files = s.kind == ServiceKind::kRecommend || s.kind == ServiceKind::kFraud;
    if (!s.model_dir.empty() || model_files) {
      const std::filesystem::path dir(s.model_dir);
      argv.push_back("--model-dir");
      argv.push_back(dir.is_absolute() ? dir.lexically_normal().string()
                                       : std::string(kModelRoot) + "/" + s.name);
    }
    c["command"] = std::move(argv);
  }
  c["ports"] = Json::array({{{"name", "http"}, {"containerPort", kServicePort}}});
  Json env = Json::array();
  for (const auto& [k, v] : s.env) {
    // prescale up sets it after the file's variables, so the gateway's address wins there too.
    if (k != "PRESCALE_GATEWAY_URL") env.push_back({{"name", k}, {"value", v}});
  }
  env.push_back(
      {{"name", "PRESCALE_GATEWAY_URL"},
       {"value", "http://" +
                     std::string(config.gateway.tls.enabled() ? kGatewayInsideName : kGatewayName) +
                     ":80"}});
  add_tracing_env(env, config.tracing, s.env, s.name);
  c["env"] = std::move(env);
  if (s.memory_limit.bytes > 0) {
    const std::string memory = format_byte_size(s.memory_limit);
    c["resources"] = {{"requests", {{"memory", memory}}}, {"limits", {{"memory", memory}}}};
  }
  const HealthCheckConfig& hc = config.gateway.health_check;
  Json startup = service_probe(s, s.effective_readiness_path());
  startup.update({{"periodSeconds", 1}, {"failureThreshold", kStartupSeconds}});
  c["startupProbe"] = std::move(startup);
  Json readiness = service_probe(s, s.effective_readiness_path());
  readiness.update({{"periodSeconds", whole_seconds(hc.interval)},
                    {"timeoutSeconds", whole_seconds(hc.timeout)},
                    {"successThreshold", hc.healthy_threshold},
                    {"failureThreshold", hc.unhealthy_threshold}});
  c["readinessProbe"] = std::move(readiness);
  if (s.liveness.enabled) {
    Json liveness = service_probe(s, s.liveness.path, /*liveness=*/true);
    liveness.update({{"periodSeconds", whole_seconds(s.liveness.interval)},
                     {"timeoutSeconds", whole_seconds(s.liveness.timeout)},
                     {"failureThreshold", s.liveness.failure_threshold}});
    c["livenessProbe"] = std::move(liveness);
  }
  c["securityContext"] = {{"allowPrivilegeEscalation", false}};
  return c;
}

Json gateway_container(const Config& config, const ManifestOptions& o) {
  Json argv = {"prescale",     "gateway",
               "-f",           std::string(kConfigDir) + "/" + std::string(kConfigKey),
               "--address",    "0.0.0.0",
               "--port",       std::to_string(kServicePort),
               "--admin-port", std::to_string(kGatewayAdminPort)};
  // Each service's headless Service: its name resolves to the ready replicas' addresses.
  for (const ServiceConfig& s : config.services) {
    argv.push_back("--upstream");
    argv.push_back(s.name + "=" + s.name + ":" + std::to_string(kServicePort));
  }
  // The admission limits the controller learns, shared among the gateway pods by their shares of
  // the requests, through its Service: this pod's, by its name (the kubelet fills in $(POD_NAME)).
  Json env = Json::array();
  if (o.controller) {
    argv.push_back("--admission-from");
    argv.push_back("http://" + std::string(kControllerName) + ":" +
                   std::to_string(kControllerAdminPort) + "/v1/admission/$(POD_NAME)");
    env.push_back(
        {{"name", "POD_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}});
  }
  if (!config.tracing.otlp_endpoint.empty()) {
    add_tracing_env(env, config.tracing, {}, "prescale-gateway");
  }
  Json mounts = Json::array({{{"name", "config"}, {"mountPath", kConfigDir}, {"readOnly", true}}});
  if (config.gateway.tls.enabled()) {
    // The file's paths are this machine's; in the pod the flags name the Secret's files.
    argv.push_back("--tls-cert");
    argv.push_back(std::string(kGatewayTlsDir) + "/tls.crt");
    argv.push_back("--tls-key");
    argv.push_back(std::string(kGatewayTlsDir) + "/tls.key");
    argv.push_back("--plain-port");
    argv.push_back(std::to_string(kGatewayInsidePort));
    argv.push_back("--plain-address");
    argv.push_back("0.0.0.0");
    mounts.push_back({{"name", "tls"}, {"mountPath", kGatewayTlsDir}, {"readOnly", true}});
  }
  Json ports = Json::array({{{"name", "http"}, {"containerPort", kServicePort}},
                            {{"name", "admin"}, {"containerPort", kGatewayAdminPort}}});
  if (config.gateway.tls.enabled()) {
    ports.push_back({{"name", "inside"}, {"containerPort", kGatewayInsidePort}});
  }
  Json c = {{"name", "gateway"},
            {"image", o.image},
            {"command", std::move(argv)},
            {"ports", std::move(ports)},
            {"readinessProbe", http_probe("/readyz", "admin")},
            {"livenessProbe", http_probe("/healthz", "admin")},
            {"volumeMounts", std::move(mounts)},
            {"securityContext", {{"allowPrivilegeEscalation", false}}}};
  if (!env.empty()) c["env"] = std::move(env);
  return c;
}

// `prescale controller` in its pod: the policy against the Deployments, through the API with the
// pod's service account; its learned state kept for the pod's life.
Json controller_container(const ManifestOptions& o) {
  Json argv = {"prescale",     "controller",
               "-f",           std::string(kConfigDir) + "/" + std::string(kConfigKey),
               "--admin-port", std::to_string(kControllerAdminPort),
               "--state-dir",  std::string(kStateDir)};
  Json ports = Json::array({{{"name", "admin"}, {"containerPort", kControllerAdminPort}}});
  if (!o.history_from.empty()) {
    argv.push_back("--history-from");
    argv.push_back(o.history_from);
    if (!o.history_selector.empty()) {
      argv.push_back("--history-selector");
      argv.push_back(o.history_selector);
    }
    if (!o.history_window.empty()) {
      argv.push_back("--history-window");
      argv.push_back(o.history_window);
    }
    if (!o.history_ca_file.empty()) {
      argv.push_back("--history-ca-file");
      argv.push_back(o.history_ca_file);
    }
    if (!o.history_token_file.empty()) {
      argv.push_back("--history-token-file");
      argv.push_back(o.history_token_file);
    }
  }
  if (o.keda) {
    argv.push_back("--keda-port");
    argv.push_back(std::to_string(kKedaScalerPort));
    ports.push_back({{"name", "keda"}, {"containerPort", kKedaScalerPort}});
  }
  return {{"name", "controller"},
          {"image", o.image},
          {"command", std::move(argv)},
          {"ports", std::move(ports)},
          {"readinessProbe", http_probe("/readyz", "admin")},
          {"livenessProbe", http_probe("/healthz", "admin")},
          {"volumeMounts",
           Json::array({{{"name", "config"}, {"mountPath", kConfigDir}, {"readOnly", true}},
                        {{"name", "state"}, {"mountPath", kStateDir}}})},
          {"securityContext", {{"allowPrivilegeEscalation", false}}}};
}

// A label's name: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-',
// '_' and '.', beginning and ending with a letter or digit.
bool is_label_name_part(std::string_view s) {
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  return !s.empty() && s.size() <= 63 && alnum(s.front()) && alnum(s.back()) &&
         std::all_of(s.begin(), s.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}
bool is_label_key(std::string_view key) {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return is_label_name_part(key);
  const std::string_view prefix = key.substr(0, slash);
  return !prefix.empty() && prefix.size() <= 253 &&
         std::all_of(prefix.begin(), prefix.end(),
                     [](char c) {
                       return std::islower(static_cast<unsigned char>(c)) != 0 ||
                              std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '-' ||
                              c == '.';
                     }) &&
         is_label_name_part(key.substr(slash + 1));
}
bool is_label_value(std::string_view value) { return value.empty() || is_label_name_part(value); }

// A PodMonitor of the Prometheus Operator: the pods of these components, scraped on their
// container port `port` every 15 s, with the pods' name and component labels kept
// (app_kubernetes_io_name, app_kubernetes_io_component), beside the namespace and pod the
// Operator adds.
Json pod_monitor(std::string_view name, std::initializer_list<std::string_view> components,
                 std::string_view port, const ManifestOptions& o) {
  Json labels = labels_of(name, "monitoring");
  for (const auto& [key, value] : o.pod_monitor_labels) labels[key] = value;
  Json values = Json::array();
  for (std::string_view c : components) values.push_back(c);
  return {
      {"apiVersion", "monitoring.coreos.com/v1"},
      {"kind", "PodMonitor"},
      {"metadata", metadata(name, labels, o)},
      {"spec",
       {{"selector",
         {{"matchLabels", {{"app.kubernetes.io/part-of", "prescale"}}},
          {"matchExpressions", Json::array({{{"key", "app.kubernetes.io/component"},
                                             {"operator", "In"},
                                             {"values", std::move(values)}}})}}},
        {"podTargetLabels", Json::array({"app.kubernetes.io/name", "app.kubernetes.io/component"})},
        // The metrics' own labels win over the target's: the gateway's `endpoint` (a pod's
        // address) stays, not the port name the Operator would put there.
        {"podMetricsEndpoints", Json::array({{{"port", port},
                                              {"path", "/metrics"},
                                              {"interval", "15s"},
                                              {"honorLabels", true}}})}}}};
}

// The Operator's PrometheusRule of the namespace's alerts (docs/kubernetes.md, "Alerts"). Each
// expression keeps to the rendered namespace (kubernetes_objects() asks for one), and the `up`
// ones to Prescale's own pods; a component with no pod scraped at all (scaled to 0, pending) is
// down too.
Json prometheus_rule(const ManifestOptions& o) {
  Json labels = labels_of("prescale", "monitoring");
  for (const auto& [key, value] : o.pod_monitor_labels) labels[key] = value;
  const std::string ns = "namespace=\"" + o.name_space + "\",";
  auto down = [&](std::string_view name, std::string_view component) {
    const std::string selector = "{" + ns + "app_kubernetes_io_name=\"" + std::string(name) +
                                 "\",app_kubernetes_io_component=\"" + std::string(component) +
                                 "\"}";
    return "max by (namespace) (up" + selector + ") == 0 or absent(up" + selector + ")";
  };
  auto alert = [](std::string name, std::string expr, std::string for_, std::string severity,
                  std::string summary, std::string description) {
    return Json{{"alert", std::move(name)},
                {"expr", std::move(expr)},
                {"for", std::move(for_)},
                {"labels", {{"severity", std::move(severity)}}},
                {"annotations",
                 {{"summary", std::move(summary)}, {"description", std::move(description)}}}};
  };
  Json rules = Json::array({
      alert("PrescaleIncident",
            "max by (namespace, service) (prescale_incidents_open{" + ns +
                "app_kubernetes_io_component=\"controller\"}) > 0",
            "0m", "critical", "{{ $labels.service }} has an open incident",
            "{{ $labels.service }}'s requests fail or miss their SLO faster than its error budget "
            "allows; the controller's dashboard and log name the likely cause."),
      alert("PrescaleSlowdown",
            "max by (namespace, service) (prescale_slowdown_warning_open{" + ns +
                "app_kubernetes_io_component=\"controller\"}) > 0",
            "10m", "warning", "{{ $labels.service }} is slower than usual",
            "Each of {{ $labels.service }}'s requests has taken markedly longer in service than "
            "usual for 10 minutes."),
      alert("PrescaleRollback",
            "sum by (namespace, service) (increase(prescale_controller_rollbacks_total{" + ns +
                "app_kubernetes_io_component=\"controller\"}[10m])) > 0",
            "0m", "warning", "{{ $labels.service }}'s rollout was rolled back",
            "The controller rolled back a revision of {{ $labels.service }} that failed where the "
            "one it replaced did not."),
      alert("PrescaleColdStartTimeout",
            "sum by (namespace, route) (increase(prescale_gateway_held_requests_total{" + ns +
                "app_kubernetes_io_component=\"gateway\",outcome=\"timed_out\"}[10m])) > 0",
            "0m", "warning",
            "Requests of route {{ $labels.route }} timed out waiting for a replica",
            "Requests of route {{ $labels.route }} waited for the first replica of a service "
            "scaled to zero (replicas.min 0) past the route's timeout in the last 10 minutes and "
            "got 503: give the route a longer timeout (prescale check --kubernetes says how long), "
            "or the service a replicas.min of 1."),
      alert("PrescaleControllerDown", down(kControllerName, "controller"), "5m", "critical",
            "The Prescale controller is not scraped",
            "Prometheus has not scraped the controller for 5 minutes (or has no pod of it to "
            "scrape): nothing scales, heals or rolls back the namespace's services."),
      alert("PrescaleGatewayDown", down(kGatewayName, "gateway"), "5m", "critical",
            "No Prescale gateway is scraped",
            "Prometheus has scraped none of the gateway pods for 5 minutes (or has none to "
            "scrape)."),
  });
  if (!o.controller) {  // what the controller says does not exist: only the gateway is watched
    rules = Json::array({rules.back()});
  }
  return {
      {"apiVersion", "monitoring.coreos.com/v1"},
      {"kind", "PrometheusRule"},
      {"metadata", metadata("prescale", labels, o)},
      {"spec", {{"groups", Json::array({{{"name", "prescale"}, {"rules", std::move(rules)}}})}}}};
}

// KEDA's ScaledObject of a service: its external trigger asks the controller's external scaler
// for the planned replicas, and the HorizontalPodAutoscaler KEDA makes follows the plan at once
// both ways (the plan already holds a scale-down past the startup time, and a scale-up may need
// many pods at once), within the service's bounds. KEDA checks activity (0 <-> 1) each policy
// period, and scales to zero (replicas.min 0) a period after the plan is 0: the plan already
// waited.
Json scaled_object(const ServiceConfig& s, const Config& config, const ManifestOptions& o) {
  const int period = whole_seconds(config.policy.period);
  return {{"apiVersion", "keda.sh/v1alpha1"},
          {"kind", "ScaledObject"},
          {"metadata", metadata(s.name, labels_of(s.name, "service"), o)},
          {"spec",
           {{"scaleTargetRef", {{"name", s.name}}},
            {"minReplicaCount", s.replicas.min},
            {"maxReplicaCount", s.replicas.max},
            {"pollingInterval", period},
            {"cooldownPeriod", period},
            {"advanced",
             {{"horizontalPodAutoscalerConfig",
               {{"behavior",
                 {{"scaleUp",
                   {{"stabilizationWindowSeconds", 0},
                    {"policies",
                     Json::array(
                         {{{"type", "Pods"}, {"value", s.replicas.max}, {"periodSeconds", 1}}})}}},
                  {"scaleDown",
                   {{"stabilizationWindowSeconds", 0},
                    {"policies",
                     Json::array(
                         {{{"type", "Percent"}, {"value", 100}, {"periodSeconds", 1}}})}}}}}}}}},
            {"triggers",
             Json::array({{{"type", "external"},
                           {"metadata",
                            {{"scalerAddress", std::string(kControllerName) + "." + o.name_space +
                                                   ".svc:" + std::to_string(kKedaScalerPort)},
                             {"service", s.name}}}}})}}}};
}

// The controller's account, and what it may do: what it calls and no more — list pods, patch one
// (its pod-deletion-cost, before a replacement) and evict one (a replica replaced), list
// Deployments, read one and patch its pod template (a rollback), patch their scale, list
// ReplicaSets (a rollout's revisions) — in its namespace only, and of a Deployment only those of
// the file's services (a list cannot be limited by name).
std::vector<Json> controller_access(const Config& config, const ManifestOptions& o) {
  const Json labels = labels_of(kControllerName, "controller");
  Json services = Json::array();
  for (const ServiceConfig& s : config.services) services.push_back(s.name);
  Json rules =
      Json::array({{{"apiGroups", {""}}, {"resources", {"pods"}}, {"verbs", {"list", "patch"}}},
                   {{"apiGroups", {""}}, {"resources", {"pods/eviction"}}, {"verbs", {"create"}}},
                   {{"apiGroups", {"apps"}}, {"resources", {"deployments"}}, {"verbs", {"list"}}},
                   {{"apiGroups", {"apps"}},
                    {"resources", {"deployments", "deployments/scale"}},
                    {"resourceNames", services},
                    {"verbs", {"get", "patch"}}},
                   {{"apiGroups", {"apps"}}, {"resources", {"replicasets"}}, {"verbs", {"list"}}}});
  // No names would be every Deployment's: with no services, none at all.
  if (services.empty()) rules.erase(3);
  // A subject with no namespace is the RoleBinding's own.
  return {
      {{"apiVersion", "v1"},
       {"kind", "ServiceAccount"},
       {"metadata", metadata(kControllerName, labels, o)}},
      {{"apiVersion", "rbac.authorization.k8s.io/v1"},
       {"kind", "Role"},
       {"metadata", metadata(kControllerName, labels, o)},
       {"rules", std::move(rules)}},
      {{"apiVersion", "rbac.authorization.k8s.io/v1"},
       {"kind", "RoleBinding"},
       {"metadata", metadata(kControllerName, labels, o)},
       {"roleRef",
        {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", kControllerName}}},
       {"subjects", Json::array({{{"kind", "ServiceAccount"}, {"name", kControllerName}}})}}};
}

}  // namespace

int pod_leave_seconds(const Config& config) {
  return whole_seconds(config.gateway.dns_refresh_rate) + kDnsTtlSeconds + 1;
}

std::vector<std::string> cold_start_warnings(const Config& config, const ManifestOptions& o) {
  using std::chrono::milliseconds;
  const PolicyName policy = config.policy.name;
  // The trace-driven policies do not run live (the controller refuses them).
  if (policy == PolicyName::kStatic || policy == PolicyName::kOracle) return {};
  std::vector<RouteConfig> routes = config.gateway.routes;
  if (routes.empty() && config.services.size() == 1) {
    routes.emplace_back().service = config.services[0].name;
  }
  const bool wakes_at_once = policy == PolicyName::kPrescale || policy == PolicyName::kKpa;
  const milliseconds look = wakes_at_once ? milliseconds(1000) : config.policy.period;
  const milliseconds keda = o.keda ? config.policy.period : milliseconds(0);
  const milliseconds dns = milliseconds(1000) * pod_leave_seconds(config);
  // Exact, as the file may give milliseconds: "15 s", "31.2 s", "0.25 s".
  auto secs = [](milliseconds d) {
    std::string text = std::to_string(d.count() / 1000);
    if (const auto ms = d.count() % 1000; ms != 0) {
      std::array<char, 8> buf{};
      std::snprintf(buf.data(), buf.size(), ".%03d", static_cast<int>(ms));
      text += buf.data();
      while (text.back() == '0') text.pop_back();
    }
    return text + " s";
  };
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const RouteConfig& r = routes[i];
    const auto s = std::find_if(config.services.begin(), config.services.end(),
                                [&](const ServiceConfig& c) { return c.name == r.service; });
    if (s == config.services.end() || s->replicas.min != 0) continue;
    const milliseconds wait = look + keda + s->startup_time + dns;
    if (r.timeout >= wait) continue;
    const std::string route =
        config.gateway.routes.empty()
            ? std::string("the catch-all route")
            : "gateway.routes[" + std::to_string(i) + "] (" +
                  (r.match.path.empty() ? r.match.path_prefix : r.match.path) + ")";
    std::string why = "the controller's look at the gateways (" + secs(look) + "), ";
    if (o.keda) why += "KEDA's pollingInterval (" + secs(keda) + "), ";
    why += "the pod's start (startup_time " + secs(s->startup_time) + ") and the gateways' DNS (" +
           secs(dns) + ")";
    lines.push_back(route + ": service " + s->name +
                    " scales to zero (replicas.min 0), and a request that finds no replica waits "
                    "for " +
                    why + ", up to " + secs(wait) + ", longer than the route's timeout of " +
                    secs(r.timeout) +
                    ": such a request would get 503; give the route a timeout of at least " +
                    std::to_string(whole_seconds(wait)) + " s");
  }
  return lines;
}

Result<std::vector<Json>> kubernetes_objects(const Config& config, const ManifestOptions& o) {
  std::vector<std::string> problems;
  const std::string& t = o.gateway_service_type;
  if (t != "ClusterIP" && t != "NodePort" && t != "LoadBalancer") {
    problems.push_back("gateway service type must be ClusterIP, NodePort or LoadBalancer, got \"" +
                       t + "\"");
  }
  if (o.image.empty()) problems.push_back("the Prescale image must be named");
  if (o.keda && !o.controller) {
    problems.push_back("KEDA scales by the controller's plan: --keda needs the controller");
  }
  if (o.prometheus_rules && o.name_space.empty()) {
    problems.push_back(
        "--prometheus-rules needs --namespace: the alerts keep to its series, not to every "
        "namespace's with the same labels");
  }
  if (o.keda && o.name_space.empty()) {
    problems.push_back(
        "--keda needs --namespace: KEDA's operator calls the controller from its own namespace, "
        "at prescale-controller.NAMESPACE.svc");
  }
  if (!o.history_from.empty()) {
    if (!o.controller) {
      problems.push_back("--history-from is read by the controller: it needs the controller");
    }
    if (config.policy.name != PolicyName::kPrescale) {
      problems.push_back(o.config_name +
                         ": policy.name: " + std::string(to_string(config.policy.name)) +
                         " keeps no history: --history-from goes with the prescale policy");
    }
    if (auto url = parse_web_url(o.history_from); !url) {
      problems.push_back("--history-from " + o.history_from + ": " + url.error().message);
    } else if (!url->https && !o.history_ca_file.empty()) {
      problems.push_back("--history-ca-file goes with an https:// --history-from");
    } else if (!url->https && !o.history_token_file.empty()) {
      problems.push_back(
          "--history-token-file goes with an https:// --history-from (a token is not sent over "
          "plain HTTP)");
    }
  } else if (!o.history_selector.empty() || !o.history_window.empty() ||
             !o.history_ca_file.empty() || !o.history_token_file.empty()) {
    problems.push_back(
        "--history-selector, --history-window, --history-ca-file and --history-token-file go "
        "with --history-from");
  }
  if (!o.pod_monitor_labels.empty() && !o.pod_monitors && !o.prometheus_rules) {
    problems.push_back("--pod-monitor-label goes with --pod-monitors or --prometheus-rules");
  }
  for (const auto& [key, value] : o.pod_monitor_labels) {
    if (!is_label_key(key) || !is_label_value(value)) {
      problems.push_back("--pod-monitor-label " + key + "=" + value +
                         ": not a Kubernetes label (a name of at most 63 letters, digits, '-', "
                         "'_' and '.', beginning and ending with a letter or digit, after an "
                         "optional DNS prefix and '/'; a value of the same, or empty)");
    } else if (key.starts_with("app.kubernetes.io/")) {
      problems.push_back("--pod-monitor-label " + key +
                         ": the app.kubernetes.io labels are "
                         "Prescale's own");
    }
  }
  if (config.gateway.routes.empty()) {
    std::set<std::string> upstreams;  // what the gateway would have to choose between
    for (const ServiceConfig& s : config.services) upstreams.insert(s.name);
    for (const auto& [service, endpoints] : config.gateway.upstreams) upstreams.insert(service);
    if (upstreams.size() != 1) {
      problems.push_back(o.config_name +
                         ": gateway.routes: none, and the gateway's pod runs prescale gateway, "
                         "which sends a request nowhere without routes unless it has exactly one "
                         "service (this file has " +
                         std::to_string(upstreams.size()) + ")");
    }
  }

  std::vector<Json> objects;
  objects.push_back({{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", metadata(kConfigMapName, labels_of(kConfigMapName, "config"), o)},
                     {"data", {{kConfigKey, o.config_text}}}});
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& s = config.services[i];
    Json container = service_container(s, i, config, o, problems);
    // Headless: the name resolves to every ready replica, which the gateway balances itself.
    objects.push_back(service_object(
        s.name, "service",
        {{"clusterIP", "None"},
         {"ports", Json::array({service_port(s)})}},
        o));
    Json d = deployment(s.name, "service", s.replicas.initial, scrape_annotations(kServicePort),
                        std::move(container), Json::array(), config, o);
    // KEDA's HorizontalPodAutoscaler owns the count: a `kubectl apply` of the manifests would
    // otherwise set every Deployment back to replicas.initial until its next sync.
    if (o.keda) d["spec"].erase("replicas");
    objects.push_back(std::move(d));
    objects.push_back(disruption_budget(s.name, "service", o));
  }
  if (!problems.empty()) {
    std::string message;
    for (const std::string& p : problems) message += (message.empty() ? "" : "\n") + p;
    return make_error(ErrorCode::kInvalidArgument, message);
  }

  // Kubernetes objects hold UTF-8 text (a ConfigMap's data, an argument, a variable's value).
  for (const Json& object : objects) {
    try {
      (void)object.dump();
    } catch (const nlohmann::json::type_error& e) {
      return make_error(ErrorCode::kInvalidArgument,
                        o.config_name + ": not UTF-8 text, which Kubernetes objects hold (" +
                            object["kind"].get<std::string>() + " " +
                            object["metadata"]["name"].get<std::string>() + ": " + e.what() + ")");
    }
  }

  // A changed file changes the pod template, so `kubectl apply` rolls the gateway.
  Json annotations = scrape_annotations(kGatewayAdminPort);
  annotations["checksum/config"] = sha256_hex(o.config_text);
  const bool tls = config.gateway.tls.enabled();
  objects.push_back(service_object(kGatewayName, "gateway",
                                   {{"type", o.gateway_service_type},
                                    {"ports", Json::array({{{"name", tls ? "https" : "http"},
                                                            {"port", tls ? 443 : 80},
                                                            {"targetPort", "http"}}})}},
                                   o));
  if (tls) {
    Json inside = service_object(
        kGatewayInsideName, "gateway",
        {{"type", "ClusterIP"},
         {"ports", Json::array({{{"name", "http"}, {"port", 80}, {"targetPort", "inside"}}})}},
        o);
    inside["spec"]["selector"] = selector_of(kGatewayName);  // the gateway's pods
    objects.push_back(std::move(inside));
  }
  Json gateway_volumes =
      Json::array({{{"name", "config"}, {"configMap", {{"name", kConfigMapName}}}}});
  if (tls) {
    gateway_volumes.push_back({{"name", "tls"}, {"secret", {{"secretName", kGatewayTlsSecret}}}});
  }
  objects.push_back(deployment(kGatewayName, "gateway", o.gateway_replicas, annotations,
                               gateway_container(config, o), std::move(gateway_volumes), config,
                               o));
  objects.push_back(disruption_budget(kGatewayName, "gateway", o));

  if (o.pod_monitors) {
    objects.push_back(pod_monitor("prescale-admin", {"gateway", "controller"}, "admin", o));
    objects.push_back(pod_monitor("prescale-services", {"service"}, "http", o));
  }
  if (o.prometheus_rules) objects.push_back(prometheus_rule(o));
  if (o.grafana_dashboard) {
    Json labels = labels_of("prescale-grafana-dashboard", "monitoring");
    labels["grafana_dashboard"] = "1";
    objects.push_back({{"apiVersion", "v1"},
                       {"kind", "ConfigMap"},
                       {"metadata", metadata("prescale-grafana-dashboard", labels, o)},
                       {"data", {{"prescale.json", std::string(kGrafanaDashboard)}}}});
  }
  if (!o.controller) return objects;
  for (Json& object : controller_access(config, o)) objects.push_back(std::move(object));
  // The gateways read the admission limits at this name (--admission-from), and KEDA calls the
  // external scaler there.
  Json controller_ports =
      Json::array({{{"name", "admin"}, {"port", kControllerAdminPort}, {"targetPort", "admin"}}});
  if (o.keda) {
    controller_ports.push_back(
        {{"name", "keda"}, {"port", kKedaScalerPort}, {"targetPort", "keda"}});
  }
  objects.push_back(
      service_object(kControllerName, "controller", {{"ports", std::move(controller_ports)}}, o));
  Json controller_annotations = scrape_annotations(kControllerAdminPort);
  // A reload applies only what the controller sizes by (docs/kubernetes.md, "Changing the file"):
  // an applied edit rolls a new pod, which takes the rest.
  controller_annotations["checksum/config"] = sha256_hex(o.config_text);
  Json controller = deployment(
      kControllerName, "controller", 1, controller_annotations, controller_container(o),
      Json::array(
          {{{"name", "config"}, {"configMap", {{"name", kConfigMapName}}}},
           o.controller_state_claim.empty()
               ? Json{{"name", "state"}, {"emptyDir", Json::object()}}
               : Json{{"name", "state"},
                      {"persistentVolumeClaim", {{"claimName", o.controller_state_claim}}}}}),
      config, o);
  // One controller at a time: the old pod stops before the new one starts. It serves no traffic
  // to drain, and needs the API.
  Json& spec = controller["spec"];
  spec["strategy"] = {{"type", "Recreate"}};
  spec.erase("minReadySeconds");
  Json& pod = spec["template"]["spec"];
  pod["automountServiceAccountToken"] = true;
  pod["serviceAccountName"] = kControllerName;
  pod["terminationGracePeriodSeconds"] = 30;
  pod["containers"][0].erase("lifecycle");
  objects.push_back(std::move(controller));
  if (o.keda) {
    for (const ServiceConfig& s : config.services) objects.push_back(scaled_object(s, config, o));
  }
  return objects;
}

}  // namespace prescale::kube

namespace prescale::kube {
namespace {

bool lower_equals_any(std::string_view s, std::initializer_list<std::string_view> words) {
  std::string lower(s);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return std::find(words.begin(), words.end(), lower) != words.end();
}

// Whether YAML (1.1 or 1.2) reads `s` back as this same string when written bare: it starts with
// a letter or "/", holds only characters no YAML indicator uses mid-scalar, ":" never before a
// space or at the end, and is none of the words YAML 1.1 reads as booleans or null.
bool plain_safe(std::string_view s) {
  if (s.empty()) return false;
  const char first = s.front();
  const bool letter = (first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z');
  if (!letter && first != '/') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '/' || c == '-' || c == '=' || c == '@' ||
                    c == '+' || (c == ':' && i + 1 < s.size());
    if (!ok) return false;
  }
  return !lower_equals_any(s, {"true", "false", "yes", "no", "on", "off", "y", "n", "null"});
}

// The code point of the UTF-8 sequence at s[i] (advancing i past it); the text is valid UTF-8
// (kubernetes_objects() checks it).
char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i++]);
  const int extra = b < 0x80 ? 0 : b < 0xE0 ? 1 : b < 0xF0 ? 2 : 3;
  char32_t c = extra == 0 ? b : b & (0x3F >> extra);
  for (int k = 0; k < extra && i < s.size(); ++k) c = (c << 6) | (s[i++] & 0x3F);
  return c;
}

// Characters YAML parsers refuse in a document or read as something else: C0 and C1 controls
// but tab and newline, DEL, NEL (U+0085: a line break to YAML 1.1), the line and paragraph
// separators (U+2028, U+2029), the byte order mark (U+FEFF) and the noncharacters U+FFFE and
// U+FFFF (which libyaml, and so PyYAML, refuses).
bool unsafe_in_yaml(char32_t c) {
  return (c < 0x20 && c != '\t' && c != '\n') || (c >= 0x7F && c <= 0x9F) || c == 0x2028 ||
         c == 0x2029 || c == 0xFEFF || c == 0xFFFE || c == 0xFFFF;
}

// A YAML double-quoted scalar: `"` and `\` escaped, and every character YAML would not keep as
// written escaped as \n, \t or \uXXXX (which every parser reads alike); other Unicode as it is.
std::string double_quoted(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const char32_t c = next_code_point(s, i);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (unsafe_in_yaml(c)) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(c >> shift) & 0xF];
    } else {
      out.append(s, start, i - start);
    }
  }
  return out + "\"";
}

std::string scalar(const Json& v) {
  if (!v.is_string()) return v.dump();
  const auto& s = v.get_ref<const std::string&>();
  return plain_safe(s) ? s : double_quoted(s);
}

// Multi-line text as a literal block ("|"), where the block keeps it exactly: none of the
// characters unsafe_in_yaml() names (a carriage return among them), no line of spaces alone, no
// line starting with a tab (kubectl's parser takes it for indentation), no leading space on the
// first line (which would need an indentation indicator).
bool literal_block_keeps(std::string_view s) {
  if (s.find('\n') == std::string_view::npos || s.front() == ' ' || s.front() == '\n') return false;
  size_t line_start = 0;
  for (size_t i = 0; i <= s.size();) {
    if (i == s.size() || s[i] == '\n') {
      const std::string_view line = s.substr(line_start, i - line_start);
      if (!line.empty() && line.find_first_not_of(' ') == std::string_view::npos) return false;
      if (!line.empty() && line.front() == '\t') return false;
      line_start = ++i;
      continue;
    }
    if (unsafe_in_yaml(next_code_point(s, i))) return false;
  }
  return true;
}

void write_mapping(const Json& object, int indent, std::string& out);
void write_sequence(const Json& array, int indent, std::string& out);

// A value after its "key:" or "-" at `indent`.
void write_after_indicator(const Json& v, int indent, std::string& out) {
  if (v.is_object() && !v.empty()) {
    out += '\n';
    write_mapping(v, indent + 2, out);
  } else if (v.is_array() && !v.empty()) {
    out += '\n';
    write_sequence(v, indent + 2, out);
  } else if (v.is_string() && literal_block_keeps(v.get_ref<const std::string&>())) {
    const auto& s = v.get_ref<const std::string&>();
    const size_t body_end = s.find_last_not_of('\n') + 1;
    const size_t trailing = s.size() - body_end;
    out += trailing == 0 ? " |-\n" : trailing == 1 ? " |\n" : " |+\n";
    size_t start = 0;
    while (start < s.size()) {
      size_t end = s.find('\n', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) out.append(static_cast<size_t>(indent + 2), ' ');
      out.append(s, start, end - start);
      out += '\n';
      start = end + 1;
    }
  } else {
    out += ' ';
    out += scalar(v);
    out += '\n';
  }
}

void write_mapping(const Json& object, int indent, std::string& out) {
  for (const auto& [key, value] : object.items()) {
    out.append(static_cast<size_t>(indent), ' ');
    out += scalar(Json(key));
    out += ':';
    write_after_indicator(value, indent, out);
  }
}

void write_sequence(const Json& array, int indent, std::string& out) {
  for (const Json& item : array) {
    out.append(static_cast<size_t>(indent), ' ');
    out += '-';
    if (item.is_object() && !item.empty()) {  // "- first: ..." with the rest under it
      std::string body;
      write_mapping(item, indent + 2, body);
      out += ' ';
      out.append(body, static_cast<size_t>(indent + 2));
    } else {
      write_after_indicator(item, indent, out);
    }
  }
}

}  // namespace

std::string to_yaml_stream(const std::vector<Json>& objects) {
  std::string out;
  for (const Json& object : objects) {
    out += "---\n";
    write_mapping(object, 0, out);
  }
  return out;
}

}  // namespace prescale::kube
