#include "up_command.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>

#include "admin_endpoints.h"
#include "command_util.h"
#include "control/controller.h"
#include "control/history_store.h"
#include "control/persistent_policy_state.h"
#include "core/config.h"
#include "core/host_port.h"
#include "core/logging.h"
#include "core/port_file.h"
#include "dashboard/dashboard.h"
#include "dashboard/dashboard_model.h"
#include "dashboard_feed.h"
#include "endpoint_watch.h"
#include "feed_state.h"
#include "forecast/trace.h"
#include "gateway/gateway.h"
#include "gateway_listeners.h"
#include "gateway_tls.h"
#include "healing/healer.h"
#include "healing/rollout_watch.h"
#include "http/router.h"
#include "http/server.h"
#include "learned_admission.h"
#include "local_platform.h"
#include "replica_metrics.h"
#include "runtime/runtime.h"
#include "scaling/prescale_policy.h"
#include "telemetry/process_metrics.h"
#include "telemetry/registry.h"
#include "telemetry/tracing.h"
#include "worlds/local/local_world.h"
#include "worlds/local/process.h"
#include "worlds/local/supervisor.h"
#include "worlds/sim/experiment.h"

namespace prescale {

struct UpFlags {
  std::string config_path;
  std::string policy;  // "": the config's
  bool recommend_only = false;
  std::string state_dir = ".prescale";
  double time_scale = 1;
  std::string ui_listen{kDefaultUiListen};
  int gateway_port = -1;  // -1: gateway.listen's
  std::string port_file;     // the gateway's port
  std::string ui_port_file;  // the dashboard's port
  std::string log_level;
  // Seeding a fresh state with earlier load (the demo's earlier days of a trace).
  std::string seed_trace;
  std::string seed_service;
  double seed_until_days = 0;  // seed the trace's minutes before this offset from its start
  double seed_scale = 1;       // trace requests per second × this = the service's req/s
  double ready_wait_seconds = 60;  // for the initial replicas, before the ports are announced
};

namespace {

double unix_seconds(Clock::WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// The trace's minutes before `until_days` (at most `max_minutes` of them) as a per-minute series
// of req/s, scaled: what the entry service would have seen on earlier days.
Result<forecast::Series> seed_minutes(const UpFlags& f, size_t max_minutes) {
  forecast::TraceOptions options;
  options.step_seconds = 60;
  auto trace = forecast::read_trace(f.seed_trace, options);
  if (!trace) return std::unexpected(trace.error());
  // Compared before rounding: llround() of an infinite or huge day count has no value.
  const double until_minutes = f.seed_until_days * 1440;
  const auto minutes = static_cast<double>(trace->counts.size());
  if (!(until_minutes >= 0.5 && until_minutes < minutes + 0.5)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--seed-until-days " + std::to_string(f.seed_until_days) +
                          " is outside the trace (" +
                          std::to_string(static_cast<double>(trace->counts.size()) / 1440) +
                          " days)");
  }
  const auto until = static_cast<size_t>(std::llround(until_minutes));
  const size_t from = until > max_minutes ? until - max_minutes : 0;
  forecast::Series series;
  series.step_seconds = 60;
  for (size_t i = from; i < until; ++i) {
    series.values.push_back(trace->counts[i] / 60.0 * f.seed_scale);
  }
  return series;
}

const char* signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "SIGINT";
}

// Stops every replica and waits up to `within` for them to be gone. One of `signals` (blocked)
// meanwhile — a second Ctrl-C — ends the wait: false, and what still runs is killed with the
// supervisor (each Process kills its group).
bool stop_replicas(local::Supervisor& supervisor, Clock& real, std::chrono::seconds within,
                   const sigset_t& signals) {
  supervisor.stop_all();
  const Clock::TimePoint give_up = real.now() + within;
  const timespec poll{0, 50'000'000};
  while (!supervisor.idle() && real.now() < give_up) {
    supervisor.tick(real.now());
    if (const int sig = sigtimedwait(&signals, nullptr, &poll); sig > 0) {
      spdlog::warn("received {} again: not waiting for the drain; killing what still runs",
                   signal_name(sig));
      return false;
    }
  }
  return true;
}

// Rollout analysis: each service rolling out has its new revision judged against the old one on
// what the gateway counted of both (RolloutWatch); one that fares worse is failed, and so rolled
// back (Supervisor::failing).
void judge_rollouts(local::Supervisor& supervisor, const std::vector<ServiceConfig>& services,
                    const telemetry::Registry& gateway_registry, healing::RolloutWatch& watch,
                    Clock::TimePoint now, bool enabled) {
  std::map<std::string, healing::RolloutRevisions> rolling;
  std::vector<healing::RolloutReplica> replicas;
  for (const ServiceConfig& s : services) {
    if (!enabled) break;  // and what was counted is forgotten: switched on, it starts afresh
    const local::RolloutStatus rollout = supervisor.rollout(s.name);
    if (!rollout.rolling) continue;
    rolling[s.name] = {rollout.revision, rollout.stable};
    for (const local::ReplicaStatus& r : supervisor.replicas(s.name)) {
      replicas.push_back({s.name, r.id, r.revision, std::to_string(r.pid),
                          r.port == 0 ? "" : "127.0.0.1:" + std::to_string(r.port), r.ready_at});
    }
  }
  if (rolling.empty()) {
    (void)watch.look({}, {}, {}, now);  // forgets the rollouts that ended
    return;
  }
  for (const healing::RolloutFailure& f : watch.look(
           rolling, replicas, healing::attempts_by_upstream(gateway_registry.collect()), now)) {
    (void)supervisor.failing(f.replica, f.why);
  }
}

// The healer's look at the memory of every ready replica with a limit (services[].memory_limit,
// as its revision has it): the supervisor's last reading of it, and the lead a replacement
// needs — the longest start-to-ready time among the service's ready replicas, twice over for the
// once-a-second looks and the trend's error, and 10 s for the old replica's drain.
void look_at_memory(const local::Supervisor& supervisor, healing::Healer& healer) {
  for (const std::string& service : supervisor.services()) {
    const std::vector<local::ReplicaStatus> replicas = supervisor.replicas(service);
    Clock::Duration startup{0};
    for (const local::ReplicaStatus& r : replicas) {
      if (r.ready_at) startup = std::max(startup, *r.ready_at - r.started_at);
    }
    const Clock::Duration lead = 2 * startup + std::chrono::seconds(10);
    for (const local::ReplicaStatus& r : replicas) {
      if (r.memory_limit_bytes > 0 && r.memory_at && !r.retiring &&
          r.phase == local::ReplicaPhase::kReady) {
        healer.memory(service, r.id, *r.memory_at, r.memory_bytes, r.memory_limit_bytes, lead);
      }
    }
  }
}

int run_up(const UpFlags& f) {
  auto error = [](const std::string& message) {
    std::cerr << "prescale up: " << message << "\n";
    return 2;
  };
  // What a reload compares the file with (below): read before it is loaded, so that an edit made
  // while the platform starts is applied once it has.
  std::optional<std::string> file_text = read_whole_file(f.config_path);
  auto loaded = load_config_file(f.config_path);
  if (!loaded) return error(loaded.error().message);
  Config config = std::move(*loaded);
  if (config.world != WorldKind::kLocal) {
    return error(f.config_path + ": world is " + std::string(to_string(config.world)) +
                 "; prescale up runs the local world (for Kubernetes: prescale render "
                 "kubernetes -f " +
                 f.config_path + " --image IMAGE, docs/kubernetes.md)");
  }
  if (!(f.time_scale >= 1 && f.time_scale <= 10000)) {
    return error("--time-scale must be in [1, 10000]");
  }
  // Here, not by CLI::Range, which lets "nan" through: every comparison with NaN is false.
  if (!(f.ready_wait_seconds >= 0 && f.ready_wait_seconds <= 3600)) {
    return error("--ready-wait must be in [0, 3600] seconds");
  }
  if (!f.seed_trace.empty() && (f.seed_service.empty() || !(f.seed_until_days > 0))) {
    return error("--seed-trace needs --seed-service and --seed-until-days > 0");
  }
  if (!(f.seed_scale >= 0) || !std::isfinite(f.seed_scale)) {
    return error("--seed-scale must be a finite number >= 0");
  }
  if (!f.seed_service.empty() &&
      std::none_of(config.services.begin(), config.services.end(),
                   [&](const ServiceConfig& s) { return s.name == f.seed_service; })) {
    return error("--seed-service " + f.seed_service + ": no such service in " + f.config_path);
  }
  const std::string level =
      f.log_level.empty() ? std::string(to_string(config.logging.level)) : f.log_level;
  if (!init_logging({.level = level, .format = config.logging.format})) {
    return error("--log-level: unknown level \"" + level + "\"");
  }
  auto gw_listen = parse_listen(config.gateway.listen);
  if (!gw_listen) return error(gw_listen.error().message);
  if (f.gateway_port >= 0) gw_listen->port = static_cast<uint16_t>(f.gateway_port);
  auto ui_listen = parse_listen(f.ui_listen, "--ui");
  if (!ui_listen) return error(ui_listen.error().message);
  if (auto ok = preflight(config, f.config_path, *gw_listen, *ui_listen); !ok) {
    return error(ok.error().message);
  }

  auto live_policy = live_policy_name(config, f.policy);
  if (!live_policy) return error(live_policy.error().message);
  const std::string& policy_name = *live_policy;
  // The seed is read here, before anything starts, so that one it cannot use is refused as a
  // bad flag; it is loaded only on a first start (below).
  std::optional<forecast::Series> seed;
  if (!f.seed_trace.empty()) {
    if (policy_name != "prescale" && !policy_name.starts_with("prescale-")) {
      return error("--seed-trace seeds the prescale policy's history; the policy is " +
                   policy_name);
    }
    const auto max_history = std::chrono::duration_cast<std::chrono::minutes>(
        scaling::PrescalePolicyOptions{}.max_history);
    auto minutes = seed_minutes(f, static_cast<size_t>(max_history.count()));
    if (!minutes) return error("--seed-trace " + f.seed_trace + ": " + minutes.error().message);
    seed = std::move(*minutes);
  }
  const std::filesystem::path state(f.state_dir);
  for (const std::filesystem::path& dir : {state / "logs", state / "run"}) {
    // Each checked before the next: a later success would clear the error code.
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return error("--state-dir " + f.state_dir + ": cannot create " + dir.string() + ": " +
                   ec.message());
    }
  }

