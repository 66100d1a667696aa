// Child processes for integration tests: started without a shell, output to a log file,
// always killed and reaped by the destructor so no test leaves a process behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace prescale::testing {

class Subprocess {
 public:
  // Starts argv[0] (a path) with the given arguments; stdout and stderr go to `log_path`.
  Subprocess(std::vector<std::string> argv, std::string log_path);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // Waits for exit; returns the exit status (128+signal if killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_status_;
};

// A TCP port that was free a moment ago on 127.0.0.1, for servers that cannot bind port 0 and
// report it (e.g. Prometheus).
int free_port();

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A command run to its end, its standard output and error kept apart.
struct Outcome {
  int exit_status = -1;  // -1: still running after the timeout (then killed)
  std::string out;
  std::string err;
};
// Runs argv[0] (a path) with its arguments, up to `timeout`; its output goes to files in `dir`
// named after `tag`. The shell only redirects: "$@" passes every argument verbatim.
Outcome run_captured(const TempDir& dir, const std::string& tag, std::vector<std::string> argv,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Reads a whole file; empty when it does not exist.
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& contents);
// The file as an editor saves it: whole, by a rename, so a watcher never reads half of it.
void save_file(const std::string& path, const std::string& contents);
// <dir>/broken.py: a server (python3 broken.py PORT) that answers its health paths (/readyz,
// /healthz) 200 and every other GET 500, as a release that starts and then fails.
void write_broken_server(const TempDir& dir);

// Polls `ready` every 20 ms until it returns true or `timeout` passes. For waiting on real
// external processes only; in-process logic uses a ManualClock instead.
template <typename Pred>
bool wait_for(Pred ready, std::chrono::milliseconds timeout);

}  // namespace prescale::testing

#include "support/subprocess_inl.h"
