#include "http/internal/wire.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <iterator>

#include "core/host_port.h"

namespace prescale::http::internal {
namespace {

void append_number(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  (void)ec;
  out.append(buf, end);
}

// RFC 9110 tchar, as a table: this runs for every byte of every response header name.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool is_tchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }

bool is_framing_field(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
         iequals(name, "connection");
}

// Returns whether one of the fields written is Upgrade.
bool append_fields(std::string& out, const Headers& headers) {
  bool upgrade = false;
  for (const auto& [name, value] : headers.fields()) {
    if (is_framing_field(name) || !valid_field(name, value)) continue;
    if (name.size() == 7 && iequals(name, "upgrade")) upgrade = true;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  return upgrade;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i] && ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

std::string lower_cased(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The character `s` holds at `i` once decoded; `i` moves past what was read.
char decoded_char(std::string_view s, size_t& i, bool plus_as_space) {
  if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
    const char c = static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
    i += 3;
    return c;
  }
  const char c = s[i++];
  return plus_as_space && c == '+' ? ' ' : c;
}

}  // namespace

std::string percent_decode(std::string_view s, bool plus_as_space) {
  if (s.find('%') == std::string_view::npos &&
      (!plus_as_space || s.find('+') == std::string_view::npos)) {
    return std::string(s);
  }
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(decoded_char(s, i, plus_as_space));
  return out;
}

std::optional<std::string> normalized_percent_encoding(std::string_view s) {
  auto valid_escape = [&](size_t i) {
    return i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0;
  };
  auto unreserved = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
  };
  auto decoded = [&](size_t i) {
    return static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
  };
  auto lower_hex = [](char c) { return c >= 'a' && c <= 'f'; };
  // The first escape not in normal form. Most paths with escapes have none ("%20", "%C3%A9"):
  // they are answered without building a copy.
  size_t i = s.find('%');
  while (i != std::string_view::npos &&
         !(valid_escape(i) &&
           (unreserved(decoded(i)) || lower_hex(s[i + 1]) || lower_hex(s[i + 2])))) {
    i = s.find('%', i + 1);
  }
  if (i == std::string_view::npos) return std::nullopt;
  auto upper = [](char c) { return c >= 'a' && c <= 'f' ? static_cast<char>(c - 'a' + 'A') : c; };
  std::string out;
  out.reserve(s.size());
  out.append(s.substr(0, i));
  while (i < s.size()) {
    if (s[i] != '%' || !valid_escape(i)) {
      out.push_back(s[i++]);
      continue;
    }
    if (const char c = decoded(i); unreserved(c)) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(upper(s[i + 1]));
      out.push_back(upper(s[i + 2]));
    }
    i += 3;
  }
  return out;
}

bool percent_decoded_equals(std::string_view encoded, std::string_view decoded,
                            bool plus_as_space) {
  size_t i = 0;
  for (char want : decoded) {
    if (i == encoded.size() || decoded_char(encoded, i, plus_as_space) != want) return false;
  }
  return i == encoded.size();
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

bool valid_field(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!is_tchar(c)) return false;
  }
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string_view http_date_now() {
  struct Cache {
    std::time_t second = -1;
    char text[32] = {};
    size_t size = 0;
  };
  thread_local Cache cache;
  const std::time_t t = std::time(nullptr);
  if (t != cache.second) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    // strftime's %a and %b follow the locale; an HTTP date's names are fixed English ones.
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const int n = std::snprintf(
        cache.text, sizeof(cache.text), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
        tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cache.size = n > 0 ? static_cast<size_t>(n) : 0;
    cache.second = t;
  }
  return {cache.text, cache.size};
}

bool trailer_allowed(std::string_view name, std::string_view value) {
  static constexpr std::string_view kForbidden[] = {
      "content-length", "transfer-encoding", "connection",       "keep-alive",
      "proxy-connection", "te",              "trailer",          "upgrade",
      "host",           "content-type",      "content-encoding", "content-range",
  };
  if (!valid_field(name, value)) return false;
  return std::none_of(std::begin(kForbidden), std::end(kForbidden),
                      [&](std::string_view f) { return iequals(name, f); });
}

