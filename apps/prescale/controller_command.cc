#include "controller_command.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <csignal>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "admin_endpoints.h"
#include "admission_feed.h"
#include "command_util.h"
#include "control/controller.h"
#include "control/history_store.h"
#include "control/persistent_policy_state.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/logging.h"
#include "core/port_file.h"
#include "core/text_file.h"
#include "dashboard/dashboard.h"
#include "dashboard/dashboard_model.h"
#include "dashboard_feed.h"
#include "feed_state.h"
#include "gateway/gateway.h"
#include "healing/healer.h"
#include "healing/rollout_watch.h"
#include "http/client.h"
#include "http/json.h"
#include "http/server.h"
#include "http/tls.h"
#include "keda_plan.h"
#include "local_platform.h"
#include "pod_timeline.h"
#include "rollout_judge.h"
#include "runtime/runtime.h"
#include "scaling/prescale_policy.h"
#include "telemetry/process_metrics.h"
#include "telemetry/registry.h"
#include "worlds/kube/api_client.h"
#include "worlds/kube/keda_scaler.h"
#include "worlds/kube/kube_world.h"
#include "worlds/kube/manifests.h"
#include "worlds/kube/prometheus_history.h"
#include "worlds/sim/experiment.h"

namespace prescale {

struct ControllerFlags {
  std::string config_path = "prescale.yaml";
  std::string api_server;  // "": the pod's own (in-cluster) credentials
  std::string token_file;
  std::string ca_file;
  std::string name_space;  // "": the pod's namespace, or "default" with --api-server
  std::string policy;      // "": the config's
  bool recommend_only = false;
  std::string admin_address = "0.0.0.0";
  int admin_port = 9902;
  std::string admin_port_file;
  std::string state_dir;  // "": the learned state is not kept
  std::string log_level;
  int keda_port = -1;  // -1: no KEDA external scaler
  std::string keda_address = "0.0.0.0";
  std::string keda_port_file;
  std::string history_from;      // "": no history from Prometheus
  std::string history_selector;  // "": the namespace's gateway pods
  std::string history_window = "2m";
  std::string history_ca_file;     // "": the system's CAs (an https:// --history-from)
  std::string history_token_file;  // "": no Authorization
};

ControllerCommand::ControllerCommand(CLI::App& app) : flags_(std::make_unique<ControllerFlags>()) {
  ControllerFlags& f = *flags_;
  command_ = app.add_subcommand(
      "controller",
      "Run the control plane in a Kubernetes cluster: scale the Deployments `prescale render "
      "kubernetes` wrote by the file's policy (docs/kubernetes.md)");
  command_->add_option("-f,--config", f.config_path, "The file the manifests were rendered from")
      ->capture_default_str();
  command_->add_option("--api-server", f.api_server,
                       "The Kubernetes API's URL, e.g. http://127.0.0.1:8001 from `kubectl proxy` "
                       "(default: the pod's service account, as in a cluster)");
  command_->add_option("--token-file", f.token_file,
                       "A file holding the bearer token for --api-server");
  command_->add_option("--ca-file", f.ca_file,
                       "PEM certificates to verify an https --api-server by (default: the "
                       "system's)");
  command_->add_option("-n,--namespace", f.name_space,
                       "The namespace of the Deployments (default: the pod's own; \"default\" "
                       "with --api-server)");
  command_->add_option("--policy", f.policy,
                       "Scaling policy: prescale, hpa, kpa, aws (default: the config's)");
  command_->add_flag("--recommend-only", f.recommend_only,
                     "Log what the policy would do, and scale nothing");
  command_
      ->add_option("--admin-address", f.admin_address, "Address of /metrics, /healthz and /readyz")
      ->capture_default_str();
  command_
      ->add_option("--admin-port", f.admin_port,
                   "Port of /metrics, /healthz and /readyz; 0 picks a free one")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command_->add_option("--admin-port-file", f.admin_port_file,
                       "Write the bound admin port to this file once listening");
  command_->add_option(
      "--state-dir", f.state_dir,
      "Keep the learned history, call graph and capacity, the incidents, "
      "slowdown warnings and the dashboard's timeline and charts here across restarts "
      "(default: not kept)");
  command_->add_option("--log-level", f.log_level, "trace, debug, info, warn, error");
  CLI::Option* keda_port =
      command_
          ->add_option("--keda-port", f.keda_port,
                       "Serve KEDA's external scaler (gRPC) on this port: KEDA scales the "
                       "Deployments to the policy's plan, and the controller scales none itself "
                       "(docs/kubernetes.md, \"KEDA\"); 0 picks a free one")
          ->check(CLI::Range(0, 65535))
          ->excludes("--recommend-only");
  command_->add_option("--keda-address", f.keda_address, "Address of the KEDA external scaler")
      ->capture_default_str()
      ->needs(keda_port);
  command_
      ->add_option("--keda-port-file", f.keda_port_file,
                   "Write the KEDA external scaler's bound port to this file once listening")
      ->needs(keda_port);
  CLI::Option* history_from = command_->add_option(
      "--history-from", f.history_from,
      "A Prometheus that scrapes the gateway pods, e.g. http://prometheus-server.monitoring:80 "
      "(or https://): at the start, the services' demand history the controller lacks is read "
      "from it (docs/kubernetes.md, \"History from Prometheus\")");
  command_
      ->add_option("--history-selector", f.history_selector,
                   "The label matchers of the gateway pods' series in that Prometheus (default: "
                   "namespace=\"NS\",app_kubernetes_io_component=\"gateway\")")
      ->needs(history_from);
  command_
      ->add_option("--history-window", f.history_window,
                   "The rate window of each minute read from Prometheus: at least twice its scrape "
                   "interval, 1m to 10m")
      ->capture_default_str()
      ->needs(history_from);
  command_
      ->add_option("--history-ca-file", f.history_ca_file,
                   "With an https:// --history-from: a PEM bundle of the CAs its certificate is "
                   "verified by (default: the system's)")
      ->needs(history_from);
  command_
      ->add_option("--history-token-file", f.history_token_file,
                   "A file whose content is sent to that Prometheus as a bearer token "
                   "(Authorization: Bearer), e.g. the pod's service account token for a "
                   "kube-rbac-proxy in front of it")
      ->needs(history_from);
}

ControllerCommand::~ControllerCommand() = default;

bool ControllerCommand::parsed() const { return command_->parsed(); }

namespace {

// Where the API is and who the controller is to it.
Result<kube::ApiConfig> api_config(const ControllerFlags& f) {
  Result<kube::ApiConfig> config =
      f.api_server.empty() ? kube::in_cluster_config() : kube::config_from_url(f.api_server);
  if (!config) return config;
  if (!f.api_server.empty()) {
    config->name_space = "default";
    if (!f.token_file.empty()) {
      std::optional<std::string> token = read_whole_file(f.token_file);
      if (!token) {
        return make_error(ErrorCode::kInvalidArgument,
                          "--token-file " + f.token_file + ": cannot read the file");
      }
      while (!token->empty() && std::isspace(static_cast<unsigned char>(token->back()))) {
        token->pop_back();
      }
      config->token = std::move(*token);
      config->token_file = f.token_file;  // read again every minute, as a renewed token is
    }
    if (!f.ca_file.empty()) config->ca_file = f.ca_file;
  }
  if (!f.name_space.empty()) config->name_space = f.name_space;
  return config;
}

// The healer over the pods the controller sees (docs/kubernetes.md, "The controller"):
//   - a pod whose memory grows toward its service's limit is replaced before the kernel kills it
//     mid-request, and it serves until its replacement is ready (KubeWorld::replace_when_ready: a
//     surge of one, then the Deployment back to desired removes it): one pod of a service at a
//     time;
//   - a pod the gateways' outlier detection ejects again and again while its service's other pods
//     are not ejected (KubeWorld::take_ejections) is evicted at once: it fails requests, so a
//     replacement cannot come too soon (the PodDisruptionBudget applies).
struct Healing {
  healing::Healer& healer;
  std::map<std::string, std::uint64_t> limits;  // services[].memory_limit, by service; 0: none
  std::map<std::string, Clock::Duration> startup_times;  // services[].startup_time, by service
  // What a replacement waits on besides its startup: the controller's look that finds it ready
  // (the policy's observe interval) and the pod's leaving (kube::pod_leave_seconds).
  Clock::Duration look_interval{0};
  Clock::Duration leave_time{0};
  std::set<std::string> looked_at;              // the pods the healer has a record of
  std::set<std::string> warned;                 // pods whose replacement was said to wait
  // Pods whose replacement was given up, by when: watched afresh 10 minutes on (not at once, so
  // that a cluster that cannot start a replacement is not asked for one every few minutes).
  std::map<std::string, Clock::TimePoint> given_up;
};

// The lead a replacement needs: twice the service's startup, and 10 s, as `prescale up` gives it,
// and the wait for the controller's look and the pod's leaving (Healing). The startup is the
// shortest of its pods' (creation to readiness: scheduling and the image's pull included; a pod
// whose readiness came and went only looks longer), at least `configured`
// (services[].startup_time), at most 5 minutes.
Clock::Duration replacement_lead(const scaling::ServiceObservation& s, Clock::Duration configured,
                                 const Healing& h) {
  std::optional<Clock::Duration> shortest;
  for (const scaling::ReplicaObservation& r : s.replicas) {
    if (!r.ready_at) continue;
    const Clock::Duration took = *r.ready_at - r.started_at;
    shortest = shortest ? std::min(*shortest, took) : took;
  }
  const Clock::Duration startup =
      std::clamp<Clock::Duration>(std::max(shortest.value_or(configured), configured),
                                  Clock::Duration::zero(), std::chrono::minutes(5));
  return 2 * startup + std::chrono::seconds(10) + h.look_interval + h.leave_time;
}

// `restarted`, `ejections` and `breaker_openings` are what KubeWorld::take_restarted(),
// take_ejections() and take_breaker_openings() told since the last look.
void heal(Healing& h, const scaling::Snapshot& snapshot, kube::KubeWorld& world,
          DashboardFeed& feed, const std::vector<std::string>& restarted,
          const std::vector<std::pair<std::string, std::string>>& ejections,
          const std::vector<std::pair<std::string, std::string>>& breaker_openings,
          bool recommend_only, bool surge, Clock::TimePoint now) {
  std::set<std::string> present;
  for (const scaling::ServiceObservation& s : snapshot.services) {
    const auto limit = h.limits.find(s.name);
    const auto startup = h.startup_times.find(s.name);
    const Clock::Duration lead = replacement_lead(
        s, startup == h.startup_times.end() ? Clock::Duration::zero() : startup->second, h);
    for (const scaling::ReplicaObservation& r : s.replicas) {
      present.insert(r.id);
      if (limit == h.limits.end() || limit->second == 0 || !r.memory_bytes ||
          r.state != scaling::ReplicaState::kReady) {
        continue;
      }
      h.healer.memory(s.name, r.id, r.metric_time, *r.memory_bytes, limit->second, lead);
      h.looked_at.insert(r.id);
    }
  }
  // A pod whose container restarted runs a new process: what was learned of the old one (its
  // memory's trend, its ejections) is forgotten, as `prescale up` forgets a crashed replica. Not
  // while it is being replaced (the replacement goes on), nor while its replacement's give-up
  // holds it back (a cluster that cannot start a replacement is not asked at every restart).
  for (const std::string& pod : restarted) {
    if (world.replacing(pod) || h.given_up.contains(pod)) continue;
    h.healer.forget(pod);
    h.looked_at.erase(pod);
    h.warned.erase(pod);
  }
  for (const auto& [service, pod] : ejections) {
    if (!present.contains(pod)) continue;
    h.healer.ejected(service, pod, now);
    h.looked_at.insert(pod);
  }
  for (const auto& [service, pod] : breaker_openings) {
    if (!present.contains(pod)) continue;
    h.healer.breaker_opened(service, pod, now);
    h.looked_at.insert(pod);
  }
  // A replacement given up (none was ready in time): the pod stays, and is watched afresh after a
  // while.
  for (const std::string& pod : world.take_given_up()) h.given_up.emplace(pod, now);
  for (auto it = h.given_up.begin(); it != h.given_up.end();) {
    if (present.contains(it->first) && now - it->second < std::chrono::minutes(10)) {
      ++it;
      continue;
    }
    h.healer.forget(it->first);
    h.looked_at.erase(it->first);
    h.warned.erase(it->first);
    it = h.given_up.erase(it);
  }
  for (auto it = h.looked_at.begin(); it != h.looked_at.end();) {
    if (present.contains(*it)) {
      ++it;
      continue;
    }
    h.healer.forget(*it);
    h.warned.erase(*it);
    it = h.looked_at.erase(it);
  }
  for (const healing::Remedy& r : h.healer.remedies(now)) {
    if (recommend_only) {
      spdlog::info("would replace {} of {}: {}", r.replica, r.service, r.reason);
      continue;
    }
    // Without `surge` (KEDA's HPA owns the count, and would take a surge back), a pod heading for
    // its memory limit is evicted too.
    const bool failing = r.kind == healing::RemedyKind::kEjected || !surge;
    auto replaced = failing ? world.restart(r.replica) : world.replace_when_ready(r.replica);
    if (!replaced && replaced.error().code == ErrorCode::kNotFound) {  // gone or going already
      h.healer.failed(r);  // holds the service's next replacement back no longer
      h.warned.erase(r.replica);
      spdlog::info("not replacing {} of {}: {}", r.replica, r.service, replaced.error().message);
      continue;
    }
    if (replaced) {
      h.warned.erase(r.replica);
      const std::string how = failing ? "evicted: a new pod starts; this one leaves"
                                      : "a new pod starts; this one leaves once it is ready";
      spdlog::info("replacing {} of {}: {} ({})", r.replica, r.service, r.reason, how);
      feed.add_event("heal", r.service, r.replica, r.reason + " (" + how + ")");
      continue;
    }
    // Refused for now (another pod of the service being replaced or not ready: its disruption
    // budget; the only ready pod; the Deployment not read yet; the API did not answer): tried
    // again at the next look, with what was learned of the pod kept, and said once.
    h.healer.retry(r);
    if (h.warned.insert(r.replica).second) {
      spdlog::warn("replacing {} of {} not done yet: {}{}", r.replica, r.service,
                   replaced.error().message,
                   replaced.error().message.find(": 403 ") != std::string::npos
                       ? " (the API refused: is the rendered Role applied?)"
                       : "; tried again at each look");
    }
  }
}

// How the services' history is read from Prometheus (--history-from), checked before anything
// starts.
Result<kube::PrometheusHistoryOptions> history_options(const ControllerFlags& f,
                                                       std::string_view name_space) {
  kube::PrometheusHistoryOptions o;
  auto url = parse_web_url(f.history_from);
  if (!url) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--history-from " + f.history_from + ": " + url.error().message);
  }
  o.url = std::move(*url);
  if (!o.url.https && !f.history_ca_file.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--history-ca-file goes with an https:// --history-from");
  }
  // A token is a credential (the pod's service account's can scale Deployments): never sent in
  // the clear.
  if (!o.url.https && !f.history_token_file.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--history-token-file goes with an https:// --history-from (a token is "
                      "not sent over plain HTTP)");
  }
  if (o.url.https) {
    auto tls = http::ClientTlsContext::create(f.history_ca_file);
    if (!tls) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--history-ca-file " + f.history_ca_file + ": " + tls.error().message);
    }
    o.tls = std::move(*tls);
  }
  if (!f.history_token_file.empty()) {
    auto token = read_text_file(f.history_token_file);
    if (!token) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--history-token-file: " + token.error().message);
    }
    std::string_view t = *token;
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back())) != 0)
      t.remove_suffix(1);
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front())) != 0)
      t.remove_prefix(1);
    if (t.empty() || t.find_first_of("\r\n") != std::string_view::npos) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "--history-token-file " + f.history_token_file + ": expected one token on one line");
    }
    o.bearer_token = std::string(t);
  }
  const std::string selector =
      f.history_selector.empty()
          ? "namespace=\"" + std::string(name_space) + "\",app_kubernetes_io_component=\"gateway\""
          : f.history_selector;
  auto normalized = kube::normalize_selector(selector);
  if (!normalized) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--history-selector " + selector + ": " + normalized.error().message);
  }
  o.selector = std::move(*normalized);
  auto window = kube::history_window(f.history_window);
  if (!window) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--history-window " + f.history_window + ": " + window.error().message);
  }
  o.rate_window = *window;
  o.timeout = std::chrono::seconds(10);
  return o;
}

