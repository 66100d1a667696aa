// prescale: one binary, subcommands. This is an edge: exceptions from CLI parsing and config
// loading are turned into messages and exit codes here.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "check_command.h"
#include "cli_checks.h"
#include "controller_command.h"
#include "core/config.h"
#include "core/logging.h"
#include "eval_anomaly.h"
#include "eval_command.h"
#include "eval_fraud.h"
#include "eval_recommend.h"
#include "gateway_command.h"
#include "load_command.h"
#include "render_command.h"
#include "runtime/runtime.h"
#include "services/echo/echo_service.h"
#include "services/forecast/forecast_service.h"
#include "services/fraud/fraud_service.h"
#include "services/recommend/recommend_service.h"
#include "sim_command.h"
#include "status_command.h"
#include "telemetry/registry.h"
#include "telemetry/tracing.h"
#include "train_forecast.h"
#include "train_fraud.h"
#include "train_recommend.h"
#include "up_command.h"
#include "version.h"
#include "worlds/local/process.h"

namespace prescale {
namespace {

struct ServeFlags {
  std::string kind;
  std::string config_path;
  std::string address = "127.0.0.1";
  int port = 8080;
  int threads = 0;
  size_t max_body_bytes = 4 * 1024 * 1024;
  int shutdown_grace_ms = 10000;
  std::string port_file;
  std::string log_level = "info";
  std::string log_format = "text";
  // Model services (fraud, recommend): where versioned model files are, how often to look for
  // a new one; fraud's decision threshold (< 0: the model file's) and batch limit.
  std::string model_dir = "models";
  int model_poll_ms = 5000;
  double threshold = -1;
  size_t max_batch = 1000;
  // The server's limits: from prescale.yaml's http section, then the flags (unset: the
  // server's defaults). `prescale up` and the Kubernetes manifests pass a replica the flags.
  int64_t max_header_bytes = 16 * 1024;
  int64_t read_timeout_ms = 10000;
  int64_t idle_timeout_ms = 60000;
  int64_t max_connections = 10000;
  bool no_http2 = false;
  bool http2 = true;
};

// Settings from prescale.yaml (http, logging) apply first; flags given on the command line win.
int serve(ServeFlags flags, const CLI::App& cmd) {
  if (!flags.config_path.empty()) {
    auto config = load_config_file(flags.config_path);
    if (!config) {
      std::cerr << "prescale serve: " << config.error().message << "\n";
      return 2;
    }
    const HttpConfig& http = config->http;
    if (cmd.count("--threads") == 0) flags.threads = http.threads;
    if (cmd.count("--max-body-bytes") == 0) {
      flags.max_body_bytes = static_cast<size_t>(http.max_body_bytes);
    }
    if (cmd.count("--shutdown-grace-ms") == 0) {
      flags.shutdown_grace_ms = static_cast<int>(http.shutdown_grace.count());
    }
    if (cmd.count("--log-level") == 0) flags.log_level = to_string(config->logging.level);
    if (cmd.count("--log-format") == 0) {
      flags.log_format = config->logging.format == LogFormat::kJson ? "json" : "text";
    }
    auto unless_given = [&](const char* flag, int64_t& value, int64_t from_file) {
      if (cmd.count(flag) == 0) value = from_file;
    };
    unless_given("--max-header-bytes", flags.max_header_bytes, http.max_header_bytes);
    unless_given("--read-timeout-ms", flags.read_timeout_ms, http.read_timeout.count());
    unless_given("--idle-timeout-ms", flags.idle_timeout_ms, http.idle_timeout.count());
    unless_given("--max-connections", flags.max_connections, http.max_connections);
    flags.http2 = http.http2;
  }
  if (flags.no_http2) flags.http2 = false;
  if (!init_logging({.level = flags.log_level,
                     .format = flags.log_format == "json" ? LogFormat::kJson : LogFormat::kText})) {
    std::cerr << "prescale serve: --log-level: unknown level \"" << flags.log_level << "\"\n";
    return 2;
  }
  // A flag of another kind would be ignored: the user meant something that would not happen.
  const bool model_kind = flags.kind == "fraud" || flags.kind == "recommend" ||
                          flags.kind == "forecast";
  if (flags.kind == "echo" || model_kind) {
    for (const char* flag : {"--threshold", "--max-batch", "--model-dir", "--model-poll-ms"}) {
      const bool fraud_only = std::string_view(flag) == "--threshold" ||
                              std::string_view(flag) == "--max-batch";
      if (cmd.count(flag) == 0 || (fraud_only ? flags.kind == "fraud" : model_kind)) continue;
      std::cerr << "prescale serve " << flags.kind << ": " << flag << " applies to "
                << (fraud_only ? "fraud only" : "fraud, recommend and forecast only") << "\n";
      return 2;
    }
  }
  runtime::Runtime::block_termination_signals();

  // One registry for the runtime and the service, so a service's own metrics (e.g.
  // prescale_model_info) are on /metrics with the runtime's.
  telemetry::Registry registry;
  // Spans where OTEL_* variables say (docs/tracing.md). Made before the service, so that it
  // outlives the requests a service still answers as it goes (a delayed echo, say).
  const std::unique_ptr<telemetry::Tracer> tracer =
      telemetry::tracer_from_env(flags.kind, &registry);
  std::unique_ptr<runtime::Service> service;
  if (flags.kind == "echo") {
    service = std::make_unique<services::EchoService>();
  } else if (flags.kind == "forecast") {
    services::ForecastServiceOptions o;
    // Only when given: without model files the service forecasts with the method alone.
    if (cmd.count("--model-dir") > 0) o.model_dir = flags.model_dir;
    o.poll_interval = std::chrono::milliseconds(flags.model_poll_ms);
    o.registry = &registry;
    service = std::make_unique<services::ForecastService>(o);
  } else if (flags.kind == "fraud") {
    services::FraudServiceOptions o;
    o.model_dir = flags.model_dir;
    o.poll_period = std::chrono::milliseconds(flags.model_poll_ms);
    if (flags.threshold >= 0) o.threshold = flags.threshold;
    o.max_batch = flags.max_batch;
    o.registry = &registry;
    auto made = services::make_fraud_service(o);
    if (!made) {
      std::cerr << "prescale serve fraud: " << made.error().message << "\n";
      return 2;
    }
    service = std::move(*made);
  } else if (flags.kind == "recommend") {
    services::RecommendServiceOptions o;
    o.model_dir = flags.model_dir;
    o.poll_interval = std::chrono::milliseconds(flags.model_poll_ms);
    o.registry = &registry;
    auto made = services::make_recommend_service(o);
    if (!made) {
      std::cerr << "prescale serve recommend: " << made.error().message << "\n";
      return 2;
    }
    service = std::move(*made);
  } else {
    std::cerr << "prescale serve: unknown service kind \"" << flags.kind
              << "\"; available: echo, forecast, fraud, recommend\n";
    return 2;
  }

  runtime::RuntimeOptions options;
  options.server.address = flags.address;
  options.server.port = static_cast<uint16_t>(flags.port);
  options.server.threads = flags.threads;
  options.server.max_body_bytes = flags.max_body_bytes;
  options.server.max_header_bytes = static_cast<size_t>(flags.max_header_bytes);
  options.server.read_timeout = std::chrono::milliseconds(flags.read_timeout_ms);
  options.server.idle_timeout = std::chrono::milliseconds(flags.idle_timeout_ms);
  options.server.max_connections = static_cast<size_t>(flags.max_connections);
  options.server.http2 = flags.http2;
  options.shutdown_grace = std::chrono::milliseconds(flags.shutdown_grace_ms);
  options.registry = &registry;
  options.port_file = flags.port_file;
  options.tracer = tracer.get();
  runtime::Runtime rt(*service, options);
  if (auto started = rt.start(); !started) {
    std::cerr << "prescale serve " << flags.kind << ": " << started.error().to_string() << "\n";
    return 1;
  }
  return rt.run();
}

}  // namespace
}  // namespace prescale

