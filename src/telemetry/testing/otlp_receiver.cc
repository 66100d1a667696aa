#include "telemetry/testing/otlp_receiver.h"

#include <cctype>
#include <cstdio>
#include <thread>

#include "http/server.h"
#include "otlp_trace.pb.h"

namespace prescale::telemetry::testing {
namespace {

std::string hex(const std::string& bytes) {
  std::string out;
  for (unsigned char b : bytes) {
    out += "0123456789abcdef"[b >> 4];
    out += "0123456789abcdef"[b & 0xf];
  }
  return out;
}

std::pair<std::string, char> text_of(const otlp_test::AnyValue& v) {
  switch (v.value_case()) {
    case otlp_test::AnyValue::kStringValue:
      return {v.string_value(), 's'};
    case otlp_test::AnyValue::kBoolValue:
      return {v.bool_value() ? "true" : "false", 'b'};
    case otlp_test::AnyValue::kIntValue:
      return {std::to_string(v.int_value()), 'i'};
    case otlp_test::AnyValue::kDoubleValue: {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "%g", v.double_value());
      return {buffer, 'd'};
    }
    default:
      return {"", '?'};
  }
}

}  // namespace

struct OtlpReceiver::State {
  mutable std::mutex mu;
  std::vector<ReceivedSpan> spans;
  std::vector<ReceivedRequest> requests;
  int refusals = 0;
  int status = 200;
  int retry_after = -1;
  std::int64_t rejected = 0;
  std::string message;
};

OtlpReceiver::OtlpReceiver() : OtlpReceiver(nullptr) {}

OtlpReceiver::OtlpReceiver(std::shared_ptr<const http::TlsContext> tls)
    : state_(std::make_shared<State>()), https_(tls != nullptr) {
  http::ServerOptions options;
  options.threads = 1;
  options.tls = std::move(tls);
  options.max_body_bytes = 64 * 1024 * 1024;
  server_ = std::make_unique<http::Server>(
      options, [state = state_](http::Request& request, http::Responder respond) {
        ReceivedRequest got;
        got.path = request.path;
        got.content_type = std::string(request.headers.get("content-type").value_or(""));
        for (const auto& [name, value] : request.headers.fields()) {
          std::string lower(name);
          for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          got.headers[lower] = std::string(value);
        }
        otlp_test::ExportTraceServiceRequest export_request;
        got.parsed = export_request.ParseFromString(request.body);
        std::vector<ReceivedSpan> spans;
        for (const auto& rs : export_request.resource_spans()) {
          std::map<std::string, std::string> resource;
          for (const auto& kv : rs.resource().attributes()) {
            resource[kv.key()] = text_of(kv.value()).first;
          }
          for (const auto& ss : rs.scope_spans()) {
            for (const auto& s : ss.spans()) {
              ReceivedSpan r;
              r.resource = resource;
              r.scope = ss.scope().name();
              r.trace_id = hex(s.trace_id());
              r.span_id = hex(s.span_id());
              r.parent_span_id = hex(s.parent_span_id());
              r.trace_state = s.trace_state();
              r.name = s.name();
              r.kind = s.kind();
              r.start_unix_nano = s.start_time_unix_nano();
              r.end_unix_nano = s.end_time_unix_nano();
              for (const auto& kv : s.attributes()) {
                auto [text, type] = text_of(kv.value());
                r.attributes[kv.key()] = text;
                r.attribute_types[kv.key()] = type;
              }
              r.status_code = s.status().code();
              r.status_message = s.status().message();
              r.flags = s.flags();
              spans.push_back(std::move(r));
            }
          }
        }
        got.spans = spans.size();
        std::unique_lock lock(state->mu);
        state->requests.push_back(std::move(got));
        if (state->refusals > 0) {
          --state->refusals;
          if (state->status != 200) {
            otlp_test::RpcStatus status;
            status.set_code(14);
            status.set_message(state->message);
            http::Response r;
            r.status = state->status;
            r.headers.set("content-type", "application/x-protobuf");
            if (state->retry_after >= 0) {
              r.headers.set("retry-after", std::to_string(state->retry_after));
            }
            r.body = status.SerializeAsString();
            lock.unlock();
            respond(std::move(r));
            return;
          }
          otlp_test::ExportTraceServiceResponse partial;
          partial.mutable_partial_success()->set_rejected_spans(state->rejected);
          partial.mutable_partial_success()->set_error_message(state->message);
          for (auto& s : spans) state->spans.push_back(std::move(s));
          http::Response r;
          r.headers.set("content-type", "application/x-protobuf");
          r.body = partial.SerializeAsString();
          lock.unlock();
          respond(std::move(r));
          return;
        }
        if (!got.parsed && !request.body.empty()) {
          lock.unlock();
          respond(http::Response::text(400, "not an ExportTraceServiceRequest"));
          return;
        }
        for (auto& s : spans) state->spans.push_back(std::move(s));
        lock.unlock();
        http::Response r;
        r.headers.set("content-type", "application/x-protobuf");
        respond(std::move(r));  // an empty ExportTraceServiceResponse
      });
  if (auto started = server_->start(); !started) {
    throw std::runtime_error("OtlpReceiver: " + started.error().to_string());
  }
}

OtlpReceiver::~OtlpReceiver() { server_->shutdown(std::chrono::milliseconds(1000)); }

std::uint16_t OtlpReceiver::port() const { return server_->port(); }

std::string OtlpReceiver::url() const {
  return std::string(https_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port());
}

void OtlpReceiver::answer_next(int times, int status, int retry_after, std::int64_t rejected,
                               std::string message) {
  std::lock_guard lock(state_->mu);
  state_->refusals = times;
  state_->status = status;
  state_->retry_after = retry_after;
  state_->rejected = rejected;
  state_->message = std::move(message);
}

std::vector<ReceivedSpan> OtlpReceiver::spans() const {
  std::lock_guard lock(state_->mu);
  return state_->spans;
}

std::vector<ReceivedRequest> OtlpReceiver::requests() const {
  std::lock_guard lock(state_->mu);
  return state_->requests;
}

bool OtlpReceiver::wait_for_spans(std::size_t n, std::chrono::milliseconds deadline) const {
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    {
      std::lock_guard lock(state_->mu);
      if (state_->spans.size() >= n) return true;
    }
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace prescale::telemetry::testing
