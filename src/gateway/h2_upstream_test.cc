// The proxy to HTTP/2 upstreams (ProxyRoute::upstream_http2; internal/h2_upstream.h): real
// servers on port 0, the upstream an http::Server taking HTTP/2 with prior knowledge.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/proxy.h"
#include "gateway/upstream_pool.h"
#include "http/body_stream.h"
#include "http/h2_test_client.h"
#include "http/request_body.h"
#include "http/server.h"
#include "http/test_util.h"

namespace prescale::gateway {
namespace {

using http::testing::H2Client;
using http::testing::RawSocket;
using std::chrono::milliseconds;
using Fields = std::vector<std::pair<std::string, std::string>>;

http::ServerOptions local() {
  http::ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  return o;
}

// A gateway with one route "r" to HTTP/2 upstreams at `ports`.
class H2Gateway {
 public:
  explicit H2Gateway(std::vector<uint16_t> ports, milliseconds per_try = milliseconds(0),
                     ProxyOptions options = {.connect_timeout = milliseconds(1000)},
                     http::ServerOptions server_options = local())
      : proxy_(std::move(options)) {
    std::vector<std::pair<std::string, uint16_t>> endpoints;
    for (uint16_t p : ports) endpoints.emplace_back("127.0.0.1", p);
    route_ = proxy_.add_route(
        ProxyRoute{.name = "r",
                   .service = "grpc",
                   .timeout = milliseconds(5000),
                   .per_try_timeout = per_try,
                   .upstream_http2 = true,
                   .selector = std::make_shared<RoundRobinSelector>(std::move(endpoints))});
    server_ = std::make_unique<http::Server>(server_options,
                                             [this](http::Request& req, http::Responder respond) {
                                               proxy_.forward(route_, req, std::move(respond));
                                             });
    auto started = server_->start();
    EXPECT_TRUE(started.has_value());
  }
  ~H2Gateway() { server_->shutdown(milliseconds(1000)); }
  uint16_t port() const { return server_->port(); }
  Proxy& proxy() { return proxy_; }

 private:
  Proxy proxy_;  // before the server: it must outlive it
  Proxy::RouteId route_ = 0;
  std::unique_ptr<http::Server> server_;
};

class Upstream {
 public:
  explicit Upstream(http::Handler handler) : server_(local(), std::move(handler)) {
    auto started = server_.start();
    EXPECT_TRUE(started.has_value());
  }
  ~Upstream() { server_.shutdown(milliseconds(500)); }
  uint16_t port() const { return server_.port(); }
  http::Server& server() { return server_; }

 private:
  http::Server server_;
};

// A unary gRPC-like answer: what the request was, in the body; the status in trailers.
http::Handler unary() {
  return [](http::Request& req, http::Responder respond) {
    http::Response r;
    r.headers.add("content-type", "application/grpc");
    r.body = req.method_name + " " + req.target +
             " host=" + std::string(req.headers.get("Host").value_or("-")) +
             " te=" + std::string(req.headers.get("te").value_or("-")) +
             " xff=" + std::string(req.headers.get("X-Forwarded-For").value_or("-")) + " " +
             req.body;
    r.trailers.add("grpc-status", "0");
    r.trailers.add("grpc-message", "fine");
    respond(std::move(r));
  };
}

// Bodies read as they come, at the gateway (as Gateway::request_body_streaming() has its server
// do for gRPC calls to HTTP/2 upstreams) and at the upstream.
http::ServerOptions streaming() {
  http::ServerOptions o = local();
  o.stream_request_body = [](const http::Request&) { return true; };
  return o;
}

// A bidirectional echo at the upstream: each piece of the request body back as it comes, then
// grpc-status 0; one the client cut gets grpc-status 1.
struct BidiEcho {
  std::shared_ptr<http::RequestBody> in;
  std::shared_ptr<http::BodyStream> out;
  std::atomic<int>* aborted = nullptr;

