// PrescalePolicy ("prescale"): predictive, call-graph-aware scaling.
//
// Every decision period, per service:
//  1. demand: the entry services' per-minute arrival rates are forecast (Forecaster: model
//     selected by backtest, calibrated quantiles) and carried along the learned call graph
//     (TopologyLearner) to every downstream service, at the planning quantile (P90 by default);
//  2. need: demand ÷ the learned per-replica capacity at the SLO (CapacityModel), rounded up;
//  3. lead: the replicas asked for now are the most needed at any time between now and one
//     startup time (plus a decision period) ahead, so they are ready when the load arrives — and
//     a replica is kept while the forecast says it is needed again within its startup time;
//  4. reactive floor: never fewer than the observed load (arrivals plus the backlog to drain)
//     needs right now, and when the observed load leaves the forecast band the forecast path is
//     lifted by the surprise, so a wrong forecast costs one decision period, not a startup time;
//  5. bounds: min/max replicas.
// With too little history to forecast, the policy is the reactive floor with the learned
// topology: downstream services scale with their callers' observed load at once.
// Every decision carries its reason (which of forecast, floor, hold or bound set it).
//
// Thread safety: none; a Policy is driven by one controller thread.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "forecast/forecaster.h"
#include "scaling/capacity_model.h"
#include "scaling/policy.h"
#include "scaling/topology_learner.h"

namespace prescale::scaling {

// A service's startup time is learned from its replicas' start-to-ready times once this many
// have been seen (started after the policy first observed it), from the latest kStartupSamples.
inline constexpr size_t kMinStartupSamples = 3;
inline constexpr size_t kStartupSamples = 20;
// The longest start-to-ready time counted (real time). One longer was timed across a clock that
// jumped, not a replica starting: counted, it would be planned with for the next 20 starts, and
// `now + startup` and the minutes planned ahead (one entry a minute) would follow it without
// bound.
inline constexpr Clock::Duration kMaxStartupTime = std::chrono::hours(1);

struct PrescalePolicyOptions {
  Clock::Duration period{std::chrono::seconds(5)};
  // How often the reactive floor looks for a surge between decisions (decide_early): the last
  // second's arrivals above 1.5× the scrape window's and beyond what the replicas asked for
  // serve. A world whose last second is only its window's (the local platform on a clock
  // compressed past its window) gains nothing from observing more often than it decides.
  Clock::Duration observe_interval{std::chrono::seconds(1)};
  // Controller seconds per real second (`prescale up --time-scale`; 1 elsewhere). Startup times
  // are learned and saved in real seconds, so a restart at another time scale plans with the
  // replicas' real startup times on its own clock. In (0, 1e6].
  double time_scale = 1;
  // The demand quantile replicas are planned for, in [0.5, 0.9999]: the forecaster calibrates
  // P50, P90 and P99; levels between (and past P99) are interpolated in normal-score space.
  double quantile = 0.9;
  // Error-budget-driven headroom: when > 0, the planning quantile starts at `quantile` and is
  // steered once a minute so that the share of requests served slower than their SLO or dropped
  // tracks this budget over time (adaptive-conformal-style tracking in normal-score space: each
  // minute moves the score by budget_step × (bad − error_budget × requests) ÷ (error_budget ×
  // a typical minute's requests), so the long-run share of bad requests approaches the budget
  // whatever the trace). 0 = always plan at `quantile`.
  double error_budget = 0;
  double budget_step = 0.0005;
  double min_quantile = 0.5, max_quantile = 0.9999;
  // Ablations (docs/prescale_policy.md): forecast every service on its own load instead of
  // propagating entry forecasts along the call graph; no reactive floor; the configured
  // capacity_rps throughout instead of the learned one.
  bool use_topology = true;
  bool reactive_floor = true;
  bool learn_capacity = true;
  // The floor's margin over the observed load, and how fast a backlog must be drained.
  double floor_headroom = 0.05;
  Clock::Duration backlog_drain{std::chrono::seconds(10)};
  // Forecasting: per-minute series; the first fit once this much history exists, refits as the
  // history doubles, then every refit_interval; history beyond max_history is dropped.
  Clock::Duration min_history{std::chrono::minutes(60)};
  Clock::Duration refit_interval{std::chrono::hours(24)};
  Clock::Duration max_history{std::chrono::hours(24 * 14)};
  forecast::ForecasterOptions forecaster;
  // A lower replica count is applied only after the plan has stayed lower this long: noise in
  // the observed load must not make the floor flap, and intermittent load (bursts every few
  // minutes, an hour of history too short to forecast them) must find its replicas still there.
  // Five minutes, the HPA's scale-down stabilisation window.
  Clock::Duration scale_down_delay{std::chrono::minutes(5)};
  // The delay while a forecast plans the service (its own, or every caller's propagated to it):
  // the forecast's band already holds what the next startup window may need, so a longer hold
  // pays for replicas the forecast says are not (docs/prescale_policy.md, point 6).
  Clock::Duration forecast_scale_down_delay{std::chrono::minutes(3)};
  TopologyLearnerOptions topology;
  CapacityModelOptions capacity;
};

class PrescalePolicy final : public Policy {
 public:
  explicit PrescalePolicy(PrescalePolicyOptions options = {},
                          std::optional<CallGraph> seed_topology = std::nullopt);
  ~PrescalePolicy() override;

