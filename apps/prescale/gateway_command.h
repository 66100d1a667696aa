// `prescale gateway`: runs the gateway's data path (routing to static upstreams through the
// proxy) with its admin endpoints, until SIGTERM or SIGINT (docs/gateway.md).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct GatewayFlags;

class GatewayCommand {
 public:
  // Registers the subcommand and its flags on `app`.
  explicit GatewayCommand(CLI::App& app);
  ~GatewayCommand();
  bool parsed() const;
  // Exit code: 0 after a clean drain, 1 when a listener cannot start, 2 for bad flags or config.
  int run() const;

 private:
  CLI::App* command_;
  std::unique_ptr<GatewayFlags> flags_;
};

}  // namespace prescale
