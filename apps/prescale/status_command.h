// `prescale status`: what a running platform is doing, in the terminal (as `kubectl get` shows a
// cluster), read from its dashboard's API (docs/dashboard.md):
//
//   prescale status [--ui 127.0.0.1:9090] [--json]
//
// A line of the run (policy, requests, share within the SLO, replica-hours), a row per service
// (ready and planned replicas, load, p99 against its SLO, errors, an open incident, slowdown or
// rollout), and each service's latest decision with its reason. `prescale controller`'s admin
// port serves the same API on Kubernetes. Exit code: 0, 1 when nothing answers at the address or
// the answer is not the API's, 2 bad flags.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace prescale {

// The text `prescale status` prints for the API's /api/v1/overview and /api/v1/services answers
// (`services`: its "services" array), `address` naming where they came from. Errors
// (std::exception from nlohmann) when they are not the API's shape.
std::string status_text(const std::string& address, const nlohmann::json& overview,
                        const nlohmann::json& services);

struct StatusFlags;

class StatusCommand {
 public:
  explicit StatusCommand(CLI::App& app);
  ~StatusCommand();
  bool parsed() const;
  int run() const;

 private:
  CLI::App* command_;
  std::unique_ptr<StatusFlags> flags_;
};

}  // namespace prescale
