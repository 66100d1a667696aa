#include "forecast/period.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <complex>
#include <cstddef>
#include <numbers>
#include <numeric>
#include <optional>
#include <vector>

namespace prescale::forecast {
namespace {

using Complex = std::complex<double>;

// Candidates examined, by periodogram power: enough for a few cycles with their harmonics
// while keeping the autocorrelation checks cheap on white noise (thousands of local maxima).
constexpr size_t kMaxCandidates = 32;
// The local noise floor of a periodogram bin is the median over this many bins either side (at
// least), wide enough that a tapered peak's main lobe (±4 bins at 2× padding) is a minority.
constexpr size_t kNoiseHalfWidth = 32;
// The refined lag climbs the autocorrelation to the highest value within this fraction of it.
constexpr double kClimbFraction = 0.02;
// Robust standard deviations beyond which a value counts as a burst (see clip_bursts).
constexpr double kClipMads = 4;
// Moves allowed when climbing the autocorrelation from a periodogram peak to its local maximum.
constexpr int kMaxClimbs = 4;
// Lags closer than this fraction are one cycle: noise wiggles on the broad shoulders of a daily
// autocorrelation peak (at 21 or 26 hours) are local maxima too.
constexpr double kSameFraction = 0.15;
// How close a ratio of lags must be to an integer to make one a multiple of the other.
constexpr double kMultipleFraction = 0.02;

// In-place iterative radix-2 FFT; `data.size()` is a power of two. `inverse` omits the 1/N.
void fft(std::vector<Complex>& data, bool inverse) {
  const size_t n = data.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; (j & bit) != 0; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(data[i], data[j]);
  }
  // Twiddles from cos/sin of each index rather than repeated multiplication, which drifts by
  // ~1e-12 over 2^17 points and blurs the small autocorrelations we threshold.
  std::vector<Complex> twiddle(n / 2);
  const double sign = inverse ? 1.0 : -1.0;
  for (size_t i = 0; i < n / 2; ++i) {
    const double angle =
        sign * 2 * std::numbers::pi * static_cast<double>(i) / static_cast<double>(n);
    twiddle[i] = {std::cos(angle), std::sin(angle)};
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const size_t half = len / 2;
    const size_t stride = n / len;
    for (size_t start = 0; start < n; start += len) {
      for (size_t k = 0; k < half; ++k) {
        const Complex t = twiddle[k * stride] * data[start + k + half];
        data[start + k + half] = data[start + k] - t;
        data[start + k] += t;
      }
    }
  }
}

// Linear interpolation across gaps; leading and trailing gaps take the nearest value. False when
// the series has no value at all.
bool fill_gaps(std::vector<double>& x) {
  size_t previous = x.size();  // index of the last finite value seen
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) continue;
    if (previous == x.size()) {
      std::fill(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(i), x[i]);
    } else {
      const auto span = static_cast<double>(i - previous);
      for (size_t j = previous + 1; j < i; ++j) {
        const double w = static_cast<double>(j - previous) / span;
        x[j] = (1 - w) * x[previous] + w * x[i];
      }
    }
    previous = i;
  }
  if (previous == x.size()) return false;
  std::fill(x.begin() + static_cast<std::ptrdiff_t>(previous) + 1, x.end(), x[previous]);
  return true;
}

// Removes the least-squares line, so a growing series does not read as one long cycle.
void detrend(std::vector<double>& x) {
  const auto n = static_cast<double>(x.size());
  const double mean_t = (n - 1) / 2;
  double mean_x = 0;
  for (double v : x) mean_x += v;
  mean_x /= n;
  double sxy = 0;
  double sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dt = static_cast<double>(i) - mean_t;
    sxy += dt * (x[i] - mean_x);
    sxx += dt * dt;
  }
  const double slope = sxx > 0 ? sxy / sxx : 0;
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] -= mean_x + slope * (static_cast<double>(i) - mean_t);
  }
}

