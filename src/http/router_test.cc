#include "http/router.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace prescale::http {
namespace {

// Dispatches synchronously and returns the response (every handler here answers at once).
Response route(const Router& router, Method method, std::string path, Request* out = nullptr,
               std::string method_name = "") {
  Request req;
  req.method = method;
  req.method_name = method_name.empty() ? std::string(to_string(method)) : method_name;
  req.path = std::move(path);
  Response result;
  bool called = false;
  router.dispatch(req, Responder([&](Response r) {
                    result = std::move(r);
                    called = true;
                  }));
  EXPECT_TRUE(called);
  if (out != nullptr) *out = req;
  return result;
}

Handler answer(std::string text) {
  return [text](Request&, Responder respond) { respond(Response::text(200, text)); };
}

TEST(RouterTest, MatchesLiteralPaths) {
  Router r;
  r.add(Method::kGet, "/", answer("root"));
  r.add(Method::kGet, "/v1/users", answer("users"));
  EXPECT_EQ(route(r, Method::kGet, "/").body, "root");
  EXPECT_EQ(route(r, Method::kGet, "/v1/users").body, "users");
  EXPECT_EQ(route(r, Method::kGet, "/v1/users/").status, 404);  // trailing slash is distinct
  EXPECT_EQ(route(r, Method::kGet, "/v1").status, 404);
}

TEST(RouterTest, FillsPathParamsAndRoute) {
  Router r;
  r.add(Method::kGet, "/v1/users/{id}/posts/{post_id}", answer("post"));
  Request req;
  Response resp = route(r, Method::kGet, "/v1/users/42/posts/a%20b", &req);
  EXPECT_EQ(resp.body, "post");
  EXPECT_EQ(req.param("id"), "42");
  EXPECT_EQ(req.param("post_id"), "a b");  // percent-decoded
  EXPECT_EQ(req.param("missing"), std::nullopt);
  EXPECT_EQ(req.route, "/v1/users/{id}/posts/{post_id}");
}

// RFC 3986 section 6.2.2: "%2D" is "-" and "%7e" is "~" (unreserved characters), and "%2f" is
// "%2F"; an encoded slash stays one, inside a segment.
TEST(RouterTest, LiteralsMatchEquivalentPercentEncodings) {
  Router r;
  r.add(Method::kGet, "/items-x", answer("items"));
  r.add(Method::kGet, "/~me/{name}", answer("me"));
  r.add(Method::kGet, "/a/b", answer("a/b"));
  r.add(Method::kGet, "/files/x%2fy", answer("x%2Fy"));
  r.add(Method::kGet, "/static/{rest...}", answer("static"));
  EXPECT_EQ(route(r, Method::kGet, "/items%2Dx").body, "items");
  EXPECT_EQ(route(r, Method::kGet, "/%69tems%2dx").body, "items");
  Request req;
  EXPECT_EQ(route(r, Method::kGet, "/%7Eme/%41%2Fb", &req).body, "me");
  EXPECT_EQ(req.param("name"), "A/b");
  EXPECT_EQ(req.route, "/~me/{name}");
  EXPECT_EQ(req.path, "/%7Eme/%41%2Fb");  // the handler still sees the path as received
  EXPECT_EQ(route(r, Method::kGet, "/a%2Fb").status, 404);
  EXPECT_EQ(route(r, Method::kGet, "/a%2fb").status, 404);
  EXPECT_EQ(route(r, Method::kGet, "/files/x%2Fy").body, "x%2Fy");
  EXPECT_EQ(route(r, Method::kGet, "/files/x%2fy").body, "x%2Fy");
  EXPECT_EQ(route(r, Method::kGet, "/static/%61/%2F", &req).body, "static");
  EXPECT_EQ(req.param("rest"), "a//");
}

TEST(RouterTest, ParameterDoesNotMatchEmptySegment) {
  Router r;
  r.add(Method::kGet, "/users/{id}", answer("user"));
  EXPECT_EQ(route(r, Method::kGet, "/users/").status, 404);
  EXPECT_EQ(route(r, Method::kGet, "/users").status, 404);
  EXPECT_EQ(route(r, Method::kGet, "/users/1/2").status, 404);
}

TEST(RouterTest, CatchAllTakesTheRestOfThePath) {
  Router r;
  r.add(Method::kGet, "/static/{path...}", answer("static"));
  Request req;
  EXPECT_EQ(route(r, Method::kGet, "/static/css/site.css", &req).body, "static");
  EXPECT_EQ(req.param("path"), "css/site.css");
  EXPECT_EQ(req.route, "/static/{path...}");
  EXPECT_EQ(route(r, Method::kGet, "/static/", &req).body, "static");
  EXPECT_EQ(req.param("path"), "");
  EXPECT_EQ(route(r, Method::kGet, "/static", &req).body, "static");
  EXPECT_EQ(req.param("path"), "");
  EXPECT_EQ(route(r, Method::kGet, "/other/x").status, 404);
}

TEST(RouterTest, LiteralWinsOverParameterWinsOverCatchAll) {
  Router r;
  r.add(Method::kGet, "/users/me", answer("me"));
  r.add(Method::kGet, "/users/{id}", answer("by-id"));
  r.add(Method::kGet, "/users/{rest...}", answer("rest"));
  // Registration order does not matter.
  r.add(Method::kGet, "/files/{name}", answer("file"));
  r.add(Method::kGet, "/files/index", answer("index"));
  EXPECT_EQ(route(r, Method::kGet, "/users/me").body, "me");
  EXPECT_EQ(route(r, Method::kGet, "/users/42").body, "by-id");
  EXPECT_EQ(route(r, Method::kGet, "/users/42/friends").body, "rest");
  EXPECT_EQ(route(r, Method::kGet, "/files/index").body, "index");
  EXPECT_EQ(route(r, Method::kGet, "/files/other").body, "file");
}

TEST(RouterTest, BacktracksFromLiteralToParameter) {
  Router r;
  r.add(Method::kGet, "/a/b/d", answer("literal"));
  r.add(Method::kGet, "/a/{x}/c", answer("param"));
  Request req;
  EXPECT_EQ(route(r, Method::kGet, "/a/b/c", &req).body, "param");
  EXPECT_EQ(req.param("x"), "b");
  EXPECT_EQ(route(r, Method::kGet, "/a/b/d").body, "literal");
}

TEST(RouterTest, UnknownPathIs404WithJsonError) {
  Router r;
  r.add(Method::kGet, "/known", answer("x"));
  Response resp = route(r, Method::kGet, "/unknown");
  EXPECT_EQ(resp.status, 404);
  EXPECT_EQ(resp.headers.get("Content-Type"), "application/json");
  auto body = nlohmann::json::parse(resp.body);
  EXPECT_EQ(body["error"]["code"], "not_found");
  EXPECT_TRUE(body["error"]["message"].is_string());
}

TEST(RouterTest, KnownPathOtherMethodIs405WithAllow) {
  Router r;
  r.add(Method::kGet, "/items/{id}", answer("get"));
  r.add(Method::kDelete, "/items/{id}", answer("delete"));
  Response resp = route(r, Method::kPost, "/items/7");
  EXPECT_EQ(resp.status, 405);
  EXPECT_EQ(resp.headers.get("Allow"), "GET, HEAD, DELETE");
  auto body = nlohmann::json::parse(resp.body);
  EXPECT_EQ(body["error"]["code"], "method_not_allowed");

  Router post_only;
  post_only.add(Method::kPost, "/submit", answer("ok"));
  Response r2 = route(post_only, Method::kGet, "/submit");
  EXPECT_EQ(r2.status, 405);
  EXPECT_EQ(r2.headers.get("Allow"), "POST");
}

TEST(RouterTest, MethodSpecificRouteFoundBehindALiteralOfAnotherMethod) {
  Router r;
  r.add(Method::kGet, "/orders/new", answer("form"));
  r.add(Method::kPost, "/orders/{id}", answer("update"));
  EXPECT_EQ(route(r, Method::kPost, "/orders/new").body, "update");
  EXPECT_EQ(route(r, Method::kGet, "/orders/new").body, "form");
}

TEST(RouterTest, HeadUsesGetHandlerUnlessHeadRouted) {
  Router r;
  r.add(Method::kGet, "/a", answer("get-a"));
  r.add(Method::kGet, "/b", answer("get-b"));
  r.add(Method::kHead, "/b", answer("head-b"));
  EXPECT_EQ(route(r, Method::kHead, "/a").body, "get-a");
  EXPECT_EQ(route(r, Method::kHead, "/b").body, "head-b");
}

TEST(RouterTest, OtherMethodOnKnownPathIs405) {
  Router r;
  r.add(Method::kGet, "/a", answer("a"));
  EXPECT_EQ(route(r, Method::kOther, "/a", nullptr, "PROPFIND").status, 405);
  EXPECT_EQ(route(r, Method::kOther, "/b", nullptr, "PROPFIND").status, 404);
}

TEST(RouterTest, OtherMethodRouteServesEveryMethodWithoutANameOfItsOwn) {
  // A kOther route answers TRACE, PROPFIND and the like, so an owner can shape those answers
  // (headers, body) as it does its other ones instead of getting the router's own 405.
  Router r;
  r.add(Method::kGet, "/a", answer("get"));
  r.add(Method::kOther, "/a", [](Request& req, Responder respond) {
    respond(Response::text(200, "other " + req.method_name));
  });
  Request req;
  EXPECT_EQ(route(r, Method::kOther, "/a", &req, "TRACE").body, "other TRACE");
  EXPECT_EQ(req.route, "/a");
  EXPECT_EQ(route(r, Method::kOther, "/a", nullptr, "PROPFIND").body, "other PROPFIND");
  EXPECT_EQ(route(r, Method::kGet, "/a").body, "get");
  EXPECT_EQ(route(r, Method::kHead, "/a").body, "get");
  // The named methods it does not serve still get the router's 405, whose Allow names only
  // methods that have a name.
  Response post = route(r, Method::kPost, "/a");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.headers.get("Allow"), "GET, HEAD");
}

