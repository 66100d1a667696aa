#include "worlds/kube/kube_world.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "http/client.h"
#include "telemetry/scrape_query.h"
#include "telemetry/text_parser.h"
#include "worlds/kube/api_client.h"
#include "worlds/traffic/gateway_traffic.h"

namespace prescale::kube {

namespace {

using Json = nlohmann::json;

constexpr std::string_view kSelector = "labelSelector=app.kubernetes.io%2Fpart-of%3Dprescale";

// What observe() needs of one pod.
struct Pod {
  std::string name, uid;
  std::string app;  // app.kubernetes.io/name: the service, or the gateway
  scaling::ReplicaState state = scaling::ReplicaState::kStarting;
  Clock::WallTime created{};
  std::optional<Clock::WallTime> ready_since;
  std::string ip;
  std::uint16_t http_port = 0, admin_port = 0;
};

std::string string_at(const Json& j, std::initializer_list<const char*> path) {
  const Json* at = &j;
  for (const char* key : path) {
    if (!at->is_object()) return {};
    const auto it = at->find(key);
    if (it == at->end()) return {};
    at = &*it;
  }
  return at->is_string() ? at->get<std::string>() : std::string();
}

std::uint16_t port_named(const Json& pod, std::string_view name) {
  const Json* containers = nullptr;
  if (auto spec = pod.find("spec"); spec != pod.end() && spec->is_object()) {
    if (auto c = spec->find("containers"); c != spec->end() && c->is_array()) containers = &*c;
  }
  if (containers == nullptr) return 0;
  for (const Json& c : *containers) {
    const auto ports = c.find("ports");
    if (!c.is_object() || ports == c.end() || !ports->is_array()) continue;
    for (const Json& p : *ports) {
      if (!p.is_object() || string_at(p, {"name"}) != name) continue;
      const auto number = p.find("containerPort");
      if (number != p.end() && number->is_number_integer()) {
        const auto n = number->get<std::int64_t>();
        if (n > 0 && n < 65536) return static_cast<std::uint16_t>(n);
      }
    }
  }
  return 0;
}

// The pod as observe() reads it; nullopt for one that has finished, or has no name.
std::optional<Pod> read_pod(const Json& item) {
  Pod p;
  p.name = string_at(item, {"metadata", "name"});
  p.uid = string_at(item, {"metadata", "uid"});
  if (p.uid.empty()) p.uid = p.name;
  const Json& labels = item.is_object() && item.contains("metadata") &&
                               item["metadata"].is_object() && item["metadata"].contains("labels")
                           ? item["metadata"]["labels"]
                           : Json();
  p.app = string_at(labels, {"app.kubernetes.io/name"});
  const std::string phase = string_at(item, {"status", "phase"});
  if (p.name.empty() || phase == "Succeeded" || phase == "Failed") return std::nullopt;
  if (auto created = parse_utc(string_at(item, {"metadata", "creationTimestamp"}))) {
    p.created = *created;
  }
  p.ip = string_at(item, {"status", "podIP"});
  p.http_port = port_named(item, "http");
  p.admin_port = port_named(item, "admin");
  bool ready = false;
  if (item.contains("status") && item["status"].is_object() &&
      item["status"].contains("conditions") && item["status"]["conditions"].is_array()) {
    for (const Json& c : item["status"]["conditions"]) {
      if (string_at(c, {"type"}) != "Ready" || string_at(c, {"status"}) != "True") continue;
      ready = true;
      p.ready_since = parse_utc(string_at(c, {"lastTransitionTime"}));
    }
  }
  if (!string_at(item, {"metadata", "deletionTimestamp"}).empty()) {
    p.state = scaling::ReplicaState::kDraining;
  } else if (ready && phase == "Running") {
    p.state = scaling::ReplicaState::kReady;
  }
  return p;
}

// What one scrape of a service's pod says.
struct PodScrape {
  double cpu_seconds = NAN;
  double memory_bytes = NAN;
  Clock::TimePoint at;
};

}  // namespace

struct KubeWorld::State {
  State(ApiClient& a, KubeWorldOptions o)
      : api(a),
        options(std::move(o)),
        client(http::ClientOptions{.connect_timeout = options.scrape_timeout,
                                   .request_timeout = options.scrape_timeout,
                                   .threads = 1}) {}

