// http::Server speaking HTTP/2 (http/internal/h2_session.h), driven by a client on libnghttp2
// (h2_test_client.h) with prior knowledge.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "http/body_stream.h"
#include "http/h2_test_client.h"
#include "http/request_body.h"
#include "http/server.h"
#include "http/test_util.h"
#include "http/tunnel.h"

namespace prescale::http {
namespace {

using std::chrono::milliseconds;
using testing::H2Client;

constexpr uint32_t kNoError = 0;
constexpr uint32_t kInternalError = 2;
constexpr uint32_t kRefusedStream = 7;
constexpr uint32_t kCancel = 8;

ServerOptions local_options() {
  ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  return o;
}

// Requests whose answers a test gives later, from its own thread.
struct Held {
  std::mutex mu;
  std::vector<Responder> responders;
  std::vector<std::string> paths;

  size_t size() {
    std::lock_guard lock(mu);
    return responders.size();
  }
  Responder take(size_t i) {
    std::lock_guard lock(mu);
    return std::exchange(responders.at(i), Responder());
  }
};

class H2Test : public ::testing::Test {
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

TEST_F(H2Test, APriorKnowledgeClientIsAnsweredOverHttp2) {
  Server& server = start(local_options(), [](Request& req, Responder respond) {
    Response r = Response::text(200, req.method_name + " " + req.path + " " + req.query + " " +
                                         std::string(req.headers.get("Host").value_or("-")) + " " +
                                         std::string(req.headers.get("Cookie").value_or("-")) +
                                         " " + req.body);
    r.headers.add("X-Reply", "yes");
    r.headers.add("Connection", "keep-alive");  // no place in HTTP/2: dropped
    respond(std::move(r));
  });
  H2Client client(server.port());
  ASSERT_TRUE(client.connected());
  const int32_t get = client.submit("GET", "/a/b?x=1", {{"cookie", "a=1"}, {"cookie", "b=2"}});
  const int32_t post = client.submit("POST", "/p", {}, "payload");
  ASSERT_TRUE(client.finish({get, post}));
  const auto& g = client.reply(get);
  EXPECT_EQ(g.status, 200);
  EXPECT_EQ(g.body, "GET /a/b x=1 localhost a=1; b=2 ");
  EXPECT_EQ(g.header("x-reply"), "yes");
  EXPECT_EQ(g.header("server"), "prescale");
  EXPECT_TRUE(g.header("date").has_value());
  EXPECT_EQ(g.header("content-length"), std::to_string(g.body.size()));
  EXPECT_EQ(g.header("connection"), std::nullopt);
  EXPECT_FALSE(g.reset);
  EXPECT_EQ(client.reply(post).body, "POST /p  localhost - payload");
  EXPECT_EQ(server.connections(), 1u);
}

TEST_F(H2Test, StreamsOnOneConnectionAreAnsweredInAnyOrder) {
  Held held;
  Server& server = start(local_options(), [&](Request& req, Responder respond) {
    if (req.path == "/slow") {
      std::lock_guard lock(held.mu);
      held.responders.push_back(std::move(respond));
      return;
    }
    respond(Response::text(200, "fast"));
  });
  H2Client client(server.port());
  const int32_t slow = client.submit("GET", "/slow");
  const int32_t fast = client.submit("GET", "/fast");
  ASSERT_TRUE(client.finish({fast}));
  EXPECT_EQ(client.reply(fast).body, "fast");
  EXPECT_FALSE(client.reply(slow).closed);
  EXPECT_EQ(server.inflight(), 1u);
  ASSERT_EQ(held.size(), 1u);
  std::thread([r = held.take(0)] { r(Response::text(200, "slow")); }).join();
  ASSERT_TRUE(client.finish({slow}));
  EXPECT_EQ(client.reply(slow).body, "slow");
  EXPECT_EQ(server.inflight(), 0u);
  EXPECT_EQ(server.connections(), 1u);
}

TEST_F(H2Test, BodiesLargerThanTheFlowControlWindowsGoBothWays) {
  ServerOptions o = local_options();
  o.max_body_bytes = 8 << 20;
  Server& server = start(o, [](Request& req, Responder respond) {
    std::string body(5 << 20, 'r');
    body += std::to_string(req.body.size());
    respond(Response::text(200, std::move(body)));
  });
  H2Client client(server.port(), 65535);  // the smallest window: many WINDOW_UPDATEs
  std::string upload(3 << 20, 'u');
  const int32_t id = client.submit("POST", "/up", {}, upload);
  ASSERT_TRUE(client.finish({id}, std::chrono::seconds(30)));
  const auto& r = client.reply(id);
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(r.body.size(), (5u << 20) + 7);
  EXPECT_EQ(r.body.substr(5 << 20), std::to_string(3 << 20));
}

TEST_F(H2Test, AStreamedBodyGoesOutAsProducedAndItsAbortResetsTheStream) {
  std::mutex mu;
  std::vector<std::shared_ptr<BodyStream>> streams;
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    auto stream = std::make_shared<BodyStream>();
    {
      std::lock_guard lock(mu);
      streams.push_back(stream);
    }
    Response r;
    r.body = "first;";
    r.stream = stream;
    respond(std::move(r));
  });
  H2Client client(server.port());
  const int32_t ok = client.submit("GET", "/ok");
  const int32_t cut = client.submit("GET", "/cut");
  ASSERT_TRUE(client.run_until(
      [&] { return client.reply(ok).body == "first;" && client.reply(cut).body == "first;"; }));
  std::vector<std::shared_ptr<BodyStream>> s;
  {
    std::lock_guard lock(mu);
    s = streams;
  }
  ASSERT_EQ(s.size(), 2u);
  std::thread([&] {
    s[0]->write("second;");
    s[1]->write("partial");
  }).join();
  ASSERT_TRUE(client.run_until([&] {
    return client.reply(ok).body == "first;second;" && client.reply(cut).body == "first;partial";
  }));
  EXPECT_FALSE(client.reply(ok).closed);  // the body goes on
  std::thread([&] {
    s[0]->write("last");
    s[0]->end();
    s[1]->abort();
  }).join();
  ASSERT_TRUE(client.finish({ok, cut}));
  EXPECT_EQ(client.reply(ok).body, "first;second;last");
  EXPECT_FALSE(client.reply(ok).reset);
  EXPECT_EQ(client.reply(ok).header("content-length"), std::nullopt);
  EXPECT_TRUE(client.reply(cut).reset);
  EXPECT_EQ(client.reply(cut).reset_code, kInternalError);
}

// Reads a streamed request body as it arrives and sends each piece straight back in the
// response's body: a bidirectional stream, as a gRPC echo's.
struct StreamEcho {
  std::shared_ptr<RequestBody> in;
  std::shared_ptr<BodyStream> out;

