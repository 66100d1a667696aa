// `prescale up -f prescale.yaml`: the whole platform on this machine — the gateway, a
// supervisor running every service's replicas as child processes, the controller with its
// policy (prescale by default), and the dashboard — until SIGINT, SIGTERM or SIGHUP, which
// drains and stops everything (docs/cli.md, "prescale up").
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct UpFlags;

class UpCommand {
 public:
  explicit UpCommand(CLI::App& app);
  ~UpCommand();
  bool parsed() const;
  // Exit code: 0 after a clean stop, 1 when a listener cannot start, 2 for bad flags or config.
  int run() const;

 private:
  CLI::App* command_;
  std::unique_ptr<UpFlags> flags_;
};

}  // namespace prescale
