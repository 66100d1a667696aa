#include "healing/nab.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/text_file.h"
#include "forecast/csv.h"

namespace prescale::healing {
namespace {

using ::testing::HasSubstr;

const NabProfile& profile(std::string_view name) {
  for (const NabProfile& p : nab_profiles()) {
    if (p.name == name) return p;
  }
  throw std::out_of_range(std::string(name));
}

// A 100-row file, one row a minute, with the given windows and no probation unless asked.
NabFile synthetic(std::vector<NabWindow> windows, std::size_t probation = 0) {
  NabFile f;
  f.name = "synthetic.csv";
  for (int i = 0; i < 100; ++i) {
    f.times.push_back(1'400'000'000 + 60 * i);
    f.values.push_back(0);
  }
  f.windows = std::move(windows);
  f.probation = probation;
  return f;
}

// Scores of 0 except 1 at `detections`.
std::vector<double> detections_at(std::vector<std::size_t> rows) {
  std::vector<double> s(100, 0.0);
  for (std::size_t r : rows) s[r] = 1.0;
  return s;
}

// Raw score of one file at threshold 0.5, by the fixed-threshold scorer and by the sweep (which
// must agree here: detecting the 1-rows or nothing are its only choices, and the test cases are
// checked at both).
double raw_at_half(const NabFile& f, const std::vector<double>& s, const NabProfile& p) {
  return score_nab_at({f}, {s}, p, 0.5).raw;
}

// One window of 10 rows, [40, 49]: σ(y) = 2 / (1 + e^{5y}) − 1 = −tanh(2.5 y).
const NabWindow kWindow{40, 49};

TEST(NabScaledSigmoid, MatchesNabsEndPoints) {
  EXPECT_NEAR(nab_scaled_sigmoid(-1.0), 0.98661429815143, 1e-12);  // tanh(2.5)
  EXPECT_NEAR(nab_scaled_sigmoid(0.0), 0.0, 1e-15);
  EXPECT_NEAR(nab_scaled_sigmoid(1.0), -0.98661429815143, 1e-12);
  EXPECT_EQ(nab_scaled_sigmoid(3.0), -1.0);  // NAB's "well behind the window"
  EXPECT_EQ(nab_scaled_sigmoid(7.5), -1.0);
}

TEST(NabProbation, FifteenPercentUpTo750Rows) {
  EXPECT_EQ(nab_probation_rows(100), 15u);
  EXPECT_EQ(nab_probation_rows(4032), 604u);  // floor(604.8)
  EXPECT_EQ(nab_probation_rows(5000), 750u);
  EXPECT_EQ(nab_probation_rows(22695), 750u);
}

TEST(NabRules, DetectionAtWindowStartEarnsTheTpWeight) {
  const auto& p = profile("standard");
  // y = −(49 − 40 + 1) / 10 = −1, and the reward is σ(y) × tp / σ(−1).
  EXPECT_DOUBLE_EQ(raw_at_half(synthetic({kWindow}), detections_at({40}), p), 1.0);
  const NabScore s = score_nab_at({synthetic({kWindow})}, {detections_at({40})}, p, 0.5);
  EXPECT_EQ(s.true_positives, 1);
  EXPECT_EQ(s.false_negatives, 9);  // rows of the window not detected, as NAB counts
  EXPECT_EQ(s.false_positives, 0);
  EXPECT_EQ(s.true_negatives, 90);
  EXPECT_EQ(s.windows_detected, 1);
}

TEST(NabRules, LaterInTheWindowEarnsLess) {
  const auto& p = profile("standard");
  // Last row: y = −1/10, σ = tanh(0.25) = 0.244919; / tanh(2.5) = 0.248242.
  EXPECT_NEAR(raw_at_half(synthetic({kWindow}), detections_at({49}), p), 0.24824154977542992,
              1e-12);
  // Middle (row 45): y = −5/10, tanh(1.25) / tanh(2.5) = 0.859793.
  EXPECT_NEAR(raw_at_half(synthetic({kWindow}), detections_at({45}), p), 0.8597925669097837, 1e-12);
}

TEST(NabRules, OnlyTheFirstDetectionInAWindowCounts) {
  const auto& p = profile("standard");
  EXPECT_DOUBLE_EQ(raw_at_half(synthetic({kWindow}), detections_at({40, 45, 49}), p), 1.0);
  // And the sweep agrees whichever of them scores highest.
  std::vector<double> s(100, 0.0);
  s[45] = 0.9;
  s[40] = 0.6;
  const NabScore best = score_nab({synthetic({kWindow})}, {s}, p);
  EXPECT_DOUBLE_EQ(best.raw, 1.0);
  EXPECT_EQ(best.threshold, 0.6);
  EXPECT_EQ(best.true_positives, 2);
}

TEST(NabRules, DetectionJustAfterAWindowIsAScaledFalsePositive) {
  const auto& p = profile("standard");
  // Row 50 misses the window (−1) and is a FP at y = (50 − 49) / (10 − 1):
  // 0.11 × σ(1/9) = −0.11 × tanh(0.27778) = −0.0297932.
  EXPECT_NEAR(raw_at_half(synthetic({kWindow}), detections_at({50}), p), -1.0297931830368394,
              1e-12);
  // Row 70: y = 21/9, 0.11 × σ = −0.1099981; row 76, y = 3: −0.11 exactly.
  EXPECT_NEAR(raw_at_half(synthetic({kWindow}), detections_at({70}), p), -1.10999811352957378,
              1e-12);
  EXPECT_DOUBLE_EQ(raw_at_half(synthetic({kWindow}), detections_at({76}), p), -1.11);
}

TEST(NabRules, FalsePositiveBeforeAnyWindowCostsTheFpWeight) {
  EXPECT_DOUBLE_EQ(raw_at_half(synthetic({kWindow}), detections_at({10}), profile("standard")),
                   -1.11);
  EXPECT_DOUBLE_EQ(
      raw_at_half(synthetic({kWindow}), detections_at({10}), profile("reward_low_FP_rate")), -1.22);
  // No windows at all: each detection is −fp_weight.
  EXPECT_DOUBLE_EQ(raw_at_half(synthetic({}), detections_at({10, 60}), profile("standard")), -0.22);
}

TEST(NabRules, EachMissedWindowCostsTheFnWeight) {
  const NabFile f = synthetic({{20, 29}, {60, 69}});
  EXPECT_DOUBLE_EQ(raw_at_half(f, detections_at({}), profile("standard")), -2.0);
  EXPECT_DOUBLE_EQ(raw_at_half(f, detections_at({}), profile("reward_low_FN_rate")), -4.0);
  // One of two detected: FPs after the second window are scored against the second.
  EXPECT_DOUBLE_EQ(raw_at_half(f, detections_at({60}), profile("reward_low_FN_rate")), -1.0);
  const NabScore s = score_nab_at({f}, {detections_at({60})}, profile("standard"), 0.5);
  EXPECT_EQ(s.windows_detected, 1);
  EXPECT_EQ(s.windows_missed, 1);
}

TEST(NabRules, ProbationRowsDoNotCount) {
  const auto& p = profile("standard");
  // A detection at row 5 of a 15-row probation is neither a FP nor anything else.
  const NabFile f = synthetic({kWindow}, 15);
  EXPECT_DOUBLE_EQ(raw_at_half(f, detections_at({5}), p), -1.0);
  const NabScore s = score_nab_at({f}, {detections_at({5})}, p, 0.5);
  EXPECT_EQ(s.false_positives, 0);
  EXPECT_EQ(s.true_negatives, 75);  // 100 − 15 probation − 10 window rows
  // A window wholly inside probation is not scored (NAB's sweeper drops it), though it still
  // counts towards "perfect".
  const NabFile early = synthetic({{2, 5}, kWindow}, 15);
  const NabScore e = score_nab_at({early}, {detections_at({3, 40})}, p, 0.5);
  EXPECT_DOUBLE_EQ(e.raw, 1.0);
  EXPECT_DOUBLE_EQ(e.null_raw, -1.0);
  EXPECT_DOUBLE_EQ(e.perfect_raw, 2.0);
}

TEST(NabSweep, FindsTheBestThresholdAndNormalises) {
  const auto& p = profile("standard");
  std::vector<double> s(100, 0.0);
  s[10] = 0.95;  // FP before the window: −0.11
  s[40] = 0.9;   // window start: +1 instead of −1
  s[60] = 0.3;   // FP at y = 11/9: −0.11 × tanh(3.0556) = −0.1095131
  const NabScore best = score_nab({synthetic({kWindow})}, {s}, p);
  EXPECT_EQ(best.threshold, 0.9);
  EXPECT_DOUBLE_EQ(best.raw, 0.89);
  EXPECT_DOUBLE_EQ(best.null_raw, -1.0);
  EXPECT_DOUBLE_EQ(best.perfect_raw, 1.0);
  EXPECT_DOUBLE_EQ(best.normalized, 94.5);  // 100 × (0.89 + 1) / (1 + 1)
  EXPECT_EQ(best.true_positives, 1);
  EXPECT_EQ(best.false_positives, 1);
  EXPECT_NEAR(score_nab_at({synthetic({kWindow})}, {s}, p, 0.3).raw, 0.7804868986963023, 1e-12);
}

TEST(NabSweep, DetectingNothingCanWin) {
  std::vector<double> s(100, 0.0);
  s[10] = 0.7;  // only a FP to gain
  const NabScore best = score_nab({synthetic({kWindow})}, {s}, profile("standard"));
  EXPECT_EQ(best.threshold, 1.1);  // NAB's "above every score"
  EXPECT_DOUBLE_EQ(best.raw, -1.0);
  EXPECT_DOUBLE_EQ(best.normalized, 0.0);
}

TEST(NabSweep, TiesGoToTheHighestThreshold) {
  std::vector<double> s(100, 0.0);
  s[40] = 0.8;
  s[41] = 0.6;  // same window, adds nothing: 0.8 and 0.6 score the same
  const NabScore best = score_nab({synthetic({kWindow})}, {s}, profile("standard"));
  EXPECT_EQ(best.threshold, 0.8);
}

TEST(NabSweep, ThresholdIsCorpusWide) {
  // File a wants a low threshold (its window scores 0.4), file b a high one (a FP at 0.5):
  // one threshold for both, 0.4, earns 1 − 0.11 − 1 + 1 = 0.89 over −2 at 1.1.
  std::vector<double> a(100, 0.0), b(100, 0.0);
  a[40] = 0.4;
  b[10] = 0.5;
  b[40] = 0.9;
  const auto& p = profile("standard");
  const NabScore best = score_nab({synthetic({kWindow}), synthetic({kWindow})}, {a, b}, p);
  EXPECT_EQ(best.threshold, 0.4);
  EXPECT_DOUBLE_EQ(best.raw, 1.89);
}

TEST(NabSweep, RejectsScoresThatDoNotMatchTheFiles) {
  EXPECT_THROW(
      score_nab({synthetic({kWindow})}, {std::vector<double>(99, 0.0)}, profile("standard")),
      std::invalid_argument);
  EXPECT_THROW(score_nab({synthetic({kWindow})}, {}, profile("standard")), std::invalid_argument);
}

TEST(NabCorpus, ErrorsNameTheFile) {
  const auto dir = std::filesystem::temp_directory_path() / "prescale_nab_corpus_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "labels");
  std::filesystem::create_directories(dir / "data/cat");
  auto write = [&](const std::string& path, const std::string& text) {
    std::FILE* f = std::fopen((dir / path).c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
  };
  write("data/cat/a.csv",
        "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,2\n2014-01-01 00:10:00,x\n");
  write("labels/combined_windows.json", R"({"cat/a.csv": []})");
  auto bad_value = load_nab_corpus(dir.string());
  ASSERT_FALSE(bad_value.has_value());
  EXPECT_THAT(bad_value.error().message, HasSubstr("a.csv:4"));

  write("data/cat/a.csv",
        "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,2\n2014-01-01 00:10:00,3\n");
  write("labels/combined_windows.json",
        R"({"cat/a.csv": [["2014-01-01 00:05:00.000000", "2014-01-01 00:07:00.000000"]]})");
  auto bad_window = load_nab_corpus(dir.string());
  ASSERT_FALSE(bad_window.has_value());
  EXPECT_THAT(bad_window.error().message, HasSubstr("cat/a.csv window 0 end"));

  // A limit must name one row: NAB's files repeat some times (daylight saving).
  write("data/cat/b.csv",
        "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:00:00,2\n2014-01-01 00:10:00,3\n");
  write("labels/combined_windows.json",
        R"({"cat/b.csv": [["2014-01-01 00:00:00.000000", "2014-01-01 00:10:00.000000"]]})");
  auto repeated = load_nab_corpus(dir.string());
  ASSERT_FALSE(repeated.has_value());
  EXPECT_THAT(repeated.error().message, HasSubstr("cat/b.csv window 0 start"));
  EXPECT_THAT(repeated.error().message, HasSubstr("more than one row"));

  write("labels/combined_windows.json",
        R"({"cat/a.csv": [["2014-01-01 00:05:00.000000", "2014-01-01 00:10:00.000000"]],
            "cat/missing.csv": []})");
  auto missing = load_nab_corpus(dir.string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_THAT(missing.error().message, HasSubstr("missing.csv"));

  write("labels/combined_windows.json",
        R"({"cat/a.csv": [["2014-01-01 00:05:00.000000", "2014-01-01 00:10:00.000000"]]})");
  auto ok = load_nab_corpus(dir.string());
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0].times[1] - (*ok)[0].times[0], 300);
  ASSERT_EQ((*ok)[0].windows.size(), 1u);
  EXPECT_EQ((*ok)[0].windows[0].first, 1u);
  EXPECT_EQ((*ok)[0].windows[0].last, 2u);
  std::filesystem::remove_all(dir);
}

// ---- Reproducing NAB's published windowedGaussian scores on the real corpus ----

std::string nab_dir() {
  const char* dir = std::getenv("PRESCALE_SOURCE_DIR");
  return std::string(dir != nullptr ? dir : PRESCALE_TEST_SOURCE_DIR) + "/../shared/data/nab";
}

// A column of a CSV file, as numbers.
std::vector<double> read_column(const std::string& path, std::string_view name) {
  auto text = read_text_file(path);
  if (!text) throw std::runtime_error(text.error().message);
  forecast::CsvReader csv(*text, path);
  std::vector<std::string_view> header, fields;
  csv.next(header);
  const auto column = forecast::find_column(header, name);
  if (!column) throw std::runtime_error(path + ": no column " + std::string(name));
  std::vector<double> out;
  while (csv.next(fields)) {
    auto v = forecast::parse_number(fields[*column]);
    if (!v) throw std::runtime_error(csv.error("not a number").message);
    out.push_back(*v);
  }
  return out;
}

// results/windowedGaussian/<category>/windowedGaussian_<file>.csv
std::string result_path(const std::string& dir, const std::string& name) {
  const auto slash = name.find('/');
  return dir + "/results/windowedGaussian/" + name.substr(0, slash + 1) + "windowedGaussian_" +
         name.substr(slash + 1);
}

// Per-file and total raw scores of <detector>_<profile>_scores.csv ("Totals" is the last row).
std::map<std::string, double> published_file_scores(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) throw std::runtime_error(text.error().message);
  forecast::CsvReader csv(*text, path);
  std::vector<std::string_view> header, fields;
  csv.next(header);
  const auto file = forecast::find_column(header, "File");
  const auto score = forecast::find_column(header, "Score");
  std::map<std::string, double> out;
  while (csv.next(fields)) {
    const std::string key = fields[0] == "Totals" ? "Totals" : std::string(fields[*file]);
    out[key] = *forecast::parse_number(fields[*score]);
  }
  return out;
}

TEST(NabReproduction, WindowedGaussianMatchesPublishedScores) {
  const std::string dir = nab_dir();
  if (!std::filesystem::exists(dir + "/labels/combined_windows.json")) {
    GTEST_SKIP() << "skipped: ../shared/data/nab missing (NAB corpus, labels and results)";
  }
  auto corpus = load_nab_corpus(dir);
  ASSERT_TRUE(corpus.has_value()) << corpus.error().message;
  ASSERT_EQ(corpus->size(), 58u);
  std::size_t rows = 0, windows = 0;
  for (const NabFile& f : *corpus) {
    rows += f.times.size();
    windows += f.windows.size();
  }
  EXPECT_EQ(rows, 365558u);
  EXPECT_EQ(windows, 116u);

  std::vector<std::vector<double>> scores;
  for (const NabFile& f : *corpus) {
    scores.push_back(read_column(result_path(dir, f.name), "anomaly_score"));
    ASSERT_EQ(scores.back().size(), f.times.size()) << f.name;
  }

  auto final_text = read_text_file(dir + "/final_results.json");
  ASSERT_TRUE(final_text.has_value());
  const auto published = nlohmann::json::parse(*final_text)["windowedGaussian"];
  auto profiles_text = read_text_file(dir + "/config/profiles.json");
  ASSERT_TRUE(profiles_text.has_value());
  const auto profiles_json = nlohmann::json::parse(*profiles_text);

  for (const NabProfile& p : nab_profiles()) {
    SCOPED_TRACE(p.name);
    const auto& cost = profiles_json.at(p.name).at("CostMatrix");
    EXPECT_EQ(p.tp_weight, cost.at("tpWeight").get<double>());
    EXPECT_EQ(p.fp_weight, cost.at("fpWeight").get<double>());
    EXPECT_EQ(p.fn_weight, cost.at("fnWeight").get<double>());

    const auto start = std::chrono::steady_clock::now();
    const NabScore s = score_nab(*corpus, scores, p);
    const auto sweep = std::chrono::steady_clock::now() - start;
    const auto summary = published_file_scores(dir + "/results/windowedGaussian/windowedGaussian_" +
                                               p.name + "_scores.csv");
    std::printf(
        "windowedGaussian %-18s threshold %g raw %.6f (published %.6f) normalized %.9f "
        "(published %.9f) TP %d FP %d FN %d, sweep %.1f ms\n",
        p.name.c_str(), s.threshold, s.raw, summary.at("Totals"), s.normalized,
        published.at(p.name).get<double>(), s.true_positives, s.false_positives, s.false_negatives,
        std::chrono::duration<double, std::milli>(sweep).count());

    EXPECT_NEAR(s.normalized, published.at(p.name).get<double>(), 0.05);
    EXPECT_NEAR(s.raw, summary.at("Totals"), 0.05);
    EXPECT_EQ(s.threshold, 1.0);
    // NAB's row counts of the Totals row (the same for every profile at threshold 1.0).
    EXPECT_EQ(s.true_positives, 521);
    EXPECT_EQ(s.false_positives, 409);
    EXPECT_EQ(s.false_negatives, 32974);
    EXPECT_EQ(s.true_negatives, 298938);

    // The fixed-threshold scorer agrees with the sweep, and file by file with NAB.
    std::vector<double> per_file;
    const NabScore at = score_nab_at(*corpus, scores, p, s.threshold, &per_file);
    EXPECT_NEAR(at.raw, s.raw, 1e-9);
    for (std::size_t i = 0; i < corpus->size(); ++i) {
      EXPECT_NEAR(per_file[i], summary.at((*corpus)[i].name), 1e-6) << (*corpus)[i].name;
    }
  }
}

}  // namespace
}  // namespace prescale::healing
