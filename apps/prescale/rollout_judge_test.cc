#include "rollout_judge.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "telemetry/registry.h"
#include "worlds/kube/api_client.h"
#include "worlds/kube/fake_api_server.h"
#include "worlds/kube/kube_world.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using kube::fake::FakeApiServer;

// web's pod template of `image`, with the pod-template-hash label of its ReplicaSet (none: as the
// Deployment holds it).
nlohmann::json web_template(const std::string& image, const std::string& hash) {
  nlohmann::json t = {{"metadata", {{"labels", {{"app.kubernetes.io/name", "web"}}}}},
                      {"spec", {{"containers", {{{"name", "web"}, {"image", image}}}}}}};
  if (!hash.empty()) t["metadata"]["labels"]["pod-template-hash"] = hash;
  return t;
}

// web rolls out revision 2 (ReplicaSet web-bbb, pod web-n) over revision 1 (web-aaa, web-a), as
// the stand-in API server tells it; no gateway pods (the analysis has nothing to count: restarts
// fail the revision here).
class RolloutJudgeTest : public ::testing::Test {
 protected:
  RolloutJudgeTest()
      : clock_(*parse_utc("2026-01-01T00:01:00Z")), api_(*kube::config_from_url(fake_.url())) {
    fake_.set_deployment("web", 2);
    fake_.set_template("web", 2, web_template("web:2", ""));
    fake_.set_rollout("web", /*updated=*/1);
    set_replica_set("aaa", 1, "web:1");
    set_replica_set("bbb", 2, "web:2");
    fake_.set_pod(
        {.name = "web-a", .app = "web", .ports = {{"http", 8080}}, .template_hash = "aaa"});
    fake_.set_pod({.name = "web-n",
                   .app = "web",
                   .ip = "10.0.0.5",
                   .ports = {{"http", 8080}},
                   .template_hash = "bbb"});
  }
  void set_replica_set(const std::string& hash, int revision, const std::string& image) {
    fake_.set_replica_set({.name = "web-" + hash,
                           .deployment = "web",
                           .hash = hash,
                           .revision = revision,
                           .replicas = 1,
                           .pod_template = web_template(image, hash)});
  }
  kube::KubeWorld make_world() {
    kube::KubeWorldOptions o;
    o.clock = &clock_;
    o.scrape_interval = 0s;
    o.on_problem = [](const std::string&) {};
    scaling::ServiceSpec web;
    web.name = "web";
    web.min_replicas = 1;
    web.max_replicas = 10;
    web.slo_latency_p99_seconds = 0.1;
    return kube::KubeWorld(api_, {web}, o);
  }
  // One look of the controller's at `clock_`'s now, `restarted` told by the world.
  void look(kube::KubeWorld& world, RolloutJudge& judge, const std::vector<std::string>& restarted,
            bool recommend_only = false) {
    world.observe(clock_.now());
    std::vector<std::pair<std::string, std::string>> ejections, openings;
    judge.look(restarted, ejections, openings, /*analysis=*/true, recommend_only, clock_.now());
  }
  double rollbacks() { return rollbacks_.with({"web"}).value(); }

  FakeApiServer fake_;
  ManualClock clock_;
  kube::ApiClient api_;
  telemetry::Registry registry_;
  telemetry::CounterFamily& rollbacks_ = registry_.counter("rollbacks_total", "", {"service"});
};

// A rollback the API refuses for now (a paused Deployment here) is tried again 1 s later, then
// 2 s after that, 4 s, ...: not at every look; once through, it is counted once.
TEST_F(RolloutJudgeTest, ARefusedRollbackIsTriedAgainWithABackOffAndCountedOnce) {
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  look(world, judge, {});
  fake_.set_paused("web", true);
  clock_.advance(1s);
  look(world, judge, {"web-n", "web-n"});  // two restarts: refused (t = 0)
  auto patched_after = [&](Clock::Duration d) {
    clock_.advance(d);
    look(world, judge, {});
    return !fake_.deployment_patches().empty();
  };
  EXPECT_FALSE(patched_after(1s));  // t = 1: refused again, next at t = 3
  fake_.set_paused("web", false);
  EXPECT_FALSE(patched_after(1s));     // t = 2: not tried
  EXPECT_FALSE(patched_after(500ms));  // t = 2.5: nor here
  EXPECT_TRUE(patched_after(500ms));   // t = 3: through
  EXPECT_EQ(rollbacks(), 1);
  EXPECT_EQ(judge.rolled_back().at("web"),
            "revision 2 failed: web-n restarted: the new revision's pods restarted 2 times in "
            "all; back to revision 1");
  for (int i = 0; i < 5; ++i) {
    clock_.advance(1s);
    look(world, judge, {});
  }
  EXPECT_EQ(fake_.deployment_patches().size(), 1u);
  EXPECT_EQ(rollbacks(), 1);
}

