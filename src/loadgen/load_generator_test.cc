// The open-loop driver on a ManualClock with a fake target: the schedule is kept whatever the
// target does, and latency counts from the scheduled time (coordinated omission corrected).
#include "loadgen/load_generator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace prescale::loadgen {
namespace {

using namespace std::chrono_literals;

// Answers each request after a fixed service time of simulated time; paths starting with
// /timeout or /unavailable fail, /hang never answers. Serves any number of requests at once.
class FakeTarget final : public Target {
 public:
  FakeTarget(Clock& clock, Clock::Duration service_time)
      : clock_(clock), service_time_(service_time) {}

  void send(http::Request req, std::chrono::milliseconds,
            std::function<void(Result<int>)> done) override {
    std::lock_guard lock(mu_);
    ++sent_;
    if (req.target.starts_with("/hang")) {
      hung_.push_back(std::move(done));
      return;
    }
    Result<int> result = 200;
    if (req.target.starts_with("/timeout")) result = make_error(ErrorCode::kTimeout, "timeout");
    if (req.target.starts_with("/unavailable")) {
      result = make_error(ErrorCode::kUnavailable, "refused");
    }
    if (req.target.starts_with("/missing")) result = 404;
    pending_.push_back({clock_.now() + service_time_, std::move(done), result});
  }

  // Completes every request due by now (outside the lock: a completion may send the next).
  void complete_due() {
    std::vector<Pending> due;
    {
      std::lock_guard lock(mu_);
      const Clock::TimePoint now = clock_.now();
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->due <= now) {
          due.push_back(std::move(*it));
          it = pending_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Pending& p : due) p.done(p.result);
  }

  int sent() const {
    std::lock_guard lock(mu_);
    return sent_;
  }

