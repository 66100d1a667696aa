// Per-request discrete-event simulation: the cross-check of the time-stepped SimWorld on short
// windows (an hour). Same services, call graph, trace and — replayed from a time-stepped run —
// the same ready replicas over time, so only the queueing model differs: here every request is
// an individual with its own arrival (Poisson within each trace step, or the trace's own
// per-request arrival times), exponential service time × cost, a FIFO queue per service served
// by ready replicas × workers servers, and a timeout. Each request a service serves makes calls
// to its callees during its service (docs/simulator.md, "Discrete-event mode").
//
// Thread safety: pure function of its arguments.
#pragma once

#include <cstdint>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "forecast/trace.h"
#include "worlds/sim/recorder.h"
#include "worlds/sim/sim_config.h"

namespace prescale::sim {

// Ready replicas over time, per service in graph order.
struct ReplicaSchedule {
  std::vector<std::vector<ReadyChange>> ready;
};
// The schedule a time-stepped run followed.
ReplicaSchedule replica_schedule(const SimRecorder& recorder);

enum class FanoutCalls {
  // floor(f) calls, plus one more with probability f − floor(f): mean f, least variance.
  kStochasticRounding,
  kPoisson,  // Poisson(f) calls
};

struct DesOptions {
  std::uint64_t seed = 1;
  FanoutCalls calls = FanoutCalls::kStochasticRounding;
  Clock::Duration duration{0};  // 0: the trace's duration
};

// Runs the requests of `trace` through the services of `config` with the given replica schedule.
// Returns records at config.record_interval, as SimWorld's recorder: `served` counts completions
// and `queued_*` the requests in the service (waiting or in service); latency_p99_seconds is the
// empirical (nearest-rank) p99 of the completions; concurrency_seconds is not measured (0).
// Errors: those of service_specs(); a schedule whose service count differs from the graph's.
Result<SimRecorder> run_des(const SimConfig& config, const forecast::Trace& trace,
                            const ReplicaSchedule& schedule, const DesOptions& options = {});

}  // namespace prescale::sim
