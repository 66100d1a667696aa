#include "services/forecast/series_input.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace prescale::services::forecast_service {
namespace {

using ::testing::HasSubstr;

TEST(SeriesInputTest, ParsesPointsWithNulls) {
  auto p = parse_points(nlohmann::json::parse(R"({"timestamps":[0,60,120],"values":[1,null,3]})"));
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->values.size(), 3u);
  EXPECT_TRUE(std::isnan(p->values[1]));
}

TEST(SeriesInputTest, NamesTheFieldAndIndexAtFault) {
  auto err = [](const char* body) {
    auto p = parse_points(nlohmann::json::parse(body));
    EXPECT_FALSE(p);
    return p ? std::string() : p.error().message;
  };
  EXPECT_THAT(err(R"({"values":[1]})"), HasSubstr("timestamps: required"));
  EXPECT_THAT(err(R"({"timestamps":5,"values":[1]})"), HasSubstr("timestamps: expected an array"));
  EXPECT_THAT(err(R"({"timestamps":[0,60],"values":[1,"x"]})"),
              HasSubstr("values[1]: expected a number or null"));
  EXPECT_THAT(err(R"({"timestamps":[0,null],"values":[1,2]})"),
              HasSubstr("timestamps[1]: expected a number"));
  EXPECT_THAT(err(R"({"timestamps":[0,60],"values":[1]})"),
              HasSubstr("timestamps: 2 entries but values has 1"));
  EXPECT_THAT(err(R"({"timestamps":[0,60],"values":[1,-2]})"), HasSubstr("values[1]: -2"));
  EXPECT_THAT(err(R"({"timestamps":[60,60],"values":[1,2]})"),
              HasSubstr("timestamps[1]: 60 is not after the previous timestamp 60"));
  EXPECT_THAT(err("[1,2]"), HasSubstr("body: expected a JSON object"));
}

TEST(SeriesInputTest, RefusesValuesAboveTheLimitNamingTheIndex) {
  auto p = parse_points(nlohmann::json::parse(R"({"timestamps":[0,60,120],"values":[1,1e15,2]})"));
  ASSERT_TRUE(p) << p.error().message;  // the limit itself is a value
  p = parse_points(nlohmann::json::parse(R"({"timestamps":[0,60,120],"values":[1,2,1e307]})"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(p.error().message, HasSubstr("values[2]: 1e+307 is above the limit of 1e+15"));
}

TEST(SeriesInputTest, PointsAfterAStoredOneStartOnTheNextStep) {
  auto s = to_series_after(Points{{1060, 1180}, {1, 2}}, 1000, 60);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->start_seconds, 1060);
  ASSERT_EQ(s->values.size(), 3u);  // 1060, (1120), 1180
  EXPECT_EQ(s->values[0], 1);
  EXPECT_TRUE(std::isnan(s->values[1]));
  EXPECT_EQ(s->values[2], 2);
  // Errors name the points' own indices.
  EXPECT_THAT(to_series_after(Points{{1060, 1150}, {1, 2}}, 1000, 60).error().message,
              HasSubstr("timestamps[1]: 90 s after the previous one"));
  EXPECT_THAT(to_series_after(Points{{1000}, {1}}, 1000, 60).error().message,
              HasSubstr("timestamps[0]: 1000 is not after the series' last point (1000)"));
  // The stored point counts against no limit: kMaxSeriesSteps steps may follow it.
  Points full;
  for (double k = 1; k <= kMaxSeriesSteps; ++k) {
    full.timestamps.push_back(60 * k);
    full.values.push_back(1);
  }
  auto most = to_series_after(full, 0, 60);
  ASSERT_TRUE(most) << most.error().message;
  EXPECT_EQ(most->values.size(), static_cast<size_t>(kMaxSeriesSteps));
}

TEST(SeriesInputTest, InfersTheStepAndFillsGaps) {
  Points p{{1000, 1060, 1240, 1300}, {1, 2, 3, 4}};
  auto s = to_series(p, std::nullopt);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->step_seconds, 60);
  EXPECT_EQ(s->start_seconds, 1000);
  ASSERT_EQ(s->values.size(), 6u);  // 1000, 1060, (1120), (1180), 1240, 1300
  EXPECT_TRUE(std::isnan(s->values[2]));
  EXPECT_TRUE(std::isnan(s->values[3]));
  EXPECT_EQ(s->values[5], 4);
}

TEST(SeriesInputTest, RejectsOffGridPointsAndBadSteps) {
  Points off{{0, 60, 150}, {1, 2, 3}};
  auto s = to_series(off, std::nullopt);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message, HasSubstr("timestamps[2]: 90 s after the previous one"));
  Points one{{0}, {1}};
  EXPECT_THAT(to_series(one, std::nullopt).error().message, HasSubstr("step_seconds: required"));
  EXPECT_TRUE(to_series(one, 60.0));
  EXPECT_THAT(to_series(one, 0.5).error().message, HasSubstr("step_seconds: a step of 0.5 s"));
  Points far{{0, 60, 60 * 200'000.0}, {1, 2, 3}};
  EXPECT_THAT(to_series(far, std::nullopt).error().message, HasSubstr("a gap of more than"));
}

TEST(SeriesInputTest, RefusesTwoPointsOnOneStep) {
  // Both within the 1 ms tolerance of step 1: the first value would be dropped without a word.
  Points p{{0, 60, 60.0005}, {1, 2, 3}};
  auto s = to_series(p, 60.0);
  ASSERT_FALSE(s) << "kept " << s->values.size() << " steps of 3 points";
  EXPECT_THAT(s.error().message,
              HasSubstr("timestamps[2]: 0.0005 s after the previous one, on the same 60 s step"));
}

TEST(SeriesInputTest, GapsWithinTheLimitCannotAddUpToAnUnboundedSeries) {
  // Every gap is kMaxGapSteps, the most one gap may be, yet 50 points become 4.9 million steps
  // (39 MB). At the documented limits, 100,000 points (about 1.4 MB of JSON) would ask for
  // 10^10 steps (80 GB) before anything else looks at them.
  Points p;
  for (int i = 0; i < 50; ++i) {
    p.timestamps.push_back(60.0 * kMaxGapSteps * i);
    p.values.push_back(1);
  }
  auto s = to_series(p, 60.0);
  EXPECT_FALSE(s) << "50 points filled out to " << s->values.size() << " steps";
}

}  // namespace
}  // namespace prescale::services::forecast_service