  static http::Handler handler(std::atomic<int>& aborted) {
    return [&aborted](http::Request& req, http::Responder respond) {
      auto echo = std::make_shared<BidiEcho>();
      echo->in = req.body_stream;
      echo->out = std::make_shared<http::BodyStream>();
      echo->aborted = &aborted;
      http::Response r;
      r.headers.add("content-type", "application/grpc");
      r.stream = echo->out;
      echo->out->set_on_over([echo](http::BodyEnd) { echo->in->set_on_readable(nullptr); });
      respond(std::move(r));
      echo->in->set_on_readable([weak = std::weak_ptr(echo)] {
        if (auto e = weak.lock()) e->pump();
      });
      echo->pump();
    };
  }
  void pump() {
    std::string piece;
    for (;;) {
      piece.clear();
      switch (in->read(piece)) {
        case http::RequestBody::Read::kData:
          out->write(piece);
          continue;
        case http::RequestBody::Read::kWait:
          return;
        case http::RequestBody::Read::kEnd: {
          http::Headers trailers;
          trailers.add("grpc-status", "0");
          out->end(std::move(trailers));
          return;
        }
        case http::RequestBody::Read::kAborted:
          aborted->fetch_add(1);
          out->abort();
          return;
      }
    }
  }
};

TEST(H2UpstreamTest, AStreamedRequestBodyGoesUpstreamPieceByPieceBothWays) {
  std::atomic<int> aborted{0};
  http::Server upstream(streaming(), BidiEcho::handler(aborted));
  ASSERT_TRUE(upstream.start().has_value());
  H2Gateway gw({upstream.port()}, milliseconds(0), {.connect_timeout = milliseconds(1000)},
               streaming());
  H2Client client(gw.port());
  const Fields grpc = {{"te", "trailers"}, {"content-type", "application/grpc"}};
  const int32_t id = client.submit_streaming("POST", "/pkg.Svc/Chat", grpc);
  // Each answer comes before the next message is sent: nothing waits for the body's end.
  for (const std::string message : {"one;", "two;", "three;"}) {
    const std::string before = client.reply(id).body;
    client.send_body(id, message);
    ASSERT_TRUE(client.run_until([&] { return client.reply(id).body == before + message; }))
        << message << " got " << client.reply(id).body;
  }
  EXPECT_FALSE(client.reply(id).closed);
  client.send_body(id, "", true);
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).body, "one;two;three;");
  EXPECT_EQ(client.reply(id).trailers, (Fields{{"grpc-status", "0"}}));
  EXPECT_FALSE(client.reply(id).reset);

  // A client that resets its call mid-stream: the upstream's stream is reset too.
  const int32_t cut = client.submit_streaming("POST", "/pkg.Svc/Chat", grpc);
  client.send_body(cut, "half");
  ASSERT_TRUE(client.run_until([&] { return client.reply(cut).body == "half"; }));
  client.cancel(cut);
  ASSERT_TRUE(client.run_until([&] { return aborted.load() == 1; }, milliseconds(5000)));
  upstream.shutdown(milliseconds(500));
}

// Retries at once (the gateway's selectors back off first): a retry's stream is opened before
// the stream it replaces is closed.
struct RetryAtOnce final : UpstreamSelector {
  explicit RetryAtOnce(std::vector<std::pair<std::string, uint16_t>> endpoints)
      : round_robin(std::move(endpoints)) {}
  UpstreamSelection select(const http::Request& req, int attempt,
                           const UpstreamPick* previous) override {
    return round_robin.select(req, attempt, previous);
  }
  RetryDecision retry(const http::Request&, const AttemptReport& report) override {
    return RetryDecision{.retry = report.attempt == 0};
  }
  RoundRobinSelector round_robin;
};

