// Topology: the call graph learned online from what every world exports, the cumulative
// `calls_total` per caller -> callee edge and `served_total` per service. Between two scrapes,
// fanout(A -> B) = Δcalls(A -> B) / Δserved(A); the intervals are combined by an exponentially
// weighted ratio of sums, so an interval weighs as much as the requests A served in it (a quiet
// night teaches little) and a release that changes a fan-out is followed within a few
// half-lives. Counter resets, edges and services that appear or vanish, and cycles in the
// observed calls are handled as docs/learning.md describes. A seed graph (from config) gives the
// starting fan-outs, weighted as a few caller requests' worth of evidence.
//
// Thread safety: none; one thread (the controller's) observes and reads.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "scaling/callgraph.h"
#include "scaling/observation.h"

namespace prescale::scaling {

struct TopologyLearnerOptions {
  // Evidence from an interval weighs 2^(−age / half_life).
  Clock::Duration half_life{std::chrono::minutes(10)};
  // A learned edge is removed once it has had no calls for `edge_expiry` while its caller served
  // requests that, at the edge's last fan-out, should have made at least `min_expected_calls`
  // calls. A caller that serves nothing is no evidence that the edge is gone.
  Clock::Duration edge_expiry{std::chrono::minutes(10)};
  double min_expected_calls = 20;
  // A service missing from the snapshots this long is forgotten, with its edges.
  Clock::Duration service_expiry{std::chrono::minutes(10)};
  // A seeded fan-out counts as this many served caller requests of evidence.
  double seed_requests = 100;
};

// One learned edge and the evidence behind it. Both sums decay with the half-life; with calls
// roughly Poisson, 1 / sqrt(calls) approximates the fan-out's relative standard error.
struct LearnedEdge {
  CallEdge edge;               // fanout = calls / caller_requests
  double caller_requests = 0;  // requests of the caller behind the estimate (decayed)
  double calls = 0;            // calls behind it (decayed)
  int intervals = 0;           // scrape intervals in which the caller served requests
  bool seeded = false;         // started from the seed graph
  std::optional<Clock::TimePoint> last_call;  // scrape time of the latest interval with calls
};

class TopologyLearner {
 public:
  explicit TopologyLearner(TopologyLearnerOptions options = {},
                           std::optional<CallGraph> seed = std::nullopt);

  // Learns from the snapshot's latest scrape. A snapshot whose scrape time (the newest
  // window.sampled_at) did not advance changes nothing, unless it is more than kClockSetBack
  // behind the last one (a clock set back): learning goes on from there, the counters
  // re-baselined.
  void observe(const Snapshot& snapshot);

  // Edges with calls seen (or seeded) and not expired, ordered by caller, then callee name.
  std::vector<LearnedEdge> learned_edges() const;
  std::vector<CallEdge> edges() const;
  // Calls of `callee` per request served by `caller`; 0 for an unknown edge.
  double fanout(std::string_view caller, std::string_view callee) const;
  // Every known service (observed or seeded, not expired), by name.
  std::vector<std::string> services() const;
  // The learned graph, topologically ordered. Cycles in the observed calls are broken by
  // dropping, in each cycle found, the edge with the fewest (decayed) calls; `warnings` says
  // which. Errors: kNotFound before any service is known.
  Result<CallGraph> graph() const;

  // Everything learned, for a restarted platform to continue from (docs/state.md). Times are
  // stored relative to `now` and from_json() places them relative to its own `now`: evidence
  // does not age while nothing observes (the platform is down), and a monotonic clock that
  // restarted with the machine does not matter. from_json() replaces the learned services and
  // edges, keeping seeded edges the state does not mention. Errors: kInvalidArgument for a
  // malformed state (the learner is then unchanged).
  nlohmann::json to_json(Clock::TimePoint now) const;
  Result<void> from_json(const nlohmann::json& state, Clock::TimePoint now);

 private:
  struct ServiceTrack {
    bool observed = false;       // seen in a snapshot (seeded-only services never expire)
    Clock::TimePoint last_seen;  // scrape time of the latest snapshot that listed it
    // The served_total counter at `counted_at` (the last scrape that had a window for it).
    std::optional<double> served_total;
    Clock::TimePoint counted_at;
  };
  struct EdgeTrack {
    std::optional<double> calls_total;  // the counter at `counted_at` (a caller's scrape)
    Clock::TimePoint counted_at;
    double calls = 0, requests = 0;  // decayed sums
    Clock::TimePoint decayed_at;     // when the sums were last decayed
    Clock::TimePoint created;
    int intervals = 0;
    bool seeded = false;
    bool known = false;  // seeded or had calls: reported
    double span_ms = 0;  // from the seed
    std::optional<Clock::TimePoint> last_call;
    double expected_calls_since = 0;  // what the fan-out predicted since the last call
  };
  using EdgeKey = std::pair<std::string, std::string>;

  void decay(EdgeTrack& edge, Clock::TimePoint now) const;
  // A scrape at `now` far behind the last one (a clock set back): times ahead of it become it.
  void rewind(Clock::TimePoint now);
  void expire(Clock::TimePoint now);

  TopologyLearnerOptions options_;
  std::map<std::string, ServiceTrack, std::less<>> services_;
  std::map<EdgeKey, EdgeTrack> edges_;
  std::optional<Clock::TimePoint> last_scrape_;
};

}  // namespace prescale::scaling
