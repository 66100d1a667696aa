// Internal to the Prescale policy's two source files (prescale_policy.cc: observing and
// deciding; prescale_policy_state.cc: saving and restoring): the per-service state and the
// minute arithmetic they share. Not part of the library's interface.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "scaling/prescale_policy.h"

namespace prescale::scaling {

namespace internal {

inline constexpr auto kMinute = std::chrono::minutes(1);

inline std::int64_t minute_of(Clock::TimePoint t) {
  const auto ns = t.time_since_epoch().count();
  const std::int64_t per = std::chrono::nanoseconds(kMinute).count();
  return ns >= 0 ? ns / per : -((-ns + per - 1) / per);
}

inline Clock::TimePoint minute_start(std::int64_t minute) {
  return Clock::TimePoint(std::chrono::duration_cast<Clock::Duration>(kMinute * minute));
}

inline double seconds(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

// The standard normal quantile of `q` in (0, 1), by bisection on erfc (to 1e-9).
double normal_score(double q);

// A plan the scale-down delay holds: made at `at`, held for `held_for` (the delay in force then).
struct RecentPlan {
  Clock::TimePoint at;
  int replicas = 0;
  Clock::Duration held_for{0};
};

}  // namespace internal

using internal::kMinute;
using internal::minute_of;
using internal::minute_start;
using internal::normal_score;
using internal::RecentPlan;
using internal::seconds;

// A per-minute demand series and its forecaster.
struct PrescalePolicy::DemandSeries {
  // Per-minute mean arrival rate. `minute` is the minute being accumulated; `history` ends with
  // the minute before it.
  std::optional<std::int64_t> minute;
  double sum = 0;
  int samples = 0;
  // Rates kept as float: 14 days of minutes is 80 KB a service, and seven digits are plenty.
  std::deque<float> history;
  size_t observed_minutes = 0;  // finite values in `history`

  std::optional<forecast::Forecaster> forecaster;
  std::optional<Clock::TimePoint> fitted_at;
  size_t fitted_size = 0;
  // The minutes [first, second) `forecaster` was fitted on, for export_state(): a restart refits
  // on them. Unset for a forecaster handed to load_history().
  std::optional<std::pair<std::int64_t, std::int64_t>> model_window;
  // The forecast made after the latest completed minute: index 0 is the current minute.
  forecast::QuantileForecast forecast;

  // Forgets everything, to accumulate `m` next with no history and no forecaster.
  void start_over(std::int64_t m) {
    *this = DemandSeries{};
    minute = m;
  }
};

// A service's state: its total arrivals as a DemandSeries, and what decide() saw and planned.
struct PrescalePolicy::ServiceState : DemandSeries {
  ServiceSpec spec;
  size_t snapshot_index = std::numeric_limits<size_t>::max();  // where it was last seen
  std::optional<Clock::TimePoint> last_scrape;
  // The start of the window of the previous scrape, so that overlapping windows are counted once.
  std::optional<Clock::TimePoint> counted_until;
  // A service that other services call and that also takes requests from outside the call graph
  // (its own route): those requests, as a series of their own, forecast and added to what its
  // callers send. Made the first time the world reports such requests beside calls.
  std::unique_ptr<DemandSeries> external;

  // What decide() saw and planned.
  int current = -1;  // the replica count the controller last asked for
  int decided = -1;  // the replica count of this policy's latest decision (-1: none yet)
  double observed_rps = 0;
  double observed_seconds = 0;  // of traffic behind observed_rps; 0 = unknown
  bool observed_now = false;    // observed_rps is the last second (now's minute), not the window
  double queued = 0;            // requests waiting beyond what the ready replicas serve
  // Requests in the last second (arrived, or in the gateway: held for a replica of a service
  // scaled to zero) while it has no replica ready or starting.
  bool waited_on = false;
  int ready = 0;                // ready replicas observed
  int starting = 0;             // and starting ones
  double starting_left = 0;     // seconds until the last starting replica should be ready
  // Until when the replicas a backlog asked for are held (a startup time after it was last
  // seen), so that a queue that empties for a moment does not cancel help still starting.
  std::optional<Clock::TimePoint> backlog_hold_until;
  double backlog_rps = 0;  // the rate at which the backlog must drain (decide())
  // What the reactive floor sizes it for (decide()): the load arriving — what it observes, plus
  // what its callers will pass on once their replicas are ready beyond what they pass on now,
  // times the fan-out — and, of that, what it will pass on beyond what it passes on now.
  double arriving_rps = 0;
  double unserved_rps = 0;
  // The learned per-replica capacity at this decision, at least 1e-9 (decide()).
  double capacity_rps = 0;
  std::vector<double> demand;  // planned demand per minute from the current one
  std::string demand_source;   // "forecast p90", "callers", "observed"
  // Its demand is all forecast: its own, or every caller's and its external requests'.
  bool forecast_driven = false;
  // Plans still held by the scale-down delay, oldest first.
  std::deque<internal::RecentPlan> recent;
  // Startup times learned from its replicas: start to ready, in real seconds, of those started
  // since the policy first observed the service, the latest kStartupSamples; `counted` holds the
  // ids (sorted) of the ready replicas already taken, so each is taken once.
  std::deque<double> startups;
  Clock::Duration startup{};  // what this decision plans with (startup_time())
  std::vector<std::string> startups_counted;
  std::optional<Clock::TimePoint> observed_since;
  bool seen = false;         // whether any metrics of the service have been observed
  bool in_snapshot = false;  // in the snapshot being decided on (a failed scrape leaves it out)
  std::optional<Clock::TimePoint> first_decision;
};

}  // namespace prescale::scaling
