// SlowdownWatch: a warning when each request of a service takes markedly longer in service than
// it usually does, for minutes on end. A release, a slower dependency or a crowded host that
// makes a service slower is absorbed by the autoscaler, which starts more replicas: nothing fails
// yet, the bill grows, and nobody is told. A warning says so within minutes, and an incident
// (IncidentWatch) follows only if the SLO is then missed.
//
// The series is the service time per request — the time a request holds a worker, its wait
// excluded — not the latency: an autoscaler that sizes replicas to a latency SLO lets the latency
// move within it as the load swings (a service run at 90 % of its replicas answers much slower
// than at 50 %, each request taking the same time), so a latency above its usual tells of the
// load and the scaling, not of the service. The caller estimates it from each scrape
// (scaling::scrape_service_time: the M/M/c occupancy behind the window's mean concurrency).
//
// The points are smoothed to the median of the last `smoothing` of them (at least `min_points`
// points), so a scrape or two caught mid-change is no warning; once per `step` the smoothed
// value (its logarithm) goes to Prescale's anomaly detector (DeviationDetector, the one scored on
// NAB: docs/healing.md, "Detectors"), which learns the service's usual service time from
// everything before it. A warning opens when the detector scores the smoothed value as an
// anomaly (at least `alert_score`), it is at least `min_ratio` times the usual (a statistically
// unusual 3 % is not worth an operator's time) and at least `min_increase` over it (a fraction
// of a millisecond more per request, by which a proxy hop and the host's scheduling move a
// sub-millisecond service, is not either). It clears when the smoothed value is back within half of
// either bar (under 1.1 times the usual, or under half a millisecond over it, at the defaults: a
// value hovering at the bar opens one warning, not one a minute): the service recovered, or — the
// detector goes on learning — the new time has become the usual one after hours of it. One
// service has at most one open warning.
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
#include <vector>

#include "core/clock.h"
#include "healing/detector.h"

namespace prescale::healing {

struct SlowdownWatchOptions {
  Clock::Duration step = std::chrono::minutes(1);       // how often the detector sees a value
  Clock::Duration smoothing = std::chrono::minutes(5);  // the median's span
  int min_points = 5;                                   // and its fewest points
  double min_ratio = 1.2;  // the smoothed service time over the usual, at least, for a warning
  Clock::Duration min_increase = std::chrono::milliseconds(1);  // and its excess, at least
  // The detector: a half-life of 1,000 steps (about 17 hours of minutes), its first 30 steps a
  // warm-up with no warning, the NAB-scored alert level. Its hold is not used: a warning stays
  // open until it clears.
  DeviationOptions detector = {.half_life = 1000, .warmup = 30, .hold = 0};
  size_t max_kept = 100;  // cleared warnings kept (the newest)
};

// One scrape of a service.
struct SlowdownSample {
  Clock::TimePoint at;
  double service_seconds = NAN;  // per request, its wait excluded; NaN: unknown (no point)
  double p99_seconds = NAN;      // for the message; NaN when unknown
  double load_rps = NAN;         // for the message; NaN when unknown
};

struct SlowdownWarning {
  std::uint64_t id = 0;  // 1, 2, ... in the order they opened
  std::string service;
  Clock::TimePoint opened_at;
  std::optional<Clock::TimePoint> cleared_at;
  double service_seconds = 0;  // the smoothed service time at the opening
  double usual_seconds = 0;    // the usual one then
  double peak_ratio = 0;       // the highest smoothed service time over the usual while open
  double load_ratio = NAN;     // the load over its usual at the opening; NaN when unknown
  double p99_seconds = NAN;    // the latest P99 at the opening; NaN when unknown
  std::string summary;         // what was said at the opening
};

struct SlowdownChange {
  bool opened = true;  // false: cleared
  SlowdownWarning warning;
  std::string message;  // a line for the log and the timeline
};

class SlowdownWatch {
 public:
  explicit SlowdownWatch(SlowdownWatchOptions options = {});

  // The next scrape of `service`: a warning opened or cleared, if any. A sample not after the
  // service's last one, or whose service time is not a positive finite number, changes nothing
  // (a gap).
  std::optional<SlowdownChange> observe(const std::string& service, const SlowdownSample& sample);

  // The open warnings, then the cleared ones kept; newest first within each.
  std::vector<SlowdownWarning> warnings() const;
  std::optional<SlowdownWarning> open_warning(const std::string& service) const;
  std::uint64_t opened() const { return next_id_ - 1; }

 private:
  struct Point {
    Clock::TimePoint at;
    double log_service;
    double log_load;  // NaN when unknown
  };
  struct Service {
    explicit Service(const DeviationOptions& o) : detector(o) {}
    DeviationDetector detector;
    std::deque<Point> points;  // within `smoothing` (at least min_points), oldest first
    std::optional<Clock::TimePoint> last_at, fed_at;
    double load_log_mean = NAN;  // the usual load (log), weighted as the detector weighs
    std::optional<SlowdownWarning> open;
  };

  std::optional<SlowdownChange> step(const std::string& name, Service& s,
                                     const SlowdownSample& sample);

  SlowdownWatchOptions options_;
  double load_alpha_;
  std::map<std::string, Service> services_;
  std::deque<SlowdownWarning> cleared_;  // newest first
  std::uint64_t next_id_ = 1;
};

}  // namespace prescale::healing
