// Cluster::select(): retries avoid the failed host, and admission control (requests in flight
// at most max_requests_per_replica × the hosts in service). Everything on a ManualClock; no
// sockets (a pick is only accounting until the proxy connects).
#include "gateway/cluster.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gateway/endpoint_table.h"

namespace prescale::gateway {
namespace {

using std::chrono::milliseconds;

AttemptReport connect_failure(const UpstreamPick& pick, const ManualClock& clock) {
  return AttemptReport{.pick = pick,
                       .attempt = 0,
                       .outcome = UpstreamOutcome::failure(UpstreamError::kConnectFailure),
                       .cancelled = false,
                       .request_sent = false,
                       .latency = milliseconds(0),
                       .finished_at = clock.now(),
                       .detail = "connect: refused"};
}

// A replica refusing connections answers fastest of all, so until it is ejected the P2C
// balancer keeps offering it — a retry must still go to another host in service.
TEST(ClusterTest, ARetryGoesElsewhereEvenWhenTheBalancerKeepsOfferingTheFailedHost) {
  ManualClock clock;
  EndpointTable table(clock);
  ASSERT_TRUE(table.add("svc", {"a", "127.0.0.1", 1001}));
  ASSERT_TRUE(table.add("svc", {"b", "127.0.0.1", 1002}));
  ClusterOptions options;
  // a stays in service, as in the moments before it is ejected.
  options.outlier.consecutive_gateway_failure = 0;
  options.outlier.consecutive_5xx = 0;
  Cluster cluster("svc", options, table, clock);
  cluster.refresh();
  // Requests in flight on b make it costlier than a by more than the balancer's tolerance (2):
  // from then on a is offered every time.
  std::vector<UpstreamPick> busy;
  for (int i = 0; i < 100 && busy.size() < 2; ++i) {
    UpstreamSelection p = cluster.select(0, nullptr);
    ASSERT_TRUE(p.has_value());
    if (p->port == 1002) busy.push_back(std::move(*p));
  }
  ASSERT_EQ(busy.size(), 2u);
  int first_on_a = 0, retried_on_a = 0;
  for (int i = 0; i < 200; ++i) {
    UpstreamSelection first = cluster.select(0, nullptr);
    ASSERT_TRUE(first.has_value());
    if (first->port != 1001) continue;
    ++first_on_a;
    // Connection refused: nothing sent, the attempt is over (a is idle again) when the retry
    // picks.
    Cluster::report(connect_failure(*first, clock));
    UpstreamSelection retry = cluster.select(1, &*first);
    ASSERT_TRUE(retry.has_value());
    retried_on_a += retry->port == 1001 ? 1 : 0;
  }
  EXPECT_GT(first_on_a, 150);
  EXPECT_EQ(retried_on_a, 0);
}

// As Envoy's: a retry holds its place in the retry budget from the decision to retry, through
// its back-off, until the retried attempt is reported; once min_retry_concurrency (3) retries
// are waiting, a fourth is refused. A retry of an attempt that never reached its endpoint is a
// replacement and holds no place.
TEST(ClusterTest, ARetryHoldsItsBudgetPlaceThroughItsBackoffUntilItEnds) {
  ManualClock clock;
  EndpointTable table(clock);
  ASSERT_TRUE(table.add("svc", {"a", "127.0.0.1", 1001}));
  ASSERT_TRUE(table.add("svc", {"b", "127.0.0.1", 1002}));
  Cluster cluster("svc", ClusterOptions{}, table, clock);
  cluster.refresh();
  auto failed = [&](const UpstreamPick& pick, int attempt) {
    return AttemptReport{.pick = pick,
                         .attempt = attempt,
                         .outcome = UpstreamOutcome::response(503),
                         .cancelled = false,
                         .request_sent = true,
                         .latency = milliseconds(1),
                         .finished_at = clock.now(),
                         .detail = ""};
  };
  std::vector<UpstreamPick> waiting;  // first attempts that failed, their retries backing off
  for (int i = 0; i < 3; ++i) {
    UpstreamSelection first = cluster.select(0, nullptr);
    ASSERT_TRUE(first.has_value());
    Cluster::report(failed(*first, 0));
    ASSERT_TRUE(cluster.start_retry(failed(*first, 0))) << i;
    waiting.push_back(std::move(*first));
  }
  EXPECT_EQ(cluster.retry_budget().retries_in_flight(), 3u);  // nothing in flight but them
  UpstreamSelection fourth = cluster.select(0, nullptr);
  ASSERT_TRUE(fourth.has_value());
  Cluster::report(failed(*fourth, 0));
  EXPECT_FALSE(cluster.start_retry(failed(*fourth, 0)));
  EXPECT_EQ(cluster.stats().budget_overflows, 1u);

  // The first retry runs: its place goes with it, and is free once it is reported.
  UpstreamSelection retry = cluster.select(1, &waiting[0]);
  ASSERT_TRUE(retry.has_value());
  waiting[0] = UpstreamPick{};  // the proxy replaces the previous pick
  EXPECT_EQ(cluster.retry_budget().retries_in_flight(), 3u);
  Cluster::report(failed(*retry, 1));
  EXPECT_EQ(cluster.retry_budget().retries_in_flight(), 2u);

  // Connection refused: nothing was sent, so its retry holds no place.
  UpstreamSelection refused = cluster.select(0, nullptr);
  ASSERT_TRUE(refused.has_value());
  Cluster::report(connect_failure(*refused, clock));
  EXPECT_TRUE(cluster.start_retry(connect_failure(*refused, clock)));
  EXPECT_EQ(cluster.retry_budget().retries_in_flight(), 2u);
}

// A service of `hosts` endpoints "e0".."e<n-1>" behind one cluster with an admission limit.
struct AdmissionFixture {
  explicit AdmissionFixture(int hosts, std::uint32_t per_replica) : table(clock) {
    for (int i = 0; i < hosts; ++i) {
      const auto port = static_cast<std::uint16_t>(1001 + i);
      EXPECT_TRUE(table.add("svc", {"e" + std::to_string(i), "127.0.0.1", port}));
    }
    ClusterOptions options;
    options.max_requests_per_replica = per_replica;
    cluster = std::make_unique<Cluster>("svc", options, table, clock);
  }

