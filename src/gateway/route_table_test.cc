#include "gateway/route_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <utility>

// Counts heap allocations, to show that matching makes none. (GCC takes malloc/free in
// replacement operators for a new/delete mismatch.)
static std::atomic<long> g_allocations{0};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

// A table from the `gateway:` block of a prescale.yaml (services are declared as upstreams so
// any service name may be routed to).
RouteTable table_from(std::string_view gateway_yaml) {
  const std::string yaml = "version: 1\ngateway:\n" + std::string(gateway_yaml);
  Result<Config> config = load_config_string(yaml, "test.yaml");
  EXPECT_TRUE(config.has_value()) << config.error().message;
  Result<RouteTable> table = RouteTable::build(config->gateway);
  EXPECT_TRUE(table.has_value()) << table.error().message;
  return std::move(*table);
}

// The service a request reaches, or "404".
std::string route_of(const RouteTable& table, std::string_view host, std::string_view path,
                     std::initializer_list<std::pair<std::string, std::string>> headers = {}) {
  http::Headers h;
  for (const auto& [name, value] : headers) h.add(name, value);
  const Route* route = table.match(host, path, h);
  return route ? route->service : "404";
}

constexpr std::string_view kUpstreams = R"(
  upstreams:
    a: ["h:1"]
    b: ["h:1"]
    c: ["h:1"]
    d: ["h:1"]
    checkout: ["h:1"]
    checkout-canary: ["h:1"]
)";

TEST(RouteTable, LongestPrefixWinsWhateverTheOrder) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path_prefix: /}, service: a}
    - {match: {path_prefix: /v1}, service: b}
    - {match: {path_prefix: /v1/users}, service: c}
)");
  EXPECT_EQ(route_of(t, "x", "/v1/users/42"), "c");
  EXPECT_EQ(route_of(t, "x", "/v1/usersettings"), "c");  // a prefix of characters
  EXPECT_EQ(route_of(t, "x", "/v1/orders"), "b");
  EXPECT_EQ(route_of(t, "x", "/v2"), "a");
  EXPECT_EQ(route_of(t, "x", ""), "a");  // an empty path is "/"
}

TEST(RouteTable, NoMatchIsNull) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path_prefix: /v1}, service: a}
)");
  EXPECT_EQ(route_of(t, "x", "/v2"), "404");
  EXPECT_EQ(route_of(t, "x", "v1"), "404");
}

TEST(RouteTable, HostsExactWildcardAndAnyInThatOrder) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path_prefix: /}, service: a}
    - {match: {host: "*.example.com", path_prefix: /}, service: b}
    - {match: {host: "*.eu.example.com", path_prefix: /}, service: c}
    - {match: {host: Shop.Example.com, path_prefix: /}, service: d}
)");
  EXPECT_EQ(route_of(t, "shop.example.com", "/"), "d");
  EXPECT_EQ(route_of(t, "SHOP.example.COM:8443", "/"), "d");  // case and port ignored
  EXPECT_EQ(route_of(t, "shop.example.com.", "/"), "d");      // fully qualified
  EXPECT_EQ(route_of(t, "api.example.com", "/"), "b");
  EXPECT_EQ(route_of(t, "a.b.example.com", "/"), "b");     // any depth of subdomain
  EXPECT_EQ(route_of(t, "api.eu.example.com", "/"), "c");  // the longer wildcard
  EXPECT_EQ(route_of(t, "example.com", "/"), "a");         // the wildcard needs a subdomain
  EXPECT_EQ(route_of(t, "notexample.com", "/"), "a");
  EXPECT_EQ(route_of(t, "", "/"), "a");
  EXPECT_EQ(route_of(t, "[::1]:8080", "/"), "a");
  EXPECT_EQ(route_of(t, std::string(300, 'x') + ".example.com", "/"), "a");  // too long
}

