#include "gateway/balancer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>
#include <vector>

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

std::vector<std::shared_ptr<UpstreamHost>> make_hosts(
    int n, UpstreamHostConfig config = {}, std::shared_ptr<OutlierDetector> detector = nullptr) {
  std::vector<std::shared_ptr<UpstreamHost>> hosts;
  for (int i = 0; i < n; ++i) {
    hosts.push_back(std::make_shared<UpstreamHost>("10.0.0." + std::to_string(i + 1) + ":8080",
                                                   Clock::TimePoint{}, config, detector));
  }
  return hosts;
}

// Teaches host `h` a latency by one request that takes `latency`, ending at `now`.
void teach(const std::shared_ptr<UpstreamHost>& h, Clock::TimePoint now, Clock::Duration latency) {
  std::optional<UpstreamRequest> r = UpstreamRequest::start(h, now - latency);
  ASSERT_TRUE(r);
  r->finish(now, UpstreamOutcome::response(200));
}

std::vector<std::string> choose_n(Balancer& b, const HostSet& set, Clock::TimePoint now, int n) {
  std::vector<std::string> picked;
  for (int i = 0; i < n; ++i) {
    std::shared_ptr<UpstreamHost> h = b.choose(set, now);
    picked.push_back(h ? h->address() : "none");
  }
  return picked;
}

TEST(Balancer, RoundRobinVisitsHostsInOrder) {
  ManualClock clock;
  HostSet set(make_hosts(3));
  Balancer b(BalancerConfig{.policy = BalancerPolicy::kRoundRobin});
  EXPECT_THAT(choose_n(b, set, clock.now(), 6),
              ElementsAre("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.1:8080",
                          "10.0.0.2:8080", "10.0.0.3:8080"));
}

TEST(Balancer, RoundRobinSkipsHostsOutOfServiceWithoutDoublingANeighbour) {
  ManualClock clock;
  auto hosts = make_hosts(3);
  hosts[1]->set_draining(true);
  HostSet set(hosts);
  Balancer b(BalancerConfig{.policy = BalancerPolicy::kRoundRobin});
  EXPECT_THAT(choose_n(b, set, clock.now(), 4),
              ElementsAre("10.0.0.1:8080", "10.0.0.3:8080", "10.0.0.1:8080", "10.0.0.3:8080"));
}

TEST(Balancer, SkipsEveryKindOfExclusionAndSaysWhenNoneIsLeft) {
  ManualClock clock;
  auto detector = std::make_shared<OutlierDetector>();
  UpstreamHostConfig config;
  config.breaker = FailureRateBreakerConfig{};
  auto hosts = make_hosts(5, config, detector);
  HostSet set(hosts);
  hosts[0]->set_draining(true);
  hosts[1]->set_healthy(false);
  for (int i = 0; i < 5; ++i) {  // ejected by the outlier detector
    auto r = UpstreamRequest::start(hosts[2], clock.now());
    ASSERT_TRUE(r);
    r->finish(clock.now(), UpstreamOutcome::response(503));
  }
  for (int i = 0; i < 20; ++i) {  // breaker opened (20 failures; ejection is refused: one is out)
    auto r = UpstreamRequest::start(hosts[3], clock.now());
    ASSERT_TRUE(r);
    r->finish(clock.now(), UpstreamOutcome::failure(UpstreamError::kReset));
  }
  EXPECT_TRUE(hosts[2]->outlier().ejected(clock.now()));
  EXPECT_FALSE(hosts[3]->outlier().ejected(clock.now()));
  EXPECT_EQ(hosts[3]->breaker()->state(clock.now()), BreakerState::kOpen);

  for (BalancerPolicy policy :
       {BalancerPolicy::kPeakEwma, BalancerPolicy::kLeastRequest, BalancerPolicy::kRoundRobin}) {
    Balancer b(BalancerConfig{.policy = policy, .seed = 7});
    for (int i = 0; i < 200; ++i) {
      auto h = b.choose(set, clock.now());
      ASSERT_TRUE(h);
      EXPECT_EQ(h, hosts[4]);
    }
  }
  // None in service: panic mode ignores health and ejection (hosts 1 and 2), never draining
  // hosts (0, 4) nor an open breaker (3).
  hosts[4]->set_draining(true);
  for (BalancerPolicy policy :
       {BalancerPolicy::kPeakEwma, BalancerPolicy::kLeastRequest, BalancerPolicy::kRoundRobin}) {
    Balancer b(BalancerConfig{.policy = policy, .seed = 7});
    std::set<std::shared_ptr<UpstreamHost>> chosen;
    for (int i = 0; i < 100; ++i) chosen.insert(b.choose(set, clock.now()));
    chosen.erase(hosts[1]);
    chosen.erase(hosts[2]);
    EXPECT_TRUE(chosen.empty()) << "only hosts 1 and 2 may be chosen in panic";
  }
  hosts[1]->set_draining(true);
  hosts[2]->set_draining(true);
  for (BalancerPolicy policy :
       {BalancerPolicy::kPeakEwma, BalancerPolicy::kLeastRequest, BalancerPolicy::kRoundRobin}) {
    Balancer b(BalancerConfig{.policy = policy, .seed = 7});
    EXPECT_EQ(b.choose(set, clock.now()), nullptr);
    EXPECT_FALSE(b.pick(set, clock.now()));
  }
  Balancer b;
  EXPECT_FALSE(b.pick(HostSet({}), clock.now()));
}

