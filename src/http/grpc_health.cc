#include "http/grpc_health.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

#include "http/internal/wire.h"

namespace prescale::http {
namespace {

void append_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Reads a varint at `pos`; nullopt when it runs past the end or over 10 bytes.
std::optional<std::uint64_t> read_varint(std::string_view in, std::size_t& pos) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 70 && pos < in.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in[pos++]);
    v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return v;
  }
  return std::nullopt;
}

// HealthCheckResponse's status field from its 5-byte-prefixed message; sets `malformed` when the
// body cannot be read. Unknown fields are skipped, as protobuf readers do; a missing status is
// UNKNOWN (proto3's default).
int read_serving_status(std::string_view body, std::string& malformed) {
  if (body.empty()) {
    malformed = "no message";
    return -1;
  }
  if (body.size() < 5) {
    malformed = "a message prefix of " + std::to_string(body.size()) + " bytes, not 5";
    return -1;
  }
  if (body[0] != 0) {
    malformed = "a compressed message (none was accepted)";
    return -1;
  }
  const std::uint32_t length =
      (static_cast<std::uint32_t>(static_cast<unsigned char>(body[1])) << 24) |
      (static_cast<std::uint32_t>(static_cast<unsigned char>(body[2])) << 16) |
      (static_cast<std::uint32_t>(static_cast<unsigned char>(body[3])) << 8) |
      static_cast<std::uint32_t>(static_cast<unsigned char>(body[4]));
  if (body.size() - 5 != length) {
    malformed = "a message of " + std::to_string(body.size() - 5) +
                " bytes where its prefix says " + std::to_string(length);
    return -1;
  }
  const std::string_view message = body.substr(5);
  int status = static_cast<int>(GrpcServingStatus::kUnknown);
  std::size_t pos = 0;
  while (pos < message.size()) {
    const std::size_t at = pos;
    const auto key = read_varint(message, pos);
    if (!key) {
      malformed = "a truncated field key at byte " + std::to_string(at);
      return -1;
    }
    const std::uint64_t field = *key >> 3;
    const unsigned wire_type = static_cast<unsigned>(*key & 7);
    std::optional<std::uint64_t> value;
    switch (wire_type) {
      case 0:  // varint
        value = read_varint(message, pos);
        if (!value) {
          malformed = "a truncated varint at byte " + std::to_string(at);
          return -1;
        }
        if (field == 1) status = static_cast<int>(std::min<std::uint64_t>(*value, 1'000'000));
        break;
      case 1:  // 64-bit
      case 5:  // 32-bit
      {
        const std::size_t size = wire_type == 1 ? 8 : 4;
        if (message.size() - pos < size) {
          malformed = "a truncated fixed-width field at byte " + std::to_string(at);
          return -1;
        }
        pos += size;
        break;
      }
      case 2: {  // length-delimited
        const auto size = read_varint(message, pos);
        if (!size || *size > message.size() - pos) {
          malformed = "a truncated length-delimited field at byte " + std::to_string(at);
          return -1;
        }
        pos += static_cast<std::size_t>(*size);
        break;
      }
      default:
        malformed = "wire type " + std::to_string(wire_type) + " at byte " + std::to_string(at);
        return -1;
    }
  }
  return status;
}

}  // namespace

std::string grpc_health_check_name(std::string_view service) {
  std::string name(kGrpcHealthCheckPath.substr(1));
  if (!service.empty()) name += " for \"" + std::string(service) + "\"";
  return name;
}

Request grpc_health_request(std::string_view service) {
  std::string message;
  if (!service.empty()) {     // proto3 leaves a default (empty) string out
    message.push_back(0x0A);  // field 1, length-delimited
    append_varint(message, service.size());
    message.append(service);
  }
  Request req;
  req.method = Method::kPost;
  req.method_name = "POST";
  req.target = std::string(kGrpcHealthCheckPath);
  req.path = req.target;
  req.headers.set("content-type", "application/grpc");
  req.headers.set("user-agent", "prescale-health-check");
  req.body.reserve(5 + message.size());
  req.body.push_back(0);  // not compressed
  const auto n = static_cast<std::uint32_t>(message.size());
  for (int shift = 24; shift >= 0; shift -= 8) req.body.push_back(static_cast<char>(n >> shift));
  req.body += message;
  return req;
}

GrpcHealth read_grpc_health(const Response& response) {
  GrpcHealth out;
  if (response.status != 200) return out;
  const bool in_trailers = response.trailers.get("grpc-status").has_value();
  const Headers& where = in_trailers ? response.trailers : response.headers;
  const auto status = where.get("grpc-status");
  if (!status) return out;
  int code = 0;
  bool digits = !status->empty() && status->size() <= 3;
  for (char c : *status) {
    if (c < '0' || c > '9') digits = false;
    if (digits) code = code * 10 + (c - '0');
  }
  if (!digits) return out;
  out.grpc = true;
  out.grpc_status = code;
  if (const auto message = where.get("grpc-message")) out.grpc_message = internal::percent_decode(*message, false);
  if (code == 0) out.serving_status = read_serving_status(response.body, out.malformed);
  return out;
}

std::string_view grpc_status_name(int code) {
  static constexpr std::array<std::string_view, 17> kNames = {"OK",
                                                              "CANCELLED",
                                                              "UNKNOWN",
                                                              "INVALID_ARGUMENT",
                                                              "DEADLINE_EXCEEDED",
                                                              "NOT_FOUND",
                                                              "ALREADY_EXISTS",
                                                              "PERMISSION_DENIED",
                                                              "RESOURCE_EXHAUSTED",
                                                              "FAILED_PRECONDITION",
                                                              "ABORTED",
                                                              "OUT_OF_RANGE",
                                                              "UNIMPLEMENTED",
                                                              "INTERNAL",
                                                              "UNAVAILABLE",
                                                              "DATA_LOSS",
                                                              "UNAUTHENTICATED"};
  if (code < 0 || code >= static_cast<int>(kNames.size())) return "UNKNOWN_CODE";
  return kNames[static_cast<std::size_t>(code)];
}

std::string grpc_serving_status_name(int status) {
  switch (status) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "STATUS_" + std::to_string(status);
  }
}

std::string GrpcHealth::describe(int http_status) const {
  if (!grpc) {
    return http_status == 200 ? std::string("HTTP 200 without grpc-status (not a gRPC answer)")
                              : "HTTP " + std::to_string(http_status);
  }
  if (grpc_status != 0) {
    std::string s = "grpc-status " + std::to_string(grpc_status) + " (" +
                    std::string(grpc_status_name(grpc_status));
    if (!grpc_message.empty()) s += ": " + grpc_message.substr(0, 200);
    s += ")";
    return s;
  }
  if (!malformed.empty()) return "an unreadable HealthCheckResponse (" + malformed + ")";
  return grpc_serving_status_name(serving_status);
}

}  // namespace prescale::http
