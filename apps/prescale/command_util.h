// Small pieces the long-running subcommands (gateway, up) share: listen addresses. (Port files:
// runtime::write_port_file.)
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

}  // namespace prescale