int main(int argc, char** argv) {
  // The watchdog `prescale up` runs beside each replica (local::PosixLauncher): nothing else.
  if (argc == 4 && std::string_view(argv[1]) == "__watchdog") {
    return prescale::local::run_watchdog(argv[2], argv[3]);
  }
  using prescale::ServeFlags;
  CLI::App app{"Prescale: predictive autoscaling for AI microservices", "prescale"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("prescale ") + PRESCALE_VERSION);

  auto* version = app.add_subcommand("version", "Print the version and build information");

  ServeFlags flags;
  auto* serve = app.add_subcommand("serve", "Run one service replica on the service runtime");
  serve->add_option("kind", flags.kind, "Service kind: echo, forecast, fraud, recommend")
      ->required();
  serve->add_option("--model-dir", flags.model_dir,
                    "fraud, recommend, forecast (only when given): directory of versioned model "
                    "files (prescale train)")
      ->capture_default_str();
  serve->add_option("--model-poll-ms", flags.model_poll_ms,
                    "fraud, recommend, forecast: how often to look for a new model version; "
                    "0 = never")
      ->check(CLI::Range(0, 86400000))
      ->capture_default_str();
  serve->add_option("--threshold", flags.threshold,
                    "fraud: decision threshold on the fraud probability (default: the model's)")
      ->check(prescale::finite())
      ->check(CLI::Range(0.0, 1.0));
  serve->add_option("--max-batch", flags.max_batch, "fraud: transactions per batch request")
      ->check(prescale::non_negative())
      ->capture_default_str();
  serve->add_option("-f,--config", flags.config_path,
                    "prescale.yaml whose http and logging settings apply (flags win)");
  serve->add_option("--address", flags.address, "Address to listen on")->capture_default_str();
  serve->add_option("--port", flags.port, "Port to listen on; 0 picks a free port")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  serve->add_option("--threads", flags.threads, "I/O threads; 0 = number of cores")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  serve->add_option("--max-body-bytes", flags.max_body_bytes, "Largest accepted request body")
      ->check(prescale::non_negative())
      ->capture_default_str();
  serve
      ->add_option("--max-header-bytes", flags.max_header_bytes,
                   "Largest accepted request header block (431 beyond)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve
      ->add_option("--read-timeout-ms", flags.read_timeout_ms,
                   "Time allowed to receive one whole request (408 beyond)")
      ->check(CLI::Range(int64_t{1}, int64_t{3'153'600'000'000}))  // a century, as the file's
      ->capture_default_str();
  serve
      ->add_option("--idle-timeout-ms", flags.idle_timeout_ms,
                   "An idle keep-alive connection is closed after this long")
      ->check(CLI::Range(int64_t{1}, int64_t{3'153'600'000'000}))  // a century, as the file's
      ->capture_default_str();
  serve->add_option("--max-connections", flags.max_connections, "Most connections open at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_flag("--no-http2", flags.no_http2, "HTTP/1.1 only: take no HTTP/2 from clients");
  serve
      ->add_option("--shutdown-grace-ms", flags.shutdown_grace_ms,
                   "How long in-flight requests may take to finish after SIGTERM")
      ->check(CLI::Range(0, 3600000))
      ->capture_default_str();
  serve->add_option("--port-file", flags.port_file,
                    "Write the bound port to this file once listening");
  serve->add_option("--log-level", flags.log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  serve->add_option("--log-format", flags.log_format, "text or json (one JSON object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  prescale::SimCommand sim(app);
  prescale::EvalCommand eval(app);
  prescale::EvalFraudCommand eval_fraud(*app.get_subcommand("eval"));
  prescale::EvalRecommendCommand eval_recommend(*app.get_subcommand("eval"));
  prescale::EvalAnomalyCommand eval_anomaly(*app.get_subcommand("eval"));
  auto* train = app.add_subcommand("train", "Train a model and write a versioned model file");
  train->require_subcommand(1);
  prescale::TrainFraudCommand train_fraud(*train);
  prescale::TrainRecommendCommand train_recommend(*train);
  prescale::TrainForecastCommand train_forecast(*train);
  prescale::GatewayCommand gateway(app);
  prescale::LoadCommand load(app);
  prescale::UpCommand up(app);
  prescale::RenderCommand render(app);
  prescale::CheckCommand check(app);
  prescale::StatusCommand status(app);
  prescale::ControllerCommand controller(app);

  prescale::require_decimal_integers(app);

  // Bad flags exit 2 like every other input error (CLI11's own codes are 100+); --help is 0.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // `prescale simulate` is "A subcommand is required" to CLI11, the word left over: named.
    const CLI::App* at = &app;
    while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
    const auto commands = at->get_subcommands([](const CLI::App*) { return true; });
    // An option there ("prescale eval --trace x") is no command: the command is missing.
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && !commands.empty() &&
        !at->remaining().empty() && !at->remaining().front().starts_with('-')) {
      std::string names;
      for (const CLI::App* c : commands) names += (names.empty() ? "" : ", ") + c->get_name();
      std::string who;
      for (const CLI::App* a = at; a != nullptr; a = a->get_parent()) {
        who = a->get_name() + (who.empty() ? "" : " ") + who;
      }
      std::cerr << who << ": unknown command \"" << at->remaining().front()
                << "\"; commands: " << names << "\n";
      return 2;
    }
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (version->parsed()) {
    std::cout << "prescale " << PRESCALE_VERSION << " (" << PRESCALE_BUILD_TYPE << ", "
              << PRESCALE_COMPILER << ")\n";
    return 0;
  }
  if (serve->parsed()) return prescale::serve(flags, *serve);
  if (sim.parsed()) return sim.run();
  if (eval_fraud.parsed()) return eval_fraud.run();
  if (eval_anomaly.parsed()) return eval_anomaly.run();
  if (eval_recommend.parsed()) return eval_recommend.run();
  if (eval.parsed()) return eval.run();
  if (train_fraud.parsed()) return train_fraud.run();
  if (train_recommend.parsed()) return train_recommend.run();
  if (train_forecast.parsed()) return train_forecast.run();
  if (gateway.parsed()) return gateway.run();
  if (up.parsed()) return up.run();
  if (load.parsed()) return load.run();
  if (render.parsed()) return render.run();
  if (check.parsed()) return check.run();
  if (status.parsed()) return status.run();
  if (controller.parsed()) return controller.run();
  return 0;
}
