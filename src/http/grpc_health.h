// The gRPC health checking protocol (grpc.health.v1.Health/Check), as Kubernetes' gRPC probes,
// Envoy's grpc_health_check and grpc-health-probe ask it: the request a checker sends over
// HTTP/2, and what the answer says (docs/gateway.md, "gRPC health checks").
//
// The request is a unary call: POST /grpc.health.v1.Health/Check, `content-type:
// application/grpc`, one length-prefixed HealthCheckRequest message ({string service = 1}: ""
// asks about the server as a whole). The answer is one HealthCheckResponse ({ServingStatus
// status = 1}) and `grpc-status` in the trailers — or, for an error, `grpc-status` in the head
// with no message (a "trailers-only" answer). The two messages are small enough to encode here;
// no protobuf library is needed.
#pragma once

#include <string>
#include <string_view>

#include "http/message.h"

namespace prescale::http {

inline constexpr std::string_view kGrpcHealthCheckPath = "/grpc.health.v1.Health/Check";

// How messages name the Check call about `service`: "grpc.health.v1.Health/Check", and
// `for "shop.Cart"` after it where the service is not "".
std::string grpc_health_check_name(std::string_view service);

// The Check call for `service` ("" = the server as a whole). The caller adds nothing: the
// HTTP/2 client supplies :authority and `te: trailers`.
Request grpc_health_request(std::string_view service);

// HealthCheckResponse.ServingStatus.
enum class GrpcServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

// What an answer to grpc_health_request() says.
struct GrpcHealth {
  // A gRPC answer came: HTTP status 200 with `grpc-status` in the trailers or the head. Any
  // other answer (a 404 from a server that is not gRPC, a 502 from a proxy) is not one.
  bool grpc = false;
  int grpc_status = -1;      // 0 OK, 5 NOT_FOUND, 12 UNIMPLEMENTED (no health service), ...
  std::string grpc_message;  // `grpc-message`, percent-decoded; "" when none
  // The status the message holds, when grpc_status is 0 and a message could be read; -1
  // otherwise (a value past kServiceUnknown is kept as sent).
  int serving_status = -1;
  // Why the answer's message could not be read ("" when it could, or when there is none).
  std::string malformed;

  // The check passes: grpc-status 0 and SERVING.
  bool serving() const {
    return grpc_status == 0 && serving_status == static_cast<int>(GrpcServingStatus::kServing);
  }
  // For logs and warnings: "SERVING", "NOT_SERVING", "grpc-status 12 (UNIMPLEMENTED: Method not
  // found)", "HTTP 404", "an unreadable message (...)".
  std::string describe(int http_status) const;
};

// Reads `response` (the whole answer, trailers included, as http::Client gives it).
GrpcHealth read_grpc_health(const Response& response);

// gRPC's name for a status code: "OK", "UNIMPLEMENTED", ...; "UNKNOWN_CODE" past 16.
std::string_view grpc_status_name(int code);
// A ServingStatus's name: "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"; "STATUS_<n>"
// for another value.
std::string grpc_serving_status_name(int status);

}  // namespace prescale::http
