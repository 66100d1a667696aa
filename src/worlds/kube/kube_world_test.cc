#include "worlds/kube/kube_world.h"

#include <gtest/gtest.h>

#include <memory>

#include "http/test_util.h"
#include "worlds/kube/api_client.h"
#include "worlds/kube/fake_api_server.h"
#include "worlds/kube/internal/pods.h"

namespace prescale::kube {
namespace {

using namespace std::chrono_literals;
using fake::FakeApiServer;
using fake::FakePod;

// A pod's /metrics, as the test sets it: a gateway's admin port, or a replica's port.
class MetricsPort : public http::testing::CannedServer {
 public:
  MetricsPort() : CannedServer("/metrics") {}
};

// A gateway's counters for the service "web" (route "/") and its calls to "checkout".
std::string gateway_metrics(int web_requests, int checkout_calls, double busy_seconds,
                            double process_start = 1767225000) {
  const std::string n = std::to_string(web_requests);
  return "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds " +
         std::to_string(process_start) +
         "\n"
         "# TYPE prescale_calls_total counter\n"
         "prescale_calls_total{caller=\"external\",callee=\"web\"} " +
         n + "\n" + "prescale_calls_total{caller=\"web\",callee=\"checkout\"} " +
         std::to_string(checkout_calls) + "\n" +
         "# TYPE prescale_requests_total counter\n"
         "prescale_requests_total{route=\"/\",code=\"200\"} " +
         n + "\n" +
         "# TYPE prescale_gateway_route_busy_seconds_total counter\n"
         "prescale_gateway_route_busy_seconds_total{route=\"/\"} " +
         std::to_string(busy_seconds) + "\n" +
         "# TYPE prescale_request_duration_seconds histogram\n"
         "prescale_request_duration_seconds_bucket{route=\"/\",le=\"0.05\"} " +
         n + "\n" + "prescale_request_duration_seconds_bucket{route=\"/\",le=\"+Inf\"} " + n +
         "\n" + "prescale_request_duration_seconds_sum{route=\"/\"} 1\n" +
         "prescale_request_duration_seconds_count{route=\"/\"} " + n + "\n";
}

std::string replica_metrics(double cpu_seconds) {
  return "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total " +
         std::to_string(cpu_seconds) +
         "\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1048576\n";
}

scaling::ServiceSpec spec(const std::string& name) {
  scaling::ServiceSpec s;
  s.name = name;
  s.min_replicas = 1;
  s.max_replicas = 10;
  s.slo_latency_p99_seconds = 0.1;
  return s;
}

class KubeWorldTest : public ::testing::Test {
 protected:
  KubeWorldTest()
      : clock_(*parse_utc("2026-01-01T00:01:00Z")), api_(*config_from_url(fake_.url())) {
    fake_.set_deployment("web", 2);
    fake_.set_deployment("checkout", 1);
    fake_.set_pod({.name = "prescale-gateway-1",
                   .app = "prescale-gateway",
                   .ports = {{"http", 1}, {"admin", gateway_.port()}}});
    fake_.set_pod({.name = "web-a", .app = "web", .ports = {{"http", web_a_.port()}}});
    fake_.set_pod({.name = "web-b",
                   .app = "web",
                   .ports = {{"http", 1}},
                   .ready = false,
                   .created = "2026-01-01T00:00:55Z"});
    fake_.set_pod(
        {.name = "web-old", .app = "web", .ports = {}, .phase = "Failed", .ready = false});
    fake_.set_pod({.name = "checkout-a", .app = "checkout", .ports = {{"http", 1}}});
    gateway_.set(gateway_metrics(1000, 400, 50));  // before the controller started
    web_a_.set(replica_metrics(10));
  }

  KubeWorld make_world() {
    KubeWorldOptions o;
    o.clock = &clock_;
    o.route_service = {{"/", "web"}};
    o.scrape_interval = 0s;
    o.on_problem = [this](const std::string& line) { problems_.push_back(line); };
    return KubeWorld(api_, {spec("web"), spec("checkout")}, o);
  }

  FakeApiServer fake_;
  MetricsPort gateway_, web_a_;
  ManualClock clock_;
  ApiClient api_;
  std::vector<std::string> problems_;
};

// A pod's containers as the API tells them: it runs once all its containers do (a sidecar
// running while the main container's image is pulled is no start), and the reason a container
// waits that is not only progress wins, from an init container too.
TEST(ReadPodTest, RunsOnceAllItsContainersRunAndTellsWhyOneWaits) {
  const auto pod = [](nlohmann::json init, nlohmann::json containers) {
    return internal::read_pod({{"metadata", {{"name", "web-n"}, {"uid", "u1"}}},
                               {"status",
                                {{"phase", "Pending"},
                                 {"initContainerStatuses", std::move(init)},
                                 {"containerStatuses", std::move(containers)}}}});
  };
  const nlohmann::json running = {
      {"restartCount", 1}, {"state", {{"running", {{"startedAt", "2026-01-01T00:00:05Z"}}}}}};
  const nlohmann::json later = {{"state", {{"running", {{"startedAt", "2026-01-01T00:00:09Z"}}}}}};
  const nlohmann::json creating = {{"state", {{"waiting", {{"reason", "ContainerCreating"}}}}}};
  const nlohmann::json backoff = {{"restartCount", 2},
                                  {"state", {{"waiting", {{"reason", "ImagePullBackOff"}}}}}};
  const nlohmann::json initializing = {{"state", {{"waiting", {{"reason", "PodInitializing"}}}}}};

  auto p = pod(nlohmann::json::array(), {running, creating});
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->running_since) << "the sidecar runs, the main container does not yet";
  EXPECT_EQ(p->waiting, "ContainerCreating");
  p = pod({backoff}, {initializing});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->waiting, "ImagePullBackOff") << "an init container's";
  EXPECT_EQ(p->restarts, 2);
  p = pod(nlohmann::json::array(), {creating, backoff});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->waiting, "ImagePullBackOff") << "over mere progress, whatever the order";
  p = pod(nlohmann::json::array(), {running, later});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->running_since);
  EXPECT_EQ(*p->running_since, *parse_utc("2026-01-01T00:00:09Z")) << "the last to start";
  EXPECT_EQ(p->waiting, "");
  EXPECT_EQ(p->restarts, 1);
}

TEST_F(KubeWorldTest, ObservesPodsDeploymentsAndTheGatewaysCounters) {
  KubeWorld world = make_world();
  const scaling::Snapshot& first = world.observe(clock_.now());
  const scaling::ServiceObservation* web = first.service("web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->desired_replicas, 2);
  ASSERT_EQ(web->replicas.size(), 2u);  // the failed pod costs nothing and is left out
  EXPECT_EQ(web->replicas[0].id, "web-a");
  EXPECT_EQ(web->replicas[0].state, scaling::ReplicaState::kReady);
  // Created a minute before now, ready 10 s after.
  EXPECT_EQ(web->replicas[0].started_at, clock_.now() - 60s);
  EXPECT_EQ(web->replicas[0].ready_at, clock_.now() - 50s);
  EXPECT_EQ(web->replicas[1].id, "web-b");
  EXPECT_EQ(web->replicas[1].state, scaling::ReplicaState::kStarting);
  EXPECT_EQ(web->replicas[1].started_at, clock_.now() - 5s);
  EXPECT_EQ(first.service("checkout")->replicas.size(), 1u);
  // What the gateway counted before the first observation is the past.
  EXPECT_EQ(web->window.arrival_rps, 0);

  // 10 s of 20 requests a second, 8 of them calling checkout, 3 in flight on average.
  clock_.advance(10s);
  gateway_.set(gateway_metrics(1200, 480, 80));
  web_a_.set(replica_metrics(15));
  const scaling::Snapshot& second = world.observe(clock_.now());
  web = second.service("web");
  EXPECT_DOUBLE_EQ(web->window.arrival_rps, 20);
  EXPECT_DOUBLE_EQ(web->window.served_rps, 20);
  EXPECT_DOUBLE_EQ(web->window.concurrency, 3);
  EXPECT_DOUBLE_EQ(second.service("checkout")->window.arrival_rps, 8);
  ASSERT_TRUE(web->last_second.valid);
  EXPECT_DOUBLE_EQ(web->last_second.requests, 20);
  ASSERT_TRUE(web->replicas[0].cpu_utilization.has_value());
  EXPECT_DOUBLE_EQ(*web->replicas[0].cpu_utilization, 0.5);
  EXPECT_EQ(web->replicas[0].memory_bytes, 1048576u);
  ASSERT_EQ(second.edges.size(), 1u);
  EXPECT_EQ(second.edges[0].caller, "web");
  EXPECT_EQ(second.edges[0].calls_total, 80);
  EXPECT_TRUE(problems_.empty());
}

TEST_F(KubeWorldTest, AGatewayThatRestartsOrComesLaterCountsFromZero) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  clock_.advance(10s);
  // The first gateway restarted (its counters went down); a second one started after the
  // controller did.
  gateway_.set(gateway_metrics(50, 0, 5));
  MetricsPort second_gateway;
  second_gateway.set(gateway_metrics(150, 0, 15));
  fake_.set_pod({.name = "prescale-gateway-2",
                 .app = "prescale-gateway",
                 .ports = {{"admin", second_gateway.port()}},
                 .created = "2026-01-01T00:01:05Z"});
  const scaling::Snapshot& s = world.observe(clock_.now());
  EXPECT_DOUBLE_EQ(s.service("web")->window.arrival_rps, 20);  // (50 + 150) / 10 s
}

