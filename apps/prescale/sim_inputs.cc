#include "sim_inputs.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "command_util.h"
#include "control/history_store.h"
#include "control/persistent_policy_state.h"
#include "scaling/capacity_model.h"
#include "sim_output.h"

namespace prescale {

forecast::Trace slice(forecast::Trace t, double offset_s, double duration_s) {
  const auto first = static_cast<size_t>(std::floor(offset_s / t.step_seconds + 1e-9));
  const size_t n = t.counts.size();
  const size_t begin = std::min(first, n);
  const size_t end =
      duration_s > 0
          ? std::min(n, begin + static_cast<size_t>(std::ceil(duration_s / t.step_seconds - 1e-9)))
          : n;
  t.counts = std::vector<double>(t.counts.begin() + static_cast<long>(begin),
                                 t.counts.begin() + static_cast<long>(end));
  const double from = static_cast<double>(begin) * t.step_seconds;
  const double to = static_cast<double>(end) * t.step_seconds;
  if (!t.arrival_seconds.empty()) {
    std::vector<double> arrivals, costs;
    const bool with_costs = t.request_cost.size() == t.arrival_seconds.size();
    for (size_t i = 0; i < t.arrival_seconds.size(); ++i) {
      const double a = t.arrival_seconds[i];
      if (a < from || a >= to) continue;
      arrivals.push_back(a - from);
      if (with_costs) costs.push_back(t.request_cost[i]);
    }
    t.arrival_seconds = std::move(arrivals);
    t.request_cost = std::move(costs);
  }
  if (t.start_unix_seconds > 0) t.start_unix_seconds += from;
  return t;
}

forecast::Trace history_before(forecast::Trace t, double offset_s, double history_s) {
  const double first = std::floor(offset_s / t.step_seconds + 1e-9);  // as slice() takes it
  const double steps = std::min(first, std::ceil(history_s / t.step_seconds - 1e-9));
  if (!(steps > 0)) {  // none: the offset is in the first step
    t.counts.clear();
    t.arrival_seconds.clear();
    t.request_cost.clear();
    return t;
  }
  return slice(std::move(t), (first - steps) * t.step_seconds, steps * t.step_seconds);
}

double minute_peak_rps(const forecast::Trace& trace) {
  return trace.step_seconds < 60 ? forecast::resample(trace, 60).peak_rps() : trace.peak_rps();
}

std::optional<SimLoad> load_trace(const TraceShaping& shaping, std::chrono::milliseconds offset,
                                  std::chrono::milliseconds duration,
                                  std::chrono::milliseconds history) {
  forecast::TraceOptions trace_options;
  trace_options.column = shaping.column;
  auto read = forecast::read_trace(shaping.path, trace_options);
  if (!read) {
    std::cerr << "prescale sim: --trace: " << read.error().message << "\n";
    return std::nullopt;
  }
  const double trace_seconds = read->duration_seconds();
  forecast::Trace before;
  if (history.count() > 0) {
    const double h = std::chrono::duration<double>(history).count();
    before = history_before(*read, std::chrono::duration<double>(offset).count(), h);
  }
  // Estimated on the whole source, so a slice and its history lose the same noise; only when
  // the noise may be removed (below).
  const double dispersion = shaping.peak_rps > 0 && !shaping.keep_counting_noise
                                ? forecast::counting_dispersion(*read)
                                : 1.0;
  forecast::Trace trace = slice(std::move(*read), std::chrono::duration<double>(offset).count(),
                                std::chrono::duration<double>(duration).count());
  if (trace.counts.empty()) {
    std::cerr << "prescale sim: --offset/--duration leave no steps of the trace (it has "
              << span_text(trace_seconds) << ")\n";
    return std::nullopt;
  }
  const bool window_has_requests = trace.peak_rps() > 0;
  if (shaping.scale > 0) {
    // As `prescale load --scale` replays it: counts multiplied, noise and all.
    trace = forecast::rescale_to_peak(std::move(trace), trace.peak_rps() * shaping.scale);
    before = forecast::rescale_to_peak(std::move(before), before.peak_rps() * shaping.scale);
  }
  SimLoad out;
  out.dispersion = dispersion;
  if (shaping.peak_rps > 0 && shaping.peak_rps > minute_peak_rps(trace) &&
      !shaping.keep_counting_noise && forecast::is_count_trace(trace)) {
    out.denoised = true;
    // Scaling a low-volume count trace up would scale its counting noise with it.
    trace = forecast::remove_counting_noise(std::move(trace), dispersion);
    if (!before.counts.empty()) {
      before = forecast::remove_counting_noise(std::move(before), dispersion);
    }
  }
  if (shaping.peak_rps > 0) {
    // The peak is the busiest minute's mean rate: what people mean by "our peak is X req/s",
    // and the same yardstick for per-request traces (1 s steps, whose busiest second is mostly
    // noise) as for per-minute ones. Coarser traces use their own step. The history scales
    // with it.
    const double busiest = minute_peak_rps(trace);
    if (busiest > 0) {
      const double factor = shaping.peak_rps / busiest;
      trace = forecast::rescale_to_peak(std::move(trace), trace.peak_rps() * factor);
      before = forecast::rescale_to_peak(std::move(before), before.peak_rps() * factor);
    }
  }
  if (!(trace.peak_rps() > 0)) {
    if (window_has_requests) {
      // A per-request trace scaled down keeps whole requests: scaled far enough, none.
      std::cerr << "prescale sim: " << (shaping.peak_rps > 0 ? "--peak-rps" : "--scale")
                << " leaves the trace no requests in the chosen window (a per-request trace "
                   "keeps whole requests): raise it\n";
    } else {
      std::cerr << "prescale sim: --trace: the trace has no requests in the chosen window\n";
    }
    return std::nullopt;
  }
  out.trace = std::move(trace);
  out.before = std::move(before);
  return out;
}

namespace {

// The prescale policy's state as a `prescale up` state directory holds it, with `key` in it.
Result<nlohmann::json> stored_policy(const std::string& state_dir, const std::string& key) {
  if (!std::filesystem::exists(std::filesystem::path(state_dir) / "history.db")) {
    return make_error(ErrorCode::kNotFound,
                      "no history.db in " + state_dir + " (a prescale up --state-dir writes one)");
  }
  auto store = control::HistoryStore::open(state_dir);
  if (!store) return std::unexpected(store.error());
  auto policy = control::stored_policy_state(*store);
  if (!policy) return std::unexpected(policy.error());
  if (!*policy || !(*policy)->contains(key)) {
    return make_error(ErrorCode::kNotFound, state_dir +
                                                " holds no learned state of the prescale "
                                                "policy");
  }
  return std::move(**policy);
}

}  // namespace

Result<std::map<std::string, double>> learned_startups(const Config& config,
                                                       const std::string& state_dir) {
  auto policy = stored_policy(state_dir, "services");
  if (!policy) return std::unexpected(policy.error());
  std::map<std::string, double> out;
  try {
    for (const ServiceConfig& svc : config.services) {
      const nlohmann::json& services = policy->at("services");
      if (!services.contains(svc.name) || !services.at(svc.name).contains("startup_seconds")) {
        continue;
      }
      auto seconds = services.at(svc.name).at("startup_seconds").get<std::vector<double>>();
      std::erase_if(seconds, [](double v) { return !(v >= 0) || !std::isfinite(v); });
      if (seconds.empty()) continue;
      const auto mid = seconds.begin() + static_cast<std::ptrdiff_t>(seconds.size() / 2);
      std::nth_element(seconds.begin(), mid, seconds.end());
      out[svc.name] = *mid;
    }
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, state_dir + ": " + e.what());
  }
  return out;
}

Result<std::map<std::string, double>> learned_capacities(const Config& config,
                                                         const std::string& state_dir) {
  auto policy = stored_policy(state_dir, "capacity");
  if (!policy) return std::unexpected(policy.error());
  const nlohmann::json* capacity = &policy->at("capacity");
  std::vector<scaling::ServiceSpec> specs;
  for (const ServiceConfig& svc : config.services) specs.push_back(service_spec(svc));
  scaling::CapacityModel model;
  model.init(specs);
  if (auto r = model.from_json(*capacity, Clock::TimePoint{}); !r) {
    return make_error(r.error().code, state_dir + ": " + r.error().message);
  }
  std::map<std::string, double> out;
  for (const auto& spec : specs) {
    const double c = model.capacity_rps(spec.name);
    if (model.samples(spec.name) > 0 && c > 0) out[spec.name] = c;
  }
  return out;
}

}  // namespace prescale
