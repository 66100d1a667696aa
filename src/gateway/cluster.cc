#include "gateway/cluster.h"

#include <algorithm>
#include <optional>
#include <random>
#include <vector>

#include "core/splitmix.h"
#include "gateway/internal/thread_cached.h"

namespace prescale::gateway {
namespace {

// What one attempt holds until the proxy releases its pick: the balancer's request (outstanding
// count, breaker permit), the endpoint's in-flight count (draining) and the admission guards.
struct AttemptContext {
  std::optional<UpstreamRequest> request;
  std::shared_ptr<EndpointState> endpoint;
  std::optional<ResourceGuard> active;
  std::optional<ResourceGuard> retry;
  const Clock* clock = nullptr;
  // The attempt never reached its endpoint (connect failure, nothing sent): retrying it is a
  // replacement, not extra load, so that retry is not charged to the retry budget.
  bool never_sent = false;

  ~AttemptContext() {
    request.reset();  // cancels an attempt that was never reported
    if (endpoint) endpoint->release();
  }
};

// The service's connection limits for the pools: a permit holds one connection (and, until it
// connects, one pending request) of the shared UpstreamLimits.
class ClusterAdmission final : public ConnectionAdmission {
 public:
  ClusterAdmission(std::string service, std::shared_ptr<UpstreamLimits> limits)
      : service_(std::move(service)), limits_(std::move(limits)) {}

  std::unique_ptr<Permit> try_open(std::string& why) override {
    std::optional<ResourceGuard> open = limits_->try_acquire(UpstreamResource::kConnections);
    if (!open) {
      why = over("max_connections", UpstreamResource::kConnections, "upstream connections open");
      return nullptr;
    }
    std::optional<ResourceGuard> pending = limits_->try_acquire(UpstreamResource::kPendingRequests);
    if (!pending) {
      why = over("max_pending_requests", UpstreamResource::kPendingRequests,
                 "requests waiting for an upstream connection");
      return nullptr;
    }
    return std::make_unique<ConnectionPermit>(limits_, std::move(*open), std::move(*pending));
  }

 private:
  struct ConnectionPermit final : Permit {
    ConnectionPermit(std::shared_ptr<UpstreamLimits> l, ResourceGuard o, ResourceGuard p)
        : limits(std::move(l)), open(std::move(o)), pending(std::move(p)) {}
    void connected() override { pending.release(); }
    // Declared first: the guards point into it.
    std::shared_ptr<UpstreamLimits> limits;
    ResourceGuard open;
    ResourceGuard pending;
  };

  std::string over(std::string_view setting, UpstreamResource r, std::string_view what) const {
    return "circuit_breakers." + std::string(setting) + " (" + std::to_string(limits_->limit(r)) +
           " " + std::string(what) + ") reached for service " + service_;
  }

