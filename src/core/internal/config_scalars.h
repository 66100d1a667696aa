// Text-level pieces of the config loader: scalar parsing, value formatting for messages, and
// "did you mean" suggestions. No YAML here, so each piece is testable on plain strings.
// Not public API.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prescale::internal {

// Decimal integer with an optional sign ("42", "-1", "+7"). Nothing else.
std::optional<std::int64_t> parse_integer(std::string_view text);

// Finite decimal number ("0.001", "1e3", "-2"). Rejects nan and infinities.
std::optional<double> parse_number(std::string_view text);

// true/false, yes/no, on/off in lower, Title or UPPER case.
std::optional<bool> parse_bool(std::string_view text);

// "500ms", "60s", "5m", "1h", "1.5s", "1h30m"; a bare number means seconds ("90", "0.25").
// Durations are non-negative and a whole number of milliseconds. The error is a full sentence
// fragment for a message, e.g. `expected a duration such as ..., got "abc"`.
std::expected<std::chrono::milliseconds, std::string> parse_duration(std::string_view text);

// The shortest form that reads back to the same value: "500ms", "15s", "5m", "2h", "1500ms".
std::string format_duration(std::chrono::milliseconds d);

// Shortest round-trip form: 0.001 -> "0.001", 200 -> "200".
std::string format_number(double v);

// `"text"`, cut to a readable length; `"`, `\` and control characters escaped as JSON escapes them.
std::string quote(std::string_view text);

// Edit distance counting insertions, deletions, substitutions and adjacent transpositions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word` when it is close enough to be a likely typo.
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);

// `a, b, c` — for listing allowed values in a message.
std::string join_names(const std::vector<std::string>& names);

}  // namespace prescale::internal
