// Tracer: sends the spans the gateway and the service runtime record to an OpenTelemetry
// collector (or Jaeger, Tempo, any OTLP/HTTP receiver) over OTLP/HTTP, binary protobuf
// (docs/tracing.md).
//
//   std::unique_ptr<Tracer> tracer = tracer_from_env("prescale-gateway", &registry);  // or none
//   ...                                              // per request, on an I/O thread:
//   std::string joined;
//   UpstreamTrace t = continue_trace(request.headers, joined);   // the caller's trace, or a new
//   one if (auto span = tracer->server_span(t, request.method_name, route))   // sampled: a span
//     respond = ending(std::move(*span), std::move(respond));    // recorded when answered
//   request.headers.set("traceparent", t.traceparent);           // this hop's context goes on
//
// Spans wait in a bounded queue; a thread of the tracer's own sends them in batches, when a
// batch is full or schedule_delay after the oldest waiting span came, as OpenTelemetry's batch
// span processor does (it looks every 10 ms of the clock). A full queue drops new spans
// (counted). A batch the receiver could not take (no connection, 429, 502, 503, 504) is tried
// again after the receiver's Retry-After, else a back-off doubling from 250 ms (with up to 20 %
// jitter), within export_timeout, then dropped; other refusals drop it at once. Every loss is
// counted in `prescale_tracing_spans_dropped_total{reason}`; the first is logged (a warning),
// then the next only after spans went through again.
//
// Thread safety: record(), sample_new() and flush() from any thread. The destructor stops the
// thread and sends what is queued, one attempt a batch, all within one export_timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "http/message.h"
#include "telemetry/span.h"

namespace prescale::http {
class Client;
class ClientTlsContext;
}

namespace prescale::telemetry {

class Counter;
class Registry;
class Tracer;

// Which spans are recorded: OpenTelemetry's samplers. A parent-based sampler follows the
// sampled flag of the traceparent a request came with and samples `ratio` of new traces; the
// others sample `ratio` of every trace whatever the caller decided. A trace is in the ratio by
// its id (the low 56 bits of its trace id against the ratio), so every process that samples
// the same ratio of new traces takes the same traces.
struct Sampler {
  bool parent_based = true;
  double ratio = 1.0;  // 0..1: always_off is 0, always_on 1
};

struct TracerOptions {
  std::string host;  // the OTLP/HTTP receiver
  std::uint16_t port = 4318;
  std::string path = "/v1/traces";
  bool https = false;   // the receiver's URL is https://: its certificate verified
  std::string ca_file;  // with https: a PEM bundle of the CAs to trust; "" = the system's
  std::vector<std::pair<std::string, std::string>> headers;  // sent with every export
  Sampler sampler;
  ResourceAttributes resource;  // service.name first
  std::size_t max_queue_size = 2048;
  std::size_t max_export_batch_size = 512;
  std::chrono::milliseconds schedule_delay{5000};
  std::chrono::milliseconds export_timeout{10000};  // one batch's attempts, all together
  Clock* clock = &Clock::real();                    // span times, the schedule, back-off
  bool start_thread = true;  // false: nothing is sent but by flush() (tests on a ManualClock)
};

// The tracer the OTEL_* environment variables describe, OpenTelemetry's names and defaults
// (docs/tracing.md lists them): nullopt when tracing is off — no OTLP endpoint set
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT) and OTEL_TRACES_EXPORTER not
// "otlp", or OTEL_TRACES_EXPORTER=none, or OTEL_SDK_DISABLED=true. `default_service_name` is
// service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES sets it. Errors
// (kInvalidArgument) name the variable and what is wrong with its value: an endpoint that is not
// an http:// or https:// URL, a client certificate (mTLS), a protocol other than http/protobuf,
// compression other than none, an unknown sampler or exporter, a ratio outside 0..1, a number that
// is not one.
using Getenv = std::function<const char*(const char*)>;
Result<std::optional<TracerOptions>> tracer_options_from_env(const Getenv& getenv,
                                                             std::string_view default_service_name);

// A server span in progress: begun when a request came (the tracer's clock), recorded by end()
// with the response's status, as OpenTelemetry's HTTP conventions have a server span: the
// status code as `http.response.status_code`, and an error status for a 5xx answer only. end()
// records it once; later calls do nothing.
class ServerSpan {
 public:
  ServerSpan(Tracer& tracer, const TraceContext& context, const SpanId& parent, bool parent_remote,
             std::string_view trace_state, std::string name);
  void attribute(std::string key, SpanAttribute::Value value);
  // Ends the span with the answer's status; `error` (OpenTelemetry's error.type, e.g.
  // "body_aborted") marks it failed whatever the status. Only the first call counts.
  void end(int http_status, std::string_view error = {});

 private:
  Tracer* tracer_;
  Clock::TimePoint started_;
  SpanRecord span_;
  bool ended_ = false;
};

