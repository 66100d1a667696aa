#include "gateway/proxy.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include "core/host_port.h"
#include "gateway/upstream_pool.h"
#include "http/internal/io_thread.h"
#include "http/internal/wire.h"
#include "http/json.h"
#include "telemetry/registry.h"

namespace prescale::gateway {
namespace {

namespace asio = boost::asio;

// `name` equals `lower`, a lower-case field name of letters, digits and '-', ignoring case: a
// branch-free compare, no locale (every field of every request goes through it). Header names
// never hold the bytes that would also match (the parser allows only RFC 9110 token chars).
bool iequals(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if ((static_cast<unsigned char>(name[i]) | 0x20) != static_cast<unsigned char>(lower[i])) {
      return false;
    }
  }
  return true;
}

Clock::TimePoint now() { return Clock::real().now(); }

std::string millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

bool idempotent(http::Method m) {
  using http::Method;
  return m == Method::kGet || m == Method::kHead || m == Method::kPut || m == Method::kDelete ||
         m == Method::kOptions;
}

// Hop-by-hop fields (RFC 9110 §7.6.1, plus the obsolete Keep-Alive and every Proxy-* field):
// they describe one connection, not the message, and never cross the proxy.
bool is_hop_by_hop(std::string_view name) {
  if (name.size() >= 6 && iequals(name.substr(0, 6), "proxy-")) return true;
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 7:
      return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

// The field names listed by Connection fields, which are hop-by-hop too. Copied (rare: most
// Connection fields carry only "keep-alive" or "close", which need no copy), so they survive
// edits of the fields they came from.
class ConnectionListed {
 public:
  explicit ConnectionListed(const http::Headers& headers) {
    for (const auto& [name, value] : headers.fields()) {
      if (name.size() != 10 || !iequals(name, "connection")) continue;
      std::string_view list = value;
      while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view token = http::internal::trim(list.substr(0, comma));
        if (!token.empty() && !iequals(token, "close") && !iequals(token, "keep-alive")) {
          names_.emplace_back(token);
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
  }
  bool contains(std::string_view name) const {
    for (const auto& n : names_) {
      if (http::internal::iequals(n, name)) return true;
    }
    return false;
  }
  bool empty() const { return names_.empty(); }

 private:
  std::vector<std::string> names_;
};

void strip_hop_by_hop(http::Headers& headers) {
  const ConnectionListed listed(headers);
  headers.remove_if([&](std::string_view name, std::string_view) {
    return is_hop_by_hop(name) || (!listed.empty() && listed.contains(name));
  });
}

// A single-writer counter readable from any thread (see upstream_pool.cc).
class StatCounter {
 public:
  void add(int64_t delta) {
    v_.store(v_.load(std::memory_order_relaxed) + static_cast<uint64_t>(delta),
             std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

constexpr size_t kMaxFreeCalls = 4096;
constexpr std::string_view kUnmatchedRoute = "unmatched";
constexpr int kClientClosedRequest = 499;  // nginx's code: the client left; nobody reads it

}  // namespace

void UpstreamSelector::report(const http::Request&, const AttemptReport&) {}

RetryDecision UpstreamSelector::retry(const http::Request&, const AttemptReport& report) {
  return RetryDecision{.retry = report.attempt == 0 && !report.cancelled &&
                                report.outcome.error == UpstreamError::kConnectFailure};
}

RoundRobinSelector::RoundRobinSelector(std::vector<std::pair<std::string, uint16_t>> endpoints)
    : endpoints_(std::move(endpoints)) {}

UpstreamSelection RoundRobinSelector::select(const http::Request&, int,
                                             const UpstreamPick* previous) {
  if (endpoints_.empty()) return std::unexpected(NoPick{});
  // Each thread rotates on its own, from a start of its own: no shared counter to contend on.
  thread_local uint64_t next = std::hash<std::thread::id>()(std::this_thread::get_id());
  const uint64_t i = (previous != nullptr ? previous->tag + 1 : next++) % endpoints_.size();
  const auto& [host, port] = endpoints_[i];
  return UpstreamPick{.host = host, .port = port, .tag = i, .context = nullptr};
}

namespace {

class ThreadState;

// A route and its request metrics (shared by all threads; the series are found once).
struct RouteState {
  ProxyRoute route;
  size_t index = 0;  // its RouteId
  telemetry::CounterFamily* requests = nullptr;
  telemetry::Histogram* duration = nullptr;
  telemetry::Counter* retries = nullptr;
  std::string service_label;
  std::array<std::atomic<telemetry::Counter*>, 600> by_status{};

  void count(int status) {
    if (requests == nullptr) return;
    if (status < 100 || status > 599) status = 500;
    auto& slot = by_status[static_cast<size_t>(status)];
    telemetry::Counter* c = slot.load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &requests->with({service_label, route.name, std::to_string(status)});
      slot.store(c, std::memory_order_release);
    }
    c->inc();
  }
};

// Upstream attempt metrics of one (route, endpoint), cached per thread.
struct UpstreamSeries {
  telemetry::Histogram* duration = nullptr;
  std::vector<std::pair<int, telemetry::Counter*>> by_status;
  std::array<telemetry::Counter*, 8> by_error{};  // by ExchangeError
};

// One request being proxied: the attempt loop's state. Pooled per thread (its buffers keep
// their capacity), so a request costs no allocation here.
class Call final : public Exchange {
 public:
  explicit Call(ThreadState& ts) : ts_(ts) {}

  enum class Phase { kIdle, kRunning, kBackoff };

  ThreadState& ts_;
  RouteState* route = nullptr;  // kept alive by its ThreadState while the call runs
  http::Request* req = nullptr;
  http::Responder respond;
  Clock::TimePoint started{};
  Clock::TimePoint attempt_started{};
  Clock::TimePoint route_deadline{};
  Clock::TimePoint wake_at{};
  int attempt = 0;
  Phase phase = Phase::kIdle;
  bool client_gone = false;
  std::optional<UpstreamPick> pick;
  std::string head_buf;
  std::string request_id;
  std::string upstream_label;  // "host:port" of the last attempt, for messages
  // The previous attempt's outcome while a retry starts: a retry the pool refuses before it
  // runs (a connection limit, shutdown) ends with this answer, not with its own refusal.
  struct Outcome {
    ExchangeError error = ExchangeError::kNone;
    std::string detail;
    http::Response response;
    Clock::TimePoint deadline{};
    std::string upstream_label;
  };
  Outcome previous;
  bool retry_refused = false;

 private:
  void on_complete() override;
};

}  // namespace

namespace internal {

// The Proxy's state and attempt loop (Proxy::Impl, named so the per-thread parts can use it).
struct ProxyCore {
  explicit ProxyCore(ProxyOptions o);

  ThreadState* thread_state();
  void start_attempt(Call& c);
  void on_attempt_done(Call& c);
  void finish_failed(Call& c);
  void relay(Call& c);
  // Answers a first attempt select() refused, as its reason says.
  void refuse(Call& c, const NoPick& why);
  void fail(Call& c, int status, std::string_view code, const std::string& message);
  void finish(Call& c, http::Response&& response);
  void client_gone(Call& c);
  void record_attempt(Call& c, Clock::Duration latency);
  void build_head(Call& c);
  std::chrono::milliseconds timeout_resolution() const;
  std::chrono::milliseconds timeout_resolution(
      const std::vector<std::shared_ptr<RouteState>>& of_routes) const;

  ProxyOptions options;
  uint64_t id;
  // Routes by RouteId (null once removed). Written under routes_mu; each I/O thread reads its
  // own copy, taken again when routes_version moves (ThreadState::route).
  mutable std::mutex routes_mu;
  std::vector<std::shared_ptr<RouteState>> routes;
  std::atomic<uint64_t> routes_version{0};
  telemetry::CounterFamily* requests = nullptr;
  telemetry::HistogramFamily* durations = nullptr;
  telemetry::CounterFamily* upstream_requests = nullptr;
  telemetry::HistogramFamily* upstream_durations = nullptr;
  telemetry::CounterFamily* retries = nullptr;

  // The per-thread states, shared with the metrics collector (which may outlive the Proxy
  // inside the registry and then finds nothing).
  struct Threads {
    std::mutex mu;
    std::vector<std::shared_ptr<ThreadState>> states;
  };
  std::shared_ptr<Threads> threads = std::make_shared<Threads>();
};

}  // namespace internal

struct Proxy::Impl : internal::ProxyCore {
  using ProxyCore::ProxyCore;
};

using internal::ProxyCore;

namespace {

// What a Proxy keeps per I/O thread: the upstream pool, pooled calls, back-off waits and
// cached metric series. Used on that thread only (its counters are read anywhere).
class ThreadState {
 public:
  ThreadState(ProxyCore& proxy, http::internal::IoThread& thread)
      : proxy_(proxy),
        io_thread_id_(thread.id()),
        pool_(thread.io(),
              UpstreamPoolOptions{
                  .connect_timeout = proxy.options.connect_timeout,
                  .max_idle_per_endpoint = proxy.options.max_idle_per_endpoint,
                  .idle_timeout = proxy.options.idle_timeout,
                  .max_response_header_bytes = proxy.options.max_response_header_bytes,
                  .max_response_body_bytes = proxy.options.max_response_body_bytes,
                  .timeout_resolution = proxy.timeout_resolution(),
              }),
        backoff_timer_(std::in_place, thread.io()),
        timeout_resolution_(proxy.timeout_resolution()) {
    std::random_device rd;
    rng_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ thread.id();
  }

  ProxyCore& proxy() { return proxy_; }
  uint64_t io_thread_id() const { return io_thread_id_; }

  // Route `id` as this thread sees it: its copy of the route list, taken again (one atomic
  // load when nothing changed) after add_route()/remove_route(). Null when unknown or removed.
  const std::shared_ptr<RouteState>* route(Proxy::RouteId id) {
    const uint64_t v = proxy_.routes_version.load(std::memory_order_acquire);
    if (v != routes_version_) refresh_routes(v);
    if (id >= routes_.size() || !routes_[id]) return nullptr;
    return &routes_[id];
  }
  UpstreamPool& pool() { return pool_; }
  bool stopped() const { return stopped_; }
  StatCounter& inflight() { return inflight_; }
  const StatCounter& inflight() const { return inflight_; }
  const UpstreamPool& pool() const { return pool_; }

  // A call is owned by this pool while free, and by its request (the server's Request and
  // Responder keep it reachable) while in flight; release() takes it back.
  Call& acquire() {
    if (free_.empty()) return *new Call(*this);
    Call* c = free_.back().release();
    free_.pop_back();
    return *c;
  }

  // A call on `id`: counted on this thread, so that a route removed meanwhile stays alive until
  // its last call here ends (no reference count shared between threads on the request path).
  RouteState* begin_call(Proxy::RouteId id) {
    const std::shared_ptr<RouteState>* r = route(id);
    if (r == nullptr) return nullptr;
    if (route_calls_.size() <= id) route_calls_.resize(id + 1, 0);
    ++route_calls_[id];
    return r->get();
  }

  void release(Call& c) {
    if (c.route != nullptr) {
      const size_t id = c.route->index;
      if (--route_calls_[id] == 0 && !retired_.empty()) {
        std::erase_if(retired_, [id](const auto& r) { return r->index == id; });
      }
    }
    c.route = nullptr;
    c.req = nullptr;
    c.pick.reset();
    c.phase = Call::Phase::kIdle;
    c.client_gone = false;
    if (c.attempt > 0) c.previous.response = http::Response();  // a retried body is not kept
    if (stopped_ || free_.size() >= kMaxFreeCalls) {
      delete &c;
      return;
    }
    free_.emplace_back(&c);
  }

  uint64_t next_random() {
    uint64_t z = (rng_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  UpstreamSeries* upstream_series(Call& c);

  void wait_backoff(Call& c, Clock::Duration backoff) {
    c.phase = Call::Phase::kBackoff;
    c.wake_at = now() + backoff;
    waiting_.push_back(&c);
    if (!backoff_armed_ || c.wake_at < backoff_at_) arm_backoff(c.wake_at);
  }
  void cancel_backoff(Call& c) { std::erase(waiting_, &c); }

  // The IoThread's stop hook: ends everything pending on this thread's io_context.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    backoff_timer_.reset();
    pool_.stop();  // running attempts complete as cancelled; their calls answer 503
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (Call* c : waiting) {
      proxy_.fail(*c, 503, "shutting_down", "the gateway is shutting down");
    }
    free_.clear();
  }

 private:
  void refresh_routes(uint64_t version) {
    std::vector<std::shared_ptr<RouteState>> before;
    {
      std::lock_guard lock(proxy_.routes_mu);
      before = std::exchange(routes_, proxy_.routes);
      routes_version_ = version;
    }
    for (auto& r : before) {  // removed, with calls still running here
      if (r && !routes_[r->index] && r->index < route_calls_.size() && route_calls_[r->index] > 0) {
        retired_.push_back(std::move(r));
      }
    }
    // A route added later may have a shorter timeout than any before it.
    const std::chrono::milliseconds r = proxy_.timeout_resolution(routes_);
    if (r != timeout_resolution_) {
      timeout_resolution_ = r;
      pool_.set_timeout_resolution(r);
    }
  }

  // The timer is set for the earliest back-off due, not for the timeout sweep's resolution: a
  // 25 ms back-off waits 25 ms, not up to 250.
  void arm_backoff(Clock::TimePoint earliest) {
    if (stopped_) return;
    backoff_armed_ = true;
    backoff_at_ = earliest;
    // Re-arming cancels the wait before (its handler sees operation_aborted and does nothing).
    backoff_timer_->expires_after(std::max(earliest - now(), Clock::Duration::zero()));
    backoff_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // re-armed, or cancelled by stop(); `this` may be gone with the Proxy
      backoff_armed_ = false;
      if (stopped_) return;
      wake_due();
    });
  }

  void wake_due() {
    const Clock::TimePoint t = now();
    due_.clear();
    std::erase_if(waiting_, [&](Call* c) {
      if (c->wake_at > t) return false;
      due_.push_back(c);
      return true;
    });
    for (Call* c : due_) proxy_.start_attempt(*c);
    due_.clear();
    if (!waiting_.empty() && !backoff_armed_) {
      Clock::TimePoint earliest = waiting_.front()->wake_at;
      for (const Call* c : waiting_) earliest = std::min(earliest, c->wake_at);
      arm_backoff(earliest);
    }
  }

  ProxyCore& proxy_;
  uint64_t io_thread_id_;
  UpstreamPool pool_;
  std::optional<asio::steady_timer> backoff_timer_;
  std::chrono::milliseconds timeout_resolution_;
  std::vector<std::shared_ptr<RouteState>> routes_;  // this thread's copy of proxy_.routes
  uint64_t routes_version_ = UINT64_MAX;
  std::vector<uint32_t> route_calls_;                 // calls running, by route id
  std::vector<std::shared_ptr<RouteState>> retired_;  // removed, calls still running
  std::vector<std::unique_ptr<Call>> free_;
  std::vector<Call*> waiting_;  // in back-off
  std::vector<Call*> due_;
  EndpointMap<std::vector<std::unique_ptr<UpstreamSeries>>> series_;
  uint64_t rng_ = 0;
  StatCounter inflight_;
  bool backoff_armed_ = false;
  Clock::TimePoint backoff_at_{};  // when the armed timer fires
  bool stopped_ = false;
};

UpstreamSeries* ThreadState::upstream_series(Call& c) {
  ProxyCore& p = proxy_;
  if (p.upstream_requests == nullptr) return nullptr;
  auto& by_route = series_(c.pick->host, c.pick->port);
  const size_t index = c.route->index;
  if (by_route.size() <= index) by_route.resize(index + 1);
  auto& series = by_route[index];
  if (!series) {
    series = std::make_unique<UpstreamSeries>();
    series->duration = &p.upstream_durations->with({c.route->route.name, c.upstream_label});
  }
  return series.get();
}

thread_local struct {
  uint64_t proxy_id = 0;
  uint64_t io_thread_id = 0;
  ThreadState* state = nullptr;
} tls_thread_state;

std::atomic<uint64_t> next_proxy_id{1};

void Call::on_complete() { ts_.proxy().on_attempt_done(*this); }

}  // namespace

ProxyCore::ProxyCore(ProxyOptions o)
    : options(std::move(o)), id(next_proxy_id.fetch_add(1, std::memory_order_relaxed)) {
  options.max_attempts = std::max(options.max_attempts, 1);
  telemetry::Registry* registry = options.registry;
  if (registry == nullptr) return;
  // The same families, help texts and labels as the service runtime's (runtime.cc): the
  // gateway follows the metrics contract of ARCHITECTURE.md.
  requests =
      &registry->counter("prescale_requests_total", "Requests handled, by route and status code.",
                         {"service", "route", "code"});
  durations =
      &registry->histogram("prescale_request_duration_seconds",
                           "Time from request read to response handed to the server, by route.",
                           {"service", "route"}, telemetry::default_latency_buckets());
  upstream_requests = &registry->counter(
      "prescale_gateway_upstream_requests_total",
      "Attempts at upstream endpoints by route, endpoint and outcome: the HTTP status, or "
      "connect_failed, connect_timeout, reset, malformed, timeout, cancelled.",
      {"route", "upstream", "code"});
  upstream_durations = &registry->histogram(
      "prescale_gateway_upstream_request_duration_seconds",
      "Time of one attempt at an upstream endpoint, connecting included, by route and endpoint.",
      {"route", "upstream"}, telemetry::default_latency_buckets());
  retries = &registry->counter("prescale_gateway_retries_total",
                               "Attempts after the first, by route.", {"route"});

  std::weak_ptr<Threads> weak = threads;
  const std::string service = options.service_label;
  registry->add_collector(
      [weak, service](std::vector<telemetry::FamilySnapshot>& out) {
        auto t = weak.lock();
        if (!t) return;
        Proxy::Stats s;
        {
          std::lock_guard lock(t->mu);
          for (const auto& ts : t->states) {
            const auto p = ts->pool().stats();
            s.inflight += ts->inflight().get();
            s.connections_opened += p.connections_opened;
            s.reused += p.reused;
            s.idle_connections += p.idle;
            s.active_connections += p.active;
          }
        }
        auto family = [&](std::string name, std::string help, telemetry::MetricType type) {
          telemetry::FamilySnapshot f;
          f.name = std::move(name);
          f.help = std::move(help);
          f.type = type;
          return f;
        };
        auto inflight = family("prescale_inflight_requests", "Requests being handled now.",
                               telemetry::MetricType::kGauge);
        inflight.label_names = {"service"};
        inflight.series.push_back(
            {.label_values = {service}, .value = static_cast<double>(s.inflight), .histogram = {}});
        out.push_back(std::move(inflight));
        auto conns = family("prescale_gateway_upstream_connections",
                            "Upstream connections now: idle in the pools, or active (connecting "
                            "or running a request).",
                            telemetry::MetricType::kGauge);
        conns.label_names = {"state"};
        conns.series.push_back({.label_values = {"active"},
                                .value = static_cast<double>(s.active_connections),
                                .histogram = {}});
        conns.series.push_back({.label_values = {"idle"},
                                .value = static_cast<double>(s.idle_connections),
                                .histogram = {}});
        out.push_back(std::move(conns));
        auto opened =
            family("prescale_gateway_upstream_connections_opened_total",
                   "Upstream TCP connections established.", telemetry::MetricType::kCounter);
        opened.series.push_back({.label_values = {},
                                 .value = static_cast<double>(s.connections_opened),
                                 .histogram = {}});
        out.push_back(std::move(opened));
        auto reused = family("prescale_gateway_upstream_connections_reused_total",
                             "Attempts sent on a pooled (kept-alive) upstream connection.",
                             telemetry::MetricType::kCounter);
        reused.series.push_back(
            {.label_values = {}, .value = static_cast<double>(s.reused), .histogram = {}});
        out.push_back(std::move(reused));
      },
      "gateway_proxy_" + std::to_string(id));
}

std::chrono::milliseconds ProxyCore::timeout_resolution() const {
  std::lock_guard lock(routes_mu);
  return timeout_resolution(routes);
}

std::chrono::milliseconds ProxyCore::timeout_resolution(
    const std::vector<std::shared_ptr<RouteState>>& of_routes) const {
  // As the server's sweep: 1/8 of the shortest timeout, between 5 and 250 ms.
  std::chrono::milliseconds shortest = std::min(options.connect_timeout, options.idle_timeout);
  for (const auto& r : of_routes) {
    if (!r) continue;
    shortest = std::min(shortest, r->route.timeout);
    if (r->route.per_try_timeout.count() > 0) {
      shortest = std::min(shortest, r->route.per_try_timeout);
    }
  }
  return std::clamp<std::chrono::milliseconds>(shortest / 8, std::chrono::milliseconds(5),
                                               std::chrono::milliseconds(250));
}

ThreadState* ProxyCore::thread_state() {
  http::internal::IoThread* io = http::internal::current_io_thread();
  if (io == nullptr) return nullptr;
  auto& cache = tls_thread_state;
  if (cache.proxy_id == id && cache.io_thread_id == io->id()) return cache.state;
  ThreadState* state = nullptr;
  bool created = false;
  {
    std::lock_guard lock(threads->mu);
    for (const auto& ts : threads->states) {
      if (ts->io_thread_id() == io->id()) state = ts.get();
    }
    if (state == nullptr) {
      threads->states.push_back(std::make_shared<ThreadState>(*this, *io));
      state = threads->states.back().get();
      created = true;
    }
  }
  if (created) io->on_stop([state] { state->stop(); });
  cache = {id, io->id(), state};
  return state;
}

void ProxyCore::build_head(Call& c) {
  const http::Request& req = *c.req;
  std::string& out = c.head_buf;
  out.clear();
  out += http::internal::request_method_token(req);
  out += ' ';
  out += req.target.empty() ? std::string_view("/") : std::string_view(req.target);
  out += " HTTP/1.1\r\n";
  const ConnectionListed listed(req.headers);
  std::string_view host;
  bool have_host = false;
  bool have_proto = false;
  bool have_forwarded_host = false;
  bool have_request_id = false;
  for (const auto& [name, value] : req.headers.fields()) {
    if (is_hop_by_hop(name) || (!listed.empty() && listed.contains(name))) continue;
    switch (name.size()) {
      case 4:
        if (iequals(name, "host")) {
          host = value;
          have_host = true;
        }
        break;
      case 6:
        if (iequals(name, "expect")) continue;  // the server already answered 100-continue
        break;
      case 12:
        if (iequals(name, "x-request-id")) have_request_id = true;
        break;
      case 14:
        if (iequals(name, "content-length")) continue;  // reframed below
        break;
      case 15:
        if (iequals(name, "x-forwarded-for")) continue;  // merged into ours below
        break;
      case 16:
        if (iequals(name, "x-forwarded-host")) have_forwarded_host = true;
        break;
      case 17:
        if (iequals(name, "x-forwarded-proto")) have_proto = true;
        break;
      default:
        break;
    }
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (!have_host) {  // an empty Host is forwarded as it is, not doubled
    out += "Host: ";
    out += c.upstream_label;
    out += "\r\n";
  }
  out += "X-Forwarded-For: ";
  // Earlier hops' fields, every one in order: several fields are one list (RFC 9110 section
  // 5.3), and its first member is the original client. Their size is bounded by the server's
  // header limit.
  for (const auto& [name, value] : req.headers.fields()) {
    if (name.size() != 15 || !iequals(name, "x-forwarded-for")) continue;
    if (!listed.empty() && listed.contains(name)) continue;
    const std::string_view hops = http::internal::trim(value);
    if (hops.empty()) continue;
    out += hops;
    out += ", ";
  }
  out += req.remote_address.empty() ? std::string_view("unknown")
                                    : std::string_view(req.remote_address);
  out += "\r\n";
  if (!have_proto) out += "X-Forwarded-Proto: http\r\n";
  if (!have_forwarded_host && !host.empty()) {
    out += "X-Forwarded-Host: ";
    out += host;
    out += "\r\n";
  }
  if (!have_request_id) {
    if (c.request_id.empty()) {
      // A random (version 4) UUID, the same for every attempt of the request.
      static constexpr char kHex[] = "0123456789abcdef";
      uint64_t hi = (c.ts_.next_random() & ~0xF000ULL) | 0x4000ULL;
      uint64_t lo = (c.ts_.next_random() & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
      c.request_id.resize(36);
      size_t pos = 0;
      for (int i = 0; i < 32; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20) c.request_id[pos++] = '-';
        const uint64_t word = i < 16 ? hi : lo;
        const int shift = 60 - 4 * (i % 16);
        c.request_id[pos++] = kHex[(word >> shift) & 0xF];
      }
    }
    out += "x-request-id: ";
    out += c.request_id;
    out += "\r\n";
  }
  const bool body_method = req.method == http::Method::kPost || req.method == http::Method::kPut ||
                           req.method == http::Method::kPatch;
  if (!req.body.empty() || body_method) {
    out += "Content-Length: ";
    out += std::to_string(req.body.size());
    out += "\r\n";
  }
  out += "\r\n";
}

void ProxyCore::start_attempt(Call& c) {
  RouteState& route = *c.route;
  const UpstreamPick* previous = c.pick ? &*c.pick : nullptr;
  UpstreamSelection pick = route.route.selector->select(*c.req, c.attempt, previous);
  if (!pick) {
    if (c.attempt == 0) {
      refuse(c, pick.error());
    } else {
      finish_failed(c);  // the previous attempt's answer
    }
    return;
  }
  // A retry is counted once the pool has taken it: one the selector or the pool refuses was never
  // made. (The counter lives in the registry: the call may be over when start() returns.)
  telemetry::Counter* const retry_counter = c.attempt > 0 ? route.retries : nullptr;
  if (c.attempt > 0) {
    c.previous.error = c.error;
    c.previous.detail = std::move(c.detail);
    c.previous.response = std::move(c.response);
    c.previous.deadline = c.deadline;
    c.previous.upstream_label = c.upstream_label;
  }
  c.pick = std::move(*pick);
  c.upstream_label.clear();
  append_host_port(c.upstream_label, c.pick->host, c.pick->port);

  const Clock::TimePoint t = now();
  c.attempt_started = t;
  c.deadline = c.route_deadline;
  if (route.route.per_try_timeout.count() > 0) {
    c.deadline = std::min(c.deadline, t + route.route.per_try_timeout);
  }
  build_head(c);
  c.head = c.head_buf;
  c.body = c.req->body;
  c.head_request = c.req->method == http::Method::kHead;
  c.idempotent = idempotent(c.req->method);
  c.admission = c.pick->admission;
  c.phase = Call::Phase::kRunning;
  if (!c.ts_.pool().start(c.pick->host, c.pick->port, c)) {
    c.phase = Call::Phase::kIdle;
    if (c.error != ExchangeError::kOverflow) c.detail = "the gateway is shutting down";
    c.retry_refused = c.attempt > 0;
    on_attempt_done(c);
    return;
  }
  if (retry_counter != nullptr) retry_counter->inc();
}

void ProxyCore::record_attempt(Call& c, Clock::Duration latency) {
  UpstreamSeries* series = c.ts_.upstream_series(c);
  if (series == nullptr) return;
  series->duration->observe(to_seconds(latency));
  telemetry::Counter* counter = nullptr;
  if (c.error == ExchangeError::kNone) {
    const int status = c.response.status;
    for (const auto& [s, ctr] : series->by_status) {
      if (s == status) counter = ctr;
    }
    if (counter == nullptr) {
      counter =
          &upstream_requests->with({c.route->route.name, c.upstream_label, std::to_string(status)});
      series->by_status.emplace_back(status, counter);
    }
  } else {
    auto& slot = series->by_error[static_cast<size_t>(c.error)];
    if (slot == nullptr) {
      slot = &upstream_requests->with({c.route->route.name, c.upstream_label, to_string(c.error)});
    }
    counter = slot;
  }
  counter->inc();
}

void ProxyCore::on_attempt_done(Call& c) {
  c.phase = Call::Phase::kIdle;
  const Clock::TimePoint t = now();
  const Clock::Duration latency = t - c.attempt_started;
  UpstreamOutcome outcome;
  switch (c.error) {
    case ExchangeError::kNone:
      outcome = UpstreamOutcome::response(c.response.status);
      break;
    case ExchangeError::kConnectFailed:
    case ExchangeError::kConnectTimeout:
      outcome = UpstreamOutcome::failure(UpstreamError::kConnectFailure);
      break;
    case ExchangeError::kReset:
    case ExchangeError::kMalformed:
      outcome = UpstreamOutcome::failure(UpstreamError::kReset);
      break;
    case ExchangeError::kTimeout:
      outcome = UpstreamOutcome::failure(UpstreamError::kTimeout);
      break;
    case ExchangeError::kCancelled:
    case ExchangeError::kOverflow:
      break;
  }
  const AttemptReport report{
      .pick = *c.pick,
      .attempt = c.attempt,
      .outcome = outcome,
      .cancelled = c.error == ExchangeError::kCancelled || c.error == ExchangeError::kOverflow,
      .request_sent = c.request_sent,
      .latency = latency,
      .finished_at = t,
      .detail = c.detail};
  record_attempt(c, latency);
  UpstreamSelector& selector = *c.route->route.selector;
  selector.report(*c.req, report);
  if (c.retry_refused) {
    c.retry_refused = false;
    c.error = c.previous.error;
    c.detail = std::move(c.previous.detail);
    c.response = std::move(c.previous.response);
    c.deadline = c.previous.deadline;
    c.upstream_label = std::move(c.previous.upstream_label);
    finish_failed(c);
    return;
  }
  if (c.error == ExchangeError::kNone && c.response.status < 500) {
    relay(c);
    return;
  }
  if (!report.cancelled && c.attempt + 1 < options.max_attempts && t < c.route_deadline &&
      !c.ts_.stopped()) {
    const RetryDecision decision = selector.retry(*c.req, report);
    if (decision.retry && t + decision.backoff < c.route_deadline) {
      ++c.attempt;
      if (decision.backoff > Clock::Duration::zero()) {
        c.ts_.wait_backoff(c, decision.backoff);
      } else {
        start_attempt(c);
      }
      return;
    }
  }
  finish_failed(c);
}

void ProxyCore::finish_failed(Call& c) {
  const ProxyRoute& route = c.route->route;
  switch (c.error) {
    case ExchangeError::kNone:
      relay(c);  // the upstream's own 5xx
      return;
    case ExchangeError::kConnectFailed:
      fail(c, 503, "upstream_unavailable",
           "no upstream of service " + route.service + " could be reached: " + c.detail);
      return;
    case ExchangeError::kConnectTimeout:
      fail(c, 504, "upstream_timeout", c.detail);
      return;
    case ExchangeError::kTimeout:
      if (c.deadline >= c.route_deadline) {
        fail(c, 504, "upstream_timeout",
             "route " + route.name + " timed out after " + millis(route.timeout) + " (" + c.detail +
                 ")");
      } else {
        fail(c, 504, "upstream_timeout",
             "upstream " + c.upstream_label + " did not answer within the per-try timeout of " +
                 millis(route.per_try_timeout));
      }
      return;
    case ExchangeError::kReset:
    case ExchangeError::kMalformed:
      fail(c, 502, "bad_gateway", c.detail);
      return;
    case ExchangeError::kOverflow:
      fail(c, 503, "upstream_overflow", "service " + route.service + ": " + c.detail);
      return;
    case ExchangeError::kCancelled:
      if (c.client_gone) {
        fail(c, kClientClosedRequest, "client_closed_request", "the client went away");
      } else {
        fail(c, 503, "shutting_down", "the gateway is shutting down");
      }
      return;
  }
}

void ProxyCore::relay(Call& c) {
  strip_hop_by_hop(c.response.headers);
  finish(c, std::move(c.response));
}

void ProxyCore::refuse(Call& c, const NoPick& why) {
  const ProxyRoute& route = c.route->route;
  switch (why.reason) {
    case NoPick::Reason::kNoHealthyUpstream:
      fail(c, 503, "no_healthy_upstream",
           !why.message.empty() ? why.message
                                : "no healthy upstream for route " + route.name + " (service " +
                                      route.service + ")");
      return;
    case NoPick::Reason::kOverflow:
      fail(c, 503, "upstream_overflow",
           !why.message.empty() ? why.message : "service " + route.service + ": limit reached");
      return;
    case NoPick::Reason::kOverloaded: {
      http::Response r = http::error_response(
          503, "overloaded",
          !why.message.empty() ? why.message : "service " + route.service + " is overloaded");
      // Retry-After counts whole seconds and 1 is the shortest: the admitted queue drains
      // within queue_limit, well under it. Clients that honour it come back once there is room
      // instead of at once, adding to the overload.
      r.headers.set("Retry-After", "1");
      finish(c, std::move(r));
      return;
    }
  }
}

void ProxyCore::fail(Call& c, int status, std::string_view code, const std::string& message) {
  finish(c, http::error_response(status, code, message));
}

void ProxyCore::finish(Call& c, http::Response&& response) {
  RouteState& route = *c.route;
  route.count(response.status);
  if (route.duration != nullptr) route.duration->observe(to_seconds(now() - c.started));
  // Nothing of the call may be used after respond(): it may run the next pipelined request,
  // which takes this Call from the pool again.
  c.req->on_client_gone = nullptr;
  http::Responder respond = std::move(c.respond);
  ThreadState& ts = c.ts_;
  ts.inflight().add(-1);
  http::Response r = std::move(response);
  ts.release(c);
  respond(std::move(r));
}

void ProxyCore::client_gone(Call& c) {
  c.client_gone = true;
  switch (c.phase) {
    case Call::Phase::kRunning:
      c.ts_.pool().cancel(c);
      c.error = ExchangeError::kCancelled;
      c.detail = "the client went away";
      on_attempt_done(c);  // reports the attempt as cancelled, answers 499
      return;
    case Call::Phase::kBackoff:
      c.ts_.cancel_backoff(c);
      c.phase = Call::Phase::kIdle;
      fail(c, kClientClosedRequest, "client_closed_request", "the client went away");
      return;
    case Call::Phase::kIdle:
      return;
  }
}

Proxy::Proxy(ProxyOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Proxy::~Proxy() = default;

Proxy::RouteId Proxy::add_route(ProxyRoute route) {
  if (!route.selector) throw std::invalid_argument("proxy route " + route.name + ": no selector");
  if (route.timeout.count() <= 0) {
    throw std::invalid_argument("proxy route " + route.name + ": timeout must be > 0");
  }
  auto state = std::make_shared<RouteState>();
  state->route = std::move(route);
  state->service_label = impl_->options.service_label;
  if (impl_->requests != nullptr) {
    state->requests = impl_->requests;
    state->duration = &impl_->durations->with({state->service_label, state->route.name});
    state->retries = &impl_->retries->with({state->route.name});
  }
  std::lock_guard lock(impl_->routes_mu);
  if (impl_->routes.size() >= kNoRoute) throw std::length_error("proxy: too many routes");
  state->index = impl_->routes.size();
  impl_->routes.push_back(std::move(state));
  impl_->routes_version.fetch_add(1, std::memory_order_release);
  return static_cast<RouteId>(impl_->routes.size() - 1);
}

bool Proxy::remove_route(RouteId route) {
  std::lock_guard lock(impl_->routes_mu);
  if (route >= impl_->routes.size() || !impl_->routes[route]) return false;
  impl_->routes[route].reset();
  impl_->routes_version.fetch_add(1, std::memory_order_release);
  return true;
}

void Proxy::forward(RouteId route, http::Request& request, http::Responder respond) {
  Impl& p = *impl_;
  ThreadState* ts = p.thread_state();
  RouteState* state = ts != nullptr ? ts->begin_call(route) : nullptr;
  if (state == nullptr) {
    respond(http::error_response(
        500, "internal",
        ts == nullptr ? "the proxy runs only on server I/O threads" : "unknown proxy route"));
    return;
  }
  Call& c = ts->acquire();
  c.route = state;
  if (ts->stopped()) {
    ts->release(c);
    respond(http::error_response(503, "shutting_down", "the gateway is shutting down"));
    return;
  }
  c.req = &request;
  c.respond = std::move(respond);
  c.started = now();
  c.route_deadline = c.started + c.route->route.timeout;
  c.attempt = 0;
  c.client_gone = false;
  c.request_id.clear();
  ts->inflight().add(1);
  request.on_client_gone = [&c] { c.ts_.proxy().client_gone(c); };
  p.start_attempt(c);
}

void Proxy::answer(RouteId route, http::Response response, http::Responder respond) {
  Impl& p = *impl_;
  std::shared_ptr<RouteState> state;
  if (route != kNoRoute) {
    if (ThreadState* ts = p.thread_state(); ts != nullptr) {
      if (const auto* r = ts->route(route)) state = *r;
    } else {
      std::lock_guard lock(p.routes_mu);
      if (route < p.routes.size()) state = p.routes[route];
    }
  }
  if (state) {
    state->count(response.status);
  } else if (p.requests != nullptr) {
    p.requests->with({p.options.service_label, kUnmatchedRoute, std::to_string(response.status)})
        .inc();
  }
  respond(std::move(response));
}

Proxy::Stats Proxy::stats() const {
  Stats s;
  std::lock_guard lock(impl_->threads->mu);
  for (const auto& ts : impl_->threads->states) {
    const auto p = ts->pool().stats();
    s.inflight += ts->inflight().get();
    s.connections_opened += p.connections_opened;
    s.reused += p.reused;
    s.stale_retries += p.stale_retries;
    s.idle_connections += p.idle;
    s.active_connections += p.active;
  }
  return s;
}

}  // namespace prescale::gateway
