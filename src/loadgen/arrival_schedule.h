// Arrival schedules for the open-loop load generator: when each request is due, computed from a
// demand trace or a constant rate, never from the responses.
//
// A RatePlan is a piecewise-constant arrival rate in live (wall-clock) time. plan_from_trace()
// turns a trace into one: with speedup N a trace step of S seconds lasts S/N live seconds and
// keeps its requests, so its live rate is N times the trace's — replaying one day at N = 144
// takes ten minutes and sends the day's requests, with the day's shape. `scale` multiplies the
// demand (requests per step); `max_rps` caps the live rate; `duration` cuts the live time.
//
// ArrivalSchedule draws arrival times from a plan: a Poisson process (exponential gaps, seeded)
// or evenly spaced arrivals, both following the plan's rate step by step (time rescaling: an
// arrival each time the integral of the rate grows by the next gap, so no step boundary resets
// or loses fractional requests).
//
// Thread safety: RatePlan is a value; an ArrivalSchedule is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "forecast/trace.h"

namespace prescale::loadgen {

// `rate_rps` requests per second for `duration`.
struct RateSegment {
  Clock::Duration duration{};
  double rate_rps = 0;
};

struct RatePlan {
  std::vector<RateSegment> segments;

  Clock::Duration duration() const;  // sum of the segments
  double expected_requests() const;  // integral of the rate
};

struct TraceReplayOptions {
  double speedup = 1;        // > 0: live time = trace time / speedup
  double scale = 1;          // >= 0: requests per trace step multiplier
  double max_rps = 0;        // live rate cap; 0: none
  Clock::Duration offset{};  // trace time skipped at the start
  std::optional<Clock::Duration> duration = std::nullopt;  // live time cut; nullopt: to the end
};

// Errors: kInvalidArgument naming the option (speedup, scale, max_rps, offset) when out of range
// or when nothing of the trace is left after `offset`.
Result<RatePlan> plan_from_trace(const forecast::Trace& trace, const TraceReplayOptions& options);

// A constant `rate_rps` (>= 0) for `duration`.
RatePlan constant_rate(double rate_rps, Clock::Duration duration);

enum class ArrivalProcess {
  kPoisson,  // exponential gaps: independent arrivals, as from many users
  kUniform,  // evenly spaced at the plan's rate
};

// "poisson" or "uniform".
Result<ArrivalProcess> parse_arrival_process(std::string_view text);

class ArrivalSchedule {
 public:
  ArrivalSchedule(RatePlan plan, ArrivalProcess process, uint64_t seed);

  // The next arrival, as an offset from the start of the plan; non-decreasing; nullopt once the
  // plan is over (and from then on).
  std::optional<Clock::Duration> next();

  const RatePlan& plan() const { return plan_; }

 private:
  double draw_gap();

  RatePlan plan_;
  ArrivalProcess process_;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> exponential_{1.0};
  size_t segment_ = 0;
  double segment_start_s_ = 0;  // live time of the current segment's start
  double at_s_ = 0;             // live time reached
  double pending_ = 0;          // rate integral still needed before the next arrival
};

}  // namespace prescale::loadgen
