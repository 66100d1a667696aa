// Demand traces: how many requests arrive per time step. The simulator replays them at the entry
// services; forecasters learn from them. read_trace() understands the files in
// ../shared/data/traces (NASA HTTP, Alibaba GenAI QPS, Azure LLM requests), NAB series and a
// generic "timestamp or step index, count" CSV; docs/traces.md documents each format, the unit
// decisions and the request-cost model.
//
// Thread safety: all functions are pure; a Trace is a value.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prescale::forecast {

// A demand series at a fixed step: counts[i] = requests arriving in
// [start + i*step, start + (i+1)*step).
struct Trace {
  std::string name;  // the file stem
  double step_seconds = 60;
  double start_unix_seconds = 0;  // 0 when the source has only step indices
  std::vector<double> counts;     // requests per step (not per second)
  // Per-request detail, present only for per-request sources (Azure LLM traces), sorted:
  // arrival offsets in seconds from start, and each request's relative work (mean 1.0 over the
  // trace; docs/traces.md gives the token-based model).
  std::vector<double> arrival_seconds;
  std::vector<double> request_cost;

  double rate_rps(size_t i) const;  // counts[i] / step_seconds, req/s
  double peak_rps() const;          // largest rate_rps(i); 0 for an empty trace
  double total_requests() const;    // sum of counts
  double duration_seconds() const;  // counts.size() * step_seconds
};

struct TraceOptions {
  // The value column to read. Empty: the format's default (Alibaba: generative_qps_sum +
  // api_qps_sum; the others: the second column). Unknown names are an error.
  std::string column;
  // Step of the result, seconds. 0: the source's own step (1 s for per-request traces). Other
  // sources are resample()d to it; per-request traces are binned at it.
  double step_seconds = 0;
  // Azure LLM cost model: cost ∝ context_tokens + decode_token_weight * generated_tokens.
  double decode_token_weight = 4.0;
};

// Reads a trace file; the header row selects the format (docs/traces.md). Errors: kNotFound with
// the path; kInvalidArgument naming `file:line` (and the column) for a malformed file.
Result<Trace> read_trace(const std::string& path, const TraceOptions& options = {});

// Same as read_trace() for text already in memory; `source` names it in errors and its stem
// becomes the trace's name.
Result<Trace> parse_trace(std::string_view text, std::string_view source,
                          const TraceOptions& options = {});

// Scales the demand by f = peak_rps / peak_rps() (peak_rps > 0). Count traces: every count is
// multiplied by f, so peak_rps() == peak_rps exactly. Per-request traces stay lists of requests
// and their counts are rebuilt from them (counts[i] = the arrivals in step i); arrivals stay
// sorted and within [0, duration_seconds()), each keeps its request's cost, and costs are
// renormalised to mean 1. Deterministic: the same trace and peak give the same result.
// - f > 1: the trace plus whole copies of it, each shifted by a different few seconds (about
//   ±30 s at most), the last one thinned at random: round(f × requests) in all. That is a stream
//   f times as busy with the same shape on time scales above a minute, not f coincident copies
//   of each request, so peak_rps() becomes that stream's own busiest step: below peak_rps where
//   the original's busiest step was a spike of sampling noise or a burst (Azure traces, 1 s
//   steps: 47 % below for the conv trace at f = 15.8, 81 % for the code trace, whose busiest
//   second is a burst, at f = 30). A minute keeps f times its requests to within a few percent
//   (the Azure traces' busiest minute: within 3 % for f ≤ 30; 7 % at f = 60, the code trace's
//   burst being spread over its neighbours).
// - f < 1: deterministic thinning; each step keeps within one request of f times its count, so
//   |peak_rps() − peak_rps| < 1 / step_seconds.
// A trace whose peak is 0, or a non-positive `peak_rps`, is returned unchanged.
Trace rescale_to_peak(Trace trace, double peak_rps);

// Removes the sampling noise of a low-volume count trace before it is scaled up. A count c of a
// step is a draw around the underlying rate λ; multiplying it by f multiplies that noise too, so
// NASA July (47 requests a minute on average) scaled to thousands of req/s would jitter by ±27 %
// from minute to minute, where real traffic of that volume jitters by a fraction of a percent.
// Requests arrive in clumps (a page and its images, a retweet storm), so the noise is wider than
// Poisson: its variance is D·λ, D the trace's dispersion (counting_dispersion(); 1 for Poisson,
// 3.54 for NASA July). Each step is replaced by
//   m + sign(c − m) · max(0, |c − m| − k·sqrt(D·m)),
// m the local level: the mean of the steps within ±`half_window` steps, each clipped to within
// 3·sqrt(D·median) of their median (so a burst does not lift its neighbours). Deviations that
// counting noise explains (within k = 2 standard deviations) are removed; larger ones — real
// bursts — are kept, less that noise. `dispersion` ≤ 0 estimates D from this trace; pass the
// whole source's estimate when denoising slices of it. The total changes by the removed noise
// only. Traces whose counts are not all whole numbers (already rates), and per-request traces,
// are returned unchanged.
Trace remove_counting_noise(Trace trace, double dispersion = 0, int half_window = 5,
                            double k = 2.0);

// Whether `trace` holds counts: whole, non-negative numbers per step and no per-request
// arrivals (what remove_counting_noise() applies to).
bool is_count_trace(const Trace& trace);

// The dispersion D of a count trace's noise: the variance of a step's deviation from its local
// level (as above) in units of that level, estimated robustly (the median absolute deviation of
// (c − m)/sqrt(m), so bursts and level shifts do not inflate it), at least 1 (Poisson). Traces
// shorter than 4·half_window + 2 steps, with fewer than 20 steps of level ≥ 1, or that are not
// count traces give 1.
double counting_dispersion(const Trace& trace, int half_window = 5);

// The same trace at another step (seconds, > 0): each old step's count is spread uniformly over
// its interval and summed into the new steps it overlaps, so a coarser step sums and a finer one
// splits evenly; the total is preserved. The last step may extend past the old end. Arrivals and
// costs are unchanged. A non-positive step returns the trace unchanged.
Trace resample(const Trace& trace, double step_seconds);

}  // namespace prescale::forecast
