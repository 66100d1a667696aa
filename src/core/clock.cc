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

}  // namespace prescale
