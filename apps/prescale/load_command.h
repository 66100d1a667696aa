// `prescale load`: replays a trace (or a constant rate) open-loop against a target URL with a
// weighted request mix, and reports latencies measured from each request's scheduled time
// (docs/cli.md).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace prescale {

struct LoadFlags;

class LoadCommand {
 public:
  // Registers the subcommand and its flags on `app`.
  explicit LoadCommand(CLI::App& app);
  ~LoadCommand();
  bool parsed() const;
  // Exit code: 0 when the run completed (whatever the target answered), 2 for bad input, 1 when
  // the report file cannot be written.
  int run() const;

 private:
  CLI::App* command_;
  std::unique_ptr<LoadFlags> flags_;
};

}  // namespace prescale
