#include "sim_output.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>
#include <vector>

#include "command_util.h"

namespace prescale {
namespace {

using Json = nlohmann::ordered_json;

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }
Json number_or_null(std::optional<double> v) { return v ? number_or_null(*v) : Json(nullptr); }

// The figures a run's total and each of its services report alike; the caller adds what
// differs (names, the cost ratio, actions).
void add_results(Json& j, const sim::ServiceResults& r) {
  j["requests"] = r.arrived;
  j["served"] = r.served;
  j["served_within_slo"] = r.served_within_slo;
  j["slo_attainment"] = r.slo_attainment;
  j["minute_slo_share"] = r.minute_slo_share;
  j["dropped"] = r.dropped;
  j["queued_at_end"] = r.queued_at_end;
  j["replica_hours"] = r.replica_hours;
  j["mean_overprovisioning"] = r.mean_overprovisioning;
  j["mean_cpu_utilization"] = r.mean_cpu_utilization;
  j["incidents"] = r.incidents;
  j["incident_hours"] = r.incident_hours;
  j["slowdowns"] = r.slowdowns;
  j["slowdown_hours"] = r.slowdown_hours;
}

Json service_json(const sim::ServiceResults& r, const sim::ServiceResults* oracle, int actions) {
  Json j;
  j["service"] = r.name;
  add_results(j, r);
  j["cost_ratio_to_oracle"] = number_or_null(oracle != nullptr && oracle->replica_hours > 0
                                                 ? r.replica_hours / oracle->replica_hours
                                                 : NAN);
  j["scale_actions"] = actions;
  j["slowdowns_at"] = r.slowdowns_at;
  return j;
}

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) {
      const size_t pad = width[c] - cells[c].size();
      // The first column (names) is left-aligned, figures right-aligned.
      if (c == 0) {
        out << cells[c] << std::string(pad, ' ');
      } else {
        out << "  " << std::string(pad, ' ') << cells[c];
      }
    }
    out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
}

const sim::PolicyRun* oracle_run(const sim::ExperimentResult& result) {
  for (const auto& run : result.runs) {
    if (run.policy == "oracle") return &run;
  }
  return nullptr;
}

}  // namespace

std::string span_text(double seconds) {
  char buf[48];
  if (seconds >= 86400) {
    std::snprintf(buf, sizeof buf, "%.1f d", seconds / 86400);
  } else if (seconds >= 3600) {
    std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
  } else if (seconds >= 60) {
    std::snprintf(buf, sizeof buf, "%.0f min", seconds / 60);
  } else {  // "0 min" said nothing of a run under half a minute
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  }
  return buf;
}

void print_sim_summary(std::ostream& out, const sim::ExperimentResult& result,
                       const SimRunFacts& facts, bool per_service) {
  const size_t service_count = result.specs.size();
  out << "trace " << facts.trace << ": " << span_text(facts.duration_seconds) << ", "
      << fixed(facts.requests, 0) << " requests, peak " << fixed(facts.peak_rps, 1)
      << " req/s; topology " << facts.topology << " (" << service_count
      << (service_count == 1 ? " service" : " services") << "); " << facts.slo_and_startup
      << facts.notes << "\n"
      << "oracle replica-hours: " << fixed(result.oracle_replica_hours, 1) << "; simulated in "
      << fixed(facts.wall_seconds, 1) << " s\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& run : result.runs) {
    const auto& t = run.results.total;
    rows.push_back({run.policy, percent(t.slo_attainment, 3), percent(t.minute_slo_share, 2),
                    fixed(t.dropped, 0), fixed(t.replica_hours, 1),
                    fixed(run.cost_ratio_to_oracle, 3), std::to_string(run.scale_actions),
                    fixed(t.mean_overprovisioning, 2), std::to_string(t.incidents)});
  }
  print_table(out,
              {"policy", "within SLO", "minutes OK", "dropped", "replica-h", "x oracle", "actions",
               "overprov", "incidents"},
              rows);
  if (!per_service) return;
  const sim::PolicyRun* oracle = oracle_run(result);
  for (size_t s = 0; s < service_count; ++s) {
    out << "\n"
        << result.specs[s].name << " (capacity " << fixed(result.specs[s].capacity_rps, 1)
        << " req/s per replica, starts with " << result.initial_replicas[s] << ")\n";
    rows.clear();
    for (const auto& run : result.runs) {
      const auto& r = run.results.services[s];
      const double ratio = oracle != nullptr && oracle->results.services[s].replica_hours > 0
                               ? r.replica_hours / oracle->results.services[s].replica_hours
                               : NAN;
      rows.push_back({run.policy, percent(r.slo_attainment, 3), percent(r.minute_slo_share, 2),
                      fixed(r.dropped, 0), fixed(r.replica_hours, 1), fixed(ratio, 3),
                      std::to_string(run.service_scale_actions[s]),
                      fixed(r.mean_overprovisioning, 2), std::to_string(r.incidents)});
    }
    print_table(out,
                {"  policy", "within SLO", "minutes OK", "dropped", "replica-h", "x oracle",
                 "actions", "overprov", "incidents"},
                rows);
  }
}