  // One platform per state directory (StateLock).
  Result<StateLock> lock = StateLock::take(state, f.state_dir);
  if (!lock) {
    if (lock.error().code != ErrorCode::kUnavailable) return error(lock.error().message);
    std::cerr << "prescale up: " << lock.error().message << "\n";
    return 1;
  }
  // The port files say the platform is up: an earlier run's must not say so while this one
  // starts (whoever waits for them would take its port), nor this one's once it has stopped.
  auto remove_port_files = [&] {
    for (const std::string& file : {f.port_file, f.ui_port_file}) {
      if (!file.empty()) ::unlink(file.c_str());
    }
  };
  remove_port_files();

  // SIGHUP sent by a process (`kill -HUP`) asks for a reload of the file (below), as it does of
  // `prescale gateway`, nginx or Prometheus; sent by the kernel (the terminal the platform runs
  // in closed) it stops the platform as SIGTERM does, unless SIGHUP was ignored when it started
  // (`nohup`). Its default action would kill the platform on the spot.
  struct sigaction at_start {};
  const bool hangups_ignored = ::sigaction(SIGHUP, nullptr, &at_start) == 0 &&
                               at_start.sa_handler == SIG_IGN;  // NOLINT: a libc macro
  runtime::Runtime::block_termination_signals();
  sigset_t hangup;
  sigemptyset(&hangup);
  sigaddset(&hangup, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &hangup, nullptr);

