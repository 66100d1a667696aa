#include "http/tls.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/text_file.h"
#include "http/body_stream.h"
#include "http/client.h"
#include "http/server.h"
#include "http/test_util.h"
#include "http/tunnel.h"

namespace prescale::http {
namespace {

using std::chrono::milliseconds;
using testing::RawSocket;
using testing::TestCertificate;

std::string get(std::string_view target) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n\r\n";
}

std::string read_file(const std::string& path) { return read_text_file(path).value_or(""); }

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/tls_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    cert_ = testing::write_test_certificate(dir_, "first", "first.example");
  }
  void TearDown() override {
    if (server_) server_->shutdown(milliseconds(1000));
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<const TlsContext> load(const TestCertificate& c) {
    auto tls = TlsContext::load({c.cert_file, c.key_file});
    EXPECT_TRUE(tls.has_value()) << tls.error().to_string();
    return tls ? *tls : nullptr;
  }

  // A TLS server (two I/O threads) answering "<secure> <method> <target> <body size>".
  Server& start(ServerOptions o = {}) {
    o.address = "127.0.0.1";
    o.threads = 2;
    if (!o.tls) o.tls = load(cert_);
    o.on_tls_handshake_failed = [this] { handshake_failures_.fetch_add(1); };
    server_ = std::make_unique<Server>(std::move(o), [this](Request& req, Responder respond) {
      if (req.target == "/stream") {
        Response r;
        r.stream = std::make_shared<BodyStream>();
        {
          std::lock_guard lock(streams_mu_);
          streams_.push_back(r.stream);
        }
        respond(std::move(r));
        return;
      }
      if (req.target == "/tunnel") {
        // Echoes each piece; "bye" ends the server's side.
        auto tunnel = std::make_shared<Tunnel>();
        Tunnel* t = tunnel.get();
        tunnel->set_on_data([t](std::string_view data) {
          if (data == "bye") {
            t->out().end();
          } else {
            t->out().write(data);
          }
        });
        Response r;
        r.status = 101;
        r.headers.set("Upgrade", "tick");
        r.tunnel = std::move(tunnel);
        respond(std::move(r));
        return;
      }
      if (req.target == "/big") {
        respond(Response::text(200, std::string(300 * 1024, 'b')));
        return;
      }
      if (req.target == "/huge") {
        std::string body(16 * 1024 * 1024, 'h');
        for (size_t i = 0; i < body.size(); i += 4096)
          body[i] = static_cast<char>('a' + i / 4096 % 26);
        respond(Response::text(200, std::move(body)));
        return;
      }
      respond(Response::text(200, std::string(req.secure ? "secure " : "plain ") + req.method_name +
                                      " " + req.target + " " + std::to_string(req.body.size())));
    });
    auto started = server_->start();
    EXPECT_TRUE(started.has_value()) << started.error().to_string();
    return *server_;
  }

  std::string dir_;
  TestCertificate cert_;
  std::unique_ptr<Server> server_;
  std::atomic<int> handshake_failures_{0};
  std::mutex streams_mu_;
  std::vector<std::shared_ptr<BodyStream>> streams_;  // of GET /stream, in order

  // The n-th stream (0-based) once its request was handled; null after 5 s.
  std::shared_ptr<BodyStream> stream(size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(streams_mu_);
        if (streams_.size() > n) return streams_[n];
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return nullptr;
  }
};

TEST_F(TlsTest, LoadReadsTheCertificatesNameExpiryAndFingerprint) {
  auto tls = load(cert_);
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->subject(), "CN=first.example");
  const auto left = tls->not_after() - std::chrono::system_clock::now();
  EXPECT_GT(left, std::chrono::hours(24 * 29));
  EXPECT_LT(left, std::chrono::hours(24 * 31));
  EXPECT_EQ(tls->fingerprint().size(), 64u);
  const TestCertificate other = testing::write_test_certificate(dir_, "other");
  EXPECT_NE(load(other)->fingerprint(), tls->fingerprint());
}