// A pod of the new revision ejected fails it; its breaker openings fail nothing, and once the
// revision is rolled back both its ejections and its breaker openings are the rollback's: the
// healer is not told them. The old revision's opening is the healer's as ever.
TEST_F(RolloutJudgeTest, ARolledBackRevisionsEjectionsAndBreakerOpeningsAreLeftToTheRollback) {
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  look(world, judge, {});
  using Pods = std::vector<std::pair<std::string, std::string>>;
  Pods ejections, openings = {{"web", "web-n"}, {"web", "web-a"}};
  clock_.advance(1s);
  world.observe(clock_.now());
  judge.look({}, ejections, openings, /*analysis=*/true, false, clock_.now());
  EXPECT_TRUE(fake_.deployment_patches().empty()) << "an open breaker is no verdict";
  EXPECT_EQ(openings, (Pods{{"web", "web-n"}, {"web", "web-a"}})) << "no rollback: the healer's";
  ejections = {{"web", "web-n"}};
  clock_.advance(1s);
  world.observe(clock_.now());
  judge.look({}, ejections, openings, /*analysis=*/true, false, clock_.now());
  ASSERT_EQ(fake_.deployment_patches().size(), 1u);
  EXPECT_EQ(rollbacks(), 1);
  EXPECT_TRUE(ejections.empty());
  EXPECT_EQ(openings, (Pods{{"web", "web-a"}}));
}

// A rollback refused as a conflict (409: the Deployment's status written between the controller's
// read and its patch, as happens often during a rollout) is tried again a second later, on a
// fresh read, and goes through: counted once.
TEST_F(RolloutJudgeTest, ARollbackRefusedAsAConflictIsTriedAgainAndGoesThrough) {
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  look(world, judge, {});
  fake_.change_before_next_patch("web");
  clock_.advance(1s);
  look(world, judge, {"web-n", "web-n"});  // 409: nothing applied
  EXPECT_TRUE(fake_.deployment_patches().empty());
  EXPECT_EQ(rollbacks(), 0);
  EXPECT_FALSE(judge.rolled_back().contains("web"));
  clock_.advance(1s);
  look(world, judge, {});
  ASSERT_EQ(fake_.deployment_patches().size(), 1u);
  EXPECT_EQ(rollbacks(), 1);
  EXPECT_TRUE(judge.rolled_back().contains("web"));
}

// A rollback whose patch was applied but whose answer was lost: by the next try the Deployment
// controller has taken the old ReplicaSet up again; the Deployment's mark tells it was this
// rollback, said and counted once, with no other patch.
TEST_F(RolloutJudgeTest, ARollbackWhoseAnswerWasLostIsFoundDoneByItsMark) {
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  look(world, judge, {});
  fake_.set_paused("web", true);
  clock_.advance(1s);
  look(world, judge, {"web-n", "web-n"});  // refused for now
  // As the lost patch and the Deployment controller would leave it.
  fake_.set_paused("web", false);
  fake_.set_template("web", 3, web_template("web:1", ""));
  fake_.set_annotation("web", "prescale.dev/rolled-back-from", "2");
  fake_.set_annotation("web", "prescale.dev/rolled-back-to", "aaa");
  fake_.set_annotation("web", "prescale.dev/rolled-back-uid", "uid-deployment-web");
  set_replica_set("aaa", 3, "web:1");
  clock_.advance(500ms);
  look(world, judge, {});
  EXPECT_TRUE(fake_.deployment_patches().empty());
  EXPECT_EQ(rollbacks(), 1);
  ASSERT_TRUE(judge.rolled_back().contains("web"));
  clock_.advance(5s);
  look(world, judge, {});
  EXPECT_EQ(rollbacks(), 1);
}

// Recommending only, a failed revision is said and nothing is patched or counted.
TEST_F(RolloutJudgeTest, RecommendingOnlyRollsNothingBack) {
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  look(world, judge, {}, /*recommend_only=*/true);
  clock_.advance(1s);
  look(world, judge, {"web-n", "web-n"}, true);
  clock_.advance(5s);
  look(world, judge, {}, true);
  EXPECT_TRUE(fake_.deployment_patches().empty());
  EXPECT_EQ(rollbacks(), 0);
}

// A new revision whose pod cannot pull its image is rolled back once it has waited a minute (a
// registry's hiccup may pass); the Deployment controller alone would wait for it until
// progressDeadlineSeconds and then only say so.
TEST_F(RolloutJudgeTest, ARevisionWhosePodCannotStartIsRolledBackAfterAMinute) {
  fake_.set_pod({.name = "web-n",
                 .app = "web",
                 .ports = {{"http", 8080}},
                 .ready = false,
                 .created = "2026-01-01T00:00:50Z",
                 .template_hash = "bbb",
                 .waiting = "ImagePullBackOff"});
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  look(world, judge, {});  // first seen so: a minute from here
  clock_.advance(55s);
  look(world, judge, {});
  EXPECT_TRUE(fake_.deployment_patches().empty()) << "55 s";
  clock_.advance(5s);
  look(world, judge, {});
  ASSERT_EQ(fake_.deployment_patches().size(), 1u) << "60 s";
  EXPECT_EQ(judge.rolled_back().at("web"),
            "revision 2 failed: web-n cannot start: a container of it waits in ImagePullBackOff "
            "(for 60 s); back to revision 1");
}