  // The data plane: the gateway, its endpoints filled in by the supervisor.
  telemetry::Registry registry;
  telemetry::register_process_metrics(registry);
  ReplicaMetrics replica_metrics(registry);  // the replicas' memory, revisions, rollouts
  // A request held for a service with no replica: the controller looks at once, not at its
  // next observation (up to a second later under the prescale policy).
  std::atomic<bool> held_for_replica{false};
  Clock::TimePoint last_observed_now{};  // on the real clock
  gateway::GatewayOptions gateway_options;
  gateway_options.registry = &registry;
  gateway_options.on_hold = [&held_for_replica](std::string_view) {
    held_for_replica.store(true, std::memory_order_relaxed);
  };
  gateway_options.on_dns_problem = [](const std::string& line) {
    spdlog::warn("gateway.upstreams: {}", line);
  };
  // The gateway's spans go where the file's `tracing` says, else where OTEL_* variables say.
  const std::unique_ptr<telemetry::Tracer> tracer =
      telemetry::tracer_from_env("prescale-gateway", &registry, otel_environment(config.tracing));
  gateway_options.tracer = tracer.get();
  Config as_loaded = config;  // what a reload compares with
  prepare_gateway(config);
  LearnedAdmission admission(config.services);
  // A service no route names gets no requests through the gateway (a worker may want that): said
  // here and at each reload, not as an error at each of its replicas' starts.
  auto warn_unrouted = [](const Config& c) {
    for (const std::string& line : unrouted_warnings(c)) spdlog::warn("{}", line);
  };
  warn_unrouted(config);
  // HTTPS for the gateway's clients (docs/gateway.md, "TLS"); the replicas call the gateway over
  // plain HTTP on a listener of their own, on this machine's loopback.
  const std::filesystem::path config_dir = std::filesystem::absolute(f.config_path).parent_path();
  std::unique_ptr<GatewayTls> tls;
  if (auto files = gateway_tls_files(config.gateway.tls, config_dir)) {
    auto tls_loaded = GatewayTls::load(*files, registry);
    if (!tls_loaded) return error(f.config_path + ": gateway.tls: " + tls_loaded.error().message);
    tls = std::move(*tls_loaded);
  }
  auto gw = gateway::Gateway::create(config.gateway, gateway_options);
  if (!gw) return error(gw.error().message);
  http::ServerOptions gso = gateway_server_options(config.http, gw_listen->host, gw_listen->port,
                                                   config.gateway.threads, tls.get(), registry);
  gso.stream_request_body = (*gw)->request_body_streaming();
  std::unique_ptr<http::Server> replicas_server;  // with TLS: the replicas' way in
  if (tls) {
    auto started = start_inside_listener(gso, "127.0.0.1", 0, (*gw)->handler());
    if (!started) {
      std::cerr << "prescale up: gateway (the replicas' listener): " << started.error().to_string()
                << "\n";
      return 1;
    }
    replicas_server = std::move(*started);
  }
  auto gateway_server = std::make_unique<http::Server>(gso, (*gw)->handler());
  if (auto started = gateway_server->start(); !started) {
    std::cerr << "prescale up: gateway: " << started.error().to_string() << "\n";
    if (replicas_server) replicas_server->shutdown(std::chrono::milliseconds(0));
    return 1;
  }
  (*gw)->start_upkeep();
  GatewayListeners serving{**gw, *gateway_server};
  serving.inside = replicas_server.get();
  auto url_of = [](const std::string& host, uint16_t port) {
    return "http://" + url_authority(host, port);
  };
  // What clients use, and what the replicas call other services through.
  const std::string public_gateway_url =
      (tls ? "https://" : "http://") + url_authority(gw_listen->host, gateway_server->port());
  const std::string gateway_url = replicas_server ? url_of("127.0.0.1", replicas_server->port())
                                                  : url_of(gw_listen->host, gateway_server->port());

  // The dashboard and the controller's own endpoints. The timeline goes on from the last run's
  // (docs/state.md), its events before this one's.
  dashboard::DashboardModel model;
  auto store = control::HistoryStore::open(state);
  if (!store) return error(store.error().message);
  if (auto restored = restore_timeline(*store, model); !restored) {
    spdlog::warn("the dashboard's timeline in {} not restored ({}); it starts empty", f.state_dir,
                 restored.error().message);
  }
  http::Router router;
  dashboard::Dashboard(model).add_routes(router);
  add_metrics_route(router, registry);
  router.add(http::Method::kGet, "/healthz",
             [](http::Request&, http::Responder r) { r(http::Response::text(200, "ok\n")); });
  http::ServerOptions uso;
  uso.address = ui_listen->host;
  uso.port = ui_listen->port;
  uso.threads = 1;
  auto ui_server = std::make_unique<http::Server>(uso, router.as_handler());
  if (auto started = ui_server->start(); !started) {
    std::cerr << "prescale up: dashboard: " << started.error().to_string() << "\n";
    serving.stop(std::chrono::milliseconds(0));
    return 1;
  }
  serving.beside = ui_server.get();