  std::string_view name() const override { return "prescale"; }
  Clock::Duration period() const override { return options_.period; }
  Clock::Duration observe_interval() const override;
  bool decide_early(const Snapshot& snapshot) const override;
  void init(const std::vector<ServiceSpec>& services) override;
  void observe(const Snapshot& snapshot) override;
  Plan decide(const Snapshot& snapshot, Clock::TimePoint now) override;
  // The next decision plans within the new bounds, by the capacity at the new SLO (the learned
  // service time, or the new seed before any), for the new queue limit, a seed startup time
  // ahead until startups are learned; what was learned (history, forecaster, call graph, service
  // time, startup times) and the plans held for the scale-down delay go on.
  void respec(const ServiceSpec& spec) override;
  // A new service: planned from its seeds, reactively, until its history is long enough to
  // forecast (min_history); the call graph places it once its calls are counted. A removed one's
  // history, forecaster and capacity are forgotten (its edges expire with the learner's).
  Result<void> add_service(const ServiceSpec& spec) override;
  void remove_service(std::string_view service) override;
  // The error budget the quantile is steered by (options.error_budget; 0: not steered), changed
  // while it runs (a reload's new `slo.error_budget`): the steering so far goes on from where it
  // is, toward the new budget.
  void set_error_budget(double error_budget) { options_.error_budget = error_budget; }

  // Which of a service's per-minute series: all its arrivals, or — for a service that callers
  // call and that also has clients of its own — the requests from outside the call graph, which
  // are forecast as a series of their own.
  enum class SeriesKind { kArrivals, kExternal };

  // Replaces a service's history with `minutes` (60 s steps, mean req/s, the last one the minute
  // before the one that contains `end`) and fits its forecaster — or takes `fitted`, one already
  // fitted on that history (a restart restoring its state, or a benchmark cloning one). For seeding
  // from a store; observe() continues from there. kExternal makes the service's external series
  // when it has none. Errors: kNotFound, kInvalidArgument (other steps; kExternal without the
  // topology, which alone forecasts such a series).
  Result<void> load_history(std::string_view service, const forecast::Series& minutes,
                            Clock::TimePoint end,
                            std::optional<forecast::Forecaster> fitted = std::nullopt,
                            SeriesKind kind = SeriesKind::kArrivals);

  // Fills the minutes a service's series lacks from `minutes` (60 s steps from start_seconds, a
  // whole minute on this process's clock; NaN where it has none), up to the minute before the one
  // that contains `end`; a minute the series has keeps its value, and the minute it was
  // accumulating takes `minutes`' value where there is one. Minutes after those it recorded are
  // recorded as observed ones are (its forecaster goes on through them, as fitted); any before
  // (a gap within its history, history before its first minute) reload the series and refit the
  // forecaster. Returns how many minutes were filled; with none (also when the series has reached
  // beyond `end`), nothing changes. kExternal makes
  // the external series when it has none and something is filled. Errors: as load_history().
  Result<std::size_t> fill_history(std::string_view service, const forecast::Series& minutes,
                                   Clock::TimePoint end, SeriesKind kind = SeriesKind::kArrivals);

  // For the dashboard and tests: the latest demand forecast of a service (req/s per minute ahead
  // at P50/P90/P99; empty before its first forecast) and the learners.
  forecast::QuantileForecast demand_forecast(std::string_view service) const;
  // The forecast of a service's own demand for the minute that contains `now` (req/s at P50, P90
  // and P99): nullopt before its first forecast and past its horizon. What decide() plans from
  // for a service nothing calls; one that callers call is planned from their forecasts through
  // the call graph.
  std::optional<std::array<double, 3>> demand_forecast_at(std::string_view service,
                                                          Clock::TimePoint now) const;
  const TopologyLearner& topology() const { return topology_; }
  const CapacityModel& capacity() const { return capacity_; }
  // The demand quantile planned for now (options.quantile unless steered by the error budget).
  double planning_quantile() const;
  const PrescalePolicyOptions& options() const { return options_; }

  // A service's per-minute demand history as load_history() takes it: mean req/s per 60 s step
  // from its first kept minute to the minute before the current one (start_seconds on this
  // process's monotonic clock, a whole minute), NaN for minutes without scrapes; empty before its
  // first scrape, and for kExternal when the service has no such series. Errors: kNotFound.
  Result<forecast::Series> history(std::string_view service,
                                   SeriesKind kind = SeriesKind::kArrivals) const;