TEST_F(TlsTest, LoadNamesTheFileAndWhatIsWrongWithIt) {
  auto missing = TlsContext::load({dir_ + "/nope.crt", cert_.key_file});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("nope.crt"), std::string::npos);

  write_file(dir_ + "/garbage.crt", "not a certificate\n");
  auto garbage = TlsContext::load({dir_ + "/garbage.crt", cert_.key_file});
  ASSERT_FALSE(garbage.has_value());
  EXPECT_EQ(garbage.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(garbage.error().message.find("garbage.crt: no PEM certificate"), std::string::npos)
      << garbage.error().message;

  auto no_key = TlsContext::load({cert_.cert_file, cert_.cert_file});
  ASSERT_FALSE(no_key.has_value());
  EXPECT_NE(no_key.error().message.find("first.crt: no PEM private key"), std::string::npos)
      << no_key.error().message;

  const TestCertificate other = testing::write_test_certificate(dir_, "other");
  auto mismatch = TlsContext::load({cert_.cert_file, other.key_file});
  ASSERT_FALSE(mismatch.has_value());
  EXPECT_NE(mismatch.error().message.find("other.key: the key is not the private key of " +
                                          cert_.cert_file),
            std::string::npos)
      << mismatch.error().message;

  auto empty = TlsContext::load({cert_.cert_file, ""});
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(TlsTest, AChainFileHoldsTheLeafThenItsIntermediates) {
  const TestCertificate other = testing::write_test_certificate(dir_, "other");
  write_file(dir_ + "/chain.crt", read_file(cert_.cert_file) + read_file(other.cert_file));
  auto chain = TlsContext::load({dir_ + "/chain.crt", cert_.key_file});
  ASSERT_TRUE(chain.has_value()) << chain.error().to_string();
  EXPECT_EQ((*chain)->subject(), "CN=first.example");

  write_file(dir_ + "/broken.crt",
             read_file(cert_.cert_file) +
                 "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  auto broken = TlsContext::load({dir_ + "/broken.crt", cert_.key_file});
  ASSERT_FALSE(broken.has_value());
  EXPECT_NE(broken.error().message.find("broken.crt: an intermediate certificate is malformed"),
            std::string::npos)
      << broken.error().message;
}

TEST_F(TlsTest, ServesHttpsAndMarksItsRequestsSecure) {
  Server& server = start();
  RawSocket s(server.port());
  std::string error;
  ASSERT_TRUE(s.start_tls(cert_.cert_file, &error, {"http/1.1"})) << error;
  EXPECT_EQ(s.alpn(), "http/1.1");
  EXPECT_EQ(s.tls_version(), "TLSv1.3");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.send(get("/n/" + std::to_string(i))));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "secure GET /n/" + std::to_string(i) + " 0");
  }
  EXPECT_EQ(handshake_failures_.load(), 0);
}

