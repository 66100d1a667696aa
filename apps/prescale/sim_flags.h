// The flags of `prescale sim` (docs/cli.md, "## prescale sim") and their registration; the
// command that runs them is sim_command.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace prescale {

struct SimFlags {
  std::string trace;
  std::string column;
  std::string topology = "single";
  std::string config_path;
  std::string data_dir;
  std::string policies = "prescale,hpa,kpa,aws,static,oracle";
  double slo_ms = 200;
  std::string startup = "60s";
  double startup_jitter = 0;
  std::string queue_limit;  // "" = half the SLO (with -f: each service's own); "none" = 0
  double peak_rps = 0;
  double scale = 0;  // multiplies the trace's counts (0: not given)
  bool keep_counting_noise = false;
  std::string offset = "0s";
  std::string duration;
  std::string history;                // the trace before --offset the prescale policies start with
  std::vector<std::string> entry;     // services that receive the trace; default: those uncalled
  double time_scale = 1;              // the trace's time compressed this many times (prescale up)
  std::string capacity_from;          // a prescale up state directory: its learned capacities
  std::string startup_from;           // ...: its learned startup times
  std::vector<std::string> releases;  // SERVICE:AT:FACTOR, a service time changed mid-run
  std::string step = "1s";
  double service_time_ms = 20;
  int workers = 4;
  int min_replicas = 1;
  int max_replicas = 0;
  int hpa_target = 80;
  double kpa_utilization = 0.7;
  double aws_utilization = 0.5;
  double static_headroom = 1.0;
  double prescale_quantile = 0.9;
  double prescale_error_budget = 0;
  std::string prescale_scale_down_delay = "5m";
  std::string prescale_forecast_scale_down_delay = "3m";
  double prescale_budget_step = 0.0005;
  double prescale_floor_headroom = 0.05;
  int threads = 0;
  std::string progress = "auto";
  bool per_service = false;
  std::string json_path;
  std::string timeline_path;
  std::string plot_path;
};

// Registers every flag of `prescale sim` on its subcommand `c`, bound to `f`.
void add_sim_flags(CLI::App& c, SimFlags& f);

}  // namespace prescale
