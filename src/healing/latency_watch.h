// LatencyWatch: a warning when a service answers markedly slower than it usually does, for
// minutes on end, before its SLO is missed (an incident, IncidentWatch, comes once requests miss
// it faster than the error budget allows). A release or a dependency that makes a service slower
// is absorbed by the autoscaler, which starts more replicas: nothing fails, the bill grows, and
// nobody is told. A warning says so within minutes.
//
// Each service's P99 latency points are smoothed to the median of the last `smoothing` of them
// (at least `min_points` points), so a spike of a minute or two — a jump of load that the
// policy catches up with — is no warning; once per `step` the smoothed value (its logarithm) goes
// to Prescale's anomaly detector (DeviationDetector, the one scored on NAB: docs/healing.md,
// "Detectors"), which learns the service's usual latency from everything before it. A warning
// opens when the detector scores the smoothed latency as an anomaly (at least `alert_score`)
// and it is at least `min_ratio` times the usual (a statistically unusual 3 % rise is not worth
// an operator's time). It clears when the smoothed latency is back under `min_ratio` times the
// usual: the service recovered, or — the detector goes on learning — the new latency has become
// the usual one after hours of it. One service has at most one open warning.
//
// The message tells the load beside the latency, each against its usual: a service 1.5 times as
// slow at its usual load is slower per request (a release, a dependency, its host); at twice its
// usual load it is short of replicas.
//
// Time is the caller's (each sample's `at`), so tests drive it with a manual clock.
// Thread safety: one thread calls everything.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "healing/detector.h"

namespace prescale::healing {

struct LatencyWatchOptions {
  Clock::Duration step = std::chrono::minutes(1);       // how often the detector sees a value
  Clock::Duration smoothing = std::chrono::minutes(5);  // the median's span
  int min_points = 5;                                   // and its fewest points
  double min_ratio = 1.2;  // the smoothed latency over the usual, at least, for a warning
  // The detector: a half-life of 1,000 steps (about 17 hours of minutes), its first 30 steps a
  // warm-up with no warning, the NAB-scored alert level. Its hold is not used: a warning stays
  // open until it clears.
  DeviationOptions detector = {.half_life = 1000, .warmup = 30, .hold = 0};
  size_t max_kept = 100;  // cleared warnings kept (the newest)
};

// One point of a service's latency.
struct LatencySample {
  Clock::TimePoint at;
  double p99_seconds = NAN;  // NaN: no request answered (no point)
  double load_rps = NAN;     // for the message; NaN when unknown
};

struct LatencyWarning {
  std::uint64_t id = 0;  // 1, 2, ... in the order they opened
  std::string service;
  Clock::TimePoint opened_at;
  std::optional<Clock::TimePoint> cleared_at;
  double p99_seconds = 0;    // the smoothed P99 at the opening
  double usual_seconds = 0;  // the usual P99 then
  double peak_ratio = 0;     // the highest smoothed P99 over the usual while open
  double load_ratio = NAN;   // the load over its usual at the opening; NaN when unknown
  std::string summary;       // what was said at the opening
};

struct LatencyWarningChange {
  bool opened = true;  // false: cleared
  LatencyWarning warning;
  std::string message;  // a line for the log and the timeline
};

class LatencyWatch {
 public:
  explicit LatencyWatch(LatencyWatchOptions options = {});

  // The next point of `service`: a warning opened or cleared, if any. A sample not after the
  // service's last one, or with a P99 that is not a positive finite number, changes nothing
  // (a gap).
  std::optional<LatencyWarningChange> observe(const std::string& service,
                                              const LatencySample& sample);

  // The open warnings, then the cleared ones kept; newest first within each.
  std::vector<LatencyWarning> warnings() const;
  std::optional<LatencyWarning> open_warning(const std::string& service) const;
  std::uint64_t opened() const { return next_id_ - 1; }

 private:
  struct Point {
    Clock::TimePoint at;
    double log_p99;
    double log_load;  // NaN when unknown
  };
  struct Service {
    explicit Service(const DeviationOptions& o) : detector(o) {}
    DeviationDetector detector;
    std::deque<Point> points;  // within `smoothing` (at least min_points), oldest first
    std::optional<Clock::TimePoint> last_at, fed_at;
    double load_log_mean = NAN;  // the usual load (log), weighted as the detector weighs
    std::optional<LatencyWarning> open;
  };

  std::optional<LatencyWarningChange> step(const std::string& name, Service& s,
                                           const LatencySample& sample);

  LatencyWatchOptions options_;
  double load_alpha_;
  std::map<std::string, Service> services_;
  std::deque<LatencyWarning> cleared_;  // newest first
  std::uint64_t next_id_ = 1;
};

}  // namespace prescale::healing