TEST(Balancer, P2cNeverPicksTheWorstAndFavoursTheCheapest) {
  ManualClock clock;
  clock.advance(1s);
  auto hosts = make_hosts(5);
  for (int i = 0; i < 5; ++i) teach(hosts[i], clock.now(), std::chrono::milliseconds(10 * (i + 1)));
  HostSet set(hosts);
  Balancer b(BalancerConfig{.seed = 42, .tolerance = 1.0});  // the cheaper of the two always wins
  std::map<std::string, int> count;
  constexpr int kPicks = 20000;
  for (int i = 0; i < kPicks; ++i) ++count[b.choose(set, clock.now())->address()];
  // With two distinct candidates the most expensive host never wins. Host k (0-based, by cost)
  // wins when it is drawn with a costlier one: P = (4 − k) / 10 for five hosts.
  EXPECT_EQ(count["10.0.0.5:8080"], 0);
  const std::vector<double> expected = {0.4, 0.3, 0.2, 0.1};
  for (int k = 0; k < 4; ++k) {
    const double share = count[hosts[k]->address()] / static_cast<double>(kPicks);
    EXPECT_NEAR(share, expected[k], 0.015) << hosts[k]->address();
  }
}

TEST(Balancer, PeakEwmaCostCountsOutstandingRequests) {
  ManualClock clock;
  clock.advance(1s);
  auto hosts = make_hosts(2);
  teach(hosts[0], clock.now(), 10ms);
  teach(hosts[1], clock.now(), 30ms);
  HostSet set(hosts);
  Balancer b(BalancerConfig{.seed = 1});
  EXPECT_EQ(b.choose(set, clock.now()), hosts[0]);  // 10 ms × 1 < 30 ms × 1
  std::vector<UpstreamRequest> in_flight;
  for (int i = 0; i < 3; ++i) in_flight.push_back(*UpstreamRequest::start(hosts[0], clock.now()));
  EXPECT_DOUBLE_EQ(hosts[0]->cost(clock.now()), 10e6 * 4);
  EXPECT_EQ(b.choose(set, clock.now()), hosts[1]);  // 10 ms × 4 > 30 ms × 1
}

TEST(Balancer, LeastRequestComparesOutstandingOnly) {
  ManualClock clock;
  auto hosts = make_hosts(3);
  teach(hosts[0], clock.now() + 1s, 500ms);  // latency does not matter here
  HostSet set(hosts);
  std::vector<UpstreamRequest> in_flight;
  for (int i = 0; i < 5; ++i) in_flight.push_back(*UpstreamRequest::start(hosts[2], clock.now()));
  in_flight.push_back(*UpstreamRequest::start(hosts[1], clock.now()));
  Balancer b(BalancerConfig{.policy = BalancerPolicy::kLeastRequest, .seed = 3, .tolerance = 1.0});
  std::map<std::shared_ptr<UpstreamHost>, int> count;
  for (int i = 0; i < 3000; ++i) ++count[b.choose(set, clock.now())];
  EXPECT_EQ(count[hosts[2]], 0);            // the busiest never wins a pair
  EXPECT_NEAR(count[hosts[0]], 2000, 150);  // idle: wins both its pairs
  EXPECT_NEAR(count[hosts[1]], 1000, 150);
}

TEST(Balancer, P2cTakesEqualHostsInTurn) {
  // Equal hosts (within the tolerance) are taken in round-robin order, whatever the draws: each
  // gets the smoothest arrivals it can.
  ManualClock clock;
  clock.advance(1s);
  auto hosts = make_hosts(3);
  teach(hosts[0], clock.now(), 10ms);
  teach(hosts[1], clock.now(), 12ms);
  teach(hosts[2], clock.now(), 15ms);  // 1.5× the cheapest: still within the default 2×
  HostSet set(hosts);
  for (BalancerPolicy policy : {BalancerPolicy::kPeakEwma, BalancerPolicy::kLeastRequest}) {
    Balancer b(BalancerConfig{.policy = policy, .seed = 11});
    EXPECT_THAT(choose_n(b, set, clock.now(), 6),
                ElementsAre("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.1:8080",
                            "10.0.0.2:8080", "10.0.0.3:8080"));
  }
}

