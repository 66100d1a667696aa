#include "loadgen/arrival_schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace prescale::loadgen {

namespace {

double seconds_of(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

Clock::Duration duration_of(double seconds) {
  return std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(seconds));
}

Result<RatePlan> invalid(const std::string& message) {
  return make_error(ErrorCode::kInvalidArgument, message);
}

}  // namespace

Clock::Duration RatePlan::duration() const {
  Clock::Duration total{};
  for (const RateSegment& s : segments) total += s.duration;
  return total;
}

double RatePlan::expected_requests() const {
  double total = 0;
  for (const RateSegment& s : segments) total += s.rate_rps * seconds_of(s.duration);
  return total;
}

Result<RatePlan> plan_from_trace(const forecast::Trace& trace, const TraceReplayOptions& o) {
  if (!(o.speedup > 0) || !std::isfinite(o.speedup)) {
    return invalid("speedup: expected a number > 0, got " + std::to_string(o.speedup));
  }
  if (!(o.scale >= 0) || !std::isfinite(o.scale)) {
    return invalid("scale: expected a number >= 0, got " + std::to_string(o.scale));
  }
  if (!(o.max_rps >= 0)) {
    return invalid("max_rps: expected a number >= 0, got " + std::to_string(o.max_rps));
  }
  if (o.offset < Clock::Duration::zero()) return invalid("offset: must not be negative");
  if (!(trace.step_seconds > 0)) return invalid("trace " + trace.name + ": step must be > 0");

  const double offset_s = seconds_of(o.offset);
  const double live_limit_s =
      o.duration ? seconds_of(*o.duration) : std::numeric_limits<double>::infinity();
  RatePlan plan;
  double live_s = 0;
  for (size_t i = 0; i < trace.counts.size() && live_s < live_limit_s; ++i) {
    const double step_start = static_cast<double>(i) * trace.step_seconds;
    const double step_end = step_start + trace.step_seconds;
    if (step_end <= offset_s) continue;
    // The part of this step after the offset, in trace seconds, then in live seconds.
    const double trace_s = step_end - std::max(step_start, offset_s);
    const double seg_s = std::min(trace_s / o.speedup, live_limit_s - live_s);
    double rate = trace.rate_rps(i) * o.speedup * o.scale;
    if (o.max_rps > 0) rate = std::min(rate, o.max_rps);
    plan.segments.push_back({duration_of(seg_s), rate});
    live_s += seg_s;
  }
  if (plan.segments.empty()) {
    return invalid("offset: the trace " + trace.name + " is " +
                   std::to_string(trace.duration_seconds()) + " s long; nothing is left after " +
                   std::to_string(offset_s) + " s");
  }
  return plan;
}

RatePlan constant_rate(double rate_rps, Clock::Duration duration) {
  RatePlan plan;
  plan.segments.push_back({duration, std::max(0.0, rate_rps)});
  return plan;
}

Result<ArrivalProcess> parse_arrival_process(std::string_view text) {
  if (text == "poisson") return ArrivalProcess::kPoisson;
  if (text == "uniform") return ArrivalProcess::kUniform;
  return make_error(ErrorCode::kInvalidArgument,
                    "expected poisson or uniform, got \"" + std::string(text) + "\"");
}

ArrivalSchedule::ArrivalSchedule(RatePlan plan, ArrivalProcess process, uint64_t seed)
    : plan_(std::move(plan)), process_(process), rng_(seed) {
  // Evenly spaced arrivals sit in the middle of their 1/rate slots.
  pending_ = process_ == ArrivalProcess::kUniform ? 0.5 : draw_gap();
}

double ArrivalSchedule::draw_gap() {
  return process_ == ArrivalProcess::kUniform ? 1.0 : exponential_(rng_);
}

std::optional<Clock::Duration> ArrivalSchedule::next() {
  while (segment_ < plan_.segments.size()) {
    const RateSegment& seg = plan_.segments[segment_];
    const double seg_end_s = segment_start_s_ + seconds_of(seg.duration);
    const double available = seg.rate_rps * (seg_end_s - at_s_);
    if (seg.rate_rps > 0 && pending_ <= available) {
      at_s_ += pending_ / seg.rate_rps;
      pending_ = draw_gap();
      return duration_of(std::min(at_s_, seg_end_s));
    }
    pending_ -= std::max(0.0, available);
    at_s_ = seg_end_s;
    segment_start_s_ = seg_end_s;
    ++segment_;
  }
  return std::nullopt;
}

}  // namespace prescale::loadgen
