#include "core/byte_size.h"

#include <gtest/gtest.h>

namespace prescale {
namespace {

TEST(ByteSizeTest, ReadsBytesAndKubernetesSuffixes) {
  EXPECT_EQ(parse_byte_size("536870912")->bytes, 536870912u);
  EXPECT_EQ(parse_byte_size("512Mi")->bytes, 512u << 20);
  EXPECT_EQ(parse_byte_size("1.5Gi")->bytes, 3u << 29);
  EXPECT_EQ(parse_byte_size("4Ki")->bytes, 4096u);
  EXPECT_EQ(parse_byte_size("2Ti")->bytes, 2ULL << 40);
  EXPECT_EQ(parse_byte_size("500M")->bytes, 500'000'000u);
  EXPECT_EQ(parse_byte_size("1k")->bytes, 1000u);
  EXPECT_EQ(parse_byte_size("3G")->bytes, 3'000'000'000u);
  EXPECT_EQ(parse_byte_size("0")->bytes, 0u);
  EXPECT_EQ(parse_byte_size("1025Ti").error(), "sizes are at most 1Pi, got \"1025Ti\"");
  EXPECT_EQ(parse_byte_size("1024Ti")->bytes, 1ULL << 50);
  EXPECT_EQ(parse_byte_size("1Pi")->bytes, 1ULL << 50);
  EXPECT_EQ(parse_byte_size("1P")->bytes, 1'000'000'000'000'000u);
  EXPECT_EQ(parse_byte_size("2Ei").error(),
            "expected bytes, or a size such as \"512Mi\", "
            "\"1.5Gi\" or \"500M\" (Ki, Mi, Gi, Ti, Pi: powers of "
            "1024; k, M, G, T, P: powers of 1000; e3: times 10³), "
            "got \"2Ei\"");
  EXPECT_EQ(parse_byte_size("1" + std::string(400, '0')).error().substr(0, 20),
            "sizes are at most 1P");
  // A decimal exponent and a sign, as Kubernetes reads them; fractions of a byte round up.
  EXPECT_EQ(parse_byte_size("128e6")->bytes, 128'000'000u);
  EXPECT_EQ(parse_byte_size("1E3")->bytes, 1000u);
  EXPECT_EQ(parse_byte_size("+1Mi")->bytes, 1u << 20);
  EXPECT_EQ(parse_byte_size("0.1Ki")->bytes, 103u);
  EXPECT_EQ(parse_byte_size("1.5")->bytes, 2u);
  EXPECT_EQ(parse_byte_size("0.3e1")->bytes, 3u);
}

TEST(ByteSizeTest, RefusesWhatKubernetesWouldNotReadNamingTheText) {
  for (const char* bad :
       {"", "Mi", "12 MB", "12MB", "12mi", "1e", "1e3Mi", "1.2.3Mi", "12Mi ", "x", "1Mi1"}) {
    const auto parsed = parse_byte_size(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_NE(parsed.error().find("expected bytes, or a size such as \"512Mi\""),
              std::string::npos)
        << parsed.error();
    EXPECT_NE(parsed.error().find(std::string("got \"") + bad + "\""), std::string::npos);
  }
  EXPECT_EQ(parse_byte_size("-1Mi").error(), "sizes cannot be negative, got \"-1Mi\"");
}

TEST(ByteSizeTest, FormatsInTheLargestWholeUnitAndReadsBack) {
  EXPECT_EQ(format_byte_size({512u << 20}), "512Mi");
  EXPECT_EQ(format_byte_size({1536u << 20}), "1536Mi");
  EXPECT_EQ(format_byte_size({2u << 30}), "2Gi");
  EXPECT_EQ(format_byte_size({500'000'000}), "500M");
  EXPECT_EQ(format_byte_size({1001}), "1001");
  EXPECT_EQ(format_byte_size({0}), "0");
  for (std::uint64_t b : {1ULL, 1000ULL, 1024ULL, 123456789ULL, 3ULL << 29, 7ULL << 40}) {
    EXPECT_EQ(parse_byte_size(format_byte_size({b}))->bytes, b) << b;
  }
  EXPECT_EQ(format_mebibytes(530u << 20), "530.0 MiB");
  EXPECT_EQ(format_mebibytes((1u << 20) + (1u << 19)), "1.5 MiB");
}

}  // namespace
}  // namespace prescale
