// End-to-end: the `prescale` binary as users run it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <array>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/client.h"
#include "http/test_util.h"
#include "http/websocket.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::Subprocess;
using testing::TempDir;

http::Request get(std::string target) {
  http::Request req;
  req.method_name = "GET";
  req.target = std::move(target);
  return req;
}

TEST(ServeTest, VersionAndHelp) {
  TempDir dir;
  Subprocess version({PRESCALE_BIN, "version"}, dir.file("version.log"));
  EXPECT_EQ(version.wait(10s), 0);
  EXPECT_THAT(version.log(), HasSubstr("prescale 0."));

  Subprocess help({PRESCALE_BIN, "--help"}, dir.file("help.log"));
  EXPECT_EQ(help.wait(10s), 0);
  EXPECT_THAT(help.log(), HasSubstr("serve"));

  Subprocess bad({PRESCALE_BIN, "serve", "nosuchkind", "--port", "0"}, dir.file("bad.log"));
  EXPECT_EQ(bad.wait(10s), 2);
  EXPECT_THAT(bad.log(), HasSubstr("unknown service kind \"nosuchkind\""));
}

// CLI11 reads "-1" into an unsigned flag as its largest value: `--max-body-bytes -1` served with
// no body limit at all, and `--max-batch -1` took batches of any size. Refused, naming the flag.
TEST(ServeTest, ANegativeSizeIsRefusedNotWrappedAround) {
  TempDir dir;
  for (const char* flag : {"--max-body-bytes", "--max-batch"}) {
    Subprocess bad({PRESCALE_BIN, "serve", "echo", "--port", "0", flag, "-1"},
                   dir.file(std::string(flag).substr(2) + ".log"));
    EXPECT_EQ(bad.wait(10s), 2) << flag;
    EXPECT_THAT(bad.log(), HasSubstr(std::string(flag) + ": Value -1 is negative"));
  }
}

// A flag of another kind (`serve echo --threshold 0.5`: fraud's) had been ignored without a word,
// so a user who meant to set it ran without it. It is refused, naming the kinds it applies to.
TEST(ServeTest, AFlagOfAnotherKindIsRefused) {
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"echo", "--threshold", "0.5"}, "serve echo: --threshold applies to fraud only"},
      {{"recommend", "--max-batch", "10"}, "serve recommend: --max-batch applies to fraud only"},
      {{"echo", "--model-dir", "models"},
       "serve echo: --model-dir applies to fraud, recommend and forecast only"},
      {{"echo", "--model-poll-ms", "10"},
       "serve echo: --model-poll-ms applies to fraud, recommend and forecast only"},
  };
  for (const auto& [args, message] : cases) {
    std::vector<std::string> argv = {PRESCALE_BIN, "serve"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--port", "0"});
    Subprocess bad(argv, dir.file("bad.log"));
    EXPECT_EQ(bad.wait(10s), 2) << message;
    EXPECT_THAT(bad.log(), HasSubstr(message));
  }
}

TEST(ServeTest, SigtermDrainsInFlightRequestsAndExitsZero) {
  TempDir dir;
  std::string port_file = dir.file("port");
  Subprocess echo({PRESCALE_BIN, "serve", "echo", "--port", "0", "--threads", "2", "--port-file",
                   port_file, "--log-format", "json"},
                  dir.file("echo.log"));
  ASSERT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 10s))
      << echo.log();
  uint16_t port = static_cast<uint16_t>(std::stoi(testing::read_file(port_file)));

  http::Client client;
  ASSERT_EQ(client.request("127.0.0.1", port, get("/readyz"))->status, 200);

  std::vector<std::future<Result<http::Response>>> inflight;
  for (int i = 0; i < 6; ++i) {
    inflight.push_back(std::async(std::launch::async, [&client, port] {
      // Long enough that all six are in flight at once on a busy machine too.
      return client.request("127.0.0.1", port, get("/delay/3000"));
    }));
  }
  ASSERT_TRUE(testing::wait_for(
      [&] {
        auto m = client.request("127.0.0.1", port, get("/metrics"));
        return m && m->body.find("prescale_inflight_requests{service=\"echo\"} 6") !=
                        std::string::npos;
      },
      10s));
  echo.signal(SIGTERM);
  for (auto& f : inflight) {
    auto r = f.get();
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(echo.wait(10s), 0) << echo.log();
  // JSON log lines: one object per line, with the drain recorded.
  EXPECT_THAT(echo.log(), HasSubstr("\"level\":\"info\""));
  EXPECT_THAT(echo.log(), HasSubstr("received SIGTERM, draining"));
}

