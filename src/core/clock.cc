#include "core/clock.h"

#include <cassert>
#include <ctime>
#include <thread>

namespace prescale {

Clock& Clock::real() {
  static RealClock clock;
  return clock;
}

Clock::TimePoint RealClock::now() const {
  return std::chrono::time_point_cast<Duration>(std::chrono::steady_clock::now());
}

Clock::WallTime RealClock::wall_now() const {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

void RealClock::sleep_until(TimePoint deadline) { std::this_thread::sleep_until(deadline); }

ManualClock::ManualClock(WallTime wall_start) : wall_start_(wall_start) {}

Clock::TimePoint ManualClock::now() const {
  std::lock_guard lock(mu_);
  return now_;
}

Clock::WallTime ManualClock::wall_now() const {
  std::lock_guard lock(mu_);
  return wall_start_ + now_.time_since_epoch();
}

void ManualClock::sleep_until(TimePoint deadline) {
  std::unique_lock lock(mu_);
  moved_.wait(lock, [&] { return now_ >= deadline; });
}

void ManualClock::advance(Duration d) {
  {
    std::lock_guard lock(mu_);
    now_ += d;
  }
  moved_.notify_all();
}

void ManualClock::set(TimePoint t) {
  {
    std::lock_guard lock(mu_);
    assert(t >= now_);
    now_ = t;
  }
  moved_.notify_all();
}

std::string format_millis(Clock::Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

std::string format_utc(Clock::WallTime time) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(time).time_since_epoch().count();
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

// The number of `digits` digits at `text[at]`, or -1.
int digits_at(std::string_view text, size_t at, size_t digits) {
  if (at + digits > text.size()) return -1;
  int v = 0;
  for (size_t i = at; i < at + digits; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

}  // namespace

std::optional<Clock::WallTime> parse_utc(std::string_view text) {
  // 2026-01-01T00:00:00
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  const int year = digits_at(text, 0, 4), month = digits_at(text, 5, 2),
            day = digits_at(text, 8, 2);
  const int hour = digits_at(text, 11, 2), minute = digits_at(text, 14, 2);
  const int second = digits_at(text, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      second < 0 || second > 60) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year(year),
                                         std::chrono::month(static_cast<unsigned>(month)),
                                         std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) return std::nullopt;
  Clock::Duration fraction{0};
  size_t at = 19;
  if (text[at] == '.') {
    ++at;
    const size_t start = at;
    std::int64_t ns = 0;
    for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at) {
      if (at - start < 9) ns = ns * 10 + (text[at] - '0');
    }
    if (at == start) return std::nullopt;
    for (size_t n = at - start; n < 9; ++n) ns *= 10;
    fraction = std::chrono::nanoseconds(ns);
  }
  std::chrono::seconds offset{0};
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z') && at + 1 == text.size()) {
    // UTC
  } else if (at + 6 == text.size() && (text[at] == '+' || text[at] == '-') && text[at + 3] == ':') {
    const int oh = digits_at(text, at + 1, 2), om = digits_at(text, at + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return std::nullopt;
    offset = std::chrono::hours(oh) + std::chrono::minutes(om);
    if (text[at] == '-') offset = -offset;
  } else {
    return std::nullopt;
  }
  const auto local = std::chrono::sys_days(date) + std::chrono::hours(hour) +
                     std::chrono::minutes(minute) + std::chrono::seconds(second);
  return Clock::WallTime(
      std::chrono::duration_cast<Clock::Duration>((local - offset).time_since_epoch() + fraction));
}

}  // namespace prescale