  static void start(const std::shared_ptr<RequestBody>& in, Responder respond) {
    auto echo = std::make_shared<StreamEcho>();
    echo->in = in;
    echo->out = std::make_shared<BodyStream>();
    Response r;
    r.stream = echo->out;
    respond(std::move(r));
    in->set_on_readable([weak = std::weak_ptr(echo)] {
      if (auto e = weak.lock()) e->pump();
    });
    echo->pump();
    // Kept by the callbacks until the body is over.
    echo->out->set_on_over([echo](BodyEnd) { echo->in->set_on_readable(nullptr); });
  }
  void pump() {
    std::string piece;
    for (;;) {
      piece.clear();
      switch (in->read(piece)) {
        case RequestBody::Read::kData:
          out->write(piece);
          continue;
        case RequestBody::Read::kWait:
          return;
        case RequestBody::Read::kEnd:
          out->end();
          return;
        case RequestBody::Read::kAborted:
          out->abort();
          return;
      }
    }
  }
};

// The server's stream window: what a streamed body may have unread.
constexpr size_t kWindow = size_t{1} << 20;

ServerOptions streaming_options(std::string path) {
  ServerOptions o = local_options();
  o.stream_request_body = [path = std::move(path)](const Request& r) { return r.path == path; };
  return o;
}

TEST_F(H2Test, AStreamedRequestBodyReachesTheHandlerPieceByPieceBeforeItsEnd) {
  Server& server = start(streaming_options("/echo"), [](Request& req, Responder respond) {
    if (req.body_stream == nullptr) {
      respond(Response::text(200, "whole:" + req.body));
      return;
    }
    StreamEcho::start(req.body_stream, std::move(respond));
  });
  H2Client client(server.port());
  const int32_t id = client.submit_streaming("POST", "/echo");
  client.send_body(id, "ping1;");
  // The answer to the first piece comes while the body goes on.
  ASSERT_TRUE(client.run_until([&] { return client.reply(id).body == "ping1;"; }));
  EXPECT_EQ(client.reply(id).status, 200);
  EXPECT_FALSE(client.reply(id).closed);
  client.send_body(id, "ping2;");
  ASSERT_TRUE(client.run_until([&] { return client.reply(id).body == "ping1;ping2;"; }));
  client.send_body(id, "last", true);
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).body, "ping1;ping2;last");
  EXPECT_FALSE(client.reply(id).reset);

  // Another path, a body-less request, and HTTP/1.1 are read whole, as without the option.
  const int32_t other = client.submit("POST", "/other", {}, "abc");
  const int32_t get = client.submit("GET", "/echo");
  ASSERT_TRUE(client.finish({other, get}));
  EXPECT_EQ(client.reply(other).body, "whole:abc");
  EXPECT_EQ(client.reply(get).body, "whole:");
  testing::RawSocket s(server.port());
  ASSERT_TRUE(s.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "whole:xyz");
}