 private:
  struct Pending {
    Clock::TimePoint due;
    std::function<void(Result<int>)> done;
    Result<int> result;
  };
  Clock& clock_;
  Clock::Duration service_time_;
  mutable std::mutex mu_;
  std::vector<Pending> pending_;
  std::vector<std::function<void(Result<int>)>> hung_;
  int sent_ = 0;
};

RequestPicker picker_for(const std::string& mix_text) {
  auto mix = parse_mix(mix_text);
  EXPECT_TRUE(mix) << mix.error().message;
  return RequestPicker(*mix, UserRange{}, 1);
}

// Drives the generator tick by tick on the test's thread until the schedule is over and
// nothing is out (or `limit` of simulated time passes).
LoadReport drive(ManualClock& clock, FakeTarget& target, LoadGenerator& gen,
                 Clock::Duration limit = 60s, Clock::Duration tick = 1ms) {
  gen.start();
  const Clock::TimePoint end = clock.now() + limit;
  while (clock.now() < end) {
    target.complete_due();
    const auto due = gen.pump();
    if (!due && gen.idle()) break;
    clock.advance(tick);
  }
  return gen.finish();
}

TEST(LoadGeneratorTest, SendsOnScheduleAndMeasuresLatency) {
  ManualClock clock;
  FakeTarget target(clock, 10ms);
  LoadGenerator gen(clock, target,
                    ArrivalSchedule(constant_rate(100, 2s), ArrivalProcess::kUniform, 1),
                    picker_for("GET /a:1"), LoadOptions{.connections = 64});
  const LoadReport r = drive(clock, target, gen);
  EXPECT_EQ(r.scheduled, 200u);
  EXPECT_EQ(r.sent, 200u);
  EXPECT_EQ(r.completed, 200u);
  EXPECT_EQ(r.ok, 200u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.unfinished, 0u);
  EXPECT_EQ(r.queued, 0u);
  EXPECT_EQ(r.late, 0u);
  EXPECT_EQ(r.status_counts.at(200), 200u);
  EXPECT_NEAR(to_seconds(r.latency.value_at_quantile(0.5)), 0.010, 0.0002);
  EXPECT_NEAR(to_seconds(r.latency.max()), 0.010, 0.0011);
  EXPECT_DOUBLE_EQ(r.duration_seconds, 2.0);
  EXPECT_DOUBLE_EQ(r.offered_rps(), 100.0);
  ASSERT_EQ(r.timeline.size(), 2u);
  EXPECT_EQ(r.timeline[0].sent, 100u);
  EXPECT_EQ(r.timeline[1].ok, 100u);
  EXPECT_NEAR(to_seconds(r.timeline[1].p99), 0.010, 0.0005);
  ASSERT_EQ(r.routes.size(), 1u);
  EXPECT_EQ(r.routes[0].name, "GET /a");
  EXPECT_EQ(r.routes[0].completed, 200u);
}

TEST(LoadGeneratorTest, QueueingBehindASlowTargetCountsInLatency) {
  // 100 req/s evenly spaced (at 5 ms + 10 ms·k) to a target taking 20 ms, one connection: the
  // target keeps up with 50 req/s, so request k starts at 5 + 20k ms and ends at 25 + 20k ms.
  // Its latency from the schedule is 20 + 10k ms; a closed-loop client would report 20 ms.
  ManualClock clock;
  FakeTarget target(clock, 20ms);
  LoadGenerator gen(clock, target,
                    ArrivalSchedule(constant_rate(100, 1s), ArrivalProcess::kUniform, 1),
                    picker_for("GET /slow:1"), LoadOptions{.connections = 1});
  const LoadReport r = drive(clock, target, gen);
  EXPECT_EQ(r.scheduled, 100u);
  EXPECT_EQ(r.completed, 100u);
  EXPECT_EQ(r.queued, 99u);
  EXPECT_EQ(r.late, 99u);
  EXPECT_NEAR(to_seconds(r.latency.min()), 0.020, 0.0002);
  EXPECT_NEAR(to_seconds(r.latency.value_at_quantile(0.5)), 0.510, 0.003);  // k = 49
  EXPECT_NEAR(to_seconds(r.latency.max()), 1.010, 0.0002);
  EXPECT_NEAR(to_seconds(r.start_delay.max()), 0.990, 0.0002);
  // The latency of every request is its start delay plus the 20 ms service time.
  EXPECT_NEAR(to_seconds(r.latency.mean() - r.start_delay.mean()), 0.020, 0.0002);
  EXPECT_NEAR(r.elapsed_seconds, 2.005, 0.002);
  EXPECT_NEAR(r.achieved_rps(), 100 / 2.005, 0.5);
}

TEST(LoadGeneratorTest, CountsTheOkAnswersWithinTheSlo) {
  // The queue above: request k answers 20 + 10k ms after its scheduled time, so k = 0..8 are
  // within 105 ms. A 404 is not ok: it is neither within the SLO nor in latency_ok.
  for (const char* path : {"GET /slow:1", "GET /missing:1"}) {
    ManualClock clock;
    FakeTarget target(clock, 20ms);
    LoadGenerator gen(clock, target,
                      ArrivalSchedule(constant_rate(100, 1s), ArrivalProcess::kUniform, 1),
                      picker_for(path), LoadOptions{.connections = 1, .slo = 105ms});
    const LoadReport r = drive(clock, target, gen);
    const bool ok = std::string_view(path) == "GET /slow:1";
    EXPECT_EQ(r.completed, 100u) << path;
    EXPECT_EQ(r.latency.count(), 100u) << path;
    EXPECT_EQ(r.ok_within_slo, ok ? 9u : 0u) << path;
    EXPECT_EQ(r.latency_ok.count(), ok ? 100u : 0u) << path;
    if (ok) {
      EXPECT_NEAR(to_seconds(r.latency_ok.max()), 1.010, 0.0002);
    }
  }
  // Without an SLO nothing is counted.
  ManualClock clock;
  FakeTarget target(clock, 20ms);
  LoadGenerator gen(clock, target,
                    ArrivalSchedule(constant_rate(100, 1s), ArrivalProcess::kUniform, 1),
                    picker_for("GET /slow:1"), LoadOptions{.connections = 1});
  const LoadReport r = drive(clock, target, gen);
  EXPECT_EQ(r.ok, 100u);
  EXPECT_EQ(r.ok_within_slo, 0u);
}

TEST(LoadGeneratorTest, ErrorsStatusesAndUnfinishedAddUp) {
  ManualClock clock;
  FakeTarget target(clock, 5ms);
  LoadGenerator gen(
      clock, target, ArrivalSchedule(constant_rate(200, 1s), ArrivalProcess::kPoisson, 7),
      picker_for("GET /ok:4,GET /missing:1,GET /timeout:1,GET /unavailable:1,GET /hang:1"),
      LoadOptions{});
  const LoadReport r = drive(clock, target, gen, 2s);
  EXPECT_NEAR(static_cast<double>(r.scheduled), 200, 4 * std::sqrt(200.0));
  EXPECT_EQ(r.completed + r.errors + r.unfinished, r.scheduled);
  EXPECT_EQ(r.errors, r.errors_timeout + r.errors_unavailable + r.errors_other);
  EXPECT_EQ(r.errors_other, 0u);
  ASSERT_EQ(r.routes.size(), 5u);
  EXPECT_EQ(r.routes[0].ok, r.routes[0].scheduled);
  EXPECT_EQ(r.status_counts.at(404), r.routes[1].completed);
  EXPECT_EQ(r.routes[1].ok, 0u);
  EXPECT_EQ(r.errors_timeout, r.routes[2].errors);
  EXPECT_EQ(r.errors_unavailable, r.routes[3].errors);
  EXPECT_EQ(r.unfinished, r.routes[4].scheduled);
  EXPECT_GT(r.unfinished, 0u);
  EXPECT_EQ(r.ok, r.routes[0].ok);
  uint64_t timeline_sent = 0;
  for (const TimelineStep& s : r.timeline) timeline_sent += s.sent;
  EXPECT_EQ(timeline_sent, r.scheduled);
}

TEST(LoadGeneratorTest, LongRunsGetWiderTimelineSteps) {
  ManualClock clock;
  FakeTarget target(clock, 5ms);
  LoadGenerator gen(clock, target,
                    ArrivalSchedule(constant_rate(1, 2h + 1s), ArrivalProcess::kUniform, 1),
                    picker_for("GET /a:1"), LoadOptions{});
  const LoadReport r = drive(clock, target, gen, 3h, 250ms);
  EXPECT_EQ(r.scheduled, 7201u);
  EXPECT_DOUBLE_EQ(r.timeline_step_seconds, 3);
  ASSERT_EQ(r.timeline.size(), 2401u);
  EXPECT_DOUBLE_EQ(r.timeline[1].start_seconds, 3);
  EXPECT_EQ(r.timeline[1].sent, 3u);
  EXPECT_EQ(r.completed, 7201u);
}

TEST(LoadGeneratorTest, RunSleepsOnTheInjectedClockAndDrains) {
  // run() on its own thread, the test moving a ManualClock: the schedule is followed in
  // simulated time, and a request that never answers ends the run after the drain time.
  ManualClock clock;
  FakeTarget target(clock, 30ms);
  LoadGenerator gen(
      clock, target, ArrivalSchedule(constant_rate(50, 1s), ArrivalProcess::kUniform, 1),
      picker_for("GET /ok:49,GET /hang:1"), LoadOptions{.connections = 8, .drain = 200ms});
  auto result = std::async(std::launch::async, [&] { return gen.run(); });
  for (int i = 0; i < 200000 && result.wait_for(0s) != std::future_status::ready; ++i) {
    clock.advance(1ms);
    target.complete_due();
    std::this_thread::yield();
  }
  ASSERT_EQ(result.wait_for(0s), std::future_status::ready);
  const LoadReport r = result.get();
  EXPECT_EQ(r.scheduled, 50u);
  EXPECT_EQ(r.completed + r.unfinished, 50u);
  // Every hung request is unfinished. (The test thread runs the clock on its own, so on a busy
  // machine it can get ahead of the generator, and an /ok request sent late can miss the drain
  // too: "at least", not "exactly".)
  EXPECT_GE(r.unfinished, r.routes[1].scheduled);
  EXPECT_GE(r.elapsed_seconds, r.routes[1].scheduled > 0 ? 1.0 : 0.9);
}

}  // namespace
}  // namespace prescale::loadgen