// `Connection: close` and an idle timeout end the stream with close_notify, so that a client
// can tell the end from a truncation.
TEST_F(TlsTest, TheServerEndsAConnectionWithCloseNotify) {
  ServerOptions o;
  o.idle_timeout = milliseconds(200);
  Server& server = start(o);
  RawSocket closing(server.port());
  ASSERT_TRUE(closing.start_tls(cert_.cert_file));
  ASSERT_TRUE(closing.send("GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  auto r = closing.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "secure GET /bye 0");
  EXPECT_TRUE(closing.tls_closed_cleanly());

  RawSocket idle(server.port());
  ASSERT_TRUE(idle.start_tls(cert_.cert_file));
  ASSERT_TRUE(idle.send(get("/idle")));
  ASSERT_TRUE(idle.read_response().has_value());
  EXPECT_TRUE(idle.tls_closed_cleanly());  // after the idle timeout
}

// A streamed body over TLS: each piece arrives as it is written, the connection serves the next
// request after a complete one, and an aborted one ends without close_notify, so that the client
// can tell the cut from an end.
TEST_F(TlsTest, AStreamedBodyArrivesAsWrittenAndItsAbortIsNoCleanEnd) {
  Server& server = start();
  RawSocket s(server.port());
  ASSERT_TRUE(s.start_tls(cert_.cert_file));
  ASSERT_TRUE(s.send(get("/stream")));
  auto first = stream(0);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->write("one"));
  ASSERT_TRUE(s.read_until("3\r\none\r\n"));
  ASSERT_TRUE(first->write(std::string(100 * 1024, 'x')));  // several records
  first->end();
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "one" + std::string(100 * 1024, 'x'));
  ASSERT_TRUE(s.send(get("/stream")));
  auto second = stream(1);
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(second->write("two"));
  ASSERT_TRUE(s.read_until("3\r\ntwo\r\n"));
  second->abort();
  EXPECT_FALSE(s.tls_closed_cleanly());
}

// A switched connection over TLS: bytes both ways across many records, and the server's end of its
// side is a clean one (close_notify).
TEST_F(TlsTest, ASwitchedConnectionCarriesBytesBothWaysAndEndsWithCloseNotify) {
  Server& server = start();
  RawSocket s(server.port());
  ASSERT_TRUE(s.start_tls(cert_.cert_file));
  ASSERT_TRUE(s.send(
      "GET /tunnel HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: tick\r\n\r\nearly"));
  ASSERT_TRUE(s.read_until("\r\n\r\nearly"));
  EXPECT_TRUE(s.pending().starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << s.pending();
  s.clear_pending();
  std::string big(100 * 1024, 'w');
  for (size_t i = 0; i < big.size(); i += 61) big[i] = static_cast<char>('a' + i % 23);
  ASSERT_TRUE(s.send(big));
  ASSERT_TRUE(s.read_until(big));  // echoed as the records were read: every byte, in order
  EXPECT_EQ(s.pending(), big);
  ASSERT_TRUE(s.send("bye"));
  EXPECT_TRUE(s.tls_closed_cleanly());
}

TEST_F(TlsTest, AClientOfferingH2IsAnsweredH2UnlessTheServerSpeaksOnlyHttp11) {
  Server& server = start();
  RawSocket h2(server.port());
  std::string error;
  ASSERT_TRUE(h2.start_tls(cert_.cert_file, &error, {"h2", "http/1.1"})) << error;
  EXPECT_EQ(h2.alpn(), "h2");
  // curl, a client not ours, over HTTP/2 and TLS: two requests on one connection.
  const std::string url = "https://localhost:" + std::to_string(server.port());
  const std::string cmd = "curl -s --http2 --cacert " + cert_.cert_file +
                          " -w ' %{http_version};' " + url + "/one " + url + "/two -d x 2>&1";
  const std::string out = testing::command_output(cmd);
  EXPECT_EQ(out, "secure POST /one 1 2;secure POST /two 1 2;");
  server.shutdown(milliseconds(1000));
  server_.reset();

  ServerOptions o;
  o.http2 = false;
  Server& plain = start(o);
  RawSocket both(plain.port());
  ASSERT_TRUE(both.start_tls(cert_.cert_file, &error, {"h2", "http/1.1"})) << error;
  EXPECT_EQ(both.alpn(), "http/1.1");
  RawSocket s(plain.port());
  ASSERT_TRUE(s.start_tls(cert_.cert_file, &error, {"h2"})) << error;
  EXPECT_EQ(s.alpn(), "");
  ASSERT_TRUE(s.send(get("/x")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "secure GET /x 0");
}

TEST_F(TlsTest, LargeBodiesBothWaysAndPipelinedRequestsCrossManyRecords) {
  Server& server = start();
  RawSocket s(server.port());
  std::string error;
  ASSERT_TRUE(s.start_tls(cert_.cert_file, &error)) << error;
  // 1 MiB up (64 records), 300 KiB down, then 20 requests in one write.
  const std::string body(1024 * 1024, 'u');
  ASSERT_TRUE(s.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  auto up = s.read_response();
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->body, "secure POST /up 1048576");
  ASSERT_TRUE(s.send(get("/big")));
  auto big = s.read_response();
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->body, std::string(300 * 1024, 'b'));
  std::string burst;
  for (int i = 0; i < 20; ++i) burst += get("/p/" + std::to_string(i));
  ASSERT_TRUE(s.send(burst));
  for (int i = 0; i < 20; ++i) {
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value()) << i;
    EXPECT_EQ(r->body, "secure GET /p/" + std::to_string(i) + " 0");
  }
}

