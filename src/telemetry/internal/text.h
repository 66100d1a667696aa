// Name grammar, UTF-8, escaping and value rules of the Prometheus text format, shared by the
// registry, the exposition and the parser. Not public API.
#pragma once

#include <string>
#include <string_view>

namespace prescale::telemetry::internal {

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool is_valid_metric_name(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*
bool is_valid_label_name(std::string_view name);

inline bool is_metric_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
inline bool is_metric_name_char(char c) {
  return is_metric_name_start(c) || (c >= '0' && c <= '9');
}
inline bool is_label_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline bool is_label_name_char(char c) { return is_label_name_start(c) || (c >= '0' && c <= '9'); }

// Length of the valid UTF-8 sequence at the start of `s` (1..4), or 0 when it is not one
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
size_t utf8_sequence_length(std::string_view s);
bool is_valid_utf8(std::string_view s);

// Appends `s` escaped for a HELP line: `\` as `\\`, newline as `\n`.
void append_escaped_help(std::string& out, std::string_view s);
// Appends `s` escaped for a quoted label value: `\` as `\\`, `"` as `\"`, newline as `\n`.
// Invalid UTF-8 bytes become U+FFFD, so the output is always valid text.
void append_escaped_label_value(std::string& out, std::string_view s);

// A value as Prometheus' text parsers read it: Go's strconv.ParseFloat with 'p', 'P' and '_'
// refused, which leaves a decimal with optional sign and exponent, Inf or Infinity in any case
// with optional sign, and NaN in any case without one. A decimal below the smallest double is 0
// (Go rounds it there); one past the largest is an error (Go's ErrRange, which Prometheus
// reports).
bool parse_float(std::string_view s, double* out);

// Sample values: integral values below 2^53 as plain integers ("3", "1234567"), others like the
// Go client (strconv 'g', shortest round trip), and "+Inf", "-Inf", "NaN".
void append_value(std::string& out, double v);
// Exactly what the Prometheus Go client writes (strconv.FormatFloat(v, 'g', -1, 64) with
// "+Inf"): used for `le`, so bucket labels match those of Go-instrumented services.
void append_go_float(std::string& out, double v);

}  // namespace prescale::telemetry::internal
