#include "forecast/model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <numbers>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "forecast/gbt_model.h"

namespace prescale::forecast {
namespace {

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

// Demand is never negative; a NaN (nothing observed yet) predicts 0 as well.
double clamp_demand(double v) { return v > 0 ? v : 0; }

class NaiveModel final : public Model {
 public:
  std::string_view name() const override { return "naive"; }
  void fit(const Series& history) override {
    last_ = kMissing;
    for (double v : history.values) update(v);
  }
  void update(double value) override {
    if (std::isfinite(value)) last_ = value;
  }
  void predict(std::span<double> out) const override {
    std::fill(out.begin(), out.end(), clamp_demand(last_));
  }
  std::unique_ptr<Model> clone() const override { return std::make_unique<NaiveModel>(*this); }

 private:
  double last_ = kMissing;
};

// The value one period earlier, from a ring of the last period's observations. The ring grows
// as values arrive, up to a period: allocated whole at fit(), a week of 1 ms steps took 4.8 GB
// for a history of a few values.
class SeasonalNaiveModel final : public Model {
 public:
  SeasonalNaiveModel(std::string_view name, double period_seconds)
      : name_(name), period_seconds_(period_seconds) {
    fit(Series{});
  }
  std::string_view name() const override { return name_; }
  void fit(const Series& history) override {
    period_ = period_steps(period_seconds_, history.step_seconds);
    ring_.clear();
    ring_.reserve(std::min(period_, history.values.size()));
    oldest_ = 0;
    last_ = kMissing;
    for (double v : history.values) update(v);
  }
  void update(double value) override {
    if (std::isfinite(value)) last_ = value;
    if (period_ == 0) return;
    const double kept = std::isfinite(value) ? value : kMissing;
    if (ring_.size() < period_) {
      ring_.push_back(kept);  // the oldest stays at index 0 until the ring is full
      return;
    }
    ring_[oldest_] = kept;
    oldest_ = oldest_ + 1 == period_ ? 0 : oldest_ + 1;
  }
  void predict(std::span<double> out) const override {
    const double fallback = clamp_demand(last_);
    if (period_ == 0 || ring_.size() < period_) {
      std::fill(out.begin(), out.end(), fallback);
      return;
    }
    // The oldest entry is exactly one period before the next step; beyond a period the
    // forecast repeats itself.
    size_t i = oldest_;
    for (double& v : out) {
      v = std::isfinite(ring_[i]) ? clamp_demand(ring_[i]) : fallback;
      i = i + 1 == period_ ? 0 : i + 1;
    }
  }
  std::unique_ptr<Model> clone() const override {
    return std::make_unique<SeasonalNaiveModel>(*this);
  }

 private:
  std::string name_;
  double period_seconds_;
  size_t period_ = 0;
  std::vector<double> ring_;  // at most period_ values
  size_t oldest_ = 0;
  double last_ = kMissing;
};

// ---- Exponential smoothing: additive level, damped trend, up to two seasons, AR(1) errors.
//
// Error-correction form (Hyndman et al., "Forecasting with Exponential Smoothing", ch. 2) with
// the classical parameters, so each lies in [0, 1] whatever the others are:
//   ŷ = l + φb + Σ s_k + ρ·e_prev         e = y − (l + φb + Σ s_k)
//   l ← l + φb + αe,   b ← φb + αβe,   s_k ← s_k + γ_k(1 − α)e
// ρ is Taylor's (2003) first-order adjustment for the autocorrelation of one-step errors.

struct Params {
  double alpha = 0.3;
  double beta = 0.05;
  double phi = 0.9;
  std::array<double, 2> gamma = {0.1, 0.1};
  double ar = 0;
};

// A seasonal profile of `period` steps, held as at most kMaxKnots values evenly spaced around
// the cycle and interpolated linearly between them. At fine steps one index per step would be
// learnt from one noisy sample per cycle (a day of 1-minute indices from 1440 single minutes);
// demand profiles are smooth, so a coarser profile keeps the shape and averages the noise. When
// the period has no more steps than knots this is the classical one index per step.
constexpr size_t kMaxKnots = 48;

// Where the next step falls in a season's cycle.
struct Cursor {
  size_t phase = 0;   // 0..period-1
  size_t knot = 0;    // the knot at or before it: ⌊phase × knots / period⌋
  size_t offset = 0;  // (phase × knots) mod period; the next knot weighs offset / period
};

struct Season {
  std::vector<double> knots;
  size_t period = 0;
  Cursor at;  // where the next observation falls

