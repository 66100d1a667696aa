#include "services/fraud/transaction_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

namespace prescale::fraud {
namespace {

using ::testing::HasSubstr;

nlohmann::json zeros() {
  nlohmann::json t = nlohmann::json::object();
  for (std::string_view name : feature_names()) t[std::string(name)] = 0;
  return t;
}

// 3.4028235e38 is float32's maximum as usually printed (the shortest decimal that reads back as
// it); as a double it lies a little above the maximum, and rounds to it.
TEST(FraudTransactionJson, AcceptsEveryValueThatRoundsToAFiniteFloat) {
  constexpr float kMax = std::numeric_limits<float>::max();
  nlohmann::json t = zeros();
  t["Amount"] = 3.4028235e38;
  t["V1"] = -3.4028235e38;
  auto x = parse_transaction(t, "");
  ASSERT_TRUE(x) << x.error().message;
  EXPECT_EQ((*x)[29], kMax);
  EXPECT_EQ((*x)[1], -kMax);

  for (double beyond : {3.5e38, -1e300, static_cast<double>(kMax) + 0x1p103}) {
    t = zeros();
    t["V1"] = beyond;
    auto refused = parse_transaction(t, "transactions[2].");
    ASSERT_FALSE(refused) << beyond;
    EXPECT_THAT(refused.error().message, HasSubstr("transactions[2].V1: out of range (float32)"));
  }
}

}  // namespace
}  // namespace prescale::fraud