TEST(RouteTable, LessSpecificHostServesPathsTheMoreSpecificOneLacks) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {host: shop.example.com, path_prefix: /cart}, service: a}
    - {match: {path_prefix: /}, service: b}
)");
  EXPECT_EQ(route_of(t, "shop.example.com", "/cart/1"), "a");
  EXPECT_EQ(route_of(t, "shop.example.com", "/help"), "b");
}

TEST(RouteTable, CanaryHeaderRouteComesFirst) {
  // Listed after the plain route and with a shorter prefix: the header still wins.
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path_prefix: /v1/checkout/pay}, service: checkout}
    - {match: {path_prefix: /v1/checkout, headers: {x-canary: "1"}}, service: checkout-canary}
)");
  EXPECT_EQ(route_of(t, "h", "/v1/checkout/pay", {{"x-canary", "1"}}), "checkout-canary");
  EXPECT_EQ(route_of(t, "h", "/v1/checkout/pay", {{"X-Canary", "1"}}), "checkout-canary");
  EXPECT_EQ(route_of(t, "h", "/v1/checkout/pay", {{"x-canary", "0"}}), "checkout");
  EXPECT_EQ(route_of(t, "h", "/v1/checkout/pay"), "checkout");
  EXPECT_EQ(route_of(t, "h", "/v1/checkout", {{"x-canary", "1"}}), "checkout-canary");
  EXPECT_EQ(route_of(t, "h", "/v1/checkout"), "404");
}

TEST(RouteTable, HeaderPresenceAndSeveralHeaders) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path_prefix: /}, service: a}
    - {match: {path_prefix: /, headers_present: [authorization]}, service: b}
    - {match: {path_prefix: /, headers: {x-tenant: acme}, headers_present: [Authorization]},
       service: c}
)");
  EXPECT_EQ(route_of(t, "h", "/"), "a");
  EXPECT_EQ(route_of(t, "h", "/", {{"Authorization", ""}}), "b");
  EXPECT_EQ(route_of(t, "h", "/", {{"authorization", "Bearer x"}, {"x-tenant", "acme"}}), "c");
  EXPECT_EQ(route_of(t, "h", "/", {{"x-tenant", "acme"}}), "a");
  EXPECT_EQ(route_of(t, "h", "/", {{"authorization", "x"}, {"x-tenant", "ACME"}}), "b");
}

TEST(RouteTable, PathPatterns) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path: "/v1/users/{id}"}, service: a}
    - {match: {path: "/v1/users/me"}, service: b}
    - {match: {path: "/static/{rest...}"}, service: c}
    - {match: {path: "/v1/users/{id}/orders/{order}"}, service: d}
)");
  EXPECT_EQ(route_of(t, "h", "/v1/users/42"), "a");
  EXPECT_EQ(route_of(t, "h", "/v1/users/me"), "b");  // a literal beats a parameter
  EXPECT_EQ(route_of(t, "h", "/v1/users/42/orders/7"), "d");
  EXPECT_EQ(route_of(t, "h", "/v1/users/42/orders"), "404");
  EXPECT_EQ(route_of(t, "h", "/v1/users/42/"), "404");  // whole path, trailing "/" included
  EXPECT_EQ(route_of(t, "h", "/v1/users/"), "404");     // a parameter is never empty
  EXPECT_EQ(route_of(t, "h", "/v1/users"), "404");
  EXPECT_EQ(route_of(t, "h", "/static"), "c");  // the catch-all may be empty
  EXPECT_EQ(route_of(t, "h", "/static/"), "c");
  EXPECT_EQ(route_of(t, "h", "/static/css/site.css"), "c");
  EXPECT_EQ(route_of(t, "h", "/staticx"), "404");
}

