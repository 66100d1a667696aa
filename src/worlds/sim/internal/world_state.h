// The simulated world's state, shared by sim_world.cc (stepping, replicas, actions) and
// sim_metrics.cc (records, scrapes, observations). Not part of the public API.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "worlds/sim/internal/service_queue.h"
#include "worlds/sim/queueing.h"
#include "worlds/sim/sim_world.h"

namespace prescale::sim {
namespace internal {

using scaling::ReplicaState;
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
inline constexpr size_t kNoIndex = std::numeric_limits<size_t>::max();

struct Replica {
  std::string id;
  uint32_t serial = 0;
  ReplicaState state = ReplicaState::kStarting;
  int64_t started_step = 0;  // negative for the replicas that were up before the start
  int64_t ready_step = kNever;
  int64_t drain_step = kNever;
  int64_t gone_step = kNever;
};

// One step of the metric window.
struct WindowSlot {
  double arrived = 0, served = 0, dropped = 0, concurrency_seconds = 0;
  double served_within_slo = 0;
  // The step's latency components live at `components_slot` (this slot, or for a step that
  // repeated its predecessor exactly, the slot of the step it repeats; before a step that
  // differs overwrites that slot, its components move to the oldest repeat still in the
  // window, and the repeats point there).
  std::uint32_t components_slot = 0;
  int component_count = 0;
};

struct Edge {
  size_t caller = 0, callee = 0;
  double fanout = 0;
  double calls_total = 0;  // made so far
};

struct Service {
  Service(SimServiceConfig c, double dt, CostMix costs)
      : cfg(std::move(c)),
        queue(cfg.mean_service_time_seconds, cfg.request_timeout_seconds,
              cfg.slo_latency_p99_seconds, dt, std::move(costs), cfg.queue_limit_seconds),
        components_per_step(queue.max_components()) {}

  SimServiceConfig cfg;
  ServiceQueue queue;
  size_t components_per_step;  // window_components holds this many per slot
  bool entry = false;
  std::vector<size_t> out_edges;
  double inbound = 0;  // calls received this step
  // Requests completed so far; each scrape copies it to WindowMetrics::served_total.
  double served_total = 0;

  std::vector<Replica> replicas;  // in creation order (serials increase)
  int desired = 0, starting = 0, ready = 0, draining = 0;
  int64_t next_transition = kNever;
  // The next release (cfg.releases[next_release]) and the step it applies from.
  size_t next_release = 0;
  int64_t release_step = kNever;
  uint32_t next_serial = 1;
  // Bumped on every replica or scrape change; the snapshot rebuilds replicas when it moves.
  uint64_t replicas_version = 1, observed_version = 0;

  // Metric pipeline: the last `window_steps` steps, and the running sum of the ready replicas'
  // busy fraction (slot k % (window_steps + 1) holds the sum over steps < k).
  std::vector<WindowSlot> window;
  std::vector<LatencyComponent> window_components;
  std::uint32_t components_slot = 0;  // where the last distinct step's components are
  std::vector<double> busy_sum;
  double second_arrived = 0, second_concurrency_seconds = 0;
  scaling::SecondMetrics last_second;
  scaling::WindowMetrics scraped;
  std::vector<std::pair<uint32_t, double>> cpu_samples;  // by serial, at the last scrape

  // The record interval being accumulated.
  IntervalRecord interval;
  std::vector<LatencyComponent> interval_components;
  size_t merged_at = kNoIndex;  // where the last step's single component was merged
};

// Adds `c` to a small mixture, merging it with a recent component of (nearly) the same shape;
// returns the index it went to.
size_t merge_into(std::vector<LatencyComponent>& mix, const LatencyComponent& c);

}  // namespace internal

struct SimWorld::Impl {
  using Service = internal::Service;
  using Edge = internal::Edge;
  SimConfig config;
  forecast::Trace trace;
  std::vector<SimServiceConfig> resolved;
  std::vector<scaling::ServiceSpec> specs;
  std::vector<Service> services;
  std::vector<Edge> edges;
  double dt = 1;  // step, seconds
  int64_t step = 0;
  int64_t window_steps = 30, scrape_steps = 15, interval_steps = 60;
  int64_t steps_per_second = 1;  // 0 when a step is longer than a second
  // step modulo the ring and period lengths, kept as counters (no division per step).
  size_t window_slot = 0;  // step % window_steps
  size_t busy_slot = 0;    // step % (window_steps + 1)
  int64_t second_phase = 0, scrape_phase = 0, interval_phase = 0;
  size_t next_arrival = 0;  // per-request traces: the first arrival not yet delivered
  std::mt19937_64 rng;
  SimRecorder recorder;
  bool replayable = false;  // the last step can be repeated as is
  double last_entry_arrivals = -1, last_entry_cost = 1;
  internal::StepOutcome out;
  std::vector<LatencyComponent> scratch;
  scaling::Snapshot snapshot;

  Clock::TimePoint time(int64_t k) const { return config.start + k * config.step; }

  void trace_arrivals(int64_t k, double& count, double& cost);
  void run_step();
  // Releases: when the service's next one applies, and applying those due at step k.
  void schedule_release(Service& sv);
  void release(Service& sv, int64_t k);
  // Identical steps (every service at rest, same inputs) are replayed in bulk: how many of the
  // next steps up to `target` can be, and replaying them.
  int64_t replay_length(int64_t target) const;
  void replay(int64_t n);
  void end_steps(int64_t n);
  void advance(int64_t target);
  void transitions(size_t s, int64_t k);
  void recount(size_t s);
  // Records n identical steps from `step` on; `repeated`: the first equals the step before.
  void record(Service& sv, const internal::StepOutcome& o, int servers, int64_t n, bool repeated);
  void scrape();
  void close_interval();
  void add_replica(size_t s);
  void remove_replica(size_t s, size_t i);
};

}  // namespace prescale::sim
