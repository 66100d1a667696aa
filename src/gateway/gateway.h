// Gateway: the whole data plane of `prescale gateway` — routes (RouteTable), per-route rate
// limits, W3C trace context, and per service a Cluster (balancer, breakers, outlier ejection,
// retry budget) behind the Proxy's attempt loop; plus the upkeep that runs beside it: active
// health checks, outlier evaluation and reaping drained endpoints. docs/gateway.md.
//
//   auto gw = Gateway::create(config.gateway, options);      // Result<unique_ptr<Gateway>>
//   http::Server server(server_options, (*gw)->handler());
//   (*gw)->start_upkeep();                                    // health checks etc., a thread
//   (*gw)->set_endpoints("recommend", {{"r-1", "127.0.0.1", 9001}, ...});  // the controller
//
//   (*gw)->reload(new_config.gateway);  // SIGHUP: routes, limits, cluster settings; no request
//   lost
//
// Thread safety: handler() serves any number of I/O threads at once; reload(), set_endpoints(),
// add_endpoint(), remove_endpoint(), set_max_requests_per_replica() and upkeep() may be called
// from any thread. A request reads
// one published configuration from start to end (no lock on its path). Destroy the servers that
// use the handler before the Gateway.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/result.h"
#include "gateway/dns_upstreams.h"
#include "gateway/endpoint_table.h"
#include "http/message.h"

namespace prescale::telemetry {
class Registry;
class Tracer;
}

namespace prescale::gateway {

class Cluster;

struct GatewayOptions {
  Clock* clock = &Clock::real();
  telemetry::Registry* registry = nullptr;  // request, upstream and resilience metrics
  // A server span of each sampled request it forwards, to an OTLP receiver (docs/tracing.md);
  // nullptr: none, and a new trace is not sampled (traceparent is carried on either way).
  telemetry::Tracer* tracer = nullptr;
  std::string service_label = "gateway";
  std::chrono::milliseconds connect_timeout{2000};
  // How long a removed endpoint may keep its in-flight requests before it is dropped.
  std::chrono::milliseconds drain_timeout{30000};
  bool health_checks = true;  // active checks per gateway.health_check
  std::chrono::milliseconds upkeep_interval{100};
  // Looks up the host names of gateway.upstreams (DnsUpstreams); tests give their own.
  std::function<DnsAnswer(const std::string&)> resolve = resolve_host;
  // Told each time what is wrong with those lookups changes: a line per name (for the log).
  std::function<void(const std::string&)> on_dns_problem = nullptr;
  // Told, on the I/O thread, each time a request starts waiting for a replica of a service
  // that scales to zero (GatewayConfig::hold_for_replica): what brings one should look now.
  // Must be quick and thread-safe.
  std::function<void(std::string_view service)> on_hold = nullptr;
};

class Gateway {
 public:
  // Errors (kInvalidArgument): a route the RouteTable refuses, a bad static upstream.
  static Result<std::unique_ptr<Gateway>> create(const GatewayConfig& config,
                                                 GatewayOptions options = {});
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // The request handler for the gateway's http::Server(s).
  http::Handler handler();
  // For http::ServerOptions::stream_request_body of those servers: a gRPC call routed to a
  // service reached over HTTP/2 is forwarded as its body comes (client-streaming and
  // bidirectional calls), not once all of it is in.
  std::function<bool(const http::Request&)> request_body_streaming();

  // Applies a new configuration while serving (docs/gateway.md, "Reloading the configuration").
  // All of it is checked first: on an error (kInvalidArgument, naming the field, e.g.
  // "gateway.routes[2].timeout: must be > 0, got 0ms") nothing changes. Then, at once for every
  // new request: the routes with their timeouts, retry policies and rate limits; per service
  // the cluster settings (balancer, breakers and limits, outlier detection, retry budget) and
  // health checks; static endpoints of gateway.upstreams (new ones added, ones no longer listed
  // drain). Requests already routed finish with what they started with. Kept: every service's
  // endpoints (a service no longer named keeps its cluster while it has endpoints; once they
  // are gone, the upkeep or the next reload drops it, and a name named again starts afresh, its
  // admission override too); an unchanged route's proxy route and
  // metrics; a route's rate-limit buckets while its label and rate_limit stay the same; each
  // cluster with its learned state while the cluster settings stay the same (when they change,
  // every service gets a new cluster over the same endpoints, and the learned latency, breaker
  // and ejection state starts afresh; a changed max_requests_per_replica holds on its service's
  // cluster as it is). gateway.listen and gateway.threads are not reloaded.
  Result<void> reload(const GatewayConfig& config);

  // The controller's view of replicas (docs/gateway.md, "Endpoints"). set_endpoints() makes
  // `endpoints` the service's set: new ones start taking requests, missing ones drain. kNotFound
  // for a service without a cluster: none named it, or none has since its endpoints were gone.
  Result<void> set_endpoints(std::string_view service, std::vector<EndpointSpec> endpoints);
  Result<void> add_endpoint(std::string_view service, EndpointSpec endpoint);
  bool remove_endpoint(std::string_view service, std::string_view id);

  // Admission control's requests in flight per replica in service of `service` (0: none):
  // `prescale up` keeps it to the learned capacity within the service's queue_limit. It holds
  // through reloads (a renewed cluster starts from it) until one changes the service's own
  // limit (GatewayConfig::max_requests_per_replica). kNotFound for a service without a cluster.
  Result<void> set_max_requests_per_replica(std::string_view service, std::uint32_t n);
  // Puts the configuration's own limit for `service` back in force, over what
  // set_max_requests_per_replica() set. kNotFound for a service without a cluster.
  Result<void> clear_max_requests_per_replica(std::string_view service);

  // One round of upkeep: drops drained endpoints and the clusters of services no longer named
  // that have none left, evaluates outlier detection, starts due health checks. start_upkeep() runs
  // it every upkeep_interval on a thread of its own (on the clock's sleep_until); tests with a
  // ManualClock call upkeep() themselves.
  void upkeep();
  // Resolves the host names of gateway.upstreams once and applies the answers (DnsUpstreams).
  // start_upkeep() runs it every gateway.dns_refresh_rate on a thread of its own, as a lookup
  // may block for seconds; tests call it themselves.
  void refresh_dns();
  void start_upkeep();
  void stop_upkeep();

  // Each route's metrics label (the `route` of prescale_requests_total) and the service it leads
  // to, in match order: what a controller needs to read per-service figures off the metrics.
  std::vector<std::pair<std::string, std::string>> route_services() const;

  // For tests and the CLI: the cluster of `service` now (nullptr: none). A reload that changes
  // the cluster settings gives every service a new one, and the upkeep drops that of a service
  // no longer named once its endpoints are gone; the one returned stays valid, and stale.
  std::shared_ptr<const Cluster> cluster(std::string_view service) const;
  std::vector<std::string> services() const;
  std::size_t route_count() const;

 private:
  struct Impl;
  struct Routing;
  explicit Gateway(std::unique_ptr<Impl> impl);
  void handle(http::Request& request, http::Responder respond);
  bool streams_request_body(const http::Request& request);

  std::unique_ptr<Impl> impl_;
};

// The route labels a gateway running `config` gives (Gateway::route_services()), without making
// one: what a controller in another process reads the gateway's metrics by. Errors: the routes
// do not build (validate()'s messages).
Result<std::vector<std::pair<std::string, std::string>>> route_services(
    const GatewayConfig& config);

}  // namespace prescale::gateway
