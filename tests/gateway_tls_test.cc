// `prescale gateway` serving HTTPS (docs/gateway.md, "TLS"): a real process with a `prescale serve
// echo` behind it, a certificate written for the test, a TLS client that trusts only that
// certificate. The certificate renewed on disk is served to the next connection without a
// restart; the metrics say what happened. Real processes on port 0; the waits are polls.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "http/client.h"
#include "http/test_util.h"
#include "support/platform.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using http::testing::RawSocket;
using testing::Subprocess;
using testing::TempDir;

std::string get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: shop.example\r\n\r\n";
}

// A series' value in Prometheus text, or -1.
double metric(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

class GatewayTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string port_file = dir.file("echo.port");
    echo = std::make_unique<Subprocess>(
        std::vector<std::string>{PRESCALE_BIN, "serve", "echo", "--port", "0", "--threads", "1",
                                 "--port-file", port_file},
        dir.file("echo.log"));
    echo_port = testing::port_from_file(port_file);
    ASSERT_GT(echo_port, 0) << echo->log();
  }

  // Starts the gateway with `args` after the common ones; false when it did not listen.
  bool start_gateway(std::vector<std::string> args) {
    std::vector<std::string> argv = {PRESCALE_BIN,
                                     "gateway",
                                     "--port",
                                     "0",
                                     "--port-file",
                                     dir.file("gw.port"),
                                     "--admin-port",
                                     "0",
                                     "--admin-port-file",
                                     dir.file("admin.port"),
                                     "--threads",
                                     "2"};
    argv.insert(argv.end(), args.begin(), args.end());
    gateway = std::make_unique<Subprocess>(argv, dir.file("gateway.log"));
    port = static_cast<uint16_t>(testing::port_from_file(dir.file("gw.port")));
    admin = static_cast<uint16_t>(testing::port_from_file(dir.file("admin.port")));
    return port > 0 && admin > 0;
  }

  std::string metrics() {
    http::Client client;
    auto r = client.request("127.0.0.1", admin, testing::get_request("/metrics"));
    return r ? r->body : "";
  }

  TempDir dir;
  std::unique_ptr<Subprocess> echo;
  int echo_port = 0;
  std::unique_ptr<Subprocess> gateway;
  uint16_t port = 0;
  uint16_t admin = 0;
};

