// Online anomaly detectors: one observation at a time, no look-ahead, a score in [0, 1] per
// observation (1: surely anomalous). The healer's detectors read a service's series (latency,
// errors, load) through them; `prescale eval anomaly` scores them on the Numenta Anomaly
// Benchmark (docs/healing.md).
//
// Thread safety: a detector is one series' state, used from one thread.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

namespace prescale::healing {

class AnomalyDetector {
 public:
  virtual ~AnomalyDetector() = default;
  // The score of `value`, the series' next observation, from what came before it; then `value`
  // joins what the next scores come from. A value that is not finite never joins them: NaN (a
  // gap) scores 0, ±inf scores 1 (past a detector's warm-up). DeviationDetector takes a finite
  // value so far from the rest that learning it would overflow (about 1e154 from the mean) as
  // ±inf.
  virtual double observe(double value) = 0;
};

// The probability that a normal variable lies further than `x` from `mean` on x's side (the
// Q-function of |x − mean| / sd): 0.5 at the mean.
double normal_tail(double x, double mean, double sd);

// NAB's windowedGaussian detector, as numenta/NAB runs it (the benchmark's reference baseline):
// 1 − normal_tail(value) under the mean and population standard deviation of a window of the
// last `window` values (all of them until there are that many), slid `step` values at a time;
// 0 for the first value; a standard deviation of 0 counts as 1e-6. Throws std::invalid_argument
// unless 1 <= step <= window.
class WindowedGaussian final : public AnomalyDetector {
 public:
  explicit WindowedGaussian(std::size_t window = 6400, std::size_t step = 100);
  double observe(double value) override;

 private:
  void refit();
  std::size_t window_, step_;
  std::deque<double> values_;
  std::vector<double> pending_;  // the next step's values, once the window is full
  double mean_ = 0, sd_ = 1;
  // While the window fills, mean and variance are updated value by value (Welford).
  double m2_ = 0;
};

// Prescale's detector, two tests of each value after the first `warmup` (0 before):
// - deviation: how far it lies from an exponentially weighted mean, in exponentially weighted
//   standard deviations (a half-life of `half_life` observations), scored 1 − normal_tail;
//   ever-constant data has a deviation of 1e-9, so its first change is an anomaly;
// - novelty: a value beyond the range of all before it by more than `novelty_margin` of that
//   range scores 1 (Numenta's spatial anomaly, with its 5 %).
// The score is the higher of the two. One alert per incident: after a score of at least
// `alert_score`, the next `hold` observations score 0 (the same incident: an operator is told
// once).
struct DeviationOptions {
  double half_life = 1000;
  int warmup = 30;
  double novelty_margin = 0.05;
  double alert_score = 0.99999;
  int hold = 200;
};

class DeviationDetector final : public AnomalyDetector {
 public:
  explicit DeviationDetector(DeviationOptions options = {});
  double observe(double value) override;

 private:
  DeviationOptions options_;
  double alpha_;
  double mean_ = 0, variance_ = 0;
  double min_ = 0, max_ = 0;
  long seen_ = 0;
  int holding_ = 0;
};

// The detectors by name, "windowed_gaussian" and "deviation"; nullptr for another name.
std::unique_ptr<AnomalyDetector> make_detector(std::string_view name);
// Their names, ours first.
const std::vector<std::string_view>& detector_names();

}  // namespace prescale::healing