TEST(RouterTest, RejectsInvalidPatternsAtAdd) {
  Router r;
  const char* bad[] = {
      "",       "no-slash", "/a//b", "/a/", "/{}",          "/{1abc}",    "/{a-b}",
      "/x{id}", "/{id}x",   "/{id",  "/a}", "/{p...}/more", "/{id}/{id}", "/{...}",
  };
  for (const char* p : bad) {
    EXPECT_THROW(r.add(Method::kGet, p, answer("x")), std::invalid_argument) << p;
  }
  EXPECT_THROW(r.add(Method::kGet, "/ok", Handler()), std::invalid_argument);
  r.add(Method::kOther, "/ok", answer("x"));
  EXPECT_THROW(r.add(Method::kOther, "/ok", answer("y")), std::invalid_argument);
}

TEST(RouterTest, RejectsDuplicateRoutes) {
  Router r;
  r.add(Method::kGet, "/users/{id}", answer("x"));
  EXPECT_THROW(r.add(Method::kGet, "/users/{id}", answer("y")), std::invalid_argument);
  // Same shape, different parameter name: still ambiguous.
  EXPECT_THROW(r.add(Method::kGet, "/users/{name}", answer("y")), std::invalid_argument);
  // Another method on the same shape is fine, and may name the parameter differently.
  r.add(Method::kPut, "/users/{uid}", answer("put"));
  Request req;
  EXPECT_EQ(route(r, Method::kPut, "/users/5", &req).body, "put");
  EXPECT_EQ(req.param("uid"), "5");
}