// The controller's file reloaded: new bounds for scale(), a new SLO for the window's slow share.
TEST_F(KubeWorldTest, ANewSpecBoundsScalingAndCountsBySlo) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  clock_.advance(10s);
  gateway_.set(gateway_metrics(1200, 480, 80));
  EXPECT_DOUBLE_EQ(world.observe(clock_.now()).service("web")->window.slow_rps, 0);
  scaling::ServiceSpec tighter = spec("web");
  tighter.max_replicas = 2;
  tighter.slo_latency_p99_seconds = 0.01;  // every request took up to 50 ms
  ASSERT_TRUE(world.respec(tighter));
  EXPECT_EQ(world.scale("web", 3).error().code, ErrorCode::kOutOfRange);
  EXPECT_TRUE(world.scale("web", 2));
  EXPECT_GT(world.observe(clock_.now()).service("web")->window.slow_rps, 0);
  EXPECT_EQ(world.respec(spec("cart")).error().code, ErrorCode::kNotFound);
  tighter.min_replicas = 3;
  EXPECT_EQ(world.respec(tighter).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(KubeWorldTest, ScalesTheDeploymentAndRestartsByEvictingThePod) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  ASSERT_TRUE(world.scale("web", 3).has_value());
  EXPECT_EQ(fake_.replicas("web"), 3);
  EXPECT_EQ(world.observe(clock_.now()).service("web")->desired_replicas, 3);
  // Out of bounds, or unknown: nothing is asked of the API.
  const int asked = fake_.requests();
  EXPECT_EQ(world.scale("web", 11).error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(world.scale("cart", 2).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(fake_.requests(), asked);
  // A service's only ready pod is not evicted (a container restarted in place is back sooner).
  const auto only = world.restart("web-a");
  ASSERT_FALSE(only.has_value());
  EXPECT_EQ(only.error().code, ErrorCode::kOutOfRange) << only.error().message;
  // Two ready and a third starting: the PodDisruptionBudget refuses (429) while one is not ready.
  fake_.set_pod({.name = "web-b", .app = "web", .ports = {{"http", 1}}});
  fake_.set_pod({.name = "web-c", .app = "web", .ports = {{"http", 1}}, .ready = false});
  world.observe(clock_.now());
  const auto refused = world.restart("web-a");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("429"), std::string::npos) << refused.error().message;
  EXPECT_TRUE(fake_.deleted().empty());
  fake_.set_pod({.name = "web-c", .app = "web", .ports = {{"http", 1}}});
  world.observe(clock_.now());
  ASSERT_TRUE(world.restart("web-a").has_value());
  EXPECT_EQ(fake_.deleted(), std::vector<std::string>{"web-a"});
  const scaling::ReplicaObservation& evicted =
      world.observe(clock_.now()).service("web")->replicas[0];
  EXPECT_EQ(evicted.state, scaling::ReplicaState::kDraining);
  // It serves through its preStop wait: it has had no new requests only from its deadline on.
  EXPECT_EQ(evicted.draining_since,
            clock_.now() - 60s);  // deletionTimestamp 00:00:00, now 00:01:00
  EXPECT_EQ(world.restart("web-z").error().code, ErrorCode::kNotFound);
}

TEST_F(KubeWorldTest, AnApiThatFailsKeepsTheLastReplicasAndIsSaidOnce) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  fake_.fail_with(500);
  for (int i = 0; i < 3; ++i) {
    clock_.advance(1s);
    const scaling::Snapshot& s = world.observe(clock_.now());
    EXPECT_EQ(s.service("web")->replicas.size(), 2u);
  }
  // Pods, and the Deployments (read at every observation here): each said once.
  ASSERT_EQ(problems_.size(), 2u);
  EXPECT_NE(problems_[0].find("pods not read: GET"), std::string::npos) << problems_[0];
  EXPECT_NE(problems_[0].find("500"), std::string::npos) << problems_[0];
  EXPECT_EQ(world.scale("web", 4).error().code, ErrorCode::kUnavailable);
  fake_.fail_with(0);
  world.observe(clock_.now());
  EXPECT_EQ(problems_.back(), "deployments are read again");
  // A gateway that does not answer is said once, and its growth counted when it answers again.
  gateway_.set("", 503);
  clock_.advance(5s);
  world.observe(clock_.now());
  clock_.advance(5s);
  world.observe(clock_.now());
  EXPECT_NE(problems_.back().find("gateway pod prescale-gateway-1"), std::string::npos);
  gateway_.set(gateway_metrics(1300, 400, 50));
  clock_.advance(10s);
  const scaling::Snapshot& s = world.observe(clock_.now());
  EXPECT_EQ(problems_.back(), "gateway pod prescale-gateway-1 is read again");
  EXPECT_NEAR(s.service("web")->window.arrival_rps * to_seconds(s.service("web")->window.length),
              300, 1e-6);
}

TEST_F(KubeWorldTest, APodThatWasReadyAndIsNotIsNoCapacityOnTheWay) {
  KubeWorld world = make_world();
  const Clock::TimePoint first_ready =
      world.observe(clock_.now()).service("web")->replicas[0].ready_at.value();
  // web-a fails its readiness probe; web-b restarted without ever being ready.
  fake_.set_pod({.name = "web-a",
                 .app = "web",
                 .ports = {{"http", web_a_.port()}},
                 .ready = false,
                 .not_ready_since = "2026-01-01T00:01:02Z"});
  fake_.set_pod({.name = "web-b",
                 .app = "web",
                 .ports = {{"http", 1}},
                 .ready = false,
                 .created = "2026-01-01T00:00:55Z",
                 .restarts = 1});
  clock_.advance(5s);
  const scaling::ServiceObservation* web = world.observe(clock_.now()).service("web");
  EXPECT_EQ(web->replicas[0].state, scaling::ReplicaState::kDraining);
  EXPECT_EQ(web->replicas[1].state, scaling::ReplicaState::kDraining);
  EXPECT_EQ(web->count(scaling::ReplicaState::kStarting), 0);
  // Without new requests from the gateway's DNS refresh and the answers' time to live (the leave
  // time, 11 s) after their readiness turned false: web-a 3 s ago, web-b at its creation 10 s ago.
  EXPECT_EQ(web->replicas[0].draining_since, clock_.now() + 8s);
  EXPECT_EQ(web->replicas[1].draining_since, clock_.now() + 1s);
  // Ready again: ready since its condition last turned True, as Kubernetes' HPA reads it (the
  // policy counts its start once: PrescalePolicyTest.AReplicaReadyAgainAfterASpellOutIsNot...).
  fake_.set_pod({.name = "web-a",
                 .app = "web",
                 .ports = {{"http", web_a_.port()}},
                 .ready_since = "2026-01-01T00:01:05Z"});
  clock_.advance(5s);
  web = world.observe(clock_.now()).service("web");
  EXPECT_EQ(web->replicas[0].state, scaling::ReplicaState::kReady);
  EXPECT_EQ(web->replicas[0].ready_at, first_ready + 55s);
}

