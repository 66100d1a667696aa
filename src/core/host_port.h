// A host and a port written as a URL's authority (RFC 3986 section 3.2.2): an IPv6 literal in
// brackets ("[::1]:8080"), a name or an IPv4 address as it is ("127.0.0.1:8080"). host_port() is
// the plain address the gateway's endpoint labels and upstream lists are made of, an IPv6 zone id
// kept as the system writes it ("[fe80::1%eth0]:443"); url_authority() is what a URL holds (the
// ones the platform announces), the zone's '%' written "%25" as RFC 6874 has it, and url_host()
// reads such a host back.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace prescale {

// Why a "host:port" cannot be used, if it cannot (kNone when it can).
enum class HostPortFault {
  kNone,
  kShape,        // no ':', an empty host, a space, control character, '/' or bracket in a name
  kNotIpv6,      // brackets around something other than an IPv6 address (and its zone id)
  kPort,         // not a decimal number within the range asked for
  kLeadingZero,  // "h:080": a second spelling of "h:80", which would count as another address
};

// "host:port" as written in a config file or a flag: a name or an IPv4 address, or an IPv6
// address in brackets with its zone id if any ("[fe80::1%eth0]:443"). `host` is without the
// brackets and `port` is set when `fault` is kNone.
struct HostPortParts {
  HostPortFault fault = HostPortFault::kShape;
  std::string_view host;
  std::string_view port_text;  // as written, for messages
  uint16_t port = 0;
};
HostPortParts split_host_port(std::string_view text, uint16_t min_port);

// "host:port"; a host holding a ':' (an IPv6 literal) in brackets, unless it is already
// bracketed ("[::1]" stays "[::1]").
std::string host_port(std::string_view host, uint16_t port);

// host_port() appended to `out`: nothing is allocated where `out` has the room (the gateway
// writes each attempt's upstream label this way).
void append_host_port(std::string& out, std::string_view host, uint16_t port);

// An authority as host_port() writes it, appended to `out` without the zone id of an IPv6
// literal ("[fe80::1%eth0]:443" gives "[fe80::1]:443"): what a Host field holds, since the zone
// names an interface of this machine, nothing the server knows (RFC 6874 section 4). Every other
// authority is appended as it is.
void append_without_zone(std::string& out, std::string_view authority);

// host_port() for a URL (RFC 6874 section 2): the zone id of an IPv6 address follows "%25", and
// its characters outside RFC 3986's unreserved set are percent-encoded ("fe80::1%eth0", 443 gives
// "[fe80::1%25eth0]:443"). An already bracketed host is taken as written for a URL already.
std::string url_authority(std::string_view host, uint16_t port);

// The address a socket takes for the host of a URL, brackets removed: a zone id written after
// "%25" is percent-decoded ("fe80::1%25eth0" gives "fe80::1%eth0"); a bare '%' (as typed, RFC 6874
// section 3) and every other host are returned as they are.
std::string url_host(std::string_view host);

// An "http://HOST[:PORT][/PATH]" URL, the scheme in any case: the host as url_host() reads it (an
// IPv6 zone id after "%25"), the port (80 when none is written) and the path ("" when none). The
// authority follows split_host_port()'s rules. Errors (kInvalidArgument) say what is wrong, without
// the URL: another scheme, user information, a query or fragment, no host, an empty or bad port.
struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string path;
  bool https = false;  // parse_web_url() only
};
Result<HttpUrl> parse_http_url(std::string_view url);

// parse_http_url() that takes "https://" too (port 443 when none is written; `https` set), for
// what can reach a server over TLS (http::ClientOptions::tls).
Result<HttpUrl> parse_web_url(std::string_view url);

}  // namespace prescale
