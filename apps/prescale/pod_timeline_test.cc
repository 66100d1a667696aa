#include "pod_timeline.h"

#include <gtest/gtest.h>

namespace prescale {
namespace {

using scaling::ReplicaState;

scaling::Snapshot pods(std::vector<std::pair<std::string, ReplicaState>> list) {
  scaling::Snapshot s;
  s.services.push_back({});
  s.services[0].name = "web";
  for (auto& [id, state] : list) {
    scaling::ReplicaObservation r;
    r.id = id;
    r.state = state;
    s.services[0].replicas.push_back(r);
  }
  return s;
}

std::string told(const std::vector<PodEvent>& events) {
  std::string out;
  for (const PodEvent& e : events) out += (out.empty() ? "" : " ") + e.kind + ":" + e.pod;
  return out;
}

TEST(PodTimelineTest, TellsWhatHappenedToEachPodBetweenLooks) {
  PodTimeline t;
  EXPECT_EQ(told(t.look(pods({{"web-a", ReplicaState::kReady}}), {}, {})), "")
      << "there before the controller";
  EXPECT_EQ(told(t.look(pods({{"web-a", ReplicaState::kReady}, {"web-b", ReplicaState::kStarting}}),
                        {}, {})),
            "start:web-b");
  EXPECT_EQ(told(t.look(pods({{"web-a", ReplicaState::kReady},
                              {"web-b", ReplicaState::kReady},
                              {"web-c", ReplicaState::kReady}}),
                        {"web-a"}, {{"web", "web-b"}})),
            "ready:web-b start:web-c ready:web-c crash:web-a eject:web-b");
  EXPECT_EQ(told(t.look(pods({{"web-b", ReplicaState::kDraining}, {"web-c", ReplicaState::kReady}}),
                        {"web-a"}, {})),
            "drain:web-b stop:web-a")
      << "a restart of a pod gone is not told";
  const std::vector<PodEvent> last = t.look(pods({{"web-c", ReplicaState::kReady}}), {}, {});
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].service, "web");
  EXPECT_EQ(last[0].message, "pod gone");
}

TEST(PodTimelineTest, AStartingPodThatIsNotReadyYetIsNoDrain) {
  PodTimeline t;
  (void)t.look(pods({}), {}, {});
  EXPECT_EQ(told(t.look(pods({{"web-a", ReplicaState::kStarting}}), {}, {})), "start:web-a");
  // Running past its warm-up without being ready: KubeWorld calls it draining; never in service,
  // it leaves nothing.
  EXPECT_EQ(told(t.look(pods({{"web-a", ReplicaState::kDraining}}), {}, {})), "");
}

// A first list of pods that could not be read (the API down at the controller's start) is no
// look: the pods of the first good one started before the controller too.
TEST(PodTimelineTest, AStaleListIsNoLookAtThePods) {
  PodTimeline t;
  EXPECT_EQ(told(t.look(pods({}), {}, {{"web", "web-a"}}, {{"web", "web-a"}}, /*stale=*/true)),
            "eject:web-a eject:web-a");
  EXPECT_EQ(told(t.look(pods({{"web-a", ReplicaState::kReady}}), {}, {})), "");
  EXPECT_EQ(told(t.look(pods({}), {"web-a"}, {}, {}, /*stale=*/true)), "crash:web-a")
      << "the last good list's pod; none gone";
  EXPECT_EQ(told(t.look(pods({{"web-a", ReplicaState::kReady}}), {}, {})), "");
}

// A pod whose breaker a gateway opened is out of that gateway's service: told as an ejection,
// with its cause, after the outlier detection's.
TEST(PodTimelineTest, ABreakerOpeningIsToldAsAnEjectionWithItsCause) {
  PodTimeline t;
  (void)t.look(pods({{"web-a", ReplicaState::kReady}, {"web-b", ReplicaState::kReady}}), {}, {});
  const std::vector<PodEvent> events =
      t.look(pods({{"web-a", ReplicaState::kReady}, {"web-b", ReplicaState::kReady}}), {},
             {{"web", "web-b"}}, {{"web", "web-a"}});
  ASSERT_EQ(told(events), "eject:web-b eject:web-a");
  EXPECT_EQ(events[0].message, "ejected by a gateway's outlier detection");
  EXPECT_EQ(events[1].service, "web");
  EXPECT_EQ(events[1].message, "its requests failed too often: a gateway's circuit breaker opened");
}

}  // namespace
}  // namespace prescale
