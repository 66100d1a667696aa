// A finished span as Prescale exports it: the data of one OpenTelemetry span (trace.proto's
// `Span`) that the gateway and the service runtime record, and its OTLP encoding.
//
// encode_export_request() writes an OTLP `ExportTraceServiceRequest` in protobuf's binary wire
// format (what OTLP/HTTP sends with Content-Type application/x-protobuf): one ResourceSpans (the
// process's resource attributes) holding one ScopeSpans (the instrumentation scope "prescale")
// with the spans. read_export_response() reads the answer's partial success (spans the receiver
// refused, and why), and read_rpc_status_message() the message of a google.rpc.Status, the body
// OTLP/HTTP gives with an error status.
//
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "telemetry/trace_context.h"

namespace prescale::telemetry {

// trace.proto's Span.SpanKind.
enum class SpanKind : std::uint8_t { kInternal = 1, kServer = 2, kClient = 3 };

// trace.proto's Status.StatusCode.
enum class SpanStatus : std::uint8_t { kUnset = 0, kOk = 1, kError = 2 };

struct SpanAttribute {
  using Value = std::variant<std::string, std::int64_t, double, bool>;
  std::string key;
  Value value;
};

struct SpanRecord {
  TraceContext context;        // this span: trace id, span id and W3C flags
  SpanId parent_span_id{};     // all zero: the trace's root span
  bool parent_remote = false;  // the parent came in a request's traceparent
  std::string trace_state;     // the W3C tracestate the span carried, if any
  std::string name;
  SpanKind kind = SpanKind::kServer;
  std::uint64_t start_unix_nano = 0;
  std::uint64_t end_unix_nano = 0;
  std::vector<SpanAttribute> attributes;
  SpanStatus status = SpanStatus::kUnset;
  std::string status_message;  // with kError only
};

// Resource attributes (service.name first, by convention) as key and string value.
using ResourceAttributes = std::vector<std::pair<std::string, std::string>>;

// The OTLP/HTTP request body for `spans`, in the order given.
std::string encode_export_request(const ResourceAttributes& resource, std::string_view scope_name,
                                  std::string_view scope_version,
                                  const std::vector<SpanRecord>& spans);

// ExportTraceServiceResponse's partial_success. A body that is not such a message reads as none
// refused (the spans were accepted: the status said so).
struct ExportPartialSuccess {
  std::int64_t rejected_spans = 0;
  std::string error_message;
};
ExportPartialSuccess read_export_response(std::string_view body);

// google.rpc.Status's message (field 2), or "" when the body holds none.
std::string read_rpc_status_message(std::string_view body);

}  // namespace prescale::telemetry
