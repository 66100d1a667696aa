#include "scaling/aws_predictive.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "control/controller.h"
#include "core/clock.h"

namespace prescale::scaling {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Clock::TimePoint at(Clock::Duration d) { return Clock::TimePoint{} + d; }

ServiceSpec spec(int max_replicas = 100) {
  ServiceSpec s;
  s.name = "svc";
  s.min_replicas = 1;
  s.max_replicas = max_replicas;
  s.capacity_rps = 100;
  s.startup_time = 60s;
  return s;
}

// What a live controller would see at `t`: `ready` replicas up for an hour, `starting` ones
// launched 10 s ago, and one scrape covering the last minute.
Snapshot snapshot(Clock::TimePoint t, int ready, int starting, double cpu, double rps,
                  int desired) {
  ServiceObservation s;
  s.name = "svc";
  s.desired_replicas = desired;
  for (int i = 0; i < ready + starting; ++i) {
    ReplicaObservation r;
    r.id = "svc-" + std::to_string(i);
    if (i < ready) {
      r.state = ReplicaState::kReady;
      r.started_at = t - 1h;
      r.ready_at = t - 59min;
    } else {
      r.state = ReplicaState::kStarting;
      r.started_at = t - 10s;
    }
    s.replicas.push_back(r);
  }
  s.window.sampled_at = t;
  s.window.length = 60s;
  s.window.arrival_rps = rps;
  s.window.mean_cpu_utilization = cpu;
  Snapshot snap;
  snap.time = t;
  snap.services.push_back(s);
  return snap;
}

Decision step(AwsPredictivePolicy& p, Clock::TimePoint t, int ready, int starting, double cpu,
              int desired, double rps = 100) {
  const Plan plan = p.decide(snapshot(t, ready, starting, cpu, rps, desired), t);
  EXPECT_EQ(plan.decisions.size(), 1u);
  return plan.decisions.at(0);
}

TEST(AwsPredictiveOptionsTest, DefaultsAreValidAndLimitsChecked) {
  AwsPredictiveOptions o;
  EXPECT_TRUE(validate_aws_predictive_options(o).has_value());
  EXPECT_EQ(o.scheduling_buffer, 300s);
  EXPECT_EQ(o.scale_out_datapoints, 3);
  EXPECT_EQ(o.scale_in_datapoints, 15);
  o.scheduling_buffer = 3600s;  // must be less than the forecast's hour
  EXPECT_FALSE(validate_aws_predictive_options(o).has_value());
  o = {};
  o.target_utilization = 0;
  EXPECT_FALSE(validate_aws_predictive_options(o).has_value());
  AwsPredictivePolicy p;
  EXPECT_EQ(p.name(), "aws");
  EXPECT_EQ(p.period(), 60s);
}

// --- Target tracking ---

TEST(AwsPredictiveTargetTracking, ScalesOutAfterThreeHighDatapoints) {
  AwsPredictivePolicy p;
  p.init({spec()});
  EXPECT_EQ(step(p, at(60s), 4, 0, 0.8, 4).replicas, 4);
  EXPECT_EQ(step(p, at(120s), 4, 0, 0.8, 4).replicas, 4);
  const Decision d = step(p, at(180s), 4, 0, 0.8, 4);
  EXPECT_EQ(d.replicas, 7);  // ceil(4 × 0.8 / 0.5) = ceil(6.4)
  EXPECT_THAT(d.reason, HasSubstr("target tracking"));
  // The 3 new instances are warming: they do not count, so the same metric launches nothing more.
  const Decision same = step(p, at(240s), 4, 3, 0.8, 7);
  EXPECT_EQ(same.replicas, 7);
  EXPECT_THAT(same.reason, HasSubstr("warming"));
  // A higher metric adds on top of the warmed capacity only: ceil(4 × 0.9 / 0.5) = 8.
  EXPECT_EQ(step(p, at(300s), 4, 3, 0.9, 7).replicas, 8);
}

TEST(AwsPredictiveTargetTracking, MissingDatapointRestartsTheCount) {
  AwsPredictivePolicy p;
  p.init({spec()});
  EXPECT_EQ(step(p, at(60s), 4, 0, 0.8, 4).replicas, 4);
  EXPECT_EQ(step(p, at(120s), 4, 0, 0.8, 4).replicas, 4);
  // No scrape in the third minute.
  EXPECT_EQ(step(p, at(240s), 4, 0, 0.8, 4).replicas, 4);
  EXPECT_EQ(step(p, at(300s), 4, 0, 0.8, 4).replicas, 4);
  EXPECT_EQ(step(p, at(360s), 4, 0, 0.8, 4).replicas, 7);
}

TEST(AwsPredictiveTargetTracking, ScalesInAfterFifteenLowDatapointsThenCoolsDown) {
  AwsPredictivePolicy p;
  p.init({spec()});
  for (int m = 1; m <= 14; ++m) {
    ASSERT_EQ(step(p, at(m * 60s), 10, 0, 0.2, 10).replicas, 10) << "minute " << m;
  }
  const Decision in = step(p, at(900s), 10, 0, 0.2, 10);
  EXPECT_EQ(in.replicas, 4);  // ceil(10 × 0.2 / 0.5)
  EXPECT_THAT(in.reason, HasSubstr("< 45.0%"));
  // Still low, but within the 300 s scale-in cooldown.
  const Decision held = step(p, at(960s), 4, 0, 0.2, 4);
  EXPECT_EQ(held.replicas, 4);
  EXPECT_THAT(held.reason, HasSubstr("cooldown"));
  for (int m = 17; m <= 19; ++m) EXPECT_EQ(step(p, at(m * 60s), 4, 0, 0.2, 4).replicas, 4);
  EXPECT_EQ(step(p, at(1200s), 4, 0, 0.2, 4).replicas, 2);
}

TEST(AwsPredictiveTargetTracking, NoScaleInJustBelowTargetOrWhileWarming) {
  AwsPredictivePolicy p;
  p.init({spec()});
  // 47 % is below the 50 % target but not below the scale-in alarm's 45 %.
  for (int m = 1; m <= 30; ++m) ASSERT_EQ(step(p, at(m * 60s), 10, 0, 0.47, 10).replicas, 10);

  AwsPredictivePolicy q;
  q.init({spec()});
  Decision d;
  for (int m = 1; m <= 15; ++m) d = step(q, at(m * 60s), 10, 1, 0.2, 11);
  EXPECT_EQ(d.replicas, 11);
  EXPECT_THAT(d.reason, HasSubstr("1 instance(s) warming up"));
}

TEST(AwsPredictiveTargetTracking, HonoursMaxCapacity) {
  AwsPredictivePolicy p;
  p.init({spec(/*max_replicas=*/10)});
  step(p, at(60s), 10, 0, 0.9, 10);
  step(p, at(120s), 10, 0, 0.9, 10);
  const Decision d = step(p, at(180s), 10, 0, 0.9, 10);
  EXPECT_EQ(d.replicas, 10);
  EXPECT_THAT(d.reason, HasSubstr("clamped to max 10"));
}

TEST(AwsPredictiveTargetTracking, DisableScaleIn) {
  AwsPredictiveOptions o;
  o.disable_scale_in = true;
  AwsPredictivePolicy p(o);
  p.init({spec()});
  for (int m = 1; m <= 20; ++m) ASSERT_EQ(step(p, at(m * 60s), 10, 0, 0.1, 10).replicas, 10);
}

// A world like the simulator's: 4 replicas ready for an hour, scraped every 15 s over 30 s
// windows. CPU is 90 % in the first half of every minute and 30 % in the second half, so the
// minute averages 60 %, above the 50 % target.
class ScrapedWorld final : public control::World {
 public:
  const Snapshot& observe(Clock::TimePoint now) override {
    const Clock::TimePoint scrape = at(now.time_since_epoch() / 15s * 15s);
    double cpu = 0.3;  // the window [30 s, 60 s] of the minute: low
    switch (scrape.time_since_epoch() / 1s % 60) {
      case 15:  // [-15 s, 15 s]: half low, half high
      case 45:  // [15 s, 45 s]
        cpu = 0.6;
        break;
      case 30:  // [0 s, 30 s]: high
        cpu = 0.9;
        break;
    }
    ServiceObservation s;
    s.name = "svc";
    s.desired_replicas = desired;
    for (int i = 0; i < 4; ++i) {
      ReplicaObservation r;
      r.id = "svc-" + std::to_string(i);
      r.state = ReplicaState::kReady;
      r.started_at = at(0s);
      r.ready_at = at(60s);
      r.cpu_utilization = cpu;
      r.metric_time = scrape;
      r.metric_window = 30s;
      s.replicas.push_back(r);
    }
    s.window.sampled_at = scrape;
    s.window.length = 30s;
    s.window.arrival_rps = 100;
    s.window.mean_cpu_utilization = cpu;
    snapshot_ = {now, {s}, {}};
    return snapshot_;
  }
  Result<void> scale(std::string_view, int replicas) override {
    desired = replicas;
    return {};
  }
  Result<void> restart(std::string_view) override { return {}; }