// Autocorrelation for lags 0..n-1, each lag's sum divided by its number of pairs so that long
// lags (a week in two weeks of data) are not shrunk towards 0.
std::vector<double> autocorrelation(const std::vector<double>& x, size_t fft_size) {
  std::vector<Complex> f(fft_size);
  std::copy(x.begin(), x.end(), f.begin());
  fft(f, false);
  for (Complex& c : f) c = std::norm(c);
  fft(f, true);
  const size_t n = x.size();
  std::vector<double> r(n);
  const double c0 = f[0].real() / static_cast<double>(n);
  for (size_t lag = 0; lag < n; ++lag) {
    r[lag] = f[lag].real() / static_cast<double>(n - lag) / c0;
  }
  return r;
}

// Power of the Hann-tapered series; the taper keeps a strong cycle's leakage from raising
// spurious peaks far from it.
std::vector<double> periodogram(const std::vector<double>& x, size_t fft_size) {
  std::vector<Complex> f(fft_size);
  const auto n = static_cast<double>(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = 0.5 - 0.5 * std::cos(2 * std::numbers::pi * static_cast<double>(i) / n);
    f[i] = w * x[i];
  }
  fft(f, false);
  std::vector<double> power(fft_size / 2 + 1);
  for (size_t k = 0; k < power.size(); ++k) power[k] = std::norm(f[k]);
  return power;
}

double local_noise(const std::vector<double>& power, size_t k) {
  const size_t half = std::max(kNoiseHalfWidth, k / 2);
  const size_t lo = k > half + 1 ? k - half : 1;
  const size_t hi = std::min(power.size() - 1, k + half);
  std::vector<double> window(power.begin() + static_cast<std::ptrdiff_t>(lo),
                             power.begin() + static_cast<std::ptrdiff_t>(hi) + 1);
  auto middle = window.begin() + static_cast<std::ptrdiff_t>(window.size() / 2);
  std::nth_element(window.begin(), middle, window.end());
  // The median of an exponential (a periodogram ordinate of noise) is ln 2 times its mean.
  return *middle / std::numbers::ln2;
}

// With few cycles in the data a slowly wandering series repeats by chance: the lag-n/2
// autocorrelation of a detrended random walk exceeds 0.65 one time in a hundred (0.44 at n/3,
// 0.25 at n/4). The bar rises as (2 × lag / n)² to stay above those.
double required_autocorrelation(const PeriodOptions& options, size_t n, size_t lag) {
  const double share = 2 * static_cast<double>(lag) / static_cast<double>(n);
  return options.min_autocorrelation + options.few_cycles_margin * share * share;
}

// How far a lag's autocorrelation must rise above the lowest at shorter lags to be a cycle's.
double required_prominence(const PeriodOptions& options, size_t n) {
  return std::max(options.min_prominence,
                  options.prominence_errors * std::sqrt(2 / static_cast<double>(n)));
}

// Clips values beyond kClipMads robust standard deviations (1.4826 × the median absolute
// deviation) of the detrended series. Bursts (a news spike, an incident) would otherwise
// dominate the variance and hide a cycle that holds the rest of the time; a cycle itself is
// rarely clipped: a sine's extremes are 1.4 robust deviations out.
void clip_bursts(std::vector<double>& x) {
  std::vector<double> deviation(x.size());
  for (size_t i = 0; i < x.size(); ++i) deviation[i] = std::abs(x[i]);
  auto middle = deviation.begin() + static_cast<std::ptrdiff_t>(deviation.size() / 2);
  std::nth_element(deviation.begin(), middle, deviation.end());
  const double limit = kClipMads * 1.4826 * *middle;
  if (!(limit > 0)) return;  // mostly constant: nothing to call a burst
  for (double& v : x) v = std::clamp(v, -limit, limit);
}

bool near(double a, double b, double fraction) {
  return std::abs(a - b) <= fraction * std::max(a, b);
}

}  // namespace