// 16 MiB to a client that does not read at first: the server's writes wait for the socket, and
// the answer arrives whole and in order, then the next request on the connection.
TEST_F(TlsTest, AnAnswerLargerThanTheSocketTakesWaitsForTheClientAndArrivesWhole) {
  Server& server = start();
  // More than the kernel holds while the client does not read: the server's send buffer is at
  // most tcp_wmem's (4 MiB by default), and the client's receive buffer grows only as it reads.
  RawSocket s(server.port(), milliseconds(20000));
  ASSERT_TRUE(s.start_tls(cert_.cert_file));
  ASSERT_TRUE(s.send(get("/huge") + get("/after")));
  std::this_thread::sleep_for(milliseconds(300));  // the server's socket fills meanwhile
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->body.size(), 16u * 1024 * 1024);
  bool intact = true;
  for (size_t i = 0; i < r->body.size() && intact; i += 4096) {
    intact = r->body[i] == static_cast<char>('a' + i / 4096 % 26) && r->body[i + 1] == 'h';
  }
  EXPECT_TRUE(intact);
  auto after = s.read_response();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->body, "secure GET /after 0");
}

// A malformed request is answered 400 over TLS while the client goes on sending, then closed.
TEST_F(TlsTest, AMalformedRequestIsAnsweredThenTheConnectionClosed) {
  Server& server = start();
  RawSocket s(server.port());
  ASSERT_TRUE(s.start_tls(cert_.cert_file));
  ASSERT_TRUE(s.send("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n" +
                     std::string(64 * 1024, 'x')));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->header("Connection"), "close");
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
}

