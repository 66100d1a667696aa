// CapacityModel: per service, the requests/s ONE replica sustains with its p99 latency within
// the SLO, learned online from the scrapes and seeded from ServiceSpec::capacity_rps.
//
// From each scrape it estimates the mean service time S: the window's mean concurrency, served
// rate and ready replicas give, by Little's law and the M/M/c occupancy, the busy workers and so
// S (the CPU utilisation law when a service reports no concurrency). Estimates are combined as
// an exponentially weighted ratio of sums (busy time over requests), so a release that slows a
// service is followed within a few half-lives. Capacity is then the per-replica arrival rate at
// which an M/M/c queue with c = max_concurrency and service time S has its p99 sojourn at the
// SLO, after a multiplicative latency correction learned where the observed p99 near the SLO
// disagrees with the model's. While evidence is thin the result is blended with the seed.
// docs/learning.md gives the formulas and every option.
//
// Thread safety: none; one thread (the controller's) observes and reads.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "scaling/observation.h"
#include "scaling/policy.h"

namespace prescale::scaling {

struct CapacityModelOptions {
  // A scrape's service-time estimate weighs its requests × 2^(−age / half_life).
  Clock::Duration half_life{std::chrono::minutes(3)};
  // The latency correction changes slowly: it fixes the model's shape, not a release.
  Clock::Duration correction_half_life{std::chrono::minutes(30)};
  // Scrapes that count as samples before the learned capacity replaces the seed; until then the
  // two are blended in proportion.
  int min_samples = 8;
  // Requests a scrape window must have served to count as a sample.
  double min_requests = 20;
  // Scrapes whose estimated utilisation exceeds this, or that dropped more than `max_drop_share`
  // of their arrivals, are left out: near saturation or behind, the queue is not stationary.
  double max_utilization = 0.97;
  // Windows learned from must follow this many window lengths without a replica becoming ready
  // (1 = only the window itself): after a change the queue takes time to settle, and windows
  // caught mid-way bias the latency correction.
  int settle_windows = 2;
  double max_drop_share = 0.01;
  // A slower release: `shift_scrapes` learned scrapes in a row whose service time is above the
  // estimate by more than `shift_share` and by 3 of the estimate's recent deviations (a noisy
  // service is not taken for a changed one) restart the estimate from those scrapes instead of
  // waiting out the half-life. A faster one is left to the half-life (it costs replicas, not
  // requests). 0 = off.
  int shift_scrapes = 3;
  double shift_share = 0.2;
  // Scrapes whose model p99 is at least this fraction of the SLO teach the latency correction,
  // which stays within [1 / max_correction, max_correction].
  double correction_min_p99_fraction = 0.5;
  double max_correction = 2.0;
  // Whether the ready replicas share one queue (the simulator; a least-request balancer) or
  // each has its own, the arrivals split evenly (random or round-robin balancing).
  bool shared_queue = true;
  // CPU of an idle replica, as a fraction of its request; only used when a service reports no
  // concurrency and S comes from CPU (busy = (cpu − idle) / (1 − idle) of its workers).
  double idle_cpu_utilization = 0.05;
};

class CapacityModel {
 public:
  explicit CapacityModel(CapacityModelOptions options = {});

  // The services to learn (others in snapshots are ignored) and their seeds. Forgets what was
  // learned about services not listed again.
  void init(const std::vector<ServiceSpec>& services);
  // A service's spec changed (its SLO, seed capacity or bounds; not its concurrency): its
  // capacity is that of the learned service time at the new SLO, or the new seed before any
  // sample. What was learned goes on. An unknown service is ignored.
  void respec(const ServiceSpec& spec);
  // A service to learn from now on, from its seed (one it has already is respecified); a removed
  // one is forgotten.
  void add(const ServiceSpec& spec);
  void remove(std::string_view service);
  // Learns from each service's latest scrape; a scrape not later than the last one changes
  // nothing, unless it is more than kClockSetBack behind it (a clock set back): learning goes on
  // from there.
  void observe(const Snapshot& snapshot);

  // Per replica, req/s. The seed until the first sample; 0 for an unknown service, or when even
  // an idle replica misses the SLO at the learned service time.
  double capacity_rps(std::string_view service) const;
  // The learned mean service time, seconds; the seed's (the one whose capacity is the seed's
  // capacity_rps) before any sample; NaN for an unknown service or without either.
  double service_time_seconds(std::string_view service) const;
  // Scrapes learned from; 0 for an unknown service.
  int samples(std::string_view service) const;
  // The latency correction applied: observed p99 / model p99 near the SLO, trusted in
  // proportion to its samples (1 until learned). Above 1 the service's tail is slower than an
  // M/M/c queue with its service time.
  double latency_correction(std::string_view service) const;