TEST_F(KubeWorldTest, AGatewaysGrowthOverMoreThanOneLookIsNoLastSecond) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  clock_.advance(1s);
  gateway_.set(gateway_metrics(1100, 400, 50));
  EXPECT_TRUE(world.observe(clock_.now()).service("web")->last_second.valid);
  // It misses a look, then answers with two seconds of requests.
  gateway_.set("", 503);
  clock_.advance(1s);
  world.observe(clock_.now());
  gateway_.set(gateway_metrics(1300, 400, 50));
  clock_.advance(1s);
  const scaling::ServiceObservation* web = world.observe(clock_.now()).service("web");
  EXPECT_FALSE(web->last_second.valid);            // not 200 requests in the last second
  EXPECT_DOUBLE_EQ(web->window.arrival_rps, 100);  // 300 over the window's 3 s
  clock_.advance(1s);
  gateway_.set(gateway_metrics(1400, 400, 50));
  web = world.observe(clock_.now()).service("web");
  ASSERT_TRUE(web->last_second.valid);
  EXPECT_DOUBLE_EQ(web->last_second.requests, 100);
}

TEST_F(KubeWorldTest, AGatewayWhoseContainerRestartedCountsFromZero) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  // Killed and back within the look (a new process), already past what it had counted before.
  gateway_.set(gateway_metrics(1300, 0, 0, 1767225065));
  clock_.advance(10s);
  EXPECT_DOUBLE_EQ(world.observe(clock_.now()).service("web")->window.arrival_rps, 130);
}

TEST_F(KubeWorldTest, OnlyAServicesPodIsRestartedAndMissingDeploymentsAreNamed) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  const int asked = fake_.requests();
  EXPECT_EQ(world.restart("prescale-gateway-1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(fake_.requests(), asked);
  fake_.remove_deployment("checkout");
  auto missing = world.missing_deployments();
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(*missing, std::vector<std::string>{"checkout"});
}

TEST_F(KubeWorldTest, AGatewaySilentForLongerThanTheWindowIsLeftOut) {
  auto web_last_second = [this](KubeWorld& w) {
    const scaling::ServiceObservation* web = w.observe(clock_.now()).service("web");
    return web != nullptr ? web->last_second : scaling::SecondMetrics{};
  };
  KubeWorld world = make_world();
  world.observe(clock_.now());
  MetricsPort second_gateway;
  second_gateway.set(gateway_metrics(0, 0, 0));
  fake_.set_pod({.name = "prescale-gateway-2",
                 .app = "prescale-gateway",
                 .ports = {{"admin", second_gateway.port()}},
                 .created = "2026-01-01T00:01:00Z"});
  clock_.advance(1s);
  world.observe(clock_.now());
  // The first gateway cannot be reached (a NetworkPolicy, a lost node) while it is ready.
  gateway_.set("", 503);
  for (int s = 2; s <= 30; ++s) {
    clock_.advance(1s);
    second_gateway.set(gateway_metrics(10 * s, 0, 0));
    EXPECT_FALSE(web_last_second(world).valid) << s;  // waiting for it
  }
  // Past the window it is left out, said once, and the other's figures go on.
  scaling::SecondMetrics last_second;
  for (int s = 31; s <= 34; ++s) {
    clock_.advance(1s);
    second_gateway.set(gateway_metrics(10 * s, 0, 0));
    last_second = web_last_second(world);
  }
  ASSERT_TRUE(last_second.valid);
  EXPECT_NEAR(last_second.requests, 10, 1e-9);
  EXPECT_NE(problems_.back().find("leave out its requests"), std::string::npos) << problems_.back();
}

TEST_F(KubeWorldTest, APodStartingIsOnItsWayUntilItHasRunAMinuteUnready) {
  KubeWorld world = make_world();
  EXPECT_EQ(world.observe(clock_.now()).service("web")->replicas[1].state,
            scaling::ReplicaState::kStarting);  // web-b, created 5 s ago
  clock_.advance(70s);
  EXPECT_EQ(world.observe(clock_.now()).service("web")->replicas[1].state,
            scaling::ReplicaState::kDraining);  // running for over a minute, not ready
}

TEST_F(KubeWorldTest, CountsTheGatewayPodsInServiceWhileItsListIsFresh) {
  KubeWorld world = make_world();
  EXPECT_EQ(world.gateways_in_service(clock_.now()), std::nullopt) << "no list read yet";
  world.observe(clock_.now());
  EXPECT_EQ(world.gateways_in_service(clock_.now()),
            std::vector<std::string>{"prescale-gateway-1"});
  // A second ready, a third starting, a fourth leaving: two share the admission limits.
  fake_.set_pod({.name = "prescale-gateway-2", .app = "prescale-gateway", .ports = {}});
  fake_.set_pod(
      {.name = "prescale-gateway-3", .app = "prescale-gateway", .ports = {}, .ready = false});
  fake_.set_pod(
      {.name = "prescale-gateway-4", .app = "prescale-gateway", .ports = {}, .deleting = true});
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.gateways_in_service(clock_.now()),
            (std::vector<std::string>{"prescale-gateway-1", "prescale-gateway-2"}));
  // With no list for 30 s, the count is not known.
  fake_.fail_with(500);
  clock_.advance(31s);
  world.observe(clock_.now());
  EXPECT_EQ(world.gateways_in_service(clock_.now()), std::nullopt);
}

TEST_F(KubeWorldTest, ADeletedPodHasNoNewRequestsFromItsDeadlineOrItsReadinessEnd) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  // Deleted while ready: it serves through its preStop wait, up to its grace period's end (30 s
  // ahead of the controller's 00:01:00).
  fake_.set_pod({.name = "web-a",
                 .app = "web",
                 .ports = {{"http", web_a_.port()}},
                 .deleting = true,
                 .deleted_by = "2026-01-01T00:01:30Z"});
  // Deleted after it had stopped being ready: out of its Service since then (and the leave time).
  fake_.set_pod({.name = "web-b",
                 .app = "web",
                 .ports = {{"http", 1}},
                 .ready = false,
                 .created = "2026-01-01T00:00:55Z",
                 .not_ready_since = "2026-01-01T00:00:58Z",
                 .deleting = true,
                 .deleted_by = "2026-01-01T00:01:30Z"});
  const scaling::ServiceObservation* web = world.observe(clock_.now()).service("web");
  EXPECT_EQ(web->replicas[0].state, scaling::ReplicaState::kDraining);
  EXPECT_EQ(web->replicas[0].draining_since, clock_.now() + 30s);
  EXPECT_EQ(web->replicas[1].draining_since, clock_.now() - 2s + 11s);
}

