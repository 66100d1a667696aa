#include "gateway/proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/internal/proxy_core.h"
#include "gateway/internal/upstream_head.h"
#include "gateway/proxy_test_util.h"
#include "gateway/upstream_pool.h"
#include "http/body_stream.h"
#include "http/h2_test_client.h"
#include "http/internal/poller.h"
#include "http/server.h"
#include "http/test_util.h"
#include "http/tunnel.h"
#include "telemetry/exposition.h"
#include "telemetry/registry.h"

namespace prescale::gateway {
namespace {

using http::testing::RawSocket;
using std::chrono::milliseconds;
using testing::RawUpstream;

http::ServerOptions local(int threads = 1) {
  http::ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = threads;
  return o;
}

std::string get(std::string_view target, std::string_view extra = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: example.test\r\n" + std::string(extra) +
         "\r\n";
}

std::string post(std::string_view target, std::string_view body) {
  return "POST " + std::string(target) +
         " HTTP/1.1\r\nHost: example.test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

bool eventually(const std::function<bool()>& cond, milliseconds within = milliseconds(3000)) {
  const auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return cond();
}

// An in-process upstream on http::Server.
class Upstream {
 public:
  explicit Upstream(http::Handler handler, http::ServerOptions options = local())
      : server_(std::move(options), std::move(handler)) {
    auto started = server_.start();
    EXPECT_TRUE(started.has_value());
  }
  uint16_t port() const { return server_.port(); }
  http::Server& server() { return server_; }

 private:
  http::Server server_;
};

// Answers "<METHOD> <target>\n<field>: <value>\n...\n\n<body>", and X-Upstream: <name>.
http::Handler echo(std::string name = "u") {
  return [name](http::Request& req, http::Responder respond) {
    std::string out = req.method_name + " " + req.target + "\n";
    for (const auto& [k, v] : req.headers.fields()) out += k + ": " + v + "\n";
    out += "\n" + req.body;
    http::Response r = http::Response::text(200, std::move(out));
    r.headers.add("X-Upstream", name);
    respond(std::move(r));
  };
}

// Records every report; selects from a script (attempt -> endpoint), or nothing past its end.
class ScriptedSelector final : public UpstreamSelector {
 public:
  explicit ScriptedSelector(std::vector<uint16_t> ports) : ports_(std::move(ports)) {}
  UpstreamSelection select(const http::Request&, int attempt, const UpstreamPick*) override {
    if (static_cast<size_t>(attempt) >= ports_.size()) return std::unexpected(past_end);
    return UpstreamPick{.host = "127.0.0.1",
                        .port = ports_[static_cast<size_t>(attempt)],
                        .tag = static_cast<uint64_t>(attempt),
                        .context = nullptr};
  }
  void report(const http::Request&, const AttemptReport& r) override {
    std::lock_guard lock(mu);
    reports.push_back({r.attempt, r.outcome, r.cancelled, r.request_sent, r.pick.port});
  }
  RetryDecision retry(const http::Request& req, const AttemptReport& r) override {
    if (backoff) return RetryDecision{.retry = true, .backoff = *backoff};
    return UpstreamSelector::retry(req, r);
  }

  struct Seen {
    int attempt;
    UpstreamOutcome outcome;
    bool cancelled;
    bool request_sent;
    uint16_t port;
  };
  std::vector<Seen> seen() {
    std::lock_guard lock(mu);
    return reports;
  }

  std::optional<Clock::Duration> backoff;
  NoPick past_end;  // what select() answers past the script's end

 private:
  std::vector<uint16_t> ports_;
  std::mutex mu;
  std::vector<Seen> reports;
};

// A gateway: a Proxy with one route "r" to `selector`, served by an http::Server.
class Gateway {
 public:
  Gateway(std::shared_ptr<UpstreamSelector> selector, milliseconds per_try = milliseconds(0),
          milliseconds timeout = milliseconds(5000), int threads = 1,
          milliseconds websocket_idle_timeout = milliseconds(300000))
      : proxy_(ProxyOptions{.connect_timeout = milliseconds(1000), .registry = &registry_}) {
    route_ = proxy_.add_route(ProxyRoute{.name = "r",
                                         .service = "svc",
                                         .timeout = timeout,
                                         .per_try_timeout = per_try,
                                         .websocket_idle_timeout = websocket_idle_timeout,
                                         .selector = std::move(selector)});
    server_ = std::make_unique<http::Server>(local(threads),
                                             [this](http::Request& req, http::Responder respond) {
                                               proxy_.forward(route_, req, std::move(respond));
                                             });
    auto started = server_->start();
    EXPECT_TRUE(started.has_value());
  }
  ~Gateway() { server_->shutdown(milliseconds(1000)); }

  uint16_t port() const { return server_->port(); }
  Proxy& proxy() { return proxy_; }
  http::Server& server() { return *server_; }
  std::string metrics() const { return telemetry::expose(registry_); }
  const telemetry::Registry& registry() const { return registry_; }
  // The value of `family`'s series for route "r" (NaN when there is none).
  double route_value(std::string_view family) const {
    for (const auto& f : registry_.collect()) {
      if (f.name != family) continue;
      for (const auto& series : f.series) {
        if (series.label_values == std::vector<std::string>{"r"}) return series.value;
      }
    }
    return std::nan("");
  }

 private:
  telemetry::Registry registry_;
  Proxy proxy_;  // before the server: it must outlive it
  Proxy::RouteId route_ = 0;
  std::unique_ptr<http::Server> server_;
};

std::shared_ptr<RoundRobinSelector> to(std::initializer_list<uint16_t> ports) {
  std::vector<std::pair<std::string, uint16_t>> endpoints;
  for (uint16_t p : ports) endpoints.emplace_back("127.0.0.1", p);
  return std::make_shared<RoundRobinSelector>(std::move(endpoints));
}

std::string field_line(std::string_view name, std::string_view value) {
  return std::string(name) + ": " + std::string(value) + "\n";
}

// Connections freed by a burst of answers stay pooled for the next burst, however many were busy
// at once: a cap below that (64 before) closed them and the next requests opened them again.
TEST(ProxyTest, TheConnectionsOfABurstArePooledForTheNext) {
  constexpr size_t kBurst = 100;
  // Answers nothing until a whole burst is in: its requests need kBurst connections at once.
  std::mutex mu;
  std::vector<http::Responder> held;
  Upstream up([&](http::Request&, http::Responder respond) {
    std::vector<http::Responder> all;
    {
      std::lock_guard lock(mu);
      held.push_back(std::move(respond));
      if (held.size() < kBurst) return;
      all.swap(held);
    }
    for (auto& r : all) r(http::Response::text(200, "ok"));
  });
  Gateway gw(to({up.port()}));
  http::testing::H2Client client(gw.port());
  auto burst = [&] {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < kBurst; ++i) ids.push_back(client.submit("GET", "/"));
    ASSERT_TRUE(client.finish(ids));
    for (int32_t id : ids) ASSERT_EQ(client.reply(id).status, 200);
  };
  burst();
  EXPECT_EQ(gw.proxy().stats().connections_opened, kBurst);
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().idle_connections == kBurst; }))
      << gw.proxy().stats().idle_connections;
  burst();
  EXPECT_EQ(gw.proxy().stats().connections_opened, kBurst);  // none opened again
}

TEST(ProxyTest, ForwardsMethodTargetFieldsAndBodyBothWays) {
  Upstream up(echo("one"));
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(
      s.send("PUT /v1/items/7?x=1&y=%20 HTTP/1.1\r\nHost: example.test\r\n"
             "X-Custom: a b\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
             "hello"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("X-Upstream"), "one");
  EXPECT_EQ(r->header("Content-Type"), "text/plain; charset=utf-8");
  const std::string& body = r->body;
  EXPECT_EQ(body.rfind("PUT /v1/items/7?x=1&y=%20\n", 0), 0u) << body;
  EXPECT_NE(body.find(field_line("Host", "example.test")), std::string::npos) << body;
  EXPECT_NE(body.find(field_line("X-Custom", "a b")), std::string::npos) << body;
  EXPECT_NE(body.find(field_line("Content-Type", "text/plain")), std::string::npos) << body;
  EXPECT_NE(body.find(field_line("Content-Length", "5")), std::string::npos) << body;
  EXPECT_EQ(body.substr(body.size() - 7), "\n\nhello") << body;

  // Other statuses and methods pass through as they are.
  ASSERT_TRUE(s.send("DELETE /gone HTTP/1.1\r\nHost: example.test\r\n\r\n"));
  auto d = s.read_response();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->body.rfind("DELETE /gone\n", 0), 0u);
}

