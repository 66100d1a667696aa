// Child processes of the local world: a replica is a process started from an argv (never through
// a shell), in a process group of its own, with its output appended to a log file.
//
// ProcessLauncher is the seam the Supervisor uses, so its tests drive fake processes on a
// manual clock; PosixLauncher is the real one.
//
// Replicas do not outlive the platform: each child asks the kernel for SIGKILL when the thread
// that started it exits (PR_SET_PDEATHSIG), so launch from a thread that lives as long as the
// platform does; a Process destroyed while its child still runs kills the child's group.
//
// Thread safety: a Process and a launcher are used from one thread (the supervisor's).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace prescale::local {

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0]: a path, or a name looked up in PATH
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing) ours
  std::string log_path;  // stdout and stderr, appended; "" = /dev/null
};

class Process {
 public:
  virtual ~Process() = default;
  virtual int pid() const = 0;
  // Sends `sig` to the child's whole process group.
  virtual void signal(int sig) = 0;
  // The exit status once the child has exited (128 + signal number when a signal ended it),
  // nullopt while it runs. Reaps the child; later calls return the same status.
  virtual std::optional<int> poll_exit() = 0;
  // Once poll_exit() has the status: the signal that ended the child, 0 when it exited by itself
  // (the status alone cannot tell `exit(137)` from SIGKILL).
  virtual int ended_by_signal() const { return 0; }
};

// How a child ended, for the user: "exited with status 3", or "killed by signal 9 (SIGKILL: kill
// -9, or the kernel out of memory)" when `signal` (Process::ended_by_signal()) is not 0.
std::string describe_exit(int status, int signal);

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // Errors: kNotFound (argv[0] not found or not executable), kUnavailable (exec failed, with
  // the system's reason), kInvalidArgument (empty argv).
  virtual Result<std::unique_ptr<Process>> launch(const LaunchSpec& spec) = 0;
};

// Starts replicas as children in process groups of their own. With a `watchdog` command (argv
// such as {"/path/to/prescale", "__watchdog"}), each replica also gets a watchdog: that command
// with the replica's group and this process's pid appended (run_watchdog()), in a session of its
// own, which kills the replica's whole group — what the replica started too — when the thread
// that launched it exits (the platform ends, kill -9 included). Without one, the replica itself
// still dies then (PR_SET_PDEATHSIG), but not what it started.
class PosixLauncher final : public ProcessLauncher {
 public:
  explicit PosixLauncher(std::vector<std::string> watchdog = {}) : watchdog_(std::move(watchdog)) {}
  Result<std::unique_ptr<Process>> launch(const LaunchSpec& spec) override;

 private:
  std::vector<std::string> watchdog_;
};

// A watchdog's whole life (`prescale __watchdog GROUP PARENT`): waits for SIGTERM — its
// parent-death signal, blocked from before its exec so none is lost — then kills process group
// GROUP and returns 0; also at once when its parent is no longer PARENT. Returns 2 for bad
// arguments.
int run_watchdog(std::string_view group, std::string_view parent);

// The memory the process groups `groups` hold, in bytes by group id: over each group's processes
// (found by their /proc/<pid>/stat), the sum of their proportional set sizes (PSS, from
// /proc/<pid>/smaps_rollup: resident pages, a page shared by n processes counting 1/n to each),
// or of their resident set sizes where that file cannot be read. A pre-forked server's shared
// pages then count once, not once a worker. A replica's group is its pid: this is what the
// replica and what it started hold. A group with no process is missing from the map; processes
// that end during the scan are skipped.
std::map<int, std::uint64_t> resident_memory_by_group(const std::set<int>& groups);

// The absolute path `name` runs as: itself when it contains '/', else the first executable
// match in $PATH. Errors: kNotFound naming what was searched.
Result<std::string> resolve_executable(const std::string& name);

}  // namespace prescale::local
