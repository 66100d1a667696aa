#include "train_forecast.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "cli_checks.h"
#include "command_util.h"
#include "core/clock.h"
#include "core/sha256.h"
#include "core/text_file.h"
#include "forecast/forecaster.h"
#include "forecast/gbt_model.h"
#include "forecast/trace.h"
#include "services/forecast/model_file.h"

namespace prescale {

struct TrainForecastFlags {
  std::vector<std::string> traces;
  std::string model_dir;
  double holdout = 0.2;
  bool no_validate = false;
  forecast::GbtOptions gbt;
};

namespace {

namespace fs = std::filesystem;
using services::forecast_service::kGlobalModelName;

// The policy's history step: a minute. Coarser traces keep their own step.
constexpr double kStepSeconds = 60;
// The baseline the booster is held against on the held-out tail.
constexpr const char* kBaseline = "seasonal_naive_day";

struct TrainingTrace {
  std::string name;
  std::string path;
  std::string sha256;
  forecast::Series series;  // req/s per step
};

Result<TrainingTrace> read_training_trace(const std::string& path) {
  auto bytes = read_text_file(path);
  if (!bytes) return std::unexpected(bytes.error());
  auto trace = forecast::parse_trace(*bytes, path);
  if (!trace) return std::unexpected(trace.error());
  if (trace->step_seconds < kStepSeconds - 1e-9) *trace = forecast::resample(*trace, kStepSeconds);
  TrainingTrace t;
  t.name = trace->name;
  t.path = path;
  t.sha256 = sha256_hex(*bytes);
  t.series.start_seconds = trace->start_unix_seconds;
  t.series.step_seconds = trace->step_seconds;
  for (size_t i = 0; i < trace->counts.size(); ++i) t.series.values.push_back(trace->rate_rps(i));
  return t;
}

forecast::Series head(const forecast::Series& s, size_t steps) {
  forecast::Series h{s.start_seconds, s.step_seconds, {}};
  h.values.assign(s.values.begin(), s.values.begin() + static_cast<std::ptrdiff_t>(steps));
  return h;
}

// Errors averaged over horizons 1..n.
struct TailScore {
  double mae = 0, pinball_p50 = 0, pinball_p90 = 0, coverage_p90 = 0;
};

TailScore average(const std::vector<forecast::ForecastScore>& scores) {
  TailScore t;
  for (const auto& s : scores) {
    t.mae += s.mae;
    t.pinball_p50 += s.pinball_p50;
    t.pinball_p90 += s.pinball_p90;
    t.coverage_p90 += s.coverage_p90;
  }
  const double n = std::max<size_t>(scores.size(), 1);
  t.mae /= n;
  t.pinball_p50 /= n;
  t.pinball_p90 /= n;
  t.coverage_p90 /= n;
  return t;
}

nlohmann::ordered_json to_json(const TailScore& t) {
  return {{"mae", t.mae},
          {"pinball_p50", t.pinball_p50},
          {"pinball_p90", t.pinball_p90},
          {"coverage_p90", t.coverage_p90}};
}

double seconds_since(Clock::TimePoint start) { return to_seconds(Clock::real().now() - start); }

int run_forecast_train(const TrainForecastFlags& f) {
  const char* who = "prescale train forecast";
  // Before the training, which may take minutes, not when its booster is to be saved.
  if (!model_dir_usable(who, "--model-dir", f.model_dir)) return 2;
  const Clock::TimePoint start = Clock::real().now();
  // The same file twice (by any path) would be trained on twice, its rows weighing double.
  for (size_t i = 0; i < f.traces.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (same_file(f.traces[i], f.traces[j])) {
        std::cerr << who << ": --trace " << f.traces[i] << ": the same file as --trace "
                  << f.traces[j] << "\n";
        return 2;
      }
    }
  }
  std::vector<TrainingTrace> traces;
  for (const std::string& path : f.traces) {
    auto t = read_training_trace(path);
    if (!t) {
      std::cerr << who << ": --trace: " << t.error().message << "\n";
      return 2;
    }
    traces.push_back(std::move(*t));
  }
  const int horizon = f.gbt.max_horizon;

