#include "gateway/internal/upstream_head.h"

#include <vector>

#include "core/host_port.h"
#include "core/splitmix.h"
#include "http/internal/wire.h"
#include "http/tunnel.h"

namespace prescale::gateway::internal {
namespace {

// `name` equals `lower`, a lower-case field name of letters, digits and '-', ignoring case: a
// branch-free compare, no locale (every field of every request goes through it). Header names
// never hold the bytes that would also match (the parser allows only RFC 9110 token chars).
bool iequals(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if ((static_cast<unsigned char>(name[i]) | 0x20) != static_cast<unsigned char>(lower[i])) {
      return false;
    }
  }
  return true;
}

// Hop-by-hop fields (RFC 9110 §7.6.1, plus the obsolete Keep-Alive and every Proxy-* field):
// they describe one connection, not the message, and never cross the proxy.
bool is_hop_by_hop(std::string_view name) {
  if (name.size() >= 6 && iequals(name.substr(0, 6), "proxy-")) return true;
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 7:
      return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

// The field names listed by Connection fields, which are hop-by-hop too. Copied (rare: most
// Connection fields carry only "keep-alive" or "close", which need no copy), so they survive
// edits of the fields they came from.
class ConnectionListed {
 public:
  explicit ConnectionListed(const http::Headers& headers) {
    for (const auto& [name, value] : headers.fields()) {
      if (name.size() != 10 || !iequals(name, "connection")) continue;
      std::string_view list = value;
      while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view token = http::internal::trim(list.substr(0, comma));
        if (!token.empty() && !iequals(token, "close") && !iequals(token, "keep-alive")) {
          names_.emplace_back(token);
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
  }
  bool contains(std::string_view name) const {
    for (const auto& n : names_) {
      if (http::internal::iequals(n, name)) return true;
    }
    return false;
  }
  bool empty() const { return names_.empty(); }

 private:
  std::vector<std::string> names_;
};

}  // namespace

void RequestIds::next(std::string& id) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hi = (splitmix64_next(state_) & ~0xF000ULL) | 0x4000ULL;
  uint64_t lo = (splitmix64_next(state_) & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  id.resize(36);
  size_t pos = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) id[pos++] = '-';
    const uint64_t word = i < 16 ? hi : lo;
    const int shift = 60 - 4 * (i % 16);
    id[pos++] = kHex[(word >> shift) & 0xF];
  }
}

bool asks_websocket(const http::Request& request) {
  if (request.method != http::Method::kGet) return false;  // RFC 6455 section 4.1
  const auto upgrade = http::upgrade_requested(request);
  return upgrade && http::internal::has_token(*upgrade, "websocket");
}

void write_upstream_head(const http::Request& req, std::string_view upstream_label,
                         std::string& request_id, RequestIds& ids, std::string& out) {
  out.clear();
  out += http::internal::request_method_token(req);
  out += ' ';
  out += req.target.empty() ? std::string_view("/") : std::string_view(req.target);
  out += " HTTP/1.1\r\n";
  const ConnectionListed listed(req.headers);
  std::string_view host;
  bool have_host = false;
  bool have_proto = false;
  bool have_forwarded_host = false;
  bool have_forwarded_for = false;
  bool have_request_id = false;
  for (const auto& [name, value] : req.headers.fields()) {
    if (is_hop_by_hop(name) || (!listed.empty() && listed.contains(name))) continue;
    switch (name.size()) {
      case 4:
        if (iequals(name, "host")) {
          host = value;
          have_host = true;
        }
        break;
      case 6:
        if (iequals(name, "expect")) continue;  // the server already answered 100-continue
        break;
      case 12:
        if (iequals(name, "x-request-id")) have_request_id = true;
        break;
      case 14:
        if (iequals(name, "content-length")) continue;  // reframed below
        break;
      case 15:
        if (iequals(name, "x-forwarded-for")) {  // merged into ours below
          have_forwarded_for = true;
          continue;
        }
        break;
      case 16:
        if (iequals(name, "x-forwarded-host")) have_forwarded_host = true;
        break;
      case 17:
        if (iequals(name, "x-forwarded-proto")) {
          // Over TLS the gateway knows the scheme: a client's claim is not passed on.
          if (req.secure) continue;
          have_proto = true;
        }
        break;
      default:
        break;
    }
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (!have_host) {  // an empty Host is forwarded as it is, not doubled
    out += "Host: ";
    append_without_zone(out, upstream_label);
    out += "\r\n";
  }
  out += "X-Forwarded-For: ";
  // Earlier hops' fields, every one in order: several fields are one list (RFC 9110 section
  // 5.3), and its first member is the original client. Their size is bounded by the server's
  // header limit. Only a request that has them pays for the second pass over its fields.
  if (have_forwarded_for) {
    for (const auto& [name, value] : req.headers.fields()) {
      if (name.size() != 15 || !iequals(name, "x-forwarded-for")) continue;
      if (!listed.empty() && listed.contains(name)) continue;
      const std::string_view hops = http::internal::trim(value);
      if (hops.empty()) continue;
      out += hops;
      out += ", ";
    }
  }
  out += req.remote_address.empty() ? std::string_view("unknown")
                                    : std::string_view(req.remote_address);
  out += "\r\n";
  if (!have_proto)
    out += req.secure ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n";
  if (!have_forwarded_host && !host.empty()) {
    out += "X-Forwarded-Host: ";
    out += host;
    out += "\r\n";
  }
  if (!have_request_id) {
    if (request_id.empty()) ids.next(request_id);  // the same for every attempt of the request
    out += "x-request-id: ";
    out += request_id;
    out += "\r\n";
  }
  const bool body_method = req.method == http::Method::kPost || req.method == http::Method::kPut ||
                           req.method == http::Method::kPatch;
  // A body streamed as it comes (Request::body_stream; HTTP/2 upstreams only) has no length yet:
  // its stream's end frames it.
  if (req.body_stream == nullptr && (!req.body.empty() || body_method)) {
    out += "Content-Length: ";
    out += std::to_string(req.body.size());
    out += "\r\n";
  }
  if (asks_websocket(req)) out += "Connection: upgrade\r\nUpgrade: websocket\r\n";
  out += "\r\n";
}

void strip_hop_by_hop(http::Headers& headers) {
  const ConnectionListed listed(headers);
  headers.remove_if([&](std::string_view name, std::string_view) {
    return is_hop_by_hop(name) || (!listed.empty() && listed.contains(name));
  });
}

}  // namespace prescale::gateway::internal
