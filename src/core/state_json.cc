#include "core/state_json.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace prescale::state_json {

std::int64_t age_ns(Clock::TimePoint now, Clock::TimePoint t) { return (now - t).count(); }

Clock::TimePoint at_age(Clock::TimePoint now, const nlohmann::json& age) {
  return now - Clock::Duration(age.get<std::int64_t>());
}

nlohmann::json optional_age(Clock::TimePoint now, const std::optional<Clock::TimePoint>& t) {
  return t ? nlohmann::json(age_ns(now, *t)) : nlohmann::json();
}

std::optional<Clock::TimePoint> optional_at(Clock::TimePoint now, const nlohmann::json& age) {
  if (age.is_null()) return std::nullopt;
  return at_age(now, age);
}

nlohmann::json number(double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); }

double number_of(const nlohmann::json& v) { return v.is_null() ? NAN : v.get<double>(); }

double finite(const nlohmann::json& v, const std::string& field) {
  const double x = v.get<double>();
  if (!std::isfinite(x)) throw BadField{field, "not a finite number"};
  return x;
}

Clock::TimePoint at_past_age(Clock::TimePoint now, const nlohmann::json& age,
                             const std::string& field) {
  constexpr std::int64_t kCentury = std::int64_t{100} * 366 * 24 * 3600 * 1'000'000'000;
  if (!age.is_number_integer()) throw BadField{field, "not an age in whole nanoseconds"};
  const auto ns = age.get<std::int64_t>();
  if (ns < 0 || ns > kCentury) throw BadField{field, "not an age in [0, 100 years]"};
  return now - Clock::Duration(ns);
}

std::optional<Clock::TimePoint> optional_at_past_age(Clock::TimePoint now,
                                                     const nlohmann::json& age,
                                                     const std::string& field) {
  if (age.is_null()) return std::nullopt;
  return at_past_age(now, age, field);
}

double amount(const nlohmann::json& v, const std::string& field) {
  const double x = finite(v, field);
  if (x < 0) throw BadField{field, "negative"};
  return x;
}

}  // namespace prescale::state_json
