// HealthChecker: active health checks of upstream hosts (docs/gateway.md, "Health checks").
//
// Every `interval` each host gets `GET <path>` (default /readyz; a host's own
// UpstreamHost::health_check_path where it has one) with a `timeout`; a status in
// 200..399 passes (the Kubernetes probe rule), anything else — another status, a refused or
// reset connection, a timeout — fails. A host with a grpc_health_service() is asked gRPC's
// health service about it instead (http/grpc_health.h): SERVING passes. A host turns unhealthy
// after `unhealthy_threshold` consecutive failures and healthy again after `healthy_threshold`
// consecutive passes; the balancer skips unhealthy hosts (UpstreamHost::set_healthy). A host starts
// healthy — the local world and Kubernetes register a replica only after its readiness passed — and
// its first check is due at once. Probes run on the http::Client's I/O thread; tick() only starts
// them.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gateway/balancer.h"

namespace prescale::http {
class Client;
}

namespace prescale::gateway {

struct HealthCheckConfig {
  std::string path = "/readyz";
  Clock::Duration interval{std::chrono::seconds(10)};
  Clock::Duration timeout{std::chrono::seconds(1)};
  std::uint32_t healthy_threshold = 1;
  std::uint32_t unhealthy_threshold = 3;
};

class HealthChecker {
 public:
  // Called (on the client's thread) when a host changes state: healthy = its new state.
  using StateChange = std::function<void(const UpstreamHost& host, bool healthy)>;

  // `http2_client` (ClientOptions::http2) probes the hosts whose health_check_http2() is set
  // (without one they are probed by `client` too) and asks those with a grpc_health_service()
  // gRPC's health service (without one their checks fail: a GET would test something else).
  HealthChecker(HealthCheckConfig config, const Clock& clock, http::Client& client,
                StateChange on_change = {}, http::Client* http2_client = nullptr);
  ~HealthChecker();

  // The hosts to check; hosts no longer listed stop being checked (their state is kept on the
  // host). Hosts already known keep their counters and schedule.
  void set_hosts(const std::vector<std::shared_ptr<UpstreamHost>>& hosts);
  // Starts the probes due at now(); returns how many were started. A host whose previous probe
  // is still out is not probed again.
  std::size_t tick();
  // When tick() next has something to do.
  Clock::TimePoint next_due() const;

  struct Stats {
    std::uint64_t probes = 0, passes = 0, failures = 0, went_unhealthy = 0, went_healthy = 0;
  };
  Stats stats() const;

 private:
  struct Target;
  void finish(const std::shared_ptr<Target>& target, bool passed);

  const HealthCheckConfig config_;
  const Clock& clock_;
  http::Client& client_;
  const StateChange on_change_;
  http::Client* const http2_client_;
  mutable std::mutex mu_;
  std::map<const UpstreamHost*, std::shared_ptr<Target>> targets_;
  Stats stats_;
  // Probes out; the destructor waits for them (each ends within `timeout`).
  std::size_t outstanding_ = 0;
  std::condition_variable none_outstanding_;
};

}  // namespace prescale::gateway
