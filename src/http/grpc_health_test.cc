#include "http/grpc_health.h"

#include <gtest/gtest.h>

#include <string>

namespace prescale::http {
namespace {

using namespace std::string_literals;

// A HealthCheckResponse as a gRPC server sends it: the 5-byte prefix, then the message.
std::string framed(const std::string& message) {
  std::string out(1, '\0');
  const auto n = static_cast<std::uint32_t>(message.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  return out + message;
}

Response answer(const std::string& message, const std::string& grpc_status = "0") {
  Response r;
  r.headers.set("content-type", "application/grpc");
  r.body = framed(message);
  r.trailers.set("grpc-status", grpc_status);
  return r;
}

TEST(GrpcHealthTest, TheRequestIsAUnaryCallWithTheServiceNameAsField1) {
  const Request whole = grpc_health_request("");
  EXPECT_EQ(whole.method, Method::kPost);
  EXPECT_EQ(whole.target, "/grpc.health.v1.Health/Check");
  EXPECT_EQ(whole.headers.get("content-type"), "application/grpc");
  EXPECT_EQ(whole.body, "\0\0\0\0\0"s);  // an empty message: every field at its default

  const Request named = grpc_health_request("shop.Cart");
  EXPECT_EQ(named.body, "\0\0\0\0\x0b\x0a\x09shop.Cart"s);

  const std::string long_name(200, 'a');  // a length over 127 takes a two-byte varint
  const Request longer = grpc_health_request(long_name);
  ASSERT_EQ(longer.body.size(), 5U + 3U + 200U);
  EXPECT_EQ(longer.body.substr(0, 8), "\0\0\0\0\xcb\x0a\xc8\x01"s);
}

TEST(GrpcHealthTest, ServingPassesAndEveryOtherStatusFails) {
  const GrpcHealth serving = read_grpc_health(answer("\x08\x01"));
  EXPECT_TRUE(serving.grpc);
  EXPECT_EQ(serving.grpc_status, 0);
  EXPECT_EQ(serving.serving_status, 1);
  EXPECT_TRUE(serving.serving());
  EXPECT_EQ(serving.describe(200), "SERVING");

  const GrpcHealth not_serving = read_grpc_health(answer("\x08\x02"));
  EXPECT_TRUE(not_serving.grpc);
  EXPECT_FALSE(not_serving.serving());
  EXPECT_EQ(not_serving.describe(200), "NOT_SERVING");

  // proto3 leaves UNKNOWN (0) out: an empty message is UNKNOWN.
  const GrpcHealth unknown = read_grpc_health(answer(""));
  EXPECT_EQ(unknown.serving_status, 0);
  EXPECT_FALSE(unknown.serving());
  EXPECT_EQ(unknown.describe(200), "UNKNOWN");
  EXPECT_EQ(read_grpc_health(answer("\x08\x03")).describe(200), "SERVICE_UNKNOWN");
  EXPECT_EQ(read_grpc_health(answer("\x08\x07")).describe(200), "STATUS_7");
}

TEST(GrpcHealthTest, UnknownFieldsAreSkipped) {
  // A string field 2, a fixed32 field 3 and a fixed64 field 4 around the status.
  const GrpcHealth h =
      read_grpc_health(answer("\x12\x02hi\x08\x01\x1d\x01\x02\x03\x04"
                              "\x21\x01\x02\x03\x04\x05\x06\x07\x08"s));
  EXPECT_TRUE(h.serving()) << h.malformed;
}

TEST(GrpcHealthTest, AnErrorStatusInTheHeadOrTheTrailersFails) {
  // A server without the health service answers "trailers-only": grpc-status in the head.
  Response unimplemented;
  unimplemented.headers.set("content-type", "application/grpc");
  unimplemented.headers.set("grpc-status", "12");
  unimplemented.headers.set("grpc-message", "Method%20not%20found%3A%20x");
  const GrpcHealth h = read_grpc_health(unimplemented);
  EXPECT_TRUE(h.grpc);
  EXPECT_EQ(h.grpc_status, 12);
  EXPECT_EQ(h.grpc_message, "Method not found: x");
  EXPECT_FALSE(h.serving());
  EXPECT_EQ(h.describe(200), "grpc-status 12 (UNIMPLEMENTED: Method not found: x)");

  // grpc-health's answer for a service it does not know.
  const GrpcHealth not_found = read_grpc_health(answer("", "5"));
  EXPECT_EQ(not_found.grpc_status, 5);
  EXPECT_EQ(not_found.serving_status, -1);
  EXPECT_EQ(not_found.describe(200), "grpc-status 5 (NOT_FOUND)");
}

TEST(GrpcHealthTest, AnswersThatAreNotGrpcAreNamed) {
  Response not_found = Response::text(404, "no such path");
  EXPECT_FALSE(read_grpc_health(not_found).grpc);
  EXPECT_EQ(read_grpc_health(not_found).describe(404), "HTTP 404");

  Response plain = Response::text(200, "ok");  // an HTTP/2 server that is not gRPC
  EXPECT_FALSE(read_grpc_health(plain).grpc);
  EXPECT_EQ(read_grpc_health(plain).describe(200),
            "HTTP 200 without grpc-status (not a gRPC answer)");

  Response garbled = answer("\x08\x01");
  garbled.trailers.set("grpc-status", "OK");
  EXPECT_FALSE(read_grpc_health(garbled).grpc);
}

TEST(GrpcHealthTest, UnreadableMessagesFailWithWhy) {
  Response r = answer("\x08\x01");
  r.body.resize(3);
  GrpcHealth h = read_grpc_health(r);
  EXPECT_FALSE(h.serving());
  EXPECT_EQ(h.describe(200),
            "an unreadable HealthCheckResponse (a message prefix of 3 bytes, not 5)");

  r = answer("\x08\x01");
  r.body[0] = 1;
  EXPECT_EQ(read_grpc_health(r).malformed, "a compressed message (none was accepted)");

  r = answer("\x08\x01");
  r.body += "x";
  EXPECT_EQ(read_grpc_health(r).malformed, "a message of 3 bytes where its prefix says 2");

  EXPECT_EQ(read_grpc_health(answer("\x08\x81")).malformed, "a truncated varint at byte 0");
  EXPECT_EQ(read_grpc_health(answer("\x12\x05hi")).malformed,
            "a truncated length-delimited field at byte 0");
  EXPECT_EQ(read_grpc_health(answer("\x0f")).malformed, "wire type 7 at byte 0");

  Response empty = answer("");
  empty.body.clear();
  EXPECT_EQ(read_grpc_health(empty).malformed, "no message");
}

TEST(GrpcHealthTest, StatusNames) {
  EXPECT_EQ(grpc_status_name(0), "OK");
  EXPECT_EQ(grpc_status_name(14), "UNAVAILABLE");
  EXPECT_EQ(grpc_status_name(16), "UNAUTHENTICATED");
  EXPECT_EQ(grpc_status_name(17), "UNKNOWN_CODE");
  EXPECT_EQ(grpc_status_name(-1), "UNKNOWN_CODE");
}

}  // namespace
}  // namespace prescale::http