TEST(ProxyTest, UpstreamStatusesAreRelayedAsTheyAre) {
  Upstream up([](http::Request& req, http::Responder respond) {
    respond(http::Response::text(req.path == "/404" ? 404 : 503, "from upstream"));
  });
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{up.port(), up.port()});
  Gateway gw(selector);
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/404")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "from upstream");
  ASSERT_TRUE(s.send(get("/503")));
  auto r2 = s.read_response();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 503);  // the upstream's own 503, not retried by default
  EXPECT_EQ(r2->body, "from upstream");
  EXPECT_EQ(selector->seen().size(), 2u);
}

TEST(ProxyTest, HeadResponseKeepsTheUpstreamLength) {
  Upstream up(
      [](http::Request&, http::Responder respond) { respond(http::Response::text(200, "hello")); });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.read_response(/*head=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Length"), "5");
  ASSERT_TRUE(s.send(get("/")));  // nothing of a body was sent after the HEAD answer
  auto r2 = s.read_response();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->body, "hello");
}

// RFC 9110 §8.6: a response to HEAD (or a 304) may carry Content-Length only when it equals the
// length a GET would have had. An upstream that frames its GET answers with chunked coding sends
// no length for HEAD; the gateway must not invent "0" (clients read it as an empty resource).
TEST(ProxyTest, HeadAnswerWithoutALengthIsNotGivenContentLengthZero) {
  RawUpstream up([](int, int, const std::string&) {
    return RawUpstream::Reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false};
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send("HEAD /report.csv HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.read_response(/*head=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Length"), std::nullopt);
}

TEST(ProxyTest, NotModifiedKeepsTheUpstreamLengthInsteadOfZero) {
  RawUpstream up([](int, int, const std::string&) {
    return RawUpstream::Reply{
        "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 5\r\n\r\n", false};
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/page", "If-None-Match: \"v1\"\r\n")));
  auto r = s.read_response(/*head=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 304);
  EXPECT_EQ(r->header("ETag"), "\"v1\"");
  // The length of the representation (5), or none at all; never a length the resource lacks.
  const auto length = r->header("Content-Length");
  EXPECT_TRUE(!length.has_value() || *length == "5") << "Content-Length: " << *length;
}

// Trailer fields of a chunked upstream response are not header fields (RFC 9110 section
// 6.5.1): the gateway buffers and reframes the body, so it must drop them, not relay them to
// the client as headers (a trailer could otherwise set Location or Set-Cookie).
TEST(ProxyTest, UpstreamTrailerFieldsAreNotRelayedAsHeaders) {
  RawUpstream up([](int, int, const std::string&) {
    return RawUpstream::Reply{
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\nX-Checksum: 1234\r\nSet-Cookie: s=1\r\n\r\n",
        false};
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->header("X-Checksum"), std::nullopt);
  EXPECT_EQ(r->header("Set-Cookie"), std::nullopt);
}

TEST(ProxyTest, HopByHopFieldsAreRemovedBothWays) {
  RawUpstream up([](int, int, const std::string&) {
    return RawUpstream::Reply{
        "HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop, keep-alive\r\nX-Resp-Hop: 1\r\n"
        "Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\n"
        "Trailer: X-T\r\nX-Kept: yes\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
        false};
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(
      s.send("GET / HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Hop\r\n"
             "X-Hop: 1\r\nKeep-Alive: 300\r\nProxy-Authorization: Basic eA==\r\n"
             "Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: websocket\r\n"
             "Trailer: X-T\r\nX-Kept: yes\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->header("Content-Length"), "5");
  EXPECT_EQ(r->header("X-Kept"), "yes");
  for (const char* hop : {"Connection", "X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade",
                          "Trailer", "Transfer-Encoding"}) {
    EXPECT_EQ(r->header(hop), std::nullopt) << hop;
  }
  auto requests = up.requests();
  ASSERT_EQ(requests.size(), 1u);
  std::string lower = requests[0];
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* hop : {"\r\nconnection:", "\r\nx-hop:", "\r\nkeep-alive:", "\r\nproxy-",
                          "\r\nte:", "\r\nupgrade:", "\r\ntrailer:", "\r\ntransfer-encoding:"}) {
    EXPECT_EQ(lower.find(hop), std::string::npos) << hop << " in\n" << requests[0];
  }
  EXPECT_NE(lower.find("\r\nx-kept: yes\r\n"), std::string::npos);
  EXPECT_EQ(lower.rfind("get / http/1.1\r\n", 0), 0u);
}

// Every X-Forwarded-For field the request carried is kept, in order, with the client appended
// (beyond eight fields the first hops were lost, the original client among them); an empty one
// adds no empty list member.
TEST(ProxyTest, EveryForwardedForFieldIsKept) {
  RawUpstream up([](int, int, const std::string&) { return RawUpstream::ok("ok"); });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  std::string fields;
  std::string expected;
  for (int i = 1; i <= 12; ++i) {
    fields += "X-Forwarded-For: 10.0.0." + std::to_string(i) + "\r\n";
    expected += "10.0.0." + std::to_string(i) + ", ";
    if (i == 6) fields += "x-forwarded-for:\r\n";
  }
  fields += "X-Forwarded-For: 10.1.0.1, 10.1.0.2\r\n";
  expected += "10.1.0.1, 10.1.0.2, 127.0.0.1";
  ASSERT_TRUE(s.send(get("/a", fields)));
  ASSERT_TRUE(s.read_response().has_value());
  auto requests = up.requests();
  ASSERT_EQ(requests.size(), 1u);
  const std::string& a = requests[0];
  EXPECT_NE(a.find("\r\nX-Forwarded-For: " + expected + "\r\n"), std::string::npos) << a;
  std::string lower = a;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(lower.find("x-forwarded-for"), lower.rfind("x-forwarded-for")) << a;  // one field
}

TEST(ProxyTest, ForwardedFieldsAndRequestId) {
  RawUpstream up([](int, int, const std::string&) { return RawUpstream::ok("ok"); });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/a", "X-Forwarded-For: 10.0.0.1\r\n")));
  ASSERT_TRUE(s.read_response().has_value());
  ASSERT_TRUE(s.send(get("/b", "X-Request-Id: abc\r\nX-Forwarded-Proto: https\r\n")));
  ASSERT_TRUE(s.read_response().has_value());
  auto requests = up.requests();
  ASSERT_EQ(requests.size(), 2u);
  const std::string& a = requests[0];
  EXPECT_NE(a.find("\r\nHost: example.test\r\n"), std::string::npos) << a;
  EXPECT_NE(a.find("\r\nX-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"), std::string::npos) << a;
  EXPECT_NE(a.find("\r\nX-Forwarded-Proto: http\r\n"), std::string::npos) << a;
  EXPECT_NE(a.find("\r\nX-Forwarded-Host: example.test\r\n"), std::string::npos) << a;
  const size_t id = a.find("\r\nx-request-id: ");
  ASSERT_NE(id, std::string::npos) << a;
  const std::string uuid = a.substr(id + 16, 36);
  EXPECT_EQ(uuid[8], '-');
  EXPECT_EQ(uuid[14], '4');  // version 4
  EXPECT_EQ(a.substr(id + 16 + 36, 2), "\r\n");

  const std::string& b = requests[1];
  EXPECT_NE(b.find("\r\nX-Forwarded-For: 127.0.0.1\r\n"), std::string::npos) << b;
  EXPECT_NE(b.find("\r\nX-Request-Id: abc\r\n"), std::string::npos) << b;
  EXPECT_EQ(b.find("x-request-id"), std::string::npos) << b;  // not added a second time
  EXPECT_NE(b.find("\r\nX-Forwarded-Proto: https\r\n"), std::string::npos) << b;
  EXPECT_EQ(b.find("X-Forwarded-Proto: http\r\n"), std::string::npos) << b;
}

// A client's empty Host (a target with no authority, RFC 9110 section 7.2) is forwarded as it
// is, not followed by a second Host the upstream would refuse.
TEST(ProxyTest, AnEmptyHostIsForwardedOnce) {
  RawUpstream up([](int, int, const std::string&) { return RawUpstream::ok("ok"); });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send("GET /a HTTP/1.1\r\nHost:\r\n\r\n"));
  ASSERT_TRUE(s.read_response().has_value());
  auto requests = up.requests();
  ASSERT_EQ(requests.size(), 1u);
  const std::string lower = [&] {
    std::string l = requests[0];
    for (char& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return l;
  }();
  const size_t first = lower.find("\r\nhost:");
  ASSERT_NE(first, std::string::npos) << requests[0];
  EXPECT_EQ(lower.find("\r\nhost:", first + 1), std::string::npos) << requests[0];
}

// A request without a Host (HTTP/1.0 allows it) is sent with the upstream's address as its Host,
// less an IPv6 zone id: that names an interface of the gateway's machine, nothing the upstream
// knows (RFC 6874 section 4).
TEST(ProxyTest, AHostAddedForTheUpstreamLeavesOutAnIPv6ZoneId) {
  http::Request req;
  req.method_name = "GET";
  req.target = std::string("/a");  // (assigning the literal trips GCC 12's -Wmaybe-uninitialized)
  std::string request_id, head;
  internal::RequestIds ids(1);
  internal::write_upstream_head(req, "[fe80::1%eth0]:8080", request_id, ids, head);
  EXPECT_NE(head.find("\r\nHost: [fe80::1]:8080\r\n"), std::string::npos) << head;
  internal::write_upstream_head(req, "127.0.0.1:8080", request_id, ids, head);
  EXPECT_NE(head.find("\r\nHost: 127.0.0.1:8080\r\n"), std::string::npos) << head;
}

TEST(ProxyTest, UpstreamConnectionsAreKeptAliveAndReused) {
  RawUpstream raw([](int, int, const std::string&) { return RawUpstream::ok("ok"); });
  Upstream up(echo());
  Gateway gw(to({raw.port()}));
  Gateway gw2(to({up.port()}));
  for (Gateway* g : {&gw, &gw2}) {
    // Fresh client connections each time: the upstream side is still one connection.
    for (int i = 0; i < 20; ++i) {
      RawSocket s(g->port());
      ASSERT_TRUE(s.send(get("/n")));
      auto r = s.read_response();
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(r->status, 200);
    }
    auto stats = g->proxy().stats();
    EXPECT_EQ(stats.connections_opened, 1u);
    EXPECT_EQ(stats.reused, 19u);
    EXPECT_EQ(stats.idle_connections, 1u);
    EXPECT_EQ(stats.inflight, 0u);
  }
  EXPECT_EQ(raw.accepts(), 1);
  EXPECT_EQ(up.server().connections(), 1u);
}

TEST(ProxyTest, StalePooledConnectionIsRetriedOnAFreshOneWhenSafe) {
  // The first connection answers once, then drops the next request unanswered, as a server
  // closing a keep-alive connection at the moment it is reused would.
  RawUpstream up([](int conn, int index, const std::string&) -> std::optional<RawUpstream::Reply> {
    if (conn == 0 && index == 1) return std::nullopt;
    return RawUpstream::ok("conn " + std::to_string(conn));
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/1")));
  auto r1 = s.read_response();
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->body, "conn 0");
  ASSERT_TRUE(s.send(get("/2")));  // idempotent: sent again on a fresh connection
  auto r2 = s.read_response();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 200);
  EXPECT_EQ(r2->body, "conn 1");
  EXPECT_EQ(gw.proxy().stats().stale_retries, 1u);
  EXPECT_EQ(up.accepts(), 2);
}

TEST(ProxyTest, StaleConnectionIsNotRetriedForAPostTheUpstreamMayHaveSeen) {
  RawUpstream up([](int conn, int index, const std::string&) -> std::optional<RawUpstream::Reply> {
    if (conn == 0 && index == 1) return std::nullopt;
    return RawUpstream::ok("ok");
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(post("/1", "a")));
  ASSERT_TRUE(s.read_response().has_value());
  ASSERT_TRUE(s.send(post("/2", "b")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find(R"("code":"bad_gateway")"), std::string::npos) << r->body;
  EXPECT_EQ(up.accepts(), 1);
}

TEST(ProxyTest, NothingListeningIs503) {
  const uint16_t dead = http::testing::unused_port();
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{dead});
  Gateway gw(selector);
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  EXPECT_NE(r->body.find(R"("code":"upstream_unavailable")"), std::string::npos) << r->body;
  auto seen = selector->seen();
  ASSERT_EQ(seen.size(), 1u);  // a retry found no endpoint: the first failure is the answer
  EXPECT_EQ(seen[0].outcome.error, UpstreamError::kConnectFailure);
  EXPECT_FALSE(seen[0].request_sent);
}

TEST(ProxyTest, NoEndpointIs503NoHealthyUpstream) {
  Gateway gw(to({}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find(R"("code":"no_healthy_upstream")"), std::string::npos) << r->body;
}

TEST(ProxyTest, AdmissionRefusalIs503OverloadedWithRetryAfterAndCounted) {
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{});
  selector->past_end = NoPick{NoPick::Reason::kOverloaded,
                              "service svc: 4 requests in flight, the limit for 2 ready "
                              "replicas is 4"};
  Gateway gw(selector);
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->header("Retry-After"), "1");
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  EXPECT_EQ(r->body, R"({"error":{"code":"overloaded","message":"service svc: 4 requests in )"
                     R"(flight, the limit for 2 ready replicas is 4"}})");
  EXPECT_TRUE(selector->seen().empty());  // nothing was attempted
  // Counted like any answer: what the autoscaler reads as demand includes the refused.
  EXPECT_NE(
      gw.metrics().find(R"(prescale_requests_total{service="gateway",route="r",code="503"} 1)"),
      std::string::npos)
      << gw.metrics();
}

TEST(ProxyTest, LimitRefusalIs503UpstreamOverflowWithoutRetryAfter) {
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{});
  selector->past_end = NoPick{NoPick::Reason::kOverflow, "max_requests reached"};
  Gateway gw(selector);
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_FALSE(r->header("Retry-After").has_value());
  EXPECT_NE(r->body.find(R"("code":"upstream_overflow","message":"max_requests reached")"),
            std::string::npos)
      << r->body;
}

TEST(ProxyTest, ARefusedRetryEndsWithThePreviousAnswer) {
  Upstream up(
      [](http::Request&, http::Responder respond) { respond(http::Response::text(503, "busy")); });
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{up.port()});
  selector->past_end = NoPick{NoPick::Reason::kOverloaded, "refused"};
  selector->backoff = Clock::Duration::zero();  // retry every failure
  Gateway gw(selector);
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "busy");  // the upstream's answer, not "overloaded"
  EXPECT_FALSE(r->header("Retry-After").has_value());
  EXPECT_EQ(selector->seen().size(), 1u);
}

// prescale_gateway_retries_total counts "attempts after the first" (docs/gateway.md): a retry
// the selector refuses (retry budget spent, max_requests) is no attempt.
TEST(ProxyTest, ARetryTheSelectorRefusesIsNotCountedAsARetry) {
  Upstream up(
      [](http::Request&, http::Responder respond) { respond(http::Response::text(503, "busy")); });
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{up.port()});
  selector->past_end = NoPick{NoPick::Reason::kOverflow, "retry budget exhausted for service svc"};
  selector->backoff = Clock::Duration::zero();  // retry every failure
  Gateway gw(selector);
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "busy");
  EXPECT_EQ(selector->seen().size(), 1u);  // one attempt was made
  const std::string m = gw.metrics();
  EXPECT_NE(m.find(R"(prescale_gateway_retries_total{route="r"} 0)"), std::string::npos) << m;
}

// A connection limit that refuses every new connection (max_connections reached).
class FullAdmission final : public ConnectionAdmission {
 public:
  std::unique_ptr<Permit> try_open(std::string& why) override {
    why = "circuit_breakers.max_connections (1 upstream connections open) reached for service svc";
    return nullptr;
  }
};

// docs/gateway.md: "a retry refused for any reason ends with the previous attempt's answer". A
// retry that needs a new connection the service's max_connections refuses is such a refusal: the
// client gets the upstream's own answer, not a 503 upstream_overflow about an attempt never made.
TEST(ProxyTest, ARetryRefusedAConnectionEndsWithThePreviousAnswer) {
  Upstream first([](http::Request&, http::Responder respond) {
    respond(http::Response::text(504, "upstream's own gateway timeout"));
  });
  Upstream second(echo("second"));
  class Selector final : public UpstreamSelector {
   public:
    Selector(uint16_t a, uint16_t b) : ports_{a, b} {}
    UpstreamSelection select(const http::Request&, int attempt, const UpstreamPick*) override {
      if (attempt > 1) return std::unexpected(NoPick{});
      return UpstreamPick{.host = "127.0.0.1",
                          .port = ports_[static_cast<size_t>(attempt)],
                          .tag = 0,
                          .context = nullptr,
                          .admission = attempt == 1 ? &full_ : nullptr};
    }
    RetryDecision retry(const http::Request&, const AttemptReport&) override {
      return RetryDecision{.retry = true};
    }

   private:
    uint16_t ports_[2];
    FullAdmission full_;
  };
  Gateway gw(std::make_shared<Selector>(first.port(), second.port()));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(r->body, "upstream's own gateway timeout");
}

TEST(ProxyTest, ConnectFailureIsRetriedOnAnotherEndpoint) {
  Upstream up(echo("live"));
  const uint16_t dead = http::testing::unused_port();
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{dead, up.port()});
  Gateway gw(selector);
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(post("/p", "body")));  // nothing was sent: safe for a POST too
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("X-Upstream"), "live");
  auto seen = selector->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].port, dead);
  EXPECT_EQ(seen[0].outcome.error, UpstreamError::kConnectFailure);
  EXPECT_EQ(seen[1].attempt, 1);
  EXPECT_EQ(seen[1].port, up.port());
  EXPECT_EQ(seen[1].outcome.status, 200);
  EXPECT_NE(gw.metrics().find(R"(prescale_gateway_retries_total{route="r"} 1)"), std::string::npos);
}

TEST(ProxyTest, RoundRobinRetriesPastADeadEndpoint) {
  Upstream up(echo("live"));
  Gateway gw(to({http::testing::unused_port(), up.port()}), milliseconds(0), milliseconds(5000),
             /*threads=*/2);
  for (int i = 0; i < 10; ++i) {
    RawSocket s(gw.port());
    ASSERT_TRUE(s.send(get("/")));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200) << r->body;
  }
}

