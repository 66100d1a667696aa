// Port files: how a process that binds a port (0 picks any free one) tells whoever waits for it
// which one it got: the port in decimal and a newline, written whole or not at all. `prescale
// serve`, `gateway` and `up` write them (--port-file and the like); the local supervisor and the
// tests read them.
//
// Thread safety: pure functions of the file system.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "core/result.h"

namespace prescale {

// Writes `port` to `path` via a rename, so a reader never sees a partial file. "" = nothing.
// Errors: kUnavailable naming the path (a run directory that is gone or not writable).
Result<void> write_port_file(std::string_view path, uint16_t port);

// A port file a command was asked to write.
struct PortFile {
  std::string_view flag;  // the option that named it, e.g. "--port-file"
  std::string_view path;  // "" = none asked for
  uint16_t port = 0;      // the bound port; 0 = its listener is off, nothing to write
};

// Writes each of `files` in order, stopping at the first that cannot be written. Errors: that
// file's, its message after the flag ("--port-file: cannot write ...").
Result<void> write_port_files(std::initializer_list<PortFile> files);

}  // namespace prescale
