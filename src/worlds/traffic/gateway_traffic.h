// Gateway traffic: the request figures of a Snapshot, from what the gateway counts. The local
// world reads its in-process gateway's registry; the Kubernetes world scrapes every gateway pod's
// /metrics. Both turn the counters into the same figures the same way:
//   arrivals   prescale_calls_total{callee=<service>} (every caller, external too); the call
//              graph's edges from the same family's caller label;
//   served, failed, latency p99, slow (over the SLO)   prescale_requests_total and
//              prescale_request_duration_seconds of the routes leading to the service — what its
//              callers experienced (p99 and the slow share interpolated within histogram buckets,
//              as Prometheus' histogram_quantile does); failed = 5xx answers;
//   concurrency  the growth of prescale_gateway_route_busy_seconds_total of the service's routes
//              per second: the mean requests in flight, queued inside a replica included;
//   ejections  prescale_gateway_ejections_total{service}.
//
// Thread safety: values; a TrafficWindow is used from one thread.
#pragma once

#include <deque>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "scaling/observation.h"
#include "telemetry/scrape_query.h"
#include "telemetry/snapshot.h"

namespace prescale::traffic {

// What gateways counted for one service, cumulative.
struct GatewayCounts {
  double arrivals = 0;   // prescale_calls_total{callee}
  double external = 0;   // of which from outside the call graph (caller="external")
  double responses = 0;  // prescale_requests_total of the service's routes
  double errors = 0;     // of which 5xx
  double ejections = 0;  // prescale_gateway_ejections_total{service}
  // The seconds the service's requests have spent in the gateway, those in flight up to the
  // read; its rate is the concurrency.
  double busy_seconds = 0;
  telemetry::HistogramData latency;  // the answered requests' latencies, summed over routes
};

// What one read of the gateways gives: counts per service, and calls per caller -> callee edge.
struct GatewayReading {
  std::map<std::string, GatewayCounts> services;
  std::map<std::pair<std::string, std::string>, double> edges;
};

// Adds what one gateway exposes (its registry's families, or a scrape's as
// telemetry::to_snapshots gives them) to `reading`. `route_service` maps the gateway's route
// labels to the service each leads to; routes it does not name are left out.
void add_gateway(std::span<const telemetry::FamilySnapshot> families,
                 const std::map<std::string, std::string>& route_service, GatewayReading& reading);

// How much each counter of `now` grew since `before`, both read from one gateway: a counter that
// went down restarted with its process, and counts from zero, as PromQL's increase() takes it.
GatewayReading growth(const GatewayReading& now, const GatewayReading& before);
// Whether a counter of `now` is below the same counter of `before` (the gateway's process
// restarted), summed over services: arrivals and answers.
bool went_down(const GatewayReading& now, const GatewayReading& before);
// Adds `more` to `total`, counter by counter and bucket by bucket.
void add(GatewayReading& total, const GatewayReading& more);
void add(GatewayCounts& total, const GatewayCounts& more);

// The call graph's edges, as the policies read them.
std::vector<scaling::EdgeObservation> edges_of(const GatewayReading& reading);

// What happened to one service between two reads.
struct RequestDelta {
  double arrived = 0, external = 0, answered = 0, failed = 0, served = 0, slow = 0, ejected = 0;
  double busy_seconds = 0;  // spent in flight, answered or not
  double p99_seconds = NAN;
};
RequestDelta request_delta(double slo_latency_seconds, const GatewayCounts& now,
                           const GatewayCounts& base);

// One service's reads over the last metric window, and what they say. Each read is stamped with
// the real time of its traffic and the controller's time (the two differ when the controller's
// clock runs faster than the traffic, as `prescale up --time-scale`). Rates are per real second.
class TrafficWindow {
 public:
  TrafficWindow(double slo_latency_seconds, Clock::Duration metric_window)
      : slo_(slo_latency_seconds), metric_window_(metric_window) {}

  // A new SLO: the requests of the next read on, and the window's (fill()) at once, are counted
  // as slow by it.
  void set_slo(double slo_latency_seconds) { slo_ = slo_latency_seconds; }

  // What a service added while the gateway runs counts from: the gateway's counts now (those of
  // route labels that counted for it before it was removed, say) are not its new requests.
  void start_from(Clock::TimePoint real, Clock::TimePoint now, const GatewayCounts& counts) {
    samples_.assign(1, Sample{real, now, counts});
    last_ = counts;
  }
  // Counters that count for the service from now on (a route label handed to it from a service
  // removed) counted `counted` so far: added to every read kept, so that what they counted
  // before is not taken for its new requests, and the window's figures stay what they were.
  void add_to_base(const GatewayCounts& counted);
  // Records a read; returns what happened since the previous one (since zero for the first: the
  // gateway started with the world; since start_from()'s counts).
  RequestDelta record(Clock::TimePoint real, Clock::TimePoint now, const GatewayCounts& counts);
  // The last real second: arrivals, and concurrency from the busy seconds, from the newest read
  // a real second back (or the window's base, when the window is shorter than a real second).
  scaling::SecondMetrics last_second(Clock::TimePoint now, Clock::TimePoint real_now) const;
  // Sets the request figures of `w` (rates, p99, concurrency, served_total, the window's span)
  // over the window as of the last read; CPU is the caller's.
  void fill(scaling::WindowMetrics& w, Clock::TimePoint now, Clock::TimePoint real_now) const;

 private:
  struct Sample {
    Clock::TimePoint real, now;
    GatewayCounts counts;
  };
  double slo_;
  Clock::Duration metric_window_;
  // Every read since the window's base, oldest first: the first is that base (the newest at
  // least metric_window old, once there is one); the last second's is among them.
  std::deque<Sample> samples_;
  GatewayCounts last_;
  double served_total_ = 0;
};

}  // namespace prescale::traffic