nlohmann::ordered_json sim_results_json(const sim::ExperimentResult& result,
                                        const SimRunFacts& facts) {
  const sim::PolicyRun* oracle = oracle_run(result);
  Json all = Json::array();
  for (const auto& run : result.runs) {
    Json j;
    j["policy"] = run.policy;
    j["trace"] = facts.trace;
    j["topology"] = facts.topology;
    j["slo_ms"] = number_or_null(facts.slo_ms);
    j["startup_seconds"] = number_or_null(facts.startup_seconds);
    j["queue_limit_seconds"] = facts.queue_limit_seconds;
    j["duration_seconds"] = facts.duration_seconds;
    j["peak_rps"] = facts.peak_rps;
    add_results(j, run.results.total);
    j["oracle_replica_hours"] = result.oracle_replica_hours;
    j["cost_ratio_to_oracle"] = number_or_null(run.cost_ratio_to_oracle);
    j["scale_actions"] = run.scale_actions;
    j["wall_seconds"] = run.wall_seconds;
    Json services = Json::array();
    for (size_t s = 0; s < run.results.services.size(); ++s) {
      services.push_back(service_json(run.results.services[s],
                                      oracle ? &oracle->results.services[s] : nullptr,
                                      run.service_scale_actions[s]));
      const scaling::ServiceSpec& spec = result.specs[s];
      services.back()["slo_ms"] = 1000 * spec.slo_latency_p99_seconds;
      // As simulated: in trace time, --time-scale times the real startup.
      services.back()["startup_seconds"] = std::chrono::duration<double>(spec.startup_time).count();
      services.back()["capacity_rps"] = spec.capacity_rps;
      services.back()["initial_replicas"] = result.initial_replicas[s];
    }
    j["services"] = std::move(services);
    all.push_back(std::move(j));
  }
  return all;
}

dashboard::SimReport sim_plot(const sim::ExperimentResult& result, const SimRunFacts& facts) {
  dashboard::SimReport report;
  report.title = "prescale sim: " + facts.trace + " on " + facts.topology;
  report.subtitle = "peak " + fixed(facts.peak_rps, 1) + " req/s, " + facts.slo_and_startup;
  report.step_seconds = result.record_interval_seconds;
  report.load_rps = result.load_rps;
  for (const auto& run : result.runs) {
    dashboard::PolicyTimeline line;
    line.policy = run.policy;
    line.replicas = run.replicas;
    for (signed char met : run.results.minute_met) line.slo_violated_minute.push_back(met == 0);
    line.summary = percent(run.results.total.slo_attainment, 2) + " within SLO, " +
                   fixed(run.results.total.replica_hours, 1) + " replica-h (" +
                   fixed(run.cost_ratio_to_oracle, 2) + "x oracle), " +
                   std::to_string(run.scale_actions) + " actions";
    report.policies.push_back(std::move(line));
  }
  return report;
}

}  // namespace prescale