TEST_F(KubeWorldTest, EachGatewaysShareOfAServiceFollowsWhatItCarries) {
  MetricsPort second;
  second.set(gateway_metrics(0, 0, 0));
  fake_.set_pod({.name = "prescale-gateway-2",
                 .app = "prescale-gateway",
                 .ports = {{"http", 1}, {"admin", second.port()}}});
  KubeWorld world = make_world();
  world.observe(clock_.now());
  EXPECT_TRUE(world.gateway_shares("web", clock_.now()).empty()) << "nothing carried yet";
  // 300 requests through the first, 100 through the second.
  gateway_.set(gateway_metrics(1300, 400, 50));
  second.set(gateway_metrics(100, 0, 0));
  clock_.advance(1s);
  world.observe(clock_.now());
  auto shares = world.gateway_shares("web", clock_.now());
  EXPECT_NEAR(shares.at("prescale-gateway-1"), 0.75, 1e-9);
  EXPECT_NEAR(shares.at("prescale-gateway-2"), 0.25, 1e-9);
  // The balancer turns: the shares follow within seconds (sums decaying over 5 s).
  for (int i = 1; i <= 15; ++i) {
    gateway_.set(gateway_metrics(1300 + 100 * i, 400, 50));
    second.set(gateway_metrics(100 + 300 * i, 0, 0));
    clock_.advance(1s);
    world.observe(clock_.now());
    shares = world.gateway_shares("web", clock_.now());
    EXPECT_NEAR(shares.at("prescale-gateway-1") + shares.at("prescale-gateway-2"), 1, 1e-9);
    if (i == 1) {
      // (0.25 k + 0.75) / (k + 1), k = e^-0.2
      EXPECT_NEAR(shares.at("prescale-gateway-2"), 0.525, 0.001);
    }
  }
  EXPECT_NEAR(shares.at("prescale-gateway-2"), 0.75, 0.01);
  // A gateway leaving service leaves the others all of it.
  fake_.set_pod({.name = "prescale-gateway-1",
                 .app = "prescale-gateway",
                 .ports = {{"http", 1}, {"admin", gateway_.port()}},
                 .deleting = true});
  clock_.advance(1s);
  world.observe(clock_.now());
  shares = world.gateway_shares("web", clock_.now());
  EXPECT_EQ(shares.size(), 1u);
  EXPECT_NEAR(shares.at("prescale-gateway-2"), 1.0, 1e-9);
  EXPECT_TRUE(world.gateway_shares("checkout", clock_.now()).empty()) << "no calls to it";
}

TEST_F(KubeWorldTest, AGatewayBackFromMissedLooksKeepsItsShare) {
  MetricsPort second;
  second.set(gateway_metrics(0, 0, 0));
  fake_.set_pod({.name = "prescale-gateway-2",
                 .app = "prescale-gateway",
                 .ports = {{"http", 1}, {"admin", second.port()}}});
  KubeWorld world = make_world();
  world.observe(clock_.now());
  // Both carry 100 requests a second; the second misses two looks, and its 300 come at once.
  int first_count = 1000, second_count = 0;
  for (int t = 1; t <= 10; ++t) {
    first_count += 100;
    second_count += 100;
    gateway_.set(gateway_metrics(first_count, 400, 50));
    const bool missed = t == 8 || t == 9;
    second.set(missed ? "" : gateway_metrics(second_count, 0, 0), missed ? 503 : 200);
    clock_.advance(1s);
    world.observe(clock_.now());
  }
  const auto shares = world.gateway_shares("web", clock_.now());
  EXPECT_NEAR(shares.at("prescale-gateway-2"), 0.5, 1e-9)
      << "its growth weighed as a steady rate over the gap, as the first's three looks were";
}

}  // namespace
}  // namespace prescale::kube

namespace prescale::kube {
namespace {

constexpr char kDeletionCost[] = "controller.kubernetes.io/pod-deletion-cost";
constexpr char kSurgedFrom[] = "prescale.dev/surged-from";

// A pod replaced when ready: marked to go first, a surge of one, and the Deployment back to
// desired once the service's other ready pods are as many as desired — no eviction, the
// ReplicaSet removes the pod of the lowest cost. Meanwhile the policy's scale keeps the surge on
// top and desired is the policy's; a second replacement of the service waits.
TEST_F(KubeWorldTest, APodReplacedWhenReadyLeavesOnceItsReplacementIsReady) {
  fake_.set_pod({.name = "web-b", .app = "web", .ports = {{"http", 1}}});
  KubeWorld world = make_world();
  world.observe(clock_.now());
  ASSERT_TRUE(world.replace_when_ready("web-a").has_value());
  ASSERT_TRUE(fake_.pod("web-a").has_value());
  EXPECT_EQ(
      fake_.pod("web-a")->annotations,
      (std::map<std::string, std::string>{{kDeletionCost, "-2147483648"}, {kSurgedFrom, "2"}}));
  EXPECT_EQ(fake_.replicas("web"), 3);
  const auto second = world.replace_when_ready("web-b");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable) << second.error().message;
  EXPECT_EQ(world.observe(clock_.now()).service("web")->desired_replicas, 2);
  ASSERT_TRUE(world.scale("web", 4).has_value());
  EXPECT_EQ(fake_.replicas("web"), 5);
  EXPECT_EQ(world.observe(clock_.now()).service("web")->desired_replicas, 4);
  ASSERT_TRUE(world.scale("web", 2).has_value());
  EXPECT_EQ(fake_.replicas("web"), 3);

  // The new pod starting: the surge stays.
  fake_.set_pod({.name = "web-c", .app = "web", .ports = {{"http", 1}}, .ready = false});
  clock_.advance(5s);
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 3);
  // Ready: back to 2, and nothing evicted.
  fake_.set_pod({.name = "web-c", .app = "web", .ports = {{"http", 1}}});
  clock_.advance(5s);
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 2);
  EXPECT_TRUE(fake_.deleted().empty());
  // The ReplicaSet removes web-a (the lowest cost); past the eviction's wait nothing is evicted.
  FakePod leaving = *fake_.pod("web-a");
  leaving.deleting = true;
  fake_.set_pod(leaving);
  clock_.advance(30s);
  const scaling::Snapshot& after = world.observe(clock_.now());
  EXPECT_EQ(after.service("web")->replicas[0].state, scaling::ReplicaState::kDraining);
  EXPECT_TRUE(fake_.deleted().empty());
  EXPECT_EQ(fake_.replicas("web"), 2);
  // Over: the next pod of web may be replaced.
  EXPECT_TRUE(world.replace_when_ready("web-b").has_value());
  EXPECT_EQ(fake_.replicas("web"), 3);
  EXPECT_TRUE(problems_.empty()) << problems_.front();
}

// A pod the ReplicaSet kept (it removed another) is evicted once the wait is over; a replacement
// never ready is given up after 5 minutes, the Deployment back to desired and the pod kept, said.
TEST_F(KubeWorldTest, APodTheReplicaSetKeptIsEvictedAndAReplacementNeverReadyIsGivenUp) {
  fake_.set_pod({.name = "web-b", .app = "web", .ports = {{"http", 1}}});
  KubeWorld world = make_world();
  world.observe(clock_.now());
  ASSERT_TRUE(world.replace_when_ready("web-a").has_value());
  fake_.set_pod({.name = "web-c", .app = "web", .ports = {{"http", 1}}});
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 2);
  clock_.advance(5s);
  world.observe(clock_.now());
  EXPECT_TRUE(fake_.deleted().empty());
  clock_.advance(6s);
  world.observe(clock_.now());
  EXPECT_EQ(fake_.deleted(), std::vector<std::string>{"web-a"});
  world.observe(clock_.now());  // it leaves: over

  ASSERT_TRUE(world.replace_when_ready("web-b").has_value());
  EXPECT_EQ(fake_.replicas("web"), 3);
  clock_.advance(5min);
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 3);
  EXPECT_TRUE(problems_.empty()) << problems_.front();
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 2);
  ASSERT_EQ(problems_.size(), 1u);
  EXPECT_NE(problems_[0].find("replacing web-b of web given up"), std::string::npos)
      << problems_[0];
  EXPECT_EQ(fake_.deleted(), std::vector<std::string>{"web-a"});
  // Its mark is off (a later one of web must not tie with it), and the controller hears of it.
  EXPECT_FALSE(fake_.pod("web-b")->annotations.contains(kDeletionCost));
  EXPECT_EQ(world.take_given_up(), std::vector<std::string>{"web-b"});
  EXPECT_TRUE(world.take_given_up().empty());
  EXPECT_EQ(world.replace_when_ready("web-zz").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(world.replace_when_ready("prescale-gateway-1").error().code, ErrorCode::kNotFound);
}

