#include "worlds/sim/des.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <queue>
#include <random>

namespace prescale::sim {

ReplicaSchedule replica_schedule(const SimRecorder& recorder) {
  ReplicaSchedule s;
  for (size_t i = 0; i < recorder.services().size(); ++i) {
    const auto log = recorder.ready_changes(i);
    s.ready.emplace_back(log.begin(), log.end());
  }
  return s;
}

namespace {

enum class EventType : std::uint8_t { kEntry, kArrival, kCompletion, kReady };

struct Event {
  double time;
  std::uint64_t seq;  // ties resolve in creation order: runs are deterministic
  EventType type;
  std::uint32_t service;  // or the entry index for kEntry
  double arrival;         // kCompletion: the request's arrival time
  double value;           // kArrival: cost; kCompletion: service time; kReady: replicas
  bool operator>(const Event& o) const { return time != o.time ? time > o.time : seq > o.seq; }
};

struct Request {
  double arrival;
  double cost;
};

struct DesService {
  SimServiceConfig cfg;
  std::vector<size_t> out_edges;
  std::deque<Request> queue;
  double queued_cost = 0;  // of the requests in `queue`
  int busy = 0;
  int servers = 0;
  // Per interval.
  std::vector<double> arrived, served, dropped, within, busy_seconds;
  std::vector<std::vector<float>> latencies;
};

struct Des {
  std::vector<DesService> services;
  std::vector<scaling::CallEdge> edges;
  std::vector<size_t> callee;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::mt19937_64 rng;
  std::uniform_real_distribution<double> unit{0.0, 1.0};
  std::uint64_t seq = 0;
  double interval = 60, end = 0;
  FanoutCalls calls = FanoutCalls::kStochasticRounding;

  size_t bin(double t) const {
    return std::min(services[0].arrived.size() - 1, static_cast<size_t>(t / interval));
  }
  double exp1() { return -std::log1p(-unit(rng)); }
  void push(double t, EventType type, size_t service, double arrival, double value) {
    if (t < end)
      events.push(Event{t, seq++, type, static_cast<std::uint32_t>(service), arrival, value});
  }
  int call_count(double fanout) {
    if (calls == FanoutCalls::kPoisson) {
      std::poisson_distribution<int> p(fanout);
      return p(rng);
    }
    const double whole = std::floor(fanout);
    return static_cast<int>(whole) + (unit(rng) < fanout - whole ? 1 : 0);
  }

  void arrive(size_t s, double t, double cost) {
    DesService& sv = services[s];
    sv.arrived[bin(t)] += 1;
    // The queue limit: refused at once when the queue holds that much work for the servers.
    if (sv.cfg.queue_limit_seconds > 0 && sv.servers > 0 &&
        sv.queued_cost * sv.cfg.mean_service_time_seconds >=
            sv.cfg.queue_limit_seconds * sv.servers) {
      sv.dropped[bin(t)] += 1;
      return;
    }
    sv.queue.push_back(Request{t, cost});
    sv.queued_cost += cost;
    start_waiting(s, t);
  }

  void start_waiting(size_t s, double t) {
    DesService& sv = services[s];
    while (sv.busy < sv.servers && !sv.queue.empty()) {
      const Request r = sv.queue.front();
      sv.queue.pop_front();
      sv.queued_cost = sv.queue.empty() ? 0 : sv.queued_cost - r.cost;
      const double deadline = r.arrival + sv.cfg.request_timeout_seconds;
      if (deadline < t) {
        sv.dropped[bin(deadline)] += 1;
        continue;
      }
      ++sv.busy;
      const double d = sv.cfg.mean_service_time_seconds * r.cost * exp1();
      push(t + d, EventType::kCompletion, s, r.arrival, d);
      // The request's calls leave during its service, at uniform times.
      for (size_t e : sv.out_edges) {
        const int n = call_count(edges[e].fanout);
        for (int i = 0; i < n; ++i) push(t + d * unit(rng), EventType::kArrival, callee[e], 0, 1);
      }
    }
  }

