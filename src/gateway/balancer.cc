#include "gateway/balancer.h"

#include <algorithm>
#include <utility>

#include "core/splitmix.h"

namespace prescale::gateway {
namespace {

// Indices of the hosts in service. A per-thread buffer: no allocation once warm, no lock.
std::vector<std::uint32_t>& hosts_in_service(std::span<const std::shared_ptr<UpstreamHost>> hosts,
                                             Clock::TimePoint now) {
  thread_local std::vector<std::uint32_t> in_service;
  in_service.clear();
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    if (hosts[i]->in_service(now)) in_service.push_back(static_cast<std::uint32_t>(i));
  }
  return in_service;
}

// Panic mode (Envoy's healthy panic threshold, at 0 %): when no host is in service, health
// checks and outlier ejection are ignored and the hosts that are not draining and whose breaker
// admits requests are used — an overloaded replica that its failures got ejected is still better
// than answering every request 503 with nothing behind the gateway.
std::vector<std::uint32_t>& hosts_in_panic(std::span<const std::shared_ptr<UpstreamHost>> hosts,
                                           Clock::TimePoint now) {
  std::vector<std::uint32_t>& usable = hosts_in_service(hosts, now);  // the same buffer
  usable.clear();
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    if (hosts[i]->usable_in_panic(now)) usable.push_back(static_cast<std::uint32_t>(i));
  }
  return usable;
}

}  // namespace

// --- UpstreamHost ------------------------------------------------------------------------------

UpstreamHost::UpstreamHost(std::string address, Clock::TimePoint added_at,
                           UpstreamHostConfig config, std::shared_ptr<OutlierDetector> detector)
    : address_(std::move(address)),
      health_check_path_(std::move(config.health_check_path)),
      health_check_http2_(config.health_check_http2),
      grpc_health_service_(std::move(config.grpc_health_service)),
      latency_(added_at, config.latency),
      breaker_(config.breaker ? std::make_unique<FailureRateBreaker>(*config.breaker) : nullptr),
      detector_(std::move(detector)) {}

bool UpstreamHost::in_service(Clock::TimePoint now) const {
  return !draining() && healthy() && !outlier_.ejected(now) &&
         (breaker_ == nullptr || breaker_->is_accepting(now));
}

bool UpstreamHost::usable_in_panic(Clock::TimePoint now) const {
  return !draining() && (breaker() == nullptr || breaker()->is_accepting(now));
}

double UpstreamHost::cost(Clock::TimePoint now) const {
  return latency_.estimate_ns(now) * (static_cast<double>(outstanding()) + 1.0);
}

// --- UpstreamRequest ---------------------------------------------------------------------------

std::optional<UpstreamRequest> UpstreamRequest::start(std::shared_ptr<UpstreamHost> host,
                                                      Clock::TimePoint now) {
  std::optional<BreakerPermit> permit;
  if (host->breaker_ != nullptr) {
    permit = host->breaker_->try_acquire(now);
    if (!permit) return std::nullopt;
  }
  host->outstanding_.fetch_add(1, std::memory_order_relaxed);
  return UpstreamRequest(std::move(host), now, std::move(permit));
}

UpstreamRequest::UpstreamRequest(std::shared_ptr<UpstreamHost> host, Clock::TimePoint started_at,
                                 std::optional<BreakerPermit> permit)
    : host_(std::move(host)), started_at_(started_at), permit_(std::move(permit)), active_(true) {}

UpstreamRequest::UpstreamRequest(UpstreamRequest&& other) noexcept
    : host_(std::move(other.host_)),
      started_at_(other.started_at_),
      permit_(std::move(other.permit_)),
      judged_(other.judged_),
      active_(std::exchange(other.active_, false)) {
  other.permit_.reset();
}

UpstreamRequest& UpstreamRequest::operator=(UpstreamRequest&& other) noexcept {
  if (this != &other) {
    cancel();
    host_ = std::move(other.host_);
    started_at_ = other.started_at_;
    permit_ = std::move(other.permit_);
    other.permit_.reset();
    judged_ = other.judged_;
    active_ = std::exchange(other.active_, false);
  }
  return *this;
}

UpstreamRequest::~UpstreamRequest() { cancel(); }

void UpstreamRequest::finish(Clock::TimePoint now, const UpstreamOutcome& outcome) {
  if (!active_) return;
  judge(now, outcome);
  release();
}

void UpstreamRequest::judge(Clock::TimePoint now, const UpstreamOutcome& outcome) {
  if (!active_ || judged_) return;
  judged_ = true;
  const Clock::Duration latency = now - started_at_;
  if (outcome.error != UpstreamError::kConnectFailure) host_->latency_.observe(now, latency);
  if (permit_) permit_->record(now, outcome.is_failure(), latency);
  if (host_->detector_ != nullptr) host_->detector_->record(host_->outlier_, outcome, now);
}

