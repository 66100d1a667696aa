#include "gateway_command.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "admin_endpoints.h"
#include "admission_feed.h"
#include "command_util.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/host_port.h"
#include "core/logging.h"
#include "core/port_file.h"
#include "gateway/endpoint_table.h"
#include "gateway/gateway.h"
#include "gateway_listeners.h"
#include "gateway_tls.h"
#include "http/json.h"
#include "http/router.h"
#include "http/server.h"
#include "runtime/runtime.h"
#include "telemetry/process_metrics.h"
#include "telemetry/registry.h"
#include "telemetry/tracing.h"

namespace prescale {

struct GatewayFlags {
  std::string config_path;
  std::vector<std::string> upstreams;  // "service=host:port,host:port"
  std::string address;                 // overrides gateway.listen's host
  int port = -1;                       // overrides gateway.listen's port; -1: the config's
  std::string port_file;
  int threads = -1;  // -1: gateway.threads
  int admin_port = 9901;
  std::string admin_port_file;
  int connect_timeout_ms = 2000;
  int shutdown_grace_ms = -1;  // -1: http.shutdown_grace
  std::string log_level;       // "": the config's
  std::string log_format;
  std::string admission_from;  // the controller's /v1/admission; "": the file's limits only
  std::string tls_cert;        // both or neither; win over gateway.tls
  std::string tls_key;
  int plain_port = -1;  // with TLS: a plain listener beside it; -1: none
  std::string plain_address = "127.0.0.1";
  std::string plain_port_file;
};

namespace {

// --admission-from: how often the controller's limits are read, and how long one read may take
// (the loop that also takes the signals waits on it).
constexpr Clock::Duration kAdmissionFeedInterval = std::chrono::seconds(1);
constexpr std::chrono::milliseconds kAdmissionFeedTimeout{500};

// --upstream flags over gateway.upstreams: a flag replaces the config's list for its service.
Result<std::map<std::string, std::vector<std::pair<std::string, uint16_t>>>> static_upstreams(
    const GatewayConfig& config, const std::vector<std::string>& flags) {
  std::map<std::string, std::vector<std::string>> lists = config.upstreams;
  std::set<std::string> flagged;
  for (const std::string& flag : flags) {
    const size_t eq = flag.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == flag.size()) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "--upstream: expected SERVICE=HOST:PORT[,HOST:PORT...], got \"" + flag + "\"");
    }
    // A second flag replaced the first's endpoints without a word.
    if (!flagged.insert(flag.substr(0, eq)).second) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--upstream " + flag + ": service " + flag.substr(0, eq) +
                            " is in an earlier --upstream too; list its endpoints in one, "
                            "comma-separated");
    }
    std::vector<std::string>& list = lists[flag.substr(0, eq)];
    list.clear();
    std::string_view rest = std::string_view(flag).substr(eq + 1);
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      list.emplace_back(rest.substr(0, comma));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  std::map<std::string, std::vector<std::pair<std::string, uint16_t>>> out;
  for (const auto& [service, list] : lists) {
    for (const std::string& text : list) {
      auto spec = gateway::parse_endpoint(text);
      if (!spec) {
        return make_error(ErrorCode::kInvalidArgument,
                          "upstream of service " + service + ": " + spec.error().message);
      }
      out[service].emplace_back(spec->host, spec->port);
    }
  }
  return out;
}

