#include "telemetry/span.h"

#include <gtest/gtest.h>

#include "otlp_trace.pb.h"

namespace prescale::telemetry {
namespace {

// Every field the encoder wrote is one the message defines, at its number and type.
bool no_unknown_fields(const google::protobuf::Message& m) {
  return m.GetReflection()->GetUnknownFields(m).empty();
}

SpanRecord server_span() {
  SpanRecord s;
  s.context = *parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  s.parent_span_id = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
  s.parent_remote = true;
  s.trace_state = "vendor=abc";
  s.name = "GET /v1/recommend/{user}";
  s.kind = SpanKind::kServer;
  s.start_unix_nano = 1767225600123456789ULL;
  s.end_unix_nano = 1767225600223456789ULL;
  s.attributes = {{"http.request.method", std::string("GET")},
                  {"http.response.status_code", std::int64_t{200}},
                  {"prescale.retries", std::int64_t{0}},
                  {"prescale.weight", 0.25},
                  {"prescale.cached", false}};
  return s;
}

// protobuf's own parser reads the encoder's bytes as OTLP's messages.
TEST(OtlpEncoding, ProtobufReadsTheRequestAsOtlpsMessages) {
  SpanRecord root;
  root.context = new_trace(true);
  root.name = "POST /v1/score";
  root.kind = SpanKind::kServer;
  root.start_unix_nano = 5;
  root.end_unix_nano = 7;
  root.status = SpanStatus::kError;
  root.status_message = "upstream_timeout";
  const std::string body =
      encode_export_request({{"service.name", "prescale-gateway"}, {"k8s.namespace.name", "shop"}},
                            "prescale", "1.2", {server_span(), root});

  otlp_test::ExportTraceServiceRequest request;
  ASSERT_TRUE(request.ParseFromString(body));
  EXPECT_TRUE(no_unknown_fields(request));
  ASSERT_EQ(request.resource_spans_size(), 1);
  const auto& rs = request.resource_spans(0);
  ASSERT_EQ(rs.resource().attributes_size(), 2);
  EXPECT_EQ(rs.resource().attributes(0).key(), "service.name");
  EXPECT_EQ(rs.resource().attributes(0).value().string_value(), "prescale-gateway");
  EXPECT_EQ(rs.resource().attributes(1).value().string_value(), "shop");
  ASSERT_EQ(rs.scope_spans_size(), 1);
  EXPECT_EQ(rs.scope_spans(0).scope().name(), "prescale");
  EXPECT_EQ(rs.scope_spans(0).scope().version(), "1.2");
  ASSERT_EQ(rs.scope_spans(0).spans_size(), 2);

  const auto& s = rs.scope_spans(0).spans(0);
  EXPECT_TRUE(no_unknown_fields(s));
  EXPECT_EQ(s.trace_id(),
            std::string("\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36", 16));
  EXPECT_EQ(s.span_id(), std::string("\x00\xf0\x67\xaa\x0b\xa9\x02\xb7", 8));
  EXPECT_EQ(s.parent_span_id(), std::string("\x11\x22\x33\x44\x55\x66\x77\x88", 8));
  EXPECT_EQ(s.trace_state(), "vendor=abc");
  EXPECT_EQ(s.name(), "GET /v1/recommend/{user}");
  EXPECT_EQ(s.kind(), 2);  // SPAN_KIND_SERVER
  EXPECT_EQ(s.start_time_unix_nano(), 1767225600123456789ULL);
  EXPECT_EQ(s.end_time_unix_nano(), 1767225600223456789ULL);
  // Sampled, and a parent known to be remote (SpanFlags 0x100 | 0x200).
  EXPECT_EQ(s.flags(), 0x301u);
  EXPECT_FALSE(s.has_status());  // unset
  ASSERT_EQ(s.attributes_size(), 5);
  EXPECT_EQ(s.attributes(0).key(), "http.request.method");
  EXPECT_EQ(s.attributes(0).value().string_value(), "GET");
  EXPECT_EQ(s.attributes(1).value().int_value(), 200);
  // A oneof's default value is still there: the type is known.
  EXPECT_EQ(s.attributes(2).value().value_case(), otlp_test::AnyValue::kIntValue);
  EXPECT_EQ(s.attributes(3).value().double_value(), 0.25);
  EXPECT_EQ(s.attributes(4).value().value_case(), otlp_test::AnyValue::kBoolValue);
  EXPECT_FALSE(s.attributes(4).value().bool_value());

  const auto& r = rs.scope_spans(0).spans(1);
  EXPECT_TRUE(r.parent_span_id().empty());  // a root span
  EXPECT_TRUE(r.trace_state().empty());
  EXPECT_EQ(r.flags(), 0x101u);  // sampled, parent known not remote
  ASSERT_TRUE(r.has_status());
  EXPECT_EQ(r.status().code(), 2);
  EXPECT_EQ(r.status().message(), "upstream_timeout");
}

// protobuf's strings are UTF-8: a raw byte of a request's path would make a receiver refuse the
// whole batch, so it is sent as U+FFFD; valid sequences are kept.
TEST(OtlpEncoding, TextIsSentAsUtf8) {
  SpanRecord s = server_span();
  s.name = "GET /caf\xc3\xa9/\xff";
  s.attributes = {{"url.path", std::string("/\x80\xe2\x82\xac/\xed\xa0\x80/\xf0\x9f\x98\x80/\xc3")},
                  {"k\xfe", std::string("v")}};
  otlp_test::ExportTraceServiceRequest request;
  ASSERT_TRUE(request.ParseFromString(
      encode_export_request({{"service.name", "gw\xc0"}}, "prescale", "", {s})));
  const auto& span = request.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(span.name(), "GET /caf\xc3\xa9/\xef\xbf\xbd");
  // A lone continuation byte, a surrogate (3 bytes, each replaced), a cut sequence at the end.
  EXPECT_EQ(span.attributes(0).value().string_value(),
            "/\xef\xbf\xbd\xe2\x82\xac/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd/"
            "\xf0\x9f\x98\x80/\xef\xbf\xbd");
  EXPECT_EQ(span.attributes(1).key(), "k\xef\xbf\xbd");
  EXPECT_EQ(request.resource_spans(0).resource().attributes(0).value().string_value(),
            "gw\xef\xbf\xbd");
}

TEST(OtlpEncoding, NoSpansIsStillARequest) {
  otlp_test::ExportTraceServiceRequest request;
  ASSERT_TRUE(request.ParseFromString(encode_export_request({{"service.name", "x"}}, "p", "", {})));
  ASSERT_EQ(request.resource_spans_size(), 1);
  EXPECT_EQ(request.resource_spans(0).scope_spans(0).spans_size(), 0);
}

TEST(OtlpEncoding, ReadsAPartialSuccess) {
  otlp_test::ExportTraceServiceResponse response;
  response.mutable_partial_success()->set_rejected_spans(3);
  response.mutable_partial_success()->set_error_message("spans too old");
  const ExportPartialSuccess p = read_export_response(response.SerializeAsString());
  EXPECT_EQ(p.rejected_spans, 3);
  EXPECT_EQ(p.error_message, "spans too old");
  EXPECT_EQ(read_export_response("").rejected_spans, 0);  // an empty response: all taken
  // Not a protobuf message (a JSON body, a truncated field): none refused.
  EXPECT_EQ(read_export_response("{\"partialSuccess\":{}}").rejected_spans, 0);
  const std::string cut = response.SerializeAsString().substr(0, 4);
  EXPECT_EQ(read_export_response(cut).rejected_spans, 0);
  EXPECT_EQ(read_export_response(cut).error_message, "");
}

TEST(OtlpEncoding, ReadsTheMessageOfAnRpcStatus) {
  otlp_test::RpcStatus status;
  status.set_code(8);
  status.set_message("resource exhausted");
  EXPECT_EQ(read_rpc_status_message(status.SerializeAsString()), "resource exhausted");
  EXPECT_EQ(read_rpc_status_message(""), "");
  EXPECT_EQ(read_rpc_status_message("\x12\x40short"), "");  // a length past the end
}

}  // namespace
}  // namespace prescale::telemetry
