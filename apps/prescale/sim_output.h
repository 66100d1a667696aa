// What `prescale sim` says about an experiment: the text summary (a row per policy; per service
// with --per-service), the --json document (docs/simulator.md, "prescale sim --json fields") and
// the --plot page. sim_command.cc builds the world and runs the experiment; this only formats.
#pragma once

#include <iosfwd>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "dashboard/sim_report.h"
#include "worlds/sim/experiment.h"

namespace prescale {

// The run's facts the results do not hold.
struct SimRunFacts {
  std::string trace;     // the trace's name
  std::string topology;  // a built-in topology, or the prescale.yaml file name
  double duration_seconds = 0, requests = 0;
  double peak_rps = 0;  // the busiest minute's mean rate
  // "SLO p99 200 ms; startup 1m", or "SLO and startup per service" for a prescale.yaml.
  std::string slo_and_startup;
  std::string notes;  // appended to the first line: "; history 24h; queue limit 150ms"...
  // --slo-ms and --startup; none for a prescale.yaml, whose services have their own.
  std::optional<double> slo_ms, startup_seconds;
  double queue_limit_seconds = 0;
  double wall_seconds = 0;  // the whole experiment
};

// "27.6 d", "22.3 h", "45 min".
std::string span_text(double seconds);

void print_sim_summary(std::ostream& out, const sim::ExperimentResult& result,
                       const SimRunFacts& facts, bool per_service);
nlohmann::ordered_json sim_results_json(const sim::ExperimentResult& result,
                                        const SimRunFacts& facts);
dashboard::SimReport sim_plot(const sim::ExperimentResult& result, const SimRunFacts& facts);

}  // namespace prescale
