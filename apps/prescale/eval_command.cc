#include "eval_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_checks.h"
#include "command_util.h"
#include "core/internal/config_scalars.h"
#include "forecast/forecaster.h"
#include "forecast/trace.h"

namespace prescale {

struct EvalFlags {
  std::string trace;
  std::string column;
  std::string horizons = "1m,5m,15m";
  std::string step = "auto";
  double test_share = 0.2;
  std::string models;  // empty: every model and "selected"
  int origin_every = 1;
  std::string json_path;
  std::string baseline_intervals = "textbook";  // or "calibrated"
};

namespace {

using Json = nlohmann::ordered_json;

// `horizons_given`: --horizons was on the command line, not its default.
int run_forecast_eval(const EvalFlags& f, bool horizons_given) {
  const char* who = "prescale eval forecast";
  // Every name is checked before anything is scored: a misspelt "_cycle" model would otherwise
  // read as a cycle model without a cycle, after the rows before it were printed.
  std::vector<std::string> models;
  if (f.models.empty()) {
    models.assign(std::begin(forecast::kModelNames), std::end(forecast::kModelNames));
    models.emplace_back("selected");
  } else {
    std::stringstream in(f.models);
    for (std::string m; std::getline(in, m, ',');) {
      if (m.empty()) continue;
      if (m != "selected" &&
          std::find(std::begin(forecast::kModelNames), std::end(forecast::kModelNames), m) ==
              std::end(forecast::kModelNames)) {
        std::cerr << who << ": --models: unknown forecasting model '" << m << "' (known: ";
        for (std::string_view known : forecast::kModelNames) std::cerr << known << ", ";
        std::cerr << "selected)\n";
        return 2;
      }
      // Scored twice, its rows twice in the JSON.
      if (std::find(models.begin(), models.end(), m) != models.end()) {
        std::cerr << who << ": --models: \"" << m << "\" is listed twice\n";
        return 2;
      }
      models.push_back(m);
    }
  }
  // Before the backtests, which may take minutes, not after them.
  if (!f.json_path.empty() && !output_path_usable(who, "--json", f.json_path)) return 2;
  forecast::TraceOptions options;
  options.column = f.column;
  auto trace = forecast::read_trace(f.trace, options);
  if (!trace) {
    std::cerr << who << ": --trace: " << trace.error().message << "\n";
    return 2;
  }
  // "auto": a minute, or 10 s for a trace shorter than a day with steps that fine (an hour of
  // per-request arrivals has only 60 minutes), or the trace's own step when it is coarser —
  // exactly that step: rounded to whole seconds, a step of 90.4 s became 90 s, finer than the
  // trace's and refused, and one of 90.6 s was resampled to 91 s.
  std::string step_text = f.step;
  const bool own_step = step_text == "auto" && trace->step_seconds > 60;
  if (step_text == "auto") {
    step_text = trace->duration_seconds() < 86400 && trace->step_seconds <= 10 ? "10s" : "60s";
    if (own_step) {
      step_text = internal::format_duration(
          std::chrono::milliseconds(std::llround(1000 * trace->step_seconds)));
    }
  }
  auto step = internal::parse_duration(step_text);
  if (!step || step->count() <= 0) {
    std::cerr << who << ": --step: " << (step ? "must be positive" : step.error()) << "\n";
    return 2;
  }
  const double step_seconds =
      own_step ? trace->step_seconds : std::chrono::duration<double>(*step).count();

  // Horizons: durations, each a whole number of steps.
  std::vector<std::string> labels;
  std::vector<int> horizons;
  std::stringstream list(f.horizons);
  for (std::string item; std::getline(list, item, ',');) {
    if (item.empty()) continue;
    auto d = internal::parse_duration(item);
    if (!d) {
      std::cerr << who << ": --horizons: \"" << item << "\": " << d.error() << "\n";
      return 2;
    }
    const double steps = std::chrono::duration<double>(*d).count() / step_seconds;
    // Nothing longer can be scored, and its steps might not fit the int below.
    if (std::chrono::duration<double>(*d).count() > trace->duration_seconds()) {
      std::cerr << who << ": --horizons: \"" << item << "\" is longer than the trace ("
                << internal::format_duration(std::chrono::milliseconds(
                       std::llround(1000 * trace->duration_seconds())))
                << ")\n";
      return 2;
    }
    if (steps < 1 - 1e-9 || std::abs(steps - std::round(steps)) > 1e-9) {
      // The defaults are minutes: on a coarser trace, those that are whole steps of it.
      if (!horizons_given) continue;
      if (own_step) {  // no --step can be finer than the trace's
        std::cerr << who << ": --horizons: \"" << item << "\" is not a whole number of the "
                  << "trace's " << step_text << " steps (≥ 1)\n";
      } else {
        std::cerr << who << ": --horizons: \"" << item << "\" is not a whole number of "
                  << internal::format_duration(*step) << " steps (≥ 1); set --step\n";
      }
      return 2;
    }
    labels.push_back(item);
    horizons.push_back(static_cast<int>(std::lround(steps)));
  }
  if (horizons.empty() && !horizons_given) {  // a trace coarser than 15 minutes: one step
    labels.push_back(step_text);
    horizons.push_back(1);
  }
  if (horizons.empty()) {
    std::cerr << who << ": --horizons: no horizons given\n";
    return 2;
  }

  // A finer --step is advice only where the trace was resampled to a coarser one.
  const bool finer_step_possible = trace->step_seconds < step_seconds - 1e-9;
  if (std::abs(trace->step_seconds - step_seconds) > 1e-9) {
    if (trace->step_seconds > step_seconds + 1e-9) {
      std::cerr << who << ": --step " << step_text << " is finer than the trace's own step ("
                << fixed(trace->step_seconds, 0) << " s)\n";
      return 2;
    }
    *trace = forecast::resample(*trace, step_seconds);
  }
  forecast::Series series;
  series.start_seconds = trace->start_unix_seconds;
  series.step_seconds = step_seconds;
  for (size_t i = 0; i < trace->counts.size(); ++i) series.values.push_back(trace->rate_rps(i));
  const auto n = series.values.size();
  const auto test_begin =
      static_cast<size_t>(std::floor(static_cast<double>(n) * (1 - f.test_share)));
  const int longest = *std::max_element(horizons.begin(), horizons.end());
  if (n - test_begin < static_cast<size_t>(longest)) {
    std::cerr << who << ": the scored part (" << n - test_begin << " steps) is shorter than the "
              << "longest horizon (" << longest << " steps): raise --test-share or use a finer "
              << "--step\n";
    return 2;
  }

  forecast::ForecasterOptions fo;
  // Every model is fitted on the part before the tail, which must hold two spans of the longest
  // horizon (at least the forecaster's own): said here rather than by the first model, mid-table.
  const auto fit_needs = static_cast<size_t>(2 * (std::max(fo.max_horizon, longest) + 1));
  if (test_begin < fit_needs) {
    std::cerr << who << ": --trace " << f.trace << ": the fitted part (" << test_begin << " of "
              << n << " steps of " << internal::format_duration(*step) << ") is shorter than the "
              << fit_needs << " steps a model needs: give a longer trace"
              << (finer_step_possible ? ", a smaller --test-share or a finer --step\n"
                                      : " or a smaller --test-share\n");
    return 2;
  }
  Json all = Json::array();
  std::printf("trace %s: %zu steps of %s, scored on the last %zu (%.0f %%)\n\n",
              trace->name.c_str(), n, internal::format_duration(*step).c_str(), n - test_begin,
              100 * f.test_share);
  std::printf("%-20s %8s %7s %7s %11s %11s %11s %9s\n", "model", "horizon", "MASE", "sMAPE",
              "pinball50", "pinball90", "pinball99", "cover90");
  for (const std::string& model : models) {
    const bool baseline = model.starts_with("naive") || model.starts_with("seasonal_naive");
    const bool textbook = baseline && f.baseline_intervals == "textbook";
    forecast::ForecasterOptions model_options = fo;
    if (textbook) {
      model_options.error_units = {forecast::ErrorUnit::kConstant};
      model_options.online_calibration_rate = 0;
    }
    auto scores = forecast::evaluate_forecasts(series, test_begin, model, horizons, model_options,
                                               f.origin_every);
    // Only the missing cycle is a note; any other error of a cycle model (too few values) is one.
    if (!scores && model.ends_with("_cycle") && scores.error().code == ErrorCode::kNotFound) {
      std::printf("%-20s (no cycle other than a day or a week in the fitted part)\n",
                  model.c_str());
      continue;
    }
    if (!scores) {
      std::cerr << who << ": " << model << ": " << scores.error().message << "\n";
      return 2;
    }
    for (size_t i = 0; i < scores->size(); ++i) {
      const forecast::ForecastScore& s = (*scores)[i];
      std::printf("%-20s %8s %7.3f %7.4f %11.4f %11.4f %11.4f %9.3f\n", model.c_str(),
                  labels[i].c_str(), s.mase, s.smape, s.pinball_p50, s.pinball_p90, s.pinball_p99,
                  s.coverage_p90);
      if (s.samples == 0) continue;  // a horizon longer than what follows any origin
      Json j;
      j["model"] = model;
      j["horizon"] = labels[i];
      j["horizon_seconds"] = horizons[i] * step_seconds;
      j["samples"] = s.samples;
      j["mae"] = s.mae;
      j["mase"] = s.mase;
      j["smape"] = s.smape;
      j["pinball_p50"] = s.pinball_p50;
      j["pinball_p90"] = s.pinball_p90;
      j["pinball_p99"] = s.pinball_p99;
      j["coverage_p90"] = s.coverage_p90;
      j["intervals"] = textbook ? "textbook" : "calibrated";
      all.push_back(std::move(j));
    }
  }
  if (!f.json_path.empty() &&
      !write_command_output(who, "--json", f.json_path, all.dump(2) + "\n")) {
    return 1;
  }
  return 0;
}

}  // namespace

EvalCommand::EvalCommand(CLI::App& app) : flags_(std::make_unique<EvalFlags>()) {
  EvalFlags& f = *flags_;
  command_ = app.add_subcommand("eval", "Evaluate models against baselines on held-out data");
  command_->require_subcommand(1);
  forecast_ = command_->add_subcommand(
      "forecast", "Score every forecasting model on a trace's held-out tail (rolling origin)");
  CLI::App& c = *forecast_;
  c.add_option("--trace", f.trace, "Trace file (docs/traces.md)")->required();
  c.add_option("--column", f.column, "Trace value column (default: the format's)");
  c.add_option("--horizons", f.horizons, "Comma-separated horizons, whole steps (e.g. 1m,5m,15m)")
      ->capture_default_str();
  c.add_option("--step", f.step,
               "Series step (the trace is resampled to it; not finer than the trace's own); auto: "
               "1m, 10s for traces under a day with steps that fine")
      ->capture_default_str();
  c.add_option("--test-share", f.test_share, "Share of the trace, at its end, that is scored")
      ->check(finite())
      ->check(CLI::Range(0.01, 0.9))
      ->capture_default_str();
  c.add_option("--models", f.models,
               "Comma-separated models (default: all, and \"selected\", the forecaster's choice)");
  c.add_option("--origin-every", f.origin_every, "Forecast from every N-th step of the test part")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  c.add_option("--json", f.json_path, "Write the scores as JSON (docs/forecasting.md)");
  c.add_option("--baseline-intervals", f.baseline_intervals,
               "Quantiles of the naive and seasonal naive baselines: textbook (the empirical "
               "quantiles of their backtest errors, the same width at every origin) or "
               "calibrated (Prescale's own calibration, as the selected model gets)")
      ->check(CLI::IsMember({"textbook", "calibrated"}))
      ->capture_default_str();
}

EvalCommand::~EvalCommand() = default;

bool EvalCommand::parsed() const { return command_->parsed(); }

int EvalCommand::run() const {
  if (forecast_->parsed()) return run_forecast_eval(*flags_, forecast_->count("--horizons") > 0);
  return 2;
}

}  // namespace prescale