  // The replicas.
  Clock& real = Clock::real();
  const std::string self = self_executable();
  // Beside each replica a watchdog (this binary, `prescale __watchdog`) kills what the replica
  // started when the platform goes.
  local::PosixLauncher launcher({self, "__watchdog"});
  local::HttpReplicaProbe probe;
  local::GatewayEndpoints endpoints(**gw);
  local::SupervisorOptions so;
  so.log_dir = (state / "logs").string();
  so.run_dir = (state / "run").string();
  std::unique_ptr<DashboardFeed> feed;  // made once the policy exists; replicas start before
  const local::Supervisor* supervising = nullptr;  // set once made: its events start after
  healing::RolloutWatch rollout_watch;  // a new revision against the old one, while both serve
  healing::Healer healer({.ejections = config.healer.ejections,
                          .window = config.healer.window,
                          .min_interval = config.healer.min_interval,
                          .memory = {}});
  so.on_event = [&](const local::ReplicaEvent& event) {
    replica_metrics.count(event);
    local::ReplicaEvent e = event;
    // A new process, or none: its record of ejections starts again.
    if (e.kind == "crash" || e.kind == "stop") healer.forget(e.replica);
    // Why it crashed is most often the last thing it wrote.
    if (e.kind == "crash" && supervising != nullptr) {
      e.message += log_ending(*supervising, e.replica);
    }
    if (feed) {
      feed->on_replica_event(e);
    } else {
      record_replica_event(model, unix_seconds(real.wall_now()), e);
    }
  };
  local::Supervisor supervisor(so, launcher, probe, endpoints);
  supervising = &supervisor;
  std::vector<scaling::ServiceSpec> specs;
  for (const ServiceConfig& s : config.services) {
    if (auto added = supervisor.add_service(
            replica_template(s, self, gateway_url, config_dir, config.tracing, config.http));
        !added) {
      return error(added.error().message);
    }
    (void)supervisor.set_desired(s.name, s.replicas.initial);
    specs.push_back(service_spec(s, f.time_scale));
  }
  // The services as the dashboard and /metrics show them: from the file, and each one's replicas
  // and rolling update.
  auto show_services = [&model, &supervisor,
                        &replica_metrics](const std::vector<ServiceConfig>& services) {
    std::vector<ReplicaMetrics::Service> looked;
    for (const ServiceConfig& s : services) {
      looked.push_back({s.name, supervisor.rollout(s.name).revision, supervisor.replicas(s.name)});
    }
    replica_metrics.look(looked);
    std::vector<dashboard::ServiceInfo> infos;
    for (const ServiceConfig& s : services) {
      const local::RolloutStatus rollout = supervisor.rollout(s.name);
      std::string rolling;
      if (rollout.rolling && !rollout.failed.empty()) {
        rolling = rollout.failed + "; rolling back";
      } else if (rollout.rolling) {
        rolling = "rolling out: " + std::to_string(rollout.updated) + " of " +
                  std::to_string(supervisor.desired(s.name)) + " updated";
      } else if (!rollout.failed.empty()) {
        rolling = rollout.failed + "; rolled back";
      }
      infos.push_back({s.name, std::string(to_string(s.kind)), s.slo.latency_p99_ms, s.replicas.min,
                       s.replicas.max,
                       s.memory_limit.bytes > 0 ? static_cast<double>(s.memory_limit.bytes) / 0x1p20
                                                : dashboard::kNoValue,
                       rollout.revision, std::move(rolling)});
    }
    model.set_services(std::move(infos));
  };
  show_services(config.services);
  // The charts go on from the last run's too, once the services are listed.
  restore_charts_said(*store, model, real.wall_now(), f.state_dir);

  // The control plane. On a compressed clock, controller time runs ahead of the real one: a
  // restart resumes after the newest stored minute instead of going back in time.
  Clock::WallTime wall_origin = real.wall_now();
  if (f.time_scale != 1) {
    for (const ServiceConfig& s : config.services) {
      auto latest = store->latest_minute(s.name, control::kArrivalMetric);
      if (latest && *latest) {
        const Clock::WallTime after = Clock::WallTime(std::chrono::seconds(**latest + 60));
        wall_origin = std::max(wall_origin, after);
      }
    }
  }
  ScaledClock scaled(real, f.time_scale, wall_origin);
  Clock& clock = f.time_scale == 1 ? real : static_cast<Clock&>(scaled);
  sim::PolicySettings settings;
  settings.prescale.period = config.policy.period;
  // The local world's last second is the gateway's last real second, read in process (the
  // replicas are scraped only every LocalWorldOptions::scrape_interval): observed every real
  // second, a surge is acted on within one; a compressed clock observes at most at the period.
  settings.prescale.observe_interval =
      prescale_observe_interval(f.time_scale, settings.prescale.period);
  settings.prescale.time_scale = f.time_scale;  // startup times learned in real seconds
  sim::apply_policy_config(config.policy, config.services, settings);
  auto policy = sim::make_policy(policy_name, settings, {});
  if (!policy) return error(policy.error().message);
  local::LocalWorldOptions wo;
  wo.clock = &clock;
  wo.time_scale = f.time_scale;
  for (const auto& [route, service] : (*gw)->route_services()) wo.route_service[route] = service;

