// The gateway's per-service cluster metrics (docs/gateway.md, "Admin endpoints and metrics").
#include <memory>
#include <vector>

#include "gateway/internal/gateway_impl.h"

namespace prescale::gateway {

void Gateway::Impl::collect_cluster_metrics(std::vector<telemetry::FamilySnapshot>& out) const {
  using telemetry::MetricType;
  telemetry::FamilySnapshot endpoints{"prescale_gateway_endpoints",
                                      "Endpoints of an upstream service by state",
                                      MetricType::kGauge,
                                      {"service", "state"},
                                      {}};
  telemetry::FamilySnapshot open{"prescale_gateway_breakers_open",
                                 "Endpoints whose failure-rate breaker is open or half-open",
                                 MetricType::kGauge,
                                 {"service"},
                                 {}};
  telemetry::FamilySnapshot ejections{"prescale_gateway_ejections_total",
                                      "Outlier ejections of an upstream service's endpoints",
                                      MetricType::kCounter,
                                      {"service"},
                                      {}};
  telemetry::FamilySnapshot endpoint_ejections{
      "prescale_gateway_endpoint_ejections_total",
      "Outlier ejections of one endpoint (host:port) of an upstream service, for endpoints "
      "ejected at least once while in the service's endpoints",
      MetricType::kCounter,
      {"service", "endpoint"},
      {}};
  telemetry::FamilySnapshot endpoint_openings{
      "prescale_gateway_endpoint_breaker_openings_total",
      "Openings of the failure-rate breaker of one endpoint (host:port) of an upstream service, "
      "for endpoints whose breaker opened at least once while in the service's endpoints",
      MetricType::kCounter,
      {"service", "endpoint"},
      {}};
  telemetry::FamilySnapshot overflows{
      "prescale_gateway_overflows_total",
      "Attempts refused: no endpoint in service, max_requests, max_connections, "
      "max_pending_requests, the retry budget, or admission control (queue_limit)",
      MetricType::kCounter,
      {"service", "reason"},
      {}};
  telemetry::FamilySnapshot admission{
      "prescale_gateway_admission_limit",
      "Admission control: requests in flight each endpoint in service may have (its "
      "concurrency plus what it starts within the service's queue_limit); 0 = no limit",
      MetricType::kGauge,
      {"service"},
      {}};
  const Clock::TimePoint now = clock.now();
  const std::shared_ptr<const Routing> published = snapshot();
  for (const auto& [name, c] : published->clusters) {
    double ready = 0, draining = 0, unhealthy = 0, ejected = 0, breakers = 0;
    const auto view = c->view();
    for (const auto& h : view->hosts.hosts()) {
      if (h->draining()) {
        ++draining;
      } else if (!h->healthy()) {
        ++unhealthy;
      } else if (h->outlier().ejected(now)) {
        ++ejected;
      } else {
        ++ready;
      }
      if (const FailureRateBreaker* b = h->breaker(); b != nullptr) {
        if (!b->is_accepting(now)) ++breakers;
        if (const std::uint64_t n = b->stats().opened; n > 0) {
          endpoint_openings.series.push_back({{name, h->address()}, static_cast<double>(n), {}});
        }
      }
      if (const std::uint64_t n = h->outlier().times_ejected(); n > 0) {
        endpoint_ejections.series.push_back({{name, h->address()}, static_cast<double>(n), {}});
      }
    }
    endpoints.series.push_back({{name, "ready"}, ready, {}});
    endpoints.series.push_back({{name, "draining"}, draining, {}});
    endpoints.series.push_back({{name, "unhealthy"}, unhealthy, {}});
    endpoints.series.push_back({{name, "ejected"}, ejected, {}});
    open.series.push_back({{name}, breakers, {}});
    const OutlierStats os = c->detector().stats();
    ejections.series.push_back(
        {{name},
         static_cast<double>(os.ejections_consecutive_5xx +
                             os.ejections_consecutive_gateway_failure + os.ejections_success_rate),
         {}});
    const Cluster::Stats cs = c->stats();
    overflows.series.push_back({{name, "no_endpoint"}, static_cast<double>(cs.no_host), {}});
    overflows.series.push_back(
        {{name, "max_requests"}, static_cast<double>(cs.limit_overflows), {}});
    overflows.series.push_back(
        {{name, "retry_budget"}, static_cast<double>(cs.budget_overflows), {}});
    overflows.series.push_back(
        {{name, "max_connections"}, static_cast<double>(cs.connection_overflows), {}});
    overflows.series.push_back(
        {{name, "max_pending_requests"}, static_cast<double>(cs.pending_overflows), {}});
    overflows.series.push_back(
        {{name, "admission"}, static_cast<double>(cs.admission_refusals), {}});
    admission.series.push_back({{name}, static_cast<double>(c->max_requests_per_replica()), {}});
  }
  out.push_back(std::move(endpoints));
  out.push_back(std::move(open));
  out.push_back(std::move(ejections));
  out.push_back(std::move(endpoint_ejections));
  out.push_back(std::move(endpoint_openings));
  out.push_back(std::move(overflows));
  out.push_back(std::move(admission));
}

}  // namespace prescale::gateway
