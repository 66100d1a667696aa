// Process-wide structured logging on spdlog.
//
// `init_logging` configures the default logger once at start-up (CLI edge); code then logs with
// spdlog's functions (`spdlog::info("replica {} ready", id)`). In JSON mode every line is one
// JSON object: {"ts":"2026-11-28T04:10:00.123Z","level":"info","logger":"prescale","msg":"..."},
// suitable for log shippers.
#pragma once

#include <string>
#include <string_view>

namespace prescale {

enum class LogFormat { kText, kJson };

struct LogOptions {
  std::string level = "info";  // trace | debug | info | warn | error | off
  LogFormat format = LogFormat::kText;
  std::string logger_name = "prescale";
};

// Returns false (and leaves logging unchanged) when `level` is not a known level name.
bool init_logging(const LogOptions& options);

// Escapes `s` as the contents of a JSON string (no surrounding quotes).
std::string json_escape(std::string_view s);

}  // namespace prescale
