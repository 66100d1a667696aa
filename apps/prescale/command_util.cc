#include "command_util.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/host_port.h"
#include "core/versioned_file.h"

namespace prescale {

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return std::move(out).str();
}

Result<ListenAddress> parse_listen(std::string_view s, std::string_view what) {
  const HostPortParts parts = split_host_port(s, 0);
  std::string why;
  switch (parts.fault) {
    case HostPortFault::kNone:
      return ListenAddress{std::string(parts.host), parts.port};
    case HostPortFault::kShape:
      why = "expected host:port, got \"" + std::string(s) + "\"";
      break;
    case HostPortFault::kNotIpv6:
      why = "expected host:port with an IPv6 address in brackets, got \"" + std::string(s) + "\"";
      break;
    case HostPortFault::kPort:
      why = "port must be 0..65535, got \"" + std::string(parts.port_text) + "\"";
      break;
    case HostPortFault::kLeadingZero:
      why = "port must be written without leading zeros, got \"" + std::string(parts.port_text) +
            "\"";
      break;
  }
  return make_error(ErrorCode::kInvalidArgument, std::string(what) + ": " + why);
}

std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "-";
  // Sized for the largest double (309 digits) and the decimals asked for: a smaller buffer cut
  // 2e302 to "2e46"'s digits.
  std::string out(static_cast<size_t>(std::snprintf(nullptr, 0, "%.*f", decimals, v)) + 1, '\0');
  std::snprintf(out.data(), out.size(), "%.*f", decimals, v);
  out.pop_back();
  return out;
}

std::string percent(double share, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f %%", decimals, 100 * share);
  return buf;
}

bool write_command_output(std::string_view who, std::string_view flag, const std::string& path,
                          std::string_view bytes) {
  if (auto written = write_output_file(path, bytes); !written) {
    std::cerr << who << ": " << flag << ": cannot write " << written.error().message << "\n";
    return false;
  }
  return true;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return a == b || std::filesystem::equivalent(a, b, ec);
}

bool output_path_usable(std::string_view who, std::string_view flag, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path file(path);
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::string why;
  if (fs::is_directory(file, ec)) {
    why = "it is a directory";
  } else if (const auto status = fs::symlink_status(file, ec);
             fs::exists(status) && !fs::is_regular_file(status)) {
    return true;  // written through, not replaced
  } else if (!fs::is_directory(dir, ec)) {
    why = "no directory " + dir.string();
  } else if (::access(dir.c_str(), W_OK) != 0) {
    why = dir.string() + ": " + std::strerror(errno);
  } else {
    return true;
  }
  std::cerr << who << ": " << flag << ": cannot write " << path << ": " << why << "\n";
  return false;
}

bool model_dir_usable(std::string_view who, std::string_view flag, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path existing(dir);
  while (!fs::exists(fs::symlink_status(existing, ec))) {
    // "models" is created in the working directory.
    existing = existing.has_parent_path() ? existing.parent_path() : fs::path(".");
  }
  std::string why;
  if (!fs::is_directory(existing, ec)) {
    why = existing.string() + " is not a directory";
  } else if (::access(existing.c_str(), W_OK) != 0) {
    why = existing.string() + ": " + std::strerror(errno);
  } else {
    return true;
  }
  std::cerr << who << ": " << flag << ": cannot write model files in " << dir << ": " << why
            << "\n";
  return false;
}

scaling::ServiceSpec service_spec(const ServiceConfig& s, double time_scale) {
  scaling::ServiceSpec spec;
  spec.name = s.name;
  spec.min_replicas = s.replicas.min;
  spec.max_replicas = s.replicas.max;
  spec.capacity_rps = s.capacity_rps;
  spec.max_concurrency = s.effective_concurrency();
  // Real seconds, as the gateway applies it.
  spec.queue_limit_seconds = std::chrono::duration<double>(s.effective_queue_limit()).count();
  spec.slo_latency_p99_seconds = s.slo.latency_p99_ms / 1000.0;
  // A replica takes startup_time of real time; on a compressed clock that is longer. At most a
  // century, the longest duration a file may give: a century's on a 3x clock is past what int64
  // nanoseconds hold, and converting it has no defined result.
  constexpr std::chrono::duration<double, std::milli> kLongest = std::chrono::hours(876000);
  spec.startup_time = std::chrono::duration_cast<Clock::Duration>(std::min(
      std::chrono::duration<double, std::milli>(static_cast<double>(s.startup_time.count()) *
                                                time_scale),
      kLongest));
  return spec;
}

}  // namespace prescale