  // What was learned per service, for a restarted platform to continue from (docs/state.md).
  // Times are stored relative to `now` and from_json() places them relative to its own `now`, so
  // evidence does not age while nothing observes. from_json() applies to the services init()
  // listed (call it after init()); others in the state are ignored, and the seeds and SLOs are
  // the current specs'. Errors: kInvalidArgument for a malformed state (the model is then
  // unchanged).
  nlohmann::json to_json(Clock::TimePoint now) const;
  Result<void> from_json(const nlohmann::json& state, Clock::TimePoint now);

 private:
  struct Learned {
    ServiceSpec spec;
    int servers = 1;                                   // max_concurrency, 1 when unbounded (0)
    double seed_service_time = NAN;                    // S whose capacity is spec.capacity_rps
    double busy_seconds = 0, requests = 0;             // decayed sums: S = busy_seconds / requests
    double log_correction = 0, correction_weight = 0;  // decayed sums of log(observed / model)
    int samples = 0, correction_samples = 0;
    // Release detection: the log(sample / estimate) of the scrapes in a row above the bar and
    // their decayed sums, and the mean square of log(sample / estimate) over the scrapes that
    // were not part of a release (its noise).
    double run_busy_seconds = 0, run_requests = 0, log_deviation_square = 0;
    std::vector<double> run_deviations;
    std::optional<Clock::TimePoint> sampled_at;  // the last scrape seen
    // The last scrape that found the clock set back: replicas ready at times ahead of a scrape
    // (stamped before it was) count as ready from then.
    std::optional<Clock::TimePoint> set_back_at;
    std::optional<Clock::TimePoint> decayed_at;  // the last scrape learned from
    double capacity_rps = 0;
    // The learned capacity and the (service time, p99 target) it was computed for: inverting
    // the queueing model costs thousands of exp() calls, so it is redone only when either has
    // moved by more than 0.05 %.
    double learned_capacity = NAN, learned_for_service_time = NAN, learned_for_target = NAN;
    int learned_for_servers = 0;
  };
  void learn(Learned& s, const ServiceObservation& o);
  // Counts a scrape's service time toward a release (see shift_scrapes); true when it completed
  // one and the sums now hold the run's scrapes, this one included.
  bool restarted_by_shift(Learned& s, double service_time, double requests, double keep) const;
  void update_capacity(Learned& s) const;
  void take_spec(Learned& s, const ServiceSpec& spec) const;  // and its seed
  double correction(const Learned& s) const;  // the multiplier applied to the model's p99

  CapacityModelOptions options_;
  std::map<std::string, Learned, std::less<>> services_;
};

// One scrape's mean service time per request, seconds, as the model learns it (its requests,
// drops and utilisation bars from `options`; `max_concurrency` workers per replica, the model
// passing 1 for a service not limited): NaN when the window cannot tell (no ready replica, too
// few requests, too many dropped, too near saturation). A `max_concurrency` of 0 or less is a
// replica that works on every request at once: no request waits, and the service time is the
// mean time in the service (which grows with the load where the requests share a CPU). The
// model also leaves out windows whose replicas changed; this does not.
double scrape_service_time(const ServiceObservation& o, int max_concurrency,
                           const CapacityModelOptions& options = {});

// The M/M/c formulas the model rests on (c servers, Poisson arrivals, exponential service of
// mean `service_time_seconds`), for tests and for policies that want a latency at a load.
// Erlang C: the probability that an arrival waits; 1 when offered_load >= servers.
double erlang_c(int servers, double offered_load);
// Mean requests in the system (waiting + in service) at offered load a = λ·S < c.
double mmc_mean_in_system(int servers, double offered_load);
// The p99 of the sojourn time (wait + service), seconds; +inf when λ·S >= c.
double mmc_p99_seconds(int servers, double arrival_rps, double service_time_seconds);
// The arrival rate, req/s, at which mmc_p99_seconds equals `p99_target_seconds`; 0 when even
// an idle queue misses it.
double mmc_capacity_rps(int servers, double service_time_seconds, double p99_target_seconds);

}  // namespace prescale::scaling
