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
#include <functional>
#include <numbers>
#include <random>
#include <string>

#include "control/controller.h"
#include "core/clock.h"
#include "forecast/forecaster.h"
#include "scaling/baseline_policies.h"
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

std::vector<ServiceSpec> specs_of(int services) {
  std::vector<ServiceSpec> specs;
  for (int i = 0; i < services; ++i) {
    ServiceSpec spec;
    spec.name = "svc-" + std::to_string(i);
    spec.max_replicas = 1000;
    spec.capacity_rps = 100;
    spec.max_concurrency = 4;
    specs.push_back(spec);
  }
  return specs;
}

constexpr Clock::TimePoint kHistoryEnd{std::chrono::hours(24 * 14)};

// Gives each service of an initialised policy the same 14 days, ending at kHistoryEnd.
void load_two_weeks(PrescalePolicy& policy, const std::vector<ServiceSpec>& specs) {
  const forecast::Series history = two_weeks();
  forecast::Forecaster fitted;
  if (!fitted.fit(history)) std::abort();
  for (const auto& spec : specs) {
    if (!policy.load_history(spec.name, history, kHistoryEnd, fitted)) std::abort();
  }
}

// Every service steady at 480 req/s on 6 ready replicas, last scraped at kHistoryEnd.
Snapshot snapshot_of(const std::vector<ServiceSpec>& specs) {
  Snapshot snapshot;
  snapshot.time = kHistoryEnd + 5s;
  for (const auto& spec : specs) {
    ServiceObservation o;
    o.name = spec.name;
    o.desired_replicas = 6;
    o.replicas.resize(6);
    for (auto& r : o.replicas) r.state = ReplicaState::kReady;
    o.window.sampled_at = kHistoryEnd;
    o.window.length = 30s;
    o.window.arrival_rps = 480;
    o.window.served_rps = 480;
    o.window.concurrency = 10;
    o.last_second = {kHistoryEnd, 10, 480, true};
    snapshot.services.push_back(std::move(o));
  }
  return snapshot;
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
  const std::vector<ServiceSpec> specs = specs_of(services);
  slot->policy.init(specs);
  load_two_weeks(slot->policy, specs);
  slot->snapshot = snapshot_of(specs);
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

// One tick of the controller that decides (observe, decide, apply the plan) for every service,
// in a world that answers at once: what the controller adds to decide() for many services.
class BenchWorld : public control::World {
 public:
  explicit BenchWorld(Snapshot& snapshot) : snapshot_(snapshot) {
    for (size_t i = 0; i < snapshot_.services.size(); ++i) index_[snapshot_.services[i].name] = i;
  }
  const Snapshot& observe(Clock::TimePoint now) override {
    snapshot_.time = now;
    for (auto& o : snapshot_.services) {
      o.window.sampled_at = now;
      o.last_second.at = now;
    }
    return snapshot_;
  }
  Result<void> scale(std::string_view service, int replicas) override {
    auto it = index_.find(service);
    if (it == index_.end()) return make_error(ErrorCode::kNotFound, std::string(service));
    snapshot_.services[it->second].desired_replicas = replicas;
    return {};
  }
  Result<void> restart(std::string_view) override { return {}; }

 private:
  Snapshot& snapshot_;
  std::map<std::string, size_t, std::less<>> index_;
};

// Ticks a controller of `policy` over `state.range(0)` services, each tick a decision (one
// period apart; observations are due then as well). `load` gives the initialised policy its
// history.
void run_ticks(benchmark::State& state, Policy& policy,
               const std::function<void(const std::vector<ServiceSpec>&)>& load) {
  const std::vector<ServiceSpec> specs = specs_of(static_cast<int>(state.range(0)));
  Snapshot snapshot = snapshot_of(specs);
  BenchWorld world(snapshot);
  ManualClock clock;
  clock.set(snapshot.time);
  control::Controller controller(world, policy, specs, clock);  // initialises the policy
  load(specs);
  size_t decided = 0;
  for (auto _ : state) {
    const std::optional<Plan> plan = controller.tick();
    if (plan) decided += plan->decisions.size();
    benchmark::DoNotOptimize(plan);
    if (!plan) state.SkipWithError("the tick made no decision");
    state.PauseTiming();
    clock.advance(policy.period());
    state.ResumeTiming();
  }
  state.counters["decisions"] =
      benchmark::Counter(static_cast<double>(decided), benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_ControllerTick(benchmark::State& state) {
  PrescalePolicy policy;
  run_ticks(state, policy,
            [&](const std::vector<ServiceSpec>& specs) { load_two_weeks(policy, specs); });
}
BENCHMARK(BM_ControllerTick)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same tick with the HPA port, which decides every service at every sync (its count kept or
// changed), so the controller applies 1 decision a service: what applying costs.
void BM_ControllerTickHpa(benchmark::State& state) {
  HpaPolicy policy;
  run_ticks(state, policy, [](const std::vector<ServiceSpec>&) {});
}
BENCHMARK(BM_ControllerTickHpa)
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