TEST(ProxyTest, RetryWaitsTheBackoff) {
  Upstream up(echo("live"));
  auto selector = std::make_shared<ScriptedSelector>(
      std::vector<uint16_t>{http::testing::unused_port(), up.port()});
  selector->backoff = milliseconds(100);
  Gateway gw(selector);
  RawSocket s(gw.port());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
}

// A back-off shorter than the timeout sweep's resolution (125 ms here: 1/8 of the 1 s connect
// timeout) is waited as it is, not rounded up to the sweep: the fastest of five retried
// requests takes well under that resolution.
TEST(ProxyTest, AShortBackoffIsNotRoundedUpToTheTimeoutSweep) {
  Upstream up(echo("live"));
  const uint16_t dead = http::testing::unused_port();
  auto fastest = std::chrono::steady_clock::duration::max();
  for (int i = 0; i < 5; ++i) {
    auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{dead, up.port()});
    selector->backoff = milliseconds(1);
    Gateway gw(selector);
    RawSocket s(gw.port());
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(s.send(get("/")));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    fastest = std::min(fastest, std::chrono::steady_clock::now() - start);
  }
  EXPECT_LT(fastest, milliseconds(100));
}

TEST(ProxyTest, UpstreamClosingMidResponseIs502) {
  RawUpstream up([](int, int, const std::string&) {
    return RawUpstream::Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..", true};
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find(R"("code":"bad_gateway")"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("before the response was complete"), std::string::npos) << r->body;
}

TEST(ProxyTest, MalformedResponseIs502) {
  RawUpstream up([](int, int, const std::string&) {
    return RawUpstream::Reply{"SMTP ready\r\n\r\n", false};
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("malformed response"), std::string::npos) << r->body;
}

// An upstream that never answers until released.
class HangingUpstream {
 public:
  HangingUpstream()
      : up_([this](http::Request& req, http::Responder respond) {
          // The gateway closing its connection is how the upstream learns it was given up.
          req.on_client_gone = [this] { ++abandoned_; };
          std::lock_guard lock(mu_);
          held_.push_back(std::move(respond));
        }) {}
  ~HangingUpstream() { release(); }
  uint16_t port() const { return up_.port(); }
  http::Server& server() { return up_.server(); }
  size_t held() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  // Requests whose gateway connection closed before they were answered.
  int abandoned() const { return abandoned_.load(); }
  void release() {
    std::vector<http::Responder> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& r : held) r(http::Response::text(200, "late"));
  }

 private:
  std::mutex mu_;
  std::vector<http::Responder> held_;
  std::atomic<int> abandoned_{0};
  Upstream up_;
};

TEST(ProxyTest, UpstreamHangingPastThePerTryTimeoutIs504) {
  HangingUpstream up;
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{up.port()});
  Gateway gw(selector, /*per_try=*/milliseconds(200));
  RawSocket s(gw.port());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 504);
  EXPECT_NE(r->body.find(R"("code":"upstream_timeout")"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("per-try timeout of 200 ms"), std::string::npos) << r->body;
  EXPECT_GE(elapsed, milliseconds(200));
  EXPECT_LT(elapsed, milliseconds(1500));
  auto seen = selector->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].outcome.error, UpstreamError::kTimeout);
  EXPECT_TRUE(seen[0].request_sent);
  // The timed-out connection is closed, not pooled.
  EXPECT_TRUE(eventually([&] { return up.abandoned() == 1; }));
  EXPECT_EQ(gw.proxy().stats().idle_connections, 0u);
}

