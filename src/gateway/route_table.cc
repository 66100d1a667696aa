#include "gateway/route_table.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <tuple>

#include "http/internal/wire.h"

namespace prescale::gateway {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// `text` with its percent-encoding in the normal form requests are matched in ("%7e" is "~").
std::string normal_encoding(std::string_view text) {
  std::optional<std::string> normal = http::internal::normalized_percent_encoding(text);
  return normal ? std::move(*normal) : std::string(text);
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = lower(c);
  return out;
}

// One segment of a whole-path pattern.
struct Segment {
  enum class Kind { kLiteral, kParam, kCatchAll };
  Kind kind = Kind::kLiteral;
  std::string literal;
};

// Splits a pattern in http::Router syntax. The config loader has already checked it and
// reported problems with their line; this only guards tables built from hand-made configs.
Result<std::vector<Segment>> parse_pattern(const std::string& pattern) {
  auto bad = [&](std::string_view why) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid path pattern \"" + pattern + "\": " + std::string(why));
  };
  if (pattern.empty() || pattern.front() != '/') return bad("must start with '/'");
  std::vector<Segment> segments;
  if (pattern == "/") return segments;
  std::string_view rest = std::string_view(pattern).substr(1);
  while (true) {
    const std::size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    if (!segments.empty() && segments.back().kind == Segment::Kind::kCatchAll) {
      return bad("a {name...} segment must be the last one");
    }
    if (seg.empty()) return bad("empty segment");
    if (seg.front() == '{') {
      if (seg.back() != '}' || seg.size() < 3) return bad("malformed parameter");
      const bool catch_all = seg.ends_with("...}");
      if (catch_all && seg.size() < 6) return bad("malformed parameter");
      segments.push_back({catch_all ? Segment::Kind::kCatchAll : Segment::Kind::kParam, ""});
    } else {
      if (seg.find_first_of("{}") != std::string_view::npos) return bad("'{' inside a segment");
      segments.push_back({Segment::Kind::kLiteral, normal_encoding(seg)});
    }
    if (slash == std::string_view::npos) return segments;
    rest = rest.substr(slash + 1);
  }
}

// Whether `path` (starting with '/') fits the pattern. Linear: a pattern has one shape, and
// precedence between patterns comes from the table's order, so there is nothing to backtrack.
bool matches_pattern(const std::vector<Segment>& segments, std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  // "/" has no segments; "/a/" has "a" and "".
  std::string_view rest = path.substr(1);
  bool more = path.size() > 1;
  for (const Segment& seg : segments) {
    if (seg.kind == Segment::Kind::kCatchAll) return true;
    if (!more) return false;
    const std::size_t slash = rest.find('/');
    const std::string_view piece = rest.substr(0, slash);
    if (seg.kind == Segment::Kind::kLiteral ? piece != seg.literal : piece.empty()) return false;
    more = slash != std::string_view::npos;
    rest = more ? rest.substr(slash + 1) : std::string_view();
  }
  return !more;
}

// The host a request names, ready to compare: no port, no trailing dot, lower case, in `buf`.
// Empty when the host is too long to be a real one (it then only matches routes for any host).
std::string_view normalize_host(std::string_view host, std::array<char, 256>& buf) {
  if (host.starts_with('[')) {
    host = host.substr(0, host.find(']') + 1);  // "[::1]:8080" -> "[::1]"
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (host.ends_with('.')) host.remove_suffix(1);
  if (host.size() > buf.size()) return {};
  for (std::size_t i = 0; i < host.size(); ++i) buf[i] = lower(host[i]);
  return {buf.data(), host.size()};
}

// The retry engine's policy for a route's `retries` block.
RetryPolicy retry_policy(const RetryPolicyConfig& config) {
  auto on = [&](::prescale::RetryOn cause) {
    return std::find(config.retry_on.begin(), config.retry_on.end(), cause) !=
           config.retry_on.end();
  };
  RetryPolicy policy;
  policy.num_retries = static_cast<std::uint32_t>(std::max(0, config.num_retries));
  policy.retry_on.server_error = on(::prescale::RetryOn::k5xx);
  policy.retry_on.gateway_error = on(::prescale::RetryOn::kGatewayError);
  policy.retry_on.connect_failure = on(::prescale::RetryOn::kConnectFailure);
  policy.retry_on.reset = on(::prescale::RetryOn::kReset);
  // Listing codes is enough to retry on them, as in the config loader.
  policy.retry_on.retriable_status_codes =
      on(::prescale::RetryOn::kRetriableStatusCodes) || !config.retriable_status_codes.empty();
  policy.retriable_status_codes = config.retriable_status_codes;
  std::sort(policy.retriable_status_codes.begin(), policy.retriable_status_codes.end());
  policy.idempotent_methods_only = !config.retryable;
  return policy;
}

}  // namespace

std::string_view RouteRateLimit::api_key(const http::Request& request) const {
  if (key != Key::kHeader) return {};
  return request.headers.get(header).value_or(std::string_view());
}