  void reset(size_t steps) {
    period = steps;
    knots.assign(std::min(steps, kMaxKnots), 0.0);
    at = {};
  }
  size_t next_knot(const Cursor& c) const { return c.knot + 1 == knots.size() ? 0 : c.knot + 1; }
  double weight(const Cursor& c) const {
    return static_cast<double>(c.offset) / static_cast<double>(period);
  }
  double value(const Cursor& c) const {
    return knots[c.knot] + weight(c) * (knots[next_knot(c)] - knots[c.knot]);
  }
  void advance(Cursor& c) const {
    if (++c.phase == period) {
      c = {};
      return;
    }
    c.offset += knots.size();
    if (c.offset >= period) {
      c.offset -= period;
      ++c.knot;
    }
  }
};

struct State {
  double level = kMissing;  // NaN until the first observation
  double trend = 0;
  size_t seasons = 0;  // active entries of `season`, shortest period first
  std::array<Season, 2> season;
  double error = 0;  // last one-step error, times ρ per missing step since
};

// Bounds of the fitted parameters. The damping range is the one Hyndman et al. recommend: below
// 0.8 the trend barely matters, above 0.98 it is hard to tell from an undamped one.
constexpr double kAlphaMin = 0.01, kAlphaMax = 1.0;
constexpr double kPhiMin = 0.8, kPhiMax = 0.98;
constexpr double kArMax = 0.99;

// Rolls each of `states` over `ys` under its own parameters; returns per state the sum of the
// one-step errors' (ρ-adjusted) Huber losses over the observed steps — squared up to `huber`,
// linear beyond (+inf: squared throughout) — or +inf where it blew up. The
// states must be at the same point of their cycles. One state is a chain of dependent
// floating-point steps (latency-bound); the parameter search runs kLanes states side by side,
// which costs about the time of one. Templated so that the loop has no branches on the model's
// shape: this loop is the whole cost of fitting.
constexpr size_t kLanes = 4;

template <size_t kSeasons, bool kAr, size_t kCount>
std::array<double, kCount> roll(const std::array<State*, kCount>& states,
                                const std::array<const Params*, kCount>& params,
                                std::span<const double> ys, double huber) {
  // Everything the loop touches in locals, so the compiler keeps it in registers.
  std::array<double, kCount> alpha{}, phi{}, trend_gain{}, ar{}, level{}, trend{}, error{}, sse{};
  std::array<std::array<double*, kCount>, 2> knots{};
  std::array<std::array<double, kCount>, 2> gain{};
  std::array<size_t, 2> count{}, period{};
  std::array<double, 2> inverse_period{};
  std::array<Cursor, 2> at{};
  for (size_t k = 0; k < kSeasons; ++k) {
    const Season& season = states[0]->season[k];
    count[k] = season.knots.size();
    period[k] = season.period;
    inverse_period[k] = 1.0 / static_cast<double>(period[k]);
    at[k] = season.at;
  }
  for (size_t l = 0; l < kCount; ++l) {
    const Params& p = *params[l];
    alpha[l] = p.alpha;
    phi[l] = p.phi;
    trend_gain[l] = p.alpha * p.beta;
    ar[l] = p.ar;
    level[l] = states[l]->level;
    trend[l] = states[l]->trend;
    error[l] = states[l]->error;
    for (size_t k = 0; k < kSeasons; ++k) {
      knots[k][l] = states[l]->season[k].knots.data();
      // γ is a share per cycle; a knot sees period / knots steps of corrections per cycle.
      gain[k][l] = p.gamma[k] * (1 - p.alpha) * static_cast<double>(count[k]) * inverse_period[k];
    }
  }
  for (double y : ys) {
    std::array<double, 2> weight{};
    std::array<size_t, 2> here{}, next{};
    for (size_t k = 0; k < kSeasons; ++k) {
      weight[k] = static_cast<double>(at[k].offset) * inverse_period[k];
      here[k] = at[k].knot;
      next[k] = at[k].knot + 1 == count[k] ? 0 : at[k].knot + 1;
    }
    const bool observed = std::isfinite(y);
    for (size_t l = 0; l < kCount; ++l) {
      double seasonal = 0;
      for (size_t k = 0; k < kSeasons; ++k) {
        const double* s = knots[k][l];
        seasonal += s[here[k]] + weight[k] * (s[next[k]] - s[here[k]]);
      }
      const double damped = phi[l] * trend[l];
      if (observed) {
        const double e = y - (level[l] + damped + seasonal);
        const double adjusted = std::abs(kAr ? e - ar[l] * error[l] : e);
        const double within = std::min(adjusted, huber);
        sse[l] += within * (2 * adjusted - within);  // adjusted² up to huber, then linear
        level[l] += damped + alpha[l] * e;
        trend[l] = damped + trend_gain[l] * e;
        for (size_t k = 0; k < kSeasons; ++k) {
          // Spread over the two knots around the step as interpolation weighs them.
          const double correction = gain[k][l] * e;
          knots[k][l][here[k]] += correction - weight[k] * correction;
          knots[k][l][next[k]] += weight[k] * correction;
        }
        if constexpr (kAr) error[l] = e;
      } else {
        // A gap: the state coasts on its own forecast.
        level[l] += damped;
        trend[l] = damped;
        if constexpr (kAr) error[l] *= ar[l];
      }
    }
    for (size_t k = 0; k < kSeasons; ++k) {
      if (++at[k].phase == period[k]) {
        at[k] = {};
      } else if ((at[k].offset += count[k]) >= period[k]) {
        at[k].offset -= period[k];
        ++at[k].knot;
      }
    }
  }
  for (size_t l = 0; l < kCount; ++l) {
    states[l]->level = level[l];
    states[l]->trend = trend[l];
    states[l]->error = error[l];
    for (size_t k = 0; k < kSeasons; ++k) states[l]->season[k].at = at[k];
    if (!std::isfinite(level[l]) || !std::isfinite(sse[l])) {
      sse[l] = std::numeric_limits<double>::infinity();
    }
  }
  return sse;
}

template <size_t kCount>
std::array<double, kCount> roll(size_t seasons, bool ar, const std::array<State*, kCount>& states,
                                const std::array<const Params*, kCount>& params,
                                std::span<const double> ys,
                                double huber = std::numeric_limits<double>::infinity()) {
  switch (seasons) {
    case 0:
      return ar ? roll<0, true>(states, params, ys, huber)
                : roll<0, false>(states, params, ys, huber);
    case 1:
      return ar ? roll<1, true>(states, params, ys, huber)
                : roll<1, false>(states, params, ys, huber);
    default:
      return ar ? roll<2, true>(states, params, ys, huber)
                : roll<2, false>(states, params, ys, huber);
  }
}

// One state, one set of parameters.
double roll_one(State& s, const Params& p, bool ar, std::span<const double> ys) {
  return roll<1>(s.seasons, ar, {&s}, {&p}, ys)[0];
}

// Where the parameter search's loss turns from squared to linear: kHuberNoise robust standard
// deviations of the series' step-to-step noise (the median absolute first difference, × 1.4826
// for a normal's σ, ÷ √2 as a difference holds two draws). One burst then weighs as a large
// error, not as the square of one that dwarfs every other step's and decides α, β and γ. +inf
// (least squares) when the series barely moves.
constexpr double kHuberNoise = 10;

double huber_threshold(std::span<const double> ys) {
  std::vector<double> steps;
  steps.reserve(ys.size());
  for (size_t i = 1; i < ys.size(); ++i) {
    if (std::isfinite(ys[i]) && std::isfinite(ys[i - 1]))
      steps.push_back(std::abs(ys[i] - ys[i - 1]));
  }
  if (steps.empty()) return std::numeric_limits<double>::infinity();
  auto mid = steps.begin() + static_cast<std::ptrdiff_t>(steps.size() / 2);
  std::nth_element(steps.begin(), mid, steps.end());
  const double sigma = 1.4826 * *mid / std::numbers::sqrt2;
  return sigma > 0 ? kHuberNoise * sigma : std::numeric_limits<double>::infinity();
}

double mean_of_finite(std::span<const double> ys) {
  double sum = 0;
  size_t count = 0;
  for (double y : ys) {
    if (std::isfinite(y)) {
      sum += y;
      ++count;
    }
  }
  return count > 0 ? sum / static_cast<double>(count) : kMissing;
}

// Classical decomposition of the first two longest periods of `ys` (at least that long): the
// level is the first period's mean; each season, shortest first, is the centred mean profile of
// what the period means and the shorter seasons leave, each knot the average of the steps around
// it weighted as interpolation weighs them. The trend starts at 0: a slope between two period
// means is noisy and the damped trend forgets it within a few dozen steps anyway.
State initial_state(std::span<const double> ys, std::span<const size_t> periods) {
  State s;
  s.seasons = periods.size();
  for (size_t k = 0; k < periods.size(); ++k) s.season[k].reset(periods[k]);
  if (periods.empty()) {
    // Enough steps to average out one-step noise, few enough to miss most drift.
    constexpr size_t kLevelSteps = 16;
    s.level = mean_of_finite(ys.first(std::min(ys.size(), kLevelSteps)));
    if (!std::isfinite(s.level)) s.level = mean_of_finite(ys);
    return s;
  }
  const size_t block = periods.back();
  std::vector<double> rest(ys.begin(), ys.begin() + static_cast<std::ptrdiff_t>(2 * block));
  for (size_t start = 0; start < rest.size(); start += block) {
    const double mean = mean_of_finite(std::span(rest).subspan(start, block));
    if (start == 0) s.level = mean;
    for (size_t t = start; t < start + block; ++t) rest[t] -= std::isfinite(mean) ? mean : 0;
  }
  if (!std::isfinite(s.level)) s.level = mean_of_finite(ys);
  for (size_t k = 0; k < periods.size(); ++k) {
    Season& season = s.season[k];
    std::vector<double> sum(season.knots.size(), 0.0);
    std::vector<double> weight(season.knots.size(), 0.0);
    Cursor at;
    for (size_t t = 0; t < rest.size(); ++t, season.advance(at)) {
      if (!std::isfinite(rest[t])) continue;
      const double w = season.weight(at);
      sum[at.knot] += (1 - w) * rest[t];
      weight[at.knot] += 1 - w;
      sum[season.next_knot(at)] += w * rest[t];
      weight[season.next_knot(at)] += w;
    }
    for (size_t j = 0; j < sum.size(); ++j) {
      season.knots[j] = weight[j] > 0 ? sum[j] / weight[j] : 0;
    }
    const double centre = mean_of_finite(season.knots);
    for (double& v : season.knots) v -= centre;
    at = {};
    for (size_t t = 0; t < rest.size(); ++t, season.advance(at)) rest[t] -= season.value(at);
  }
  return s;
}

// Nelder–Mead on the unit cube (points clamped into it), deterministic. `f` evaluates a batch
// of points at once (see roll), so each iteration tries the reflection, the expansion and
// both contractions together, then keeps what the classic rules keep. Stops after
// `max_iterations` iterations (each one call of `f`, two when it shrinks) or when the simplex's
// values agree to 1e-9.
template <typename F>
std::vector<double> minimise(F&& f, const std::vector<double>& start, size_t max_iterations) {
  using Point = std::vector<double>;
  const size_t d = start.size();
  auto clamp_unit = [](Point x) {
    for (double& v : x) v = std::clamp(v, 0.0, 1.0);
    return x;
  };
  std::vector<Point> simplex(d + 1, start);
  for (size_t i = 0; i < d; ++i) simplex[i + 1][i] += start[i] < 0.9 ? 0.1 : -0.1;
  auto eval = [&](const std::vector<Point>& points) {
    std::vector<Point> clamped;
    clamped.reserve(points.size());
    for (const Point& p : points) clamped.push_back(clamp_unit(p));
    return f(clamped);
  };
  std::vector<double> value = eval(simplex);
  std::vector<size_t> order(d + 1);
  for (size_t iteration = 0; iteration < max_iterations; ++iteration) {
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return value[a] < value[b]; });
    const size_t best = order.front(), worst = order.back(), second = order[d - 1];
    if (value[worst] - value[best] <= 1e-9 * std::abs(value[best]) + 1e-300) break;
    Point centroid(d, 0.0);
    for (size_t i : order) {
      if (i == worst) continue;
      for (size_t j = 0; j < d; ++j) centroid[j] += simplex[i][j] / static_cast<double>(d);
    }
    auto along = [&](double t) {
      Point x(d);
      for (size_t j = 0; j < d; ++j) x[j] = centroid[j] + t * (simplex[worst][j] - centroid[j]);
      return x;
    };
    // Reflection, expansion, outside and inside contraction.
    const std::vector<Point> tries = {along(-1), along(-2), along(-0.5), along(0.5)};
    const std::vector<double> f_try = eval(tries);
    size_t pick = tries.size();  // none: shrink
    if (f_try[0] < value[best]) {
      pick = f_try[1] < f_try[0] ? 1 : 0;
    } else if (f_try[0] < value[second]) {
      pick = 0;
    } else if (f_try[0] < value[worst]) {
      if (f_try[2] <= f_try[0]) pick = 2;
    } else if (f_try[3] < value[worst]) {
      pick = 3;
    }
    if (pick < tries.size()) {
      simplex[worst] = tries[pick];
      value[worst] = f_try[pick];
      continue;
    }
    std::vector<Point> shrunk;
    for (size_t i : order) {
      if (i == best) continue;
      for (size_t j = 0; j < d; ++j) {
        simplex[i][j] = simplex[best][j] + 0.5 * (simplex[i][j] - simplex[best][j]);
      }
      shrunk.push_back(simplex[i]);
    }
    const std::vector<double> f_shrunk = eval(shrunk);
    for (size_t i = 1; i < order.size(); ++i) value[order[i]] = f_shrunk[i - 1];
  }
  const auto best =
      static_cast<size_t>(std::min_element(value.begin(), value.end()) - value.begin());
  return clamp_unit(simplex[best]);
}

