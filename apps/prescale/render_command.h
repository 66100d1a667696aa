// `prescale render kubernetes`: prescale.yaml as Kubernetes manifests (src/worlds/kube/manifests.h,
// docs/kubernetes.md), a YAML stream on standard output or in a file:
//
//   prescale render kubernetes -f prescale.yaml --image registry.example.com/prescale:0.9 |
//       kubectl apply -f -
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct RenderFlags;

class RenderCommand {
 public:
  // Adds `render` and its `kubernetes` command to `app`.
  explicit RenderCommand(CLI::App& app);
  ~RenderCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (could not write), 2 (bad input)

 private:
  CLI::App* command_;
  std::unique_ptr<RenderFlags> flags_;
};

}  // namespace prescale
