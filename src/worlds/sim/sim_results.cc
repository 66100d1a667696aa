#include "worlds/sim/sim_results.h"

#include <algorithm>
#include <cmath>

#include "healing/incident_watch.h"
#include "healing/slowdown_watch.h"

namespace prescale::sim {

namespace {

void finish(ServiceResults& r, double needed_replica_seconds, double busy, double ready_workers) {
  const double completed = r.served + r.dropped;
  r.slo_attainment = completed > 0 ? r.served_within_slo / completed : 1.0;
  r.minute_slo_share = r.minutes > 0 ? static_cast<double>(r.minutes_meeting_slo) / r.minutes : 1.0;
  r.mean_overprovisioning =
      needed_replica_seconds > 0 ? r.ready_replica_hours * 3600.0 / needed_replica_seconds : 0.0;
  r.mean_cpu_utilization = ready_workers > 0 ? busy / ready_workers : 0.0;
}

// The incidents of one service's records: each record is a point, as the live platform's
// points are each an interval's counts.
void count_incidents(ServiceResults& r, std::span<const IntervalRecord> records,
                     Clock::TimePoint start, double error_budget) {
  healing::IncidentWatch watch;
  watch.set_error_budget(r.name, error_budget);
  Clock::TimePoint at = start;
  bool open = false;
  for (const IntervalRecord& x : records) {
    at += std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(x.seconds));
    healing::IncidentSample sample;
    sample.at = at;
    sample.requests = x.served + x.dropped;
    sample.failed = x.dropped;
    sample.slow = x.served - x.served_within_slo;
    for (const healing::IncidentChange& c : watch.observe(r.name, sample)) {
      open = c.opened;
      r.incidents += c.opened ? 1 : 0;
    }
    if (open) r.incident_hours += x.seconds / 3600.0;  // open at the record's end
  }
}

// The slowdown warnings of one service's records, each record a scrape: its service time is its
// busy worker-seconds per request served (of at least 20, as the live platform's scrapes).
void count_slowdowns(ServiceResults& r, std::span<const IntervalRecord> records,
                     Clock::TimePoint start) {
  healing::SlowdownWatch watch;
  Clock::TimePoint at = start;
  double since_start = 0;
  bool open = false;
  for (const IntervalRecord& x : records) {
    at += std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(x.seconds));
    since_start += x.seconds;
    const double load = x.seconds > 0 ? x.arrived / x.seconds : NAN;
    const double service_time = x.served >= 20 ? x.busy_worker_seconds / x.served : NAN;
    if (const auto c = watch.observe(r.name, {at, service_time, x.latency_p99_seconds, load})) {
      open = c->opened;
      if (c->opened) {
        ++r.slowdowns;
        r.slowdowns_at.push_back(since_start);
      }
    }
    if (open) r.slowdown_hours += x.seconds / 3600.0;  // open at the record's end
  }
}

}  // namespace

SimResults compute_results(const SimRecorder& rec, const ResultOptions& options) {
  SimResults out;
  out.total.name = "total";
  const size_t per_minute = std::max<size_t>(
      1, rec.interval().count() > 0 ? static_cast<size_t>(options.minute / rec.interval()) : 1);
  const double interval = std::chrono::duration<double>(rec.interval()).count();
  size_t minutes = 0;
  for (size_t s = 0; s < rec.services().size(); ++s) {
    minutes = std::max(minutes, (rec.records(s).size() + per_minute - 1) / per_minute);
  }
  // Per minute: -1 no requests in any service, 0 some service missed, 1 all met.
  std::vector<signed char> minute_ok(minutes, -1);
  double total_needed = 0, total_busy = 0, total_ready_workers = 0;

  for (size_t s = 0; s < rec.services().size(); ++s) {
    const ServiceInfo& info = rec.services()[s];
    ServiceResults r;
    r.name = info.name;
    double busy = 0, ready_workers = 0;
    const auto records = rec.records(s);
    for (size_t m = 0; m * per_minute < records.size(); ++m) {
      double completed = 0, within = 0;
      for (size_t i = m * per_minute; i < std::min(records.size(), (m + 1) * per_minute); ++i) {
        const IntervalRecord& x = records[i];
        r.arrived += x.arrived;
        r.served += x.served;
        r.dropped += x.dropped;
        r.served_within_slo += x.served_within_slo;
        r.replica_hours += x.replica_seconds() / 3600.0;
        r.ready_replica_hours += x.ready_replica_seconds / 3600.0;
        busy += x.busy_worker_seconds;
        ready_workers += x.ready_replica_seconds * info.workers_per_replica;
        completed += x.served + x.dropped;
        within += x.served_within_slo;
      }
      // A tolerance for the fluid sums: a minute exactly at the quantile meets it.
      if (completed <= 1e-9) continue;
      const bool ok = within >= options.quantile * completed * (1 - 1e-12);
      ++r.minutes;
      r.minutes_meeting_slo += ok ? 1 : 0;
      minute_ok[m] = minute_ok[m] == 0 ? 0 : (ok ? 1 : 0);
    }
    if (!records.empty()) r.queued_at_end = records.back().queued_end;
    // Replicas needed at the capacity in force (a release changes it), at each record's middle.
    double needed = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      const double capacity = info.capacity_at((static_cast<double>(i) + 0.5) * interval);
      if (capacity > 0) needed += records[i].arrived / capacity;
    }
    finish(r, needed, busy, ready_workers);
    const auto budget = options.error_budgets.find(info.name);
    count_incidents(r, records, rec.start(),
                    budget != options.error_budgets.end() ? budget->second : options.error_budget);
    count_slowdowns(r, records, rec.start());

    ServiceResults& t = out.total;
    t.arrived += r.arrived;
    t.served += r.served;
    t.dropped += r.dropped;
    t.queued_at_end += r.queued_at_end;
    t.served_within_slo += r.served_within_slo;
    t.replica_hours += r.replica_hours;
    t.ready_replica_hours += r.ready_replica_hours;
    t.incidents += r.incidents;
    t.incident_hours += r.incident_hours;
    t.slowdowns += r.slowdowns;
    t.slowdown_hours += r.slowdown_hours;
    total_needed += needed;
    total_busy += busy;
    total_ready_workers += ready_workers;
    out.services.push_back(std::move(r));
  }
  for (signed char ok : minute_ok) {
    if (ok < 0) continue;
    ++out.total.minutes;
    out.total.minutes_meeting_slo += ok;
  }
  finish(out.total, total_needed, total_busy, total_ready_workers);
  out.minute_met = std::move(minute_ok);
  return out;
}

}  // namespace prescale::sim
