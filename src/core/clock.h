// Clock: the only place Prescale reads time.
//
// Everything that needs "now" (controller periods, breaker and rate-limiter windows, request
// latency, process start time) takes a `Clock&`. Production uses `RealClock`; tests and the
// simulator drive a `ManualClock`, so nothing sleeps on the real clock in tests.
//
// Thread safety: both implementations are safe to call from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace prescale {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  // Monotonic time: only differences are meaningful.
  using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;
  // Wall-clock time: for timestamps shown to people and exported (e.g. process start time).
  using WallTime = std::chrono::time_point<std::chrono::system_clock, Duration>;

  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  virtual WallTime wall_now() const = 0;
  // Blocks the calling thread until now() >= deadline.
  virtual void sleep_until(TimePoint deadline) = 0;

  // The process-wide real clock.
  static Clock& real();
};

class RealClock final : public Clock {
 public:
  TimePoint now() const override;
  WallTime wall_now() const override;
  void sleep_until(TimePoint deadline) override;
};

// A clock that moves only when told to. sleep_until() blocks until another thread advances
// the clock past the deadline.
class ManualClock final : public Clock {
 public:
  // Starts at monotonic time 0 and the given wall time (default 2026-01-01T00:00:00Z).
  explicit ManualClock(WallTime wall_start = WallTime(std::chrono::seconds(1767225600)));

  TimePoint now() const override;
  WallTime wall_now() const override;
  void sleep_until(TimePoint deadline) override;

  void advance(Duration d);
  void set(TimePoint t);  // t must not be earlier than now()

 private:
  mutable std::mutex mu_;
  std::condition_variable moved_;
  TimePoint now_{};
  WallTime wall_start_;
};

// Seconds as a double, for metrics and JSON.
inline double to_seconds(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

// A duration in whole milliseconds, cut towards zero, for messages people read: "150 ms".
std::string format_millis(Clock::Duration d);

// `time` as RFC 3339 in UTC to the second, rounded down: "2026-01-01T00:00:00Z". For the
// creation times written into model files.
std::string format_utc(Clock::WallTime time);

// RFC 3339 as the Kubernetes API writes its timestamps: "2026-01-01T00:00:00Z", with an optional
// fraction of a second ("...:00.123456Z") and a numeric offset ("+02:00") in place of "Z";
// nullopt for anything else, or a date that does not exist.
std::optional<Clock::WallTime> parse_utc(std::string_view text);

}  // namespace prescale
