#include "gateway/health_checker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "http/client.h"
#include "http/grpc_health.h"
#include "http/server.h"

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;

// A replica whose `ready_path` answers `status`, or holds the request when status is 0; other
// paths answer 404.
class Replica {
 public:
  explicit Replica(std::string ready_path = "/readyz", bool http2 = true)
      : ready_path_(std::move(ready_path)) {
    http::ServerOptions o;
    o.threads = 1;
    o.http2 = http2;
    server_ = std::make_unique<http::Server>(o, [this](http::Request& req, http::Responder respond) {
      ++requests;
      if (req.target != ready_path_) {
        respond(http::Response::text(404, "no such path\n"));
        return;
      }
      const int s = status.load();
      if (s == 0) {
        std::lock_guard lock(mu_);
        held_.push_back(std::move(respond));
        return;
      }
      respond(http::Response::text(s, "ready?\n"));
    });
    EXPECT_TRUE(server_->start());
  }
  ~Replica() {
    {
      std::lock_guard lock(mu_);
      for (auto& r : held_) r(http::Response::text(200, "late\n"));
    }
    server_->shutdown(1s);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  std::atomic<int> status{200};
  std::atomic<int> requests{0};

 private:
  const std::string ready_path_;
  std::unique_ptr<http::Server> server_;
  std::mutex mu_;
  std::vector<http::Responder> held_;
};

// Waits (real time, for the probes' I/O) until `pred` holds, up to 5 s.
template <class Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

class HealthCheckerTest : public ::testing::Test {
 protected:
  // One round: advance the manual clock by an interval, start the due probes, wait for them.
  void round(HealthChecker& checker) {
    clock_.advance(config_.interval);
    const auto before = checker.stats();
    const std::size_t started = checker.tick();
    ASSERT_TRUE(eventually([&] {
      const auto s = checker.stats();
      return s.passes + s.failures >= before.passes + before.failures + started;
    }));
  }

  ManualClock clock_;
  http::Client client_;
  HealthCheckConfig config_;
};

TEST_F(HealthCheckerTest, ThresholdsTurnHostsUnhealthyAndBack) {
  Replica good, bad;
  auto good_host = std::make_shared<UpstreamHost>(good.address(), clock_.now());
  auto bad_host = std::make_shared<UpstreamHost>(bad.address(), clock_.now());
  std::vector<std::pair<std::string, bool>> changes;
  std::mutex mu;
  HealthChecker checker(config_, clock_, client_, [&](const UpstreamHost& h, bool healthy) {
    std::lock_guard lock(mu);
    changes.emplace_back(h.address(), healthy);
  });
  checker.set_hosts({good_host, bad_host});
  EXPECT_EQ(checker.next_due(), clock_.now());  // the first check is due at once

  bad.status = 503;
  round(checker);
  round(checker);
  EXPECT_TRUE(bad_host->healthy());  // two failures: not yet
  round(checker);
  EXPECT_FALSE(bad_host->healthy());  // the third
  EXPECT_TRUE(good_host->healthy());
  EXPECT_FALSE(bad_host->in_service(clock_.now()));

  bad.status = 204;  // any 2xx/3xx passes
  round(checker);
  EXPECT_TRUE(bad_host->healthy());  // healthy_threshold 1
  const auto s = checker.stats();
  EXPECT_EQ(s.probes, 8u);
  EXPECT_EQ(s.went_unhealthy, 1u);
  EXPECT_EQ(s.went_healthy, 1u);
  std::lock_guard lock(mu);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0], std::make_pair(bad.address(), false));
  EXPECT_EQ(changes[1], std::make_pair(bad.address(), true));
}

// The hosts of a service that speaks only HTTP/2 are checked with the HTTP/2 client: here a
// replica that speaks only HTTP/1.1 fails those checks and passes the others.
TEST_F(HealthCheckerTest, AnHttp2HostIsCheckedOverHttp2) {
  Replica http1_only("/readyz", /*http2=*/false);
  http::Client http2_client(http::ClientOptions{.http2 = true});
  UpstreamHostConfig http2;
  http2.health_check_http2 = true;
  auto over_h2 = std::make_shared<UpstreamHost>(http1_only.address(), clock_.now(), http2);
  auto over_h1 = std::make_shared<UpstreamHost>(http1_only.address(), clock_.now());
  HealthChecker checker(config_, clock_, client_, {}, &http2_client);
  checker.set_hosts({over_h2, over_h1});
  for (int i = 0; i < 3; ++i) round(checker);
  EXPECT_FALSE(over_h2->healthy());
  EXPECT_TRUE(over_h1->healthy());
  EXPECT_EQ(http2_client.stats().connections_opened, 3u);
}