// Reads into the policy the minutes of each service's history it lacks from Prometheus, all by
// `budget` from now, and says what it did. `alive` is called before each service's read (the
// admin port's /healthz says "stuck" a minute after the last). Returns whether any minute was
// filled.
bool history_from_prometheus(kube::PrometheusHistoryOptions options,
                             scaling::PrescalePolicy& policy,
                             const std::vector<scaling::ServiceSpec>& specs, Clock& clock,
                             Clock::Duration budget, const std::function<void()>& alive) {
  options.clock = &clock;
  http::Client client(http::ClientOptions{.tls = options.tls});
  kube::PrometheusHistory prometheus(options, client);
  const Clock::TimePoint deadline = clock.now() + budget;
  std::optional<Error> failed;  // the first failure: the others would fail alike
  std::vector<std::string> services;
  for (const scaling::ServiceSpec& s : specs) services.push_back(s.name);
  const kube::MinutesReader read = [&](std::string_view service, double first_end,
                                       std::size_t count) -> Result<kube::PrometheusMinutes> {
    if (failed) return std::unexpected(*failed);
    alive();
    auto minutes = prometheus.read(service, first_end, count, deadline);
    if (!minutes) failed = minutes.error();
    return minutes;
  };
  const auto outcomes =
      kube::backfill_history(policy, services, read, clock.now(), clock.wall_now());
  alive();
  std::size_t filled = 0, answered = 0, not_asked = 0;
  bool failure_said = false;
  for (const kube::BackfillOutcome& o : outcomes) {
    if (o.answered > 0) ++answered;
    if (o.filled > 0 || o.external_filled > 0) ++filled;  // to be saved, whatever came after
    if (o.error) {
      // The first failure is said; the services after it were not asked.
      const bool that_failure = failed && o.error->message == failed->message;
      if (that_failure && failure_said) {
        ++not_asked;
        continue;
      }
      failure_said = failure_said || that_failure;
      spdlog::warn("the history of {} was not read from Prometheus ({}); it is learned from now",
                   o.service, o.error->message);
    } else if (o.filled > 0 || o.external_filled > 0) {
      spdlog::info("the history of {}: {} minutes from Prometheus{}, {} in all", o.service,
                   o.filled,
                   o.external_filled > 0
                       ? " (and " + std::to_string(o.external_filled) + " of its own clients')"
                       : std::string(),
                   o.minutes);
    }
  }
  if (not_asked > 0) {
    spdlog::warn("the history of {} other services was not asked of Prometheus after that",
                 not_asked);
  }
  if (answered == 0 && outcomes.size() > not_asked + (failure_said ? 1 : 0)) {
    spdlog::warn(
        "Prometheus has none of the gateways' counts of calls for {{{}}}: does it scrape the "
        "gateway pods (their prometheus.io annotations), with their labels? (--history-selector)",
        options.selector);
  } else if (!failed && filled == 0) {
    spdlog::info("Prometheus has no minute of the services' history that the controller lacks");
  }
  return filled > 0;
}

}  // namespace

