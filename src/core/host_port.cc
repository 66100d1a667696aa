#include "core/host_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace prescale {

namespace {

// RFC 3986 section 2.3.
bool is_unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// 0..15 for a hex digit, else -1.
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// What no host name or zone id holds: a space, a control character, or a delimiter of the
// authority ("a/b", "a]b").
bool has_stray_character(std::string_view name) {
  return std::any_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || c == ':' || c == '[' || c == ']' || c == '/';
  });
}

}  // namespace

HostPortParts split_host_port(std::string_view text, uint16_t min_port) {
  HostPortParts out;
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return out;
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return out;
    host = host.substr(1, host.size() - 2);
    const size_t zone = host.find('%');
    const std::string address(host.substr(0, zone));
    in6_addr parsed{};
    if (inet_pton(AF_INET6, address.c_str(), &parsed) != 1 || host.ends_with('%') ||
        (zone != std::string_view::npos && (has_stray_character(host.substr(zone + 1)) ||
                                            host.find('%', zone + 1) != std::string_view::npos))) {
      out.fault = HostPortFault::kNotIpv6;
      return out;
    }
  } else if (has_stray_character(host)) {
    return out;
  }
  out.host = host;
  out.port_text = text.substr(colon + 1);
  unsigned port = 0;
  const char* first = out.port_text.data();
  const char* last = first + out.port_text.size();
  const auto [end, ec] = std::from_chars(first, last, port);
  if (out.port_text.empty() || ec != std::errc() || end != last || port < min_port ||
      port > 65535) {
    out.fault = HostPortFault::kPort;
    return out;
  }
  if (out.port_text.size() > 1 && out.port_text.front() == '0') {
    out.fault = HostPortFault::kLeadingZero;
    return out;
  }
  out.fault = HostPortFault::kNone;
  out.port = static_cast<uint16_t>(port);
  return out;
}

std::string host_port(std::string_view host, uint16_t port) {
  std::string out;
  out.reserve(host.size() + 8);  // brackets, ':' and five digits
  append_host_port(out, host, port);
  return out;
}

void append_host_port(std::string& out, std::string_view host, uint16_t port) {
  const bool bracket = host.find(':') != std::string_view::npos && !host.starts_with('[');
  if (bracket) out += '[';
  out += host;
  if (bracket) out += ']';
  out += ':';
  char digits[5];  // 65535
  const auto end = std::to_chars(digits, digits + sizeof digits, port).ptr;
  out.append(digits, end);
}

void append_without_zone(std::string& out, std::string_view authority) {
  const size_t zone = authority.find('%');
  const size_t close = authority.find(']');
  if (!authority.starts_with('[') || close == std::string_view::npos || zone > close) {
    out += authority;
    return;
  }
  out += authority.substr(0, zone);
  out += authority.substr(close);
}

std::string url_authority(std::string_view host, uint16_t port) {
  const size_t zone = host.find('%');
  if (zone == std::string_view::npos || host.find(':') == std::string_view::npos ||
      host.starts_with('[')) {
    return host_port(host, port);
  }
  std::string escaped(host.substr(0, zone));
  escaped += "%25";
  for (const char c : host.substr(zone + 1)) {
    if (is_unreserved(c)) {
      escaped += c;
    } else {
      constexpr char kHex[] = "0123456789ABCDEF";
      const auto byte = static_cast<unsigned char>(c);
      escaped += '%';
      escaped += kHex[byte >> 4];
      escaped += kHex[byte & 0xF];
    }
  }
  return host_port(escaped, port);
}

std::string url_host(std::string_view host) {
  const size_t zone = host.find("%25");
  if (zone == std::string_view::npos || host.find(':') == std::string_view::npos) {
    return std::string(host);
  }
  std::string out(host.substr(0, zone));
  out += '%';
  // The zone's own escapes (http's percent_decode is out of core's reach); a malformed one stays.
  const std::string_view id = host.substr(zone + 3);
  for (size_t i = 0; i < id.size(); ++i) {
    const int hi = id[i] == '%' && i + 2 < id.size() ? hex_value(id[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_value(id[i + 2]) : -1;
    if (lo >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += id[i];
    }
  }
  return out;
}

namespace {

Result<HttpUrl> parse_url(std::string_view url, bool https_too) {
  auto bad = [](std::string why) {
    return make_error(ErrorCode::kInvalidArgument, std::move(why));
  };
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos)
    return bad(https_too ? "missing http:// or https://" : "missing http://");
  // The scheme is case-insensitive (RFC 3986 section 3.1).
  std::string scheme(url.substr(0, scheme_end + 3));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool https = scheme == "https://";
  if (scheme != "http://" && !(https_too && https)) {
    return bad(https_too ? "only http:// and https:// are supported" : "only http:// is supported");
  }
  const std::string_view rest = url.substr(scheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return bad("the URL may hold a path but no query or fragment");
  }
  const size_t slash = rest.find('/');
  std::string authority(rest.substr(0, slash));
  if (authority.find('@') != std::string::npos) {
    return bad("user information (user@) is not supported");
  }
  if (authority.empty() || authority.starts_with(':')) return bad("missing host");
  if (authority.ends_with(':')) return bad("empty port");
  const bool bracketed = authority.starts_with('[');
  if (bracketed ? authority.ends_with(']') : authority.find(':') == std::string::npos) {
    authority += https ? ":443" : ":80";
  }
  const HostPortParts parts = split_host_port(authority, 1);
  switch (parts.fault) {
    case HostPortFault::kNone:
      break;
    case HostPortFault::kShape:
      return bad("the host must be a name or an IP address, without spaces or control characters");
    case HostPortFault::kNotIpv6:
      return bad("the host in brackets must be an IPv6 address");
    case HostPortFault::kPort:
      return bad("port must be 1..65535, got \"" + std::string(parts.port_text) + "\"");
    case HostPortFault::kLeadingZero:
      return bad("port must be written without leading zeros, got \"" +
                 std::string(parts.port_text) + "\"");
  }
  return HttpUrl{url_host(parts.host), parts.port,
                 slash == std::string_view::npos ? std::string() : std::string(rest.substr(slash)),
                 https};
}

}  // namespace

Result<HttpUrl> parse_http_url(std::string_view url) { return parse_url(url, false); }

Result<HttpUrl> parse_web_url(std::string_view url) { return parse_url(url, true); }

}  // namespace prescale
