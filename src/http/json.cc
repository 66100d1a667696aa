#include "http/json.h"

#include <string>
#include <unordered_set>
#include <vector>

namespace prescale::http {
namespace {

using nlohmann::json;

// The DOM builder of nlohmann-json with three changes: errors are recorded instead of thrown,
// nesting deeper than kMaxJsonDepth stops the parse, and so does a key given twice in one object
// (the DOM keeps the last without a word: {"V14": 0, ..., "V14": -10} scored on -10).
class RecordingSax : public nlohmann::detail::json_sax_dom_parser<json> {
 public:
  explicit RecordingSax(json& result) : json_sax_dom_parser(result, /*allow_exceptions=*/false) {}

  bool start_object(std::size_t len) {
    if (++depth_ > kMaxJsonDepth) return too_deep();
    keys_.emplace_back();
    return json_sax_dom_parser::start_object(len);
  }
  bool end_object() {
    --depth_;
    keys_.pop_back();
    return json_sax_dom_parser::end_object();
  }
  bool key(json::string_t& name) {
    ++key_count_;
    if (!keys_.back().insert(name).second) {
      failed_ = true;
      duplicate_key_ = key_count_;
      message_ = "key \"" + name + "\" given twice in one object";
      return false;
    }
    return json_sax_dom_parser::key(name);
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
  // 1-based, among all the keys of the document; 0 when no key was given twice.
  size_t duplicate_key() const { return duplicate_key_; }

 private:
  bool too_deep() {
    failed_ = true;
    too_deep_ = true;
    message_ = "nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return false;
  }

  size_t depth_ = 0;
  std::vector<std::unordered_set<std::string>> keys_;  // of each object being parsed
  size_t key_count_ = 0;
  size_t duplicate_key_ = 0;
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

// Byte offset of the n-th (1-based) object key of a document that parsed up to it; used only to
// build the error message.
size_t offset_of_key(std::string_view s, size_t n) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '"') continue;
    const size_t start = i;
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\') ++i;
    }
    size_t next = i + 1;
    while (next < s.size() && (s[next] == ' ' || s[next] == '\t' || s[next] == '\n' ||
                               s[next] == '\r')) {
      ++next;
    }
    if (next < s.size() && s[next] == ':' && --n == 0) return start;
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
    if (sax.duplicate_key() > 0) offset = offset_of_key(body, sax.duplicate_key());
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
