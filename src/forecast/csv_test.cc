#include "forecast/csv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace prescale::forecast {
namespace {

TEST(TraceCsvTest, SplitsFieldsSkipsBlankLinesAndCountsLines) {
  CsvReader csv(
      "\xEF\xBB\xBF"
      "a,b\r\n\r\n \"x,y\" , 2 \n3,\n",
      "f.csv");
  std::vector<std::string_view> fields;
  ASSERT_TRUE(csv.next(fields));
  EXPECT_EQ(fields, (std::vector<std::string_view>{"a", "b"}));
  EXPECT_EQ(csv.line(), 1);
  ASSERT_TRUE(csv.next(fields));
  EXPECT_EQ(fields, (std::vector<std::string_view>{"x,y", "2"}));
  EXPECT_EQ(csv.line(), 3);
  ASSERT_TRUE(csv.next(fields));
  EXPECT_EQ(fields, (std::vector<std::string_view>{"3", ""}));
  EXPECT_EQ(csv.line(), 4);
  EXPECT_FALSE(csv.next(fields));
}

TEST(TraceCsvTest, QuotedFieldBeforeTrailingSpacesKeepsEveryField) {
  // Where a quoted field ends is found from where it starts: the row's trailing spaces must not
  // shift it (they used to drop or misplace the fields after it).
  CsvReader csv("\"a\",b,c  \n\"x\",\"y\"  \n", "f.csv");
  std::vector<std::string_view> fields;
  ASSERT_TRUE(csv.next(fields));
  EXPECT_EQ(fields, (std::vector<std::string_view>{"a", "b", "c"}));
  ASSERT_TRUE(csv.next(fields));
  EXPECT_EQ(fields, (std::vector<std::string_view>{"x", "y"}));
}

TEST(TraceCsvTest, TextAfterAClosingQuoteKeepsTheWholeField) {
  // `"12"34` is not a quoted field: it was read as "12", the rest dropped without a word, so a
  // malformed count became another number. Kept whole, it fails to parse and the error names it.
  CsvReader csv("t,n\n0,\"12\"34,x\n1, \"5\" ,\"6\"7\n", "f.csv");
  std::vector<std::string_view> fields;
  ASSERT_TRUE(csv.next(fields));
  ASSERT_TRUE(csv.next(fields));
  EXPECT_EQ(fields, (std::vector<std::string_view>{"0", "\"12\"34", "x"}));
  ASSERT_TRUE(csv.next(fields));
  EXPECT_EQ(fields, (std::vector<std::string_view>{"1", "5", "\"6\"7"}));
  EXPECT_FALSE(parse_number(fields[2]));
}

TEST(TraceCsvTest, FieldErrorNamesLineColumnAndValue) {
  CsvReader csv("time,requests\n0,x\n", "data/f.csv");
  std::vector<std::string_view> header, fields;
  ASSERT_TRUE(csv.next(header));
  ASSERT_TRUE(csv.next(fields));
  Error e = csv.field_error(header, 1, "a number", fields[1]);
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message, "data/f.csv:2: column 2 \"requests\": expected a number, got \"x\"");
}

TEST(TraceCsvTest, ParsesFiniteNumbersOnly) {
  EXPECT_EQ(parse_number("42"), 42.0);
  EXPECT_EQ(parse_number("-1.5"), -1.5);
  EXPECT_EQ(parse_number("+3e2"), 300.0);
  EXPECT_FALSE(parse_number(""));
  EXPECT_FALSE(parse_number("nan"));
  EXPECT_FALSE(parse_number("inf"));
  EXPECT_FALSE(parse_number("12abc"));
}

TEST(TraceCsvTest, ParsesTimestampsAsUtcNanoseconds) {
  constexpr int64_t kSecond = 1'000'000'000;
  EXPECT_EQ(parse_timestamp_ns("1970-01-01 00:00"), 0);
  EXPECT_EQ(parse_timestamp_ns("2024-01-01T00:00:00Z"), 1704067200 * kSecond);
  EXPECT_EQ(parse_timestamp_ns("2024-01-01 00:00:00"), 1704067200 * kSecond);
  EXPECT_EQ(parse_timestamp_ns("2024-01-01"), 1704067200 * kSecond);
  EXPECT_EQ(parse_timestamp_ns("2024-01-01T02:00:00+02:00"), 1704067200 * kSecond);
  EXPECT_EQ(parse_timestamp_ns("2023-12-31T19:00:00-0500"), 1704067200 * kSecond);
  EXPECT_EQ(parse_timestamp_ns("2023-11-16 18:17:03.9799600"), 1700158623 * kSecond + 979960000);
  EXPECT_EQ(parse_timestamp_ns("2024-02-29 12:00"), 1709208000 * kSecond);
  EXPECT_EQ(parse_timestamp_ns("1969-12-31 23:59:59"), -kSecond);
  EXPECT_FALSE(parse_timestamp_ns("2023-02-29 00:00"));
  EXPECT_FALSE(parse_timestamp_ns("2024-13-01 00:00"));
  EXPECT_FALSE(parse_timestamp_ns("2024-01-01 24:00"));
  EXPECT_FALSE(parse_timestamp_ns("2024-01-01 00:00:00."));
  EXPECT_FALSE(parse_timestamp_ns("1704067200"));
  EXPECT_FALSE(parse_timestamp_ns("9999-01-01 00:00"));  // past the int64 nanosecond range
  EXPECT_FALSE(parse_timestamp_ns("2024-01-01 00:00 junk"));
}

}  // namespace
}  // namespace prescale::forecast
