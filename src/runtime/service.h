// The service SDK. A service is a small declarative thing: it has a name and registers its
// routes; the runtime adds /metrics, /healthz, /readyz, per-route request counters and latency
// histograms, structured logs and graceful drain, once for every service.
//
//   class Hello : public runtime::Service {
//     std::string_view name() const override { return "hello"; }
//     void register_routes(runtime::Routes& routes) override {
//       routes.get("/hello/{who}", [](http::Request& req, http::Responder respond) {
//         respond(http::Response::text(200, "hello " + std::string(*req.param("who"))));
//       });
//     }
//   };
#pragma once

#include <string>
#include <string_view>

#include "http/message.h"

namespace prescale::runtime {

// Collects a service's routes. Patterns are those of http::Router: literal segments,
// `{name}` parameters and a trailing `{name...}` catch-all.
class Routes {
 public:
  virtual ~Routes() = default;
  virtual void add(http::Method method, std::string pattern, http::Handler handler) = 0;

  void get(std::string pattern, http::Handler h) {
    add(http::Method::kGet, std::move(pattern), std::move(h));
  }
  void post(std::string pattern, http::Handler h) {
    add(http::Method::kPost, std::move(pattern), std::move(h));
  }
  void put(std::string pattern, http::Handler h) {
    add(http::Method::kPut, std::move(pattern), std::move(h));
  }
  void del(std::string pattern, http::Handler h) {
    add(http::Method::kDelete, std::move(pattern), std::move(h));
  }
};

class Service {
 public:
  virtual ~Service() = default;
  // Used as the `service` label of every metric and in logs; [a-z0-9-].
  virtual std::string_view name() const = 0;
  virtual void register_routes(Routes& routes) = 0;
  // Readiness beyond draining, e.g. false until a model is loaded. Called on every /readyz.
  virtual bool ready() const { return true; }
  // Called once when drain begins (stop background work, flush state). Default: nothing.
  virtual void on_drain() {}
};

}  // namespace prescale::runtime
