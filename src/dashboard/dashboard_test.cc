#include "dashboard/dashboard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "http/client.h"
#include "http/server.h"

namespace prescale::dashboard {
namespace {

using nlohmann::json;
using testing::HasSubstr;

// The Dashboard's routes over a small model, answered through a real server on port 0.
class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_.set_services(
        {{"frontend", "gateway", 200, 1, 10}, {"recommend", "recommend", 100, 2, 8}});
    for (int i = 1; i <= 4; ++i) {
      ServicePoint p;
      p.t = 1000 + 5 * i;
      p.load_rps = 10 * i;
      p.planned_replicas = 2;
      p.ready_replicas = 2;
      p.p99_ms = 40;
      p.errors_rps = 0;
      ASSERT_TRUE(model_.append_point("recommend", p));
    }
    ASSERT_TRUE(model_.set_forecast("recommend", {{1025, 45, 50, 60}}));
    model_.set_graph({{"frontend", "recommend", 1.25, 50}});
    model_.add_event({1010, "scale", "recommend", "", "1 -> 2: forecast p90 50 rps"});
    model_.add_event({1015, "ready", "recommend", "recommend-2", ""});
    Overview o;
    o.policy = "prescale";
    o.started_at = 1000;
    o.now = 1020;
    o.requests = 500;
    o.within_slo_share = 1;
    o.replica_hours = 0.1;
    o.scaling_events = 1;
    model_.set_overview(o);

    Dashboard(model_).add_routes(router_);
    http::ServerOptions options;
    options.threads = 1;
    server_ = std::make_unique<http::Server>(options, router_.as_handler());
    ASSERT_TRUE(server_->start());
  }
  void TearDown() override { server_->shutdown(std::chrono::milliseconds(500)); }

  http::Response get(const std::string& target,
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request req;
    req.method = http::Method::kGet;
    req.method_name = "GET";
    req.target = target;
    for (auto& [k, v] : headers) req.headers.add(k, v);
    auto r = client_.request("127.0.0.1", server_->port(), std::move(req));
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : http::Response{};
  }

  json get_json(const std::string& target, int want_status = 200) {
    http::Response r = get(target);
    EXPECT_EQ(r.status, want_status) << target << ": " << r.body;
    EXPECT_EQ(r.headers.get("Content-Type"), "application/json") << target;
    EXPECT_EQ(r.headers.get("Cache-Control"), "no-cache") << target;
    return json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  }

  DashboardModel model_;
  http::Router router_;
  std::unique_ptr<http::Server> server_;
  http::Client client_;
};

TEST_F(DashboardTest, Overview) {
  json o = get_json("/api/v1/overview");
  EXPECT_EQ(o["policy"], "prescale");
  EXPECT_EQ(o["requests"], 500.0);
  EXPECT_EQ(o["within_slo_share"], 1.0);
  EXPECT_EQ(o["scaling_events"], 1);
  EXPECT_EQ(o["services"], 2);
}

TEST_F(DashboardTest, ServicesListsEveryServiceWithItsLatestPoint) {
  json s = get_json("/api/v1/services");
  ASSERT_EQ(s["services"].size(), 2u);
  EXPECT_EQ(s["services"][0]["name"], "frontend");
  EXPECT_TRUE(s["services"][0]["latest"].is_null());
  EXPECT_EQ(s["services"][1]["latest"]["load_rps"], 40.0);
  EXPECT_EQ(s["services"][1]["points"], 4);
}

TEST_F(DashboardTest, ServiceSeriesAndSince) {
  json all = get_json("/api/v1/services/recommend");
  EXPECT_EQ(all["name"], "recommend");
  EXPECT_EQ(all["series"]["t"].size(), 4u);
  EXPECT_EQ(all["forecast"]["p90"], json::array({50.0}));

  json later = get_json("/api/v1/services/recommend?since=1010");
  EXPECT_EQ(later["series"]["t"], json::array({1015.0, 1020.0}));
  EXPECT_EQ(later["since"], 1010.0);
  json fractional = get_json("/api/v1/services/recommend?since=1019.5");
  EXPECT_EQ(fractional["series"]["t"], json::array({1020.0}));
  json none = get_json("/api/v1/services/recommend?since=1020");
  EXPECT_TRUE(none["series"]["t"].empty());
  EXPECT_EQ(none["last_t"], 1020.0);
}

TEST_F(DashboardTest, UnknownServiceIs404NamingIt) {
  json e = get_json("/api/v1/services/nosuch", 404);
  EXPECT_EQ(e["error"]["code"], "not_found");
  EXPECT_THAT(e["error"]["message"].get<std::string>(), HasSubstr("nosuch"));
}