TEST(RouterTest, AsHandlerDispatches) {
  Router r;
  r.add(Method::kGet, "/x/{id}", [](Request& req, Responder respond) {
    respond(Response::text(200, std::string(*req.param("id"))));
  });
  Handler h = r.as_handler();
  Router outer;
  outer.add(Method::kGet, "/{rest...}", h);
  EXPECT_EQ(route(outer, Method::kGet, "/x/abc").body, "abc");
}

// The request helpers handlers use alongside the router.
TEST(RouterRequestTest, QueryParamsAreDecoded) {
  Request req;
  req.query = "q=hello+world&empty=&flag&enc=%2Fa%3Db&q=second";
  EXPECT_EQ(req.query_param("q"), "hello world");  // first occurrence
  EXPECT_EQ(req.query_param("empty"), "");
  EXPECT_EQ(req.query_param("flag"), "");
  EXPECT_EQ(req.query_param("enc"), "/a=b");
  EXPECT_EQ(req.query_param("absent"), std::nullopt);
}

// A key is compared once decoded, never as sent: "a%62" names the key "ab", and asking for
// the key "a%62" (sent as "a%2562") must not find the one sent as "a%62".
TEST(RouterRequestTest, QueryParamKeysCompareDecodedOnly) {
  Request req;
  req.query = "a%62=1&c+d=2&e%2Bf=3";
  EXPECT_EQ(req.query_param("ab"), "1");
  EXPECT_EQ(req.query_param("a%62"), std::nullopt);
  EXPECT_EQ(req.query_param("c d"), "2");
  EXPECT_EQ(req.query_param("c+d"), std::nullopt);
  EXPECT_EQ(req.query_param("e+f"), "3");
  EXPECT_EQ(req.query_param("e%2Bf"), std::nullopt);
  req.query = "a%2562=literal&ab=plain";
  EXPECT_EQ(req.query_param("a%62"), "literal");
  EXPECT_EQ(req.query_param("ab"), "plain");
  req.query = "x%=1&y%4=2&%zz=3";  // malformed escapes are kept verbatim
  EXPECT_EQ(req.query_param("x%"), "1");
  EXPECT_EQ(req.query_param("y%4"), "2");
  EXPECT_EQ(req.query_param("%zz"), "3");
}

TEST(RouterRequestTest, HeadersAreCaseInsensitive) {
  Headers h;
  h.add("Content-Type", "text/plain");
  h.add("X-Multi", "1");
  h.add("x-multi", "2");
  EXPECT_EQ(h.get("content-type"), "text/plain");
  EXPECT_EQ(h.get("X-MULTI"), "1");
  h.set("X-Multi", "3");
  EXPECT_EQ(h.get("x-multi"), "3");
  EXPECT_EQ(h.fields().size(), 2u);
  h.remove("CONTENT-TYPE");
  EXPECT_EQ(h.get("Content-Type"), std::nullopt);
  h.clear();
  EXPECT_TRUE(h.empty());
}

TEST(RouterRequestTest, MethodNames) {
  EXPECT_EQ(method_from_string("GET"), Method::kGet);
  EXPECT_EQ(method_from_string("DELETE"), Method::kDelete);
  EXPECT_EQ(method_from_string("get"), Method::kOther);  // methods are case-sensitive
  EXPECT_EQ(to_string(Method::kPatch), "PATCH");
}

}  // namespace
}  // namespace prescale::http