// HTTP/2 in clear text (prior knowledge) is on by default, and `http.http2: false` in the
// config or --no-http2 turns it off: the preface is then a malformed HTTP/1.1 request.
TEST(ServeTest, HttpTwoIsOnByDefaultAndTheConfigTurnsItOff) {
  TempDir dir;
  const std::string off_config = dir.file("prescale.yaml");
  testing::write_file(off_config, "version: 1\nhttp:\n  http2: false\n");
  // On; off by the file; off by the flag (what `prescale up` passes a replica).
  for (const int run : {0, 1, 2}) {
    const bool on = run == 0;
    const std::string port_file = dir.file("port" + std::to_string(run));
    std::vector<std::string> args = {PRESCALE_BIN, "serve",       "echo",   "--port",
                                     "0",          "--port-file", port_file};
    if (run == 1) args.insert(args.end(), {"--config", off_config});
    if (run == 2) args.emplace_back("--no-http2");
    Subprocess echo(args, dir.file("echo" + std::to_string(run) + ".log"));
    ASSERT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 10s))
        << echo.log();
    const std::string port = std::to_string(std::stoi(testing::read_file(port_file)));
    const std::string out = http::testing::command_output(
        "curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}' "
        "http://127.0.0.1:" +
        port + "/ 2>&1");
    if (on) {
      EXPECT_EQ(out, "200 2") << echo.log();
    } else {
      EXPECT_THAT(out, ::testing::Not(HasSubstr("200"))) << echo.log();
      http::testing::RawSocket s(static_cast<uint16_t>(std::stoi(port)));
      ASSERT_TRUE(s.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
      auto r = s.read_response();
      ASSERT_TRUE(r.has_value()) << echo.log();
      EXPECT_EQ(r->status, 400);
    }
  }
}

// The server's limits as flags: a header block over --max-header-bytes is 431.
TEST(ServeTest, TheHttpLimitsAreFlagsToo) {
  TempDir dir;
  const std::string port_file = dir.file("port");
  Subprocess echo({PRESCALE_BIN, "serve", "echo", "--port", "0", "--port-file", port_file,
                   "--max-header-bytes", "200", "--read-timeout-ms", "30000"},
                  dir.file("echo.log"));
  ASSERT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 10s))
      << echo.log();
  const auto port = static_cast<uint16_t>(std::stoi(testing::read_file(port_file)));
  http::testing::RawSocket s(port);
  ASSERT_TRUE(s.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(300, 'b') + "\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value()) << echo.log();
  EXPECT_EQ(r->status, 431);
}

// A drain ends the open event streams (their clients see them complete, and reconnect elsewhere)
// instead of waiting its 10 s of grace for them and then cutting them.
TEST(ServeTest, SigtermEndsOpenEventStreams) {
  TempDir dir;
  std::string port_file = dir.file("port");
  Subprocess echo({PRESCALE_BIN, "serve", "echo", "--port", "0", "--port-file", port_file},
                  dir.file("echo.log"));
  ASSERT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 10s))
      << echo.log();
  const auto port = static_cast<uint16_t>(std::stoi(testing::read_file(port_file)));
  http::testing::RawSocket s(port, 10s);
  ASSERT_TRUE(s.send("GET /events/1000?interval_ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(s.read_until("data: 0\n\n"));
  const auto signalled = std::chrono::steady_clock::now();
  echo.signal(SIGTERM);
  auto r = s.read_response();
  ASSERT_TRUE(r.has_value()) << "the stream was cut, not ended";
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->body.starts_with("id: 0\ndata: 0\n\n")) << r->body;
  EXPECT_EQ(echo.wait(10s), 0) << echo.log();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 5s) << "the drain waited for the stream";
}

