#include "worlds/local/local_world.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "gateway/cluster.h"
#include "gateway/gateway.h"
#include "http/client.h"
#include "telemetry/registry.h"
#include "telemetry/scrape_query.h"
#include "telemetry/text_parser.h"
#include "worlds/traffic/gateway_traffic.h"

namespace prescale::local {

// --- GatewayEndpoints ---------------------------------------------------------------------------

void GatewayEndpoints::add(const std::string& service, const std::string& replica,
                           std::uint16_t port) {
  // A restarted replica may get its old port back while the gateway still drains the old
  // process's endpoint: adding that id again would bring the old entry back, its outlier and
  // health state with it. The new process gets an id of its own ("<replica>@<port>#2").
  announced_[replica] = {service, port};
  const std::string base = replica + "@" + std::to_string(port);
  std::string id = base;
  if (const std::shared_ptr<const gateway::Cluster> cluster = gateway_.cluster(service)) {
    const auto view = cluster->view();
    auto listed = [&](const std::string& candidate) {
      return std::any_of(view->specs.begin(), view->specs.end(),
                         [&](const gateway::EndpointSpec& s) { return s.id == candidate; });
    };
    for (int n = 2; listed(id); ++n) id = base + "#" + std::to_string(n);
  }
  if (auto added = gateway_.add_endpoint(service, gateway::EndpointSpec{id, "127.0.0.1", port});
      !added) {
    // A service no route names (said once, at start) has nothing to receive: not an error.
    if (added.error().code == ErrorCode::kNotFound) {
      spdlog::debug("replica {} of {} not in the gateway: {}", replica, service,
                    added.error().message);
    } else {
      spdlog::error("gateway refused replica {} of {}: {}", replica, service,
                    added.error().message);
    }
    return;
  }
  endpoint_ids_[replica] = id;
}

void GatewayEndpoints::resync() {
  const std::map<std::string, Announced> announced = announced_;  // add() writes to it
  for (const auto& [replica, where] : announced) {
    const std::shared_ptr<const gateway::Cluster> cluster = gateway_.cluster(where.service);
    if (cluster == nullptr) continue;  // still no route: nothing to receive
    const auto known = endpoint_ids_.find(replica);
    if (known != endpoint_ids_.end()) {
      const auto view = cluster->view();
      if (std::any_of(view->specs.begin(), view->specs.end(),
                      [&](const gateway::EndpointSpec& s) { return s.id == known->second; })) {
        continue;
      }
      endpoint_ids_.erase(known);
    }
    add(where.service, replica, where.port);
  }
}

void GatewayEndpoints::remove(const std::string& service, const std::string& replica) {
  announced_.erase(replica);
  auto it = endpoint_ids_.find(replica);
  if (it == endpoint_ids_.end()) return;
  gateway_.remove_endpoint(service, it->second);
  draining_[replica] = it->second;
  endpoint_ids_.erase(it);
}

std::int64_t GatewayEndpoints::in_flight(const std::string& service, const std::string& replica) {
  const std::shared_ptr<const gateway::Cluster> cluster = gateway_.cluster(service);
  auto it = draining_.find(replica);
  if (it == draining_.end()) return 0;
  if (cluster == nullptr) {  // its service's cluster went with its last endpoint
    draining_.erase(it);
    return 0;
  }
  const auto view = cluster->view();
  for (size_t i = 0; i < view->specs.size(); ++i) {
    if (view->specs[i].id != it->second) continue;
    const std::int64_t left = view->states[i]->outstanding.load();
    // Drained (a removed endpoint takes no new requests): the supervisor asks no more.
    if (left <= 0) draining_.erase(it);
    return left;
  }
  draining_.erase(it);
  return 0;  // reaped: nothing left in flight
}

// --- scraping -------------------------------------------------------------------------------------

namespace {

// One scrape of a replica, summed over routes and codes.
struct ReplicaScrape {
  double requests = 0;  // prescale_requests_total
  double errors = 0;    // of which 5xx
  double inflight = 0;  // prescale_inflight_requests
  double cpu_seconds = NAN;
};

const std::string* label(const telemetry::Labels& labels, std::string_view name) {
  for (const auto& [k, v] : labels) {
    if (k == name) return &v;
  }
  return nullptr;
}

ReplicaScrape digest(const std::vector<telemetry::ParsedFamily>& families) {
  ReplicaScrape out;
  for (const auto& f : families) {
    if (f.name == "prescale_requests_total") {
      for (const auto& s : f.samples) {
        out.requests += s.value;
        const std::string* code = label(s.labels, "code");
        if (code != nullptr && !code->empty() && (*code)[0] == '5') out.errors += s.value;
      }
    } else if (f.name == "prescale_inflight_requests") {
      for (const auto& s : f.samples) out.inflight += s.value;
    } else if (f.name == "process_cpu_seconds_total") {
      for (const auto& s : f.samples) out.cpu_seconds = s.value;
    }
  }
  return out;
}

}  // namespace

struct LocalWorld::Scraper {
  explicit Scraper(std::chrono::milliseconds timeout)
      : client(http::ClientOptions{.connect_timeout = timeout, .request_timeout = timeout,
                                   .threads = 1}) {}
  // GET /metrics of every port at once (a replica that does not answer holds the caller, the
  // supervisor's thread, up for one timeout). nullopt for a port that did not answer 200 with
  // metrics in time.
  std::map<std::uint16_t, std::optional<ReplicaScrape>> scrape(
      const std::vector<std::uint16_t>& ports) {
    std::vector<http::Client::Peer> peers;
    for (const std::uint16_t port : ports) peers.push_back({"127.0.0.1", port});
    std::vector<Result<http::Response>> answers = client.get_all(peers, "/metrics");
    std::map<std::uint16_t, std::optional<ReplicaScrape>> out;
    for (size_t i = 0; i < ports.size(); ++i) {
      std::optional<ReplicaScrape>& scraped = out[ports[i]];
      if (!answers[i] || answers[i]->status != 200) continue;
      if (auto families = telemetry::parse_text(answers[i]->body)) scraped = digest(*families);
    }
    return out;
  }
  http::Client client;
};

struct LocalWorld::ReplicaCounters {
  int pid = 0;  // a new process restarts its counters
  ReplicaScrape last;
  Clock::TimePoint real_at;  // when `last` was scraped (real time)
  // Over the time from the scrape before, as of the latest scrape (shown until the next one);
  // nullopt when that scrape was missed, or was the process's first.
  std::optional<double> cpu_utilization;
};

struct LocalWorld::ServiceState {
  explicit ServiceState(scaling::ServiceSpec service, Clock::Duration metric_window)
      : spec(std::move(service)), traffic(spec.slo_latency_p99_seconds, metric_window) {}
  scaling::ServiceSpec spec;
  std::map<std::string, ReplicaCounters> replicas;  // by id
  // The gateway's counts at every observation over the window (zeros before the first: the
  // gateway starts with the world, and a request it answered before the first observation is
  // the first observation's).
  traffic::TrafficWindow traffic;
  Totals totals;
};

LocalWorld::LocalWorld(Supervisor& supervisor, const telemetry::Registry& gateway_registry,
                       std::vector<scaling::ServiceSpec> services, LocalWorldOptions options)
    : supervisor_(supervisor),
      gateway_registry_(gateway_registry),
      options_(options),
      scraper_(std::make_unique<Scraper>(options.scrape_timeout)) {
  for (auto& spec : services) {
    auto s = std::make_unique<ServiceState>(std::move(spec), options_.metric_window);
    scaling::ServiceObservation obs;
    obs.name = s->spec.name;
    snapshot_.services.push_back(std::move(obs));
    services_.push_back(std::move(s));
  }
}

LocalWorld::~LocalWorld() = default;

namespace {

// Adds what happened to a service between two reads to `t` (its replica-seconds aside).
void count(control::WorldTotals& t, const traffic::RequestDelta& d) {
  t.requests += d.answered;
  t.within_slo += d.served - d.slow;
  t.failed += d.failed;
  t.ejections += d.ejected;
}

}  // namespace

Clock::TimePoint LocalWorld::to_controller_time(Clock::TimePoint real, Clock::TimePoint real_now,
                                                Clock::TimePoint now) const {
  const auto ago = std::chrono::duration<double>(real_now - real).count() * options_.time_scale;
  return now - std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(ago));
}