// A pod that leaves during the surge (the policy scaled down, and its ReplicaSet removed the marked
// pod first) ends its replacement, its Deployment back to desired and nothing evicted. A surge
// that fails (no Deployment) takes the pod's mark off again.
TEST_F(KubeWorldTest, APodLeavingDuringTheSurgeEndsItAndAFailedSurgeTakesTheMarkOff) {
  fake_.set_pod({.name = "web-b", .app = "web", .ports = {{"http", 1}}});
  KubeWorld world = make_world();
  world.observe(clock_.now());
  ASSERT_TRUE(world.replace_when_ready("web-a").has_value());
  EXPECT_TRUE(world.replace_when_ready("web-a").has_value());  // the same pod: under way
  ASSERT_TRUE(world.scale("web", 1).has_value());
  EXPECT_EQ(fake_.replicas("web"), 2);
  FakePod leaving = *fake_.pod("web-a");
  leaving.deleting = true;
  fake_.set_pod(leaving);
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 1);
  clock_.advance(30s);
  world.observe(clock_.now());
  EXPECT_TRUE(fake_.deleted().empty());

  fake_.remove_deployment("web");
  const auto failed = world.replace_when_ready("web-b");
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kUnavailable) << failed.error().message;
  EXPECT_FALSE(fake_.pod("web-b")->annotations.contains(kDeletionCost));
  EXPECT_TRUE(problems_.empty()) << problems_.front();
}

// Evictions the PodDisruptionBudget refuses are tried at each look, said once, and given up after
// 5 minutes, the pod's mark off.
TEST_F(KubeWorldTest, AnEvictionRefusedForFiveMinutesIsGivenUp) {
  fake_.set_pod({.name = "web-b", .app = "web", .ports = {{"http", 1}}});
  KubeWorld world = make_world();
  world.observe(clock_.now());
  ASSERT_TRUE(world.replace_when_ready("web-a").has_value());
  fake_.set_pod({.name = "web-c", .app = "web", .ports = {{"http", 1}}});
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 2);
  // The ReplicaSet kept web-a and removed another; one more is starting, so evictions are refused.
  fake_.set_pod({.name = "web-d", .app = "web", .ports = {{"http", 1}}, .ready = false});
  for (int i = 0; i < 30; ++i) {
    clock_.advance(10s);
    world.observe(clock_.now());
  }
  EXPECT_TRUE(fake_.deleted().empty());
  ASSERT_EQ(problems_.size(), 1u);
  EXPECT_NE(problems_[0].find("evicting it failed"), std::string::npos) << problems_[0];
  EXPECT_TRUE(world.take_given_up().empty());
  clock_.advance(10s);
  world.observe(clock_.now());
  ASSERT_EQ(problems_.size(), 2u);
  EXPECT_NE(problems_[1].find("replacing web-a of web given up"), std::string::npos)
      << problems_[1];
  EXPECT_EQ(world.take_given_up(), std::vector<std::string>{"web-a"});
  EXPECT_FALSE(fake_.pod("web-a")->annotations.contains(kDeletionCost));
}

// A replacement a controller before this one began goes on from where it was: surged (the pod
// carries the replicas desired before the surge), it ends when another pod is ready; gone back
// already, the pod the ReplicaSet kept is evicted. Not acted on when told not to
// (--recommend-only).
TEST_F(KubeWorldTest, AReplacementUnderWayWhenTheControllerStartedGoesOn) {
  fake_.set_pod({.name = "web-b", .app = "web", .ports = {{"http", 1}}});
  fake_.set_pod({.name = "web-a",
                 .app = "web",
                 .ports = {{"http", web_a_.port()}},
                 .annotations = {{kDeletionCost, "-2147483648"}, {kSurgedFrom, "2"}}});
  fake_.set_deployment("web", 3);
  {
    KubeWorldOptions o;
    o.clock = &clock_;
    o.scrape_interval = 0s;
    o.act_on_replacements = false;
    KubeWorld advisor(api_, {spec("web")}, o);
    EXPECT_EQ(advisor.observe(clock_.now()).service("web")->desired_replicas, 3);
    clock_.advance(10min);
    advisor.observe(clock_.now());
    EXPECT_EQ(fake_.replicas("web"), 3);
    EXPECT_TRUE(fake_.deleted().empty());
  }
  KubeWorld world = make_world();
  EXPECT_EQ(world.observe(clock_.now()).service("web")->desired_replicas, 2);
  EXPECT_TRUE(world.replace_when_ready("web-a").has_value());
  EXPECT_EQ(world.replace_when_ready("web-b").error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(fake_.replicas("web"), 3);
  fake_.set_pod({.name = "web-c", .app = "web", .ports = {{"http", 1}}});
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 2);
  // Back to desired: the pod keeps its mark, not the surge's record.
  EXPECT_EQ(fake_.pod("web-a")->annotations,
            (std::map<std::string, std::string>{{kDeletionCost, "-2147483648"}}));

  // A controller that starts now finds it marked with no surge (its ReplicaSet kept it): it surges
  // anew, goes back once the others are ready, and evicts it 10 s on if the ReplicaSet keeps it
  // again.
  KubeWorld next = make_world();
  EXPECT_EQ(next.observe(clock_.now()).service("web")->desired_replicas, 2);
  EXPECT_EQ(fake_.replicas("web"), 3);
  EXPECT_EQ(fake_.pod("web-a")->annotations[kSurgedFrom], "2");
  EXPECT_EQ(next.replace_when_ready("web-b").error().code, ErrorCode::kUnavailable);
  clock_.advance(1s);
  next.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 2);
  EXPECT_TRUE(fake_.deleted().empty());
  clock_.advance(11s);
  next.observe(clock_.now());
  EXPECT_EQ(fake_.deleted(), std::vector<std::string>{"web-a"});
  EXPECT_EQ(fake_.replicas("web"), 2);
}

// The gateways' ejections of a pod, by its address: those counted before the controller started are
// the past; each new one is told once, by pod; an address no pod of the service has is left out.
TEST_F(KubeWorldTest, EachGatewayEjectionOfAPodIsToldByItsName) {
  const std::string web_a = "127.0.0.1:" + std::to_string(web_a_.port());
  auto metrics = [&](int of_web_a, int of_other) {
    return gateway_metrics(1000, 400, 50) +
           "# TYPE prescale_gateway_endpoint_ejections_total counter\n"
           "prescale_gateway_endpoint_ejections_total{service=\"web\",endpoint=\"" +
           web_a + "\"} " + std::to_string(of_web_a) +
           "\n"
           "prescale_gateway_endpoint_ejections_total{service=\"web\",endpoint=\"10.0.0.9:80\"} " +
           std::to_string(of_other) + "\n";
  };
  gateway_.set(metrics(3, 1));
  KubeWorld world = make_world();
  world.observe(clock_.now());
  EXPECT_TRUE(world.take_ejections().empty());
  gateway_.set(metrics(5, 4));
  clock_.advance(1s);
  world.observe(clock_.now());
  using Ejection = std::pair<std::string, std::string>;
  EXPECT_EQ(world.take_ejections(), (std::vector<Ejection>{{"web", "web-a"}, {"web", "web-a"}}));
  EXPECT_TRUE(world.take_ejections().empty());
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_TRUE(world.take_ejections().empty());
}

