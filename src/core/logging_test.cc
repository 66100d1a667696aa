#include "core/logging.h"

#include <gtest/gtest.h>

namespace prescale {
namespace {

TEST(LoggingTest, JsonEscapeHandlesQuotesControlAndBackslash) {
  EXPECT_EQ(json_escape("a\"b\\c\nd\x01"), "a\\\"b\\\\c\\nd\\u0001");
  EXPECT_EQ(json_escape("plain"), "plain");
}

// JSON text is UTF-8 (RFC 8259, 8.1): a message holding a byte that is not (a Latin-1 file name,
// a request path) passed through as it was, and the whole log line stopped being JSON that a
// collector can parse. 0xff never occurs in UTF-8.
TEST(LoggingTest, JsonEscapeNeverPassesOnBytesThatAreNotUtf8) {
  const std::string escaped = json_escape("caf\xe9 \xff");
  EXPECT_EQ(escaped.find('\xff'), std::string::npos) << escaped;
  EXPECT_EQ(escaped.find("\xe9 "), std::string::npos) << escaped;
  EXPECT_EQ(json_escape("caf\xc3\xa9"), "caf\xc3\xa9");  // valid UTF-8 stays as it is
}

TEST(LoggingTest, RejectsUnknownLevel) {
  EXPECT_FALSE(init_logging({.level = "loud"}));
  EXPECT_TRUE(init_logging({.level = "warn", .format = LogFormat::kJson}));
  EXPECT_TRUE(init_logging({.level = "info"}));
}

}  // namespace
}  // namespace prescale
