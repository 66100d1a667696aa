// RolloutJudge: `prescale controller`'s judgement of the Deployments rolling out
// (docs/kubernetes.md, "Rollouts"), as `prescale up` judges its own
// rollouts: a new revision whose pods restart twice in all (a crash, a failed liveness probe, the
// memory limit), or one of whose pods a gateway ejects, fails at once; with `analysis`, one that
// fails more often or answers more slowly than the revision it replaces, on what the gateways
// counted of both (healing::RolloutWatch), fails too. A failed revision is rolled back to the one
// it replaces (KubeWorld::roll_back, as `kubectl rollout undo` would). A new revision's pod that
// cannot start — a container of it waiting on an image it cannot pull, or on a configuration it
// cannot create (a missing Secret), for a minute of the controller's looks — or that is not ready
// `ready_deadline` after its containers all run (its readiness probe never passing), fails it too:
// the Deployment controller would wait for it until progressDeadlineSeconds and then only say so.
// Both count from the later of the API's time and the controller's first sight (clocks apart, a
// controller that restarted), are not judged on a stale list of pods, and are checked again
// before each try of the rollback (a pod ready meanwhile, or gone, fails nothing). The new
// revision's pods' ejections are taken out of `ejections` at the look that rolls it back, and
// their breaker openings out of `breaker_openings` (the rollback removes them; the healer does not
// evict them). A breaker opening fails no revision: overload opens breakers too.
//
// Thread safety: one thread calls everything.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "healing/rollout_watch.h"
#include "telemetry/registry.h"

namespace prescale {

namespace kube {
class KubeWorld;
}
class DashboardFeed;

class RolloutJudge {
 public:
  // `feed` gets the rollout and rollback events and `rollbacks` counts rollbacks by service; either
  // may be null. `world` must outlive this.
  RolloutJudge(kube::KubeWorld& world, DashboardFeed* feed, telemetry::CounterFamily* rollbacks)
      : world_(world), feed_(feed), rollbacks_(rollbacks) {}

  // How long a new revision's pod may run before it is ready (default 180 s: the rendered
  // startup probe's 120 s and a readiness probe's periods after it).
  void set_ready_deadline(const std::string& service, Clock::Duration deadline) {
    ready_deadlines_[service] = deadline;
  }

  // One look at `now`, after the world's observation: `restarted`, `ejections` and
  // `breaker_openings` are what KubeWorld::take_restarted(), take_ejections() and
  // take_breaker_openings() told since the last look. With `analysis`
  // false only restarts and ejections fail a revision (and what was counted is forgotten); with
  // `recommend_only` nothing is rolled back (`would roll back …` is said once).
  void look(const std::vector<std::string>& restarted,
            std::vector<std::pair<std::string, std::string>>& ejections,
            std::vector<std::pair<std::string, std::string>>& breaker_openings, bool analysis,
            bool recommend_only, Clock::TimePoint now);

  // By service: its last rollback ("revision 2 failed: ...; back to revision 1"), until its next
  // rollout, for the dashboard's cards.
  const std::map<std::string, std::string>& rolled_back() const { return rolled_back_; }

 private:
  kube::KubeWorld& world_;
  DashboardFeed* feed_;
  telemetry::CounterFamily* rollbacks_;
  healing::RolloutWatch watch_;
  std::map<std::string, Clock::Duration> ready_deadlines_;
  // By pod process (RolloutReplica::process): when the controller first saw it unable to start,
  // and running but not ready.
  std::map<std::string, Clock::TimePoint> cannot_start_since_, unready_since_;
  // By service: (the revision rolling out, its pods' restarts).
  std::map<std::string, std::pair<int, int>> restarts_;
  // A failed revision, by service, until it is rolled back (tried again with a back-off: the API
  // may refuse for now) or no longer rolls out.
  struct Failed {
    int revision = 0;
    int stable = 0;  // the revision it is rolled back to
    healing::RolloutFailure failure;
    bool said = false;  // that it is not rolled back yet
    // When it is tried again: 1 s after a refusal, then twice as long each time, up to 30 s.
    Clock::TimePoint next_try = {};
    Clock::Duration wait = std::chrono::seconds(1);
    // Failed by its pod's state (cannot start, never ready): that state is checked again before
    // each try.
    bool by_state = false;
  };
  std::map<std::string, Failed> failed_;
  std::map<std::string, healing::RolloutRevisions> said_;  // the rollouts said to be judged
  // By service: its last rollback ("revision 2 failed: ...; back to revision 1"), until the next
  // rollout, for the dashboard.
  std::map<std::string, std::string> rolled_back_;
  // By service: its Deployment's uid when the above were recorded. A Deployment deleted and made
  // again starts its revisions again: what was recorded of the old one is forgotten.
  std::map<std::string, std::string> uids_;
};

}  // namespace prescale
