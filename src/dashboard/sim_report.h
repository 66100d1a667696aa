// A self-contained HTML report of a simulation run: the load, the replicas each policy ran over
// time, and the minutes in which each policy missed its latency SLO. Inline SVG, no scripts and
// no network, so the file opens anywhere and can be attached to an issue.
#pragma once

#include <string>
#include <vector>

namespace prescale::dashboard {

struct PolicyTimeline {
  std::string policy;
  std::vector<double> replicas;           // per step, summed over services
  std::vector<bool> slo_violated_minute;  // per minute: p99 above the SLO or drops
  std::string summary;                    // one line shown under the legend
};

struct SimReport {
  std::string title;
  std::string subtitle;
  double step_seconds = 1;
  std::vector<double> load_rps;  // per step, at the entry services
  std::vector<PolicyTimeline> policies;
};

std::string render_sim_report_html(const SimReport& report);

}  // namespace prescale::dashboard
