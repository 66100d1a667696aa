// Internal to UpstreamPool: its HTTP/2 upstream connections (clear text, prior knowledge), for
// exchanges that ask for HTTP/2 (Exchange::http2), e.g. to gRPC servers. Only upstream_pool.cc
// and its tests include this header.
//
// Per endpoint the pool keeps a few connections, each carrying many exchanges at once as streams
// (up to the upstream's SETTINGS_MAX_CONCURRENT_STREAMS; a full connection gets a sibling). An
// exchange's request is its HTTP/1.1 head (UpstreamPool's contract) turned into HTTP/2 fields:
// the request line becomes :method and :path, Host :authority, connection-specific fields are
// dropped and `te: trailers` is sent (gRPC servers ask for it). Its response comes back as an
// http::Response, trailers included: buffered, or streamed to a BodyStream when it has no
// Content-Length and the exchange takes it (Exchange::stream_body()), with the upstream's flow
// control held while the stream is full.
//
// A stream the upstream refuses unprocessed (REFUSED_STREAM, or past a GOAWAY's last stream) is
// sent again once on a fresh connection. A connection with no streams for idle_timeout is closed
// (GOAWAY first); a connection that fails fails its streams (kReset).
//
// Thread safety: the pool's: every call on the io_context's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "gateway/upstream_pool.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace prescale::gateway::internal {

struct H2Core;

class H2Upstreams {
 public:
  H2Upstreams(boost::asio::io_context& io, const UpstreamPoolOptions& options);
  ~H2Upstreams();
  H2Upstreams(const H2Upstreams&) = delete;
  H2Upstreams& operator=(const H2Upstreams&) = delete;

  // As UpstreamPool::start() for an exchange with `http2` set.
  bool start(std::string_view host, uint16_t port, Exchange& exchange);
  // As UpstreamPool::cancel().
  void cancel(Exchange& exchange);
  // As UpstreamPool::stop().
  void stop();
  void set_timeout_resolution(std::chrono::milliseconds resolution);

  struct Stats {
    uint64_t connections_opened = 0;
    uint64_t reused = 0;         // exchanges started on a connection already open
    uint64_t stale_retries = 0;  // exchanges sent again after the upstream refused their stream
    uint64_t idle = 0;           // connections with no stream now
    uint64_t active = 0;         // connections connecting or carrying streams now
  };
  Stats stats() const;

 private:
  std::shared_ptr<H2Core> core_;
};

}  // namespace prescale::gateway::internal