traffic::GatewayReading LocalWorld::read_gateway() const {
  traffic::GatewayReading reading;
  traffic::add_gateway(gateway_registry_.collect(), options_.route_service, reading);
  return reading;
}

const scaling::Snapshot& LocalWorld::observe(Clock::TimePoint now) {
  const Clock::TimePoint real_now = options_.real_clock->now();
  const Clock::Duration since_last = last_now_ ? now - *last_now_ : Clock::Duration::zero();
  // The scrape: every live replica's /metrics over HTTP (the costly part), the window's figures
  // and the call graph's counters, at most once a scrape_interval. Between scrapes the snapshot
  // keeps them, their sampled_at telling the policies they are not new; the replicas' states,
  // the totals and the last second come from the Supervisor and the gateway in process.
  const bool scrape = !last_scrape_ || now - *last_scrape_ >= options_.scrape_interval;
  traffic::GatewayReading gateway = read_gateway();
  // Scraped: the replicas serving or draining requests, with a process and a port.
  auto live = [](const ReplicaStatus& r) {
    return r.pid != 0 && r.port != 0 &&
           (r.phase == ReplicaPhase::kReady || r.phase == ReplicaPhase::kDraining);
  };
  std::map<std::uint16_t, std::optional<ReplicaScrape>> scrapes;
  if (scrape) {
    std::vector<std::uint16_t> ports;
    for (const auto& s : services_) {
      for (const ReplicaStatus& r : supervisor_.replicas(s->spec.name)) {
        if (live(r)) ports.push_back(r.port);
      }
    }
    scrapes = scraper_->scrape(ports);
  }
  if (scrape) {
    snapshot_.edges = traffic::edges_of(gateway);
    last_scrape_ = now;
  }

  snapshot_.time = now;
  for (size_t si = 0; si < services_.size(); ++si) {
    ServiceState& s = *services_[si];
    scaling::ServiceObservation& obs = snapshot_.services[si];
    scaling::WindowMetrics& w = obs.window;
    obs.desired_replicas = supervisor_.desired(s.spec.name);
    obs.replicas.clear();
    double cpu_sum = 0;
    int cpu_n = 0;
    std::map<std::string, ReplicaCounters> seen;
    for (const ReplicaStatus& r : supervisor_.replicas(s.spec.name)) {
      scaling::ReplicaObservation ro;
      ro.id = r.id;
      ro.started_at = to_controller_time(r.started_at, real_now, now);
      if (r.phase == ReplicaPhase::kReady) {
        ro.state = scaling::ReplicaState::kReady;
        if (r.ready_at) ro.ready_at = to_controller_time(*r.ready_at, real_now, now);
      } else if (r.phase == ReplicaPhase::kDraining || r.phase == ReplicaPhase::kStopping) {
        ro.state = scaling::ReplicaState::kDraining;
        // The gateway is in this process: a replica out of its endpoints gets no new request.
        if (r.no_requests_since) {
          ro.draining_since = to_controller_time(*r.no_requests_since, real_now, now);
        }
      } else {
        ro.state = scaling::ReplicaState::kStarting;  // starting or waiting to restart
      }
      if (r.memory_at) ro.memory_bytes = r.memory_bytes;
      const auto prev = s.replicas.find(r.id);
      const bool continues = prev != s.replicas.end() && prev->second.pid == r.pid;
      if (live(r) && scrape) {
        if (std::optional<ReplicaScrape>& scraped = scrapes[r.port]) {
          // Over the time since the base was scraped: after a missed scrape that is longer than
          // the scrape interval.
          const double since_base =
              continues ? std::chrono::duration<double>(real_now - prev->second.real_at).count()
                        : 0;
          // A counter that went down (the process answering the scrape restarted under the
          // replica's pid: a wrapper's server, a recycled worker) starts a new base.
          std::optional<double> cpu;
          if (continues && since_base > 0 && !std::isnan(scraped->cpu_seconds) &&
              !std::isnan(prev->second.last.cpu_seconds) &&
              scraped->cpu_seconds >= prev->second.last.cpu_seconds) {
            cpu = (scraped->cpu_seconds - prev->second.last.cpu_seconds) / since_base;
            cpu_sum += *cpu;
            ++cpu_n;
          }
          seen[r.id] = ReplicaCounters{r.pid, std::move(*scraped), real_now, cpu};
        } else if (prev != s.replicas.end()) {
          seen[r.id] = prev->second;  // a missed scrape: keep the base for the next one
          seen[r.id].cpu_utilization.reset();
        }
      } else if (live(r) && continues) {
        seen[r.id] = prev->second;  // between scrapes: the last one's figures
      }
      if (auto it = seen.find(r.id); it != seen.end()) {
        ro.cpu_utilization = it->second.cpu_utilization;
      }
      obs.replicas.push_back(std::move(ro));
    }
    s.replicas = std::move(seen);

    // The requests as the gateway saw them: what the service's callers experienced. Totals
    // count what happened since the last observation; the window's figures the last
    // metric_window as of the last scrape; the last second the last real second.
    const traffic::RequestDelta since_previous =
        s.traffic.record(real_now, now, gateway.services[s.spec.name]);
    obs.last_second = s.traffic.last_second(now, real_now);
    if (scrape) {
      s.traffic.fill(w, now, real_now);
      w.mean_cpu_utilization = cpu_n > 0 ? cpu_sum / cpu_n : NAN;
    }
    for (auto& ro : obs.replicas) {  // their CPU is the last scrape's
      ro.metric_time = w.sampled_at;
      ro.metric_window = w.length;
    }
    const double replica_seconds = std::chrono::duration<double>(since_last).count() *
                                   static_cast<double>(obs.replicas.size());
    for (Totals* t : {&totals_, &s.totals}) {
      count(*t, since_previous);
      t->replica_seconds += replica_seconds;
    }
  }
  last_now_ = now;
  return snapshot_;
}