TEST(RouteTable, PatternAgainstPrefixByLiteralBeginning) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path_prefix: /v1/users}, service: a}
    - {match: {path: "/v1/users/{id}"}, service: b}
    - {match: {path_prefix: /v1/users/admin}, service: c}
    - {match: {path: "/"}, service: d}
    - {match: {path: "/v1/{rest...}"}, service: b}
)");
  EXPECT_EQ(route_of(t, "h", "/v1/users/42"), "b");     // "/v1/users/" is longer than the prefix
  EXPECT_EQ(route_of(t, "h", "/v1/users/admin"), "c");  // and shorter than this one
  EXPECT_EQ(route_of(t, "h", "/v1/users/42/x"), "a");   // the pattern does not fit
  EXPECT_EQ(route_of(t, "h", "/"), "d");
  EXPECT_EQ(route_of(t, "h", "/v1/orders"), "b");
}

TEST(RouteTable, ConfigOrderBreaksTies) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path: "/x/{a}"}, service: a}
    - {match: {path: "/{b}/y"}, service: b}
    - {match: {path_prefix: /z, headers: {h1: "1"}}, service: c}
    - {match: {path_prefix: /z, headers: {h2: "1"}}, service: d}
)");
  EXPECT_EQ(route_of(t, "h", "/x/y"), "a");  // "/x/" is the longer literal beginning
  EXPECT_EQ(route_of(t, "h", "/w/y"), "b");
  EXPECT_EQ(route_of(t, "h", "/z", {{"h1", "1"}, {"h2", "1"}}), "c");
  EXPECT_EQ(route_of(t, "h", "/z", {{"h2", "1"}}), "d");
}

TEST(RouteTable, RequestOverloadUsesTheHostHeader) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {host: api.example.com, path_prefix: /}, service: a}
    - {match: {path_prefix: /}, service: b}
)");
  http::Request req;
  req.path = "/v1";
  req.headers.add("Host", "API.example.com:8080");
  ASSERT_NE(t.match(req), nullptr);
  EXPECT_EQ(t.match(req)->service, "a");
  req.headers.clear();
  EXPECT_EQ(t.match(req)->service, "b");
}

TEST(RouteTable, RoutesCarryTimeoutsRetriesAndRateLimits) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - match: {host: Shop.example.com, path_prefix: /pay}
      service: a
      timeout: 10s
      per_try_timeout: 2s
      retries:
        num_retries: 3
        retry_on: [5xx, reset]
        retriable_status_codes: [429, 409]
        retryable: true
      rate_limit: {requests_per_second: 10, burst: 20, key: "header:X-Api-Key"}
    - match: {path: "/v1/{rest...}"}
      service: b
      retries: 0
      rate_limit: {requests_per_second: 0.5}
    - {match: {path_prefix: /}, service: c}
)");
  ASSERT_EQ(t.routes().size(), 3u);
  const Route& pay = t.routes()[0];
  EXPECT_EQ(pay.index, 0u);
  EXPECT_EQ(pay.host, "shop.example.com");
  EXPECT_EQ(pay.path_rule, "/pay");
  EXPECT_EQ(pay.timeout, 10s);
  EXPECT_EQ(pay.per_try_timeout, 2s);
  EXPECT_EQ(pay.retry.num_retries, 3u);
  EXPECT_TRUE(pay.retry.retry_on.server_error);
  EXPECT_TRUE(pay.retry.retry_on.reset);
  EXPECT_FALSE(pay.retry.retry_on.gateway_error);
  EXPECT_FALSE(pay.retry.retry_on.connect_failure);
  EXPECT_TRUE(pay.retry.retry_on.retriable_status_codes);
  EXPECT_THAT(pay.retry.retriable_status_codes, ElementsAre(409, 429));
  EXPECT_FALSE(pay.retry.idempotent_methods_only);
  ASSERT_TRUE(pay.rate_limit.has_value());
  EXPECT_DOUBLE_EQ(pay.rate_limit->bucket.rate_per_second, 10);
  EXPECT_DOUBLE_EQ(pay.rate_limit->bucket.burst, 20);
  EXPECT_EQ(pay.rate_limit->key, RouteRateLimit::Key::kHeader);
  EXPECT_EQ(pay.rate_limit->header, "x-api-key");

  http::Request req;
  req.remote_address = "192.0.2.7";
  EXPECT_EQ(pay.rate_limit->api_key(req), "");  // no header: limited by client IP
  req.headers.add("X-API-KEY", "k1");
  EXPECT_EQ(pay.rate_limit->api_key(req), "k1");

  const Route& v1 = t.routes()[1];
  EXPECT_EQ(v1.path_rule, "/v1/{rest...}");
  EXPECT_EQ(v1.timeout, 15s);
  EXPECT_EQ(v1.per_try_timeout, 0ms);
  EXPECT_EQ(v1.retry.num_retries, 0u);
  EXPECT_TRUE(v1.retry.idempotent_methods_only);
  EXPECT_TRUE(v1.retry.retry_on.gateway_error);
  EXPECT_TRUE(v1.retry.retry_on.connect_failure);
  EXPECT_TRUE(v1.retry.retry_on.reset);
  EXPECT_FALSE(v1.retry.retry_on.server_error);
  ASSERT_TRUE(v1.rate_limit.has_value());
  EXPECT_DOUBLE_EQ(v1.rate_limit->bucket.rate_per_second, 0.5);
  EXPECT_DOUBLE_EQ(v1.rate_limit->bucket.burst, 1);  // at least one request
  EXPECT_EQ(v1.rate_limit->key, RouteRateLimit::Key::kClientIp);
  EXPECT_EQ(v1.rate_limit->api_key(req), "");

  EXPECT_FALSE(t.routes()[2].rate_limit.has_value());
  // match() hands out the table's own routes.
  EXPECT_EQ(t.match("shop.example.com", "/pay", {}), &t.routes()[0]);
}

