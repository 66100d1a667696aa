#include "http/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "http/body_stream.h"
#include "http/test_util.h"
#include "http/tunnel.h"

namespace prescale::http {
namespace {

using std::chrono::milliseconds;
using testing::RawSocket;

Handler hello() {
  return [](Request&, Responder respond) { respond(Response::text(200, "hello")); };
}

// Echoes "<METHOD> <target> <body>" so tests can see what the server parsed.
Handler echo() {
  return [](Request& req, Responder respond) {
    respond(Response::text(200, req.method_name + " " + req.target + " " + req.body));
  };
}

ServerOptions local_options(int threads = 2) {
  ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = threads;
  return o;
}

std::string get(std::string_view target, std::string_view extra = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

class ServerTest : public ::testing::Test {
 protected:
  Server& start(ServerOptions options, Handler handler) {
    server_ = std::make_unique<Server>(std::move(options), std::move(handler));
    auto started = server_->start();
    EXPECT_TRUE(started.has_value()) << started.error().to_string();
    return *server_;
  }
  void TearDown() override {
    if (server_) server_->shutdown(milliseconds(1000));
  }
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Server& server = start(local_options(), echo());
  RawSocket s(server.port());
  ASSERT_TRUE(s.connected());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(s.send(get("/n/" + std::to_string(i))));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET /n/" + std::to_string(i) + " ");
    EXPECT_EQ(r->header("Server"), "prescale");
    EXPECT_EQ(r->header("Content-Length"), std::to_string(r->body.size()));
    EXPECT_EQ(r->header("Connection"), std::nullopt);
  }
  EXPECT_EQ(server.connections(), 1u);
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Server& server = start(local_options(), echo());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/a") + "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz" +
                     get("/c")));
  for (std::string expected : {"GET /a ", "POST /b xyz", "GET /c "}) {
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->body, expected);
  }
}

TEST_F(ServerTest, ChunkedRequestBodyIsDecoded) {
  Server& server = start(local_options(), echo());
  RawSocket s(server.port());
  ASSERT_TRUE(
      s.send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "POST /c abcde");
}

