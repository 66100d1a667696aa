// Internal: the gateway's answers to gRPC calls (docs/gateway.md, "The gateway's own answers to
// gRPC calls"). A gRPC client reads a call's outcome from `grpc-status`, not from the HTTP
// status: an answer of the gateway's own (no route, rate limited, overloaded, no replica, a
// timeout) or an upstream's answer that is not gRPC goes to it as a gRPC "trailers-only" answer —
// HTTP 200, `content-type: application/grpc`, `grpc-status` and `grpc-message` in the head, no
// body — with the code gRPC's HTTP mapping gives, as Envoy and Linkerd answer. And a call's
// `grpc-timeout` bounds its route's timeout. Not public API.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "http/message.h"

namespace prescale::gateway::internal {

// A gRPC call: `content-type` application/grpc, or application/grpc+proto and the like
// (gRPC-Web's application/grpc-web is not: its status travels in its body).
bool is_grpc_request(const http::Request& request);

// The gRPC status code for an answer's HTTP status (grpc/doc/http-grpc-status-mapping.md).
int grpc_status_for_http(int http_status);

// A field of the gateway's own answer to a gRPC call that names the gRPC status to_grpc_answer()
// gives it instead of the mapped one: DEADLINE_EXCEEDED ("4") for a deadline that passed, where
// the mapping says UNAVAILABLE for every 504. Never sent: to_grpc_answer() drops it.
inline constexpr std::string_view kGrpcStatusOverride = "x-prescale-grpc-status";

// `response` as a gRPC client must get it, when it is not a gRPC answer already (no
// `grpc-status` in its head or trailers) and not a 200 (whose body the client reads as gRPC
// messages) or streamed: trailers-only, with kGrpcStatusOverride's status or else
// grpc_status_for_http(), and a `grpc-message` (the
// error's code and message when the body is the gateway's JSON error, else "HTTP <status>"),
// percent-encoded as gRPC requires. Its other fields go, `x-request-id` kept.
void to_grpc_answer(http::Response& response);

// A `grpc-timeout` value ("100m", "5S": 1 to 8 digits and a unit of H, M, S, m, u or n), rounded
// up to whole milliseconds; nullopt when it is not one.
std::optional<std::chrono::milliseconds> parse_grpc_timeout(std::string_view value);

}  // namespace prescale::gateway::internal
