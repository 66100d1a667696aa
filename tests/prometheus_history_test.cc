// The controller's history from a real Prometheus (Debian's package): two days of what two gateway
// pods counted, written as TSDB blocks by promtool (as Prometheus' own backfilling does), read
// back through Prometheus' query API into a PrescalePolicy that had no history.
#include "worlds/kube/prometheus_history.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "http/client.h"
#include "http/server.h"
#include "http/test_util.h"
#include "http/tls.h"
#include "scaling/prescale_policy.h"
#include "support/prometheus.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

constexpr double kDay = 86400;

// The policy's clock when it reads the history: 12 days in, which is now in Unix time.
const Clock::TimePoint kPolicyNow{std::chrono::hours(12 * 24) + 20s};
constexpr std::int64_t kNowMinute = 12 * 24 * 60;

class PrometheusHistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::HistoryPrometheus::available()) {
      GTEST_SKIP() << "skipped: Debian package prometheus not installed (scripts/install-deps)";
    }
    now_unix_ = std::floor(
        std::chrono::duration<double>(Clock::real().wall_now().time_since_epoch()).count());
    clock_ = std::make_unique<ManualClock>(
        Clock::WallTime(std::chrono::seconds(static_cast<std::int64_t>(now_unix_))));
    prometheus_ = std::make_unique<testing::HistoryPrometheus>(dir_, history());
    port_ = prometheus_->port();
    ASSERT_GT(port_, 0) << prometheus_->log();
  }

  // Two days of counters, scraped every 15 s: `web`'s clients through gateway pods gw-a (60 %)
  // and gw-b (40 %, whose process restarted 30 hours ago: its counters went back to 0, and what it
  // counted after its last scrape before that was lost, as in a real restart); web calls db twice
  // per request; db's own clients send 5 req/s through gw-a. Beside them, series the selector must
  // leave out: web's own pod counting its calls to db (the services' metrics contract) and a
  // gateway of another namespace.
  std::string history() const {
    std::string out =
        "# HELP prescale_calls Calls through the gateway.\n"
        "# TYPE prescale_calls counter\n";
    const double start = now_unix_ - 2 * kDay;
    const double restart = restart_unix();
    auto series = [&](const std::string& labels, const std::function<double(double)>& counter) {
      out +=
          testing::samples("prescale_calls_total{" + labels + "}", start, now_unix_, 15, counter);
    };
    auto gateway = [](const std::string& ns, const std::string& pod, const std::string& caller,
                      const std::string& callee) {
      return "namespace=\"" + ns + "\",pod=\"" + pod +
             "\",app_kubernetes_io_component=\"gateway\",caller=\"" + caller + "\",callee=\"" +
             callee + "\",code=\"200\"";
    };
    const double base = web_integral(start);
    series(gateway("shop", "gw-a", "external", "web"),
           [&](double t) { return 0.6 * (web_integral(t) - base); });
    series(gateway("shop", "gw-b", "external", "web"), [&](double t) {
      return 0.4 * (web_integral(t) - (t < restart ? base : web_integral(restart)));
    });
    series(gateway("shop", "gw-a", "web", "db"),
           [&](double t) { return 1.2 * (web_integral(t) - base); });
    series(gateway("shop", "gw-b", "web", "db"), [&](double t) {
      return 0.8 * (web_integral(t) - (t < restart ? base : web_integral(restart)));
    });
    series(gateway("shop", "gw-a", "external", "db"), [&](double t) { return 5 * (t - start); });
    series(
        "namespace=\"shop\",pod=\"web-1\",app_kubernetes_io_component=\"service\","
        "caller=\"web\",callee=\"db\",code=\"200\"",
        [&](double t) { return 2 * (web_integral(t) - base); });
    series(gateway("other", "gw-x", "external", "web"),
           [&](double t) { return 1000 * (t - start); });
    return out + "# EOF\n";
  }
  double restart_unix() const { return now_unix_ - 1.25 * kDay; }
  // Unix time of the start of the policy's minute `m`.
  double unix_of_minute(std::int64_t m) const {
    return now_unix_ - std::chrono::duration<double>(kPolicyNow.time_since_epoch()).count() +
           static_cast<double>(m) * 60;
  }
  // web's clients send 100 + 50 sin(2 pi t / day) requests a second, and 100 more for the 30
  // minutes from the start of the policy's minute kPulse (a day and a half ago): the requests
  // from 0 to t.
  static constexpr std::int64_t kPulse = kNowMinute - 36 * 60;
  double web_integral(double t) const {
    const double pulse = std::clamp(t - unix_of_minute(kPulse), 0.0, 1800.0);
    return 100 * t - 50 * kDay / (2 * M_PI) * std::cos(2 * M_PI * t / kDay) + 100 * pulse;
  }
  // The mean of that rate over (from, to].
  double web_mean(double from, double to) const {
    return (web_integral(to) - web_integral(from)) / (to - from);
  }

  kube::PrometheusHistoryOptions options(std::string selector) const {
    kube::PrometheusHistoryOptions o;
    o.url.host = "127.0.0.1";
    o.url.port = static_cast<uint16_t>(port_);
    o.selector = std::move(selector);
    o.rate_window = 120s;
    o.clock = clock_.get();
    return o;
  }

  TempDir dir_;
  double now_unix_ = 0;
  std::unique_ptr<ManualClock> clock_;  // its wall clock at now_unix_, where the data ends
  std::unique_ptr<testing::HistoryPrometheus> prometheus_;
  int port_ = 0;
  http::Client client_;
};

