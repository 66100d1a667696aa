// RolloutWatch: `prescale up`'s rollout analysis (healing/rollout_analysis.h). While a service
// rolls out, each look sums what the gateway counted of every replica's attempts
// (prescale_gateway_upstream_requests_total and _request_duration_seconds, by the replica's
// address) since the later of the rollout's start and the replica's first `warmup` of
// readiness (a fresh process is often slower at first: caches, connections), by revision: the
// new one against all the older ones still serving. A new revision that fares worse is reported
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
  std::uint16_t port = 0;                    // where the gateway reaches it (127.0.0.1)
  std::optional<Clock::TimePoint> ready_at;  // nullopt while it starts
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

  // One look at `now`: `rolling` holds each service rolling out and the revision it rolls out;
  // `replicas` their replicas; `gateway` the gateway registry's families. Services that no
  // longer roll out are forgotten.
  std::vector<RolloutFailure> look(const std::map<std::string, int>& rolling,
                                   const std::vector<RolloutReplica>& replicas,
                                   const std::vector<telemetry::FamilySnapshot>& gateway,
                                   Clock::TimePoint now);

 private:
  struct Rollout {
    int revision = 0;
    Clock::TimePoint started;
    bool judged = false;  // failed and reported: once
    // Per replica process ("<id>@<port>"), its counts when they began to count.
    std::map<std::string, healing::RevisionSample> zero;
  };

  healing::RolloutAnalysisOptions options_;
  Clock::Duration warmup_;
  std::map<std::string, Rollout> rollouts_;  // by service
};

}  // namespace prescale