  void complete(size_t s, double t, double arrival, double service_time) {
    DesService& sv = services[s];
    --sv.busy;
    const size_t b = bin(t);
    const double latency = t - arrival;
    sv.served[b] += 1;
    sv.within[b] += latency <= sv.cfg.slo_latency_p99_seconds ? 1 : 0;
    sv.busy_seconds[b] += service_time;
    sv.latencies[b].push_back(static_cast<float>(latency));
    start_waiting(s, t);
  }
};

// The next arrival of a Poisson process whose rate is the trace's rate in each step, after t.
double next_poisson_arrival(const forecast::Trace& trace, double t, Des& des) {
  const double ts = trace.step_seconds;
  while (t < des.end) {
    auto i = static_cast<size_t>(t / ts);
    // At a step's end t / ts can round to just below it: that step is over.
    if (static_cast<double>(i + 1) * ts <= t) ++i;
    if (i >= trace.counts.size()) return INFINITY;
    const double step_end = static_cast<double>(i + 1) * ts;
    const double rate = trace.counts[i] / ts;
    if (rate > 0) {
      const double next = t + des.exp1() / rate;
      if (next < step_end) return next;
    }
    t = step_end;  // memoryless: restart the draw at the boundary with the next rate
  }
  return INFINITY;
}

}  // namespace

Result<SimRecorder> run_des(const SimConfig& config, const forecast::Trace& trace,
                            const ReplicaSchedule& schedule, const DesOptions& options) {
  auto resolved = resolve_services(config);
  if (!resolved) return std::unexpected(resolved.error());
  auto specs = service_specs(config);
  if (!specs) return std::unexpected(specs.error());
  for (const SimServiceConfig& s : *resolved) {
    if (!s.releases.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "des: service \"" + s.name +
                            "\" has releases; the discrete-event mode models one service time");
    }
  }
  if (schedule.ready.size() != resolved->size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "des: the replica schedule has " + std::to_string(schedule.ready.size()) +
                          " services, the graph " + std::to_string(resolved->size()));
  }
  Des des;
  des.rng.seed(options.seed);
  des.calls = options.calls;
  des.interval = to_seconds(config.record_interval);
  des.end = options.duration.count() > 0 ? to_seconds(options.duration) : trace.duration_seconds();
  const auto bins =
      std::max<size_t>(1, static_cast<size_t>(std::ceil(des.end / des.interval - 1e-9)));

  std::vector<ServiceInfo> infos;
  for (size_t s = 0; s < resolved->size(); ++s) {
    DesService sv;
    sv.cfg = (*resolved)[s];
    for (auto* v : {&sv.arrived, &sv.served, &sv.dropped, &sv.within, &sv.busy_seconds}) {
      v->assign(bins, 0.0);
    }
    sv.latencies.resize(bins);
    des.services.push_back(std::move(sv));
    infos.push_back(ServiceInfo{(*resolved)[s].name, (*resolved)[s].slo_latency_p99_seconds,
                                (*specs)[s].capacity_rps, (*resolved)[s].workers_per_replica});
  }
  for (const auto& e : config.graph.edges) {
    const int caller = config.graph.index_of(e.caller), callee = config.graph.index_of(e.callee);
    if (caller < 0 || callee < 0) continue;
    des.services[static_cast<size_t>(caller)].out_edges.push_back(des.edges.size());
    des.edges.push_back(e);
    des.callee.push_back(static_cast<size_t>(callee));
  }

  for (size_t s = 0; s < schedule.ready.size(); ++s) {
    for (const ReadyChange& c : schedule.ready[s]) {
      des.push(std::max(0.0, c.at_seconds), EventType::kReady, s, 0, c.ready);
    }
  }
  std::vector<size_t> entries;
  for (const auto& name : config.graph.entries) {
    if (const int i = config.graph.index_of(name); i >= 0)
      entries.push_back(static_cast<size_t>(i));
  }
  const bool per_request = !trace.arrival_seconds.empty();
  const bool costs = per_request && config.use_request_costs &&
                     trace.request_cost.size() == trace.arrival_seconds.size();
  std::vector<size_t> cursor(entries.size(), 0);
  for (size_t k = 0; k < entries.size(); ++k) {
    if (per_request) {
      if (!trace.arrival_seconds.empty()) {
        des.push(trace.arrival_seconds[0], EventType::kEntry, k, 0, 0);
      }
    } else {
      des.push(next_poisson_arrival(trace, 0.0, des), EventType::kEntry, k, 0, 0);
    }
  }

  while (!des.events.empty()) {
    const Event ev = des.events.top();
    des.events.pop();
    switch (ev.type) {
      case EventType::kEntry: {
        const size_t k = ev.service;
        if (per_request) {
          const size_t i = cursor[k]++;
          des.arrive(entries[k], ev.time, costs ? std::max(trace.request_cost[i], 1e-6) : 1.0);
          if (cursor[k] < trace.arrival_seconds.size()) {
            des.push(trace.arrival_seconds[cursor[k]], EventType::kEntry, k, 0, 0);
          }
        } else {
          des.arrive(entries[k], ev.time, 1.0);
          des.push(next_poisson_arrival(trace, ev.time, des), EventType::kEntry, k, 0, 0);
        }
        break;
      }
      case EventType::kArrival:
        des.arrive(ev.service, ev.time, ev.value);
        break;
      case EventType::kCompletion:
        des.complete(ev.service, ev.time, ev.arrival, ev.value);
        break;
      case EventType::kReady: {
        DesService& sv = des.services[ev.service];
        sv.servers = static_cast<int>(ev.value) * sv.cfg.workers_per_replica;
        des.start_waiting(ev.service, ev.time);
        break;
      }
    }
  }
  // Requests still waiting at the end: those past their deadline were dropped by then.
  for (DesService& sv : des.services) {
    for (const Request& r : sv.queue) {
      const double deadline = r.arrival + sv.cfg.request_timeout_seconds;
      if (deadline < des.end) sv.dropped[des.bin(deadline)] += 1;
    }
  }

  SimRecorder rec(std::move(infos), config.record_interval, config.start);
  rec.reserve(bins);
  for (size_t s = 0; s < des.services.size(); ++s) {
    DesService& sv = des.services[s];
    for (const ReadyChange& c : schedule.ready[s]) rec.add_ready_change(s, c.at_seconds, c.ready);
    double queued = 0;
    size_t change = 0;
    int ready = 0;
    for (size_t b = 0; b < bins; ++b) {
      IntervalRecord r;
      const double lo = static_cast<double>(b) * des.interval;
      const double hi = std::min(des.end, lo + des.interval);
      r.seconds = hi - lo;
      r.arrived = sv.arrived[b];
      r.served = sv.served[b];
      r.dropped = sv.dropped[b];
      r.queued_start = queued;
      queued += r.arrived - r.served - r.dropped;
      r.queued_end = queued;
      r.served_within_slo = sv.within[b];
      r.busy_worker_seconds = sv.busy_seconds[b];
      auto& lat = sv.latencies[b];
      if (lat.empty()) {
        r.latency_p99_seconds = NAN;
      } else {
        const auto rank =
            static_cast<size_t>(std::ceil(0.99 * static_cast<double>(lat.size()))) - 1;
        std::nth_element(lat.begin(), lat.begin() + static_cast<std::ptrdiff_t>(rank), lat.end());
        r.latency_p99_seconds = lat[rank];
      }
      // Ready replica-seconds from the piecewise-constant schedule.
      const auto& log = schedule.ready[s];
      double t = lo;
      while (t < hi) {
        while (change < log.size() && log[change].at_seconds <= t) ready = log[change++].ready;
        const double next = change < log.size() ? std::min(hi, log[change].at_seconds) : hi;
        r.ready_replica_seconds += ready * (next - t);
        t = next;
      }
      rec.append(s, r);
    }
  }
  return rec;
}

}  // namespace prescale::sim