TEST_F(DashboardTest, BadSinceIs400NamingTheParameter) {
  for (const char* target : {"/api/v1/services/recommend?since=abc",
                             "/api/v1/services/recommend?since=", "/api/v1/events?since=1e999",
                             "/api/v1/events?since=12x"}) {
    json e = get_json(target, 400);
    EXPECT_EQ(e["error"]["code"], "invalid_argument") << target;
    EXPECT_THAT(e["error"]["message"].get<std::string>(), HasSubstr("\"since\"")) << target;
  }
  json e = get_json("/api/v1/events?after_id=-1", 400);
  EXPECT_THAT(e["error"]["message"].get<std::string>(), HasSubstr("\"after_id\""));
}

TEST_F(DashboardTest, GraphAndEvents) {
  json g = get_json("/api/v1/graph");
  ASSERT_EQ(g["edges"].size(), 1u);
  EXPECT_EQ(g["edges"][0]["fanout"], 1.25);
  EXPECT_EQ(g["nodes"].size(), 2u);

  json ev = get_json("/api/v1/events");
  ASSERT_EQ(ev["events"].size(), 2u);
  EXPECT_EQ(ev["events"][0]["kind"], "ready");
  EXPECT_EQ(ev["last_id"], 2);
  EXPECT_EQ(get_json("/api/v1/events?since=1010")["events"].size(), 1u);
  EXPECT_EQ(get_json("/api/v1/events?after_id=2")["events"].size(), 0u);
  EXPECT_EQ(get_json("/api/v1/events?after_id=1")["events"][0]["id"], 2);
}

TEST_F(DashboardTest, IncidentsAndEachServicesOpenOne) {
  EXPECT_EQ(get_json("/api/v1/incidents")["incidents"].size(), 0u);
  EXPECT_TRUE(get_json("/api/v1/services")["services"][1]["incident"].is_null());
  IncidentRecord open;
  open.id = 2;
  open.service = "recommend";
  open.opened_at = 1012;
  open.rule = "14.4x over 1h and 5m";
  open.burn_rate = 183.3;
  open.requests = 6000;
  open.failed = 1100;
  open.cause = "a rollout 55 s before: revision 2 replaces revision 1";
  open.summary = "18.3 % of its requests failed or missed the SLO";
  IncidentRecord resolved = open;
  resolved.id = 1;
  resolved.opened_at = 900;
  resolved.resolved_at = 950;
  resolved.cause = "";
  model_.set_incidents({open, resolved});

  json list = get_json("/api/v1/incidents")["incidents"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["id"], 2);
  EXPECT_EQ(list[0]["service"], "recommend");
  EXPECT_TRUE(list[0]["resolved_at"].is_null());
  EXPECT_EQ(list[0]["rule"], "14.4x over 1h and 5m");
  EXPECT_EQ(list[0]["failed"], 1100.0);
  EXPECT_EQ(list[0]["cause"], "a rollout 55 s before: revision 2 replaces revision 1");
  EXPECT_EQ(list[1]["resolved_at"], 950.0);
  EXPECT_EQ(list[1]["cause"], "");
  json services = get_json("/api/v1/services")["services"];
  EXPECT_TRUE(services[0]["incident"].is_null());
  EXPECT_EQ(services[1]["incident"]["id"], 2) << "the open one, not the resolved one";
}

TEST_F(DashboardTest, EachServicesOpenSlowdownWarning) {
  EXPECT_TRUE(get_json("/api/v1/services")["services"][1]["slowdown"].is_null());
  SlowdownRecord w;
  w.id = 3;
  w.service = "recommend";
  w.opened_at = 1015;
  w.service_ms = 30;
  w.usual_ms = 20;
  w.p99_ms = 138;
  w.summary = "each request takes 30.0 ms in service, 1.50x its usual 20.0 ms";
  model_.set_slowdowns({w});
  json services = get_json("/api/v1/services")["services"];
  EXPECT_TRUE(services[0]["slowdown"].is_null());
  EXPECT_EQ(services[1]["slowdown"]["id"], 3);
  EXPECT_EQ(services[1]["slowdown"]["service_ms"], 30.0);
  EXPECT_EQ(services[1]["slowdown"]["usual_ms"], 20.0);
  EXPECT_EQ(services[1]["slowdown"]["p99_ms"], 138.0);
  EXPECT_TRUE(services[1]["slowdown"]["load_ratio"].is_null()) << "unknown: null";
  EXPECT_EQ(services[1]["slowdown"]["summary"], w.summary);
  model_.set_slowdowns({});
  EXPECT_TRUE(get_json("/api/v1/services")["services"][1]["slowdown"].is_null());
}

