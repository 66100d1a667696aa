#include "check_command.h"

#include <iostream>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "command_util.h"
#include "local_platform.h"
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

}  // namespace

CheckReport check_config(const std::string& path, bool kubernetes, const std::string& image) {
  CheckReport report;
  report.file = path;
  auto loaded = load_config_file(path);
  if (!loaded) {
    add_lines(report.errors, loaded.error().message);
    return report;
  }
  report.loaded = true;
  report.config = std::move(*loaded);
  const Config& config = report.config;
  report.kubernetes = kubernetes || config.world == WorldKind::kKube;
  if (report.kubernetes) {
    kube::ManifestOptions options;
    options.image = image;
    options.config_name = path;
    if (auto objects = kube::kubernetes_objects(config, options); !objects) {
      add_lines(report.errors, objects.error().message);
    }
    for (std::string& line : kube::cold_start_warnings(config, options)) {
      report.warnings.push_back(std::move(line));
    }
  } else {
    if (config.world != WorldKind::kLocal) {
      report.errors.push_back(path + ": world is " + std::string(to_string(config.world)) +
                              "; prescale up runs the local world (check it for Kubernetes with "
                              "--kubernetes)");
    }
    // The dashboard's port is up's --ui default: the clash `prescale up` would refuse.
    auto gateway = parse_listen(config.gateway.listen);
    if (!gateway) report.errors.push_back(gateway.error().message);
    const auto ui = parse_listen("127.0.0.1:9090", "--ui");
    for (std::string& line : preflight_problems(config, path, gateway ? *gateway : *ui, *ui)) {
      report.errors.push_back(std::move(line));
    }
  }
  Config served = config;
  prepare_gateway(served);
  for (std::string& line : unrouted_warnings(served)) report.warnings.push_back(std::move(line));
  return report;
}

struct CheckFlags {
  std::string config_path = "prescale.yaml";
  bool kubernetes = false;
  std::string image = "prescale";
  bool strict = false;
  bool json = false;
};

CheckCommand::CheckCommand(CLI::App& app) : flags_(std::make_unique<CheckFlags>()) {
  CheckFlags& f = *flags_;
  command_ = app.add_subcommand(
      "check",
      "Say whether prescale.yaml would run, every problem and warning, starting nothing (exit 0 "
      "valid, 1 not)");
  command_->add_option("-f,--file", f.config_path, "The file to check")->capture_default_str();
  command_->add_flag("--kubernetes", f.kubernetes,
                     "Check it for `prescale render kubernetes` and the controller rather than "
                     "for `prescale up` (implied by world: kube)");
  command_->add_option("--image", f.image, "With --kubernetes: the image render would be given")
      ->capture_default_str();
  command_->add_flag("--strict", f.strict, "A warning makes the file not valid (exit 1)");
  command_->add_flag("--json", f.json,
                     "One JSON object on standard output (docs/cli.md, \"prescale check\")");
}

CheckCommand::~CheckCommand() = default;

bool CheckCommand::parsed() const { return command_->parsed(); }

int CheckCommand::run() const {
  const CheckFlags& f = *flags_;
  const CheckReport r = check_config(f.config_path, f.kubernetes, f.image);
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
