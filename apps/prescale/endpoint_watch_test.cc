#include "endpoint_watch.h"

#include <gtest/gtest.h>

#include <memory>

#include "core/config.h"
#include "gateway/cluster.h"
#include "gateway/outlier_detector.h"
#include "gateway/upstream_outcome.h"

namespace prescale {
namespace {

// A gateway with one service of two replicas, its health checks off: the test marks them.
struct Harness {
  Harness() {
    auto config = load_config_string(
        "version: 1\nservices:\n  - {name: web, kind: builtin/echo}\n"
        "gateway:\n  routes:\n    - {match: {path_prefix: /}, service: web}\n",
        "endpoint_watch_test.yaml");
    EXPECT_TRUE(config) << config.error().message;
    auto created = gateway::Gateway::create(
        config->gateway, gateway::GatewayOptions{.clock = &clock, .health_checks = false});
    EXPECT_TRUE(created) << created.error().message;
    gw = std::move(*created);
    EXPECT_TRUE(gw->add_endpoint("web", {"web-1@9001", "127.0.0.1", 9001}));
    EXPECT_TRUE(gw->add_endpoint("web", {"web-2@9002", "127.0.0.1", 9002}));
  }
  // What the gateway's health checks do to the replica at `address`.
  void set_healthy(const std::string& address, bool healthy) {
    bool found = false;
    for (const auto& h : gw->cluster("web")->hosts()) {
      if (h->address() != address) continue;
      h->set_healthy(healthy);
      found = true;
    }
    EXPECT_TRUE(found) << "no host " << address;
  }
  // The gateway's host of web at `address`; null when none.
  std::shared_ptr<gateway::UpstreamHost> host(const std::string& address) const {
    for (const auto& h : gw->cluster("web")->hosts()) {
      if (h->address() == address) return h;
    }
    return nullptr;
  }
  ManualClock clock;
  std::unique_ptr<gateway::Gateway> gw;
};

// A gRPC service's replica out of service is named with the call its checks make.
TEST(EndpointWatchTest, AGrpcReplicaFailingItsChecksIsNamedWithTheCall) {
  auto config = load_config_string(
      "version: 1\nservices:\n  - {name: rpc, kind: command, command: [./rpc], protocol: grpc,\n"
      "     grpc_health_service: shop.Cart}\n"
      "gateway:\n  routes:\n    - {match: {path_prefix: /}, service: rpc}\n",
      "endpoint_watch_test.yaml");
  ASSERT_TRUE(config) << config.error().message;
  config->gateway.http2_upstreams = http2_upstreams(config->services);
  config->gateway.grpc_health_checks = grpc_health_checks(config->services);
  ManualClock clock;
  auto gw = gateway::Gateway::create(
      config->gateway, gateway::GatewayOptions{.clock = &clock, .health_checks = false});
  ASSERT_TRUE(gw) << gw.error().message;
  ASSERT_TRUE((*gw)->add_endpoint("rpc", {"rpc-1@9001", "127.0.0.1", 9001}));
  EndpointWatch watch(**gw, "/readyz");
  EXPECT_TRUE(watch.poll(clock.now()).empty());
  (*gw)->cluster("rpc")->hosts()[0]->set_healthy(false);
  const auto changes = watch.poll(clock.now());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].message,
            "fails its health checks (grpc.health.v1.Health/Check for \"shop.Cart\"): out of "
            "service");
}

// A replica failing its health checks (hung: stopped, or its readiness off) is out of service
// at the gateway while the supervisor, which sees only exits, holds it ready: the watch names it
// once, and again when it is back.
TEST(EndpointWatchTest, SaysOnceWhenAReplicaFailsItsHealthChecksAndWhenItIsBack) {
  Harness h;
  EndpointWatch watch(*h.gw, "/readyz");
  EXPECT_TRUE(watch.poll(h.clock.now()).empty());
  h.set_healthy("127.0.0.1:9002", false);
  auto changes = watch.poll(h.clock.now());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].service, "web");
  EXPECT_EQ(changes[0].replica, "web-2");
  EXPECT_EQ(changes[0].kind, "unhealthy");
  EXPECT_EQ(changes[0].message, "fails its health checks (GET /readyz): out of service");
  EXPECT_TRUE(watch.poll(h.clock.now()).empty()) << "said once";
  h.set_healthy("127.0.0.1:9002", true);
  changes = watch.poll(h.clock.now());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].replica, "web-2");
  EXPECT_EQ(changes[0].kind, "healthy");
  EXPECT_EQ(changes[0].message, "back in service");
}

// A replica leaving (scaled down, or crashed: the supervisor says so) is not reported.
TEST(EndpointWatchTest, AReplicaLeavingIsNotReported) {
  Harness h;
  EndpointWatch watch(*h.gw, "/readyz");
  h.set_healthy("127.0.0.1:9001", false);
  ASSERT_EQ(watch.poll(h.clock.now()).size(), 1u);
  ASSERT_TRUE(h.gw->remove_endpoint("web", "web-1@9001"));
  EXPECT_TRUE(watch.poll(h.clock.now()).empty());
}