void append_last_chunk(std::string& out, const Headers& trailers) {
  out += "0\r\n";
  for (const auto& [name, value] : trailers.fields()) {
    if (!trailer_allowed(name, value)) continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "\r\n";
}

void append_response_head(std::string& out, const Response& response,
                          std::optional<uint64_t> content_length, ConnectionHeader connection,
                          bool chunked) {
  out += "HTTP/1.1 ";
  append_number(out, static_cast<uint64_t>(response.status));
  out += ' ';
  out += reason_phrase(response.status);
  out += "\r\n";
  if (!response.headers.get("Server")) out += "Server: prescale\r\n";
  if (!response.headers.get("Date")) {
    out += "Date: ";
    out += http_date_now();
    out += "\r\n";
  }
  // Whoever sends Upgrade names it in Connection too (RFC 9110 section 7.8): a 101, or a 426
  // naming what it requires.
  const bool upgrade = append_fields(out, response.headers);
  const bool no_length = response.status / 100 == 1 || response.status == 204;
  if (chunked && !no_length) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (content_length && !no_length) {
    out += "Content-Length: ";
    append_number(out, *content_length);
    out += "\r\n";
  }
  switch (connection) {
    case ConnectionHeader::kNone:
      if (upgrade) out += "Connection: upgrade\r\n";
      break;
    case ConnectionHeader::kClose:
      out += upgrade ? "Connection: close, upgrade\r\n" : "Connection: close\r\n";
      break;
    case ConnectionHeader::kKeepAlive:
      out += upgrade ? "Connection: keep-alive, upgrade\r\n" : "Connection: keep-alive\r\n";
      break;
    case ConnectionHeader::kUpgrade:
      out += "Connection: upgrade\r\n";
      break;
  }
  out += "\r\n";
}

std::string_view request_method_token(const Request& request) {
  if (request.method == Method::kOther) return request.method_name;
  return to_string(request.method);
}

std::string host_field(std::string_view host, uint16_t port, uint16_t default_port) {
  std::string field;
  append_without_zone(field, host_port(host, port));
  if (port == default_port) field.resize(field.size() - std::to_string(port).size() - 1);  // ":80"
  return field;
}

void append_request_head(std::string& out, const Request& request, std::string_view host_header) {
  out += request_method_token(request);
  out += ' ';
  if (!request.target.empty()) {
    out += request.target;
  } else {
    out += request.path.empty() ? std::string_view("/") : std::string_view(request.path);
    if (!request.query.empty()) {
      out += '?';
      out += request.query;
    }
  }
  out += " HTTP/1.1\r\n";
  if (!request.headers.get("Host")) {
    out += "Host: ";
    out += host_header;
    out += "\r\n";
  }
  append_fields(out, request.headers);
  const bool body_method = request.method == Method::kPost || request.method == Method::kPut ||
                           request.method == Method::kPatch;
  if (!request.body.empty() || body_method) {
    out += "Content-Length: ";
    append_number(out, request.body.size());
    out += "\r\n";
  }
  if (auto c = request.headers.get("Connection"); c && has_token(*c, "close")) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
}

std::string_view origin_form(std::string_view target) {
  if (target.empty() || target.front() == '/') return target;
  const size_t scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0) return target;
  for (char c : target.substr(0, scheme_end)) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return target;
    }
  }
  const std::string_view rest = target.substr(scheme_end + 3);
  const size_t path = rest.find_first_of("/?");
  // "http://h" and "http://h?q" name no path: the parser takes an empty path as "/".
  return path == std::string_view::npos ? std::string_view("/") : rest.substr(path);
}

bool valid_target(std::string_view target) {
  for (char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
  }
  return true;
}

void split_target(std::string_view target, std::string& path, std::string& query) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    path.assign(target);
    query.clear();
  } else {
    path.assign(target.substr(0, q));
    query.assign(target.substr(q + 1));
  }
}

namespace {

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Connection-specific fields have no place in HTTP/2 (RFC 9113 section 8.2.2); Host is
// :authority. TE is sent as `te: trailers`, the one value HTTP/2 allows.
bool dropped_h2_request_field(std::string_view lower_name) {
  return lower_name == "connection" || lower_name == "keep-alive" ||
         lower_name == "proxy-connection" || lower_name == "transfer-encoding" ||
         lower_name == "upgrade" || lower_name == "te" || lower_name == "host";
}

}  // namespace

bool h2_request_fields(std::string_view head, std::string& names,
                       std::vector<std::pair<std::string_view, std::string_view>>& out) {
  names.clear();
  names.reserve(head.size());  // every name fits: no reallocation moves the views
  auto line_end = head.find("\r\n");
  if (line_end == std::string_view::npos) return false;
  const std::string_view line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  const size_t first = out.size();
  out.emplace_back(":method", line.substr(0, sp1));
  out.emplace_back(":scheme", "http");
  out.emplace_back(":authority", std::string_view());
  out.emplace_back(":path", line.substr(sp1 + 1, sp2 - sp1 - 1));
  head.remove_prefix(line_end + 2);
  while (!head.empty()) {
    line_end = head.find("\r\n");
    if (line_end == std::string_view::npos) return false;
    const std::string_view field = head.substr(0, line_end);
    head.remove_prefix(line_end + 2);
    if (field.empty()) break;
    const auto colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    const size_t at = names.size();
    names.append(field.data(), colon);
    for (size_t i = at; i < names.size(); ++i) names[i] = ascii_lower(names[i]);
    const std::string_view name(names.data() + at, colon);
    const std::string_view value = trim_ows(field.substr(colon + 1));
    if (name == "host") {
      out[first + 2].second = value;
      names.resize(at);
    } else if (dropped_h2_request_field(name)) {
      names.resize(at);
    } else {
      out.emplace_back(name, value);
    }
  }
  out.emplace_back("te", "trailers");
  return !out[first + 2].second.empty();
}

}  // namespace prescale::http::internal