TEST(ProxyTest, RouteTimeoutIs504) {
  HangingUpstream up;
  Gateway gw(to({up.port()}), /*per_try=*/milliseconds(0), /*timeout=*/milliseconds(150));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 504);
  EXPECT_NE(r->body.find("route r timed out after 150 ms"), std::string::npos) << r->body;
}

TEST(ProxyTest, ClientGoingAwayCancelsTheUpstreamExchange) {
  HangingUpstream up;
  auto selector = std::make_shared<ScriptedSelector>(std::vector<uint16_t>{up.port()});
  Gateway gw(selector);
  {
    RawSocket s(gw.port());
    ASSERT_TRUE(s.send(get("/")));
    ASSERT_TRUE(eventually([&] { return up.held() == 1; }));
    EXPECT_EQ(gw.proxy().stats().inflight, 1u);
  }  // the client closes its connection
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().inflight == 0; }));
  EXPECT_TRUE(eventually([&] { return up.abandoned() == 1; }));  // the upstream call ended
  auto stats = gw.proxy().stats();
  EXPECT_EQ(stats.active_connections, 0u);
  EXPECT_EQ(stats.idle_connections, 0u);
  auto seen = selector->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].cancelled);
  EXPECT_NE(gw.metrics().find(R"(code="499")"), std::string::npos);
  // The gateway still serves.
  up.release();
  Upstream live(echo());
  Gateway gw2(to({live.port()}));
  RawSocket s(gw2.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

// An upstream handler that answers with a streamed body and hands the stream to the test.
class StreamingUpstream {
 public:
  http::Handler handler() {
    return [this](http::Request&, http::Responder respond) {
      auto stream = std::make_shared<http::BodyStream>();
      http::Response r;
      r.headers.set("Content-Type", "text/event-stream");
      r.stream = stream;
      {
        std::lock_guard lock(mu_);
        streams_.push_back(stream);
      }
      respond(std::move(r));
    };
  }
  std::shared_ptr<http::BodyStream> stream(size_t n) {
    std::shared_ptr<http::BodyStream> found;
    eventually([&] {
      std::lock_guard lock(mu_);
      if (streams_.size() > n) found = streams_[n];
      return found != nullptr;
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<http::BodyStream>> streams_;
};

TEST(ProxyTest, AStreamedUpstreamBodyIsRelayedAsItComes) {
  StreamingUpstream events;
  Upstream up(events.handler());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/events")));
  auto stream = events.stream(0);
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->write("data: 1\n\n"));
  // The head and the first event reach the client while the upstream's body goes on.
  ASSERT_TRUE(s.read_until("data: 1\n\n"));
  EXPECT_NE(s.pending().find("Transfer-Encoding: chunked\r\n"), std::string::npos) << s.pending();
  EXPECT_NE(s.pending().find("Content-Type: text/event-stream\r\n"), std::string::npos);
  EXPECT_EQ(gw.proxy().stats().inflight, 1u);
  EXPECT_EQ(gw.route_value("prescale_gateway_route_inflight_requests"), 1);
  // Its duration is the wait for its head (what an SLO judges), observed already; its load goes
  // on with the stream.
  auto duration = [&] {
    for (const auto& f : gw.registry().collect()) {
      if (f.name == "prescale_request_duration_seconds") return f.series.at(0).histogram;
    }
    return telemetry::HistogramSnapshot{};
  };
  EXPECT_EQ(duration().count(), 1u);
  std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(stream->write("data: 2\n\n"));
  ASSERT_TRUE(s.read_until("data: 2\n\n"));
  stream->end();
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "data: 1\n\ndata: 2\n\n");
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().inflight == 0; }));
  EXPECT_EQ(gw.route_value("prescale_gateway_route_inflight_requests"), 0);
  EXPECT_EQ(duration().count(), 1u);
  EXPECT_GE(gw.route_value("prescale_gateway_route_busy_seconds_total"), 0.1);
  EXPECT_LT(duration().sum, 0.1);
  // The upstream connection went back to the pool, and the next request takes it.
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().idle_connections == 1; }));
  ASSERT_TRUE(s.send(get("/again")));
  auto second = events.stream(1);
  ASSERT_NE(second, nullptr);
  second->end();
  auto r2 = s.read_response();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->body, "");
  EXPECT_EQ(gw.proxy().stats().connections_opened, 1u);
  EXPECT_NE(
      gw.metrics().find(R"(prescale_requests_total{service="gateway",route="r",code="200"} 2)"),
      std::string::npos)
      << gw.metrics();
}