scaling::ServiceSpec spec(std::string name) {
  scaling::ServiceSpec s;
  s.name = std::move(name);
  return s;
}

TEST_F(PrometheusHistoryTest, APolicyStartingWithoutHistoryTakesTheGatewaysTwoDays) {
  kube::PrometheusHistory prometheus(
      options(R"(namespace="shop",app_kubernetes_io_component="gateway")"), client_);
  scaling::PrescalePolicy policy;  // 14 days of history kept: three queries a service
  policy.init({spec("web"), spec("db")});
  // The policy's clock 12 days in; the same instant in Unix time is now.
  const Clock::TimePoint now = kPolicyNow;
  const Clock::WallTime wall_now{std::chrono::seconds(static_cast<std::int64_t>(now_unix_))};
  const kube::MinutesReader read = [&](std::string_view service, double first_end,
                                       std::size_t count) {
    return prometheus.read(service, first_end, count);
  };
  const auto outcomes = kube::backfill_history(policy, {"web", "db"}, read, now, wall_now);
  ASSERT_EQ(outcomes.size(), 2u);
  for (const kube::BackfillOutcome& o : outcomes) {
    ASSERT_FALSE(o.error) << o.service << ": " << o.error->message << "\n" << prometheus_->log();
    // Two days of minutes, but the first one or two (a rate needs two scrapes in its window).
    EXPECT_GE(o.filled, 2 * 1440u - 3) << o.service;
    EXPECT_LE(o.filled, 2 * 1440u + 1) << o.service;
    // The last minute's window ends 10 s after now: it is left to the controller's own looks.
    EXPECT_EQ(o.minutes, o.filled + 1) << o.service;
  }
  EXPECT_EQ(outcomes[0].external_filled, 0u);  // web has no callers
  EXPECT_GE(outcomes[1].external_filled, 2 * 1440u - 3);

  // Each minute is the mean rate over the 2 minutes centred on it (the rate window), summed over
  // both gateway pods, through gw-b's restart; the other pods' series are not in it.
  auto web = policy.history("web");
  auto db = policy.history("db");
  auto db_external = policy.history("db", scaling::PrescalePolicy::SeriesKind::kExternal);
  ASSERT_TRUE(web && db && db_external);
  ASSERT_EQ(web->values.size(), outcomes[0].minutes);
  const auto first = static_cast<std::int64_t>(std::llround(web->start_seconds / 60));
  EXPECT_EQ(first + static_cast<std::int64_t>(web->values.size()), kNowMinute);
  const double pulse = unix_of_minute(kPulse);
  std::size_t checked = 0;
  for (std::size_t i = 0; i < web->values.size(); ++i) {
    const double from = unix_of_minute(first + static_cast<std::int64_t>(i)) - 30;
    const double to = from + 120;
    if (from < now_unix_ - 2 * kDay + 30) continue;  // a window before the first scrapes
    if (to > now_unix_) {
      // A window ending after now would be read short: left to the controller's own looks.
      EXPECT_TRUE(std::isnan(web->values[i])) << "minute " << i << ": " << web->values[i];
      continue;
    }
    if (std::abs(from + 60 - restart_unix()) < 90) continue;           // gw-b's lost 15 s
    // A window holding an edge of the pulse: Prometheus' rate is the slope between the first
    // and the last scrape in it, not the mean over the whole window (below).
    if ((from < pulse && pulse < to) || (from < pulse + 1800 && pulse + 1800 < to)) continue;
    const double truth = web_mean(from, to);
    ASSERT_NEAR(web->values[i], truth, 0.01 * truth) << "web, minute " << i;
    ASSERT_NEAR(db->values[i], 2 * truth + 5, 0.01 * (2 * truth + 5)) << "db, minute " << i;
    ASSERT_NEAR(db_external->values[i], 5, 0.05) << "db's own clients, minute " << i;
    ++checked;
  }
  EXPECT_GT(checked, 2 * 1440u - 20);
  // The minutes are where the policy's own would be: the pulse starts with the policy's minute
  // kPulse. The window of the minute before holds its first 30 s, a quarter of the window: about
  // 25 req/s above the cycle (a window 30 s later would hold twice that, 30 s earlier none).
  const auto at = [&](std::int64_t m) { return web->values[static_cast<std::size_t>(m - first)]; };
  const double cycle = web_mean(pulse - 120, pulse);
  EXPECT_NEAR(at(kPulse - 2), cycle, 0.01 * cycle);
  EXPECT_NEAR(at(kPulse - 1) - cycle, 25, 12);
  EXPECT_NEAR(at(kPulse) - cycle, 75, 12);
  EXPECT_NEAR(at(kPulse + 1) - cycle, 100, 2);

  // The forecast follows the daily cycle from the first decision.
  const forecast::QuantileForecast f = policy.demand_forecast("web");
  ASSERT_FALSE(f.p50.empty());
  for (std::size_t k = 0; k < f.p50.size(); ++k) {
    const double minute = unix_of_minute(kNowMinute + static_cast<std::int64_t>(k));
    const double truth = web_mean(minute, minute + 60);
    EXPECT_NEAR(f.p50[k], truth, 0.05 * truth) << "minute " << k << " ahead";
  }
}

