#include "sim_command.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "command_util.h"
#include "core/config.h"
#include "core/internal/config_scalars.h"
#include "dashboard/sim_report.h"
#include "forecast/trace.h"
#include "scaling/callgraph.h"
#include "sim_flags.h"
#include "sim_inputs.h"
#include "sim_output.h"
#include "worlds/sim/experiment.h"
#include "worlds/sim/timeline.h"

namespace prescale {

namespace {

using Json = nlohmann::ordered_json;

std::optional<std::chrono::milliseconds> duration_flag(const std::string& flag,
                                                       const std::string& text) {
  auto d = internal::parse_duration(text);
  if (!d) {
    std::cerr << "prescale sim: " << flag << ": " << d.error() << "\n";
    return std::nullopt;
  }
  return *d;
}

// --release SERVICE:AT:FACTOR flags, added to the services of `config` (resolved first) in
// order of AT; each must fall within the run's `run_seconds`. False after printing what is wrong.
bool add_releases(sim::SimConfig& config, const std::vector<std::string>& flags,
                  double run_seconds) {
  if (flags.empty()) return true;
  auto resolved = sim::resolve_services(config);
  if (!resolved) return true;  // reported by the caller's own check
  config.services = std::move(*resolved);
  for (const std::string& flag : flags) {
    const size_t first = flag.find(':');
    const size_t last = flag.rfind(':');
    auto fail = [&](const std::string& why) {
      std::cerr << "prescale sim: --release " << flag << ": " << why << "\n";
      return false;
    };
    if (first == std::string::npos || first == last) {
      return fail("expected SERVICE:AT:FACTOR (e.g. productcatalogservice:168h:1.5)");
    }
    const std::string name = flag.substr(0, first);
    auto service = std::find_if(config.services.begin(), config.services.end(),
                                [&](const sim::SimServiceConfig& s) { return s.name == name; });
    if (service == config.services.end()) {
      std::string names;
      for (const sim::SimServiceConfig& s : config.services) {
        names += (names.empty() ? "" : ", ") + s.name;
      }
      return fail("no service \"" + name + "\" in the graph (services: " + names + ")");
    }
    auto at = internal::parse_duration(flag.substr(first + 1, last - first - 1));
    if (!at) return fail("AT: " + at.error());
    if (std::chrono::duration<double>(*at).count() >= run_seconds) {
      // AT counts from --offset; a release after the last step would change nothing.
      return fail("AT is past the end of the run (" +
                  internal::format_duration(std::chrono::milliseconds(
                      std::llround(1000 * run_seconds))) +
                  ")");
    }
    const double factor = internal::parse_number(flag.substr(last + 1)).value_or(0);
    if (!(factor > 0)) {
      return fail("FACTOR must be a positive number, got \"" + flag.substr(last + 1) + "\"");
    }
    sim::ServiceTimeChange change{*at, service->mean_service_time_seconds * factor};
    if (auto capacity = sim::capacity_rps(*service, change.mean_service_time_seconds); !capacity) {
      return fail(capacity.error().message);
    }
    auto& releases = service->releases;
    releases.insert(std::upper_bound(releases.begin(), releases.end(), change,
                                     [](const auto& a, const auto& b) { return a.at < b.at; }),
                    change);
  }
  return true;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string default_data_dir() {
  if (const char* env = std::getenv("PRESCALE_DATA_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return "../shared/data";
}

// Redraws one status line on stderr, at most ten times a second.
class ProgressLine {
 public:
  ProgressLine(std::vector<std::string> names, bool enabled)
      : names_(std::move(names)), done_(names_.size(), 0), enabled_(enabled) {}
  void update(size_t run, double done) {
    if (!enabled_) return;
    std::lock_guard lock(mu_);
    done_[run] = done;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && done < 1) return;
    last_ = now;
    std::string line = "\rsimulating";
    for (size_t i = 0; i < names_.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %3d%%", names_[i].c_str(),
                    static_cast<int>(100 * done_[i]));
      line += buf;
    }
    std::cerr << line << std::flush;
    drawn_ = true;
  }
  void finish() {
    if (drawn_) std::cerr << "\r" << std::string(12 + names_.size() * 12, ' ') << "\r";
  }

 private:
  std::vector<std::string> names_;
  std::vector<double> done_;
  bool enabled_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_{};
  bool drawn_ = false;
};

int run_sim(const SimFlags& f, const CLI::App& cmd) {
  // --- The world: topology and service parameters ---
  sim::SimServiceConfig defaults;
  defaults.mean_service_time_seconds = f.service_time_ms / 1000.0;
  defaults.workers_per_replica = f.workers;
  defaults.slo_latency_p99_seconds = f.slo_ms / 1000.0;
  defaults.startup_jitter = f.startup_jitter;
  defaults.min_replicas = f.min_replicas;
  defaults.initial_replicas = f.min_replicas;
  // The ceiling is set from the trace's peak or --max-replicas once the trace is read (below);
  // until then it only has to admit the floor.
  defaults.max_replicas = std::max(defaults.max_replicas, f.min_replicas);
  if (f.max_replicas > 0 && f.max_replicas < f.min_replicas) {
    std::cerr << "prescale sim: --max-replicas " << f.max_replicas << " is below --min-replicas "
              << f.min_replicas << "\n";
    return 2;
  }
  auto startup = duration_flag("--startup", f.startup);
  auto step = duration_flag("--step", f.step);
  auto offset = duration_flag("--offset", f.offset);
  std::optional<std::chrono::milliseconds> duration = std::chrono::milliseconds(0);
  if (!f.duration.empty()) duration = duration_flag("--duration", f.duration);
  std::optional<std::chrono::milliseconds> history = std::chrono::milliseconds(0);
  if (!f.history.empty()) history = duration_flag("--history", f.history);
  // Admission control as prescale up's gateway applies it by default: half the SLO's p99.
  std::optional<std::chrono::milliseconds> queue_limit = default_queue_limit(f.slo_ms);
  if (f.queue_limit == "none") {
    queue_limit = std::chrono::milliseconds(0);
  } else if (!f.queue_limit.empty()) {
    queue_limit = duration_flag("--queue-limit", f.queue_limit);
  }
  if (!startup || !step || !offset || !duration || !history || !queue_limit) return 2;
  defaults.queue_limit_seconds = std::chrono::duration<double>(*queue_limit).count();
  if (history->count() > offset->count()) {
    std::cerr << "prescale sim: --history " << f.history << " reaches before the trace's start ("
              << "--offset " << f.offset << ")\n";
    return 2;
  }
  if (!f.duration.empty() && duration->count() <= 0) {
    std::cerr << "prescale sim: --duration: must be positive (leave it out for the whole trace)\n";
    return 2;
  }
  if (step->count() <= 0) {
    std::cerr << "prescale sim: --step: must be positive\n";
    return 2;
  }
  defaults.startup_time = *startup;
  // Named after their flag, before the trace is read (run_experiment() checks them again).
  const std::vector<std::string> policies = split_list(f.policies);
  if (auto checked = sim::check_policy_names(policies); !checked) {
    std::cerr << "prescale sim: --policies: " << checked.error().message << "\n";
    return 2;
  }
  // Before the run, which may take minutes, not after it.
  for (auto [flag, path] :
       {std::pair{"--json", &f.json_path}, std::pair{"--timeline", &f.timeline_path},
        std::pair{"--plot", &f.plot_path}}) {
    if (!path->empty() && !output_path_usable("prescale sim", flag, *path)) return 2;
  }

  sim::SimConfig config;
  std::string topology_name = f.topology;
  std::optional<Clock::Duration> policy_period;      // the file's policy.period
  std::optional<sim::PolicySettings> file_settings;  // what the file's policy section sets
  std::map<std::string, double> error_budgets;       // the file's, for the runs' incidents
  if (!f.config_path.empty()) {
    if (cmd.count("--topology") > 0) {
      std::cerr << "prescale sim: give either --topology or -f/--config, not both\n";
      return 2;
    }
    // The file sets these for each of its services; the flag would change nothing.
    for (auto [flag, field] : {std::pair{"--slo-ms", "slo.latency_p99_ms"},
                               std::pair{"--startup", "startup_time"},
                               std::pair{"--service-time-ms", "capacity_rps"},
                               std::pair{"--min-replicas", "replicas.min"},
                               std::pair{"--max-replicas", "replicas.max"}}) {
      if (cmd.count(flag) > 0) {
        std::cerr << "prescale sim: " << flag << ": -f/--config sets each service's " << field
                  << " (" << f.config_path << "); leave the flag out\n";
        return 2;
      }
    }
    auto file = load_config_file(f.config_path);
    if (!file) {
      std::cerr << "prescale sim: " << file.error().message << "\n";
      return 2;
    }
    if (!f.capacity_from.empty()) {
      auto learned = learned_capacities(*file, f.capacity_from);
      if (!learned) {
        std::cerr << "prescale sim: --capacity-from: " << learned.error().message << "\n";
        return 2;
      }
      for (ServiceConfig& svc : file->services) {
        if (auto it = learned->find(svc.name); it != learned->end()) {
          std::cout << "capacity of " << svc.name << ": " << fixed(it->second, 1)
                    << " req/s per replica as learned (the file says " << fixed(svc.capacity_rps, 1)
                    << ")\n";
          svc.capacity_rps = it->second;
        }
      }
    }
    if (!f.startup_from.empty()) {
      auto learned = learned_startups(*file, f.startup_from);
      if (!learned) {
        std::cerr << "prescale sim: --startup-from: " << learned.error().message << "\n";
        return 2;
      }
      for (ServiceConfig& svc : file->services) {
        if (auto it = learned->find(svc.name); it != learned->end()) {
          const double real = it->second;  // saved in real seconds, as the file's
          std::cout << "startup of " << svc.name << ": " << fixed(real * 1000, 0)
                    << " ms as learned (the file says "
                    << fixed(std::chrono::duration<double, std::milli>(svc.startup_time).count(), 0)
                    << " ms)\n";
          svc.startup_time = std::chrono::milliseconds(std::max(1LL, std::llround(real * 1000)));
        }
      }
    }
    auto from = sim::sim_config_from(*file, defaults);
    if (!from) {
      std::cerr << "prescale sim: " << f.config_path << ": " << from.error().message << "\n";
      return 2;
    }
    config = std::move(*from);
    topology_name = std::filesystem::path(f.config_path).filename().string();
    policy_period = file->policy.period;
    file_settings.emplace();
    sim::apply_policy_config(file->policy, file->services, *file_settings);
    for (const ServiceConfig& svc : file->services) {
      error_budgets[svc.name] = svc.slo.error_budget;
    }
  } else {
    if (!f.capacity_from.empty() || !f.startup_from.empty()) {
      std::cerr << "prescale sim: --" << (f.capacity_from.empty() ? "startup" : "capacity")
                << "-from needs -f/--config (the services it learned)\n";
      return 2;
    }
    const std::string data_dir = f.data_dir.empty() ? default_data_dir() : f.data_dir;
    auto graph = scaling::builtin_topology(f.topology, data_dir);
    if (!graph) {
      // Only a missing or unreadable data directory is helped by pointing at it.
      const bool data_problem = graph.error().code != ErrorCode::kInvalidArgument;
      std::cerr << "prescale sim: --topology " << f.topology << ": " << graph.error().message
                << (data_problem && f.data_dir.empty() ? " (set --data-dir or PRESCALE_DATA_DIR)"
                                                       : "")
                << "\n";
      return 2;
    }
    config.graph = std::move(*graph);
    config.service_defaults = defaults;
  }
  config.step = *step;
  if (!f.entry.empty()) {
    // Only these receive the trace (the others only what their callers send them).
    for (const std::string& e : f.entry) {
      if (std::find(config.graph.services.begin(), config.graph.services.end(), e) ==
          config.graph.services.end()) {
        std::cerr << "prescale sim: --entry " << e << ": no such service in the call graph\n";
        return 2;
      }
    }
    config.graph.entries = f.entry;
  }
  if (!f.queue_limit.empty()) {
    // The flag overrides a prescale.yaml's services[].queue_limit.
    for (auto& svc : config.services) svc.queue_limit_seconds = defaults.queue_limit_seconds;
    config.service_defaults.queue_limit_seconds = defaults.queue_limit_seconds;
  }
  if (f.time_scale != 1) {
    // A replica takes its startup time of real time; on a compressed trace that is longer.
    auto scaled = [&](Clock::Duration d) {
      return std::chrono::duration_cast<Clock::Duration>(
          std::chrono::duration<double, std::nano>(static_cast<double>(d.count()) * f.time_scale));
    };
    config.service_defaults.startup_time = scaled(config.service_defaults.startup_time);
    for (auto& svc : config.services) svc.startup_time = scaled(svc.startup_time);
  }
  if (auto valid = sim::resolve_services(config); !valid) {
    // The step must divide the metric pipeline's cadences (15 s scrapes, 30 s window, 60 s
    // records): say which flag that is.
    std::cerr << "prescale sim: --step " << f.step << ": " << valid.error().message << "\n";
    return 2;
  }

  // --- The load ---
  auto load = load_trace({f.trace, f.column, f.peak_rps, f.scale, f.keep_counting_noise}, *offset,
                         *duration, *history);
  if (!load) return 2;
  if (!add_releases(config, f.releases, load->trace.duration_seconds())) return 2;
  forecast::Trace& trace = load->trace;
  forecast::Trace& before = load->before;
  const bool denoised = load->denoised;
  const double dispersion = load->dispersion;

  // Replica ceilings for the built-in topologies: twice what the trace's peak needs, at least
  // 10, so a ceiling never decides a policy's result (prescale.yaml files set their own).
  if (f.config_path.empty()) {
    auto resolved = sim::resolve_services(config);
    if (!resolved) {
      std::cerr << "prescale sim: " << resolved.error().message << "\n";
      return 2;
    }
    const std::vector<double> peak = config.graph.service_load(trace.peak_rps());
    for (size_t s = 0; s < resolved->size(); ++s) {
      auto& svc = (*resolved)[s];
      if (f.max_replicas > 0) {
        svc.max_replicas = f.max_replicas;
      } else {
        // At its slowest (a release may make it slower).
        auto cap = sim::capacity_rps(svc);
        for (const sim::ServiceTimeChange& r : svc.releases) {
          auto after = sim::capacity_rps(svc, r.mean_service_time_seconds);
          if (cap && after && *after < *cap) cap = after;
        }
        const double need = cap && *cap > 0 ? peak[s] / *cap : 0;
        // As many as --max-replicas allows; more would overflow the ceiling below or take
        // gigabytes and hours to simulate.
        constexpr double kMaxReplicas = 100000;
        if (!(need <= kMaxReplicas)) {
          std::cerr << "prescale sim: service \"" << svc.name << "\" needs " << fixed(need, 0)
                    << " replicas at the trace's peak of " << fixed(trace.peak_rps(), 1)
                    << " req/s, more than " << fixed(kMaxReplicas, 0)
                    << ": lower --peak-rps or --scale\n";
          return 2;
        }
        svc.max_replicas = std::max({10, svc.min_replicas, static_cast<int>(std::ceil(2 * need))});
      }
      svc.initial_replicas = std::clamp(svc.initial_replicas, svc.min_replicas, svc.max_replicas);
    }
    config.services = std::move(*resolved);
  }

  // --- The experiment ---
  sim::ExperimentOptions options;
  options.sim = config;
  options.policies = policies;
  options.threads = f.threads;
  options.keep_timeline = !f.timeline_path.empty();
  options.results.error_budgets = error_budgets;
  options.settings.hpa.target_cpu_utilization_percent = f.hpa_target;
  options.settings.kpa.target_utilization = f.kpa_utilization;
  options.settings.aws.target_utilization = f.aws_utilization;
  options.settings.static_headroom = f.static_headroom;
  // The command line wins over the file's policy section.
  options.settings.prescale.quantile = file_settings && cmd.count("--prescale-quantile") == 0
                                           ? file_settings->prescale.quantile
                                           : f.prescale_quantile;
  options.settings.prescale.error_budget =
      file_settings && cmd.count("--prescale-error-budget") == 0
          ? file_settings->prescale.error_budget
          : f.prescale_error_budget;
  options.settings.prescale.budget_step = f.prescale_budget_step;
  options.settings.prescale.floor_headroom = f.prescale_floor_headroom;
  // Each delay from the file unless its flag is given.
  for (auto [flag, text, field] :
       {std::tuple{"--prescale-scale-down-delay", &f.prescale_scale_down_delay,
                   &scaling::PrescalePolicyOptions::scale_down_delay},
        std::tuple{"--prescale-forecast-scale-down-delay", &f.prescale_forecast_scale_down_delay,
                   &scaling::PrescalePolicyOptions::forecast_scale_down_delay}}) {
    if (file_settings && cmd.count(flag) == 0) {
      options.settings.prescale.*field = file_settings->prescale.*field;
    } else {
      auto delay = duration_flag(flag, *text);
      if (!delay) return 2;
      options.settings.prescale.*field = *delay;
    }
  }
  if (policy_period) options.settings.prescale.period = *policy_period;
  if (!before.counts.empty()) {
    // Per-minute means, req/s, of what each entry service received before the trace's start.
    const forecast::Trace minutes =
        before.step_seconds == 60 ? before : forecast::resample(before, 60);
    forecast::Series series;
    series.step_seconds = 60;
    for (size_t i = 0; i < minutes.counts.size(); ++i) series.values.push_back(minutes.rate_rps(i));
    for (const std::string& e : config.graph.entries) options.history[e] = series;
  }
  const bool show_progress =
      f.progress == "always" || (f.progress == "auto" && ::isatty(STDERR_FILENO) != 0);
  ProgressLine progress(options.policies, show_progress);
  options.progress = [&progress](size_t run, double done) { progress.update(run, done); };
  const auto began = std::chrono::steady_clock::now();
  auto result = sim::run_experiment(options, trace);
  progress.finish();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  if (!result) {
    std::cerr << "prescale sim: " << result.error().message << "\n";
    return result.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }

  // --- Report ---
  SimRunFacts facts;
  facts.trace = trace.name;
  facts.topology = topology_name;
  facts.duration_seconds = trace.duration_seconds();
  facts.requests = trace.total_requests();
  facts.peak_rps = minute_peak_rps(trace);
  // A prescale.yaml sets each service's SLO and startup time; the flags only the others'.
  facts.slo_and_startup =
      f.config_path.empty()
          ? "SLO p99 " + fixed(f.slo_ms, 0) + " ms; startup " + internal::format_duration(*startup)
          : "SLO and startup per service";
  facts.notes =
      (f.time_scale != 1 ? "; time compressed " + fixed(f.time_scale, 0) + "x" : "") +
      (history->count() > 0 ? "; history " + f.history : "") +
      (!f.config_path.empty() && f.queue_limit.empty() ? "; queue limits per service"
       : queue_limit->count() > 0 ? "; queue limit " + internal::format_duration(*queue_limit)
                                  : "; no queue limit") +
      (denoised ? "; counting noise removed (dispersion " + fixed(dispersion, 2) + ")" : "");
  if (f.config_path.empty()) {
    facts.slo_ms = f.slo_ms;
    facts.startup_seconds = std::chrono::duration<double>(*startup).count();
  }
  facts.queue_limit_seconds =  // with -f alone, each service's own
      !f.config_path.empty() && f.queue_limit.empty() ? 0 : defaults.queue_limit_seconds;
  facts.wall_seconds = wall;
  print_sim_summary(std::cout, *result, facts, f.per_service);

  if (!f.json_path.empty()) {
    const std::string json = sim_results_json(*result, facts).dump(2) + "\n";
    if (!write_command_output("prescale sim", "--json", f.json_path, json)) return 1;
  }

  if (!f.timeline_path.empty()) {
    std::ostringstream csv;
    sim::write_timeline_csv(csv, *result);
    if (!write_command_output("prescale sim", "--timeline", f.timeline_path, csv.str())) return 1;
  }

  if (!f.plot_path.empty()) {
    const std::string html = dashboard::render_sim_report_html(sim_plot(*result, facts));
    if (!write_command_output("prescale sim", "--plot", f.plot_path, html)) return 1;
  }
  return 0;
}

}  // namespace

SimCommand::SimCommand(CLI::App& app) : flags_(std::make_unique<SimFlags>()) {
  command_ = app.add_subcommand(
      "sim", "Replay a trace through the simulated cluster under each policy and compare");
  add_sim_flags(*command_, *flags_);
}

SimCommand::~SimCommand() = default;

bool SimCommand::parsed() const { return command_->parsed(); }

int SimCommand::run() const { return run_sim(*flags_, *command_); }

}  // namespace prescale
