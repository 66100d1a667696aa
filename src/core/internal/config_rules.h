// Single-value rules of the config loader: each returns what is wrong with a value, as a message
// fragment ("must start with \"/\", got \"x\""), or "" when the value is fine. No YAML here, so
// each rule is testable on plain strings. Not public API.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace prescale::internal {

// Service names become process names, metric labels and Kubernetes object names, so they
// follow the DNS label rules Kubernetes applies.
std::string service_name_problem(const std::string& name);

// Where a server binds, "host:port" or "[ipv6]:port"; port 0 picks a free port.
std::string listen_problem(const std::string& listen);

// An upstream endpoint to connect to, "host:port" or "[ipv6]:port".
std::string endpoint_problem(const std::string& endpoint);

// A path (and query) as a request target holds it: it starts with "/" and holds no space or
// control character, which no request target carries (RFC 9112 section 3.2) and http::Client
// refuses to send. The rule of a path the gateway requests itself, as the health checks do, and
// of a route's path_prefix, which could never match a request otherwise.
std::string request_path_problem(const std::string& path);
// A name gRPC's health checks ask about (services[].grpc_health_service): at most 1,024 bytes,
// no control character (it goes in a protobuf string: valid UTF-8 is the server's concern).
std::string grpc_health_service_problem(const std::string& name);

// The pattern syntax of http::Router: "/" or "/"-separated non-empty segments, each a literal,
// a `{name}` parameter or, last only, a `{name...}` catch-all; names are [A-Za-z_][A-Za-z0-9_]*
// and unique in the pattern.
std::string path_pattern_problem(const std::string& pattern);

// "" (any host), a host name or IP address, "[ipv6]", or "*." followed by a host name. Matched
// case-insensitively against the Host header without its port.
std::string host_match_problem(const std::string& host);

// RFC 9110 token characters, which header field names are made of.
bool valid_header_name(std::string_view name);

std::string lowercase(std::string_view text);

std::string rate_limit_key_problem(const std::string& key);

std::string version_problem(const int& version);

// A container image reference ("registry.example.com/shop/checkout:1.4", "busybox@sha256:..."):
// not empty, no space or control character (what Kubernetes checks of a container's image).
std::string image_problem(const std::string& image);

// Environment variable names as POSIX shells accept them.
bool valid_env_name(const std::string& name);

// "unknown service ..." with the nearest name or the list of `services`.
std::string unknown_service(const std::string& name, const std::vector<std::string>& services);

}  // namespace prescale::internal
