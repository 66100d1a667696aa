#include "worlds/local/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace prescale::local {
namespace {

bool is_executable_file(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

int exit_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// What most often sends a signal that kills a replica, where it is not the signal's own meaning.
std::string_view signal_cause(int signal) {
  switch (signal) {
    case SIGKILL:
      return ": kill -9, or the kernel out of memory";
    case SIGSEGV:
      return ": an invalid memory access";
    case SIGABRT:
      return ": abort(), a failed assertion or an uncaught exception";
    default:
      return "";
  }
}

// A descriptor at 3 or above (close-on-exec): with our own stdin, stdout or stderr closed, an
// open() lands on 0, 1 or 2, and the child's dup2()s onto those would overwrite one another.
int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

void reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// Forks the watchdog of replica group `group` (PosixLauncher): `argv` exec'd in a session of its
// own (a terminal's ^C is for the platform), its standard streams /dev/null, nothing else of
// ours open, SIGTERM blocked (run_watchdog() waits for it) and set as its parent-death signal.
// An exec'd program shares none of the platform's memory. -1 when it cannot be started.
pid_t spawn_watchdog(std::vector<char*>& argv, int null_fd, pid_t parent) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Only async-signal-safe calls from here: the parent has threads.
  ::setsid();
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::sigprocmask(SIG_SETMASK, &term, nullptr);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::raise(SIGTERM);  // gone before prctl: pending, seen after exec
  for (int fd = 0; fd < 3 && null_fd >= 0; ++fd) ::dup2(null_fd, fd);
  ::syscall(SYS_close_range, 3U, ~0U, 0U);
  ::execve(argv[0], argv.data(), environ);
  ::_exit(127);
}

class PosixProcess final : public Process {
 public:
  PosixProcess(pid_t pid, pid_t watchdog) : pid_(pid), watchdog_(watchdog) {}
  ~PosixProcess() override {
    if (!status_) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      reap(pid_);
    }
    end_watchdog();
  }
  int pid() const override { return pid_; }
  void signal(int sig) override {
    if (status_) return;
    // The group first (the replica and whatever it started); the pid too, in case the child
    // has not reached setpgid yet.
    ::kill(-pid_, sig);
    ::kill(pid_, sig);
  }
  std::optional<int> poll_exit() override {
    if (status_) return status_;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = exit_status(status);
      signal_ = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      // Whatever the replica left running in its group goes with it.
      ::kill(-pid_, SIGKILL);
      end_watchdog();
    }
    return status_;
  }
  int ended_by_signal() const override { return signal_; }

 private:
  void end_watchdog() {
    if (watchdog_ <= 0) return;
    ::kill(watchdog_, SIGKILL);
    reap(watchdog_);
    watchdog_ = -1;
  }

  pid_t pid_;
  pid_t watchdog_;
  std::optional<int> status_;
  int signal_ = 0;
};

}  // namespace

std::string describe_exit(int status, int signal) {
  if (signal == 0) return "exited with status " + std::to_string(status);
  const char* name = ::sigabbrev_np(signal);
  return "killed by signal " + std::to_string(signal) +
         (name != nullptr ? " (SIG" + std::string(name) + std::string(signal_cause(signal)) + ")"
                          : std::string());
}

Result<std::string> resolve_executable(const std::string& name) {
  if (name.empty()) return make_error(ErrorCode::kInvalidArgument, "empty command");
  if (name.find('/') != std::string::npos) {
    if (is_executable_file(name)) return name;
    return make_error(ErrorCode::kNotFound, "'" + name + "' is not an executable file");
  }
  const char* path_env = std::getenv("PATH");
  const std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t begin = 0;
  while (begin <= path.size()) {
    size_t end = path.find(':', begin);
    if (end == std::string::npos) end = path.size();
    const std::string dir = end > begin ? path.substr(begin, end - begin) : ".";
    const std::string candidate = dir + "/" + name;
    if (is_executable_file(candidate)) return candidate;
    begin = end + 1;
  }
  return make_error(ErrorCode::kNotFound, "'" + name + "' was not found in PATH (" + path + ")");
}

