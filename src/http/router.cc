#include "http/router.h"

#include <array>
#include <map>
#include <optional>
#include <stdexcept>
#include <vector>

#include "http/internal/wire.h"
#include "http/json.h"

namespace prescale::http {
namespace {

// kGet .. kOptions, then kOther: one route per node for every method without a name of its own.
constexpr size_t kMethodCount = 8;

// The methods an Allow header can name.
constexpr std::array<Method, 7> kNamedMethods = {
    Method::kGet,   Method::kHead,   Method::kPost,    Method::kPut,
    Method::kPatch, Method::kDelete, Method::kOptions,
};

size_t method_index(Method m) { return static_cast<size_t>(m); }

bool is_name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (!first && c >= '0' && c <= '9');
}

[[noreturn]] void reject(const std::string& pattern, const std::string& why) {
  throw std::invalid_argument("invalid route pattern \"" + pattern + "\": " + why);
}

}  // namespace

struct Router::Node {
  struct Route {
    std::string pattern;
    std::vector<std::string> param_names;  // in path order; a catch-all is last
    Handler handler;
  };

  std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
  std::unique_ptr<Node> param;      // `{name}`
  std::unique_ptr<Node> catch_all;  // `{name...}`; always a leaf
  std::array<std::optional<Route>, kMethodCount> routes;
  unsigned method_mask = 0;  // bit i set when routes[i] is present

  // The route serving `m` at this node, if any (HEAD falls back to GET).
  const Route* route_for(Method m) const {
    if (const auto& r = routes[method_index(m)]) return &*r;
    if (m == Method::kHead) {
      if (const auto& r = routes[method_index(Method::kGet)]) return &*r;
    }
    return nullptr;
  }

  struct MatchState {
    Method method = Method::kGet;
    std::string_view path;  // the request path without its leading '/'
    const std::vector<std::string_view>* segments = nullptr;
    std::vector<std::string_view> captured;
    unsigned allow_mask = 0;
  };

  static const Route* match(const Node* node, size_t i, MatchState& st);
  static const Route* match_at_leaf(const Node* node, MatchState& st);
};

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

void Router::add(Method method, std::string pattern, Handler handler) {
  if (!handler) reject(pattern, "empty handler");
  if (pattern.empty() || pattern.front() != '/') reject(pattern, "must start with '/'");

  Node* node = root_.get();
  std::vector<std::string> names;
  if (pattern != "/") {
    std::string_view rest = std::string_view(pattern).substr(1);
    bool saw_catch_all = false;
    while (true) {
      size_t slash = rest.find('/');
      std::string_view seg = rest.substr(0, slash);
      if (saw_catch_all) reject(pattern, "a {name...} catch-all must be the last segment");
      if (seg.empty()) reject(pattern, "empty path segment");
      if (seg.front() == '{') {
        if (seg.back() != '}' || seg.size() < 3) reject(pattern, "malformed parameter segment");
        std::string_view name = seg.substr(1, seg.size() - 2);
        const bool catch_all = name.ends_with("...");
        if (catch_all) name.remove_suffix(3);
        if (name.empty() || !is_name_char(name.front(), true)) {
          reject(pattern, "parameter names must match [A-Za-z_][A-Za-z0-9_]*");
        }
        for (char c : name) {
          if (!is_name_char(c, false)) {
            reject(pattern, "parameter names must match [A-Za-z_][A-Za-z0-9_]*");
          }
        }
        for (const auto& n : names) {
          if (n == name) reject(pattern, "duplicate parameter name '" + std::string(name) + "'");
        }
        names.emplace_back(name);
        std::unique_ptr<Node>& child = catch_all ? node->catch_all : node->param;
        if (!child) child = std::make_unique<Node>();
        node = child.get();
        saw_catch_all = catch_all;
      } else {
        if (seg.find_first_of("{}") != std::string_view::npos) {
          reject(pattern, "'{' and '}' are only allowed around a whole segment");
        }
        // Stored in the normal form requests are matched in ("%7e" is "~").
        std::optional<std::string> normal = internal::normalized_percent_encoding(seg);
        const std::string_view key = normal ? std::string_view(*normal) : seg;
        auto it = node->literals.find(key);
        if (it == node->literals.end()) {
          it = node->literals.emplace(std::string(key), std::make_unique<Node>()).first;
        }
        node = it->second.get();
      }
      if (slash == std::string_view::npos) break;
      rest = rest.substr(slash + 1);
    }
  }

  auto& slot = node->routes[method_index(method)];
  if (slot) {
    reject(pattern, std::string("a ") + std::string(to_string(method)) +
                        " route with the same shape exists: \"" + slot->pattern + "\"");
  }
  slot.emplace(Node::Route{std::move(pattern), std::move(names), std::move(handler)});
  node->method_mask |= 1u << method_index(method);
}