// Streamed bodies the test reads itself, from its own thread.
struct HeldBodies {
  std::mutex mu;
  std::vector<std::shared_ptr<RequestBody>> bodies;
  std::vector<Responder> responders;

  Handler handler() {
    return [this](Request& req, Responder respond) {
      if (req.body_stream == nullptr) {
        respond(Response::text(200, "whole " + std::to_string(req.body.size())));
        return;
      }
      std::lock_guard lock(mu);
      bodies.push_back(req.body_stream);
      responders.push_back(std::move(respond));
    };
  }
  std::shared_ptr<RequestBody> body(size_t i) {
    std::lock_guard lock(mu);
    return i < bodies.size() ? bodies[i] : nullptr;
  }
  Responder take(size_t i) {
    std::lock_guard lock(mu);
    return std::exchange(responders.at(i), Responder());
  }
};

TEST_F(H2Test, AStreamedBodyThatIsNotReadHoldsItsClientBackAtTheStreamWindow) {
  HeldBodies held;
  Server& server = start(streaming_options("/up"), held.handler());
  H2Client client(server.port());
  const std::string mib(kWindow, 'x');
  const int32_t id = client.submit_streaming("POST", "/up");
  client.send_body(id, mib + mib + mib);
  ASSERT_TRUE(
      client.run_until([&] { return held.body(0) && held.body(0)->received() == kWindow; }));
  // Nothing reopens the window while the handler reads nothing.
  client.run_until([] { return false; }, milliseconds(200));
  EXPECT_EQ(client.body_sent(id), kWindow);
  EXPECT_EQ(held.body(0)->received(), kWindow);

  // Reading lets the rest come.
  size_t read = 0;
  std::string piece;
  ASSERT_TRUE(client.run_until([&] {
    piece.clear();
    if (held.body(0)->read(piece) == RequestBody::Read::kData) read += piece.size();
    return read == 3 * kWindow;
  }));
  EXPECT_EQ(client.body_sent(id), 3 * kWindow);
  piece.clear();
  EXPECT_EQ(held.body(0)->read(piece), RequestBody::Read::kWait);
  client.send_body(id, "", true);
  ASSERT_TRUE(client.run_until([&] {
    piece.clear();
    return held.body(0)->read(piece) == RequestBody::Read::kEnd;
  }));
  held.take(0)(Response::text(200, "took " + std::to_string(read)));
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).body, "took 3145728");
}

TEST_F(H2Test, AnAnswerBeforeTheStreamedBodyEndsResetsTheRestAndFreesItsWindow) {
  HeldBodies held;
  Server& server = start(streaming_options("/up"), held.handler());
  H2Client client(server.port());
  const std::string mib(kWindow, 'x');
  // Each stream leaves a window's worth unread: 20 of them are more than the connection's
  // window (16 MiB), which must come back as each stream ends.
  for (size_t i = 0; i < 20; ++i) {
    const int32_t id = client.submit_streaming("POST", "/up");
    client.send_body(id, mib + "more");
    ASSERT_TRUE(client.run_until([&] {
      return held.body(i) && held.body(i)->received() == kWindow;
    })) << "stream "
        << i;
    held.take(i)(Response::text(200, "enough"));
    ASSERT_TRUE(client.finish({id})) << "stream " << i;
    EXPECT_EQ(client.reply(id).body, "enough");
    // RFC 9113 section 8.1: the answer is complete, the client may stop sending.
    EXPECT_TRUE(client.reply(id).reset);
    EXPECT_EQ(client.reply(id).reset_code, kNoError);
    std::string piece;
    EXPECT_EQ(held.body(i)->read(piece), RequestBody::Read::kData);  // what came is still there
    EXPECT_EQ(piece.size(), kWindow);
    EXPECT_EQ(held.body(i)->read(piece), RequestBody::Read::kAborted);
  }
  // The connection's window is open: a body read whole gets through.
  const int32_t whole = client.submit("POST", "/whole", {}, mib + mib);
  ASSERT_TRUE(client.finish({whole}));
  EXPECT_EQ(client.reply(whole).body, "whole 2097152");
}