// Gateways eject on their own: two that eject a pod in the same look tell it once (as the one
// that ejected it most often did), so that `healer.ejections` counts a pod's ejections, not the
// gateways'. An IPv6 address finds its pod too.
TEST_F(KubeWorldTest, TwoGatewaysEjectingAPodAtOnceTellItOnce) {
  MetricsPort second;
  fake_.set_pod({.name = "prescale-gateway-2",
                 .app = "prescale-gateway",
                 .ports = {{"http", 1}, {"admin", second.port()}}});
  fake_.set_pod({.name = "web-b", .app = "web", .ip = "fd00::5", .ports = {{"http", 8080}}});
  auto metrics = [&](int of_web_a, int of_web_b) {
    return gateway_metrics(1000, 400, 50) +
           "# TYPE prescale_gateway_endpoint_ejections_total counter\n"
           "prescale_gateway_endpoint_ejections_total{service=\"web\",endpoint=\"127.0.0.1:" +
           std::to_string(web_a_.port()) + "\"} " + std::to_string(of_web_a) +
           "\nprescale_gateway_endpoint_ejections_total{service=\"web\",endpoint=\"[fd00::5]:"
           "8080\"} " +
           std::to_string(of_web_b) + "\n";
  };
  gateway_.set(metrics(0, 0));
  second.set(metrics(0, 0));
  KubeWorld world = make_world();
  world.observe(clock_.now());
  EXPECT_TRUE(world.take_ejections().empty());
  gateway_.set(metrics(1, 1));
  second.set(metrics(1, 2));
  clock_.advance(1s);
  world.observe(clock_.now());
  using Ejection = std::pair<std::string, std::string>;
  EXPECT_EQ(world.take_ejections(),
            (std::vector<Ejection>{{"web", "web-a"}, {"web", "web-b"}, {"web", "web-b"}}));
}

// A pod's breaker openings, by its address: told once a look however many openings and gateways
// (the healer counts one per 30 s), those before the controller started not at all, and apart
// from the outlier ejections (an open breaker is no verdict on a release).
TEST_F(KubeWorldTest, APodsBreakerOpeningsAreToldOnceALookApartFromEjections) {
  MetricsPort second;
  fake_.set_pod({.name = "prescale-gateway-2",
                 .app = "prescale-gateway",
                 .ports = {{"http", 1}, {"admin", second.port()}}});
  const std::string web_a = "127.0.0.1:" + std::to_string(web_a_.port());
  auto metrics = [&](int openings) {
    return gateway_metrics(1000, 400, 50) +
           "# TYPE prescale_gateway_endpoint_breaker_openings_total counter\n"
           "prescale_gateway_endpoint_breaker_openings_total{service=\"web\",endpoint=\"" +
           web_a + "\"} " + std::to_string(openings) +
           "\n"
           "prescale_gateway_endpoint_breaker_openings_total{service=\"web\",endpoint=\"10.0.0.9:"
           "80\"} " +
           std::to_string(openings) + "\n";
  };
  gateway_.set(metrics(2));
  second.set(metrics(0));
  KubeWorld world = make_world();
  world.observe(clock_.now());
  EXPECT_TRUE(world.take_breaker_openings().empty()) << "the past";
  gateway_.set(metrics(5));
  second.set(metrics(1));
  clock_.advance(1s);
  world.observe(clock_.now());
  using Opening = std::pair<std::string, std::string>;
  EXPECT_EQ(world.take_breaker_openings(), (std::vector<Opening>{{"web", "web-a"}}));
  EXPECT_TRUE(world.take_ejections().empty());
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_TRUE(world.take_breaker_openings().empty()) << "none since";
  second.set(metrics(2));
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.take_breaker_openings(), (std::vector<Opening>{{"web", "web-a"}}));
}

// A controller that starts and finds a pod marked whose record of a surge the Deployment does not
// hold (the policy scaled since, or it went back) surges anew from the Deployment's replicas, with
// the record made right, and goes back once the others are ready; during a rollout it evicts no
// pod the ReplicaSet kept.
TEST_F(KubeWorldTest, AMarkedPodWhoseSurgeTheDeploymentDoesNotHoldIsSurgedAnew) {
  fake_.set_pod({.name = "web-b", .app = "web", .ports = {{"http", 1}}});
  fake_.set_pod({.name = "web-a",
                 .app = "web",
                 .ports = {{"http", web_a_.port()}},
                 .annotations = {{kDeletionCost, "-2147483648"}, {kSurgedFrom, "3"}}});
  fake_.set_deployment("web", 2);
  KubeWorld world = make_world();
  EXPECT_EQ(world.observe(clock_.now()).service("web")->desired_replicas, 2);
  EXPECT_EQ(fake_.replicas("web"), 3);
  EXPECT_EQ(fake_.pod("web-a")->annotations[kSurgedFrom], "2");
  // A rollout begins (as the Deployments were last read: their status is read at each look here).
  fake_.set_rollout("web", /*updated=*/1);
  world.observe(clock_.now());
  fake_.set_pod({.name = "web-c", .app = "web", .ports = {{"http", 1}}});
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(fake_.replicas("web"), 2);
  EXPECT_FALSE(fake_.pod("web-a")->annotations.contains(kSurgedFrom));
  // The ReplicaSet kept it, but no eviction while the rollout goes on.
  for (int i = 0; i < 3; ++i) {
    clock_.advance(11s);
    world.observe(clock_.now());
  }
  EXPECT_TRUE(fake_.deleted().empty());
  fake_.set_rollout("web", /*updated=*/2);
  clock_.advance(1s);
  world.observe(clock_.now());
  world.observe(clock_.now());
  EXPECT_EQ(fake_.deleted(), std::vector<std::string>{"web-a"});
}

// A service pod whose container restarted is told by name, once per restart (its restartCount
// grew); the gateway's pods are not the healer's.
TEST_F(KubeWorldTest, APodWhoseContainerRestartedIsTold) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  EXPECT_TRUE(world.take_restarted().empty());
  fake_.set_pod({.name = "web-a", .app = "web", .ports = {{"http", web_a_.port()}}, .restarts = 1});
  fake_.set_pod({.name = "prescale-gateway-1",
                 .app = "prescale-gateway",
                 .ports = {{"http", 1}, {"admin", gateway_.port()}},
                 .restarts = 1});
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.take_restarted(), std::vector<std::string>{"web-a"});
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_TRUE(world.take_restarted().empty());
  // Twice between two looks: told twice.
  fake_.set_pod({.name = "web-a", .app = "web", .ports = {{"http", web_a_.port()}}, .restarts = 3});
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.take_restarted(), (std::vector<std::string>{"web-a", "web-a"}));
}

// A gateway's counts of its attempts at each address: `ok` answered 200 within 5 ms, `failed`
// answered 503 (ok and failed together in the histogram).
std::string upstream_metrics(const std::map<std::string, std::pair<int, int>>& by_address) {
  std::string out = "# TYPE prescale_gateway_upstream_requests_total counter\n";
  for (const auto& [address, n] : by_address) {
    const std::string at = "route=\"/\",upstream=\"" + address + "\"";
    out += "prescale_gateway_upstream_requests_total{" + at + ",code=\"200\"} " +
           std::to_string(n.first) + "\n";
    out += "prescale_gateway_upstream_requests_total{" + at + ",code=\"503\"} " +
           std::to_string(n.second) + "\n";
  }
  out += "# TYPE prescale_gateway_upstream_request_duration_seconds histogram\n";
  for (const auto& [address, n] : by_address) {
    const std::string at = "route=\"/\",upstream=\"" + address + "\"";
    const std::string all = std::to_string(n.first + n.second);
    out += "prescale_gateway_upstream_request_duration_seconds_bucket{" + at + ",le=\"0.005\"} " +
           all + "\n";
    out += "prescale_gateway_upstream_request_duration_seconds_bucket{" + at + ",le=\"+Inf\"} " +
           all + "\n";
    out += "prescale_gateway_upstream_request_duration_seconds_sum{" + at + "} " +
           std::to_string(0.004 * (n.first + n.second)) + "\n";
    out += "prescale_gateway_upstream_request_duration_seconds_count{" + at + "} " + all + "\n";
  }
  return out;
}