  int desired = 4;

 private:
  Snapshot snapshot_;
};

// CloudWatch's 1-minute datapoint averages every sample of the minute (docs/baselines.md,
// "Recording"), so the policy must be observed at every scrape, not once per decision.
TEST(AwsPredictiveTargetTracking, DatapointAveragesEveryScrapeOfTheMinute) {
  AwsPredictivePolicy policy;  // target 50 %, AlarmHigh 3 datapoints
  ScrapedWorld world;
  ManualClock clock;
  clock.set(at(1h));
  control::Controller controller(world, policy, {spec()}, clock);
  // As sim/experiment.cc drives it: tick, then jump to next_tick().
  while (clock.now() < at(1h + 5min)) {
    controller.tick();
    clock.set(controller.next_tick());
  }
  // 60 % > 50 % for 3 datapoints: ceil(4 x 0.6 / 0.5) = 5. The last scrape alone reads 30 %.
  EXPECT_EQ(world.desired, 5);
}

// --- Predictive scaling ---

// A service whose load is 100 req/s except from 08:00 to 10:00 each day (1000 req/s); replicas
// are ready as soon as they are asked for and CPU follows load / capacity.
class DailyPattern {
 public:
  explicit DailyPattern(AwsPredictiveOptions options = {}, int max_replicas = 100)
      : policy_(options) {
    policy_.init({spec(max_replicas)});
  }