// Bodies held unread take the connection's window no longer than they arrive (held back, past
// half the window no WINDOW_UPDATE ever came again: 9 MiB unread stalled every later request of
// the connection); the connection's body budget (16 MiB) bounds what they hold.
TEST_F(H2Test, StreamedBodiesHeldUnreadDoNotStallTheConnectionAndAreBounded) {
  HeldBodies held;
  Server& server = start(streaming_options("/up"), held.handler());
  H2Client client(server.port());
  const std::string mib(kWindow, 'x');
  std::vector<int32_t> open;
  for (size_t i = 0; i < 9; ++i) {
    open.push_back(client.submit_streaming("POST", "/up"));
    client.send_body(open.back(), mib);
  }
  ASSERT_TRUE(client.run_until([&] {
    for (size_t i = 0; i < 9; ++i) {
      if (!held.body(i) || held.body(i)->received() != kWindow) return false;
    }
    return true;
  }));
  for (int i = 0; i < 3; ++i) {
    const int32_t whole = client.submit("POST", "/whole", {}, mib + mib + mib);
    ASSERT_TRUE(client.finish({whole})) << i;
    EXPECT_EQ(client.reply(whole).body, "whole 3145728");
  }
  // Up to the budget: 16 MiB unread in all; the stream whose bytes would go past it (whichever
  // comes last) is reset (ENHANCE_YOUR_CALM: gRPC's RESOURCE_EXHAUSTED), its reader told.
  for (size_t i = 9; i < 17; ++i) {
    open.push_back(client.submit_streaming("POST", "/up"));
    client.send_body(open.back(), mib);
  }
  std::optional<size_t> cut;
  ASSERT_TRUE(client.run_until([&] {
    for (size_t i = 9; i < 17; ++i) {
      if (client.reply(open[i]).reset) cut = i;
    }
    return cut.has_value();
  }));
  EXPECT_EQ(client.reply(open[*cut]).reset_code, 11u);
  ASSERT_TRUE(client.run_until([&] {
    for (size_t i = 0; i < 17; ++i) {
      if (i != *cut && (!held.body(i) || held.body(i)->received() != kWindow)) return false;
    }
    return true;
  }));
  std::string piece;
  ASSERT_TRUE(client.run_until([&] {
    piece.clear();
    return held.body(*cut) && held.body(*cut)->read(piece) == RequestBody::Read::kAborted;
  }));
  // Read, the bodies leave the budget: a new stream is taken again.
  for (size_t i = 0; i < 17; ++i) {
    piece.clear();
    if (i == *cut) continue;
    EXPECT_EQ(held.body(i)->read(piece), RequestBody::Read::kData) << i;
  }
  const int32_t again = client.submit_streaming("POST", "/up");
  client.send_body(again, mib);
  ASSERT_TRUE(
      client.run_until([&] { return held.body(17) && held.body(17)->received() == kWindow; }));
  for (size_t i = 0; i < 18; ++i) held.take(i)(Response::text(200, "done"));
}

TEST_F(H2Test, AClientsResetAbortsItsStreamedBody) {
  HeldBodies held;
  Server& server = start(streaming_options("/up"), held.handler());
  H2Client client(server.port());
  const int32_t id = client.submit_streaming("POST", "/up");
  client.send_body(id, "part");
  ASSERT_TRUE(client.run_until([&] { return held.body(0) && held.body(0)->received() == 4; }));
  std::promise<RequestBody::Read> over;
  auto body = held.body(0);
  std::string piece;
  ASSERT_EQ(body->read(piece), RequestBody::Read::kData);
  EXPECT_EQ(piece, "part");
  // The reader waits; the reset wakes it, on the server's thread.
  body->set_on_readable([&] {
    std::string more;
    over.set_value(body->read(more));
  });
  ASSERT_EQ(body->read(piece), RequestBody::Read::kWait);
  client.cancel(id);
  client.run_until([&] { return client.reply(id).closed; });
  auto f = over.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(f.get(), RequestBody::Read::kAborted);
  body->set_on_readable(nullptr);
  held.take(0)(Response::text(200, "late"));  // dropped: the stream is gone
}