TEST_F(DashboardTest, ServesTheEmbeddedUi) {
  http::Response page = get("/ui");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.headers.get("Content-Type"), "text/html; charset=utf-8");
  EXPECT_THAT(page.body, HasSubstr("/ui/vendor/uplot/uPlot.iife.min.js"));
  EXPECT_TRUE(page.headers.get("Content-Security-Policy"));

  struct Want {
    const char* path;
    const char* type;
    const char* contains;
  };
  for (const Want& w :
       {Want{"/ui/app.js", "text/javascript; charset=utf-8", "/api/v1/"},
        Want{"/ui/charts.js", "text/javascript; charset=utf-8", "data-points"},
        Want{"/ui/graph.js", "text/javascript; charset=utf-8", "PrescaleGraph"},
        Want{"/ui/style.css", "text/css; charset=utf-8", ".card"},
        Want{"/ui/vendor/uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8", "uPlot"},
        Want{"/ui/vendor/uplot/uPlot.min.css", "text/css; charset=utf-8", ".uplot"},
        Want{"/ui/vendor/uplot/LICENSE", "text/plain; charset=utf-8", "MIT"}}) {
    http::Response r = get(w.path);
    EXPECT_EQ(r.status, 200) << w.path;
    EXPECT_EQ(r.headers.get("Content-Type"), w.type) << w.path;
    EXPECT_THAT(r.body, HasSubstr(w.contains)) << w.path;
  }
  EXPECT_GT(get("/ui/vendor/uplot/uPlot.iife.min.js").body.size(), 40000u);  // whole, not cut
}

TEST_F(DashboardTest, AssetsRevalidateWithEtag) {
  http::Response first = get("/ui/app.js");
  auto etag = first.headers.get("ETag");
  ASSERT_TRUE(etag);
  http::Response again = get("/ui/app.js", {{"If-None-Match", std::string(*etag)}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
}

TEST_F(DashboardTest, RedirectsToUiAndRejectsUnknownFiles) {
  for (const char* target : {"/", "/ui/"}) {
    http::Response r = get(target);
    EXPECT_EQ(r.status, 302) << target;
    EXPECT_EQ(r.headers.get("Location"), "/ui") << target;
  }
  EXPECT_EQ(get("/ui/nope.js").status, 404);
  EXPECT_EQ(get("/ui/../CMakeLists.txt").status, 404);
  EXPECT_EQ(get("/ui/vendor/uplot/README.md").status, 404);  // not embedded
}

TEST_F(DashboardTest, LiveAppendIsSeenBySince) {
  ServicePoint p;
  p.t = 1025;
  p.load_rps = 99;
  ASSERT_TRUE(model_.append_point("recommend", p));
  json later = get_json("/api/v1/services/recommend?since=1020");
  EXPECT_EQ(later["series"]["load_rps"], json::array({99.0}));
}

TEST_F(DashboardTest, UnknownApiPathsAndMethodsAnswerNoCacheLikeEveryApiAnswer) {
  // docs/dashboard.md: all /api/v1 answers carry Cache-Control: no-cache, the 404 for an
  // unknown path and the 405 for a method other than GET/HEAD among them (both are cacheable
  // by default otherwise).
  http::Response unknown = get("/api/v1/nosuch");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.headers.get("Cache-Control"), "no-cache") << "404 " << unknown.body;

  http::Request post;
  post.method = http::Method::kPost;
  post.method_name = "POST";
  post.target = "/api/v1/overview";
  auto r = client_.request("127.0.0.1", server_->port(), std::move(post));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers.get("Cache-Control"), "no-cache") << "405 " << r->body;
}

TEST_F(DashboardTest, MethodsWithoutANameOfTheirOwnAnswerLikeEveryApiAnswer) {
  // TRACE, PROPFIND and other methods the router cannot name: a 405 with Cache-Control: no-cache
  // and Allow: GET, HEAD (RFC 9110 section 15.5.6) on an API path, a no-cache 404 on an unknown
  // one; the router's own answers had no Cache-Control, and an Allow that named the methods
  // the dashboard itself refuses.
  auto send = [&](const char* method, const char* target) {
    http::Request req;
    req.method = http::Method::kOther;
    req.method_name = method;
    req.target = target;
    auto r = client_.request("127.0.0.1", server_->port(), std::move(req));
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : http::Response{};
  };
  for (const char* method : {"TRACE", "PROPFIND"}) {
    for (const char* target : {"/api/v1/overview", "/api/v1/services", "/api/v1/services/recommend",
                               "/api/v1/graph", "/api/v1/events", "/api/v1/incidents"}) {
      http::Response r = send(method, target);
      EXPECT_EQ(r.status, 405) << method << " " << target;
      EXPECT_EQ(r.headers.get("Cache-Control"), "no-cache") << method << " " << target;
      EXPECT_EQ(r.headers.get("Allow"), "GET, HEAD") << method << " " << target;
      EXPECT_EQ(json::parse(r.body, nullptr, false)["error"]["code"], "method_not_allowed")
          << r.body;
    }
    http::Response unknown = send(method, "/api/v1/nosuch");
    EXPECT_EQ(unknown.status, 404) << method << " " << unknown.body;
    EXPECT_EQ(unknown.headers.get("Cache-Control"), "no-cache") << method;
  }
}

}  // namespace
}  // namespace prescale::dashboard