// A pull that fails for a while and then goes through (a registry's hiccup) fails nothing; nor
// does a pod failed for its state that is ready by the time the rollback is tried.
TEST_F(RolloutJudgeTest, APodThatStartsAfterAllIsNotRolledBack) {
  kube::fake::FakePod pulling = {.name = "web-n",
                                 .app = "web",
                                 .ports = {{"http", 8080}},
                                 .ready = false,
                                 .template_hash = "bbb",
                                 .waiting = "ErrImagePull"};
  fake_.set_pod(pulling);
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  look(world, judge, {});
  clock_.advance(50s);
  look(world, judge, {});
  kube::fake::FakePod ready = pulling;
  ready.waiting = "";
  ready.ready = true;
  ready.ready_since = "2026-01-01T00:01:55Z";
  fake_.set_pod(ready);
  for (int i = 0; i < 10; ++i) {
    clock_.advance(10s);
    look(world, judge, {});
  }
  EXPECT_TRUE(fake_.deployment_patches().empty());

  // Another new pod, failed (a minute in ImagePullBackOff) while the Deployment is paused, ready
  // before the next try: not rolled back. (Without the check before each try, the try after the
  // pause patches.)
  kube::fake::FakePod later = pulling;
  later.name = "web-q";
  later.created = "2026-01-01T00:03:00Z";
  fake_.set_pod(later);
  fake_.set_paused("web", true);
  look(world, judge, {});
  clock_.advance(60s);
  look(world, judge, {});  // failed; the rollback refused for now
  fake_.set_paused("web", false);
  later.waiting = "";
  later.ready = true;
  later.ready_since = "2026-01-01T00:04:30Z";
  fake_.set_pod(later);
  clock_.advance(1s);
  look(world, judge, {});
  clock_.advance(5s);
  look(world, judge, {});
  EXPECT_TRUE(fake_.deployment_patches().empty());
  EXPECT_EQ(rollbacks(), 0);
}

// One that runs but never gets ready is rolled back at its deadline.
TEST_F(RolloutJudgeTest, ARevisionWhosePodIsNeverReadyIsRolledBackAtItsDeadline) {
  fake_.set_pod({.name = "web-n",
                 .app = "web",
                 .ports = {{"http", 8080}},
                 .ready = false,
                 .created = "2026-01-01T00:00:30Z",
                 .template_hash = "bbb"});
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  judge.set_ready_deadline("web", 90s);
  look(world, judge, {});  // running for 30 s, but first seen now: counted from here
  clock_.advance(89s);
  look(world, judge, {});
  EXPECT_TRUE(fake_.deployment_patches().empty()) << "89 s";
  clock_.advance(1s);
  look(world, judge, {});
  ASSERT_EQ(fake_.deployment_patches().size(), 1u) << "90 s";
  EXPECT_EQ(judge.rolled_back().at("web"),
            "revision 2 failed: web-n is not ready 90 s after its containers started (its "
            "readiness probe never passed); back to revision 1");
}

// Neither a new pod that was ready and turned not ready since (a dependency down: the analysis's
// and the healer's), nor one waiting for its node (Pending, ContainerCreating: the cluster's
// capacity, not the release), fails the revision, however long.
TEST_F(RolloutJudgeTest, APodReadyOnceOrWaitingForItsNodeFailsNothing) {
  fake_.set_pod({.name = "web-n",  // ready at 00:00:10, not ready since 00:00:20
                 .app = "web",
                 .ports = {{"http", 8080}},
                 .ready = false,
                 .not_ready_since = "2026-01-01T00:00:20Z",
                 .template_hash = "bbb"});
  fake_.set_pod({.name = "web-p",
                 .app = "web",
                 .ports = {{"http", 8080}},
                 .phase = "Pending",
                 .ready = false,
                 .template_hash = "bbb",
                 .waiting = "ContainerCreating"});
  kube::KubeWorld world = make_world();
  RolloutJudge judge(world, nullptr, &rollbacks_);
  for (int i = 0; i < 20; ++i) {
    look(world, judge, {});
    clock_.advance(30s);
  }
  EXPECT_TRUE(fake_.deployment_patches().empty());
  EXPECT_EQ(rollbacks(), 0);
}

}  // namespace
}  // namespace prescale
