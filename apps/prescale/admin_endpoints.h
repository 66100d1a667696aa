// The admin endpoints of a long-running command (`prescale gateway`, `prescale controller`), on a
// port of their own: /metrics (the registry in Prometheus' text format), /healthz (200 while the
// process runs and `alive`, when given, says it is not stuck; else 503 "stuck") and /readyz (200
// "ready" while `ready` says so, else 503 with `not_ready`).
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "http/router.h"
#include "telemetry/registry.h"

namespace prescale {

// GET /metrics on `router`: the registry in Prometheus' text format. `registry` must outlive it.
void add_metrics_route(http::Router& router, const telemetry::Registry& registry);

// The router; `registry` and `ready` must outlive it.
http::Router admin_router(const telemetry::Registry& registry, const std::atomic<bool>& ready,
                          std::string not_ready, std::function<bool()> alive = {});

}  // namespace prescale