// The gateway configuration `config` gives with the flags applied: --upstream flags replace the
// config's lists; without routes, a gateway for one service sends it everything. Every route's
// service must have endpoints. Used at start-up and on every reload.
Result<GatewayConfig> effective_gateway_config(const Config& config,
                                               const std::vector<std::string>& upstream_flags) {
  auto upstreams = static_upstreams(config.gateway, upstream_flags);
  if (!upstreams) return std::unexpected(upstreams.error());
  GatewayConfig gateway_config = config.gateway;
  // The services' queue_limit where the file writes one. Left out, it is half the SLO under
  // `prescale up`, which corrects the seed capacity_rps it counts with from the capacity it
  // learns; a gateway alone learns none, and would be guessing.
  std::vector<ServiceConfig> written;
  for (const ServiceConfig& s : config.services) {
    if (s.queue_limit != ServiceConfig::kQueueLimitAuto) written.push_back(s);
  }
  gateway_config.max_requests_per_replica = admission_limits(written);
  // A service with its own readiness path is health-checked there.
  gateway_config.health_check_paths = health_check_paths(config.services);
  // One that may scale to zero has its requests held while it has no replica.
  gateway_config.hold_for_replica = hold_for_replica(config.services);
  gateway_config.http2_upstreams = http2_upstreams(config.services);
  gateway_config.grpc_health_checks = grpc_health_checks(config.services);
  gateway_config.upstreams.clear();
  for (const auto& [service, endpoints] : *upstreams) {
    auto& list = gateway_config.upstreams[service];
    for (const auto& [host, port] : endpoints) list.push_back(host_port(host, port));
  }
  if (gateway_config.routes.empty()) {
    if (upstreams->size() != 1) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "no gateway.routes: give a config with routes, or exactly one --upstream service");
    }
    RouteConfig all;
    all.service = upstreams->begin()->first;
    gateway_config.routes.push_back(std::move(all));
  }
  for (size_t i = 0; i < gateway_config.routes.size(); ++i) {
    const std::string& service = gateway_config.routes[i].service;
    if (!upstreams->contains(service)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "gateway.routes[" + std::to_string(i) + "].service: service \"" + service +
                            "\" has no upstream endpoints: list them under gateway.upstreams or "
                            "pass --upstream " +
                            service + "=HOST:PORT");
    }
  }
  return gateway_config;
}

}  // namespace

GatewayCommand::GatewayCommand(CLI::App& app) : flags_(std::make_unique<GatewayFlags>()) {
  GatewayFlags& f = *flags_;
  command_ = app.add_subcommand("gateway", "Run the gateway: route requests to upstream services");
  command_->add_option("-f,--config", f.config_path,
                       "prescale.yaml: gateway.listen, gateway.threads, gateway.routes, "
                       "gateway.upstreams, http and logging apply (flags win), and of "
                       "services[] queue_limit, readiness_path, replicas.min, protocol and "
                       "grpc_health_service");
  command_->add_option("--upstream", f.upstreams,
                       "SERVICE=HOST:PORT[,HOST:PORT...]: static endpoints of a service; "
                       "repeatable; replaces gateway.upstreams of that service");
  command_->add_option("--address", f.address, "Address to listen on (default: gateway.listen)");
  command_->add_option("--port", f.port, "Port to listen on; 0 picks a free port")
      ->check(CLI::Range(0, 65535));
  command_->add_option("--port-file", f.port_file,
                       "Write the bound port to this file once listening");
  command_->add_option("--threads", f.threads, "I/O threads; 0 = number of cores")
      ->check(CLI::Range(0, 1024));
  command_
      ->add_option("--admin-port", f.admin_port,
                   "Port of /metrics, /healthz, /readyz on the listen address; 0 picks a free "
                   "port, -1 turns them off")
      ->check(CLI::Range(-1, 65535))
      ->capture_default_str();
  command_->add_option("--admin-port-file", f.admin_port_file,
                       "Write the bound admin port to this file once listening");
  command_
      ->add_option("--connect-timeout-ms", f.connect_timeout_ms,
                   "Time allowed to connect to an upstream")
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();
  command_
      ->add_option("--shutdown-grace-ms", f.shutdown_grace_ms,
                   "How long in-flight requests may take after SIGTERM (default: "
                   "http.shutdown_grace, 10000)")
      ->check(CLI::Range(0, 3600000));
  command_->add_option("--admission-from", f.admission_from,
                       "http://HOST:PORT/v1/admission/POD of `prescale controller`: this "
                       "gateway's part of each service's admission limit (from the learned "
                       "capacity, by its share of the requests), read every second "
                       "(docs/kubernetes.md)");
  auto* tls_cert = command_->add_option(
      "--tls-cert", f.tls_cert,
      "PEM certificate (then its intermediates): serve HTTPS; read again when it changes "
      "(default: gateway.tls.cert_file)");
  auto* tls_key = command_->add_option(
      "--tls-key", f.tls_key, "PEM private key of --tls-cert (default: gateway.tls.key_file)");
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  command_
      ->add_option("--plain-port", f.plain_port,
                   "With TLS: also serve plain HTTP on this port (of --plain-address), for "
                   "callers inside a trusted network (the services' own calls); 0 picks a free "
                   "port")
      ->check(CLI::Range(0, 65535));
  command_
      ->add_option("--plain-address", f.plain_address,
                   "Address of --plain-port's listener; only this machine by default")
      ->capture_default_str();
  command_->add_option("--plain-port-file", f.plain_port_file,
                       "Write the bound plain port to this file once listening");
  command_->add_option("--log-level", f.log_level, "trace|debug|info|warn|error|off");
  command_->add_option("--log-format", f.log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}));
}

