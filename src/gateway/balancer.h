// Load balancing over a cluster's hosts (docs/gateway-resilience.md).
//
//   * UpstreamHost: one replica and everything the data path learns about it: a peak-EWMA latency
//     estimate, requests outstanding, draining / health flags, outlier-ejection state and an
//     optional failure-rate breaker. Long-lived; shared by every snapshot that lists it.
//   * HostSet: an immutable snapshot of a cluster's hosts. Publish a new one to change the set.
//   * UpstreamRequest: one attempt at one host (RAII). Counts as outstanding until finished,
//     holds the host's breaker permit, and feeds the outcome to the EWMA, breaker and detector.
//   * Balancer: picks a host that is in service: power of two choices on peak-EWMA cost
//     (default, Linkerd), on requests outstanding (Envoy least_request) or round robin. The two
//     candidates are the host next in round-robin turn and one drawn at random; the drawn one
//     wins only when it is cheaper by more than `tolerance`, so equal hosts are taken in turn
//     (the smoothest arrivals each can get) and a slow or overloaded one is steered around. Hosts
//     that are draining, unhealthy, ejected or whose breaker is open are skipped; when none is
//     left, pick() returns nullopt and the proxy answers 503.
//
// Thread safety: every method may be called from any thread. choose() takes no lock: it reads
// atomics of an immutable snapshot. pick() adds the host's breaker admission, lock-free while the
// breaker is closed (a half-open trial takes that breaker's mutex). finish() takes the breaker's
// mutex to record the result. UpstreamRequest keeps its host alive (shared_ptr), so a request may
// outlive the snapshot it was picked from.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gateway/circuit_breaker.h"
#include "gateway/ewma.h"
#include "gateway/outlier_detector.h"
#include "gateway/upstream_outcome.h"

namespace prescale::gateway {

struct UpstreamHostConfig {
  PeakEwmaConfig latency;
  std::optional<FailureRateBreakerConfig> breaker;  // none: the host has no failure-rate breaker
  // Where active health checks request the host ("" = the checker's own path): the readiness
  // path of its service.
  std::string health_check_path;
  // Its service speaks HTTP/2 only (a gRPC server): the checks go over HTTP/2.
  bool health_check_http2 = false;
  // Set: the checks ask gRPC's health service (grpc.health.v1.Health/Check, over HTTP/2) about
  // this name ("" = the server as a whole) instead of GETting a path; SERVING passes.
  std::optional<std::string> grpc_health_service;
};

class UpstreamHost {
 public:
  // `added_at`: when the host joined (its latency prior starts decaying then). `detector`: the
  // cluster's outlier detector, told of every outcome; may be null.
  UpstreamHost(std::string address, Clock::TimePoint added_at, UpstreamHostConfig config = {},
               std::shared_ptr<OutlierDetector> detector = nullptr);

  const std::string& address() const { return address_; }
  // UpstreamHostConfig::health_check_path ("" = the checker's own).
  const std::string& health_check_path() const { return health_check_path_; }
  bool health_check_http2() const { return health_check_http2_; }
  const std::optional<std::string>& grpc_health_service() const { return grpc_health_service_; }

  // Draining: being removed (scale-in, shutdown); gets no new requests. Unhealthy: failed active
  // health checks or readiness. Both are set by whoever owns the endpoint table.
  void set_draining(bool draining) { draining_.store(draining, std::memory_order_relaxed); }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  void set_healthy(bool healthy) { healthy_.store(healthy, std::memory_order_relaxed); }
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }

  // Whether the balancer may pick the host at `now`.
  bool in_service(Clock::TimePoint now) const;
  // Whether panic mode (no host in service) may pick it: not draining, breaker admitting.
  bool usable_in_panic(Clock::TimePoint now) const;
  std::uint32_t outstanding() const { return outstanding_.load(std::memory_order_relaxed); }
  // Peak-EWMA latency (ns) × (outstanding + 1): Linkerd's load metric.
  double cost(Clock::TimePoint now) const;

  const PeakEwma& latency() const { return latency_; }
  const OutlierHostState& outlier() const { return outlier_; }
  OutlierHostState& outlier() { return outlier_; }
  FailureRateBreaker* breaker() { return breaker_.get(); }
  const FailureRateBreaker* breaker() const { return breaker_.get(); }

 private:
  friend class UpstreamRequest;

