#include "loadgen/http_target.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace prescale::loadgen {
namespace {

using ::testing::HasSubstr;

TEST(TargetUrlTest, Parses) {
  auto a = parse_target_url("http://127.0.0.1:8080");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  EXPECT_EQ(a->path_prefix, "");

  auto b = parse_target_url("http://gateway/api/");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "gateway");
  EXPECT_EQ(b->port, 80);
  EXPECT_EQ(b->path_prefix, "/api");

  auto c = parse_target_url("http://[::1]:9000/");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 9000);
  EXPECT_EQ(c->path_prefix, "");

  // An IPv6 zone id is written "%25" in a URL (RFC 6874), as `prescale up` announces it.
  auto d = parse_target_url("http://[fe80::1%25eth0]:9000");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->host, "fe80::1%eth0");
  EXPECT_EQ(d->port, 9000);
}

TEST(TargetUrlTest, RejectsWhatItCannotUse) {
  EXPECT_THAT(parse_target_url("ftp://x").error().message, HasSubstr("only http:// and https://"));
  auto secure = parse_target_url("https://shop.example.com/api/");
  ASSERT_TRUE(secure) << secure.error().message;
  EXPECT_TRUE(secure->https);
  EXPECT_EQ(secure->port, 443);
  EXPECT_EQ(secure->path_prefix, "/api");
  EXPECT_FALSE(parse_target_url("http://h")->https);
  EXPECT_THAT(parse_target_url("localhost:8080").error().message, HasSubstr("missing http://"));
  EXPECT_THAT(parse_target_url("http://:80").error().message, HasSubstr("missing host"));
  EXPECT_THAT(parse_target_url("http://h:0").error().message, HasSubstr("port"));
  EXPECT_THAT(parse_target_url("http://h:99999").error().message, HasSubstr("port"));
  EXPECT_THAT(parse_target_url("http://h:").error().message, HasSubstr("empty port"));
  EXPECT_THAT(parse_target_url("http://h/x?y=1").error().message, HasSubstr("no query"));
}

TEST(TargetUrlTest, RejectsAQueryOrFragmentWithoutAPath) {
  // "no query or fragment" holds without a path too: these must not become the host
  // "h?y=1" / "h#top", which every request then fails to resolve.
  for (const char* url : {"http://h?y=1", "http://h#top"}) {
    auto parsed = parse_target_url(url);
    EXPECT_FALSE(parsed) << url << " parsed as host \"" << parsed->host << "\"";
  }
}

TEST(TargetUrlTest, TheSchemeIsCaseInsensitiveAndUserInformationIsRefused) {
  auto upper = parse_target_url("HTTP://Example:8080/api");
  ASSERT_TRUE(upper) << upper.error().message;
  EXPECT_EQ(upper->host, "Example");
  EXPECT_EQ(upper->port, 8080);
  EXPECT_EQ(upper->path_prefix, "/api");
  auto user = parse_target_url("http://user@h/x");
  ASSERT_FALSE(user) << "host \"" << user->host << "\"";
  EXPECT_NE(user.error().message.find("user@"), std::string::npos) << user.error().message;
}

}  // namespace
}  // namespace prescale::loadgen
