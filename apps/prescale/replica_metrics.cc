#include "replica_metrics.h"

#include <utility>

namespace prescale {

ReplicaMetrics::ReplicaMetrics(telemetry::Registry& registry)
    : rollouts_(registry.counter("prescale_rollouts_total",
                                 "Rolling updates of a service's replicas after a reload of the "
                                 "file, by how they ended: rolled_out, rolled_back",
                                 {"service", "result"})) {
  registry.add_collector([this](std::vector<telemetry::FamilySnapshot>& out) { collect(out); });
}

void ReplicaMetrics::look(const std::vector<Service>& services) {
  for (const Service& s : services) {  // both results there from the start, at 0
    rollouts_.with({s.name, "rolled_out"});
    rollouts_.with({s.name, "rolled_back"});
  }
  std::lock_guard lock(mu_);
  services_ = services;
}

void ReplicaMetrics::count(const local::ReplicaEvent& event) {
  if (event.kind == "rolled-out") rollouts_.with({event.service, "rolled_out"}).inc();
  if (event.kind == "rollback") rollouts_.with({event.service, "rolled_back"}).inc();
}

void ReplicaMetrics::collect(std::vector<telemetry::FamilySnapshot>& out) const {
  using telemetry::MetricType;
  telemetry::FamilySnapshot memory{
      "prescale_replica_memory_bytes",
      "Resident memory of a running replica's process group (proportional set size), as of the "
      "supervisor's last look",
      MetricType::kGauge, {"service", "replica"}, {}};
  telemetry::FamilySnapshot limit{
      "prescale_replica_memory_limit_bytes",
      "The memory limit of a running replica (services[].memory_limit of its revision)",
      MetricType::kGauge, {"service", "replica"}, {}};
  telemetry::FamilySnapshot revision{
      "prescale_service_revision",
      "The revision of the template a service's new replicas start from (1 at the start; each "
      "rolling update adds one, a rollback returns to the old one)",
      MetricType::kGauge, {"service"}, {}};
  std::lock_guard lock(mu_);
  for (const Service& s : services_) {
    revision.series.push_back({{s.name}, static_cast<double>(s.revision), {}});
    for (const local::ReplicaStatus& r : s.replicas) {
      if (r.pid == 0) continue;  // not running
      if (r.memory_at) {
        memory.series.push_back({{s.name, r.id}, static_cast<double>(r.memory_bytes), {}});
      }
      if (r.memory_limit_bytes > 0) {
        limit.series.push_back({{s.name, r.id}, static_cast<double>(r.memory_limit_bytes), {}});
      }
    }
  }
  out.push_back(std::move(memory));
  out.push_back(std::move(limit));
  out.push_back(std::move(revision));
}

}  // namespace prescale