  // Selects first attempts until one is refused; the admitted picks stay in flight in `held`.
  UpstreamSelection fill(int at_most = 1000) {
    for (int i = 0; i < at_most; ++i) {
      UpstreamSelection s = cluster->select(0, nullptr);
      if (!s) return s;
      held.push_back(std::move(*s));
    }
    return std::unexpected(NoPick{NoPick::Reason::kNoHealthyUpstream, "never refused"});
  }

  std::shared_ptr<UpstreamHost> host(int i) {
    for (auto& h : cluster->hosts()) {
      if (h->address() == "127.0.0.1:" + std::to_string(1001 + i)) return h;
    }
    return nullptr;
  }

  ManualClock clock;
  EndpointTable table;
  std::unique_ptr<Cluster> cluster;
  std::vector<UpstreamPick> held;
};

// A replica joining fast peers starts at their median latency estimate, not at Linkerd's 30 ms
// prior, which kept it from its share for about 46 s (a rolling update's new replica could not
// show it failed before the old ones had gone). Joining slower peers, it keeps the 30 ms.
TEST(ClusterTest, AReplicaJoiningFastPeersStartsAtTheirLatency) {
  ManualClock clock;
  EndpointTable table(clock);
  ASSERT_TRUE(table.add("svc", {"a", "127.0.0.1", 1001}));
  ASSERT_TRUE(table.add("svc", {"b", "127.0.0.1", 1002}));
  ASSERT_TRUE(table.add("svc", {"c", "127.0.0.1", 1003}));
  Cluster cluster("svc", ClusterOptions{}, table, clock);
  cluster.refresh();
  auto host = [&](std::uint16_t port) {
    const auto view = cluster.view();
    for (size_t i = 0; i < view->specs.size(); ++i) {
      if (view->specs[i].port == port) return view->hosts.hosts()[i];
    }
    return std::shared_ptr<UpstreamHost>();
  };
  auto answered = [&](const std::shared_ptr<UpstreamHost>& h, Clock::Duration latency) {
    std::optional<UpstreamRequest> r = UpstreamRequest::start(h, clock.now());
    ASSERT_TRUE(r.has_value());
    clock.advance(latency);
    r->finish(clock.now(), UpstreamOutcome::response(200));
  };
  const auto a = host(1001), b = host(1002), c = host(1003);
  answered(a, std::chrono::microseconds(400));
  answered(b, std::chrono::microseconds(500));
  answered(c, std::chrono::microseconds(900));
  ASSERT_TRUE(table.add("svc", {"d", "127.0.0.1", 1004}));
  cluster.refresh();
  EXPECT_NEAR(host(1004)->latency().estimate_ns(clock.now()), 500e3, 1e3) << "b's, the median";
  EXPECT_EQ(host(1001), a) << "the others keep what they learned";
  // Slow peers: the new one keeps the configured prior.
  for (const auto& h : {a, b, c}) answered(h, milliseconds(80));
  ASSERT_TRUE(table.add("svc", {"e", "127.0.0.1", 1005}));
  cluster.refresh();
  EXPECT_EQ(host(1005)->latency().estimate(clock.now()), milliseconds(30));
}

TEST(ClusterAdmissionTest, TheLimitIsTheHostsInServiceTimesThePerReplicaNumber) {
  AdmissionFixture f(/*hosts=*/2, /*per_replica=*/3);
  const UpstreamSelection refused = f.fill();
  EXPECT_EQ(f.held.size(), 6u);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().reason, NoPick::Reason::kOverloaded);
  EXPECT_EQ(refused.error().message,
            "service svc: 6 requests in flight, the limit for 2 ready replicas is 6");
  EXPECT_EQ(f.cluster->stats().admission_refusals, 1u);
  // The refused attempt holds nothing: the active count is the admitted requests.
  EXPECT_EQ(f.cluster->limits().in_use(UpstreamResource::kRequests), 6u);