TEST(ProxyTest, AClientLeavingAStreamClosesItsUpstreamConnection) {
  StreamingUpstream events;
  Upstream up(events.handler());
  Gateway gw(to({up.port()}));
  std::atomic<int> upstream_gone{0};
  std::shared_ptr<http::BodyStream> stream;
  {
    RawSocket s(gw.port());
    ASSERT_TRUE(s.send(get("/events")));
    stream = events.stream(0);
    ASSERT_NE(stream, nullptr);
    stream->set_on_gone([&] { upstream_gone.fetch_add(1); });
    ASSERT_TRUE(stream->write("tick"));
    ASSERT_TRUE(s.read_until("tick"));
  }  // the client leaves while the upstream still streams
  // The gateway closes its upstream connection, and the upstream's producer is told.
  EXPECT_TRUE(eventually([&] { return upstream_gone.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().inflight == 0; }));
  auto stats = gw.proxy().stats();
  EXPECT_EQ(stats.active_connections, 0u);
  EXPECT_EQ(stats.idle_connections, 0u);
}

TEST(ProxyTest, AStreamSilentForTheRouteTimeoutIsCut) {
  StreamingUpstream events;
  Upstream up(events.handler());
  Gateway gw(to({up.port()}), milliseconds(0), /*timeout=*/milliseconds(300));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/events")));
  auto stream = events.stream(0);
  ASSERT_NE(stream, nullptr);
  // Pieces within the timeout of each other keep it going past the timeout.
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(stream->write("beat "));
    std::this_thread::sleep_for(milliseconds(150));
  }
  // Then silence: the body is cut, without its last chunk.
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().inflight == 0; }));
  EXPECT_TRUE(eventually([&] { return stream->gone(); }));  // the upstream was let go
}

TEST(ProxyTest, AStreamIsReadNoFasterThanTheClientTakesIt) {
  StreamingUpstream events;
  Upstream up(events.handler());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port(), milliseconds(10000));
  ASSERT_TRUE(s.send(get("/big")));
  auto stream = events.stream(0);
  ASSERT_NE(stream, nullptr);
  // Far more than the kernel may buffer on the way: where tcp_rmem's maximum is 32 MiB (this
  // machine's), the gateway's receive buffer alone may grow to hold a third of it.
  const size_t total = size_t{96} * 1024 * 1024;
  const std::string piece(1024 * 1024, 'q');
  for (size_t sent = 0; sent < total; sent += piece.size()) ASSERT_TRUE(stream->write(piece));
  stream->end();
  // The client reads nothing: the gateway stops reading the upstream once its own queue is
  // full, so the upstream's queue stays full instead of all of it moving into the gateway.
  // (Without that, 48 MiB had all moved within 0.6 s on a 2-core machine.)
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_TRUE(stream->full());
  EXPECT_GT(stream->queued(), total / 2);
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body.size(), total);
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().inflight == 0; }));
}

// An upstream that accepts a switch to WebSocket (the handshake's fields are the test's to check;
// the bytes are not framed here), echoes what comes ("echo:" before each piece), ends its side on
// "bye", and records the rest.
class WebSocketUpstream {
 public:
  http::Handler handler() {
    return [this](http::Request& req, http::Responder respond) {
      {
        std::lock_guard lock(mu_);
        requests_.push_back(req.headers);
      }
      if (!http::upgrade_requested(req)) {
        respond(http::Response::text(200, "not upgraded"));
        return;
      }
      if (decline_) {
        http::Response r = http::Response::text(426, "declined");
        r.headers.set("Upgrade", "websocket");
        r.headers.set("Sec-WebSocket-Version", "13");
        respond(std::move(r));
        return;
      }
      auto tunnel = std::make_shared<http::Tunnel>();
      http::Tunnel* t = tunnel.get();
      tunnel->set_on_data([this, t](std::string_view data) {
        if (pause_each_piece_) t->pause();
        {
          std::lock_guard lock(mu_);
          received_bytes_ += data.size();
          if (received_.size() < 4096) received_ += data;
        }
        if (echo_) {
          if (data == "bye") {
            t->out().end();
          } else {
            t->out().write("echo:" + std::string(data));
          }
        }
      });
      tunnel->set_on_end([this] { ended.fetch_add(1); });
      tunnel->set_on_closed([this] { closed.fetch_add(1); });
      {
        std::lock_guard lock(mu_);
        tunnels_.push_back(tunnel);
      }
      http::Response r;
      r.status = 101;
      r.headers.set("Upgrade", "websocket");
      r.headers.set("Sec-WebSocket-Accept", "accepted");
      r.tunnel = std::move(tunnel);
      respond(std::move(r));
    };
  }
  std::shared_ptr<http::Tunnel> tunnel(size_t n) {
    std::shared_ptr<http::Tunnel> t;
    eventually([&] {
      std::lock_guard lock(mu_);
      if (tunnels_.size() > n) t = tunnels_[n];
      return t != nullptr;
    });
    return t;
  }
  http::Headers request(size_t n) {
    std::lock_guard lock(mu_);
    return requests_.size() > n ? requests_[n] : http::Headers();
  }
  size_t received_bytes() {
    std::lock_guard lock(mu_);
    return received_bytes_;
  }
  std::string received() {
    std::lock_guard lock(mu_);
    return received_;
  }

  bool decline_ = false;
  bool echo_ = true;
  bool pause_each_piece_ = false;
  std::atomic<int> ended{0};
  std::atomic<int> closed{0};

 private:
  std::mutex mu_;
  std::vector<http::Headers> requests_;
  std::vector<std::shared_ptr<http::Tunnel>> tunnels_;
  std::string received_;
  size_t received_bytes_ = 0;
};

std::string websocket_upgrade(std::string_view target) {
  return get(target,
             "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n");
}

TEST(ProxyTest, AWebSocketIsRelayedBothWaysAsItsBytesCome) {
  WebSocketUpstream ws;
  Upstream up(ws.handler());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  // The client's first frames may come right behind its request.
  ASSERT_TRUE(s.send(websocket_upgrade("/ws") + "early"));
  ASSERT_TRUE(s.read_until("echo:early"));
  const std::string head = s.pending().substr(0, s.pending().find("\r\n\r\n") + 4);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << head;
  EXPECT_NE(head.find("Upgrade: websocket\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Connection: upgrade\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Sec-WebSocket-Accept: accepted\r\n"), std::string::npos) << head;
  // The upstream was asked to switch, with the handshake's fields.
  const http::Headers asked = ws.request(0);
  EXPECT_EQ(asked.get("Upgrade"), "websocket");
  EXPECT_EQ(asked.get("Connection"), "upgrade");
  EXPECT_EQ(asked.get("Sec-WebSocket-Key"), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(asked.get("Sec-WebSocket-Version"), "13");
  EXPECT_TRUE(asked.get("x-request-id").has_value());
  s.clear_pending();
  ASSERT_TRUE(s.send("GET /not-http HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(s.read_until("echo:GET /not-http HTTP/1.1\r\n\r\n"));
  // In flight while it is open; its duration was its head's.
  EXPECT_EQ(gw.proxy().stats().inflight, 1u);
  EXPECT_EQ(gw.route_value("prescale_gateway_route_inflight_requests"), 1);
  EXPECT_NE(
      gw.metrics().find(R"(prescale_requests_total{service="gateway",route="r",code="101"} 1)"),
      std::string::npos)
      << gw.metrics();
  // The upstream ends its side: the client reads the end, and may still send.
  ASSERT_TRUE(s.send("bye"));
  EXPECT_TRUE(s.read_to_close(milliseconds(3000)));
  ASSERT_TRUE(s.send(" still here"));
  EXPECT_TRUE(eventually([&] { return ws.received().ends_with("bye still here"); }))
      << ws.received();
  EXPECT_EQ(gw.proxy().stats().inflight, 1u);
  // Then the client ends its own: the upstream reads that, and every connection closes.
  s.shutdown_write();
  EXPECT_TRUE(eventually([&] { return ws.ended.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return ws.closed.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().inflight == 0; }));
  EXPECT_EQ(gw.route_value("prescale_gateway_route_inflight_requests"), 0);
  auto stats = gw.proxy().stats();
  EXPECT_EQ(stats.active_connections, 0u);
  EXPECT_EQ(stats.idle_connections, 0u);  // a switched connection never serves HTTP again
  EXPECT_TRUE(eventually([&] { return gw.server().connections() == 0; }));
}

TEST(ProxyTest, AnUpgradeTheUpstreamDeclinesIsAnsweredOverHttp) {
  WebSocketUpstream ws;
  ws.decline_ = true;
  Upstream up(ws.handler());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(websocket_upgrade("/ws")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 426);
  EXPECT_EQ(r->body, "declined");
  // A 426 names what it requires (RFC 9110 section 15.5.22): its Upgrade is relayed.
  EXPECT_EQ(r->header("Upgrade"), "websocket");
  EXPECT_EQ(r->header("Sec-WebSocket-Version"), "13");
  EXPECT_EQ(r->header("Connection"), "upgrade");  // who sends Upgrade names it (RFC 9110 7.8)
  // Both connections stay HTTP.
  ASSERT_TRUE(s.send(get("/plain")));
  auto again = s.read_response();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->body, "not upgraded");
  EXPECT_EQ(gw.proxy().stats().connections_opened, 1u);
}

TEST(ProxyTest, AnUpgradeToAnotherProtocolIsNotRelayed) {
  WebSocketUpstream ws;
  Upstream up(ws.handler());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/h2",
                         "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                         "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "not upgraded");
  const http::Headers asked = ws.request(0);
  EXPECT_FALSE(asked.get("Upgrade").has_value());
  EXPECT_FALSE(asked.get("HTTP2-Settings").has_value());
}

// The upstream ended its side, then fails: the client, which may still have been sending, is cut.
TEST(ProxyTest, AnUpstreamFailingAfterItsEndCutsTheClient) {
  WebSocketUpstream ws;
  Upstream up(ws.handler());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(websocket_upgrade("/ws") + "bye"));
  EXPECT_TRUE(s.read_to_close(milliseconds(3000)));  // the upstream's end, passed on
  ASSERT_TRUE(eventually([&] { return ws.received() == "bye"; }));
  ws.tunnel(0)->abort();  // the upstream's connection is cut
  // The gateway learns it when it writes the client's next bytes there; then the client's own
  // sends fail.
  bool cut = false;
  for (int i = 0; i < 200 && !cut; ++i) {
    cut = !s.send("more");
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(cut);
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().inflight == 0; }));
  EXPECT_TRUE(eventually([&] { return gw.server().connections() == 0; }));
}

