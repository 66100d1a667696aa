#include "worlds/sim/sim_config.h"

#include <cmath>
#include <string>

#include "worlds/sim/queueing.h"

namespace prescale::sim {

namespace {

std::unexpected<Error> invalid(const std::string& what) {
  return make_error(ErrorCode::kInvalidArgument, "sim config: " + what);
}

Result<void> validate_service(const SimServiceConfig& s) {
  const std::string where = "service \"" + s.name + "\": ";
  if (!(s.mean_service_time_seconds > 0) || !std::isfinite(s.mean_service_time_seconds)) {
    return invalid(where + "mean_service_time_seconds must be positive");
  }
  if (s.workers_per_replica <= 0) return invalid(where + "workers_per_replica must be >= 1");
  if (s.startup_time.count() < 0) return invalid(where + "startup_time must not be negative");
  if (!(s.startup_jitter >= 0 && s.startup_jitter < 1)) {
    return invalid(where + "startup_jitter must be in [0, 1)");
  }
  if (s.drain_time.count() < 0) return invalid(where + "drain_time must not be negative");
  // At most a day: the queue keeps a slot per service time of it (1e9 s would be ~32 GB).
  if (!(s.request_timeout_seconds > 0 && s.request_timeout_seconds <= 86400)) {
    return invalid(where + "request_timeout_seconds must be positive and at most a day (86400)");
  }
  if (!(s.queue_limit_seconds >= 0) || !std::isfinite(s.queue_limit_seconds)) {
    return invalid(where + "queue_limit_seconds must be 0 (none) or positive");
  }
  if (s.min_replicas < 0 || s.min_replicas > s.initial_replicas ||
      s.initial_replicas > s.max_replicas) {
    return invalid(where + "need 0 <= min_replicas <= initial_replicas <= max_replicas");
  }
  if (!(s.slo_latency_p99_seconds > 0)) {
    return invalid(where + "slo_latency_p99_seconds must be positive");
  }
  if (!(s.idle_cpu_utilization >= 0 && s.idle_cpu_utilization < 1)) {
    return invalid(where + "idle_cpu_utilization must be in [0, 1)");
  }
  for (size_t i = 0; i < s.releases.size(); ++i) {
    const ServiceTimeChange& r = s.releases[i];
    const std::string release = where + "releases[" + std::to_string(i) + "]: ";
    if (r.at.count() < 0) return invalid(release + "at must not be negative");
    if (i > 0 && r.at < s.releases[i - 1].at) {
      return invalid(release + "releases must be in order of at");
    }
    if (!(r.mean_service_time_seconds > 0) || !std::isfinite(r.mean_service_time_seconds)) {
      return invalid(release + "mean_service_time_seconds must be positive");
    }
    if (!slo_capacity_rps(r.mean_service_time_seconds, s.workers_per_replica,
                          s.slo_latency_p99_seconds)) {
      return invalid(release + "a service time of " + std::to_string(r.mean_service_time_seconds) +
                     " s leaves no capacity within the p99 SLO");
    }
  }
  return {};
}

bool multiple_of(Clock::Duration d, Clock::Duration step) {
  return d.count() > 0 && d.count() % step.count() == 0;
}

}  // namespace

Result<std::vector<SimServiceConfig>> resolve_services(const SimConfig& config) {
  const Clock::Duration step = config.step;
  const Clock::Duration second = std::chrono::seconds(1);
  if (step.count() <= 0) return invalid("step must be positive");
  if (second.count() % step.count() != 0 && step.count() % second.count() != 0) {
    return invalid("step must divide 1 s or be whole seconds");
  }
  if (!multiple_of(config.scrape_interval, step)) {
    return invalid("scrape_interval must be a positive multiple of step");
  }
  if (!multiple_of(config.metric_window, step)) {
    return invalid("metric_window must be a positive multiple of step");
  }
  if (!multiple_of(config.record_interval, step)) {
    return invalid("record_interval must be a positive multiple of step");
  }
  if (config.graph.services.empty()) return invalid("the call graph has no service");
  std::vector<bool> used(config.services.size(), false);
  std::vector<SimServiceConfig> out;
  out.reserve(config.graph.services.size());
  for (const auto& name : config.graph.services) {
    SimServiceConfig s = config.service_defaults;
    s.name = name;
    bool found = false;
    for (size_t i = 0; i < config.services.size(); ++i) {
      if (config.services[i].name != name) continue;
      if (found) return invalid("service \"" + name + "\" is configured twice");
      s = config.services[i];
      used[i] = found = true;
    }
    if (auto ok = validate_service(s); !ok) return std::unexpected(ok.error());
    out.push_back(std::move(s));
  }
  for (size_t i = 0; i < config.services.size(); ++i) {
    if (!used[i]) {
      return invalid("service \"" + config.services[i].name + "\" is not in the call graph");
    }
  }
  return out;
}

Result<double> capacity_rps(const SimServiceConfig& s) {
  return capacity_rps(s, s.mean_service_time_seconds);
}

Result<double> capacity_rps(const SimServiceConfig& s, double mean_service_time_seconds) {
  auto c =
      slo_capacity_rps(mean_service_time_seconds, s.workers_per_replica, s.slo_latency_p99_seconds);
  if (!c) {
    return make_error(c.error().code, "service \"" + s.name + "\": " + c.error().message);
  }
  return c;
}

Result<std::vector<scaling::ServiceSpec>> service_specs(const SimConfig& config) {
  auto services = resolve_services(config);
  if (!services) return std::unexpected(services.error());
  std::vector<scaling::ServiceSpec> specs;
  for (const auto& s : *services) {
    auto cap = capacity_rps(s);
    if (!cap) return std::unexpected(cap.error());
    scaling::ServiceSpec spec;
    spec.name = s.name;
    spec.min_replicas = s.min_replicas;
    spec.max_replicas = s.max_replicas;
    spec.capacity_rps = *cap;
    spec.slo_latency_p99_seconds = s.slo_latency_p99_seconds;
    spec.startup_time = s.startup_time;
    // A replica serves workers_per_replica requests at once and queues the rest: Knative's
    // containerConcurrency, from which the KPA derives its per-pod target.
    spec.max_concurrency = s.workers_per_replica;
    spec.queue_limit_seconds = s.queue_limit_seconds;
    specs.push_back(std::move(spec));
  }
  return specs;
}

Result<SimConfig> sim_config_from(const Config& config, const SimServiceConfig& defaults) {
  if (config.services.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "prescale.yaml: no services to simulate");
  }
  std::vector<scaling::CallEdge> edges;
  std::vector<std::string> names;
  for (const ServiceConfig& svc : config.services) {
    names.push_back(svc.name);
    for (const std::string& callee : svc.depends_on) {
      edges.push_back(scaling::CallEdge{svc.name, callee, 1.0, 0});
    }
  }
  auto graph = scaling::make_callgraph(std::move(edges), std::move(names));
  if (!graph) return std::unexpected(graph.error());

