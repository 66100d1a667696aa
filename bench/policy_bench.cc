// How long one decision of the Prescale policy takes for many services, each with 14 days of
// 1-minute history (issue target: 10,000 services in at most 1 s). Every service is an entry
// with its own fitted forecaster (the most work a decision can have: nothing is propagated from
// callers); the forecaster is fitted once on a synthetic daily + weekly series and copied to all
// services, since fitting 10,000 of them would only measure fitting. Refits are amortised over
// periods and not part of decide(); BM_Refit measures one. The world is scraped every 15 s as
// the controller does (observe(), outside the timing): without it the forecasts would end 15
// minutes into the run and most decisions would take the cheaper no-forecast path.
// BM_ObserveBetweenDecisions is the policy's work in the seconds between decisions.
#include <benchmark/benchmark.h>

#include <cmath>
#include <numbers>
#include <random>
#include <string>

#include "forecast/forecaster.h"
#include "scaling/prescale_policy.h"

namespace prescale::scaling {
namespace {

using namespace std::chrono_literals;

forecast::Series two_weeks() {
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0, 0.03);
  forecast::Series s;
  s.step_seconds = 60;
  for (int i = 0; i < 14 * 1440; ++i) {
    const double day = std::sin(2 * std::numbers::pi * (i % 1440) / 1440.0);
    const double weekend = (i / 1440) % 7 >= 5 ? 0.7 : 1.0;
    s.values.push_back(std::max(0.0, 500 * weekend * (1 + 0.6 * day) * (1 + noise(rng))));
  }
  return s;
}

struct Fixture {
  PrescalePolicy policy;
  Snapshot snapshot;
};

Fixture* build(int services) {
  static std::map<int, std::unique_ptr<Fixture>> cache;
  auto& slot = cache[services];
  if (slot) return slot.get();
  slot = std::make_unique<Fixture>();
  const forecast::Series history = two_weeks();
  forecast::Forecaster fitted;
  if (!fitted.fit(history)) std::abort();
  std::vector<ServiceSpec> specs;
  for (int i = 0; i < services; ++i) {
    ServiceSpec spec;
    spec.name = "svc-" + std::to_string(i);
    spec.max_replicas = 1000;
    spec.capacity_rps = 100;
    spec.max_concurrency = 4;
    specs.push_back(spec);
  }
  slot->policy.init(specs);
  const Clock::TimePoint end(std::chrono::hours(24 * 14));
  for (const auto& spec : specs) {
    if (!slot->policy.load_history(spec.name, history, end, fitted)) std::abort();
  }
  slot->snapshot.time = end + 5s;
  for (const auto& spec : specs) {
    ServiceObservation o;
    o.name = spec.name;
    o.desired_replicas = 6;
    o.replicas.resize(6);
    for (auto& r : o.replicas) r.state = ReplicaState::kReady;
    o.window.sampled_at = end;
    o.window.length = 30s;
    o.window.arrival_rps = 480;
    o.window.served_rps = 480;
    o.window.concurrency = 10;
    o.last_second = {end, 10, 480, true};
    slot->snapshot.services.push_back(std::move(o));
  }
  return slot.get();
}

void BM_Decide(benchmark::State& state) {
  Fixture* f = build(static_cast<int>(state.range(0)));
  Clock::TimePoint now = f->snapshot.time;
  Clock::TimePoint scraped = f->snapshot.services.front().window.sampled_at;
  std::string reason;  // the last decision's, to show what planned it
  for (auto _ : state) {
    if (now - scraped >= 15s) {  // a scrape, as the controller's every 15 s
      state.PauseTiming();
      scraped = now;
      f->snapshot.time = now;
      for (auto& o : f->snapshot.services) {
        o.window.sampled_at = now;
        o.last_second.at = now;
      }
      f->policy.observe(f->snapshot);
      state.ResumeTiming();
    }
    Plan plan = f->policy.decide(f->snapshot, now);
    benchmark::DoNotOptimize(plan);
    if (!plan.decisions.empty()) reason = plan.decisions.front().reason;
    now += 5s;
  }
  state.SetLabel(reason.substr(0, reason.find(':', reason.find(':') + 1)));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Decide)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

// What the controller runs every second between decisions: observe() of a snapshot whose scrape
// the policy has already taken (only the last second is new) and the surge check, decide_early().
// No service surges here, so each leaves at the surge test, as most do most seconds (a surging
// one is looked up and compared with what it was asked for as well).
void BM_ObserveBetweenDecisions(benchmark::State& state) {
  Fixture* f = build(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    f->policy.observe(f->snapshot);
    benchmark::DoNotOptimize(f->policy.decide_early(f->snapshot));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ObserveBetweenDecisions)
    ->Arg(1000)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Refit(benchmark::State& state) {
  const forecast::Series history = two_weeks();
  for (auto _ : state) {
    forecast::Forecaster f;
    benchmark::DoNotOptimize(f.fit(history));
  }
}
BENCHMARK(BM_Refit)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace prescale::scaling

BENCHMARK_MAIN();