// Holt–Winters ("holt_winters": the daily season) and Taylor's double-seasonal variant
// ("double_seasonal": daily and weekly seasons and the AR(1) error adjustment).
class SmoothingModel final : public Model {
 public:
  SmoothingModel(std::string_view name, const ModelOptions& options, bool double_seasonal)
      : name_(name), options_(options), double_seasonal_(double_seasonal) {
    fit(Series{});
  }
  std::string_view name() const override { return name_; }
  void fit(const Series& history) override;
  void update(double value) override {
    if (!std::isfinite(state_.level) && std::isfinite(value)) {
      state_.level = value;  // the first observation of an empty fit
      value = kMissing;      // consumed; only the seasons' phases move on
    }
    roll_one(state_, params_, ar_, std::span(&value, 1));
  }
  void predict(std::span<double> out) const override;
  std::unique_ptr<Model> clone() const override { return std::make_unique<SmoothingModel>(*this); }

 private:
  Params search(std::span<const double> ys, const State& start) const;

  std::string name_;
  ModelOptions options_;
  bool double_seasonal_;
  bool ar_ = false;
  Params params_;
  State state_;
};

// Parameters are fitted on at most this many recent steps (but always four periods of the
// longest season): the fit stays ~O(periods), and recent behaviour is what forecasts need.
constexpr size_t kSearchMinSteps = 4096;
constexpr size_t kSearchPeriods = 4;
// Nelder–Mead iterations of the search: enough to settle 4-6 parameters from a grid point.
constexpr size_t kSearchIterations = 60;
// Below this many observations there is nothing to fit; the default parameters are used.
constexpr size_t kMinObservationsToFit = 16;

