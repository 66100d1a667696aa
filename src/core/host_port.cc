#include "core/host_port.h"

#include <charconv>

namespace prescale {

std::string host_port(std::string_view host, uint16_t port) {
  std::string out;
  out.reserve(host.size() + 8);  // brackets, ':' and five digits
  append_host_port(out, host, port);
  return out;
}

void append_host_port(std::string& out, std::string_view host, uint16_t port) {
  const bool bracket = host.find(':') != std::string_view::npos && !host.starts_with('[');
  if (bracket) out += '[';
  out += host;
  if (bracket) out += ']';
  out += ':';
  char digits[5];  // 65535
  const auto end = std::to_chars(digits, digits + sizeof digits, port).ptr;
  out.append(digits, end);
}

}  // namespace prescale
