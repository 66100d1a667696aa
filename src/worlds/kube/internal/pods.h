// Internal: a pod object of the Kubernetes API as KubeWorld reads it. Not public API.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace prescale::kube::internal {

// What observe() needs of one pod.
struct Pod {
  std::string name, uid;
  std::string app;        // app.kubernetes.io/name: the service, or the gateway
  std::string template_hash;  // pod-template-hash: its ReplicaSet's ("" where it has none)
  bool ready = false;     // Running, and its Ready condition True
  bool deleting = false;  // metadata.deletionTimestamp set (deleted_by, where it parses)
  int restarts = 0;       // its containers' restartCount, summed
  // When the last of its containers started running, once all of them run
  // (containerStatuses[].state.running.startedAt).
  std::optional<Clock::WallTime> running_since;
  // Why a container of it waits (state.waiting.reason of its init containers and containers:
  // "ImagePullBackOff", "CrashLoopBackOff", ...; a reason other than ContainerCreating and
  // PodInitializing first); "" when none waits.
  std::string waiting;
  Clock::WallTime created{};
  std::optional<Clock::WallTime> ready_since;  // when its Ready condition last turned True
  // When its Ready condition last turned False (or Unknown): not ready since then.
  std::optional<Clock::WallTime> not_ready_since;
  // metadata.deletionTimestamp: when it is killed if it has not stopped (its grace period's end).
  std::optional<Clock::WallTime> deleted_by;
  std::string ip;
  std::uint16_t http_port = 0, admin_port = 0;  // container ports named "http" and "admin"
  // Its controller.kubernetes.io/pod-deletion-cost annotation ("" where it has none).
  std::string deletion_cost;
  // Its prescale.dev/surged-from annotation ("" where it has none): see KubeWorld.
  std::string surged_from;
};

// The string at `path` in `j` ("" where there is none, or it is not a string).
std::string string_at(const nlohmann::json& j, std::initializer_list<const char*> path);

// The pod as observe() reads it; nullopt for one that has finished (Succeeded, Failed), or has no
// name.
std::optional<Pod> read_pod(const nlohmann::json& item);

}  // namespace prescale::kube::internal