// `prescale serve echo`'s WebSocket echo, GET /ws, spoken to byte by byte.
class ServeEchoWebSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string port_file = dir_.file("port");
    echo_ = std::make_unique<Subprocess>(
        std::vector<std::string>{PRESCALE_BIN, "serve", "echo", "--port", "0", "--port-file",
                                 port_file},
        dir_.file("echo.log"));
    ASSERT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 10s))
        << echo_->log();
    port_ = static_cast<uint16_t>(std::stoi(testing::read_file(port_file)));
  }

  // The RFC 6455 section 1.3 example key, whose answer is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
  static std::string handshake(std::string_view extra_fields = "") {
    return "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
           std::string(extra_fields) + "\r\n";
  }

  // Connects and completes the handshake: what the server sends next is its frames.
  void open(http::testing::RawSocket& s) {
    ASSERT_TRUE(s.connected());
    ASSERT_TRUE(s.send(handshake()));
    ASSERT_TRUE(s.read_until("\r\n\r\n"));
    ASSERT_TRUE(s.pending().starts_with("HTTP/1.1 101 ")) << s.pending();
    s.clear_pending();
  }

  // A frame as a client sends it: masked (RFC 6455 section 5.3), here with section 5.7's key.
  static std::string masked(http::websocket::Opcode opcode, std::string_view payload,
                            bool fin = true) {
    std::string out;
    http::websocket::append_frame(out, opcode, payload, fin,
                                  std::array<uint8_t, 4>{0x37, 0xfa, 0x21, 0x3d});
    return out;
  }

  // A frame as the server sends it: unmasked.
  static std::string unmasked(http::websocket::Opcode opcode, std::string_view payload,
                              bool fin = true) {
    std::string out;
    http::websocket::append_frame(out, opcode, payload, fin);
    return out;
  }

  // The complete frames in what the server sent.
  static std::vector<http::websocket::Frame> frames_in(std::string_view bytes) {
    http::websocket::FrameParser parser(http::websocket::FrameParser::Role::kClient, 1 << 20);
    std::vector<http::websocket::Frame> frames;
    auto parsed = parser.parse(bytes, frames);
    EXPECT_TRUE(parsed.has_value()) << parsed.error().to_string();
    return frames;
  }

  static int close_code(const http::websocket::Frame& close) {
    if (close.payload.size() < 2) return 0;
    return (static_cast<uint8_t>(close.payload[0]) << 8) | static_cast<uint8_t>(close.payload[1]);
  }

  TempDir dir_;
  std::unique_ptr<Subprocess> echo_;
  uint16_t port_ = 0;
};

