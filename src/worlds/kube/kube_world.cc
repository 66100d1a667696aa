#include "worlds/kube/kube_world.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>

#include "core/host_port.h"
#include "http/client.h"
#include "telemetry/scrape_query.h"
#include "telemetry/text_parser.h"
#include "worlds/kube/api_client.h"
#include "worlds/kube/internal/pods.h"
#include "worlds/traffic/gateway_traffic.h"

namespace prescale::kube {

namespace {

using Json = nlohmann::json;
using internal::Pod;
using internal::read_pod;
using internal::string_at;

// Prescale's objects, served from the API server's cache (resourceVersion=0) rather than read
// through to etcd at every look.
constexpr std::string_view kListQuery =
    "labelSelector=app.kubernetes.io%2Fpart-of%3Dprescale&resourceVersion=0";

// What one scrape of a service's pod says.
struct PodScrape {
  double cpu_seconds = NAN;
  double memory_bytes = NAN;
  Clock::TimePoint at;
};

// A gateway pod's share of a service's requests is averaged over about this long: a balancer that
// turns is followed within seconds, one second's noise is not.
constexpr Clock::Duration kShareTime = std::chrono::seconds(5);
// Fewer requests than this in the average (all gateways together): no share is known.
constexpr double kShareMinRequests = 1;
// The list of pods is stale past this: the gateways are no longer read at the addresses it gave
// (another pod may have one of them by now).
constexpr Clock::Duration kStalePods = std::chrono::seconds(30);

// A pod running this long and not ready has failed its readiness probe, rather than not passed it
// yet: the rendered probes run every few seconds after the startup probe.
constexpr Clock::Duration kWarmUp = std::chrono::seconds(60);

// A pod replaced when its replacement is ready (replace_when_ready) is marked with the lowest cost
// there is for its ReplicaSet to remove it first when the Deployment goes back to desired.
constexpr std::string_view kDeletionCost = "controller.kubernetes.io/pod-deletion-cost";
constexpr std::string_view kLowestCost = "-2147483648";
// While its Deployment holds the surge, the pod also carries the replicas desired before it, so
// that a controller that starts meanwhile carries the replacement on.
constexpr std::string_view kSurgedFrom = "prescale.dev/surged-from";
// How long a replacement may take to be ready before the surge is taken back, and the pod stays.
constexpr Clock::Duration kReplacementPatience = std::chrono::minutes(5);
// How long after the surge is taken back the ReplicaSet has to remove the pod before it is
// evicted (the ReplicaSet removed another: one that was not ready goes first).
constexpr Clock::Duration kScaleDownWait = std::chrono::seconds(10);
// The integer at `path` in `j`; 0 where there is none, or it is not an integer.
std::int64_t integer_at(const Json& j, std::initializer_list<const char*> path) {
  const Json* at = &j;
  for (const char* key : path) {
    if (!at->is_object()) return 0;
    const auto it = at->find(key);
    if (it == at->end()) return 0;
    at = &*it;
  }
  return at->is_number_integer() ? at->get<std::int64_t>() : 0;
}

// Where a rollback marks its Deployment with the revision it failed and the pod-template-hash of
// the ReplicaSet it went back to (read by the next controller, and by this one after a patch
// whose answer was lost).
constexpr std::string_view kRolledBackFrom = "prescale.dev/rolled-back-from";
constexpr std::string_view kRolledBackTo = "prescale.dev/rolled-back-to";
// And the Deployment's uid: a copy of the object (`kubectl replace --force`, a restore) is another
// Deployment, whose revisions start again, and the mark is not its own.
constexpr std::string_view kRolledBackUid = "prescale.dev/rolled-back-uid";

// A revision number written as text; 0 for none, or for what is not one.
int revision_from(const std::string& text) {
  int n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  return ec == std::errc() && end == text.data() + text.size() && n > 0 ? n : 0;
}

// A Deployment's mark of a rollback (its failed revision and the hash it went back to); 0 and ""
// where it has none, or the mark was made on another object (its uid).
std::pair<int, std::string> mark_of(const Json& deployment) {
  const auto annotation = [&](std::string_view key) {
    return string_at(deployment, {"metadata", "annotations", std::string(key).c_str()});
  };
  const std::string uid = string_at(deployment, {"metadata", "uid"});
  if (annotation(kRolledBackUid) != uid) return {0, ""};
  return {revision_from(annotation(kRolledBackFrom)), annotation(kRolledBackTo)};
}

// Whether a Deployment carries this controller's mark of a rollback from `revision` to the
// ReplicaSet of `hash`.
bool marked(const Json& deployment, int revision, const std::string& hash) {
  const auto [from, to] = mark_of(deployment);
  return revision > 0 && from == revision && to == hash;
}

// A Deployment's or ReplicaSet's deployment.kubernetes.io/revision; 0 where it has none.
int revision_of(const Json& object) {
  return revision_from(
      string_at(object, {"metadata", "annotations", "deployment.kubernetes.io/revision"}));
}

// A pod template as the Deployment holds it: its ReplicaSet's without the pod-template-hash label.
Json without_hash(Json pod_template) {
  if (pod_template.is_object() && pod_template.contains("metadata") &&
      pod_template["metadata"].is_object() && pod_template["metadata"].contains("labels") &&
      pod_template["metadata"]["labels"].is_object()) {
    pod_template["metadata"]["labels"].erase("pod-template-hash");
  }
  return pod_template;
}

// A JSON merge patch (RFC 7386) that turns `from` into `to`: members of `from` missing from `to`
// become null (removed), objects are patched member by member, anything else is replaced.
Json merge_patch_between(const Json& from, const Json& to) {
  if (!from.is_object() || !to.is_object()) return to;
  Json patch = Json::object();
  for (const auto& [key, value] : from.items()) {
    if (!to.contains(key)) patch[key] = nullptr;
  }
  for (const auto& [key, value] : to.items()) {
    const auto was = from.find(key);
    if (was == from.end()) {
      patch[key] = value;
    } else if (*was != value) {
      patch[key] = was->is_object() && value.is_object() ? merge_patch_between(*was, value) : value;
    }
  }
  return patch;
}

// Ejections (restarts, looks with breaker openings) kept for take_ejections() (take_restarted(),
// take_breaker_openings()) at most.
constexpr std::size_t kMaxEjections = 1000;

// A gateway's counter by (service, endpoint), as the family `name` of its metrics has it
// (prescale_gateway_endpoint_ejections_total and the like).
using EndpointCounts = std::map<std::pair<std::string, std::string>, double>;
EndpointCounts by_endpoint(const std::vector<telemetry::ParsedFamily>& families,
                           std::string_view name) {
  EndpointCounts out;
  const auto f =
      std::find_if(families.begin(), families.end(),
                   [&](const telemetry::ParsedFamily& family) { return family.name == name; });
  if (f == families.end()) return out;
  for (const telemetry::ParsedSample& sample : f->samples) {
    std::string service, endpoint;
    for (const auto& [k, v] : sample.labels) {
      if (k == "service") service = v;
      if (k == "endpoint") endpoint = v;
    }
    if (!service.empty() && !endpoint.empty()) out[{service, endpoint}] = sample.value;
  }
  return out;
}
// A Deployment read this soon after this world patched its scale may be the API server cache's
// older copy: what was patched stands.
constexpr Clock::Duration kPatchSettle = std::chrono::seconds(5);

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
    std::optional<int> desired;  // unknown until the Deployments are read
    std::optional<Clock::TimePoint> patched_at = {};  // its scale's last patch
    bool rolling = false;  // a rollout under way: pods of its new template not all updated yet
    int revision = 0;      // the Deployment's deployment.kubernetes.io/revision; 0: none read
    std::string uid = {};  // the Deployment's metadata.uid, as last read
    // Its rollout (rollouts()), and the old ReplicaSet's name and pod template: what roll_back()
    // goes back to.
    std::optional<healing::RolloutRevisions> rollout = {};
    std::string stable_replica_set = {};
    Json stable_template = {};
    Json fresh_template = {};  // the new ReplicaSet's, its pod-template-hash label left out
    // Revisions by pod-template-hash, of its ReplicaSets as last read while it rolled out.
    std::map<std::string, int> revision_of_hash = {};
    // What roll_back() left (the revision that failed, and the ReplicaSet it returned to), until
    // the service is rolled out: neither is judged again meanwhile (the Deployment controller
    // takes a moment to act on it, a paused Deployment until it is resumed).
    int rolled_back_from = 0;
    std::string rolled_back_to = {};
    // The Deployment's prescale.dev/rolled-back-from and -to (a rollback's failed revision and
    // the hash it went back to, written with it, so that a controller that starts meanwhile does
    // not judge the rollback); 0 and "": none.
    int marked_rolled_back_from = 0;
    std::string marked_rolled_back_to = {};
    std::string stable_hash = {};  // the old ReplicaSet's pod-template-hash
    control::WorldTotals totals = {};
  };
  // A gateway pod's last answer.
  struct GatewaySeen {
    traffic::GatewayReading reading;
    double process_start = NAN;     // process_start_time_seconds
    int restarts = 0;               // the pod's restartCount then
    std::uint64_t observation = 0;  // which observation it answered at
    Clock::TimePoint at;            // when
    // Per service: the requests it took, as a sum decaying with kShareTime.
    std::map<std::string, double, std::less<>> recent;
    // Its outlier ejections by (service, endpoint): prescale_gateway_endpoint_ejections_total.
    std::map<std::pair<std::string, std::string>, double> ejections = {};
    // Its breakers' openings by (service, endpoint):
    // prescale_gateway_endpoint_breaker_openings_total.
    std::map<std::pair<std::string, std::string>, double> openings = {};
    // Its attempts at each upstream address (healing::attempts_by_upstream).
    std::map<std::string, healing::RevisionSample> upstreams = {};
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
    return namespace_path(api.config(), group, rest);
  }
  // A wall-clock time from the API on the controller's clock. One stamped after now (clocks a
  // little apart) is now.
  static Clock::TimePoint to_controller_time(Clock::WallTime wall, Clock::TimePoint now,
                                             Clock::WallTime wall_now) {
    return now - std::max(Clock::Duration::zero(), wall_now - wall);
  }
  scaling::ReplicaState state_of(const Pod& p, Clock::WallTime wall_now) {
    if (p.deleting) return scaling::ReplicaState::kDraining;
    if (p.ready) {
      ever_ready.insert(p.uid);
      return scaling::ReplicaState::kReady;
    }
    // Ready once, restarted, or running longer than a warm-up (its readiness probe has had its
    // chances: a controller that restarted has not seen it ready): not capacity on the way either.
    if (ever_ready.contains(p.uid) || p.restarts > 0 ||
        (p.running_since && wall_now - *p.running_since > kWarmUp)) {
      return scaling::ReplicaState::kDraining;
    }
    return scaling::ReplicaState::kStarting;
  }
  // From when a draining pod has had no new requests: the leave time after its readiness last
  // turned false, or, deleted while ready, its grace period's end (it serves through its preStop
  // wait).
  std::optional<Clock::TimePoint> draining_since(const Pod& p, Clock::TimePoint now,
                                                 Clock::WallTime wall_now) const {
    std::optional<Clock::TimePoint> since;
    if (p.not_ready_since && !p.ready) {
      since = to_controller_time(*p.not_ready_since, now, wall_now) + options.leave_time;
    }
    if (p.deleting) {
      // Out of its Service's endpoints since it was not ready, if it was not ready before.
      if (!p.deleted_by) return since;
      const Clock::TimePoint deadline = now + (*p.deleted_by - wall_now);
      return since ? std::min(*since, deadline) : deadline;
    }
    return since;
  }
  bool pods_stale(Clock::TimePoint now) const {
    return !pods_read_at || now - *pods_read_at > kStalePods;
  }

