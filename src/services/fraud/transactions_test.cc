#include "services/fraud/transactions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/sha256.h"
#include "services/fraud/fraud_test_util.h"

namespace prescale::fraud {
namespace {

using ::testing::HasSubstr;

std::string header() {
  std::string h = ",Time";
  for (int i = 1; i <= 28; ++i) h += ",V" + std::to_string(i);
  return h + ",Amount,Class\n";
}

std::string row(int index, double time, double v, double amount, const std::string& cls) {
  std::string r = std::to_string(index) + "," + std::to_string(time);
  for (int i = 1; i <= 28; ++i) r += "," + std::to_string(v * i);
  return r + "," + std::to_string(amount) + "," + cls + "\n";
}

TEST(FraudFeatures, NamesAndIndices) {
  const auto names = feature_names();
  EXPECT_EQ(names[0], "Time");
  EXPECT_EQ(names[14], "V14");
  EXPECT_EQ(names[29], "Amount");
  EXPECT_EQ(feature_index("V28"), 28u);
  EXPECT_EQ(feature_index("Amount"), 29u);
  EXPECT_FALSE(feature_index("V29"));
  EXPECT_FALSE(feature_index("Class"));
}

TEST(FraudTransactions, ParsesTheDataSetsColumns) {
  const std::string text = header() + row(0, 10, 0.5, 12.5, "0") + row(1, 20, -1, 1, "1");
  auto data = parse_transactions(text, "t.csv");
  ASSERT_TRUE(data) << data.error().message;
  ASSERT_EQ(data->size(), 2u);
  EXPECT_EQ(data->frauds(), 1u);
  EXPECT_EQ(data->rows[0][0], 10.0f);
  EXPECT_EQ(data->rows[0][3], 1.5f);
  EXPECT_EQ(data->rows[1][29], 1.0f);
  EXPECT_EQ(data->labels, (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(data->source, "t.csv");
  EXPECT_EQ(data->sha256, sha256_hex(text));
}

TEST(FraudTransactions, ErrorsNameFileLineAndColumn) {
  auto error_of = [](const std::string& text) {
    auto data = parse_transactions(text, "t.csv");
    EXPECT_FALSE(data);
    return data ? std::string() : data.error().message;
  };
  std::string bad = header() + row(0, 10, 0.5, 12.5, "0") + row(1, 20, -1, 1, "0");
  bad.replace(bad.rfind(",-5."), 4, ",x5.");  // V5 of the second row
  EXPECT_THAT(error_of(bad), HasSubstr("t.csv:3: column 7 \"V5\": expected a finite number"));
  EXPECT_THAT(error_of(header() + row(0, 1, 1, 1, "2")),
              HasSubstr("t.csv:2: column 32 \"Class\": expected 0 or 1, got \"2\""));
  EXPECT_THAT(error_of(",Time,V1,Amount,Class\n0,1,2,3,0\n"),
              HasSubstr("t.csv:1: no column \"V2\""));
  EXPECT_THAT(error_of(header()), HasSubstr("no transactions"));
  EXPECT_THAT(error_of(header() + "0,1,2\n"), HasSubstr("t.csv:2: 3 fields"));
  auto missing = read_transactions("/nonexistent/fraud.csv");
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("/nonexistent/fraud.csv"));
}

TEST(FraudTransactions, AFeatureIsAnyValueThatRoundsToAFiniteFloat) {
  constexpr float kMax = std::numeric_limits<float>::max();
  EXPECT_EQ(to_feature(3.4028235e38), kMax);  // float32's maximum as usually printed
  EXPECT_EQ(to_feature(-3.4028235e38), -kMax);
  EXPECT_EQ(to_feature(0.1), 0.1f);
  // Half a step above the maximum rounds to the even neighbour: infinity.
  EXPECT_FALSE(to_feature(static_cast<double>(kMax) + 0x1p103));
  EXPECT_EQ(to_feature(std::nextafter(static_cast<double>(kMax) + 0x1p103, 0.0)), kMax);
  EXPECT_FALSE(to_feature(1e39));
  EXPECT_FALSE(to_feature(std::numeric_limits<double>::infinity()));
  EXPECT_FALSE(to_feature(std::numeric_limits<double>::quiet_NaN()));

  std::string text = header() + row(0, 10, 0.5, 12.5, "0");
  text.replace(text.rfind(",12.500000,"), 11, ",3.4028235e38,");
  auto data = parse_transactions(text, "t.csv");
  ASSERT_TRUE(data) << data.error().message;
  EXPECT_EQ(data->rows[0][29], kMax);
}

TEST(FraudTransactions, Sha256MatchesTheStandardVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Lengths around the padding boundary (55, 56, 64 bytes) differ from each other.
  EXPECT_NE(sha256_hex(std::string(55, 'x')), sha256_hex(std::string(56, 'x')));
  EXPECT_EQ(sha256_hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(FraudTransactions, ReadsTheUlbSample) {
  auto path = testing::ulb_sample_path();
  if (!path) GTEST_SKIP() << testing::kNoSharedData;
  auto data = read_transactions(*path);
  ASSERT_TRUE(data) << data.error().message;
  EXPECT_EQ(data->size(), 1206u);
  EXPECT_EQ(data->frauds(), 345u);
  // As `sha256sum` prints it.
  EXPECT_EQ(data->sha256, "666c4739d0dda5b1b712a6c3c07e64e6474431e3dd4c6bd9d39b9500403672f6");
  EXPECT_EQ(data->rows[0][0], 73479.0f);
}

TEST(FraudTransactions, GeneratedFixtureRoundTripsThroughCsv) {
  const Transactions data = testing::generated_transactions(200, 7);
  EXPECT_GT(data.frauds(), 20u);
  EXPECT_LT(data.frauds(), 120u);
  auto back = parse_transactions(testing::to_csv(data), "generated.csv");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->rows, data.rows);
  EXPECT_EQ(back->labels, data.labels);
}

}  // namespace
}  // namespace prescale::fraud
