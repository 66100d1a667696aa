#include "core/host_port.h"

#include <gtest/gtest.h>

namespace prescale {
namespace {

TEST(HostPort, AnIPv4AddressIsWrittenAsItIs) {
  EXPECT_EQ(host_port("127.0.0.1", 8080), "127.0.0.1:8080");
  EXPECT_EQ(host_port("0.0.0.0", 80), "0.0.0.0:80");
}

TEST(HostPort, AnIPv6AddressIsWrittenInBrackets) {
  EXPECT_EQ(host_port("::1", 8080), "[::1]:8080");
  EXPECT_EQ(host_port("::", 9090), "[::]:9090");
  EXPECT_EQ(host_port("fe80::1%eth0", 443), "[fe80::1%eth0]:443");
  EXPECT_EQ(host_port("2001:db8::7", 1), "[2001:db8::7]:1");
}

// In a URL the '%' before an IPv6 zone id is written "%25" (RFC 6874 section 2): "[fe80::1%eth0]"
// is no URL's host. host_port() above keeps the '%' of a plain address (labels, endpoints).
TEST(HostPort, AUrlAuthorityEscapesTheZoneOfAnIPv6Address) {
  EXPECT_EQ(url_authority("fe80::1%eth0", 443), "[fe80::1%25eth0]:443");
  EXPECT_EQ(url_authority("fe80::1%en 0", 80), "[fe80::1%25en%200]:80");  // outside unreserved
  EXPECT_EQ(url_authority("::1", 8080), "[::1]:8080");
  EXPECT_EQ(url_authority("127.0.0.1", 8080), "127.0.0.1:8080");
  EXPECT_EQ(url_authority("localhost", 8080), "localhost:8080");
  EXPECT_EQ(url_authority("[fe80::1%25eth0]", 443), "[fe80::1%25eth0]:443");  // written already
}

TEST(HostPort, AUrlHostIsTheAddressASocketTakes) {
  EXPECT_EQ(url_host("fe80::1%25eth0"), "fe80::1%eth0");
  EXPECT_EQ(url_host("fe80::1%25en%200"), "fe80::1%en 0");
  EXPECT_EQ(url_host("fe80::1%eth0"), "fe80::1%eth0");  // a bare '%', as typed (section 3)
  EXPECT_EQ(url_host("::1"), "::1");
  EXPECT_EQ(url_host("localhost"), "localhost");
}

TEST(HostPort, AnAlreadyBracketedHostIsNotBracketedAgain) {
  EXPECT_EQ(host_port("[::1]", 8080), "[::1]:8080");
}

TEST(HostPort, AHostNameIsWrittenAsItIs) {
  EXPECT_EQ(host_port("localhost", 8080), "localhost:8080");
  EXPECT_EQ(host_port("recommend.shop.svc.cluster.local", 80),
            "recommend.shop.svc.cluster.local:80");
}

TEST(HostPort, PortsAtBothEndsOfTheRange) {
  EXPECT_EQ(host_port("127.0.0.1", 0), "127.0.0.1:0");
  EXPECT_EQ(host_port("127.0.0.1", 65535), "127.0.0.1:65535");
  EXPECT_EQ(host_port("::1", 0), "[::1]:0");
  EXPECT_EQ(host_port("::1", 65535), "[::1]:65535");
}

// A Host field never carries the zone id of an IPv6 literal (RFC 6874 section 4); every other
// authority is left as it is.
TEST(HostPort, WithoutZoneDropsOnlyAnIPv6LiteralsZoneId) {
  auto without_zone = [](std::string_view authority) {
    std::string out = ">";
    append_without_zone(out, authority);
    return out;
  };
  EXPECT_EQ(without_zone("[fe80::1%eth0]:8080"), ">[fe80::1]:8080");
  EXPECT_EQ(without_zone("[fe80::1%25eth0]"), ">[fe80::1]");
  EXPECT_EQ(without_zone("[::1]:8080"), ">[::1]:8080");
  EXPECT_EQ(without_zone("10.0.0.1:80"), ">10.0.0.1:80");
  EXPECT_EQ(without_zone("name%x:80"), ">name%x:80");  // not an IPv6 literal
  EXPECT_EQ(without_zone("[fe80::1%eth0"), ">[fe80::1%eth0");  // unclosed: as it is
  EXPECT_EQ(without_zone(""), ">");
}

TEST(HostPort, AppendingKeepsWhatTheBufferHolds) {
  std::string out = "http://";
  append_host_port(out, "::1", 65535);
  EXPECT_EQ(out, "http://[::1]:65535");
  append_host_port(out, "h", 7);
  EXPECT_EQ(out, "http://[::1]:65535h:7");
}

// The gateway writes a label per attempt into a buffer it reuses: once the buffer has the room,
// writing the next label into it allocates nothing.
TEST(HostPort, AppendingIntoABufferWithRoomDoesNotReallocate) {
  std::string label;
  label.reserve(64);
  const char* const storage = label.data();
  const size_t capacity = label.capacity();
  for (const char* host : {"2001:db8:85a3::8a2e:370:7334", "10.1.2.3", "replica-7.local"}) {
    label.clear();
    append_host_port(label, host, 65535);
    EXPECT_EQ(label.data(), storage) << label;
    EXPECT_EQ(label.capacity(), capacity) << label;
  }
  EXPECT_EQ(label, "replica-7.local:65535");
}

TEST(SplitHostPort, TakesANameAnIPv4OrABracketedIPv6Address) {
  HostPortParts p = split_host_port("replica-7.local:8080", 1);
  EXPECT_EQ(p.fault, HostPortFault::kNone);
  EXPECT_EQ(p.host, "replica-7.local");
  EXPECT_EQ(p.port, 8080);
  p = split_host_port("[fe80::1%eth0]:443", 1);
  EXPECT_EQ(p.fault, HostPortFault::kNone);
  EXPECT_EQ(p.host, "fe80::1%eth0");
  EXPECT_EQ(p.port, 443);
  EXPECT_EQ(split_host_port("[::]:0", 0).fault, HostPortFault::kNone);
  EXPECT_EQ(split_host_port("[::]:0", 1).fault, HostPortFault::kPort);
}

TEST(SplitHostPort, NamesWhatIsWrong) {
  for (std::string_view shape : {"h", ":80", "h x:80", "h\x01:80", "::1:80", "[::1:80", "a/b:80"}) {
    EXPECT_EQ(split_host_port(shape, 1).fault, HostPortFault::kShape) << shape;
  }
  for (std::string_view not_ipv6 : {"[a b]:80", "[10.0.0.7]:80", "[fe80::1%]:80", "[:::]:80"}) {
    EXPECT_EQ(split_host_port(not_ipv6, 1).fault, HostPortFault::kNotIpv6) << not_ipv6;
  }
  for (std::string_view port : {"h:", "h:+80", "h:-1", "h:65536", "h:8o", "h: 80"}) {
    EXPECT_EQ(split_host_port(port, 1).fault, HostPortFault::kPort) << port;
  }
  // A zone id names an interface: none holds a space, a control character, a '/' or a bracket
  // (as "[a b]:80", it would be taken here and fail only when the gateway connected).
  for (std::string_view zone : {"[fe80::1%eth 0]:80", "[fe80::1%eth0\n]:80", "[fe80::1%a]b]:80",
                                "[fe80::1%a/b]:80", "[fe80::1%a%b]:80"}) {
    EXPECT_EQ(split_host_port(zone, 1).fault, HostPortFault::kNotIpv6) << zone;
  }
  const HostPortParts zero = split_host_port("h:080", 1);
  EXPECT_EQ(zero.fault, HostPortFault::kLeadingZero);
  EXPECT_EQ(zero.port_text, "080");
}

// One reading of "http://host[:port][/path]" for the load generator's --target and the shop's
// gateway URL: the authority as every host:port of the platform, with what it cannot use named.
TEST(ParseHttpUrl, ReadsHostPortAndPathAndNamesWhatIsWrong) {
  Result<HttpUrl> a = parse_http_url("HTTP://Example:8080/api/");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "Example");
  EXPECT_EQ(a->port, 8080);
  EXPECT_EQ(a->path, "/api/");
  Result<HttpUrl> b = parse_http_url("http://[fe80::1%25eth0]");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->host, "fe80::1%eth0");
  EXPECT_EQ(b->port, 80);
  EXPECT_EQ(b->path, "");
  const std::pair<const char*, const char*> bad[] = {
      {"h:80", "missing http://"},
      {"https://h", "only http:// is supported"},
      {"http://u@h", "user information (user@) is not supported"},
      {"http://h?x=1", "no query or fragment"},
      {"http://:80", "missing host"},
      {"http://h:", "empty port"},
      {"http://h:080", "port must be written without leading zeros, got \"080\""},
      {"http://h:8o", "port must be 1..65535, got \"8o\""},
      {"http://a b:80", "the host must be a name or an IP address"},
      {"http://[zz]:80", "the host in brackets must be an IPv6 address"},
  };
  for (const auto& [url, why] : bad) {
    Result<HttpUrl> r = parse_http_url(url);
    ASSERT_FALSE(r) << url;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << url << ": " << r.error().message;
  }
}

TEST(ParseWebUrl, TakesHttpsWithItsOwnDefaultPort) {
  auto a = parse_web_url("HTTPS://otlp.example.com/otlp");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->https);
  EXPECT_EQ(a->host, "otlp.example.com");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->path, "/otlp");
  auto b = parse_web_url("https://[::1]:9443");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 9443);
  auto c = parse_web_url("http://h");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE(c->https);
  EXPECT_EQ(c->port, 80);
  auto d = parse_web_url("ftp://h");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("only http:// and https:// are supported"), std::string::npos);
  auto e = parse_web_url("https://u@h");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("user information"), std::string::npos);
  EXPECT_FALSE(parse_http_url("https://h").has_value());  // where TLS cannot go
}

}  // namespace
}  // namespace prescale
