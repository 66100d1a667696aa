// `prescale sim`: replays a trace through the simulated world under each selected policy and
// reports SLO attainment and cost against the oracle (docs/cli.md, "## prescale sim").
#pragma once

#include <CLI/CLI.hpp>

#include <memory>

namespace prescale {

struct SimFlags;

class SimCommand {
 public:
  // Registers the subcommand and its flags on `app`.
  explicit SimCommand(CLI::App& app);
  ~SimCommand();
  bool parsed() const;
  int run() const;  // exit code: 0, 1 (the run failed), 2 (bad input)

 private:
  CLI::App* command_;
  std::unique_ptr<SimFlags> flags_;
};

}  // namespace prescale