TEST_F(H2Test, TrailersFollowTheBodyInAHeadersFrame) {
  std::mutex mu;
  std::shared_ptr<BodyStream> streamed;
  Server& server = start(local_options(), [&](Request& req, Responder respond) {
    Response r = Response::text(200, req.path == "/empty" ? "" : "hello");
    if (req.path == "/stream") {
      auto stream = std::make_shared<BodyStream>();
      {
        std::lock_guard lock(mu);
        streamed = stream;
      }
      r.stream = stream;
      r.trailers.add("x-ignored", "a stream ends with its own");
    } else {
      r.trailers.add("Grpc-Status", "0");  // sent in lower case
      r.trailers.add("content-type", "text/plain");  // content processing: never a trailer
      r.trailers.add("x-checksum", "abc");
    }
    respond(std::move(r));
  });
  H2Client client(server.port());
  const int32_t buffered = client.submit("GET", "/buffered");
  const int32_t empty = client.submit("GET", "/empty");
  const int32_t head = client.submit("HEAD", "/buffered");
  const int32_t stream = client.submit("GET", "/stream");
  ASSERT_TRUE(client.finish({buffered, empty, head}));
  using Fields = std::vector<std::pair<std::string, std::string>>;
  const Fields expected = {{"grpc-status", "0"}, {"x-checksum", "abc"}};
  EXPECT_EQ(client.reply(buffered).body, "hello");
  EXPECT_EQ(client.reply(buffered).trailers, expected);
  EXPECT_EQ(client.reply(empty).body, "");
  EXPECT_EQ(client.reply(empty).trailers, expected);
  EXPECT_TRUE(client.reply(head).trailers.empty());  // no body, no trailers
  EXPECT_FALSE(client.reply(buffered).reset);
  std::shared_ptr<BodyStream> s;
  ASSERT_TRUE(client.run_until([&] {
    std::lock_guard lock(mu);
    s = streamed;
    return s != nullptr;
  }));
  std::thread([&] {
    s->write("data");
    Headers trailers;
    trailers.add("grpc-status", "2");
    // Longer than a string holds in place: its bytes live on the heap until nghttp2 copies them.
    trailers.add("grpc-message", "oops: shard 3 of 8 failed to load");
    s->end(std::move(trailers));
  }).join();
  ASSERT_TRUE(client.finish({stream}));
  EXPECT_EQ(client.reply(stream).body, "hellodata");
  EXPECT_EQ(client.reply(stream).trailers,
            (Fields{{"grpc-status", "2"}, {"grpc-message", "oops: shard 3 of 8 failed to load"}}));
  EXPECT_FALSE(client.reply(stream).reset);
}

TEST_F(H2Test, AStreamedBodyIsReadNoFasterThanTheClientTakesIt) {
  // The client announces a small window and reads nothing more until told: the producer is held
  // back by full() instead of queuing without bound.
  std::promise<std::shared_ptr<BodyStream>> made;
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    auto stream = std::make_shared<BodyStream>();
    made.set_value(stream);
    Response r;
    r.stream = stream;
    respond(std::move(r));
  });
  H2Client client(server.port(), 16384);
  const int32_t id = client.submit("GET", "/big");
  auto future = made.get_future();
  client.run_until([&] { return future.wait_for(milliseconds(0)) == std::future_status::ready; });
  auto stream = future.get();
  std::atomic<bool> done{false};
  std::atomic<size_t> written{0};
  std::thread producer([&] {
    const std::string piece(8192, 'p');
    std::mutex m;
    std::condition_variable cv;
    bool drained = false;
    stream->set_on_drained([&] {
      std::lock_guard lock(m);
      drained = true;
      cv.notify_all();
    });
    while (written < (8u << 20)) {
      if (!stream->write(piece)) break;
      written += piece.size();
      if (stream->full()) {
        std::unique_lock lock(m);
        cv.wait_for(lock, std::chrono::seconds(30), [&] { return drained; });
        drained = false;
      }
    }
    stream->end();
    done = true;
  });
  // The client reads nothing for a while: the server sends what the stream's window allows, and
  // the producer waits once its queue is full.
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_LT(written.load(), 1u << 20);
  EXPECT_LE(stream->queued(), BodyStream::kHighWater + 8192);
  EXPECT_FALSE(done.load());
  // Reading, the client reopens the window and the rest follows.
  const bool finished = client.finish({id}, std::chrono::seconds(60));
  producer.join();
  ASSERT_TRUE(finished);
  EXPECT_EQ(client.reply(id).body.size(), 8u << 20);
}

TEST_F(H2Test, ABodyOverTheLimitIs413AtOnceAndTheConnectionServesOn) {
  ServerOptions o = local_options();
  o.max_body_bytes = 1000;
  std::atomic<int> rejected{0};
  o.on_rejected = [&](int status) {
    if (status == 413) ++rejected;
  };
  Server& server = start(o, [](Request& req, Responder respond) {
    respond(Response::text(200, std::to_string(req.body.size())));
  });
  H2Client client(server.port());
  const int32_t big = client.submit("POST", "/big", {}, std::string(50000, 'b'));
  ASSERT_TRUE(client.finish({big}));
  EXPECT_EQ(client.reply(big).status, 413);
  EXPECT_NE(client.reply(big).body.find("body_too_large"), std::string::npos);
  EXPECT_EQ(rejected.load(), 1);
  const int32_t small = client.submit("POST", "/small", {}, std::string(1000, 's'));
  ASSERT_TRUE(client.finish({small}));
  EXPECT_EQ(client.reply(small).status, 200);
  EXPECT_EQ(client.reply(small).body, "1000");
}