LocalWorld::ServiceState* LocalWorld::find(std::string_view service) const {
  for (const auto& s : services_) {
    if (s->spec.name == service) return s.get();
  }
  return nullptr;
}

LocalWorld::Totals LocalWorld::totals(std::string_view service) const {
  const ServiceState* s = find(service);
  return s != nullptr ? s->totals : Totals{};
}

Result<void> LocalWorld::scale(std::string_view service, int replicas) {
  if (const ServiceState* s = find(service)) {
    if (replicas < s->spec.min_replicas || replicas > s->spec.max_replicas) {
      return make_error(ErrorCode::kOutOfRange,
                        std::string(service) + ": " + std::to_string(replicas) +
                            " replicas is outside [" + std::to_string(s->spec.min_replicas) + ", " +
                            std::to_string(s->spec.max_replicas) + "]");
    }
    return supervisor_.set_desired(service, replicas);
  }
  return make_error(ErrorCode::kNotFound, "no service named " + std::string(service));
}

Result<void> LocalWorld::respec(const scaling::ServiceSpec& spec) {
  if (auto valid = control::check_replica_bounds(spec.name, spec.min_replicas, spec.max_replicas);
      !valid) {
    return valid;
  }
  if (ServiceState* s = find(spec.name)) {
    s->spec = spec;
    s->traffic.set_slo(spec.slo_latency_p99_seconds);
    return {};
  }
  return make_error(ErrorCode::kNotFound, "no service named " + spec.name);
}

