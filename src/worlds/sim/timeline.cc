#include "worlds/sim/timeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

namespace prescale::sim {
namespace {

// A field for CSV: quoted (quotes doubled) when it holds a comma, a quote or a line break.
std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

void write_timeline_csv(std::ostream& out, const ExperimentResult& result) {
  out << "policy,service,start_seconds,seconds,arrived,served,served_within_slo,dropped,"
         "queued_end,latency_p99_ms,ready_replicas,starting_replicas,draining_replicas,"
         "scaled_from,scaled_to,reason\n";
  char buf[256];
  for (const auto& run : result.runs) {
    const SimRecorder& rec = run.recorder;
    const double interval = std::chrono::duration<double>(rec.interval()).count();
    for (size_t s = 0; s < rec.services().size(); ++s) {
      const std::string& service = rec.services()[s].name;
      // This service's last event per interval.
      std::map<size_t, const control::Event*> last;
      for (const control::Event& e : run.events) {
        if (e.service != service || interval <= 0) continue;
        const double at = std::chrono::duration<double>(e.time - rec.start()).count();
        last[static_cast<size_t>(std::max(0.0, at) / interval)] = &e;
      }
      const auto records = rec.records(s);
      for (size_t i = 0; i < records.size(); ++i) {
        const IntervalRecord& r = records[i];
        const double seconds = r.seconds > 0 ? r.seconds : 1;
        std::snprintf(buf, sizeof buf, "%.0f,%.0f,%.3f,%.3f,%.3f,%.3f,%.3f,", interval * i,
                      r.seconds, r.arrived, r.served, r.served_within_slo, r.dropped,
                      r.queued_end);
        out << csv_field(run.policy) << ',' << csv_field(service) << ',' << buf;
        if (std::isfinite(r.latency_p99_seconds)) {
          std::snprintf(buf, sizeof buf, "%.1f", 1000 * r.latency_p99_seconds);
          out << buf;
        }
        std::snprintf(buf, sizeof buf, ",%.3f,%.3f,%.3f,", r.ready_replica_seconds / seconds,
                      r.starting_replica_seconds / seconds, r.draining_replica_seconds / seconds);
        out << buf;
        if (auto it = last.find(i); it != last.end()) {
          out << it->second->from_replicas << ',' << it->second->to_replicas << ','
              << csv_field(it->second->reason);
        } else {
          out << ",,";
        }
        out << '\n';
      }
    }
  }
}


}  // namespace prescale::sim
