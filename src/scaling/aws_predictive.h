// AWS predictive scaling (ForecastAndScale mode) combined with a target-tracking policy on average
// CPU utilisation, as AWS recommends: the forecast schedules capacity ahead of the daily and weekly
// pattern, target tracking handles what the forecast missed and does all of the scaling in.
//
// Predictive part (EC2 Auto Scaling "How predictive scaling works",
// PredictiveScalingConfiguration): it needs 24 h of load history and uses up to 14 days; every 6 h
// it forecasts the load of each hour of the next 48 h; the capacity for an hour, ceil(load /
// (capacity_rps × target utilisation)), is set SchedulingBufferTime (300 s) before the hour starts;
// it never scales in (the forecast is only a floor); it honours the maximum capacity. AWS's model
// is not public: the one here is a documented seasonal profile (docs/baselines.md, "## aws").
//
// Target-tracking part: CloudWatch 1-minute datapoints of the CPU utilisation averaged over the
// instances that finished their warmup; scale out after 3 consecutive datapoints above the target
// to ceil(warmed × metric / target) (instances still warming are not counted, so repeated
// alarms do not over-launch); scale in after 15 consecutive datapoints below 90 % of the target,
// never while an instance is warming up nor within the scale-in cooldown.
//
// Thread safety: none; a Policy is driven by one controller thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "scaling/policy.h"

namespace prescale::scaling {

struct AwsPredictiveOptions {
  // --- Predictive scaling (PredictiveScalingConfiguration) ---
  // Mode: ForecastAndScale applies the forecast; ForecastOnly (AWS's API default) only computes
  // it (forecast() still reports it), leaving target tracking alone.
  enum class Mode { kForecastAndScale, kForecastOnly };
  Mode mode = Mode::kForecastAndScale;
  // The capacity of an hour is scheduled this long before the hour starts (SchedulingBufferTime,
  // default 300 s, must be < 3600 s).
  Clock::Duration scheduling_buffer{std::chrono::seconds(300)};
  Clock::Duration min_history{std::chrono::hours(24)};  // no forecast before this much load data
  Clock::Duration max_history{std::chrono::hours(24 * 14)};  // older hours are not used
  Clock::Duration forecast_horizon{std::chrono::hours(48)};
  Clock::Duration forecast_interval{std::chrono::hours(6)};  // how often the forecast is redone
  // Forecast model (docs/baselines.md): weight of the same hour d days ago is daily_decay^(d-1);
  // once a week of history exists the daily and the weekly profile (same hour 1 and 2 weeks ago)
  // are blended with weekly_weight; the result is scaled by the last day's level, limited to
  // [1 / max_level_ratio, max_level_ratio].
  double daily_decay = 0.7;
  double weekly_weight = 0.5;
  double max_level_ratio = 2.0;

  // --- Shared ---
  // Target utilisation: the target-tracking target for average CPU utilisation (1.0 = 100 %) and
  // the predictive metric specification's TargetValue, so a forecast load L needs
  // ceil(L / (capacity_rps × target_utilization)) instances: what target tracking would hold at
  // that load. AWS's examples use 50 %.
  double target_utilization = 0.5;

  // --- Target tracking (TargetTrackingConfiguration and the alarms it creates) ---
  Clock::Duration datapoint_period{std::chrono::seconds(60)};  // CloudWatch 1-minute metric
  int scale_out_datapoints = 3;  // AlarmHigh: metric > target for 3 of 3 datapoints
  int scale_in_datapoints = 15;  // AlarmLow: metric < ratio × target for 15 of 15 datapoints
  double scale_in_threshold_ratio = 0.9;
  // How long after launch an instance neither counts toward the aggregated metric nor the
  // capacity used for scale-out (DefaultInstanceWarmup / EstimatedInstanceWarmup). nullopt: the
  // service's startup time, i.e. an instance counts once it is ready.
  std::optional<Clock::Duration> instance_warmup;
  // After a scale-in, no further scale-in for this long (ScaleInCooldown; 300 s is Application
  // Auto Scaling's default for ECS services). A scale-out is never blocked by it.
  Clock::Duration scale_in_cooldown{std::chrono::seconds(300)};
  bool disable_scale_in = false;  // DisableScaleIn
};

// The options' documented limits (buffer in [0, 3600) s, target in (0, 1], counts ≥ 1, ...).
Result<void> validate_aws_predictive_options(const AwsPredictiveOptions& options);

// One forecast, as GetPredictiveScalingForecast would show it.
struct AwsForecast {
  Clock::TimePoint made_at;
  Clock::TimePoint first_hour;   // start of the hour of load_rps[0]; hours are [k h, (k+1) h)
  std::vector<double> load_rps;  // mean arrival rate forecast for each hour
  std::vector<int> capacity;     // ceil(load / (capacity_rps × target)), before min/max
};

class AwsPredictivePolicy final : public Policy {
 public:
  explicit AwsPredictivePolicy(AwsPredictiveOptions options = {});

