// `prescale eval forecast`: rolling-origin evaluation of every forecasting model on a trace's
// held-out tail (docs/cli.md, "## prescale eval forecast").
#pragma once

#include <CLI/CLI.hpp>

#include <memory>

namespace prescale {

struct EvalFlags;

class EvalCommand {
 public:
  // Registers `eval` and its subcommands on `app`.
  explicit EvalCommand(CLI::App& app);
  ~EvalCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (could not write), 2 (bad input)

 private:
  CLI::App* command_;
  CLI::App* forecast_;
  std::unique_ptr<EvalFlags> flags_;
};

}  // namespace prescale
