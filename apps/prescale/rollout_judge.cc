#include "rollout_judge.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "dashboard_feed.h"
#include "worlds/kube/kube_world.h"

namespace prescale {

namespace {

// A container waiting for one of these will not start without a change: the release is broken
// (a wrong image name or tag, a Secret or ConfigMap it names that is not there).
bool cannot_start(const std::string& waiting) {
  for (const char* reason :
       {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
        "CreateContainerConfigError", "CreateContainerError"}) {
    if (waiting == reason) return true;
  }
  return false;
}

// A registry's hiccup may pass: a pod that cannot start is judged after this long.
constexpr Clock::Duration kCannotStartFor = std::chrono::seconds(60);

std::string whole_seconds(Clock::Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

}  // namespace

void RolloutJudge::look(const std::vector<std::string>& restarted,
                        std::vector<std::pair<std::string, std::string>>& ejections,
                        std::vector<std::pair<std::string, std::string>>& breaker_openings,
                        bool analysis, bool recommend_only, Clock::TimePoint now) {
  std::set<std::string> recorded;
  for (const auto& [s, v] : failed_) recorded.insert(s);
  for (const auto& [s, v] : restarts_) recorded.insert(s);
  for (const auto& [s, v] : said_) recorded.insert(s);
  for (const auto& [s, v] : rolled_back_) recorded.insert(s);
  for (const std::string& s : recorded) {
    const std::string uid = world_.deployment_uid(s);
    auto [at, added] = uids_.try_emplace(s, uid);
    if (added || at->second == uid) continue;
    failed_.erase(s);
    restarts_.erase(s);
    said_.erase(s);
    rolled_back_.erase(s);
    at->second = uid;
  }
  std::map<std::string, healing::RolloutRevisions> rolling = world_.rollouts();
  std::erase_if(rolling, [](const auto& e) {  // a rollback under way: nothing to judge
    return e.second.revision == e.second.stable;
  });
  for (const auto& [service, r] : rolling) {
    if (const auto said = said_.find(service); said == said_.end() || !(said->second == r)) {
      spdlog::info("rollout {}: revision {} replaces revision {}: judged while both serve", service,
                   r.revision, r.stable);
      if (feed_ != nullptr)
        feed_->add_event("rollout", service, "",
                         "revision " + std::to_string(r.revision) + " replaces revision " +
                             std::to_string(r.stable) + ": judged while both serve");
      rolled_back_.erase(service);
    }
  }
  said_ = rolling;
  const auto ended = [&](const std::string& service, int revision) {
    const auto r = rolling.find(service);
    return r == rolling.end() || r->second.revision != revision;
  };
  // A rollback done: said, counted and shown.
  auto said_rolled_back = [&](const std::string& service, int revision,
                              const healing::RolloutFailure& f, int back) {
    const std::string message = "revision " + std::to_string(revision) + " failed: " + f.replica +
                                " " + f.why + "; back to revision " + std::to_string(back);
    spdlog::warn("rollback {}: {}", service, message);
    if (rollbacks_ != nullptr) rollbacks_->with({service}).inc();
    if (feed_ != nullptr) feed_->add_event("rollback", service, "", message);
    rolled_back_[service] = message;
  };
  std::erase_if(restarts_, [&](const auto& e) { return ended(e.first, e.second.first); });
  std::erase_if(failed_, [&](const auto& e) {
    const auto& [service, failed] = e;
    if (!ended(service, failed.revision)) return false;
    if (world_.rolled_back(service, failed.revision) && !recommend_only) {
      // A rollback whose answer was lost, found done by the Deployment's mark.
      said_rolled_back(service, failed.revision, failed.failure, failed.stable);
    } else if (!recommend_only && !world_.rolled_back(service, failed.revision)) {
      const auto r = rolling.find(service);
      spdlog::warn("rollback {}: revision {} not rolled back: {}", service, failed.revision,
                   r == rolling.end()
                       ? "it rolled out meanwhile (kubectl rollout undo takes it back)"
                       : "revision " + std::to_string(r->second.revision) + " rolls out now");
    }
    return true;
  });
  if (rolling.empty()) {
    (void)watch_.look({}, {}, {}, now);  // forgets the rollouts that ended
    return;
  }
  const std::vector<healing::RolloutReplica> replicas = world_.rollout_replicas();
  // The pod of a new revision under judgement, if `pod` is one.
  auto fresh = [&](const std::string& pod) -> const healing::RolloutReplica* {
    for (const healing::RolloutReplica& r : replicas) {
      if (r.id != pod) continue;
      const auto at = rolling.find(r.service);
      if (at != rolling.end() && r.revision == at->second.revision) return &r;
    }
    return nullptr;
  };
  auto fail = [&](healing::RolloutFailure f, bool by_state = false) {
    const healing::RolloutRevisions& r = rolling.at(f.service);
    std::string service = f.service;  // the key, before `f` is moved into the value
    Failed failed{r.revision, r.stable, std::move(f)};
    failed.by_state = by_state;
    // A failure for a pod's state, which may pass, gives way to one that does not (a restart, an
    // ejection, the analysis: each told once).
    if (const auto at = failed_.find(service);
        at != failed_.end() && at->second.by_state && !by_state) {
      failed.said = at->second.said;
      failed.next_try = at->second.next_try;
      failed.wait = at->second.wait;
      at->second = std::move(failed);
      return;
    }
    failed_.try_emplace(std::move(service), std::move(failed));
  };
  for (const std::string& pod : restarted) {
    const healing::RolloutReplica* r = fresh(pod);
    if (r == nullptr) continue;
    auto& [revision, n] = restarts_[r->service];
    revision = r->revision;
    if (++n >= 2) {
      fail({r->service, pod,
            "restarted: the new revision's pods restarted " + std::to_string(n) + " times in all"});
    }
  }
  // A new revision's pod that cannot start, or runs without ever getting ready: judged on a list
  // of pods that is not stale, from when the controller first saw it so (or the API's time, if
  // later: clocks apart, a controller that restarted).
  const bool pods_fresh = !world_.pods_stale(now);
  std::map<std::string, Clock::TimePoint> cannot_start_since, unready_since;
  for (const healing::RolloutReplica& r : replicas) {
    if (!pods_fresh || r.ready_at || r.ever_ready || r.deleting || fresh(r.id) == nullptr) continue;
    if (cannot_start(r.waiting)) {
      const auto seen = cannot_start_since_.find(r.process);
      const Clock::TimePoint since = seen != cannot_start_since_.end() ? seen->second : now;
      cannot_start_since[r.process] = since;
      if (now - since >= kCannotStartFor) {
        fail({r.service, r.id,
              "cannot start: a container of it waits in " + r.waiting + " (for " +
                  whole_seconds(now - since) + ")"},
             true);
      }
    } else if (r.running_since) {
      const auto seen = unready_since_.find(r.process);
      const Clock::TimePoint since =
          std::max(*r.running_since, seen != unready_since_.end() ? seen->second : now);
      unready_since[r.process] = seen != unready_since_.end() ? seen->second : now;
      const auto deadline = ready_deadlines_.find(r.service);
      const Clock::Duration ready_deadline =
          deadline != ready_deadlines_.end() ? deadline->second : std::chrono::seconds(180);
      if (now - since >= ready_deadline) {
        fail({r.service, r.id,
              "is not ready " + whole_seconds(now - since) +
                  " after its containers started (its readiness probe never passed)"},
             true);
      }
    }
  }
  if (pods_fresh) {
    cannot_start_since_ = std::move(cannot_start_since);
    unready_since_ = std::move(unready_since);
  }
  std::set<std::string> ejected;  // the new revisions' pods ejected this look
  for (const auto& [service, pod] : ejections) {
    if (const healing::RolloutReplica* r = fresh(pod)) {
      fail({r->service, pod, "was ejected by the gateway's outlier detection"});
      ejected.insert(pod);
    }
  }
  std::map<std::string, healing::RolloutRevisions> judged = rolling;
  if (!analysis) judged.clear();  // and what was counted is forgotten
  for (healing::RolloutFailure& f :
       watch_.look(judged, replicas, world_.upstream_attempts(), now)) {
    fail(std::move(f));
  }
  std::set<std::string> rolled_back;
  for (auto it = failed_.begin(); it != failed_.end();) {
    Failed& failed = it->second;
    const healing::RolloutFailure& f = failed.failure;
    const int stable = rolling.at(f.service).stable;
    if (now < failed.next_try) {
      ++it;
      continue;
    }
    // A pod failed for its state that got ready meanwhile, or left: nothing to roll back.
    if (failed.by_state) {
      const auto pod = std::find_if(replicas.begin(), replicas.end(),
                                    [&](const auto& r) { return r.id == f.replica; });
      if (pod == replicas.end() || pod->ready_at || pod->ever_ready || pod->deleting) {
        spdlog::info("rollback {}: revision {} not rolled back: {} is {} now", f.service,
                     failed.revision, f.replica,
                     pod == replicas.end() ? "gone"
                                           : "no longer "
                                             "failing");
        it = failed_.erase(it);
        continue;
      }
    }
    if (recommend_only) {
      if (!failed.said) {
        spdlog::warn("would roll back {}: revision {} failed: {} {}; back to revision {}",
                     f.service, failed.revision, f.replica, f.why, stable);
      }
      failed.said = true;
      ++it;
      continue;
    }
    Result<int> back = world_.roll_back(f.service);
    if (back) {
      said_rolled_back(f.service, failed.revision, f, *back);
      rolled_back.insert(f.service);
      it = failed_.erase(it);
      continue;
    }
    // Edited since (a new revision will be judged anew), or no longer rolling out: given up. The
    // rest (a conflict, a change not acted on yet, a paused Deployment, the API) wait and retry.
    const bool final = back.error().code == ErrorCode::kInvalidArgument ||
                       back.error().code == ErrorCode::kNotFound;
    if (final || !failed.said) {
      spdlog::warn("rollback {}: revision {} failed: {} {}; not rolled back: {}{}", f.service,
                   failed.revision, f.replica, f.why, back.error().message,
                   back.error().message.find(": 403 ") != std::string::npos
                       ? " (the API refused: is the rendered Role applied?)"
                   : final ? ""
                           : "; tried again shortly");
    }
    failed.said = true;
    failed.next_try = now + failed.wait;
    failed.wait = std::min<Clock::Duration>(2 * failed.wait, std::chrono::seconds(30));
    it = final ? failed_.erase(it) : std::next(it);
  }
  // The ejections of a revision rolled back are the rollback's: no eviction. Those of one not
  // rolled back (yet) are the healer's as ever.
  std::erase_if(ejections, [&](const std::pair<std::string, std::string>& e) {
    return ejected.contains(e.second) && rolled_back.contains(e.first);
  });
  std::erase_if(breaker_openings, [&](const std::pair<std::string, std::string>& e) {
    return rolled_back.contains(e.first) && fresh(e.second) != nullptr;
  });
}

}  // namespace prescale
