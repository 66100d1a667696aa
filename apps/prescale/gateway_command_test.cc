// `prescale gateway` run in-process, as main.cc wires it. A run that serves is stopped with
// SIGTERM, as a user's Ctrl-C or a supervisor stops it.
#include "gateway_command.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "command_util.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;

// Runs `prescale gateway ARGS...`; one still serving after `serve_for` is sent SIGTERM.
int run_gateway(const std::vector<std::string>& args, std::chrono::seconds serve_for = 2s) {
  CLI::App app{"prescale"};
  GatewayCommand gateway(app);
  std::vector<std::string> all = {"gateway",      "--port", "0", "--admin-port", "-1",
                                  "--shutdown-grace-ms", "0"};
  all.insert(all.end(), args.begin(), args.end());
  if (auto status = prescale::testing::parse_command_line(app, all)) return *status;
  // Blocked here too, so the SIGTERM below is taken by the command's sigtimedwait, not by
  // this thread's default action.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  auto code = std::async(std::launch::async, [&] { return gateway.run(); });
  if (code.wait_for(serve_for) == std::future_status::timeout) ::kill(::getpid(), SIGTERM);
  return code.get();
}

// docs/gateway.md: --upstream is repeatable. Given twice for one service, the second flag
// replaced the first's endpoints without a word (`--upstream echo=A --upstream echo=B` served
// from B alone, exit 0); now it is refused, exit 2, before anything listens.
TEST(GatewayCommandTest, AServiceInTwoUpstreamFlagsIsRefused) {
  EXPECT_EQ(run_gateway({"--upstream", "echo=127.0.0.1:9", "--upstream", "echo=127.0.0.1:10"}), 2);
  // Several endpoints in one flag, as before: it serves until stopped.
  EXPECT_EQ(run_gateway({"--upstream", "echo=127.0.0.1:9,127.0.0.1:10"}, 1s), 0);
}

// --ui and gateway.listen: a port out of range was "expected host:port", as if the form were
// wrong; a bracketed host that is no IPv6 address was taken and failed only at the bind.
TEST(ParseListenTest, SaysWhatIsWrongWithTheAddress) {
  auto listen = parse_listen("[::1]:0", "--ui");
  ASSERT_TRUE(listen.has_value());
  EXPECT_EQ(listen->host, "::1");
  EXPECT_EQ(listen->port, 0);
  EXPECT_EQ(parse_listen("127.0.0.1:99999", "--ui").error().message,
            "--ui: port must be 0..65535, got \"99999\"");
  EXPECT_EQ(parse_listen("localhost", "--ui").error().message,
            "--ui: expected host:port, got \"localhost\"");
  EXPECT_EQ(parse_listen("[a b]:80", "--ui").error().message,
            "--ui: expected host:port with an IPv6 address in brackets, got \"[a b]:80\"");
  EXPECT_EQ(parse_listen("h:080", "--ui").error().message,
            "--ui: port must be written without leading zeros, got \"080\"");
}

}  // namespace
}  // namespace prescale