TEST_F(TlsTest, ExpectContinueIsAnsweredOverTls) {
  Server& server = start();
  RawSocket s(server.port());
  std::string error;
  ASSERT_TRUE(s.start_tls(cert_.cert_file, &error)) << error;
  ASSERT_TRUE(
      s.send("POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = s.read_response();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(s.send("hello"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "secure POST /c 5");
}

TEST_F(TlsTest, PlainHttpOnTheTlsPortIsClosedAndCountedAsAFailedHandshake) {
  Server& server = start();
  {
    RawSocket plain(server.port());
    ASSERT_TRUE(plain.send(get("/")));
    EXPECT_TRUE(plain.closed_within(milliseconds(2000)));
  }
  // A client that leaves before a word (a port check) is no failed handshake.
  { RawSocket probe(server.port()); }
  // A client that does not trust the certificate refuses it.
  const TestCertificate other = testing::write_test_certificate(dir_, "other");
  RawSocket wrong(server.port());
  EXPECT_FALSE(wrong.start_tls(other.cert_file));
  // The server serves on.
  RawSocket s(server.port());
  ASSERT_TRUE(s.start_tls(cert_.cert_file));
  ASSERT_TRUE(s.send(get("/after")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "secure GET /after 0");
  // The plain request and the refused certificate (the client's alert), not the probe.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (handshake_failures_.load() < 2 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(handshake_failures_.load(), 2);
}

TEST_F(TlsTest, AHandshakeNotFinishedInTheReadTimeoutIsClosed) {
  ServerOptions o;
  o.read_timeout = milliseconds(200);
  Server& server = start(o);
  RawSocket s(server.port());
  ASSERT_TRUE(s.send(std::string("\x16\x03\x01", 3)));  // the start of a ClientHello, no more
  EXPECT_TRUE(s.closed_within(milliseconds(3000)));
}

TEST_F(TlsTest, AReplacedCertificateServesNewConnectionsAndOpenOnesKeepTheirs) {
  Server& server = start();
  RawSocket before(server.port());
  ASSERT_TRUE(before.start_tls(cert_.cert_file));

  const TestCertificate renewed =
      testing::write_test_certificate(dir_, "renewed", "renewed.example");
  ASSERT_TRUE(server.replace_tls(load(renewed)).has_value());
  RawSocket after(server.port());
  std::string error;
  ASSERT_TRUE(after.start_tls(renewed.cert_file, &error)) << error;
  ASSERT_TRUE(after.send(get("/new")));
  auto r = after.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "secure GET /new 0");
  RawSocket stale(server.port());
  EXPECT_FALSE(stale.start_tls(cert_.cert_file));  // the old certificate is no longer offered

  ASSERT_TRUE(before.send(get("/old")));
  auto old = before.read_response();
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->body, "secure GET /old 0");

  EXPECT_FALSE(server.replace_tls(nullptr).has_value());
}

TEST_F(TlsTest, APlainServerRefusesACertificate) {
  Server plain(ServerOptions{}, [](Request&, Responder respond) { respond(Response{}); });
  auto r = plain.replace_tls(load(cert_));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(TlsTest, OverMaxConnectionsATlsClientIsClosedUnanswered) {
  ServerOptions o;
  o.max_connections = 1;
  std::atomic<int> rejected{0};
  o.on_rejected = [&](int status) {
    if (status == 503) rejected.fetch_add(1);
  };
  Server& server = start(o);
  RawSocket first(server.port());
  ASSERT_TRUE(first.start_tls(cert_.cert_file));
  RawSocket second(server.port());
  EXPECT_TRUE(second.closed_within(milliseconds(2000)));
  EXPECT_EQ(rejected.load(), 1);
  ASSERT_TRUE(first.send(get("/still")));
  auto r = first.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "secure GET /still 0");
}

// The client's side (ClientOptions::tls).

Request client_request(Method method, std::string target, std::string body = "") {
  Request req;
  req.method = method;
  req.method_name = method == Method::kPost ? "POST" : "GET";
  req.target = std::move(target);
  req.body = std::move(body);
  return req;
}

ClientOptions client_trusting(const std::string& ca_file) {
  ClientOptions o;
  auto tls = ClientTlsContext::create(ca_file);
  EXPECT_TRUE(tls.has_value()) << tls.error().to_string();
  if (tls) o.tls = *tls;
  return o;
}

TEST_F(TlsTest, AClientSpeaksHttpsToAServerItTrustsAndKeepsTheConnection) {
  Server& server = start();
  Client client(client_trusting(cert_.cert_file));
  for (const std::string host : {"127.0.0.1", "localhost"}) {  // by IP address, by name (SNI)
    auto r = client.request(host, server.port(), client_request(Method::kGet, "/a"));
    ASSERT_TRUE(r.has_value()) << host << ": " << r.error().to_string();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "secure GET /a 0");
  }
  // Kept: the next request to 127.0.0.1 goes on the connection of the first.
  auto again = client.request("127.0.0.1", server.port(), client_request(Method::kGet, "/b"));
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  EXPECT_EQ(again->body, "secure GET /b 0");
  EXPECT_EQ(client.stats().connections_opened, 2u);
  EXPECT_EQ(client.stats().reused, 1u);
  // Large bodies both ways cross many records and the socket's buffers.
  auto up = client.request("127.0.0.1", server.port(),
                           client_request(Method::kPost, "/up", std::string(3 << 20, 'u')));
  ASSERT_TRUE(up.has_value()) << up.error().to_string();
  EXPECT_EQ(up->body, "secure POST /up " + std::to_string(3 << 20));
  auto down = client.request("127.0.0.1", server.port(), client_request(Method::kGet, "/huge"));
  ASSERT_TRUE(down.has_value()) << down.error().to_string();
  ASSERT_EQ(down->body.size(), 16u << 20);
  EXPECT_EQ(down->body[4096 * 27], 'b');
  EXPECT_EQ(handshake_failures_.load(), 0);
}