GatewayCommand::~GatewayCommand() = default;

bool GatewayCommand::parsed() const { return command_->parsed(); }

int GatewayCommand::run() const {
  const GatewayFlags& f = *flags_;
  auto error = [](const std::string& message) {
    std::cerr << "prescale gateway: " << message << "\n";
    return 2;
  };
  Config config;
  if (!f.config_path.empty()) {
    auto loaded = load_config_file(f.config_path);
    if (!loaded) return error(loaded.error().message);
    config = std::move(*loaded);
  }
  const std::string level =
      f.log_level.empty() ? std::string(to_string(config.logging.level)) : f.log_level;
  const bool json =
      f.log_format.empty() ? config.logging.format == LogFormat::kJson : f.log_format == "json";
  if (!init_logging({.level = level, .format = json ? LogFormat::kJson : LogFormat::kText})) {
    return error("--log-level: unknown level \"" + level + "\"");
  }
  runtime::Runtime::block_termination_signals();
  // SIGHUP reloads the configuration; blocked in every thread, taken by the loop below.
  {
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, nullptr);
  }

  std::unique_ptr<AdmissionFeed> admission_feed;
  if (!f.admission_from.empty()) {
    auto url = parse_http_url(f.admission_from);
    if (!url) return error("--admission-from " + f.admission_from + ": " + url.error().message);
    if (f.admission_from.find("$(") != std::string::npos) {
      spdlog::warn(
          "--admission-from {}: \"$(...)\" is left as it is (Kubernetes fills it in from the "
          "container's env); the controller gives an unknown pod an even share",
          f.admission_from);
    }
    admission_feed = std::make_unique<AdmissionFeed>(std::move(*url), kAdmissionFeedTimeout);
  }

  auto listen = parse_listen(config.gateway.listen);
  if (!listen) return error(listen.error().message);
  if (!f.address.empty()) listen->host = f.address;
  if (f.port >= 0) listen->port = static_cast<uint16_t>(f.port);

  auto effective = effective_gateway_config(config, f.upstreams);
  if (!effective) return error(effective.error().message);
  const GatewayConfig& gateway_config = *effective;

  telemetry::Registry registry;
  telemetry::register_process_metrics(registry);
  // HTTPS (docs/gateway.md, "TLS"): the flags' files, else the file's gateway.tls.
  const std::filesystem::path config_dir =
      f.config_path.empty() ? std::filesystem::current_path()
                            : std::filesystem::absolute(f.config_path).parent_path();
  const bool tls_from_flags = !f.tls_cert.empty();
  const std::optional<http::TlsFiles> tls_files =
      tls_from_flags ? std::optional(http::TlsFiles{f.tls_cert, f.tls_key})
                     : gateway_tls_files(config.gateway.tls, config_dir);
  std::unique_ptr<GatewayTls> tls;
  if (tls_files) {
    auto loaded = GatewayTls::load(*tls_files, registry);
    if (!loaded) {
      return error(std::string(tls_from_flags ? "--tls-cert/--tls-key" : "gateway.tls") + ": " +
                   loaded.error().message);
    }
    tls = std::move(*loaded);
  }
  if (f.plain_port >= 0 && !tls) {
    return error(
        "--plain-port: the gateway serves plain HTTP already (no --tls-cert, no "
        "gateway.tls)");
  }
  // Routes, rate limits, trace context, and per service the balancer, breakers, outlier
  // ejection and retry budget (docs/gateway.md, docs/gateway-resilience.md).
  gateway::GatewayOptions gateway_options;
  gateway_options.registry = &registry;
  gateway_options.connect_timeout = std::chrono::milliseconds(f.connect_timeout_ms);
  gateway_options.on_dns_problem = [](const std::string& line) {
    spdlog::warn("gateway.upstreams: {}", line);
  };
  // Spans where the file's `tracing` says, else where OTEL_* variables say (docs/tracing.md).
  const std::unique_ptr<telemetry::Tracer> tracer =
      telemetry::tracer_from_env("prescale-gateway", &registry, otel_environment(config.tracing));
  gateway_options.tracer = tracer.get();
  auto gw = gateway::Gateway::create(gateway_config, gateway_options);
  if (!gw) return error(gw.error().message);

  const HttpConfig& http = config.http;
  http::ServerOptions options = gateway_server_options(
      http, listen->host, listen->port, f.threads >= 0 ? f.threads : config.gateway.threads,
      tls.get(), registry);
  options.stream_request_body = (*gw)->request_body_streaming();
  auto server = std::make_unique<http::Server>(options, (*gw)->handler());
  if (auto started = server->start(); !started) {
    std::cerr << "prescale gateway: " << started.error().to_string() << "\n";
    return 1;
  }
  GatewayListeners serving{**gw, *server};
  std::unique_ptr<http::Server> inside;
  if (f.plain_port >= 0) {
    auto started = start_inside_listener(options, f.plain_address,
                                         static_cast<uint16_t>(f.plain_port), (*gw)->handler());
    if (!started) {
      std::cerr << "prescale gateway: --plain-port: " << started.error().to_string() << "\n";
      serving.stop(std::chrono::milliseconds(0));
      return 1;
    }
    inside = std::move(*started);
    serving.inside = inside.get();
  }

  // The admin endpoints live on their own port, so no path of the routed services is taken.
  std::atomic<bool> ready{true};  // until the drain
  const http::Router admin_routes = admin_router(registry, ready, "draining");
  std::unique_ptr<http::Server> admin;
  if (f.admin_port >= 0) {
    http::ServerOptions admin_options;
    admin_options.address = listen->host;
    admin_options.port = static_cast<uint16_t>(f.admin_port);
    admin_options.threads = 1;
    admin = std::make_unique<http::Server>(admin_options, admin_routes.as_handler());
    if (auto started = admin->start(); !started) {
      std::cerr << "prescale gateway: admin: " << started.error().to_string() << "\n";
      serving.stop(std::chrono::milliseconds(0));
      return 1;
    }
    serving.beside = admin.get();
  }
  if (auto written = write_port_files(
          {{"--port-file", f.port_file, server->port()},
           {"--admin-port-file", f.admin_port_file, admin ? admin->port() : uint16_t{0}},
           {"--plain-port-file", f.plain_port_file, inside ? inside->port() : uint16_t{0}}});
      !written) {
    std::cerr << "prescale gateway: " << written.error().message << "\n";
    serving.stop(std::chrono::milliseconds(0));
    return 1;
  }
  (*gw)->start_upkeep();
  spdlog::info("gateway listening on {}://{}:{}{} ({} routes){}", tls ? "https" : "http",
               listen->host, server->port(),
               inside ? fmt::format(" and http://{}:{}", f.plain_address, inside->port()) : "",
               gateway_config.routes.size(),
               admin ? fmt::format(", admin on {}:{}", listen->host, admin->port()) : "");

  // Reloads (docs/gateway.md, "Reloading the configuration"): on SIGHUP, and when the file's
  // content changed (checked every second). A failed reload keeps the running configuration.
  telemetry::CounterFamily& reloads = registry.counter(
      "prescale_gateway_config_reloads_total",
      "Configuration reloads (SIGHUP or a change of the file), by result", {"result"});
  telemetry::Counter& reloads_ok = reloads.with({"ok"});
  telemetry::Counter& reloads_failed = reloads.with({"failed"});
  telemetry::Gauge& last_reload = registry.gauge(
      "prescale_gateway_config_last_reload_success_timestamp_seconds",
      "When the configuration was last loaded successfully (start or reload), Unix seconds").with();
  auto wall_seconds = [] {
    return std::chrono::duration<double>(Clock::real().wall_now().time_since_epoch()).count();
  };
  last_reload.set(wall_seconds());
  // The controller's number for a service; 0 puts the file's back.
  auto set_admission = [&gw](std::string_view service, int n) {
    return n == 0 ? (*gw)->clear_max_requests_per_replica(service)
                  : (*gw)->set_max_requests_per_replica(service, static_cast<std::uint32_t>(n));
  };
  // The controller's limits from the start, where it answers.
  if (admission_feed) admission_feed->poll(set_admission);
  Clock::TimePoint next_admission_poll = Clock::real().now() + kAdmissionFeedInterval;
  std::optional<std::string> applied_text =
      f.config_path.empty() ? std::nullopt : read_whole_file(f.config_path);
  Config running = config;
  auto reload = [&](std::string_view why) {
    std::optional<std::string> text = read_whole_file(f.config_path);
    applied_text = text;  // a failed content is not tried again until the file changes
    auto fail = [&](const std::string& message) {
      reloads_failed.inc();
      spdlog::error("reload ({}) failed, keeping the running configuration: {}", why, message);
    };
    if (!text) return fail(f.config_path + ": cannot read the file");
    auto loaded = load_config_string(*text, f.config_path);  // messages carry file:line
    if (!loaded) return fail(loaded.error().message);
    auto next = effective_gateway_config(*loaded, f.upstreams);
    if (!next) return fail(f.config_path + ": " + next.error().message);
    if (auto r = (*gw)->reload(*next); !r) return fail(f.config_path + ": " + r.error().message);
    // The controller's limits stay in force over the file's just reloaded.
    if (admission_feed) admission_feed->reapply(set_admission);
    reloads_ok.inc();
    last_reload.set(wall_seconds());
    spdlog::info("reloaded configuration from {} ({} routes)", f.config_path, next->routes.size());
    if (loaded->gateway.listen != running.gateway.listen ||
        loaded->gateway.threads != running.gateway.threads ||
        loaded->http.max_header_bytes != running.http.max_header_bytes ||
        loaded->http.max_body_bytes != running.http.max_body_bytes ||
        loaded->http.read_timeout != running.http.read_timeout ||
        loaded->http.idle_timeout != running.http.idle_timeout ||
        loaded->http.max_connections != running.http.max_connections ||
        loaded->http.http2 != running.http.http2) {
      spdlog::warn("gateway.listen, gateway.threads and the http section take effect on restart");
    }
    if (!tls_from_flags && !(loaded->gateway.tls == running.gateway.tls)) {
      auto files = gateway_tls_files(loaded->gateway.tls, config_dir);
      if (files.has_value() != (tls != nullptr)) {
        spdlog::warn("gateway.tls turned {} takes effect on restart", files ? "on" : "off");
      } else if (files) {
        tls->change_files(*files, *server);
      }
    }
    if (!(loaded->tracing == running.tracing)) {
      spdlog::warn("tracing takes effect on restart (the spans go where they went)");
    }
    running = std::move(*loaded);
  };

  sigset_t wait_set;
  sigemptyset(&wait_set);
  sigaddset(&wait_set, SIGTERM);
  sigaddset(&wait_set, SIGINT);
  sigaddset(&wait_set, SIGHUP);
  int sig = 0;
  while (true) {
    const timespec poll_interval{1, 0};
    sig = sigtimedwait(&wait_set, nullptr, &poll_interval);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (admission_feed && Clock::real().now() >= next_admission_poll) {
      next_admission_poll = Clock::real().now() + kAdmissionFeedInterval;
      admission_feed->poll(set_admission);
    }
    // A renewed certificate is taken whether or not a file configures the gateway.
    if (tls) tls->refresh(*server, sig == SIGHUP ? "SIGHUP" : "file changed", sig == SIGHUP);
    if (f.config_path.empty()) {
      if (sig == SIGHUP && !tls) spdlog::warn("SIGHUP: no configuration file (-f) to reload");
      continue;
    }
    if (sig == SIGHUP) {
      reload("SIGHUP");
    } else if (read_whole_file(f.config_path) != applied_text) {
      reload("file changed");
    }
  }
  const auto grace = std::chrono::milliseconds(
      f.shutdown_grace_ms >= 0 ? f.shutdown_grace_ms : http.shutdown_grace.count());
  spdlog::info("gateway received {}, draining (grace {} ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               grace.count());
  ready = false;
  serving.stop(grace);
  spdlog::info("gateway drained, exiting");
  return 0;
}

}  // namespace prescale