TEST_F(PrometheusHistoryTest, AQueryPrometheusRefusesOrAPrometheusNotThereIsAnError) {
  kube::PrometheusHistory bad_selector(options(R"(namespace=~"(")"), client_);
  auto refused = bad_selector.read("web", now_unix_ - 3600, 10);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("Prometheus at http://127.0.0.1:" + std::to_string(port_) +
                                         ": Prometheus refused the query (bad_data)"),
            std::string::npos)
      << refused.error().message;

  kube::PrometheusHistoryOptions gone = options(R"(job="gw")");
  gone.url.port = static_cast<uint16_t>(testing::free_port());
  kube::PrometheusHistory nobody(gone, client_);
  auto unreachable = nobody.read("web", now_unix_ - 3600, 10);
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(unreachable.error().message.rfind(
                "Prometheus at http://127.0.0.1:" + std::to_string(gone.url.port) + ": ", 0),
            0u)
      << unreachable.error().message;

  // A selector that matches nothing is no error: there is no history to take.
  kube::PrometheusHistory elsewhere(options(R"(namespace="nowhere")"), client_);
  auto empty = elsewhere.read("web", now_unix_ - 3600, 10);
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(std::all_of(empty->arrivals.begin(), empty->arrivals.end(),
                          [](double v) { return std::isnan(v); }));
}