  local::LocalWorld world(supervisor, registry, specs, wo);
  RecommendOnlyWorld advisor(world);
  control::World& acted_on = f.recommend_only ? static_cast<control::World&>(advisor) : world;
  control::Controller controller(acted_on, **policy, specs, clock);
  auto* prescale_policy = dynamic_cast<scaling::PrescalePolicy*>(policy->get());
  DashboardFeedOptions feed_options{policy_name, f.recommend_only, f.time_scale};
  for (const ServiceConfig& s : config.services) {
    feed_options.error_budgets[s.name] = s.slo.error_budget;  // a reload sets a new one
  }
  for (const scaling::ServiceSpec& s : specs)
    feed_options.max_concurrency[s.name] = s.max_concurrency;
  feed_options.registry = &registry;
  feed = std::make_unique<DashboardFeed>(model, totals_of(world), prescale_policy,
                                         std::move(feed_options), real);

  // The learned state: restored from the state directory, or seeded on a first start.
  if (prescale_policy != nullptr) {
    auto restored = control::restore_policy_state(*store, *prescale_policy, clock.now(),
                                                  clock.wall_now());
    if (!restored) {
      spdlog::warn(
          "state in {} not restored ({}); running without it. A state another Prescale version "
          "wrote is left as it is; one of this version that cannot be read is replaced at the "
          "next save",
          f.state_dir, restored.error().message);
    } else if (*restored) {
      spdlog::info("restored the learned history, topology and capacity from {}", f.state_dir);
      if (auto stored = control::stored_policy_state(*store); stored && *stored) {
        for (const std::string& name : services_not_in_file(**stored, config.services)) {
          spdlog::warn(
              "learned state of {} in {} not restored: {} has no such service (renamed or "
              "removed); the next save forgets it",
              name, f.state_dir, f.config_path);
        }
      }
    } else if (seed) {
      if (auto seeded = prescale_policy->load_history(f.seed_service, *seed, clock.now());
          !seeded) {
        return error("--seed-service " + f.seed_service + ": " + seeded.error().message);
      }
      spdlog::info("seeded {} with {} minutes of {}", f.seed_service, seed->values.size(),
                   f.seed_trace);
    }
  }
  // The incidents and slowdown warnings go on too, their numbers and what they are judged on.
  restore_feed_state_said(*store, *feed, clock.now(), f.state_dir);
  DashboardSaver dashboard_saver;
  auto save_state = [&](bool last = false) {
    // Deleted while running (by hand, a cleaner of /tmp), the open file would take every save
    // with it: a new one gets what the policy holds in memory, its whole history included.
    if (std::error_code ec; !std::filesystem::exists(store->path(), ec) && !ec) {
      auto reopened = control::HistoryStore::open(state);
      if (!reopened) {
        spdlog::warn("{} was removed while the platform ran, and cannot be made again: {}",
                     store->path().string(), reopened.error().message);
        return;
      }
      spdlog::warn("{} was removed while the platform ran; written again from what it learned",
                   store->path().string());
      *store = std::move(*reopened);
      dashboard_saver = DashboardSaver();  // the new file has none yet
    }
    save_platform_state(*store, prescale_policy, *feed, model, dashboard_saver, clock, f.state_dir,
                        last);
  };
  Clock::TimePoint next_save = clock.now() + std::chrono::minutes(1);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  // What the loops below wake for: a stop, or SIGHUP, a reload of the file.
  sigset_t wake_signals = stop_signals;
  sigaddset(&wake_signals, SIGHUP);
  bool reload_asked = false;  // a SIGHUP while the replicas start: a reload once they have
  // What a signal taken from wake_signals asks: 0 nothing (a hangup under nohup), SIGHUP a reload,
  // another a stop.
  auto asked = [&](int sig, const siginfo_t& info) {
    if (sig != SIGHUP || info.si_code != SI_KERNEL) return sig;
    return hangups_ignored ? 0 : SIGTERM;  // the terminal closed: stop, said as a hangup
  };
  // The platform is up once every service has the replicas it starts with (or the wait is
  // over): only then are the ports announced, so nobody is sent to a gateway with nothing behind.
  {
    const Clock::TimePoint deadline =
        real.now() + std::chrono::duration_cast<Clock::Duration>(
                         std::chrono::duration<double>(f.ready_wait_seconds));
    auto all_ready = [&] {
      for (const ServiceConfig& s : config.services) {
        int ready = 0;
        for (const auto& r : supervisor.replicas(s.name)) {
          ready += r.phase == local::ReplicaPhase::kReady ? 1 : 0;
        }
        if (ready < s.replicas.initial) return false;
      }
      return true;
    };
    const timespec wait{0, 20'000'000};
    while (!all_ready() && real.now() < deadline) {
      supervisor.tick(real.now());
      siginfo_t info{};
      const int woken = asked(sigtimedwait(&wake_signals, &info, &wait), info);
      if (woken == SIGHUP) {
        reload_asked = true;
      } else if (woken > 0) {  // Ctrl-C while replicas start
        const bool drained =
            stop_replicas(supervisor, real, std::chrono::seconds(30), stop_signals);
        serving.stop(std::chrono::milliseconds(0));
        std::cerr << "prescale up: stopped before every service was ready\n";
        return drained ? 0 : 1;
      }
    }
    // What is ready serves; the supervisor goes on restarting the rest. Whoever started the
    // platform learns which services are short, what their replicas do and what they logged.
    for (const std::string& line : unready_services(config.services, supervisor, real.now())) {
      spdlog::warn("not ready after {} s: {}", f.ready_wait_seconds, line);
    }
  }
  if (auto written = write_port_files({{"--port-file", f.port_file, gateway_server->port()},
                                       {"--ui-port-file", f.ui_port_file, ui_server->port()}});
      !written) {
    // Whoever waits for the file would wait for ever: stop, saying why, the replicas drained
    // as on a signal.
    std::cerr << "prescale up: " << written.error().message << "\n";
    remove_port_files();  // one written before it would name the port of a stopped platform
    stop_replicas(supervisor, real, std::chrono::seconds(45), stop_signals);
    serving.stop(std::chrono::milliseconds(0));
    return 1;
  }
  std::cout << "prescale up: gateway " << public_gateway_url << ", dashboard "
            << url_of(ui_listen->host, ui_server->port()) << "/ui, policy " << policy_name
            << (f.recommend_only ? " (recommend only)" : "") << ", state " << f.state_dir
            << std::endl;

