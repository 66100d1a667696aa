#include "core/logging.h"

#include <gtest/gtest.h>

namespace prescale {
namespace {

TEST(LoggingTest, JsonEscapeHandlesQuotesControlAndBackslash) {
  EXPECT_EQ(json_escape("a\"b\\c\nd\x01"), "a\\\"b\\\\c\\nd\\u0001");
  EXPECT_EQ(json_escape("plain"), "plain");
}

TEST(LoggingTest, RejectsUnknownLevel) {
  EXPECT_FALSE(init_logging({.level = "loud"}));
  EXPECT_TRUE(init_logging({.level = "warn", .format = LogFormat::kJson}));
  EXPECT_TRUE(init_logging({.level = "info"}));
}

}  // namespace
}  // namespace prescale
