#include "gateway_command.h"

#include "command_util.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/logging.h"
#include "gateway/endpoint_table.h"
#include "gateway/gateway.h"
#include "http/json.h"
#include "http/router.h"
#include "http/server.h"
#include "runtime/runtime.h"
#include "telemetry/exposition.h"
#include "telemetry/process_metrics.h"
#include "telemetry/registry.h"

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
};

namespace {

// --upstream flags over gateway.upstreams: a flag replaces the config's list for its service.
Result<std::map<std::string, std::vector<std::pair<std::string, uint16_t>>>> static_upstreams(
    const GatewayConfig& config, const std::vector<std::string>& flags) {
  std::map<std::string, std::vector<std::string>> lists = config.upstreams;
  for (const std::string& flag : flags) {
    const size_t eq = flag.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == flag.size()) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "--upstream: expected SERVICE=HOST:PORT[,HOST:PORT...], got \"" + flag + "\"");
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

}  // namespace

GatewayCommand::GatewayCommand(CLI::App& app) : flags_(std::make_unique<GatewayFlags>()) {
  GatewayFlags& f = *flags_;
  command_ = app.add_subcommand("gateway", "Run the gateway: route requests to upstream services");
  command_->add_option("-f,--config", f.config_path,
                       "prescale.yaml: gateway.listen, gateway.threads, gateway.routes, "
                       "gateway.upstreams, http and logging apply (flags win)");
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

  auto listen = parse_listen(config.gateway.listen);
  if (!listen) return error(listen.error().message);
  if (!f.address.empty()) listen->host = f.address;
  if (f.port >= 0) listen->port = static_cast<uint16_t>(f.port);

  auto upstreams = static_upstreams(config.gateway, f.upstreams);
  if (!upstreams) return error(upstreams.error().message);

  // --upstream flags replace the config's lists; without routes, a gateway for one service sends
  // it everything.
  GatewayConfig gateway_config = config.gateway;
  gateway_config.upstreams.clear();
  for (const auto& [service, endpoints] : *upstreams) {
    auto& list = gateway_config.upstreams[service];
    for (const auto& [host, port] : endpoints) {
      const bool v6 = host.find(':') != std::string::npos;
      list.push_back((v6 ? "[" + host + "]" : host) + ":" + std::to_string(port));
    }
  }
  if (gateway_config.routes.empty()) {
    if (upstreams->size() != 1) {
      return error(
          "no gateway.routes: give a config with routes, or exactly one --upstream service");
    }
    RouteConfig all;
    all.service = upstreams->begin()->first;
    gateway_config.routes.push_back(std::move(all));
  }
  for (const RouteConfig& route : gateway_config.routes) {
    if (!upstreams->contains(route.service)) {
      return error("route to service \"" + route.service +
                   "\" has no upstream endpoints: list them under gateway.upstreams or pass "
                   "--upstream " +
                   route.service + "=HOST:PORT");
    }
  }

  telemetry::Registry registry;
  telemetry::register_process_metrics(registry);
  // Routes, rate limits, trace context, and per service the balancer, breakers, outlier
  // ejection and retry budget (docs/gateway.md, docs/gateway-resilience.md).
  gateway::GatewayOptions gateway_options;
  gateway_options.registry = &registry;
  gateway_options.connect_timeout = std::chrono::milliseconds(f.connect_timeout_ms);
  auto gw = gateway::Gateway::create(gateway_config, gateway_options);
  if (!gw) return error(gw.error().message);

  const HttpConfig& http = config.http;
  http::ServerOptions options;
  options.address = listen->host;
  options.port = listen->port;
  options.threads = f.threads >= 0 ? f.threads : config.gateway.threads;
  options.max_header_bytes = static_cast<size_t>(http.max_header_bytes);
  options.max_body_bytes = static_cast<size_t>(http.max_body_bytes);
  options.read_timeout = http.read_timeout;
  options.idle_timeout = http.idle_timeout;
  options.max_connections = static_cast<size_t>(http.max_connections);
  auto server = std::make_unique<http::Server>(options, (*gw)->handler());
  if (auto started = server->start(); !started) {
    std::cerr << "prescale gateway: " << started.error().to_string() << "\n";
    return 1;
  }

  // The admin endpoints live on their own port, so no path of the routed services is taken.
  std::atomic<bool> draining{false};
  http::Router admin_router;
  admin_router.add(http::Method::kGet, "/metrics", [&registry](http::Request&, http::Responder r) {
    http::Response response;
    response.headers.set("Content-Type", std::string(telemetry::kTextContentType));
    response.body = telemetry::expose(registry);
    r(std::move(response));
  });
  admin_router.add(http::Method::kGet, "/healthz",
                   [](http::Request&, http::Responder r) { r(http::Response::text(200, "ok\n")); });
  admin_router.add(http::Method::kGet, "/readyz", [&draining](http::Request&, http::Responder r) {
    r(draining.load() ? http::Response::text(503, "draining\n")
                      : http::Response::text(200, "ready\n"));
  });
  std::unique_ptr<http::Server> admin;
  if (f.admin_port >= 0) {
    http::ServerOptions admin_options;
    admin_options.address = listen->host;
    admin_options.port = static_cast<uint16_t>(f.admin_port);
    admin_options.threads = 1;
    admin = std::make_unique<http::Server>(admin_options, admin_router.as_handler());
    if (auto started = admin->start(); !started) {
      std::cerr << "prescale gateway: admin: " << started.error().to_string() << "\n";
      server->shutdown(std::chrono::milliseconds(0));
      return 1;
    }
  }
  write_port_file(f.port_file, server->port());
  if (admin) write_port_file(f.admin_port_file, admin->port());
  (*gw)->start_upkeep();
  spdlog::info("gateway listening on {}:{} ({} routes){}", listen->host, server->port(),
               gateway_config.routes.size(),
               admin ? fmt::format(", admin on {}:{}", listen->host, admin->port()) : "");

  const int sig = wait_for_termination_signal();
  const auto grace = std::chrono::milliseconds(
      f.shutdown_grace_ms >= 0 ? f.shutdown_grace_ms : http.shutdown_grace.count());
  spdlog::info("gateway received {}, draining (grace {} ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               grace.count());
  draining = true;
  server->shutdown(grace);
  if (admin) admin->shutdown(std::chrono::milliseconds(0));
  (*gw)->stop_upkeep();
  spdlog::info("gateway drained, exiting");
  return 0;
}

}  // namespace prescale