  std::string_view name() const override { return "aws"; }
  Clock::Duration period() const override { return options_.datapoint_period; }
  // Every scrape must reach observe(): a CloudWatch datapoint averages all of its minute's
  // samples, not the last one. Scrapes come every 15-60 s; seeing one twice is harmless.
  Clock::Duration observe_interval() const override { return std::chrono::seconds(1); }
  void init(const std::vector<ServiceSpec>& services) override;
  // Records the scraped arrival rate (into hourly load) and CPU utilisation (into 1-minute
  // datapoints). Each scrape (window.sampled_at) is recorded once, however often it is seen.
  void observe(const Snapshot& snapshot) override;
  Plan decide(const Snapshot& snapshot, Clock::TimePoint now) override;
  // The Auto Scaling group's MinSize and MaxSize, or the capacity per instance its target tracks
  // or its warm-up, changed: the next decision follows them (its forecast and history go on).
  void respec(const ServiceSpec& spec) override;
  // A new Auto Scaling group: no history, so no forecast for min_history; its dynamic scaling
  // acts from its first datapoints. A removed one is deleted, its history with it.
  Result<void> add_service(const ServiceSpec& spec) override;
  void remove_service(std::string_view service) override;

  // The service's latest forecast; nullopt before min_history of data (or for an unknown name).
  const AwsForecast* forecast(std::string_view service) const;
  const AwsPredictiveOptions& options() const { return options_; }

 private:
  struct HourLoad {
    double requests = 0;
    double seconds = 0;
  };
  struct MinuteCpu {
    double sum = 0;
    int samples = 0;
  };
  struct ServiceState {
    ServiceSpec spec;
    std::optional<Clock::TimePoint> first_sample;
    std::optional<Clock::TimePoint> last_scrape;
    std::map<std::int64_t, HourLoad> hours;     // hour index -> load
    std::map<std::int64_t, MinuteCpu> minutes;  // minute index -> CPU samples, not yet evaluated
    std::optional<std::int64_t> next_minute;    // first minute not yet evaluated
    int high_streak = 0;
    int low_streak = 0;
    double last_datapoint = 0;
    bool has_datapoint = false;
    std::optional<Clock::TimePoint> last_scale_in;
    std::optional<AwsForecast> forecast;
  };

  void record(ServiceState& state, const ServiceObservation& seen);
  void evaluate_datapoints(ServiceState& state, Clock::TimePoint now);
  void refresh_forecast(ServiceState& state, Clock::TimePoint now);
  Decision decide_service(ServiceState& state, const ServiceObservation& seen,
                          Clock::TimePoint now);

  AwsPredictiveOptions options_;
  std::vector<ServiceState> services_;
};

namespace internal {

// The seasonal forecast on hourly mean loads. `observed[i]` is hour first_observed_hour + i
// (NaN where no data); the forecast covers hours [first_hour, first_hour + count). Exposed for
// tests; not a stable API.
std::vector<double> aws_forecast_hours(const std::vector<double>& observed,
                                       std::int64_t first_observed_hour, std::int64_t first_hour,
                                       int count, const AwsPredictiveOptions& options);

}  // namespace internal
}  // namespace prescale::scaling