// Requests nghttp2 itself finds malformed are reset (PROTOCOL_ERROR), never reach the handler,
// and are counted as the server's 400s; the connection serves on.
TEST_F(H2Test, MalformedRequestsAreResetAndCountedAs400) {
  ServerOptions o = local_options();
  std::atomic<int> rejected{0};
  o.on_rejected = [&](int status) {
    if (status == 400) ++rejected;
  };
  std::atomic<int> handled{0};
  Server& server = start(o, [&](Request&, Responder respond) {
    ++handled;
    respond(Response::text(200, "ok"));
  });
  H2Client client(server.port());
  const int32_t upper = client.submit("GET", "/a", {{"te", "gzip"}});
  const int32_t connection = client.submit("GET", "/b", {{"connection", "keep-alive"}});
  const int32_t longer = client.submit("POST", "/c", {{"content-length", "3"}}, "four");
  ASSERT_TRUE(client.finish({upper, connection, longer}));
  for (int32_t id : {upper, connection, longer}) {
    EXPECT_TRUE(client.reply(id).reset) << id << ": status " << client.reply(id).status;
    EXPECT_EQ(client.reply(id).reset_code, 1u) << id;  // PROTOCOL_ERROR
  }
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(rejected.load(), 3);
  const int32_t fine = client.submit("GET", "/d");
  ASSERT_TRUE(client.finish({fine}));
  EXPECT_EQ(client.reply(fine).status, 200);
}

TEST_F(H2Test, ABodyAnnouncedOverTheLimitIs413BeforeAnyGoAhead) {
  ServerOptions o = local_options();
  o.max_body_bytes = 1000;
  Server& server = start(o, [](Request&, Responder respond) { respond(Response::text(200, "")); });
  H2Client client(server.port());
  const int32_t id =
      client.submit("POST", "/big", {{"expect", "100-continue"}, {"content-length", "5000"}},
                    std::string(5000, 'b'));
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).status, 413);
  EXPECT_FALSE(client.reply(id).continued);
}

TEST_F(H2Test, ManyUploadsAtOnceAreServedOrRefusedNeverStuck) {
  // 12 interleaved uploads of 1.5 MiB: more than the connection's 16 MiB of bodies at once. Those
  // past it are refused (REFUSED_STREAM: a client may retry them); none waits for a window.
  ServerOptions o = local_options();
  o.max_body_bytes = 2 << 20;
  Server& server = start(o, [](Request& req, Responder respond) {
    respond(Response::text(200, std::to_string(req.body.size())));
  });
  H2Client client(server.port());
  std::vector<int32_t> ids;
  for (int i = 0; i < 12; ++i) {
    ids.push_back(client.submit("POST", "/up", {}, std::string(3 << 19, 'u')));
  }
  ASSERT_TRUE(client.finish(ids, std::chrono::seconds(30)));
  int served = 0;
  for (const int32_t id : ids) {
    const auto& r = client.reply(id);
    if (r.status == 200) {
      ++served;
      EXPECT_EQ(r.body, std::to_string(3 << 19));
    } else {
      EXPECT_TRUE(r.reset);
      EXPECT_EQ(r.reset_code, kRefusedStream);
    }
  }
  EXPECT_GE(served, 1);
  // The budget is given back as bodies are answered: the next upload is served.
  const int32_t next = client.submit("POST", "/up", {}, std::string(3 << 19, 'u'));
  ASSERT_TRUE(client.finish({next}, std::chrono::seconds(30)));
  EXPECT_EQ(client.reply(next).status, 200);
}

TEST_F(H2Test, AnAnswerTheClientOpensNoWindowForIsCutAfterTheWriteTimeout) {
  ServerOptions o = local_options();
  o.write_timeout = milliseconds(300);
  Server& server = start(o, [](Request&, Responder respond) {
    respond(Response::text(200, "a body the client never has room for"));
  });
  H2Client client(server.port(), 0);  // a window of 0, never opened
  const int32_t id = client.submit("GET", "/");
  ASSERT_TRUE(client.finish({id}, std::chrono::seconds(5)));
  EXPECT_EQ(client.reply(id).status, 200);  // the head needs no window
  EXPECT_EQ(client.reply(id).body, "");
  EXPECT_TRUE(client.reply(id).reset);
  EXPECT_EQ(client.reply(id).reset_code, kCancel);
}

