// `prescale check`: whether prescale.yaml would run, without starting anything (as `nginx -t` or
// `envoy --mode validate`), for an editor or a CI step before a deploy:
//
//   prescale check -f prescale.yaml [--kubernetes] [--strict] [--json]
//
// It reads the file as `prescale up` does and says every problem that would stop a start (the
// file's own, then the local platform's: a command that cannot run, a model service without its
// model), and every warning a start would log (a service no route names). With --kubernetes, or
// a file whose world is kube, it checks what `prescale render kubernetes` and the controller ask
// instead: names and images Kubernetes takes, and routes to a service that scales to zero whose
// timeout a cold request there outlasts. Exit code: 0 valid (warnings allowed, unless
// --strict), 1 not valid, 2 bad flags. docs/cli.md, "prescale check", lists the --json fields.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace prescale {

// What a check found in one file.
struct CheckReport {
  std::string file;
  bool loaded = false;  // the file read and parsed: `config` is it
  Config config;
  bool kubernetes = false;  // checked for Kubernetes, not for the local platform
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

// How the file would be run: `prescale up`'s flags, or the render's.
struct CheckOptions {
  std::string policy;     // --policy; "" = the file's
  std::string ui_listen;  // --ui; "" = prescale up's default
  int gateway_port = -1;  // --port; -1 = gateway.listen's
  bool kubernetes = false;
  std::string image = "prescale";
  bool keda = false;
};

// Checks `path` as `prescale up` (or, with `kubernetes`, `prescale render kubernetes` and the
// controller) would take it.
CheckReport check_config(const std::string& path, const CheckOptions& options);

struct CheckFlags;

class CheckCommand {
 public:
  explicit CheckCommand(CLI::App& app);
  ~CheckCommand();
  bool parsed() const;
  int run() const;  // exit code: 0 valid, 1 not (or warnings under --strict)

 private:
  CLI::App* command_;
  std::unique_ptr<CheckFlags> flags_;
};

}  // namespace prescale