  // Wakes for the controller's next tick (on a compressed clock, that much sooner in real time)
  // and at least every 100 ms for the supervisor.
  auto until_next_tick = [&] {
    const double controller_ns = static_cast<double>((controller.next_tick() - clock.now()).count());
    const auto ns = static_cast<long>(std::clamp(controller_ns / f.time_scale, 1e6, 1e8));
    return timespec{0, ns};
  };
  EndpointWatch endpoint_watch(**gw, config.gateway.health_check.path);
  // Reloads (docs/local.md, "Changing a running platform"): on SIGHUP, and when the file's
  // content changed (looked at every second). All of it applies, or none: the gateway's
  // settings at once, a service's new replica template by a rolling update; what the policy
  // was made from needs a restart, and a file asking for one changes nothing.
  auto reload = [&](std::string_view why) {
    auto refuse = [&](const std::string& message) {
      spdlog::error("reload ({}) refused, keeping the running configuration: {}", why, message);
    };
    auto next = load_config_file(f.config_path);
    if (!next) return refuse(next.error().message);
    if (auto ok = preflight(*next, f.config_path, *gw_listen, *ui_listen); !ok) {
      return refuse(ok.error().message);
    }
    if (const std::vector<std::string> fixed = changes_needing_a_restart(as_loaded, *next);
        !fixed.empty()) {
      std::string fields;
      for (const std::string& field : fixed) fields += (fields.empty() ? "" : ", ") + field;
      return refuse(f.config_path + ": " + fields +
                    " changed; while running, prescale up adds and removes services and applies "
                    "changes to services' commands, kinds, models, environments, probes, memory "
                    "limits, replica bounds, SLOs, capacity and startup time seeds and queue "
                    "limits and to the gateway's routes and settings: restart it for these");
    }
    if (const std::string lost = catch_all_lost(as_loaded, *next); !lost.empty()) {
      return refuse(f.config_path + ": " + lost);
    }
    ServiceChanges changed = service_changes(as_loaded, *next);
    // Every template checked before anything changes: all of the file applies, or none.
    std::vector<local::ReplicaTemplate> templates;
    for (const ServiceConfig& s : next->services) {
      templates.push_back(
          replica_template(s, self, gateway_url, config_dir, next->tracing, next->http));
      if (auto valid = supervisor.validate(templates.back()); !valid) {
        return refuse(f.config_path + ": " + valid.error().message);
      }
    }
    Config prepared = *next;
    prepare_gateway(prepared);
    // The world counts a route's requests by its metrics' label (host and path as written, "#2"
    // for a repeat): a label leading to another service than it did would count for the wrong
    // one. Such a file is refused before the gateway takes it.
    auto labels = gateway::route_services(prepared.gateway);
    if (!labels) return refuse(f.config_path + ": gateway." + labels.error().message);
    for (const auto& [route, service] : *labels) {
      const std::string* counted = world.route_service(route);
      // A label of a service removed may lead to another (a service renamed): its requests so
      // far stay the removed one's, and the other counts from the gateway's counts now.
      const bool handed_on = counted != nullptr && find_service(*next, *counted) == nullptr;
      if (counted != nullptr && *counted != service && !handed_on) {
        return refuse(f.config_path + ": gateway.routes: the route labelled \"" + route +
                      "\" in the metrics leads to " + service + ", and its requests so far were " +
                      *counted + "'s: restart prescale up for this change");
      }
    }
    if (auto reloaded = (*gw)->reload(prepared.gateway); !reloaded) {
      return refuse(f.config_path + ": " + reloaded.error().message);
    }
    // A route added for a service (one moved to it, say): its ready replicas join the gateway at
    // once.
    endpoints.resync();
    // A service removed: no more decisions, its replicas drain and stop (the gateway, reloaded,
    // sends them nothing new), and what was learned of it alone goes (the learned state saved
    // from now on does not name it).
    for (const std::string& name : changed.removed) {
      if (auto removed = controller.remove_service(name); !removed) {
        spdlog::error("reload ({}): {}", why, removed.error().message);
      }
      (void)supervisor.remove_service(name, real.now());
      admission.forget(name);
      feed->remove_service(name);
    }
    // Labels first: an added service's requests count from its routes' counts now.
    world.add_routes((*gw)->route_services());
    std::string respecced;
    std::vector<ServiceConfig> respecified;
    std::set<std::string> not_added;  // tried again at the next reload
    for (const std::string& name : changed.added) {
      const ServiceConfig& now = *find_service(*next, name);
      const scaling::ServiceSpec spec = service_spec(now, f.time_scale);
      // The template was checked above, and the name is new: neither refuses.
      auto it = std::find_if(templates.begin(), templates.end(),
                             [&](const local::ReplicaTemplate& t) { return t.service == name; });
      local::ReplicaTemplate added_template = std::move(*it);
      templates.erase(it);  // not rolled out: started
      if (auto added = supervisor.add_service(std::move(added_template)); !added) {
        spdlog::error("reload ({}): {}", why, added.error().message);
        not_added.insert(name);
        continue;
      }
      (void)supervisor.set_desired(name, now.replicas.initial);
      if (auto added = controller.add_service(spec); !added) {
        spdlog::error("reload ({}): {}", why, added.error().message);
        (void)supervisor.remove_service(name, real.now());
        not_added.insert(name);
        continue;
      }
      feed->add_service(name, now.slo.error_budget, spec.max_concurrency);
      respecified.push_back(now);  // its admission limit, from its seed
    }
    // New replica bounds, SLOs, seeds and queue limits apply at once: the next decision, at the
    // controller's next tick, stays within the bounds and sizes by the rest (`initial` is the
    // count of a start, the next one's).
    for (const ServiceConfig& now : next->services) {
      const ServiceConfig* was = find_service(as_loaded, now.name);
      if (was == nullptr) continue;  // added
      const std::vector<std::string> changes = spec_changes(*was, now);
      if (changes.empty()) continue;
      respecified.push_back(now);
      if (auto set = controller.respec(service_spec(now, f.time_scale)); !set) {
        spdlog::error("reload ({}): {}", why, set.error().message);  // checked by the loader
        continue;
      }
      feed->set_error_budget(now.name, now.slo.error_budget);
      respecced += (respecced.empty() ? "" : "; ") + now.name + "'s ";
      for (size_t k = 0; k < changes.size(); ++k) respecced += (k > 0 ? ", " : "") + changes[k];
    }
    // The admission limits learned since the start stay in force over the seeds just reloaded;
    // a respecified service's for its new queue limit, at the capacity at its new SLO.
    follow_respec(*next, respecified, prescale_policy, f.recommend_only, admission);
    for (const ServiceConfig& s : prepared.services) {
      if (const int n = admission.per_replica(s.name); n > 0) {
        (void)(*gw)->set_max_requests_per_replica(s.name, static_cast<std::uint32_t>(n));
      }
    }
    warn_unrouted(prepared);
    std::string rolling;
    for (local::ReplicaTemplate& t : templates) {
      const std::string service = t.service;
      const int before = supervisor.rollout(service).revision;
      if (auto updated = supervisor.update(std::move(t), real.now()); !updated) {
        // The one refusal left: a revision that failed is not rolled out again.
        spdlog::warn("reload ({}): {}", why, updated.error().message);
      } else if (supervisor.rollout(service).revision != before) {
        rolling += (rolling.empty() ? "" : ", ") + service;
      }
    }
    if (tls) {
      if (auto files = gateway_tls_files(next->gateway.tls, config_dir)) {
        tls->change_files(*files, *gateway_server);
      }
    }
    std::erase_if(changed.added, [&](const std::string& s) { return not_added.contains(s); });
    for (Config* c : {&prepared, &*next}) {
      std::erase_if(c->services,
                    [&](const ServiceConfig& s) { return not_added.contains(s.name); });
    }
    show_services(prepared.services);
    as_loaded = std::move(*next);
    config = std::move(prepared);
    spdlog::info(
        "reloaded {} ({}): the gateway's settings applied; {}{}{}", f.config_path, why,
        changed.empty() ? "" : "services " + changed.said() + "; ",
        respecced.empty() ? "" : respecced + "; ",
        rolling.empty() ? std::string("no rolling update") : "rolling update of " + rolling);
  };
  if (reload_asked) reload("SIGHUP");
  // Both looks once a real second, not at every wake (up to a thousand a second on a compressed
  // clock): the gateway's health checks change no faster.
  Clock::TimePoint next_look = real.now() + std::chrono::seconds(1);
  int sig = 0;
  bool hung_up = false;  // the terminal closed
  for (timespec wait = until_next_tick();; wait = until_next_tick()) {
    siginfo_t info{};
    sig = sigtimedwait(&wake_signals, &info, &wait);
    hung_up = sig == SIGHUP && info.si_code == SI_KERNEL;
    sig = asked(sig, info);
    if (sig == SIGHUP) {
      file_text = read_whole_file(f.config_path);
      reload("SIGHUP");
      if (tls) tls->refresh(*gateway_server, "SIGHUP", /*force=*/true);
      continue;
    }
    if (sig > 0) break;
    supervisor.tick(real.now());
    if (real.now() >= next_look) {
      next_look = real.now() + std::chrono::seconds(1);
      for (const EndpointChange& c : endpoint_watch.poll(real.now())) {
        feed->on_endpoint_change(c);
        if (c.kind == "eject" && c.breaker) healer.breaker_opened(c.service, c.replica, real.now());
        if (c.kind == "eject" && !c.breaker) {
          healer.ejected(c.service, c.replica, real.now());
          // A new revision's replica answering errors fails its rolling update.
          (void)supervisor.failing(c.replica, "was " + c.message);
        }
      }
      if (config.healer.enabled) {
        judge_rollouts(supervisor, config.services, registry, rollout_watch, real.now(),
                       config.healer.rollout_analysis);
        look_at_memory(supervisor, healer);
        for (const healing::Remedy& r : healer.remedies(real.now())) {
          const bool failing = r.kind == healing::RemedyKind::kEjected;
          const Result<void> replaced =
              failing ? world.restart(r.replica) : world.replace_when_ready(r.replica);
          if (!replaced) healer.failed(r);
          feed->on_heal(r.service, r.replica,
                        r.reason + (!replaced ? ": not replaced: " + replaced.error().message
                                    : failing ? ": replaced (a new replica starts; this one drains)"
                                              : ": replaced before it is killed (a new replica "
                                                "starts; this one drains once it is ready)"));
        }
      }
      if (const std::string said = lock->keep(); !said.empty()) spdlog::warn("{}", said);
      if (tls) tls->refresh(*gateway_server, "file changed");  // a renewed certificate
      show_services(config.services);  // rollouts move on
      if (std::optional<std::string> text = read_whole_file(f.config_path); text != file_text) {
        file_text = std::move(text);
        if (file_text) reload("the file changed");  // a file being replaced is read next time
      }
    }
    // At most every 250 ms: held requests keep coming where no replica does (a policy that never
    // scales from zero), and each would ask again.
    if (held_for_replica.exchange(false, std::memory_order_relaxed) &&
        real.now() - last_observed_now >= std::chrono::milliseconds(250)) {
      controller.observe_now();
      last_observed_now = real.now();
    }
    if (clock.now() < controller.next_tick()) continue;
    const std::optional<scaling::Plan> plan = controller.tick();
    if (prescale_policy != nullptr && !f.recommend_only) {  // recommend-only changes nothing
      admission.follow(
          [&](std::string_view s) { return prescale_policy->capacity().capacity_rps(s); },
          [&](std::string_view s, int n) {
            return (*gw)->set_max_requests_per_replica(s, static_cast<std::uint32_t>(n));
          });
    }
    if (clock.now() >= next_save) {
      save_state();
      next_save = clock.now() + std::chrono::minutes(1);
    }
    const std::vector<control::Event> events = controller.take_events();
    for (const control::Event& e : events) {
      if (f.recommend_only) break;  // never made: the dashboard's "recommend" events say them
      spdlog::info("scale {} {} -> {}: {}", e.service, e.from_replicas, e.to_replicas, e.reason);
    }
    feed->after_tick(controller, plan, events);
  }

