// The evaluation harness: replays one trace through the simulated world once per policy, each
// run driven by the same Controller loop the live worlds use (a ManualClock stands in for time),
// and compares what each policy achieved and spent with the oracle's perfect-foresight cost.
//
// Every run starts from the same state: each service has the replicas the oracle's schedule
// holds at the first step (enough for the load at the start and for what arrives within one
// startup time), ready for ten minutes. Runs are independent and deterministic; they execute on
// worker threads, one policy per thread. docs/simulator.md ("## Experiments") documents the
// harness; docs/cli.md the `prescale sim` command built on it.
//
// Thread safety: run_experiment() may be called from any thread; it calls `progress` from its
// worker threads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/event.h"
#include "core/result.h"
#include "forecast/trace.h"
#include "scaling/aws_predictive.h"
#include "scaling/baseline_policies.h"
#include "scaling/policy.h"
#include "scaling/prescale_policy.h"
#include "worlds/sim/recorder.h"
#include "worlds/sim/sim_config.h"
#include "worlds/sim/sim_results.h"

namespace prescale::sim {

// The policies the harness can build, in the order results are usually shown: Prescale's, the
// baselines, and the Prescale ablations (docs/prescale_policy.md): without the call graph (each
// service forecast on its own load), planning at the P50 instead of the P90, without the
// reactive floor, with the configured capacity instead of the learned one.
inline constexpr std::string_view kPolicyNames[] = {"prescale",
                                                    "hpa",
                                                    "kpa",
                                                    "aws",
                                                    "static",
                                                    "oracle",
                                                    "prescale-no-topology",
                                                    "prescale-p50",
                                                    "prescale-no-floor",
                                                    "prescale-fixed-capacity"};

// How each policy is configured (each policy's own defaults unless changed).
struct PolicySettings {
  scaling::HpaPolicyOptions hpa;
  scaling::KpaPolicyOptions kpa;
  scaling::AwsPredictiveOptions aws;
  double static_headroom = 1.0;             // static replicas = ceil(peak × headroom / capacity)
  scaling::PrescalePolicyOptions prescale;  // the ablations change one field of it
};

// What a prescale.yaml's `policy` section sets of the policies' settings: the prescale policy's
// planning quantile, its scale-down delay and, with `steer_to_slo`, its error budget — the
// tightest of the services' `slo.error_budget` (one budget steers the one planning level).
void apply_policy_config(const PolicyConfig& policy, const std::vector<ServiceConfig>& services,
                         PolicySettings& settings);

struct ExperimentOptions {
  // The world. The harness overrides every service's initial_replicas (see above); everything
  // else (graph, service parameters, step, metric pipeline, start) is used as given.
  SimConfig sim;
  std::vector<std::string> policies;  // names from kPolicyNames, each at most once
  PolicySettings settings;
  ResultOptions results;
  // Per-minute demand (req/s, 60 s steps) of services before the trace starts, ending at
  // sim.start: what the prescale policies (and their ablations) start with, as a platform
  // seeded or restored from its state does. Other policies start without history.
  std::map<std::string, forecast::Series> history;
  int threads = 0;  // worker threads; 0 = one per core
  // Keep each run's per-interval records and scaling events (PolicyRun::recorder, ::events),
  // for a timeline of the run (`prescale sim --timeline`). Off: only the totals are kept.
  bool keep_timeline = false;
  // Called from worker threads with a run's index in `policies` and the share of the trace it
  // has simulated, in [0, 1]; about a hundred calls per run. Must be thread-safe.
  std::function<void(size_t run, double done)> progress;
};

struct PolicyRun {
  std::string policy;
  SimResults results;
  // results.total.replica_hours / the oracle's replica-hours on the same world; NaN when the
  // oracle spent nothing.
  double cost_ratio_to_oracle = 0;
  int scale_actions = 0;                   // replica-count changes the controller applied
  std::vector<int> service_scale_actions;  // the same per service, in results.services order
  // Mean replicas (starting + ready + draining, all services) per record interval.
  std::vector<double> replicas;
  double wall_seconds = 0;  // real time the run took
  // With ExperimentOptions::keep_timeline: the run's records per service and interval, and every
  // replica-count change the controller applied (time, service, from, to, reason), in order.
  SimRecorder recorder;
  std::vector<control::Event> events;
};

struct ExperimentResult {
  std::vector<scaling::ServiceSpec> specs;  // what policies were told, in graph order
  std::vector<int> initial_replicas;        // per service, in graph order
  double oracle_replica_hours = 0;
  double record_interval_seconds = 0;
  std::vector<double> load_rps;  // arrivals at the entry services per record interval, req/s
  std::vector<PolicyRun> runs;   // in options.policies order
};

// The names run_experiment() takes: at least one, each from kPolicyNames, none twice. Errors
// (kInvalidArgument) name the policy and list the known ones.
Result<void> check_policy_names(const std::vector<std::string>& policies);

// Runs every policy on `trace`. Errors (kInvalidArgument): those of check_policy_names(), an empty
// trace, and those of SimWorld::create() and of the policies' options.
Result<ExperimentResult> run_experiment(const ExperimentOptions& options,
                                        const forecast::Trace& trace);

// Everything a policy may be built from: the trace only reaches the static policy (its peak)
// and the oracle (its future).
struct PolicyContext {
  const forecast::Trace* trace = nullptr;
  const scaling::CallGraph* graph = nullptr;
  Clock::TimePoint start{};
  Clock::Duration step{std::chrono::seconds(1)};  // the simulation step
  // Releases (SimServiceConfig::releases), per service in graph order: (seconds since the start,
  // factor) — from then on a request takes `factor` times the share of a replica it took at the
  // start. The oracle plans with them; empty: none.
  std::vector<std::vector<std::pair<double, double>>> demand_factors;
};

// Builds the named policy. Errors: kInvalidArgument for an unknown name (listing the known ones)
// or invalid options.
Result<std::unique_ptr<scaling::Policy>> make_policy(std::string_view name,
                                                     const PolicySettings& settings,
                                                     const PolicyContext& context);

}  // namespace prescale::sim
