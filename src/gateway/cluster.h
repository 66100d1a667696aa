// Cluster: one upstream service as the gateway sees it — its endpoints (from the controller or
// static config), what the data path learns about each (UpstreamHost: peak-EWMA latency,
// outstanding requests, breaker, outlier state), and the service-wide admission limits,
// outlier detector and retry budget. docs/gateway.md, "Resilience".
//
// Endpoints live in an EndpointTable (membership and draining: a removed endpoint takes no new
// requests and is dropped when its last request ends or its drain deadline passes); each has
// one UpstreamHost for as long as it is listed. The data path reads an immutable View published
// atomically: the balancer's HostSet and, at the same index, the endpoint's table state.
//
// Thread safety: every method may be called from any thread. select()/the attempt's release
// take no lock but the breaker's (half-open trials) and the atomic view load.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "gateway/balancer.h"
#include "gateway/circuit_breaker.h"
#include "gateway/endpoint_table.h"
#include "gateway/outlier_detector.h"
#include "gateway/proxy.h"
#include "gateway/retry.h"
#include "gateway/route_table.h"
#include "gateway/upstream_pool.h"

namespace prescale::gateway {

struct ClusterOptions {
  BalancerConfig balancer;
  UpstreamHostConfig host;  // every endpoint's latency estimate and failure-rate breaker
  OutlierDetectionConfig outlier;
  UpstreamLimitsConfig limits;
  RetryBudgetConfig retry_budget;
  // Admission control (docs/gateway-resilience.md): requests in flight one replica in service
  // may have, its concurrency plus what it completes within the service's queue_limit; the
  // service takes at most this many times its replicas in service. 0 = no such limit.
  std::uint32_t max_requests_per_replica = 0;
};

class Cluster {
 public:
  struct View {
    HostSet hosts;
    std::vector<std::shared_ptr<EndpointState>> states;  // same order as hosts.hosts()
    std::vector<EndpointSpec> specs;                     // same order
  };

  // `table` holds the endpoints of every service; it must outlive the cluster.
  Cluster(std::string service, ClusterOptions options, EndpointTable& table, const Clock& clock);

  const std::string& service() const { return service_; }

  // Rebuilds the view after the table changed (endpoints added, removed or reaped): new
  // endpoints get a host, gone ones lose theirs, draining ones are marked on their host.
  void refresh();
  // Takes each endpoint's health (active checks) from the cluster this one replaces, so a
  // reload that renews a cluster does not put an endpoint failing its checks back in service.
  void adopt_health(const Cluster& previous);
  // Outlier detection's interval work (success-rate ejection, host count) when due.
  void evaluate_outliers();
  std::shared_ptr<const View> view() const { return view_.load(std::memory_order_acquire); }
  // The view as the data path reads it: a per-thread copy, reloaded only when the version
  // moved (libstdc++'s atomic<shared_ptr> load takes a lock; this is one atomic read).
  const View& current_view() const;
  // Whether select() could pick a host now: one not draining whose breaker admits requests.
  bool has_usable_host() const;
  // Said by the gateway when a reload gives the service a new cluster or drops this one: no
  // endpoint change reaches this one any more.
  void supersede() { superseded_.store(true, std::memory_order_release); }
  bool superseded() const { return superseded_.load(std::memory_order_acquire); }
  // Every endpoint's host now (for health checks).
  std::vector<std::shared_ptr<UpstreamHost>> hosts() const;