void SmoothingModel::fit(const Series& history) {
  const std::span<const double> all(history.values);
  // The window ends at the last observed value and the state then rolls through the missing
  // steps after it: a window over an outage at the end would hold nothing to learn from, and
  // the model would forget everything before it (it predicted 0 after an outage longer than
  // the window). Missing steps add nothing to the search's loss, so none is lost either.
  size_t n = all.size();
  while (n > 0 && !std::isfinite(all[n - 1])) --n;
  const size_t day = period_steps(options_.day_seconds, history.step_seconds);
  const size_t week = period_steps(options_.week_seconds, history.step_seconds);
  std::vector<size_t> periods;
  ar_ = false;
  if (double_seasonal_ && week > 0 && n >= 2 * week) {
    if (day > 0 && day < week) periods.push_back(day);
    periods.push_back(week);
    ar_ = true;
  } else if (day > 0 && n >= 2 * day) {
    periods.push_back(day);
  }
  const size_t longest = periods.empty() ? 1 : periods.back();
  const size_t window = std::min(n, std::max(kSearchMinSteps, kSearchPeriods * longest));
  const std::span<const double> recent = all.first(n).last(window);
  const State start = initial_state(recent, periods);

  params_ = Params{};
  const auto observed = static_cast<size_t>(
      std::count_if(recent.begin(), recent.end(), [](double v) { return std::isfinite(v); }));
  if (observed >= kMinObservationsToFit) params_ = search(recent, start);
  state_ = start;
  roll_one(state_, params_, ar_, all.last(all.size() - n + window));
}