// A Prometheus that serves HTTPS only (its web configuration's tls_server_config): read with its
// certificate's CA, the same minutes as over plain HTTP; trusting another CA, nothing is read and
// the error says why.
TEST_F(PrometheusHistoryTest, OverHttpsItIsReadWithTheCasNamed) {
  const http::testing::TestCertificate cert =
      http::testing::write_test_certificate(dir_.path(), "prometheus");
  const http::testing::TestCertificate other =
      http::testing::write_test_certificate(dir_.path(), "other");
  TempDir tls_dir;
  testing::HistoryPrometheus secure(tls_dir, history(), "",
                                    testing::HistoryPrometheus::Tls{cert.cert_file, cert.key_file});
  ASSERT_GT(secure.port(), 0) << secure.log();
  auto trusted = http::ClientTlsContext::create(cert.cert_file);
  ASSERT_TRUE(trusted) << trusted.error().message;
  kube::PrometheusHistoryOptions o =
      options(R"(namespace="shop",app_kubernetes_io_component="gateway")");
  o.url.port = static_cast<uint16_t>(secure.port());
  o.url.https = true;
  o.tls = *trusted;
  http::Client client(http::ClientOptions{.tls = o.tls});
  kube::PrometheusHistory prometheus(o, client);
  kube::PrometheusHistory plain(
      options(R"(namespace="shop",app_kubernetes_io_component="gateway")"), client_);
  auto over_tls = prometheus.read("web", now_unix_ - 3600, 30);
  ASSERT_TRUE(over_tls) << over_tls.error().message;
  auto over_http = plain.read("web", now_unix_ - 3600, 30);
  ASSERT_TRUE(over_http) << over_http.error().message;
  ASSERT_EQ(over_tls->arrivals.size(), 30u);
  for (std::size_t i = 0; i < 30; ++i) {
    EXPECT_TRUE(std::isfinite(over_tls->arrivals[i])) << i;
    EXPECT_DOUBLE_EQ(over_tls->arrivals[i], over_http->arrivals[i]) << i;
  }

  auto stranger = http::ClientTlsContext::create(other.cert_file);
  ASSERT_TRUE(stranger) << stranger.error().message;
  http::Client untrusting(http::ClientOptions{.tls = *stranger});
  kube::PrometheusHistory refused(o, untrusting);
  auto r = refused.read("web", now_unix_ - 3600, 30);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("Prometheus at https://127.0.0.1:"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("certificate verify failed"), std::string::npos)
      << r.error().message;
}

// A Prometheus behind an authenticating proxy (kube-rbac-proxy): the token goes with each query.
TEST(PrometheusHistoryToken, ATokenGoesWithEachQuery) {
  std::mutex mu;
  std::vector<std::string> authorizations;
  http::Server proxy(http::ServerOptions{}, [&](http::Request& req, http::Responder respond) {
    {
      std::lock_guard lock(mu);
      authorizations.emplace_back(req.headers.get("Authorization").value_or(""));
    }
    respond(http::Response::json(
        200, R"({"status":"success","data":{"resultType":"matrix","result":[]}})"));
  });
  ASSERT_TRUE(proxy.start());
  ManualClock clock(Clock::WallTime(std::chrono::seconds(1'800'000'000)));
  kube::PrometheusHistoryOptions o;
  o.url.host = "127.0.0.1";
  o.url.port = proxy.port();
  o.selector = R"(job="gw")";
  o.clock = &clock;
  o.bearer_token = "eyJhbGciOi.token";
  http::Client client;
  kube::PrometheusHistory prometheus(o, client);
  auto r = prometheus.read("web", 1'800'000'000.0 - 3600, 10);
  ASSERT_TRUE(r) << r.error().message;
  proxy.shutdown(std::chrono::milliseconds(0));
  std::lock_guard lock(mu);
  ASSERT_EQ(authorizations.size(), 1u);
  EXPECT_EQ(authorizations[0], "Bearer eyJhbGciOi.token");
}

}  // namespace
}  // namespace prescale
