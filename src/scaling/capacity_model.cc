#include "scaling/capacity_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/state_json.h"

namespace prescale::scaling {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kLogHundred = std::log(100.0);  // −ln(1 − 0.99): the p99 of Exp(1)

double seconds_of(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

// P(T > t) of the M/M/c sojourn: with probability C an Exp(γ) wait (γ = cμ − λ), then an
// Exp(μ) service. For γ ≠ μ the convolution gives two exponentials; at γ = μ their limit.
double sojourn_tail(double wait_probability, double gamma, double mu, double t) {
  const double c = wait_probability;
  if (std::abs(gamma - mu) < 1e-6 * mu) return (1 + c * mu * t) * std::exp(-mu * t);
  const double a = (1 - c) + c * gamma / (gamma - mu);
  const double b = c * mu / (gamma - mu);
  return a * std::exp(-mu * t) - b * std::exp(-gamma * t);
}

// Bisection to ~1e-8 relative (far below what the estimates are good for): every function
// inverted here is monotone.
template <typename Increasing>
double solve_increasing(Increasing f, double target, double lo, double hi) {
  for (int i = 0; i < 200 && hi - lo > 1e-8 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (f(mid) < target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

double erlang_c(int servers, double offered_load) {
  if (offered_load >= servers) return 1;
  if (offered_load <= 0) return 0;
  // Erlang B by its stable recurrence, then C = B / (1 − ρ(1 − B)).
  double b = 1;
  for (int k = 1; k <= servers; ++k) b = offered_load * b / (k + offered_load * b);
  const double rho = offered_load / servers;
  return b / (1 - rho * (1 - b));
}

double mmc_mean_in_system(int servers, double offered_load) {
  if (offered_load >= servers) return kInf;
  const double a = std::max(offered_load, 0.0);
  return a + erlang_c(servers, a) * a / (servers - a);
}

double mmc_p99_seconds(int servers, double arrival_rps, double service_time_seconds) {
  const double mu = 1 / service_time_seconds;
  const double gamma = servers * mu - arrival_rps;
  if (!(gamma > 0)) return kInf;
  const double wait = erlang_c(servers, arrival_rps * service_time_seconds);
  auto tail = [&](double t) { return sojourn_tail(wait, gamma, mu, t); };
  double hi = kLogHundred / std::min(mu, gamma);
  while (tail(hi) > 0.01) hi *= 2;
  // The tail decreases in t, so its negation increases.
  return solve_increasing([&](double t) { return -tail(t); }, -0.01, 0.0, hi);
}

double mmc_capacity_rps(int servers, double service_time_seconds, double p99_target_seconds) {
  if (!(service_time_seconds > 0) || !(p99_target_seconds > 0) || servers < 1) return 0;
  if (kLogHundred * service_time_seconds >= p99_target_seconds) return 0;
  return solve_increasing(
      [&](double rps) { return mmc_p99_seconds(servers, rps, service_time_seconds); },
      p99_target_seconds, 0.0, servers / service_time_seconds);
}

namespace {

// The service time at which mmc_capacity_rps gives `capacity_rps`; NaN when none does.
double service_time_for(int servers, double capacity_rps, double p99_target_seconds) {
  if (!(capacity_rps > 0) || !(p99_target_seconds > 0)) return NAN;
  const double hi = std::min(p99_target_seconds / kLogHundred, servers / capacity_rps);
  return solve_increasing([&](double s) { return mmc_p99_seconds(servers, capacity_rps, s); },
                          p99_target_seconds, 0.0, hi);
}

// The offered load a (busy servers) whose M/M/c mean occupancy is `in_system`, when it is below
// max_utilization × servers.
std::optional<double> offered_load_for(int servers, double in_system, double max_utilization) {
  const double top = max_utilization * servers;
  if (!(in_system > 0) || mmc_mean_in_system(servers, top) < in_system) return std::nullopt;
  return solve_increasing([&](double a) { return mmc_mean_in_system(servers, a); }, in_system, 0.0,
                          top);
}

}  // namespace

CapacityModel::CapacityModel(CapacityModelOptions options) : options_(options) {}

double scrape_service_time(const ServiceObservation& o, int max_concurrency,
                           const CapacityModelOptions& options) {
  const WindowMetrics& w = o.window;
  const int ready = o.count(ReplicaState::kReady);
  if (ready == 0 || w.length <= Clock::Duration::zero()) return NAN;
  const double requests = w.served_rps * seconds_of(w.length);
  // Nothing completed (requests in flight only): no service time to divide out, at any
  // min_requests.
  if (!(requests >= options.min_requests) || !(requests > 0)) return NAN;
  if (w.dropped_rps > options.max_drop_share * std::max(w.arrival_rps, w.served_rps)) return NAN;

  // One queue for all replicas, or `ready` equal queues each with its share.
  const int per_replica = std::max(max_concurrency, 1);
  const int servers = options.shared_queue ? ready * per_replica : per_replica;
  const double share = options.shared_queue ? 1.0 : 1.0 / ready;
  const double arrival_rps = w.served_rps * share;
  double service_time = NAN;
  if (max_concurrency <= 0 && std::isfinite(w.concurrency) && w.concurrency > 0) {
    // Not limited: no request waits for a worker, so its time in the service is its time in
    // service (Little's law: the mean in flight over the rate served).
    service_time = w.concurrency / w.served_rps;
  } else if (std::isfinite(w.concurrency) && w.concurrency > 0) {
    // Little's law: the mean number in the system is the M/M/c occupancy at the offered load.
    auto busy = offered_load_for(servers, w.concurrency * share, options.max_utilization);
    if (!busy) return NAN;
    service_time = *busy / arrival_rps;
  } else if (std::isfinite(w.mean_cpu_utilization)) {
    const double idle = options.idle_cpu_utilization;
    const double busy = std::max(w.mean_cpu_utilization - idle, 0.0) / (1 - idle);
    if (busy > options.max_utilization) return NAN;
    service_time = busy * servers / arrival_rps;
  }
  return service_time > 0 && std::isfinite(service_time) ? service_time : NAN;
}

void CapacityModel::init(const std::vector<ServiceSpec>& services) {
  std::map<std::string, Learned, std::less<>> next;
  for (const auto& spec : services) {
    Learned s;
    if (auto it = services_.find(spec.name); it != services_.end()) s = it->second;
    take_spec(s, spec);
    next.insert_or_assign(spec.name, std::move(s));
  }
  services_ = std::move(next);
}

void CapacityModel::respec(const ServiceSpec& spec) {
  if (auto it = services_.find(spec.name); it != services_.end()) take_spec(it->second, spec);
}

void CapacityModel::add(const ServiceSpec& spec) { take_spec(services_[spec.name], spec); }

void CapacityModel::remove(std::string_view service) {
  if (auto it = services_.find(service); it != services_.end()) services_.erase(it);
}

void CapacityModel::take_spec(Learned& s, const ServiceSpec& spec) const {
  s.spec = spec;
  s.servers = std::max(spec.max_concurrency, 1);
  s.seed_service_time =
      service_time_for(s.servers, spec.capacity_rps, spec.slo_latency_p99_seconds);
  update_capacity(s);
}

void CapacityModel::observe(const Snapshot& snapshot) {
  for (const auto& o : snapshot.services) {
    if (auto it = services_.find(o.name); it != services_.end()) learn(it->second, o);
  }
}

void CapacityModel::learn(Learned& s, const ServiceObservation& o) {
  const WindowMetrics& w = o.window;
  if (w.length <= Clock::Duration::zero()) return;
  // A scrape far behind the last one: the clock was set back, or the last was stamped ahead (else
  // every scrape would be ignored until the clock reached that stamp). What was learned is kept
  // and decays from this scrape on, not by the negative age back to the last one.
  const bool set_back = s.sampled_at && clock_set_back(*s.sampled_at, w.sampled_at);
  if (s.sampled_at && w.sampled_at <= *s.sampled_at && !set_back) return;
  s.sampled_at = w.sampled_at;
  if (set_back && s.decayed_at) s.decayed_at = std::min(*s.decayed_at, w.sampled_at);
  if (set_back) s.set_back_at = w.sampled_at;

  // The window must have had the ready replicas the snapshot lists: none joined during it, and
  // none left it (a replica draining since within it served part of the window, and is not
  // counted as ready; one out of service since before it, a pod that never passed its readiness
  // or crash-loops, served none of it).
  const int ready = o.count(ReplicaState::kReady);
  if (ready == 0) return;
  // A queue needs time to settle after the replicas change: the window must follow
  // `settle_windows` − 1 window lengths without a change as well.
  const Clock::TimePoint window_start =
      w.sampled_at - w.length * std::max(1, options_.settle_windows);
  for (const auto& r : o.replicas) {
    if (r.state == ReplicaState::kDraining) {
      if (!r.draining_since || *r.draining_since > window_start) return;
      continue;
    }
    if (r.state != ReplicaState::kReady || !r.ready_at) continue;
    // Ready after the scrape: stamped before the clock was set back, at a time this clock has
    // not reached (a year ahead, every window until then would be skipped). Ready, then, since
    // the scrape that found the clock set back.
    const Clock::TimePoint ready_at = *r.ready_at > w.sampled_at && s.set_back_at
                                          ? std::min(*r.ready_at, *s.set_back_at)
                                          : *r.ready_at;
    if (ready_at > window_start) return;
  }
  const double requests = w.served_rps * seconds_of(w.length);
  const double service_time = scrape_service_time(o, s.servers, options_);
  if (!(service_time > 0) || !std::isfinite(service_time)) return;

  // The sums decay from the last scrape learned from, so skipped scrapes age them too.
  const double age = s.decayed_at ? seconds_of(w.sampled_at - *s.decayed_at) : 0.0;
  s.decayed_at = w.sampled_at;
  auto keep = [age](Clock::Duration half_life) {
    const double h = seconds_of(half_life);
    return h > 0 ? std::exp2(-age / h) : 0.0;
  };
  const double keep_s = keep(options_.half_life), keep_c = keep(options_.correction_half_life);
  if (!restarted_by_shift(s, service_time, requests, keep_s)) {
    s.busy_seconds = s.busy_seconds * keep_s + service_time * requests;
    s.requests = s.requests * keep_s + requests;
  }
  ++s.samples;
  s.log_correction *= keep_c;
  s.correction_weight *= keep_c;

  // The correction compares like with like: the model's p99 at this scrape's own load and
  // service time, so a service time still being tracked after a release does not leak into it.
  const double slo = s.spec.slo_latency_p99_seconds;
  const int servers = options_.shared_queue ? ready * s.servers : s.servers;
  const double arrival_rps = w.served_rps * (options_.shared_queue ? 1.0 : 1.0 / ready);
  const double model_p99 = mmc_p99_seconds(servers, arrival_rps, service_time);
  if (std::isfinite(w.latency_p99_seconds) && w.latency_p99_seconds > 0 &&
      std::isfinite(model_p99) && model_p99 >= options_.correction_min_p99_fraction * slo) {
    const double bound = std::log(std::max(options_.max_correction, 1.0));
    const double r = std::clamp(std::log(w.latency_p99_seconds / model_p99), -bound, bound);
    s.log_correction += r * requests;
    s.correction_weight += requests;
    ++s.correction_samples;
  }
  update_capacity(s);
}

bool CapacityModel::restarted_by_shift(Learned& s, double service_time, double requests,
                                       double keep) const {
  if (options_.shift_scrapes <= 0 || !(s.requests > 0)) return false;
  const double deviation = std::log(service_time / (s.busy_seconds / s.requests));
  const double bar =
      std::max(std::log1p(options_.shift_share), 3 * std::sqrt(s.log_deviation_square));
  constexpr double kNoiseWeight = 1.0 / 16;
  auto noise = [&](double d) {
    s.log_deviation_square += kNoiseWeight * (d * d - s.log_deviation_square);
  };
  // Only slower: a service that got faster costs replicas until the half-life follows, one that
  // got slower costs requests. And only once the estimate stands on min_samples scrapes: the
  // first ones teach the noise alone.
  if (s.samples < options_.min_samples || !(deviation > bar)) {
    // A run that ended short was noise: its scrapes count toward it now, which they could not
    // while they might have been a release (one would have raised the bar above itself).
    for (double d : s.run_deviations) noise(d);
    s.run_deviations.clear();
    s.run_busy_seconds = s.run_requests = 0;
    noise(deviation);
    return false;
  }
  s.run_deviations.push_back(deviation);
  s.run_busy_seconds = s.run_busy_seconds * keep + service_time * requests;
  s.run_requests = s.run_requests * keep + requests;
  if (s.run_deviations.size() < static_cast<size_t>(options_.shift_scrapes)) return false;
  s.busy_seconds = s.run_busy_seconds;
  s.requests = s.run_requests;
  s.run_deviations.clear();
  s.run_busy_seconds = s.run_requests = 0;
  return true;
}

double CapacityModel::correction(const Learned& s) const {
  if (!(s.correction_weight > 0)) return 1;
  // Trusted in proportion to its samples, like the learned capacity against the seed.
  const double trust =
      std::min(1.0, static_cast<double>(s.correction_samples) / std::max(options_.min_samples, 1));
  return std::exp(trust * s.log_correction / s.correction_weight);
}

void CapacityModel::update_capacity(Learned& s) const {
  const double seed = s.spec.capacity_rps;
  const double slo = s.spec.slo_latency_p99_seconds;
  if (s.samples == 0 || !(s.requests > 0) || !(slo > 0)) {
    s.capacity_rps = std::max(seed, 0.0);
    return;
  }
  const double evidence =
      std::min(1.0, static_cast<double>(s.samples) / std::max(options_.min_samples, 1));
  const double service_time = s.busy_seconds / s.requests;
  const double target = slo / correction(s);
  auto moved = [](double now, double then) {
    return !(std::abs(now - then) <= 5e-4 * std::abs(then));
  };
  if (moved(service_time, s.learned_for_service_time) || moved(target, s.learned_for_target) ||
      s.servers != s.learned_for_servers) {
    s.learned_capacity = mmc_capacity_rps(s.servers, service_time, target);
    s.learned_for_servers = s.servers;
    s.learned_for_service_time = service_time;
    s.learned_for_target = target;
  }
  const double learned = s.learned_capacity;
  s.capacity_rps = seed > 0 ? evidence * learned + (1 - evidence) * seed : learned;
}

double CapacityModel::capacity_rps(std::string_view service) const {
  auto it = services_.find(service);
  return it == services_.end() ? 0.0 : it->second.capacity_rps;
}

double CapacityModel::service_time_seconds(std::string_view service) const {
  auto it = services_.find(service);
  if (it == services_.end()) return NAN;
  const Learned& s = it->second;
  return s.samples > 0 && s.requests > 0 ? s.busy_seconds / s.requests : s.seed_service_time;
}

int CapacityModel::samples(std::string_view service) const {
  auto it = services_.find(service);
  return it == services_.end() ? 0 : it->second.samples;
}

double CapacityModel::latency_correction(std::string_view service) const {
  auto it = services_.find(service);
  return it == services_.end() ? 1.0 : correction(it->second);
}

namespace {

// The learned-capacity cache starts as NaN: null in the JSON.
using state_json::number;
using state_json::number_of;
using state_json::optional_age;
using state_json::optional_at;

}  // namespace

nlohmann::json CapacityModel::to_json(Clock::TimePoint now) const {
  nlohmann::json services = nlohmann::json::array();
  for (const auto& [name, s] : services_) {
    services.push_back({{"name", name},
                        {"busy_seconds", s.busy_seconds},
                        {"requests", s.requests},
                        {"log_correction", s.log_correction},
                        {"correction_weight", s.correction_weight},
                        {"samples", s.samples},
                        {"correction_samples", s.correction_samples},
                        {"sampled_at_age_ns", optional_age(now, s.sampled_at)},
                        {"decayed_at_age_ns", optional_age(now, s.decayed_at)},
                        {"learned_capacity", number(s.learned_capacity)},
                        {"learned_for_service_time", number(s.learned_for_service_time)},
                        {"learned_for_target", number(s.learned_for_target)},
                        {"learned_for_servers", s.learned_for_servers},
                        {"log_deviation_square", s.log_deviation_square},
                        {"run_deviations", s.run_deviations},
                        {"run_busy_seconds", s.run_busy_seconds},
                        {"run_requests", s.run_requests}});
  }
  return {{"services", std::move(services)}};
}

Result<void> CapacityModel::from_json(const nlohmann::json& state, Clock::TimePoint now) {
  std::vector<std::pair<std::string, Learned>> restored;
  try {
    for (const auto& j : state.at("services")) {
      auto name = j.at("name").get<std::string>();
      auto it = services_.find(name);
      if (it == services_.end()) continue;
      Learned s = it->second;  // the spec, servers and seed from init()
      s.busy_seconds = j.at("busy_seconds").get<double>();
      s.requests = j.at("requests").get<double>();
      s.log_correction = j.at("log_correction").get<double>();
      s.correction_weight = j.at("correction_weight").get<double>();
      s.samples = j.at("samples").get<int>();
      s.correction_samples = j.at("correction_samples").get<int>();
      s.sampled_at = optional_at(now, j.at("sampled_at_age_ns"));
      s.decayed_at = optional_at(now, j.at("decayed_at_age_ns"));
      // The cache of the queueing-model inversion: without it the capacity would be recomputed
      // at the exact service time, up to 0.05 % off the one in use before.
      s.learned_capacity = number_of(j.at("learned_capacity"));
      s.learned_for_service_time = number_of(j.at("learned_for_service_time"));
      s.learned_for_target = number_of(j.at("learned_for_target"));
      s.learned_for_servers = j.value("learned_for_servers", 0);
      // The release detection's noise and run in progress (absent in older states: learned anew).
      s.log_deviation_square = j.value("log_deviation_square", 0.0);
      s.run_deviations = j.value("run_deviations", std::vector<double>{});
      s.run_busy_seconds = j.value("run_busy_seconds", 0.0);
      s.run_requests = j.value("run_requests", 0.0);
      // Sums and counts that no scrapes add up to: restored, the capacity would come out 0 or
      // negative (max_replicas at every decision), or the estimate skewed for good.
      auto amount = [](double v) { return v >= 0 && std::isfinite(v); };
      auto cached = [&](double v) { return std::isnan(v) || amount(v); };
      const bool finite_logs = std::isfinite(s.log_correction) &&
                               std::all_of(s.run_deviations.begin(), s.run_deviations.end(),
                                           [](double d) { return std::isfinite(d); });
      if (!amount(s.busy_seconds) || !amount(s.requests) || !amount(s.correction_weight) ||
          !amount(s.log_deviation_square) || !amount(s.run_busy_seconds) ||
          !amount(s.run_requests) || s.samples < 0 || s.correction_samples < 0 || !finite_logs ||
          !cached(s.learned_capacity) || !cached(s.learned_for_service_time) ||
          !cached(s.learned_for_target)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "capacity state: " + name +
                              ": sums, counts and the cached capacity must be finite and >= 0");
      }
      restored.emplace_back(std::move(name), std::move(s));
    }
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, std::string("capacity state: ") + e.what());
  }
  for (auto& [name, s] : restored) {
    update_capacity(s);
    services_.insert_or_assign(name, std::move(s));
  }
  return {};
}

}  // namespace prescale::scaling
