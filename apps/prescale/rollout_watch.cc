#include "rollout_watch.h"

#include <algorithm>
#include <cctype>

namespace prescale {
namespace {

// What the gateway counted of each upstream ("127.0.0.1:<port>") across its routes.
std::map<std::string, healing::RevisionSample> by_upstream(
    const std::vector<telemetry::FamilySnapshot>& families) {
  std::map<std::string, healing::RevisionSample> out;
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
      healing::RevisionSample& r = out[s.label_values[upstream]];
      if (requests) {
        const std::string& c = s.label_values[code];
        if (c == "cancelled") continue;  // the client left: says nothing of the replica
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
      }
    }
  }
  return out;
}

void add(healing::RevisionSample& into, const healing::RevisionSample& now,
         const healing::RevisionSample& zero) {
  into.attempts += now.attempts - zero.attempts;
  into.failed += now.failed - zero.failed;
  if (now.cumulative.empty()) return;
  if (into.upper_bounds.empty()) {
    into.upper_bounds = now.upper_bounds;
    into.cumulative.assign(now.cumulative.size(), 0);
  }
  if (into.upper_bounds != now.upper_bounds) return;
  for (std::size_t i = 0; i < now.cumulative.size(); ++i) {
    into.cumulative[i] += now.cumulative[i] - (i < zero.cumulative.size() ? zero.cumulative[i] : 0);
  }
}

}  // namespace

std::vector<RolloutFailure> RolloutWatch::look(
    const std::map<std::string, int>& rolling, const std::vector<RolloutReplica>& replicas,
    const std::vector<telemetry::FamilySnapshot>& gateway, Clock::TimePoint now) {
  std::erase_if(rollouts_, [&](const auto& r) {
    const auto it = rolling.find(r.first);
    return it == rolling.end() || it->second != r.second.revision;
  });
  for (const auto& [service, revision] : rolling) {
    if (!rollouts_.contains(service)) rollouts_[service] = Rollout{revision, now, false, {}};
  }
  const std::map<std::string, healing::RevisionSample> counted = by_upstream(gateway);

  std::map<std::string, healing::RevisionSample> old_side, new_side;  // by service
  std::map<std::string, std::string> a_new_replica;
  for (const RolloutReplica& r : replicas) {
    const auto rollout = rollouts_.find(r.service);
    if (rollout == rollouts_.end() || rollout->second.judged || !r.ready_at || r.port == 0) {
      continue;
    }
    Rollout& ro = rollout->second;
    if (now < std::max(ro.started, *r.ready_at + warmup_)) continue;
    const auto c = counted.find("127.0.0.1:" + std::to_string(r.port));
    const healing::RevisionSample current =
        c == counted.end() ? healing::RevisionSample{} : c->second;
    const std::string process = r.id + "@" + std::to_string(r.port);
    const auto [zero, first] = ro.zero.emplace(process, current);
    if (first) continue;  // counts from here
    const bool fresh = r.revision == ro.revision;
    add(fresh ? new_side[r.service] : old_side[r.service], current, zero->second);
    if (fresh) a_new_replica.emplace(r.service, r.id);
  }

  std::vector<RolloutFailure> failures;
  for (auto& [service, ro] : rollouts_) {
    if (ro.judged || !a_new_replica.contains(service) || !old_side.contains(service)) continue;
    const healing::RolloutVerdict v =
        healing::compare_revisions(old_side[service], new_side[service], options_);
    if (!v.failed) continue;
    ro.judged = true;
    failures.push_back({service, a_new_replica[service], v.why});
  }
  return failures;
}

}  // namespace prescale