// A route ready to be tested against a request, and the groups of routes sharing a host.
struct RouteTable::Impl {
  struct Compiled {
    const Route* route = nullptr;
    std::string prefix;             // for a prefix route
    std::vector<Segment> segments;  // for a pattern route
    bool is_pattern = false;
    std::vector<std::pair<std::string, std::string>> headers;  // name, exact value
    std::vector<std::string> headers_present;

    bool matches(std::string_view path, const http::Headers& request_headers) const {
      if (is_pattern ? !matches_pattern(segments, path) : !path.starts_with(prefix)) return false;
      for (const auto& [name, value] : headers) {
        const std::optional<std::string_view> got = request_headers.get(name);
        if (!got || *got != value) return false;
      }
      for (const std::string& name : headers_present) {
        if (!request_headers.get(name)) return false;
      }
      return true;
    }
  };

  enum class HostKind { kExact, kWildcard, kAny };

  // Routes for one host, [begin, end) in `compiled`, most specific first.
  struct HostGroup {
    HostKind kind = HostKind::kAny;
    std::string host;  // exact: the host; wildcard: the suffix with its dot (".example.com")
    std::size_t begin = 0;
    std::size_t end = 0;
  };

  std::vector<Route> routes;  // config order; never resized after build
  std::vector<Compiled> compiled;
  std::vector<HostGroup> groups;  // exact (sorted by host), wildcard (longest first), any
  std::size_t exact_groups = 0;

  const Route* first_match(const HostGroup& group, std::string_view path,
                           const http::Headers& headers) const {
    for (std::size_t i = group.begin; i < group.end; ++i) {
      if (compiled[i].matches(path, headers)) return compiled[i].route;
    }
    return nullptr;
  }
};

RouteTable::RouteTable(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}
RouteTable::RouteTable(RouteTable&&) noexcept = default;
RouteTable& RouteTable::operator=(RouteTable&&) noexcept = default;
RouteTable::~RouteTable() = default;

std::span<const Route> RouteTable::routes() const { return impl_->routes; }

Result<RouteTable> RouteTable::build(const GatewayConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->routes.reserve(config.routes.size());  // Compiled entries point into it

  struct Ranked {
    Impl::HostKind host_kind;
    std::string group_host;
    Impl::Compiled compiled;
    // Larger is more specific; compared in this order, then config order.
    std::size_t header_count;
    std::size_t literal_begin;
    std::size_t literal_total;
    bool no_catch_all;
  };
  std::vector<Ranked> ranked;

  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    const RouteConfig& rc = config.routes[i];
    const RouteMatch& m = rc.match;
    Route& route = impl->routes.emplace_back();
    route.index = i;
    route.service = rc.service;
    route.host = lowercase(m.host);
    route.path_rule = m.path.empty() ? m.path_prefix : m.path;
    route.timeout = rc.timeout;
    route.per_try_timeout = rc.per_try_timeout;
    route.websocket_idle_timeout = rc.websocket_idle_timeout;
    route.retry = retry_policy(rc.retries);
    if (rc.rate_limit.requests_per_second > 0) {
      RouteRateLimit limit;
      limit.bucket.rate_per_second = rc.rate_limit.requests_per_second;
      limit.bucket.burst = rc.rate_limit.burst > 0
                               ? rc.rate_limit.burst
                               : std::max(1.0, std::ceil(rc.rate_limit.requests_per_second));
      if (rc.rate_limit.key.starts_with("header:")) {
        limit.key = RouteRateLimit::Key::kHeader;
        limit.header = lowercase(std::string_view(rc.rate_limit.key).substr(7));
      } else if (rc.rate_limit.key != "client_ip") {
        return make_error(ErrorCode::kInvalidArgument, "routes[" + std::to_string(i) +
                                                           "]: invalid rate limit key \"" +
                                                           rc.rate_limit.key + "\"");
      }
      route.rate_limit = std::move(limit);
    }

    Ranked r{};
    r.compiled.route = &route;
    if (route.host.empty()) {
      r.host_kind = Impl::HostKind::kAny;
    } else if (route.host.starts_with("*.")) {
      r.host_kind = Impl::HostKind::kWildcard;
      r.group_host = route.host.substr(1);
    } else {
      r.host_kind = Impl::HostKind::kExact;
      r.group_host = route.host;
    }
    if (!m.path.empty()) {
      Result<std::vector<Segment>> segments = parse_pattern(m.path);
      if (!segments) {
        return make_error(ErrorCode::kInvalidArgument,
                          "routes[" + std::to_string(i) + "]: " + segments.error().message);
      }
      r.compiled.segments = std::move(*segments);
      r.compiled.is_pattern = true;
      // Measured in the form requests are matched in, as a prefix is ("/%7Eme/" is "/~me/").
      const std::string normal = normal_encoding(m.path);
      r.literal_begin = std::min(normal.find('{'), normal.size());
      r.literal_total = 1;
      for (const Segment& seg : r.compiled.segments) r.literal_total += seg.literal.size() + 1;
      r.no_catch_all = r.compiled.segments.empty() ||
                       r.compiled.segments.back().kind != Segment::Kind::kCatchAll;
    } else {
      r.compiled.prefix = normal_encoding(m.path_prefix);
      r.literal_begin = r.literal_total = r.compiled.prefix.size();
      r.no_catch_all = true;
    }
    for (const auto& [name, value] : m.headers) {
      r.compiled.headers.emplace_back(lowercase(name), value);
    }
    for (const std::string& name : m.headers_present) {
      r.compiled.headers_present.push_back(lowercase(name));
    }
    r.header_count = r.compiled.headers.size() + r.compiled.headers_present.size();
    ranked.push_back(std::move(r));
  }

  // Group by host (exact by name, wildcards longest first, then any host), and within a group
  // most specific first. stable_sort keeps config order among equals.
  auto host_key = [](const Ranked& r) {
    return std::make_tuple(static_cast<int>(r.host_kind),
                           r.host_kind == Impl::HostKind::kWildcard
                               ? std::size_t{0} - r.group_host.size()  // longer first
                               : std::size_t{0},
                           std::string_view(r.group_host));
  };
  auto specificity = [](const Ranked& r) {
    return std::make_tuple(r.header_count, r.literal_begin, r.compiled.is_pattern, r.literal_total,
                           r.no_catch_all);
  };
  std::stable_sort(ranked.begin(), ranked.end(), [&](const Ranked& a, const Ranked& b) {
    if (host_key(a) != host_key(b)) return host_key(a) < host_key(b);
    return specificity(a) > specificity(b);
  });

  for (Ranked& r : ranked) {
    if (impl->groups.empty() || impl->groups.back().kind != r.host_kind ||
        impl->groups.back().host != r.group_host) {
      const std::size_t at = impl->compiled.size();
      impl->groups.push_back({r.host_kind, r.group_host, at, at});
      if (r.host_kind == Impl::HostKind::kExact) ++impl->exact_groups;
    }
    impl->compiled.push_back(std::move(r.compiled));
    impl->groups.back().end = impl->compiled.size();
  }
  return RouteTable(std::move(impl));
}

