// Internal: the head of a request as the proxy forwards it upstream, and the fields that never
// cross it (docs/gateway.md, "Header handling"). Hop-by-hop fields (Connection and the fields it
// names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) are dropped both ways; the
// request gets X-Forwarded-For/-Proto/-Host, a Host when it has none, an x-request-id when it
// has none, and is reframed with Content-Length. Not public API.
//
// Thread safety: pure functions; a RequestIds belongs to one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.h"

namespace prescale::gateway::internal {

// Random request ids from a SplitMix64 stream per I/O thread: no lock and no system call per
// request.
class RequestIds {
 public:
  explicit RequestIds(uint64_t seed) : state_(seed) {}
  // `id` becomes a new random (version 4) UUID, 36 characters.
  void next(std::string& id);

 private:
  uint64_t state_;  // SplitMix64's counter
};

// Whether `request` asks to switch to WebSocket (a GET with `Connection: upgrade`, `Upgrade:
// websocket`): the one upgrade the gateway relays. Any other Upgrade is hop-by-hop, dropped like
// the rest.
bool asks_websocket(const http::Request& request);

// Writes into `out` (cleared first; its capacity is reused) the request line and header block of
// `request` as sent to the upstream `upstream_label` ("host:port"; the Host, less an IPv6 zone
// id, when the request has none). `request_id` is the x-request-id added when the request has
// none: drawn from `ids` when empty, so that every attempt of a request sends the same one. A
// request that asks_websocket() asks the upstream too.
void write_upstream_head(const http::Request& request, std::string_view upstream_label,
                         std::string& request_id, RequestIds& ids, std::string& out);

// Removes the hop-by-hop fields of `headers` (a response's, before it is relayed).
void strip_hop_by_hop(http::Headers& headers);

}  // namespace prescale::gateway::internal
