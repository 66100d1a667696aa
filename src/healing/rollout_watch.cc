#include "rollout_watch.h"

#include <algorithm>
#include <cctype>

namespace prescale::healing {

std::map<std::string, RevisionSample> attempts_by_upstream(
    const std::vector<telemetry::FamilySnapshot>& families) {
  std::map<std::string, RevisionSample> out;
  for (const telemetry::FamilySnapshot& f : families) {
    const bool requests = f.name == "prescale_gateway_upstream_requests_total";
    const bool durations = f.name == "prescale_gateway_upstream_request_duration_seconds";
    if (!requests && !durations) continue;
    const auto label = [&](const char* name) {
      const auto it = std::find(f.label_names.begin(), f.label_names.end(), name);
      return it == f.label_names.end() ? -1 : static_cast<int>(it - f.label_names.begin());
    };
    const int upstream = label("upstream"), code = label("code");
    if (upstream < 0 || (requests && code < 0)) continue;
    for (const telemetry::SeriesSnapshot& s : f.series) {
      RevisionSample& r = out[s.label_values[upstream]];
      if (requests) {
        const std::string& c = s.label_values[code];
        // The client left, or the gateway refused the attempt itself (its connection limits):
        // neither says anything of the replica.
        if (c == "cancelled" || c == "overflow") continue;
        r.attempts += s.value;
        // A 5xx, or no answer at all.
        if (c.starts_with('5') || !std::isdigit(static_cast<unsigned char>(c.front()))) {
          r.failed += s.value;
        }
      } else {
        const telemetry::HistogramSnapshot& h = s.histogram;
        if (r.upper_bounds.empty()) {
          r.upper_bounds = h.upper_bounds;
          r.cumulative.assign(h.cumulative_counts.size(), 0);
        }
        if (r.upper_bounds != h.upper_bounds) continue;  // one set of buckets per family
        for (std::size_t i = 0; i < h.cumulative_counts.size(); ++i) {
          r.cumulative[i] += static_cast<double>(h.cumulative_counts[i]);
        }
        r.latency_sum += h.sum;
      }
    }
  }
  return out;
}

void add_attempts(RevisionSample& into, const RevisionSample& now, const RevisionSample& before) {
  into.attempts += now.attempts - before.attempts;
  into.failed += now.failed - before.failed;
  into.latency_sum += now.latency_sum - before.latency_sum;
  if (now.cumulative.empty()) return;
  if (into.upper_bounds.empty()) {
    into.upper_bounds = now.upper_bounds;
    into.cumulative.assign(now.cumulative.size(), 0);
  }
  if (into.upper_bounds != now.upper_bounds) return;
  for (std::size_t i = 0; i < now.cumulative.size(); ++i) {
    into.cumulative[i] +=
        now.cumulative[i] - (i < before.cumulative.size() ? before.cumulative[i] : 0);
  }
}

std::vector<RolloutFailure> RolloutWatch::look(
    const std::map<std::string, RolloutRevisions>& rolling,
    const std::vector<RolloutReplica>& replicas,
    const std::map<std::string, RevisionSample>& counted, Clock::TimePoint now) {
  std::erase_if(rollouts_, [&](const auto& r) {
    const auto it = rolling.find(r.first);
    return it == rolling.end() || !(it->second == r.second.revisions);
  });
  for (const auto& [service, revisions] : rolling) {
    // A rollback under way returns to the stable revision: nothing to judge.
    if (revisions.revision != revisions.stable && !rollouts_.contains(service)) {
      rollouts_[service].revisions = revisions;
    }
  }

  struct Look {
    RevisionSample stable_side, new_side;
    bool stable_counted = false, new_counted = false;
    std::string a_new_replica;
  };
  std::map<std::string, Look> looks;  // by service
  for (const RolloutReplica& r : replicas) {
    const auto rollout = rollouts_.find(r.service);
    if (rollout == rollouts_.end() || rollout->second.judged || !r.ready_at || r.upstream.empty() ||
        now < *r.ready_at + warmup_) {
      continue;
    }
    Rollout& ro = rollout->second;
    const bool fresh = r.revision == ro.revisions.revision;
    if (!fresh && r.revision != ro.revisions.stable) continue;  // neither side
    const auto c = counted.find(r.upstream);
    const RevisionSample current = c == counted.end() ? RevisionSample{} : c->second;
    const auto [last, first] = ro.last.emplace(r.id + "/" + r.process, current);
    if (first) continue;  // counts from the next look
    Look& l = looks[r.service];
    add_attempts(fresh ? l.new_side : l.stable_side, current, last->second);
    last->second = current;
    (fresh ? l.new_counted : l.stable_counted) = true;
    if (fresh) l.a_new_replica = r.id;
  }

  std::vector<RolloutFailure> failures;
  for (auto& [service, l] : looks) {
    if (!l.stable_counted || !l.new_counted) continue;  // this look's counts cover one side
    Rollout& ro = rollouts_.at(service);
    add_attempts(ro.stable_side, l.stable_side, {});
    add_attempts(ro.new_side, l.new_side, {});
    const RolloutVerdict v = compare_revisions(ro.stable_side, ro.new_side, options_);
    if (!v.failed) continue;
    ro.judged = true;
    failures.push_back({service, l.a_new_replica, v.why});
  }
  return failures;
}

}  // namespace prescale::healing
