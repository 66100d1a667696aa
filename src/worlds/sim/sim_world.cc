#include "worlds/sim/sim_world.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "worlds/sim/internal/world_state.h"

namespace prescale::sim {

using internal::Edge;
using internal::kNever;
using internal::Replica;
using internal::Service;
using scaling::ReplicaState;

void SimWorld::Impl::trace_arrivals(int64_t k, double& count, double& cost) {
  const double t0 = static_cast<double>(k) * dt, t1 = t0 + dt;
  count = 0;
  cost = 1;
  if (!trace.arrival_seconds.empty()) {
    const bool costs =
        config.use_request_costs && trace.request_cost.size() == trace.arrival_seconds.size();
    double work = 0;
    while (next_arrival < trace.arrival_seconds.size() &&
           trace.arrival_seconds[next_arrival] < t1) {
      count += 1;
      work += costs ? trace.request_cost[next_arrival] : 1.0;
      ++next_arrival;
    }
    if (count > 0) cost = std::max(work / count, 1e-6);
    return;
  }
  const double ts = trace.step_seconds;
  if (!(ts > 0)) return;
  for (auto i = static_cast<size_t>(std::max(0.0, std::floor(t0 / ts)));
       i < trace.counts.size() && static_cast<double>(i) * ts < t1; ++i) {
    const double lo = std::max(t0, static_cast<double>(i) * ts);
    const double hi = std::min(t1, static_cast<double>(i + 1) * ts);
    // A step wholly inside trace step i gets counts[i] · dt / ts, the same value every time.
    if (hi > lo) count += trace.counts[i] * (lo == t0 && hi == t1 ? dt : hi - lo) / ts;
  }
}

void SimWorld::Impl::recount(size_t s) {
  Service& sv = services[s];
  ++sv.replicas_version;
  sv.starting = sv.ready = sv.draining = 0;
  sv.next_transition = kNever;
  for (const Replica& r : sv.replicas) {
    switch (r.state) {
      case ReplicaState::kStarting:
        ++sv.starting;
        sv.next_transition = std::min(sv.next_transition, r.ready_step);
        break;
      case ReplicaState::kReady:
        ++sv.ready;
        break;
      case ReplicaState::kDraining:
        ++sv.draining;
        sv.next_transition = std::min(sv.next_transition, r.gone_step);
        break;
    }
  }
  recorder.add_ready_change(s, static_cast<double>(step) * dt, sv.ready);
}

void SimWorld::Impl::transitions(size_t s, int64_t k) {
  auto& reps = services[s].replicas;
  for (Replica& r : reps) {
    if (r.state == ReplicaState::kStarting && r.ready_step <= k) r.state = ReplicaState::kReady;
  }
  std::erase_if(reps, [k](const Replica& r) {
    return r.state == ReplicaState::kDraining && r.gone_step <= k;
  });
  recount(s);
  replayable = false;
}

void SimWorld::Impl::add_replica(size_t s) {
  Service& sv = services[s];
  Replica r;
  r.serial = sv.next_serial++;
  r.id = sv.cfg.name + "-" + std::to_string(r.serial);
  r.state = ReplicaState::kStarting;
  r.started_step = step;
  double startup = to_seconds(sv.cfg.startup_time);
  if (sv.cfg.startup_jitter > 0) {
    std::uniform_real_distribution<double> u(1.0 - sv.cfg.startup_jitter,
                                             1.0 + sv.cfg.startup_jitter);
    startup *= u(rng);
  }
  r.ready_step = step + static_cast<int64_t>(std::ceil(startup / dt - 1e-9));
  sv.replicas.push_back(std::move(r));
}

void SimWorld::Impl::remove_replica(size_t s, size_t i) {
  Service& sv = services[s];
  Replica& r = sv.replicas[i];
  if (r.state == ReplicaState::kStarting) {
    // Never served: it stops costing now.
    sv.replicas.erase(sv.replicas.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
  r.state = ReplicaState::kDraining;
  r.drain_step = step;
  r.gone_step = step + static_cast<int64_t>(std::ceil(to_seconds(sv.cfg.drain_time) / dt - 1e-9));
}

void SimWorld::Impl::schedule_release(Service& sv) {
  sv.release_step = internal::kNever;
  if (sv.next_release < sv.cfg.releases.size()) {
    const double at = to_seconds(sv.cfg.releases[sv.next_release].at);
    sv.release_step = static_cast<int64_t>(std::ceil(at / dt - 1e-9));
  }
}

void SimWorld::Impl::release(Service& sv, int64_t k) {
  while (k >= sv.release_step) {
    const double t = sv.cfg.releases[sv.next_release].mean_service_time_seconds;
    sv.cfg.mean_service_time_seconds = t;
    sv.queue.set_mean_service_time(t);
    ++sv.next_release;
    schedule_release(sv);
  }
}

void SimWorld::Impl::run_step() {
  const int64_t k = step;
  const double t0 = static_cast<double>(k) * dt;
  double entry_arrivals = 0, entry_cost = 1;
  trace_arrivals(k, entry_arrivals, entry_cost);
  bool repeatable = true;
  for (size_t s = 0; s < services.size(); ++s) {
    Service& sv = services[s];
    if (k >= sv.next_transition) transitions(s, k);
    if (k >= sv.release_step) release(sv, k);
    // Topological order: every caller has run this step, so `inbound` is complete.
    const double arrivals = sv.inbound + (sv.entry ? entry_arrivals : 0.0);
    const double cost = sv.entry && sv.inbound == 0 ? entry_cost : 1.0;
    sv.inbound = 0;
    const int servers = sv.ready * sv.cfg.workers_per_replica;
    sv.queue.step(t0, servers, arrivals, cost, out);
    // Calls are made by the requests served, never by those dropped or still queued.
    for (size_t e : sv.out_edges) services[edges[e].callee].inbound += out.served * edges[e].fanout;
    record(sv, out, servers, 1, out.repeated);
    repeatable = repeatable && sv.queue.repeatable() != nullptr;
  }
  replayable = repeatable;
  last_entry_arrivals = entry_arrivals;
  last_entry_cost = entry_cost;
  end_steps(1);
}

void SimWorld::Impl::end_steps(int64_t n) {
  step += n;
  // Replicas that become ready (or finish draining) at the new boundary do so before anyone
  // observes it.
  for (size_t s = 0; s < services.size(); ++s) {
    if (step >= services[s].next_transition) transitions(s, step);
  }
  const auto w = static_cast<size_t>(window_steps);
  window_slot = static_cast<size_t>((window_slot + static_cast<size_t>(n)) % w);
  busy_slot = static_cast<size_t>((busy_slot + static_cast<size_t>(n)) % (w + 1));
  if (steps_per_second > 0) second_phase = (second_phase + n) % steps_per_second;
  scrape_phase += n;
  if (scrape_phase == scrape_steps) {
    scrape_phase = 0;
    scrape();
  }
  interval_phase += n;
  if (interval_phase == interval_steps) {
    interval_phase = 0;
    close_interval();
  }
}

int64_t SimWorld::Impl::replay_length(int64_t target) const {
  if (!replayable) return 0;
  int64_t n = target - step;
  n = std::min({n, scrape_steps - scrape_phase, interval_steps - interval_phase});
  if (steps_per_second > 1) n = std::min(n, steps_per_second - second_phase);
  for (const Service& sv : services) {
    n = std::min({n, sv.next_transition - step, sv.release_step - step});
  }
  if (n <= 0) return 0;
  // The entry's arrivals must stay what they were in the last step.
  const double t0 = static_cast<double>(step) * dt;
  if (!trace.arrival_seconds.empty()) {
    if (last_entry_arrivals != 0) return 0;
    if (next_arrival < trace.arrival_seconds.size()) {
      const double next = trace.arrival_seconds[next_arrival];
      n = std::min(n, static_cast<int64_t>(std::floor((next - t0) / dt)));
    }
    return std::max<int64_t>(n, 0);
  }
  const double ts = trace.step_seconds;
  const double i = std::floor(t0 / ts);
  if (!(ts > 0) || i >= static_cast<double>(trace.counts.size())) {
    return last_entry_arrivals == 0 ? n : 0;
  }
  // Steps that lie wholly inside trace step i have the same arrivals.
  const auto inside = static_cast<int64_t>(std::floor(((i + 1) * ts - t0) / dt + 1e-9));
  const double count = trace.counts[static_cast<size_t>(i)] * dt / ts;
  if (inside <= 0 || t0 < i * ts || count != last_entry_arrivals || last_entry_cost != 1) return 0;
  return std::min(n, inside);
}

void SimWorld::Impl::replay(int64_t n) {
  for (Service& sv : services) {
    const internal::StepOutcome* o = sv.queue.repeatable();
    record(sv, *o, sv.ready * sv.cfg.workers_per_replica, n, true);
  }
  end_steps(n);
}

void SimWorld::Impl::advance(int64_t target) {
  while (step < target) {
    const int64_t n = replay_length(target);
    if (n > 0) {
      replay(n);
    } else {
      run_step();
    }
  }
}

Result<std::unique_ptr<SimWorld>> SimWorld::create(SimConfig config, forecast::Trace trace) {
  auto resolved = resolve_services(config);
  if (!resolved) return std::unexpected(resolved.error());
  auto specs = service_specs(config);
  if (!specs) return std::unexpected(specs.error());

  auto impl = std::make_unique<Impl>();
  Impl& w = *impl;
  w.dt = to_seconds(config.step);
  const Clock::Duration second = std::chrono::seconds(1);
  w.steps_per_second = config.step <= second ? second / config.step : 0;
  w.window_steps = config.metric_window / config.step;
  w.scrape_steps = config.scrape_interval / config.step;
  w.interval_steps = config.record_interval / config.step;
  w.rng.seed(config.seed);

  // Per-request costs make the entry services' service times a mixture (M/G/c): their cost
  // classes, and the capacity at the SLO that policies are told, follow from the trace's costs.
  const bool costs = config.use_request_costs && !trace.arrival_seconds.empty() &&
                     trace.request_cost.size() == trace.arrival_seconds.size();
  const internal::CostMix cost_mix =
      costs ? internal::CostMix::from_costs(trace.request_cost) : internal::CostMix{};
  auto is_entry = [&](const std::string& name) {
    return std::find(config.graph.entries.begin(), config.graph.entries.end(), name) !=
           config.graph.entries.end();
  };
  for (size_t s = 0; s < resolved->size(); ++s) {
    const SimServiceConfig& c = (*resolved)[s];
    if (!is_entry(c.name) || cost_mix.classes() == 1) continue;
    const double cap = internal::capacity_rps(c.mean_service_time_seconds, c.workers_per_replica,
                                              c.slo_latency_p99_seconds, cost_mix);
    if (!(cap > 0)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "service \"" + c.name + "\": SLO p99 " +
                            std::to_string(c.slo_latency_p99_seconds) +
                            " s is not reachable with this trace's request costs");
    }
    (*specs)[s].capacity_rps = cap;
  }

  std::vector<ServiceInfo> infos;
  for (size_t s = 0; s < resolved->size(); ++s) {
    const SimServiceConfig& c = (*resolved)[s];
    // Each release's capacity at the SLO, computed as the spec's is: with the entry's request
    // costs, else the M/M/c formula.
    std::vector<std::pair<double, double>> changes;
    for (const ServiceTimeChange& r : c.releases) {
      double cap = NAN;
      if (is_entry(c.name) && cost_mix.classes() > 1) {
        cap = internal::capacity_rps(r.mean_service_time_seconds, c.workers_per_replica,
                                     c.slo_latency_p99_seconds, cost_mix);
      } else if (auto m = capacity_rps(c, r.mean_service_time_seconds)) {
        cap = *m;
      }
      if (!(cap > 0)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "service \"" + c.name + "\": after a release, SLO p99 " +
                              std::to_string(c.slo_latency_p99_seconds) + " s is not reachable");
      }
      changes.emplace_back(to_seconds(r.at), cap);
    }
    infos.push_back(ServiceInfo{c.name, c.slo_latency_p99_seconds, (*specs)[s].capacity_rps,
                                c.workers_per_replica, std::move(changes)});
  }
  w.recorder = SimRecorder(std::move(infos), config.record_interval, config.start);
  const double intervals = trace.duration_seconds() / to_seconds(config.record_interval);
  w.recorder.reserve(static_cast<size_t>(std::max(0.0, intervals)) + 2);

  const auto ws = static_cast<size_t>(w.window_steps);
  w.services.reserve(resolved->size());
  for (size_t s = 0; s < resolved->size(); ++s) {
    const bool entry = is_entry((*resolved)[s].name);
    Service& sv =
        w.services.emplace_back((*resolved)[s], w.dt, entry ? cost_mix : internal::CostMix{});
    sv.entry = entry;
    sv.window.resize(ws);
    sv.window_components.resize(ws * sv.components_per_step);
    sv.busy_sum.assign(ws + 1, 0.0);
    // Room for a scale-up and its draining predecessors without reallocating; a cap meant as
    // "no cap" (replicas.max has no upper bound) must not size it.
    const size_t room = static_cast<size_t>(std::min(sv.cfg.max_replicas, 1024)) * 2 + 8;
    sv.cpu_samples.reserve(room);
    sv.interval_components.reserve(static_cast<size_t>(w.interval_steps) * sv.components_per_step);
    sv.replicas.reserve(room);
    sv.last_second.at = config.start;
    sv.scraped.sampled_at = config.start;
    // The initial replicas have been ready for ten minutes (past the HPA's CPU initialisation
    // period) when the run starts.
    const auto before = static_cast<int64_t>(std::ceil(600.0 / w.dt));
    const auto startup = static_cast<int64_t>(std::ceil(to_seconds(sv.cfg.startup_time) / w.dt));
    for (int i = 0; i < sv.cfg.initial_replicas; ++i) {
      Replica r;
      r.serial = sv.next_serial++;
      r.id = sv.cfg.name + "-" + std::to_string(r.serial);
      r.state = ReplicaState::kReady;
      r.ready_step = -before;
      r.started_step = -before - startup;
      sv.replicas.push_back(std::move(r));
    }
    sv.desired = sv.cfg.initial_replicas;
    w.schedule_release(sv);
  }
  w.scratch.reserve(ws * internal::kMaxComponents);
  w.config = std::move(config);
  w.trace = std::move(trace);
  w.resolved = std::move(*resolved);
  w.specs = std::move(*specs);
  for (size_t s = 0; s < w.services.size(); ++s) w.recount(s);

  for (const auto& e : w.config.graph.edges) {
    const int caller = w.config.graph.index_of(e.caller);
    const int callee = w.config.graph.index_of(e.callee);
    if (caller < 0 || callee < 0 || callee <= caller) {
      return make_error(ErrorCode::kInvalidArgument,
                        "sim config: edge " + e.caller + " -> " + e.callee +
                            " is not between graph services in topological order");
    }
    w.services[static_cast<size_t>(caller)].out_edges.push_back(w.edges.size());
    w.edges.push_back(Edge{static_cast<size_t>(caller), static_cast<size_t>(callee), e.fanout, 0});
    w.snapshot.edges.push_back(scaling::EdgeObservation{e.caller, e.callee, 0});
  }
  w.snapshot.services.resize(w.services.size());
  for (size_t s = 0; s < w.services.size(); ++s) {
    w.snapshot.services[s].name = w.services[s].cfg.name;
  }
  return std::unique_ptr<SimWorld>(new SimWorld(std::move(impl)));
}

SimWorld::SimWorld(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SimWorld::~SimWorld() = default;

void SimWorld::step() { impl_->advance(impl_->step + 1); }

void SimWorld::advance_to(Clock::TimePoint t) {
  Impl& w = *impl_;
  if (t < w.time(w.step + 1)) return;
  // The last whole step ending at or before t.
  const int64_t target = (t - w.config.start) / w.config.step;
  w.advance(target);
}

Clock::TimePoint SimWorld::now() const { return impl_->time(impl_->step); }

Clock::TimePoint SimWorld::trace_end() const {
  return impl_->config.start + std::chrono::duration_cast<Clock::Duration>(
                                   std::chrono::duration<double>(impl_->trace.duration_seconds()));
}

void SimWorld::flush() { impl_->close_interval(); }

const SimRecorder& SimWorld::recorder() const { return impl_->recorder; }

const std::vector<SimServiceConfig>& SimWorld::services() const { return impl_->resolved; }

const std::vector<scaling::ServiceSpec>& SimWorld::specs() const { return impl_->specs; }

SimWorld::ServiceState SimWorld::state(std::string_view service) const {
  for (const Service& sv : impl_->services) {
    if (sv.cfg.name == service) {
      return ServiceState{sv.desired, sv.starting, sv.ready, sv.draining, sv.queue.queued()};
    }
  }
  return {};
}

Result<void> SimWorld::scale(std::string_view service, int replicas) {
  Impl& w = *impl_;
  const int s = w.config.graph.index_of(service);
  if (s < 0) return make_error(ErrorCode::kNotFound, "no service \"" + std::string(service) + "\"");
  const auto idx = static_cast<size_t>(s);
  Service& sv = w.services[idx];
  if (replicas < sv.cfg.min_replicas || replicas > sv.cfg.max_replicas) {
    return make_error(ErrorCode::kOutOfRange,
                      "service \"" + sv.cfg.name + "\": " + std::to_string(replicas) +
                          " replicas outside [" + std::to_string(sv.cfg.min_replicas) + ", " +
                          std::to_string(sv.cfg.max_replicas) + "]");
  }
  sv.desired = replicas;
  int active = sv.starting + sv.ready;
  while (active < replicas) {
    w.add_replica(idx);
    ++active;
  }
  // Like a ReplicaSet: starting (not ready) replicas go first, newest first; then the ready
  // replicas that became ready most recently.
  for (size_t i = sv.replicas.size(); i > 0 && active > replicas; --i) {
    if (sv.replicas[i - 1].state == ReplicaState::kStarting) {
      w.remove_replica(idx, i - 1);
      --active;
    }
  }
  while (active > replicas) {
    size_t pick = sv.replicas.size();
    for (size_t i = 0; i < sv.replicas.size(); ++i) {
      const Replica& r = sv.replicas[i];
      if (r.state != ReplicaState::kReady) continue;
      if (pick == sv.replicas.size() || r.ready_step >= sv.replicas[pick].ready_step) pick = i;
    }
    w.remove_replica(idx, pick);
    --active;
  }
  w.recount(idx);
  w.replayable = false;
  return {};
}

Result<void> SimWorld::restart(std::string_view replica_id) {
  Impl& w = *impl_;
  for (size_t s = 0; s < w.services.size(); ++s) {
    auto& reps = w.services[s].replicas;
    for (size_t i = 0; i < reps.size(); ++i) {
      if (reps[i].id != replica_id) continue;
      if (reps[i].state == ReplicaState::kDraining) break;
      w.remove_replica(s, i);
      w.add_replica(s);
      w.recount(s);
      w.replayable = false;
      return {};
    }
  }
  return make_error(ErrorCode::kNotFound,
                    "no starting or ready replica \"" + std::string(replica_id) + "\"");
}

}  // namespace prescale::sim
