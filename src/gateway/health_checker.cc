#include "gateway/health_checker.h"

#include <algorithm>

#include "gateway/endpoint_table.h"
#include "http/client.h"
#include "http/grpc_health.h"

namespace prescale::gateway {

struct HealthChecker::Target {
  std::shared_ptr<UpstreamHost> host;
  std::string name;  // for the client
  std::uint16_t port = 0;
  std::string path;  // what is requested
  std::optional<std::string> grpc_service;  // set: a gRPC health check asking about it
  bool valid = false;  // the address parsed
  Clock::TimePoint due;
  bool probing = false;
  std::uint32_t passes = 0, failures = 0;  // consecutive
};

HealthChecker::HealthChecker(HealthCheckConfig config, const Clock& clock, http::Client& client,
                             StateChange on_change, http::Client* http2_client)
    : config_(std::move(config)),
      clock_(clock),
      client_(client),
      on_change_(std::move(on_change)),
      http2_client_(http2_client) {}

HealthChecker::~HealthChecker() {
  std::unique_lock lock(mu_);
  none_outstanding_.wait(lock, [&] { return outstanding_ == 0; });
}

void HealthChecker::set_hosts(const std::vector<std::shared_ptr<UpstreamHost>>& hosts) {
  std::lock_guard lock(mu_);
  std::map<const UpstreamHost*, std::shared_ptr<Target>> next;
  for (const auto& host : hosts) {
    auto it = targets_.find(host.get());
    if (it != targets_.end()) {
      next.emplace(host.get(), it->second);
      continue;
    }
    auto t = std::make_shared<Target>();
    t->host = host;
    t->path = host->health_check_path().empty() ? config_.path : host->health_check_path();
    t->grpc_service = host->grpc_health_service();
    if (auto spec = parse_endpoint(host->address())) {
      t->name = spec->host;
      t->port = spec->port;
      t->valid = true;
    }
    t->due = clock_.now();
    next.emplace(host.get(), std::move(t));
  }
  targets_ = std::move(next);
}

std::size_t HealthChecker::tick() {
  const Clock::TimePoint now = clock_.now();
  std::vector<std::shared_ptr<Target>> start;
  {
    std::lock_guard lock(mu_);
    for (auto& [key, t] : targets_) {
      if (t->probing || t->due > now) continue;
      t->probing = true;
      t->due = now + config_.interval;
      ++outstanding_;
      ++stats_.probes;
      start.push_back(t);
    }
  }
  for (const auto& t : start) {
    if (!t->valid) {
      finish(t, false);
      continue;
    }
    const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config_.timeout);
    if (t->grpc_service) {
      if (http2_client_ == nullptr) {  // no way to ask: a GET would test something else
        finish(t, false);
        continue;
      }
      http2_client_->async_request(
          t->name, t->port, http::grpc_health_request(*t->grpc_service),
          [this, t](Result<http::Response> r) {
            finish(t, r.has_value() && http::read_grpc_health(*r).serving());
          },
          timeout);
      continue;
    }
    http::Request req;
    req.method = http::Method::kGet;
    req.method_name = "GET";
    req.target = t->path;
    req.headers.set("User-Agent", "prescale-health-check");
    http::Client& client =
        t->host->health_check_http2() && http2_client_ != nullptr ? *http2_client_ : client_;
    client.async_request(
        t->name, t->port, std::move(req),
        [this, t](Result<http::Response> r) {
          finish(t, r.has_value() && r->status >= 200 && r->status <= 399);
        },
        timeout);
  }
  return start.size();
}

void HealthChecker::finish(const std::shared_ptr<Target>& t, bool passed) {
  std::optional<bool> changed;
  {
    std::lock_guard lock(mu_);
    t->probing = false;
    if (passed) {
      ++stats_.passes;
      ++t->passes;
      t->failures = 0;
      if (!t->host->healthy() && t->passes >= config_.healthy_threshold) {
        t->host->set_healthy(true);
        ++stats_.went_healthy;
        changed = true;
      }
    } else {
      ++stats_.failures;
      ++t->failures;
      t->passes = 0;
      if (t->host->healthy() && t->failures >= config_.unhealthy_threshold) {
        t->host->set_healthy(false);
        ++stats_.went_unhealthy;
        changed = false;
      }
    }
  }
  if (changed && on_change_) on_change_(*t->host, *changed);
  // Last: the destructor may run as soon as the count reaches zero.
  std::lock_guard lock(mu_);
  --outstanding_;
  if (outstanding_ == 0) none_outstanding_.notify_all();
}

Clock::TimePoint HealthChecker::next_due() const {
  std::lock_guard lock(mu_);
  Clock::TimePoint next = Clock::TimePoint::max();
  for (const auto& [key, t] : targets_) {
    if (!t->probing) next = std::min(next, t->due);
  }
  return next;
}

HealthChecker::Stats HealthChecker::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace prescale::gateway
