#include "core/splitmix.h"

#include <gtest/gtest.h>

#include <array>

namespace prescale {
namespace {

// The first outputs of the reference generator for two seeds (as published with it).
TEST(SplitMix64, TheReferenceSequenceFromSeedZero) {
  std::uint64_t state = 0;
  const std::array<std::uint64_t, 5> expected = {0xe220a8397b1dcdafULL, 0x6e789e6aa1b965f4ULL,
                                                 0x06c45d188009454fULL, 0xf88bb8a8724c81ecULL,
                                                 0x1b39896a51a8749bULL};
  for (std::uint64_t want : expected) EXPECT_EQ(splitmix64_next(state), want);
  EXPECT_EQ(state, 5 * kSplitMix64Gamma);
}

TEST(SplitMix64, TheReferenceSequenceFromSeed1234567) {
  std::uint64_t state = 1234567;
  const std::array<std::uint64_t, 5> expected = {6457827717110365317ULL, 3203168211198807973ULL,
                                                 9817491932198370423ULL, 4593380528125082431ULL,
                                                 16408922859458223821ULL};
  for (std::uint64_t want : expected) EXPECT_EQ(splitmix64_next(state), want);
}

TEST(SplitMix64, TheSharedCounterGivesThePlainCountersSequence) {
  std::uint64_t plain = 42;
  std::atomic<std::uint64_t> shared{42};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(splitmix64_next(shared), splitmix64_next(plain));
  EXPECT_EQ(shared.load(), plain);
}

TEST(SplitMix64, MixIsTheOutputForACounterValue) {
  EXPECT_EQ(splitmix64_mix(0), 0u);
  EXPECT_EQ(splitmix64_mix(kSplitMix64Gamma), 0xe220a8397b1dcdafULL);
  static_assert(splitmix64_mix(1234567 + kSplitMix64Gamma) == 6457827717110365317ULL,
                "usable at compile time");
}

}  // namespace
}  // namespace prescale