// Depth-first match with precedence literal > parameter > catch-all. Returns the route for
// the request method, or nullptr; `allow_mask` collects the methods of every node that
// matched the path, for 405 answers.
const Router::Node::Route* Router::Node::match_at_leaf(const Node* node, MatchState& st) {
  if (node->method_mask == 0) return nullptr;
  st.allow_mask |= node->method_mask;
  return node->route_for(st.method);
}

const Router::Node::Route* Router::Node::match(const Node* node, size_t i, MatchState& st) {
  const auto& segs = *st.segments;
  if (i == segs.size()) {
    if (const auto* r = match_at_leaf(node, st)) return r;
    if (node->catch_all) {
      st.captured.emplace_back();
      if (const auto* r = match_at_leaf(node->catch_all.get(), st)) return r;
      st.captured.pop_back();
    }
    return nullptr;
  }
  std::string_view seg = segs[i];
  if (!node->literals.empty()) {
    if (auto it = node->literals.find(seg); it != node->literals.end()) {
      if (const auto* r = match(it->second.get(), i + 1, st)) return r;
    }
  }
  if (node->param && !seg.empty()) {
    st.captured.push_back(seg);
    if (const auto* r = match(node->param.get(), i + 1, st)) return r;
    st.captured.pop_back();
  }
  if (node->catch_all) {
    // The rest of the path, from this segment to the end.
    const size_t offset = static_cast<size_t>(seg.data() - st.path.data());
    st.captured.push_back(st.path.substr(offset));
    if (const auto* r = match_at_leaf(node->catch_all.get(), st)) return r;
    st.captured.pop_back();
  }
  return nullptr;
}

namespace {

std::string allow_header(unsigned mask) {
  if (mask & (1u << method_index(Method::kGet))) mask |= 1u << method_index(Method::kHead);
  std::string out;
  for (Method m : kNamedMethods) {
    if (mask & (1u << method_index(m))) {
      if (!out.empty()) out += ", ";
      out += to_string(m);
    }
  }
  return out;
}

}  // namespace

void Router::dispatch(Request& req, Responder respond) const {
  req.path_params.clear();
  req.route.clear();

  std::string_view path = req.path.empty() ? std::string_view("/") : std::string_view(req.path);
  // Matched in the normal form of its percent-encoding (RFC 3986 section 6.2.2): "/items%2Dx"
  // is "/items-x", while "%2F" stays an escape inside its segment.
  thread_local std::string normal_path;
  if (auto normal = internal::normalized_percent_encoding(path)) {
    normal_path = std::move(*normal);
    path = normal_path;
  }
  if (path.front() != '/') {
    respond(error_response(404, "not_found", "no route for path"));
    return;
  }
  // Reused per thread: dispatch runs on I/O threads for every request.
  thread_local std::vector<std::string_view> segments;
  segments.clear();
  if (path.size() > 1) {
    std::string_view rest = path.substr(1);
    while (true) {
      size_t slash = rest.find('/');
      segments.push_back(rest.substr(0, slash));
      if (slash == std::string_view::npos) break;
      rest = rest.substr(slash + 1);
    }
  }

  thread_local Node::MatchState st;
  st.method = req.method;
  st.path = path.substr(1);
  st.segments = &segments;
  st.captured.clear();
  st.allow_mask = 0;
  const Node::Route* route = Node::match(root_.get(), 0, st);

  if (route == nullptr) {
    if (st.allow_mask == 0) {
      respond(error_response(404, "not_found", "no route for " + std::string(path)));
    } else {
      Response r =
          error_response(405, "method_not_allowed",
                         "method " + req.method_name + " not allowed for " + std::string(path));
      r.headers.set("Allow", allow_header(st.allow_mask));
      respond(std::move(r));
    }
    return;
  }

  for (size_t k = 0; k < route->param_names.size() && k < st.captured.size(); ++k) {
    req.path_params.emplace_back(route->param_names[k],
                                 internal::percent_decode(st.captured[k], false));
  }
  req.route = route->pattern;
  route->handler(req, std::move(respond));
}

Handler Router::as_handler() const {
  return [this](Request& req, Responder respond) { dispatch(req, std::move(respond)); };
}

}  // namespace prescale::http
