#include "core/internal/config_scalars.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

namespace prescale::internal {
namespace {

constexpr std::string_view kDurationHint =
    R"(expected a duration such as "500ms", "60s", "5m" or "1h" (a bare number means seconds))";

// Longest duration accepted, a century (876,000 h): far beyond any timeout, and room to spare
// when it is added to a time point of the nanosecond Clock, whose int64 ends at ~292 years.
constexpr double kMaxDurationMs = 876000.0 * 3600 * 1000;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<std::int64_t> parse_integer(std::string_view text) {
  // One sign at most: "+-4" is not a number.
  if (!text.empty() && text.front() == '+') {
    text.remove_prefix(1);
    if (!text.empty() && text.front() == '-') return std::nullopt;
  }
  if (text.empty() || text.front() == '+') return std::nullopt;
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::optional<double> parse_number(std::string_view text) {
  if (!text.empty() && text.front() == '+') {
    text.remove_prefix(1);
    if (!text.empty() && text.front() == '-') return std::nullopt;  // one sign at most
  }
  // from_chars would accept "inf" and "nan"; a config value never means either.
  if (text.empty() || !(is_digit(text.front()) || text.front() == '-' || text.front() == '.')) {
    return std::nullopt;
  }
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<bool> parse_bool(std::string_view text) {
  for (std::string_view t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}) {
    if (text == t) return true;
  }
  for (std::string_view f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}) {
    if (text == f) return false;
  }
  return std::nullopt;
}

std::expected<std::chrono::milliseconds, std::string> parse_duration(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return std::unexpected(std::string(why) + ", got " + quote(text));
  };
  if (!text.empty() && text.front() == '-') return fail("durations cannot be negative");
  double total_ms = 0;
  if (auto seconds = parse_number(text)) {
    total_ms = *seconds * 1000;
  } else {
    // One or more <number><unit> parts: "1h30m", "1.5s".
    std::string_view rest = text;
    if (rest.empty()) return fail(kDurationHint);
    while (!rest.empty()) {
      std::size_t n = 0;
      while (n < rest.size() && (is_digit(rest[n]) || rest[n] == '.')) ++n;
      std::optional<double> amount = parse_number(rest.substr(0, n));
      if (n == 0 || !amount) return fail(kDurationHint);
      rest.remove_prefix(n);
      double unit_ms = 0;
      if (rest.starts_with("ms")) {
        unit_ms = 1, rest.remove_prefix(2);
      } else if (rest.starts_with("s")) {
        unit_ms = 1000, rest.remove_prefix(1);
      } else if (rest.starts_with("m")) {
        unit_ms = 60'000, rest.remove_prefix(1);
      } else if (rest.starts_with("h")) {
        unit_ms = 3'600'000, rest.remove_prefix(1);
      } else {
        return fail(kDurationHint);
      }
      total_ms += *amount * unit_ms;
    }
  }
  if (total_ms < 0) return fail("durations cannot be negative");
  if (total_ms > kMaxDurationMs) return fail("durations are at most a century (876000h)");
  const double whole_ms = std::round(total_ms);
  if (std::abs(total_ms - whole_ms) > 1e-6) {
    return fail("durations must be a whole number of milliseconds");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(whole_ms));
}

std::string format_duration(std::chrono::milliseconds d) {
  const std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string format_number(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "?";
  return std::string(buf, ptr);
}

std::string quote(std::string_view text) {
  constexpr std::size_t kMax = 60;
  std::string out = "\"";
  // Escaped as JSON writes them, so that a message holds no raw control character (a terminal
  // would act on it) and the quotes stay unambiguous.
  for (const char c : text.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    } else {
      out += c;
    }
  }
  if (text.size() > kMax) out += "...";
  out += '"';
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance; three rows of the DP table are enough.
  std::vector<std::size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  std::iota(prev.begin(), prev.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
  // Allow about one typo per three characters, so "replcas" finds "replicas" but "min" does
  // not turn into "max".
  const std::size_t allowed = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  std::optional<std::string> best;
  std::size_t best_distance = allowed + 1;
  for (const std::string& candidate : candidates) {
    const std::size_t d = edit_distance(word, candidate);
    if (d < best_distance && d < candidate.size()) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace prescale::internal