  // A pod being replaced before it leaves (replace_when_ready).
  struct Replacement {
    std::string pod;
    Clock::TimePoint since;
    bool surged = true;  // the Deployment holds one replica more than desired
    std::optional<Clock::TimePoint> scaled_back = {};  // when the surge was taken back
    std::string last_failure = {};                     // of its evictions
  };
  Service* service_named(std::string_view name) {
    for (Service& s : services) {
      if (s.spec.name == name) return &s;
    }
    return nullptr;
  }
  const Service* service_named(std::string_view name) const {
    return const_cast<State*>(this)->service_named(name);
  }
  // A replica of a service of the file among the pods last read, not being deleted: never the
  // gateway's, the controller's, or another team's pod in the same namespace.
  Result<const Pod*> service_pod(std::string_view replica_id) const {
    for (const Pod& p : pods) {
      if (p.name != replica_id) continue;
      for (const Service& s : services) {
        if (s.spec.name != p.app) continue;
        if (p.deleting)
          return make_error(ErrorCode::kNotFound, p.name + " is being deleted already");
        return &p;
      }
    }
    return make_error(ErrorCode::kNotFound,
                      "no replica named " + std::string(replica_id) + " among the pods last read");
  }
  Result<Json> patch_replicas(Service& s, int replicas) {
    Result<Json> r = call([&] {
      return api.merge_patch(ns_path("/apis/apps/v1", "deployments/" + s.spec.name + "/scale"),
                             Json{{"spec", {{"replicas", replicas}}}});
    });
    // A patch that timed out may have been applied too.
    if (r || r.error().code == ErrorCode::kTimeout) s.patched_at = options.clock->now();
    return r;
  }
  // Merge-patches a pod's annotations (a null removes one).
  Result<Json> annotate(const std::string& pod, const Json& annotations) {
    return call([&] {
      return api.merge_patch(ns_path("/api/v1", "pods/" + pod),
                             Json{{"metadata", {{"annotations", annotations}}}});
    });
  }
  // Annotations to set (a string) or take off (null) on a pod, tried again at each look until
  // done, or the pod is gone: a stale mark would tie with a later replacement's, and a stale
  // record of a surge would mislead the next controller.
  void annotate_until_done(const std::string& pod, const Json& annotations) {
    Json& patch = to_annotate[pod];
    for (const auto& [k, v] : annotations.items()) patch[k] = v;
    auto done = annotate(pod, patch);
    if (done || done.error().code == ErrorCode::kNotFound) to_annotate.erase(pod);
  }
  void unannotate(const std::string& pod, std::initializer_list<std::string_view> keys) {
    Json patch = Json::object();
    for (std::string_view k : keys) patch[std::string(k)] = nullptr;
    annotate_until_done(pod, patch);
  }
  // A replacement given up: the pod stays, its mark is taken off, and the controller hears of it
  // (take_given_up()).
  void give_up(const std::string& service, const Replacement& r, const std::string& why) {
    problems.erase("replace " + r.pod);
    unannotate(r.pod, {kDeletionCost, kSurgedFrom});
    say("replacing " + r.pod + " of " + service + " given up: " + why + "; it stays");
    given_up.push_back(r.pod);
  }
  Result<Json> evict(const std::string& name) {
    const std::string& ns = api.config().name_space;
    return call([&] {
      return api.create(
          ns_path("/api/v1", "pods/" + name + "/eviction"),
          Json{{"apiVersion", "policy/v1"},
               {"kind", "Eviction"},
               {"metadata", {{"name", name}, {"namespace", ns.empty() ? "default" : ns}}}});
    });
  }
  // The service pods whose containers restarted since the last list (take_restarted()).
  void note_restarts() {
    std::map<std::string, int> now_seen;
    for (const Pod& p : pods) {
      if (service_named(p.app) == nullptr) continue;
      now_seen[p.uid] = p.restarts;
      const auto seen = restarts_seen.find(p.uid);
      if (seen == restarts_seen.end()) continue;
      // Once per restart since the last list (a few at most: a crash loop backs off).
      for (int i = seen->second;
           i < std::min(p.restarts, seen->second + 10) && restarted.size() < kMaxEjections; ++i) {
        restarted.push_back(p.name);
      }
    }
    restarts_seen = std::move(now_seen);
  }
  // Carries the replacements under way on from the pods just read.
  void advance_replacements(Clock::TimePoint now);
  // Takes on the replacements a controller before this one left under way, from the first lists
  // of pods and Deployments (`replicas`, by Deployment).
  void adopt_marked(const std::map<std::string, int>& replicas, Clock::TimePoint now);
  // The pod of `service` at `endpoint` ("ip:port", "[ipv6]:port") in the last list of pods, if
  // one (not being deleted, where another at that address is).
  const Pod* pod_at(const std::string& service, const std::string& endpoint) const {
    const HostPortParts parts = split_host_port(endpoint, 1);
    if (parts.fault != HostPortFault::kNone) return nullptr;
    const Pod* found = nullptr;
    for (const Pod& p : pods) {
      if (p.app != service || p.ip != parts.host || p.http_port != parts.port) continue;
      if (found == nullptr || (found->deleting && !p.deleting)) found = &p;
    }
    return found;
  }