namespace {

// The accepted cycle lengths (steps) of the prepared series `x`, strongest first.
std::vector<size_t> find_lags(const std::vector<double>& x, double step,
                              const PeriodOptions& options) {
  const size_t n = x.size();
  double energy = 0;
  for (double v : x) energy += v * v;
  if (!(energy > 0)) return {};

  // Padding to twice the length makes the FFT's circular correlation the linear one.
  const size_t fft_size = std::bit_ceil(2 * n);
  const std::vector<double> r = autocorrelation(x, fft_size);
  const std::vector<double> power = periodogram(x, fft_size);
  const size_t max_lag = n / 2;  // two whole periods of data at least
  const auto fft_n = static_cast<double>(fft_size);

  struct Peak {
    size_t bin;
    double power;
  };
  std::vector<Peak> peaks;
  for (size_t k = 1; k + 1 < power.size(); ++k) {
    if (!(power[k] > power[k - 1] && power[k] >= power[k + 1])) continue;
    // The bin's lag range [N/(k+1), N/(k-1)] must reach the allowed lags [2, n/2].
    if (fft_n / static_cast<double>(k + 1) > static_cast<double>(max_lag)) continue;
    peaks.push_back({k, power[k]});
  }
  const size_t examined = std::min(kMaxCandidates, peaks.size());
  std::partial_sort(peaks.begin(), peaks.begin() + static_cast<std::ptrdiff_t>(examined),
                    peaks.end(), [](const Peak& a, const Peak& b) { return a.power > b.power; });
  peaks.resize(examined);

  // min_before[l]: the lowest autocorrelation at lags 1..l-1, for the prominence test.
  std::vector<double> min_before(n, 1.0);
  for (size_t lag = 2; lag < min_before.size(); ++lag) {
    min_before[lag] = std::min(min_before[lag - 1], r[lag - 1]);
  }

  std::vector<size_t> lags;  // accepted, strongest first
  for (const Peak& peak : peaks) {
    if (lags.size() >= options.max_periods) break;
    if (peak.power < options.min_peak_to_noise * local_noise(power, peak.bin)) continue;
    // Refine: the periodogram's resolution at long periods is coarse (N/k for integer k), the
    // autocorrelation's is one step.
    const size_t lo =
        std::max<size_t>(2, static_cast<size_t>(fft_n / static_cast<double>(peak.bin + 1)));
    const size_t hi =
        peak.bin <= 1
            ? max_lag
            : std::min(max_lag,
                       static_cast<size_t>(std::ceil(fft_n / static_cast<double>(peak.bin - 1))));
    if (lo > hi) continue;
    size_t lag = lo;
    for (size_t l = lo; l <= hi; ++l) {
      if (r[l] > r[lag]) lag = l;
    }
    // Climb to a local maximum; it may lie just past the bin's range (a week in two
    // weeks of data is at the range's end). Still climbing after a few moves means the
    // autocorrelation only falls away: no cycle here.
    bool local_max = false;
    for (int move = 0; move < kMaxClimbs && !local_max; ++move) {
      const size_t reach = std::max<size_t>(
          1, static_cast<size_t>(std::lround(kClimbFraction * static_cast<double>(lag))));
      size_t best = lag;
      for (size_t l = lag > reach ? lag - reach : 1; l <= std::min(n - 1, lag + reach); ++l) {
        if (r[l] > r[best]) best = l;
      }
      local_max = best == lag;
      lag = best;
    }
    if (!local_max) continue;
    if (r[lag] < required_autocorrelation(options, n, lag)) continue;
    if (r[lag] - min_before[lag] < required_prominence(options, n)) continue;

    bool calendar = false;
    for (double target : {options.day_seconds, options.week_seconds}) {
      const double steps = target / step;
      const double whole = std::round(steps);
      if (std::abs(steps - whole) < 1e-9 * steps && whole >= 2 &&
          near(static_cast<double>(lag) * step, target, options.snap_fraction)) {
        lag = static_cast<size_t>(whole);
        calendar = true;
      }
    }
    if (lag > max_lag) continue;
    if (!calendar && static_cast<double>(n) < options.min_cycles_other * static_cast<double>(lag)) {
      continue;
    }
    bool duplicate = false;
    for (size_t accepted : lags) {
      const double ratio = static_cast<double>(lag) / static_cast<double>(accepted);
      if (near(ratio, 1, kSameFraction)) duplicate = true;
      // A multiple k of a stronger cycle (a week of days) is its own cycle only when the series
      // repeats better after k shorter periods than after k ± 1 of them; otherwise it is the
      // shorter cycle seen again.
      const double k = std::round(ratio);
      if (k >= 2 && near(ratio, k, kMultipleFraction)) {
        double neighbours = r[lag - accepted];
        if (lag + accepted < n) neighbours = std::max(neighbours, r[lag + accepted]);
        if (r[lag] < neighbours + options.min_multiple_gain) duplicate = true;
      }
    }
    if (!duplicate) lags.push_back(lag);
  }

  return lags;
}

// Cycles of recurring bursts, from the autocorrelation of the first differences: a spike train
// of period P puts equal power at every harmonic of 1/P, and differencing boosts the high ones,
// so the periodogram's strongest peaks point at P/9, P/8, ...; the autocorrelation instead peaks
// at P itself (and its multiples). The highest local maximum at lags 2..n/4 that clears the bar,
// replaced by its shortest divisor with at least 90 % of its autocorrelation.
std::optional<size_t> burst_cycle(const std::vector<double>& diff, const PeriodOptions& options) {
  const size_t n = diff.size();
  if (n < 16) return std::nullopt;
  double energy = 0;
  for (double v : diff) energy += v * v;
  if (!(energy > 0)) return std::nullopt;
  const std::vector<double> r = autocorrelation(diff, std::bit_ceil(2 * n));
  const size_t max_lag = n / static_cast<size_t>(std::max(2.0, options.min_cycles_other));
  size_t best = 0;
  for (size_t lag = 2; lag + 1 <= max_lag; ++lag) {
    if (r[lag] >= r[lag - 1] && r[lag] >= r[lag + 1] && (best == 0 || r[lag] > r[best])) {
      best = lag;
    }
  }
  if (best == 0 ||
      r[best] < required_autocorrelation(options, n, best) + required_prominence(options, n)) {
    return std::nullopt;
  }
  for (size_t k = best; k >= 2; --k) {
    if (best % k != 0) continue;
    const size_t divisor = best / k;
    if (divisor >= 2 && r[divisor] >= 0.9 * r[best]) return divisor;
  }
  return best;
}

}  // namespace

