#include "worlds/sim/experiment.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include "control/controller.h"
#include "core/clock.h"
#include "scaling/oracle.h"
#include "scaling/static_policy.h"
#include "worlds/sim/sim_world.h"

namespace prescale::sim {

namespace {

double seconds_of(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

std::string known_policies() {
  std::string out;
  for (std::string_view name : kPolicyNames) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// The oracle's demand step: the trace's own step (the finest resolution its demand is known
// at) rounded up to whole simulation steps.
Clock::Duration oracle_step(const forecast::Trace& trace, Clock::Duration sim_step) {
  const double ratio = trace.step_seconds / seconds_of(sim_step);
  const auto steps = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(ratio - 1e-9)));
  return sim_step * steps;
}

// Each service's true demand per oracle step: the trace's arrival rate at the entries, carried
// along the graph's fan-outs, in requests of the speed the policies were told (a release that
// makes a service slower makes each of its requests count for more).
std::vector<scaling::OracleDemand> oracle_demand(
    const forecast::Trace& trace, const scaling::CallGraph& graph, Clock::Duration step,
    const std::vector<std::vector<std::pair<double, double>>>& factors) {
  const double step_seconds = seconds_of(step);
  const forecast::Trace at_step = std::abs(step_seconds - trace.step_seconds) < 1e-9
                                      ? trace
                                      : forecast::resample(trace, step_seconds);
  const std::vector<double> per_entry_rps = graph.service_load(1.0);
  std::vector<scaling::OracleDemand> demand;
  for (size_t s = 0; s < graph.services.size(); ++s) {
    scaling::OracleDemand d{graph.services[s], {}};
    d.demand_rps.reserve(at_step.counts.size());
    double factor = 1;
    size_t next = 0;
    for (size_t i = 0; i < at_step.counts.size(); ++i) {
      // A release during the step counts for the whole step: the oracle is ready for the
      // slowest speed the step sees (a release rolled back within it too).
      const double end = static_cast<double>(i + 1) * step_seconds;
      double slowest = factor;
      while (s < factors.size() && next < factors[s].size() && factors[s][next].first < end) {
        factor = factors[s][next++].second;
        slowest = std::max(slowest, factor);
      }
      d.demand_rps.push_back(per_entry_rps[s] * at_step.rate_rps(i) * slowest);
    }
    demand.push_back(std::move(d));
  }
  return demand;
}

// What policies may be built from in `world`.
PolicyContext context_of(const SimWorld& world, const forecast::Trace& trace,
                         const SimConfig& config) {
  PolicyContext context{&trace, &config.graph, config.start, config.step, {}};
  for (const ServiceInfo& service : world.recorder().services()) {
    std::vector<std::pair<double, double>> factors;
    for (const auto& [at, capacity] : service.capacity_changes) {
      factors.emplace_back(at, service.capacity_rps / capacity);
    }
    context.demand_factors.push_back(std::move(factors));
  }
  return context;
}

struct RunSetup {
  SimConfig config;
  const forecast::Trace* trace = nullptr;
  PolicySettings settings;
  const std::map<std::string, forecast::Series>* history = nullptr;
  bool keep_timeline = false;
  ResultOptions results;
};

// Arrivals at the entry services per record interval, req/s.
std::vector<double> entry_load(const SimRecorder& recorder, const scaling::CallGraph& graph) {
  std::vector<double> load;
  for (const std::string& entry : graph.entries) {
    const int s = recorder.index_of(entry);
    if (s < 0) continue;
    const auto records = recorder.records(static_cast<size_t>(s));
    if (load.size() < records.size()) load.resize(records.size(), 0.0);
    for (size_t i = 0; i < records.size(); ++i) {
      if (records[i].seconds > 0) load[i] += records[i].arrived / records[i].seconds;
    }
  }
  return load;
}

// Runs one policy; `load`, when given, receives the entry load per record interval.
Result<PolicyRun> run_policy(const RunSetup& setup, std::string_view name,
                             const std::function<void(double)>& progress,
                             std::vector<double>* load) {
  const auto started = std::chrono::steady_clock::now();
  auto world = SimWorld::create(setup.config, *setup.trace);
  if (!world) return std::unexpected(world.error());
  auto policy = make_policy(name, setup.settings, context_of(**world, *setup.trace, setup.config));
  if (!policy) return std::unexpected(policy.error());

  ManualClock clock;
  if (setup.config.start > clock.now()) clock.set(setup.config.start);
  control::Controller controller(**world, **policy, (*world)->specs(), clock);
  if (auto* prescale = dynamic_cast<scaling::PrescalePolicy*>(policy->get());
      prescale != nullptr && setup.history != nullptr) {
    for (const auto& [service, minutes] : *setup.history) {
      if (auto loaded = prescale->load_history(service, minutes, clock.now()); !loaded) {
        return std::unexpected(loaded.error());
      }
    }
  }
  const Clock::TimePoint start = clock.now();
  // To the end of the step that holds the trace's end: a step that does not divide the trace's
  // length still delivers its last partial step's requests.
  const Clock::Duration step = setup.config.step;
  const Clock::TimePoint trace_end = (*world)->trace_end();
  const Clock::TimePoint end =
      setup.config.start +
      (trace_end - setup.config.start + step - Clock::Duration(1)) / step * step;
  const double total = std::max(1e-9, seconds_of(end - start));
  int reported = -1;
  while (clock.now() < end) {
    controller.tick();
    const Clock::TimePoint next = std::min(controller.next_tick(), end);
    (*world)->advance_to(next);
    clock.set(next);
    if (progress) {
      const int percent = static_cast<int>(100 * seconds_of(clock.now() - start) / total);
      if (percent != reported) {
        reported = percent;
        progress(std::min(1.0, percent / 100.0));
      }
    }
  }
  (*world)->flush();

  PolicyRun run;
  run.policy = std::string(name);
  const SimRecorder& recorder = (*world)->recorder();
  run.results = compute_results(recorder, setup.results);
  run.scale_actions = static_cast<int>(controller.events().size());
  run.service_scale_actions.assign(recorder.services().size(), 0);
  for (const control::Event& e : controller.events()) {
    const int s = recorder.index_of(e.service);
    if (s >= 0) ++run.service_scale_actions[static_cast<size_t>(s)];
  }
  for (size_t s = 0; s < recorder.services().size(); ++s) {
    const auto records = recorder.records(s);
    if (run.replicas.size() < records.size()) run.replicas.resize(records.size(), 0.0);
    for (size_t i = 0; i < records.size(); ++i) {
      if (records[i].seconds > 0) {
        run.replicas[i] += records[i].replica_seconds() / records[i].seconds;
      }
    }
  }
  if (load != nullptr) *load = entry_load(recorder, setup.config.graph);
  if (setup.keep_timeline) {
    run.recorder = recorder;
    run.events = controller.events();
  }
  run.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return run;
}

}  // namespace

void apply_policy_config(const PolicyConfig& policy, const std::vector<ServiceConfig>& services,
                         PolicySettings& settings) {
  settings.prescale.quantile = policy.quantile;
  settings.prescale.scale_down_delay = policy.scale_down_delay;
  settings.prescale.forecast_scale_down_delay = policy.forecast_scale_down_delay;
  settings.prescale.error_budget = 0;
  if (policy.steer_to_slo && !services.empty()) {
    double budget = services.front().slo.error_budget;
    for (const ServiceConfig& s : services) budget = std::min(budget, s.slo.error_budget);
    settings.prescale.error_budget = budget;
  }
}

Result<std::unique_ptr<scaling::Policy>> make_policy(std::string_view name,
                                                     const PolicySettings& settings,
                                                     const PolicyContext& context) {
  if (name == "prescale" || name.starts_with("prescale-")) {
    scaling::PrescalePolicyOptions options = settings.prescale;
    if (name == "prescale-no-topology") {
      options.use_topology = false;
    } else if (name == "prescale-p50") {
      options.quantile = 0.5;
    } else if (name == "prescale-no-floor") {
      options.reactive_floor = false;
    } else if (name == "prescale-fixed-capacity") {
      options.learn_capacity = false;
    } else if (name != "prescale") {
      return make_error(ErrorCode::kInvalidArgument,
                        "unknown policy \"" + std::string(name) + "\"; known: " + known_policies());
    }
    if (auto valid = scaling::validate_prescale_policy_options(options); !valid) {
      return std::unexpected(valid.error());
    }
    return std::make_unique<scaling::PrescalePolicy>(std::move(options));
  }
  if (name == "hpa") return std::make_unique<scaling::HpaPolicy>(settings.hpa);
  if (name == "kpa") return std::make_unique<scaling::KpaPolicy>(settings.kpa);
  if (name == "aws") {
    if (auto valid = scaling::validate_aws_predictive_options(settings.aws); !valid) {
      return std::unexpected(valid.error());
    }
    return std::make_unique<scaling::AwsPredictivePolicy>(settings.aws);
  }
  if (name == "static" || name == "oracle") {
    if (context.trace == nullptr || context.graph == nullptr) {
      return make_error(ErrorCode::kInvalidArgument,
                        "policy \"" + std::string(name) + "\" needs the trace and the call graph");
    }
    if (name == "static") {
      if (!(settings.static_headroom > 0)) {
        return make_error(ErrorCode::kInvalidArgument, "static headroom must be > 0");
      }
      const std::vector<double> load = context.graph->service_load(context.trace->peak_rps());
      std::map<std::string, double, std::less<>> peaks;
      for (size_t s = 0; s < context.graph->services.size(); ++s) {
        peaks[context.graph->services[s]] = load[s];
      }
      return std::make_unique<scaling::StaticPolicy>(std::move(peaks), settings.static_headroom);
    }
    const Clock::Duration step = oracle_step(*context.trace, context.step);
    return std::make_unique<scaling::OraclePolicy>(
        context.start, step,
        oracle_demand(*context.trace, *context.graph, step, context.demand_factors));
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown policy \"" + std::string(name) + "\"; known: " + known_policies());
}

Result<void> check_policy_names(const std::vector<std::string>& policies) {
  if (policies.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "no policies to run; known: " + known_policies());
  }
  for (size_t i = 0; i < policies.size(); ++i) {
    const std::string& name = policies[i];
    if (std::find(std::begin(kPolicyNames), std::end(kPolicyNames), name) ==
        std::end(kPolicyNames)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "unknown policy \"" + name + "\"; known: " + known_policies());
    }
    if (std::find(policies.begin(), policies.begin() + static_cast<long>(i), name) !=
        policies.begin() + static_cast<long>(i)) {
      return make_error(ErrorCode::kInvalidArgument, "policy \"" + name + "\" is listed twice");
    }
  }
  return {};
}

