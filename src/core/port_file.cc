#include "core/port_file.h"

#include <string>

#include "core/versioned_file.h"

namespace prescale {

Result<void> write_port_file(std::string_view path, uint16_t port) {
  if (path.empty()) return {};
  return write_file_atomically(path, std::to_string(port) + "\n");
}

Result<void> write_port_files(std::initializer_list<PortFile> files) {
  for (const PortFile& file : files) {
    if (file.port == 0) continue;
    if (auto written = write_port_file(file.path, file.port); !written) {
      return make_error(written.error().code,
                        std::string(file.flag) + ": " + written.error().message);
    }
  }
  return {};
}

}  // namespace prescale
