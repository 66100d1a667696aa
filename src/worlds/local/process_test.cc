#include "worlds/local/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

TEST_F(ProcessTest, NoDescriptorOfOursCrossesExec) {
  // A descriptor opened without close-on-exec, as Asio opens its sockets.
  const int opened = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(opened, 3);
  const int fd = ::fcntl(opened, F_DUPFD, 100);  // a number ls will not take for itself
  ::close(opened);
  ASSERT_GE(fd, 100);
  const std::string log = dir + "/fds.log";
  auto p = launcher.launch({{"ls", "/proc/self/fd"}, {}, log});
  ::close(fd);
  ASSERT_TRUE(p);
  EXPECT_EQ(wait_exit(**p), 0);
  std::istringstream listed(slurp(log));
  std::vector<int> fds;
  for (std::string line; std::getline(listed, line);) fds.push_back(std::stoi(line));
  EXPECT_EQ(std::count(fds.begin(), fds.end(), fd), 0)
      << "fd " << fd << " leaked into the child: " << slurp(log);
  EXPECT_LE(fds.size(), 4u) << "0-2 and the directory ls reads: " << slurp(log);
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

// The status folds a signal into 128 + n, as a shell does; the signal itself is kept, so the user
// reads "killed by signal 9 (SIGKILL…)" for kill -9 and the kernel's out-of-memory killer, and
// "exited with status 137" only for a program that exits with 137.
TEST_F(ProcessTest, ASignalIsToldApartFromAnExitStatus) {
  auto killed = launcher.launch({{"sh", "-c", "kill -9 $$"}, {}, ""});
  auto exited = launcher.launch({{"sh", "-c", "exit 137"}, {}, ""});
  ASSERT_TRUE(killed && exited);
  EXPECT_EQ(wait_exit(**killed), 137);
  EXPECT_EQ(wait_exit(**exited), 137);
  EXPECT_EQ((*killed)->ended_by_signal(), SIGKILL);
  EXPECT_EQ((*exited)->ended_by_signal(), 0);
  EXPECT_EQ(describe_exit(137, SIGKILL),
            "killed by signal 9 (SIGKILL: kill -9, or the kernel out of memory)");
  EXPECT_EQ(describe_exit(137, 0), "exited with status 137");
  EXPECT_EQ(describe_exit(143, SIGTERM), "killed by signal 15 (SIGTERM)");
  EXPECT_EQ(describe_exit(139, SIGSEGV), "killed by signal 11 (SIGSEGV: an invalid memory access)");
  EXPECT_EQ(describe_exit(3, 0), "exited with status 3");
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

// A platform started with its standard output closed (`prescale up >&-`, some service managers):
// the log file opens as descriptor 1, close-on-exec, and dup2(1, 1) keeps that flag, so the
// replica starts without a stdout: what it prints is lost, and the first file or socket it opens
// becomes its stdout.
TEST_F(ProcessTest, OutputIsLoggedEvenWhenOurStdoutIsClosed) {
  const std::string log = dir + "/closed.log";
  std::fflush(stdout);
  const int saved = ::dup(1);
  ASSERT_GE(saved, 0);
  ::close(1);
  auto p = launcher.launch({{"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"}, {}, log});
  ::dup2(saved, 1);
  ::close(saved);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(wait_exit(**p), 0);
  const std::string text = slurp(log);
  EXPECT_NE(text.find("to-stdout\n"), std::string::npos) << text;
  EXPECT_NE(text.find("to-stderr\n"), std::string::npos) << text;
}

// A platform started with its standard input closed (`prescale up <&-`, a service manager or
// CI runner that closes it): the log file opens as descriptor 0, and dup2 of /dev/null onto 0
// replaces it before it is copied to 1 and 2, so the replica's stdout and stderr are /dev/null
// opened read-only: nothing reaches its log, and every write fails (EBADF) — sh's echo exits 1,
// a program that checks its writes fails.
TEST_F(ProcessTest, OutputIsLoggedEvenWhenOurStdinIsClosed) {
  const std::string log = dir + "/stdin-closed.log";
  const int saved = ::dup(0);
  ASSERT_GE(saved, 0);
  ::close(0);
  auto p = launcher.launch({{"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"}, {}, log});
  ::dup2(saved, 0);
  ::close(saved);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(wait_exit(**p), 0);
  const std::string text = slurp(log);
  EXPECT_NE(text.find("to-stdout\n"), std::string::npos) << "log: '" << text << "'";
  EXPECT_NE(text.find("to-stderr\n"), std::string::npos) << "log: '" << text << "'";
}

// Whether `pid` runs (a zombie does not).
bool running(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// local.md, "Nothing outlives the platform": even kill -9 of `prescale up` takes its replicas
// with it. PR_SET_PDEATHSIG reaches only the replica itself; what the replica started (a
// wrapper script's server, a worker pool) stays in the replica's group, and nobody signals that
// group once the platform is gone: it keeps running, and keeps the replica's port.
TEST_F(ProcessTest, WhatAReplicaStartedDiesWithTheThreadThatLaunchedIt) {
  const std::string log = dir + "/grandchild.log";
  PosixLauncher watched({WATCHDOG_BIN});
  std::unique_ptr<Process> p;
  int grandchild = 0;
  std::thread([&] {
    auto r = watched.launch({{"/bin/sh", "-c", "sleep 30 & echo $!; wait"}, {}, log});
    ASSERT_TRUE(r) << r.error().message;
    p = std::move(*r);
    // The thread (the platform's supervising thread) lives until the replica has started it.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (grandchild == 0 && std::chrono::steady_clock::now() < deadline) {
      std::istringstream in(slurp(log));
      in >> grandchild;
      std::this_thread::sleep_for(5ms);
    }
  }).join();
  ASSERT_TRUE(p);
  ASSERT_GT(grandchild, 0) << slurp(log);
  // The replica dies (PR_SET_PDEATHSIG); wait for it without reaping it, as nobody reaps or
  // signals anything once the platform is gone.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(p->pid()), &info, WEXITED | WNOWAIT), 0);
  EXPECT_EQ(info.si_status, SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (running(grandchild) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(running(grandchild)) << "pid " << grandchild
                                    << ", started by the replica, outlived the platform";
  // Clean up: reaping the replica signals its group.
  p->poll_exit();
  ::kill(grandchild, SIGKILL);
}

// A group's memory is what its processes hold: a child in a group of its own, named with spaces
// and parentheses, that touches 64 MiB shows 64 MiB more than before; a group not asked for is
// not looked at.
TEST(ResidentMemoryTest, AGroupHoldsWhatItsProcessesTouch) {
  int go[2], done[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(done), 0);
  constexpr std::size_t kTouched = 64u << 20;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_NAME, "a) b (c");  // /proc/<pid>/stat's comm: spaces and parentheses
    char c;
    if (::write(done[1], "r", 1) != 1 || ::read(go[0], &c, 1) != 1) ::_exit(1);
    auto* block = static_cast<volatile char*>(std::malloc(kTouched));
    for (std::size_t i = 0; i < kTouched; i += 4096) block[i] = 1;
    if (::write(done[1], "t", 1) != 1) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  ::setpgid(child, child);
  char c;
  ASSERT_EQ(::read(done[0], &c, 1), 1);
  const std::uint64_t before = resident_memory_by_group({child})[child];
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  ASSERT_EQ(::read(done[0], &c, 1), 1);
  const std::uint64_t after = resident_memory_by_group({child})[child];
  EXPECT_TRUE(resident_memory_by_group({::getpgrp()}).contains(::getpgrp())) << "this test's";
  EXPECT_FALSE(resident_memory_by_group({::getpgrp()}).contains(child)) << "not asked for";
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  for (int fd : {go[0], go[1], done[0], done[1]}) ::close(fd);
  EXPECT_GT(before, 0u);
  // Within a few MiB: between the two looks the kernel may reclaim some of the child's cold pages
  // (its code, shared with this process), as a reclaiming daemon (DAMON's pageout) does here
  // under no memory pressure at all; it failed once in many runs by that.
  ASSERT_GT(after, before);
  EXPECT_GE(after - before, kTouched - (4u << 20));
  EXPECT_LT(after - before, kTouched + (8u << 20));
  EXPECT_EQ(resident_memory_by_group({child}).count(child), 0u);  // gone, reaped
}

}  // namespace
}  // namespace prescale::local
