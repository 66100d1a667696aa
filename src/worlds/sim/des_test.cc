#include "worlds/sim/des.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "scaling/callgraph.h"
#include "worlds/sim/queueing.h"
#include "worlds/sim/sim_results.h"
#include "worlds/sim/sim_world.h"

namespace prescale::sim {
namespace {

using std::chrono::seconds;

Clock::TimePoint at(double s) {
  return Clock::TimePoint{} +
         std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(s));
}

forecast::Trace constant(double rps, int seconds_long) {
  forecast::Trace t;
  t.step_seconds = 60;
  t.counts.assign(static_cast<size_t>(seconds_long / 60), rps * 60);
  return t;
}

SimConfig single(SimServiceConfig s = {}) {
  SimConfig c;
  c.graph = *scaling::single_service_graph("app");
  s.name = "app";
  c.services.push_back(s);
  return c;
}

ReplicaSchedule fixed(size_t services, int ready) {
  ReplicaSchedule s;
  s.ready.assign(services, {ReadyChange{0, ready}});
  return s;
}

TEST(SimDes, RefusesReleasesItDoesNotModel) {
  SimServiceConfig s;
  s.releases = {{std::chrono::minutes(30), 0.03}};
  auto rec = run_des(single(s), constant(150, 3600), fixed(1, 1));
  ASSERT_FALSE(rec);
  EXPECT_NE(rec.error().message.find("has releases"), std::string::npos) << rec.error().message;
}

TEST(SimDes, SteadyQueueMatchesTheMMcDistribution) {
  SimServiceConfig s;  // 4 workers, 20 ms: 200 req/s per replica
  const SimConfig c = single(s);
  auto rec = run_des(c, constant(150, 3600), fixed(1, 1));
  ASSERT_TRUE(rec) << rec.error().to_string();
  const SimResults r = compute_results(*rec);
  const MmcQueue q = mmc_queue(4, 150, 50);
  const double expected_within = 1 - tail(q.sojourn, 0.2);
  EXPECT_NEAR(r.services[0].slo_attainment, expected_within, 0.003);
  EXPECT_NEAR(r.services[0].arrived, 150 * 3600, 5 * std::sqrt(150 * 3600.0));
  double p99 = 0;
  for (const auto& x : rec->records(0)) p99 += x.latency_p99_seconds / 60;
  EXPECT_NEAR(p99, quantile(q.sojourn, 0.99), 0.03 * p99);
  // Busy workers: λ·S = 3 of 4.
  EXPECT_NEAR(r.services[0].mean_cpu_utilization, 0.75, 0.01);
}

TEST(SimDes, ConservesRequestsAndDropsAfterTheTimeout) {
  SimServiceConfig s;
  s.request_timeout_seconds = 5;
  const SimConfig c = single(s);
  ReplicaSchedule sched;
  sched.ready = {{ReadyChange{0, 1}, ReadyChange{60, 0}, ReadyChange{120, 1}}};
  SimConfig every_10s = c;
  every_10s.record_interval = seconds(10);
  auto rec = run_des(every_10s, constant(100, 240), sched);
  ASSERT_TRUE(rec);
  double dropped = 0;
  for (const auto& x : rec->records(0)) {
    EXPECT_NEAR(x.served + x.dropped + x.queued_end, x.arrived + x.queued_start, 1e-9);
    dropped += x.dropped;
  }
  // No servers for 60 s: about 55 s of arrivals time out (the last 5 s are served at 120 s).
  EXPECT_NEAR(dropped, 100 * 55, 400);
  EXPECT_EQ(rec->records(0).size(), 24u);
}

// A trace step that is not a binary fraction: (i + 1) · step / step can round to just below
// i + 1, which used to send the Poisson arrivals back into the step they had finished, forever.
TEST(SimDes, ATraceStepThatIsNotABinaryFractionStillEnds) {
  forecast::Trace t;
  t.step_seconds = 0.7;  // 3 × 0.7 / 0.7 < 3 in doubles
  t.counts.assign(100, 7.0);  // 10 req/s
  auto rec = run_des(single(), t, fixed(1, 1));
  ASSERT_TRUE(rec) << rec.error().to_string();
  const SimResults r = compute_results(*rec);
  EXPECT_NEAR(r.services[0].arrived, 700, 5 * std::sqrt(700.0));
}

TEST(SimDes, FanoutCallsHaveTheRightMean) {
  SimConfig c;
  c.graph = *scaling::make_callgraph({{"a", "b", 2.7, 0}});
  c.service_defaults.initial_replicas = 4;
  for (FanoutCalls mode : {FanoutCalls::kStochasticRounding, FanoutCalls::kPoisson}) {
    DesOptions o;
    o.calls = mode;
    auto rec = run_des(c, constant(100, 600), fixed(2, 4), o);
    ASSERT_TRUE(rec);
    const SimResults r = compute_results(*rec);
    EXPECT_NEAR(r.services[1].arrived / r.services[0].served, 2.7, 0.03);
  }
}

// --- Time-stepped model vs discrete-event simulation on a real hour --------------------------

struct Comparison {
  std::string service;
  double requests = 0;
  double stepped_attainment = 0, des_attainment = 0;  // share of requests within the SLO
  double stepped_minutes_ok = 0, des_minutes_ok = 0;  // share of minutes whose p99 meets it
  double stepped_p99 = 0, des_p99 = 0;                // mean over minutes of the per-minute p99
  double median_minute_error = 0;  // median over minutes of |p99 step / p99 des − 1|
  double p90_minute_error = 0;
  int minutes = 0;
};

// Drives the time-stepped world with a simple reactive rule (every 15 s, enough replicas for
// the scraped arrival rate at `target` × the SLO capacity; 60 s startup), then replays its ready
// replicas in the discrete-event mode.
std::vector<Comparison> compare(const SimConfig& config, const forecast::Trace& trace,
                                double target, double& stepped_seconds, double& des_seconds) {
  // Start with the replicas the first minute needs, as a running deployment would have.
  const auto specs = *service_specs(config);
  SimConfig sized = config;
  const std::vector<double> load = config.graph.service_load(trace.rate_rps(0));
  for (size_t s = 0; s < specs.size(); ++s) {
    SimServiceConfig svc = config.service_defaults;
    svc.name = specs[s].name;
    svc.initial_replicas =
        std::clamp(static_cast<int>(std::ceil(load[s] / (target * specs[s].capacity_rps))), 1,
                   svc.max_replicas);
    sized.services.push_back(svc);
  }
  auto begin = std::chrono::steady_clock::now();
  auto world = std::move(*SimWorld::create(sized, trace));
  for (int t = 15; t <= 3600; t += 15) {
    const scaling::Snapshot snap = world->observe(at(t));
    for (size_t s = 0; s < specs.size(); ++s) {
      const double rps = snap.services[s].window.arrival_rps;
      const int n = std::clamp(static_cast<int>(std::ceil(rps / (target * specs[s].capacity_rps))),
                               1, specs[s].max_replicas);
      (void)world->scale(specs[s].name, n);
    }
  }
  world->flush();
  stepped_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  begin = std::chrono::steady_clock::now();
  auto des = run_des(sized, trace, replica_schedule(world->recorder()));
  des_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  EXPECT_TRUE(des);
  const SimRecorder& st = world->recorder();
  const SimResults rs = compute_results(st), rd = compute_results(*des);
  std::vector<Comparison> out;
  for (size_t s = 0; s < specs.size(); ++s) {
    Comparison c;
    c.service = specs[s].name;
    c.requests = rd.services[s].arrived;
    c.stepped_attainment = rs.services[s].slo_attainment;
    c.des_attainment = rd.services[s].slo_attainment;
    c.stepped_minutes_ok = rs.services[s].minute_slo_share;
    c.des_minutes_ok = rd.services[s].minute_slo_share;
    const auto a = st.records(s), b = des->records(s);
    std::vector<double> errors;
    for (size_t m = 0; m < std::min(a.size(), b.size()); ++m) {
      if (b[m].served < 500 || std::isnan(a[m].latency_p99_seconds)) continue;
      if (std::getenv("PRESCALE_DES_MINUTES") != nullptr) {
        std::printf(
            "  minute %2zu %-22s arrived %6.0f ready %4.1f p99 step %8.1f ms des %8.1f ms\n", m,
            c.service.c_str(), b[m].arrived, a[m].ready_replica_seconds / 60,
            1000 * a[m].latency_p99_seconds, 1000 * b[m].latency_p99_seconds);
      }
      c.stepped_p99 += a[m].latency_p99_seconds;
      c.des_p99 += b[m].latency_p99_seconds;
      errors.push_back(std::abs(a[m].latency_p99_seconds / b[m].latency_p99_seconds - 1));
    }
    c.minutes = static_cast<int>(errors.size());
    if (c.minutes > 0) {
      c.stepped_p99 /= c.minutes;
      c.des_p99 /= c.minutes;
      std::sort(errors.begin(), errors.end());
      c.median_minute_error = errors[errors.size() / 2];
      c.p90_minute_error = errors[errors.size() * 9 / 10];
    }
    out.push_back(c);
  }
  return out;
}

std::string shared_data() {
  const char* root = std::getenv("PRESCALE_SOURCE_DIR");
  return std::string(root ? root : ".") + "/../shared/data";
}

// The busiest hour of NASA July (07-13 09:00-10:00 EDT, 14,926 requests, 38 to 405 a minute),
// scaled so the month's peak minute is 300 req/s.
forecast::Trace nasa_hour() {
  auto trace = forecast::read_trace(shared_data() + "/traces/nasa-http-1995-07.csv");
  EXPECT_TRUE(trace);
  forecast::Trace t = forecast::rescale_to_peak(*trace, 300);
  const size_t begin = 17820;
  t.counts = std::vector<double>(t.counts.begin() + begin, t.counts.begin() + begin + 60);
  t.start_unix_seconds += begin * 60.0;
  return t;
}

void check_agreement(const std::vector<Comparison>& rows, const std::string& label,
                     double stepped_seconds, double des_seconds, bool check_p99 = true) {
  std::printf("[sim vs des] %s: time-stepped %.3f s, discrete-event %.2f s\n", label.c_str(),
              stepped_seconds, des_seconds);
  std::printf("  %-22s %8s | %-22s | %-15s | %-24s | %s\n", "service", "requests",
              "SLO attainment st/des", "minutes ok st/des", "mean minute p99 st/des",
              "minute p99 |err| median/p90");
  for (const auto& r : rows) {
    const double att_rel = r.stepped_attainment / r.des_attainment - 1;
    const double p99_rel = r.minutes > 0 ? r.stepped_p99 / r.des_p99 - 1 : 0;
    std::printf("  %-22s %8.0f | %.4f %.4f %+6.2f%% | %5.3f %5.3f | ", r.service.c_str(),
                r.requests, r.stepped_attainment, r.des_attainment, 100 * att_rel,
                r.stepped_minutes_ok, r.des_minutes_ok);
    if (r.minutes == 0) {
      std::printf("(< 500 requests a minute)\n");
    } else {
      std::printf("%7.1f %7.1f ms %+6.2f%% | %5.1f%% %5.1f%%\n", 1000 * r.stepped_p99,
                  1000 * r.des_p99, 100 * p99_rel, 100 * r.median_minute_error,
                  100 * r.p90_minute_error);
    }
    if (r.requests < 30000) continue;  // too few requests (< 500 a minute) for a minute's p99
    EXPECT_LE(std::abs(att_rel), 0.10) << label << " " << r.service;
    if (!check_p99) continue;
    EXPECT_GE(r.minutes, 30) << label << " " << r.service;
    EXPECT_LE(std::abs(p99_rel), 0.10) << label << " " << r.service;
    EXPECT_LE(r.median_minute_error, 0.10) << label << " " << r.service;
  }
}

TEST(SimDesAgreement, NasaHourSingleService) {
  if (!std::filesystem::exists(shared_data() + "/traces/nasa-http-1995-07.csv")) {
    GTEST_SKIP() << "skipped: ../shared/data missing";
  }
  SimConfig c;
  c.graph = *scaling::single_service_graph("app");
  for (double target : {0.8, 1.0}) {
    double stepped = 0, des = 0;
    const auto rows = compare(c, nasa_hour(), target, stepped, des);
    check_agreement(rows,
                    "NASA 1995-07-13 09:00, single, scaled at " +
                        std::to_string(static_cast<int>(100 * target)) + "% of capacity",
                    stepped, des);
  }
}

// Replicas sized for 130 % of their capacity at the SLO: minutes of overload, where a queue limit
// of 100 ms refuses the excess and keeps what it admits near the SLO.
TEST(SimDesAgreement, NasaHourOverloadedWithAQueueLimit) {
  if (!std::filesystem::exists(shared_data() + "/traces/nasa-http-1995-07.csv")) {
    GTEST_SKIP() << "skipped: ../shared/data missing";
  }
  SimConfig c;
  c.graph = *scaling::single_service_graph("app");
  c.service_defaults.queue_limit_seconds = 0.1;
  double stepped = 0, des = 0;
  const auto rows = compare(c, nasa_hour(), 1.3, stepped, des);
  check_agreement(rows, "NASA 1995-07-13 09:00, single, at 130% of capacity, queue limit 100 ms",
                  stepped, des);
}

// The same behind a queue limit through the call graph: refused requests call nothing
// downstream, in both models.
TEST(SimDesAgreement, NasaHourOnlineBoutiqueWithAQueueLimit) {
  if (!std::filesystem::exists(shared_data() + "/traces/nasa-http-1995-07.csv")) {
    GTEST_SKIP() << "skipped: ../shared/data missing";
  }
  SimConfig c;
  c.graph = *scaling::builtin_topology("online-boutique", shared_data());
  c.service_defaults.queue_limit_seconds = 0.1;
  double stepped = 0, des = 0;
  const auto rows = compare(c, nasa_hour(), 1.3, stepped, des);
  check_agreement(rows,
                  "NASA 1995-07-13 09:00, online-boutique, at 130% of capacity, queue limit 100 ms",
                  stepped, des);
}

TEST(SimDesAgreement, NasaHourOnlineBoutique) {
  if (!std::filesystem::exists(shared_data() + "/traces/nasa-http-1995-07.csv")) {
    GTEST_SKIP() << "skipped: ../shared/data missing";
  }
  SimConfig c;
  c.graph = *scaling::builtin_topology("online-boutique", shared_data());
  for (double target : {0.8, 1.0}) {
    double stepped = 0, des = 0;
    const auto rows = compare(c, nasa_hour(), target, stepped, des);
    check_agreement(rows,
                    "NASA 1995-07-13 09:00, online-boutique, scaled at " +
                        std::to_string(static_cast<int>(100 * target)) + "% of capacity",
                    stepped, des);
  }
}

forecast::Trace azure_conversation() {
  auto trace = forecast::read_trace(shared_data() + "/traces/azure-llm-2023-conv-requests.csv");
  EXPECT_TRUE(trace);
  return trace ? std::move(*trace) : forecast::Trace{};
}

// Per-request arrivals and costs (Azure LLM conversation trace, 5.5 req/s, costs from token
// counts, CV 0.61), rescaled x15.8 (its busiest second, 19 requests, to 300 req/s): 306k
// requests, superposed copies of the trace a few seconds apart (forecast::rescale_to_peak).
TEST(SimDesAgreement, AzureConversationPerRequestCosts) {
  if (!std::filesystem::exists(shared_data() + "/traces/azure-llm-2023-conv-requests.csv")) {
    GTEST_SKIP() << "skipped: ../shared/data missing";
  }
  const forecast::Trace trace = forecast::rescale_to_peak(azure_conversation(), 300);
  SimConfig c;
  c.graph = *scaling::single_service_graph("llm");
  for (double target : {0.3, 1.0}) {
    double stepped = 0, des = 0;
    const auto rows = compare(c, trace, target, stepped, des);
    check_agreement(rows,
                    "Azure conv (per-request arrivals and costs) x15.8, scaled at " +
                        std::to_string(static_cast<int>(100 * target)) + "% of capacity",
                    stepped, des);
  }
  // Behind a queue limit: the refusals and the cut waits per cost class.
  c.service_defaults.queue_limit_seconds = 0.1;
  double stepped = 0, des = 0;
  const auto rows = compare(c, trace, 1.0, stepped, des);
  check_agreement(rows, "Azure conv x15.8 at 100% of capacity, queue limit 100 ms", stepped, des);
}

// The same trace twice as busy (x31.6), where the reactive rule at 100 % runs one or two replicas
// near 60 % utilisation with large second-to-second swings. Reported, not held to 10 % on p99:
// the time-stepped model is pessimistic here, because it takes each second's request count as
// that second's rate (the Poisson noise of the counts comes on top of the Poisson arrivals its
// queueing model already assumes) and evaluates each second's queue at that rate though the
// rate changes faster than the queue relaxes (docs/simulator.md, "Per-request traces"). The DES
// must not be the slower one, though: clustered arrivals, as in-place duplication made them
// (DES p99 64 % above the stepped one at half this load), would show there first.
TEST(SimDesAgreement, AzureConversationNearCapacity) {
  if (!std::filesystem::exists(shared_data() + "/traces/azure-llm-2023-conv-requests.csv")) {
    GTEST_SKIP() << "skipped: ../shared/data missing";
  }
  const forecast::Trace trace = forecast::rescale_to_peak(azure_conversation(), 600);
  SimConfig c;
  c.graph = *scaling::single_service_graph("llm");
  for (double target : {1.0, 1.4}) {
    double stepped = 0, des = 0;
    const auto rows = compare(c, trace, target, stepped, des);
    check_agreement(rows,
                    "Azure conv (per-request arrivals and costs) x31.6, scaled at " +
                        std::to_string(static_cast<int>(100 * target)) + "% of capacity",
                    stepped, des, /*check_p99=*/false);
    for (const auto& r : rows) EXPECT_LE(r.des_p99, 1.1 * r.stepped_p99) << r.service;
  }
  // Behind a queue limit the waits are cut at it, in both models.
  c.service_defaults.queue_limit_seconds = 0.1;
  double stepped = 0, des = 0;
  const auto rows = compare(c, trace, 1.4, stepped, des);
  check_agreement(rows, "Azure conv x31.6 at 140% of capacity, queue limit 100 ms", stepped, des,
                  /*check_p99=*/false);
}

}  // namespace
}  // namespace prescale::sim
