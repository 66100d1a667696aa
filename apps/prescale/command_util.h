// Small pieces the subcommands share: listen addresses (gateway, up), how figures are printed
// (sim, eval), output files (sim, eval, load), and a service's spec for the controller (up, sim).
// (Port files: core/port_file.h; the gateway's listeners: gateway_listeners.h.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/result.h"
#include "scaling/policy.h"

namespace prescale {

struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};

// "host:port" or "[ipv6]:port", port 0..65535. `what` names the setting in the error.
Result<ListenAddress> parse_listen(std::string_view s, std::string_view what = "gateway.listen");

// "12.346" at 3 decimals, or "-" for a value that is not finite.
std::string fixed(double v, int decimals);
// "99.795 %" for 0.99795 at 3 decimals.
std::string percent(double share, int decimals);

// Writes a command's output file as write_output_file() does. When it cannot, says so on stderr,
// "<who>: <flag>: cannot write <path>: <why>", and returns false: the command then exits 1.
// `flag` is the option that named the file ("--json").
bool write_command_output(std::string_view who, std::string_view flag, const std::string& path,
                          std::string_view bytes);

// Whether two paths name one file (by any path to it: a link, "./x" and "x").
bool same_file(const std::string& a, const std::string& b);

// The whole content of the file at `path`; nullopt when it cannot be read. What the gateway's
// reload and `up`'s notice of an edit compare to tell that a configuration file changed.
std::optional<std::string> read_whole_file(const std::string& path);

// Whether write_command_output() could write `path`, checked before a long run so that its
// results are not lost to a mistyped path: not a directory, and in an existing directory this
// process may write (a link or a device is written through, as there). When not, says so on
// stderr, "<who>: <flag>: cannot write <path>: <why>", and returns false: the command then
// exits 2.
bool output_path_usable(std::string_view who, std::string_view flag, const std::string& path);

// Whether a trainer can write its model files into `dir`, checked before the training: a
// directory this process may write, or a path whose nearest existing ancestor is one (the
// trainer creates the rest). When not, says so on stderr, "<who>: <flag>: cannot write model
// files in <dir>: <why>", and returns false: the command then exits 2.
bool model_dir_usable(std::string_view who, std::string_view flag, const std::string& dir);

// What the controller knows of a service from its prescale.yaml entry. On a clock running
// `time_scale` times real time (prescale up --time-scale) a replica's startup takes that many
// times longer in controller time.
scaling::ServiceSpec service_spec(const ServiceConfig& s, double time_scale = 1);

}  // namespace prescale
