#include "worlds/kube/fake_api_server.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>

#include "http/json.h"
#include "http/router.h"
#include "http/server.h"

namespace prescale::kube::fake {

namespace {

using Json = nlohmann::json;

http::Response status_object(int code, const std::string& reason, const std::string& message) {
  return http::json_response(code, Json{{"kind", "Status"},
                                        {"apiVersion", "v1"},
                                        {"metadata", Json::object()},
                                        {"status", "Failure"},
                                        {"message", message},
                                        {"reason", reason},
                                        {"code", code}});
}

// A PATCH whose body is not a JSON merge patch, answered as the API server answers one.
std::optional<http::Response> not_merge_patch(const http::Request& req) {
  if (req.headers.get("Content-Type") == "application/merge-patch+json") return std::nullopt;
  return status_object(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format");
}

Json labels(const std::string& app) {
  return {{"app.kubernetes.io/name", app}, {"app.kubernetes.io/part-of", "prescale"}};
}

// Whether `object_labels` holds every "k=v" of a selector written "k=v,k2=v2".
bool selected(const Json& object_labels, const std::string& selector) {
  size_t at = 0;
  while (at < selector.size()) {
    size_t end = selector.find(',', at);
    if (end == std::string::npos) end = selector.size();
    const std::string term = selector.substr(at, end - at);
    at = end + 1;
    const size_t eq = term.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = term.substr(0, eq), value = term.substr(eq + 1);
    if (!object_labels.contains(key) || object_labels[key] != value) return false;
  }
  return true;
}

// A list of objects (`kind`) made of `by_name`'s entries by `object(name, value)`, those the
// request's labelSelector selects.
template <typename T, typename MakeObject>
http::Response list_of(const http::Request& req, const std::string& api_version,
                       const std::string& kind, const std::map<std::string, T>& by_name,
                       MakeObject object) {
  const std::string selector = req.query_param("labelSelector").value_or("");
  Json items = Json::array();
  for (const auto& [name, value] : by_name) {
    Json o = object(name, value);
    if (selected(o["metadata"]["labels"], selector)) items.push_back(std::move(o));
  }
  return http::json_response(200,
                             Json{{"apiVersion", api_version}, {"kind", kind}, {"items", items}});
}

}  // namespace

Json pod_object(const FakePod& pod, const std::string& name_space) {
  Json ports = Json::array();
  for (const auto& [name, number] : pod.ports) {
    ports.push_back({{"name", name}, {"containerPort", number}, {"protocol", "TCP"}});
  }
  Json metadata = {{"name", pod.name},
                   {"namespace", name_space},
                   {"uid", "uid-" + pod.name + "-" + pod.created},
                   {"creationTimestamp", pod.created},
                   {"labels", labels(pod.app)}};
  if (!pod.template_hash.empty()) metadata["labels"]["pod-template-hash"] = pod.template_hash;
  if (pod.deleting) metadata["deletionTimestamp"] = pod.deleted_by;
  if (!pod.annotations.empty()) metadata["annotations"] = pod.annotations;
  const std::string& not_ready_since =
      pod.not_ready_since.empty() ? pod.created : pod.not_ready_since;
  Json conditions =
      Json::array({{{"type", "Ready"},
                    {"status", pod.ready ? "True" : "False"},
                    {"lastTransitionTime", pod.ready ? pod.ready_since : not_ready_since}}});
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", metadata},
          {"spec", {{"containers", Json::array({{{"name", pod.app}, {"ports", ports}}})}}},
          {"status",
           {{"phase", pod.phase},
            {"podIP", pod.ip},
            {"conditions", conditions},
            {"containerStatuses",
             Json::array({{{"name", pod.app},
                           {"ready", pod.ready},
                           {"restartCount", pod.restarts},
                           // Running since it was created (the stand-in has no scheduling or
                           // pulls), unless it waits.
                           {"state", pod.waiting.empty()
                                         ? Json{{"running", {{"startedAt", pod.created}}}}
                                         : Json{{"waiting", {{"reason", pod.waiting}}}}}}})}}}};
}

struct FakeApiServer::State {
  std::string name_space, token;
  mutable std::mutex mu;
  std::map<std::string, FakePod> pods;
  std::map<std::string, int> deployments;
  std::map<std::string, int> updated;  // status.updatedReplicas, where set_rollout() set it
  struct Template {
    int revision = 0;
    Json pod_template;
    int generation = 1;
    int behind = 0;  // status.observedGeneration this much short of the generation
    bool paused = false;
    std::map<std::string, std::string> annotations = {};  // besides the revision
  };
  std::map<std::string, Template> templates;  // by Deployment, where set_template() set one
  std::map<std::string, int> versions;        // resourceVersion, by Deployment
  std::set<std::string> change_before_patch;  // change_before_next_patch()
  std::vector<std::pair<std::string, Json>> deployment_patches;
  std::map<std::string, FakeReplicaSet> replica_sets;
  std::vector<std::pair<std::string, int>> scaled;
  std::vector<std::string> deleted;
  int fail_with = 0;
  int requests = 0;
  std::unique_ptr<http::Server> server;
  http::Router router;

