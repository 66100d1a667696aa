#include "gateway/internal/grpc_reply.h"

#include <cstdint>
#include <string>
#include <utility>

#include "http/json.h"

namespace prescale::gateway::internal {
namespace {

// gRPC's percent-encoding of grpc-message: bytes outside 0x20..0x7E, and '%', as %XX.
std::string percent_encoded(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7E || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += ch;
    }
  }
  return out;
}

// "no_healthy_upstream: no replica of cart is in service" from the gateway's JSON error body;
// "HTTP 502" for any other body.
std::string message_of(const http::Response& response) {
  if (auto parsed = http::parse_json(response.body)) {
    const nlohmann::json& j = *parsed;
    if (j.is_object() && j.contains("error") && j["error"].is_object()) {
      const nlohmann::json& e = j["error"];
      std::string out;
      if (e.contains("code") && e["code"].is_string()) out = e["code"].get<std::string>();
      if (e.contains("message") && e["message"].is_string()) {
        if (!out.empty()) out += ": ";
        out += e["message"].get<std::string>();
      }
      if (!out.empty()) return out;
    }
  }
  return "HTTP " + std::to_string(response.status);
}

}  // namespace

bool is_grpc_request(const http::Request& request) {
  const auto type = request.headers.get("content-type");
  if (!type || !type->starts_with("application/grpc")) return false;
  const std::string_view rest = type->substr(16);
  return rest.empty() || rest.front() == '+' || rest.front() == ';';
}

int grpc_status_for_http(int http_status) {
  switch (http_status) {
    case 400:
      return 13;  // INTERNAL
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;  // UNAVAILABLE
    default:
      return 2;  // UNKNOWN
  }
}

void to_grpc_answer(http::Response& response) {
  if (response.status == 200 || response.stream != nullptr || response.tunnel != nullptr ||
      response.headers.get("grpc-status") || response.trailers.get("grpc-status")) {
    return;
  }
  const std::string message = percent_encoded(message_of(response));
  const auto given = response.headers.get(kGrpcStatusOverride);
  http::Headers headers;
  headers.set("content-type", "application/grpc");
  headers.set("grpc-status",
              given ? std::string(*given) : std::to_string(grpc_status_for_http(response.status)));
  headers.set("grpc-message", message);
  if (auto id = response.headers.get("x-request-id")) headers.set("x-request-id", std::string(*id));
  response.status = 200;
  response.headers = std::move(headers);
  response.body.clear();
  response.trailers = http::Headers();
}

std::optional<std::chrono::milliseconds> parse_grpc_timeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  // Counted in milliseconds: 8 digits of hours are under 3.6e14 ms.
  std::uint64_t ms = 0;
  switch (value.back()) {
    case 'H':
      ms = n * 3'600'000;
      break;
    case 'M':
      ms = n * 60'000;
      break;
    case 'S':
      ms = n * 1000;
      break;
    case 'm':
      ms = n;
      break;
    case 'u':
      ms = (n + 999) / 1000;
      break;
    case 'n':
      ms = (n + 999'999) / 1'000'000;
      break;
    default:
      return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

}  // namespace prescale::gateway::internal
