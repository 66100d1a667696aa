#include "scaling/static_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace prescale::scaling {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

ServiceSpec spec(std::string name, double capacity_rps, int min_replicas = 1,
                 int max_replicas = 100) {
  ServiceSpec s;
  s.name = std::move(name);
  s.capacity_rps = capacity_rps;
  s.min_replicas = min_replicas;
  s.max_replicas = max_replicas;
  return s;
}

TEST(StaticPolicyTest, SizesForThePeak) {
  StaticPolicy p({{"a", 250}, {"b", 300}, {"c", 1}});
  EXPECT_EQ(p.name(), "static");
  EXPECT_EQ(p.replicas_for(spec("a", 100)), 3);  // ceil(2.5)
  EXPECT_EQ(p.replicas_for(spec("b", 100)), 3);  // exactly 3, not 4
  EXPECT_EQ(p.replicas_for(spec("c", 100)), 1);
}

TEST(StaticPolicyTest, HeadroomMultipliesThePeak) {
  StaticPolicy p({{"a", 250}, {"b", 250}}, 1.2);
  EXPECT_EQ(p.replicas_for(spec("a", 100)), 3);  // 300.00000000000006 / 100 is 3
  EXPECT_EQ(p.replicas_for(spec("b", 50)), 6);
}

TEST(StaticPolicyTest, ClampedToMinAndMax) {
  StaticPolicy p({{"a", 10}, {"b", 5000}});
  EXPECT_EQ(p.replicas_for(spec("a", 100, /*min=*/2)), 2);
  EXPECT_EQ(p.replicas_for(spec("b", 100, 1, /*max=*/20)), 20);
  EXPECT_EQ(p.replicas_for(spec("unknown", 100, 3)), 3);
}

TEST(StaticPolicyTest, DecidesOnce) {
  StaticPolicy p({{"a", 250}, {"b", 5000}});
  p.init({spec("a", 100), spec("b", 100, 1, 20), spec("c", 100, 2)});
  const Clock::TimePoint t0 = Clock::TimePoint{} + std::chrono::seconds(0);
  const Plan first = p.decide(Snapshot{}, t0);
  ASSERT_EQ(first.decisions.size(), 3u);
  EXPECT_EQ(first.decisions[0].service, "a");
  EXPECT_EQ(first.decisions[0].replicas, 3);
  EXPECT_THAT(first.decisions[0].reason, HasSubstr("peak 250 rps"));
  EXPECT_EQ(first.decisions[1].replicas, 20);
  EXPECT_THAT(first.decisions[1].reason, HasSubstr("clamped to max"));
  EXPECT_EQ(first.decisions[2].replicas, 2);
  EXPECT_THAT(first.decisions[2].reason, HasSubstr("no peak"));
  EXPECT_TRUE(p.decide(Snapshot{}, t0 + p.period()).decisions.empty());
}

TEST(StaticPolicyTest, DecidesAgainWithinNewBounds) {
  StaticPolicy p({{"b", 5000}});
  p.init({spec("b", 100, 1, 20)});
  const Clock::TimePoint t0 = Clock::TimePoint{} + std::chrono::seconds(0);
  EXPECT_EQ(p.decide(Snapshot{}, t0).decisions.at(0).replicas, 20);
  p.respec(spec("b", 100, 1, 30));
  const Plan again = p.decide(Snapshot{}, t0 + 1s);
  ASSERT_EQ(again.decisions.size(), 1u);
  EXPECT_EQ(again.decisions[0].replicas, 30);
  EXPECT_TRUE(p.decide(Snapshot{}, t0 + 2s).decisions.empty());
  p.respec(spec("b", 1000, 1, 30));  // a new capacity: sized again, 5000 / 1000
  EXPECT_EQ(p.decide(Snapshot{}, t0 + 3s).decisions.at(0).replicas, 5);
}

TEST(StaticPolicyTest, SizesAnAddedServiceAndForgetsARemovedOne) {
  StaticPolicy p({{"a", 250}, {"b", 5000}});
  p.init({spec("a", 100)});
  const Clock::TimePoint t0 = Clock::TimePoint{} + std::chrono::seconds(0);
  EXPECT_EQ(p.decide(Snapshot{}, t0).decisions.size(), 1u);
  ASSERT_TRUE(p.add_service(spec("b", 1000)));
  EXPECT_FALSE(p.add_service(spec("b", 1000)));
  p.remove_service("a");
  const Plan again = p.decide(Snapshot{}, t0 + 1s);
  ASSERT_EQ(again.decisions.size(), 1u);
  EXPECT_EQ(again.decisions[0].service, "b");
  EXPECT_EQ(again.decisions[0].replicas, 5);
}

}  // namespace
}  // namespace prescale::scaling