Result<std::unique_ptr<Process>> PosixLauncher::launch(const LaunchSpec& spec) {
  if (spec.argv.empty()) return make_error(ErrorCode::kInvalidArgument, "empty argv");
  auto exe = resolve_executable(spec.argv[0]);
  if (!exe) return std::unexpected(exe.error());

  // Everything the child needs is prepared before fork(): between fork and exec only
  // async-signal-safe calls are allowed in a multi-threaded parent.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const std::string_view key = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& [k, v] : spec.env) replaced = replaced || k == key;
    if (!replaced) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = spec.argv;
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  const int log_fd = above_stdio(::open(spec.log_path.empty() ? "/dev/null" : spec.log_path.c_str(),
                                        O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (log_fd < 0) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot open log file " + spec.log_path + ": " + std::strerror(errno));
  }
  const int null_fd = above_stdio(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int report[2];  // the child writes errno here when exec fails; closes on exec otherwise
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return make_error(ErrorCode::kUnavailable, std::string("pipe: ") + std::strerror(errno));
  }
  report[0] = above_stdio(report[0]);  // the child's dup2()s onto 0-2 must not hit them
  report[1] = above_stdio(report[1]);
  const pid_t parent = ::getpid();
  const long open_max = ::sysconf(_SC_OPEN_MAX);
  const int max_fd = open_max > 0 && open_max < 65536 ? static_cast<int>(open_max) : 65536;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    // Both descriptors are at 3 or above (above_stdio), so these copies cannot overwrite
    // one another.
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Nothing else of ours crosses exec: the platform's listening sockets and connections (Asio
    // opens them without close-on-exec) must not live on in replicas or what they start.
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    ::execve(exe->c_str(), argv.data(), envp.data());
    const int err = errno;
    [[maybe_unused]] auto n = ::write(report[1], &err, sizeof err);
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(report[1]);
  ::close(log_fd);
  if (pid < 0) {
    ::close(report[0]);
    if (null_fd >= 0) ::close(null_fd);
    return make_error(ErrorCode::kUnavailable, std::string("fork: ") + std::strerror(fork_errno));
  }
  ::setpgid(pid, pid);  // also from here, so signal() reaches the group at once
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    reap(pid);
    if (null_fd >= 0) ::close(null_fd);
    return make_error(ErrorCode::kUnavailable,
                      "cannot run " + *exe + ": " + std::strerror(child_errno));
  }
  pid_t watchdog = -1;
  if (!watchdog_.empty()) {
    std::vector<std::string> words = watchdog_;
    words.push_back(std::to_string(pid));
    words.push_back(std::to_string(parent));
    std::vector<char*> wargv;
    for (auto& w : words) wargv.push_back(w.data());
    wargv.push_back(nullptr);
    watchdog = spawn_watchdog(wargv, null_fd, parent);
    if (watchdog < 0) {
      spdlog::warn("no watchdog for replica {} ({}): what it starts may outlive the platform", pid,
                   std::strerror(errno));
    }
  }
  if (null_fd >= 0) ::close(null_fd);
  return std::unique_ptr<Process>(std::make_unique<PosixProcess>(pid, watchdog));
}

namespace {

// The "Pss:" line of /proc/<pid>/smaps_rollup, in bytes; nullopt when it cannot be read (a kernel
// before 4.14, a process ended or of another user).
std::optional<std::uint64_t> proportional_set_size(std::string_view pid) {
  const std::string path = "/proc/" + std::string(pid) + "/smaps_rollup";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[4096];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  const std::string_view rollup(buf, static_cast<std::size_t>(n));
  const std::size_t at = rollup.find("\nPss:");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view value = rollup.substr(at + 5);
  value.remove_prefix(std::min(value.find_first_not_of(' '), value.size()));
  std::uint64_t kib = 0;
  if (std::from_chars(value.data(), value.data() + value.size(), kib).ec != std::errc()) {
    return std::nullopt;
  }
  return kib * 1024;
}

}  // namespace

std::map<int, std::uint64_t> resident_memory_by_group(const std::set<int>& groups) {
  std::map<int, std::uint64_t> memory;
  if (groups.empty()) return memory;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return memory;
  char buf[1024];
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    const std::string path = std::string("/proc/") + entry->d_name + "/stat";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // ended since the listing
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    // "pid (comm) state ppid pgrp ... rss ...": comm may hold spaces and parentheses, so the
    // fields are counted from the last ')'. pgrp is field 5, rss (pages) field 24.
    const std::string_view stat(buf, static_cast<std::size_t>(n));
    const std::size_t close = stat.rfind(')');
    if (close == std::string_view::npos) continue;
    std::string_view rest = stat.substr(close + 1);
    std::uint64_t pgrp = 0, rss = 0;
    bool read_all = false;
    for (int field = 3; !rest.empty() && field <= 24; ++field) {
      rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
      const std::size_t end = std::min(rest.find(' '), rest.size());
      const std::string_view value = rest.substr(0, end);
      if (field == 5 || field == 24) {
        std::uint64_t& out = field == 5 ? pgrp : rss;
        if (std::from_chars(value.data(), value.data() + value.size(), out).ec != std::errc()) {
          break;
        }
        read_all = field == 24;
      }
      if (field == 5 && !groups.contains(static_cast<int>(pgrp))) break;  // not asked for
      rest.remove_prefix(end);
    }
    if (!read_all) continue;
    memory[static_cast<int>(pgrp)] += proportional_set_size(entry->d_name).value_or(rss * page);
  }
  ::closedir(proc);
  return memory;
}

int run_watchdog(std::string_view group_text, std::string_view parent_text) {
  auto number = [](std::string_view t) {
    pid_t v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return ec == std::errc() && end == t.data() + t.size() && v > 1 ? v : 0;
  };
  const pid_t group = number(group_text);
  const pid_t parent = number(parent_text);
  if (group == 0 || parent == 0) return 2;
  for (int sig : {SIGINT, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &term, nullptr);
  if (::getppid() == parent) {
    int sig = 0;
    while (::sigwait(&term, &sig) != 0 || sig != SIGTERM) {
    }
  }
  ::kill(-group, SIGKILL);
  return 0;
}

}  // namespace prescale::local