Result<ExperimentResult> run_experiment(const ExperimentOptions& options,
                                        const forecast::Trace& trace) {
  if (auto checked = check_policy_names(options.policies); !checked) {
    return std::unexpected(checked.error());
  }
  if (trace.counts.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "trace \"" + trace.name + "\" has no steps");
  }

  // The common starting state: resolve every service, then give each the oracle's first-step
  // replicas (what the load at the start and within one startup time needs).
  RunSetup setup{options.sim,           &trace,         options.settings, &options.history,
                 options.keep_timeline, options.results};
  auto resolved = resolve_services(setup.config);
  if (!resolved) return std::unexpected(resolved.error());
  for (auto& s : *resolved) s.initial_replicas = s.min_replicas;
  setup.config.services = *resolved;
  auto probe = SimWorld::create(setup.config, trace);
  if (!probe) return std::unexpected(probe.error());
  ExperimentResult out;
  out.specs = (*probe)->specs();
  out.record_interval_seconds = seconds_of(setup.config.record_interval);
  {
    auto oracle = make_policy("oracle", setup.settings, context_of(**probe, trace, setup.config));
    if (!oracle) return std::unexpected(oracle.error());
    (*oracle)->init(out.specs);
    const auto& plan = static_cast<const scaling::OraclePolicy&>(**oracle);
    for (auto& s : setup.config.services) {
      const auto schedule = plan.schedule(s.name);
      const int first = schedule.empty() ? s.min_replicas : schedule.front();
      s.initial_replicas = std::clamp(first, s.min_replicas, s.max_replicas);
      out.initial_replicas.push_back(s.initial_replicas);
    }
  }
  probe->reset();

  // The oracle always runs: every cost ratio is taken against it.
  std::vector<std::string> names = options.policies;
  const bool oracle_listed = std::find(names.begin(), names.end(), "oracle") != names.end();
  if (!oracle_listed) names.push_back("oracle");

  std::vector<std::optional<Result<PolicyRun>>> runs(names.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < names.size(); i = next++) {
      std::function<void(double)> progress;
      if (options.progress && i < options.policies.size()) {
        progress = [&options, i](double done) { options.progress(i, done); };
      }
      runs[i] = run_policy(setup, names[i], progress, i == 0 ? &out.load_rps : nullptr);
    }
  };
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t threads = std::min<size_t>(
      names.size(), options.threads > 0 ? static_cast<size_t>(options.threads) : cores);
  {
    std::vector<std::jthread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
  }

  for (auto& run : runs) {
    if (!*run) return std::unexpected(run->error());
  }
  const PolicyRun& oracle_run =
      **runs[static_cast<size_t>(std::find(names.begin(), names.end(), "oracle") - names.begin())];
  out.oracle_replica_hours = oracle_run.results.total.replica_hours;
  for (size_t i = 0; i < options.policies.size(); ++i) {
    PolicyRun run = std::move(**runs[i]);
    run.cost_ratio_to_oracle = out.oracle_replica_hours > 0
                                   ? run.results.total.replica_hours / out.oracle_replica_hours
                                   : std::numeric_limits<double>::quiet_NaN();
    out.runs.push_back(std::move(run));
  }
  return out;
}

}  // namespace prescale::sim