TEST(Balancer, P2cSteersAroundAHostBeyondTheTolerance) {
  ManualClock clock;
  clock.advance(1s);
  auto hosts = make_hosts(3);
  teach(hosts[0], clock.now(), 10ms);
  teach(hosts[1], clock.now(), 10ms);
  teach(hosts[2], clock.now(), 25ms);  // 2.5× the others
  HostSet set(hosts);
  Balancer b(BalancerConfig{.seed = 13});
  std::map<std::shared_ptr<UpstreamHost>, int> count;
  for (int i = 0; i < 3000; ++i) ++count[b.choose(set, clock.now())];
  // Host 3 never wins: it loses its own turns, and as the drawn one it is never cheaper.
  EXPECT_EQ(count[hosts[2]], 0);
  EXPECT_NEAR(count[hosts[0]], 1500, 150);
  EXPECT_NEAR(count[hosts[1]], 1500, 150);

  // Requests outstanding raise the cost the same way. Host 1 with 3 in flight costs 40 ms
  // (10 ms × 4): more than 2× host 2 (10 ms), so its turn goes to host 2 when drawn against it;
  // less than 2× host 3 (25 ms), so it keeps the turn when host 3 is drawn. Host 3 keeps its
  // turn against host 1 and loses it to host 2.
  std::vector<UpstreamRequest> in_flight;
  for (int i = 0; i < 3; ++i) in_flight.push_back(*UpstreamRequest::start(hosts[0], clock.now()));
  Balancer c(BalancerConfig{.seed = 13});
  count.clear();
  for (int i = 0; i < 3000; ++i) ++count[c.choose(set, clock.now())];
  EXPECT_NEAR(count[hosts[0]], 500, 100);
  EXPECT_NEAR(count[hosts[1]], 2000, 100);
  EXPECT_NEAR(count[hosts[2]], 500, 100);
}

TEST(Balancer, SameSeedSameChoices) {
  ManualClock clock;
  HostSet set(make_hosts(10));
  Balancer a(BalancerConfig{.policy = BalancerPolicy::kLeastRequest, .seed = 99});
  Balancer b(BalancerConfig{.policy = BalancerPolicy::kLeastRequest, .seed = 99});
  EXPECT_EQ(choose_n(a, set, clock.now(), 50), choose_n(b, set, clock.now(), 50));
}

TEST(Balancer, P2cWithMostHostsOutOfServiceStillFindsTheRest) {
  ManualClock clock;
  auto hosts = make_hosts(100);
  for (int i = 0; i < 98; ++i) hosts[i]->set_healthy(false);
  HostSet set(hosts);
  Balancer b(BalancerConfig{.seed = 5});
  std::map<std::shared_ptr<UpstreamHost>, int> count;
  for (int i = 0; i < 1000; ++i) ++count[b.choose(set, clock.now())];
  // Only the two in service; equal cost, so the first drawn of the pair: about half each.
  ASSERT_EQ(count.size(), 2u);
  EXPECT_NEAR(count[hosts[98]], 500, 80);
  EXPECT_NEAR(count[hosts[99]], 500, 80);
}

TEST(UpstreamRequest, CountsOutstandingAndTeachesLatency) {
  ManualClock clock;
  auto hosts = make_hosts(1);
  HostSet set(hosts);
  Balancer b;
  std::optional<UpstreamRequest> r = b.pick(set, clock.now());
  ASSERT_TRUE(r);
  EXPECT_EQ(&r->host(), hosts[0].get());
  EXPECT_EQ(hosts[0]->outstanding(), 1u);
  clock.advance(7ms);
  r->finish(clock.now(), UpstreamOutcome::response(200));
  r->finish(clock.now(), UpstreamOutcome::response(200));  // idempotent
  EXPECT_EQ(hosts[0]->outstanding(), 0u);
  EXPECT_EQ(hosts[0]->latency().estimate(clock.now()), 7ms);
}

