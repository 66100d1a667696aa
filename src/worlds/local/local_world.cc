#include "worlds/local/local_world.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "gateway/cluster.h"
#include "gateway/gateway.h"
#include "http/client.h"
#include "telemetry/registry.h"
#include "telemetry/scrape_query.h"
#include "telemetry/text_parser.h"

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
  if (const gateway::Cluster* cluster = gateway_.cluster(service)) {
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
    const gateway::Cluster* cluster = gateway_.cluster(where.service);
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
  const gateway::Cluster* cluster = gateway_.cluster(service);
  auto it = draining_.find(replica);
  if (cluster == nullptr || it == draining_.end()) return 0;
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
  // GET /metrics of every port at once, so replicas that do not answer hold the caller (the
  // supervisor's thread) up for one timeout, not one each. nullopt for a port that did not answer
  // 200 with metrics in time.
  std::map<std::uint16_t, std::optional<ReplicaScrape>> scrape(
      const std::vector<std::uint16_t>& ports) {
    struct Answers {
      std::mutex mu;
      std::condition_variable all_in;
      size_t left = 0;
      std::map<std::uint16_t, std::string> bodies;
    };
    auto answers = std::make_shared<Answers>();
    answers->left = ports.size();
    for (const std::uint16_t port : ports) {
      http::Request req;
      req.method = http::Method::kGet;
      req.method_name = "GET";
      req.target = "/metrics";
      client.async_request("127.0.0.1", port, std::move(req),
                           [answers, port](Result<http::Response> r) {
                             std::lock_guard lock(answers->mu);
                             if (r && r->status == 200) answers->bodies[port] = std::move(r->body);
                             if (--answers->left == 0) answers->all_in.notify_all();
                           });
    }
    {
      // Each request is answered, timed out or failed by the client within the timeout.
      std::unique_lock lock(answers->mu);
      answers->all_in.wait(lock, [&] { return answers->left == 0; });
    }
    std::map<std::uint16_t, std::optional<ReplicaScrape>> out;
    for (const std::uint16_t port : ports) {
      std::optional<ReplicaScrape>& scraped = out[port];
      auto body = answers->bodies.find(port);
      if (body == answers->bodies.end()) continue;
      if (auto families = telemetry::parse_text(body->second)) scraped = digest(*families);
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

// What the gateway counted for one service, cumulative.
struct LocalWorld::GatewayCounts {
  double arrivals = 0;   // prescale_calls_total{callee}
  double external = 0;   // of which from outside the call graph (caller="external")
  double responses = 0;  // prescale_requests_total of the service's routes
  double errors = 0;     // of which 5xx
  double ejections = 0;  // prescale_gateway_ejections_total{service}
  // prescale_gateway_route_busy_seconds_total of the service's routes: the seconds its requests
  // have spent in the gateway, those in flight up to the read; its rate is the concurrency
  double busy_seconds = 0;
  // prescale_request_duration_seconds, summed: the answered requests' latencies (p99, slow)
  telemetry::HistogramData latency;
};

struct LocalWorld::ServiceState {
  scaling::ServiceSpec spec;
  std::map<std::string, ReplicaCounters> replicas;  // by id
  // At the last observation; zeros before the first: the gateway starts with the world, and a
  // request it answered before the first observation is the first observation's.
  GatewayCounts gateway;
  // The gateway's counts at every observation since the window's base, oldest first: the first
  // one is that base (the newest at least metric_window old, once there is one); the last
  // second's is among them.
  struct Sample {
    Clock::TimePoint real, now;
    GatewayCounts counts;
  };
  std::deque<Sample> samples;
  double served_total = 0;
  Totals totals;
};

LocalWorld::LocalWorld(Supervisor& supervisor, const telemetry::Registry& gateway_registry,
                       std::vector<scaling::ServiceSpec> services, LocalWorldOptions options)
    : supervisor_(supervisor),
      gateway_registry_(gateway_registry),
      options_(options),
      scraper_(std::make_unique<Scraper>(options.scrape_timeout)) {
  for (auto& spec : services) {
    auto s = std::make_unique<ServiceState>();
    s->spec = std::move(spec);
    scaling::ServiceObservation obs;
    obs.name = s->spec.name;
    snapshot_.services.push_back(std::move(obs));
    services_.push_back(std::move(s));
  }
}

LocalWorld::~LocalWorld() = default;

struct LocalWorld::RequestDelta {
  double arrived = 0, external = 0, answered = 0, failed = 0, served = 0, slow = 0, ejected = 0;
  double busy_seconds = 0;  // spent in flight, answered or not
  double p99_seconds = NAN;
};

// What happened between `base` and `now`.
LocalWorld::RequestDelta LocalWorld::request_delta(const scaling::ServiceSpec& spec,
                                                   const GatewayCounts& now,
                                                   const GatewayCounts& base) {
  RequestDelta d;
  d.arrived = std::max(0.0, now.arrivals - base.arrivals);
  d.external = std::clamp(now.external - base.external, 0.0, d.arrived);
  d.answered = std::max(0.0, now.responses - base.responses);
  d.failed = std::max(0.0, now.errors - base.errors);
  d.ejected = std::max(0.0, now.ejections - base.ejections);
  d.served = std::max(0.0, d.answered - d.failed);
  const telemetry::HistogramData latency = telemetry::histogram_delta(now.latency, base.latency);
  d.busy_seconds = std::max(0.0, now.busy_seconds - base.busy_seconds);
  // NaN when there are no buckets to tell (no latency recorded): none known to be slow.
  const double slow =
      telemetry::histogram_count_above(spec.slo_latency_p99_seconds, latency.buckets);
  d.slow = std::isnan(slow) ? 0 : std::min(d.served, slow);
  if (d.answered > 0) d.p99_seconds = telemetry::histogram_quantile(0.99, latency.buckets);
  return d;
}

Clock::TimePoint LocalWorld::to_controller_time(Clock::TimePoint real, Clock::TimePoint real_now,
                                                Clock::TimePoint now) const {
  const auto ago = std::chrono::duration<double>(real_now - real).count() * options_.time_scale;
  return now - std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(ago));
}

namespace {

size_t label_index(const telemetry::FamilySnapshot& family, std::string_view name) {
  for (size_t i = 0; i < family.label_names.size(); ++i) {
    if (family.label_names[i] == name) return i;
  }
  return family.label_names.size();
}

}  // namespace

std::map<std::string, LocalWorld::GatewayCounts> LocalWorld::read_gateway(
    std::vector<scaling::EdgeObservation>* edges) {
  std::map<std::string, GatewayCounts> out;
  for (const auto& family : gateway_registry_.collect()) {
    if (family.name == "prescale_calls_total") {
      const size_t caller_at = label_index(family, "caller");
      const size_t callee_at = label_index(family, "callee");
      if (callee_at >= family.label_names.size()) continue;
      for (const auto& series : family.series) {
        const std::string& callee = series.label_values[callee_at];
        out[callee].arrivals += series.value;
        if (caller_at >= family.label_names.size() ||
            series.label_values[caller_at] == "external") {
          out[callee].external += series.value;
        } else if (edges != nullptr) {
          edges->push_back(
              scaling::EdgeObservation{series.label_values[caller_at], callee, series.value});
        }
      }
      continue;
    }
    if (family.name == "prescale_gateway_route_busy_seconds_total") {
      const size_t route_at = label_index(family, "route");
      if (route_at >= family.label_names.size()) continue;
      for (const auto& series : family.series) {
        auto route = options_.route_service.find(series.label_values[route_at]);
        if (route != options_.route_service.end()) out[route->second].busy_seconds += series.value;
      }
      continue;
    }
    if (family.name == "prescale_gateway_ejections_total") {
      const size_t service_at = label_index(family, "service");
      if (service_at >= family.label_names.size()) continue;
      for (const auto& series : family.series) {
        out[series.label_values[service_at]].ejections += series.value;
      }
      continue;
    }
    const bool requests = family.name == "prescale_requests_total";
    const bool durations = family.name == "prescale_request_duration_seconds";
    if (!requests && !durations) continue;
    const size_t route_at = label_index(family, "route");
    const size_t code_at = label_index(family, "code");
    if (route_at >= family.label_names.size()) continue;
    for (const auto& series : family.series) {
      auto route = options_.route_service.find(series.label_values[route_at]);
      if (route == options_.route_service.end()) continue;
      GatewayCounts& c = out[route->second];
      if (requests) {
        c.responses += series.value;
        if (code_at < family.label_names.size() && !series.label_values[code_at].empty() &&
            series.label_values[code_at][0] == '5') {
          c.errors += series.value;
        }
      } else {
        telemetry::add_histogram(c.latency, series.histogram);
      }
    }
  }
  return out;
}

namespace {

// The last second reaches back to the newest sample at least this much real time old: a real
// second, less the slack of a controller that observes every second and wakes a few milliseconds
// either side of it (the sample before would make it two). Rates divide by the time covered.
constexpr Clock::Duration kLastSecondSpan = std::chrono::milliseconds(950);

}  // namespace

// Since the newest sample a real second back, or since the window's base when the window is
// shorter than a real second (a clock compressed more than 30x for the default 30 s window, as
// `prescale up --time-scale 144`): never longer than the window the policies compare it with.
//
// Concurrency is the mean number of the service's requests in the gateway over that second: the
// growth of its routes' busy seconds, which count a request's time while it is in flight, not
// once it is answered (Knative's queue-proxy averages its concurrency over the second the same
// way). A gauge read once would be an instant, not the second's mean.
scaling::SecondMetrics LocalWorld::last_second(const ServiceState& s, Clock::TimePoint now,
                                               Clock::TimePoint real_now) const {
  if (s.samples.empty()) return {};
  const GatewayCounts& latest = s.samples.back().counts;
  for (auto base = s.samples.rbegin(); base != s.samples.rend(); ++base) {
    if (real_now - base->real < kLastSecondSpan && base->now > now - options_.metric_window) {
      continue;
    }
    const double span = std::chrono::duration<double>(real_now - base->real).count();
    if (!(span > 0)) return {};
    const double arrived = std::max(0.0, latest.arrivals - base->counts.arrivals);
    const double busy = std::max(0.0, latest.busy_seconds - base->counts.busy_seconds);
    return scaling::SecondMetrics{now, busy / span, arrived / span, true};
  }
  return {};  // not a real second of samples yet
}

const scaling::Snapshot& LocalWorld::observe(Clock::TimePoint now) {
  const Clock::TimePoint real_now = options_.real_clock->now();
  const Clock::Duration since_last = last_now_ ? now - *last_now_ : Clock::Duration::zero();
  // The scrape: every live replica's /metrics over HTTP (the costly part), the window's figures
  // and the call graph's counters, at most once a scrape_interval. Between scrapes the snapshot
  // keeps them, their sampled_at telling the policies they are not new; the replicas' states,
  // the totals and the last second come from the Supervisor and the gateway in process.
  const bool scrape = !last_scrape_ || now - *last_scrape_ >= options_.scrape_interval;
  std::vector<scaling::EdgeObservation> edges;
  std::map<std::string, GatewayCounts> gateway = read_gateway(scrape ? &edges : nullptr);
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
    snapshot_.edges = std::move(edges);
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
    const GatewayCounts& now_counts = gateway[s.spec.name];
    const RequestDelta since_previous = request_delta(s.spec, now_counts, s.gateway);
    s.gateway = now_counts;
    s.served_total += since_previous.served;
    s.samples.push_back({real_now, now, now_counts});
    while (s.samples.size() > 1 && s.samples[1].now <= now - options_.metric_window) {
      s.samples.pop_front();
    }
    obs.last_second = last_second(s, now, real_now);
    if (scrape) {
      const ServiceState::Sample& base = s.samples.front();
      const RequestDelta in_window = request_delta(s.spec, now_counts, base.counts);
      const double window_real = std::chrono::duration<double>(real_now - base.real).count();
      w.sampled_at = now;
      w.length = now - base.now;
      w.served_total = s.served_total;
      w.traffic_seconds = window_real;
      if (window_real > 0) {
        w.arrival_rps = in_window.arrived / window_real;
        w.external_rps = in_window.external / window_real;
        w.served_rps = in_window.served / window_real;
        w.dropped_rps = in_window.failed / window_real;
        w.slow_rps = in_window.slow / window_real;
        // Mean requests in the service over the window: the time its requests spent in flight
        // in it, per second. A gauge read once per window is a sample, not a mean, and too
        // noisy at one request at a time.
        w.concurrency = in_window.busy_seconds / window_real;
        w.latency_p99_seconds = in_window.answered > 0 ? in_window.p99_seconds : NAN;
        w.mean_cpu_utilization = cpu_n > 0 ? cpu_sum / cpu_n : NAN;
      }
    }
    for (auto& ro : obs.replicas) {  // their CPU is the last scrape's
      ro.metric_time = w.sampled_at;
      ro.metric_window = w.length;
    }
    const double replica_seconds = std::chrono::duration<double>(since_last).count() *
                                   static_cast<double>(obs.replicas.size());
    for (Totals* t : {&totals_, &s.totals}) {
      t->requests += since_previous.answered;
      t->within_slo += since_previous.served - since_previous.slow;
      t->failed += since_previous.failed;
      t->ejections += since_previous.ejected;
      t->replica_seconds += replica_seconds;
    }
  }
  last_now_ = now;
  return snapshot_;
}

LocalWorld::Totals LocalWorld::totals(std::string_view service) const {
  for (const auto& s : services_) {
    if (s->spec.name == service) return s->totals;
  }
  return {};
}

Result<void> LocalWorld::scale(std::string_view service, int replicas) {
  for (const auto& s : services_) {
    if (s->spec.name != service) continue;
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

Result<void> LocalWorld::restart(std::string_view replica_id) {
  return supervisor_.replace(replica_id, options_.real_clock->now());
}

void LocalWorld::add_routes(
    const std::vector<std::pair<std::string, std::string>>& route_services) {
  for (const auto& [route, service] : route_services)
    options_.route_service.emplace(route, service);
}

Result<void> LocalWorld::replace_when_ready(std::string_view replica_id) {
  return supervisor_.replace(replica_id, options_.real_clock->now(),
                             ReplaceMode::kDrainWhenReplacementReady);
}

}  // namespace prescale::local
