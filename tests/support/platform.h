// A running `prescale up` for end-to-end tests: started with port files for the gateway and the
// dashboard, read through the dashboard's JSON API, and stopped with SIGINT however the test
// ends (the Subprocess's own SIGKILL would leave its replicas running).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "http/message.h"
#include "support/subprocess.h"

namespace prescale::testing {

// A GET of `target`, for http::Client.
http::Request get_request(std::string target);

// The port a server wrote to `file` once listening (its --port-file), waited for up to 10 s;
// 0 when none came.
int port_from_file(const std::string& file);

// GET http://127.0.0.1:port/target as JSON; null unless it answered 200 with JSON.
nlohmann::json get_json(std::uint16_t port, const std::string& target);

// The pids of the replicas a platform started: its "start" and "restart" events read
// "pid N, ...".
std::vector<int> replica_pids(const nlohmann::json& events);

// Whether `pid` runs (a zombie, which still answers kill(pid, 0), does not).
bool process_alive(int pid);

class Platform {
 public:
  // Runs `prescale up -f config --state-dir state --ui 127.0.0.1:0 ... extra` with its output
  // in <dir>/<name>.log, and waits up to 20 s for both ports (started()).
  Platform(const std::string& prescale_bin, const TempDir& dir, const std::string& config,
           const std::string& state, const std::vector<std::string>& extra,
           const std::string& name);
  ~Platform() { stop(); }
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  bool started() const { return started_; }
  std::uint16_t gateway_port() const { return gateway_port_; }
  std::uint16_t ui_port() const { return ui_port_; }
  // SIGINT, then the exit status (nullopt if it did not exit within 60 s); idempotent.
  std::optional<int> stop();
  // Sends `sig` to the platform (nothing once stopped).
  void signal(int sig) const {
    if (proc_) proc_->signal(sig);
  }
  // The platform's output so far (all of it once stopped).
  std::string log() const;

  nlohmann::json service(const std::string& name) const {
    return get_json(ui_port_, "/api/v1/services/" + name);
  }
  nlohmann::json events() const { return get_json(ui_port_, "/api/v1/events"); }

 private:
  std::unique_ptr<Subprocess> proc_;
  std::string log_path_;
  bool started_ = false;
  std::uint16_t gateway_port_ = 0, ui_port_ = 0;
  std::optional<int> exit_code_;
};

}  // namespace prescale::testing