  // What reading the gateways told.
  struct GatewayLook {
    bool blind = false;        // a gateway with an address did not answer: the counts are short
    bool catching_up = false;  // a pod's growth covers more than the last look (new, new
                               // process, or back from a missed look): no rate of the last second
  };
  GatewayLook read_gateways(const std::vector<Pod>& gateways, Clock::TimePoint now);
  void read_deployments(Clock::TimePoint now);
  void read_replica_sets();
  void read_pods(Clock::TimePoint now);
  void scrape_pods(Clock::TimePoint now);

  ApiClient& api;
  KubeWorldOptions options;
  http::Client client;
  std::vector<Service> services;
  scaling::Snapshot snapshot;
  std::vector<Pod> pods;  // the last list that was read
  std::optional<Clock::TimePoint> pods_read_at;
  std::optional<Clock::TimePoint> last_scrape;
  std::optional<Clock::TimePoint> last_observed;  // the last observe()'s now
  control::WorldTotals totals;                    // every service's
  std::uint64_t observation = 0;
  // The gateway pods of the first list read: what they counted before is the past.
  std::optional<std::set<std::string>> first_gateways;
  std::set<std::string> counted;                         // the gateway pods read so far
  std::map<std::string, Clock::TimePoint> silent_since;  // gateway pods not answering, by uid
  std::optional<std::uint64_t> last_recorded;  // the last observation the traffic was recorded at
  std::map<std::string, GatewaySeen> gateway_last;  // by pod uid
  traffic::GatewayReading gateway_total;      // every gateway's growth since the first observation
  // Every gateway's attempts at each upstream address since the first observation.
  std::map<std::string, healing::RevisionSample> upstream_total;
  std::map<std::string, PodScrape> pod_last;  // by pod uid
  std::map<std::string, std::optional<double>> cpu;  // by pod uid, as of the last scrape
  std::set<std::string> ever_ready;                  // pod uids seen ready
  std::map<std::string, Clock::TimePoint> first_ready;  // by pod uid: its readiness, first seen
  std::map<std::string, std::string> problems;          // said, by what they are about
  std::map<std::string, Replacement, std::less<>> replacing;  // by service
  std::vector<std::string> given_up;  // replacements given up since take_given_up()
  std::map<std::string, Json> to_annotate;   // by pod: annotations still to set or take off
  std::map<std::string, int> restarts_seen;  // by service pod uid: its restartCount
  std::vector<std::string> restarted;        // since take_restarted()
  // (service, pod) of each ejection by a gateway since take_ejections().
  std::vector<std::pair<std::string, std::string>> ejected;
  // (service, pod) of each look that found a pod's breaker opened since take_breaker_openings().
  std::vector<std::pair<std::string, std::string>> breaker_opened;
  bool adopted_marks = false;         // the first list's marked pods were looked for
  // The observation at which an API call last timed out: the rest of that look's calls (a scale
  // per service) fail at once rather than each take the timeout.
  std::optional<std::uint64_t> api_timed_out;
  // Runs an API call unless one timed out in this look already.
  Result<Json> call(const std::function<Result<Json>()>& request) {
    if (api_timed_out == observation) {
      return make_error(ErrorCode::kUnavailable, "the API timed out earlier in this look");
    }
    Result<Json> r = request();
    if (!r && r.error().code == ErrorCode::kTimeout) api_timed_out = observation;
    return r;
  }
};

std::string namespace_path(const ApiConfig& api, std::string_view group, std::string_view rest) {
  const std::string& ns = api.name_space;
  return std::string(group) + "/namespaces/" + (ns.empty() ? "default" : ns) + "/" +
         std::string(rest);
}

KubeWorld::KubeWorld(ApiClient& api, std::vector<scaling::ServiceSpec> services,
                     KubeWorldOptions options)
    : state_(std::make_unique<State>(api, std::move(options))) {
  for (auto& spec : services) {
    scaling::ServiceObservation obs;
    obs.name = spec.name;
    state_->snapshot.services.push_back(std::move(obs));
    const double slo = spec.slo_latency_p99_seconds;
    state_->services.push_back(State::Service{
        std::move(spec), traffic::TrafficWindow(slo, state_->options.metric_window), {}});
  }
}

KubeWorld::~KubeWorld() = default;

