#include "support/browser.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace prescale::testing {

using namespace std::chrono_literals;
using nlohmann::json;

json WebDriver::call(http::Method method, const std::string& path, const json& body) {
  http::Request req;
  req.method = method;
  req.method_name = std::string(http::to_string(method));
  req.target = path;
  if (!body.is_null()) {
    req.body = body.dump();
    req.headers.set("Content-Type", "application/json");
  }
  auto r = client_.request("127.0.0.1", port_, std::move(req), 60s);
  if (!r) {
    error_ = path + ": " + r.error().to_string();
    return nullptr;
  }
  json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (r->status != 200 || j.is_discarded()) {
    error_ = path + ": HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 500);
    return nullptr;
  }
  error_.clear();
  return j.value("value", json(nullptr));
}

void kill_children_of(pid_t pid) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  while (dirent* e = readdir(proc)) {
    const pid_t child = static_cast<pid_t>(std::atoi(e->d_name));
    if (child <= 0) continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    std::getline(stat, line);
    // "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == pid) {
      ::kill(child, SIGKILL);
    }
  }
  closedir(proc);
}

std::string base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0;
  unsigned acc = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) continue;  // '=' padding, line breaks
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

bool Browser::available() {
  return access(kChromium, X_OK) == 0 && access(kChromedriver, X_OK) == 0;
}

std::expected<std::unique_ptr<Browser>, std::string> Browser::start(const std::string& dir) {
  const int port = free_port();
  auto process = std::make_unique<Subprocess>(
      std::vector<std::string>{kChromedriver, "--port=" + std::to_string(port)},
      dir + "/chromedriver.log");
  std::unique_ptr<Browser> b(new Browser(std::move(process), static_cast<uint16_t>(port)));
  const bool ready = wait_for(
      [&] {
        json s = b->driver_.call(http::Method::kGet, "/status");
        return s.is_object() && s.value("ready", false);
      },
      20s);
  if (!ready) {
    return std::unexpected("chromedriver did not start: " + b->error() + "\n" + b->driver_log());
  }
  json caps = {{"capabilities",
                {{"alwaysMatch",
                  {{"browserName", "chrome"},
                   {"goog:chromeOptions",
                    {{"binary", kChromium},
                     {"args",
                      {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                       "--window-size=1400,1000", "--user-data-dir=" + dir + "/profile"}}}},
                   {"goog:loggingPrefs", {{"browser", "ALL"}}}}}}}};
  json session = b->driver_.call(http::Method::kPost, "/session", caps);
  if (!session.is_object()) {
    return std::unexpected("no browser session: " + b->error() + "\n" + b->driver_log());
  }
  b->session_ = "/session/" + session.value("sessionId", std::string());
  return b;
}

Browser::~Browser() {
  if (!session_.empty()) driver_.call(http::Method::kDelete, session_);
  kill_children_of(process_->pid());
}

bool Browser::navigate(const std::string& url) {
  driver_.call(http::Method::kPost, session_ + "/url", {{"url", url}});
  return driver_.error().empty();
}

json Browser::script(const std::string& body) {
  return driver_.call(http::Method::kPost, session_ + "/execute/sync",
                      {{"script", body}, {"args", json::array()}});
}

json Browser::log() {
  // ChromeDriver serves the legacy log endpoint under /se/ in W3C mode; older ones without.
  json log = driver_.call(http::Method::kPost, session_ + "/se/log", {{"type", "browser"}});
  if (log.is_null()) {
    log = driver_.call(http::Method::kPost, session_ + "/log", {{"type", "browser"}});
  }
  return log;
}

std::expected<std::string, std::string> Browser::screenshot_png() {
  json png = driver_.call(http::Method::kGet, session_ + "/screenshot");
  if (!png.is_string()) return std::unexpected(error());
  std::string bytes = base64_decode(png.get<std::string>());
  if (bytes.size() < 8 || bytes.substr(1, 3) != "PNG") {
    return std::unexpected("the screenshot is not a PNG");
  }
  return bytes;
}

}  // namespace prescale::testing
