#include "worlds/local/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace prescale::local {
namespace {

using namespace std::chrono_literals;

std::optional<int> wait_exit(Process& p, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto s = p.poll_exit()) return s;
    std::this_thread::sleep_for(5ms);
  }
  return std::nullopt;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct ProcessTest : ::testing::Test {
  ProcessTest() {
    char tmpl[] = "/tmp/prescale-process-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~ProcessTest() override { std::filesystem::remove_all(dir); }
  std::string dir;
  PosixLauncher launcher;
};

TEST_F(ProcessTest, RunsAnArgvWithoutAShellAndLogsItsOutput) {
  const std::string log = dir + "/out.log";
  // A shell would expand the '*' and the '$HOME'; exec passes them through.
  auto p = launcher.launch({{"echo", "a*", "$HOME"}, {}, log});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(wait_exit(**p), 0);
  EXPECT_EQ(slurp(log), "a* $HOME\n");
}

TEST_F(ProcessTest, PassesTheEnvironmentItIsGiven) {
  const std::string log = dir + "/env.log";
  auto p = launcher.launch({{"env"}, {{"PRESCALE_TEST_VALUE", "42"}}, log});
  ASSERT_TRUE(p);
  EXPECT_EQ(wait_exit(**p), 0);
  EXPECT_NE(slurp(log).find("PRESCALE_TEST_VALUE=42\n"), std::string::npos);
}

TEST_F(ProcessTest, ReportsAMissingExecutableByName) {
  auto p = launcher.launch({{"prescale-no-such-binary"}, {}, ""});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::kNotFound);
  EXPECT_NE(p.error().message.find("prescale-no-such-binary"), std::string::npos);
  auto q = launcher.launch({{dir + "/missing"}, {}, ""});
  ASSERT_FALSE(q);
  EXPECT_NE(q.error().message.find("not an executable file"), std::string::npos);
}

TEST_F(ProcessTest, SignalsReachTheWholeGroupAndTheExitStatusSaysWhich) {
  auto p = launcher.launch({{"sleep", "30"}, {}, ""});
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)->poll_exit(), std::nullopt);
  EXPECT_EQ(::getpgid((*p)->pid()), (*p)->pid()) << "a process group of its own";
  (*p)->signal(SIGTERM);
  EXPECT_EQ(wait_exit(**p), 128 + SIGTERM);
  EXPECT_EQ((*p)->poll_exit(), 128 + SIGTERM) << "stable after reaping";
}

TEST_F(ProcessTest, DestroyingAProcessKillsItsChild) {
  int pid = 0;
  {
    auto p = launcher.launch({{"sleep", "30"}, {}, ""});
    ASSERT_TRUE(p);
    pid = (*p)->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0) << "reaped and gone";
}

TEST_F(ProcessTest, ChildDiesWithTheThreadThatLaunchedIt) {
  std::unique_ptr<Process> p;
  std::thread([&] {
    auto r = launcher.launch({{"sleep", "30"}, {}, ""});
    ASSERT_TRUE(r);
    p = std::move(*r);
  }).join();
  ASSERT_TRUE(p);
  EXPECT_EQ(wait_exit(*p), 128 + SIGKILL) << "PR_SET_PDEATHSIG";
}

}  // namespace
}  // namespace prescale::local