// Each gateway pod's counters, grown since its last answer. A pod of the first list counts from
// its first answer (what it counted before is the past); one that came after counts from zero (it
// started after the world did), and so does a new process (another process_start_time_seconds).
// A pod read before and gone from the list, or left out after a metric window of silence, counts
// from its next answer.
KubeWorld::State::GatewayLook KubeWorld::State::read_gateways(const std::vector<Pod>& gateways,
                                                              Clock::TimePoint now) {
  std::vector<http::Client::Peer> peers;
  std::vector<const Pod*> asked;
  for (const Pod& p : gateways) {
    if (p.ip.empty() || p.admin_port == 0) continue;
    peers.push_back({p.ip, p.admin_port});
    asked.push_back(&p);
  }
  std::vector<Result<http::Response>> answers = client.get_all(peers, "/metrics");
  GatewayLook look;
  std::map<std::pair<std::string, std::string>, double> look_ejections;  // by (service, pod)
  std::set<std::pair<std::string, std::string>> look_openings;           // (service, pod)
  for (size_t i = 0; i < asked.size(); ++i) {
    const Pod& p = *asked[i];
    const std::string key = "gateway " + p.name;
    std::string failed;
    Result<std::vector<telemetry::ParsedFamily>> families = std::vector<telemetry::ParsedFamily>{};
    if (!answers[i]) {
      failed = answers[i].error().message;
    } else if (answers[i]->status != 200) {
      failed = "answered " + std::to_string(answers[i]->status);
    } else if (families = telemetry::parse_text(answers[i]->body); !families) {
      failed = families.error().message;
    }
    if (!failed.empty()) {
      // Short of its counts while it serves (ready, not leaving), for up to a metric window; past
      // that its requests are left out, and it counts from its next answer, so that one gateway
      // the controller cannot reach does not stop the others' figures.
      const auto [since, added] = silent_since.emplace(p.uid, now);
      const bool serving = p.ready && !p.deleting;
      if (serving && now - since->second <= options.metric_window) {
        look.blind = true;
        problem(key, "gateway pod " + p.name + " (" + p.ip + ":" + std::to_string(p.admin_port) +
                         ") not read: " + failed +
                         "; the request figures wait for it (up to the metric window)");
      } else {
        if (gateway_last.erase(p.uid) > 0) counted.insert(p.uid);
        problem(key, "gateway pod " + p.name + " (" + p.ip + ":" + std::to_string(p.admin_port) +
                         ") not read: " + failed +
                         "; the request figures leave out its requests "
                         "until it answers again");
      }
      continue;
    }
    silent_since.erase(p.uid);
    solved(key, "gateway pod " + p.name + " is read again");
    traffic::GatewayReading reading;
    const std::vector<telemetry::FamilySnapshot> snapshots = telemetry::to_snapshots(*families);
    traffic::add_gateway(snapshots, options.route_service, reading);
    std::map<std::string, healing::RevisionSample> upstreams =
        healing::attempts_by_upstream(snapshots);
    const double process_start =
        telemetry::find_value(*families, "process_start_time_seconds").value_or(NAN);
    auto last = gateway_last.find(p.uid);
    const bool known = last != gateway_last.end();
    // A new process: a later start, and counters that went down or a container restart the API
    // tells of. A start time alone moves when the node's clock is stepped.
    const bool new_process =
        known && std::isfinite(process_start) && std::isfinite(last->second.process_start) &&
        process_start > last->second.process_start &&
        (traffic::went_down(reading, last->second.reading) || p.restarts > last->second.restarts);
    // Its share of the requests: what it took decays since its last answer (a new process's
    // too: its pod's balance is the same), and what it took since is added as a steady rate over
    // that time would have decayed, so that a pod back from missed looks weighs as the others do.
    std::map<std::string, double, std::less<>> recent;
    double weight = 1;
    if (known) {
      const double since = to_seconds(now - last->second.at);
      const double keep = std::exp(-since / to_seconds(kShareTime));
      if (since > 0) weight = to_seconds(kShareTime) / since * (1 - keep);
      recent = std::move(last->second.recent);
      for (auto& [service, n] : recent) n *= keep;
    }
    if (known && !new_process) {
      const traffic::GatewayReading grown = traffic::growth(reading, last->second.reading);
      traffic::add(gateway_total, grown);
      look.catching_up = look.catching_up || last->second.observation + 1 != observation;
      for (const auto& [service, counts] : grown.services) {
        recent[service] += weight * counts.arrivals;
      }
    } else if (new_process ||
               (!known && !first_gateways->contains(p.uid) && !counted.contains(p.uid))) {
      traffic::add(gateway_total, reading);  // new: all of it is since it started
      look.catching_up = true;
    }
    // Its ejections and breaker openings of each endpoint since its last answer (all of them, for
    // a new process or a pod that came after the first list).
    EndpointCounts ejections = by_endpoint(*families, "prescale_gateway_endpoint_ejections_total");
    EndpointCounts openings =
        by_endpoint(*families, "prescale_gateway_endpoint_breaker_openings_total");
    const bool counts_all =
        new_process || (!known && !first_gateways->contains(p.uid) && !counted.contains(p.uid));
    for (const auto& [address, n] : upstreams) {
      if (known && !new_process) {
        const auto was = last->second.upstreams.find(address);
        // Counts that went down started again (a restart not otherwise seen): all of them are new.
        const bool went_down =
            was != last->second.upstreams.end() &&
            (n.attempts < was->second.attempts || n.failed < was->second.failed ||
             n.latency_sum < was->second.latency_sum);
        healing::add_attempts(upstream_total[address], n,
                              was == last->second.upstreams.end() || went_down
                                  ? healing::RevisionSample{}
                                  : was->second);
      } else if (counts_all) {
        healing::add_attempts(upstream_total[address], n, {});
      }
    }
    // By pod: how much `counts` grew since the gateway's last answer (a counter that went down
    // started again: all of it).
    auto grown = [&](const EndpointCounts& counts, const EndpointCounts& before_then, auto&& add) {
      if (!known && !counts_all) return;
      for (const auto& [at, n] : counts) {
        double before = 0;
        if (known && !new_process) {
          const auto was = before_then.find(at);
          if (was != before_then.end() && was->second <= n) before = was->second;
        }
        if (!(n - before >= 1)) continue;
        if (const Pod* pod = pod_at(at.first, at.second)) add(at.first, pod->name, n - before);
      }
    };
    grown(ejections, known ? last->second.ejections : EndpointCounts{},
          [&](const std::string& service, const std::string& pod, double n) {
            double& most = look_ejections[{service, pod}];
            most = std::max(most, std::min(n, 10.0));
          });
    grown(openings, known ? last->second.openings : EndpointCounts{},
          [&](const std::string& service, const std::string& pod, double) {
            look_openings.insert({service, pod});
          });
    counted.insert(p.uid);
    gateway_last[p.uid] = GatewaySeen{
        std::move(reading), process_start,        p.restarts,          observation,         now,
        std::move(recent),  std::move(ejections), std::move(openings), std::move(upstreams)};
  }
  // Each gateway ejects on its own: a pod is told as ejected as often as the gateway that ejected
  // it most often this look did, not as all of them together.
  for (const auto& [at, n] : look_ejections) {
    for (int i = 0; i < static_cast<int>(n) && ejected.size() < kMaxEjections; ++i) {
      ejected.push_back(at);
    }
  }
  // A breaker reopens every few seconds while its trials fail: a pod is told once a look, and the
  // healer counts its openings once per 30 s (Healer::breaker_opened).
  for (const auto& at : look_openings) {
    if (breaker_opened.size() < kMaxEjections) breaker_opened.push_back(at);
  }
  // Forget pods that are gone, and what was said of them; a pod listed again (it left the list
  // for a while) counts from its next answer.
  std::set<std::string> present;
  for (const Pod& p : gateways) present.insert(p.uid);
  std::erase_if(gateway_last, [&](const auto& e) { return !present.contains(e.first); });
  std::erase_if(silent_since, [&](const auto& e) { return !present.contains(e.first); });
  std::set<std::string> addresses;  // of the pods listed
  for (const Pod& p : pods) {
    if (p.ip.empty() || p.http_port == 0) continue;
    std::string a;
    append_host_port(a, p.ip, p.http_port);
    addresses.insert(std::move(a));
  }
  std::erase_if(upstream_total, [&](const auto& e) { return !addresses.contains(e.first); });
  std::erase_if(problems, [&](const auto& e) {
    if (!e.first.starts_with("gateway ")) return false;
    const std::string name = e.first.substr(8);
    return std::none_of(gateways.begin(), gateways.end(),
                        [&](const Pod& p) { return p.name == name; });
  });
  return look;
}

void KubeWorld::State::read_deployments(Clock::TimePoint now) {
  std::map<std::string, int> read_replicas;  // by Deployment
  auto list = call(
      [&] { return api.get(ns_path("/apis/apps/v1", "deployments?" + std::string(kListQuery))); });
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
      if (!d.contains("spec") || !d["spec"].is_object() || !d["spec"].contains("replicas") ||
          !d["spec"]["replicas"].is_number_integer()) {
        continue;
      }
      const int replicas = d["spec"]["replicas"].get<int>();
      read_replicas[name] = replicas;
      // Rolling, as `kubectl rollout status` tells it: the Deployment controller has not seen its
      // last change, or not every replica runs its template yet, or old ones remain. (The API
      // leaves a status field out when it is 0.)
      const std::int64_t generation = integer_at(d, {"metadata", "generation"});
      const std::int64_t observed = integer_at(d, {"status", "observedGeneration"});
      const std::int64_t updated = integer_at(d, {"status", "updatedReplicas"});
      const std::int64_t current = integer_at(d, {"status", "replicas"});
      s.rolling = observed < generation || updated < replicas || current > updated;
      s.revision = revision_of(d);
      // A Deployment deleted and made again is another: nothing of the old one's rollouts holds.
      if (const std::string uid = string_at(d, {"metadata", "uid"}); uid != s.uid) {
        if (!s.uid.empty()) {
          s.rollout.reset();
          s.rolled_back_from = 0;
          s.rolled_back_to.clear();
        }
        s.uid = uid;
      }
      std::tie(s.marked_rolled_back_from, s.marked_rolled_back_to) = mark_of(d);
      // Under a surge the Deployment holds one more than desired, and just after a patch the
      // list (from the API server's cache) may not show it yet: desired is what was set.
      if (auto r = replacing.find(name); r != replacing.end() && r->second.surged) continue;
      if (s.patched_at && now - *s.patched_at < kPatchSettle) continue;
      s.desired = replicas;
    }
  }
  if (!adopted_marks && pods_read_at && options.act_on_replacements) {
    adopted_marks = true;
    adopt_marked(read_replicas, now);
  }
  // The ReplicaSets only while a Deployment rolls out: what the rollout analysis needs.
  if (std::any_of(services.begin(), services.end(), [](const Service& s) { return s.rolling; })) {
    read_replica_sets();
  }
  for (Service& s : services) {
    if (s.rolling) continue;
    s.rollout.reset();
    s.rolled_back_from = 0;
    s.rolled_back_to.clear();
  }
}