TEST_F(GatewayTlsTest, ServesHttpsFromTheFilesTlsAndTakesARenewedCertificateWithoutARestart) {
  // Relative paths: from the file's directory, wherever the gateway was started.
  const auto first = http::testing::write_test_certificate(dir.path(), "site", "first.example");
  testing::save_file(dir.file("prescale.yaml"),
                     "version: 1\n"
                     "gateway:\n"
                     "  tls: {cert_file: site.crt, key_file: site.key}\n"
                     "  upstreams: {echo: [\"127.0.0.1:" +
                         std::to_string(echo_port) +
                         "\"]}\n"
                         "  routes:\n"
                         "    - {match: {path_prefix: /echo}, service: echo}\n");
  ASSERT_TRUE(start_gateway({"-f", dir.file("prescale.yaml")})) << gateway->log();

  RawSocket before(port);
  std::string error;
  ASSERT_TRUE(before.start_tls(first.cert_file, &error, {"http/1.1"})) << error;
  EXPECT_EQ(before.alpn(), "http/1.1");
  {
    RawSocket h2(port);
    ASSERT_TRUE(h2.start_tls(first.cert_file, &error, {"h2", "http/1.1"})) << error;
    EXPECT_EQ(h2.alpn(), "h2");  // HTTP/2 where the client offers it
  }
  // curl over HTTP/2 and TLS: the upstream (HTTP/1.1) is told the scheme all the same.
  const std::string cmd = "curl -s --http2 --cacert " + first.cert_file +
                          " -w ' %{http_version}' " +
                          "--resolve first.example:" + std::to_string(port) +
                          ":127.0.0.1 https://first.example:" + std::to_string(port) + "/echo 2>&1";
  const std::string out = http::testing::command_output(cmd);
  EXPECT_NE(out.find("\"X-Forwarded-Proto\":\"https\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"Host\":\"first.example:"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 2), " 2") << out;
  // A client's own X-Forwarded-Proto is not believed over TLS: the gateway knows the scheme.
  ASSERT_TRUE(
      before.send("GET /echo HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Proto: "
                  "http\r\n\r\n"));
  auto r = before.read_response();
  ASSERT_TRUE(r.has_value()) << gateway->log();
  EXPECT_EQ(r->status, 200);
  // The upstream is told the client spoke HTTPS, and only that.
  EXPECT_NE(r->body.find("\"X-Forwarded-Proto\":\"https\""), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("\"X-Forwarded-Proto\":\"http\""), std::string::npos) << r->body;

  // Plain HTTP on the HTTPS port: refused, counted.
  {
    RawSocket plain(port);
    ASSERT_TRUE(plain.send(get("/echo")));
    EXPECT_TRUE(plain.closed_within(2s));
  }
  ASSERT_TRUE(testing::wait_for(
      [&] { return metric(metrics(), "prescale_gateway_tls_handshake_errors_total") == 1; }, 5s))
      << metrics();
  // A malformed request over TLS: the listener answers 400 itself, and counts it.
  EXPECT_EQ(metric(metrics(), "prescale_http_rejected_total{service=\"gateway\",code=\"400\"}"), 0);
  {
    RawSocket bad(port);
    ASSERT_TRUE(bad.start_tls(first.cert_file, &error, {"http/1.1"})) << error;
    ASSERT_TRUE(bad.send("GET /echo HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"));
    auto answer = bad.read_response();
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(answer->status, 400);
  }
  EXPECT_EQ(metric(metrics(), "prescale_http_rejected_total{service=\"gateway\",code=\"400\"}"), 1)
      << metrics();
  const double first_expiry =
      metric(metrics(), "prescale_gateway_tls_certificate_expiry_timestamp_seconds");
  EXPECT_GT(first_expiry, 0);

  // The certificate renewed in place (as certbot does): the next connection gets it.
  const auto renewed =
      http::testing::write_test_certificate(dir.path(), "renewed", "renewed.example", 90);
  testing::save_file(dir.file("site.key"), testing::read_file(renewed.key_file));
  testing::save_file(dir.file("site.crt"), testing::read_file(renewed.cert_file));
  ASSERT_TRUE(testing::wait_for(
      [&] {
        RawSocket s(port);
        return s.start_tls(renewed.cert_file);
      },
      10s))
      << gateway->log();
  EXPECT_TRUE(testing::wait_for(
      [&] {
        return metric(metrics(), "prescale_gateway_tls_certificate_reloads_total{result=\"ok\"}") >=
               1;
      },
      5s))
      << metrics();
  EXPECT_GT(metric(metrics(), "prescale_gateway_tls_certificate_expiry_timestamp_seconds"),
            first_expiry + 50 * 86400);
  // The connection opened before the renewal goes on with the old certificate.
  ASSERT_TRUE(before.send(get("/echo")));
  r = before.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);

  // A broken renewal (a key that is not the certificate's) keeps the certificate in use.
  const std::string failed = "prescale_gateway_tls_certificate_reloads_total{result=\"failed\"}";
  const std::string ok = "prescale_gateway_tls_certificate_reloads_total{result=\"ok\"}";
  const double failed_before = std::max(0.0, metric(metrics(), failed));
  const double ok_before = metric(metrics(), ok);
  const auto stray = http::testing::write_test_certificate(dir.path(), "stray");
  testing::save_file(dir.file("site.key"), testing::read_file(stray.key_file));
  ASSERT_TRUE(testing::wait_for([&] { return metric(metrics(), failed) > failed_before; }, 10s))
      << gateway->log();
  EXPECT_EQ(metric(metrics(), ok), ok_before);
  RawSocket after(port);
  ASSERT_TRUE(after.start_tls(renewed.cert_file, &error)) << error;
  ASSERT_TRUE(after.send(get("/echo")));
  r = after.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(gateway->log().find("keeping the certificate in use"), std::string::npos)
      << gateway->log();

  gateway->signal(SIGTERM);
  EXPECT_EQ(gateway->wait(10s), 0) << gateway->log();
}

