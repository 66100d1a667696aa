#include "sim_flags.h"

#include "cli_checks.h"

namespace prescale {

void add_sim_flags(CLI::App& c, SimFlags& f) {
  c.add_option("--trace", f.trace, "Trace file (docs/traces.md)")->required();
  c.add_option("--column", f.column, "Trace value column (default: the format's)");
  c.add_option("--topology", f.topology, "single, online-boutique or train-ticket")
      ->capture_default_str();
  c.add_option("-f,--config", f.config_path,
               "Simulate the services and depends_on graph of a prescale.yaml instead");
  c.add_option("--data-dir", f.data_dir,
               "Shared data directory with callgraphs/ (default: $PRESCALE_DATA_DIR or "
               "../shared/data)");
  c.add_option("--policies", f.policies,
               "Comma-separated: prescale, hpa, kpa, aws, static, oracle, or an ablation: "
               "prescale-no-topology, prescale-p50, prescale-no-floor, prescale-fixed-capacity")
      ->capture_default_str();
  c.add_option("--slo-ms", f.slo_ms, "p99 latency SLO, ms")
      ->check(finite())
      ->check(positive())
      ->capture_default_str();
  c.add_option("--startup", f.startup, "Replica startup time (e.g. 60s, 2m)")
      ->capture_default_str();
  c.add_option("--startup-jitter", f.startup_jitter,
               "Startup time drawn uniformly within ± this fraction")
      ->check(finite())
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
  c.add_option("--peak-rps", f.peak_rps,
               "Rescale the trace so its busiest minute averages this many req/s")
      ->check(finite())
      ->check(positive());
  c.add_option("--scale", f.scale,
               "Multiply the trace's requests by this, as prescale load --scale replays it "
               "(instead of --peak-rps)")
      ->check(finite())
      ->check(positive())
      ->excludes("--peak-rps");
  c.add_flag("--keep-counting-noise", f.keep_counting_noise,
             "With --peak-rps above the trace's peak, keep the source's counting noise instead of "
             "removing it before scaling up (docs/traces.md)");
  c.add_option("--offset", f.offset, "Start this far into the trace (e.g. 168h)")
      ->capture_default_str();
  c.add_option("--duration", f.duration, "Simulate only this much of the trace (e.g. 24h)");
  c.add_option("--history", f.history,
               "Give the prescale policies this much of the trace before --offset as their "
               "learned history, as prescale up --seed-trace does (e.g. 120h)");
  c.add_option("--entry", f.entry,
               "Services that receive the trace (repeatable or comma-separated; default: every "
               "service nothing calls)")
      ->delimiter(',');
  c.add_option("--capacity-from", f.capacity_from,
               "With -f: per-replica capacities as a prescale up run learned them (its "
               "--state-dir) instead of the file's capacity_rps, for the services it learned");
  c.add_option("--startup-from", f.startup_from,
               "With -f: replica startup times as a prescale up run learned them (its "
               "--state-dir; the median of those it kept) instead of the file's startup_time, "
               "for the services it learned");
  c.add_option("--time-scale", f.time_scale,
               "The trace's time runs this many times faster than real time, as under prescale "
               "up --time-scale: replica startup times are that many times longer in it")
      ->check(finite())
      ->check(CLI::Range(1.0, 100000.0))
      ->capture_default_str();
  c.add_option("--queue-limit", f.queue_limit,
               "Admission control: refuse a request when its service's queue holds this much "
               "work for its ready replicas (default: half the SLO's p99, as prescale up "
               "applies it; 0 or none: no limit; with -f: each service's queue_limit)");
  c.add_option("--release", f.releases,
               "SERVICE:AT:FACTOR: a release that makes SERVICE's mean service time FACTOR times "
               "its first from AT into the run on (e.g. productcatalogservice:168h:1.5); "
               "repeatable; policies are not told (docs/simulator.md)")
      ->take_all();
  c.add_option("--step", f.step, "Simulation step")->capture_default_str();
  c.add_option("--service-time-ms", f.service_time_ms, "Mean service time of a request, ms")
      ->check(finite())
      ->check(positive())
      ->capture_default_str();
  c.add_option("--workers", f.workers, "Requests one replica serves at once")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  c.add_option("--min-replicas", f.min_replicas, "Replica floor of every service")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  c.add_option("--max-replicas", f.max_replicas,
               "Replica ceiling of every service; 0 = twice the trace's peak need (at least 10)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  c.add_option("--hpa-target", f.hpa_target, "hpa: target CPU utilisation, percent")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  c.add_option("--kpa-target-utilization", f.kpa_utilization,
               "kpa: share of containerConcurrency to aim for")
      ->check(finite())
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  c.add_option("--aws-target-utilization", f.aws_utilization,
               "aws: target CPU utilisation (fraction) for target tracking and the forecast")
      ->check(finite())
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  c.add_option("--static-headroom", f.static_headroom, "static: replicas for peak × this")
      ->check(finite())
      ->check(positive())
      ->capture_default_str();
  c.add_option("--prescale-quantile", f.prescale_quantile,
               "prescale: the demand quantile replicas are planned for, 0.5 to 0.9999")
      ->check(finite())
      ->check(CLI::Range(0.5, 0.9999))
      ->capture_default_str();
  c.add_option("--prescale-scale-down-delay", f.prescale_scale_down_delay,
               "prescale: apply a lower replica count only once the plan has stayed lower this "
               "long (the HPA's scale-down stabilisation window)")
      ->capture_default_str();
  c.add_option("--prescale-forecast-scale-down-delay", f.prescale_forecast_scale_down_delay,
               "prescale: the same while a forecast plans the service (its own or its callers')")
      ->capture_default_str();
  c.add_option("--prescale-error-budget", f.prescale_error_budget,
               "prescale: steer the planning quantile so that the share of requests over the SLO "
               "or dropped tracks this budget (0 = plan at --prescale-quantile always)")
      ->check(finite())
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  c.add_option("--prescale-floor-headroom", f.prescale_floor_headroom,
               "prescale: the reactive floor's margin over the observed load (0.05: 5 %)")
      ->check(finite())
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c.add_option("--prescale-budget-step", f.prescale_budget_step,
               "prescale: how far one minute's budget error moves the planning quantile's score")
      ->check(finite())
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c.add_option("--threads", f.threads, "Policies simulated at once; 0 = one per core")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  c.add_option("--progress", f.progress, "auto (when stderr is a terminal), always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  c.add_flag("--per-service", f.per_service, "Also print a table per service");
  c.add_option("--json", f.json_path, "Write the results as JSON (docs/simulator.md)");
  c.add_option("--timeline", f.timeline_path,
               "Write every policy's per-service, per-minute records and scaling actions as CSV "
               "(docs/simulator.md)");
  c.add_option("--plot", f.plot_path, "Write an HTML plot of load, replicas and SLO misses");
}

}  // namespace prescale
