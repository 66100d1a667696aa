// OtlpReceiver: an OTLP/HTTP trace receiver for tests, as an OpenTelemetry collector's port 4318
// would take spans. It listens on 127.0.0.1 (port 0), reads each POST's body with protobuf's
// own parser (otlp_trace.proto holds upstream's field numbers), and keeps every span it was
// sent. answer_next() makes it refuse exports (a status, a Retry-After, a partial success).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace prescale::http {
class Server;
class TlsContext;
}

namespace prescale::telemetry::testing {

struct ReceivedSpan {
  std::map<std::string, std::string> resource;  // the resource's attributes, as text
  std::string scope;                            // the instrumentation scope's name
  std::string trace_id;                         // lower-case hex
  std::string span_id;
  std::string parent_span_id;  // "" for a root span
  std::string trace_state;
  std::string name;
  int kind = 0;
  std::uint64_t start_unix_nano = 0;
  std::uint64_t end_unix_nano = 0;
  // Attributes as text: strings as they are, integers in decimal, doubles as %g, booleans
  // "true"/"false"; the type in `attribute_types` ('s', 'i', 'd', 'b').
  std::map<std::string, std::string> attributes;
  std::map<std::string, char> attribute_types;
  int status_code = 0;
  std::string status_message;
  std::uint32_t flags = 0;
};

struct ReceivedRequest {
  std::string path;
  std::string content_type;
  std::map<std::string, std::string> headers;  // names in lower case
  bool parsed = false;                         // the body is an ExportTraceServiceRequest
  std::size_t spans = 0;
};

class OtlpReceiver {
 public:
  OtlpReceiver();
  // Over HTTPS with `tls`'s certificate (a hosted backend's endpoint).
  explicit OtlpReceiver(std::shared_ptr<const http::TlsContext> tls);
  ~OtlpReceiver();

  std::uint16_t port() const;
  std::string url() const;  // "http://127.0.0.1:PORT" ("https://" with TLS)

  // The next `times` exports are answered `status` (with `retry_after` seconds when >= 0, and a
  // google.rpc.Status naming `message`), or with 200 and a partial success refusing
  // `rejected` spans when status is 200. Their spans are not kept unless the status is 200.
  void answer_next(int times, int status, int retry_after = -1, std::int64_t rejected = 0,
                   std::string message = "");

  std::vector<ReceivedSpan> spans() const;
  std::vector<ReceivedRequest> requests() const;
  // Waits (real time, polling) until at least `n` spans came; false at the deadline.
  bool wait_for_spans(std::size_t n, std::chrono::milliseconds deadline) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  bool https_ = false;
  std::unique_ptr<http::Server> server_;
};

}  // namespace prescale::telemetry::testing