TEST(ProxyTest, AWebSocketSilentForItsIdleTimeoutIsClosed) {
  WebSocketUpstream ws;
  Upstream up(ws.handler());
  Gateway gw(to({up.port()}), milliseconds(0), milliseconds(5000), 1,
             /*websocket_idle_timeout=*/milliseconds(300));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(websocket_upgrade("/ws")));
  ASSERT_TRUE(s.read_until("\r\n\r\n"));
  // Bytes either way within the timeout keep it open past the timeout.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.send("ping"));
    ASSERT_TRUE(s.read_until("echo:ping"));
    s.clear_pending();
    std::this_thread::sleep_for(milliseconds(150));
  }
  ASSERT_TRUE(ws.tunnel(0)->out().write("from upstream"));
  ASSERT_TRUE(s.read_until("from upstream"));
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(ws.closed.load(), 0);
  // Then silence: both connections are closed.
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
  EXPECT_TRUE(eventually([&] { return ws.closed.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return gw.proxy().stats().inflight == 0; }));
}

// The gateway reads neither side faster than the other takes it: a paused upstream holds the
// client back, a client that does not read holds the upstream back.
TEST(ProxyTest, AWebSocketIsReadNoFasterThanEachSideTakesIt) {
  WebSocketUpstream ws;
  ws.echo_ = false;
  ws.pause_each_piece_ = true;
  Upstream up(ws.handler());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port(), milliseconds(30000));
  ASSERT_TRUE(s.send(websocket_upgrade("/ws")));
  ASSERT_TRUE(s.read_until("\r\n\r\n"));
  s.clear_pending();
  auto tunnel = ws.tunnel(0);
  ASSERT_NE(tunnel, nullptr);
  const size_t total = size_t{48} * 1024 * 1024;
  std::atomic<bool> sent{false};
  std::thread sender([&] { sent = s.send(std::string(total, 'c')); });
  ASSERT_TRUE(eventually([&] { return ws.received_bytes() > 0; }));
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_FALSE(sent.load());  // held back: the gateway did not take it all
  for (int i = 0; i < 1000000 && ws.received_bytes() < total; ++i) {
    const size_t before = ws.received_bytes();
    tunnel->resume();
    for (int j = 0; j < 1000 && ws.received_bytes() == before; ++j) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  sender.join();
  EXPECT_TRUE(sent.load());
  EXPECT_EQ(ws.received_bytes(), total);
  // The other way: the client reads nothing while the upstream writes more than every buffer on
  // the way holds (twice as much: the gateway's receive buffer may grow to 32 MiB, above).
  const size_t down = 2 * total;
  const std::string piece(1024 * 1024, 'u');
  for (size_t n = 0; n < down; n += piece.size()) ASSERT_TRUE(tunnel->out().write(piece));
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_TRUE(tunnel->out().full());
  EXPECT_GT(tunnel->out().queued(), down / 2);
  tunnel->out().end();
  EXPECT_TRUE(s.read_to_close(milliseconds(20000)));
  EXPECT_EQ(s.pending().size(), down);
}

TEST(ProxyTest, LargeBodiesRoundTrip) {
  Upstream up([](http::Request& req, http::Responder respond) {
    respond(http::Response::text(200, req.body));  // the body back
  });
  Gateway gw(to({up.port()}));
  std::string body(1024 * 1024, 'x');
  for (size_t i = 0; i < body.size(); i += 97) body[i] = static_cast<char>('a' + i % 26);
  RawSocket s(gw.port(), milliseconds(10000));
  ASSERT_TRUE(s.send(post("/big", body)));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), body.size());
  EXPECT_TRUE(r->body == body);
}

TEST(ProxyTest, PipelinedRequestsAreAnsweredInOrder) {
  // The first answer is the slowest: order comes from the client connection, not the upstream.
  Upstream up([](http::Request& req, http::Responder respond) {
    if (req.path == "/slow") {
      std::thread([respond, target = req.target] {
        std::this_thread::sleep_for(milliseconds(100));
        respond(http::Response::text(200, target));
      }).detach();
      return;
    }
    respond(http::Response::text(200, req.target + " " + req.body));
  });
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/slow") + post("/b", "xyz") + get("/c")));
  for (std::string expected : {"/slow", "/b xyz", "/c "}) {
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->body, expected);
  }
}

TEST(ProxyTest, MetricsCountRequestsPerRouteAndUpstream) {
  Upstream up(echo());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.send(get("/")));
    ASSERT_TRUE(s.read_response().has_value());
  }
  const std::string m = gw.metrics();
  const std::string upstream = "127.0.0.1:" + std::to_string(up.port());
  EXPECT_NE(m.find(R"(prescale_requests_total{service="gateway",route="r",code="200"} 3)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(prescale_request_duration_seconds_count{service="gateway",route="r"} 3)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(prescale_gateway_upstream_requests_total{route="r",upstream=")" + upstream +
                   R"(",code="200"} 3)"),
            std::string::npos)
      << m;
  EXPECT_NE(
      m.find(R"(prescale_gateway_upstream_request_duration_seconds_count{route="r",upstream=")" +
             upstream + R"("} 3)"),
      std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(prescale_gateway_upstream_connections{state="idle"} 1)"), std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(prescale_inflight_requests{service="gateway"} 0)"), std::string::npos) << m;
}

// A route's busy seconds grow while a request is in flight, before it is answered: their rate
// is the route's concurrency now, not once its requests come back (docs/gateway.md).
TEST(ProxyTest, BusySecondsCountARequestInFlightAndEqualItsDurationOnceAnswered) {
  HangingUpstream up;
  Gateway gw(to({up.port()}));
  EXPECT_EQ(gw.route_value("prescale_gateway_route_inflight_requests"), 0);
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  ASSERT_TRUE(eventually([&] { return up.held() == 1; }));
  EXPECT_EQ(gw.route_value("prescale_gateway_route_inflight_requests"), 1);
  const double first = gw.route_value("prescale_gateway_route_busy_seconds_total");
  EXPECT_GT(first, 0);
  EXPECT_TRUE(eventually(
      [&] { return gw.route_value("prescale_gateway_route_busy_seconds_total") > first; }))
      << "unanswered, and still counted";
  up.release();
  ASSERT_TRUE(s.read_response().has_value());
  ASSERT_TRUE(
      eventually([&] { return gw.route_value("prescale_gateway_route_inflight_requests") == 0; }));
  const double busy = gw.route_value("prescale_gateway_route_busy_seconds_total");
  EXPECT_GT(busy, first);
  double duration = std::nan("");
  for (const auto& f : gw.registry().collect()) {
    if (f.name == "prescale_request_duration_seconds") duration = f.series.at(0).histogram.sum;
  }
  EXPECT_NEAR(busy, duration, 1e-6) << "the same span: from the request read to its answer";
}