  Json deployment(const std::string& name, int replicas) const {
    const auto u = updated.find(name);
    const auto t = templates.find(name);
    const int generation = t == templates.end() ? 1 : t->second.generation;
    // The API leaves a status field out when it is 0.
    Json status = {
        {"observedGeneration", generation - (t == templates.end() ? 0 : t->second.behind)}};
    if (replicas != 0) status["replicas"] = replicas;
    if (const int n = u == updated.end() ? replicas : u->second; n != 0) {
      status["updatedReplicas"] = n;
    }
    const auto v = versions.find(name);
    Json object = {{"apiVersion", "apps/v1"},
                   {"kind", "Deployment"},
                   {"metadata",
                    {{"name", name},
                     {"namespace", name_space},
                     {"labels", labels(name)},
                     {"uid", "uid-deployment-" + name},
                     {"generation", generation},
                     {"resourceVersion", std::to_string(v == versions.end() ? 1 : v->second)}}},
                   {"spec", {{"replicas", replicas}}},
                   {"status", status}};
    if (t != templates.end() && t->second.paused) object["spec"]["paused"] = true;
    if (t != templates.end()) {
      Json annotations = t->second.annotations;
      annotations["deployment.kubernetes.io/revision"] = std::to_string(t->second.revision);
      object["metadata"]["annotations"] = annotations;
      object["spec"]["template"] = t->second.pod_template;
    }
    return object;
  }
  Json replica_set(const FakeReplicaSet& rs) const {
    Json l = labels(rs.deployment);
    l["pod-template-hash"] = rs.hash;
    Json status = Json::object();
    if (rs.replicas != 0) status["replicas"] = rs.replicas;
    const Json annotations = {{"deployment.kubernetes.io/revision", std::to_string(rs.revision)}};
    return {{"apiVersion", "apps/v1"},
            {"kind", "ReplicaSet"},
            {"metadata",
             {{"name", rs.name},
              {"namespace", name_space},
              {"labels", l},
              {"annotations", annotations},
              {"ownerReferences",
               Json::array({{{"apiVersion", "apps/v1"},
                             {"kind", "Deployment"},
                             {"name", rs.deployment},
                             {"uid", rs.owner_uid.empty() ? "uid-deployment-" + rs.deployment
                                                          : rs.owner_uid},
                             {"controller", true}}})}}},
            {"spec", {{"replicas", rs.replicas}, {"template", rs.pod_template}}},
            {"status", status}};
  }
  Json scale(const std::string& name, int replicas) const {
    return {{"apiVersion", "autoscaling/v1"},
            {"kind", "Scale"},
            {"metadata", {{"name", name}, {"namespace", name_space}}},
            {"spec", {{"replicas", replicas}}},
            {"status", {{"replicas", replicas}}}};
  }
  // The Deployment the request names, as `object` makes it (deployment() or scale()), or 404.
  http::Response read_deployment(const http::Request& req,
                                 Json (State::*object)(const std::string&, int) const) const {
    const std::string name(req.param("name").value_or(""));
    std::lock_guard lock(mu);
    auto it = deployments.find(name);
    if (it == deployments.end()) {
      return status_object(404, "NotFound", "deployments.apps \"" + name + "\" not found");
    }
    return http::json_response(200, (this->*object)(name, it->second));
  }
  // The answer to a request refused before it is routed, if any.
  std::optional<http::Response> refused(const http::Request& req) {
    std::lock_guard lock(mu);
    ++requests;
    if (fail_with != 0) return status_object(fail_with, "InternalError", "failing as told");
    if (!token.empty() && req.headers.get("Authorization") != "Bearer " + token) {
      return status_object(401, "Unauthorized", "Unauthorized");
    }
    return std::nullopt;
  }
  std::optional<http::Response> wrong_namespace(const http::Request& req) const {
    if (req.param("ns") == name_space) return std::nullopt;
    return status_object(
        404, "NotFound",
        "namespaces \"" + std::string(req.param("ns").value_or("")) + "\" not found");
  }
};

FakeApiServer::FakeApiServer(std::string name_space, std::string token)
    : state_(std::make_shared<State>()) {
  state_->name_space = std::move(name_space);
  state_->token = std::move(token);
  std::weak_ptr<State> weak = state_;
  auto route = [weak](auto body) {
    return [weak, body](http::Request& req, http::Responder respond) {
      auto st = weak.lock();
      if (!st) return respond(http::Response::text(503, "stopping"));
      if (auto r = st->refused(req)) return respond(std::move(*r));
      if (auto r = st->wrong_namespace(req)) return respond(std::move(*r));
      respond(body(*st, req));
    };
  };
  http::Router& r = state_->router;
  r.add(
      http::Method::kGet, "/api/v1/namespaces/{ns}/pods", route([](State& st, http::Request& req) {
        std::lock_guard lock(st.mu);
        return list_of(req, "v1", "PodList", st.pods, [&](const std::string&, const FakePod& pod) {
          return pod_object(pod, st.name_space);
        });
      }));
  r.add(http::Method::kDelete, "/api/v1/namespaces/{ns}/pods/{name}",
        route([](State& st, http::Request& req) {
          const std::string name(req.param("name").value_or(""));
          std::lock_guard lock(st.mu);
          auto it = st.pods.find(name);
          if (it == st.pods.end()) {
            return status_object(404, "NotFound", "pods \"" + name + "\" not found");
          }
          it->second.deleting = true;
          st.deleted.push_back(name);
          return http::json_response(200, pod_object(it->second, st.name_space));
        }));
  // A merge patch of a pod's annotations (the one part of a pod the controller changes): a string
  // sets one, null removes it.
  r.add(http::Method::kPatch, "/api/v1/namespaces/{ns}/pods/{name}",
        route([](State& st, http::Request& req) {
          const std::string name(req.param("name").value_or(""));
          if (auto refused = not_merge_patch(req)) return std::move(*refused);
          auto body = http::parse_json(req.body);
          const Json* annotations = nullptr;
          if (body && body->is_object() && body->contains("metadata") &&
              (*body)["metadata"].is_object() && (*body)["metadata"].contains("annotations")) {
            annotations = &(*body)["metadata"]["annotations"];
          }
          if (!annotations || !annotations->is_object() || body->size() != 1 ||
              (*body)["metadata"].size() != 1) {
            return status_object(422, "Invalid",
                                 "Pod \"" + name + "\" is invalid: only metadata.annotations");
          }
          for (const auto& [key, value] : annotations->items()) {
            if (!value.is_string() && !value.is_null()) {
              return status_object(400, "BadRequest",
                                   "metadata.annotations." + key + ": expected a string");
            }
          }
          std::lock_guard lock(st.mu);
          auto it = st.pods.find(name);
          if (it == st.pods.end()) {
            return status_object(404, "NotFound", "pods \"" + name + "\" not found");
          }
          for (const auto& [key, value] : annotations->items()) {
            if (value.is_null()) {
              it->second.annotations.erase(key);
            } else {
              it->second.annotations[key] = value.get<std::string>();
            }
          }
          return http::json_response(200, pod_object(it->second, st.name_space));
        }));
  // An eviction, as the API answers it under the rendered PodDisruptionBudget (maxUnavailable 1):
  // refused with 429 while another pod of the same app (one that has not finished) is not ready.
  r.add(http::Method::kPost, "/api/v1/namespaces/{ns}/pods/{name}/eviction",
        route([](State& st, http::Request& req) {
          const std::string name(req.param("name").value_or(""));
          auto body = http::parse_json(req.body);
          if (req.headers.get("Content-Type") != "application/json" || !body ||
              !body->is_object() || !body->contains("kind") ||
              (*body)["kind"] != Json("Eviction")) {
            return status_object(400, "BadRequest", "not an Eviction");
          }
          std::lock_guard lock(st.mu);
          auto it = st.pods.find(name);
          if (it == st.pods.end()) {
            return status_object(404, "NotFound", "pods \"" + name + "\" not found");
          }
          for (const auto& [other, pod] : st.pods) {
            const bool finished = pod.phase == "Succeeded" || pod.phase == "Failed";
            if (other != name && pod.app == it->second.app && !finished &&
                (!pod.ready || pod.deleting)) {
              return status_object(429, "TooManyRequests",
                                   "Cannot evict pod as it would violate the pod's disruption "
                                   "budget.");
            }
          }
          it->second.deleting = true;
          st.deleted.push_back(name);
          return http::json_response(
              201,
              Json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Success"}, {"code", 201}});
        }));
  r.add(http::Method::kGet, "/apis/apps/v1/namespaces/{ns}/deployments",
        route([](State& st, http::Request& req) {
          std::lock_guard lock(st.mu);
          return list_of(
              req, "apps/v1", "DeploymentList", st.deployments,
              [&](const std::string& name, int replicas) { return st.deployment(name, replicas); });
        }));
  r.add(http::Method::kGet, "/apis/apps/v1/namespaces/{ns}/replicasets",
        route([](State& st, http::Request& req) {
          std::lock_guard lock(st.mu);
          return list_of(
              req, "apps/v1", "ReplicaSetList", st.replica_sets,
              [&](const std::string&, const FakeReplicaSet& rs) { return st.replica_set(rs); });
        }));
  r.add(http::Method::kGet, "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
        route([](State& st, http::Request& req) {
          return st.read_deployment(req, &State::deployment);
        }));
  // A merge patch of a Deployment's pod template (what a rollback changes), refused with 409 when
  // it names a resourceVersion that is not the Deployment's.
  r.add(
      http::Method::kPatch, "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
      route([](State& st, http::Request& req) {
        const std::string name(req.param("name").value_or(""));
        if (auto refused = not_merge_patch(req)) return std::move(*refused);
        auto body = http::parse_json(req.body);
        // spec.template, and of metadata only resourceVersion and annotations (strings).
        bool valid = body && body->is_object() && body->contains("spec") &&
                     (*body)["spec"].is_object() && (*body)["spec"].size() == 1 &&
                     (*body)["spec"].contains("template") &&
                     body->size() == (body->contains("metadata") ? 2u : 1u);
        if (valid && body->contains("metadata")) {
          const Json& m = (*body)["metadata"];
          valid = m.is_object();
          if (valid) {
            for (const auto& [key, value] : m.items()) {
              valid = valid && (key == "resourceVersion" || key == "annotations");
              if (key != "annotations") continue;
              valid = valid && value.is_object();
              if (!value.is_object()) continue;
              for (const auto& [k, v] : value.items()) {
                valid = valid && (v.is_string() || v.is_null());
              }
            }
          }
        }
        if (!valid) {
          return status_object(422, "Invalid",
                               "Deployment.apps \"" + name +
                                   "\" is invalid: only spec.template (and "
                                   "metadata.resourceVersion, metadata.annotations)");
        }
        std::lock_guard lock(st.mu);
        auto it = st.deployments.find(name);
        if (it == st.deployments.end()) {
          return status_object(404, "NotFound", "deployments.apps \"" + name + "\" not found");
        }
        int& version = st.versions.try_emplace(name, 1).first->second;
        if (st.change_before_patch.erase(name) > 0) ++version;
        const Json asked =
            body->contains("metadata") && (*body)["metadata"].contains("resourceVersion")
                ? (*body)["metadata"]["resourceVersion"]
                : Json(std::to_string(version));
        if (asked != Json(std::to_string(version))) {
          return status_object(409, "Conflict",
                               "Operation cannot be fulfilled on deployments.apps \"" + name +
                                   "\": the object has been modified; please apply your "
                                   "changes to the latest version and try again");
        }
        State::Template& t = st.templates[name];
        t.pod_template.merge_patch((*body)["spec"]["template"]);
        if (body->contains("metadata") && (*body)["metadata"].contains("annotations")) {
          for (const auto& [k, v] : (*body)["metadata"]["annotations"].items()) {
            if (v.is_null()) {
              t.annotations.erase(k);
            } else {
              t.annotations[k] = v.get<std::string>();
            }
          }
        }
        ++t.generation;
        ++version;
        st.deployment_patches.emplace_back(name, *body);
        return http::json_response(200, st.deployment(name, it->second));
      }));
  r.add(
      http::Method::kGet, "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
      route([](State& st, http::Request& req) { return st.read_deployment(req, &State::scale); }));
  r.add(http::Method::kPatch, "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
        route([](State& st, http::Request& req) {
          const std::string name(req.param("name").value_or(""));
          if (auto refused = not_merge_patch(req)) return std::move(*refused);
          auto body = http::parse_json(req.body);
          if (!body || !body->is_object() || !body->contains("spec") ||
              !(*body)["spec"].contains("replicas") ||
              !(*body)["spec"]["replicas"].is_number_integer() ||
              (*body)["spec"]["replicas"].get<int>() < 0) {
            return status_object(422, "Invalid",
                                 "Scale.autoscaling \"" + name + "\" is invalid: spec.replicas");
          }
          const int replicas = (*body)["spec"]["replicas"].get<int>();
          std::lock_guard lock(st.mu);
          auto it = st.deployments.find(name);
          if (it == st.deployments.end()) {
            return status_object(404, "NotFound", "deployments.apps \"" + name + "\" not found");
          }
          it->second = replicas;
          st.scaled.emplace_back(name, replicas);
          return http::json_response(200, st.scale(name, replicas));
        }));
  http::ServerOptions so;
  so.threads = 1;
  state_->server = std::make_unique<http::Server>(so, state_->router.as_handler());
  if (auto started = state_->server->start(); !started) {
    throw std::runtime_error("fake API server: " + started.error().message);
  }
}

FakeApiServer::~FakeApiServer() { state_->server->shutdown(std::chrono::milliseconds(0)); }

std::uint16_t FakeApiServer::port() const { return state_->server->port(); }
std::string FakeApiServer::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

void FakeApiServer::set_pod(const FakePod& pod) {
  std::lock_guard lock(state_->mu);
  state_->pods[pod.name] = pod;
}
void FakeApiServer::remove_pod(const std::string& name) {
  std::lock_guard lock(state_->mu);
  state_->pods.erase(name);
}
std::optional<FakePod> FakeApiServer::pod(const std::string& name) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->pods.find(name);
  if (it == state_->pods.end()) return std::nullopt;
  return it->second;
}
void FakeApiServer::set_deployment(const std::string& name, int replicas) {
  std::lock_guard lock(state_->mu);
  state_->deployments[name] = replicas;
}
void FakeApiServer::set_rollout(const std::string& deployment, int updated_replicas) {
  std::lock_guard lock(state_->mu);
  state_->updated[deployment] = updated_replicas;
}
void FakeApiServer::set_template(const std::string& deployment, int revision,
                                 const nlohmann::json& pod_template) {
  std::lock_guard lock(state_->mu);
  State::Template& t = state_->templates[deployment];
  if (t.revision != 0 && (t.revision != revision || t.pod_template != pod_template)) {
    ++t.generation;
  }
  t.revision = revision;
  t.pod_template = pod_template;
  ++state_->versions.try_emplace(deployment, 1).first->second;
}
void FakeApiServer::set_observed_lag(const std::string& deployment, int behind) {
  std::lock_guard lock(state_->mu);
  state_->templates[deployment].behind = behind;
}
void FakeApiServer::set_annotation(const std::string& deployment, const std::string& key,
                                   const std::string& value) {
  std::lock_guard lock(state_->mu);
  state_->templates[deployment].annotations[key] = value;
}
void FakeApiServer::set_paused(const std::string& deployment, bool paused) {
  std::lock_guard lock(state_->mu);
  state_->templates[deployment].paused = paused;
}
nlohmann::json FakeApiServer::pod_template(const std::string& deployment) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->templates.find(deployment);
  return it == state_->templates.end() ? nlohmann::json() : it->second.pod_template;
}
std::vector<std::pair<std::string, nlohmann::json>> FakeApiServer::deployment_patches() const {
  std::lock_guard lock(state_->mu);
  return state_->deployment_patches;
}
void FakeApiServer::set_replica_set(const FakeReplicaSet& replica_set) {
  std::lock_guard lock(state_->mu);
  state_->replica_sets[replica_set.name] = replica_set;
}
void FakeApiServer::remove_deployment(const std::string& name) {
  std::lock_guard lock(state_->mu);
  state_->deployments.erase(name);
}
int FakeApiServer::replicas(const std::string& deployment) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->deployments.find(deployment);
  return it == state_->deployments.end() ? -1 : it->second;
}
std::vector<std::pair<std::string, int>> FakeApiServer::scaled() const {
  std::lock_guard lock(state_->mu);
  return state_->scaled;
}
std::vector<std::string> FakeApiServer::deleted() const {
  std::lock_guard lock(state_->mu);
  return state_->deleted;
}
void FakeApiServer::change_before_next_patch(const std::string& deployment) {
  std::lock_guard lock(state_->mu);
  state_->change_before_patch.insert(deployment);
}
void FakeApiServer::fail_with(int status) {
  std::lock_guard lock(state_->mu);
  state_->fail_with = status;
}
int FakeApiServer::requests() const {
  std::lock_guard lock(state_->mu);
  return state_->requests;
}

}  // namespace prescale::kube::fake