  // One request ends: one more is admitted, and the next refused again.
  f.held.pop_back();
  EXPECT_TRUE(f.cluster->select(0, nullptr).has_value());  // released at once
  UpstreamSelection again = f.cluster->select(0, nullptr);
  ASSERT_TRUE(again.has_value());
  f.held.push_back(std::move(*again));
  EXPECT_FALSE(f.cluster->select(0, nullptr).has_value());
  EXPECT_EQ(f.cluster->stats().admission_refusals, 2u);
  EXPECT_EQ(f.cluster->stats().limit_overflows, 0u);
  EXPECT_EQ(f.cluster->stats().no_host, 0u);
}

// An answer whose body streams on is judged by its head (the latency estimate learns it) but
// keeps its place in flight, on its host and against the admission limit, until its pick is
// released at the body's end.
TEST(ClusterAdmissionTest, AStreamedAnswerStaysInFlightUntilItsPickIsReleased) {
  AdmissionFixture f(/*hosts=*/1, /*per_replica=*/2);
  ASSERT_FALSE(f.fill().has_value());
  ASSERT_EQ(f.held.size(), 2u);
  f.clock.advance(milliseconds(40));
  const AttemptReport streamed{.pick = f.held[0],
                               .attempt = 0,
                               .outcome = UpstreamOutcome::response(200),
                               .cancelled = false,
                               .request_sent = true,
                               .streaming = true,
                               .latency = milliseconds(40),
                               .finished_at = f.clock.now(),
                               .detail = ""};
  f.cluster->report(streamed);
  EXPECT_EQ(f.cluster->limits().in_use(UpstreamResource::kRequests), 2u);
  EXPECT_EQ(f.host(0)->outstanding(), 2u);
  EXPECT_FALSE(f.cluster->select(0, nullptr).has_value());  // still full
  f.held.erase(f.held.begin());  // the body ended: the proxy releases the pick
  EXPECT_EQ(f.cluster->limits().in_use(UpstreamResource::kRequests), 1u);
  EXPECT_EQ(f.host(0)->outstanding(), 1u);
  EXPECT_TRUE(f.cluster->select(0, nullptr).has_value());
}

// prescale up keeps the per-replica number to the learned capacity: a new number holds for the
// next select, requests already admitted stay, and 0 lifts the limit.
TEST(ClusterAdmissionTest, ThePerReplicaNumberCanBeSetWhileServing) {
  AdmissionFixture f(/*hosts=*/2, /*per_replica=*/3);
  EXPECT_FALSE(f.fill().has_value());
  EXPECT_EQ(f.held.size(), 6u);
  f.cluster->set_max_requests_per_replica(5);
  EXPECT_EQ(f.cluster->max_requests_per_replica(), 5u);
  EXPECT_FALSE(f.fill().has_value());
  EXPECT_EQ(f.held.size(), 10u);
  f.cluster->set_max_requests_per_replica(2);  // lower than what is in flight: nothing dropped
  const UpstreamSelection refused = f.cluster->select(0, nullptr);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().message,
            "service svc: 10 requests in flight, the limit for 2 ready replicas is 4");
  EXPECT_EQ(f.cluster->limits().in_use(UpstreamResource::kRequests), 10u);
  f.cluster->set_max_requests_per_replica(0);
  EXPECT_EQ(f.fill(/*at_most=*/50).error().message, "never refused");
}

