// LocalWorld: the controller's World on this machine. Replicas are the Supervisor's child
// processes behind the in-process Gateway; observe() reads the gateway's counters in process and,
// once a `scrape_interval`, every live replica's /metrics (Prometheus text, parsed with
// telemetry::parse_text), and turns the counter deltas into the Snapshot the policies read:
//   arrivals   prescale_calls_total{callee=<service>} at the gateway (every caller, external too);
//   served, failed, latency p99, slow (over the SLO)   the gateway's prescale_requests_total and
//              prescale_request_duration_seconds of the routes leading to the service — what its
//              callers experienced (p99 and the slow share interpolated within histogram buckets,
//              as Prometheus' histogram_quantile does); failed = 5xx answers;
//   concurrency  the window's mean requests in flight: the growth of the gateway's
//              prescale_gateway_route_busy_seconds_total of the service's routes per second, which
//              counts time queued inside a replica, and a request's time while it is in flight;
//   CPU        the replicas' process_cpu_seconds_total.
// The window's figures (WindowMetrics) cover the last `metric_window` (sliding) as of the last
// scrape, CPU the time between the last two scrapes; observations between scrapes keep them. The
// last second (SecondMetrics: arrivals, and concurrency from the same busy seconds) is new at every
// observation: the gateway's counts over the last real second. Rates are requests per real
// second; only the controller's time axis may be scaled (a demo replaying a day in minutes runs
// the controller on a faster clock): `time_scale` is how many controller seconds pass per real
// second.
//
// Thread safety: one thread — the one that ticks the Supervisor — calls everything.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/world.h"
#include "core/clock.h"
#include "scaling/policy.h"
#include "worlds/local/supervisor.h"

namespace prescale::gateway {
class Gateway;
}
namespace prescale::telemetry {
class Registry;
}
namespace prescale::traffic {
struct GatewayReading;
}

namespace prescale::local {

// Announces ready replicas to a Gateway (127.0.0.1:<port>) and reports their in-flight requests.
// A restarted replica keeps its id but gets a new process and port, while the gateway may still
// be draining the old one: each process is its own endpoint, "<replica>@<port>" (the gateway
// never reuses an endpoint id for another address).
class GatewayEndpoints final : public EndpointSink {
 public:
  explicit GatewayEndpoints(gateway::Gateway& gateway) : gateway_(gateway) {}
  void add(const std::string& service, const std::string& replica, std::uint16_t port) override;
  void remove(const std::string& service, const std::string& replica) override;
  std::int64_t in_flight(const std::string& service, const std::string& replica) override;
  // Replicas removed that may still have requests in flight (for tests).
  size_t draining() const { return draining_.size(); }
  // After a reload of the gateway's configuration: the ready replicas it does not list (their
  // service had no route, so no cluster, when they got ready) are added.
  void resync();

 private:
  struct Announced {
    std::string service;
    std::uint16_t port = 0;
  };
  gateway::Gateway& gateway_;
  std::map<std::string, Announced> announced_;       // replica -> where it serves, added or not
  std::map<std::string, std::string> endpoint_ids_;  // replica -> its current endpoint's id
  std::map<std::string, std::string> draining_;      // replica -> its removed endpoint's id
};

struct LocalWorldOptions {
  Clock* clock = &Clock::real();       // the controller's clock
  Clock* real_clock = &Clock::real();  // the Supervisor's; rates are per second of this one
  double time_scale = 1;               // controller seconds per real second
  std::chrono::milliseconds scrape_timeout{1000};
  // The gateway's route labels and the service each leads to (Gateway::route_services());
  // LocalWorld::add_routes() adds those of a reload.
  std::map<std::string, std::string> route_service;
  // What each observation's request figures (arrivals, served, failed, slow, p99, concurrency)
  // cover, in controller time: the last 30 s, as the simulator's metric pipeline and the
  // Kubernetes metrics pipeline see them, however often the controller observes. Shorter windows
  // read a few requests as a trend.
  Clock::Duration metric_window = std::chrono::seconds(30);
  // How often, in controller time, the replicas' /metrics are scraped (an HTTP request to each)
  // and the window's figures, CPU and the call graph's counters refreshed; the observations
  // between read only the gateway's counters, in process. 5 s: the default decision period, so a
  // decision reads a window at most a period old, and the learners, which take each scrape as
  // one sample, get one a period however often the policy observes (the simulator's 15 s,
  // Kubernetes' metrics-server's, would leave a decision reading a window up to 15 s old). In
  // controller time because the figures' readers count in it: on a clock compressed 144x, 5 s of
  // real time would be 12 minutes of theirs. 0: every observation.
  Clock::Duration scrape_interval = std::chrono::seconds(5);
};

class LocalWorld final : public control::World {
 public:
  LocalWorld(Supervisor& supervisor, const telemetry::Registry& gateway_registry,
             std::vector<scaling::ServiceSpec> services, LocalWorldOptions options = {});
  ~LocalWorld() override;

