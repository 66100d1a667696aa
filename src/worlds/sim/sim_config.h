// Configuration of the simulated world: the call graph, each service's queueing and lifecycle
// parameters, the time step and the metric pipeline. docs/simulator.md documents every field and
// the model behind it.
//
// Thread safety: plain values; the functions are pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/result.h"
#include "scaling/callgraph.h"
#include "scaling/policy.h"

namespace prescale::sim {

// A release that changes a service's speed while the world runs: from `at` (since the world's
// start) on, its mean service time is `mean_service_time_seconds`.
struct ServiceTimeChange {
  Clock::Duration at{0};
  double mean_service_time_seconds = 0;
};

struct SimServiceConfig {
  std::string name;  // a service of the graph; empty in SimConfig::service_defaults
  // Mean of the exponential service time of one request of cost 1, seconds. With exponential
  // service the p99 of an idle replica is ln(100) ≈ 4.6 × this, so it must be below SLO / 4.6.
  double mean_service_time_seconds = 0.02;
  int workers_per_replica = 4;  // requests one replica serves concurrently
  // Time from start (costing) to ready, drawn per replica uniformly from
  // startup_time × [1 − startup_jitter, 1 + startup_jitter] and rounded up to whole steps.
  Clock::Duration startup_time{std::chrono::seconds(60)};
  double startup_jitter = 0;  // fraction in [0, 1)
  // A replica being removed drains (costs, serves nothing new) this long before it is gone.
  Clock::Duration drain_time{std::chrono::seconds(2)};
  // A request that has waited this long without starting service is dropped.
  double request_timeout_seconds = 30;
  // Admission control in front of the service (0 = none): while it has ready replicas, a request
  // is refused at once (a 503, counted as dropped) when the queue already holds this many
  // seconds of work for them, so the requests it admits wait at most about this long. A gateway
  // capping each replica's concurrency (Knative's container-concurrency with a bounded queue),
  // sized to the latency target. With no ready replica requests wait, as for an activator.
  double queue_limit_seconds = 0;
  int min_replicas = 1;
  int max_replicas = 100;
  int initial_replicas = 1;  // ready at the start
  double slo_latency_p99_seconds = 0.2;
  // CPU of a replica with no work, as a fraction of its CPU request (runtime, GC, probes); a
  // fully busy replica uses 1.0. Starting and draining replicas use this much.
  double idle_cpu_utilization = 0.05;
  // Releases that change the service time, in order of `at`. Policies are not told: their
  // ServiceSpec keeps the capacity of the first service time (a capacity model must notice).
  std::vector<ServiceTimeChange> releases{};
};

struct SimConfig {
  scaling::CallGraph graph;
  // Parameters of every graph service not listed in `services` (its name filled in).
  SimServiceConfig service_defaults;
  // Per-service parameters, matched by name; every name must be a graph service.
  std::vector<SimServiceConfig> services;
  Clock::Duration step{std::chrono::seconds(1)};  // must divide 1 s or be whole seconds
  // Metric pipeline (multiples of `step`): metrics-server style scrape cadence and window.
  Clock::Duration scrape_interval{std::chrono::seconds(15)};
  Clock::Duration metric_window{std::chrono::seconds(30)};
  // Ground-truth records aggregate this many seconds (a multiple of `step`); 60 s gives the
  // per-minute results, `step` gives per-step records.
  Clock::Duration record_interval{std::chrono::seconds(60)};
  Clock::TimePoint start{};  // simulated time of trace step 0
  // Per-request traces: each request's cost multiplies the entry service's service time.
  bool use_request_costs = true;
  std::uint64_t seed = 1;  // startup jitter
};

// The parameters of each graph service, in graph order (defaults filled in). Errors
// (kInvalidArgument, naming the field): an unknown or duplicate service name, a non-positive
// service time, workers or timeout, min > initial or initial > max or min < 0, a jitter outside
// [0, 1), a step, scrape interval, window or record interval that is not a positive multiple of
// the step (or a step that neither divides 1 s nor is whole seconds), an empty graph.
Result<std::vector<SimServiceConfig>> resolve_services(const SimConfig& config);

// Per-replica capacity (req/s at cost 1) at which the service's p99 SLO is just met: the
// M/M/c sojourn p99 with c = workers_per_replica equals slo_latency_p99_seconds. Of the first
// service time; after a release, of `mean_service_time_seconds` given.
Result<double> capacity_rps(const SimServiceConfig& service);
Result<double> capacity_rps(const SimServiceConfig& service, double mean_service_time_seconds);

// What the harness tells policies about each service (ServiceSpec), in graph order.
Result<std::vector<scaling::ServiceSpec>> service_specs(const SimConfig& config);

// A world modelled on a prescale.yaml: its services (replica bounds, startup time, p99 SLO), the
// call graph of their depends_on (one call of each dependency per request), and for each
// service the mean service time at which capacity_rps() equals the file's capacity_rps. What the
// file does not say (workers, jitter, drain, timeout) comes from `defaults`. Errors:
// kInvalidArgument naming the service (no services; a dependency cycle; a capacity that the SLO
// makes unreachable).
Result<SimConfig> sim_config_from(const Config& config, const SimServiceConfig& defaults = {});

}  // namespace prescale::sim
