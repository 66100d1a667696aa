#include "dashboard/dashboard.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dashboard/internal/ui_assets.h"
#include "http/json.h"

namespace prescale::dashboard {
namespace {

using http::Request;
using http::Responder;
using http::Response;

// The page loads its own files and the API, nothing from elsewhere (it works offline).
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'";

std::string_view content_type_for(std::string_view path) {
  struct Kind {
    std::string_view ext, type;
  };
  static constexpr Kind kKinds[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".json", "application/json"},
      {".ico", "image/x-icon"},
  };
  for (const auto& k : kKinds) {
    if (path.ends_with(k.ext)) return k.type;
  }
  return "text/plain; charset=utf-8";  // LICENSE, README
}

const internal::UiAsset* find_asset(std::string_view path) {
  auto assets = internal::ui_assets();
  auto it =
      std::lower_bound(assets.begin(), assets.end(), path,
                       [](const internal::UiAsset& a, std::string_view p) { return a.path < p; });
  return it != assets.end() && it->path == path ? &*it : nullptr;
}

Response asset_response(const Request& req, const internal::UiAsset& asset) {
  Response r;
  const std::string etag = "\"" + std::string(asset.sha256.substr(0, 32)) + "\"";
  r.headers.set("ETag", etag);
  // Revalidate every time: a new binary serves new files under the same names.
  r.headers.set("Cache-Control", "no-cache");
  r.headers.set("X-Content-Type-Options", "nosniff");
  if (asset.path.ends_with(".html")) {
    r.headers.set("Content-Security-Policy", std::string(kContentSecurityPolicy));
  }
  if (auto inm = req.headers.get("If-None-Match"); inm && *inm == etag) {
    r.status = 304;
    return r;
  }
  r.status = 200;
  r.headers.set("Content-Type", std::string(content_type_for(asset.path)));
  r.body = std::string(asset.bytes);
  return r;
}

Response redirect(const std::string& location) {
  Response r = Response::text(302, "see " + location + "\n");
  r.headers.set("Location", location);
  return r;
}

Response api(int status, const nlohmann::json& body) {
  Response r = http::json_response(status, body);
  r.headers.set("Cache-Control", "no-cache");
  return r;
}

Response api_error(int status, std::string_view code, std::string_view message) {
  Response r = http::error_response(status, code, message);
  r.headers.set("Cache-Control", "no-cache");
  return r;
}

Response bad_parameter(std::string_view name, std::string_view value, std::string_view expected) {
  return api_error(400, "invalid_argument",
                   "parameter \"" + std::string(name) + "\" must be " + std::string(expected) +
                       ", got \"" + std::string(value) + "\"");
}

// A finite number of unix seconds, e.g. "1700000000.5".
std::optional<double> parse_seconds(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<uint64_t> parse_id(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || s.empty() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Reads ?since=T. Returns false (after answering 400) when it is present but not a number.
bool read_since(const Request& req, const Responder& respond, std::optional<double>& since) {
  auto raw = req.query_param("since");
  if (!raw) return true;
  since = parse_seconds(*raw);
  if (!since) respond(bad_parameter("since", *raw, "a number of unix seconds"));
  return since.has_value();
}

}  // namespace

void Dashboard::add_routes(http::Router& router) const {
  using http::Method;
  const DashboardModel& model = model_;

  router.add(Method::kGet, "/", [](Request&, Responder respond) { respond(redirect("/ui")); });
  router.add(Method::kGet, "/ui", [](Request& req, Responder respond) {
    const internal::UiAsset* index = find_asset("index.html");
    respond(index != nullptr ? asset_response(req, *index)
                             : http::error_response(500, "internal", "index.html not embedded"));
  });
  router.add(Method::kGet, "/ui/{file...}", [](Request& req, Responder respond) {
    const std::string file(req.param("file").value_or(""));
    if (file.empty()) {
      respond(redirect("/ui"));
      return;
    }
    if (const internal::UiAsset* asset = find_asset(file)) {
      respond(asset_response(req, *asset));
    } else {
      respond(http::error_response(404, "not_found", "no UI file \"" + file + "\""));
    }
  });

  router.add(Method::kGet, "/api/v1/overview",
             [&model](Request&, Responder respond) { respond(api(200, model.overview_json())); });
  router.add(Method::kGet, "/api/v1/services",
             [&model](Request&, Responder respond) { respond(api(200, model.services_json())); });
  router.add(Method::kGet, "/api/v1/services/{name}", [&model](Request& req, Responder respond) {
    std::optional<double> since;
    if (!read_since(req, respond, since)) return;
    auto body = model.service_json(req.param("name").value_or(""), since);
    if (!body) {
      respond(api_error(404, "not_found", body.error().message));
      return;
    }
    respond(api(200, *body));
  });
  router.add(Method::kGet, "/api/v1/graph",
             [&model](Request&, Responder respond) { respond(api(200, model.graph_json())); });
  router.add(Method::kGet, "/api/v1/incidents",
             [&model](Request&, Responder respond) { respond(api(200, model.incidents_json())); });
  router.add(Method::kGet, "/api/v1/events", [&model](Request& req, Responder respond) {
    std::optional<double> since;
    if (!read_since(req, respond, since)) return;
    std::optional<uint64_t> after_id;
    if (auto raw = req.query_param("after_id")) {
      after_id = parse_id(*raw);
      if (!after_id) {
        respond(bad_parameter("after_id", *raw, "a non-negative integer event id"));
        return;
      }
    }
    respond(api(200, model.events_json(since, after_id)));
  });

  // The router's own 404 and 405 carry no Cache-Control; API answers all say no-cache, so an
  // unknown API path or a method other than GET and HEAD (kOther: TRACE, PROPFIND, ...) is
  // answered here.
  constexpr Method kRefusedMethods[] = {Method::kPost,   Method::kPut,     Method::kPatch,
                                        Method::kDelete, Method::kOptions, Method::kOther};
  for (const char* pattern : {"/api/v1/overview", "/api/v1/services", "/api/v1/services/{name}",
                              "/api/v1/graph", "/api/v1/events", "/api/v1/incidents"}) {
    for (Method m : kRefusedMethods) {
      router.add(m, pattern, [](Request& req, Responder respond) {
        Response r = api_error(405, "method_not_allowed",
                               req.method_name + " is not allowed here; use GET or HEAD");
        r.headers.set("Allow", "GET, HEAD");
        respond(std::move(r));
      });
    }
  }
  for (Method m : {Method::kGet, Method::kPost, Method::kPut, Method::kPatch, Method::kDelete,
                   Method::kOptions, Method::kOther}) {
    router.add(m, "/api/v1/{rest...}", [](Request& req, Responder respond) {
      respond(api_error(404, "not_found", "no API endpoint " + req.path));
    });
  }
}

}  // namespace prescale::dashboard
