#include "loadgen/load_generator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <mutex>

namespace prescale::loadgen {

namespace {

// A request that is due: scheduled, not yet sent.
struct Pending {
  Clock::TimePoint scheduled;
  size_t entry = 0;
  size_t step = 0;  // timeline step
  http::Request request;
};

// Timeline latencies need less precision than the totals: 5 bits (≤1.6 %) is 8 KiB a step, at
// most 30 MiB for kMaxTimelineSteps.
constexpr int kStepPrecisionBits = 5;

}  // namespace

// Shared with the completion callbacks, so a response arriving after finish() finds it alive.
struct LoadGenerator::State : std::enable_shared_from_this<State> {
  struct Route {
    uint64_t scheduled = 0, completed = 0, ok = 0, errors = 0;
    LatencyHistogram latency;
  };
  struct Step {
    uint64_t sent = 0, ok = 0, errors = 0;
    LatencyHistogram latency{kStepPrecisionBits};
  };

  State(Clock& c, Target& t, LoadOptions o) : clock(c), target(t), options(o) {}

  void submit(Pending p);
  void dispatch(Pending p);
  void on_done(Clock::TimePoint scheduled, size_t entry, size_t step, const Result<int>& r);

  Clock& clock;
  Target& target;
  const LoadOptions options;

