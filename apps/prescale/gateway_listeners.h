// What `prescale gateway` and `prescale up` serve with, and how they stop it: the gateway's
// listener, a listener beside it (the admin endpoints of `prescale gateway`, the dashboard of
// `prescale up`), and the gateway whose upkeep runs beside both.
//
// Thread safety: the command's controlling thread only.
#pragma once

#include <chrono>

#include "gateway/gateway.h"
#include "http/server.h"

namespace prescale {

// I/O threads of the gateway's plain listener for the services' own calls, beside its TLS one of
// `threads` (0: one per core): half as many, at least one.
int inside_threads(int threads);

struct GatewayListeners {
  gateway::Gateway& gateway;
  http::Server& listener;          // the gateway's
  http::Server* inside = nullptr;  // with TLS, the gateway's plain listener for calls from
                                   // inside (the services' own); null: none
  http::Server* beside = nullptr;  // null: none (the admin endpoints turned off, not yet started)

  // Stops serving: the gateway's listener once the requests in flight are done or `grace` is
  // over, then its inside listener (the services' calls those requests made go on meanwhile)
  // in what is left of `grace`, then the one beside them at once, then the gateway's upkeep
  // (where it was started).
  void stop(std::chrono::milliseconds grace) const;
};

}  // namespace prescale