// A replica broken for good is ejected again within moments of each return (5 failed requests
// take well under a second under load), so one poll a second may never see it back in service.
// Each new ejection is still said: the healer counts them (healer.ejections).
TEST(EndpointWatchTest, AnEjectionAfterAReturnBetweenTwoPollsIsSaid) {
  using namespace std::chrono_literals;
  Harness h;
  EndpointWatch watch(*h.gw, "/readyz");
  const std::shared_ptr<gateway::UpstreamHost> web2 = h.host("127.0.0.1:9002");
  ASSERT_NE(web2, nullptr);
  gateway::OutlierDetector detector;  // its rule: 5 5xx in a row eject, 30 s the first time
  auto fail_five = [&] {
    for (int i = 0; i < 5; ++i) {
      detector.record(web2->outlier(), gateway::UpstreamOutcome::response(500), h.clock.now());
    }
  };
  EXPECT_TRUE(watch.poll(h.clock.now()).empty());
  fail_five();
  auto changes = watch.poll(h.clock.now());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, "eject");
  EXPECT_EQ(changes[0].replica, "web-2");
  h.clock.advance(29900ms);
  EXPECT_TRUE(watch.poll(h.clock.now()).empty()) << "ejected for 30 s";
  h.clock.advance(300ms);  // back in service, and at once ejected again
  ASSERT_FALSE(web2->outlier().ejected(h.clock.now()));
  fail_five();
  ASSERT_TRUE(web2->outlier().ejected(h.clock.now()));
  h.clock.advance(700ms);
  changes = watch.poll(h.clock.now());
  ASSERT_EQ(changes.size(), 1u) << "the second ejection";
  EXPECT_EQ(changes[0].kind, "eject");
  EXPECT_EQ(changes[0].replica, "web-2");
  EXPECT_EQ(changes[0].message, "ejected by the gateway's outlier detection again: out of service");
  EXPECT_TRUE(watch.poll(h.clock.now()).empty()) << "said once";
}

// A replica failing more than half of its requests, but never 5 in a row, is not ejected by the
// outlier detection; the gateway's failure-rate breaker opens on it (20 requests in 10 s, 50 %),
// and that takes it out of service too: said as an ejection, each opening (the healer counts one
// per 30 s: HealerTest.ABreakerOpeningCountsAsAnEjectionOncePerThirtySeconds).
TEST(EndpointWatchTest, AReplicaWhoseBreakerOpensIsOutOfServiceAsAnEjectedOne) {
  using namespace std::chrono_literals;
  Harness h;
  EndpointWatch watch(*h.gw, "/readyz");
  const std::shared_ptr<gateway::UpstreamHost> web1 = h.host("127.0.0.1:9001");
  ASSERT_NE(web1, nullptr);
  ASSERT_NE(web1->breaker(), nullptr) << "a breaker per replica by default";
  auto fail_three_in_five = [&] {
    for (int i = 0; i < 25; ++i) {
      auto permit = web1->breaker()->try_acquire(h.clock.now());
      if (!permit) return;
      permit->record(h.clock.now(), i % 5 < 3, 10ms);
    }
  };
  EXPECT_TRUE(watch.poll(h.clock.now()).empty());
  fail_three_in_five();
  ASSERT_FALSE(web1->outlier().ejected(h.clock.now()));
  auto changes = watch.poll(h.clock.now());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, "eject");
  EXPECT_EQ(changes[0].replica, "web-1");
  EXPECT_EQ(changes[0].message,
            "its requests failed too often: the gateway's circuit breaker opened: out of service");
  EXPECT_TRUE(changes[0].breaker) << "no verdict on a release";
  EXPECT_TRUE(watch.poll(h.clock.now()).empty()) << "said once";
  // After its 5 s, half-open: a trial lets it back; the trial fails, and it opens again.
  h.clock.advance(5100ms);
  changes = watch.poll(h.clock.now());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, "healthy");
  auto trial = web1->breaker()->try_acquire(h.clock.now());
  ASSERT_TRUE(trial);
  trial->record(h.clock.now(), true, 10ms);
  changes = watch.poll(h.clock.now());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, "eject");
  EXPECT_TRUE(changes[0].breaker);
  // Open again while out (the next trial failed before a poll saw it back): said again.
  for (int round = 0; round < 3; ++round) {
    h.clock.advance(5100ms);
    trial = web1->breaker()->try_acquire(h.clock.now());
    ASSERT_TRUE(trial);
    trial->record(h.clock.now(), true, 10ms);
    changes = watch.poll(h.clock.now());
    ASSERT_EQ(changes.size(), 1u) << round;
    EXPECT_EQ(changes[0].message,
              "its requests failed too often: the gateway's circuit breaker opened again: out of "
              "service");
    EXPECT_TRUE(changes[0].breaker) << round;
  }
}

// An outlier ejection is a verdict: the healer counts each, and it fails a rollout's replica.
TEST(EndpointWatchTest, AnOutlierEjectionIsNoBreakers) {
  Harness h;
  EndpointWatch watch(*h.gw, "/readyz");
  const std::shared_ptr<gateway::UpstreamHost> web2 = h.host("127.0.0.1:9002");
  ASSERT_NE(web2, nullptr);
  gateway::OutlierDetector detector;
  for (int i = 0; i < 5; ++i) {
    detector.record(web2->outlier(), gateway::UpstreamOutcome::response(500), h.clock.now());
  }
  const auto changes = watch.poll(h.clock.now());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, "eject");
  EXPECT_FALSE(changes[0].breaker);
}

}  // namespace
}  // namespace prescale