// The first attempt's stream, silent past the try timeout, is retried before any of the body was
// read; the stream it replaces, closed after the retry began, must not take the retry's wake-up
// with it (it did: the retry never got the body).
TEST(H2UpstreamTest, AStreamedBodyNotYetReadGoesToTheRetry) {
  std::atomic<int> aborted{0};
  std::atomic<int> calls{0};
  std::mutex mu;
  std::vector<http::Responder> silent;
  const http::Handler echo = BidiEcho::handler(aborted);
  http::Server upstream(streaming(), [&](http::Request& req, http::Responder respond) {
    if (calls.fetch_add(1) == 0) {
      std::lock_guard lock(mu);
      silent.push_back(std::move(respond));
      return;
    }
    echo(req, std::move(respond));
  });
  ASSERT_TRUE(upstream.start().has_value());
  Proxy proxy(ProxyOptions{.connect_timeout = milliseconds(1000)});
  const Proxy::RouteId route = proxy.add_route(ProxyRoute{
      .name = "r",
      .service = "grpc",
      .timeout = milliseconds(5000),
      .per_try_timeout = milliseconds(300),
      .upstream_http2 = true,
      .selector = std::make_shared<RetryAtOnce>(
          std::vector<std::pair<std::string, uint16_t>>{{"127.0.0.1", upstream.port()}})});
  http::Server gw(streaming(), [&](http::Request& req, http::Responder respond) {
    proxy.forward(route, req, std::move(respond));
  });
  ASSERT_TRUE(gw.start().has_value());
  H2Client client(gw.port());
  const int32_t id = client.submit_streaming(
      "POST", "/pkg.Svc/Chat", {{"te", "trailers"}, {"content-type", "application/grpc"}});
  ASSERT_TRUE(client.run_until([&] { return client.reply(id).status != 0; }));
  EXPECT_EQ(client.reply(id).status, 200);
  EXPECT_EQ(calls.load(), 2);
  client.send_body(id, "one;");
  ASSERT_TRUE(client.run_until([&] { return client.reply(id).body == "one;"; }, milliseconds(3000)))
      << client.reply(id).body;
  client.send_body(id, "", true);
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).trailers, (Fields{{"grpc-status", "0"}}));
  gw.shutdown(milliseconds(300));
  upstream.shutdown(milliseconds(300));
}

TEST(H2UpstreamTest, RequestsAndTrailersPassEndToEndOverOneUpstreamConnection) {
  Upstream up(unary());
  H2Gateway gw({up.port()});
  H2Client client(gw.port());
  ASSERT_TRUE(client.connected());
  std::vector<int32_t> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(client.submit("POST", "/pkg.Svc/Call?i=" + std::to_string(i),
                                {{"te", "trailers"}, {"content-type", "application/grpc"}},
                                "msg" + std::to_string(i)));
  }
  ASSERT_TRUE(client.finish(ids));
  for (int i = 0; i < 20; ++i) {
    const auto& r = client.reply(ids[static_cast<size_t>(i)]);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "POST /pkg.Svc/Call?i=" + std::to_string(i) +
                          " host=localhost te=trailers xff=127.0.0.1 msg" + std::to_string(i));
    EXPECT_EQ(r.header("content-type"), "application/grpc");
    EXPECT_EQ(r.trailers, (Fields{{"grpc-status", "0"}, {"grpc-message", "fine"}}));
    EXPECT_FALSE(r.reset);
  }
  // Every stream went over the connections the pool opened: one, as it takes 100 streams.
  EXPECT_EQ(up.server().connections(), 1u);
  EXPECT_EQ(gw.proxy().stats().connections_opened, 1u);
  const int32_t more = client.submit("GET", "/again");
  ASSERT_TRUE(client.finish({more}));
  EXPECT_EQ(client.reply(more).status, 200);
  EXPECT_GE(gw.proxy().stats().reused, 1u);  // the open connection's
  EXPECT_EQ(up.server().connections(), 1u);
}

TEST(H2UpstreamTest, AnHttp1ClientGetsTheTrailersInAChunkedBody) {
  Upstream up(unary());
  H2Gateway gw({up.port()});
  RawSocket s(gw.port());
  ASSERT_TRUE(s.send("GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n"));
  ASSERT_TRUE(s.read_until("0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\n\r\n")) << s.pending();
  EXPECT_NE(s.pending().find("Transfer-Encoding: chunked"), std::string::npos) << s.pending();
  EXPECT_NE(s.pending().find("GET /x host=example.test te=trailers"), std::string::npos)
      << s.pending();
}