// Each rolling service's ReplicaSets, by the Deployment that owns them: the new one (of the
// Deployment's revision) and the old one it replaces, chosen once per rollout.
void KubeWorld::State::read_replica_sets() {
  auto list = call(
      [&] { return api.get(ns_path("/apis/apps/v1", "replicasets?" + std::string(kListQuery))); });
  if (!list) {
    problem("replicasets", "replicasets not read: " + list.error().message +
                               "; rollouts are judged on the last ones read" +
                               (list.error().message.find(": 403 ") != std::string::npos
                                    ? " (the API refused: is the rendered Role applied?)"
                                    : ""));
    return;
  }
  solved("replicasets", "replicasets are read again");
  struct ReplicaSet {
    std::string name, hash;
    int revision = 0;
    std::int64_t replicas = 0;
    const Json* pod_template = nullptr;
    std::string owner_uid;
  };
  std::map<std::string, std::vector<ReplicaSet>, std::less<>> by_deployment;
  if (list->contains("items") && (*list)["items"].is_array()) {
    for (const Json& rs : (*list)["items"]) {
      // Its controller: the Deployment that manages it.
      std::string owner, owner_uid;
      if (const Json* refs = rs.contains("metadata") && rs["metadata"].is_object() &&
                                     rs["metadata"].contains("ownerReferences")
                                 ? &rs["metadata"]["ownerReferences"]
                                 : nullptr;
          refs != nullptr && refs->is_array()) {
        for (const Json& ref : *refs) {
          if (string_at(ref, {"kind"}) != "Deployment" || !ref.is_object() ||
              !ref.contains("controller") || ref["controller"] != Json(true)) {
            continue;
          }
          owner = string_at(ref, {"name"});
          owner_uid = string_at(ref, {"uid"});
        }
      }
      const auto t =
          rs.contains("spec") && rs["spec"].is_object() ? rs["spec"].find("template") : rs.end();
      if (owner.empty() || !rs.contains("spec") || !rs["spec"].is_object() ||
          t == rs["spec"].end() || !t->is_object()) {
        continue;
      }
      by_deployment[owner].push_back({string_at(rs, {"metadata", "name"}),
                                      string_at(rs, {"metadata", "labels", "pod-template-hash"}),
                                      revision_of(rs), integer_at(rs, {"status", "replicas"}), &*t,
                                      owner_uid});
    }
  }
  for (Service& s : services) {
    if (!s.rolling) continue;
    const auto sets = by_deployment.find(s.spec.name);
    // None listed (the two lists come from two caches): the rollout as it was stands.
    if (sets == by_deployment.end()) continue;
    s.revision_of_hash.clear();
    // A ReplicaSet left by a Deployment of the same name deleted before is not this one's.
    std::erase_if(sets->second, [&](const ReplicaSet& rs) {
      return !s.uid.empty() && !rs.owner_uid.empty() && rs.owner_uid != s.uid;
    });
    const ReplicaSet* fresh = nullptr;
    for (const ReplicaSet& rs : sets->second) {
      if (!rs.hash.empty()) s.revision_of_hash[rs.hash] = rs.revision;
      if (rs.revision == s.revision && s.revision > 0) fresh = &rs;
    }
    // The Deployment's revision before its ReplicaSet is listed (two caches): the rollout as it
    // was stands until the list has it.
    if (fresh == nullptr) continue;
    // This controller's rollback, before the Deployment controller acts on it (the revision is
    // the failed one still), and while the ReplicaSet it went back to rolls out again; or
    // someone's return to the old side during a rollout: nothing to judge.
    if (s.revision == s.rolled_back_from || fresh->name == s.rolled_back_to ||
        (s.rollout && fresh->name == s.stable_replica_set)) {
      s.rollout = healing::RolloutRevisions{s.revision, s.revision};
      continue;
    }
    // The old side is chosen once per rollout, and kept while the Deployment rolls (an edit made
    // meanwhile rolls out a third revision over the same old one, as under `prescale up`): the
    // ReplicaSet with the most pods, the older on a tie.
    const ReplicaSet* stable = nullptr;
    for (const ReplicaSet& rs : sets->second) {
      if (s.rollout && rs.name == s.stable_replica_set && &rs != fresh && rs.replicas > 0) {
        stable = &rs;
      }
    }
    if (stable == nullptr) {
      for (const ReplicaSet& rs : sets->second) {
        if (&rs == fresh || rs.replicas <= 0) continue;
        if (stable == nullptr || rs.replicas > stable->replicas ||
            (rs.replicas == stable->replicas && rs.revision < stable->revision)) {
          stable = &rs;
        }
      }
    }
    if (stable == nullptr) {  // no old pods left to judge it against
      s.rollout.reset();
      continue;
    }
    // A rollback by a controller before this one: while the Deployment controller has not acted
    // on it (the failed revision is the Deployment's still), and the return from it (not judged
    // against the revision it failed).
    if (s.marked_rolled_back_from > 0 &&
        (s.revision == s.marked_rolled_back_from ||
         (stable->revision == s.marked_rolled_back_from && !fresh->hash.empty() &&
          fresh->hash == s.marked_rolled_back_to))) {
      s.rollout = healing::RolloutRevisions{s.revision, s.revision};
      continue;
    }
    s.rollout = healing::RolloutRevisions{s.revision, stable->revision};
    s.stable_replica_set = stable->name;
    s.stable_template = *stable->pod_template;
    s.stable_hash = stable->hash;
    s.fresh_template = without_hash(*fresh->pod_template);
  }
}

void KubeWorld::State::read_pods(Clock::TimePoint now) {
  auto list = call([&] { return api.get(ns_path("/api/v1", "pods?" + std::string(kListQuery))); });
  if (!list) {
    problem("pods", "pods not read: " + list.error().message +
                        "; the last pods read stand until they are read again");
    return;
  }
  solved("pods", "pods are read again");
  std::vector<Pod> read;
  if (list->contains("items") && (*list)["items"].is_array()) {
    for (const Json& item : (*list)["items"]) {
      if (auto pod = read_pod(item)) read.push_back(std::move(*pod));
    }
  }
  pods = std::move(read);
  pods_read_at = now;
  if (!first_gateways) {
    first_gateways.emplace();
    for (const Pod& p : pods) {
      if (p.app == options.gateway_name) first_gateways->insert(p.uid);
    }
  }
}

// CPU and memory from each serving pod's /metrics. A pod that does not answer keeps its last
// answer as the base of the next.
void KubeWorld::State::scrape_pods(Clock::TimePoint now) {
  std::vector<http::Client::Peer> peers;
  std::vector<const Pod*> asked;
  std::set<std::string> present;
  for (const Pod& p : pods) {
    present.insert(p.uid);
    if (p.app == options.gateway_name || p.ip.empty() || p.http_port == 0) continue;
    if (!p.ready && !p.deleting) {
      cpu.erase(p.uid);  // out of service: no CPU of its own to show
      continue;
    }
    peers.push_back({p.ip, p.http_port});
    asked.push_back(&p);
  }
  std::vector<Result<http::Response>> answers = client.get_all(peers, "/metrics");
  for (size_t i = 0; i < asked.size(); ++i) {
    const Pod& p = *asked[i];
    std::optional<double>& utilization = cpu[p.uid];
    utilization.reset();
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
    if (auto last = pod_last.find(p.uid); last != pod_last.end()) {
      const double since = to_seconds(now - last->second.at);
      if (since > 0 && scraped.cpu_seconds >= last->second.cpu_seconds) {
        utilization = (scraped.cpu_seconds - last->second.cpu_seconds) / since;
      }
    }
    pod_last[p.uid] = scraped;
  }
  std::erase_if(pod_last, [&](const auto& e) { return !present.contains(e.first); });
  std::erase_if(cpu, [&](const auto& e) { return !present.contains(e.first); });
  std::erase_if(ever_ready, [&](const std::string& uid) { return !present.contains(uid); });
  std::erase_if(first_ready, [&](const auto& e) { return !present.contains(e.first); });
}