  SimConfig out;
  out.graph = std::move(*graph);
  out.service_defaults = defaults;
  for (const ServiceConfig& svc : config.services) {
    SimServiceConfig s = defaults;
    s.name = svc.name;
    s.min_replicas = svc.replicas.min;
    s.max_replicas = svc.replicas.max;
    s.initial_replicas = svc.replicas.initial;
    s.startup_time = svc.startup_time;
    s.slo_latency_p99_seconds = svc.slo.latency_p99_ms / 1000.0;
    if (svc.effective_concurrency() > 0) s.workers_per_replica = svc.effective_concurrency();
    // capacity_rps falls as the service time grows and vanishes once an idle replica's p99
    // (ln 100 × the service time) reaches the SLO: bisect on that interval.
    double lo = 0, hi = s.slo_latency_p99_seconds / std::log(100.0);
    for (int i = 0; i < 100; ++i) {
      s.mean_service_time_seconds = 0.5 * (lo + hi);
      auto cap = capacity_rps(s);
      (cap && *cap >= svc.capacity_rps ? lo : hi) = s.mean_service_time_seconds;
    }
    s.mean_service_time_seconds = lo;
    auto cap = lo > 0 ? capacity_rps(s) : Result<double>(0.0);
    if (!cap || !(*cap > 0) || std::abs(*cap / svc.capacity_rps - 1) > 1e-6) {
      return make_error(ErrorCode::kInvalidArgument,
                        "service \"" + svc.name + "\": capacity_rps " +
                            std::to_string(svc.capacity_rps) + " is not reachable within p99 " +
                            std::to_string(svc.slo.latency_p99_ms) + " ms with " +
                            std::to_string(s.workers_per_replica) + " workers per replica");
    }
    s.queue_limit_seconds = 0;  // the file's queue_limit, not the defaults': 0 is none
    if (svc.effective_queue_limit().count() > 0) {
      // The gateway lets a replica have max_requests_per_replica() in flight; the simulated one
      // serves workers_per_replica of them at once and queues the rest, each worth a service
      // time of work for its workers.
      const int queued = svc.max_requests_per_replica() - s.workers_per_replica;
      s.queue_limit_seconds =
          std::max(queued, 1) * s.mean_service_time_seconds / s.workers_per_replica;
    }
    out.services.push_back(std::move(s));
  }
  return out;
}

}  // namespace prescale::sim