  static double rps(Clock::TimePoint end_of_minute) {
    const auto hour_of_day = ((end_of_minute - 30s).time_since_epoch() / 1h) % 24;
    return hour_of_day == 8 || hour_of_day == 9 ? 1000 : 100;
  }

  // Advances minute by minute up to and including `until`; returns the last decision.
  Decision run_until(Clock::Duration until) {
    Decision last;
    while (now_ + 60s <= until) {
      now_ += 60s;
      const double load = rps(at(now_));
      const double cpu = std::min(1.0, load / (replicas_ * 100.0));
      last = step(policy_, at(now_), replicas_, 0, cpu, replicas_, load);
      replicas_ = last.replicas;
    }
    return last;
  }

  AwsPredictivePolicy& policy() { return policy_; }
  int replicas() const { return replicas_; }

 private:
  AwsPredictivePolicy policy_;
  Clock::Duration now_{0};
  int replicas_ = 2;
};

TEST(AwsPredictiveForecast, NoForecastBeforeADayOfHistory) {
  DailyPattern w;
  const Decision d = w.run_until(24h - 60s);
  EXPECT_EQ(w.policy().forecast("svc"), nullptr);
  EXPECT_THAT(d.reason, HasSubstr("no forecast yet"));
  w.run_until(24h);
  const AwsForecast* f = w.policy().forecast("svc");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->made_at, at(24h));
  EXPECT_EQ(f->first_hour, at(24h));
  EXPECT_EQ(f->load_rps.size(), 49u);  // the current hour and the 48 after it
  EXPECT_NEAR(f->load_rps[8], 1000, 1e-6);
  EXPECT_EQ(f->capacity[8], 20);  // 1000 / (100 × 0.5)
  EXPECT_EQ(f->capacity[7], 2);
}