  const std::string service_;
  const std::shared_ptr<UpstreamLimits> limits_;
};

}  // namespace

Cluster::Cluster(std::string service, ClusterOptions options, EndpointTable& table,
                 const Clock& clock)
    : service_(std::move(service)),
      options_(std::move(options)),
      table_(table),
      clock_(clock),
      detector_(std::make_shared<OutlierDetector>(options_.outlier)),
      balancer_(options_.balancer),
      limits_(std::make_shared<UpstreamLimits>(options_.limits)),
      admission_(std::make_unique<ClusterAdmission>(service_, limits_)),
      budget_(options_.retry_budget),
      max_requests_per_replica_(options_.max_requests_per_replica) {
  refresh();
}

void Cluster::refresh() {
  std::lock_guard lock(mu_);
  const std::shared_ptr<const EndpointSnapshot> snapshot = table_.snapshot();
  const ServiceEndpoints* endpoints = snapshot->find(service_);
  std::vector<std::shared_ptr<UpstreamHost>> hosts;
  std::vector<std::shared_ptr<EndpointState>> states;
  std::vector<EndpointSpec> specs;
  std::map<std::string, std::shared_ptr<UpstreamHost>, std::less<>> next;
  // A new host's latency prior: the configured default_rtt (Linkerd's 30 ms), or the median
  // estimate of the measured hosts in service it joins when that is lower. A host joining fast
  // peers is taken to be as fast as they are and gets its share at once (a rolling update's
  // replacement must serve to show whether it fails), not once its prior has decayed below theirs
  // (about 46 s against sub-millisecond peers).
  std::optional<UpstreamHostConfig> joining;
  auto joining_config = [&]() -> const UpstreamHostConfig& {
    if (joining) return *joining;
    joining = options_.host;
    std::vector<Clock::Duration> peers;
    const Clock::TimePoint now = clock_.now();
    for (const auto& [id, h] : hosts_) {
      if (h->latency().has_sample() && h->in_service(now)) {
        peers.push_back(h->latency().estimate(now));
      }
    }
    if (!peers.empty()) {
      std::nth_element(peers.begin(), peers.begin() + peers.size() / 2, peers.end());
      joining->latency.default_rtt =
          std::min(joining->latency.default_rtt, peers[peers.size() / 2]);
    }
    return *joining;
  };
  if (endpoints != nullptr) {
    for (const Endpoint& e : endpoints->endpoints) {
      auto it = hosts_.find(e.state->spec.id);
      std::shared_ptr<UpstreamHost> host =
          it != hosts_.end() && it->second->address() == e.state->address
              ? it->second
              : std::make_shared<UpstreamHost>(e.state->address, clock_.now(), joining_config(),
                                               detector_);
      host->set_draining(e.draining);
      next.emplace(e.state->spec.id, host);
      hosts.push_back(std::move(host));
      states.push_back(e.state);
      specs.push_back(e.state->spec);
    }
  }
  hosts_ = std::move(next);
  view_.store(std::make_shared<const View>(
                  View{HostSet(std::move(hosts)), std::move(states), std::move(specs)}),
              std::memory_order_release);
  static std::atomic<std::uint64_t> versions{0};
  view_version_.store(versions.fetch_add(1, std::memory_order_relaxed) + 1,
                      std::memory_order_release);
}

void Cluster::adopt_health(const Cluster& previous) {
  if (&previous == this) return;
  std::scoped_lock lock(mu_, previous.mu_);
  for (const auto& [id, host] : hosts_) {
    auto it = previous.hosts_.find(id);
    if (it != previous.hosts_.end() && it->second->address() == host->address()) {
      host->set_healthy(it->second->healthy());
    }
  }
}

bool Cluster::has_usable_host() const {
  const Clock::TimePoint now = clock_.now();
  for (const auto& h : current_view().hosts.hosts()) {
    if (h->usable_in_panic(now)) return true;
  }
  return false;
}

const Cluster::View& Cluster::current_view() const {
  return internal::thread_cached<View>(this, view_version_, [this] { return view(); });
}

void Cluster::evaluate_outliers() {
  const std::shared_ptr<const View> v = view();
  detector_->evaluate(v->hosts.outlier_states(), clock_.now());
}

std::vector<std::shared_ptr<UpstreamHost>> Cluster::hosts() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<UpstreamHost>> out;
  out.reserve(hosts_.size());
  for (const auto& [id, host] : hosts_) out.push_back(host);
  return out;
}

Cluster::AdmissionLimit Cluster::admission_limit(const View& v, Clock::TimePoint now,
                                                 std::uint32_t per_replica) const {
  AdmissionLimit out;
  for (const auto& h : v.hosts.hosts()) out.replicas += h->in_service(now) ? 1 : 0;
  if (out.replicas == 0) {
    // The balancer's panic mode sends to these: so many replicas are what requests queue on.
    for (const auto& h : v.hosts.hosts()) out.replicas += h->usable_in_panic(now) ? 1 : 0;
  }
  out.requests = std::uint64_t{out.replicas} * per_replica;
  return out;
}

