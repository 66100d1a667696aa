// JSON bodies for HTTP handlers: parsing request bodies into nlohmann::json without exceptions,
// and building JSON responses, including the project-wide error shape
//   {"error":{"code":"not_found","message":"..."}}
//
// All functions are thread-safe (no shared state) and never throw on bad input.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "core/result.h"
#include "http/message.h"

namespace prescale::http {

// Deepest nesting of arrays/objects parse_json accepts; deeper input is rejected so a hostile
// body cannot exhaust memory or stack in later recursive processing.
inline constexpr size_t kMaxJsonDepth = 256;

// Parses a complete JSON document. On failure the error is kInvalidArgument and its message
// names the 0-based byte offset of the problem, e.g. "invalid JSON at byte 7: ...".
Result<nlohmann::json> parse_json(std::string_view body);

// `value` serialized compactly, with Content-Type: application/json. Invalid UTF-8 in strings
// is replaced by U+FFFD instead of failing.
Response json_response(int status, const nlohmann::json& value);

// {"error":{"code":<code>,"message":<message>}} with the given status.
Response error_response(int status, std::string_view code, std::string_view message);

}  // namespace prescale::http
