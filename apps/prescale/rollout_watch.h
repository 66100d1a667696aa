// RolloutWatch: `prescale up`'s rollout analysis (healing/rollout_analysis.h). While a service
// rolls out, each look takes what the gateway counted of every replica's attempts since the last
// look (prescale_gateway_upstream_requests_total and _request_duration_seconds, by the replica's
// address), and adds them up by side — the new revision, and the stable one it replaces — only in
// looks where both sides have replicas counting, so both cover the same stretch of time: a
// trouble both see (a dependency failing, a burst of load) weighs alike on both. A replica
// counts from its first look past `warmup` of readiness (a fresh process is often slower at
// first: caches, connections). Replicas of other revisions (an edit made during a rollout) are
// left out, and a rollback under way is not judged. A new revision that fares worse is reported
// once per rollout, with one of its replicas, for Supervisor::failing() to roll it back.
//
// Thread safety: one thread calls everything.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "healing/rollout_analysis.h"
#include "telemetry/snapshot.h"

namespace prescale {

// A replica of a service that is rolling out, as the supervisor has it.
struct RolloutReplica {
  std::string service;
  std::string id;
  int revision = 1;
  int pid = 0;                               // its process: a restart is a new one
  std::uint16_t port = 0;                    // where the gateway reaches it (127.0.0.1)
  std::optional<Clock::TimePoint> ready_at;  // nullopt while it starts
};

// What a service rolls out (RolloutStatus::revision) and what it replaces (RolloutStatus::stable).
struct RolloutRevisions {
  int revision = 1;
  int stable = 1;
  friend bool operator==(const RolloutRevisions&, const RolloutRevisions&) = default;
};

struct RolloutFailure {
  std::string service;
  std::string replica;  // one of the new revision's
  std::string why;      // "answers more slowly: ..." (healing::RolloutVerdict::why)
};

class RolloutWatch {
 public:
  explicit RolloutWatch(healing::RolloutAnalysisOptions options = {},
                        Clock::Duration warmup = std::chrono::seconds(5))
      : options_(options), warmup_(warmup) {}

  // One look at `now`: `rolling` holds each service rolling out and its revisions; `replicas`
  // their replicas; `gateway` the gateway registry's families. Services that no longer roll out
  // are forgotten.
  std::vector<RolloutFailure> look(const std::map<std::string, RolloutRevisions>& rolling,
                                   const std::vector<RolloutReplica>& replicas,
                                   const std::vector<telemetry::FamilySnapshot>& gateway,
                                   Clock::TimePoint now);

 private:
  struct Rollout {
    RolloutRevisions revisions;
    bool judged = false;  // failed and reported: once
    // Per replica process ("<id>/<pid>"), its counts at its last look.
    std::map<std::string, healing::RevisionSample> last;
    healing::RevisionSample stable_side, new_side;  // over the looks both sides counted
  };

  healing::RolloutAnalysisOptions options_;
  Clock::Duration warmup_;
  std::map<std::string, Rollout> rollouts_;  // by service
};

}  // namespace prescale