const scaling::Snapshot& KubeWorld::observe(Clock::TimePoint now) {
  State& st = *state_;
  const Clock::WallTime wall_now = st.options.clock->wall_now();
  const bool scrape = !st.last_scrape || now - *st.last_scrape >= st.options.scrape_interval;
  ++st.observation;
  st.read_pods(now);
  // On this look's list only: an older one may show pods as they no longer are.
  if (st.pods_read_at == now) {
    st.note_restarts();
    st.advance_replacements(now);
  }
  // With no list for a while, the addresses it gave may be other pods' by now: nothing is read
  // at them, and the request figures stand as they were.
  State::GatewayLook look{.blind = true, .catching_up = false};
  Clock::TimePoint traffic_at = now;
  if (!st.pods_stale(now)) {
    std::vector<Pod> gateways;
    for (const Pod& p : st.pods) {
      if (p.app == st.options.gateway_name) gateways.push_back(p);
    }
    look = st.read_gateways(gateways, now);
    // Traffic recorded at the last look, or this look's last second would span the gap.
    look.catching_up = look.catching_up || st.last_recorded != st.observation - 1;
    // The counts are of this moment, after the list: rates divide by the time between reads.
    traffic_at = st.options.clock->now();
  }
  if (!look.blind) st.last_recorded = st.observation;
  if (scrape) {
    st.read_deployments(now);
    if (!st.pods_stale(now)) st.scrape_pods(now);
    st.snapshot.edges = traffic::edges_of(st.gateway_total);
    st.last_scrape = now;
  }

  st.snapshot.time = now;
  const double since_observed =
      st.last_observed ? std::max(0.0, to_seconds(now - *st.last_observed)) : 0.0;
  st.last_observed = now;
  for (size_t si = 0; si < st.services.size(); ++si) {
    State::Service& s = st.services[si];
    scaling::ServiceObservation& obs = st.snapshot.services[si];
    scaling::WindowMetrics& w = obs.window;
    obs.replicas.clear();
    double cpu_sum = 0;
    int cpu_n = 0;
    for (const Pod& p : st.pods) {
      if (p.app != s.spec.name) continue;
      scaling::ReplicaObservation ro;
      ro.id = p.name;
      ro.state = st.state_of(p, wall_now);
      ro.started_at = State::to_controller_time(p.created, now, wall_now);
      if (ro.state == scaling::ReplicaState::kReady) {
        // Ready since its Ready condition last turned True, as Kubernetes' HPA reads it (or since
        // first seen ready, when the API gives no time).
        auto [seen, added] = st.first_ready.emplace(p.uid, now);
        ro.ready_at =
            p.ready_since ? State::to_controller_time(*p.ready_since, now, wall_now) : seen->second;
      } else {
        st.first_ready.erase(p.uid);
      }
      if (ro.state == scaling::ReplicaState::kDraining) {
        ro.draining_since = st.draining_since(p, now, wall_now);
      }
      if (auto c = st.cpu.find(p.uid); c != st.cpu.end() && c->second) {
        ro.cpu_utilization = c->second;
        if (ro.state == scaling::ReplicaState::kReady) {
          cpu_sum += *c->second;
          ++cpu_n;
        }
      }
      // The memory its last scrape read, when that was the last scrape (metric_time is then its
      // time): a pod that missed one has no new reading to give.
      if (auto m = st.pod_last.find(p.uid); m != st.pod_last.end() &&
                                            !std::isnan(m->second.memory_bytes) &&
                                            m->second.at == st.last_scrape) {
        ro.memory_bytes = static_cast<std::uint64_t>(m->second.memory_bytes);
      }
      obs.replicas.push_back(std::move(ro));
    }
    // Until the Deployment is read, what its pods say.
    obs.desired_replicas = s.desired.value_or(static_cast<int>(obs.replicas.size()) -
                                              obs.count(scaling::ReplicaState::kDraining));
    // A look that missed a gateway records nothing (its counts are short: zeros would read as a
    // lull, and the gateway's growth comes at its next answer); the window's figures then stand
    // as last filled, their sampled_at telling the policies they are not new. A gateway's growth
    // over more than the last look is no rate of the last second.
    if (look.blind) {
      obs.last_second = scaling::SecondMetrics{};
    } else {
      const traffic::RequestDelta since_previous =
          s.traffic.record(traffic_at, now, st.gateway_total.services[s.spec.name]);
      for (control::WorldTotals* t : {&st.totals, &s.totals}) {
        t->requests += since_previous.answered;
        t->within_slo += since_previous.served - since_previous.slow;
        t->failed += since_previous.failed;
        t->ejections += since_previous.ejected;
      }
      obs.last_second =
          look.catching_up ? scaling::SecondMetrics{} : s.traffic.last_second(now, traffic_at);
      if (scrape) s.traffic.fill(w, now, traffic_at);
    }
    if (scrape) w.mean_cpu_utilization = cpu_n > 0 ? cpu_sum / cpu_n : NAN;
    // The pods' time, as last listed (while the API does not answer, the pods last seen run on).
    for (control::WorldTotals* t : {&st.totals, &s.totals}) {
      t->replica_seconds += since_observed * static_cast<double>(obs.replicas.size());
    }
    // CPU and memory are the pods' last scrape's, whatever the traffic figures' age.
    for (auto& ro : obs.replicas) {
      ro.metric_time = st.last_scrape.value_or(now);
      ro.metric_window = w.length;
    }
  }
  return st.snapshot;
}

std::map<std::string, double> KubeWorld::gateway_shares(std::string_view service,
                                                        Clock::TimePoint now) const {
  const State& st = *state_;
  std::map<std::string, double> out;
  if (st.pods_stale(now)) return out;
  double sum = 0;
  for (const Pod& p : st.pods) {
    if (p.app != st.options.gateway_name || !p.ready || p.deleting) continue;
    const auto seen = st.gateway_last.find(p.uid);
    if (seen == st.gateway_last.end()) continue;
    const auto r = seen->second.recent.find(service);
    const double n = r == seen->second.recent.end() ? 0 : r->second;
    out[p.name] = n;
    sum += n;
  }
  if (!(sum >= kShareMinRequests)) return {};
  for (auto& [name, n] : out) n /= sum;
  return out;
}

bool KubeWorld::pods_stale(Clock::TimePoint now) const { return state_->pods_stale(now); }

std::optional<std::vector<std::string>> KubeWorld::gateways_in_service(Clock::TimePoint now) const {
  const State& st = *state_;
  if (st.pods_stale(now)) return std::nullopt;
  std::vector<std::string> names;
  for (const Pod& p : st.pods) {
    if (p.app == st.options.gateway_name && p.ready && !p.deleting) names.push_back(p.name);
  }
  return names;
}

Result<std::vector<std::string>> KubeWorld::missing_deployments() {
  State& st = *state_;
  auto list = st.api.get(st.ns_path("/apis/apps/v1", "deployments?" + std::string(kListQuery)));
  if (!list) return std::unexpected(list.error());
  std::vector<std::string> missing;
  for (const State::Service& s : st.services) {
    bool found = false;
    if (list->contains("items") && (*list)["items"].is_array()) {
      for (const Json& d : (*list)["items"])
        found = found || string_at(d, {"metadata", "name"}) == s.spec.name;
    }
    if (!found) missing.push_back(s.spec.name);
  }
  return missing;
}

Result<void> KubeWorld::respec(const scaling::ServiceSpec& spec) {
  if (auto valid = control::check_replica_bounds(spec.name, spec.min_replicas, spec.max_replicas);
      !valid) {
    return valid;
  }
  State::Service* s = state_->service_named(spec.name);
  if (s == nullptr) return make_error(ErrorCode::kNotFound, "no service named " + spec.name);
  s->spec = spec;
  s->traffic.set_slo(spec.slo_latency_p99_seconds);
  return {};
}

void KubeWorld::add_routes(const std::vector<std::pair<std::string, std::string>>& route_services) {
  for (const auto& [route, service] : route_services) {
    state_->options.route_service.emplace(route, service);
  }
}

const std::string* KubeWorld::route_service(const std::string& route) const {
  const auto it = state_->options.route_service.find(route);
  return it == state_->options.route_service.end() ? nullptr : &it->second;
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
    // A surge for a replacement stays on top (replace_when_ready).
    const auto r = st.replacing.find(service);
    const int surge = r != st.replacing.end() && r->second.surged ? 1 : 0;
    auto patched = st.patch_replicas(s, replicas + surge);
    if (!patched) {
      st.problem("scale " + s.spec.name,
                 "scaling " + s.spec.name + " failed: " + patched.error().message);
      return std::unexpected(patched.error());
    }
    st.solved("scale " + s.spec.name, "scaling " + s.spec.name + " works again");
    s.desired = replicas;
    // The surge's record follows (a controller that starts checks it against the Deployment).
    if (surge > 0) {
      st.annotate_until_done(r->second.pod, Json{{kSurgedFrom, std::to_string(replicas)}});
    }
    return {};
  }
  return make_error(ErrorCode::kNotFound, "no service named " + std::string(service));
}

Result<void> KubeWorld::restart(std::string_view replica_id) {
  State& st = *state_;
  Result<const Pod*> found = st.service_pod(replica_id);
  if (!found) return std::unexpected(found.error());
  const Pod& pod = **found;
  // A service's only ready pod is left to the kernel: a container restarted in place is back
  // sooner than a new pod, and evicting it would leave none.
  const auto ready = std::count_if(st.pods.begin(), st.pods.end(), [&](const Pod& p) {
    return p.app == pod.app && p.ready && !p.deleting;
  });
  if (ready < 2) {
    return make_error(
        ErrorCode::kOutOfRange,
        std::string(replica_id) + " is the only ready pod of " + pod.app + ": not evicted");
  }
  // Evicted, not deleted: the service's PodDisruptionBudget applies (the API refuses, 429, while
  // another of its pods is not ready), so replacements go one at a time.
  auto evicted = st.evict(pod.name);
  if (!evicted) return std::unexpected(evicted.error());
  return {};
}