  spdlog::info("received {}, stopping: draining replicas (a second signal kills them at once)",
               hung_up ? "SIGHUP (the terminal closed)" : signal_name(sig));
  save_state(/*last=*/true);
  // The totals grow at each observation (hpa's come 15 s apart): one now counts the replicas'
  // time until the stop, one after the drain the requests answered since the last.
  world.observe(clock.now());
  const bool drained = stop_replicas(supervisor, real, std::chrono::seconds(45), stop_signals);
  serving.stop(std::chrono::seconds(2));
  world.observe(clock.now());
  // The drain's events too (the save above came first, should a second signal cut the drain).
  if (auto saved = dashboard_saver.save(*store, model, clock.wall_now(), /*last=*/true); !saved) {
    spdlog::warn("saving the timeline and charts to {} failed: {}", f.state_dir,
                 saved.error().message);
  }
  remove_port_files();
  const local::LocalWorld::Totals totals = world.totals();
  std::cout << "prescale up: stopped. requests " << static_cast<long long>(totals.requests)
            << ", within SLO ";
  // Without requests there is no share to give (the dashboard's is null): 100 % said too much.
  if (totals.requests > 0) {
    std::cout << 100.0 * totals.within_slo / totals.requests << " %";
  } else {
    std::cout << "-";
  }
  std::cout << ", replica-hours " << totals.replica_seconds / 3600.0 << ", scaling events "
            << feed->scaling_events() << ", incidents " << feed->incidents().opened()
            << ", slowdown warnings " << feed->slowdowns().opened() << std::endl;
  return drained ? 0 : 1;
}

}  // namespace