  const std::string address_;
  const std::string health_check_path_;
  const bool health_check_http2_;
  const std::optional<std::string> grpc_health_service_;
  PeakEwma latency_;
  OutlierHostState outlier_;
  std::unique_ptr<FailureRateBreaker> breaker_;
  std::shared_ptr<OutlierDetector> detector_;
  std::atomic<std::uint32_t> outstanding_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> healthy_{true};
};

// One attempt at one host. Move-only. finish() reports the outcome; destroying an unfinished
// request (the client went away) only releases what it holds: it teaches nothing.
class UpstreamRequest {
 public:
  // Starts a request: takes a breaker permit (nullopt when the breaker refuses) and counts the
  // request as outstanding.
  static std::optional<UpstreamRequest> start(std::shared_ptr<UpstreamHost> host,
                                              Clock::TimePoint now);

  UpstreamRequest(UpstreamRequest&& other) noexcept;
  UpstreamRequest& operator=(UpstreamRequest&& other) noexcept;
  UpstreamRequest(const UpstreamRequest&) = delete;
  UpstreamRequest& operator=(const UpstreamRequest&) = delete;
  ~UpstreamRequest();

  UpstreamHost& host() const { return *host_; }
  const std::shared_ptr<UpstreamHost>& host_ptr() const { return host_; }
  Clock::TimePoint started_at() const { return started_at_; }

  // The attempt ended at `now` with `outcome` (latency = now − started_at): updates the latency
  // estimate (except on connect failure, which measured no round trip), the breaker and the
  // outlier detector, and stops counting the request as outstanding. Idempotent.
  void finish(Clock::TimePoint now, const UpstreamOutcome& outcome);
  // Learns from `outcome` as finish() does, but the request stays outstanding until finish(),
  // cancel() or its destruction (which then teach nothing more): an answer whose body streams
  // on, judged by its head, that keeps the host busy until the body ends. Idempotent.
  void judge(Clock::TimePoint now, const UpstreamOutcome& outcome);
  void cancel();  // ends the attempt without an outcome; idempotent

 private:
  UpstreamRequest(std::shared_ptr<UpstreamHost> host, Clock::TimePoint started_at,
                  std::optional<BreakerPermit> permit);
  void release();

  std::shared_ptr<UpstreamHost> host_;
  Clock::TimePoint started_at_;
  std::optional<BreakerPermit> permit_;
  bool judged_ = false;  // judge() learned from it already
  bool active_ = false;
};

// An immutable snapshot of a cluster's hosts.
class HostSet {
 public:
  explicit HostSet(std::vector<std::shared_ptr<UpstreamHost>> hosts);

  std::span<const std::shared_ptr<UpstreamHost>> hosts() const { return hosts_; }
  std::size_t size() const { return hosts_.size(); }
  // The hosts' outlier states, for OutlierDetector::evaluate.
  std::span<OutlierHostState* const> outlier_states() const { return outlier_states_; }

 private:
  std::vector<std::shared_ptr<UpstreamHost>> hosts_;
  std::vector<OutlierHostState*> outlier_states_;
};

enum class BalancerPolicy {
  kPeakEwma,      // P2C on cost = peak-EWMA latency × (outstanding + 1); Linkerd's default
  kLeastRequest,  // P2C on requests outstanding; Envoy's LEAST_REQUEST with equal weights
  kRoundRobin,
};

struct BalancerConfig {
  BalancerPolicy policy = BalancerPolicy::kPeakEwma;
  std::uint64_t seed = 0;  // of the P2C draws; 0: seeded from the address of the balancer
  // P2C: the drawn candidate replaces the one in turn only when its cost × tolerance is lower
  // (for least_request the cost is outstanding + 1). 1: the cheaper always wins. Must be ≥ 1.
  double tolerance = 2.0;
  // A host whose breaker refuses at start() (a race with the filter) is skipped and the pick
  // retried, at most this many times.
  int max_start_attempts = 3;
};

class Balancer {
 public:
  explicit Balancer(BalancerConfig config = {});

  // A host in service, chosen by the policy; nullptr when none is.
  std::shared_ptr<UpstreamHost> choose(const HostSet& hosts, Clock::TimePoint now);
  // choose() + UpstreamRequest::start(); nullopt when no host is in service (answer 503).
  std::optional<UpstreamRequest> pick(const HostSet& hosts, Clock::TimePoint now);

  const BalancerConfig& config() const { return config_; }

 private:
  std::uint64_t next_random();

  const BalancerConfig config_;
  std::atomic<std::uint64_t> rng_state_;
  std::atomic<std::uint64_t> round_robin_{0};
};

}  // namespace prescale::gateway
