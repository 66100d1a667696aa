#include "keda_plan.h"

#include <gtest/gtest.h>

namespace prescale {
namespace {

scaling::ServiceSpec spec(const std::string& name, int min, int max) {
  scaling::ServiceSpec s;
  s.name = name;
  s.min_replicas = min;
  s.max_replicas = max;
  return s;
}

// The services as the controller saw them: each with its Deployment's replicas.
scaling::Snapshot having(std::map<std::string, int> replicas) {
  scaling::Snapshot s;
  for (const auto& [name, n] : replicas) {
    scaling::ServiceObservation o;
    o.name = name;
    o.desired_replicas = n;
    s.services.push_back(o);
  }
  return s;
}

scaling::Plan plan(std::vector<std::pair<std::string, int>> decisions) {
  scaling::Plan p;
  for (const auto& [service, n] : decisions) p.decisions.push_back({service, n, "forecast"});
  return p;
}

control::Event event(const std::string& service, int from, int to) {
  return {Clock::TimePoint{}, service, from, to, "forecast"};
}

// The plan within the bounds; a service the last plan left alone, or before any, the replicas it
// has; a decision not repeated in the next plan (its target is what the Deployment has now) is not
// published again.
TEST(KedaPlan, PublishesThePlanWithinTheBoundsElseWhatTheServiceHas) {
  KedaPlan k({spec("web", 1, 6), spec("db", 2, 4)});
  EXPECT_EQ(k.published(having({{"web", 0}, {"db", 2}})), (std::map<std::string, int>{{"db", 2}}))
      << "web's count not read yet";
  k.decided(plan({{"web", 9}, {"db", 1}}));
  EXPECT_EQ(k.published(having({{"web", 1}, {"db", 2}})),
            (std::map<std::string, int>{{"web", 6}, {"db", 2}}));
  EXPECT_EQ(k.published(having({{"web", 3}, {"db", 2}})),
            (std::map<std::string, int>{{"web", 6}, {"db", 2}}))
      << "between plans: the last one";
  // The Deployment reached 6; demand fell and came back, and the policy, whose target is now what
  // web has, decides nothing for it: not the older decision.
  k.decided(plan({{"web", 2}}));
  k.decided(plan({}));
  EXPECT_EQ(k.published(having({{"web", 6}, {"db", 2}})),
            (std::map<std::string, int>{{"web", 6}, {"db", 2}}));
}

// A plan is said once while the Deployment catches up; once reached, the same count planned again
// later is said again.
TEST(KedaPlan, APlanIsSaidOnceUntilTheDeploymentReachesIt) {
  KedaPlan k({spec("web", 1, 6)});
  auto said = [&](std::vector<control::Event> events) {
    std::string out;
    for (const control::Event& e : k.to_say(std::move(events))) {
      out += (out.empty() ? "" : " ") + e.service + ":" + std::to_string(e.to_replicas);
    }
    return out;
  };
  EXPECT_EQ(said({event("web", 1, 4)}), "web:4");
  (void)k.published(having({{"web", 1}}));
  EXPECT_EQ(said({event("web", 1, 4)}), "") << "the Deployment behind: not again";
  EXPECT_EQ(said({event("web", 2, 5)}), "web:5") << "a new count";
  (void)k.published(having({{"web", 5}}));  // reached
  EXPECT_EQ(said({event("web", 3, 5)}), "web:5") << "moved since, and planned again";
}

}  // namespace
}  // namespace prescale
