#include "telemetry/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>
#include <vector>

#include "core/text_file.h"

namespace prescale::telemetry {
namespace {

bool parse_number(std::string_view token, double* out) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (ec != std::errc() || end != token.data() + token.size()) return false;
  *out = static_cast<double>(v);
  return true;
}

std::vector<std::string_view> split_blanks(std::string_view s) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\n') ++i;
    if (i > start) tokens.push_back(s.substr(start, i - start));
  }
  return tokens;
}

FamilySnapshot single_value(const char* name, const char* help, MetricType type, double value) {
  FamilySnapshot family{name, help, type, {}, {}};
  family.series.push_back(SeriesSnapshot{{}, value, {}});
  return family;
}

void collect_process_metrics(std::vector<FamilySnapshot>& out) {
  if (auto stats = read_process_stats()) {
    out.push_back(single_value("process_cpu_seconds_total",
                               "Total user and system CPU time spent in seconds.",
                               MetricType::kCounter, stats->cpu_seconds));
    out.push_back(single_value("process_resident_memory_bytes", "Resident memory size in bytes.",
                               MetricType::kGauge, stats->resident_memory_bytes));
    out.push_back(single_value("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                               MetricType::kGauge, stats->virtual_memory_bytes));
    out.push_back(single_value("process_start_time_seconds",
                               "Start time of the process since unix epoch in seconds.",
                               MetricType::kGauge, stats->start_time_seconds));
  }
  if (auto fds = count_open_fds()) {
    out.push_back(single_value("process_open_fds", "Number of open file descriptors.",
                               MetricType::kGauge, *fds));
  }
  if (auto limit = max_fds()) {
    out.push_back(single_value("process_max_fds", "Maximum number of open file descriptors.",
                               MetricType::kGauge, *limit));
  }
}

}  // namespace

void register_process_metrics(Registry& registry) {
  registry.add_collector(collect_process_metrics, "prescale.process_metrics");
}

Result<ProcessStats> parse_process_stats(std::string_view self_stat, std::string_view system_stat,
                                         double ticks_per_second, double page_size_bytes) {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields are counted
  // from the last ')'.
  size_t close = self_stat.rfind(')');
  if (close == std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument, "/proc/self/stat: no ')' after the command");
  }
  std::vector<std::string_view> fields = split_blanks(self_stat.substr(close + 1));
  // fields[0] is field 3 (state) of proc(5).
  auto field = [&](size_t number, double* out) {
    return number - 3 < fields.size() && parse_number(fields[number - 3], out);
  };
  double utime = 0, stime = 0, start_ticks = 0, vsize = 0, rss_pages = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &start_ticks) || !field(23, &vsize) ||
      !field(24, &rss_pages)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "/proc/self/stat: missing or malformed utime/stime/starttime/vsize/rss");
  }

  double boot_time = -1;
  for (std::string_view rest = system_stat; !rest.empty();) {
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (line.starts_with("btime ")) {
      std::vector<std::string_view> parts = split_blanks(line);
      if (parts.size() != 2 || !parse_number(parts[1], &boot_time)) boot_time = -1;
      break;
    }
  }
  if (boot_time < 0) {
    return make_error(ErrorCode::kInvalidArgument, "/proc/stat: no valid btime line");
  }
  if (!(ticks_per_second > 0)) {
    return make_error(ErrorCode::kInvalidArgument, "clock ticks per second must be positive");
  }

  ProcessStats stats;
  stats.cpu_seconds = (utime + stime) / ticks_per_second;
  stats.resident_memory_bytes = rss_pages * page_size_bytes;
  stats.virtual_memory_bytes = vsize;
  stats.start_time_seconds = boot_time + start_ticks / ticks_per_second;
  return stats;
}

Result<ProcessStats> read_process_stats() {
  auto self_stat = read_text_file("/proc/self/stat");
  if (!self_stat) return std::unexpected(self_stat.error());
  auto system_stat = read_text_file("/proc/stat");
  if (!system_stat) return std::unexpected(system_stat.error());
  long ticks = ::sysconf(_SC_CLK_TCK);
  long page_size = ::sysconf(_SC_PAGESIZE);
  return parse_process_stats(*self_stat, *system_stat, static_cast<double>(ticks),
                             static_cast<double>(page_size));
}

Result<double> count_open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) {
    return make_error(ErrorCode::kUnavailable,
                      std::string("/proc/self/fd: ") + std::strerror(errno));
  }
  double count = 0;
  // The directory's own descriptor is counted too, as the Go and Python clients do.
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

Result<double> max_fds() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return make_error(ErrorCode::kUnavailable,
                      std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  }
  return static_cast<double>(limit.rlim_cur);
}

}  // namespace prescale::telemetry
