#include "worlds/local/process.h"

#include <fcntl.h>
#include <signal.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
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

class PosixProcess final : public Process {
 public:
  explicit PosixProcess(pid_t pid) : pid_(pid) {}
  ~PosixProcess() override {
    if (status_) return;
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
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
      // Whatever the replica left running in its group goes with it.
      ::kill(-pid_, SIGKILL);
    }
    return status_;
  }

 private:
  pid_t pid_;
  std::optional<int> status_;
};

}  // namespace

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

  const int log_fd =
      ::open(spec.log_path.empty() ? "/dev/null" : spec.log_path.c_str(),
             O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot open log file " + spec.log_path + ": " + std::strerror(errno));
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int report[2];  // the child writes errno here when exec fails; closes on exec otherwise
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return make_error(ErrorCode::kUnavailable, std::string("pipe: ") + std::strerror(errno));
  }
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
    // dup2 onto itself (our own stdin or stdout was closed, so the open landed there) keeps
    // close-on-exec: clear it, or the child loses that stream.
    auto to = [](int fd, int target) {
      if (fd == target) {
        ::fcntl(fd, F_SETFD, 0);
      } else {
        ::dup2(fd, target);
      }
    };
    if (null_fd >= 0) to(null_fd, 0);
    to(log_fd, 1);
    to(log_fd, 2);
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
  if (null_fd >= 0) ::close(null_fd);
  if (pid < 0) {
    ::close(report[0]);
    return make_error(ErrorCode::kUnavailable, std::string("fork: ") + std::strerror(fork_errno));
  }
  ::setpgid(pid, pid);  // also from here, so signal() reaches the group at once
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return make_error(ErrorCode::kUnavailable,
                      "cannot run " + *exe + ": " + std::strerror(child_errno));
  }
  return std::unique_ptr<Process>(std::make_unique<PosixProcess>(pid));
}

}  // namespace prescale::local
