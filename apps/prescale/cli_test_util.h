// For the in-process tests of `prescale` commands: parses a command line as main() would.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

namespace prescale::testing {

// Parses `prescale ARGS...` with `app` (its commands already added): nullopt when it parsed and
// the command is to run, else the exit status a parse error or --help ends with (2 or 0).
inline std::optional<int> parse_command_line(CLI::App& app, const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"prescale"};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace prescale::testing
