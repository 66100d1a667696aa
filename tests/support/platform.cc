#include "support/platform.h"

#include <signal.h>

#include <filesystem>
#include <regex>

#include "http/client.h"

namespace prescale::testing {

using namespace std::chrono_literals;

http::Request get_request(std::string target) {
  http::Request req;
  req.method = http::Method::kGet;
  req.method_name = "GET";
  req.target = std::move(target);
  return req;
}

int port_from_file(const std::string& file) {
  wait_for([&] { return !read_file(file).empty(); }, 10s);
  const std::string text = read_file(file);
  return text.empty() ? 0 : std::stoi(text);
}

nlohmann::json get_json(std::uint16_t port, const std::string& target) {
  http::Client client;
  auto r = client.request("127.0.0.1", port, get_request(target), 5s);
  if (!r || r->status != 200) return nullptr;
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? nlohmann::json() : j;
}

std::vector<int> replica_pids(const nlohmann::json& events) {
  std::vector<int> pids;
  if (!events.is_object() || !events.contains("events")) return pids;
  static const std::regex pid_re("pid ([0-9]+)");
  for (const auto& e : events["events"]) {
    const auto kind = e.find("kind"), message = e.find("message");
    if (kind == e.end() || message == e.end() || !message->is_string()) continue;
    if (*kind != "start" && *kind != "restart") continue;
    const std::string& text = message->get_ref<const std::string&>();
    std::smatch m;
    if (std::regex_search(text, m, pid_re)) pids.push_back(std::stoi(m[1]));
  }
  return pids;
}

bool process_alive(int pid) {
  if (::kill(pid, 0) != 0) return false;
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

Platform::Platform(const std::string& prescale_bin, const TempDir& dir, const std::string& config,
                   const std::string& state, const std::vector<std::string>& extra,
                   const std::string& name)
    : log_path_(dir.file(name + ".log")) {
  const std::string gw = dir.file(name + ".gw"), ui = dir.file(name + ".ui");
  std::filesystem::remove(gw);
  std::filesystem::remove(ui);
  std::vector<std::string> argv = {prescale_bin, "up", "-f", config, "--state-dir", state,
                                   "--ui", "127.0.0.1:0", "--port-file", gw,
                                   "--ui-port-file", ui};
  argv.insert(argv.end(), extra.begin(), extra.end());
  proc_ = std::make_unique<Subprocess>(argv, log_path_);
  started_ = wait_for([&] { return !read_file(gw).empty() && !read_file(ui).empty(); }, 20s);
  if (started_) {
    gateway_port_ = static_cast<std::uint16_t>(std::stoi(read_file(gw)));
    ui_port_ = static_cast<std::uint16_t>(std::stoi(read_file(ui)));
  }
}

std::optional<int> Platform::stop() {
  if (!proc_) return exit_code_;
  proc_->signal(SIGINT);
  exit_code_ = proc_->wait(60s);
  proc_.reset();
  return exit_code_;
}

std::string Platform::log() const { return read_file(log_path_); }

}  // namespace prescale::testing