TEST(H2UpstreamTest, AStreamedAnswerIsRelayedAsItComesAndEndsWithItsTrailers) {
  std::mutex mu;
  std::shared_ptr<http::BodyStream> upstream_stream;
  Upstream up([&](http::Request&, http::Responder respond) {
    auto stream = std::make_shared<http::BodyStream>();
    {
      std::lock_guard lock(mu);
      upstream_stream = stream;
    }
    http::Response r;
    r.headers.add("content-type", "application/grpc");
    r.body = "first;";
    r.stream = stream;
    respond(std::move(r));
  });
  H2Gateway gw({up.port()});
  H2Client client(gw.port());
  const int32_t id = client.submit("POST", "/pkg.Svc/Watch", {{"te", "trailers"}}, "q");
  ASSERT_TRUE(client.run_until([&] { return client.reply(id).body == "first;"; }));
  EXPECT_FALSE(client.reply(id).closed);
  std::shared_ptr<http::BodyStream> s;
  {
    std::lock_guard lock(mu);
    s = upstream_stream;
  }
  ASSERT_NE(s, nullptr);
  std::thread([&] { s->write("second;"); }).join();
  ASSERT_TRUE(client.run_until([&] { return client.reply(id).body == "first;second;"; }));
  // A large piece passes the upstream's flow control (1 MiB a stream) as the client reads it.
  const std::string big(3 << 20, 'x');
  std::thread([&] {
    s->write(big);
    http::Headers trailers;
    trailers.add("grpc-status", "13");
    trailers.add("grpc-message", "failed late");
    s->end(std::move(trailers));
  }).join();
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).body, "first;second;" + big);
  EXPECT_EQ(client.reply(id).trailers,
            (Fields{{"grpc-status", "13"}, {"grpc-message", "failed late"}}));
  EXPECT_FALSE(client.reply(id).reset);
}

// A gRPC unary answer: no Content-Length, and its head, message and trailers in one burst.
TEST(H2UpstreamTest, AnAnswerWhoseHeadBodyAndTrailersComeTogetherIsRelayedWhole) {
  Upstream up([&](http::Request&, http::Responder respond) {
    auto stream = std::make_shared<http::BodyStream>();
    stream->write("message");
    http::Headers trailers;
    trailers.add("grpc-status", "0");
    stream->end(std::move(trailers));
    http::Response r;
    r.headers.add("content-type", "application/grpc");
    r.stream = stream;
    respond(std::move(r));
  });
  H2Gateway gw({up.port()});
  H2Client client(gw.port());
  std::vector<int32_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(client.submit("POST", "/pkg.Svc/Unary", {}, "q"));
  ASSERT_TRUE(client.finish(ids));
  for (int32_t id : ids) {
    EXPECT_EQ(client.reply(id).status, 200);
    EXPECT_EQ(client.reply(id).body, "message");
    EXPECT_EQ(client.reply(id).trailers, (Fields{{"grpc-status", "0"}}));
    EXPECT_FALSE(client.reply(id).reset) << client.reply(id).reset_code;
  }
}

TEST(H2UpstreamTest, AnUpstreamThatAbortsItsStreamCutsTheClientsStream) {
  Upstream up([&](http::Request&, http::Responder respond) {
    auto stream = std::make_shared<http::BodyStream>();
    http::Response r;
    r.body = "partial";
    r.stream = stream;
    respond(std::move(r));
    std::thread([stream] {
      std::this_thread::sleep_for(milliseconds(50));
      stream->abort();
    }).detach();
  });
  H2Gateway gw({up.port()});
  H2Client client(gw.port());
  const int32_t id = client.submit("GET", "/cut");
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).body, "partial");
  EXPECT_TRUE(client.reply(id).reset);  // a cut, not an end
  EXPECT_TRUE(client.reply(id).trailers.empty());
}

TEST(H2UpstreamTest, NoAnswerWithinTheTryTimeoutIs504AndTheConnectionServesOn) {
  std::atomic<int> calls{0};
  std::vector<http::Responder> held;
  std::mutex mu;
  Upstream up([&](http::Request& req, http::Responder respond) {
    calls++;
    if (req.path == "/slow") {
      std::lock_guard lock(mu);
      held.push_back(std::move(respond));
      return;
    }
    respond(http::Response::text(200, "quick"));
  });
  H2Gateway gw({up.port()}, /*per_try=*/milliseconds(300));
  H2Client client(gw.port());
  const int32_t slow = client.submit("GET", "/slow");
  ASSERT_TRUE(client.finish({slow}));
  EXPECT_EQ(client.reply(slow).status, 504);
  EXPECT_NE(client.reply(slow).body.find("upstream_timeout"), std::string::npos)
      << client.reply(slow).body;
  const int32_t quick = client.submit("GET", "/quick");
  ASSERT_TRUE(client.finish({quick}));
  EXPECT_EQ(client.reply(quick).body, "quick");
  EXPECT_EQ(gw.proxy().stats().connections_opened, 1u);  // the timeout reset a stream only
  std::lock_guard lock(mu);
  for (auto& r : held) r(http::Response::text(200, "late"));
}

