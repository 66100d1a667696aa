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
  if (status != nullptr && status->contains("containerStatuses") &&
      (*status)["containerStatuses"].is_array()) {
    for (const Json& c : (*status)["containerStatuses"]) {
      if (c.is_object() && c.contains("restartCount") && c["restartCount"].is_number_integer()) {
        p.restarts += c["restartCount"].get<int>();
      }
      if (!p.running_since) {
        p.running_since = parse_utc(string_at(c, {"state", "running", "startedAt"}));
      }
      if (p.waiting.empty()) p.waiting = string_at(c, {"state", "waiting", "reason"});
    }
  }
  const std::string deletion = string_at(item, {"metadata", "deletionTimestamp"});
  p.deleting = !deletion.empty();
  p.deleted_by = parse_utc(deletion);
  return p;
}

}  // namespace prescale::kube::internal
