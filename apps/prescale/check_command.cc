#include "check_command.h"

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "command_util.h"
#include "core/text_file.h"
#include "gateway_tls.h"
#include "local_platform.h"
#include "telemetry/registry.h"
#include "worlds/kube/manifests.h"

namespace prescale {
namespace {

void add_lines(std::vector<std::string>& to, std::string_view text) {
  while (!text.empty()) {
    const size_t end = text.find('\n');
    if (std::string_view line = text.substr(0, end); !line.empty()) to.emplace_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

std::string plural(size_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

// What `prescale up` refuses at its start beyond the file: the world, the programs and models,
// the ports, the certificate.
void check_local(const std::string& path, const Config& config, const CheckOptions& o,
                 CheckReport& report) {
  if (config.world != WorldKind::kLocal) {
    report.errors.push_back(
        path + ": world is " + std::string(to_string(config.world)) +
        "; prescale up runs the local world" +
        (config.world == WorldKind::kKube ? " (check it for Kubernetes with --kubernetes)" : ""));
  }
  // The loader has checked gateway.listen; --port and --ui as `prescale up` takes them.
  auto gateway = parse_listen(config.gateway.listen);
  auto ui = parse_listen(o.ui_listen.empty() ? kDefaultUiListen : o.ui_listen, "--ui");
  if (!ui) report.errors.push_back(ui.error().message);
  if (gateway && o.gateway_port >= 0) gateway->port = static_cast<uint16_t>(o.gateway_port);
  for (std::string& line : preflight_problems(config, path, gateway ? *gateway : ListenAddress{},
                                              ui ? *ui : ListenAddress{})) {
    report.errors.push_back(std::move(line));
  }
  // The certificate the gateway would serve: loaded (the key must match), and what a start
  // warns of it (expired, or expiring within 14 days) taken as warnings.
  const std::filesystem::path config_dir = std::filesystem::absolute(path).parent_path();
  if (auto files = gateway_tls_files(config.gateway.tls, config_dir)) {
    const std::shared_ptr<spdlog::logger> before = spdlog::default_logger();
    auto said = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
    said->set_level(spdlog::level::warn);
    said->set_pattern("%v");  // the message alone
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("check", said));
    telemetry::Registry registry;
    auto tls = GatewayTls::load(*files, registry);
    spdlog::set_default_logger(before);
    if (!tls) report.errors.push_back(path + ": gateway.tls: " + tls.error().message);
    for (std::string text : said->last_formatted()) {
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      report.warnings.push_back(path + ": gateway.tls: " + text);
    }
  }
}

}  // namespace

CheckReport check_config(const std::string& path, const CheckOptions& o) {
  CheckReport report;
  report.file = path;
  report.kubernetes = o.kubernetes;
  // Read as the render reads it, so that what it refuses of the text (not UTF-8) is said too.
  auto text = read_text_file(path);
  if (!text) {
    add_lines(report.errors, text.error().message);
    return report;
  }
  auto loaded = load_config_string(*text, path);
  if (!loaded) {
    add_lines(report.errors, loaded.error().message);
    return report;
  }
  report.loaded = true;
  report.config = std::move(*loaded);
  const Config& config = report.config;
  report.kubernetes = o.kubernetes || config.world == WorldKind::kKube;
  // The policy each runs (the file's, or the one the flag names): not one that needs a trace.
  if (auto policy = live_policy_name(config, o.policy); !policy) {
    report.errors.push_back(path + ": " + policy.error().message);
  }
  if (report.kubernetes) {
    kube::ManifestOptions options;
    options.image = o.image;
    options.keda = o.keda;
    options.config_text = *text;
    options.config_name = path;
    if (auto objects = kube::kubernetes_objects(config, options); !objects) {
      add_lines(report.errors, objects.error().message);
    }
    for (std::string& line : kube::cold_start_warnings(config, options)) {
      report.warnings.push_back(std::move(line));
    }
  } else {
    check_local(path, config, o, report);
  }
  Config served = config;
  prepare_gateway(served);
  for (std::string& line : unrouted_warnings(served)) report.warnings.push_back(std::move(line));
  return report;
}

struct CheckFlags {
  std::string config_path = "prescale.yaml";
  CheckOptions options;
  bool strict = false;
  bool json = false;
};

CheckCommand::CheckCommand(CLI::App& app) : flags_(std::make_unique<CheckFlags>()) {
  CheckFlags& f = *flags_;
  command_ = app.add_subcommand(
      "check",
      "Say whether prescale.yaml would run, every problem and warning, starting nothing (exit 0 "
      "valid, 1 not)");
  CheckOptions& o = f.options;
  command_->add_option("-f,--file", f.config_path, "The file to check")->capture_default_str();
  command_->add_option("--policy", o.policy,
                       "The policy it would run with (prescale up's or the controller's "
                       "--policy; default: the file's)");
  command_->add_option(
      "--ui", o.ui_listen,
      "prescale up's --ui (default: its default, " + std::string(kDefaultUiListen) + ")");
  command_->add_option("--port", o.gateway_port, "prescale up's --port")
      ->check(CLI::Range(0, 65535));
  command_->add_flag("--kubernetes", o.kubernetes,
                     "Check it for `prescale render kubernetes` and the controller rather than "
                     "for `prescale up` (implied by world: kube)");
  command_->add_option("--image", o.image, "With --kubernetes: the image render would be given")
      ->capture_default_str();
  command_->add_flag("--keda", o.keda, "With --kubernetes: rendered with --keda");
  command_->add_flag("--strict", f.strict, "A warning makes the file not valid (exit 1)");
  command_->add_flag("--json", f.json,
                     "One JSON object on standard output (docs/cli.md, \"prescale check\")");
}

CheckCommand::~CheckCommand() = default;

bool CheckCommand::parsed() const { return command_->parsed(); }

int CheckCommand::run() const {
  const CheckFlags& f = *flags_;
  const CheckReport r = check_config(f.config_path, f.options);
  const bool valid = r.errors.empty() && (!f.strict || r.warnings.empty());
  if (f.json) {
    nlohmann::ordered_json j = {{"file", r.file},
                                {"valid", valid},
                                {"target", r.kubernetes ? "kubernetes" : "local"},
                                {"errors", r.errors},
                                {"warnings", r.warnings}};
    if (r.loaded) {
      j["services"] = r.config.services.size();
      j["routes"] = r.config.gateway.routes.size();
      j["policy"] = to_string(r.config.policy.name);
    }
    std::cout << j.dump(2) << "\n";
    return valid ? 0 : 1;
  }
  for (const std::string& e : r.errors) std::cerr << "error: " << e << "\n";
  for (const std::string& w : r.warnings) std::cerr << "warning: " << w << "\n";
  std::string summary = r.file + ": ";
  summary += valid ? "valid" : "not valid";
  if (r.loaded) {
    summary += " for " + std::string(r.kubernetes ? "Kubernetes" : "prescale up") + " (" +
               plural(r.config.services.size(), "service") + ", " +
               plural(r.config.gateway.routes.size(), "route") + ", policy " +
               std::string(to_string(r.config.policy.name)) + ")";
  }
  summary += ": " + plural(r.errors.size(), "error") + ", " + plural(r.warnings.size(), "warning");
  if (f.strict && r.errors.empty() && !r.warnings.empty()) summary += " (--strict)";
  (valid ? std::cout : std::cerr) << summary << "\n";
  return valid ? 0 : 1;
}

}  // namespace prescale