TEST(UpstreamRequest, ConnectFailureAndCancelTeachNoLatency) {
  ManualClock clock;
  auto hosts = make_hosts(1);
  {
    auto r = UpstreamRequest::start(hosts[0], clock.now());
    clock.advance(1ms);
    r->finish(clock.now(), UpstreamOutcome::failure(UpstreamError::kConnectFailure));
  }
  {
    auto r = UpstreamRequest::start(hosts[0], clock.now());
    EXPECT_EQ(hosts[0]->outstanding(), 1u);
  }  // cancelled by destruction
  EXPECT_EQ(hosts[0]->outstanding(), 0u);
  EXPECT_FALSE(hosts[0]->latency().has_sample());
  // A timeout did take that long: it is a (peak) sample.
  auto r = UpstreamRequest::start(hosts[0], clock.now());
  clock.advance(2s);
  r->finish(clock.now(), UpstreamOutcome::failure(UpstreamError::kTimeout));
  EXPECT_EQ(hosts[0]->latency().estimate(clock.now()), 2s);
}

TEST(UpstreamRequest, MovedRequestFinishesOnce) {
  ManualClock clock;
  auto hosts = make_hosts(1);
  auto r = UpstreamRequest::start(hosts[0], clock.now());
  UpstreamRequest moved = std::move(*r);
  r.reset();
  EXPECT_EQ(hosts[0]->outstanding(), 1u);
  UpstreamRequest other = *UpstreamRequest::start(hosts[0], clock.now());
  EXPECT_EQ(hosts[0]->outstanding(), 2u);
  other = std::move(moved);  // cancels the one `other` held
  EXPECT_EQ(hosts[0]->outstanding(), 1u);
  other.finish(clock.now(), UpstreamOutcome::response(200));
  EXPECT_EQ(hosts[0]->outstanding(), 0u);
}

TEST(UpstreamRequest, HalfOpenBreakerAdmitsItsTrialThenTheHostIsSkipped) {
  ManualClock clock;
  UpstreamHostConfig config;
  config.breaker = FailureRateBreakerConfig{};
  auto hosts = make_hosts(1, config);
  HostSet set(hosts);
  Balancer b;
  for (int i = 0; i < 20; ++i) {
    b.pick(set, clock.now())->finish(clock.now(), UpstreamOutcome::response(500));
  }
  EXPECT_FALSE(b.pick(set, clock.now()));  // open
  clock.advance(5s);
  std::optional<UpstreamRequest> trial = b.pick(set, clock.now());
  ASSERT_TRUE(trial);
  EXPECT_FALSE(b.pick(set, clock.now()));  // the trial slot is taken
  trial->finish(clock.now(), UpstreamOutcome::response(200));
  EXPECT_EQ(hosts[0]->breaker()->state(clock.now()), BreakerState::kClosed);
  EXPECT_TRUE(b.pick(set, clock.now()));
}

TEST(UpstreamRequest, EjectedHostComesBackAfterItsTime) {
  ManualClock clock;
  auto detector = std::make_shared<OutlierDetector>();
  auto hosts = make_hosts(2, {}, detector);
  HostSet set(hosts);
  detector->evaluate(set.outlier_states(), clock.now());
  for (int i = 0; i < 5; ++i) {
    UpstreamRequest::start(hosts[0], clock.now())
        ->finish(clock.now(), UpstreamOutcome::failure(UpstreamError::kConnectFailure));
  }
  Balancer b(BalancerConfig{.policy = BalancerPolicy::kRoundRobin});
  EXPECT_THAT(choose_n(b, set, clock.now(), 2), ElementsAre("10.0.0.2:8080", "10.0.0.2:8080"));
  clock.advance(30s);
  EXPECT_EQ(choose_n(b, set, clock.now(), 2).size(), 2u);
  EXPECT_TRUE(hosts[0]->in_service(clock.now()));
}

// Many threads pick, start and finish against one snapshot over 40 simulated seconds: every
// request is counted once and released once, so nothing stays outstanding; every host is tried
// (the 30 ms prior decays below the others' cost) and learns the 5 ms latency.
TEST(Balancer, ConcurrentPicksConserveOutstanding) {
  auto hosts = make_hosts(4);
  HostSet set(hosts);
  Balancer b(BalancerConfig{.seed = 11});
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::vector<UpstreamRequest> open;
      for (int i = 0; i < 5000; ++i) {
        const Clock::TimePoint now = Clock::TimePoint{} + std::chrono::milliseconds(i * 8 + t);
        auto r = b.pick(set, now);
        ASSERT_TRUE(r);
        open.push_back(std::move(*r));
        if (open.size() == 4) {
          for (auto& req : open) {
            req.finish(req.started_at() + 5ms, UpstreamOutcome::response(200));
            finished.fetch_add(1);
          }
          open.clear();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(finished.load(), 8 * 5000);
  for (const auto& h : hosts) {
    EXPECT_EQ(h->outstanding(), 0u);
    EXPECT_TRUE(h->latency().has_sample());
    EXPECT_LE(h->latency().estimate_ns(Clock::TimePoint{} + 41s), 5e6);
  }
}

}  // namespace
}  // namespace prescale::gateway