  // Validation: a booster trained on each trace's head, scored on its held-out tail against the
  // seasonal naive forecast, both with the Forecaster's calibrated quantiles.
  nlohmann::ordered_json metrics = nlohmann::ordered_json::object();
  if (!f.no_validate) {
    std::vector<forecast::Series> heads;
    std::vector<size_t> tail_begin;
    for (const TrainingTrace& t : traces) {
      const size_t n = t.series.values.size();
      tail_begin.push_back(
          static_cast<size_t>(std::floor(static_cast<double>(n) * (1 - f.holdout))));
      heads.push_back(head(t.series, tail_begin.back()));
    }
    auto booster = forecast::train_gbt(heads, f.gbt);
    if (!booster) {
      std::cerr << who << ": validation: " << booster.error().message << "\n";
      return 2;
    }
    forecast::ForecasterOptions options;
    options.max_horizon = horizon;
    options.origin_every = 5;
    options.custom_models.push_back(
        {std::string(kGlobalModelName), forecast::make_gbt_model(*booster)});
    std::vector<int> horizons(static_cast<size_t>(horizon));
    std::iota(horizons.begin(), horizons.end(), 1);
    metrics["holdout_share"] = f.holdout;
    metrics["horizons"] = horizon;
    metrics["baseline"] = kBaseline;
    metrics["traces"] = nlohmann::ordered_json::array();
    std::vector<double> ratios;
    std::printf("validation (each trace's last %.0f %% held out; horizons 1..%d, averaged):\n",
                100 * f.holdout, horizon);
    std::printf("  %-40s %12s %12s %12s %12s\n", "trace", "P50 pinball", "P90 pinball",
                "P50 naive-d", "P90 naive-d");
    for (size_t i = 0; i < traces.size(); ++i) {
      const TrainingTrace& t = traces[i];
      if (t.series.values.size() - tail_begin[i] < static_cast<size_t>(horizon) + 1) {
        std::printf("  %-40s not scored: a held-out tail shorter than %d steps\n", t.name.c_str(),
                    horizon + 1);
        continue;
      }
      auto ours = forecast::evaluate_forecasts(t.series, tail_begin[i], kGlobalModelName, horizons,
                                               options, options.origin_every);
      auto base = forecast::evaluate_forecasts(t.series, tail_begin[i], kBaseline, horizons,
                                               options, options.origin_every);
      if (!ours || !base) {
        std::printf("  %-40s not scored: %s\n", t.name.c_str(),
                    (!ours ? ours.error() : base.error()).message.c_str());
        continue;
      }
      const TailScore a = average(*ours), b = average(*base);
      std::printf("  %-40s %12.4f %12.4f %12.4f %12.4f\n", t.name.c_str(), a.pinball_p50,
                  a.pinball_p90, b.pinball_p50, b.pinball_p90);
      if (b.pinball_p90 > 0) ratios.push_back(a.pinball_p90 / b.pinball_p90);
      metrics["traces"].push_back({{"trace", t.name},
                                   {"tail_steps", t.series.values.size() - tail_begin[i]},
                                   {std::string(kGlobalModelName), to_json(a)},
                                   {kBaseline, to_json(b)}});
    }
    if (!ratios.empty()) {
      const double mean =
          std::accumulate(ratios.begin(), ratios.end(), 0.0) / static_cast<double>(ratios.size());
      metrics["pinball_p90_vs_baseline"] = mean;
      std::printf("  P90 pinball of the booster / the baseline's, mean over traces: %.3f\n", mean);
    }
  }

  std::vector<forecast::Series> all;
  for (const TrainingTrace& t : traces) all.push_back(t.series);
  auto booster = forecast::train_gbt(all, f.gbt);
  if (!booster) {
    std::cerr << who << ": " << booster.error().message << "\n";
    return booster.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }

  services::forecast_service::SaveOptions save;
  std::string hashes;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const TrainingTrace& t : traces) {
    list.push_back({{"file", fs::path(t.path).filename().string()},
                    {"sha256", t.sha256},
                    {"steps", t.series.values.size()},
                    {"step_seconds", t.series.step_seconds}});
    hashes += t.sha256;
  }
  // One trace: its own SHA-256 (what `sha256sum FILE` prints); several: that of their hashes.
  const std::string data_sha256 = traces.size() == 1 ? traces.front().sha256 : sha256_hex(hashes);
  save.training = nlohmann::json::parse(nlohmann::ordered_json{
      {"data_sha256", data_sha256},
      {"traces", list},
      {"rows", (*booster)->training_rows()}}.dump());
  save.metrics = nlohmann::json::parse(metrics.dump());
  auto saved = services::forecast_service::save_model(**booster, f.model_dir, save);
  if (!saved) {
    std::cerr << who << ": --model-dir: " << saved.error().message << "\n";
    return saved.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  size_t steps = 0;
  for (const TrainingTrace& t : traces) steps += t.series.values.size();
  std::printf("trained %s on %zu traces (%zu steps, %zu rows) in %.1f s\n",
              std::string(kGlobalModelName).c_str(), traces.size(), steps,
              (*booster)->training_rows(), seconds_since(start));
  std::printf("wrote %s (version %d) and %s\n", saved->booster_path.c_str(), saved->version,
              saved->manifest_path.c_str());
  return 0;
}

}  // namespace

TrainForecastCommand::TrainForecastCommand(CLI::App& train)
    : flags_(std::make_unique<TrainForecastFlags>()) {
  TrainForecastFlags& f = *flags_;
  forecast::GbtOptions& o = f.gbt;
  command_ = train.add_subcommand(
      "forecast",
      "Train the forecast service's global booster across traces and write the next version "
      "(forecast-v<N>.json + .ubj) in --model-dir");
  CLI::App& c = *command_;
  c.add_option("--trace", f.traces,
               "A demand trace (docs/traces.md); repeat for several. Resampled to 1-minute steps "
               "(coarser traces keep theirs)")
      ->required();
  c.add_option("--model-dir", f.model_dir,
               "Model directory (created if missing; `prescale serve forecast --model-dir` "
               "watches it)")
      ->required();
  c.add_option("--holdout", f.holdout,
               "Share of each trace's end held out for the validation metrics")
      ->check(finite())
      ->check(CLI::Range(0.05, 0.5))
      ->capture_default_str();
  c.add_flag("--no-validate", f.no_validate,
             "Skip the validation fit whose metrics the manifest records");
  c.add_option("--max-rows", o.max_rows, "Training rows (origin, horizon) sampled at most")
      ->check(CLI::Range(size_t{forecast::kGbtMinTrainingRows}, size_t{100'000'000}))
      ->capture_default_str();
  c.add_option("--rounds", o.rounds, "Boosting rounds at most (held-out rows choose fewer)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  c.add_option("--max-depth", o.max_depth, "Depth of each tree")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  c.add_option("--eta", o.eta, "Learning rate")
      ->check(finite())
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  c.add_option("--seed", o.seed, "Seed of the row sampling and the trees")
      ->check(non_negative())
      ->capture_default_str();
  c.add_option("--threads", o.threads,
               "Training threads (more than 1 only on a machine of its own; docs/forecasting.md)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
}

TrainForecastCommand::~TrainForecastCommand() = default;

bool TrainForecastCommand::parsed() const { return command_->parsed(); }

int TrainForecastCommand::run() const { return run_forecast_train(*flags_); }

}  // namespace prescale
