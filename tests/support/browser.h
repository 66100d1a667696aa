// Headless Chromium for browser tests, driven through ChromeDriver's W3C WebDriver HTTP API over
// the project's HTTP client. Needs the Debian packages chromium and chromium-driver
// (scripts/install-deps); tests check Browser::available() and skip without them.
//
// Not thread-safe: one test thread drives one Browser.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "http/client.h"
#include "support/subprocess.h"

namespace prescale::testing {

// The few WebDriver calls tests need.
class WebDriver {
 public:
  explicit WebDriver(uint16_t port) : port_(port) {}

  // The "value" member of the answer; a JSON null with the error in `error()` on failure.
  nlohmann::json call(http::Method method, const std::string& path,
                      const nlohmann::json& body = nullptr);
  const std::string& error() const { return error_; }

 private:
  uint16_t port_;
  http::Client client_;
  std::string error_;
};

// Kills the processes whose parent is `pid` (the browser ChromeDriver started), so a failed
// test leaves no Chromium behind. Their own children exit when they do.
void kill_children_of(pid_t pid);

// Decodes standard base64, skipping '=' padding and line breaks.
std::string base64_decode(std::string_view in);

// ChromeDriver and one headless Chromium session with the browser log enabled. The destructor
// ends the session, kills the browser and stops ChromeDriver.
class Browser {
 public:
  static constexpr const char* kChromium = "/usr/bin/chromium";
  static constexpr const char* kChromedriver = "/usr/bin/chromedriver";

  // Whether Chromium and ChromeDriver are installed.
  static bool available();

  // Starts ChromeDriver (its log in `dir`/chromedriver.log) and a session with a 1400×1000
  // window and its profile in `dir`/profile. The error says why, with ChromeDriver's log.
  static std::expected<std::unique_ptr<Browser>, std::string> start(const std::string& dir);

  ~Browser();
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;

  // Loads `url` and waits for the page's load event.
  bool navigate(const std::string& url);
  // Runs `body` (a JavaScript function body) in the page and returns what it returns.
  nlohmann::json script(const std::string& body);
  // The browser log entries since the last call ({"level", "message", "timestamp"}); null on
  // failure.
  nlohmann::json log();
  // The visible page as PNG bytes.
  std::expected<std::string, std::string> screenshot_png();

  // Why the last call failed; empty after a call that succeeded.
  const std::string& error() const { return driver_.error(); }
  // ChromeDriver's log, for failure messages.
  std::string driver_log() const { return process_->log(); }

 private:
  Browser(std::unique_ptr<Subprocess> process, uint16_t port)
      : process_(std::move(process)), driver_(port) {}

  std::unique_ptr<Subprocess> process_;
  WebDriver driver_;
  std::string session_;  // "/session/ID"
};

}  // namespace prescale::testing