Result<void> LocalWorld::add_service(const scaling::ServiceSpec& spec) {
  if (auto valid = control::check_replica_bounds(spec.name, spec.min_replicas, spec.max_replicas);
      !valid) {
    return valid;
  }
  if (find(spec.name) != nullptr) {
    return make_error(ErrorCode::kInvalidArgument, spec.name + ": a service of that name runs");
  }
  auto s = std::make_unique<ServiceState>(spec, options_.metric_window);
  // The gateway counts for the life of the process: what its counters hold for this name (a
  // route label handed from a service removed, or the calls to one of this name removed before)
  // are not the new service's requests.
  traffic::GatewayReading reading = read_gateway();
  s->traffic.start_from(options_.real_clock->now(), last_now_.value_or(options_.clock->now()),
                        reading.services[spec.name]);
  scaling::ServiceObservation obs;
  obs.name = spec.name;
  snapshot_.services.push_back(std::move(obs));
  services_.push_back(std::move(s));
  return {};
}

Result<void> LocalWorld::remove_service(std::string_view service) {
  for (size_t i = 0; i < services_.size(); ++i) {
    if (services_[i]->spec.name != service) continue;
    // What was answered since the last observation stays in the world's totals.
    if (last_now_) {
      traffic::GatewayReading reading = read_gateway();
      count(totals_, services_[i]->traffic.record(options_.real_clock->now(), *last_now_,
                                                  reading.services[services_[i]->spec.name]));
    }
    services_.erase(services_.begin() + static_cast<std::ptrdiff_t>(i));
    snapshot_.services.erase(snapshot_.services.begin() + static_cast<std::ptrdiff_t>(i));
    return {};
  }
  return make_error(ErrorCode::kNotFound, "no service named " + std::string(service));
}

Result<void> LocalWorld::restart(std::string_view replica_id) {
  return supervisor_.replace(replica_id, options_.real_clock->now());
}

void LocalWorld::add_routes(
    const std::vector<std::pair<std::string, std::string>>& route_services) {
  auto runs = [&](const std::string& name) { return find(name) != nullptr; };
  std::map<std::string, std::string> handed;  // labels of removed services, to a running one
  for (const auto& [route, service] : route_services) {
    auto [it, added] = options_.route_service.emplace(route, service);
    if (added || it->second == service || runs(it->second)) continue;
    it->second = service;  // its service was removed
    if (runs(service)) handed.emplace(route, service);
  }
  if (handed.empty()) return;
  // What those labels counted so far was the removed service's: the running one counts them from
  // their counts now. Calls and ejections are counted by service, not by route.
  traffic::GatewayReading counted;
  traffic::add_gateway(gateway_registry_.collect(), handed, counted);
  for (const auto& s : services_) {
    const auto it = counted.services.find(s->spec.name);
    if (it == counted.services.end()) continue;
    traffic::GatewayCounts by_route = it->second;
    by_route.arrivals = by_route.external = by_route.ejections = 0;
    s->traffic.add_to_base(by_route);
  }
}

Result<void> LocalWorld::replace_when_ready(std::string_view replica_id) {
  return supervisor_.replace(replica_id, options_.real_clock->now(),
                             ReplaceMode::kDrainWhenReplacementReady);
}

}  // namespace prescale::local
