// Scoring anomaly detectors the way the Numenta Anomaly Benchmark (NAB v1.1, numenta/NAB) does,
// so that the healer's detectors can be compared with NAB's published scoreboard.
//
// A detector gives every row of every corpus file an anomaly score in [0, 1]; a row is a
// detection when its score is at or above a threshold. Per file, rows in the probation period
// (the first min(floor(0.15 × rows), 750)) are not scored. Each labelled window earns the
// scaled-sigmoid reward of its first detection (tp_weight at the window's first row, less towards
// its last) or costs fn_weight when it has none; each detection outside a window costs up to
// fp_weight, less when it falls just after a window. One threshold per detector and profile is
// chosen by sweeping every distinct score over the whole corpus (NAB's sweeper), and the summed
// raw score is normalised against NAB's null detector (nothing detected) and a perfect one.
// docs/healing.md has the details and where this departs from NAB's Python on inputs the real
// corpus never has.
//
// Thread safety: all functions are pure; they may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace prescale::healing {

// A NAB application profile: the weights of a detected window, a false detection and a missed
// window (config/profiles.json's CostMatrix; tnWeight is unused by NAB's scoring).
struct NabProfile {
  std::string name;
  double tp_weight = 1, fp_weight = 0.11, fn_weight = 1;
};

// standard, reward_low_FP_rate, reward_low_FN_rate, as NAB's config/profiles.json.
const std::vector<NabProfile>& nab_profiles();

struct NabWindow {
  std::size_t first = 0, last = 0;  // row indices, inclusive
};

struct NabFile {
  std::string name;                 // "realKnownCause/nyc_taxi.csv", relative to data/
  std::vector<std::int64_t> times;  // unix seconds of each row
  std::vector<double> values;
  std::vector<NabWindow> windows;  // from labels/combined_windows.json, in row order
  std::size_t probation = 0;       // rows not scored at the start
};

// NAB's probation period of a file of `rows` rows: min(floor(0.15 × rows), 750).
std::size_t nab_probation_rows(std::size_t rows);

// Loads every labelled file under <nab_dir>/data with its windows, in the order of the file names.
// Window limits must be timestamps of rows of their file, as NAB requires. Errors name the file
// and line (kInvalidArgument), or the missing file (kNotFound).
Result<std::vector<NabFile>> load_nab_corpus(const std::string& nab_dir);

struct NabScore {
  double threshold = 0;   // the swept best; 1.1 (above every score) when detecting nothing wins
  double raw = 0;         // summed over files at that threshold
  double normalized = 0;  // 100 × (raw − null) / (perfect − null)
  // NAB's counts are of rows, not windows: a window detected at 3 of its 400 scored rows adds 3
  // true positives and 397 false negatives. Probation rows are in none of them.
  int true_positives = 0, false_positives = 0, false_negatives = 0;
  int true_negatives = 0;
  int windows_detected = 0, windows_missed = 0;  // windows with a scored row, by first detection
  double null_raw = 0;     // NAB's null detector: every window missed, −fn_weight each
  double perfect_raw = 0;  // every window detected at its first row: tp_weight each
};

// `scores[i][row]`: a detector's anomaly score in [0, 1] for file i, row by row (no look-ahead is
// the detector's business). Sweeps the threshold corpus-wide as NAB's sweeper does: among equally
// good thresholds the highest wins. NaN scores are never detections. Throws std::invalid_argument
// when `scores` does not have one score per row of each file, or a file's windows are not
// in-range row ranges in order (a caller's bug).
NabScore score_nab(const std::vector<NabFile>& files,
                   const std::vector<std::vector<double>>& scores, const NabProfile& profile);

// NAB's scoring step at a given threshold: a row is a detection when its score >= `threshold`.
// `per_file`, when given, receives each file's raw score (NAB's <detector>_<profile>_scores.csv).
NabScore score_nab_at(const std::vector<NabFile>& files,
                      const std::vector<std::vector<double>>& scores, const NabProfile& profile,
                      double threshold, std::vector<double>* per_file = nullptr);

// NAB's scaled sigmoid of a relative position y: 2 / (1 + e^{5y}) − 1, and −1 from y = 3 on.
double nab_scaled_sigmoid(double y);

}  // namespace prescale::healing