  const scaling::Snapshot& observe(Clock::TimePoint now) override;
  // Errors: kNotFound (unknown service), kOutOfRange (outside the service's bounds).
  Result<void> scale(std::string_view service, int replicas) override;
  Result<void> restart(std::string_view replica_id) override;
  // New bounds for scale(), a new SLO for the requests counted from the next observation (and
  // the window's share over it at once). Errors: kNotFound, kInvalidArgument (not
  // 0 <= min <= max, max >= 1).
  Result<void> respec(const scaling::ServiceSpec& spec) override;
  // A service the Supervisor was given while the world runs (add_service() there first): its
  // requests count from the gateway's counts now, its replicas from the next observation. A
  // removed one is no longer observed (its replicas are the Supervisor's to stop, and its totals
  // stay in the world's); its route labels may lead to a service added later (add_routes()).
  // Errors: kInvalidArgument (a name it has, bad bounds); kNotFound.
  Result<void> add_service(const scaling::ServiceSpec& spec) override;
  Result<void> remove_service(std::string_view service) override;
  // Replaces a replica that still serves well (one headed for its memory limit): the new one
  // starts now and the old one drains once it is ready. Errors: as restart()'s.
  Result<void> replace_when_ready(std::string_view replica_id);
  // The route labels of a reloaded gateway (Gateway::route_services()): new ones are counted for
  // their service from now; a known label keeps its service (its counts so far are that
  // service's), and one removed keeps what it counted. A label of a service removed leads to its
  // new service from now, which counts it from its counts now (TrafficWindow::add_to_base; one
  // added after this call, at add_service(), from what all its labels counted then).
  void add_routes(const std::vector<std::pair<std::string, std::string>>& route_services);
  // The service a route label's requests are counted for; nullptr for a label never seen.
  const std::string* route_service(const std::string& route) const {
    const auto it = options_.route_service.find(route);
    return it == options_.route_service.end() ? nullptr : &it->second;
  }

  // Cumulative, for the platform's summary and dashboard (control::WorldTotals).
  using Totals = control::WorldTotals;
  Totals totals() const { return totals_; }
  // The same for one service (zeros for an unknown one): what a dashboard point averages over
  // its own interval, which may span several observations.
  Totals totals(std::string_view service) const;

 private:
  struct ReplicaCounters;
  struct ServiceState;
  // The service of that name; nullptr for one the world does not have.
  ServiceState* find(std::string_view service) const;
  // What the gateway has counted so far.
  traffic::GatewayReading read_gateway() const;
  Clock::TimePoint to_controller_time(Clock::TimePoint real, Clock::TimePoint real_now,
                                      Clock::TimePoint now) const;

  Supervisor& supervisor_;
  const telemetry::Registry& gateway_registry_;
  LocalWorldOptions options_;
  std::vector<std::unique_ptr<ServiceState>> services_;
  scaling::Snapshot snapshot_;
  std::optional<Clock::TimePoint> last_now_;
  std::optional<Clock::TimePoint> last_scrape_;  // controller time
  Totals totals_;
  struct Scraper;
  std::unique_ptr<Scraper> scraper_;
};

}  // namespace prescale::local