TEST_F(H2Test, AClientReadingSlowlyButSteadilyIsNotCut) {
  // Its small window is shut at almost every look, yet each opening lets more through: progress,
  // not a stall, however long the whole answer takes.
  ServerOptions o = local_options();
  o.write_timeout = milliseconds(200);
  Server& server = start(o, [](Request&, Responder respond) {
    respond(Response::text(200, std::string(1 << 20, 's')));
  });
  H2Client client(server.port(), 16384);
  const int32_t id = client.submit("GET", "/");
  const auto start = std::chrono::steady_clock::now();
  while (!client.reply(id).closed &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    int reads = 0;  // one read at a time: at most what the window let through
    client.run_until([&] { return reads++ > 0; }, milliseconds(50));
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_GT(std::chrono::steady_clock::now() - start, milliseconds(600));
  EXPECT_FALSE(client.reply(id).reset);
  EXPECT_EQ(client.reply(id).body.size(), 1u << 20);
}

TEST_F(H2Test, FieldsOverTheHeaderLimitAre431) {
  ServerOptions o = local_options();
  o.max_header_bytes = 2048;
  Server& server = start(o, [](Request&, Responder respond) { respond(Response::text(200, "x")); });
  H2Client client(server.port());
  const int32_t id = client.submit("GET", "/", {{"x-big", std::string(3000, 'h')}});
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).status, 431);
  const int32_t next = client.submit("GET", "/");
  ASSERT_TRUE(client.finish({next}));
  EXPECT_EQ(client.reply(next).status, 200);
}

TEST_F(H2Test, AClientsCancelTellsTheHandler) {
  std::promise<void> gone;
  Held held;
  Server& server = start(local_options(), [&](Request& req, Responder respond) {
    req.on_client_gone = [&] { gone.set_value(); };
    std::lock_guard lock(held.mu);
    held.responders.push_back(std::move(respond));
  });
  H2Client client(server.port());
  const int32_t id = client.submit("GET", "/wait");
  ASSERT_TRUE(client.run_until([&] { return held.size() == 1; }, milliseconds(100)) ||
              held.size() == 1);
  client.cancel(id);
  client.run_until([] { return false; }, milliseconds(100));
  auto told = gone.get_future();
  ASSERT_EQ(told.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  held.take(0)(Response::text(200, "late"));  // dropped: the stream is over
  const int32_t next = client.submit("GET", "/wait");
  ASSERT_TRUE(client.run_until([&] { return held.size() == 2; }, milliseconds(2000)) ||
              held.size() == 2);
  held.take(1)(Response::text(200, "second"));
  ASSERT_TRUE(client.finish({next}));
  EXPECT_EQ(client.reply(next).body, "second");
  EXPECT_EQ(server.inflight(), 0u);
}

TEST_F(H2Test, ShutdownSendsGoawayAndLetsOpenStreamsFinish) {
  Held held;
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    std::lock_guard lock(held.mu);
    held.responders.push_back(std::move(respond));
  });
  H2Client client(server.port());
  const int32_t id = client.submit("GET", "/held");
  client.run_until([&] { return held.size() == 1; }, milliseconds(2000));
  ASSERT_EQ(held.size(), 1u);
  std::thread stopper([&] { server.shutdown(milliseconds(5000)); });
  ASSERT_TRUE(client.run_until([&] { return client.got_goaway(); }));
  EXPECT_EQ(client.goaway_code(), kNoError);
  EXPECT_EQ(client.goaway_last_stream(), id);
  held.take(0)(Response::text(200, "finished"));
  ASSERT_TRUE(client.finish({id}));
  EXPECT_EQ(client.reply(id).body, "finished");
  EXPECT_TRUE(client.run_to_close());
  stopper.join();
  server_.reset();
}

TEST_F(H2Test, HeadAndNoContentCarryNoBody) {
  Server& server = start(local_options(), [](Request& req, Responder respond) {
    if (req.path == "/none") {
      respond(Response{204, {}, {}, nullptr, nullptr, {}});
      return;
    }
    respond(Response::text(200, "hello"));
  });
  H2Client client(server.port());
  const int32_t head = client.submit("HEAD", "/x");
  const int32_t none = client.submit("GET", "/none");
  ASSERT_TRUE(client.finish({head, none}));
  EXPECT_EQ(client.reply(head).status, 200);
  EXPECT_EQ(client.reply(head).body, "");
  EXPECT_EQ(client.reply(head).header("content-length"), "5");
  EXPECT_EQ(client.reply(none).status, 204);
  EXPECT_EQ(client.reply(none).header("content-length"), std::nullopt);
}

