#include "endpoint_watch.h"

#include "gateway/cluster.h"
#include "http/grpc_health.h"

namespace prescale {

std::vector<EndpointChange> EndpointWatch::poll(Clock::TimePoint now) {
  std::vector<EndpointChange> changes;
  std::map<std::string, std::string> out;
  std::map<std::string, std::uint64_t> ejections, openings;
  for (const std::string& service : gateway_.services()) {
    const std::shared_ptr<const gateway::Cluster> cluster = gateway_.cluster(service);
    if (cluster == nullptr) continue;
    const auto view = cluster->view();
    const auto hosts = view->hosts.hosts();
    for (size_t i = 0; i < hosts.size() && i < view->specs.size(); ++i) {
      const gateway::UpstreamHost& host = *hosts[i];
      if (host.draining()) continue;
      const std::string& id = view->specs[i].id;
      const std::string replica = id.substr(0, id.find('@'));
      // Ejected or opened again since the last poll, though out then too: back and out again in
      // between (a replica broken for good fails its first requests back within moments).
      const std::uint64_t times_ejected = host.outlier().times_ejected();
      const std::uint64_t times_opened =
          host.breaker() != nullptr ? host.breaker()->stats().opened : 0;
      const auto ejected_before = ejections_.find(id);
      const auto opened_before = openings_.find(id);
      ejections[id] = times_ejected;
      openings[id] = times_opened;
      std::string kind, why;
      bool again = false, breaker = false;
      if (!host.healthy()) {
        kind = "unhealthy";
        const std::string& own = host.health_check_path();
        why =
            "fails its health checks (" +
            (host.grpc_health_service() ? http::grpc_health_check_name(*host.grpc_health_service())
                                        : "GET " + (own.empty() ? health_check_path_ : own)) +
            ")";
      } else if (host.outlier().ejected(now)) {
        kind = "eject";
        why = "ejected by the gateway's outlier detection";
        again = ejected_before != ejections_.end() && times_ejected > ejected_before->second;
      } else if (host.breaker() != nullptr && !host.breaker()->is_accepting(now)) {
        // Too many of its requests failed in the window, though never 5 in a row: a replica
        // failing some of them (one bad dependency, a corrupt model shard) is out of service as
        // an ejected one is.
        kind = "eject";
        why = "its requests failed too often: the gateway's circuit breaker opened";
        breaker = true;
        again = opened_before != openings_.end() && times_opened > opened_before->second;
      }
      const auto before = out_.find(id);
      const bool anew = before == out_.end() || before->second != why;
      if (!why.empty()) {
        if (anew || again) {
          changes.push_back(
              {service, replica, kind, why + (anew ? "" : " again") + ": out of service", breaker});
        }
        out[id] = std::move(why);
      } else if (before != out_.end()) {
        changes.push_back({service, replica, "healthy", "back in service"});
      }
    }
  }
  out_ = std::move(out);
  ejections_ = std::move(ejections);
  openings_ = std::move(openings);
  return changes;
}

}  // namespace prescale