const Route* RouteTable::match(std::string_view host, std::string_view path,
                               const http::Headers& headers) const {
  const Impl& t = *impl_;
  if (path.empty()) path = "/";
  std::array<char, 256> buf;
  const std::string_view name = normalize_host(host, buf);

  const auto exact_begin = t.groups.begin();
  const auto exact_end = exact_begin + static_cast<std::ptrdiff_t>(t.exact_groups);
  const auto it = std::lower_bound(
      exact_begin, exact_end, name,
      [](const Impl::HostGroup& g, std::string_view h) { return std::string_view(g.host) < h; });
  if (it != exact_end && it->host == name) {
    if (const Route* route = t.first_match(*it, path, headers)) return route;
  }
  for (auto g = exact_end; g != t.groups.end(); ++g) {
    if (g->kind == Impl::HostKind::kWildcard &&
        (name.size() <= g->host.size() || !name.ends_with(g->host))) {
      continue;
    }
    if (const Route* route = t.first_match(*g, path, headers)) return route;
  }
  return nullptr;
}

const Route* RouteTable::match(const http::Request& request) const {
  return match(request.headers.get("host").value_or(std::string_view()), request.path,
               request.headers);
}

namespace {

// 1 for a "." segment, 2 for "..", 0 for any other ("%2e" counts as a dot).
int dot_segment(std::string_view seg) {
  int dots = 0;
  for (size_t i = 0; i < seg.size();) {
    if (seg[i] == '.') {
      i += 1;
    } else if (seg.substr(i, 3) == "%2e" || seg.substr(i, 3) == "%2E") {
      i += 3;
    } else {
      return 0;
    }
    if (++dots > 2) return 0;
  }
  return dots;
}

}  // namespace

std::optional<std::string> without_dot_segments(std::string_view path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  if (path.find("/.") == std::string_view::npos && path.find("/%2") == std::string_view::npos) {
    return std::nullopt;
  }
  std::vector<std::string_view> kept;
  bool any = false, ends_in_slash = false;
  for (size_t at = 1;;) {
    const size_t end = std::min(path.find('/', at), path.size());
    const std::string_view seg = path.substr(at, end - at);
    const bool last = end == path.size();
    const int dots = dot_segment(seg);
    any = any || dots > 0;
    if (dots == 2 && !kept.empty()) kept.pop_back();
    if (dots == 0) kept.push_back(seg);
    ends_in_slash = dots > 0 && last;  // "/a/b/.." is "/a/"
    if (last) break;
    at = end + 1;
  }
  if (!any) return std::nullopt;
  std::string out;
  out.reserve(path.size());
  for (std::string_view seg : kept) {
    out += '/';
    out += seg;
  }
  if (out.empty() || ends_in_slash) out += '/';
  return out;
}

std::optional<std::string> normalized_path(std::string_view path) {
  std::optional<std::string> normal = http::internal::normalized_percent_encoding(path);
  std::optional<std::string> clean = without_dot_segments(normal ? *normal : path);
  return clean ? std::move(clean) : std::move(normal);
}

}  // namespace prescale::gateway
