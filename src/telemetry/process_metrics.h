// The standard process metrics, under the names and help texts of the Prometheus Go and Python
// clients: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_start_time_seconds, process_open_fds, process_max_fds.
// Read from /proc at scrape time (Linux); a value that cannot be read is left out of the scrape.
#pragma once

#include <string_view>

#include "core/result.h"
#include "telemetry/registry.h"

namespace prescale::telemetry {

// Adds the process collector to `registry`; calling it again on the same registry is a no-op.
void register_process_metrics(Registry& registry);

struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double start_time_seconds = 0;  // since the Unix epoch
};

// Reads /proc/self/stat and /proc/stat.
Result<ProcessStats> read_process_stats();

// Parses the contents of /proc/self/stat (`self_stat`) and /proc/stat (`system_stat`, for
// `btime`). The start time is boot time plus the process's start in ticks since boot, so no
// clock is read.
Result<ProcessStats> parse_process_stats(std::string_view self_stat, std::string_view system_stat,
                                         double ticks_per_second, double page_size_bytes);

// Entries of /proc/self/fd.
Result<double> count_open_fds();
// The soft RLIMIT_NOFILE.
Result<double> max_fds();

}  // namespace prescale::telemetry
