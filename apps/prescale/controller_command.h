// `prescale controller`: the control plane in a Kubernetes cluster (docs/kubernetes.md). It runs
// the file's policy against the Deployments `prescale render kubernetes` wrote (KubeWorld):
// reads the pods and every gateway pod's metrics, and scales the Deployments, logging each change
// with its reason, until SIGTERM or SIGINT.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct ControllerFlags;

class ControllerCommand {
 public:
  explicit ControllerCommand(CLI::App& app);
  ~ControllerCommand();
  bool parsed() const;
  // Exit code: 0 after a stop, 1 when the admin port cannot be bound, 2 for bad flags or config
  // or an API it cannot reach at the start.
  int run() const;

 private:
  CLI::App* command_;
  std::unique_ptr<ControllerFlags> flags_;
};

}  // namespace prescale