TEST_F(GatewayTlsTest, TheFlagsServeHttpsAndABadFileIsRefusedBeforeListening) {
  const auto cert = http::testing::write_test_certificate(dir.path(), "flags");
  ASSERT_TRUE(start_gateway({"--tls-cert", cert.cert_file, "--tls-key", cert.key_file, "--upstream",
                             "echo=127.0.0.1:" + std::to_string(echo_port), "--plain-port", "0",
                             "--plain-port-file", dir.file("plain.port")}))
      << gateway->log();
  RawSocket s(port);
  std::string error;
  ASSERT_TRUE(s.start_tls(cert.cert_file, &error)) << error;
  ASSERT_TRUE(s.send(get("/echo")));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value()) << gateway->log();
  EXPECT_NE(r->body.find("\"X-Forwarded-Proto\":\"https\""), std::string::npos) << r->body;
  // The plain listener beside it, for the services' own calls: the same routes.
  const int plain_port = testing::port_from_file(dir.file("plain.port"));
  ASSERT_GT(plain_port, 0) << gateway->log();
  http::Client client;
  auto plain =
      client.request("127.0.0.1", static_cast<uint16_t>(plain_port), testing::get_request("/echo"));
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->status, 200);
  EXPECT_NE(plain->body.find("\"X-Forwarded-Proto\":\"http\""), std::string::npos) << plain->body;

  // `prescale load` drives the HTTPS gateway, trusting its certificate; trusting another, every
  // request fails its handshake; --ca-file goes with https only.
  auto load = [&](const std::string& scheme, const std::string& ca, const std::string& name) {
    Subprocess l({PRESCALE_BIN, "load", "--target", scheme + "://127.0.0.1:" + std::to_string(port),
                  "--ca-file", ca, "--rate", "40", "--duration", "1s", "--mix", "GET /echo:1",
                  "--json", dir.file(name + ".json")},
                 dir.file(name + ".log"));
    const int status = l.wait(30s).value_or(-1);
    return std::make_pair(status,
                          status == 0 ? testing::read_file(dir.file(name + ".json")) : l.log());
  };
  const auto [trusted_status, trusted] = load("https", cert.cert_file, "trusted");
  ASSERT_EQ(trusted_status, 0) << trusted;
  const nlohmann::json report = nlohmann::json::parse(trusted);
  EXPECT_GT(report["requests"]["ok"].get<int>(), 0) << trusted;
  EXPECT_EQ(report["requests"]["ok"], report["requests"]["sent"]) << trusted;
  EXPECT_EQ(report["requests"]["errors"].get<int>(), 0) << trusted;
  const auto other = http::testing::write_test_certificate(dir.path(), "other");
  const auto [stranger_status, stranger] = load("https", other.cert_file, "stranger");
  ASSERT_EQ(stranger_status, 0) << stranger;
  const nlohmann::json refused = nlohmann::json::parse(stranger);
  EXPECT_EQ(refused["requests"]["ok"].get<int>(), 0) << stranger;
  EXPECT_GT(refused["requests"]["errors"].get<int>(), 0) << stranger;
  const auto [plain_status, plain_log] = load("http", cert.cert_file, "plain");
  EXPECT_EQ(plain_status, 2) << plain_log;
  EXPECT_NE(plain_log.find("--ca-file: goes with an https:// --target"), std::string::npos)
      << plain_log;
  gateway->signal(SIGTERM);
  EXPECT_EQ(gateway->wait(10s), 0) << gateway->log();

  // The key is the certificate: refused, exit 2, the file and the reason named.
  Subprocess bad(
      {PRESCALE_BIN, "gateway", "--port", "0", "--admin-port", "-1", "--tls-cert", cert.cert_file,
       "--tls-key", cert.cert_file, "--upstream", "echo=127.0.0.1:" + std::to_string(echo_port)},
      dir.file("bad.log"));
  EXPECT_EQ(bad.wait(10s), 2) << bad.log();
  EXPECT_NE(bad.log().find("--tls-cert/--tls-key: " + cert.cert_file + ": no PEM private key"),
            std::string::npos)
      << bad.log();
  // A plain listener beside a plain gateway says nothing.
  Subprocess pointless(
      {PRESCALE_BIN, "gateway", "--port", "0", "--admin-port", "-1", "--plain-port", "0",
       "--upstream", "echo=127.0.0.1:" + std::to_string(echo_port)},
      dir.file("pointless.log"));
  EXPECT_EQ(pointless.wait(10s), 2) << pointless.log();
  EXPECT_NE(pointless.log().find("--plain-port: the gateway serves plain HTTP already"),
            std::string::npos)
      << pointless.log();
  // One flag without the other.
  Subprocess half({PRESCALE_BIN, "gateway", "--port", "0", "--tls-cert", cert.cert_file},
                  dir.file("half.log"));
  EXPECT_NE(half.wait(10s), 0);
  EXPECT_NE(half.log().find("--tls-key"), std::string::npos) << half.log();
}

}  // namespace
}  // namespace prescale
