#include "runtime/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/test_util.h"
#include "services/echo/echo_service.h"
#include "telemetry/exposition.h"

namespace prescale::runtime {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

http::Request get(std::string target) {
  http::Request req;
  req.method = http::Method::kGet;
  req.method_name = "GET";
  req.target = std::move(target);
  return req;
}

RuntimeOptions test_options() {
  RuntimeOptions options;
  options.server.port = 0;
  options.server.threads = 2;
  options.shutdown_grace = 5s;
  return options;
}

TEST(RuntimeTest, ServesRoutesAndStandardEndpoints) {
  services::EchoService echo;
  Runtime rt(echo, test_options());
  ASSERT_TRUE(rt.start());
  http::Client client;

  auto hello = client.request("127.0.0.1", rt.port(), get("/"));
  ASSERT_TRUE(hello) << hello.error().to_string();
  EXPECT_EQ(hello->status, 200);
  EXPECT_EQ(hello->body, "hello");

  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/healthz"))->status, 200);
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/readyz"))->status, 200);
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/status/503"))->status, 503);
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/status/abc"))->status, 400);
  // A 1xx is an interim answer, never a request's final one: asked for, it is refused (the
  // server had turned it into a 500).
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/status/103"))->status, 400);
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/status/200"))->status, 200);
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/no/such/route"))->status, 404);

  auto metrics = client.request("127.0.0.1", rt.port(), get("/metrics"));
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(std::string(*metrics->headers.get("Content-Type")), HasSubstr("version=0.0.4"));
  EXPECT_THAT(metrics->body,
              HasSubstr("prescale_requests_total{service=\"echo\",route=\"/\",code=\"200\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("prescale_requests_total{service=\"echo\",route=\"/status/"
                                       "{code}\",code=\"503\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("prescale_request_duration_seconds_count{service=\"echo\","
                                       "route=\"/\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("prescale_inflight_requests{service=\"echo\"} 0"));
  EXPECT_THAT(metrics->body, HasSubstr("process_resident_memory_bytes "));
  rt.drain();
}

// Resident pages of this process (/proc/self/statm's second field), in bytes.
std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// `serve echo`'s GET /leak/{kib}: what it is asked to keep stays resident (a leak to try memory
// limits on); out-of-range sizes are refused.
TEST(RuntimeTest, EchoKeepsWhatItIsAskedToLeak) {
  services::EchoService echo;
  Runtime rt(echo, test_options());
  ASSERT_TRUE(rt.start());
  http::Client client;
  const std::uint64_t before = resident_bytes();
  auto first = client.request("127.0.0.1", rt.port(), get("/leak/16384"));
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(first->body, "leaked 16384 KiB, 16384 KiB in all\n");
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/leak/1"))->body,
            "leaked 1 KiB, 16385 KiB in all\n");
  EXPECT_GE(resident_bytes() - before, std::uint64_t{16} << 20);
  for (const char* bad : {"/leak/0", "/leak/65537", "/leak/-1", "/leak/x"}) {
    EXPECT_EQ(client.request("127.0.0.1", rt.port(), get(bad))->status, 400) << bad;
  }
  rt.drain();
}

// A service whose handler takes exactly 250 ms of manual-clock time.
class SlowOnManualClock final : public Service {
 public:
  explicit SlowOnManualClock(ManualClock& clock) : clock_(clock) {}
  std::string_view name() const override { return "slow"; }
  void register_routes(Routes& routes) override {
    routes.get("/work", [this](http::Request&, http::Responder respond) {
      clock_.advance(250ms);
      respond(http::Response::text(200, "done"));
    });
  }

 private:
  ManualClock& clock_;
};

TEST(RuntimeTest, LatencyHistogramMeasuresWithTheInjectedClock) {
  ManualClock clock;
  SlowOnManualClock service(clock);
  auto options = test_options();
  options.clock = &clock;
  Runtime rt(service, options);
  ASSERT_TRUE(rt.start());
  http::Client client;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(client.request("127.0.0.1", rt.port(), get("/work"))->status, 200);
  }
  std::string text = telemetry::expose(rt.registry());
  EXPECT_THAT(text, HasSubstr("prescale_request_duration_seconds_sum{service=\"slow\","
                              "route=\"/work\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("prescale_request_duration_seconds_bucket{service=\"slow\","
                              "route=\"/work\",le=\"0.25\"} 4\n"));
  rt.drain();
}

TEST(RuntimeTest, DrainFinishesInFlightRequestsAndTurnsReadinessOff) {
  services::EchoService echo;
  Runtime rt(echo, test_options());
  ASSERT_TRUE(rt.start());
  uint16_t port = rt.port();
  http::Client client;

  std::vector<std::future<Result<http::Response>>> inflight;
  for (int i = 0; i < 8; ++i) {
    inflight.push_back(std::async(std::launch::async, [&client, port] {
      return client.request("127.0.0.1", port, get("/delay/300"));
    }));
  }
  // Let the requests reach the service before draining.
  for (int i = 0; i < 200; ++i) {
    auto m = client.request("127.0.0.1", port, get("/metrics"));
    if (m && m->body.find("prescale_inflight_requests{service=\"echo\"} 8") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  std::thread drainer([&] { rt.drain(); });
  for (auto& f : inflight) {
    auto r = f.get();
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->status, 200);
  }
  drainer.join();
  EXPECT_TRUE(rt.draining());
  auto after = client.request("127.0.0.1", port, get("/readyz"), 500ms);
  EXPECT_FALSE(after.has_value()) << "server still accepting after drain";
}

// A service that keeps its requests' Responders, as one that queues work for its own threads.
class Holding final : public Service {
 public:
  std::string_view name() const override { return "holding"; }
  void register_routes(Routes& routes) override {
    routes.get("/hold", [this](http::Request&, http::Responder respond) {
      std::lock_guard lock(mu_);
      held_.push_back(std::move(respond));
    });
  }
  size_t held() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  std::vector<http::Responder> take() {
    std::lock_guard lock(mu_);
    return std::exchange(held_, {});
  }

 private:
  std::mutex mu_;
  std::vector<http::Responder> held_;
};

TEST(RuntimeTest, ADrainWhoseGraceRunsOutSaysHowManyRequestsItCutOff) {
  Holding service;
  RuntimeOptions options = test_options();
  options.shutdown_grace = 100ms;
  auto rt = std::make_unique<Runtime>(service, options);
  ASSERT_TRUE(rt->start());
  const uint16_t port = rt->port();
  http::Client client;
  auto cut = std::async(std::launch::async, [&client, port] {
    return client.request("127.0.0.1", port, get("/hold"), 5s);
  });
  for (int i = 0; i < 1000 && service.held() == 0; ++i) std::this_thread::sleep_for(2ms);
  ASSERT_EQ(service.held(), 1u);
  EXPECT_EQ(rt->drain(), 1u);
  EXPECT_FALSE(cut.get().has_value());  // the connection closed unanswered
  EXPECT_EQ(rt->drain(), 0u);

  // The service answers after the Runtime is gone (as one emptying its queue on destruction
  // does): nothing of the Runtime's is touched (it used to count into freed route metrics).
  rt.reset();
  for (auto& respond : service.take()) respond(http::Response::text(503, "stopping"));
}

TEST(RuntimeTest, ARouteOnAStandardEndpointsPathIsRefusedByStart) {
  class Shadowing final : public Service {
   public:
    std::string_view name() const override { return "shadow"; }
    void register_routes(Routes& routes) override {
      routes.get("/metrics", [](http::Request&, http::Responder respond) {
        respond(http::Response::text(200, "mine"));
      });
    }
  } shadowing;
  Runtime rt(shadowing, test_options());
  auto started = rt.start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(started.error().message,
              HasSubstr("service shadow: GET /metrics is the runtime's own"));

  class Malformed final : public Service {
   public:
    std::string_view name() const override { return "malformed"; }
    void register_routes(Routes& routes) override {
      routes.get("no-slash", [](http::Request&, http::Responder) {});
    }
  } malformed;
  Runtime rt2(malformed, test_options());
  auto refused = rt2.start();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(refused.error().message, HasSubstr("service malformed: "));
}

// A handler that throws, or drops its Responder without calling it, is answered 500 by the
// server (http/server.h), as is a status below 200; a second call of a Responder is ignored.
// The runtime's own instruments must count what the client got: before, such a 500 was never
// counted in prescale_requests_total (which the local world reads for the error rate) and
// prescale_inflight_requests stayed one higher for good; a 103 was counted as 103; a second call
// counted the request twice and took the gauge below zero.
class MisbehavingHandlers final : public Service {
 public:
  std::string_view name() const override { return "bad"; }
  void register_routes(Routes& routes) override {
    routes.get("/throw", [](http::Request&, http::Responder) { throw std::runtime_error("bug"); });
    routes.get("/drop", [](http::Request&, http::Responder) {});
    routes.get("/twice", [](http::Request&, http::Responder respond) {
      respond(http::Response::text(200, "one"));
      respond(http::Response::text(201, "two"));
    });
    routes.get("/early", [](http::Request&, http::Responder respond) {
      respond(http::Response::text(103, "not a final status"));
    });
  }
};

TEST(RuntimeTest, AnswersTheServerMakesForAFaultyHandlerAreCountedOnce) {
  MisbehavingHandlers service;
  Runtime rt(service, test_options());
  ASSERT_TRUE(rt.start());
  http::Client client;
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/throw"))->status, 500);
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/drop"))->status, 500);
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/twice"))->status, 200);
  EXPECT_EQ(client.request("127.0.0.1", rt.port(), get("/early"))->status, 500);

  const std::string text = telemetry::expose(rt.registry());
  EXPECT_THAT(text, HasSubstr("prescale_requests_total{service=\"bad\",route=\"/throw\","
                              "code=\"500\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("prescale_requests_total{service=\"bad\",route=\"/drop\","
                              "code=\"500\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("prescale_requests_total{service=\"bad\",route=\"/twice\","
                              "code=\"200\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("prescale_requests_total{service=\"bad\",route=\"/early\","
                              "code=\"500\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("code=\"201\"")));
  EXPECT_THAT(text, Not(HasSubstr("code=\"103\"")));
  EXPECT_THAT(text, HasSubstr("prescale_request_duration_seconds_count{service=\"bad\","
                              "route=\"/twice\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("prescale_inflight_requests{service=\"bad\"} 0\n"));
  rt.drain();
}

// Requests the server refuses before any route (here malformed, and too large) are counted by
// code; the codes it may answer so are there from the start, at 0.
TEST(RuntimeTest, RequestsTheServerRefusesItselfAreCounted) {
  services::EchoService echo;
  RuntimeOptions options = test_options();
  options.server.max_header_bytes = 1024;
  Runtime rt(echo, options);
  ASSERT_TRUE(rt.start());
  EXPECT_THAT(telemetry::expose(rt.registry()),
              HasSubstr("prescale_http_rejected_total{service=\"echo\",code=\"400\"} 0\n"));
  {
    http::testing::RawSocket s(rt.port());
    ASSERT_TRUE(s.send("GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 400);
  }
  {
    http::testing::RawSocket s(rt.port());
    ASSERT_TRUE(
        s.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'b') + "\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 431);
  }
  const std::string text = telemetry::expose(rt.registry());
  EXPECT_THAT(text, HasSubstr("prescale_http_rejected_total{service=\"echo\",code=\"400\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("prescale_http_rejected_total{service=\"echo\",code=\"431\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("prescale_http_rejected_total{service=\"echo\",code=\"408\"} 0\n"));
  rt.drain();
}

// cli.md: `prescale serve --port-file PATH` writes the bound port there "once listening", and
// exits 1 "when the server cannot start". A port file that cannot be written (a run directory
// that is gone or not writable) is dropped silently instead: start() succeeds, the process
// serves, and whoever waits for the file (the supervisor of `prescale up`, which then kills the
// healthy replica after its 120 s ready timeout as "not ready", again after every back-off)
// never learns why.
TEST(RuntimeTest, StartFailsWhenThePortFileCannotBeWritten) {
  services::EchoService echo;
  RuntimeOptions options = test_options();
  options.port_file = "/nonexistent-prescale-run-dir/echo-1.port";
  Runtime rt(echo, options);
  auto started = rt.start();
  EXPECT_FALSE(started) << "started on port " << rt.port() << " without writing "
                        << options.port_file;
  if (!started) {
    EXPECT_THAT(started.error().message, HasSubstr(options.port_file));
  }
}

}  // namespace
}  // namespace prescale::runtime
