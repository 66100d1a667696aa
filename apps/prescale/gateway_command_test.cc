// `prescale gateway` run in-process, as main.cc wires it. A run that serves is stopped with
// SIGTERM, as a user's Ctrl-C or a supervisor stops it.
#include "gateway_command.h"
#include "cli_test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

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

}  // namespace
}  // namespace prescale