  // Everything below is guarded by mu. The vectors are sized before the first request.
  mutable std::mutex mu;
  bool closed = false;
  size_t in_flight = 0;
  std::deque<Pending> queue;
  LoadReport totals;  // counters and the two total histograms
  std::vector<Route> routes;
  std::vector<Step> steps;
};

void LoadGenerator::State::submit(Pending p) {
  {
    std::lock_guard lock(mu);
    if (closed) return;
    ++totals.scheduled;
    ++routes[p.entry].scheduled;
    ++steps[p.step].sent;
    if (in_flight >= options.connections) {
      ++totals.queued;
      queue.push_back(std::move(p));
      return;
    }
    ++in_flight;
  }
  dispatch(std::move(p));
}

// The caller holds one of the `connections` slots for this request.
void LoadGenerator::State::dispatch(Pending p) {
  const Clock::Duration delay = clock.now() - p.scheduled;
  {
    std::lock_guard lock(mu);
    ++totals.sent;
    if (delay > options.late_threshold) ++totals.late;
    totals.start_delay.record(delay);
  }
  target.send(std::move(p.request), options.timeout,
              [self = shared_from_this(), scheduled = p.scheduled, entry = p.entry,
               step = p.step](Result<int> r) { self->on_done(scheduled, entry, step, r); });
}

void LoadGenerator::State::on_done(Clock::TimePoint scheduled, size_t entry, size_t step,
                                   const Result<int>& r) {
  const Clock::Duration latency = clock.now() - scheduled;
  std::optional<Pending> next;
  {
    std::lock_guard lock(mu);
    if (closed) return;
    Route& route = routes[entry];
    Step& sec = steps[step];
    if (r) {
      const bool ok = *r < 400;
      ++totals.completed;
      ++totals.status_counts[*r];
      ++route.completed;
      if (ok) {
        ++totals.ok;
        ++route.ok;
        ++sec.ok;
        totals.latency_ok.record(latency);
        if (options.slo && latency <= *options.slo) ++totals.ok_within_slo;
      }
      totals.latency.record(latency);
      route.latency.record(latency);
      sec.latency.record(latency);
    } else {
      switch (r.error().code) {
        case ErrorCode::kTimeout:
          ++totals.errors_timeout;
          break;
        case ErrorCode::kUnavailable:
          ++totals.errors_unavailable;
          break;
        default:
          ++totals.errors_other;
          break;
      }
      ++totals.errors;
      ++route.errors;
      ++sec.errors;
    }
    // The freed slot goes to the oldest queued request, if any.
    if (queue.empty()) {
      --in_flight;
    } else {
      next = std::move(queue.front());
      queue.pop_front();
    }
  }
  if (next) dispatch(std::move(*next));
}

double LoadReport::offered_rps() const {
  return duration_seconds > 0 ? static_cast<double>(scheduled) / duration_seconds : 0;
}

double LoadReport::achieved_rps() const {
  return elapsed_seconds > 0 ? static_cast<double>(completed) / elapsed_seconds : 0;
}

LoadGenerator::LoadGenerator(Clock& clock, Target& target, ArrivalSchedule schedule,
                             RequestPicker picker, LoadOptions options)
    : clock_(clock), schedule_(std::move(schedule)), picker_(std::move(picker)) {
  options.connections = std::max<size_t>(1, options.connections);
  state_ = std::make_shared<State>(clock, target, options);
  state_->routes.resize(picker_.mix().entries.size());
  const double planned_s = to_seconds(schedule_.plan().duration());
  step_ = std::max<Clock::Duration>(
      std::chrono::seconds(1), std::chrono::seconds(static_cast<int64_t>(
                                   std::ceil(planned_s / static_cast<double>(kMaxTimelineSteps)))));
  const auto steps = static_cast<size_t>(std::max(1.0, std::ceil(planned_s / to_seconds(step_))));
  state_->steps.resize(steps);
}

LoadGenerator::~LoadGenerator() {
  // Completions that arrive later find the state closed.
  std::lock_guard lock(state_->mu);
  state_->closed = true;
  state_->queue.clear();
}

void LoadGenerator::start() { start_ = clock_.now(); }

std::optional<Clock::TimePoint> LoadGenerator::pump() {
  const Clock::TimePoint now = clock_.now();
  while (!exhausted_) {
    if (!next_) next_ = schedule_.next();
    if (!next_) {
      exhausted_ = true;
      break;
    }
    const Clock::TimePoint due = start_ + *next_;
    if (due > now) return due;
    RequestPicker::Picked picked = picker_.next();
    const auto step = std::min(static_cast<size_t>(*next_ / step_), state_->steps.size() - 1);
    state_->submit(Pending{due, picked.entry, step, std::move(picked.request)});
    next_.reset();
  }
  return std::nullopt;
}

bool LoadGenerator::idle() const {
  std::lock_guard lock(state_->mu);
  return state_->in_flight == 0 && state_->queue.empty();
}

LoadReport LoadGenerator::finish() {
  State& s = *state_;
  std::lock_guard lock(s.mu);
  s.closed = true;
  LoadReport report = s.totals;
  report.unfinished = s.in_flight + s.queue.size();
  s.queue.clear();
  report.duration_seconds = to_seconds(schedule_.plan().duration());
  report.elapsed_seconds = to_seconds(clock_.now() - start_);
  const std::vector<MixEntry>& entries = picker_.mix().entries;
  for (size_t i = 0; i < s.routes.size(); ++i) {
    const State::Route& r = s.routes[i];
    report.routes.push_back(RouteStats{.name = entries[i].name(),
                                       .weight = entries[i].weight,
                                       .scheduled = r.scheduled,
                                       .completed = r.completed,
                                       .ok = r.ok,
                                       .errors = r.errors,
                                       .latency = r.latency});
  }
  report.timeline_step_seconds = to_seconds(step_);
  for (size_t i = 0; i < s.steps.size(); ++i) {
    const State::Step& sec = s.steps[i];
    report.timeline.push_back(
        TimelineStep{.start_seconds = static_cast<double>(i) * to_seconds(step_),
                     .sent = sec.sent,
                     .ok = sec.ok,
                     .errors = sec.errors,
                     .p50 = sec.latency.value_at_quantile(0.5),
                     .p99 = sec.latency.value_at_quantile(0.99)});
  }
  return report;
}

LoadReport LoadGenerator::run() {
  start();
  while (auto due = pump()) clock_.sleep_until(*due);
  // Drain: poll, because a Clock offers sleeping, not waiting on a condition.
  const Clock::TimePoint deadline = clock_.now() + state_->options.drain;
  for (Clock::TimePoint now = clock_.now(); !idle() && now < deadline; now = clock_.now()) {
    clock_.sleep_until(std::min<Clock::TimePoint>(now + std::chrono::milliseconds(1), deadline));
  }
  return finish();
}

}  // namespace prescale::loadgen