TEST(ClusterAdmissionTest, DrainingUnhealthyAndEjectedHostsDoNotCount) {
  AdmissionFixture f(/*hosts=*/4, /*per_replica=*/2);
  ASSERT_TRUE(f.table.remove("svc", "e0"));  // draining until reaped
  f.cluster->refresh();
  f.host(1)->set_healthy(false);
  // e2 ejected: the outlier detector's own rule, as five gateway failures in a row would.
  const auto e2 = f.host(2);
  ASSERT_NE(e2, nullptr);
  f.cluster->evaluate_outliers();
  for (int i = 0; i < 5; ++i) {
    f.cluster->detector().record(
        e2->outlier(), UpstreamOutcome::failure(UpstreamError::kConnectFailure), f.clock.now());
  }
  ASSERT_TRUE(e2->outlier().ejected(f.clock.now()));
  ASSERT_FALSE(e2->in_service(f.clock.now()));

  const UpstreamSelection refused = f.fill();
  EXPECT_EQ(f.held.size(), 2u);  // e3 alone is in service
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().reason, NoPick::Reason::kOverloaded);
  EXPECT_EQ(refused.error().message,
            "service svc: 2 requests in flight, the limit for 1 ready replica is 2");
  for (const UpstreamPick& p : f.held) EXPECT_EQ(p.port, 1004);

  // e1 healthy again: the limit grows at once, with no new view needed.
  f.host(1)->set_healthy(true);
  ASSERT_FALSE(f.fill().has_value());
  EXPECT_EQ(f.held.size(), 4u);
}

TEST(ClusterAdmissionTest, NoHostInServiceCountsThoseThePanicModeUses) {
  AdmissionFixture f(/*hosts=*/2, /*per_replica=*/2);
  f.host(0)->set_healthy(false);
  f.host(1)->set_healthy(false);
  // The balancer still sends to unhealthy hosts when no host is healthy (panic); the limit
  // follows it rather than refusing everything.
  const UpstreamSelection refused = f.fill();
  EXPECT_EQ(f.held.size(), 4u);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().reason, NoPick::Reason::kOverloaded);
}

TEST(ClusterAdmissionTest, NoLimitWhenThePerReplicaNumberIsZero) {
  AdmissionFixture f(/*hosts=*/1, /*per_replica=*/0);
  const UpstreamSelection refused = f.fill(/*at_most=*/2000);
  // Only the static circuit breaker stops it: max_requests (1024), answered as an overflow.
  EXPECT_EQ(f.held.size(), 1024u);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().reason, NoPick::Reason::kOverflow);
  EXPECT_NE(refused.error().message.find("circuit_breakers.max_requests (1024"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(f.cluster->stats().admission_refusals, 0u);
  EXPECT_EQ(f.cluster->stats().limit_overflows, 1u);
}

TEST(ClusterAdmissionTest, ARetryIsAdmittedAgainstTheSameLimit) {
  AdmissionFixture f(/*hosts=*/2, /*per_replica=*/1);
  ASSERT_FALSE(f.fill().has_value());
  ASSERT_EQ(f.held.size(), 2u);
  UpstreamPick first = std::move(f.held.front());
  f.held.erase(f.held.begin());
  Cluster::report(connect_failure(first, f.clock));
  // The report ends the attempt: it stops counting at once, though the proxy still holds the
  // failed pick (it does until the retry's select() returns, back-off included), so the retry
  // is admitted in its place instead of being counted twice.
  EXPECT_EQ(f.cluster->limits().in_use(UpstreamResource::kRequests), 1u);
  UpstreamSelection retry = f.cluster->select(1, &first);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(f.cluster->stats().admission_refusals, 1u);  // fill()'s only
  EXPECT_EQ(f.cluster->limits().in_use(UpstreamResource::kRequests), 2u);
  // And against the same limit: a further attempt is refused.
  EXPECT_FALSE(f.cluster->select(0, nullptr).has_value());
}

}  // namespace
}  // namespace prescale::gateway
