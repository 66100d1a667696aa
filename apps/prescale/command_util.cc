#include "command_util.h"

#include <charconv>
#include <csignal>
#include <cstdio>
#include <fstream>

namespace prescale {

Result<ListenAddress> parse_listen(std::string_view s, std::string_view what) {
  auto bad = [&] {
    return make_error(ErrorCode::kInvalidArgument, std::string(what) +
                                                       ": expected host:port, got \"" +
                                                       std::string(s) + "\"");
  };
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view host = s.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  }
  const std::string_view port_text = s.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return bad();
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(port)};
}

void write_port_file(const std::string& path, uint16_t port) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

int wait_for_termination_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace prescale