// A new capacity per instance (a reload of the file) counts the forecast's instances again at
// once; the forecast's load and time stand.
TEST(AwsPredictiveForecast, ANewCapacityCountsTheForecastAgain) {
  DailyPattern w;
  w.run_until(24h);
  ServiceSpec doubled = spec();
  doubled.capacity_rps = 200;
  w.policy().respec(doubled);
  const AwsForecast* f = w.policy().forecast("svc");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->made_at, at(24h));
  EXPECT_NEAR(f->load_rps[8], 1000, 1e-6);
  EXPECT_EQ(f->capacity[8], 10);  // 1000 / (200 × 0.5)
}

TEST(AwsPredictiveForecast, RefreshedEverySixHours) {
  DailyPattern w;
  w.run_until(30h - 60s);
  EXPECT_EQ(w.policy().forecast("svc")->made_at, at(24h));
  w.run_until(30h);
  EXPECT_EQ(w.policy().forecast("svc")->made_at, at(30h));
}

TEST(AwsPredictiveForecast, SchedulesCapacityBufferTimeBeforeTheRamp) {
  DailyPattern w;
  const Clock::Duration ramp = 72h + 8h;
  EXPECT_EQ(w.run_until(ramp - 360s).replicas, 2);
  const Decision d = w.run_until(ramp - 300s);
  EXPECT_EQ(d.replicas, 20);
  EXPECT_THAT(d.reason, HasSubstr("forecast 1000.0 rps"));
  EXPECT_EQ(w.run_until(ramp + 90min).replicas, 20);  // at 50 % CPU: nothing to do
}

TEST(AwsPredictiveForecast, NeverScalesInOnTheForecast) {
  DailyPattern w;
  const Clock::Duration ramp_down = 72h + 10h;
  EXPECT_EQ(w.run_until(ramp_down).replicas, 20);
  // The forecast for 10:00 is 2 replicas, but only target tracking scales in: after 15 low
  // datapoints (5 % CPU), to ceil(20 × 0.05 / 0.5) = 2.
  const Decision held = w.run_until(ramp_down + 14min);
  EXPECT_EQ(held.replicas, 20);
  EXPECT_THAT(held.reason, Not(HasSubstr("forecast")));
  EXPECT_EQ(w.run_until(ramp_down + 15min).replicas, 2);
}

TEST(AwsPredictiveForecast, HonoursMaxCapacity) {
  DailyPattern w({}, /*max_replicas=*/10);
  const Decision d = w.run_until(72h + 8h - 300s);
  EXPECT_EQ(d.replicas, 10);
  EXPECT_THAT(d.reason, HasSubstr("honouring max 10"));
}

TEST(AwsPredictiveForecast, ForecastOnlyModeDoesNotScale) {
  AwsPredictiveOptions o;
  o.mode = AwsPredictiveOptions::Mode::kForecastOnly;
  DailyPattern w(o);
  EXPECT_EQ(w.run_until(72h + 8h - 300s).replicas, 2);
  const AwsForecast* f = w.policy().forecast("svc");
  ASSERT_NE(f, nullptr);
  const auto ramp_index = static_cast<size_t>((at(72h + 8h) - f->first_hour) / 1h);
  EXPECT_EQ(f->capacity.at(ramp_index), 20);
}

