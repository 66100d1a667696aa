// The metric pipeline and ground truth of SimWorld: per-step records into the window rings and
// the record interval, the metrics-server style scrape, and the Snapshot a controller observes.
#include <algorithm>
#include <cmath>

#include "worlds/sim/internal/world_state.h"

namespace prescale::sim {

using internal::Edge;
using internal::kNever;
using internal::kNoIndex;
using internal::merge_into;
using internal::Replica;
using internal::Service;
using internal::WindowSlot;
using scaling::ReplicaState;

namespace internal {

// Whether two components' tails are within ~1e-4 of each other everywhere that matters, so
// merging them moves a quantile by < 1e-3 relative: the steps of a relaxing queue converge
// geometrically and would otherwise each add a component.
namespace {

bool close_shape(const LatencyComponent& x, const LatencyComponent& y) {
  constexpr double kRel = 1e-4;
  auto near = [](double u, double v, double scale) { return std::abs(u - v) <= kRel * scale; };
  if (x.kind != y.kind || !near(x.mu, y.mu, x.mu)) return false;
  if (x.kind == LatencyComponent::Kind::kFluid) {
    const double scale = std::max(x.w1, 1.0 / x.mu);
    return near(x.w0, y.w0, scale) && near(x.w1, y.w1, scale);
  }
  return near(x.a, y.a, 1.0) && near(x.b, y.b, 1.0) && near(x.d, y.d, x.mu) && near(x.g, y.g, x.g);
}

}  // namespace

size_t merge_into(std::vector<LatencyComponent>& mix, const LatencyComponent& c) {
  const size_t n = mix.size();
  const size_t first = n > 4 ? n - 4 : 0;
  for (size_t i = n; i > first; --i) {
    if (mix[i - 1].same_shape(c)) {
      mix[i - 1].weight += c.weight;
      return i - 1;
    }
  }
  for (size_t i = n; i > first; --i) {
    if (close_shape(mix[i - 1], c)) {
      mix[i - 1].weight += c.weight;
      return i - 1;
    }
  }
  mix.push_back(c);
  return n;
}

}  // namespace internal

void SimWorld::Impl::record(Service& sv, const internal::StepOutcome& o, int servers, int64_t n,
                            bool repeated) {
  // n identical steps starting at `step` (n > 1 only when replaying).
  const double busy = servers > 0 ? o.busy_worker_seconds / (servers * dt) : 0.0;
  size_t slot = window_slot, busy_at = busy_slot;
  for (int64_t j = 0; j < n; ++j) {
    WindowSlot& ws = sv.window[slot];
    ws.arrived = o.arrived;
    ws.served = o.served;
    ws.dropped = o.dropped;
    ws.served_within_slo = o.served_within_slo;
    ws.concurrency_seconds = o.concurrency_seconds;
    ws.component_count = o.component_count;
    if (!repeated && j == 0) {
      // Repeats of the step this slot held may still be in the window, reading their latency
      // components here: move the components to the oldest of them before overwriting.
      const size_t next = slot + 1 == sv.window.size() ? 0 : slot + 1;
      if (next != slot && sv.window[next].components_slot == slot) {
        std::copy_n(sv.window_components.begin() +
                        static_cast<std::ptrdiff_t>(slot * sv.components_per_step),
                    sv.components_per_step,
                    sv.window_components.begin() +
                        static_cast<std::ptrdiff_t>(next * sv.components_per_step));
        for (size_t k = 0; k < sv.window.size(); ++k) {
          if (k != slot && sv.window[k].components_slot == slot) {
            sv.window[k].components_slot = static_cast<std::uint32_t>(next);
          }
        }
      }
      sv.components_slot = static_cast<std::uint32_t>(slot);
      for (int i = 0; i < o.component_count; ++i) {
        sv.window_components[slot * sv.components_per_step + static_cast<size_t>(i)] =
            o.components[static_cast<size_t>(i)];
      }
    }
    ws.components_slot = sv.components_slot;
    const size_t next_busy = busy_at + 1 == sv.busy_sum.size() ? 0 : busy_at + 1;
    sv.busy_sum[next_busy] = sv.busy_sum[busy_at] + busy;
    busy_at = next_busy;
    slot = slot + 1 == sv.window.size() ? 0 : slot + 1;
  }

  const auto times = static_cast<double>(n);
  if (steps_per_second > 1) {  // several steps make a second: n stops at its end
    sv.second_arrived += times * o.arrived;
    sv.second_concurrency_seconds += times * o.concurrency_seconds;
    if (second_phase + n == steps_per_second) {
      sv.last_second = {time(step + n), sv.second_concurrency_seconds, sv.second_arrived, true};
      sv.second_arrived = sv.second_concurrency_seconds = 0;
    }
  } else {
    sv.last_second = {time(step + n), o.concurrency_seconds / dt, o.arrived / dt, true};
  }

  IntervalRecord& r = sv.interval;
  if (r.seconds == 0) r.queued_start = o.queued_start;
  r.seconds += times * dt;
  r.arrived += times * o.arrived;
  r.served += times * o.served;
  r.dropped += times * o.dropped;
  r.queued_end = o.queued_end;
  r.served_within_slo += times * o.served_within_slo;
  r.busy_worker_seconds += times * o.busy_worker_seconds;
  r.concurrency_seconds += times * o.concurrency_seconds;
  r.ready_replica_seconds += times * sv.ready * dt;
  r.starting_replica_seconds += times * sv.starting * dt;
  r.draining_replica_seconds += times * sv.draining * dt;
  if (repeated && o.component_count == 1 && sv.merged_at < sv.interval_components.size()) {
    // The same component as the previous step's: it went to `merged_at`.
    sv.interval_components[sv.merged_at].weight += times * o.components[0].weight;
  } else {
    for (int i = 0; i < o.component_count; ++i) {
      LatencyComponent c = o.components[static_cast<size_t>(i)];
      c.weight *= times;
      if (c.weight > 0) sv.merged_at = merge_into(sv.interval_components, c);
    }
    if (o.component_count != 1) sv.merged_at = kNoIndex;
  }
  sv.served_total += times * o.served;
  for (size_t e : sv.out_edges) edges[e].calls_total += times * o.served * edges[e].fanout;
}

void SimWorld::Impl::scrape() {
  const int64_t e = step;
  const int64_t len = std::min(window_steps, e);
  const auto w = static_cast<size_t>(window_steps);
  const double seconds = static_cast<double>(len) * dt;
  for (Service& sv : services) {
    double arrived = 0, served = 0, dropped = 0, conc = 0, within = 0;
    scratch.clear();
    // Steps that share their components form runs: each run is merged once, its weight
    // multiplied by its length.
    size_t slot = static_cast<size_t>((e - len) % window_steps);
    std::uint32_t run_source = 0;
    int run_count = 0, run_length = 0;
    auto flush_run = [&] {
      for (int i = 0; i < run_count; ++i) {
        LatencyComponent c =
            sv.window_components[run_source * sv.components_per_step + static_cast<size_t>(i)];
        c.weight *= run_length;
        if (c.weight > 0) merge_into(scratch, c);
      }
    };
    for (int64_t j = 0; j < len; ++j) {
      const WindowSlot& ws = sv.window[slot];
      arrived += ws.arrived;
      served += ws.served;
      dropped += ws.dropped;
      within += ws.served_within_slo;
      conc += ws.concurrency_seconds;
      if (j > 0 && ws.components_slot == run_source && ws.component_count == run_count) {
        ++run_length;
      } else {
        flush_run();
        run_source = ws.components_slot;
        run_count = ws.component_count;
        run_length = 1;
      }
      slot = slot + 1 == w ? 0 : slot + 1;
    }
    flush_run();
    scaling::WindowMetrics& m = sv.scraped;
    m.sampled_at = time(e);
    m.length = len * config.step;
    m.arrival_rps = arrived / seconds;
    m.served_rps = served / seconds;
    m.dropped_rps = dropped / seconds;
    m.slow_rps = std::max(0.0, served - within) / seconds;
    m.concurrency = conc / seconds;
    m.latency_p99_seconds = scratch.empty() ? NAN : sv.queue.p99(scratch, 0);

    // Per-replica CPU as metrics-server reports it: the mean over the window, available once
    // the replica has run a full window. Replicas up before the start count from the start.
    const double idle = sv.cfg.idle_cpu_utilization;
    const int64_t begin = std::max<int64_t>(e - window_steps, 0);
    double cpu_ready = 0;
    int ready_samples = 0;
    sv.cpu_samples.clear();
    for (const Replica& r : sv.replicas) {
      if (e - r.started_step < window_steps) continue;
      const int64_t lo = std::max(begin, r.ready_step);
      const int64_t hi = std::min(e, r.drain_step);
      double busy = 0;
      if (hi > lo) {
        busy = sv.busy_sum[static_cast<size_t>(hi) % (w + 1)] -
               sv.busy_sum[static_cast<size_t>(lo) % (w + 1)];
      }
      const double cpu = idle + (1.0 - idle) * busy / static_cast<double>(e - begin);
      sv.cpu_samples.emplace_back(r.serial, cpu);
      if (r.state == ReplicaState::kReady) {
        cpu_ready += cpu;
        ++ready_samples;
      }
    }
    m.mean_cpu_utilization = ready_samples > 0 ? cpu_ready / ready_samples : NAN;
    m.served_total = sv.served_total;
    ++sv.replicas_version;
  }
  for (size_t i = 0; i < edges.size(); ++i) snapshot.edges[i].calls_total = edges[i].calls_total;
}

void SimWorld::Impl::close_interval() {
  for (size_t s = 0; s < services.size(); ++s) {
    Service& sv = services[s];
    if (sv.interval.seconds == 0) continue;
    sv.interval.latency_p99_seconds =
        sv.interval_components.empty() ? NAN : sv.queue.p99(sv.interval_components, 1);
    recorder.append(s, sv.interval);
    sv.interval = IntervalRecord{};
    sv.interval_components.clear();
    sv.merged_at = kNoIndex;
  }
}
const scaling::Snapshot& SimWorld::observe(Clock::TimePoint now) {
  advance_to(now);
  Impl& w = *impl_;
  scaling::Snapshot& snap = w.snapshot;
  snap.time = std::max(now, w.time(w.step));
  const Clock::Duration window = w.config.metric_window;
  for (size_t s = 0; s < w.services.size(); ++s) {
    Service& sv = w.services[s];
    scaling::ServiceObservation& o = snap.services[s];
    o.desired_replicas = sv.desired;
    o.window = sv.scraped;
    o.last_second = sv.last_second;
    // Replica observations change only with a lifecycle change or a scrape.
    if (sv.replicas_version == sv.observed_version) continue;
    sv.observed_version = sv.replicas_version;
    o.replicas.resize(sv.replicas.size());
    size_t sample = 0;  // both lists are ordered by serial
    for (size_t i = 0; i < sv.replicas.size(); ++i) {
      const Replica& r = sv.replicas[i];
      scaling::ReplicaObservation& ro = o.replicas[i];
      ro.id = r.id;
      ro.state = r.state;
      ro.started_at = w.time(r.started_step);
      ro.ready_at.reset();
      if (r.ready_step != kNever && r.ready_step <= w.step) ro.ready_at = w.time(r.ready_step);
      ro.draining_since.reset();
      if (r.state == ReplicaState::kDraining && r.drain_step != kNever) {
        ro.draining_since = w.time(r.drain_step);
      }
      while (sample < sv.cpu_samples.size() && sv.cpu_samples[sample].first < r.serial) ++sample;
      ro.cpu_utilization.reset();
      if (sample < sv.cpu_samples.size() && sv.cpu_samples[sample].first == r.serial) {
        ro.cpu_utilization = sv.cpu_samples[sample].second;
      }
      ro.metric_time = sv.scraped.sampled_at;
      ro.metric_window = window;
    }
  }
  return snap;
}

}  // namespace prescale::sim
