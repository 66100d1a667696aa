// LoadGenerator: the open-loop driver of `prescale load`. Requests are due when the
// ArrivalSchedule says, whatever the target's responses do, and every latency is measured from
// the request's *scheduled* time — so a slow target shows its queueing in the latencies instead
// of quietly lowering the offered load (no coordinated omission).
//
// At most `connections` requests are in flight; a request due while all are busy waits in a
// FIFO queue, and that wait counts in its latency and its start delay. The driver reads time
// only through the injected Clock and sends only through a Target, so a test drives it with a
// ManualClock and a fake target, calling pump() itself; run() is the real loop.
//
// Thread safety: start(), pump(), finish() and run() are called from one thread (the
// scheduler); Target completions may arrive on any thread. The Target must outlive the
// generator's use of it (completions after finish() are ignored).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "http/message.h"
#include "loadgen/arrival_schedule.h"
#include "loadgen/latency_histogram.h"
#include "loadgen/mix.h"

namespace prescale::loadgen {

// Where requests go: HttpTarget in production (http_target.h), a fake in tests.
class Target {
 public:
  virtual ~Target() = default;
  // Sends `req`; calls `done` exactly once, from any thread (possibly before send() returns),
  // with the response's HTTP status or the error (kTimeout, kUnavailable, ...).
  virtual void send(http::Request req, std::chrono::milliseconds timeout,
                    std::function<void(Result<int>)> done) = 0;
};

struct LoadOptions {
  size_t connections = 64;                   // most requests in flight at once (>= 1)
  std::chrono::milliseconds timeout{10000};  // per request, from when it is sent
  // After the last arrival, how long run() waits for queued and in-flight requests.
  std::chrono::milliseconds drain{10000};
  // A request sent more than this after its scheduled time counts as a late start.
  Clock::Duration late_threshold = std::chrono::milliseconds(1);
  // A latency objective: answers with a status below 400 that came within it of their scheduled
  // time are counted in LoadReport::ok_within_slo. nullopt: not counted.
  std::optional<Clock::Duration> slo = std::nullopt;
};

// One step of the timeline (a second, or more for runs over an hour), by scheduled time.
struct TimelineStep {
  double start_seconds = 0;  // from the start of the schedule
  uint64_t sent = 0;         // requests scheduled in this step
  uint64_t ok = 0;           // ... answered with a status below 400
  uint64_t errors = 0;       // ... that failed without a response (timeout, unavailable, other)
  LatencyHistogram::Duration p50{};
  LatencyHistogram::Duration p99{};
};

struct RouteStats {
  std::string name;  // "GET /delay/50"
  double weight = 1;
  uint64_t scheduled = 0;
  uint64_t completed = 0;  // answered with any status
  uint64_t ok = 0;         // answered with a status below 400
  uint64_t errors = 0;     // no response
  LatencyHistogram latency;
};

struct LoadReport {
  double duration_seconds = 0;  // the schedule's planned length
  double elapsed_seconds = 0;   // start to the end of the run (drain included)

  // Every scheduled request ends as exactly one of completed, errors, unfinished.
  uint64_t scheduled = 0;
  uint64_t sent = 0;       // handed to the target
  uint64_t completed = 0;  // answered with any HTTP status
  uint64_t ok = 0;         // answered with a status below 400
  uint64_t errors = 0;     // failed without a response: the sum of the three below
  uint64_t errors_timeout = 0;
  uint64_t errors_unavailable = 0;  // could not connect, refused, reset, closed, malformed
  uint64_t errors_other = 0;
  uint64_t unfinished = 0;  // still queued or in flight when the run ended
  uint64_t queued = 0;      // waited for a free connection
  uint64_t late = 0;        // sent more than late_threshold after their scheduled time
  // ok within LoadOptions::slo of their scheduled time (0 without an SLO): what share of the
  // scheduled requests met the objective, when refusals and errors count as misses.
  uint64_t ok_within_slo = 0;
  std::map<int, uint64_t> status_counts;

  LatencyHistogram latency{7};      // response time − scheduled time, every response
  LatencyHistogram latency_ok{7};   // the same, answers with a status below 400 only
  LatencyHistogram start_delay{7};  // send time − scheduled time, every sent request
  std::vector<RouteStats> routes;   // in mix order
  // One step per second; runs longer than kMaxTimelineSteps seconds get wider steps, which
  // bounds the timeline's memory (a histogram per step).
  double timeline_step_seconds = 1;
  std::vector<TimelineStep> timeline;

  double offered_rps() const;   // scheduled / duration_seconds
  double achieved_rps() const;  // completed / elapsed_seconds
};

class LoadGenerator {
 public:
  static constexpr size_t kMaxTimelineSteps = 3600;

  LoadGenerator(Clock& clock, Target& target, ArrivalSchedule schedule, RequestPicker picker,
                LoadOptions options);
  ~LoadGenerator();
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Marks the schedule's time zero at clock.now().
  void start();
  // Sends (or queues) every request due by clock.now(); returns when the next one is due,
  // nullopt once the schedule is exhausted.
  std::optional<Clock::TimePoint> pump();
  // Nothing queued or in flight.
  bool idle() const;
  // Ends the run: what is still queued or in flight counts as unfinished. Call once.
  LoadReport finish();

  // start(), then pump() and sleep until the schedule is over, then wait up to options.drain
  // for the requests still out, then finish().
  LoadReport run();

 private:
  struct State;
  Clock& clock_;
  ArrivalSchedule schedule_;
  RequestPicker picker_;
  std::shared_ptr<State> state_;
  Clock::TimePoint start_{};
  std::optional<Clock::Duration> next_;             // the next arrival's offset, drawn ahead
  Clock::Duration step_ = std::chrono::seconds(1);  // of the timeline
  bool exhausted_ = false;
};

}  // namespace prescale::loadgen
