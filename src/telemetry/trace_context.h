// W3C Trace Context (https://www.w3.org/TR/trace-context/) for the gateway's and the services'
// hops (the spans they record: telemetry/tracing.h).
//
// The gateway continues the trace a client started: it reads `traceparent`, makes a span of
// its own (same trace id, new span id, flags kept) and sends that to the upstream as the new
// `traceparent`; `tracestate` is forwarded unchanged when valid and dropped otherwise. A request
// without a valid `traceparent` starts a new trace.
//
// Parsing follows the spec's rules: lower-case hex only; all-zero ids and version ff are
// invalid; version 00 is exactly 55 characters; a later version is read by its first four
// fields when it is at least as long and the fourth field ends the header or is followed by
// '-'. What the gateway sends is always version 00.
//
// Thread safety: all functions are safe on any thread. Ids come from a per-thread generator
// (xoshiro256++ seeded from std::random_device), so generating takes no lock.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace prescale::telemetry {

using TraceId = std::array<std::uint8_t, 16>;
using SpanId = std::array<std::uint8_t, 8>;

inline constexpr std::uint8_t kTraceFlagSampled = 0x01;
inline constexpr std::size_t kTraceparentSize = 55;  // "00-" 32 "-" 16 "-" 2

struct TraceContext {
  TraceId trace_id{};
  SpanId span_id{};  // in a parsed header: the caller's span (the header's parent-id)
  std::uint8_t flags = 0;

  bool sampled() const { return (flags & kTraceFlagSampled) != 0; }
  bool operator==(const TraceContext&) const = default;
};

// The context in a `traceparent` value; nullopt when it is invalid (start a new trace).
// For a version other than 00 only the sampled flag is kept: the others mean nothing yet.
std::optional<TraceContext> parse_traceparent(std::string_view header);

// A new trace: random non-zero trace and span ids.
TraceContext new_trace(bool sampled);

// The span for the next hop: same trace id and flags, a new random non-zero span id.
TraceContext child_of(const TraceContext& parent);

// "00-<trace id>-<span id>-<flags>", lower-case hex, kTraceparentSize characters.
std::string format_traceparent(const TraceContext& context);

// Whether a `tracestate` value is forwardable: at most 512 characters and 32 list members,
// each `key=value` with the spec's key and value grammar, keys unique. Empty members
// (",,") and spaces or tabs around commas are allowed.
bool valid_tracestate(std::string_view header);

// What the gateway sends upstream for one request.
struct UpstreamTrace {
  TraceContext context;         // the gateway's span; its span_id is the upstream's parent
  std::string traceparent;      // format_traceparent(context)
  std::string_view tracestate;  // the incoming value, or empty: do not send the header
  bool continued = false;       // false when a new trace was started
  SpanId parent_span_id{};      // the incoming span (all zero when a new trace was started)
};

// Continues the incoming trace (the request's `traceparent` and `tracestate` values, when
// present) or starts one, sampled as `sample_new_trace` says. `tracestate` is kept only with
// a valid `traceparent`. The result's `tracestate` points into the argument.
UpstreamTrace propagate(std::optional<std::string_view> traceparent,
                        std::optional<std::string_view> tracestate, bool sample_new_trace);

}  // namespace prescale::telemetry
