#include "http/client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "http/internal/wire.h"
#include "http/server.h"
#include "http/test_util.h"

namespace prescale::http {
namespace {

using std::chrono::milliseconds;
using testing::ScriptedServer;

ServerOptions local_options() {
  ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = 2;
  return o;
}

Request get(std::string target) {
  Request r;
  r.method = Method::kGet;
  r.target = std::move(target);
  return r;
}

Handler echo() {
  return [](Request& req, Responder respond) {
    respond(Response::text(200, req.method_name + " " + req.target + " " + req.body));
  };
}

// An HTTP/1.1 head as HTTP/2 fields (the HTTP/2 client's and the gateway's HTTP/2 upstreams'):
// pseudo-fields first, names lower-cased, connection-specific fields dropped, `te: trailers`
// last; the views stay valid however many names there are (the name buffer never moves).
TEST(ClientTest, AnHttp1HeadBecomesHttp2FieldsWithoutCopies) {
  std::string head =
      "POST /v1/items?q=1 HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n"
      "Content-Type:  text/plain \r\nTE: gzip\r\nKeep-Alive: 5\r\n";
  for (int i = 0; i < 60; ++i)
    head += "X-Field-" + std::to_string(i) + ": v" + std::to_string(i) + "\r\n";
  head += "\r\n";
  std::string names = "left over";
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  ASSERT_TRUE(internal::h2_request_fields(head, names, fields));
  ASSERT_EQ(fields.size(), 4u + 1u + 60u + 1u);
  EXPECT_EQ(fields[0], (std::pair<std::string_view, std::string_view>{":method", "POST"}));
  EXPECT_EQ(fields[1], (std::pair<std::string_view, std::string_view>{":scheme", "http"}));
  EXPECT_EQ(fields[2],
            (std::pair<std::string_view, std::string_view>{":authority", "api.example"}));
  EXPECT_EQ(fields[3], (std::pair<std::string_view, std::string_view>{":path", "/v1/items?q=1"}));
  EXPECT_EQ(fields[4],
            (std::pair<std::string_view, std::string_view>{"content-type", "text/plain"}));
  for (int i = 0; i < 60; ++i) {
    EXPECT_EQ(fields[5 + i].first, "x-field-" + std::to_string(i));
    EXPECT_EQ(fields[5 + i].second, "v" + std::to_string(i));
  }
  EXPECT_EQ(fields.back(), (std::pair<std::string_view, std::string_view>{"te", "trailers"}));

  fields.clear();  // no Host: not a request HTTP/2 can carry
  EXPECT_FALSE(internal::h2_request_fields("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", names, fields));
  fields.clear();
  EXPECT_FALSE(internal::h2_request_fields("GET / HTTP/1.1\r\nHost a\r\n\r\n", names, fields));
}

TEST(ClientTest, SequentialRequestsReuseOneConnection) {
  Server server(local_options(), echo());
  ASSERT_TRUE(server.start().has_value());
  Client client;
  constexpr int kRequests = 10;
  for (int i = 0; i < kRequests; ++i) {
    auto r = client.request("127.0.0.1", server.port(), get("/r/" + std::to_string(i)));
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET /r/" + std::to_string(i) + " ");
    EXPECT_EQ(r->headers.get("Server"), "prescale");
  }
  const auto stats = client.stats();
  EXPECT_EQ(stats.connections_opened, 1u);
  EXPECT_EQ(stats.reused, static_cast<uint64_t>(kRequests - 1));
  EXPECT_EQ(server.connections(), 1u);
}

TEST(ClientTest, OverHttp2EachRequestIsAStreamOnItsOwnConnectionWithTrailers) {
  Server server(local_options(), [](Request& req, Responder respond) {
    Response r = Response::text(req.path == "/missing" ? 404 : 200,
                                req.method_name + " " + req.target + " " +
                                    std::string(req.headers.get("Host").value_or("-")) + " " +
                                    std::string(req.headers.get("te").value_or("-")) + " " +
                                    req.body);
    r.trailers.add("grpc-status", "0");
    respond(std::move(r));
  });
  ASSERT_TRUE(server.start().has_value());
  Client client(ClientOptions{.http2 = true});
  auto r = client.request("127.0.0.1", server.port(), get("/a?b=1"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /a?b=1 127.0.0.1:" + std::to_string(server.port()) + " trailers ");
  EXPECT_EQ(r->trailers.get("grpc-status"), "0");
  Request post = get("/p");
  post.method = Method::kPost;
  post.body = std::string(200000, 'x');  // past the stream's first flow-control window
  auto p = client.request("127.0.0.1", server.port(), post);
  ASSERT_TRUE(p.has_value()) << p.error().to_string();
  EXPECT_EQ(p->body.size(), std::string("POST /p 127.0.0.1:").size() +
                                std::to_string(server.port()).size() + 10 + 200000);
  auto missing = client.request("127.0.0.1", server.port(), get("/missing"));
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(client.stats().connections_opened, 3u);  // none reused
  EXPECT_EQ(client.stats().reused, 0u);

  // A server that speaks only HTTP/1.1 is an error, not an answer.
  ServerOptions http1_only = local_options();
  http1_only.http2 = false;
  Server old(http1_only, echo());
  ASSERT_TRUE(old.start().has_value());
  auto refused = client.request("127.0.0.1", old.port(), get("/"), milliseconds(2000));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable) << refused.error().to_string();
}

// A Client destroyed just as its pool sweep comes due ends. The sweep timer's completion, queued
// while the I/O thread was busy (here in a slow callback), ran after the cancel that stop()
// posted, saw no error and armed the timer again, for good: the thread never left run(), and the
// destructor's join waited for ever (a `prescale load` that never exited).
TEST(ClientTest, DestroyingAClientWhoseSweepIsDueEnds) {
  Server server(local_options(), echo());
  ASSERT_TRUE(server.start().has_value());
  for (int round = 0; round < 5; ++round) {
    auto client = std::make_unique<Client>(ClientOptions{.idle_timeout = milliseconds(100)});
    std::promise<void> in_callback;
    client->async_request("127.0.0.1", server.port(), get("/"), [&](Result<Response>) {
      in_callback.set_value();
      std::this_thread::sleep_for(milliseconds(200));  // the sweep (every 50 ms) comes due
    });
    in_callback.get_future().wait();
    auto destroyed = std::async(std::launch::async, [&] { client.reset(); });
    if (destroyed.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      std::fprintf(stderr, "round %d: ~Client() has not returned after 10 s\n", round);
      std::_Exit(1);  // the destructor's thread cannot be stopped: end the test binary
    }
  }
}

TEST(ClientTest, SendsBodyAndPathWithQuery) {
  Server server(local_options(), echo());
  ASSERT_TRUE(server.start().has_value());
  Client client;
  Request req;
  req.method = Method::kPost;
  req.path = "/items";
  req.query = "a=1";
  req.body = "payload";
  req.headers.add("Content-Type", "text/plain");
  auto r = client.request("localhost", server.port(), req);  // resolved by name
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->body, "POST /items?a=1 payload");
}

// Host names the server as a URL authority: an IPv6 address in brackets, then the port (left
// out only when it is 80).
TEST(ClientTest, SendsHostAsTheAuthorityWithThePort) {
  const Handler host_echo = [](Request& req, Responder respond) {
    respond(Response::text(200, std::string(req.headers.get("Host").value_or(""))));
  };
  Server v4(local_options(), host_echo);
  ASSERT_TRUE(v4.start().has_value());
  Client client;
  auto r = client.request("127.0.0.1", v4.port(), get("/"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->body, "127.0.0.1:" + std::to_string(v4.port()));

  ServerOptions v6_options = local_options();
  v6_options.address = "::1";
  Server v6(v6_options, host_echo);
  if (!v6.start().has_value()) GTEST_SKIP() << "no IPv6 loopback here";
  r = client.request("::1", v6.port(), get("/"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->body, "[::1]:" + std::to_string(v6.port()));
}

// An IPv6 zone id names an interface of this machine, nothing the server knows: the Host field
// leaves it out (RFC 6874 section 4), whether written as the system does or as a URL does
// ("%25"). The default port is left out too (RFC 9110 section 7.2).
TEST(ClientTest, HostFieldLeavesOutAZoneIdAndTheDefaultPort) {
  EXPECT_EQ(internal::host_field("fe80::1%eth0", 8080), "[fe80::1]:8080");
  EXPECT_EQ(internal::host_field("fe80::1%25eth0", 8080), "[fe80::1]:8080");
  EXPECT_EQ(internal::host_field("fe80::1%eth0", 80), "[fe80::1]");
  EXPECT_EQ(internal::host_field("[fe80::1%eth0]", 8080), "[fe80::1]:8080");
  EXPECT_EQ(internal::host_field("::1", 8080), "[::1]:8080");
  EXPECT_EQ(internal::host_field("::1", 80), "[::1]");
  EXPECT_EQ(internal::host_field("[::1]", 8080), "[::1]:8080");
  EXPECT_EQ(internal::host_field("127.0.0.1", 8080), "127.0.0.1:8080");
  EXPECT_EQ(internal::host_field("otlp.example.com", 443, 443), "otlp.example.com");  // https
  EXPECT_EQ(internal::host_field("otlp.example.com", 80, 443), "otlp.example.com:80");
  EXPECT_EQ(internal::host_field("127.0.0.1", 80), "127.0.0.1");
  EXPECT_EQ(internal::host_field("api.example.com", 443), "api.example.com:443");
  EXPECT_EQ(internal::host_field("api.example.com", 80), "api.example.com");
}

// The connection keeps the zone id (it picks the interface); the Host field it sends does not.
// A zone on the loopback address connects like the address alone.
TEST(ClientTest, SendsHostWithoutTheZoneIdItConnectsWith) {
  ServerOptions v6_options = local_options();
  v6_options.address = "::1";
  Server v6(v6_options, [](Request& req, Responder respond) {
    respond(Response::text(200, std::string(req.headers.get("Host").value_or(""))));
  });
  if (!v6.start().has_value()) GTEST_SKIP() << "no IPv6 loopback here";
  Client client;
  auto r = client.request("::1%lo", v6.port(), get("/"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->body, "[::1]:" + std::to_string(v6.port()));

  const uint16_t port = v6.port();
  v6.shutdown(milliseconds(1000));  // nothing listens there now
  Client fresh;                     // nor is a connection pooled
  r = fresh.request("::1%lo", port, get("/"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.rfind("connect to [::1%lo]:" + std::to_string(port) + ": ", 0), 0u)
      << r.error().message;
}

// A target with CR or LF would end the request line early and let the rest be read as headers
// and further requests (request splitting, CWE-93); like a bad method, it makes the request
// unusable: kInvalidArgument, and nothing is sent.
TEST(ClientTest, TargetWithCrLfIsInvalidArgumentAndNotSent) {
  std::atomic<int> handled{0};
  Server server(local_options(), [&](Request&, Responder respond) {
    ++handled;
    respond(Response::text(200, "ok"));
  });
  ASSERT_TRUE(server.start().has_value());
  Client client;
  auto r = client.request("127.0.0.1", server.port(),
                          get("/a HTTP/1.1\r\nHost: x\r\n\r\nDELETE /admin"));
  ASSERT_FALSE(r.has_value()) << "status " << r->status;
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().to_string();
  server.shutdown(milliseconds(1000));
  EXPECT_EQ(handled.load(), 0);
}

// docs/http.md: a method holding a space or a control character is refused too (a tab or a NUL
// would make the request line malformed, or read differently by the server and a proxy).
TEST(ClientTest, MethodWithAControlCharacterIsInvalidArgumentAndNotSent) {
  std::atomic<int> requests{0};
  ScriptedServer server([&](int fd, int) {
    if (ScriptedServer::read_request(fd)) {
      ++requests;
      ScriptedServer::write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
  });
  Client client;
  for (std::string method :
       {std::string("PURGE\tX"), std::string("GET\0", 4), std::string("X\x7f")}) {
    Request req = get("/a");
    req.method = Method::kOther;
    req.method_name = method;
    auto r = client.request("127.0.0.1", server.port(), req);
    ASSERT_FALSE(r.has_value()) << "status " << r->status;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().to_string();
  }
  EXPECT_EQ(requests.load(), 0);
}

TEST(ClientTest, HeadResponseHasNoBody) {
  Server server(local_options(), echo());
  ASSERT_TRUE(server.start().has_value());
  Client client;
  Request req = get("/h");
  req.method = Method::kHead;
  auto r = client.request("127.0.0.1", server.port(), req);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->body.empty());
  // The connection is still in sync for the next request.
  auto r2 = client.request("127.0.0.1", server.port(), get("/after"));
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->body, "GET /after ");
  EXPECT_EQ(client.stats().connections_opened, 1u);
}

TEST(ClientTest, ConcurrentRequestsAllComplete) {
  Server server(local_options(), echo());
  ASSERT_TRUE(server.start().has_value());
  ClientOptions o;
  o.threads = 2;
  Client client(o);
  constexpr int kRequests = 200;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  std::promise<void> all_done;
  for (int i = 0; i < kRequests; ++i) {
    client.async_request("127.0.0.1", server.port(), get("/c/" + std::to_string(i)),
                         [&, i](Result<Response> r) {
                           if (r && r->body == "GET /c/" + std::to_string(i) + " ") ++ok;
                           if (++done == kRequests) all_done.set_value();
                         });
  }
  all_done.get_future().wait();
  EXPECT_EQ(ok.load(), kRequests);
  const auto stats = client.stats();
  EXPECT_EQ(stats.connections_opened + stats.reused, static_cast<uint64_t>(kRequests));
}

TEST(ClientTest, SlowHandlerTimesOut) {
  std::mutex mu;
  std::vector<Responder> parked;
  Server server(local_options(), [&](Request& req, Responder respond) {
    if (req.path == "/fast") {
      respond(Response::text(200, "fast"));
      return;
    }
    std::lock_guard lock(mu);
    parked.push_back(std::move(respond));  // answered only at the end of the test
  });
  ASSERT_TRUE(server.start().has_value());
  Client client;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = client.request("127.0.0.1", server.port(), get("/slow"), milliseconds(200));
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout) << r.error().to_string();
  EXPECT_GE(took, milliseconds(190));
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_EQ(client.stats().timeouts, 1u);
  // The timed-out connection is not reused: the next request opens a new one.
  auto fast = client.request("127.0.0.1", server.port(), get("/fast"));
  ASSERT_TRUE(fast.has_value()) << fast.error().to_string();
  EXPECT_EQ(fast->body, "fast");
  EXPECT_EQ(client.stats().connections_opened, 2u);
  {
    std::lock_guard lock(mu);
    for (auto& p : parked) p(Response::text(200, "late"));
    parked.clear();
  }
  server.shutdown(milliseconds(1000));
}

TEST(ClientTest, ConnectionRefusedIsUnavailable) {
  uint16_t port;
  {
    Server server(local_options(), echo());
    ASSERT_TRUE(server.start().has_value());
    port = server.port();
  }  // closed: nothing listens there now
  Client client;
  auto r = client.request("127.0.0.1", port, get("/"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable) << r.error().to_string();
  EXPECT_EQ(client.stats().connections_opened, 0u);
}

// The error names the server as a URL authority: an IPv6 address in brackets.
TEST(ClientTest, ConnectErrorsNameTheServerAsAnAuthority) {
  uint16_t port;
  {
    Server server(local_options(), echo());
    ASSERT_TRUE(server.start().has_value());
    port = server.port();
  }
  Client client;
  auto r = client.request("127.0.0.1", port, get("/"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.rfind("connect to 127.0.0.1:" + std::to_string(port) + ": ", 0), 0u)
      << r.error().message;

  ServerOptions v6_options = local_options();
  v6_options.address = "::1";
  {
    Server v6(v6_options, echo());
    if (!v6.start().has_value()) GTEST_SKIP() << "no IPv6 loopback here";
    port = v6.port();
  }
  r = client.request("::1", port, get("/"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.rfind("connect to [::1]:" + std::to_string(port) + ": ", 0), 0u)
      << r.error().message;
}

TEST(ClientTest, ServerClosingIdleConnectionIsTransparent) {
  ServerOptions o = local_options();
  o.idle_timeout = milliseconds(100);
  Server server(o, echo());
  ASSERT_TRUE(server.start().has_value());
  Client client;
  ASSERT_TRUE(client.request("127.0.0.1", server.port(), get("/1")).has_value());
  // Wait until the server has dropped the idle connection.
  for (int i = 0; i < 400 && server.connections() > 0; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(server.connections(), 0u);
  auto r = client.request("127.0.0.1", server.port(), get("/2"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->body, "GET /2 ");
  EXPECT_EQ(client.stats().connections_opened, 2u);
}

// The server closes a kept-alive connection just as the next request arrives (it reads the
// request, then closes without answering): an idempotent request is retried on a new
// connection.
TEST(ClientTest, StaleConnectionRaceIsRetriedForIdempotentRequests) {
  ScriptedServer server([](int fd, int index) {
    if (!ScriptedServer::read_request(fd)) return;
    if (index == 0) {
      ScriptedServer::write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
      ScriptedServer::read_request(fd);  // the second request: dropped unanswered
      return;
    }
    ScriptedServer::write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nretry");
    ScriptedServer::read_request(fd);
  });
  Client client;
  auto first = client.request("127.0.0.1", server.port(), get("/a"));
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  EXPECT_EQ(first->body, "first");
  auto second = client.request("127.0.0.1", server.port(), get("/b"));
  ASSERT_TRUE(second.has_value()) << second.error().to_string();
  EXPECT_EQ(second->body, "retry");
  EXPECT_EQ(client.stats().connections_opened, 2u);
  EXPECT_EQ(client.stats().reused, 1u);
}

TEST(ClientTest, StaleConnectionRaceIsNotRetriedForPost) {
  ScriptedServer server([](int fd, int index) {
    if (!ScriptedServer::read_request(fd)) return;
    if (index == 0) {
      ScriptedServer::write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
      ScriptedServer::read_request(fd);
      return;
    }
    ScriptedServer::write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nretry");
  });
  Client client;
  ASSERT_TRUE(client.request("127.0.0.1", server.port(), get("/a")).has_value());
  Request post = get("/b");
  post.method = Method::kPost;
  auto second = client.request("127.0.0.1", server.port(), post);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable) << second.error().to_string();
}

TEST(ClientTest, ChunkedAndCloseDelimitedResponses) {
  ScriptedServer server([](int fd, int index) {
    if (!ScriptedServer::read_request(fd)) return;
    if (index == 0) {
      ScriptedServer::write(fd,
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
      if (!ScriptedServer::read_request(fd)) return;
    }
    // No framing: the body runs until the server closes.
    ScriptedServer::write(fd, "HTTP/1.1 200 OK\r\n\r\nuntil-close");
  });
  Client client;
  auto r1 = client.request("127.0.0.1", server.port(), get("/1"));
  ASSERT_TRUE(r1.has_value()) << r1.error().to_string();
  EXPECT_EQ(r1->body, "abcde");
  auto r2 = client.request("127.0.0.1", server.port(), get("/2"));
  ASSERT_TRUE(r2.has_value()) << r2.error().to_string();
  EXPECT_EQ(r2->body, "until-close");
}

// Trailer fields of a chunked response are not header fields: a recipient must not merge them
// into the header section (RFC 9110 section 6.5.1), as the server's request parser does not.
TEST(ClientTest, ChunkedResponseTrailersAreNotMergedIntoHeaders) {
  ScriptedServer server([](int fd, int) {
    if (!ScriptedServer::read_request(fd)) return;
    ScriptedServer::write(fd,
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3;ext=1\r\nabc\r\n0\r\nX-Checksum: 1234\r\n"
                          "Location: /elsewhere\r\n\r\n");
    ScriptedServer::read_request(fd);
  });
  Client client;
  auto r = client.request("127.0.0.1", server.port(), get("/"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->body, "abc");
  EXPECT_FALSE(r->headers.get("X-Checksum").has_value());
  EXPECT_FALSE(r->headers.get("Location").has_value());
}

TEST(ClientTest, OversizedResponseBodyIsOutOfRange) {
  Server server(local_options(), [](Request&, Responder respond) {
    respond(Response::text(200, std::string(4096, 'x')));
  });
  ASSERT_TRUE(server.start().has_value());
  ClientOptions o;
  o.max_response_body_bytes = 1024;
  Client client(o);
  auto r = client.request("127.0.0.1", server.port(), get("/big"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kOutOfRange);
}

TEST(ClientTest, BlockingRequestOnClientThreadFails) {
  Server server(local_options(), echo());
  ASSERT_TRUE(server.start().has_value());
  Client client;
  std::promise<Result<Response>> inner;
  client.async_request("127.0.0.1", server.port(), get("/"), [&](Result<Response>) {
    inner.set_value(client.request("127.0.0.1", server.port(), get("/inner")));
  });
  auto r = inner.get_future().get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
}

TEST(ClientTest, DestroyingClientCancelsOutstandingRequests) {
  std::mutex mu;
  std::vector<Responder> parked;
  Server server(local_options(), [&](Request&, Responder respond) {
    std::lock_guard lock(mu);
    parked.push_back(std::move(respond));
  });
  ASSERT_TRUE(server.start().has_value());
  std::promise<Result<Response>> outcome;
  {
    Client client;
    client.async_request("127.0.0.1", server.port(), get("/parked"),
                         [&](Result<Response> r) { outcome.set_value(std::move(r)); });
    for (int i = 0; i < 400 && server.inflight() == 0; ++i) {
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  auto r = outcome.get_future().get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kCancelled) << r.error().to_string();
  std::lock_guard lock(mu);
  for (auto& p : parked) p(Response::text(200, "late"));
  parked.clear();
}

}  // namespace
}  // namespace prescale::http
