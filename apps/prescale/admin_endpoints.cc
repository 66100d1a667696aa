#include "admin_endpoints.h"

#include "telemetry/exposition.h"

namespace prescale {

void add_metrics_route(http::Router& router, const telemetry::Registry& registry) {
  router.add(http::Method::kGet, "/metrics", [&registry](http::Request&, http::Responder r) {
    http::Response response;
    response.headers.set("Content-Type", std::string(telemetry::kTextContentType));
    response.body = telemetry::expose(registry);
    r(std::move(response));
  });
}

http::Router admin_router(const telemetry::Registry& registry, const std::atomic<bool>& ready,
                          std::string not_ready, std::function<bool()> alive) {
  http::Router router;
  add_metrics_route(router, registry);
  router.add(http::Method::kGet, "/healthz",
             [alive = std::move(alive)](http::Request&, http::Responder r) {
               r(!alive || alive() ? http::Response::text(200, "ok\n")
                                   : http::Response::text(503, "stuck\n"));
             });
  router.add(http::Method::kGet, "/readyz",
             [&ready, not_ready = std::move(not_ready)](http::Request&, http::Responder r) {
               r(ready.load() ? http::Response::text(200, "ready\n")
                              : http::Response::text(503, not_ready + "\n"));
             });
  return router;
}

}  // namespace prescale
