#include "services/recommend/user_store.h"

#include <gtest/gtest.h>

#include <thread>

namespace prescale::recommend {
namespace {

TEST(RecommendUserStore, AddsEventsAndCountsRevisions) {
  UserStore store;
  EXPECT_FALSE(store.get(1));
  const std::vector<PostedEvent> a = {{10, 1, 100}, {11, 2, 101}};
  auto rev = store.add(1, a);
  ASSERT_TRUE(rev);
  EXPECT_EQ(*rev, 1u);
  EXPECT_EQ(*store.add(1, std::vector<PostedEvent>{{12, 1, 102}}), 2u);
  auto s = store.get(1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->events.size(), 3u);
  EXPECT_EQ(s->revision, 2u);
  EXPECT_EQ(store.users(), 1u);
}

TEST(RecommendUserStore, KeepsTheNewestEventsPerUserAndLimitsUsers) {
  UserStore store(/*max_users=*/2, /*max_events_per_user=*/3);
  for (int64_t i = 0; i < 5; ++i) ASSERT_TRUE(store.add(1, std::vector<PostedEvent>{{i, 1, i}}));
  auto s = store.get(1);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->events.size(), 3u);
  EXPECT_EQ(s->events.front().item, 2);
  ASSERT_TRUE(store.add(2, std::vector<PostedEvent>{{1, 1, 1}}));
  auto full = store.add(3, std::vector<PostedEvent>{{1, 1, 1}});
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kOutOfRange);
  EXPECT_TRUE(store.add(2, std::vector<PostedEvent>{{2, 1, 2}}));  // known users still may
}

TEST(RecommendUserStore, ForgetsEventsANewModelWasTrainedOn) {
  UserStore store;
  ASSERT_TRUE(store.add(1, std::vector<PostedEvent>{{10, 1, 100}, {11, 1, 200}}));
  ASSERT_TRUE(store.add(2, std::vector<PostedEvent>{{10, 1, 100}}));
  auto cached = std::make_shared<CachedFactors>();
  cached->revision = 1;
  store.set_factors(1, cached);
  ASSERT_TRUE(store.get(1)->factors);
  store.forget_through(150);
  auto s = store.get(1);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->events.size(), 1u);
  EXPECT_EQ(s->events[0].item, 11);
  EXPECT_FALSE(s->factors);  // computed from events that are gone
  EXPECT_FALSE(store.get(2));
  EXPECT_EQ(store.users(), 1u);
}

TEST(RecommendUserStore, IgnoresFactorsComputedFromAnOlderRevision) {
  UserStore store;
  ASSERT_TRUE(store.add(1, std::vector<PostedEvent>{{10, 1, 100}}));
  ASSERT_TRUE(store.add(1, std::vector<PostedEvent>{{11, 1, 100}}));
  auto stale = std::make_shared<CachedFactors>();
  stale->revision = 1;
  store.set_factors(1, stale);
  EXPECT_FALSE(store.get(1)->factors);
}

// The service's caches are keyed by (user, revision): a user forgotten whole (a new model was
// trained on all their events) who posts again must not get back a revision the caches saw for
// the forgotten events, or a score or factors computed from those would be served for the new.
TEST(RecommendUserStore, AUserForgottenAndPostingAgainNeverReusesARevision) {
  UserStore store;
  auto first = store.add(1, std::vector<PostedEvent>{{10, 1, 100}});
  ASSERT_TRUE(first);
  store.forget_through(100);
  ASSERT_FALSE(store.get(1));
  auto again = store.add(1, std::vector<PostedEvent>{{11, 1, 200}});
  ASSERT_TRUE(again);
  EXPECT_NE(*again, *first);
  EXPECT_NE(*again, 0u) << "0 names the training history alone";
  // Factors folded in from the forgotten events (a request that read them before the forget)
  // are not taken for the new ones.
  auto stale = std::make_shared<CachedFactors>();
  stale->revision = *first;
  store.set_factors(1, stale);
  EXPECT_FALSE(store.get(1)->factors);
}

TEST(RecommendUserStore, ConcurrentAddsAndReadsAreConsistent) {
  UserStore store;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int64_t i = 0; i < 500; ++i) {
        ASSERT_TRUE(store.add(i % 50, std::vector<PostedEvent>{{int64_t{t} * 1000 + i, 1, i}}));
        (void)store.get((i + 7) % 50);
      }
    });
  }
  for (auto& th : threads) th.join();
  size_t events = 0;
  for (int64_t u = 0; u < 50; ++u) events += store.get(u)->events.size();
  EXPECT_EQ(events, 2000u);
  EXPECT_EQ(store.users(), 50u);
}

}  // namespace
}  // namespace prescale::recommend