// --- The forecast model ---

TEST(AwsPredictiveModel, FlatLoadForecastsFlat) {
  const std::vector<double> observed(48, 100.0);
  const auto f = internal::aws_forecast_hours(observed, 0, 48, 49, AwsPredictiveOptions{});
  ASSERT_EQ(f.size(), 49u);
  for (double v : f) EXPECT_NEAR(v, 100, 1e-9);
}

TEST(AwsPredictiveModel, FollowsTheRecentLevel) {
  std::vector<double> observed(24, 100.0);
  observed.insert(observed.end(), 24, 110.0);
  const auto f = internal::aws_forecast_hours(observed, 0, 48, 24, AwsPredictiveOptions{});
  // Profile (110 + 0.7 × 100) / 1.7 scaled by the last day's level 110 / 100.
  EXPECT_NEAR(f[0], (110 + 0.7 * 100) / 1.7 * 1.1, 1e-9);
}

TEST(AwsPredictiveModel, MissingHoursAreSkipped) {
  std::vector<double> observed(48, 100.0);
  observed[24 + 5] = kNaN;
  const auto f = internal::aws_forecast_hours(observed, 0, 48, 24, AwsPredictiveOptions{});
  EXPECT_NEAR(f[5], 100, 1e-9);
}

TEST(AwsPredictiveModel, LearnsTheWeeklyPattern) {
  // Two weeks of 100 req/s with a 500 req/s noon on days 0 and 7 (the same weekday).
  std::vector<double> observed(14 * 24, 100.0);
  observed[12] = 500;
  observed[7 * 24 + 12] = 500;
  const auto f = internal::aws_forecast_hours(observed, 0, 14 * 24, 48, AwsPredictiveOptions{});
  EXPECT_GT(f[12], 250);       // day 14, the same weekday: the weekly profile says 500
  EXPECT_LT(f[24 + 12], 130);  // day 15: an ordinary day
}

TEST(AwsPredictiveModel, UsesAtMostFourteenDays) {
  // Hour 36 is 15 days before the first forecast hour: outside the history window (without the
  // limit it would reach the level through the same-hour-14-days-earlier of hour 15 d + 12).
  std::vector<double> observed(16 * 24, 100.0);
  observed[36] = 10000;
  AwsPredictiveOptions o;
  const auto with_old = internal::aws_forecast_hours(observed, 0, 16 * 24, 48, o);
  const std::vector<double> recent(observed.begin() + 2 * 24, observed.end());
  const auto without = internal::aws_forecast_hours(recent, 2 * 24, 16 * 24, 48, o);
  for (size_t i = 0; i < with_old.size(); ++i) EXPECT_NEAR(with_old[i], without[i], 1e-9);
}

// A new Auto Scaling group added while it runs tracks its target from its own datapoints; one
// removed gets no decision.
TEST(AwsPredictiveTargetTracking, AnAddedGroupTracksItsTargetAndARemovedOneIsGone) {
  AwsPredictivePolicy p;
  ServiceSpec other = spec();
  other.name = "other";
  p.init({other});
  ASSERT_TRUE(p.add_service(spec()));
  EXPECT_FALSE(p.add_service(spec()));
  p.remove_service("other");
  for (int minute = 1; minute <= 2; ++minute) {
    EXPECT_EQ(step(p, at(minute * 60s), 4, 0, 0.8, 4).replicas, 4);
  }
  EXPECT_EQ(step(p, at(180s), 4, 0, 0.8, 4).replicas, 7);  // ceil(4 × 0.8 / 0.5)
  EXPECT_EQ(p.forecast("other"), nullptr);
  p.remove_service("svc");
  EXPECT_TRUE(p.decide(snapshot(at(240s), 4, 0, 0.8, 100, 4), at(240s)).decisions.empty());
}

}  // namespace
}  // namespace prescale::scaling
