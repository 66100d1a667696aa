// What a controller sees of the world at one instant: the same fields whether the world is the
// simulator, local processes or Kubernetes. Every value is something a live controller could
// have scraped by then — never the future, never ground truth it could not measure.
//
// Two metric pipelines exist, as in real clusters:
//  - `ServiceObservation::window`: a metrics-server/Prometheus style scrape (default every 15 s),
//    rates and means over the scrape window, plus per-replica CPU as the HPA reads it;
//  - `ServiceObservation::last_second`: the per-second concurrency and request count that
//    Knative's autoscaler scrapes from its queue-proxies, and that Prescale's own controller uses
//    for its reactive floor.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"

namespace prescale::scaling {

enum class ReplicaState { kStarting, kReady, kDraining };

struct ReplicaObservation {
  std::string id;
  ReplicaState state = ReplicaState::kStarting;
  Clock::TimePoint started_at;                // when the replica started costing
  std::optional<Clock::TimePoint> ready_at;   // when it passed readiness; nullopt while starting
  // While draining: from when it has had no new requests (a pod out of its Service's endpoints,
  // past the time the gateway may still send it some); nullopt where the world does not tell,
  // read as now.
  std::optional<Clock::TimePoint> draining_since;
  // CPU used over the last metric window, as a fraction of the replica's CPU request
  // (1.0 = 100 %); nullopt when no sample exists yet (the HPA counts such a pod as missing).
  std::optional<double> cpu_utilization;
  Clock::TimePoint metric_time;               // end of that window
  Clock::Duration metric_window{std::chrono::seconds(30)};
  // Resident memory of the replica (its process group's in the local world), as last read;
  // nullopt where the world does not tell (the simulator) or before the first reading.
  std::optional<std::uint64_t> memory_bytes;
};

// A scrape further behind the last one than this (a few scrape windows) means the clock was set
// back, or the last one was stamped ahead: scrapes are not that late otherwise. The prescale
// policy and the learners it owns then go on from it, rather than ignoring every scrape until the
// clock reaches the stamp; a scrape less behind is late, and ignored.
inline constexpr Clock::Duration kClockSetBack = std::chrono::minutes(5);

// Whether a scrape at `sampled_at` is more than kClockSetBack behind the last one, at `last`.
inline bool clock_set_back(Clock::TimePoint last, Clock::TimePoint sampled_at) {
  return sampled_at < last - kClockSetBack;
}

// Aggregates over one scrape window [sampled_at - length, sampled_at].
struct WindowMetrics {
  Clock::TimePoint sampled_at;
  Clock::Duration length{0};          // 0 until the first scrape
  double arrival_rps = 0;             // requests arriving (counted by the caller or gateway)
  double served_rps = 0;              // requests completed
  double dropped_rps = 0;             // requests timed out or rejected
  // Requests completed slower than the service's latency SLO: what a latency histogram with a
  // bucket boundary at the SLO gives (rate of its +Inf bucket minus the SLO bucket).
  double slow_rps = 0;
  double concurrency = 0;             // mean requests in the service (queued + in service)
  double latency_p99_seconds = NAN;   // of the requests completed in the window; NaN if none
  double mean_cpu_utilization = NAN;  // over ready replicas; NaN if none
  // Requests completed since the start, as of the latest scrape (a Prometheus counter: it
  // restarts from 0 when the service does).
  double served_total = 0;
  // Seconds of traffic the rates were counted over: `length`, unless the world's clock runs
  // faster than its traffic (prescale up --time-scale); 0 means `length`. With arrival_rps it
  // gives the requests counted, and so the rates' counting noise.
  double traffic_seconds = 0;
  // Of arrival_rps, the requests from outside the call graph (clients rather than other
  // services); NaN when the world cannot tell. A service with callers that also has such
  // requests gets them forecast on their own (docs/prescale_policy.md).
  double external_rps = NAN;
};

// The last completed second.
struct SecondMetrics {
  Clock::TimePoint at;          // end of the second
  double concurrency = 0;       // mean requests in the service over that second
  double requests = 0;          // requests that arrived in that second
  bool valid = false;           // false before the first second has been observed
};

struct ServiceObservation {
  std::string name;
  int desired_replicas = 0;  // the last replica count the controller asked for
  std::vector<ReplicaObservation> replicas;
  WindowMetrics window;
  SecondMetrics last_second;

  int count(ReplicaState s) const {
    int n = 0;
    for (const auto& r : replicas) n += r.state == s ? 1 : 0;
    return n;
  }
};

// A caller -> callee edge: cumulative calls observed (prescale_calls_total), for learning the
// call graph.
struct EdgeObservation {
  std::string caller;
  std::string callee;
  double calls_total = 0;
};

struct Snapshot {
  Clock::TimePoint time;
  std::vector<ServiceObservation> services;
  std::vector<EdgeObservation> edges;

  const ServiceObservation* service(std::string_view name) const {
    for (const auto& s : services) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }
};

}  // namespace prescale::scaling