void UpstreamRequest::cancel() {
  if (!active_) return;
  release();
}

void UpstreamRequest::release() {
  permit_.reset();  // cancels the permit unless record() consumed it
  host_->outstanding_.fetch_sub(1, std::memory_order_relaxed);
  active_ = false;
}

// --- HostSet, Balancer -------------------------------------------------------------------------

HostSet::HostSet(std::vector<std::shared_ptr<UpstreamHost>> hosts) : hosts_(std::move(hosts)) {
  outlier_states_.reserve(hosts_.size());
  for (const auto& host : hosts_) outlier_states_.push_back(&host->outlier());
}

Balancer::Balancer(BalancerConfig config)
    : config_(config),
      rng_state_(config.seed != 0 ? config.seed
                                  : splitmix64_mix(static_cast<std::uint64_t>(
                                        reinterpret_cast<std::uintptr_t>(this)))) {}

std::uint64_t Balancer::next_random() {
  // SplitMix64 over a shared counter: lock-free, every caller gets its own draw, and with one
  // thread the sequence is fixed by the seed.
  return splitmix64_next(rng_state_);
}

std::shared_ptr<UpstreamHost> Balancer::choose(const HostSet& set, Clock::TimePoint now) {
  const std::span<const std::shared_ptr<UpstreamHost>> hosts = set.hosts();
  const std::size_t n = hosts.size();
  if (n == 0) return nullptr;

  if (config_.policy == BalancerPolicy::kRoundRobin) {
    // Round robin over the hosts in service, so a skipped host's turn is not handed to its
    // neighbour (which would then get twice its share).
    const std::vector<std::uint32_t>* in_service = &hosts_in_service(hosts, now);
    if (in_service->empty()) in_service = &hosts_in_panic(hosts, now);
    if (in_service->empty()) return nullptr;
    const std::uint64_t turn = round_robin_.fetch_add(1, std::memory_order_relaxed);
    return hosts[(*in_service)[turn % in_service->size()]];
  }

  // Power of two choices. The first candidate is the host next in turn (round robin over all
  // hosts; one out of service gives its turn to a random one), the second is drawn uniformly from
  // the others. Draw from all hosts and reject those out of service (O(1) when most are in
  // service); fall back to listing the hosts in service when many are out.
  constexpr int kMaxDraws = 8;
  std::size_t a = n, b = n;
  if (n > 1) {
    const std::size_t turn = round_robin_.fetch_add(1, std::memory_order_relaxed) % n;
    if (hosts[turn]->in_service(now)) a = turn;
    for (int draw = 0; draw < kMaxDraws && b == n; ++draw) {
      const std::size_t i = next_random() % n;
      if (i == a || !hosts[i]->in_service(now)) continue;
      if (a == n) {
        a = i;
      } else {
        b = i;
      }
    }
  }
  if (b == n) {
    const std::vector<std::uint32_t>* listed = &hosts_in_service(hosts, now);
    if (listed->empty()) listed = &hosts_in_panic(hosts, now);
    const std::vector<std::uint32_t>& in_service = *listed;
    const std::size_t m = in_service.size();
    if (m == 0) return nullptr;
    if (m == 1) return hosts[in_service[0]];
    auto where = std::find(in_service.begin(), in_service.end(), static_cast<std::uint32_t>(a));
    std::size_t first = 0;
    if (a != n && where != in_service.end()) {
      first = static_cast<std::size_t>(where - in_service.begin());  // the host in turn stays
    } else {
      first = next_random() % m;
      a = in_service[first];
    }
    b = in_service[(first + 1 + next_random() % (m - 1)) % m];
  }

  // The drawn host wins only when clearly cheaper. Between equal hosts the cost differences are
  // noise (a response waiting for its I/O thread counts as outstanding), and following noise
  // spreads requests at random: each replica then sees burstier arrivals than in turn, and a
  // longer queue tail (bench/gateway.sh: p99 ×2 on two single-threaded replicas).
  const UpstreamHost& ha = *hosts[a];
  const UpstreamHost& hb = *hosts[b];
  const bool take_b = config_.policy == BalancerPolicy::kLeastRequest
                          ? (static_cast<double>(hb.outstanding()) + 1.0) * config_.tolerance <
                                static_cast<double>(ha.outstanding()) + 1.0
                          : hb.cost(now) * config_.tolerance < ha.cost(now);
  return hosts[take_b ? b : a];
}

std::optional<UpstreamRequest> Balancer::pick(const HostSet& hosts, Clock::TimePoint now) {
  for (int attempt = 0; attempt < std::max(config_.max_start_attempts, 1); ++attempt) {
    std::shared_ptr<UpstreamHost> host = choose(hosts, now);
    if (host == nullptr) return std::nullopt;
    if (std::optional<UpstreamRequest> request = UpstreamRequest::start(std::move(host), now)) {
      return request;
    }
  }
  return std::nullopt;
}

}  // namespace prescale::gateway
