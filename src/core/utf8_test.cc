#include "core/utf8.h"

#include <gtest/gtest.h>

namespace prescale {
namespace {

TEST(Utf8, WellFormedSequencesHaveTheirLength) {
  EXPECT_EQ(utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(utf8_sequence_length("\xc3\xa9", 0), 2u);           // é
  EXPECT_EQ(utf8_sequence_length("\xe2\x82\xac", 0), 3u);       // €
  EXPECT_EQ(utf8_sequence_length("\xf0\x9f\x98\x80", 0), 4u);   // an emoji
  EXPECT_EQ(utf8_sequence_length("x\xf4\x8f\xbf\xbf", 1), 4u);  // U+10FFFF
}

TEST(Utf8, WhatRfc3629RefusesIsNone) {
  EXPECT_EQ(utf8_sequence_length("\x80", 0), 0u);              // a lone continuation byte
  EXPECT_EQ(utf8_sequence_length("\xc0\xaf", 0), 0u);          // overlong '/'
  EXPECT_EQ(utf8_sequence_length("\xe0\x80\xaf", 0), 0u);      // overlong, three bytes
  EXPECT_EQ(utf8_sequence_length("\xed\xa0\x80", 0), 0u);      // a surrogate
  EXPECT_EQ(utf8_sequence_length("\xf4\x90\x80\x80", 0), 0u);  // past U+10FFFF
  EXPECT_EQ(utf8_sequence_length("\xf5\x80\x80\x80", 0), 0u);
  EXPECT_EQ(utf8_sequence_length("\xe2\x82", 0), 0u);      // cut at the end
  EXPECT_EQ(utf8_sequence_length("\xe2\x28\xa1", 0), 0u);  // a continuation missing
}

}  // namespace
}  // namespace prescale