TEST(RouteTable, MatchingDoesNotAllocate) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {host: "*.example.com", path: "/v1/users/{id}/orders/{rest...}"}, service: a}
    - {match: {host: shop.example.com, path_prefix: /v1, headers: {x-canary: "1"}}, service: b}
    - {match: {host: shop.example.com, path_prefix: /v1, headers_present: [x-debug]}, service: c}
    - {match: {path_prefix: /}, service: d}
)");
  http::Request req;
  req.path = "/v1/users/42/orders/7/items";
  req.headers.add("Host", "Shop.Example.com:443");
  req.headers.add("x-debug", "on");
  const long before = g_allocations.load();
  const Route* route = nullptr;
  for (int i = 0; i < 1000; ++i) route = t.match(req);
  EXPECT_EQ(g_allocations.load() - before, 0);
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->service, "c");
}

TEST(RouteTable, RoutesStayPutWhenTheTableMoves) {
  RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path_prefix: /}, service: a}
)");
  const Route* before = t.match("h", "/", {});
  RouteTable moved = std::move(t);
  EXPECT_EQ(moved.match("h", "/", {}), before);
}

TEST(RouteTable, BuildRejectsWhatTheLoaderWouldHave) {
  GatewayConfig config;
  config.routes.emplace_back();
  config.routes.back().service = "a";
  config.routes.back().match.path = "/x/{rest...}/y";
  Result<RouteTable> t = RouteTable::build(config);
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(t.error().message, ::testing::HasSubstr("routes[0]"));

  config.routes.back().match.path = "";
  config.routes.back().rate_limit = {5, 5, "ip"};
  EXPECT_FALSE(RouteTable::build(config).has_value());
}

TEST(RouteTable, EmptyTableMatchesNothing) {
  Result<RouteTable> t = RouteTable::build(GatewayConfig{});
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->match("h", "/", {}), nullptr);
  EXPECT_TRUE(t->routes().empty());
}