  // One attempt of a request on `route`: a host picked by the balancer among those in service,
  // counted in the endpoint's in-flight requests (for draining) and the service's active
  // requests; on a retry (attempt > 0) it takes over the retry budget's place that
  // start_retry() took, and, when possible, not the previous attempt's host. A NoPick when no
  // host is in service, a limit refused (max_requests) or admission control refused (more
  // requests in flight than max_requests_per_replica × the hosts in service).
  UpstreamSelection select(int attempt, const UpstreamPick* previous);
  // Whether the reported attempt may be retried within the retry budget. As Envoy's, a retry
  // counts from this decision, through its back-off, until its own attempt is reported; a retry
  // of an attempt that never reached its endpoint (nothing sent) is a replacement and is not
  // charged. False (counted as a budget overflow) when the budget is spent.
  bool start_retry(const AttemptReport& report);
  // Admission control's requests per replica in service, from ClusterOptions until set: a
  // controller that learns the replicas' capacity keeps it to what they start within the
  // service's queue_limit. 0 = no admission limit.
  void set_max_requests_per_replica(std::uint32_t n) {
    max_requests_per_replica_.store(n, std::memory_order_relaxed);
  }
  std::uint32_t max_requests_per_replica() const {
    return max_requests_per_replica_.load(std::memory_order_relaxed);
  }
  // The attempt's end: teaches the host's latency estimate, breaker and outlier state.
  static void report(const AttemptReport& report);

  UpstreamLimits& limits() { return *limits_; }
  // New upstream connections of the service, against max_connections and max_pending_requests.
  ConnectionAdmission& connections() { return *admission_; }
  RetryBudget& retry_budget() { return budget_; }
  OutlierDetector& detector() { return *detector_; }
  const OutlierDetector& detector() const { return *detector_; }

  struct Stats {
    std::uint64_t no_host = 0;               // selects that found no host in service
    std::uint64_t limit_overflows = 0;       // selects refused by max_requests
    std::uint64_t budget_overflows = 0;      // retries refused by the retry budget
    std::uint64_t connection_overflows = 0;  // new connections refused by max_connections
    std::uint64_t pending_overflows = 0;     // ... by max_pending_requests
    std::uint64_t admission_refusals = 0;    // selects refused by max_requests_per_replica
  };
  Stats stats() const;

 private:
  const std::string service_;
  const ClusterOptions options_;
  EndpointTable& table_;
  const Clock& clock_;
  std::shared_ptr<OutlierDetector> detector_;
  Balancer balancer_;
  // Shared with the permits of open connections, which may outlive the cluster (a reload).
  std::shared_ptr<UpstreamLimits> limits_;
  std::unique_ptr<ConnectionAdmission> admission_;
  RetryBudget budget_;
  std::atomic<bool> superseded_{false};
  mutable std::mutex mu_;  // serialises refresh(); guards hosts_
  std::map<std::string, std::shared_ptr<UpstreamHost>, std::less<>> hosts_;  // by endpoint id
  std::atomic<std::shared_ptr<const View>> view_;
  std::atomic<std::uint64_t> view_version_{0};  // from a process-wide counter: never reused
  struct AdmissionLimit {
    std::uint32_t replicas = 0;  // hosts in service (or, when none is, usable in panic)
    std::uint64_t requests = 0;  // replicas × max_requests_per_replica
  };
  AdmissionLimit admission_limit(const View& v, Clock::TimePoint now,
                                 std::uint32_t per_replica) const;

  std::atomic<std::uint32_t> max_requests_per_replica_;
  std::atomic<std::uint64_t> no_host_{0}, limit_overflows_{0}, budget_overflows_{0};
  std::atomic<std::uint64_t> admission_refusals_{0};
};

// The UpstreamSelector of one route: its cluster and its retry policy.
class RouteSelector final : public UpstreamSelector {
 public:
  RouteSelector(std::shared_ptr<Cluster> cluster, RetryPolicy policy);
  UpstreamSelection select(const http::Request& request, int attempt,
                           const UpstreamPick* previous) override;
  void report(const http::Request& request, const AttemptReport& report) override;
  RetryDecision retry(const http::Request& request, const AttemptReport& report) override;
  bool retries_status(int status) const override;
  bool has_usable_upstream() const override;
  bool superseded() const override { return cluster_->superseded(); }

  const std::shared_ptr<Cluster>& cluster() const { return cluster_; }

 private:
  std::shared_ptr<Cluster> cluster_;
  const RetryPolicy policy_;
  std::atomic<std::uint64_t> rng_;
};

}  // namespace prescale::gateway
