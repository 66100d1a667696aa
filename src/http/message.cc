#include "http/message.h"

#include <algorithm>

#include "http/internal/wire.h"

namespace prescale::http {

using internal::iequals;

std::string_view to_string(Method m) {
  switch (m) {
    case Method::kGet:
      return "GET";
    case Method::kHead:
      return "HEAD";
    case Method::kPost:
      return "POST";
    case Method::kPut:
      return "PUT";
    case Method::kPatch:
      return "PATCH";
    case Method::kDelete:
      return "DELETE";
    case Method::kOptions:
      return "OPTIONS";
    case Method::kOther:
      return "OTHER";
  }
  return "OTHER";
}

Method method_from_string(std::string_view s) {
  // Methods are case-sensitive (RFC 9110, section 9.1).
  if (s == "GET") return Method::kGet;
  if (s == "HEAD") return Method::kHead;
  if (s == "POST") return Method::kPost;
  if (s == "PUT") return Method::kPut;
  if (s == "PATCH") return Method::kPatch;
  if (s == "DELETE") return Method::kDelete;
  if (s == "OPTIONS") return Method::kOptions;
  return Method::kOther;
}

void Headers::add(std::string name, std::string value) {
  fields_.emplace_back(std::move(name), std::move(value));
}

void Headers::set(std::string name, std::string value) {
  remove(name);
  fields_.emplace_back(std::move(name), std::move(value));
}

void Headers::remove(std::string_view name) {
  std::erase_if(fields_, [&](const auto& f) { return iequals(f.first, name); });
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
  for (const auto& [n, v] : fields_) {
    if (iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

void Headers::clear() { fields_.clear(); }

std::optional<std::string_view> Request::param(std::string_view name) const {
  for (const auto& [n, v] : path_params) {
    if (n == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    // Only the decoded key counts: "a%62" is the key "ab", never the key "a%62".
    if (internal::percent_decoded_equals(key, name, true)) {
      return internal::percent_decode(value, true);
    }
  }
  return std::nullopt;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.add("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.add("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

}  // namespace prescale::http