TEST_F(TlsTest, AClientRefusesAServerItCannotVerifyAndSaysWhy) {
  Server& server = start();
  const TestCertificate other = testing::write_test_certificate(dir_, "other");
  Client stranger(client_trusting(other.cert_file));
  auto r = stranger.request("127.0.0.1", server.port(), client_request(Method::kGet, "/a"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("TLS handshake with 127.0.0.1:"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("certificate verify failed"), std::string::npos)
      << r.error().message;

  // A certificate that does not name the address the client asked for.
  ServerOptions o;
  o.address = "127.0.0.2";
  o.tls = load(cert_);
  Server elsewhere(o, [](Request&, Responder respond) { respond(Response::text(200, "x")); });
  ASSERT_TRUE(elsewhere.start().has_value());
  Client trusting(client_trusting(cert_.cert_file));
  auto mismatch =
      trusting.request("127.0.0.2", elsewhere.port(), client_request(Method::kGet, "/"));
  ASSERT_FALSE(mismatch.has_value());
  EXPECT_NE(mismatch.error().message.find("IP address mismatch"), std::string::npos)
      << mismatch.error().message;
  elsewhere.shutdown(milliseconds(0));

  // A certificate for another name: refused by name, by IP address.
  const TestCertificate foreign = testing::write_test_certificate(dir_, "foreign", "only.example",
                                                                  30, /*loopback_names=*/false);
  ServerOptions fo;
  fo.tls = load(foreign);
  Server foreign_server(fo, [](Request&, Responder respond) { respond(Response::text(200, "x")); });
  ASSERT_TRUE(foreign_server.start().has_value());
  Client trusting_foreign(client_trusting(foreign.cert_file));
  auto by_name = trusting_foreign.request("localhost", foreign_server.port(),
                                          client_request(Method::kGet, "/"));
  ASSERT_FALSE(by_name.has_value());
  EXPECT_NE(by_name.error().message.find("hostname mismatch"), std::string::npos)
      << by_name.error().message;
  auto by_ip = trusting_foreign.request("127.0.0.1", foreign_server.port(),
                                        client_request(Method::kGet, "/"));
  ASSERT_FALSE(by_ip.has_value());
  EXPECT_NE(by_ip.error().message.find("IP address mismatch"), std::string::npos)
      << by_ip.error().message;
  foreign_server.shutdown(milliseconds(0));

  // A plain HTTP server: the handshake fails at once, not at the timeout.
  Server plain(ServerOptions{}, [](Request&, Responder respond) { respond(Response{}); });
  ASSERT_TRUE(plain.start().has_value());
  auto not_tls = trusting.request("127.0.0.1", plain.port(), client_request(Method::kGet, "/"),
                                  milliseconds(10000));
  ASSERT_FALSE(not_tls.has_value());
  EXPECT_EQ(not_tls.error().code, ErrorCode::kUnavailable) << not_tls.error().message;
  EXPECT_NE(not_tls.error().message.find("TLS handshake with"), std::string::npos)
      << not_tls.error().message;
  plain.shutdown(milliseconds(0));
}

// A pooled connection the server ended (its idle timeout: close_notify, then FIN) is not reused:
// the next request goes on a new one and succeeds.
TEST_F(TlsTest, APooledConnectionTheServerEndedIsReplaced) {
  ServerOptions o;
  o.idle_timeout = milliseconds(200);
  Server& server = start(o);
  Client client(client_trusting(cert_.cert_file));
  auto first = client.request("127.0.0.1", server.port(), client_request(Method::kGet, "/1"));
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (server.connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(server.connections(), 0u) << "the server kept the idle connection";
  auto second = client.request("127.0.0.1", server.port(), client_request(Method::kGet, "/2"));
  ASSERT_TRUE(second.has_value()) << second.error().to_string();
  EXPECT_EQ(second->body, "secure GET /2 0");
  EXPECT_EQ(client.stats().connections_opened, 2u);
}

// An IPv6 address with a zone id (which names an interface of this machine) is checked against
// the certificate without it: the zone must not make the check be skipped.
TEST_F(TlsTest, AnIpv6AddressWithAZoneIsCheckedWithoutIt) {
  const TestCertificate foreign = testing::write_test_certificate(dir_, "foreign", "only.example",
                                                                  30, /*loopback_names=*/false);
  for (const bool named : {true, false}) {
    ServerOptions o;
    o.address = "::1";
    o.tls = load(named ? cert_ : foreign);
    Server v6(o, [](Request&, Responder respond) { respond(Response::text(200, "v6")); });
    if (!v6.start().has_value()) GTEST_SKIP() << "no IPv6 loopback here";
    Client client(client_trusting(named ? cert_.cert_file : foreign.cert_file));
    auto r = client.request("::1%lo", v6.port(), client_request(Method::kGet, "/"));
    if (named) {
      ASSERT_TRUE(r.has_value()) << r.error().to_string();
      EXPECT_EQ(r->body, "v6");
    } else {
      ASSERT_FALSE(r.has_value());
      EXPECT_NE(r.error().message.find("IP address mismatch"), std::string::npos)
          << r.error().message;
    }
    v6.shutdown(milliseconds(0));
  }
}

TEST_F(TlsTest, AHandshakeAServerNeverAnswersEndsAtTheTimeout) {
  // A listening socket nobody accepts from: the connection is made (the backlog), the
  // ClientHello never answered.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  Client client(client_trusting(cert_.cert_file));
  auto r = client.request("127.0.0.1", ntohs(addr.sin_port), client_request(Method::kGet, "/"),
                          milliseconds(300));
  ::close(fd);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_NE(r.error().message.find("TLS handshake with 127.0.0.1:"), std::string::npos)
      << r.error().message;
}

TEST(ClientTlsContextTest, TheCaFileMustHoldACertificate) {
  auto missing = ClientTlsContext::create("/nonexistent/ca.pem");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("/nonexistent/ca.pem"), std::string::npos);
  std::string pattern = ::testing::TempDir() + "/ca.XXXXXX";
  const int fd = mkstemp(pattern.data());
  ASSERT_GE(fd, 0);
  ::close(fd);
  write_file(pattern, "not a certificate\n");
  auto empty = ClientTlsContext::create(pattern);
  std::filesystem::remove(pattern);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(empty.error().message.find("no PEM certificate"), std::string::npos)
      << empty.error().message;
  EXPECT_TRUE(ClientTlsContext::create("").has_value());  // the system's CAs

  // A bundle whose second certificate is cut short: refused, not read in part.
  std::string dir = ::testing::TempDir() + "/ca_dir.XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const TestCertificate a = testing::write_test_certificate(dir, "a");
  const std::string first = read_file(a.cert_file);
  write_file(dir + "/bundle.pem",
             first + first.substr(0, first.size() / 2) + "\n-----END CERTIFICATE-----\n");
  auto cut = ClientTlsContext::create(dir + "/bundle.pem");
  ASSERT_FALSE(cut.has_value());
  EXPECT_NE(cut.error().message.find("certificate 2 is malformed"), std::string::npos)
      << cut.error().message;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prescale::http
