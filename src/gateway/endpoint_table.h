// EndpointTable: the replicas of each upstream service, changed by the controller while the
// gateway's I/O threads read them.
//
// Readers see immutable snapshots: a writer builds a new EndpointSnapshot and publishes it
// through std::atomic<std::shared_ptr>, so a reader never sees a half-made change and never
// waits on a writer. An I/O thread keeps a Reader, which rechecks one atomic version number
// per call and reloads the snapshot only after a change.
//
// Each endpoint has one EndpointState for as long as it is in the table, shared by every
// snapshot that lists it and by the requests in flight to it; per-endpoint statistics (the
// balancer's, the outlier detector's) belong there, so they survive snapshot swaps.
//
// Removing an endpoint drains it: it stays in snapshots, marked draining, and takes no new
// requests (EndpointState::try_acquire() refuses) until its in-flight count reaches 0 or the
// drain timeout passes; reap() then drops it. Call reap() periodically (say each second) and
// when EndpointState::release() returns true.
//
// Thread safety: every member is safe on any thread. Writers (add, add_static, remove, set,
// reap) serialize on a mutex that readers never take: snapshot() is one atomic<shared_ptr>
// load, Reader::current() one atomic integer load until something changes. A Reader belongs
// to one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::gateway {

// Where a replica listens. `id` names it for its whole life (a pod name, a replica number,
// or "host:port" for a static upstream); an id is never reused for another address.
struct EndpointSpec {
  std::string id;
  std::string host;  // name or IP address; IPv6 without brackets
  std::uint16_t port = 0;
};

// "host:port" or "[ipv6]:port", port 1..65535; the id is the text itself.
Result<EndpointSpec> parse_endpoint(std::string_view host_port);

// One endpoint's live state. The counters are updated by the proxy on any thread.
struct EndpointState {
  explicit EndpointState(EndpointSpec spec);

  const EndpointSpec spec;
  const std::string address;  // "host:port", "[::1]:8080" for IPv6

  // Requests in flight to this endpoint (what least-request and P2C balancing compare).
  std::atomic<std::int64_t> outstanding{0};
  // Set when the endpoint is removed; cleared if it is added back before being reaped.
  std::atomic<bool> draining{false};

  // Counts a new request, unless the endpoint is draining (then false: pick another).
  // Pairs with the drain check in reap(), so a request is either counted or refused.
  bool try_acquire();
  // Ends a request counted by try_acquire(). True when this was the last in-flight request
  // of a draining endpoint: the table can reap it now.
  bool release();

  // Per-endpoint resilience state (peak-EWMA latency, outlier ejection) is added here by the
  // gateway's balancer and outlier detector.
};

struct Endpoint {
  std::shared_ptr<EndpointState> state;
  bool draining = false;  // as of this snapshot
};

struct ServiceEndpoints {
  std::string service;
  std::vector<Endpoint> endpoints;  // ready ones first, then draining; each part sorted by id
  std::size_t ready_count = 0;

  // The endpoints that take new requests.
  std::span<const Endpoint> ready() const { return {endpoints.data(), ready_count}; }
};

struct EndpointSnapshot {
  std::uint64_t version = 0;               // grows by one per published change
  std::vector<ServiceEndpoints> services;  // sorted by name; services with no endpoints left out

  // nullptr when the service has no endpoints. No allocation.
  const ServiceEndpoints* find(std::string_view service) const;
};

class EndpointTable;

// Adds the static endpoints of gateway.upstreams ("host:port" lists by service name), as they
// are written. The gateway itself adds them through DnsUpstreams, which also follows the names.
Result<void> add_upstreams(EndpointTable& table,
                           const std::map<std::string, std::vector<std::string>>& upstreams);

class EndpointTable {
 public:
  // `clock` gives drain deadlines; `drain_timeout` caps how long a removed endpoint waits for
  // its in-flight requests.
  explicit EndpointTable(const Clock& clock,
                         std::chrono::milliseconds drain_timeout = std::chrono::seconds(30));

  // The current snapshot. Never null.
  std::shared_ptr<const EndpointSnapshot> snapshot() const;

  // Adds an endpoint, or takes a draining one back. Fails if the id is known with another
  // address.
  Result<void> add(std::string_view service, EndpointSpec spec);
  // Starts draining the endpoint; false if the service has no endpoint with this id.
  bool remove(std::string_view service, std::string_view id);
  // Makes `specs` the service's endpoints: adds the new ones, drains the ones not listed
  // (static ones excepted). Fails, changing nothing, on a repeated id or an id known with
  // another address.
  Result<void> set(std::string_view service, std::vector<EndpointSpec> specs);
  // Adds an endpoint that set() leaves alone: one of gateway.upstreams, which the controller
  // does not manage. remove() still drains it.
  Result<void> add_static(std::string_view service, EndpointSpec spec);
  // Drops draining endpoints with no request in flight or past their deadline. Returns how
  // many were dropped.
  std::size_t reap();

  // An I/O thread's view: current() costs one atomic load when nothing changed.
  class Reader {
   public:
    explicit Reader(const EndpointTable& table);
    // Valid until the next current() on this Reader.
    const EndpointSnapshot& current();

   private:
    const EndpointTable* table_;
    std::shared_ptr<const EndpointSnapshot> snapshot_;
  };

 private:
  struct Entry {
    std::shared_ptr<EndpointState> state;
    Clock::TimePoint drain_deadline{};
    bool is_static = false;
  };
  using Service = std::map<std::string, Entry, std::less<>>;  // by id

  // With mu_ held.
  Result<void> add_locked(std::string_view name, Service& service, EndpointSpec spec,
                          bool& changed);
  void drain_locked(Entry& entry);
  void publish_locked();

  const Clock& clock_;
  const std::chrono::milliseconds drain_timeout_;
  std::mutex mu_;
  std::map<std::string, Service, std::less<>> services_;  // guarded by mu_
  std::uint64_t next_version_ = 1;                        // guarded by mu_
  std::atomic<std::shared_ptr<const EndpointSnapshot>> snapshot_;
  std::atomic<std::uint64_t> version_{0};  // snapshot_'s version, for Reader's cheap check
};

}  // namespace prescale::gateway
