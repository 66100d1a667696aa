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
// points, and no value before there are that many), so a scrape or two caught mid-change is no
// warning. Once per `step` the smoothed value (its logarithm) is compared with the usual one: a
// mean of those before it whose weights halve every `half_life`, and their usual deviation from
// it — the deviation test of Prescale's anomaly detector (DeviationDetector, docs/healing.md
// "Detectors"), its alert level included, with two changes for this use: the mean is the plain
// mean of the first values (the detector starts from its first, here a scrape of replicas just
// started), and the values in a warning move the mean only as a long history would let them
// and do not teach the deviation (an episode would widen it so that the same slowdown, back
// hours later, would no longer stand out); when, over the median's span after a warning clears,
// the service is back at the usual it had when the warning opened, that usual is put back (left
// nudged toward the slow values, the normal ones after would teach the deviation how far they lie
// from it, with the same effect), and those values teach nothing either. A warning
// opens, after `warmup_steps` values, when the smoothed value lies `deviations` of them above the
// usual, is at least `min_ratio` times it (a statistically unusual 3 % is not worth an
// operator's time) and at least `min_increase` over it (a fraction of a millisecond more per
// request, by which a proxy hop and the host's scheduling move a sub-millisecond service, is not
// either). It clears when the smoothed value is back within half of either bar (under 1.1 times
// the usual, or under half a millisecond over it, at the defaults: a value hovering at the bar
// opens one warning, not one a minute): the service recovered, or — the mean goes on learning —
// the new time has become the usual one after hours of it. One service has at most one open
// warning.
//
// Time is the caller's (each sample's `at`), so tests drive it with a manual clock.
// Thread safety: one thread calls everything.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::healing {

struct SlowdownWatchOptions {
  Clock::Duration step = std::chrono::minutes(1);       // how often a value is compared
  Clock::Duration smoothing = std::chrono::minutes(5);  // the median's span
  int min_points = 5;                                   // and its fewest points
  double min_ratio = 1.2;  // the smoothed service time over the usual, at least, for a warning
  Clock::Duration min_increase = std::chrono::milliseconds(1);  // and its excess, at least
  // And its excess in usual deviations (of the logarithm): 4.27 is where the normal tail beyond
  // is 1e-5, the anomaly detector's alert level (a score of 0.99999).
  double deviations = 4.27;
  // How fast the usual follows: the weights of past values halve every half_life (1,000 minutes,
  // about 17 hours, the detector's 1,000 observations at one a minute).
  Clock::Duration half_life = std::chrono::minutes(1000);
  int warmup_steps = 30;  // values compared before any warning: a service slow from its start
  // And after a restore (from_json), before any new warning: every replica has just started
  // (cold caches, a model loading), and its first minutes are not the service's speed (10: a cold
  // start of up to about 7 minutes, the median's lag included). Cold starts take real time: under
  // a time scale the caller makes it more.
  int settle_steps = 10;
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
  // A service it calls already slower at the opening (the earliest such warning): "its callee db's
  // slowdown warning 2, open for 3 min"; "" when none. A caller that waits on a slower callee
  // while holding its worker takes longer per request too: the callee's warning is the one to
  // read.
  std::string cause;
  std::string summary;  // what was said at the opening
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
  // The next scrapes of several services (a look at all of them), each after its callees in the
  // look (set_calls) but for one member of each call cycle, which goes first, so that a caller's
  // warning opening at the same look as its callee's names it: the changes, in that order. Every
  // service compares at the first look of each `step` of the clock, so a caller and its callee
  // compare at the same look.
  std::vector<SlowdownChange> observe(
      const std::vector<std::pair<std::string, SlowdownSample>>& look);
  // The learned call graph: (caller, callee) pairs.
  void set_calls(std::vector<std::pair<std::string, std::string>> calls);

  // The open warnings, then the cleared ones kept; newest first within each.
  std::vector<SlowdownWarning> warnings() const;
  std::optional<SlowdownWarning> open_warning(const std::string& service) const;
  std::uint64_t opened() const { return next_id_ - 1; }

  // A service no longer watched (removed from the configuration): its usual and its open
  // warning go; the warnings it had are kept among the cleared.
  void forget(const std::string& service);

  // What was learned and told, for a restart (docs/state.md): each service's usual, its points
  // and its open warning, the cleared warnings kept and the next warning's number. Times are
  // ages before `now`, and from_json() places them before its own `now`, so the usual does not
  // age while nothing observes; the first `settle_steps` comparisons after it open no warning (an
  // open one goes on, and may clear) and move the usual only as a warning's values do.
  // from_json() replaces the watch's state; a state with a number
  // that is not finite, a negative weight or count, or a warning numbered at or after the next
  // is refused whole (kInvalidArgument, naming the field), the watch unchanged.
  nlohmann::json to_json(Clock::TimePoint now) const;
  Result<void> from_json(const nlohmann::json& state, Clock::TimePoint now);

 private:
  struct Point {
    Clock::TimePoint at;
    double log_service;
    double log_load;  // NaN when unknown
  };
  // Sums whose weights halve every half_life: their mean is the usual.
  struct Decayed {
    double sum = 0, weight = 0;
    void add(double value, double decay) {
      sum = sum * decay + value;
      weight = weight * decay + 1;
    }
    // Moves the mean toward `value` by what a history of any length would let it (1 − decay)
    // and keeps the weight: a slowdown that lasts becomes the usual after hours of it, as with a
    // long history, however short the history is.
    void nudge(double value, double decay) {
      if (weight > 0) sum += (1 - decay) * (value - mean()) * weight;
    }
    double mean() const { return weight > 0 ? sum / weight : NAN; }
  };
  struct Service {
    std::deque<Point> points;  // within `smoothing` (at least min_points), oldest first
    std::optional<Clock::TimePoint> last_at, fed_at;
    Decayed log_service, log_load;
    Decayed square_deviation;  // of the values outside a warning from the usual before them
    int steps = 0;             // values compared
    int settling = 0;          // comparisons left that open nothing nor teach (after a restore)
    std::optional<SlowdownWarning> open;
    Decayed usual_before;  // log_service when the open (or last) warning opened
    int recovering = 0;    // comparisons left to find the service back at usual_before
  };

  // The next value, `elapsed` after the last one compared.
  std::optional<SlowdownChange> step(const std::string& name, Service& s,
                                     const SlowdownSample& sample, Clock::Duration elapsed);

  SlowdownWatchOptions options_;
  std::vector<std::pair<std::string, std::string>> calls_;
  std::map<std::string, Service> services_;
  std::deque<SlowdownWarning> cleared_;  // newest first
  std::uint64_t next_id_ = 1;
};

}  // namespace prescale::healing