std::vector<double> detect_periods(const Series& series, const PeriodOptions& options) {
  const size_t n = series.values.size();
  if (n < 4 || !(series.step_seconds > 0)) return {};
  std::vector<double> x = series.values;
  if (!fill_gaps(x)) return {};
  // First differences, unclipped: a burst that recurs every P steps (a batch job, a cron) is
  // exactly what clipping removes, and differencing makes it stand out against a wandering level
  // (a level's differences are noise; a spike's are a +/- pair that repeats every P steps).
  // Their mean (a trend's slope) is taken out: a steady rise would otherwise correlate with
  // itself at every lag and pass for a cycle.
  std::vector<double> diff(x.size() - 1);
  for (size_t i = 0; i + 1 < x.size(); ++i) diff[i] = x[i + 1] - x[i];
  const double slope = std::accumulate(diff.begin(), diff.end(), 0.0) /
                       static_cast<double>(std::max<size_t>(1, diff.size()));
  for (double& d : diff) d -= slope;
  detrend(x);
  clip_bursts(x);
  std::vector<size_t> lags = find_lags(x, series.step_seconds, options);
  if (auto cycle = burst_cycle(diff, options); cycle && lags.size() < options.max_periods) {
    const size_t lag = *cycle;
    bool known = false;
    for (size_t accepted : lags) {
      const double ratio = static_cast<double>(lag) / static_cast<double>(accepted);
      known = known || near(ratio, std::round(ratio), kMultipleFraction) ||
              near(1 / ratio, std::round(1 / ratio), kMultipleFraction);
    }
    if (!known) lags.push_back(lag);
  }

  std::vector<double> periods;
  periods.reserve(lags.size());
  for (size_t lag : lags) periods.push_back(static_cast<double>(lag) * series.step_seconds);
  return periods;
}

}  // namespace prescale::forecast
