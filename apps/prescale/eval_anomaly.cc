#include "eval_anomaly.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command_util.h"
#include "healing/detector.h"
#include "healing/nab.h"

namespace prescale {

struct EvalAnomalyFlags {
  std::string nab_dir;
  std::vector<std::string> detectors;
  std::string json_path;
};

namespace {

using Json = nlohmann::ordered_json;
constexpr std::string_view kPeer = "windowed_gaussian";

int run_anomaly_eval(const EvalAnomalyFlags& f) {
  const char* who = "prescale eval anomaly";
  if (!f.json_path.empty() && !output_path_usable(who, "--json", f.json_path)) return 2;
  std::vector<std::string> names = f.detectors;
  if (names.empty()) {
    for (std::string_view n : healing::detector_names()) names.emplace_back(n);
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    if (std::find(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(i), name) !=
        names.begin() + static_cast<std::ptrdiff_t>(i)) {
      std::cerr << who << ": --detectors: \"" << name << "\" is listed twice\n";
      return 2;
    }
    if (healing::make_detector(name) == nullptr) {
      std::string known;
      for (std::string_view n : healing::detector_names()) {
        known += (known.empty() ? "" : ", ") + std::string(n);
      }
      std::cerr << who << ": --detectors: no detector named \"" << name << "\" (known: " << known
                << ")\n";
      return 2;
    }
  }
  auto corpus = healing::load_nab_corpus(f.nab_dir);
  if (!corpus) {
    std::cerr << who << ": --nab: " << corpus.error().message << "\n";
    return 2;
  }
  std::size_t rows = 0, windows = 0;
  for (const healing::NabFile& file : *corpus) {
    rows += file.values.size();
    windows += file.windows.size();
  }
  std::printf("NAB %s: %zu series, %zu rows, %zu anomaly windows\n\n", f.nab_dir.c_str(),
              corpus->size(), rows, windows);
  std::printf("%-18s %-19s %7s %10s %8s %7s %8s %8s\n", "detector", "profile", "score", "threshold",
              "windows", "missed", "FP rows", "seconds");

  std::map<std::string, std::map<std::string, double>> score_of;  // detector -> profile -> score
  Json all = Json::array();
  for (const std::string& name : names) {
    const auto begin = std::chrono::steady_clock::now();
    std::vector<std::vector<double>> scores;
    scores.reserve(corpus->size());
    for (const healing::NabFile& file : *corpus) {
      auto detector = healing::make_detector(name);  // a fresh one per series, as NAB runs them
      std::vector<double>& out = scores.emplace_back();
      out.reserve(file.values.size());
      for (double v : file.values) out.push_back(detector->observe(v));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    for (const healing::NabProfile& profile : healing::nab_profiles()) {
      const healing::NabScore s = healing::score_nab(*corpus, scores, profile);
      score_of[name][profile.name] = s.normalized;
      std::printf("%-18s %-19s %7.2f %10.6g %8d %7d %8d %8.2f\n", name.c_str(),
                  profile.name.c_str(), s.normalized, s.threshold, s.windows_detected,
                  s.windows_missed, s.false_positives, seconds);
      Json j;
      j["detector"] = name;
      j["profile"] = profile.name;
      j["score"] = s.normalized;
      j["raw_score"] = s.raw;
      j["threshold"] = s.threshold;
      j["windows_detected"] = s.windows_detected;
      j["windows_missed"] = s.windows_missed;
      j["true_positives"] = s.true_positives;
      j["false_positives"] = s.false_positives;
      j["false_negatives"] = s.false_negatives;
      j["true_negatives"] = s.true_negatives;
      j["detect_seconds"] = seconds;
      j["series"] = corpus->size();
      j["rows"] = rows;
      j["windows"] = windows;
      all.push_back(std::move(j));
    }
  }
  if (score_of.count(std::string(kPeer)) > 0) {
    std::printf("\n");
    for (const auto& [name, by_profile] : score_of) {
      if (name == kPeer) continue;
      std::printf("%s vs %s:", name.c_str(), std::string(kPeer).c_str());
      for (const auto& [profile, score] : by_profile) {
        // A ratio says something only against a peer that scores above nothing.
        const double peer = score_of[std::string(kPeer)][profile];
        if (peer > 0) {
          std::printf(" %s %.3f", profile.c_str(), score / peer);
        } else {
          std::printf(" %s - (%s scores %.2f)", profile.c_str(), std::string(kPeer).c_str(), peer);
        }
      }
      std::printf("\n");
    }
  }
  if (!f.json_path.empty() &&
      !write_command_output(who, "--json", f.json_path, all.dump(2) + "\n")) {
    return 1;
  }
  return 0;
}

}  // namespace

EvalAnomalyCommand::EvalAnomalyCommand(CLI::App& eval)
    : flags_(std::make_unique<EvalAnomalyFlags>()) {
  EvalAnomalyFlags& f = *flags_;
  command_ = eval.add_subcommand(
      "anomaly",
      "Score the anomaly detectors on the Numenta Anomaly Benchmark (NAB's scoring, every "
      "profile), against NAB's windowedGaussian");
  CLI::App& c = *command_;
  c.add_option("--nab", f.nab_dir,
               "NAB's directory: data/, labels/combined_windows.json (e.g. ../shared/data/nab)")
      ->required();
  c.add_option("--detectors", f.detectors,
               "Comma-separated detectors (default: all: deviation, windowed_gaussian)")
      ->delimiter(',');
  c.add_option("--json", f.json_path,
               "Write the scores as a JSON array, one object per detector and profile "
               "(docs/healing.md)");
}

EvalAnomalyCommand::~EvalAnomalyCommand() = default;

bool EvalAnomalyCommand::parsed() const { return command_->parsed(); }

int EvalAnomalyCommand::run() const { return run_anomaly_eval(*flags_); }

}  // namespace prescale
