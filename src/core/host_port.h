// A host and a port written as a URL's authority (RFC 3986 section 3.2.2): an IPv6 literal in
// brackets ("[::1]:8080"), a name or an IPv4 address as it is ("127.0.0.1:8080"). What the
// gateway's endpoint labels, its upstream lists and the URLs the platform announces are made of.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace prescale {

// "host:port"; a host holding a ':' (an IPv6 literal) in brackets, unless it is already
// bracketed ("[::1]" stays "[::1]").
std::string host_port(std::string_view host, uint16_t port);

// host_port() appended to `out`: nothing is allocated where `out` has the room (the gateway
// writes each attempt's upstream label this way).
void append_host_port(std::string& out, std::string_view host, uint16_t port);

}  // namespace prescale
