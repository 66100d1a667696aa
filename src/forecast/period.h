// Seasonal period detection: which cycles (a day, a week, an hour...) a demand series repeats.
// Candidates are the peaks of an FFT periodogram of the gap-filled, detrended series (bursts
// clipped); each is confirmed and refined by the autocorrelation at its lag, and periods close to
// a day or a week snap to exactly that. docs/forecasting.md ("Period detection") explains the
// thresholds.
//
// Thread safety: detect_periods() is a pure function.
#pragma once

#include <cstddef>
#include <vector>

#include "forecast/model.h"

namespace prescale::forecast {

struct PeriodOptions {
  // A detected period within this fraction of a day or a week becomes exactly that.
  double snap_fraction = 0.03;
  double day_seconds = 86400;
  double week_seconds = 7 * 86400;
  // A periodogram peak is a candidate when its power is this many times the local noise power
  // (the median power of the surrounding frequencies).
  double min_peak_to_noise = 3;
  // The autocorrelation at a candidate's lag must be a local maximum, at least
  // min_autocorrelation + few_cycles_margin × (2 × lag / length)²: 0.7 with two cycles of data,
  // 0.33 with four, about 0.2 with many (a slowly wandering series repeats by chance over few)...
  double min_autocorrelation = 0.2;
  double few_cycles_margin = 0.5;
  // ...and at least this much above the lowest autocorrelation at shorter lags, so that a slowly
  // decaying autocorrelation (a trend, a random walk) is not read as a cycle.
  double min_prominence = 0.1;
  // ...or this many standard errors of a difference of two sample autocorrelations (√(2/n) for
  // n values), when that is more: over a short series (an hour of 10-second steps) sampling
  // noise alone lifts one lag 0.1 above a shorter one often enough to make a "cycle".
  double prominence_errors = 3;
  // A multiple k of a stronger period Q (a week of days) is kept only when its autocorrelation
  // beats those at (k - 1)Q and (k + 1)Q by this much: the series must repeat better after a
  // week than after six or eight days.
  double min_multiple_gain = 0.02;
  // A period other than a day or a week needs this many cycles of data (a day or a week needs
  // two): demand has calendar cycles a priori, and over two or three cycles a wandering level
  // makes 4- or 5-day "cycles" often enough (a few percent of random walks) to need more proof.
  double min_cycles_other = 4;
  // At most this many periods are returned.
  size_t max_periods = 4;
};

// The significant seasonal periods of `series`, in seconds, strongest (largest periodogram peak)
// first; each is a whole number of steps, at least 2 steps, with at least two cycles of data (a
// day or a week) or min_cycles_other (any other period), so a series shorter than 4 steps has
// none. Missing values (NaN) are interpolated; O(n log n).
std::vector<double> detect_periods(const Series& series, const PeriodOptions& options = {});

}  // namespace prescale::forecast
