// Cost of the metrics hot path (inc/set/observe) and of a scrape (expose, parse).
//
// Single-thread figures are the uncontended cost a request pays per instrument update (target:
// under 25 ns). The ->Threads(2) variants hammer one shared series from two threads: the
// contended worst case, bounded by cache-line transfer between cores. BM_AtomicFetchAdd is the
// peer: a bare relaxed std::atomic fetch_add, the floor any lock-free counter can reach.
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "telemetry/exposition.h"
#include "telemetry/registry.h"
#include "telemetry/text_parser.h"

namespace {

using prescale::telemetry::Counter;
using prescale::telemetry::Gauge;
using prescale::telemetry::Histogram;
using prescale::telemetry::Registry;

// Shared by the threads of a ->Threads(2) run, so they contend on the same series.
Registry& hot_registry() {
  static Registry registry;
  return registry;
}

Counter& hot_counter() {
  static Counter& c =
      hot_registry()
          .counter("bench_requests_total", "Requests.", {"service", "route", "code"})
          .with({"echo", "/echo", "200"});
  return c;
}

Gauge& hot_gauge() {
  static Gauge& g =
      hot_registry().gauge("bench_inflight_requests", "In flight.", {"service"}).with({"echo"});
  return g;
}

Histogram& hot_histogram() {
  static Histogram& h =
      hot_registry()
          .histogram("bench_request_duration_seconds", "Latency.", {"service", "route"})
          .with({"echo", "/echo"});
  return h;
}

void BM_AtomicFetchAdd(benchmark::State& state) {
  static std::atomic<uint64_t> value{0};
  for (auto _ : state) value.fetch_add(1, std::memory_order_relaxed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AtomicFetchAdd);
BENCHMARK(BM_AtomicFetchAdd)->Threads(2);

void BM_CounterInc(benchmark::State& state) {
  Counter& c = hot_counter();
  for (auto _ : state) c.inc();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CounterInc);
BENCHMARK(BM_CounterInc)->Threads(2);

void BM_CounterIncFractional(benchmark::State& state) {
  Counter& c = hot_counter();
  for (auto _ : state) c.inc(0.25);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CounterIncFractional);
BENCHMARK(BM_CounterIncFractional)->Threads(2);

void BM_GaugeSet(benchmark::State& state) {
  Gauge& g = hot_gauge();
  double v = 0;
  for (auto _ : state) {
    g.set(v);
    v += 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GaugeSet);
BENCHMARK(BM_GaugeSet)->Threads(2);

void BM_GaugeIncDec(benchmark::State& state) {
  Gauge& g = hot_gauge();
  for (auto _ : state) {
    g.inc();
    g.dec();
  }
  state.SetItemsProcessed(state.iterations() * 2);
}
BENCHMARK(BM_GaugeIncDec);
BENCHMARK(BM_GaugeIncDec)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
  Histogram& h = hot_histogram();
  // Latencies spread over the default buckets, so the bucket search is not always the same.
  constexpr std::array<double, 8> kLatencies = {0.0007, 0.003, 0.012, 0.04, 0.09, 0.3, 1.7, 12};
  size_t i = 0;
  for (auto _ : state) {
    h.observe(kLatencies[i]);
    i = (i + 1) % kLatencies.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramObserve);
BENCHMARK(BM_HistogramObserve)->Threads(2);

// What a caller pays when it does not cache the series reference.
void BM_FamilyWithLookup(benchmark::State& state) {
  auto& family =
      hot_registry().counter("bench_requests_total", "Requests.", {"service", "route", "code"});
  for (auto _ : state) benchmark::DoNotOptimize(&family.with({"echo", "/echo", "200"}));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FamilyWithLookup);

// A replica's registry: 60 counter, 30 gauge and 10 histogram series (100 series, ~330 lines).
void populate(Registry& r) {
  auto& requests =
      r.counter("prescale_requests_total", "Requests handled.", {"service", "route", "code"});
  auto& inflight =
      r.gauge("prescale_inflight_requests", "Requests in flight.", {"service", "route"});
  auto& latency =
      r.histogram("prescale_request_duration_seconds", "Request latency.", {"service", "route"});
  for (int route = 0; route < 10; ++route) {
    std::string path = "/api/v1/route" + std::to_string(route);
    for (const char* code : {"200", "201", "400", "404", "500", "503"}) {
      requests.with({"recommend", path, code}).inc(1000 + route);
    }
    for (const char* service : {"recommend", "fraud", "forecast"}) {
      inflight.with({service, path}).set(route);
    }
    Histogram& h = latency.with({"recommend", path});
    for (int i = 0; i < 100; ++i) h.observe(0.0001 * (i + 1) * (route + 1));
  }
}

void BM_Expose(benchmark::State& state) {
  Registry r;
  populate(r);
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = prescale::telemetry::expose(r);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_Expose);

void BM_ParseText(benchmark::State& state) {
  Registry r;
  populate(r);
  std::string text = prescale::telemetry::expose(r);
  for (auto _ : state) {
    auto families = prescale::telemetry::parse_text(text);
    benchmark::DoNotOptimize(families);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseText);

}  // namespace

BENCHMARK_MAIN();
