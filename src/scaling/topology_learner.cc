#include "scaling/topology_learner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "core/state_json.h"

namespace prescale::scaling {

namespace {

double seconds_between(Clock::TimePoint from, Clock::TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

// Saved times are ages before the saving `now` (core/state_json.h).
using state_json::age_ns;
using state_json::at_age;
using state_json::optional_age;
using state_json::optional_at;
nlohmann::json optional_number(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}
std::optional<double> number_or_none(const nlohmann::json& v) {
  if (v.is_null()) return std::nullopt;
  return v.get<double>();
}

std::string describe(const CallEdge& e) { return e.caller + " -> " + e.callee; }

// A cycle as edge indices e0, e1, ... (each edge's callee is the next one's caller), or empty.
// Services and their out-edges are visited in name order, so the same edges give the same cycle.
std::vector<size_t> find_cycle(const std::vector<LearnedEdge>& edges) {
  std::map<std::string_view, std::vector<size_t>> out;
  for (size_t i = 0; i < edges.size(); ++i) {
    out[edges[i].edge.caller].push_back(i);
    out.try_emplace(edges[i].edge.callee);
  }
  enum class Color { kWhite, kGrey, kBlack };
  std::map<std::string_view, Color> color;
  for (const auto& [name, unused] : out) color[name] = Color::kWhite;
  std::vector<size_t> path;  // edges from the DFS root to the current service
  std::vector<size_t> cycle;
  auto visit = [&](auto& self, std::string_view v) -> void {
    color[v] = Color::kGrey;
    for (size_t e : out.at(v)) {
      if (!cycle.empty()) return;
      const std::string_view w = edges[e].edge.callee;
      if (color[w] == Color::kGrey) {
        // The cycle starts at the path edge leaving w.
        auto first = std::find_if(path.begin(), path.end(),
                                  [&](size_t p) { return edges[p].edge.caller == w; });
        cycle.assign(first, path.end());
        cycle.push_back(e);
        return;
      }
      if (color[w] == Color::kWhite) {
        path.push_back(e);
        self(self, w);
        path.pop_back();
      }
    }
    color[v] = Color::kBlack;
  };
  for (const auto& [name, unused] : out) {
    if (cycle.empty() && color[name] == Color::kWhite) visit(visit, name);
  }
  return cycle;
}

}  // namespace

TopologyLearner::TopologyLearner(TopologyLearnerOptions options, std::optional<CallGraph> seed)
    : options_(options) {
  if (!seed) return;
  for (const auto& name : seed->services) services_.try_emplace(name);
  for (const auto& e : seed->edges) {
    if (e.caller == e.callee || !(e.fanout >= 0)) continue;
    services_.try_emplace(e.caller);
    services_.try_emplace(e.callee);
    EdgeTrack& edge = edges_[{e.caller, e.callee}];
    edge.requests = options_.seed_requests;
    edge.calls = e.fanout * options_.seed_requests;
    edge.seeded = edge.known = true;
    edge.span_ms = e.mean_callee_span_ms;
  }
}

void TopologyLearner::decay(EdgeTrack& edge, Clock::TimePoint now) const {
  if (now <= edge.decayed_at) return;
  const double half_life = std::chrono::duration<double>(options_.half_life).count();
  const double keep =
      half_life > 0 ? std::exp2(-seconds_between(edge.decayed_at, now) / half_life) : 0.0;
  edge.calls *= keep;
  edge.requests *= keep;
  edge.decayed_at = now;
}

void TopologyLearner::observe(const Snapshot& snapshot) {
  std::optional<Clock::TimePoint> scrape;
  for (const auto& s : snapshot.services) {
    if (s.window.length > Clock::Duration::zero()) {
      scrape = std::max(scrape.value_or(s.window.sampled_at), s.window.sampled_at);
    }
  }
  if (!scrape) return;
  const Clock::TimePoint now = *scrape;
  // A scrape far behind the last one: the clock was set back, or the last was stamped ahead (else
  // every scrape would be ignored until the clock reached that stamp). A little behind: late.
  const bool set_back = last_scrape_ && clock_set_back(*last_scrape_, now);
  if (last_scrape_ && now <= *last_scrape_ && !set_back) return;
  if (set_back) rewind(now);
  if (!last_scrape_) {
    // Seeded evidence ages from the first scrape, not from whenever the learner was built.
    for (auto& [key, edge] : edges_) edge.created = edge.decayed_at = now;
  }
  last_scrape_ = now;

  // What each caller served since its previous scrape, for the edges to divide by.
  struct CallerInterval {
    bool paired = false;  // a previous count exists: `served` is a delta
    bool reset = false;   // the counter went down (the service restarted)
    double served = 0;
    double window_estimate = 0;  // served_rps × the interval, to bound a reset's weight
    Clock::TimePoint previous_at, counted_at;
  };
  std::unordered_map<std::string_view, CallerInterval> intervals;
  for (const auto& s : snapshot.services) {
    ServiceTrack& track = services_[s.name];
    track.observed = true;
    track.last_seen = now;
    const WindowMetrics& w = s.window;
    if (w.length <= Clock::Duration::zero()) continue;
    // A broken sample (NaN) is skipped, baseline kept: stored, it would poison every delta.
    if (!std::isfinite(w.served_total)) continue;
    if (track.served_total && w.sampled_at <= track.counted_at) continue;  // no new scrape
    CallerInterval interval;
    interval.counted_at = w.sampled_at;
    if (track.served_total) {
      interval.paired = true;
      interval.previous_at = track.counted_at;
      interval.served = w.served_total - *track.served_total;
      if (interval.served < 0) {
        // Prometheus' rule: a counter that went down restarted from 0 since the last scrape.
        interval.reset = true;
        interval.served = w.served_total;
      }
      interval.window_estimate = w.served_rps * seconds_between(track.counted_at, w.sampled_at);
    }
    track.served_total = w.served_total;
    track.counted_at = w.sampled_at;
    intervals.emplace(s.name, interval);
  }

  auto learn = [&](EdgeTrack& edge, const CallerInterval& interval, double calls) {
    double served = interval.served;
    if (interval.reset && interval.window_estimate > 0 && served > interval.window_estimate) {
      // After a reset of a counter summed over replicas, the "delta" can hold the other
      // replicas' whole history; keep the interval's ratio but only an interval's weight.
      const double scale = interval.window_estimate / served;
      served *= scale;
      calls *= scale;
    }
    decay(edge, now);
    const double before = edge.requests > 0 ? edge.calls / edge.requests : 0.0;
    if (calls > 0) {
      edge.known = true;
      edge.last_call = now;
      edge.expected_calls_since = 0;
    } else if (!edge.known) {
      // Not called since it was listed (or since its estimate was forgotten): requests served
      // meanwhile are not evidence of a small fan-out; it is learned from its first call on.
      return;
    } else {
      edge.expected_calls_since += served * before;
    }
    // Calls with no served requests to divide by (a world that does not export served_total,
    // or requests still running at the scrape) show the edge is alive but teach no fan-out.
    if (served <= 0) return;
    edge.calls += calls;
    edge.requests += served;
    ++edge.intervals;
  };

  std::set<EdgeKey> listed;
  for (const auto& e : snapshot.edges) {
    if (e.caller == e.callee) continue;  // a self-call does not move load between services
    auto it = intervals.find(e.caller);
    if (it == intervals.end()) continue;  // keep the baseline that pairs with the caller's
    const CallerInterval& interval = it->second;
    EdgeKey key{e.caller, e.callee};
    listed.insert(key);
    if (!std::isfinite(e.calls_total)) continue;  // a broken sample: skipped, baseline kept
    auto [slot, inserted] = edges_.try_emplace(key);
    EdgeTrack& edge = slot->second;
    if (inserted) edge.created = edge.decayed_at = now;
    std::optional<double> calls;
    if (interval.paired) {
      if (!edge.calls_total) {
        // A series absent at the caller's previous scrape started counting since then.
        calls = e.calls_total;
      } else if (edge.counted_at == interval.previous_at) {
        double delta = e.calls_total - *edge.calls_total;
        const bool reset = delta < 0;
        if (reset) delta = e.calls_total;
        // Only one of the two counters restarting means they no longer cover the same
        // interval; that interval is skipped.
        if (reset == interval.reset) calls = delta;
      }
      // Otherwise the edge was missing from some scrapes: re-baseline rather than guess.
    }
    edge.calls_total = e.calls_total;
    edge.counted_at = interval.counted_at;
    if (calls) learn(edge, interval, std::max(*calls, 0.0));
  }
  // Edges of a scraped caller that the snapshot no longer lists made no calls.
  for (auto it = edges_.begin(); it != edges_.end();) {
    auto caller = intervals.find(it->first.first);
    if (listed.contains(it->first) || caller == intervals.end()) {
      ++it;
      continue;
    }
    if (!it->second.known) {
      it = edges_.erase(it);  // never called: nothing to remember
      continue;
    }
    if (caller->second.paired) learn(it->second, caller->second, 0);
    // Absent from this scrape: if it comes back, it is a new series counting from 0.
    it->second.calls_total.reset();
    ++it;
  }
  expire(now);
}

void TopologyLearner::rewind(Clock::TimePoint now) {
  // What was learned is kept; the times ahead of `now` become `now`, so the decayed sums age from
  // here (never by a negative age), and silences and absences count from here.
  for (auto& [name, t] : services_) {
    t.last_seen = std::min(t.last_seen, now);
    if (t.counted_at > now) {
      // How long ago the counter was read is unknown, and a reset's delta needs that to be
      // bounded: the next value is a new baseline, for the caller's edges too.
      t.served_total.reset();
      t.counted_at = now;
    }
  }
  for (auto& [key, e] : edges_) {
    e.counted_at = std::min(e.counted_at, now);
    e.decayed_at = std::min(e.decayed_at, now);
    e.created = std::min(e.created, now);
    if (e.last_call) e.last_call = std::min(*e.last_call, now);
  }
}

void TopologyLearner::expire(Clock::TimePoint now) {
  std::set<std::string, std::less<>> gone;
  for (auto it = services_.begin(); it != services_.end();) {
    if (it->second.observed && now - it->second.last_seen >= options_.service_expiry) {
      gone.insert(it->first);
      it = services_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = edges_.begin(); it != edges_.end();) {
    EdgeTrack& e = it->second;
    if (gone.contains(it->first.first)) {
      // Its caller's served count is forgotten too: a return re-baselines both.
      it = edges_.erase(it);
      continue;
    }
    const bool callee_gone = gone.contains(it->first.second);
    if (callee_gone || (e.known && now - e.last_call.value_or(e.created) >= options_.edge_expiry &&
                        e.expected_calls_since >= options_.min_expected_calls)) {
      // Forget the estimate (its callee is gone, or it has not been called for edge_expiry) but
      // keep the counter: a series still listed, its count flat or not, must not come back as
      // "new" with its whole history as one interval's calls.
      EdgeTrack baseline;
      baseline.calls_total = e.calls_total;
      baseline.counted_at = e.counted_at;
      baseline.created = baseline.decayed_at = now;
      e = baseline;
    }
    ++it;
  }
}

std::vector<LearnedEdge> TopologyLearner::learned_edges() const {
  std::vector<LearnedEdge> out;
  for (const auto& [key, e] : edges_) {
    if (!e.known) continue;
    LearnedEdge learned;
    learned.edge = {key.first, key.second, e.requests > 0 ? e.calls / e.requests : 0.0, e.span_ms};
    learned.caller_requests = e.requests;
    learned.calls = e.calls;
    learned.intervals = e.intervals;
    learned.seeded = e.seeded;
    learned.last_call = e.last_call;
    out.push_back(std::move(learned));
  }
  return out;
}

std::vector<CallEdge> TopologyLearner::edges() const {
  std::vector<CallEdge> out;
  for (auto& learned : learned_edges()) out.push_back(std::move(learned.edge));
  return out;
}

double TopologyLearner::fanout(std::string_view caller, std::string_view callee) const {
  auto it = edges_.find(EdgeKey{std::string(caller), std::string(callee)});
  if (it == edges_.end() || !it->second.known || !(it->second.requests > 0)) return 0;
  return it->second.calls / it->second.requests;
}

std::vector<std::string> TopologyLearner::services() const {
  std::vector<std::string> out;
  for (const auto& [name, unused] : services_) out.push_back(name);
  return out;
}

Result<CallGraph> TopologyLearner::graph() const {
  if (services_.empty()) {
    return make_error(ErrorCode::kNotFound, "no services observed or seeded yet");
  }
  std::vector<LearnedEdge> kept = learned_edges();
  std::vector<std::string> warnings;
  for (std::vector<size_t> cycle = find_cycle(kept); !cycle.empty(); cycle = find_cycle(kept)) {
    // The back edge of the dominant direction of traffic carries the fewest calls; ties go to
    // the first in the cycle's order, which find_cycle keeps deterministic.
    size_t weakest = cycle.front();
    for (size_t e : cycle) {
      if (kept[e].calls < kept[weakest].calls) weakest = e;
    }
    std::string path;
    for (size_t e : cycle) path += kept[e].edge.caller + " -> ";
    path += kept[cycle.front()].edge.caller;
    char calls[32];
    std::snprintf(calls, sizeof calls, "%.4g", kept[weakest].calls);
    warnings.push_back("dropped " + describe(kept[weakest].edge) + " (" + calls +
                       " recent calls) to break the cycle " + path);
    kept.erase(kept.begin() + static_cast<std::ptrdiff_t>(weakest));
  }
  std::vector<CallEdge> edges;
  for (auto& learned : kept) edges.push_back(std::move(learned.edge));
  auto graph = make_callgraph(std::move(edges), services());
  if (!graph) return graph;
  graph->warnings.insert(graph->warnings.begin(), warnings.begin(), warnings.end());
  return graph;
}

nlohmann::json TopologyLearner::to_json(Clock::TimePoint now) const {
  nlohmann::json services = nlohmann::json::array();
  for (const auto& [name, t] : services_) {
    services.push_back({{"name", name},
                        {"observed", t.observed},
                        {"last_seen_age_ns", age_ns(now, t.last_seen)},
                        {"served_total", optional_number(t.served_total)},
                        {"counted_at_age_ns", age_ns(now, t.counted_at)}});
  }
  nlohmann::json edges = nlohmann::json::array();
  for (const auto& [key, e] : edges_) {
    edges.push_back({{"caller", key.first},
                     {"callee", key.second},
                     {"calls_total", optional_number(e.calls_total)},
                     {"counted_at_age_ns", age_ns(now, e.counted_at)},
                     {"calls", e.calls},
                     {"requests", e.requests},
                     {"decayed_at_age_ns", age_ns(now, e.decayed_at)},
                     {"created_age_ns", age_ns(now, e.created)},
                     {"intervals", e.intervals},
                     {"seeded", e.seeded},
                     {"known", e.known},
                     {"span_ms", e.span_ms},
                     {"last_call_age_ns", optional_age(now, e.last_call)},
                     {"expected_calls_since", e.expected_calls_since}});
  }
  return {{"last_scrape_age_ns", optional_age(now, last_scrape_)},
          {"services", std::move(services)},
          {"edges", std::move(edges)}};
}

Result<void> TopologyLearner::from_json(const nlohmann::json& state, Clock::TimePoint now) {
  std::map<std::string, ServiceTrack, std::less<>> services;
  std::map<EdgeKey, EdgeTrack> edges;
  std::optional<Clock::TimePoint> last_scrape;
  try {
    for (const auto& j : state.at("services")) {
      ServiceTrack t;
      t.observed = j.at("observed").get<bool>();
      t.last_seen = at_age(now, j.at("last_seen_age_ns"));
      t.served_total = number_or_none(j.at("served_total"));
      t.counted_at = at_age(now, j.at("counted_at_age_ns"));
      services.insert_or_assign(j.at("name").get<std::string>(), t);
    }
    for (const auto& j : state.at("edges")) {
      EdgeTrack e;
      e.calls_total = number_or_none(j.at("calls_total"));
      e.counted_at = at_age(now, j.at("counted_at_age_ns"));
      e.calls = j.at("calls").get<double>();
      e.requests = j.at("requests").get<double>();
      e.decayed_at = at_age(now, j.at("decayed_at_age_ns"));
      e.created = at_age(now, j.at("created_age_ns"));
      e.intervals = j.at("intervals").get<int>();
      e.seeded = j.at("seeded").get<bool>();
      e.known = j.at("known").get<bool>();
      e.span_ms = j.at("span_ms").get<double>();
      e.last_call = optional_at(now, j.at("last_call_age_ns"));
      e.expected_calls_since = j.at("expected_calls_since").get<double>();
      EdgeKey key{j.at("caller").get<std::string>(), j.at("callee").get<std::string>()};
      // Sums that are no fan-out: graph() could not build a CallGraph with the edge, and the
      // whole learned graph would be lost, not this edge.
      auto amount = [](double v) { return v >= 0 && std::isfinite(v); };
      if (!amount(e.calls) || !amount(e.requests) || !amount(e.span_ms) ||
          !(e.requests == 0 || std::isfinite(e.calls / e.requests))) {
        return make_error(ErrorCode::kInvalidArgument,
                          "topology state: edge " + key.first + " -> " + key.second +
                              ": calls, requests and span_ms must be finite and >= 0");
      }
      edges.insert_or_assign(std::move(key), e);
    }
    last_scrape = optional_at(now, state.at("last_scrape_age_ns"));
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, std::string("topology state: ") + e.what());
  }
  // Seeded edges (and their services) that the state does not know: the config gained them.
  for (const auto& [key, e] : edges_) {
    if (!e.seeded || edges.contains(key)) continue;
    EdgeTrack seeded = e;
    // Seeded evidence ages from the first scrape, which the restored state has already seen.
    if (last_scrape) seeded.created = seeded.decayed_at = *last_scrape;
    edges.emplace(key, seeded);
    services.try_emplace(key.first);
    services.try_emplace(key.second);
  }
  for (const auto& [name, t] : services_) {
    if (!t.observed) services.try_emplace(name, t);
  }
  services_ = std::move(services);
  edges_ = std::move(edges);
  last_scrape_ = last_scrape;
  return {};
}

}  // namespace prescale::scaling