// A reload replaces a route by another of the same name: its busy seconds go on from where they
// were (a counter that went back would read as a reset), one series, whatever the reloads.
TEST(ProxyTest, ARouteReplacedByOneOfTheSameNameKeepsItsBusySeconds) {
  Upstream up(echo());
  Gateway gw(to({up.port()}));
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send(get("/")));
  ASSERT_TRUE(s.read_response().has_value());
  const double busy = gw.route_value("prescale_gateway_route_busy_seconds_total");
  ASSERT_GT(busy, 0);
  // Each replaced route is let go (its selector with it): only the counters stay.
  std::vector<std::weak_ptr<UpstreamSelector>> replaced;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(gw.proxy().remove_route(static_cast<Proxy::RouteId>(i)));
    auto selector = to({1});
    replaced.push_back(selector);
    (void)gw.proxy().add_route(
        ProxyRoute{.name = "r", .service = "svc", .selector = std::move(selector)});
  }
  ASSERT_TRUE(gw.proxy().remove_route(3));
  ASSERT_TRUE(s.send(get("/")));  // the I/O thread lets go of its copy of the routes
  ASSERT_TRUE(s.read_response().has_value());
  for (const auto& w : replaced) EXPECT_TRUE(w.expired());
  EXPECT_EQ(gw.route_value("prescale_gateway_route_busy_seconds_total"), busy);
  for (const auto& f : gw.registry().collect()) {
    if (f.name == "prescale_gateway_route_busy_seconds_total") {
      EXPECT_EQ(f.series.size(), 1u);
    }
  }
}

// The seqlock: two writers on one slot (more I/O threads than slots) and a reader meanwhile; the
// reader never sees a change half made, and the sums come out exact.
TEST(RouteLoadTest, CountsRequestSecondsInFlightUpToTheReading) {
  internal::RouteLoad load;
  const Clock::TimePoint t0{std::chrono::seconds(100)};
  load.change(t0, +1);
  load.change(t0 + std::chrono::seconds(1), +1);
  auto r = load.read(t0 + std::chrono::seconds(2));
  EXPECT_EQ(r.inflight, 2);
  EXPECT_EQ(r.busy_ns, 3'000'000'000u);  // 1 s of one, then 1 s of two
  load.change(t0 + std::chrono::seconds(3), -1);
  r = load.read(t0 + std::chrono::seconds(3));
  EXPECT_EQ(r.inflight, 1);
  EXPECT_EQ(r.busy_ns, 5'000'000'000u);
  // A reading taken before the last change (a clock read a little earlier) counts nothing open.
  EXPECT_EQ(load.read(t0 + std::chrono::seconds(2)).busy_ns, 5'000'000'000u);
}

// A request's end is committed a moment after its clock was read (finish() reads the clock,
// then observes the histogram, then changes the load); a scrape meanwhile counted it in flight up
// to the scrape. The counter must not then go back: to Prometheus any decrease is a counter
// reset, and rate() would count the whole total again.
TEST(RouteLoadTest, AnEndCommittedAfterAReadingPastItsTimeDoesNotTakeTheCounterBack) {
  internal::RouteLoad load;
  const Clock::TimePoint t0{std::chrono::seconds(100)};
  load.change(t0, +1);
  const uint64_t scraped = load.read(t0 + std::chrono::seconds(2)).busy_ns;
  EXPECT_EQ(scraped, 2'000'000'000u);
  load.change(t0 + std::chrono::seconds(1), -1);  // its clock read before the scrape's
  EXPECT_GE(load.read(t0 + std::chrono::seconds(2)).busy_ns, scraped);
  EXPECT_GE(load.read(t0 + std::chrono::seconds(3)).busy_ns, scraped);
}

TEST(RouteLoadTest, WritersSharingASlotAndAReaderSeeWholeChanges) {
  internal::RouteLoad load;
  constexpr int kPairs = 200'000;
  std::atomic<bool> done{false};
  auto writer = [&] {
    const Clock::TimePoint t{std::chrono::seconds(1)};
    for (int i = 0; i < kPairs; ++i) {
      load.change(t, +1);
      load.change(t, -1);
    }
  };
  int64_t max_seen = 0;
  std::thread reader([&] {
    while (!done.load()) {
      const auto r = load.read(Clock::TimePoint{std::chrono::seconds(1)});
      EXPECT_GE(r.inflight, 0);
      max_seen = std::max(max_seen, r.inflight);
      EXPECT_EQ(r.busy_ns, 0u) << "no time passed";
    }
  });
  std::thread a(writer), b(writer);
  a.join();
  b.join();
  done = true;
  reader.join();
  EXPECT_EQ(load.read(Clock::TimePoint{std::chrono::seconds(1)}).inflight, 0);
  EXPECT_LE(max_seen, 2);
}

TEST(ProxyTest, ShutdownWithAnUpstreamRequestInFlightDoesNotHang) {
  HangingUpstream up;
  auto gw = std::make_unique<Gateway>(to({up.port()}));
  RawSocket s(gw->port());
  ASSERT_TRUE(s.send(get("/")));
  ASSERT_TRUE(eventually([&] { return up.held() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  gw->server().shutdown(milliseconds(100));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  EXPECT_TRUE(eventually([&] { return up.abandoned() == 1; }));
  gw.reset();
}

TEST(ProxyTest, ForwardOutsideAServerThreadAnswers500) {
  Proxy proxy;
  auto id = proxy.add_route(ProxyRoute{.name = "r", .service = "s", .selector = to({1})});
  http::Request req;
  int status = 0;
  proxy.forward(id, req, http::Responder([&](http::Response r) { status = r.status; }));
  EXPECT_EQ(status, 500);
}

// UpstreamPool driven directly on a test-owned io_context, so the order of events is exact:
// the test decides when the pool's thread runs.
class PoolExchange final : public Exchange {
 public:
  bool done = false;

 private:
  void on_complete() override { done = true; }
};

// A non-blocking listener on 127.0.0.1, port 0.
int listen_local(uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  ::listen(fd, 16);
  return fd;
}

// Runs `io` until `pred` holds (at most 3 s).
template <class Pred>
bool drive(boost::asio::io_context& io, Pred pred) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    io.run_one_for(milliseconds(2));
    if (io.stopped()) io.restart();
  }
  return true;
}

int accept_upstream(boost::asio::io_context& io, int listen_fd) {
  int fd = -1;
  drive(io, [&] {
    fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK);
    return fd >= 0;
  });
  return fd;
}

bool read_request_head(boost::asio::io_context& io, int fd) {
  std::string got;
  return drive(io, [&] {
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    return got.find("\r\n\r\n") != std::string::npos;
  });
}

constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

// Runs `io` until `ex` is done, answering 200 to the first request on a new connection to
// `listen_fd`; that connection's upstream end (-1 if none came).
int answer_on_a_new_connection(boost::asio::io_context& io, int listen_fd, PoolExchange& ex) {
  int fd = -1;
  bool answered = false;
  drive(io, [&] {
    if (fd < 0) fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK);
    if (fd >= 0 && !answered && read_request_head(io, fd)) {
      ::send(fd, kOk.data(), kOk.size(), MSG_NOSIGNAL);
      answered = true;
    }
    return ex.done;
  });
  return fd;
}

// One GET through `pool` to the upstream listening on `listen_fd`, answered 200: afterwards the
// pool holds one idle keep-alive connection, whose upstream end is returned (-1 on failure).
int pool_one_connection(boost::asio::io_context& io, UpstreamPool& pool, uint16_t port,
                        int listen_fd) {
  PoolExchange first;
  first.head = "GET /1 HTTP/1.1\r\nHost: u\r\n\r\n";
  first.idempotent = true;
  first.deadline = Clock::real().now() + std::chrono::seconds(5);
  if (!pool.start("127.0.0.1", port, first)) return -1;
  const int c0 = accept_upstream(io, listen_fd);
  if (c0 < 0 || !read_request_head(io, c0)) return -1;
  ::send(c0, kOk.data(), kOk.size(), MSG_NOSIGNAL);
  if (!drive(io, [&] { return first.done; }) || first.error != ExchangeError::kNone) return -1;
  return c0;
}

// The upstream closed an idle pooled connection and its FIN is already in the gateway's socket
// when the next request takes the connection (the pool's watch has not run yet: both events
// came in one reactor round). The upstream cannot have seen the POST, yet it fails as a reset
// (502) instead of going on a fresh connection: docs/gateway.md, "Upstream connections" — a
// connection the upstream closed is dropped at once, never used for the next request.
TEST(UpstreamPoolTest, PooledConnectionClosedBeforeReuseDoesNotFailAPost) {
  uint16_t port = 0;
  const int listen_fd = listen_local(port);
  PoolExchange post;
  boost::asio::io_context io;
  UpstreamPool pool(io, UpstreamPoolOptions{});
  const int c0 = pool_one_connection(io, pool, port, listen_fd);
  ASSERT_GE(c0, 0);
  ASSERT_EQ(pool.stats().idle, 1u);

  ::close(c0);                                    // the upstream ends the keep-alive connection...
  std::this_thread::sleep_for(milliseconds(50));  // ...and its FIN reaches the gateway's socket

  post.head = "POST /2 HTTP/1.1\r\nHost: u\r\nContent-Length: 1\r\n\r\n";
  post.body = "b";
  post.idempotent = false;
  post.deadline = Clock::real().now() + std::chrono::seconds(5);
  ASSERT_TRUE(pool.start("127.0.0.1", port, post));
  const int c1 = answer_on_a_new_connection(io, listen_fd, post);
  ASSERT_TRUE(post.done);
  EXPECT_EQ(post.error, ExchangeError::kNone) << to_string(post.error) << ": " << post.detail
                                              << " (request_sent " << post.request_sent << ")";
  EXPECT_EQ(post.response.status, 200);
  pool.stop();
  if (c1 >= 0) ::close(c1);
  ::close(listen_fd);
}

// `ex`, the only request after pool_one_connection(), was answered 200 on a second connection:
// the pooled one was not reused.
void expect_answered_on_a_new_connection(const UpstreamPool& pool, const PoolExchange& ex) {
  ASSERT_TRUE(ex.done);
  EXPECT_EQ(ex.error, ExchangeError::kNone) << to_string(ex.error) << ": " << ex.detail;
  EXPECT_EQ(ex.response.status, 200);
  EXPECT_EQ(pool.stats().reused, 0u);
  EXPECT_EQ(pool.stats().connections_opened, 2u);
}

// Two sockets of the pool's Poller that a test writes to, so that its code runs inside a batch
// of reports, at a point of the batch it chooses.
struct Trigger {
  Trigger(boost::asio::io_context& io, std::function<void()> fn)
      : poller(http::internal::Poller::of(io)) {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    boost::system::error_code ec;
    key = poller.add(fds[0], ec);
    EXPECT_FALSE(ec) << ec.message();
    poller.arm(key, std::move(fn));
  }
  ~Trigger() {
    poller.remove(key);
    ::close(fds[0]);
    ::close(fds[1]);
  }
  void fire() const { EXPECT_EQ(::write(fds[1], "x", 1), 1); }
  http::internal::Poller& poller;
  http::internal::Poller::Key key = http::internal::Poller::kNone;
  int fds[2] = {-1, -1};
};

// Until what `fd` sent is acknowledged (at most 1 s): the other end has it.
bool sent_acknowledged(int fd) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < end) {
    int unacked = -1;
    if (::ioctl(fd, SIOCOUTQ, &unacked) == 0 && unacked == 0) return true;
  }
  return false;
}

// Until the FIN `fd` sent is acknowledged (at most 1 s): the other end has it.
bool fin_acknowledged(int fd) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < end) {
    tcp_info info{};
    socklen_t len = sizeof(info);
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
        info.tcpi_state == TCP_FIN_WAIT2) {
      return true;
    }
  }
  return false;
}