TEST(H2UpstreamTest, AnUpstreamThatIsDownIs503AndOneThatLeavesFailsItsStreams) {
  // Nothing listens on a port just released.
  uint16_t closed_port = 0;
  {
    Upstream gone(unary());
    closed_port = gone.port();
  }
  {
    H2Gateway gw({closed_port});
    H2Client client(gw.port());
    const int32_t id = client.submit("GET", "/x");
    ASSERT_TRUE(client.finish({id}));
    EXPECT_EQ(client.reply(id).status, 503);
    EXPECT_NE(client.reply(id).body.find("upstream_unavailable"), std::string::npos)
        << client.reply(id).body;
  }
  // An upstream that closes its connection with a request in flight: 502.
  std::vector<http::Responder> held;
  std::mutex mu;
  auto up = std::make_unique<Upstream>([&](http::Request&, http::Responder respond) {
    std::lock_guard lock(mu);
    held.push_back(std::move(respond));
  });
  H2Gateway gw({up->port()});
  H2Client client(gw.port());
  const int32_t id = client.submit("POST", "/x", {}, "body");
  ASSERT_TRUE(client.run_until([&] {
    std::lock_guard lock(mu);
    return !held.empty();
  }));
  std::thread([&] { up->server().shutdown(milliseconds(0)); }).join();
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).status, 502);
  std::lock_guard lock(mu);
  held.clear();
}

TEST(H2UpstreamTest, AnIdleUpstreamConnectionIsClosedAfterTheIdleTimeout) {
  Upstream up(unary());
  H2Gateway gw(
      {up.port()}, milliseconds(0),
      ProxyOptions{.connect_timeout = milliseconds(1000), .idle_timeout = milliseconds(200)});
  H2Client client(gw.port());
  const int32_t id = client.submit("GET", "/x");
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(gw.proxy().stats().idle_connections, 1u);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < until && up.server().connections() > 0) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(up.server().connections(), 0u);
  EXPECT_EQ(gw.proxy().stats().idle_connections, 0u);
  // The next request opens a new one.
  const int32_t again = client.submit("GET", "/y");
  ASSERT_TRUE(client.finish({again}));
  EXPECT_EQ(client.reply(again).status, 200);
  EXPECT_EQ(gw.proxy().stats().connections_opened, 2u);
}

// The pool driven directly: an exchange whose streamed body nobody reads.
class UnreadStream final : public Exchange {
 public:
  bool done = false;
  bool ended = false;

 private:
  void on_complete() override { done = true; }
  bool stream_body(const http::Response&) override { return true; }
  void on_stream_end(bool) override { ended = true; }
};

// Bytes held back from the upstream while a client reads slowly go back to the connection's
// window when the stream ends: responses of almost a stream window each (1 MiB), all held
// unread, well past the connection's 16 MiB window in all, and the connection still serves.
TEST(H2UpstreamTest, BytesHeldForASlowReaderAreGivenBackWhenItsStreamEnds) {
  const std::string body((1 << 20) - 4096, 'x');
  Upstream up([&](http::Request&, http::Responder respond) {
    auto stream = std::make_shared<http::BodyStream>();
    stream->write(body);
    stream->end();
    http::Response r;
    r.stream = stream;
    respond(std::move(r));
  });
  boost::asio::io_context io;
  UpstreamPool pool(io, UpstreamPoolOptions{});
  auto drive = [&](const std::function<bool()>& done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < until) {
      io.run_one_for(milliseconds(5));
      if (io.stopped()) io.restart();
    }
    return done();
  };
  std::vector<std::unique_ptr<UnreadStream>> unread;
  for (int i = 0; i < 24; ++i) {
    auto ex = std::make_unique<UnreadStream>();
    ex->head = "GET /big HTTP/1.1\r\nHost: u\r\n\r\n";
    ex->http2 = true;
    ex->deadline = Clock::real().now() + std::chrono::seconds(10);
    ASSERT_TRUE(pool.start("127.0.0.1", up.port(), *ex));
    UnreadStream& e = *ex;
    ASSERT_TRUE(drive([&] { return e.ended; })) << "stream " << i;
    ASSERT_EQ(e.error, ExchangeError::kNone) << e.detail;
    unread.push_back(std::move(ex));
  }
  EXPECT_EQ(pool.stats().connections_opened, 1u);
  pool.stop();
}

}  // namespace
}  // namespace prescale::gateway