UpstreamSelection Cluster::select(int attempt, const UpstreamPick* previous) {
  const View* v = &current_view();
  if (v->hosts.size() == 0) {
    no_host_.fetch_add(1, std::memory_order_relaxed);
    return std::unexpected(NoPick{});
  }
  auto ctx = std::make_shared<AttemptContext>();
  ctx->clock = &clock_;
  auto* previous_ctx =
      previous != nullptr ? static_cast<AttemptContext*>(previous->context.get()) : nullptr;
  // The retry's place in the budget, taken by start_retry(), stays until this attempt ends.
  if (attempt > 0 && previous_ctx != nullptr) ctx->retry = std::move(previous_ctx->retry);
  ctx->active = limits_->try_acquire(UpstreamResource::kRequests);
  if (!ctx->active) {
    limit_overflows_.fetch_add(1, std::memory_order_relaxed);
    return std::unexpected(NoPick{NoPick::Reason::kOverflow,
                                  "service " + service_ + ": circuit_breakers.max_requests (" +
                                      std::to_string(limits_->limit(UpstreamResource::kRequests)) +
                                      " requests in flight) reached"});
  }
  const Clock::TimePoint now = clock_.now();
  // Admission control. Up to one replica's worth no count of hosts is needed — with any host in
  // service the limit is at least that — so a service within it pays nothing more than before.
  // Past that, the unit just taken is exchanged for one taken below the admission limit (a
  // bounded compare-and-swap: concurrent attempts never push each other over, nor out).
  if (const std::uint32_t per_replica = max_requests_per_replica(); per_replica > 0) {
    if (limits_->in_use(UpstreamResource::kRequests) > per_replica) {
      const AdmissionLimit limit = admission_limit(*v, now, per_replica);
      if (limit.replicas > 0 && limit.requests < limits_->limit(UpstreamResource::kRequests)) {
        ctx->active.reset();
        ctx->active = limits_->try_acquire_below(UpstreamResource::kRequests,
                                                 static_cast<std::uint32_t>(limit.requests));
        if (!ctx->active) {
          admission_refusals_.fetch_add(1, std::memory_order_relaxed);
          return std::unexpected(
              NoPick{NoPick::Reason::kOverloaded,
                     "service " + service_ + ": " +
                         std::to_string(limits_->in_use(UpstreamResource::kRequests)) +
                         " requests in flight, the limit for " + std::to_string(limit.replicas) +
                         (limit.replicas == 1 ? " ready replica is " : " ready replicas is ") +
                         std::to_string(limit.requests)});
        }
      }
    }
  }
  const auto hosts = v->hosts.hosts();
  // Claims host i for this attempt; false when it is draining since the view was made or its
  // breaker closed the door since the pick.
  auto claim = [&](size_t i) -> std::optional<UpstreamPick> {
    if (!v->states[i]->try_acquire()) return std::nullopt;
    ctx->request = UpstreamRequest::start(hosts[i], now);
    if (!ctx->request) {
      v->states[i]->release();
      return std::nullopt;
    }
    ctx->endpoint = v->states[i];
    const EndpointSpec& spec = v->specs[i];
    UpstreamPick pick;
    pick.host = spec.host;
    pick.port = spec.port;
    pick.tag = i;
    pick.context = std::move(ctx);
    pick.admission = admission_.get();
    return pick;
  };
  auto is_previous = [&](size_t i) {
    return previous != nullptr && previous->host == v->specs[i].host &&
           previous->port == v->specs[i].port;
  };
  for (int tries = 0; tries < 4; ++tries) {
    std::shared_ptr<UpstreamHost> host = balancer_.choose(v->hosts, now);
    if (!host) break;
    size_t i = 0;
    while (i < hosts.size() && hosts[i] != host) ++i;
    if (i == hosts.size()) continue;
    // A retry goes elsewhere when another host is in service (Envoy's previous-hosts
    // predicate): the balancer may keep offering the host that just failed — a replica refusing
    // connections answers fastest of all until it is ejected.
    if (is_previous(i) && hosts.size() > 1) continue;
    if (auto pick = claim(i)) return std::move(*pick);
  }
  if (previous != nullptr && hosts.size() > 1) {
    // The draws kept returning the failed host: any other in service, from a random start, and
    // the failed one only when it is the last left.
    const size_t start = static_cast<size_t>(now.time_since_epoch().count()) % hosts.size();
    for (size_t k = 0; k < hosts.size(); ++k) {
      const size_t i = (start + k) % hosts.size();
      if (is_previous(i) || !hosts[i]->in_service(now)) continue;
      if (auto pick = claim(i)) return std::move(*pick);
    }
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (is_previous(i) && hosts[i]->in_service(now)) {
        if (auto pick = claim(i)) return std::move(*pick);
      }
    }
  }
  no_host_.fetch_add(1, std::memory_order_relaxed);
  return std::unexpected(NoPick{});
}