Result<void> KubeWorld::replace_when_ready(std::string_view replica_id) {
  State& st = *state_;
  Result<const Pod*> found = st.service_pod(replica_id);
  if (!found) return std::unexpected(found.error());
  const Pod& pod = **found;
  if (auto r = st.replacing.find(pod.app); r != st.replacing.end()) {
    if (r->second.pod == pod.name) return {};  // under way (a controller before this one's too)
    return make_error(ErrorCode::kUnavailable,
                      "a replacement of " + r->second.pod + " of " + pod.app + " is under way");
  }
  State::Service* service = st.service_named(pod.app);
  if (service == nullptr) return make_error(ErrorCode::kNotFound, "no service named " + pod.app);
  State::Service& s = *service;
  if (!s.desired) {
    return make_error(ErrorCode::kUnavailable,
                      "the Deployment " + pod.app + " has not been read yet");
  }
  // Marked first: whenever its Deployment next goes down (a scale-down of the policy's too), its
  // ReplicaSet removes this pod before the others that are ready.
  const int desired = *s.desired;
  auto marked = st.annotate(
      pod.name, Json{{kDeletionCost, kLowestCost}, {kSurgedFrom, std::to_string(desired)}});
  // Marked anew: what an earlier replacement left to take off is not taken off now.
  if (marked) st.to_annotate.erase(pod.name);
  if (!marked) {
    // One that timed out may have been applied.
    if (marked.error().code == ErrorCode::kTimeout) {
      st.unannotate(pod.name, {kDeletionCost, kSurgedFrom});
    }
    return std::unexpected(marked.error());
  }
  auto surged = st.patch_replicas(s, desired + 1);
  if (!surged && surged.error().code != ErrorCode::kTimeout) {
    // Not surged: the mark comes off again.
    st.unannotate(pod.name, {kDeletionCost, kSurgedFrom});
    const std::string why = "surging " + pod.app + " for " + pod.name + " failed: ";
    return make_error(
        surged.error().code == ErrorCode::kNotFound ? ErrorCode::kUnavailable : surged.error().code,
        why + surged.error().message);
  }
  // A patch that timed out may have been applied: the replacement goes on as if it had, and going
  // back to desired settles either way.
  st.replacing[pod.app] = State::Replacement{.pod = pod.name, .since = st.options.clock->now()};
  return {};
}

std::vector<std::string> KubeWorld::take_given_up() { return std::exchange(state_->given_up, {}); }

bool KubeWorld::replacing(std::string_view pod) const {
  return std::any_of(state_->replacing.begin(), state_->replacing.end(),
                     [&](const auto& r) { return r.second.pod == pod; });
}

std::vector<std::string> KubeWorld::take_restarted() {
  return std::exchange(state_->restarted, {});
}

std::vector<std::pair<std::string, std::string>> KubeWorld::take_ejections() {
  return std::exchange(state_->ejected, {});
}

std::vector<std::pair<std::string, std::string>> KubeWorld::take_breaker_openings() {
  return std::exchange(state_->breaker_opened, {});
}

std::map<std::string, healing::RolloutRevisions> KubeWorld::rollouts() const {
  std::map<std::string, healing::RolloutRevisions> out;
  for (const State::Service& s : state_->services) {
    if (s.rollout) out[s.spec.name] = *s.rollout;
  }
  return out;
}

std::vector<healing::RolloutReplica> KubeWorld::rollout_replicas() const {
  const State& st = *state_;
  std::vector<healing::RolloutReplica> out;
  for (std::size_t si = 0; si < st.services.size(); ++si) {
    const State::Service& s = st.services[si];
    if (!s.rollout || si >= st.snapshot.services.size()) continue;
    for (const scaling::ReplicaObservation& r : st.snapshot.services[si].replicas) {
      const auto p = std::find_if(st.pods.begin(), st.pods.end(),
                                  [&](const Pod& pod) { return pod.name == r.id; });
      if (p == st.pods.end()) continue;
      healing::RolloutReplica replica{
          s.spec.name, p->name, 0, p->uid + "/" + std::to_string(p->restarts), "", r.ready_at};
      if (const auto rev = s.revision_of_hash.find(p->template_hash);
          rev != s.revision_of_hash.end()) {
        replica.revision = rev->second;
      }
      if (!p->ip.empty() && p->http_port != 0) {
        append_host_port(replica.upstream, p->ip, p->http_port);
      }
      replica.created_at = r.started_at;
      if (p->running_since) {
        replica.running_since = State::to_controller_time(
            *p->running_since, st.options.clock->now(), st.options.clock->wall_now());
      }
      replica.waiting = p->waiting;
      // A pod that turned not ready after it started running was ready before (a pod that never
      // was has been not ready since it was created).
      replica.deleting = p->deleting;
      replica.ever_ready =
          st.ever_ready.contains(p->uid) || p->ready_since.has_value() ||
          (p->not_ready_since && p->running_since && *p->not_ready_since > *p->running_since);
      out.push_back(std::move(replica));
    }
  }
  return out;
}

bool KubeWorld::rolled_back(std::string_view service, int revision) const {
  const State::Service* s = state_->service_named(service);
  return s != nullptr && revision > 0 && s->marked_rolled_back_from == revision;
}

std::string KubeWorld::deployment_uid(std::string_view service) const {
  const State::Service* s = state_->service_named(service);
  return s != nullptr ? s->uid : "";
}

int KubeWorld::revision(std::string_view service) const {
  const State::Service* s = state_->service_named(service);
  return s != nullptr ? s->revision : 0;
}

control::WorldTotals KubeWorld::totals(std::string_view service) const {
  if (service.empty()) return state_->totals;
  const State::Service* s = state_->service_named(service);
  return s != nullptr ? s->totals : control::WorldTotals{};
}

const std::map<std::string, healing::RevisionSample>& KubeWorld::upstream_attempts() const {
  return state_->upstream_total;
}

Result<int> KubeWorld::roll_back(std::string_view service) {
  State& st = *state_;
  State::Service* s = st.service_named(service);
  if (s == nullptr || !s->rollout || s->rollout->revision == s->rollout->stable) {
    return make_error(ErrorCode::kNotFound, std::string(service) + " is not rolling out");
  }
  const std::string path = st.ns_path("/apis/apps/v1", "deployments/" + s->spec.name);
  auto d = st.call([&] { return st.api.get(path); });
  if (!d) return std::unexpected(d.error());
  const Json target = without_hash(s->stable_template);
  const Json current =
      d->contains("spec") && (*d)["spec"].is_object() && (*d)["spec"].contains("template")
          ? (*d)["spec"]["template"]
          : Json::object();
  const auto rolled_back = [&] {
    s->rolled_back_from = s->rollout->revision;
    s->rolled_back_to = s->stable_replica_set;
    const int to = s->rollout->stable;
    s->rollout = healing::RolloutRevisions{s->rollout->revision, s->rollout->revision};
    return to;
  };
  // Rolled back already: by a patch of this controller's whose answer was lost (the Deployment
  // controller may have made a revision of it by now), or by another hand.
  if (current == target) {
    if (marked(*d, s->rollout->revision, s->stable_hash)) return rolled_back();
    return make_error(ErrorCode::kNotFound,
                      "deployment " + s->spec.name + " went back to revision " +
                          std::to_string(s->rollout->stable) + "'s template by another hand");
  }
  if (revision_of(*d) != s->rollout->revision) {
    return make_error(ErrorCode::kInvalidArgument,
                      "deployment " + s->spec.name + " rolls out revision " +
                          std::to_string(revision_of(*d)) + " by now, not " +
                          std::to_string(s->rollout->revision) + ": not rolled back");
  }
  // A change the Deployment controller has not seen yet (a scale, or an edit): asked again later.
  if (integer_at(*d, {"status", "observedGeneration"}) <
      integer_at(*d, {"metadata", "generation"})) {
    return make_error(ErrorCode::kUnavailable, "deployment " + s->spec.name +
                                                   " has a change its controller has not "
                                                   "acted on yet");
  }
  // An edit since: its revision is judged anew, not overwritten.
  if (current != s->fresh_template) {
    return make_error(ErrorCode::kInvalidArgument,
                      "deployment " + s->spec.name + " was edited since revision " +
                          std::to_string(s->rollout->revision) + ": not rolled back");
  }
  if (d->contains("spec") && (*d)["spec"].is_object() && (*d)["spec"].contains("paused") &&
      (*d)["spec"]["paused"] == Json(true)) {
    return make_error(ErrorCode::kUnavailable,
                      "deployment " + s->spec.name +
                          " is paused (kubectl rollout resume, or roll it back yourself)");
  }
  const Json patch = {{"metadata",
                       {{"resourceVersion", string_at(*d, {"metadata", "resourceVersion"})},
                        {"annotations",
                         {{std::string(kRolledBackFrom), std::to_string(s->rollout->revision)},
                          {std::string(kRolledBackTo), s->stable_hash},
                          {std::string(kRolledBackUid), string_at(*d, {"metadata", "uid"})}}}}},
                      {"spec", {{"template", merge_patch_between(current, target)}}}};
  auto patched = st.call([&] { return st.api.merge_patch(path, patch); });
  if (!patched) {
    // A 409 (the Deployment changed since it was read: its status is written often during a
    // rollout) is asked again, on a fresh read; so is a patch that timed out (applied or not, the
    // next read tells).
    if (patched.error().message.find(": 409 ") != std::string::npos) {
      return make_error(ErrorCode::kUnavailable, "deployment " + s->spec.name +
                                                     " changed while it was being rolled back (" +
                                                     patched.error().message + ")");
    }
    return std::unexpected(patched.error());
  }
  return rolled_back();
}

