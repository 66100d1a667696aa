// RolloutWatch: a rolling update's analysis (rollout_analysis.h) as the platform runs it. While a
// service rolls out, each look takes what the gateways counted of every replica's attempts since
// the last look (prescale_gateway_upstream_requests_total and _request_duration_seconds, by the
// replica's address: attempts_by_upstream), and adds them up by side — the new revision, and the
// stable one it replaces — only in looks where both sides have replicas counting, so both cover
// the same stretch of time: a trouble both see (a dependency failing, a burst of load) weighs
// alike on both. A replica counts from its first look past `warmup` of readiness (a fresh process
// is often slower at first: caches, connections). Replicas of other revisions (an edit made
// during a rollout) are left out, and a rollback under way is not judged. A new revision that
// fares worse is reported once per rollout, with one of its replicas: `prescale up` rolls it back
// (Supervisor::failing()), and so does `prescale controller` in a cluster (KubeWorld::roll_back).
//
// Thread safety: one thread calls everything; attempts_by_upstream and add_attempts are pure.
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

namespace prescale::healing {

// A replica of a service that is rolling out, as the platform has it.
struct RolloutReplica {
  std::string service;
  std::string id;
  int revision = 1;
  std::string process;   // which process it runs (a pid; a pod's restart count): a new one counts
                         // afresh
  std::string upstream;  // where the gateways reach it, as they label it ("10.1.2.3:8080"); ""
                         // for none
  std::optional<Clock::TimePoint> ready_at;  // nullopt while it starts
  // In a cluster: when its pod was created and its container started running (nullopt: not
  // yet), and why its container waits ("ImagePullBackOff", ...; "" when it does not).
  std::optional<Clock::TimePoint> created_at = {};
  std::optional<Clock::TimePoint> running_since = {};
  std::string waiting = {};
  bool ever_ready = false;  // seen ready, or not ready only since after its container started
  bool deleting = false;    // being deleted: no longer the release's to judge
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
  std::string why;      // "answers more slowly: ..." (RolloutVerdict::why)
};

// What the gateway's families count of each upstream ("HOST:PORT"), across its routes: attempts,
// failures (a 5xx, or no answer; an attempt the client cancelled or the gateway's own limits
// refused counts for neither) and latencies.
std::map<std::string, RevisionSample> attempts_by_upstream(
    const std::vector<telemetry::FamilySnapshot>& families);

// `into` += `now` - `before` (`before` empty: all of `now`); latencies only where the buckets
// match.
void add_attempts(RevisionSample& into, const RevisionSample& now, const RevisionSample& before);

class RolloutWatch {
 public:
  explicit RolloutWatch(RolloutAnalysisOptions options = {},
                        Clock::Duration warmup = std::chrono::seconds(5))
      : options_(options), warmup_(warmup) {}

  // One look at `now`: `rolling` holds each service rolling out and its revisions; `replicas`
  // their replicas; `counted` what the gateways counted of each upstream so far (counters: each
  // look takes their growth). Services that no longer roll out are forgotten.
  std::vector<RolloutFailure> look(const std::map<std::string, RolloutRevisions>& rolling,
                                   const std::vector<RolloutReplica>& replicas,
                                   const std::map<std::string, RevisionSample>& counted,
                                   Clock::TimePoint now);

 private:
  struct Rollout {
    RolloutRevisions revisions;
    bool judged = false;  // failed and reported: once
    // Per replica process ("<id>/<process>"), its counts at its last look.
    std::map<std::string, RevisionSample> last;
    RevisionSample stable_side, new_side;  // over the looks both sides counted
  };

  RolloutAnalysisOptions options_;
  Clock::Duration warmup_;
  std::map<std::string, Rollout> rollouts_;  // by service
};

}  // namespace prescale::healing
