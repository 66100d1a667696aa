// NAB's scoring rules (numenta/NAB nab/sweeper.py and nab/runner.py, v1.1). The sweep follows
// Sweeper.calcScoreByThreshold: every scored row gets, once, the reward it would earn as a
// detection; rows are visited from the highest score down, and after each distinct score the
// corpus total is what a threshold at that score earns.
#include "healing/nab.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

namespace prescale::healing {
namespace {

// NAB's threshold for "nothing detected": the sweep starts there.
constexpr double kAboveEveryScore = 1.1;

// A scored row (past probation) as the sweep sees it.
struct ScoredRow {
  double score = 0;
  double reward = 0;    // what it adds as a detection: tp reward in a window, fp cost outside
  std::int64_t window;  // corpus-wide window number, or -1 outside every window
};

void check_windows(const NabFile& file) {
  const std::size_t rows = file.times.size();
  for (std::size_t k = 0; k < file.windows.size(); ++k) {
    const NabWindow& w = file.windows[k];
    if (w.first > w.last || w.last >= rows || (k > 0 && w.first <= file.windows[k - 1].last)) {
      throw std::invalid_argument("NAB file " + file.name + ": window " + std::to_string(k) +
                                  " is not a row range in order after the previous window");
    }
  }
}

void check_inputs(const std::vector<NabFile>& files,
                  const std::vector<std::vector<double>>& scores) {
  if (scores.size() != files.size()) {
    throw std::invalid_argument("NAB scoring: " + std::to_string(scores.size()) +
                                " score series for " + std::to_string(files.size()) + " files");
  }
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (scores[i].size() != files[i].times.size()) {
      throw std::invalid_argument("NAB scoring: " + files[i].name + " has " +
                                  std::to_string(files[i].times.size()) + " rows but " +
                                  std::to_string(scores[i].size()) + " scores");
    }
    check_windows(files[i]);
  }
}

// Appends the rows of `file` past its probation to `out`, its windows numbered from
// `window_base`. The rewards are Sweeper.calcSweepScore's: inside a window by the position
// -(right - i + 1) / width, scaled so that the window's first row earns tp_weight exactly;
// outside, by the distance past the previous window's last row over (its width - 1), and
// -fp_weight before the first window.
void collect_rows(const NabFile& file, const std::vector<double>& scores, const NabProfile& profile,
                  std::int64_t window_base, std::vector<ScoredRow>& out) {
  const double max_tp = nab_scaled_sigmoid(-1.0);
  std::size_t next_window = 0;
  bool inside = false;
  std::size_t right = 0, width = 0;
  bool after_window = false;
  std::size_t prev_right = 0, prev_width = 0;
  for (std::size_t i = 0; i < file.times.size(); ++i) {
    if (!inside && next_window < file.windows.size() && file.windows[next_window].first == i) {
      inside = true;
      right = file.windows[next_window].last;
      width = right - i + 1;
      ++next_window;
    }
    double reward;
    if (inside) {
      const double y = -static_cast<double>(right - i + 1) / static_cast<double>(width);
      reward = nab_scaled_sigmoid(y) * profile.tp_weight / max_tp;
    } else if (!after_window || prev_width == 1) {
      // NAB divides by zero after a one-row window; such a detection is taken as far away.
      reward = -profile.fp_weight;
    } else {
      const double y = static_cast<double>(i - prev_right) / static_cast<double>(prev_width - 1);
      reward = nab_scaled_sigmoid(y) * profile.fp_weight;
    }
    if (i >= file.probation) {
      out.push_back({scores[i], reward,
                     inside ? window_base + static_cast<std::int64_t>(next_window - 1) : -1});
    }
    if (inside && i == right) {
      inside = false;
      after_window = true;
      prev_right = right;
      prev_width = width;
    }
  }
}

// The corpus's rows as the sweep sees them, and its windows' standing before any detection.
struct Corpus {
  std::vector<ScoredRow> rows;
  std::vector<double> window_part;    // per window: -fn_weight until detected
  std::vector<bool> window_scored;    // has a row past probation (NAB scores only those)
  std::vector<std::size_t> file_end;  // rows[file_end[i - 1], file_end[i]) are file i's
  int scored_windows = 0;
  int all_windows = 0;
  int window_rows = 0, outside_rows = 0;
};

Corpus collect(const std::vector<NabFile>& files, const std::vector<std::vector<double>>& scores,
               const NabProfile& profile) {
  check_inputs(files, scores);
  Corpus corpus;
  std::size_t rows = 0;
  for (const NabFile& f : files) rows += f.times.size();
  corpus.rows.reserve(rows);
  for (std::size_t i = 0; i < files.size(); ++i) {
    collect_rows(files[i], scores[i], profile, corpus.all_windows, corpus.rows);
    corpus.file_end.push_back(corpus.rows.size());
    for (const NabWindow& w : files[i].windows) {
      const bool scored = w.last >= files[i].probation;
      corpus.window_scored.push_back(scored);
      corpus.scored_windows += scored ? 1 : 0;
    }
    corpus.all_windows += static_cast<int>(files[i].windows.size());
  }
  corpus.window_part.assign(static_cast<std::size_t>(corpus.all_windows), -profile.fn_weight);
  for (const ScoredRow& r : corpus.rows)
    (r.window >= 0 ? corpus.window_rows : corpus.outside_rows)++;
  return corpus;
}

void normalize(NabScore& s, const Corpus& corpus, const NabProfile& profile) {
  // runner.normalize: the baseline is the null detector's score, which detects nothing at its
  // best threshold; "perfect" is tp_weight per window of the labels file.
  s.null_raw = -profile.fn_weight * corpus.scored_windows;
  s.perfect_raw = profile.tp_weight * corpus.all_windows;
  const double span = s.perfect_raw - s.null_raw;
  s.normalized = span != 0 ? 100 * (s.raw - s.null_raw) / span : 0;
}

}  // namespace