TEST_F(ServerTest, Http10ClosesUnlessKeepAliveAsked) {
  Server& server = start(local_options(), hello());
  {
    RawSocket s(server.port());
    ASSERT_TRUE(s.send("GET / HTTP/1.0\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->header("Connection"), "close");
    EXPECT_TRUE(s.closed_within(milliseconds(2000)));
  }
  RawSocket s(server.port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(s.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->header("Connection"), "keep-alive");
  }
}

// RFC 9112 section 2.2: a server SHOULD ignore empty lines (CRLF) before a request line; some
// clients send one after a POST body. The next request on the connection is still served.
TEST_F(ServerTest, EmptyLinesBeforeARequestAreIgnored) {
  ServerOptions o = local_options();
  o.read_timeout = milliseconds(300);
  Server& server = start(std::move(o), echo());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "POST /a x");
  // Longer than the read timeout: the stray CRLF is no request in progress (no 408).
  std::this_thread::sleep_for(milliseconds(600));
  ASSERT_TRUE(s.send("\r\n" + get("/b")));
  r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /b ");
}

TEST_F(ServerTest, ConnectionCloseRequestIsHonoured) {
  Server& server = start(local_options(), hello());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/", "Connection: close\r\n")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_TRUE(s.closed_within(milliseconds(2000)));
}

TEST_F(ServerTest, HeadResponseHasLengthButNoBody) {
  Server& server = start(local_options(), hello());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.read_response(/*head=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header("Content-Length"), "5");
  // No body bytes were sent: the next response starts right after the HEAD header block.
  ASSERT_TRUE(s.send(get("/")));
  auto r2 = s.read_response();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 200);
  EXPECT_EQ(r2->body, "hello");
}

TEST_F(ServerTest, HandlerHeadersAreKeptFramingIsOurs) {
  Server& server = start(local_options(), [](Request&, Responder respond) {
    Response r = Response::text(201, "abc");
    r.headers.add("X-Custom", "v");
    r.headers.add("Content-Length", "999");        // ignored: the server frames the body
    r.headers.add("X-Bad", "a\r\nInjected: yes");  // dropped: would split the response
    respond(std::move(r));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->header("X-Custom"), "v");
  EXPECT_EQ(r->header("Content-Length"), "3");
  EXPECT_EQ(r->header("Injected"), std::nullopt);
  EXPECT_EQ(r->header("X-Bad"), std::nullopt);
  EXPECT_EQ(r->body, "abc");
}

TEST_F(ServerTest, ResponderMayBeCalledFromAnotherThread) {
  std::vector<std::thread> workers;
  std::mutex mu;
  Server& server = start(local_options(), [&](Request& req, Responder respond) {
    std::string path = req.path;
    std::lock_guard lock(mu);
    workers.emplace_back([respond, path] {
      std::this_thread::sleep_for(milliseconds(20));
      respond(Response::text(200, "later " + path));
    });
  });
  RawSocket s(server.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.send(get("/x" + std::to_string(i))));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->body, "later /x" + std::to_string(i));
  }
  EXPECT_EQ(server.inflight(), 0u);
  std::lock_guard lock(mu);
  for (auto& t : workers) t.join();
}

TEST_F(ServerTest, DroppedResponderAnswers500) {
  Server& server = start(local_options(), [](Request&, Responder) {});
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(server.inflight(), 0u);
}

TEST_F(ServerTest, ThrowingHandlerAnswers500) {
  Server& server =
      start(local_options(), [](Request&, Responder) { throw std::runtime_error("boom"); });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
}

TEST_F(ServerTest, ExpectContinueGets100BeforeTheBody) {
  Server& server = start(local_options(), echo());
  RawSocket s(server.port());
  ASSERT_TRUE(
      s.send("POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
             "Expect: 100-continue\r\n\r\n"));
  auto interim = s.read_response();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(s.send("data"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "POST /u data");
}

TEST_F(ServerTest, OversizedHeaderGets431AndClose) {
  std::vector<int> rejected;
  std::mutex mu;
  ServerOptions o = local_options();
  o.on_rejected = [&](int status) {
    std::lock_guard lock(mu);
    rejected.push_back(status);
  };
  Server& server = start(std::move(o), hello());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/", "X-Big: " + std::string(17 * 1024, 'a') + "\r\n")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
  std::lock_guard lock(mu);
  EXPECT_EQ(rejected, std::vector<int>{431});
}

// The limit is on the request line and the fields together (docs/http.md), not on each of them:
// a 600-byte request line plus 600 bytes of fields is over a 1 KiB limit.
TEST_F(ServerTest, HeaderLimitCountsTheRequestLineAndTheFieldsTogether) {
  ServerOptions o = local_options();
  o.max_header_bytes = 1024;
  Server& server = start(std::move(o), hello());
  const std::string line = "GET /" + std::string(600 - 16, 'p') + " HTTP/1.1\r\n";  // 600 bytes
  ASSERT_EQ(line.size(), 600u);
  {
    RawSocket s(server.port());
    ASSERT_TRUE(s.send(line + "Host: t\r\nX-Pad: " + std::string(600, 'a') + "\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 431);
    EXPECT_TRUE(s.closed_within(milliseconds(3000)));
  }
  // Exactly at the limit, the final blank line included, is accepted.
  const std::string fields = "Host: t\r\nX-Pad: ";
  RawSocket s(server.port());
  ASSERT_TRUE(
      s.send(line + fields + std::string(1024 - 600 - fields.size() - 4, 'a') + "\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

// The limit holds for a header that arrives in pieces too: Beast applies it to what each parse
// call is given, where the fields it parsed before are no longer.
TEST_F(ServerTest, HeaderLimitHoldsForAHeaderArrivingInPieces) {
  std::atomic<int> handled{0};
  ServerOptions o = local_options();
  o.max_header_bytes = 1024;
  Server& server = start(std::move(o), [&](Request&, Responder respond) {
    ++handled;
    respond(Response::text(200, "ok"));
  });
  RawSocket s(server.port());
  // 1241 bytes in all: complete fields and the start of one more, then the rest.
  const std::string field = "X-B: " + std::string(600, 'b') + "\r\n";
  ASSERT_TRUE(s.send("GET / HTTP/1.1\r\nHost: t\r\nX-A: " + std::string(600, 'a') + "\r\n" +
                     field.substr(0, 10)));
  std::this_thread::sleep_for(milliseconds(100));
  (void)s.send(field.substr(10) + "\r\n");
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(handled.load(), 0);
}

TEST_F(ServerTest, OversizedBodyByContentLengthGets413) {
  ServerOptions o = local_options();
  o.max_body_bytes = 1024;
  Server& server = start(std::move(o), echo());
  RawSocket s(server.port());
  // 5 MiB announced; the answer comes after the header, without waiting for the body.
  ASSERT_TRUE(s.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5242880\r\n\r\n" +
                     std::string(64 * 1024, 'x')));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
}

TEST_F(ServerTest, OversizedChunkedBodyGets413) {
  ServerOptions o = local_options();
  o.max_body_bytes = 1024;
  Server& server = start(std::move(o), echo());
  RawSocket s(server.port());
  std::string req = "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 5; ++i) req += "200\r\n" + std::string(512, 'y') + "\r\n";  // 2.5 KiB
  ASSERT_TRUE(s.send(req));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
}

TEST_F(ServerTest, BodyAtTheLimitIsAccepted) {
  ServerOptions o = local_options();
  o.max_body_bytes = 1024;
  Server& server = start(std::move(o), echo());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n" +
                     std::string(1024, 'z')));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

struct BadRequestCase {
  const char* name;
  std::string bytes;
};

class ServerBadRequestTest : public ServerTest,
                             public ::testing::WithParamInterface<BadRequestCase> {};

TEST_P(ServerBadRequestTest, Gets400AndClose) {
  std::atomic<int> handled{0};
  std::atomic<int> rejected_400{0};
  ServerOptions o = local_options();
  o.on_rejected = [&](int status) {
    if (status == 400) ++rejected_400;
  };
  Server& server = start(std::move(o), [&](Request&, Responder respond) {
    ++handled;
    respond(Response::text(200, "should not happen"));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(GetParam().bytes));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value()) << "no response, the connection was just dropped";
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(rejected_400.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Framing, ServerBadRequestTest,
    ::testing::Values(
        BadRequestCase{"ContentLengthThenChunked",
                       "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
        BadRequestCase{"ChunkedThenContentLength",
                       "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 5\r\n\r\n0\r\n\r\n"},
        BadRequestCase{"GzipThenContentLength",
                       "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
                       "Content-Length: 5\r\n\r\nhello"},
        BadRequestCase{"TwoDifferentContentLengths",
                       "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                       "Content-Length: 6\r\n\r\nhello!"},
        BadRequestCase{"DuplicateContentLength",
                       "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                       "Content-Length: 5\r\n\r\nhello"},
        BadRequestCase{"ContentLengthList",
                       "POST / HTTP/1.1\r\nHost: t\r\n"
                       "Content-Length: 5, 6\r\n\r\nhello!"},
        BadRequestCase{"EqualContentLengthList",
                       "POST / HTTP/1.1\r\nHost: t\r\n"
                       "Content-Length: 5, 5\r\n\r\nhello"},
        BadRequestCase{"NegativeContentLength",
                       "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"},
        BadRequestCase{"TransferEncodingNotChunked",
                       "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"},
        BadRequestCase{"ChunkedNotAlone",
                       "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                       "0\r\n\r\n"},
        BadRequestCase{"TwoTransferEncodings",
                       "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
        BadRequestCase{"InvalidChunkSize",
                       "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "zz\r\nhello\r\n0\r\n\r\n"},
        BadRequestCase{"ChunkMissingCrlf",
                       "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhelloXX0\r\n\r\n"},
        BadRequestCase{"GarbageRequestLine", "HELLO THERE\r\n\r\n"},
        BadRequestCase{"BinaryGarbage",
                       std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n", 13)},
        BadRequestCase{"BadVersion", "GET / HTTP/9.9\r\nHost: t\r\n\r\n"},
        BadRequestCase{"SpaceInHeaderName", "GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n"},
        BadRequestCase{"HeaderWithoutColon", "GET / HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n"}),
    [](const ::testing::TestParamInfo<BadRequestCase>& p) { return p.param.name; });

// A 400 says what was wrong with the request, so that its sender can fix it.
TEST_F(ServerTest, BadRequestAnswerSaysWhatIsWrong) {
  Server& server = start(local_options(), hello());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GET / HTTP/1.1\r\n\r\n", "without Host"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "more than one Host"},
      {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "Host is not host[:port]"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
       "more than one Content-Length"},
      {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
       "Content-Length is not a plain decimal number"},
      {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
       "Transfer-Encoding other than chunked"},
      {"GET users/7 HTTP/1.1\r\nHost: t\r\n\r\n", "target"},
      {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk"},
  };
  for (const auto& [bytes, expected] : cases) {
    RawSocket s(server.port());
    ASSERT_TRUE(s.send(bytes));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value()) << bytes;
    EXPECT_EQ(r->status, 400) << bytes;
    EXPECT_NE(r->body.find(expected), std::string::npos) << bytes << " -> " << r->body;
  }
}

// RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request that lacks Host or has
// more than one Host field line (the host that routing and the gateway rely on is ambiguous).
INSTANTIATE_TEST_SUITE_P(
    Host, ServerBadRequestTest,
    ::testing::Values(
        BadRequestCase{"Http11WithoutHost", "GET / HTTP/1.1\r\n\r\n"},
        BadRequestCase{"TwoHostFields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
        // ... and to one whose Host is not uri-host [":" port].
        BadRequestCase{"HostWithSpace", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
        BadRequestCase{"HostWithPath", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
        BadRequestCase{"HostWithUserinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"},
        BadRequestCase{"HostWithBadPort", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n"},
        BadRequestCase{"HostWithUnclosedBracket", "GET / HTTP/1.1\r\nHost: [::1:80\r\n\r\n"},
        BadRequestCase{"AbsoluteFormWithUserinfo", "GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n"}),
    [](const ::testing::TestParamInfo<BadRequestCase>& p) { return p.param.name; });

// What RFC 9110 section 7.2 allows in Host: a name, an IPv4 address or a bracketed IPv6 one,
// each with an optional port, or nothing (a target URI without an authority).
TEST_F(ServerTest, ValidHostFieldsAreAccepted) {
  Server& server = start(local_options(), hello());
  RawSocket s(server.port());
  for (std::string host : {"example.test", "example.test:8080", "127.0.0.1:80", "[::1]",
                           "[fe80::1%25eth0]:8080", "a-b_c~d.e", "xn--bcher-kva.example", ""}) {
    ASSERT_TRUE(s.send("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value()) << host;
    EXPECT_EQ(r->status, 200) << host;
  }
}

// RFC 9112 section 3.2: a request-target is a path, an absolute URI, or "*" for OPTIONS only
// (asterisk-form, section 3.2.4); anything else names no resource here.
INSTANTIATE_TEST_SUITE_P(
    Target, ServerBadRequestTest,
    ::testing::Values(BadRequestCase{"AsteriskWithGet", "GET * HTTP/1.1\r\nHost: t\r\n\r\n"},
                      BadRequestCase{"AsteriskWithPost",
                                     "POST * HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"},
                      BadRequestCase{"AsteriskWithHead", "HEAD * HTTP/1.1\r\nHost: t\r\n\r\n"},
                      BadRequestCase{"RelativePath", "GET users/7 HTTP/1.1\r\nHost: t\r\n\r\n"},
                      BadRequestCase{"AuthorityForm", "GET t:80 HTTP/1.1\r\nHost: t\r\n\r\n"},
                      BadRequestCase{"AsteriskPath", "OPTIONS *x HTTP/1.1\r\nHost: t\r\n\r\n"}),
    [](const ::testing::TestParamInfo<BadRequestCase>& p) { return p.param.name; });

// RFC 9110 section 9.3.7: "OPTIONS *" asks about the server in general, not a resource: the
// server answers it itself (200 with no content; a handler routes resources, and would say 404),
// and the connection stays open.
TEST_F(ServerTest, OptionsAsteriskIsAnsweredByTheServer) {
  std::atomic<int> handled{0};
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    ++handled;
    respond(Response::text(404, "no such resource"));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Length"), "0");  // RFC 9110 section 9.3.7: MUST, with no content
  EXPECT_EQ(r->body, "");
  EXPECT_EQ(r->header("Connection"), std::nullopt);
  EXPECT_EQ(handled.load(), 0);
  ASSERT_TRUE(s.send("OPTIONS * HTTP/1.0\r\n\r\n"));  // HTTP/1.0: answered, then closed
  r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));

  RawSocket t(server.port());  // a path still reaches the handler
  ASSERT_TRUE(t.send("OPTIONS /x HTTP/1.1\r\nHost: t\r\n\r\n"));
  r = t.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(handled.load(), 1);
}

// RFC 9112 section 3.2.2: a server MUST accept the absolute-form of the request-target; its
// path and query are those of the URI, not the whole target.
TEST_F(ServerTest, AbsoluteFormTargetHasTheUriPathAndQuery) {
  Server& server = start(local_options(), [](Request& req, Responder respond) {
    respond(Response::text(200, req.path + " " + req.query + " " +
                                    std::string(req.headers.get("Host").value_or("-"))));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("GET http://t:8080/users/7?full=1 HTTP/1.1\r\nHost: t:8080\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "/users/7 full=1 t:8080");
  // RFC 9112 section 3.2.2: the target's authority, not a different Host field, names the host
  // (a gateway routing on Host and an upstream reading the URI must agree).
  ASSERT_TRUE(s.send("GET http://admin.internal/x HTTP/1.1\r\nHost: public.example\r\n\r\n"));
  r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "/x  admin.internal");
}

// RFC 9110 section 6.5.1: a recipient MUST NOT merge trailer fields into the header section; a
// handler that reads req.headers must not see fields the client sent after the body.
TEST_F(ServerTest, ChunkedTrailerFieldsAreNotMergedIntoTheHeaders) {
  Server& server = start(local_options(), [](Request& req, Responder respond) {
    respond(Response::text(
        200, std::string(req.headers.get("X-User").value_or("(none)")) + " " + req.body));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(
      s.send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n0\r\nX-User: admin\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "(none) abc");
}

// RFC 9110 section 8.6: a 304 MUST NOT carry a Content-Length other than the length a 200 would
// have had; a handler that gave no body (nor a length) says nothing about it, so none is sent.
TEST_F(ServerTest, NotModifiedWithoutBodyHasNoContentLength) {
  Server& server = start(local_options(), [](Request&, Responder respond) {
    Response r;
    r.status = 304;
    r.headers.add("ETag", "\"v1\"");
    respond(std::move(r));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/doc", "If-None-Match: \"v1\"\r\n")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 304);
  EXPECT_EQ(r->header("Content-Length"), std::nullopt);
}

// RFC 9112 section 6.1: an HTTP/1.0 message with Transfer-Encoding MUST be treated as having
// faulty framing and the connection closed after it, even when the client asks for keep-alive
// (a 1.0 intermediary may have framed it differently: request smuggling).
TEST_F(ServerTest, Http10RequestWithTransferEncodingClosesTheConnection) {
  Server& server = start(local_options(), echo());
  RawSocket s(server.port());
  ASSERT_TRUE(
      s.send("POST /c HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n"
             "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->header("Connection"), "keep-alive");
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
}

// RFC 9110 section 6.6.1: an origin server with a clock MUST send Date (IMF-fixdate, e.g.
// "Sun, 06 Nov 1994 08:49:37 GMT") in every 2xx, 3xx and 4xx response.
TEST_F(ServerTest, ResponsesCarryADateField) {
  Server& server = start(local_options(), hello());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  std::optional<std::string> date = r->header("Date");
  ASSERT_TRUE(date.has_value());
  EXPECT_EQ(date->size(), 29u) << *date;
  EXPECT_TRUE(date->ends_with(" GMT")) << *date;
}

// RFC 9112 section 3: a request-target longer than the server wishes to parse MUST be answered
// with 414 (URI Too Long), not 431, which names the header fields.
TEST_F(ServerTest, OverlongRequestTargetGets414) {
  ServerOptions o = local_options();
  o.max_header_bytes = 1024;
  Server& server = start(std::move(o), hello());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("GET /" + std::string(4096, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 414);
}

TEST_F(ServerTest, SlowClientIsCutOffWith408) {
  std::atomic<int> rejected_408{0};
  ServerOptions o = local_options();
  o.read_timeout = milliseconds(200);
  o.on_rejected = [&](int status) {
    if (status == 408) ++rejected_408;
  };
  Server& server = start(std::move(o), hello());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("GET /slow HTTP/1.1\r\nHost: t\r\n"));  // never finished
  const auto t0 = std::chrono::steady_clock::now();
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(s.closed_within(milliseconds(2000)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(2000));
  EXPECT_EQ(rejected_408.load(), 1);
}

TEST_F(ServerTest, TricklingClientIsCutOffAtReadTimeout) {
  ServerOptions o = local_options();
  o.read_timeout = milliseconds(200);
  Server& server = start(std::move(o), hello());
  RawSocket s(server.port());
  // One byte every 50 ms keeps the socket busy but the request never completes in time.
  const auto t0 = std::chrono::steady_clock::now();
  std::string req = "GET /trickle HTTP/1.1\r\nHost: t\r\n";
  bool cut = false;
  for (char c : req) {
    if (!s.send(std::string_view(&c, 1))) {
      cut = true;
      break;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  (void)cut;
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(s.closed_within(milliseconds(2000)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(2500));
}

TEST_F(ServerTest, SilentConnectionIsClosedWithoutAnswer) {
  ServerOptions o = local_options();
  o.read_timeout = milliseconds(200);
  Server& server = start(std::move(o), hello());
  RawSocket s(server.port());
  EXPECT_TRUE(s.closed_within(milliseconds(2000)));
  EXPECT_TRUE(s.pending().empty());
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosed) {
  ServerOptions o = local_options();
  o.idle_timeout = milliseconds(200);
  Server& server = start(std::move(o), hello());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/")));
  ASSERT_TRUE(s.read_response().has_value());
  EXPECT_TRUE(s.closed_within(milliseconds(2000)));
}

TEST_F(ServerTest, SlowReaderIsCutOffAtWriteTimeout) {
  ServerOptions o = local_options();
  o.write_timeout = milliseconds(200);
  Server& server = start(std::move(o), [](Request&, Responder respond) {
    respond(Response::text(200, std::string(32 * 1024 * 1024, 'x')));  // more than socket buffers
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/big")));  // ... and never read the answer
  bool closed = false;
  for (int i = 0; i < 400 && !closed; ++i) {
    closed = server.connections() == 0;
    if (!closed) std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_TRUE(closed);
}

TEST_F(ServerTest, ConnectionsOverTheLimitGet503) {
  std::atomic<int> rejected_503{0};
  ServerOptions o = local_options(1);
  o.max_connections = 1;
  o.on_rejected = [&](int status) {
    if (status == 503) ++rejected_503;
  };
  Server& server = start(std::move(o), hello());
  RawSocket first(server.port());
  ASSERT_TRUE(first.send(get("/")));
  ASSERT_TRUE(first.read_response().has_value());  // accepted and counted
  RawSocket second(server.port());
  auto r = second.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_TRUE(second.closed_within(milliseconds(3000)));
  EXPECT_EQ(rejected_503.load(), 1);
  // The first connection is unaffected.
  ASSERT_TRUE(first.send(get("/")));
  auto again = first.read_response();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 200);
}

TEST_F(ServerTest, GracefulShutdownFinishesInFlightRequestsAndRefusesNewOnes) {
  constexpr int kRequests = 6;
  std::mutex mu;
  std::vector<Responder> pending;
  Server& server = start(local_options(), [&](Request& req, Responder respond) {
    if (req.path == "/idle") {
      respond(Response::text(200, "idle"));
      return;
    }
    std::lock_guard lock(mu);
    pending.push_back(std::move(respond));
  });
  const uint16_t port = server.port();

  std::vector<std::unique_ptr<RawSocket>> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.push_back(std::make_unique<RawSocket>(port));
    ASSERT_TRUE(clients.back()->send(get("/slow")));
  }
  RawSocket idle(port);  // an idle keep-alive connection: closed right away by shutdown
  ASSERT_TRUE(idle.send(get("/idle")));
  ASSERT_TRUE(idle.read_response().has_value());
  for (int i = 0; i < 400 && server.inflight() < kRequests; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(server.inflight(), static_cast<size_t>(kRequests));

  const auto t0 = std::chrono::steady_clock::now();
  auto stopped = std::async(std::launch::async, [&] { server.shutdown(milliseconds(5000)); });

  // New connections are refused once the drain has begun.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    refused = testing::connect_refused(port);
    if (!refused) std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_TRUE(refused);
  EXPECT_TRUE(idle.closed_within(milliseconds(2000)));

  // The in-flight handlers answer ~200 ms later, from another thread.
  std::thread responder([&] {
    std::this_thread::sleep_for(milliseconds(200));
    std::lock_guard lock(mu);
    for (auto& r : pending) r(Response::text(200, "done"));
    pending.clear();
  });
  for (auto& c : clients) {
    auto r = c->read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "done");
    EXPECT_EQ(r->header("Connection"), "close");
    EXPECT_TRUE(c->closed_within(milliseconds(2000)));
  }
  stopped.get();
  responder.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(4000));
  EXPECT_EQ(server.connections(), 0u);
  EXPECT_EQ(server.inflight(), 0u);
  EXPECT_TRUE(testing::connect_refused(port));
}

TEST_F(ServerTest, ShutdownForceClosesAtTheDeadline) {
  std::mutex mu;
  std::vector<Responder> pending;
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    std::lock_guard lock(mu);
    pending.push_back(std::move(respond));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/never")));
  for (int i = 0; i < 200 && server.inflight() < 1; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  const auto t0 = std::chrono::steady_clock::now();
  server.shutdown(milliseconds(200));
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, milliseconds(150));
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_TRUE(s.closed_within(milliseconds(1000)));
  server.shutdown(milliseconds(200));  // idempotent
  // A late answer after shutdown is dropped without harm.
  std::lock_guard lock(mu);
  for (auto& r : pending) r(Response::text(200, "late"));
  pending.clear();
  EXPECT_EQ(server.inflight(), 0u);
}

TEST_F(ServerTest, ManyConcurrentConnections) {
  Server& server = start(local_options(), echo());
  constexpr int kClients = 16;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      RawSocket s(server.port());
      for (int i = 0; i < 20; ++i) {
        const std::string target = "/c" + std::to_string(c) + "/" + std::to_string(i);
        if (!s.send(get(target))) return;
        auto r = s.read_response();
        if (r && r->body == "GET " + target + " ") ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * 20);
}

// A handler that answers with a streamed body and hands the stream to the test.
class StreamingHandler {
 public:
  Handler handler(std::string first_piece = "") {
    return [this, first_piece](Request&, Responder respond) {
      auto stream = std::make_shared<BodyStream>();
      Response r;
      r.headers.set("Content-Type", "text/event-stream");
      r.body = first_piece;
      r.stream = stream;
      {
        std::lock_guard lock(mu_);
        streams_.push_back(stream);
      }
      cv_.notify_all();
      respond(std::move(r));
    };
  }
  // The n-th stream (0-based), once its request was handled.
  std::shared_ptr<BodyStream> stream(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [&] { return streams_.size() > n; });
    return streams_.size() > n ? streams_[n] : nullptr;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<BodyStream>> streams_;
};

template <class Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return pred();
}

TEST_F(ServerTest, AStreamedBodyIsSentPieceByPieceAsItIsWritten) {
  StreamingHandler h;
  Server& server = start(local_options(), h.handler("data: 0\n\n"));
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/events")));
  auto stream = h.stream(0);
  ASSERT_NE(stream, nullptr);
  // The head and the first piece arrive while the body goes on.
  ASSERT_TRUE(s.read_until("data: 0\n\n\r\n"));
  EXPECT_NE(s.pending().find("Transfer-Encoding: chunked\r\n"), std::string::npos) << s.pending();
  EXPECT_EQ(s.pending().find("Content-Length"), std::string::npos) << s.pending();
  EXPECT_NE(s.pending().find("\r\n\r\n9\r\ndata: 0\n\n\r\n"), std::string::npos) << s.pending();
  ASSERT_TRUE(stream->write("data: 1\n\n"));
  ASSERT_TRUE(s.read_until("9\r\ndata: 1\n\n\r\n"));
  ASSERT_TRUE(stream->write(std::string(20000, 'x')));
  ASSERT_TRUE(stream->write("data: 2\n\n"));
  stream->end();
  EXPECT_FALSE(stream->write("late"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Type"), "text/event-stream");
  EXPECT_EQ(r->body, "data: 0\n\ndata: 1\n\n" + std::string(20000, 'x') + "data: 2\n\n");
  EXPECT_TRUE(s.pending().empty());
  EXPECT_FALSE(stream->gone());  // it ended before the client left
  // The connection serves the next request.
  ASSERT_TRUE(s.send(get("/again")));
  auto second = h.stream(1);
  ASSERT_NE(second, nullptr);
  second->end();
  auto r2 = s.read_response();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->body, "data: 0\n\n");
}

TEST_F(ServerTest, TrailersEndAChunkedBody) {
  StreamingHandler h;
  Server& server = start(local_options(), [&](Request& req, Responder respond) {
    if (req.path == "/events") return h.handler()(req, std::move(respond));
    Response r = Response::text(200, "hello");
    r.trailers.add("X-Checksum", "abc");
    r.trailers.add("Content-Length", "99");  // framing: never a trailer
    respond(std::move(r));
  });
  RawSocket s(server.port());
  // A buffered body with trailers goes chunked: the body as one chunk, then the trailer section.
  ASSERT_TRUE(s.send(get("/buffered")));
  ASSERT_TRUE(s.read_until("0\r\nX-Checksum: abc\r\n\r\n")) << s.pending();
  EXPECT_NE(s.pending().find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_EQ(s.pending().find("Content-Length"), std::string::npos) << s.pending();
  EXPECT_TRUE(s.pending().ends_with("\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n"))
      << s.pending();
  s.clear_pending();
  // A stream's trailers come with its end.
  ASSERT_TRUE(s.send(get("/events")));
  auto stream = h.stream(0);
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->write("data"));
  Headers trailers;
  trailers.add("grpc-status", "0");
  trailers.add("Bad Name", "x");  // not a token: dropped
  stream->end(std::move(trailers));
  ASSERT_TRUE(s.read_until("4\r\ndata\r\n0\r\ngrpc-status: 0\r\n\r\n")) << s.pending();
  EXPECT_EQ(s.pending().find("Bad Name"), std::string::npos) << s.pending();
  s.clear_pending();
  // HTTP/1.0 has no trailers: the body is sent with its length, the trailers dropped.
  RawSocket old(server.port());
  ASSERT_TRUE(old.send("GET /buffered HTTP/1.0\r\n\r\n"));
  auto r = old.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header("Content-Length"), "5");
  EXPECT_EQ(r->body, "hello");
  EXPECT_TRUE(old.closed_within(milliseconds(2000)));
  EXPECT_EQ(old.pending().find("X-Checksum"), std::string::npos);
}

TEST_F(ServerTest, AStreamedBodyToAnHttp10ClientEndsWithTheConnection) {
  StreamingHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("GET /events HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto stream = h.stream(0);
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->write("one "));
  ASSERT_TRUE(s.read_until("one "));
  ASSERT_TRUE(stream->write("two"));
  stream->end();
  ASSERT_TRUE(s.read_until("two"));
  EXPECT_NE(s.pending().find("Connection: close\r\n"), std::string::npos) << s.pending();
  EXPECT_EQ(s.pending().find("Transfer-Encoding"), std::string::npos) << s.pending();
  EXPECT_TRUE(s.pending().ends_with("\r\n\r\none two")) << s.pending();
  EXPECT_TRUE(s.closed_within(milliseconds(2000)));
}

TEST_F(ServerTest, AnAbortedStreamIsCutWithoutItsLastChunk) {
  StreamingHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/events")));
  auto stream = h.stream(0);
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->write("partial"));
  stream->abort();
  EXPECT_TRUE(s.read_to_close(milliseconds(2000)));
  EXPECT_TRUE(s.pending().ends_with("\r\n\r\n7\r\npartial\r\n")) << s.pending();
  EXPECT_FALSE(stream->write("more"));
}

TEST_F(ServerTest, AClientThatLeavesAStreamIsToldToItsProducer) {
  StreamingHandler h;
  Server& server = start(local_options(), h.handler());
  std::shared_ptr<BodyStream> stream;
  std::atomic<int> gone{0};
  {
    RawSocket s(server.port());
    ASSERT_TRUE(s.send(get("/events")));
    stream = h.stream(0);
    ASSERT_NE(stream, nullptr);
    stream->set_on_gone([&] { gone.fetch_add(1); });
    ASSERT_TRUE(stream->write("tick"));
    ASSERT_TRUE(s.read_until("tick"));
  }  // the client closes its connection, the stream still open
  EXPECT_TRUE(eventually([&] { return gone.load() == 1; }));
  EXPECT_TRUE(stream->gone());
  EXPECT_FALSE(stream->write("tock"));
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  EXPECT_EQ(gone.load(), 1);
}

// A client that sends its request and ends its input at once has left before its stream's first
// piece: the producer is told, and the connection goes (it is not left waiting, held by nothing).
TEST_F(ServerTest, AStreamWhoseClientEndedItsInputIsGone) {
  StreamingHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/events")));
  s.shutdown_write();
  auto stream = h.stream(0);
  ASSERT_NE(stream, nullptr);
  EXPECT_TRUE(eventually([&] { return stream->gone(); }));
  EXPECT_FALSE(stream->write("late"));
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
}

// A streamed answer whose status cannot be final is answered 500, and its stream is gone.
TEST_F(ServerTest, AStreamedAnswerWithAnInterimStatusIs500AndItsStreamIsGone) {
  std::shared_ptr<BodyStream> stream = std::make_shared<BodyStream>();
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    Response r;
    r.status = 103;
    r.stream = stream;
    respond(std::move(r));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/early")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_TRUE(r->header("Content-Length").has_value());
  EXPECT_TRUE(eventually([&] { return stream->gone(); }));
}

TEST_F(ServerTest, AStreamedAnswerToHeadHasNoBodyAndItsStreamIsGone) {
  StreamingHandler h;
  Server& server = start(local_options(), h.handler("never sent"));
  RawSocket s(server.port());
  ASSERT_TRUE(s.send("HEAD /events HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto r = s.read_response(/*head=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->header("Transfer-Encoding").has_value());
  auto stream = h.stream(0);
  ASSERT_NE(stream, nullptr);
  EXPECT_TRUE(eventually([&] { return stream->gone(); }));
  // The connection goes on.
  ASSERT_TRUE(s.send(get("/next")));
  auto next = h.stream(1);
  ASSERT_NE(next, nullptr);
  next->end();
  auto r2 = s.read_response();
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->body, "never sent");
}

TEST_F(ServerTest, AFullStreamIsDrainedAsTheClientReads) {
  StreamingHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/big")));
  auto stream = h.stream(0);
  ASSERT_NE(stream, nullptr);
  std::atomic<int> drained{0};
  stream->set_on_drained([&] { drained.fetch_add(1); });
  // More than the sockets' buffers hold while the client does not read.
  const size_t total = size_t{32} * 1024 * 1024;
  ASSERT_TRUE(stream->write(std::string(total, 'z')));
  EXPECT_TRUE(stream->full());
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_TRUE(stream->full());  // the client has read nothing
  EXPECT_EQ(drained.load(), 0);
  stream->end();
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body.size(), total);
  EXPECT_TRUE(eventually([&] { return drained.load() == 1; }));
  EXPECT_EQ(stream->queued(), 0u);
}

// A handler that switches to the protocol "tick" when asked, echoes what the client sends in it
// ("echo:" before each piece), ends its side when the client sends "bye", and records the rest.
class TunnelHandler {
 public:
  Handler handler() {
    return [this](Request& req, Responder respond) {
      if (upgrade_requested(req) != "tick") {
        respond(Response::text(426, "upgrade to tick"));
        return;
      }
      auto tunnel = std::make_shared<Tunnel>();
      Tunnel* t = tunnel.get();
      tunnel->set_on_data([this, t](std::string_view data) {
        {
          std::lock_guard lock(mu_);
          received_ += data;
        }
        if (data == "bye") {
          t->out().end();
        } else {
          t->out().write("echo:" + std::string(data));
        }
      });
      tunnel->set_on_end([this] { ended_.fetch_add(1); });
      tunnel->set_on_closed([this] { closed_.fetch_add(1); });
      {
        std::lock_guard lock(mu_);
        tunnels_.push_back(tunnel);
      }
      Response r;
      r.status = 101;
      r.headers.set("Upgrade", "tick");
      r.tunnel = std::move(tunnel);
      respond(std::move(r));
    };
  }
  std::string received() {
    std::lock_guard lock(mu_);
    return received_;
  }
  std::shared_ptr<Tunnel> tunnel(size_t n) {
    std::lock_guard lock(mu_);
    return tunnels_.size() > n ? tunnels_[n] : nullptr;
  }
  std::atomic<int> ended_{0};
  std::atomic<int> closed_{0};

 private:
  std::mutex mu_;
  std::string received_;
  std::vector<std::shared_ptr<Tunnel>> tunnels_;
};

std::string upgrade_to(std::string_view protocol) {
  return get("/tick", "Connection: Upgrade\r\nUpgrade: " + std::string(protocol) + "\r\n");
}

TEST_F(ServerTest, ASwitchedConnectionCarriesTheNewProtocolBothWays) {
  TunnelHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  // The client's first bytes in the new protocol come right behind its request.
  ASSERT_TRUE(s.send(upgrade_to("tick") + "early"));
  ASSERT_TRUE(s.read_until("echo:early"));
  const std::string head = s.pending().substr(0, s.pending().find("\r\n\r\n") + 4);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << head;
  EXPECT_NE(head.find("Upgrade: tick\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Connection: upgrade\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
  EXPECT_EQ(head.find("Transfer-Encoding"), std::string::npos) << head;
  EXPECT_EQ(s.pending(), head + "echo:early");
  s.clear_pending();
  // Bytes that look like HTTP are the new protocol's too.
  ASSERT_TRUE(s.send("GET / HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(s.read_until("echo:GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(server.inflight(), 0u);
  // The client ends its side; the handler is told and ends its own: the connection closes.
  s.shutdown_write();
  EXPECT_TRUE(eventually([&] { return h.ended_.load() == 1; }));
  h.tunnel(0)->out().end();
  EXPECT_TRUE(s.read_to_close(milliseconds(2000)));
  EXPECT_TRUE(eventually([&] { return h.closed_.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  EXPECT_EQ(h.closed_.load(), 1);
}

// The handler's end() is a half-close: the client reads the end and may still send.
TEST_F(ServerTest, ATunnelsEndIsAHalfCloseAndItsClientMayStillSend) {
  TunnelHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(upgrade_to("tick")));
  ASSERT_TRUE(s.read_until("\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return h.tunnel(0) != nullptr; }));
  ASSERT_TRUE(s.send("bye"));
  EXPECT_TRUE(s.read_to_close(milliseconds(2000)));  // the server's side ended
  ASSERT_TRUE(s.send(" after"));
  EXPECT_TRUE(eventually([&] { return h.received() == "bye after"; })) << h.received();
  EXPECT_EQ(h.closed_.load(), 0);
  EXPECT_EQ(server.connections(), 1u);
  s.shutdown_write();
  EXPECT_TRUE(eventually([&] { return h.closed_.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  EXPECT_EQ(h.ended_.load(), 1);
}

// abort() cuts the connection even after the handler ended its side.
TEST_F(ServerTest, AnAbortedTunnelIsClosedEvenAfterItsEnd) {
  TunnelHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(upgrade_to("tick") + "bye"));
  EXPECT_TRUE(s.read_to_close(milliseconds(2000)));  // the handler's end
  auto tunnel = h.tunnel(0);
  ASSERT_NE(tunnel, nullptr);
  EXPECT_EQ(server.connections(), 1u);  // the client may still send
  tunnel->abort();
  EXPECT_TRUE(eventually([&] { return h.closed_.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  EXPECT_EQ(h.ended_.load(), 0);  // the client never ended its side
  EXPECT_FALSE(tunnel->out().write("late"));
  EXPECT_TRUE(tunnel->out().gone());
}

// Once the handler ended its side, a client that neither sends nor ends its own is closed after
// idle_timeout; not while the handler holds it back.
TEST_F(ServerTest, AfterItsEndATunnelWaitsIdleTimeoutForItsClientButNotWhilePaused) {
  ServerOptions options = local_options();
  options.idle_timeout = milliseconds(300);
  TunnelHandler h;
  Server& server = start(options, h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(upgrade_to("tick") + "bye"));
  EXPECT_TRUE(s.read_to_close(milliseconds(2000)));  // the handler's end
  auto tunnel = h.tunnel(0);
  ASSERT_NE(tunnel, nullptr);
  tunnel->pause();
  ASSERT_TRUE(s.send(" held"));
  std::this_thread::sleep_for(milliseconds(900));
  EXPECT_EQ(h.closed_.load(), 0);
  EXPECT_EQ(h.received(), "bye");
  tunnel->resume();
  EXPECT_TRUE(eventually([&] { return h.received() == "bye held"; })) << h.received();
  // Then idle: closed.
  EXPECT_TRUE(eventually([&] { return h.closed_.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return server.connections() == 0; }));
  EXPECT_EQ(h.ended_.load(), 0);
}

TEST_F(ServerTest, APausedTunnelStopsReadingItsClientUntilResumed) {
  std::shared_ptr<Tunnel> tunnel;
  std::atomic<size_t> received{0};
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    tunnel = std::make_shared<Tunnel>();
    Tunnel* t = tunnel.get();
    tunnel->set_on_data([&received, t](std::string_view data) {
      received.fetch_add(data.size());
      t->pause();  // after each piece: what was read so far, no more
    });
    Response r;
    r.status = 101;
    r.headers.set("Upgrade", "tick");
    r.tunnel = tunnel;
    respond(std::move(r));
  });
  RawSocket s(server.port(), milliseconds(20000));
  ASSERT_TRUE(s.send(upgrade_to("tick")));
  ASSERT_TRUE(s.read_until("\r\n\r\n"));
  // More than the sockets' buffers hold: the sender blocks while the tunnel is paused.
  const size_t total = size_t{32} * 1024 * 1024;
  std::atomic<bool> sent{false};
  std::thread sender([&] { sent = s.send(std::string(total, 'p')); });
  ASSERT_TRUE(eventually([&] { return received.load() > 0; }));
  std::this_thread::sleep_for(milliseconds(200));
  const size_t while_paused = received.load();
  EXPECT_LE(while_paused, size_t{1024} * 1024);
  EXPECT_FALSE(sent.load());
  // Each resume lets one more piece through, until everything has come.
  for (int i = 0; i < 100000 && received.load() < total; ++i) {
    const size_t before = received.load();
    tunnel->resume();
    for (int j = 0; j < 1000 && received.load() == before; ++j) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  sender.join();
  EXPECT_TRUE(sent.load());
  EXPECT_EQ(received.load(), total);
}

TEST_F(ServerTest, ASwitchThatWasNotAskedForIs500AndItsTunnelIsClosed) {
  std::atomic<int> closed{0};
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    auto tunnel = std::make_shared<Tunnel>();
    tunnel->set_on_closed([&] { closed.fetch_add(1); });
    Response r;
    r.status = 101;
    r.headers.set("Upgrade", "tick");
    r.tunnel = std::move(tunnel);
    respond(std::move(r));
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(get("/plain")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_TRUE(eventually([&] { return closed.load() == 1; }));
  // An HTTP/1.0 request cannot switch: its Upgrade field is dropped.
  RawSocket s10(server.port());
  ASSERT_TRUE(s10.send("GET /tick HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: tick\r\n\r\n"));
  auto r10 = s10.read_response();
  ASSERT_TRUE(r10.has_value());
  EXPECT_EQ(r10->status, 500);
  EXPECT_TRUE(eventually([&] { return closed.load() == 2; }));
}

TEST_F(ServerTest, AHandlerThatDeclinesToSwitchAnswersOverHttp) {
  TunnelHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(upgrade_to("h2c")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 426);
  // The connection stays HTTP.
  ASSERT_TRUE(s.send(get("/again")));
  auto again = s.read_response();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 426);
}

TEST_F(ServerTest, ShutdownClosesOpenTunnelsAtItsDeadline) {
  TunnelHandler h;
  Server& server = start(local_options(), h.handler());
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(upgrade_to("tick") + "hello"));
  ASSERT_TRUE(s.read_until("echo:hello"));
  server.shutdown(milliseconds(200));
  EXPECT_EQ(h.closed_.load(), 1);
  EXPECT_TRUE(s.read_to_close(milliseconds(2000)));
  EXPECT_FALSE(h.tunnel(0)->out().write("late"));
}

TEST(ServerStartTest, FixedPortInUseFails) {
  Server a(local_options(2), hello());
  ASSERT_TRUE(a.start().has_value());
  ServerOptions o = local_options(2);
  o.port = a.port();
  Server b(o, hello());
  auto started = b.start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kUnavailable);
}

TEST(ServerStartTest, FixedPortIsUsed) {
  const uint16_t port = testing::unused_port();
  ServerOptions o = local_options(2);
  o.port = port;
  Server s(o, hello());
  ASSERT_TRUE(s.start().has_value());
  EXPECT_EQ(s.port(), port);
  RawSocket c(port);
  ASSERT_TRUE(c.send(get("/")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST(ServerStartTest, BadAddressIsInvalidArgument) {
  ServerOptions o = local_options(1);
  o.address = "not an address";
  Server s(o, hello());
  auto started = s.start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace prescale::http
