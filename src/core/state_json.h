// Times and numbers in the JSON of a saved state (docs/state.md). A learner's times are saved as
// ages before the saving `now`, in nanoseconds — exact, and independent of where the monotonic
// clock started — and restored before the restoring `now`, so evidence does not age while
// nothing observes (the platform stopped). JSON has no NaN: null stands for it.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "core/clock.h"

namespace prescale::state_json {

std::int64_t age_ns(Clock::TimePoint now, Clock::TimePoint t);
Clock::TimePoint at_age(Clock::TimePoint now, const nlohmann::json& age);  // an integer
nlohmann::json optional_age(Clock::TimePoint now, const std::optional<Clock::TimePoint>& t);
std::optional<Clock::TimePoint> optional_at(Clock::TimePoint now, const nlohmann::json& age);

// NaN as null and back.
nlohmann::json number(double v);
double number_of(const nlohmann::json& v);

// A field of a restored state that no run could have written: thrown by the readers below (and
// by the restoring code's own checks) and caught where the state is restored, which names it.
// The readers also throw nlohmann::json's exceptions (a missing key, a string for a number).
struct BadField {
  std::string field, why;
};
double finite(const nlohmann::json& v, const std::string& field);  // a finite number
// A saved age as at_age(), checked: an integer in [0, 100 years] (a time in the future would
// hold back every later sample until the clock reached it).
Clock::TimePoint at_past_age(Clock::TimePoint now, const nlohmann::json& age,
                             const std::string& field);
std::optional<Clock::TimePoint> optional_at_past_age(Clock::TimePoint now,
                                                     const nlohmann::json& age,
                                                     const std::string& field);
double amount(const nlohmann::json& v, const std::string& field);  // and >= 0

}  // namespace prescale::state_json
