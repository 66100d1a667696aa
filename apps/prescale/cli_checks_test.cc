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

// CLI11 converts integers with base 0: `--port 010` listened on 8 and `--port 0x50` on 80.
TEST(CliChecksTest, AnIntegerFlagIsDecimalInEverySubcommand) {
  auto parse = [](const std::string& text) {
    CLI::App app;
    CLI::App* sub = app.add_subcommand("serve");
    int port = -1;
    unsigned count = 0;
    double share = 0;
    sub->add_option("--port", port)->check(CLI::Range(-1, 65535));  // "INT:INT in [...]"
    sub->add_option("--count", count);
    sub->add_option("--share", share);
    require_decimal_integers(app);
    std::vector<std::string> args = {text, "--port", "serve"};
    try {
      app.parse(args);
    } catch (const CLI::ParseError&) {
      return -2;
    }
    return port;
  };
  EXPECT_EQ(parse("8080"), 8080);
  EXPECT_EQ(parse("0"), 0);
  EXPECT_EQ(parse("-1"), -1);
  EXPECT_EQ(parse("010"), -2);
  EXPECT_EQ(parse("0x50"), -2);
  EXPECT_EQ(parse("-010"), -2);
  // Floating-point flags are not integers: "0.5" and "05.5" are left as they are.
  CLI::App app;
  double share = 0;
  app.add_option("--share", share);
  require_decimal_integers(app);
  std::vector<std::string> args = {"0.5", "--share"};
  EXPECT_NO_THROW(app.parse(args));
  EXPECT_EQ(share, 0.5);
}

}  // namespace
}  // namespace prescale
