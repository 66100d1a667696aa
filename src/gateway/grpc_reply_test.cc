#include "gateway/internal/grpc_reply.h"

#include <gtest/gtest.h>

#include "http/json.h"

namespace prescale::gateway::internal {
namespace {

using std::chrono::milliseconds;

http::Request with_type(std::string type) {
  http::Request r;
  r.headers.set("content-type", std::move(type));
  return r;
}

TEST(GrpcReplyTest, GrpcCallsAreToldByTheirContentType) {
  EXPECT_TRUE(is_grpc_request(with_type("application/grpc")));
  EXPECT_TRUE(is_grpc_request(with_type("application/grpc+proto")));
  EXPECT_TRUE(is_grpc_request(with_type("application/grpc;charset=utf-8")));
  EXPECT_FALSE(is_grpc_request(with_type("application/grpc-web")));
  EXPECT_FALSE(is_grpc_request(with_type("application/grpc-web+proto")));
  EXPECT_FALSE(is_grpc_request(with_type("application/json")));
  EXPECT_FALSE(is_grpc_request(http::Request{}));
}

TEST(GrpcReplyTest, TheGatewaysErrorsBecomeTrailersOnlyGrpcAnswers) {
  http::Response r = http::error_response(503, "no_healthy_upstream", "no replica of cart: 100%");
  r.headers.set("Retry-After", "1");
  r.headers.set("x-request-id", "abc");
  to_grpc_answer(r);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.get("content-type"), "application/grpc");
  EXPECT_EQ(r.headers.get("grpc-status"), "14");  // UNAVAILABLE
  EXPECT_EQ(r.headers.get("grpc-message"), "no_healthy_upstream: no replica of cart: 100%25");
  EXPECT_EQ(r.headers.get("x-request-id"), "abc");
  EXPECT_FALSE(r.headers.get("Retry-After").has_value());
  EXPECT_TRUE(r.body.empty());

  // A 504 is UNAVAILABLE (a connect timeout), unless the gateway says a deadline passed.
  http::Response connect = http::error_response(504, "upstream_timeout", "connect timed out");
  to_grpc_answer(connect);
  EXPECT_EQ(connect.headers.get("grpc-status"), "14");
  http::Response deadline = http::error_response(504, "upstream_timeout", "route timed out");
  deadline.headers.set(std::string(kGrpcStatusOverride), "4");
  to_grpc_answer(deadline);
  EXPECT_EQ(deadline.headers.get("grpc-status"), "4");  // DEADLINE_EXCEEDED
  EXPECT_FALSE(deadline.headers.get(kGrpcStatusOverride).has_value()) << "never sent";

  http::Response plain = http::Response::text(502, "bad gateway\n");  // not the gateway's JSON
  to_grpc_answer(plain);
  EXPECT_EQ(plain.headers.get("grpc-status"), "14");
  EXPECT_EQ(plain.headers.get("grpc-message"), "HTTP 502");

  http::Response odd = http::error_response(418, "teapot", "caf\xc3\xa9\n");
  to_grpc_answer(odd);
  EXPECT_EQ(odd.headers.get("grpc-status"), "2");  // UNKNOWN
  EXPECT_EQ(odd.headers.get("grpc-message"), "teapot: caf%C3%A9%0A");
}

TEST(GrpcReplyTest, GrpcAnswersAndSuccessesAreLeftAlone) {
  http::Response ok = http::Response::text(200, std::string(5, '\0'));
  to_grpc_answer(ok);
  EXPECT_EQ(ok.headers.get("grpc-status"), std::nullopt);
  EXPECT_EQ(ok.body.size(), 5u);

  http::Response error_in_head;  // a server's trailers-only error
  error_in_head.status = 200;
  error_in_head.headers.set("grpc-status", "5");
  to_grpc_answer(error_in_head);
  EXPECT_EQ(error_in_head.headers.get("grpc-status"), "5");

  http::Response upstream_500 = http::Response::text(500, "");
  upstream_500.trailers.set("grpc-status", "13");  // gRPC's own, whatever the HTTP status
  to_grpc_answer(upstream_500);
  EXPECT_EQ(upstream_500.status, 500);
}

TEST(GrpcReplyTest, TheMappingIsGrpcs) {
  EXPECT_EQ(grpc_status_for_http(400), 13);
  EXPECT_EQ(grpc_status_for_http(401), 16);
  EXPECT_EQ(grpc_status_for_http(403), 7);
  EXPECT_EQ(grpc_status_for_http(404), 12);
  EXPECT_EQ(grpc_status_for_http(429), 14);
  EXPECT_EQ(grpc_status_for_http(502), 14);
  EXPECT_EQ(grpc_status_for_http(503), 14);
  EXPECT_EQ(grpc_status_for_http(504), 14);
  EXPECT_EQ(grpc_status_for_http(500), 2);
}

TEST(GrpcReplyTest, GrpcTimeoutsAreReadInEveryUnit) {
  EXPECT_EQ(parse_grpc_timeout("1H"), milliseconds(3'600'000));
  EXPECT_EQ(parse_grpc_timeout("2M"), milliseconds(120'000));
  EXPECT_EQ(parse_grpc_timeout("5S"), milliseconds(5000));
  EXPECT_EQ(parse_grpc_timeout("250m"), milliseconds(250));
  EXPECT_EQ(parse_grpc_timeout("1500u"), milliseconds(2));  // rounded up
  EXPECT_EQ(parse_grpc_timeout("1n"), milliseconds(1));
  EXPECT_EQ(parse_grpc_timeout("99999999H"), milliseconds(359'999'996'400'000));
  EXPECT_EQ(parse_grpc_timeout("0m"), milliseconds(0));
  for (const char* bad : {"", "m", "5", "5s", "5 S", "-5S", "123456789S", "1.5S"}) {
    EXPECT_EQ(parse_grpc_timeout(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace prescale::gateway::internal
