#include "healing/wording.h"

#include <gtest/gtest.h>

namespace prescale::healing {
namespace {

using namespace std::chrono_literals;

TEST(WordingTest, DurationsAreSaidToTheSecondUnderTwoMinutesElseInMinutes) {
  EXPECT_EQ(spoken(0s), "0 s");
  EXPECT_EQ(spoken(-5s), "0 s");
  EXPECT_EQ(spoken(119s), "119 s");
  EXPECT_EQ(spoken(120s), "2 min");
  EXPECT_EQ(spoken(149s), "2 min");
  EXPECT_EQ(spoken(150s), "3 min");
  EXPECT_EQ(spoken(119min), "119 min");
  EXPECT_EQ(spoken(125min), "2 h 5 min");
  EXPECT_EQ(spoken(26h), "26 h 0 min");
}

TEST(WordingTest, NumbersArePrintedByTheirFormat) {
  EXPECT_EQ(printed("%.1fx", 14.44), "14.4x");
  EXPECT_EQ(printed("%.0f of %.0f requests", 12, 372000), "12 of 372000 requests");
  EXPECT_EQ(printed("%g, %g, %g", 1, 2.5, 3), "1, 2.5, 3");
}

}  // namespace
}  // namespace prescale::healing
