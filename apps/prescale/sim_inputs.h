// What `prescale sim` reads before it simulates: the trace shaped by its flags (a window of it,
// the history before it, rescaled, counting noise removed before scaling up), and the per-replica
// capacities a `prescale up` run learned. docs/cli.md ("prescale sim") and docs/traces.md.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/result.h"
#include "forecast/trace.h"

namespace prescale {

// The part [offset, offset + duration) of a trace (duration 0: to the end), in whole steps.
forecast::Trace slice(forecast::Trace t, double offset_s, double duration_s);

// The `history_s` before the part slice() takes from `offset_s`, in whole steps, ending where
// that part begins: with an offset between steps the part starts at the step holding it, which
// a history reaching back from the offset itself would include too.
forecast::Trace history_before(forecast::Trace t, double offset_s, double history_s);

// The busiest minute's mean arrival rate (the busiest step's, for steps of a minute or more).
double minute_peak_rps(const forecast::Trace& trace);

// The flags that shape the trace: --trace, --column, --peak-rps, --scale, --keep-counting-noise.
struct TraceShaping {
  std::string path, column;
  double peak_rps = 0;  // 0: not given
  double scale = 0;     // 0: not given
  bool keep_counting_noise = false;
};

// The trace as simulated, and the history the prescale policies get before it (--history).
struct SimLoad {
  forecast::Trace trace, before;
  bool denoised = false;  // counting noise removed before --peak-rps scaled it up
  double dispersion = 1;  // the whole file's, with which it was removed
};

// Reads --trace and applies --offset/--duration, --history, --scale and --peak-rps (removing
// counting noise before scaling up). Prints what is wrong and returns nullopt on bad input.
std::optional<SimLoad> load_trace(const TraceShaping& shaping, std::chrono::milliseconds offset,
                                  std::chrono::milliseconds duration,
                                  std::chrono::milliseconds history);

// The per-replica capacities a `prescale up` run learned, as its state directory holds them
// (docs/state.md): the capacity model of the prescale policy, restored for the file's services
// (seeded from the file as the platform seeds it) and asked. Only services it learned about
// (at least one sample) are listed.
Result<std::map<std::string, double>> learned_capacities(const Config& config,
                                                         const std::string& state_dir);

// The startup times a `prescale up` run learned (docs/state.md, `startup_seconds`), per service of
// `config` it learned one for: the median of those saved, in real seconds.
Result<std::map<std::string, double>> learned_startups(const Config& config,
                                                       const std::string& state_dir);

}  // namespace prescale