TEST_F(ServeEchoWebSocketTest, TheHandshakeAnswersTheKeyAndNegotiatesNothingElse) {
  http::testing::RawSocket s(port_, 10s);
  ASSERT_TRUE(s.send(handshake(
      "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n")));
  ASSERT_TRUE(s.read_until("\r\n\r\n"));
  const std::string& head = s.pending();
  EXPECT_TRUE(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << head;
  EXPECT_THAT(head, HasSubstr("\r\nUpgrade: websocket\r\n"));
  EXPECT_THAT(head, HasSubstr("\r\nConnection: upgrade\r\n"));
  EXPECT_THAT(head, HasSubstr("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  // No subprotocol or extension was agreed to: the client must not use any.
  EXPECT_THAT(head, ::testing::Not(HasSubstr("Sec-WebSocket-Protocol")));
  EXPECT_THAT(head, ::testing::Not(HasSubstr("Sec-WebSocket-Extensions")));

  // The switch is counted as the success it is, not as a 500 (what an interim 1xx answer is).
  http::Client client;
  auto metrics = client.request("127.0.0.1", port_, get("/metrics"));
  ASSERT_TRUE(metrics) << metrics.error().to_string();
  EXPECT_THAT(metrics->body,
              HasSubstr(R"(prescale_requests_total{service="echo",route="/ws",code="101"} 1)"));
}

TEST_F(ServeEchoWebSocketTest, EachDataFrameComesBackUnmaskedFragmentsAsTheyCame) {
  using http::websocket::Opcode;
  http::testing::RawSocket s(port_, 10s);
  open(s);
  ASSERT_TRUE(s.send(masked(Opcode::kText, "Hello")));
  ASSERT_TRUE(s.read_until(unmasked(Opcode::kText, "Hello")));
  auto frames = frames_in(s.pending());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, Opcode::kText);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, "Hello");
  s.clear_pending();

  // A fragmented message stays fragmented; a binary payload past 125 bytes (a 16-bit length)
  // too.
  const std::string binary(300, '\xab');
  ASSERT_TRUE(s.send(masked(Opcode::kText, "Hel", false) + masked(Opcode::kContinuation, "lo") +
                     masked(Opcode::kBinary, binary)));
  const std::string expected = unmasked(Opcode::kText, "Hel", false) +
                               unmasked(Opcode::kContinuation, "lo") +
                               unmasked(Opcode::kBinary, binary);
  ASSERT_TRUE(s.read_until(expected));
  EXPECT_EQ(s.pending(), expected);
  frames = frames_in(s.pending());
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_FALSE(frames[0].fin);
  EXPECT_EQ(frames[1].opcode, Opcode::kContinuation);
  EXPECT_EQ(frames[2].payload, binary);
}

TEST_F(ServeEchoWebSocketTest, APingIsAnsweredWithAPongOfTheSamePayload) {
  using http::websocket::Opcode;
  http::testing::RawSocket s(port_, 10s);
  open(s);
  // The pong is not answered; the text after it shows that nothing was sent for it.
  ASSERT_TRUE(s.send(masked(Opcode::kPing, "are you there") + masked(Opcode::kPong, "unasked") +
                     masked(Opcode::kText, "after")));
  const std::string expected =
      unmasked(Opcode::kPong, "are you there") + unmasked(Opcode::kText, "after");
  ASSERT_TRUE(s.read_until(expected));
  EXPECT_EQ(s.pending(), expected);
}

// The close handshake (RFC 6455 section 5.5.1): the server answers with the client's status
// code and ends its side of the connection, as the server should close TCP first.
TEST_F(ServeEchoWebSocketTest, AClientsCloseIsAnsweredWithItsCodeAndTheConnectionEnds) {
  using http::websocket::Opcode;
  http::testing::RawSocket s(port_, 10s);
  open(s);
  ASSERT_TRUE(s.send(masked(Opcode::kText, "last") +
                     masked(Opcode::kClose, http::websocket::close_payload(4000, "bye")) +
                     masked(Opcode::kText, "after the close")));
  ASSERT_TRUE(s.read_to_close(5000ms)) << "the server did not end its side";
  const auto frames = frames_in(s.pending());
  ASSERT_EQ(frames.size(), 2u) << "nothing after a close is answered";
  EXPECT_EQ(frames[0].payload, "last");
  EXPECT_EQ(frames[1].opcode, Opcode::kClose);
  EXPECT_EQ(frames[1].payload, http::websocket::close_payload(4000));
  s.shutdown_write();

  // A close without a status code is answered with none.
  http::testing::RawSocket empty(port_, 10s);
  open(empty);
  ASSERT_TRUE(empty.send(masked(Opcode::kClose, "")));
  ASSERT_TRUE(empty.read_to_close(5000ms));
  EXPECT_EQ(empty.pending(), unmasked(Opcode::kClose, ""));
}

TEST_F(ServeEchoWebSocketTest, ARequestThatIsNoHandshakeIsRefusedSayingWhatIsMissing) {
  {
    http::testing::RawSocket s(port_, 10s);
    ASSERT_TRUE(s.send("GET /ws HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 426);
    EXPECT_EQ(r->header("Upgrade"), "websocket");
    EXPECT_THAT(r->body, HasSubstr(R"("code":"upgrade_required")"));
    EXPECT_THAT(r->body, HasSubstr("Upgrade: websocket"));
  }
  {
    http::testing::RawSocket s(port_, 10s);
    ASSERT_TRUE(
        s.send("GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 426);
    EXPECT_EQ(r->header("Sec-WebSocket-Version"), "13");
    EXPECT_THAT(r->body, HasSubstr("Sec-WebSocket-Version"));
  }
  {
    http::testing::RawSocket s(port_, 10s);
    ASSERT_TRUE(
        s.send("GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short==\r\n\r\n"));
    auto r = s.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 400);
    EXPECT_THAT(r->body, HasSubstr("Sec-WebSocket-Key"));
  }
}

// A client must mask what it sends (RFC 6455 section 5.1): the server fails the connection with
// 1002 and a reason saying why.
TEST_F(ServeEchoWebSocketTest, AnUnmaskedFrameIsClosedAsAProtocolError) {
  using http::websocket::Opcode;
  http::testing::RawSocket s(port_, 10s);
  open(s);
  ASSERT_TRUE(s.send(unmasked(Opcode::kText, "Hello")));
  ASSERT_TRUE(s.read_to_close(5000ms)) << "the server did not end its side";
  const auto frames = frames_in(s.pending());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, Opcode::kClose);
  EXPECT_EQ(close_code(frames[0]), http::websocket::kCloseProtocolError);
  EXPECT_THAT(frames[0].payload, HasSubstr("unmasked"));
}

// A drain closes the open WebSockets with 1001 (going away: their clients reconnect elsewhere)
// instead of waiting its 10 s of grace for them and then cutting them.
TEST_F(ServeEchoWebSocketTest, SigtermClosesOpenWebSocketsAsGoingAway) {
  http::testing::RawSocket s(port_, 10s);
  open(s);
  const auto signalled = std::chrono::steady_clock::now();
  echo_->signal(SIGTERM);
  ASSERT_TRUE(s.read_to_close(5000ms)) << "the server did not end its side";
  const auto frames = frames_in(s.pending());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, http::websocket::Opcode::kClose);
  EXPECT_EQ(close_code(frames[0]), 1001);
  s.shutdown_write();  // the client's end completes the close
  EXPECT_EQ(echo_->wait(10s), 0) << echo_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 5s) << "the drain waited for the socket";
}

}  // namespace
}  // namespace prescale