// A gRPC server's health service, by hand over Prescale's own HTTP/2 server: it answers Check
// with `serving` (a HealthCheckResponse status), and records the request's message.
class GrpcReplica {
 public:
  GrpcReplica() {
    http::ServerOptions o;
    o.threads = 1;
    server_ =
        std::make_unique<http::Server>(o, [this](http::Request& req, http::Responder respond) {
          http::Response r;
          r.headers.set("content-type", "application/grpc");
          if (req.target != http::kGrpcHealthCheckPath ||
              req.headers.get("content-type") != "application/grpc") {
            r.headers.set("grpc-status", "12");  // trailers-only: UNIMPLEMENTED
            respond(std::move(r));
            return;
          }
          {
            std::lock_guard lock(mu_);
            asked_.push_back(req.body);
          }
          const char message[] = {0, 0, 0, 0, 2, 0x08, static_cast<char>(serving.load())};
          r.body.assign(message, sizeof message);
          r.trailers.set("grpc-status", "0");
          respond(std::move(r));
        });
    EXPECT_TRUE(server_->start());
  }
  ~GrpcReplica() { server_->shutdown(1s); }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }
  std::vector<std::string> asked() {
    std::lock_guard lock(mu_);
    return asked_;
  }

  std::atomic<int> serving{1};  // SERVING

 private:
  std::unique_ptr<http::Server> server_;
  std::mutex mu_;
  std::vector<std::string> asked_;
};

// A host with a grpc_health_service is asked gRPC's health service about it: SERVING passes,
// NOT_SERVING fails; a host of the same server checked with a GET passes either way.
TEST_F(HealthCheckerTest, AGrpcHostIsAskedItsHealthService) {
  GrpcReplica replica;
  http::Client http2_client(http::ClientOptions{.http2 = true});
  UpstreamHostConfig grpc;
  grpc.health_check_http2 = true;
  grpc.grpc_health_service = "shop.Cart";
  auto asked = std::make_shared<UpstreamHost>(replica.address(), clock_.now(), grpc);
  UpstreamHostConfig get;
  get.health_check_http2 = true;
  auto got = std::make_shared<UpstreamHost>(replica.address(), clock_.now(), get);
  config_.unhealthy_threshold = 1;
  HealthChecker checker(config_, clock_, client_, {}, &http2_client);
  checker.set_hosts({asked, got});
  round(checker);
  EXPECT_TRUE(asked->healthy());
  replica.serving = 2;  // NOT_SERVING
  round(checker);
  EXPECT_FALSE(asked->healthy());
  EXPECT_TRUE(got->healthy()) << "a GET is answered (UNIMPLEMENTED, HTTP 200)";
  replica.serving = 1;
  round(checker);
  EXPECT_TRUE(asked->healthy());
  const std::vector<std::string> bodies = replica.asked();
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_EQ(bodies[0], http::grpc_health_request("shop.Cart").body);

  // Without an HTTP/2 client to ask with, the check fails rather than test something else.
  HealthChecker no_h2(config_, clock_, client_);
  auto alone = std::make_shared<UpstreamHost>(replica.address(), clock_.now(), grpc);
  no_h2.set_hosts({alone});
  round(no_h2);
  EXPECT_FALSE(alone->healthy());
}

TEST_F(HealthCheckerTest, RefusedConnectionsAndTimeoutsFail) {
  std::string gone_address;
  {
    Replica gone;
    gone_address = gone.address();
  }
  Replica hung;
  hung.status = 0;
  config_.timeout = 100ms;
  config_.unhealthy_threshold = 2;
  auto gone_host = std::make_shared<UpstreamHost>(gone_address, clock_.now());
  auto hung_host = std::make_shared<UpstreamHost>(hung.address(), clock_.now());
  HealthChecker checker(config_, clock_, client_);
  checker.set_hosts({gone_host, hung_host});
  round(checker);
  round(checker);
  EXPECT_FALSE(gone_host->healthy());
  EXPECT_FALSE(hung_host->healthy());
  EXPECT_EQ(checker.stats().failures, 4u);
}

TEST_F(HealthCheckerTest, OneProbeAtATimeAndRemovedHostsStop) {
  Replica slow;
  slow.status = 0;  // holds every probe
  config_.timeout = 500ms;  // the checker waits for the held probe to time out when destroyed
  auto host = std::make_shared<UpstreamHost>(slow.address(), clock_.now());
  HealthChecker checker(config_, clock_, client_);
  checker.set_hosts({host});
  EXPECT_EQ(checker.tick(), 1u);
  ASSERT_TRUE(eventually([&] { return slow.requests.load() == 1; }));
  clock_.advance(config_.interval * 3);
  EXPECT_EQ(checker.tick(), 0u);  // the first probe is still out
  checker.set_hosts({});
  slow.status = 200;
  clock_.advance(config_.interval);
  EXPECT_EQ(checker.tick(), 0u);
  EXPECT_EQ(checker.next_due(), Clock::TimePoint::max());
}

TEST_F(HealthCheckerTest, AHostWithItsOwnPathIsCheckedThere) {
  Replica own("/health/ready");  // a service's readiness_path: its /readyz answers 404
  Replica runtime;
  UpstreamHostConfig host_config;
  host_config.health_check_path = "/health/ready";
  auto own_host = std::make_shared<UpstreamHost>(own.address(), clock_.now(), host_config);
  auto runtime_host = std::make_shared<UpstreamHost>(runtime.address(), clock_.now());
  config_.unhealthy_threshold = 1;
  HealthChecker checker(config_, clock_, client_);
  checker.set_hosts({own_host, runtime_host});
  round(checker);
  EXPECT_TRUE(own_host->healthy());
  EXPECT_TRUE(runtime_host->healthy());  // at the checker's own path, /readyz
  EXPECT_EQ(checker.stats().failures, 0u);
}

}  // namespace
}  // namespace prescale::gateway