  struct Service {
    scaling::ServiceSpec spec;
    traffic::TrafficWindow traffic;
    int desired = 0;
  };

  void problem(const std::string& key, const std::string& message) {
    auto [it, added] = problems.emplace(key, message);
    if (!added && it->second == message) return;
    it->second = message;
    say(message);
  }
  void solved(const std::string& key, const std::string& message) {
    if (problems.erase(key) > 0) say(message);
  }
  void say(const std::string& message) const {
    if (options.on_problem) {
      options.on_problem(message);
    } else {
      spdlog::warn("{}", message);
    }
  }
  std::string ns_path(std::string_view group, std::string_view rest) const {
    const std::string& ns = api.config().name_space;
    return std::string(group) + "/namespaces/" + (ns.empty() ? "default" : ns) + "/" +
           std::string(rest);
  }
  Clock::TimePoint at(Clock::WallTime wall, Clock::TimePoint now, Clock::WallTime wall_now) const {
    // A pod stamped after now (clocks a little apart) started now.
    return now - std::max(Clock::Duration::zero(), wall_now - wall);
  }

  void read_gateways(const std::vector<Pod>& gateways, bool first, Clock::WallTime started);
  void read_deployments();

  ApiClient& api;
  KubeWorldOptions options;
  http::Client client;
  std::vector<Service> services;
  scaling::Snapshot snapshot;
  std::vector<Pod> pods;  // the last list that was read
  std::optional<Clock::TimePoint> last_scrape;
  std::optional<Clock::WallTime> started;                       // the first observation's wall time
  std::map<std::string, traffic::GatewayReading> gateway_last;  // by pod uid
  traffic::GatewayReading gateway_total;      // every gateway's growth since the first observation
  std::map<std::string, PodScrape> pod_last;  // by pod uid
  std::map<std::string, std::optional<double>> cpu;  // by pod uid, as of the last scrape
  std::map<std::string, std::string> problems;       // said, by what they are about
};

KubeWorld::KubeWorld(ApiClient& api, std::vector<scaling::ServiceSpec> services,
                     KubeWorldOptions options)
    : state_(std::make_unique<State>(api, std::move(options))) {
  for (auto& spec : services) {
    scaling::ServiceObservation obs;
    obs.name = spec.name;
    state_->snapshot.services.push_back(std::move(obs));
    const double slo = spec.slo_latency_p99_seconds;
    const int initial = spec.min_replicas;
    state_->services.push_back(State::Service{
        std::move(spec), traffic::TrafficWindow(slo, state_->options.metric_window), initial});
  }
}

KubeWorld::~KubeWorld() = default;

// Each gateway pod's counters, grown since its last answer. A pod that was there before the first
// observation counts from its first answer (what it counted before is the past); one that came
// after counts from zero (it started after the world did).
void KubeWorld::State::read_gateways(const std::vector<Pod>& gateways, bool first,
                                     Clock::WallTime start) {
  std::vector<http::Client::Peer> peers;
  std::vector<const Pod*> asked;
  for (const Pod& p : gateways) {
    if (p.ip.empty() || p.admin_port == 0) continue;
    peers.push_back({p.ip, p.admin_port});
    asked.push_back(&p);
  }
  std::vector<Result<http::Response>> answers = client.get_all(peers, "/metrics");
  for (size_t i = 0; i < asked.size(); ++i) {
    const Pod& p = *asked[i];
    const std::string key = "gateway " + p.name;
    Result<std::vector<telemetry::ParsedFamily>> families = make_error(ErrorCode::kUnavailable, "");
    if (!answers[i]) {
      families = make_error(answers[i].error().code, answers[i].error().message);
    } else if (answers[i]->status != 200) {
      families =
          make_error(ErrorCode::kUnavailable, "answered " + std::to_string(answers[i]->status));
    } else {
      families = telemetry::parse_text(answers[i]->body);
    }
    if (!families) {
      problem(key, "gateway pod " + p.name + " (" + p.ip + ":" + std::to_string(p.admin_port) +
                       ") not read: " + families.error().message +
                       "; its requests are counted when it answers again");
      continue;
    }
    solved(key, "gateway pod " + p.name + " is read again");
    traffic::GatewayReading reading;
    traffic::add_gateway(telemetry::to_snapshots(*families), options.route_service, reading);
    auto last = gateway_last.find(p.uid);
    if (last != gateway_last.end()) {
      traffic::add(gateway_total, traffic::growth(reading, last->second));
    } else if (!first && p.created >= start) {
      traffic::add(gateway_total, reading);
    }
    gateway_last[p.uid] = std::move(reading);
  }
  // Forget pods that are gone.
  std::set<std::string> present;
  for (const Pod& p : gateways) present.insert(p.uid);
  std::erase_if(gateway_last, [&](const auto& e) { return !present.contains(e.first); });
}

void KubeWorld::State::read_deployments() {
  auto list = api.get(ns_path("/apis/apps/v1", "deployments?" + std::string(kSelector)));
  if (!list) {
    problem("deployments", "deployments not read: " + list.error().message);
    return;
  }
  solved("deployments", "deployments are read again");
  if (!list->contains("items") || !(*list)["items"].is_array()) return;
  for (const Json& d : (*list)["items"]) {
    const std::string name = string_at(d, {"metadata", "name"});
    for (Service& s : services) {
      if (s.spec.name != name) continue;
      if (d.contains("spec") && d["spec"].is_object() && d["spec"].contains("replicas") &&
          d["spec"]["replicas"].is_number_integer()) {
        s.desired = d["spec"]["replicas"].get<int>();
      }
    }
  }
}

const scaling::Snapshot& KubeWorld::observe(Clock::TimePoint now) {
  State& st = *state_;
  const Clock::WallTime wall_now = st.options.clock->wall_now();
  const bool first = !st.started.has_value();
  if (first) st.started = wall_now;
  const bool scrape = !st.last_scrape || now - *st.last_scrape >= st.options.scrape_interval;

  if (auto list = st.api.get(st.ns_path("/api/v1", "pods?" + std::string(kSelector)))) {
    st.solved("pods", "pods are read again");
    std::vector<Pod> pods;
    if (list->contains("items") && (*list)["items"].is_array()) {
      for (const Json& item : (*list)["items"]) {
        if (auto pod = read_pod(item)) pods.push_back(std::move(*pod));
      }
    }
    st.pods = std::move(pods);
  } else {
    st.problem("pods", "pods not read: " + list.error().message +
                           "; the last replicas read stand until they are read again");
  }
  std::vector<Pod> gateways;
  for (const Pod& p : st.pods) {
    if (p.app == st.options.gateway_name) gateways.push_back(p);
  }
  st.read_gateways(gateways, first, *st.started);
  if (scrape) st.read_deployments();

  // The services' pods' own metrics: CPU and memory.
  if (scrape) {
    std::vector<http::Client::Peer> peers;
    std::vector<const Pod*> asked;
    for (const Pod& p : st.pods) {
      if (p.app == st.options.gateway_name || p.ip.empty() || p.http_port == 0 ||
          p.state == scaling::ReplicaState::kStarting) {
        continue;
      }
      peers.push_back({p.ip, p.http_port});
      asked.push_back(&p);
    }
    std::vector<Result<http::Response>> answers = st.client.get_all(peers, "/metrics");
    std::map<std::string, PodScrape> seen;
    for (size_t i = 0; i < asked.size(); ++i) {
      const Pod& p = *asked[i];
      std::optional<double>& cpu = st.cpu[p.uid];
      cpu.reset();
      if (!answers[i] || answers[i]->status != 200) continue;
      auto families = telemetry::parse_text(answers[i]->body);
      if (!families) continue;
      PodScrape scraped;
      scraped.at = now;
      if (auto v = telemetry::find_value(*families, "process_cpu_seconds_total")) {
        scraped.cpu_seconds = *v;
      }
      if (auto v = telemetry::find_value(*families, "process_resident_memory_bytes")) {
        scraped.memory_bytes = *v;
      }
      if (auto last = st.pod_last.find(p.uid); last != st.pod_last.end()) {
        const double since = to_seconds(now - last->second.at);
        if (since > 0 && scraped.cpu_seconds >= last->second.cpu_seconds) {
          cpu = (scraped.cpu_seconds - last->second.cpu_seconds) / since;
        }
      }
      seen[p.uid] = scraped;
    }
    st.pod_last = std::move(seen);
    std::erase_if(st.cpu, [&](const auto& e) { return !st.pod_last.contains(e.first); });
    st.snapshot.edges = traffic::edges_of(st.gateway_total);
    st.last_scrape = now;
  }

  st.snapshot.time = now;
  for (size_t si = 0; si < st.services.size(); ++si) {
    State::Service& s = st.services[si];
    scaling::ServiceObservation& obs = st.snapshot.services[si];
    scaling::WindowMetrics& w = obs.window;
    obs.desired_replicas = s.desired;
    obs.replicas.clear();
    double cpu_sum = 0;
    int cpu_n = 0;
    for (const Pod& p : st.pods) {
      if (p.app != s.spec.name) continue;
      scaling::ReplicaObservation ro;
      ro.id = p.name;
      ro.state = p.state;
      ro.started_at = st.at(p.created, now, wall_now);
      if (p.state == scaling::ReplicaState::kReady) {
        ro.ready_at = p.ready_since ? st.at(*p.ready_since, now, wall_now) : now;
      }
      if (auto c = st.cpu.find(p.uid); c != st.cpu.end() && c->second) {
        ro.cpu_utilization = c->second;
        cpu_sum += *c->second;
        ++cpu_n;
      }
      if (auto m = st.pod_last.find(p.uid);
          m != st.pod_last.end() && !std::isnan(m->second.memory_bytes)) {
        ro.memory_bytes = static_cast<std::uint64_t>(m->second.memory_bytes);
      }
      obs.replicas.push_back(std::move(ro));
    }
    s.traffic.record(now, now, st.gateway_total.services[s.spec.name]);
    obs.last_second = s.traffic.last_second(now, now);
    if (scrape) {
      s.traffic.fill(w, now, now);
      w.mean_cpu_utilization = cpu_n > 0 ? cpu_sum / cpu_n : NAN;
    }
    for (auto& ro : obs.replicas) {
      ro.metric_time = w.sampled_at;
      ro.metric_window = w.length;
    }
  }
  return st.snapshot;
}

Result<void> KubeWorld::scale(std::string_view service, int replicas) {
  State& st = *state_;
  for (State::Service& s : st.services) {
    if (s.spec.name != service) continue;
    if (replicas < s.spec.min_replicas || replicas > s.spec.max_replicas) {
      return make_error(ErrorCode::kOutOfRange,
                        std::string(service) + ": " + std::to_string(replicas) +
                            " replicas is outside [" + std::to_string(s.spec.min_replicas) + ", " +
                            std::to_string(s.spec.max_replicas) + "]");
    }
    auto patched =
        st.api.merge_patch(st.ns_path("/apis/apps/v1", "deployments/" + s.spec.name + "/scale"),
                           Json{{"spec", {{"replicas", replicas}}}});
    if (!patched) {
      st.problem("scale " + s.spec.name,
                 "scaling " + s.spec.name + " failed: " + patched.error().message);
      return std::unexpected(patched.error());
    }
    st.solved("scale " + s.spec.name, "scaling " + s.spec.name + " works again");
    s.desired = replicas;
    return {};
  }
  return make_error(ErrorCode::kNotFound, "no service named " + std::string(service));
}

Result<void> KubeWorld::restart(std::string_view replica_id) {
  State& st = *state_;
  auto removed = st.api.remove(st.ns_path("/api/v1", "pods/" + std::string(replica_id)));
  if (!removed) return std::unexpected(removed.error());
  return {};
}

}  // namespace prescale::kube