double nab_scaled_sigmoid(double y) {
  if (y >= 3.0) return -1.0;
  return 2.0 / (1.0 + std::exp(5.0 * y)) - 1.0;
}

const std::vector<NabProfile>& nab_profiles() {
  static const std::vector<NabProfile> profiles = {
      {"standard", 1.0, 0.11, 1.0},
      {"reward_low_FP_rate", 1.0, 0.22, 1.0},
      {"reward_low_FN_rate", 1.0, 0.11, 2.0},
  };
  return profiles;
}

std::size_t nab_probation_rows(std::size_t rows) {
  // In doubles, as NAB computes it: floor(0.15 * rows) rounds the product first.
  const double fraction = std::floor(0.15 * static_cast<double>(rows));
  return static_cast<std::size_t>(std::min(fraction, 0.15 * 5000));
}

NabScore score_nab(const std::vector<NabFile>& files,
                   const std::vector<std::vector<double>>& scores, const NabProfile& profile) {
  Corpus corpus = collect(files, scores, profile);
  std::vector<ScoredRow>& rows = corpus.rows;
  // NaN rows stay undetected at every threshold; the rest are visited from the highest score
  // down. Stable, as Python's sorted(): equal scores keep corpus order, so that the fp sum adds up
  // in NAB's order.
  auto end = std::stable_partition(rows.begin(), rows.end(),
                                   [](const ScoredRow& r) { return !std::isnan(r.score); });
  std::stable_sort(rows.begin(), end,
                   [](const ScoredRow& a, const ScoredRow& b) { return a.score > b.score; });

  NabScore state;
  state.threshold = kAboveEveryScore;
  if (rows.begin() != end && rows.front().score >= kAboveEveryScore) {
    state.threshold = std::nextafter(rows.front().score, std::numeric_limits<double>::infinity());
  }
  state.true_negatives = corpus.outside_rows;
  state.false_negatives = corpus.window_rows;
  state.windows_missed = corpus.scored_windows;
  double fp_sum = 0;
  double window_sum = -profile.fn_weight * corpus.scored_windows;
  state.raw = fp_sum + window_sum;
  NabScore best = state;
  std::vector<bool> detected(corpus.window_part.size(), false);

  for (auto it = rows.begin(); it != end;) {
    const double threshold = it->score;
    for (; it != end && it->score == threshold; ++it) {
      if (it->window < 0) {
        ++state.false_positives;
        --state.true_negatives;
        fp_sum += it->reward;
        continue;
      }
      ++state.true_positives;
      --state.false_negatives;
      const auto w = static_cast<std::size_t>(it->window);
      if (!detected[w]) {
        detected[w] = true;
        ++state.windows_detected;
        --state.windows_missed;
      }
      // The window's earliest detection earns the most; later ones add nothing.
      double& part = corpus.window_part[w];
      if (it->reward > part) {
        window_sum += it->reward - part;
        part = it->reward;
      }
    }
    state.threshold = threshold;
    state.raw = fp_sum + window_sum;
    // Strictly better only: NAB keeps the first best in order of falling threshold.
    if (state.raw > best.raw) best = state;
  }
  normalize(best, corpus, profile);
  return best;
}

NabScore score_nab_at(const std::vector<NabFile>& files,
                      const std::vector<std::vector<double>>& scores, const NabProfile& profile,
                      double threshold, std::vector<double>* per_file) {
  Corpus corpus = collect(files, scores, profile);
  NabScore s;
  s.threshold = threshold;
  std::vector<double> file_raw(files.size(), 0.0);
  std::vector<bool> detected(corpus.window_part.size(), false);
  std::size_t file = 0;
  for (std::size_t k = 0; k < corpus.rows.size(); ++k) {
    while (k >= corpus.file_end[file]) ++file;
    const ScoredRow& r = corpus.rows[k];
    const bool detection = r.score >= threshold;  // false for NaN
    if (r.window < 0) {
      s.false_positives += detection ? 1 : 0;
      s.true_negatives += detection ? 0 : 1;
      if (detection) file_raw[file] += r.reward;
      continue;
    }
    s.true_positives += detection ? 1 : 0;
    s.false_negatives += detection ? 0 : 1;
    if (!detection) continue;
    const auto w = static_cast<std::size_t>(r.window);
    corpus.window_part[w] = std::max(corpus.window_part[w], r.reward);
    detected[w] = true;
  }
  std::size_t w = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    for (std::size_t k = 0; k < files[i].windows.size(); ++k, ++w) {
      if (!corpus.window_scored[w]) continue;
      file_raw[i] += corpus.window_part[w];
      s.windows_detected += detected[w] ? 1 : 0;
      s.windows_missed += detected[w] ? 0 : 1;
    }
    s.raw += file_raw[i];
  }
  if (per_file != nullptr) *per_file = std::move(file_raw);
  normalize(s, corpus, profile);
  return s;
}

}  // namespace prescale::healing
