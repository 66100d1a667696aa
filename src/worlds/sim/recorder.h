// Ground truth of a simulated run, for results — never shown to policies.
//
// Per service, one IntervalRecord per `interval` (SimConfig::record_interval: 60 s by default,
// or one step) with requests, latency and replica-seconds, plus the log of ready-replica counts
// (what the discrete-event mode replays). Counts are expected values, so they are fractional.
// Conservation holds per record: served + dropped + queued_end == arrived + queued_start.
//
// Thread safety: a value; written by one SimWorld (or run_des) and read afterwards.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace prescale::sim {

struct IntervalRecord {
  double seconds = 0;            // length (the last record of a run may be shorter)
  double arrived = 0;            // requests that reached the service
  double served = 0;             // requests that started service (time-stepped) or completed (DES)
  double dropped = 0;            // timed out before service
  double queued_start = 0;       // backlog at the start (waiting or, in the DES, in service)
  double queued_end = 0;         // and at the end
  double served_within_slo = 0;  // served requests with latency <= the service's p99 SLO
  double latency_p99_seconds = 0;       // of the requests served in the interval; NaN if none
  double busy_worker_seconds = 0;       // ∫ busy workers dt
  double concurrency_seconds = 0;       // ∫ requests in the service dt (0 in the DES)
  double ready_replica_seconds = 0;     // ∫ ready replicas dt
  double starting_replica_seconds = 0;  // ∫ starting replicas dt
  double draining_replica_seconds = 0;  // ∫ draining replicas dt
  // What the replicas cost: starting + ready + draining replica-seconds.
  double replica_seconds() const {
    return ready_replica_seconds + starting_replica_seconds + draining_replica_seconds;
  }
};

struct ServiceInfo {
  std::string name;
  double slo_latency_p99_seconds = 0;
  double capacity_rps = 0;  // per replica, at the SLO (ServiceSpec::capacity_rps)
  int workers_per_replica = 1;
  // Releases: (seconds since the start, capacity_rps from then on), in order.
  std::vector<std::pair<double, double>> capacity_changes{};

  // The capacity in force `seconds` after the start.
  double capacity_at(double seconds) const {
    double capacity = capacity_rps;
    for (const auto& [at, c] : capacity_changes) {
      if (at > seconds) break;
      capacity = c;
    }
    return capacity;
  }
};

// The number of ready replicas from `at` on (seconds since the run's start).
struct ReadyChange {
  double at_seconds = 0;
  int ready = 0;
};

class SimRecorder {
 public:
  SimRecorder() = default;
  SimRecorder(std::vector<ServiceInfo> services, Clock::Duration interval, Clock::TimePoint start);

  const std::vector<ServiceInfo>& services() const { return services_; }
  int index_of(std::string_view service) const;  // -1 when absent
  Clock::Duration interval() const { return interval_; }
  Clock::TimePoint start() const { return start_; }
  // Records of one service, oldest first; record i covers [start + i·interval, ...).
  std::span<const IntervalRecord> records(size_t service) const { return records_[service]; }
  std::span<const ReadyChange> ready_changes(size_t service) const {
    return ready_changes_[service];
  }

  // Writers (SimWorld, run_des).
  void reserve(size_t intervals);
  void append(size_t service, const IntervalRecord& record) { records_[service].push_back(record); }
  std::vector<IntervalRecord>& mutable_records(size_t service) { return records_[service]; }
  void add_ready_change(size_t service, double at_seconds, int ready);

 private:
  std::vector<ServiceInfo> services_;
  Clock::Duration interval_{0};
  Clock::TimePoint start_{};
  std::vector<std::vector<IntervalRecord>> records_;
  std::vector<std::vector<ReadyChange>> ready_changes_;
};

}  // namespace prescale::sim