// The pod template of revision `image`'s ReplicaSet, as the API returns it (with its
// pod-template-hash label), and `env` where the revision has one.
nlohmann::json web_template(const std::string& image, const std::string& hash,
                            const std::string& env = "") {
  nlohmann::json container = {{"name", "web"}, {"image", image}};
  if (!env.empty()) container["env"] = {{{"name", "MODE"}, {"value", env}}};
  nlohmann::json t = {{"metadata",
                       {{"labels", {{"app.kubernetes.io/name", "web"}}},
                        {"annotations", {{"checksum/config", image}}}}},
                      {"spec", {{"containers", nlohmann::json::array({container})}}}};
  if (!hash.empty()) t["metadata"]["labels"]["pod-template-hash"] = hash;
  return t;
}

class KubeRolloutTest : public KubeWorldTest {
 protected:
  // web rolls out revision 2 (ReplicaSet web-bbb: web-n, 10.0.0.5:8080) over revision 1
  // (web-aaa: web-a), and a revision 0 ReplicaSet with no pods left.
  KubeRolloutTest() {
    fake_.set_template("web", 2, web_template("web:2", "", "fast"));
    fake_.set_rollout("web", /*updated=*/1);
    set_web_replica_set("aaa", 1, 1, "web:1");
    set_web_replica_set("bbb", 2, 1, "web:2", "fast");
    set_web_replica_set("zzz", 0, 0, "web:0");
    fake_.set_pod({.name = "web-a",
                   .app = "web",
                   .ports = {{"http", web_a_.port()}},
                   .template_hash = "aaa"});
    fake_.remove_pod("web-b");
    fake_.set_pod({.name = "web-n",
                   .app = "web",
                   .ip = "10.0.0.5",
                   .ports = {{"http", 8080}},
                   .ready_since = "2026-01-01T00:00:50Z",
                   .template_hash = "bbb"});
  }
  std::string web_a() const { return "127.0.0.1:" + std::to_string(web_a_.port()); }
  // web's ReplicaSet web-<hash>, of the template web_template(image, hash, env).
  void set_web_replica_set(const std::string& hash, int revision, int replicas,
                           const std::string& image, const std::string& env = "") {
    fake_.set_replica_set({.name = "web-" + hash,
                           .deployment = "web",
                           .hash = hash,
                           .revision = revision,
                           .replicas = replicas,
                           .pod_template = web_template(image, hash, env)});
  }
};

// Each pod's revision is its ReplicaSet's, and the attempts at each address are what the gateways
// counted since they were first read, summed over them (a gateway that came later counts all).
TEST_F(KubeRolloutTest, ARolloutIsToldWithEachPodsRevisionAndTheAttemptsAtItsAddress) {
  gateway_.set(gateway_metrics(1000, 400, 50) +
               upstream_metrics({{web_a(), {500, 5}}, {"10.0.0.5:8080", {0, 0}}}));
  KubeWorld world = make_world();
  world.observe(clock_.now());
  using Revisions = std::map<std::string, healing::RolloutRevisions>;
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {2, 1}}}));
  const std::vector<healing::RolloutReplica> pods = world.rollout_replicas();
  ASSERT_EQ(pods.size(), 2u);
  EXPECT_EQ(pods[0].id, "web-a");
  EXPECT_EQ(pods[0].revision, 1);
  EXPECT_EQ(pods[0].upstream, web_a());
  EXPECT_EQ(pods[1].id, "web-n");
  EXPECT_EQ(pods[1].revision, 2);
  EXPECT_EQ(pods[1].upstream, "10.0.0.5:8080");
  EXPECT_EQ(pods[1].process, "uid-web-n-2026-01-01T00:00:00Z/0");
  ASSERT_TRUE(pods[1].ready_at.has_value());
  EXPECT_EQ(*pods[1].ready_at, clock_.now() - 10s);  // ready at 00:00:50, now 00:01:00
  EXPECT_TRUE(world.upstream_attempts().empty());    // what came before is not counted

  MetricsPort second;  // a gateway that came later: all it counted is since it started
  fake_.set_pod({.name = "prescale-gateway-2",
                 .app = "prescale-gateway",
                 .ports = {{"http", 1}, {"admin", second.port()}}});
  second.set(upstream_metrics({{web_a(), {10, 0}}, {"10.0.0.5:8080", {7, 3}}}));
  gateway_.set(gateway_metrics(1100, 400, 50) +
               upstream_metrics({{web_a(), {540, 5}}, {"10.0.0.5:8080", {30, 10}}}));
  clock_.advance(1s);
  world.observe(clock_.now());
  const auto& counted = world.upstream_attempts();
  EXPECT_EQ(counted.at(web_a()).attempts, 50);
  EXPECT_EQ(counted.at(web_a()).failed, 0);
  EXPECT_EQ(counted.at("10.0.0.5:8080").attempts, 50);
  EXPECT_EQ(counted.at("10.0.0.5:8080").failed, 13);
  EXPECT_NEAR(counted.at("10.0.0.5:8080").latency_sum, 0.2, 1e-9);
  ASSERT_EQ(counted.at("10.0.0.5:8080").cumulative.size(), 2u);
  EXPECT_EQ(counted.at("10.0.0.5:8080").cumulative[1], 50);

  // The rollout ends: nothing rolls out, and an address no pod has is dropped.
  fake_.set_rollout("web", /*updated=*/2);
  fake_.remove_pod("web-n");
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_TRUE(world.rollouts().empty());
  EXPECT_TRUE(world.rollout_replicas().empty());
  EXPECT_FALSE(world.upstream_attempts().contains("10.0.0.5:8080"));
  EXPECT_TRUE(world.upstream_attempts().contains(web_a()));
  // Counts that went down (a gateway's restart the API did not tell) count afresh.
  second.set(upstream_metrics({{web_a(), {4, 1}}}));
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.upstream_attempts().at(web_a()).attempts, 55);
  EXPECT_EQ(world.upstream_attempts().at(web_a()).failed, 1);
}

// A rollback puts the old ReplicaSet's template back (its hash label left out, what the new one
// added taken off) on the resourceVersion read; the rollout back to it is not judged.
TEST_F(KubeRolloutTest, ARollbackPutsTheOldTemplateBackAndIsNotJudgedItself) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  EXPECT_EQ(world.roll_back("checkout").error().code, ErrorCode::kNotFound);  // not rolling out
  Result<int> back = world.roll_back("web");
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, 1);
  nlohmann::json expected = web_template("web:1", "aaa");
  expected["metadata"]["labels"].erase("pod-template-hash");
  EXPECT_EQ(fake_.pod_template("web"), expected);
  const auto patches = fake_.deployment_patches();
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].second["metadata"]["resourceVersion"], "2");
  using Revisions = std::map<std::string, healing::RolloutRevisions>;
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {2, 2}}}));  // nothing to judge
  EXPECT_EQ(world.roll_back("web").error().code, ErrorCode::kNotFound);
  // Nor before the Deployment controller acts on it (or while the Deployment is paused). The
  // Deployment carries the rollback's mark.
  EXPECT_FALSE(world.rolled_back("web", 2));  // not read yet
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {2, 2}}}));
  EXPECT_TRUE(world.rolled_back("web", 2));
  EXPECT_FALSE(world.rolled_back("web", 1));

  // The Deployment controller makes the old ReplicaSet revision 3, and rolls it out.
  fake_.set_template("web", 3, expected);
  set_web_replica_set("aaa", 3, 1, "web:1");
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {3, 3}}}));
  EXPECT_EQ(world.roll_back("web").error().code, ErrorCode::kNotFound);
}

// A Deployment written between the rollback's read and its patch (its status, often during a
// rollout) refuses the patch, 409: the rollback says so as a try to repeat and changes nothing;
// the next try, on a fresh read, applies it.
TEST_F(KubeRolloutTest, ARollbackRefusedAsAConflictIsTriedAgainOnAFreshRead) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  const nlohmann::json before = fake_.pod_template("web");
  fake_.change_before_next_patch("web");
  Result<int> back = world.roll_back("web");
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(back.error().message.find("deployment web changed while it was being rolled back"),
            std::string::npos)
      << back.error().message;
  EXPECT_NE(back.error().message.find("409"), std::string::npos) << back.error().message;
  EXPECT_TRUE(fake_.deployment_patches().empty());
  EXPECT_EQ(fake_.pod_template("web"), before);
  back = world.roll_back("web");
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, 1);
  const auto patches = fake_.deployment_patches();
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].second["metadata"]["resourceVersion"], "3");  // the fresh read's
  nlohmann::json expected = web_template("web:1", "aaa");
  expected["metadata"]["labels"].erase("pod-template-hash");
  EXPECT_EQ(fake_.pod_template("web"), expected);
}