TEST(RouteTable, DotSegmentsAreRemovedAsRfc3986Says) {
  EXPECT_EQ(without_dot_segments("/a/b/c"), std::nullopt);  // nothing to remove
  EXPECT_EQ(without_dot_segments("/a/.hidden/b..c"), std::nullopt);
  EXPECT_EQ(without_dot_segments("/public/../admin"), "/admin");
  EXPECT_EQ(without_dot_segments("/a/./b"), "/a/b");
  EXPECT_EQ(without_dot_segments("/a/b/.."), "/a/");
  EXPECT_EQ(without_dot_segments("/a/b/."), "/a/b/");
  EXPECT_EQ(without_dot_segments("/.."), "/");
  EXPECT_EQ(without_dot_segments("/../../x"), "/x");
  EXPECT_EQ(without_dot_segments("/a/%2E%2e/b"), "/b");
  EXPECT_EQ(without_dot_segments("/a/./"), "/a/");
  EXPECT_EQ(without_dot_segments("*"), std::nullopt);
}

// RFC 3986 section 6.2.2: "%2D" is "-" (an unreserved character), "%2f" is "%2F" and still not
// a slash; then dot segments go, as the upstream will resolve them.
TEST(RouteTable, PathsAreNormalizedAsRfc3986Says) {
  EXPECT_EQ(normalized_path("/a/b"), std::nullopt);  // nothing to change
  EXPECT_EQ(normalized_path("/a%2Fb%C3%A9"), std::nullopt);
  EXPECT_EQ(normalized_path("/items%2Dx"), "/items-x");
  EXPECT_EQ(normalized_path("/%61dmin/%7euser"), "/admin/~user");
  EXPECT_EQ(normalized_path("/a%2fb"), "/a%2Fb");
  EXPECT_EQ(normalized_path("/a%2"), std::nullopt);  // a malformed escape is kept
  EXPECT_EQ(normalized_path("/public/%2e%2E/admin"), "/admin");
  EXPECT_EQ(normalized_path("/public/%2e%2E%2fadmin"), "/public/..%2Fadmin");
  EXPECT_EQ(normalized_path("/public/.%2E/%61dmin"), "/admin");
}

TEST(RouteTable, RulesMatchInTheNormalFormOfTheirEncoding) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path_prefix: "/caf%c3%a9"}, service: a}
    - {match: {path: "/%7Eme/{id}"}, service: b}
    - {match: {path_prefix: "/items%2dx"}, service: c}
)");
  EXPECT_EQ(route_of(t, "h", "/caf%C3%A9/x"), "a");
  EXPECT_EQ(route_of(t, "h", "/~me/1"), "b");
  EXPECT_EQ(route_of(t, "h", "/items-x"), "c");
}

// docs/config.md: the literal beginning of a `path` is measured up to its first "{", and in the
// form requests are matched in: "/%7Eme/{id}" begins with the 5 characters "/~me/", fewer than
// the prefix "/~me/x" has (before, its 7 characters as written outranked the prefix).
TEST(RouteTable, APatternsLiteralBeginningIsMeasuredInTheNormalForm) {
  const RouteTable t = table_from(std::string(kUpstreams) + R"(
  routes:
    - {match: {path: "/%7Eme/{id}"}, service: b}
    - {match: {path_prefix: "/~me/x"}, service: a}
)");
  EXPECT_EQ(route_of(t, "h", "/~me/x"), "a");
  EXPECT_EQ(route_of(t, "h", "/~me/y"), "b");
}

// route_table.h: a path whose encoding is already normal is the common case, and normalizing it
// allocates nothing, escapes or not (a space, a UTF-8 letter, an encoded slash).
TEST(RouteTable, NormalizingAPathAlreadyInNormalFormAllocatesNothing) {
  const std::string_view paths[] = {"/v1/documents/annual%20report%C3%A9.pdf",
                                    "/static/some/longer/path/a%2Fb", "/v1/users/42/orders"};
  for (std::string_view path : paths) {
    const long before = g_allocations.load();
    const bool unchanged = !normalized_path(path).has_value();
    EXPECT_EQ(g_allocations.load() - before, 0) << path;
    EXPECT_TRUE(unchanged) << path;
  }
}

}  // namespace
}  // namespace prescale::gateway
