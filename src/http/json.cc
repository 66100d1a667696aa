#include "http/json.h"

#include <string>

namespace prescale::http {
namespace {

using nlohmann::json;

// The DOM builder of nlohmann-json with two changes: errors are recorded instead of thrown,
// and nesting deeper than kMaxJsonDepth stops the parse.
class RecordingSax : public nlohmann::detail::json_sax_dom_parser<json> {
 public:
  explicit RecordingSax(json& result) : json_sax_dom_parser(result, /*allow_exceptions=*/false) {}

  bool start_object(std::size_t len) {
    if (++depth_ > kMaxJsonDepth) return too_deep();
    return json_sax_dom_parser::start_object(len);
  }
  bool end_object() {
    --depth_;
    return json_sax_dom_parser::end_object();
  }
  bool start_array(std::size_t len) {
    if (++depth_ > kMaxJsonDepth) return too_deep();
    return json_sax_dom_parser::start_array(len);
  }
  bool end_array() {
    --depth_;
    return json_sax_dom_parser::end_array();
  }

  template <class Exception>
  bool parse_error(std::size_t position, const std::string& /*last_token*/, const Exception& ex) {
    failed_ = true;
    // `position` counts the bytes read including the offending one.
    offset_ = position > 0 ? position - 1 : 0;
    message_ = ex.what();
    // Drop the "[json.exception.parse_error.101] " id, and a "parse error at line 1, column 5: "
    // that follows it; the byte offset is reported instead (bodies are rarely multi-line).
    // Other errors ("[json.exception.out_of_range.406] number overflow parsing '1e400'") have
    // only the id.
    if (message_.starts_with('[')) {
      if (auto bracket = message_.find("] "); bracket != std::string::npos) {
        message_.erase(0, bracket + 2);
      }
    }
    if (message_.starts_with("parse error")) {
      if (auto colon = message_.find(": "); colon != std::string::npos) {
        message_.erase(0, colon + 2);
      }
    }
    return false;
  }

  bool failed() const { return failed_; }
  size_t offset() const { return offset_; }
  const std::string& message() const { return message_; }
  bool too_deep_failure() const { return too_deep_; }

 private:
  bool too_deep() {
    failed_ = true;
    too_deep_ = true;
    message_ = "nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return false;
  }

  size_t depth_ = 0;
  bool failed_ = false;
  bool too_deep_ = false;
  size_t offset_ = 0;
  std::string message_;
};

// Byte offset of the first bracket that exceeds the depth limit (found by a scan that skips
// strings); used only to build the error message.
size_t offset_of_depth_overflow(std::string_view s) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return s.size();
}

}  // namespace

Result<nlohmann::json> parse_json(std::string_view body) {
  // The parser takes a NUL as the end of its input; RFC 8259 allows none anywhere (inside a
  // string a control character must be escaped), so what follows one is not ignored.
  if (const size_t nul = body.find('\0'); nul != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid JSON at byte " + std::to_string(nul) + ": NUL byte");
  }
  json result;
  RecordingSax sax(result);
  const bool ok = json::sax_parse(body, &sax);
  if (!ok || sax.failed()) {
    size_t offset = sax.offset();
    if (sax.too_deep_failure()) offset = offset_of_depth_overflow(body);
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid JSON at byte " + std::to_string(offset) + ": " + sax.message());
  }
  return result;
}

Response json_response(int status, const nlohmann::json& value) {
  return Response::json(status, value.dump(-1, ' ', false, json::error_handler_t::replace));
}

Response error_response(int status, std::string_view code, std::string_view message) {
  json body = {{"error", {{"code", code}, {"message", message}}}};
  return json_response(status, body);
}

}  // namespace prescale::http