int ControllerCommand::run() const {
  const ControllerFlags& f = *flags_;
  auto error = [](const std::string& message) {
    std::cerr << "prescale controller: " << message << "\n";
    return 2;
  };
  // What a reload compares the file with (below): read before it is loaded, so that an edit made
  // meanwhile is seen as one.
  std::optional<std::string> file_text = read_whole_file(f.config_path);
  auto loaded = load_config_file(f.config_path);
  if (!loaded) return error(loaded.error().message);
  Config config = std::move(*loaded);  // as a reload leaves it
  const std::string level =
      f.log_level.empty() ? std::string(to_string(config.logging.level)) : f.log_level;
  if (!init_logging({.level = level, .format = config.logging.format})) {
    return error("--log-level: unknown level \"" + level + "\"");
  }
  auto policy_name = live_policy_name(config, f.policy);
  if (!policy_name) return error(policy_name.error().message);
  if (f.api_server.empty() && (!f.token_file.empty() || !f.ca_file.empty())) {
    return error(
        "--token-file and --ca-file go with --api-server (in a pod, the service "
        "account's are used)");
  }
  auto api_settings = api_config(f);
  if (!api_settings) return error(api_settings.error().message);
  std::optional<kube::PrometheusHistoryOptions> history_source;
  if (!f.history_from.empty()) {
    if (*policy_name != "prescale") {
      return error("--history-from: the " + *policy_name +
                   " policy keeps no history; it goes with the prescale policy");
    }
    auto o = history_options(f, api_settings->name_space);
    if (!o) return error(o.error().message);
    history_source = std::move(*o);
  }

  // The gateway's route labels, as the rendered gateway gives them: a file with one service and
  // no routes sends it everything.
  auto route_labels = [](const Config& c) {
    GatewayConfig gateway_config = c.gateway;
    if (gateway_config.routes.empty() && c.services.size() == 1) {
      RouteConfig all;
      all.service = c.services.front().name;
      gateway_config.routes.push_back(std::move(all));
    }
    return gateway::route_services(gateway_config);
  };
  auto routes = route_labels(config);
  if (!routes) return error(f.config_path + ": gateway.routes: " + routes.error().message);

  runtime::Runtime::block_termination_signals();
  // Each call of the API within 2 s: a look at the cluster makes a few, and the loop must not
  // fall far behind the reactive floor's second while the API is slow.
  kube::ApiClient api(*api_settings, std::chrono::seconds(2));
  telemetry::Registry registry;
  telemetry::register_process_metrics(registry);
  telemetry::GaugeFamily& desired_gauge =
      registry.gauge("prescale_controller_desired_replicas",
                     "The replicas the policy wants for the service: its Deployment's, as last "
                     "read or set, less a replacement's surge",
                     {"service"});
  telemetry::GaugeFamily& ready_gauge =
      registry.gauge("prescale_controller_ready_replicas",
                     "The service's pods ready at the last observation", {"service"});
  telemetry::GaugeFamily& forecast_gauge = registry.gauge(
      "prescale_controller_demand_forecast_rps",
      "The prescale policy's forecast of the service's requests a second this minute, at each "
      "quantile (absent before its first forecast)",
      {"service", "quantile"});
  telemetry::CounterFamily& events_counter =
      registry.counter("prescale_controller_scaling_events_total",
                       "Replica count changes applied, by direction", {"service", "direction"});
  telemetry::CounterFamily& rollbacks_counter = registry.counter(
      "prescale_controller_rollbacks_total",
      "Rollouts rolled back: a new revision whose pods restarted or were ejected, or that failed "
      "more often or answered more slowly than the one it replaced",
      {"service"});

  Clock& clock = Clock::real();
  std::vector<scaling::ServiceSpec> specs;
  for (const ServiceConfig& s : config.services) specs.push_back(service_spec(s));
  // Every service's counters from 0, so that a rate or increase sees their first event.
  for (const scaling::ServiceSpec& s : specs) {
    events_counter.with({s.name, "up"});
    events_counter.with({s.name, "down"});
    rollbacks_counter.with({s.name});
  }
  sim::PolicySettings settings;
  settings.prescale.period = config.policy.period;
  settings.prescale.observe_interval = prescale_observe_interval(1, settings.prescale.period);
  sim::apply_policy_config(config.policy, config.services, settings);
  auto policy = sim::make_policy(*policy_name, settings, {});
  if (!policy) return error(policy.error().message);
  kube::KubeWorldOptions wo;
  wo.clock = &clock;
  wo.leave_time = std::chrono::seconds(kube::pod_leave_seconds(config));
  // With KEDA no surge: its HorizontalPodAutoscaler owns the Deployments' counts.
  wo.act_on_replacements = !f.recommend_only && f.keda_port < 0 && config.healer.enabled;
  for (const auto& [route, service] : *routes) wo.route_service[route] = service;
  kube::KubeWorld world(api, specs, wo);
  // Before anything runs: the API answers, and lets this account list the Deployments.
  auto missing = world.missing_deployments();
  if (!missing) return error("the Kubernetes API: " + missing.error().message);
  for (const std::string& name : *missing) {
    spdlog::warn(
        "no Deployment {} in namespace {}: apply `prescale render kubernetes -f {}`; "
        "it is scaled once it exists",
        name, api_settings->name_space, f.config_path);
  }
  // With KEDA, KEDA scales the Deployments to the plan (the controller's own scaling would fight
  // its HorizontalPodAutoscaler); the healer and the admission limits act as ever.
  const bool keda = f.keda_port >= 0;
  const bool scales_itself = !f.recommend_only && !keda;
  RecommendOnlyWorld advisor(world);
  control::World& acted_on = scales_itself ? world : static_cast<control::World&>(advisor);
  control::Controller controller(acted_on, **policy, specs, clock);

  // The learned state, when a directory keeps it.
  auto* prescale_policy = dynamic_cast<scaling::PrescalePolicy*>(policy->get());
  std::optional<control::HistoryStore> store;
  if (!f.state_dir.empty()) {
    auto opened = control::HistoryStore::open(f.state_dir);
    if (!opened) return error("--state-dir " + f.state_dir + ": " + opened.error().message);
    store = std::move(*opened);
  }
  if (store && prescale_policy != nullptr) {
    auto restored =
        control::restore_policy_state(*store, *prescale_policy, clock.now(), clock.wall_now());
    if (!restored) {
      spdlog::warn("state in {} not restored ({}); running without it", f.state_dir,
                   restored.error().message);
    } else if (*restored) {
      spdlog::info("restored the learned history, topology and capacity from {}", f.state_dir);
    }
  }

  // Admission limits for the gateway pods (GET /v1/admission/POD, admission_feed.h): each
  // service's from its learned capacity, shared among the gateways in service by their shares of
  // its requests.
  LearnedAdmission admission(config.services);
  AdmissionBoard admission_board;

  std::atomic<bool> observed{false};
  // Alive while its looks at the cluster go on: a loop stuck for a minute (a call that never
  // returns) fails the liveness probe, and the kubelet restarts the container.
  std::atomic<Clock::Duration::rep> last_tick{clock.now().time_since_epoch().count()};
  http::Router admin_routes =
      admin_router(registry, observed, "not observed yet", [&last_tick, &clock] {
        const Clock::TimePoint at{Clock::Duration(last_tick.load())};
        return clock.now() - at < std::chrono::minutes(1);
      });
  const http::Handler admission_route = [&](http::Request& req, http::Responder respond) {
    if (f.recommend_only) {
      return respond(http::error_response(
          503, "recommend_only",
          "recommending only: the gateways keep the admission limits they have"));
    }
    std::optional<std::string> document =
        admission_board.document(req.param("gateway").value_or(""));
    if (!document) {
      return respond(
          http::error_response(503, "not_ready", "the gateway pods have not been listed yet"));
    }
    http::Response r = http::Response::text(200, std::move(*document));
    r.headers.set("Content-Type", "application/json");
    respond(std::move(r));
  };
  // The dashboard (docs/dashboard.md), on the admin port: `kubectl port-forward` reaches it.
  dashboard::DashboardModel model;
  dashboard::Dashboard(model).add_routes(admin_routes);
  if (store) {
    if (auto restored = restore_timeline(*store, model); !restored) {
      spdlog::warn("the dashboard's timeline in {} not restored ({}); it starts empty", f.state_dir,
                   restored.error().message);
    }
  }
  DashboardFeedOptions feed_options{*policy_name, !scales_itself, 1};
  for (const ServiceConfig& s : config.services)
    feed_options.error_budgets[s.name] = s.slo.error_budget;
  for (const scaling::ServiceSpec& s : specs)
    feed_options.max_concurrency[s.name] = s.max_concurrency;
  feed_options.registry = &registry;
  DashboardFeed feed(
      model, [&world](std::string_view service) { return world.totals(service); }, prescale_policy,
      std::move(feed_options), clock);
  if (store) restore_feed_state_said(*store, feed, clock.now(), f.state_dir);
  DashboardSaver dashboard_saver;
  auto save_state = [&](bool last = false) {
    if (store) {
      save_platform_state(*store, prescale_policy, feed, model, dashboard_saver, clock, f.state_dir,
                          last);
    }
  };
  // The services as the dashboard shows them: from the file, with each Deployment's revision and
  // rollout as last read.
  // A new revision against the old one, while both serve.
  RolloutJudge rollout_judge(world, &feed, &rollbacks_counter);
  for (const ServiceConfig& s : config.services) {
    // A pod may take twice its startup time to get ready, and never less than the rendered
    // startup probe's 2 minutes and a minute for its readiness probe.
    rollout_judge.set_ready_deadline(
        s.name, std::max<Clock::Duration>(std::chrono::seconds(180), 2 * s.startup_time));
  }
  // What the pods run (kind, memory limit) is the file's as the controller started: a reload
  // changes it only with the rendered manifests, and their pods roll a new controller.
  const Config as_started = config;
  auto show_services = [&] {
    const std::map<std::string, healing::RolloutRevisions> rolling = world.rollouts();
    std::vector<dashboard::ServiceInfo> infos;
    for (const ServiceConfig& s : config.services) {
      // A reload keeps the services (in any order): what their pods run is found by name.
      const ServiceConfig* started = find_service(as_started, s.name);
      const ServiceConfig& pods = started != nullptr ? *started : s;
      std::string rollout;
      if (const auto back = rollout_judge.rolled_back().find(s.name);
          back != rollout_judge.rolled_back().end()) {
        rollout = back->second;
      } else if (const auto r = rolling.find(s.name);
                 r != rolling.end() && r->second.revision != r->second.stable) {
        rollout = "rolling out: revision " + std::to_string(r->second.revision) + " over " +
                  std::to_string(r->second.stable);
      }
      infos.push_back({s.name, std::string(to_string(pods.kind)), s.slo.latency_p99_ms,
                       s.replicas.min, s.replicas.max,
                       pods.memory_limit.bytes > 0
                           ? static_cast<double>(pods.memory_limit.bytes) / 0x1p20
                           : dashboard::kNoValue,
                       world.revision(s.name), std::move(rollout)});
    }
    model.set_services(std::move(infos));
  };
  show_services();
  if (store) restore_charts_said(*store, model, clock.wall_now(), f.state_dir);
  admin_routes.add(http::Method::kGet, "/v1/admission", admission_route);
  admin_routes.add(http::Method::kGet, "/v1/admission/{gateway}", admission_route);
  http::ServerOptions admin_options;
  admin_options.address = f.admin_address;
  admin_options.port = static_cast<uint16_t>(f.admin_port);
  admin_options.threads = 1;
  http::Server admin(admin_options, admin_routes.as_handler());
  if (auto started = admin.start(); !started) {
    std::cerr << "prescale controller: admin: " << started.error().to_string() << "\n";
    return 1;
  }
  std::unique_ptr<kube::KedaScaler> keda_scaler;
  KedaPlan keda_plan(specs);
  if (keda) {
    telemetry::CounterFamily& keda_calls = registry.counter(
        "prescale_controller_keda_calls_total",
        "Calls of the KEDA external scaler by method and gRPC status code", {"method", "code"});
    kube::KedaScalerOptions ko{.address = f.keda_address,
                               .port = f.keda_port,
                               .services = {},
                               .name_space = api_settings->name_space};
    for (const ServiceConfig& s : config.services) ko.services.push_back(s.name);
    ko.on_call = [&keda_calls](std::string_view method, std::string_view code) {
      keda_calls.with({std::string(method), std::string(code)}).inc();
    };
    auto started = kube::KedaScaler::start(std::move(ko));
    if (!started) {
      std::cerr << "prescale controller: --keda-port: " << started.error().message << "\n";
      admin.shutdown(std::chrono::milliseconds(0));
      return 1;
    }
    keda_scaler = std::move(*started);
  }
  if (auto written =
          write_port_files({{"--admin-port-file", f.admin_port_file, admin.port()},
                            {"--keda-port-file", f.keda_port_file,
                             static_cast<uint16_t>(keda_scaler ? keda_scaler->port() : 0)}});
      !written) {
    std::cerr << "prescale controller: " << written.error().message << "\n";
    admin.shutdown(std::chrono::milliseconds(0));
    return 1;
  }
  spdlog::info("controller for {} services in namespace {}, policy {}{}, admin on {}:{}",
               specs.size(), api_settings->name_space, *policy_name,
               f.recommend_only ? " (recommending only)" : "", f.admin_address, admin.port());
  if (keda_scaler) {
    spdlog::info(
        "KEDA external scaler on {}:{}: KEDA scales the Deployments to the plan; the "
        "controller scales none itself",
        f.keda_address, keda_scaler->port());
  }

  // What the policy lacks of its history, from Prometheus, before its first look: 45 s at most.
  // The minutes filled are stored at once, those before the newest stored one too.
  if (history_source && prescale_policy != nullptr) {
    const bool filled = history_from_prometheus(
        *history_source, *prescale_policy, specs, clock, std::chrono::seconds(45),
        [&] { last_tick = clock.now().time_since_epoch().count(); });
    if (filled && store) {
      if (auto saved =
              control::save_policy_state(*store, *prescale_policy, clock.now(), clock.wall_now(),
                                         control::current_boot_id(), control::SavedMinutes::kAll);
          !saved) {
        spdlog::warn("the history read from Prometheus not saved in {} ({})", f.state_dir,
                     saved.error().message);
      }
    }
  }

  // The healer (heal).
  healing::Healer healer({.ejections = config.healer.ejections,
                          .window = config.healer.window,
                          .min_interval = config.healer.min_interval,
                          .memory = {}});
  Healing cluster_healing{healer, {}, {}, (*policy)->observe_interval(), wo.leave_time, {}, {}, {}};
  for (const ServiceConfig& c : config.services) {
    cluster_healing.limits[c.name] = c.memory_limit.bytes;
    cluster_healing.startup_times[c.name] = service_spec(c).startup_time;
  }

  PodTimeline pod_timeline;
  std::set<std::string> forecast_seen;  // services whose forecast gauge is exported

  // Reloads (docs/kubernetes.md, "Changing the file"): the file's content is looked at every 2 s
  // (the kubelet replaces a mounted ConfigMap's files whole, a minute or so after its edit). What
  // the controller sizes by applies at once, as `prescale up` applies it; what the policy was
  // made from needs a new controller pod, and a file asking for it changes nothing; what the pods
  // run (their templates, the gateway's settings) changes when the rendered manifests are
  // applied, which also rolls a new controller pod.
  auto reload = [&] {
    auto refuse = [&](const std::string& message) {
      spdlog::error("reload (the file changed) refused, keeping the running configuration: {}",
                    message);
    };
    auto next = load_config_string(*file_text, f.config_path);  // messages carry file:line
    if (!next) return refuse(next.error().message);
    std::string fixed;
    // A service added or removed has its Deployment made or deleted with the manifests, and a
    // new controller pod with them.
    if (const ServiceChanges changed = service_changes(config, *next); !changed.empty()) {
      fixed = "services (" + changed.said() + ")";
    }
    for (const std::string& field : changes_needing_a_restart(config, *next)) {
      // The pods' own settings are not the controller's to refuse.
      const bool controllers = field == "policy" || field == "healer" ||
                               field.ends_with(".concurrency") || field.ends_with(".kind");
      if (controllers) fixed += (fixed.empty() ? "" : ", ") + field;
    }
    if (!fixed.empty()) {
      return refuse(f.config_path + ": " + fixed +
                    " changed; while running, the controller applies changes to services' "
                    "replica bounds, SLOs, capacity and startup time seeds and queue limits: a "
                    "new controller pod for these (applying the rendered manifests rolls one)");
    }
    // The gateways count a route's requests by its label: one leading to another service than
    // it did would count for the wrong one (as under `prescale up`); new ones are counted.
    auto labels = route_labels(*next);
    if (!labels) return refuse(f.config_path + ": gateway.routes: " + labels.error().message);
    for (const auto& [route, service] : *labels) {
      if (const std::string* counted = world.route_service(route);
          counted != nullptr && *counted != service) {
        return refuse(f.config_path + ": gateway.routes: the route labelled \"" + route +
                      "\" in the metrics leads to " + service + ", and its requests so far were " +
                      *counted + "'s: a new controller pod for this change");
      }
    }
    world.add_routes(*labels);
    std::string respecced;
    std::vector<ServiceConfig> respecified;
    bool rebounded = false;
    for (const ServiceConfig& now : next->services) {
      const ServiceConfig& was = *find_service(config, now.name);  // none added (above)
      const std::vector<std::string> changes = spec_changes(was, now);
      if (changes.empty()) continue;
      rebounded =
          rebounded || now.replicas.min != was.replicas.min || now.replicas.max != was.replicas.max;
      const scaling::ServiceSpec spec = service_spec(now);
      if (auto set = controller.respec(spec); !set) {
        spdlog::error("reload (the file changed): {}", set.error().message);  // checked first
        continue;
      }
      respecified.push_back(now);
      keda_plan.respec(spec);
      feed.set_error_budget(now.name, now.slo.error_budget);
      cluster_healing.startup_times[now.name] = spec.startup_time;
      rollout_judge.set_ready_deadline(
          now.name, std::max<Clock::Duration>(std::chrono::seconds(180), 2 * now.startup_time));
      respecced += (respecced.empty() ? "" : "; ") + now.name + "'s ";
      for (size_t k = 0; k < changes.size(); ++k) respecced += (k > 0 ? ", " : "") + changes[k];
    }
    follow_respec(*next, respecified, prescale_policy, f.recommend_only, admission);
    // The healer's look at rollouts may be switched at once, as under `prescale up`.
    config = std::move(*next);
    show_services();
    spdlog::info(
        "reloaded {} (the file changed): {}{}; the rest applies to the pods with the "
        "rendered manifests",
        f.config_path, respecced.empty() ? "nothing the controller sizes by changed" : respecced,
        keda && rebounded
            ? "; KEDA keeps the ScaledObjects' bounds until the rendered manifests are "
              "applied"
            : "");
  };
  Clock::TimePoint next_look = clock.now() + std::chrono::seconds(2);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  Clock::TimePoint next_save = clock.now() + std::chrono::minutes(1);
  int sig = 0;
  while (true) {
    const auto wait_ns =
        std::clamp<long>(static_cast<long>((controller.next_tick() - clock.now()).count()),
                         1'000'000, 1'000'000'000 - 1);
    const timespec wait{0, wait_ns};
    sig = sigtimedwait(&stop_signals, nullptr, &wait);
    if (sig > 0) break;
    if (clock.now() >= next_look) {
      next_look = clock.now() + std::chrono::seconds(2);
      // A file that cannot be read (being replaced) is looked at again, not taken as a change.
      if (std::optional<std::string> text = read_whole_file(f.config_path);
          text && text != file_text) {
        file_text = std::move(text);
        reload();  // once per content: a refused one is not tried again until the file changes
      }
    }
    if (clock.now() < controller.next_tick()) continue;
    const std::optional<scaling::Plan> plan = controller.tick();
    if (keda_scaler && plan) keda_plan.decided(*plan);
    if (prescale_policy != nullptr && !f.recommend_only) {
      admission.follow(
          [&](std::string_view s) { return prescale_policy->capacity().capacity_rps(s); },
          [](std::string_view, int) -> Result<void> { return {}; });
    }
    // One time for both: the list of pods is stale for both or for neither.
    const Clock::TimePoint looked_at = clock.now();
    admission_board.publish(
        admission, config.services, world.gateways_in_service(looked_at),
        [&world, looked_at](std::string_view s) { return world.gateway_shares(s, looked_at); });
    observed = true;
    last_tick = clock.now().time_since_epoch().count();
    const std::vector<std::string> restarted = world.take_restarted();
    std::vector<std::pair<std::string, std::string>> ejections = world.take_ejections();
    std::vector<std::pair<std::string, std::string>> breaker_openings =
        world.take_breaker_openings();
    // The pods' events, for the timeline and the incidents' causes.
    for (const PodEvent& e : pod_timeline.look(controller.last_snapshot(), restarted, ejections,
                                               breaker_openings, world.pods_stale(clock.now()))) {
      if (e.kind == "crash" || e.kind == "eject") {
        spdlog::warn("{} {}: {}", e.kind, e.pod, e.message);
      }
      feed.add_event(e.kind, e.service, e.pod, e.message);
    }
    rollout_judge.look(restarted, ejections, breaker_openings,
                       config.healer.enabled && config.healer.rollout_analysis, f.recommend_only,
                       clock.now());
    if (config.healer.enabled) {
      heal(cluster_healing, controller.last_snapshot(), world, feed, restarted, ejections,
           breaker_openings, f.recommend_only, /*surge=*/!keda, clock.now());
    }

    if (keda_scaler) keda_scaler->publish(keda_plan.published(controller.last_snapshot()));
    std::vector<control::Event> events = controller.take_events();
    if (keda) events = keda_plan.to_say(std::move(events));
    for (const control::Event& e : events) {
      events_counter.with({e.service, e.to_replicas > e.from_replicas ? "up" : "down"}).inc();
      spdlog::info("{} {} {} -> {}: {}",
                   scales_itself ? "scaled"
                   : keda        ? "planned for KEDA"
                                 : "would scale",
                   e.service, e.from_replicas, e.to_replicas, e.reason);
    }
    feed.after_tick(controller, plan, events);
    show_services();
    for (const scaling::ServiceObservation& s : controller.last_snapshot().services) {
      desired_gauge.with({s.name}).set(s.desired_replicas);
      ready_gauge.with({s.name}).set(s.count(scaling::ReplicaState::kReady));
      if (prescale_policy != nullptr) {
        // NaN while the policy has no forecast of this minute (before its first, after a jump
        // of the clock): a gauge is never removed, and its last value would be read as current.
        const auto demand = prescale_policy->demand_forecast_at(s.name, clock.now());
        const char* quantiles[] = {"0.5", "0.9", "0.99"};
        for (size_t q = 0; q < 3; ++q) {
          if (demand || forecast_seen.contains(s.name)) {
            forecast_gauge.with({s.name, quantiles[q]}).set(demand ? (*demand)[q] : NAN);
          }
        }
        if (demand) forecast_seen.insert(s.name);
      }
    }
    if (clock.now() >= next_save) {
      save_state();
      next_save = clock.now() + std::chrono::minutes(1);
    }
  }
  spdlog::info("controller received {}, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  if (keda_scaler) keda_scaler->stop();
  save_state(/*last=*/true);
  admin.shutdown(std::chrono::seconds(1));
  return 0;
}

}  // namespace prescale