void Cluster::report(const AttemptReport& report) {
  auto* ctx = static_cast<AttemptContext*>(report.pick.context.get());
  if (ctx == nullptr || !ctx->request) return;
  ctx->never_sent = !report.request_sent && !report.cancelled &&
                    report.outcome.error == UpstreamError::kConnectFailure;
  ctx->retry.reset();  // a new retry takes its own place (start_retry())
  if (report.streaming) {
    // Judged by its head; in flight, on its endpoint and for the service's limits, until the
    // body ends and the proxy releases the pick (~AttemptContext).
    ctx->request->judge(ctx->clock->now(), report.outcome);
    return;
  }
  // The attempt is over: it no longer counts as a request in flight (also while the proxy
  // backs off before a retry), nor as a retry.
  ctx->active.reset();
  if (report.cancelled) {
    ctx->request->cancel();
  } else {
    ctx->request->finish(ctx->clock->now(), report.outcome);
  }
}

bool Cluster::start_retry(const AttemptReport& report) {
  auto* ctx = static_cast<AttemptContext*>(report.pick.context.get());
  if (ctx == nullptr || ctx->never_sent) return true;
  ctx->retry = budget_.try_start_retry(limits_->in_use(UpstreamResource::kRequests),
                                       limits_->in_use(UpstreamResource::kPendingRequests));
  if (!ctx->retry) {
    budget_overflows_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

Cluster::Stats Cluster::stats() const {
  return Stats{no_host_.load(std::memory_order_relaxed),
               limit_overflows_.load(std::memory_order_relaxed),
               budget_overflows_.load(std::memory_order_relaxed),
               limits_->overflows(UpstreamResource::kConnections),
               limits_->overflows(UpstreamResource::kPendingRequests),
               admission_refusals_.load(std::memory_order_relaxed)};
}

RouteSelector::RouteSelector(std::shared_ptr<Cluster> cluster, RetryPolicy policy)
    : cluster_(std::move(cluster)), policy_(std::move(policy)), rng_(std::random_device{}()) {}

UpstreamSelection RouteSelector::select(const http::Request&, int attempt,
                                        const UpstreamPick* previous) {
  return cluster_->select(attempt, previous);
}

bool RouteSelector::has_usable_upstream() const { return cluster_->has_usable_host(); }

void RouteSelector::report(const http::Request&, const AttemptReport& report) {
  Cluster::report(report);
}

RetryDecision RouteSelector::retry(const http::Request& request, const AttemptReport& report) {
  if (!should_retry(policy_, request.method_name, report.outcome,
                    static_cast<std::uint32_t>(report.attempt)) ||
      !cluster_->start_retry(report)) {
    return {};
  }
  // SplitMix64 over a shared counter: cheap, lock-free, independent draws per retry.
  return RetryDecision{
      true, backoff_delay(policy_.backoff, static_cast<std::uint32_t>(report.attempt) + 1,
                          splitmix64_next(rng_))};
}

bool RouteSelector::retries_status(int status) const {
  return is_retryable(policy_, UpstreamOutcome::response(status));
}

}  // namespace prescale::gateway
