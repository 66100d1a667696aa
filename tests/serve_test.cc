// End-to-end: the `prescale` binary as users run it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <future>
#include <string>
#include <vector>

#include "http/client.h"
#include "http/test_util.h"
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

}  // namespace
}  // namespace prescale
