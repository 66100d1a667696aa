#include "loadgen/mix.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

namespace prescale::loadgen {
namespace {

using ::testing::HasSubstr;

TEST(MixTest, ParsesMethodPathBodyAndWeight) {
  auto mix =
      parse_mix("GET /v1/users/{user}/recommendations?k=10:6,POST /v1/score@fraud.json:3,GET /:1");
  ASSERT_TRUE(mix) << mix.error().message;
  ASSERT_EQ(mix->entries.size(), 3u);
  EXPECT_EQ(mix->entries[0].method, "GET");
  EXPECT_EQ(mix->entries[0].path, "/v1/users/{user}/recommendations?k=10");
  EXPECT_DOUBLE_EQ(mix->entries[0].weight, 6);
  EXPECT_EQ(mix->entries[1].method, "POST");
  EXPECT_EQ(mix->entries[1].path, "/v1/score");
  EXPECT_EQ(mix->entries[1].body_file, "fraud.json");
  EXPECT_DOUBLE_EQ(mix->entries[1].weight, 3);
  EXPECT_EQ(mix->entries[2].path, "/");
  EXPECT_EQ(mix->entries[2].name(), "GET /");
}

TEST(MixTest, WeightIsOptionalAndSpacesAreTrimmed) {
  auto mix = parse_mix(" GET /echo , DELETE  /v1/x:batch:0.5 ");
  ASSERT_TRUE(mix) << mix.error().message;
  ASSERT_EQ(mix->entries.size(), 2u);
  EXPECT_DOUBLE_EQ(mix->entries[0].weight, 1);
  EXPECT_EQ(mix->entries[0].path, "/echo");
  EXPECT_EQ(mix->entries[1].path, "/v1/x:batch");
  EXPECT_DOUBLE_EQ(mix->entries[1].weight, 0.5);
}

TEST(MixTest, ErrorsNameTheColumn) {
  struct Case {
    const char* text;
    const char* want;
  };
  for (const Case& c : {
           Case{"", "column 1: empty entry"},
           Case{"GET /a:1,,GET /b", "column 10: empty entry"},
           Case{"get /a", "column 1: expected an HTTP method"},
           Case{"GET /a:1,FETCH /b", "column 10: expected an HTTP method"},
           Case{"GET", "column 4: expected a path"},
           Case{"GET /a:0", "column 8: weight must be a number > 0, got \"0\""},
           Case{"GET /a:1.2.3", "column 8: weight must be"},
           Case{"GET /a:", "column 7: expected a weight"},
           Case{"GET /a:1,POST v1/score:2", "column 15: the path must start with '/'"},
           Case{"POST /x@:1", "column 8: expected a file after '@'"},
           Case{"GET /a b:1", "column 7: a space in the path"},
       }) {
    auto mix = parse_mix(c.text);
    ASSERT_FALSE(mix) << c.text;
    EXPECT_THAT(mix.error().message, HasSubstr(c.want)) << c.text;
  }
}

TEST(MixTest, PickerFollowsWeightsAndFillsUsers) {
  auto mix = parse_mix("GET /v1/users/{user}/recommendations:3,GET /:1");
  ASSERT_TRUE(mix);
  RequestPicker picker(*mix, UserRange{5, 9}, 1);
  std::map<size_t, int> per_entry;
  for (int i = 0; i < 8000; ++i) {
    auto picked = picker.next();
    ++per_entry[picked.entry];
    if (picked.entry == 0) {
      const std::string& t = picked.request.target;
      ASSERT_TRUE(t.starts_with("/v1/users/")) << t;
      const int user = std::stoi(t.substr(10));
      EXPECT_GE(user, 5);
      EXPECT_LE(user, 9);
      EXPECT_EQ(picked.request.method_name, "GET");
    } else {
      EXPECT_EQ(picked.request.target, "/");
    }
  }
  EXPECT_NEAR(per_entry[0], 6000, 200);
  EXPECT_NEAR(per_entry[1], 2000, 200);
}

// Each weight is finite, but their sum is not: the picker must still follow the weights.
TEST(MixTest, PickerFollowsWeightsWhoseSumOverflows) {
  const std::string huge = "1" + std::string(308, '0');  // 1e308, the sum of two is +Inf
  auto mix = parse_mix("GET /a:" + huge + ",GET /b:" + huge);
  ASSERT_TRUE(mix) << mix.error().message;
  RequestPicker picker(*mix, UserRange{}, 1);
  std::map<size_t, int> per_entry;
  for (int i = 0; i < 4000; ++i) ++per_entry[picker.next().entry];
  EXPECT_NEAR(per_entry[0], 2000, 200);
  EXPECT_NEAR(per_entry[1], 2000, 200);
}

TEST(MixTest, BodiesAreLoadedAndTyped) {
  const std::string path = ::testing::TempDir() + "/loadgen_mix_body.json";
  std::ofstream(path) << R"({"user": {user}})";
  auto mix = parse_mix("POST /v1/score@" + path + ":1");
  ASSERT_TRUE(mix) << mix.error().message;
  ASSERT_TRUE(load_bodies(*mix));
  RequestPicker picker(*mix, UserRange{7, 7}, 1);
  auto picked = picker.next();
  EXPECT_EQ(picked.request.body, R"({"user": 7})");
  EXPECT_EQ(picked.request.headers.get("Content-Type"), "application/json");
  std::remove(path.c_str());

  auto missing = parse_mix("POST /v1/score@/nonexistent/body.json");
  ASSERT_TRUE(missing);
  auto loaded = load_bodies(*missing);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message, HasSubstr("/nonexistent/body.json"));
}

TEST(MixTest, UserRange) {
  auto r = parse_user_range("1-610");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 1);
  EXPECT_EQ(r->last, 610);
  auto one = parse_user_range("42");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->first, 42);
  EXPECT_EQ(one->last, 42);
  EXPECT_FALSE(parse_user_range("10-1"));
  EXPECT_FALSE(parse_user_range("a-b"));
  EXPECT_FALSE(parse_user_range("1-"));
}

}  // namespace
}  // namespace prescale::loadgen