Params SmoothingModel::search(std::span<const double> ys, const State& start) const {
  const size_t seasons = start.seasons;
  // Unit-cube coordinates: alpha, beta, phi, one gamma per season, then ρ when adjusting.
  auto to_params = [&](const std::vector<double>& u) {
    Params p;
    p.alpha = kAlphaMin + u[0] * (kAlphaMax - kAlphaMin);
    p.beta = u[1];
    p.phi = kPhiMin + u[2] * (kPhiMax - kPhiMin);
    for (size_t k = 0; k < seasons; ++k) p.gamma[k] = u[3 + k];
    p.ar = ar_ ? u[3 + seasons] * kArMax : 0;
    return p;
  };
  const double huber = huber_threshold(ys);
  std::array<State, kLanes> lanes;  // reused: copying `start` in keeps their buffers
  auto sse = [&](const std::vector<std::vector<double>>& points) {
    std::vector<double> out(points.size());
    for (size_t first = 0; first < points.size(); first += kLanes) {
      std::array<Params, kLanes> sets;
      std::array<State*, kLanes> states{};
      std::array<const Params*, kLanes> params{};
      for (size_t l = 0; l < kLanes; ++l) {
        // Spare lanes repeat the last point rather than branch.
        sets[l] = to_params(points[std::min(first + l, points.size() - 1)]);
        lanes[l] = start;
        states[l] = &lanes[l];
        params[l] = &sets[l];
      }
      const std::array<double, kLanes> f = roll<kLanes>(seasons, ar_, states, params, ys, huber);
      for (size_t l = 0; l < kLanes && first + l < points.size(); ++l) out[first + l] = f[l];
    }
    return out;
  };

  // A coarse grid first, so Nelder–Mead starts in the right basin (the error surface of
  // exponential smoothing has long flat valleys where a local search stalls). Every season
  // and ρ share one grid axis to keep the grid at 16 points.
  const size_t dims = 3 + seasons + (ar_ ? 1 : 0);
  std::vector<std::vector<double>> grid;
  for (double alpha : {0.05, 0.2, 0.5, 0.8}) {  // ≈ alpha itself: kAlphaMin is small
    for (double beta : {0.0, 0.1}) {
      for (double gamma : {0.05, 0.3}) {
        std::vector<double> u = {alpha, beta, 0.5};  // phi 0.89
        u.resize(dims, gamma);
        if (ar_) u.back() = 0.5;  // ρ 0.5
        grid.push_back(std::move(u));
      }
    }
  }
  const std::vector<double> f_grid = sse(grid);
  const auto best =
      static_cast<size_t>(std::min_element(f_grid.begin(), f_grid.end()) - f_grid.begin());
  return to_params(minimise(sse, grid[best], kSearchIterations));
}

