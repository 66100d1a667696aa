#include "core/internal/config_rules.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "core/host_port.h"
#include "core/internal/config_scalars.h"

namespace prescale::internal {
namespace {

// "host:port" or "[ipv6]:port". `example` shows a valid value in the message.
std::string host_port_problem(const std::string& value, std::string_view example, int min_port) {
  const HostPortParts parts = split_host_port(value, static_cast<uint16_t>(min_port));
  switch (parts.fault) {
    case HostPortFault::kNone:
      return "";
    case HostPortFault::kShape:
      return "must be \"host:port\" (e.g. " + std::string(example) + "), got " + quote(value);
    case HostPortFault::kNotIpv6:
      return "must be \"host:port\" with an IPv6 address in brackets (e.g. \"[::1]:8080\"), got " +
             quote(value);
    case HostPortFault::kPort:
      return "port must be " + std::to_string(min_port) + "..65535, got " + quote(parts.port_text);
    case HostPortFault::kLeadingZero:
      return "port must be written without leading zeros, got " + quote(parts.port_text);
  }
  return "";
}

}  // namespace

std::string service_name_problem(const std::string& name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  bool ok = !name.empty() && name.size() <= 63 && alnum(name.front()) && alnum(name.back());
  for (char c : name) ok = ok && (alnum(c) || c == '-');
  if (ok) return "";
  return "must be 1 to 63 characters of a-z, 0-9 and \"-\", starting and ending with a letter "
         "or digit, got " +
         quote(name);
}

std::string image_problem(const std::string& image) {
  if (image.empty()) return "must not be empty";
  for (char c : image) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '\x7f') {
      return "must be a container image reference such as "
             "\"registry.example.com/shop/checkout:1.4\", with no space or control character, "
             "got " +
             quote(image);
    }
  }
  return "";
}

std::string listen_problem(const std::string& listen) {
  return host_port_problem(listen, R"("127.0.0.1:8080", "[::]:8080")", 0);
}

std::string endpoint_problem(const std::string& endpoint) {
  return host_port_problem(endpoint, R"("10.0.0.7:8080", "[::1]:8080")", 1);
}

std::string request_path_problem(const std::string& path) {
  if (path.empty() || path.front() != '/') return "must start with \"/\", got " + quote(path);
  auto unsendable = [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  };
  if (std::none_of(path.begin(), path.end(), unsendable)) return "";
  return "must not hold a space or a control character (percent-encode it: %20 for a space), "
         "got " +
         quote(path);
}

std::string grpc_health_service_problem(const std::string& name) {
  if (name.size() > 1024) return "at most 1024 bytes, got " + std::to_string(name.size());
  const bool control = std::any_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
  return control ? "must not hold a control character, got " + quote(name) : "";
}

std::string path_pattern_problem(const std::string& pattern) {
  // The request path rules first: a space or control character no request target can hold.
  if (std::string problem = request_path_problem(pattern); !problem.empty()) return problem;
  if (pattern == "/") return "";
  auto name_char = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
  };
  std::vector<std::string_view> names;
  std::string_view rest = std::string_view(pattern).substr(1);
  bool after_catch_all = false;
  while (true) {
    const std::size_t slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (after_catch_all) return "a {name...} segment must be the last one, in " + quote(pattern);
    if (seg.empty()) return "empty path segment in " + quote(pattern);
    if (seg.front() == '{') {
      if (seg.back() != '}' || seg.size() < 3) {
        return "malformed parameter " + quote(seg) + ": write {name} or {name...}";
      }
      std::string_view name = seg.substr(1, seg.size() - 2);
      after_catch_all = name.ends_with("...");
      if (after_catch_all) name.remove_suffix(3);
      bool ok = !name.empty() && name_char(name.front(), true);
      for (char ch : name) ok = ok && name_char(ch, false);
      if (!ok) return "parameter names must match [A-Za-z_][A-Za-z0-9_]*, got " + quote(seg);
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        return "parameter " + quote(name) + " appears twice in " + quote(pattern);
      }
      names.push_back(name);
    } else if (seg.find_first_of("{}") != std::string_view::npos) {
      return "\"{\" and \"}\" may only enclose a whole segment, got " + quote(seg);
    }
    if (slash == std::string_view::npos) return "";
    rest = rest.substr(slash + 1);
  }
}

std::string host_match_problem(const std::string& host) {
  if (host.empty()) return "";
  const std::string hint =
      "must be a host name (\"api.example.com\"), a wildcard "
      "(\"*.example.com\") or an IP address, without a port; got ";
  if (host.front() == '[') {
    const bool ok = host.size() > 2 && host.back() == ']' &&
                    host.find_first_not_of("0123456789abcdefABCDEF:.", 1) == host.size() - 1;
    return ok ? "" : hint + quote(host);
  }
  std::string_view name = host;
  if (name.starts_with("*.")) name.remove_prefix(2);
  auto label_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  };
  bool ok = !name.empty() && name.size() <= 253;
  bool label_start = true;
  for (char c : name) {
    if (c == '.') {
      ok = ok && !label_start;
      label_start = true;
    } else {
      ok = ok && label_char(c);
      label_start = false;
    }
  }
  return ok && !label_start ? "" : hint + quote(host);
}

bool valid_header_name(std::string_view name) {
  auto tchar = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  };
  return !name.empty() && std::all_of(name.begin(), name.end(), tchar);
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string rate_limit_key_problem(const std::string& key) {
  if (key == "client_ip") return "";
  if (key.starts_with("header:") && valid_header_name(std::string_view(key).substr(7))) return "";
  return "must be \"client_ip\" or \"header:<name>\" (e.g. \"header:x-api-key\"), got " +
         quote(key);
}

std::string version_problem(const int& version) {
  if (version == 1) return "";
  return "unsupported version " + std::to_string(version) + "; this Prescale reads version 1";
}

bool valid_env_name(const std::string& name) {
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  return !name.empty() && !(name.front() >= '0' && name.front() <= '9') &&
         std::all_of(name.begin(), name.end(), allowed);
}

std::string unknown_service(const std::string& name, const std::vector<std::string>& services) {
  std::string message = "unknown service " + quote(name);
  if (services.empty()) return message + "; no services are defined";
  if (auto near = closest_match(name, services)) {
    return message + "; did you mean " + quote(*near) + "?";
  }
  return message + "; services are: " + join_names(services);
}

}  // namespace prescale::internal