// `respond`, ending `span` with the answer's status before it answers; an answer with a
// streamed body (Response::stream: a model's tokens, server-sent events) ends it when the body
// is over instead, with `prescale.body_end` saying how ("ended", "aborted" — also error.type
// "body_aborted" —, or "client_gone": the client left first, or the answer could have no body).
// A Responder dropped unanswered (a handler that threw or forgot it: the server answers 500)
// ends it with 500. A streamed body's span ends on the thread that ends the body, so the Tracer
// must outlive the streams of the answers it traces (stop the servers first).
http::Responder ending(ServerSpan span, http::Responder respond);

// A request's trace context as W3C Trace Context reads its fields: two `traceparent` fields name
// no parent to trust (a new trace starts), several `tracestate` fields are one comma-separated
// list (kept in `joined`); then propagate(). The result's tracestate points into the headers or
// `joined`.
UpstreamTrace continue_trace(const http::Headers& headers, std::string& joined);

// Makes `headers` carry `t` on: its traceparent, and its tracestate when it has one (else none).
void set_trace_headers(http::Headers& headers, UpstreamTrace t);

// The process's tracer as its OTEL_* environment variables describe it (std::getenv), logged once
// ("tracing: spans of NAME to http://HOST:PORT/v1/traces, ..."); nullptr when tracing is off.
// With `over` (a config file's `tracing`: core/config.h's otel_environment()), where spans go and
// which are taken come from it only (the OTLP endpoints, protocol and compression,
// OTEL_TRACES_*, OTEL_SDK_DISABLED, and the headers when it has some): the file wins; the
// timeout, the resource's and the batch processor's variables still come from the environment. A
// variable it cannot use turns tracing off with a warning naming it (an observability setting does
// not stop the data plane).
std::unique_ptr<Tracer> tracer_from_env(
    std::string_view default_service_name, Registry* registry,
    const std::vector<std::pair<std::string, std::string>>& over = {});

class Tracer {
 public:
  // Errors (kInvalidArgument): an empty host, a zero queue or batch size, a batch larger than
  // the queue, a ratio outside 0..1.
  static Result<std::unique_ptr<Tracer>> create(TracerOptions options, Registry* registry);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // Whether a new trace (no sampled decision of a caller to follow) is sampled.
  bool sample_new(const TraceId& trace_id) const;
  // Whether a span whose parent came with `parent_sampled` is sampled.
  bool sample_child(const TraceId& trace_id, bool parent_sampled) const;

  // The span of a request's hop, as `t` (propagate()) has it continue or start the trace:
  // decides whether it is sampled (sample_child(), or sample_new() for a new trace), sets `t`'s
  // sampled flag and traceparent to say so, and begins the span when it is (nullopt when not).
  // The span is named "METHOD ROUTE".
  std::optional<ServerSpan> server_span(UpstreamTrace& t, std::string_view method,
                                        std::string_view route);

  // Queues a finished span for export; drops it (counted) when the queue is full.
  void record(SpanRecord span);

  // Sends everything queued now, in batches, on the calling thread, and returns when each batch
  // went through or was given up (within export_timeout a batch).
  void flush();

  Clock& clock() const { return *options_.clock; }
  const TracerOptions& options() const { return options_; }

 private:
  Tracer(TracerOptions options, Registry* registry,
         std::shared_ptr<const http::ClientTlsContext> tls);
  void run();
  // Sends what is queued in batches, each within export_timeout, or all by `deadline` (what is
  // left then is dropped); with `yield_to_stop`, returns at a stop (the destructor sends the rest).
  void drain(std::optional<Clock::TimePoint> deadline, bool yield_to_stop);
  // Sends one batch taken off the queue, trying again until `deadline`; false when given up.
  bool send(std::vector<SpanRecord> batch, Clock::TimePoint deadline);
  // Counts `n` lost spans; says why (what `why` makes) when nothing was said since spans last
  // went through.
  void dropped(Counter* counter, std::size_t n, const std::function<std::string()>& why);

  TracerOptions options_;
  std::uint64_t ratio_threshold_ = 0;  // sampled when the id's low 56 bits are below it
  std::unique_ptr<http::Client> client_;
  Counter* exported_ = nullptr;
  Counter* dropped_queue_full_ = nullptr;
  Counter* dropped_export_failed_ = nullptr;
  Counter* dropped_rejected_ = nullptr;

  std::mutex mu_;
  std::deque<SpanRecord> queue_;
  std::optional<Clock::TimePoint> oldest_;  // when the oldest queued span came
  bool stopping_ = false;
  std::mutex send_mu_;               // one batch at a time: the thread's and flush()'s
  std::atomic<bool> warned_{false};  // a loss was logged and nothing went through since
  std::uint64_t jitter_state_ = 0;   // send()'s (send_mu_)
  double jitter_();                  // uniform in [0, 1)
  std::thread thread_;
};

}  // namespace prescale::telemetry
