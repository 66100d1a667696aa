// Small pieces the subcommands share: listen addresses (gateway, up) and how figures are printed
// (sim, eval). (Port files: runtime::write_port_file.)
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

// "12.346" at 3 decimals, or "-" for a value that is not finite.
std::string fixed(double v, int decimals);
// "99.795 %" for 0.99795 at 3 decimals.
std::string percent(double share, int decimals);

}  // namespace prescale