// The upstream's FIN reaches an idle pooled connection while the callbacks of a batch run, and
// one of them sends a POST: the batch says the socket had no news, which was true at its fetch
// only. The POST must not go on the closed connection (the upstream may see it; it cannot be
// sent again): it takes a fresh one.
TEST(UpstreamPoolTest, AFinArrivingDuringTheBatchDoesNotFailAPostOfThatBatch) {
  uint16_t port = 0;
  const int listen_fd = listen_local(port);
  PoolExchange post;
  boost::asio::io_context io;
  UpstreamPool pool(io, UpstreamPoolOptions{});
  const int c0 = pool_one_connection(io, pool, port, listen_fd);
  ASSERT_GE(c0, 0);
  bool in_batch = false;
  bool fin_there = false;
  bool started = false;
  Trigger trigger(io, [&] {
    in_batch = http::internal::Poller::of(io).current();
    ::shutdown(c0, SHUT_WR);  // the upstream ends the keep-alive connection
    fin_there = fin_acknowledged(c0);
    post.head = "POST /2 HTTP/1.1\r\nHost: u\r\nContent-Length: 1\r\n\r\n";
    post.body = "b";
    post.deadline = Clock::real().now() + std::chrono::seconds(5);
    started = pool.start("127.0.0.1", port, post);
  });
  trigger.fire();
  const int c1 = answer_on_a_new_connection(io, listen_fd, post);
  EXPECT_TRUE(in_batch);
  EXPECT_TRUE(fin_there);
  ASSERT_TRUE(started);
  expect_answered_on_a_new_connection(pool, post);
  pool.stop();
  for (int fd : {c0, c1, listen_fd}) {
    if (fd >= 0) ::close(fd);
  }
}

// Bytes the upstream sends unasked to an idle pooled connection, reported in the same batch as
// a request but not yet delivered: the request does not take that connection (its next bytes
// would be read as the response), but a fresh one.
TEST(UpstreamPoolTest, AnIdleConnectionWithUnaskedBytesReportedIsNotReused) {
  uint16_t port = 0;
  const int listen_fd = listen_local(port);
  PoolExchange second;
  boost::asio::io_context io;
  UpstreamPool pool(io, UpstreamPoolOptions{});
  const int c0 = pool_one_connection(io, pool, port, listen_fd);
  ASSERT_GE(c0, 0);
  const int one = 1;  // sent at once (Nagle could hold it for an ACK)
  ::setsockopt(c0, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  bool in_batch = false;
  Trigger trigger(io, [&] {
    in_batch = http::internal::Poller::of(io).current();
    second.head = "GET /2 HTTP/1.1\r\nHost: u\r\n\r\n";
    second.idempotent = true;
    second.deadline = Clock::real().now() + std::chrono::seconds(5);
    pool.start("127.0.0.1", port, second);
  });
  // One batch: [the trigger, the connection's report], in the order they came.
  trigger.fire();
  ASSERT_EQ(::send(c0, "HTTP/1.1 200 OK\r\n", 17, MSG_NOSIGNAL), 17);
  ASSERT_TRUE(sent_acknowledged(c0));  // in the pool's socket before the batch is taken
  const int c1 = answer_on_a_new_connection(io, listen_fd, second);
  EXPECT_TRUE(in_batch);
  expect_answered_on_a_new_connection(pool, second);
  pool.stop();
  for (int fd : {c0, c1, listen_fd}) {
    if (fd >= 0) ::close(fd);
  }
}

// A GET fails on a stale pooled connection after it was written (the upstream read it and
// closed), is sent again on a fresh connection, and that connect is refused. The exchange ends
// kConnectFailed ("nothing was sent", upstream_pool.h) but still says request_sent = true,
// left over from the stale socket, so the cluster charges the retry budget for an attempt it
// treats as never sent (Cluster::report: never_sent).
TEST(UpstreamPoolTest, ConnectFailureAfterStaleRetryReportsNothingSent) {
  uint16_t port = 0;
  const int listen_fd = listen_local(port);
  PoolExchange second;
  boost::asio::io_context io;
  UpstreamPool pool(io, UpstreamPoolOptions{});
  const int c0 = pool_one_connection(io, pool, port, listen_fd);
  ASSERT_GE(c0, 0);

  second.head = "GET /2 HTTP/1.1\r\nHost: u\r\n\r\n";
  second.idempotent = true;
  second.deadline = Clock::real().now() + std::chrono::seconds(5);
  ASSERT_TRUE(pool.start("127.0.0.1", port, second));
  ASSERT_TRUE(read_request_head(io, c0));  // the upstream reads it, then goes away
  ::close(listen_fd);                      // nothing listens any more: the fresh connect fails
  ::close(c0);
  ASSERT_TRUE(drive(io, [&] { return second.done; }));
  EXPECT_EQ(pool.stats().stale_retries, 1u);
  EXPECT_EQ(second.error, ExchangeError::kConnectFailed) << second.detail;
  EXPECT_FALSE(second.request_sent);
  pool.stop();
}

}  // namespace
}  // namespace prescale::gateway
