#include "worlds/kube/internal/pods.h"

namespace prescale::kube::internal {

using Json = nlohmann::json;

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

namespace {

std::uint16_t port_named(const Json& pod, std::string_view name) {
  if (!pod.contains("spec") || !pod["spec"].is_object()) return 0;
  const Json& spec = pod["spec"];
  if (!spec.contains("containers") || !spec["containers"].is_array()) return 0;
  for (const Json& c : spec["containers"]) {
    if (!c.is_object() || !c.contains("ports") || !c["ports"].is_array()) continue;
    for (const Json& p : c["ports"]) {
      if (!p.is_object() || string_at(p, {"name"}) != name) continue;
      if (p.contains("containerPort") && p["containerPort"].is_number_integer()) {
        const auto n = p["containerPort"].get<std::int64_t>();
        if (n > 0 && n < 65536) return static_cast<std::uint16_t>(n);
      }
    }
  }
  return 0;
}

}  // namespace

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
  p.template_hash = string_at(labels, {"pod-template-hash"});
  const std::string phase = string_at(item, {"status", "phase"});
  if (p.name.empty() || phase == "Succeeded" || phase == "Failed") return std::nullopt;
  if (auto created = parse_utc(string_at(item, {"metadata", "creationTimestamp"}))) {
    p.created = *created;
  }
  p.ip = string_at(item, {"status", "podIP"});
  p.deletion_cost =
      string_at(item, {"metadata", "annotations", "controller.kubernetes.io/pod-deletion-cost"});
  p.surged_from = string_at(item, {"metadata", "annotations", "prescale.dev/surged-from"});
  p.http_port = port_named(item, "http");
  p.admin_port = port_named(item, "admin");
  const Json* status =
      item.contains("status") && item["status"].is_object() ? &item["status"] : nullptr;
  if (status != nullptr && status->contains("conditions") && (*status)["conditions"].is_array()) {
    for (const Json& c : (*status)["conditions"]) {
      if (string_at(c, {"type"}) != "Ready") continue;
      const auto since = parse_utc(string_at(c, {"lastTransitionTime"}));
      if (string_at(c, {"status"}) == "True") {
        p.ready = phase == "Running";
        p.ready_since = since;
      } else {
        p.not_ready_since = since;
      }
    }
  }
  // Why a container waits: a reason that is not only progress (ContainerCreating,
  // PodInitializing) wins, from an init container (a native sidecar included) or another.
  const auto note_waiting = [&](const Json& c) {
    const std::string reason = string_at(c, {"state", "waiting", "reason"});
    const bool progress = reason == "ContainerCreating" || reason == "PodInitializing";
    if (!reason.empty() && (p.waiting.empty() || (!progress && (p.waiting == "ContainerCreating" ||
                                                                p.waiting == "PodInitializing")))) {
      p.waiting = reason;
    }
  };
  const auto restarts_of = [](const Json& c) {
    return c.is_object() && c.contains("restartCount") && c["restartCount"].is_number_integer()
               ? c["restartCount"].get<int>()
               : 0;
  };
  if (status != nullptr && status->contains("initContainerStatuses") &&
      (*status)["initContainerStatuses"].is_array()) {
    for (const Json& c : (*status)["initContainerStatuses"]) {
      p.restarts += restarts_of(c);
      note_waiting(c);
    }
  }
  if (status != nullptr && status->contains("containerStatuses") &&
      (*status)["containerStatuses"].is_array()) {
    // Running since the last of its containers started, once all of them run: a sidecar running
    // while the main container's image is pulled is no start of the pod's.
    bool all_running = !(*status)["containerStatuses"].empty();
    for (const Json& c : (*status)["containerStatuses"]) {
      p.restarts += restarts_of(c);
      note_waiting(c);
      const auto started = parse_utc(string_at(c, {"state", "running", "startedAt"}));
      if (!started) {
        all_running = false;
      } else if (!p.running_since || *started > *p.running_since) {
        p.running_since = started;
      }
    }
    if (!all_running) p.running_since.reset();
  }
  const std::string deletion = string_at(item, {"metadata", "deletionTimestamp"});
  p.deleting = !deletion.empty();
  p.deleted_by = parse_utc(deletion);
  return p;
}

}  // namespace prescale::kube::internal
