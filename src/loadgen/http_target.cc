#include "loadgen/http_target.h"

#include <cctype>
#include <charconv>

#include "core/host_port.h"

namespace prescale::loadgen {

Result<TargetUrl> parse_target_url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return make_error(
        ErrorCode::kInvalidArgument,
        why + " (expected http://HOST[:PORT][/PREFIX], got \"" + std::string(url) + "\")");
  };
  constexpr std::string_view kScheme = "http://";
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return bad("missing http://");
  // The scheme is case-insensitive (RFC 3986 section 3.1).
  std::string scheme(url.substr(0, scheme_end + 3));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != kScheme) return bad("only http:// is supported");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return bad("the URL may hold a path prefix but no query or fragment");
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos) {
    return bad("user information (user@) is not supported");
  }
  TargetUrl out;
  if (slash != std::string_view::npos) {
    out.path_prefix = std::string(rest.substr(slash));
    while (!out.path_prefix.empty() && out.path_prefix.back() == '/') out.path_prefix.pop_back();
  }
  std::string_view port_text;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    out.host = url_host(authority.substr(1, close - 1));  // an IPv6 zone after "%25"
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    const size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (out.host.empty()) return bad("missing host");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return bad("port must be 1..65535");
    }
    out.port = static_cast<uint16_t>(port);
  }
  return out;
}

HttpTarget::HttpTarget(TargetUrl url, HttpTargetOptions options)
    : url_(std::move(url)),
      client_(http::ClientOptions{.connect_timeout = options.connect_timeout,
                                  .max_idle_per_host = options.max_idle_connections,
                                  .threads = std::max(1, options.io_threads)}) {}

void HttpTarget::send(http::Request req, std::chrono::milliseconds timeout,
                      std::function<void(Result<int>)> done) {
  if (!url_.path_prefix.empty()) req.target = url_.path_prefix + req.target;
  client_.async_request(
      url_.host, url_.port, std::move(req),
      [done = std::move(done)](Result<http::Response> r) {
        if (r) {
          done(r->status);
        } else {
          done(std::unexpected(r.error()));
        }
      },
      timeout);
}

}  // namespace prescale::loadgen
