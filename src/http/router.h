// Router: maps (method, path) to a Handler.
//
// Patterns are absolute paths made of segments separated by '/':
//   - literal segments           "/v1/users"
//   - `{name}` parameters        "/v1/users/{id}"          matches exactly one non-empty segment
//   - a trailing `{name...}`     "/static/{path...}"       matches the rest of the path, possibly
//                                                           empty ("/static", "/static/a/b")
// Precedence, per segment: literal over parameter over catch-all, with backtracking, so
// "/users/me" wins over "/users/{id}" for "/users/me" while "/users/42" still matches the latter.
// Parameter values are percent-decoded. "/" is the pattern for the root path.
// Paths and literal segments compare in the normal form of their percent-encoding (RFC 3986
// section 6.2.2): "/items%2Dx" matches "/items-x"; an encoded slash ("%2F", any case) stays
// part of its segment, so "/a%2Fb" does not match "/a/b".
//
// dispatch() fills `req.path_params` and `req.route` (the matched pattern) and calls the handler.
// Unknown path -> 404; known path but no route for the method -> 405 with an `Allow` header.
// HEAD is served by the GET handler when no HEAD route exists (the server drops the body).
// A Method::kOther route serves every method without a name of its own (TRACE, PROPFIND, ...) at
// its pattern; req.method_name says which. The Allow header of a 405 names only named methods.
// Error bodies are JSON: {"error":{"code":"not_found"|"method_not_allowed","message":"..."}}.
//
// Thread safety: add() is not thread-safe and must happen before serving; dispatch() and the
// handler from as_handler() are const and may run concurrently on any number of threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "http/message.h"

namespace prescale::http {

class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers a route. Throws std::invalid_argument for an invalid pattern (not starting with
  // '/', empty segment, malformed or duplicate `{name}`, catch-all not last) and for a route
  // already registered for the same method and pattern shape.
  void add(Method method, std::string pattern, Handler handler);

  // Routes `req` (by req.method and req.path) and calls the matching handler or answers
  // 404/405 through `respond`.
  void dispatch(Request& req, Responder respond) const;

  // A Handler that dispatches through this router. The router must outlive it.
  Handler as_handler() const;

 private:
  struct Node;
  std::unique_ptr<Node> root_;
};

}  // namespace prescale::http