TEST_F(H2Test, OptionsStarIsAnsweredByTheServer) {
  std::atomic<int> calls{0};
  Server& server = start(local_options(), [&](Request&, Responder respond) {
    ++calls;
    respond(Response::text(200, "handler"));
  });
  H2Client client(server.port());
  const int32_t options = client.submit("OPTIONS", "*");
  ASSERT_TRUE(client.finish({options}));
  EXPECT_EQ(client.reply(options).status, 200);
  EXPECT_EQ(client.reply(options).body, "");
  EXPECT_EQ(calls.load(), 0);
}

TEST_F(H2Test, ExpectContinueGetsAGoAheadBeforeTheAnswer) {
  Server& server = start(local_options(), [](Request& req, Responder respond) {
    respond(Response::text(200, req.body));
  });
  H2Client client(server.port());
  const int32_t id = client.submit("POST", "/up", {{"expect", "100-continue"}}, "body");
  ASSERT_TRUE(client.finish({id}));
  EXPECT_TRUE(client.reply(id).continued);
  EXPECT_EQ(client.reply(id).status, 200);
  EXPECT_EQ(client.reply(id).body, "body");
}

TEST_F(H2Test, ASwitchOrAnInterimAnswerFromAHandlerIs500) {
  Server& server = start(local_options(), [](Request& req, Responder respond) {
    Response r;
    r.status = req.path == "/switch" ? 101 : 103;
    if (req.path == "/switch") {
      r.headers.add("Upgrade", "websocket");
      r.tunnel = std::make_shared<Tunnel>();
    }
    respond(std::move(r));
  });
  H2Client client(server.port());
  const int32_t sw = client.submit("GET", "/switch");
  const int32_t early = client.submit("GET", "/early");
  ASSERT_TRUE(client.finish({sw, early}));
  EXPECT_EQ(client.reply(sw).status, 500);
  EXPECT_EQ(client.reply(early).status, 500);
}

TEST_F(H2Test, AnIdleConnectionIsClosedWithGoaway) {
  ServerOptions o = local_options();
  o.idle_timeout = milliseconds(300);
  Server& server = start(o, [](Request&, Responder respond) { respond(Response::text(200, "x")); });
  H2Client client(server.port());
  const int32_t id = client.submit("GET", "/");
  ASSERT_TRUE(client.finish({id}));
  ASSERT_TRUE(client.run_to_close(std::chrono::seconds(5)));
  EXPECT_TRUE(client.got_goaway());
  EXPECT_EQ(client.goaway_code(), kNoError);
}

TEST_F(H2Test, AStreamWhoseBodyStallsIs408) {
  ServerOptions o = local_options();
  o.read_timeout = milliseconds(300);
  std::atomic<int> rejected{0};
  o.on_rejected = [&](int status) {
    if (status == 408) ++rejected;
  };
  Server& server = start(o, [](Request&, Responder respond) { respond(Response::text(200, "x")); });
  H2Client client(server.port());
  // Headers without END_STREAM, as if a body followed, then nothing.
  const int32_t id = client.submit_open("POST", "/slow");
  ASSERT_TRUE(client.finish({id}, std::chrono::seconds(5)));
  EXPECT_EQ(client.reply(id).status, 408);
  EXPECT_EQ(rejected.load(), 1);
}

TEST_F(H2Test, WithoutHttp2ThePrefaceIsABadHttp1Request) {
  ServerOptions o = local_options();
  o.http2 = false;
  Server& server = start(o, [](Request&, Responder respond) { respond(Response::text(200, "x")); });
  testing::RawSocket s(server.port());
  ASSERT_TRUE(s.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
}

TEST_F(H2Test, Http1StillWorksBesideIt) {
  Server& server = start(local_options(),
                         [](Request&, Responder respond) { respond(Response::text(200, "one")); });
  testing::RawSocket s(server.port());
  // "P" alone could begin the preface: the server waits for more before it decides.
  ASSERT_TRUE(s.send("P"));
  std::this_thread::sleep_for(milliseconds(50));
  ASSERT_TRUE(s.send("OST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "one");
}

TEST_F(H2Test, GarbageAfterThePrefaceEndsTheConnection) {
  Server& server = start(local_options(),
                         [](Request&, Responder respond) { respond(Response::text(200, "x")); });
  testing::RawSocket s(server.port());
  ASSERT_TRUE(
      s.send(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + "this is not a frame at all"));
  EXPECT_TRUE(s.closed_within(std::chrono::seconds(5)));
}

}  // namespace
}  // namespace prescale::http
