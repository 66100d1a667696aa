#include "http/json.h"

#include <gtest/gtest.h>

#include <string>

namespace prescale::http {
namespace {

TEST(JsonTest, ParsesValidDocuments) {
  auto r = parse_json(R"({"a": [1, 2, {"b": null}], "c": "d"})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ((*r)["a"][1], 2);
  EXPECT_EQ((*r)["c"], "d");
  EXPECT_TRUE(parse_json("  42 ").has_value());
}

TEST(JsonTest, ErrorNamesTheByteOffset) {
  auto r = parse_json(R"({"a": tru})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  // The literal "tru" (bytes 6-8) is found invalid at the '}' (byte 9).
  EXPECT_NE(r.error().message.find("at byte 9"), std::string::npos) << r.error().message;

  auto r2 = parse_json(R"({"a": 1,})");
  ASSERT_FALSE(r2.has_value());
  EXPECT_NE(r2.error().message.find("at byte 8"), std::string::npos) << r2.error().message;
}

// A number too large for a double is an error like the others: what is wrong and where, without
// the library's exception id.
TEST(JsonTest, NumberOverflowSaysWhatIsWrong) {
  auto r = parse_json(R"({"a": 1e400})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.find("json.exception"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.rfind("invalid JSON at byte ", 0), 0u) << r.error().message;
  EXPECT_NE(r.error().message.find(": number overflow parsing '1e400'"), std::string::npos)
      << r.error().message;
}

TEST(JsonTest, RejectsEmptyAndTrailingGarbage) {
  auto empty = parse_json("");
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message.find("at byte 0"), std::string::npos) << empty.error().message;
  auto trailing = parse_json(R"({"a":1} x)");
  ASSERT_FALSE(trailing.has_value());
  EXPECT_NE(trailing.error().message.find("at byte 8"), std::string::npos)
      << trailing.error().message;
}

// RFC 8259 section 2: only whitespace (space, tab, LF, CR) may follow the value. A NUL byte is
// not whitespace and must not end the document early, hiding what follows it.
TEST(JsonTest, RejectsTrailingBytesAfterANulByte) {
  auto r = parse_json(std::string("{\"a\":1}\0{\"b\":2}", 15));
  ASSERT_FALSE(r.has_value()) << "parsed as " << r->dump();
  EXPECT_NE(r.error().message.find("at byte 7"), std::string::npos) << r.error().message;
}

// RFC 8259 leaves names given twice to the parser; the DOM kept the last without a word, so
// {"V14": 0, ..., "V14": -10} was scored by the fraud service on -10, a client's mistake unseen.
TEST(JsonTest, RejectsAKeyGivenTwiceInOneObject) {
  auto r = parse_json(R"({"a": {"b": 1, "c": "b:", "b": 2}})");
  ASSERT_FALSE(r.has_value()) << "parsed as " << r->dump();
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message, R"(invalid JSON at byte 26: key "b" given twice in one object)");
  // The same key in different objects, and a string equal to a key, are fine.
  EXPECT_TRUE(parse_json(R"({"b": 1, "a": {"b": 2}, "c": ["b", {"b": 3}, {"b": 4}]})"));
}

TEST(JsonTest, RejectsExcessiveNesting) {
  std::string deep(kMaxJsonDepth + 1, '[');
  deep += std::string(kMaxJsonDepth + 1, ']');
  auto r = parse_json(deep);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("at byte " + std::to_string(kMaxJsonDepth)), std::string::npos)
      << r.error().message;
  std::string ok(kMaxJsonDepth, '[');
  ok += std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(parse_json(ok).has_value());
}

TEST(JsonTest, JsonResponseSetsContentType) {
  Response r = json_response(201, {{"id", 7}});
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
  EXPECT_EQ(r.body, R"({"id":7})");
}

TEST(JsonTest, JsonResponseReplacesInvalidUtf8) {
  Response r = json_response(200, {{"s", std::string("a\xff")}});
  EXPECT_EQ(r.body, "{\"s\":\"a\xEF\xBF\xBD\"}");
}

TEST(JsonTest, ErrorResponseShape) {
  Response r = error_response(404, "not_found", "no \"such\" thing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body,
            (nlohmann::json{{"error", {{"code", "not_found"}, {"message", "no \"such\" thing"}}}}));
}

}  // namespace
}  // namespace prescale::http