  // Restart support (docs/state.md; control/persistent_policy_state.h keeps it in SQLite).
  // export_state() is everything learned except the per-minute histories, which the caller keeps
  // from history() (both kinds): the topology and capacity learners, the planning quantile, and
  // per series of each service the minutes its history spans and the window its forecaster was
  // fitted on.
  nlohmann::json export_state(Clock::TimePoint now) const;
  // Per-minute history of `service` over [from, to) (whole minutes on this process's clock), one
  // value a minute, NaN where none is kept.
  using MinuteSource = std::function<Result<forecast::Series>(
      std::string_view service, SeriesKind kind, Clock::TimePoint from, Clock::TimePoint to)>;
  // Restores export_state()'s output after init(). Each service's history is read back from
  // `minutes` up to the minute it had reached (the minutes missed while down become gaps at the
  // next scrape, as minutes without scrapes always do), and its forecaster is refitted on the
  // same window as before and rolled forward through the minutes since, which reproduces its
  // forecast (the same, to the float rounding of the history). Without that window's minutes it
  // is refitted on the history there is.
  // `clock_shift` carries the saved minute numbers onto this process's clock (the monotonic
  // clock restarts with the machine; whole minutes). The learners' and the refit schedule's times
  // are relative to the save: evidence does not age while the platform is down. Services the
  // state does not name are left as they are; those init() did not list are ignored.
  // Errors: kInvalidArgument (a malformed state; nothing is changed), those of `minutes`.
  Result<void> import_state(const nlohmann::json& state, const MinuteSource& minutes,
                            Clock::TimePoint now, Clock::Duration clock_shift = {});

 private:
  struct DemandSeries;
  struct ServiceState;
  ServiceState* find(std::string_view name);
  // The service whose history load_history() or fill_history() is given, if that history can be
  // taken (errors as theirs).
  Result<ServiceState*> history_owner(std::string_view service, const forecast::Series& minutes,
                                      SeriesKind kind);
  const ServiceState* find(std::string_view name) const;
  void record_minute(DemandSeries& s, double rate);
  void maybe_refit(DemandSeries& s, Clock::TimePoint now);
  // Adds a scrape's rate to the minute `m` of `s`, closing (and forecasting after) the minutes
  // before it.
  void accumulate(DemandSeries& s, std::int64_t m, double rate, Clock::TimePoint sampled_at);
  // Drops the minutes of `s` from `m` on (a clock set back), and refits on the rest.
  void rewind(DemandSeries& s, std::int64_t m, Clock::TimePoint now);
  void refresh_graph();
  // decide()'s three steps for one service (in call-graph order).
  void take_observation(ServiceState& s, const Snapshot& snapshot, Clock::TimePoint now);
  void learn_startup(ServiceState& s, const ServiceObservation& o) const;
  // The startup time `s` is planned with, on the controller's clock: learned from its replicas,
  // or its spec's.
  Clock::Duration startup_time(const ServiceState& s) const;
  void plan_demand(ServiceState& s, size_t idx, std::int64_t minute, double into_minute);
  void reactive_load(ServiceState& s, size_t idx, Clock::TimePoint now);
  std::optional<Decision> size_replicas(ServiceState& s, size_t idx, Clock::TimePoint now);

  PrescalePolicyOptions options_;
  TopologyLearner topology_;
  CapacityModel capacity_;
  std::vector<std::unique_ptr<ServiceState>> services_;
  std::map<std::string, size_t, std::less<>> index_;
  // The propagation order and edges, refreshed once a minute from the learner.
  std::vector<size_t> order_;
  std::vector<std::vector<std::pair<size_t, double>>> callers_;  // per service: (caller, fanout)
  std::optional<std::int64_t> graph_minute_;
  double quantile_score_;  // the normal score of the planning quantile now
  // Requests and bad ones (slow or dropped) seen across services in the current minute.
  double minute_requests_ = 0, minute_bad_ = 0;
  // The error budget's weight unit: the mean requests of a minute over the last day (of the
  // minutes seen, up to 1440); saved with the state.
  double typical_minute_requests_ = 0, typical_minutes_ = 0;
};

// What a PrescalePolicy cannot run with. Its per-minute series are timed on this process's
// monotonic clock, not UTC, so a forecasting candidate that reads the calendar from a series'
// start ("gbt" and boosters made with make_gbt_model(): minute of day, day of week) would learn
// and forecast from the wrong hours of the wrong days: such candidates are refused, as are names
// no model answers to (every fit would fail and the policy would never forecast). Errors:
// kInvalidArgument naming the candidate.
Result<void> validate_prescale_policy_options(const PrescalePolicyOptions& options);

}  // namespace prescale::scaling