UpCommand::UpCommand(CLI::App& app) : flags_(std::make_unique<UpFlags>()) {
  UpFlags& f = *flags_;
  command_ = app.add_subcommand(
      "up", "Run the whole platform here: gateway, replicas, controller and dashboard");
  command_->add_option("-f,--file", f.config_path, "prescale.yaml")->required();
  command_->add_option("--policy", f.policy,
                       "Scaling policy: prescale, hpa, kpa, aws (default: the config's)");
  command_->add_flag("--recommend-only", f.recommend_only,
                     "Observe and show the plan on the dashboard; change nothing");
  command_->add_option("--state-dir", f.state_dir, "Logs, port files and the learned history")
      ->capture_default_str();
  command_
      ->add_option("--time-scale", f.time_scale,
                   "Controller seconds per real second (a compressed-time demo)")
      ->capture_default_str();
  command_->add_option("--ui", f.ui_listen, "Dashboard and API listen address")
      ->capture_default_str();
  command_->add_option("--port", f.gateway_port, "Gateway port (default: gateway.listen's)")
      ->check(CLI::Range(0, 65535));
  command_->add_option("--port-file", f.port_file,
                       "Write the gateway's port here once every service's initial replicas are "
                       "ready (or --ready-wait is over)");
  command_->add_option("--ui-port-file", f.ui_port_file,
                       "Write the dashboard's port here, at the same time as --port-file");
  command_->add_option("--log-level", f.log_level, "trace|debug|info|warn|error|off");
  CLI::Option* seed_trace =
      command_->add_option("--seed-trace", f.seed_trace,
                           "On a first start (empty state), seed a service's demand history from "
                           "this trace's minutes before --seed-until-days");
  // Without the trace they would be ignored without a word.
  command_->add_option("--seed-service", f.seed_service, "The service --seed-trace seeds")
      ->needs(seed_trace);
  command_
      ->add_option("--seed-until-days", f.seed_until_days,
                   "Seed the minutes before this offset from the trace's start, in days")
      ->needs(seed_trace);
  command_
      ->add_option("--seed-scale", f.seed_scale,
                   "The trace's requests per second times this are the service's req/s")
      ->capture_default_str()
      ->needs(seed_trace);
  command_
      ->add_option("--ready-wait", f.ready_wait_seconds,
                   "Seconds to wait for every service's initial replicas before announcing the "
                   "ports, 0 to 3600; services still short of them are then named, with why")
      ->capture_default_str();
}

UpCommand::~UpCommand() = default;
bool UpCommand::parsed() const { return command_->parsed(); }
int UpCommand::run() const { return run_up(*flags_); }

}  // namespace prescale
