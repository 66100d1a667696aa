// Small pieces the long-running subcommands (gateway, up) share: listen addresses, port files,
// waiting for SIGTERM/SIGINT.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace prescale {

struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};

// "host:port" or "[ipv6]:port", port 0..65535. `what` names the setting in the error.
Result<ListenAddress> parse_listen(std::string_view s, std::string_view what = "gateway.listen");

// Written after binding, via a rename, so a reader never sees a partial file. "" = none.
void write_port_file(const std::string& path, uint16_t port);

// Blocks until SIGTERM or SIGINT (which must be blocked in every thread) and returns it.
int wait_for_termination_signal();

}  // namespace prescale
