// The admin endpoints of a long-running command (`prescale gateway`, `prescale controller`), on a
// port of their own: /metrics (the registry in Prometheus' text format), /healthz (200 while the
// process runs) and /readyz (200 "ready" while `ready` says so, else 503 with `not_ready`).
#pragma once

#include <atomic>
#include <string>

#include "http/router.h"
#include "telemetry/registry.h"

namespace prescale {

// The router; `registry` and `ready` must outlive it.
http::Router admin_router(const telemetry::Registry& registry, const std::atomic<bool>& ready,
                          std::string not_ready);

}  // namespace prescale
