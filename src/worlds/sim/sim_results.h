// Results of a simulated run, computed from its ground truth (SimRecorder): what the harness
// reports per policy and service. docs/simulator.md defines each figure.
//
// Thread safety: pure functions of their arguments.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "worlds/sim/recorder.h"

namespace prescale::sim {

struct ServiceResults {
  std::string name;  // "total" for the sum over services
  double arrived = 0, served = 0, dropped = 0;
  double queued_at_end = 0;  // still waiting when the run ended (not counted below)
  double served_within_slo = 0;
  // served_within_slo / (served + dropped): a dropped request misses the SLO. 1 without requests.
  double slo_attainment = 1;
  // Minutes with completed (served or dropped) requests, and those whose p99 — counting drops
  // as infinitely slow — meets the SLO, i.e. served_within_slo >= 0.99 × (served + dropped).
  // For "total", a minute meets the SLO when every service with requests in it does.
  int minutes = 0;
  int minutes_meeting_slo = 0;
  double minute_slo_share = 1;  // minutes_meeting_slo / minutes; 1 without minutes
  double replica_hours = 0;     // starting + ready + draining
  double ready_replica_hours = 0;
  // Ready replica-seconds over the replica-seconds the demand needs at capacity_rps
  // (Σ arrived / capacity_rps): 1.0 = exactly enough capacity on average. 0 without demand.
  double mean_overprovisioning = 0;
  double mean_cpu_utilization = 0;  // busy worker-seconds / ready worker-seconds
  // Incidents the run would have opened (healing::IncidentWatch, docs/healing.md "Incidents"):
  // its requests failing or missing the SLO faster than ResultOptions::error_budget allows, by
  // the burn-rate rules, counted on the records as the live platform counts its points; and the
  // hours they were open. For "total", the sums over services.
  int incidents = 0;
  double incident_hours = 0;
  // Slowdown warnings (healing::SlowdownWatch, docs/healing.md "Slowdown warnings"): each
  // request of the service taking markedly longer in service than usual for minutes (a release),
  // counted on the records' service times (busy worker-seconds per request served) as the live
  // platform counts its scrapes; the hours they were open, and (not for "total") when each
  // opened, in seconds since the run's start.
  int slowdowns = 0;
  double slowdown_hours = 0;
  std::vector<double> slowdowns_at{};
};

struct SimResults {
  std::vector<ServiceResults> services;  // in recorder order
  ServiceResults total;
  // Per minute, over all services: 1 when every service with requests met the SLO, 0 when one
  // missed it, -1 when no service had requests (for plots of when the SLO was missed).
  std::vector<signed char> minute_met;
};

struct ResultOptions {
  // The SLO quantile: p99 meets the SLO when this share of requests is within it.
  double quantile = 0.99;
  // Length of a "minute" (a multiple of the record interval).
  Clock::Duration minute{std::chrono::seconds(60)};
  // Each service's slo.error_budget, for its incidents: by name, else `error_budget`.
  double error_budget = 0.001;
  std::map<std::string, double> error_budgets = {};
};

SimResults compute_results(const SimRecorder& recorder, const ResultOptions& options = {});

}  // namespace prescale::sim