void KubeWorld::State::advance_replacements(Clock::TimePoint now) {
  if (!options.act_on_replacements) return;
  for (auto it = to_annotate.begin(); it != to_annotate.end();) {
    const std::string pod = it->first;
    const Json patch = it->second;
    ++it;
    const bool listed = std::any_of(pods.begin(), pods.end(),
                                    [&](const Pod& p) { return p.name == pod && !p.deleting; });
    auto done = listed ? annotate(pod, patch) : Result<Json>(Json());
    if (done || done.error().code == ErrorCode::kNotFound) to_annotate.erase(pod);
  }
  for (auto it = replacing.begin(); it != replacing.end();) {
    const std::string& name = it->first;
    Replacement& r = it->second;
    Service* service = service_named(name);
    const auto pod =
        std::find_if(pods.begin(), pods.end(), [&](const Pod& p) { return p.name == r.pod; });
    const bool left = pod == pods.end() || pod->deleting;
    const std::string key = "replace " + r.pod;
    if (service == nullptr || !service->desired) {  // desired not known yet
      if (left && !r.surged)
        it = replacing.erase(it);
      else
        ++it;
      continue;
    }
    Service& s = *service;
    const auto ready_others = std::count_if(pods.begin(), pods.end(), [&](const Pod& p) {
      return p.app == name && p.name != r.pod && p.ready && !p.deleting;
    });
    if (r.surged) {
      const bool done = left || ready_others >= *s.desired;
      if (!done && now - r.since <= kReplacementPatience) {
        ++it;
        continue;
      }
      // Back to desired: the ReplicaSet removes the pod of the lowest deletion cost, this one.
      if (auto back = patch_replicas(s, *s.desired); !back) {
        problem(key, "replacing " + r.pod + " of " + name + ": going back to " +
                         std::to_string(*s.desired) + " replicas failed: " + back.error().message +
                         " (tried again at the next look)");
        ++it;
        continue;
      }
      solved(key, "replacing " + r.pod + " of " + name + ": its Deployment is back to " +
                      std::to_string(*s.desired));
      r.surged = false;
      r.scaled_back = now;
      if (!done) {
        give_up(name, r,
                "after " + std::to_string(kReplacementPatience / std::chrono::minutes(1)) +
                    " minutes " + std::to_string(ready_others) + " other pods of " + name +
                    " were ready, of the " + std::to_string(*s.desired) +
                    " wanted (its Deployment is back to " + std::to_string(*s.desired) + ")");
        it = replacing.erase(it);
        continue;
      }
      if (!left) {
        unannotate(r.pod, {kSurgedFrom});
        spdlog::info("{} of {} leaves: {} other pods are ready (its Deployment back to {})", r.pod,
                     name, ready_others, *s.desired);
      }
    }
    if (left) {
      solved(key, "replacing " + r.pod + " of " + name + ": it leaves");
      spdlog::info("{} of {} replaced: {}", r.pod, name,
                   pod == pods.end() ? "it is gone" : "it is being deleted");
      it = replacing.erase(it);
      continue;
    }
    // The ReplicaSet removed another pod (one not ready goes before the lowest cost): this one is
    // evicted, under the service's PodDisruptionBudget, until it leaves or it is too late. Not
    // during a rollout: its budget counts the old pods ready, and the rollout's scale-down of the
    // old ReplicaSet removes this one first anyway.
    if (now - *r.scaled_back > kReplacementPatience) {
      give_up(name, r,
              "its ReplicaSet kept it, and it was not evicted within " +
                  std::to_string(kReplacementPatience / std::chrono::minutes(1)) +
                  " minutes (last: " + r.last_failure + ")");
      it = replacing.erase(it);
      continue;
    }
    if (now - *r.scaled_back < kScaleDownWait) {
      ++it;
      continue;
    }
    if (s.rolling) {
      r.last_failure = "its Deployment was rolling out";
      ++it;
      continue;
    }
    if (auto evicted = evict(r.pod); !evicted) {
      r.last_failure = evicted.error().message;
      problem(key, "replacing " + r.pod + " of " + name + ": its ReplicaSet kept it, and " +
                       "evicting it failed: " + evicted.error().message +
                       " (tried again at the next look)");
    } else {
      spdlog::info("{} of {} evicted: its ReplicaSet kept it when its Deployment went back to {}",
                   r.pod, name, *s.desired);
    }
    ++it;
  }
}

// A pod marked with the lowest deletion cost is a replacement under way. Where it carries the
// replicas desired before a surge its Deployment still holds (surged-from + 1), it goes on from
// the surge. Otherwise (the surge taken back, changed since, or never made) a surge is made anew
// from the Deployment's replicas, so that no pod leaves before another is ready. A second marked
// pod of a service is unmarked (the one whose surge matches is kept).
void KubeWorld::State::adopt_marked(const std::map<std::string, int>& replicas,
                                    Clock::TimePoint now) {
  auto surged_from = [](const Pod& p) {
    int before = -1;
    const char* end = p.surged_from.data() + p.surged_from.size();
    if (auto [at, failed] = std::from_chars(p.surged_from.data(), end, before);
        failed != std::errc() || at != end || before < 0) {
      return -1;
    }
    return before;
  };
  // The Deployment's replicas as last known: what this world set itself lately, over a read that
  // may be the API server cache's older copy.
  auto replicas_of = [&](const Service& s) -> std::optional<int> {
    if (s.patched_at && now - *s.patched_at < kPatchSettle && s.desired) return s.desired;
    const auto d = replicas.find(s.spec.name);
    if (d == replicas.end()) return std::nullopt;
    return d->second;
  };
  std::vector<std::pair<const Pod*, Service*>> marked;
  for (const Pod& p : pods) {
    if (p.deletion_cost != kLowestCost || p.deleting) continue;
    if (Service* s = service_named(p.app); s != nullptr) marked.emplace_back(&p, s);
  }
  std::stable_partition(marked.begin(), marked.end(), [&](const auto& m) {
    const std::optional<int> n = replicas_of(*m.second);
    return n && surged_from(*m.first) >= 0 && *n == surged_from(*m.first) + 1;
  });
  for (const auto& [p, service] : marked) {
    Service& s = *service;
    const std::optional<int> n = replicas_of(s);
    const auto r = replacing.find(p->app);
    if (r != replacing.end() && r->second.pod == p->name) continue;  // this controller's own
    // A second marked pod of its service, or one of a Deployment not listed: not taken on.
    if (!n || r != replacing.end()) {
      unannotate(p->name, {kDeletionCost, kSurgedFrom});
      continue;
    }
    const int before = surged_from(*p);
    if (before >= 0 && *n == before + 1) {
      s.desired = before;
      spdlog::info(
          "replacing {} of {}: under way (it is marked with the lowest deletion cost, and "
          "its Deployment holds a surge from {})",
          p->name, p->app, before);
      replacing.emplace(p->app, Replacement{.pod = p->name, .since = now});
      continue;
    }
    s.desired = *n;
    annotate_until_done(p->name, Json{{kSurgedFrom, std::to_string(*n)}});
    if (auto surged = patch_replicas(s, *n + 1);
        !surged && surged.error().code != ErrorCode::kTimeout) {
      unannotate(p->name, {kDeletionCost, kSurgedFrom});
      say("replacing " + p->name + " of " + p->app + " (marked by a controller before this one) " +
          "given up: surging " + p->app + " failed: " + surged.error().message);
      continue;
    }
    spdlog::info(
        "replacing {} of {}: under way (it is marked with the lowest deletion cost; its "
        "Deployment surged anew from {})",
        p->name, p->app, *n);
    replacing.emplace(p->app, Replacement{.pod = p->name, .since = now});
  }
}

}  // namespace prescale::kube
