#include "cli_checks.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace prescale {
namespace {

// Parses `prog --n TEXT` into an unsigned flag checked with non_negative(); false when refused.
bool parse_unsigned(const std::string& text, std::size_t& n) {
  CLI::App app;
  app.add_option("--n", n)->check(non_negative());
  std::vector<std::string> args = {text, "--n"};  // CLI11 parses the vector back to front
  try {
    app.parse(args);
  } catch (const CLI::ParseError&) {
    return false;
  }
  return true;
}

// CLI11 2.1 reads "-1" into an unsigned flag as its largest value (strtoull wraps it): `prescale
// serve --max-body-bytes -1` lifted the 4 MiB body limit instead of being refused.
TEST(CliChecksTest, ANegativeNumberIsRefusedForAnUnsignedFlag) {
  std::size_t n = 7;
  EXPECT_FALSE(parse_unsigned("-1", n));
  EXPECT_FALSE(parse_unsigned(" -5", n));
  EXPECT_FALSE(parse_unsigned("-0", n));
  EXPECT_EQ(n, 7u);
}

TEST(CliChecksTest, ANonNegativeNumberIsTaken) {
  std::size_t n = 7;
  EXPECT_TRUE(parse_unsigned("0", n));
  EXPECT_EQ(n, 0u);
  EXPECT_TRUE(parse_unsigned("4194304", n));
  EXPECT_EQ(n, 4194304u);
}

TEST(CliChecksTest, TextThatIsNoNumberIsLeftToTheConversion) {
  std::size_t n = 7;
  EXPECT_FALSE(parse_unsigned("abc", n));
}

TEST(CliChecksTest, FiniteRefusesNanAndInf) {
  for (const std::string text : {"nan", "inf", "-inf", "1e400"}) {
    CLI::App app;
    double x = 0;
    app.add_option("--x", x)->check(finite());
    std::vector<std::string> args = {text, "--x"};
    EXPECT_THROW(app.parse(args), CLI::ValidationError) << text;
  }
}

}  // namespace
}  // namespace prescale