void SmoothingModel::predict(std::span<double> out) const {
  const State& s = state_;
  if (!std::isfinite(s.level)) {
    std::fill(out.begin(), out.end(), 0.0);
    return;
  }
  std::array<Cursor, 2> at = {s.season[0].at, s.season[1].at};
  double damping = 0;
  double phi_k = 1;
  double ar_k = 1;
  for (double& v : out) {
    phi_k *= params_.phi;
    damping += phi_k;
    ar_k *= params_.ar;
    double y = s.level + damping * s.trend + ar_k * s.error;
    for (size_t k = 0; k < s.seasons; ++k) {
      y += s.season[k].value(at[k]);
      s.season[k].advance(at[k]);
    }
    v = clamp_demand(y);
  }
}

}  // namespace

size_t period_steps(double period_seconds, double step_seconds) {
  if (!(period_seconds > 0) || !(step_seconds > 0)) return 0;
  const double steps = period_seconds / step_seconds;
  const double whole = std::round(steps);
  if (whole < 2 || std::abs(steps - whole) > 1e-9 * steps) return 0;
  return static_cast<size_t>(whole);
}

Result<std::unique_ptr<Model>> make_model(std::string_view name, const ModelOptions& options) {
  if (name == "naive") return std::make_unique<NaiveModel>();
  if (name == "seasonal_naive_day") {
    return std::make_unique<SeasonalNaiveModel>(name, options.day_seconds);
  }
  if (name == "seasonal_naive_week") {
    return std::make_unique<SeasonalNaiveModel>(name, options.week_seconds);
  }
  if (name == "holt_winters") return std::make_unique<SmoothingModel>(name, options, false);
  if (name == "double_seasonal") return std::make_unique<SmoothingModel>(name, options, true);
  if (name == "seasonal_naive_cycle") {
    return std::make_unique<SeasonalNaiveModel>(name, options.cycle_seconds);
  }
  if (name == "holt_winters_cycle") {
    // Holt-Winters with the detected cycle as its one season.
    ModelOptions cycle = options;
    cycle.day_seconds = options.cycle_seconds;
    return std::make_unique<SmoothingModel>(name, cycle, false);
  }
  if (name == "gbt") return make_gbt_model(nullptr, GbtOptions{.seasons = options});
  std::string known;
  for (std::string_view n : kModelNames) known += (known.empty() ? "" : ", ") + std::string(n);
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown forecasting model '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace prescale::forecast
