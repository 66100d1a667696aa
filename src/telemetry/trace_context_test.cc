#include "telemetry/trace_context.h"

#include <gtest/gtest.h>

#include <set>
#include <span>
#include <string>
#include <thread>

namespace prescale::telemetry {
namespace {

// The examples of the W3C Trace Context recommendation, section 3.2.
constexpr std::string_view kSampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr std::string_view kNotSampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

std::string hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (std::uint8_t b : bytes) {
    out += "0123456789abcdef"[b >> 4];
    out += "0123456789abcdef"[b & 0xf];
  }
  return out;
}

TEST(Traceparent, ParsesTheSpecExamples) {
  std::optional<TraceContext> c = parse_traceparent(kSampled);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(hex(c->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(c->span_id), "00f067aa0ba902b7");
  EXPECT_EQ(c->flags, 0x01);
  EXPECT_TRUE(c->sampled());
  EXPECT_EQ(format_traceparent(*c), kSampled);

  c = parse_traceparent(kNotSampled);
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->sampled());
  EXPECT_EQ(format_traceparent(*c), kNotSampled);
}

TEST(Traceparent, RejectsInvalidHeaders) {
  for (std::string_view bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    // short
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // 00 is exactly 55
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",   // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
           "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // not hex
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // separator
           "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",   //
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",   //
           "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",   // misplaced dash
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",   // flags not hex
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",  // trailing space
           " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // leading space
       }) {
    EXPECT_FALSE(parse_traceparent(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(Traceparent, FutureVersionsAreReadByTheirFirstFourFields) {
  // A later version may append fields after a dash.
  std::optional<TraceContext> c = parse_traceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-"
      "will-be-like");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(hex(c->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(c->sampled());
  // Sent on as version 00.
  EXPECT_EQ(format_traceparent(*c), kSampled);

  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  // Only the sampled bit is understood in a future version's flags.
  c = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->flags, 0x01);
  // A version 00 header keeps every flag bit.
  EXPECT_EQ(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")->flags,
            0x03);

  EXPECT_FALSE(parse_traceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-will-be-like"));
  EXPECT_FALSE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"));
  EXPECT_FALSE(parse_traceparent("cc-00000000000000000000000000000000-00f067aa0ba902b7-01-x"));
}

TEST(Traceparent, ChildKeepsTraceAndFlagsWithANewSpan) {
  const TraceContext parent = *parse_traceparent(kSampled);
  const TraceContext child = child_of(parent);
  EXPECT_EQ(child.trace_id, parent.trace_id);
  EXPECT_EQ(child.flags, parent.flags);
  EXPECT_NE(child.span_id, parent.span_id);
  EXPECT_NE(child_of(parent).span_id, child.span_id);
  const std::string header = format_traceparent(child);
  EXPECT_EQ(header.size(), kTraceparentSize);
  EXPECT_EQ(header.substr(0, 36), kSampled.substr(0, 36));
  EXPECT_EQ(header.substr(52), "-01");
  EXPECT_EQ(parse_traceparent(header), child);  // what we send parses back
}

TEST(Traceparent, NewTracesHaveDistinctNonZeroIds) {
  std::set<TraceId> traces;
  std::set<SpanId> spans;
  for (int i = 0; i < 10000; ++i) {
    const TraceContext c = new_trace(i % 2 == 0);
    EXPECT_EQ(c.sampled(), i % 2 == 0);
    EXPECT_TRUE(parse_traceparent(format_traceparent(c)).has_value());
    traces.insert(c.trace_id);
    spans.insert(c.span_id);
  }
  EXPECT_EQ(traces.size(), 10000u);
  EXPECT_EQ(spans.size(), 10000u);
}

TEST(Traceparent, EachThreadDrawsItsOwnIds) {
  TraceId a{}, b{};
  std::thread ta([&] { a = new_trace(true).trace_id; });
  std::thread tb([&] { b = new_trace(true).trace_id; });
  ta.join();
  tb.join();
  EXPECT_NE(a, b);
}

TEST(Tracestate, AcceptsTheSpecExamples) {
  EXPECT_TRUE(valid_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
  EXPECT_TRUE(valid_tracestate("congo=t61rcWkgMzE"));
  EXPECT_TRUE(valid_tracestate("fw529a3039@dt=FWE,rojo=00f067aa0ba902b7"));  // multi-tenant
  EXPECT_TRUE(valid_tracestate("a=1 , b=2,\tc=3"));  // spaces and tabs around commas
  EXPECT_TRUE(valid_tracestate("a=1,,b=2"));         // empty members are allowed
  EXPECT_TRUE(valid_tracestate(""));
  EXPECT_TRUE(valid_tracestate("k/e_y-*=v a l u e"));  // spaces inside a value
}

TEST(Tracestate, RejectsMalformedOrOversized) {
  EXPECT_FALSE(valid_tracestate("Rojo=1"));      // keys are lower case
  EXPECT_FALSE(valid_tracestate("1abc=1"));      // a simple key starts with a letter
  EXPECT_FALSE(valid_tracestate("rojo"));        // no value
  EXPECT_FALSE(valid_tracestate("rojo="));       // empty value
  EXPECT_FALSE(valid_tracestate("rojo=a=b"));    // '=' in a value
  EXPECT_FALSE(valid_tracestate("rojo=a\x01"));  // control character
  EXPECT_FALSE(valid_tracestate("a=1,a=2"));     // duplicate key
  EXPECT_FALSE(valid_tracestate("t@=1"));        // empty system id
  EXPECT_FALSE(valid_tracestate("t@toolongsystemid=1"));
  EXPECT_FALSE(valid_tracestate("@dt=1"));

  std::string members;
  for (int i = 0; i < 32; ++i) members += (i ? ",k" : "k") + std::to_string(i) + "=v";
  EXPECT_TRUE(valid_tracestate(members));
  EXPECT_FALSE(valid_tracestate(members + ",k32=v"));  // 33 members

  // Every member valid; only the total length differs.
  const std::string v250(250, 'v');
  EXPECT_TRUE(valid_tracestate("a=" + v250 + ",b=" + v250 + ",c=1234"));    // 512 characters
  EXPECT_FALSE(valid_tracestate("a=" + v250 + ",b=" + v250 + ",c=12345"));  // 513
  EXPECT_FALSE(valid_tracestate("a=" + std::string(257, 'v')));  // a value is at most 256
}

TEST(Propagate, ContinuesAValidTraceAndForwardsTracestate) {
  const UpstreamTrace t =
      propagate(kSampled, std::string_view("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"), false);
  EXPECT_TRUE(t.continued);
  EXPECT_EQ(t.traceparent.substr(0, 36), kSampled.substr(0, 36));
  EXPECT_NE(t.traceparent, kSampled);
  EXPECT_EQ(t.traceparent, format_traceparent(t.context));
  EXPECT_TRUE(t.context.sampled());
  EXPECT_EQ(t.tracestate, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
}

TEST(Propagate, DropsAnInvalidTracestate) {
  const UpstreamTrace t = propagate(kSampled, std::string_view("Bad Key=1"), false);
  EXPECT_TRUE(t.continued);
  EXPECT_TRUE(t.tracestate.empty());
}

TEST(Propagate, StartsANewTraceWithoutAValidParent) {
  UpstreamTrace t = propagate(std::nullopt, std::nullopt, true);
  EXPECT_FALSE(t.continued);
  EXPECT_TRUE(t.context.sampled());
  EXPECT_TRUE(parse_traceparent(t.traceparent).has_value());

  // tracestate without a valid traceparent is not forwarded.
  t = propagate(std::string_view("00-garbage"), std::string_view("rojo=1"), false);
  EXPECT_FALSE(t.continued);
  EXPECT_FALSE(t.context.sampled());
  EXPECT_TRUE(t.tracestate.empty());
  EXPECT_NE(t.traceparent.substr(3, 32), "4bf92f3577b34da6a3ce929d0e0e4736");
}

}  // namespace
}  // namespace prescale::telemetry
