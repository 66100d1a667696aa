#include "services/recommend/interactions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace prescale::recommend {
namespace {

using ::testing::HasSubstr;

class RecommendRatingsFile : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    path_ = (std::filesystem::temp_directory_path() /
             ("ratings_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".csv"))
                .string();
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  std::string path_;
};

TEST_F(RecommendRatingsFile, KeepsRatingsAtOrAboveTheThresholdAsWeightOne) {
  auto r =
      read_ratings_csv(write("userId,movieId,rating,timestamp\n"
                             "1,10,4.0,100\n"
                             "1,11,3.0,101\n"
                             "2,10,3.5,102\r\n"
                             "\n"
                             "2,12,5,103\n"));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].user, 1);
  EXPECT_EQ((*r)[0].item, 10);
  EXPECT_EQ((*r)[0].weight, 1.0f);
  EXPECT_EQ((*r)[0].timestamp, 100);
  EXPECT_EQ((*r)[1].item, 10);
  EXPECT_EQ((*r)[2].item, 12);
}

TEST_F(RecommendRatingsFile, WeightsByRatingAndFindsColumnsByName) {
  ImplicitOptions o;
  o.min_rating = 3;
  o.weight_by_rating = true;
  auto r = read_ratings_csv(write("timestamp,rating,movieId,userId,extra\n"
                                  "100,4.5,10,1,x\n"
                                  "101,3,11,1,y\n"),
                            o);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_FLOAT_EQ((*r)[0].weight, 2.5f);
  EXPECT_FLOAT_EQ((*r)[1].weight, 1.0f);
  EXPECT_EQ((*r)[0].user, 1);
}

TEST_F(RecommendRatingsFile, ErrorsNameFileLineAndColumn) {
  const std::string path = write("userId,movieId,rating,timestamp\n1,10,4,100\n1,11,four,101\n");
  auto r = read_ratings_csv(path);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr(path + ":3"));
  EXPECT_THAT(r.error().message, HasSubstr("rating"));
  EXPECT_THAT(r.error().message, HasSubstr("four"));

  auto missing = read_ratings_csv(write("userId,itemId,rating,timestamp\n1,10,4,100\n"));
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("movieId"));

  auto absent = read_ratings_csv("/nonexistent/ratings.csv");
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(absent.error().message, HasSubstr("/nonexistent/ratings.csv"));
}

TEST(RecommendSplitByTime, HoldsOutEachUsersMostRecentShare) {
  // User 1: 10 interactions given out of time order; user 2: 3; user 3: 1.
  std::vector<Interaction> xs;
  for (int64_t t : {5, 1, 9, 3, 7, 2, 8, 4, 10, 6}) xs.push_back({1, 100 + t, 1, t});
  for (int64_t t : {30, 10, 20}) xs.push_back({2, 200 + t, 1, t});
  xs.push_back({3, 300, 1, 1});

  const TemporalSplit s = split_by_time(xs, 0.2);
  std::vector<int64_t> held;
  for (const Interaction& x : s.test) held.push_back(x.item);
  // 20 % of 10 = 2 (timestamps 9, 10, in input order); round(0.6) = 1 for user 2 (t = 30);
  // none for the user with a single interaction.
  EXPECT_THAT(held, ::testing::ElementsAre(109, 110, 230));
  EXPECT_EQ(s.train.size(), xs.size() - 3);
  for (const Interaction& x : s.train) {
    if (x.user == 1) {
      EXPECT_LE(x.timestamp, 8);
    }
  }
}

TEST(RecommendSplitByTime, TiesKeepInputOrderAndEveryUserKeepsATrainingInteraction) {
  std::vector<Interaction> xs = {
      {1, 1, 1, 5}, {1, 2, 1, 5}, {1, 3, 1, 5}, {2, 4, 1, 1}, {2, 5, 1, 2}};
  const TemporalSplit s = split_by_time(xs, 0.9);
  // user 1: round(2.7) = 3 clamped to 2 (one stays for training): the last two in input order.
  std::vector<int64_t> held;
  for (const Interaction& x : s.test) held.push_back(x.item);
  EXPECT_THAT(held, ::testing::ElementsAre(2, 3, 5));
}

}  // namespace
}  // namespace prescale::recommend