// A rollback whose patch was applied though its answer was lost is found done at the next try, by
// its mark; the same template put back by another hand is not this controller's rollback.
TEST_F(KubeRolloutTest, ARollbackAlreadyAppliedIsDoneWithNoOtherPatch) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  nlohmann::json old = web_template("web:1", "aaa");
  old["metadata"]["labels"].erase("pod-template-hash");
  fake_.set_template("web", 2, old);
  Result<int> back = world.roll_back("web");
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(back.error().message,
            "deployment web went back to revision 1's template by another hand");
  // A mark copied from another object (a Deployment made again from its YAML) is not this one's.
  fake_.set_annotation("web", "prescale.dev/rolled-back-from", "2");
  fake_.set_annotation("web", "prescale.dev/rolled-back-to", "aaa");
  fake_.set_annotation("web", "prescale.dev/rolled-back-uid", "uid-of-a-deleted-one");
  back = world.roll_back("web");
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().code, ErrorCode::kNotFound);
  fake_.set_annotation("web", "prescale.dev/rolled-back-uid", "uid-deployment-web");
  back = world.roll_back("web");
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, 1);
  EXPECT_TRUE(fake_.deployment_patches().empty());
  using Revisions = std::map<std::string, healing::RolloutRevisions>;
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {2, 2}}}));
}

// The same when the Deployment controller has made a revision of it by then.
TEST_F(KubeRolloutTest, ARollbackAppliedAndMadeARevisionOfIsDone) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  nlohmann::json old = web_template("web:1", "aaa");
  old["metadata"]["labels"].erase("pod-template-hash");
  fake_.set_template("web", 3, old);
  fake_.set_annotation("web", "prescale.dev/rolled-back-from", "2");
  fake_.set_annotation("web", "prescale.dev/rolled-back-to", "aaa");
  fake_.set_annotation("web", "prescale.dev/rolled-back-uid", "uid-deployment-web");
  Result<int> back = world.roll_back("web");
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_TRUE(fake_.deployment_patches().empty());
}

// A controller that starts while its predecessor's rollback rolls out does not judge it against
// the revision it failed: the rollback marks the Deployment with that revision.
TEST_F(KubeRolloutTest, ARollbackIsNotJudgedByTheNextController) {
  {
    KubeWorld world = make_world();
    world.observe(clock_.now());
    ASSERT_TRUE(world.roll_back("web").has_value());
  }
  ASSERT_EQ(fake_.deployment_patches().size(), 1u);
  const nlohmann::json mark = fake_.deployment_patches()[0].second["metadata"]["annotations"];
  EXPECT_EQ(mark["prescale.dev/rolled-back-from"], "2");
  EXPECT_EQ(mark["prescale.dev/rolled-back-to"], "aaa");
  EXPECT_EQ(mark["prescale.dev/rolled-back-uid"], "uid-deployment-web");
  // Before the Deployment controller acts on it (the failed revision is the Deployment's still).
  {
    KubeWorld next = make_world();
    next.observe(clock_.now());
    using Revisions = std::map<std::string, healing::RolloutRevisions>;
    EXPECT_EQ(next.rollouts(), (Revisions{{"web", {2, 2}}}));
  }
  // The Deployment controller takes web-aaa up again as revision 3; web-bbb, the failed one,
  // still has as many pods.
  fake_.set_template("web", 3, fake_.pod_template("web"));
  set_web_replica_set("aaa", 3, 1, "web:1");
  KubeWorld next = make_world();
  next.observe(clock_.now());
  using Revisions = std::map<std::string, healing::RolloutRevisions>;
  EXPECT_EQ(next.rollouts(), (Revisions{{"web", {3, 3}}}));
}

// A rollout that ends and another that begins between two reads: the new one's old side is the
// ReplicaSet that still has pods, not the first rollout's.
TEST_F(KubeRolloutTest, ARolloutBegunBetweenTwoReadsHasTheOldSideWithPods) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  set_web_replica_set("aaa", 1, 0, "web:1");
  set_web_replica_set("bbb", 2, 2, "web:2", "fast");
  set_web_replica_set("ccc", 3, 1, "web:3");
  fake_.set_template("web", 3, web_template("web:3", ""));
  clock_.advance(1s);
  world.observe(clock_.now());
  using Revisions = std::map<std::string, healing::RolloutRevisions>;
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {3, 2}}}));
}

// An edit made since the last read (another revision rolls out by now) is not rolled back.
TEST_F(KubeRolloutTest, ADeploymentEditedSinceTheLastReadIsNotRolledBack) {
  KubeWorld world = make_world();
  world.observe(clock_.now());
  fake_.set_template("web", 4, web_template("web:4", ""));
  Result<int> back = world.roll_back("web");
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(back.error().message,
            "deployment web rolls out revision 4 by now, not 2: not rolled back");
  EXPECT_TRUE(fake_.deployment_patches().empty());
  // Back to revision 2 as before.
  fake_.set_template("web", 2, web_template("web:2", "", "fast"));
  clock_.advance(1s);
  world.observe(clock_.now());
  // Nor while a change (an edit, a scale) is not acted on yet, or the Deployment is paused: asked
  // again later.
  fake_.set_observed_lag("web", 1);
  back = world.roll_back("web");
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().code, ErrorCode::kUnavailable);
  fake_.set_observed_lag("web", 0);
  fake_.set_paused("web", true);
  back = world.roll_back("web");
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(back.error().message,
            "deployment web is paused (kubectl rollout resume, or roll it back yourself)");
  fake_.set_paused("web", false);
  // Nor one the Deployment controller has not made a revision of yet.
  fake_.set_template("web", 2, web_template("web:3", "", "fast"));
  back = world.roll_back("web");
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().message, "deployment web was edited since revision 2: not rolled back");
  EXPECT_TRUE(fake_.deployment_patches().empty());
}

// A ReplicaSet that a Deployment of the same name, deleted since, left behind is no side of a
// rollout; a third revision rolls out over the same old side as the second; a return to the old
// side during a rollout (someone's `kubectl rollout undo`, a rollback whose answer was lost) rolls
// out unjudged.
TEST_F(KubeRolloutTest, TheOldSideIsTheDeploymentsOwnAndKeptWhileItRolls) {
  fake_.set_replica_set({.name = "web-old",
                         .deployment = "web",
                         .hash = "ooo",
                         .revision = 3,
                         .replicas = 5,
                         .pod_template = web_template("web:old", "ooo"),
                         .owner_uid = "uid-of-a-deleted-one"});
  KubeWorld world = make_world();
  world.observe(clock_.now());
  using Revisions = std::map<std::string, healing::RolloutRevisions>;
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {2, 1}}}));
  // An edit during the rollout: revision 3 over revision 1 still, though revision 2 has more pods.
  fake_.set_template("web", 3, web_template("web:3", ""));
  set_web_replica_set("bbb", 2, 2, "web:2", "fast");
  set_web_replica_set("ccc", 3, 1, "web:3");
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {3, 1}}}));
  // Someone rolls back to revision 1: its ReplicaSet, taken up again, is revision 4. (A list of
  // ReplicaSets that lags the Deployments' meanwhile changes nothing.)
  fake_.set_template("web", 4, web_template("web:1", ""));
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {3, 1}}}));
  set_web_replica_set("aaa", 4, 1, "web:1");
  clock_.advance(1s);
  world.observe(clock_.now());
  EXPECT_EQ(world.rollouts(), (Revisions{{"web", {4, 4}}}));
}

}  // namespace
}  // namespace prescale::kube
