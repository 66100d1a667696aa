#include "telemetry/internal/text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

namespace prescale::telemetry::internal {

bool is_valid_metric_name(std::string_view name) {
  if (name.empty() || !is_metric_name_start(name[0])) return false;
  for (char c : name) {
    if (!is_metric_name_char(c)) return false;
  }
  return true;
}

bool is_valid_label_name(std::string_view name) {
  if (name.empty() || !is_label_name_start(name[0])) return false;
  for (char c : name) {
    if (!is_label_name_char(c)) return false;
  }
  return true;
}

size_t utf8_sequence_length(std::string_view s) {
  if (s.empty()) return 0;
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto continuation = [&](size_t i) { return i < s.size() && (byte(i) & 0xC0) == 0x80; };
  unsigned char c = byte(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return continuation(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (s.size() < 3 || !continuation(1) || !continuation(2)) return 0;
    if (c == 0xE0 && byte(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && byte(1) > 0x9F) return 0;  // UTF-16 surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (s.size() < 4 || !continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (c == 0xF0 && byte(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && byte(1) > 0x8F) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = utf8_sequence_length(s.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void append_escaped_help(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_escaped_label_value(std::string& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      size_t n = utf8_sequence_length(s.substr(i));
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
    ++i;
  }
}

namespace {

// Returns true when it wrote one of the special values.
bool append_special(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    return false;
  }
  return true;
}

bool equals_ignoring_case(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((s[i] | 0x20) != lower[i]) return false;
  }
  return true;
}

// Whether a decimal that std::from_chars found out of range is too small for a double rather
// than too large: the power of ten of its first nonzero digit is negative. The exponent saturates,
// which cannot change its sign.
bool is_below_smallest_double(std::string_view decimal) {
  size_t e = decimal.find_first_of("eE");
  std::string_view mantissa = decimal.substr(0, e);
  int64_t exponent = 0;
  if (e != std::string_view::npos) {
    std::string_view digits = decimal.substr(e + 1);
    bool negative = digits.front() == '-';
    if (digits.front() == '-' || digits.front() == '+') digits.remove_prefix(1);
    for (char c : digits) exponent = std::min<int64_t>(exponent * 10 + (c - '0'), 1'000'000'000);
    if (negative) exponent = -exponent;
  }
  size_t point = std::min(mantissa.find('.'), mantissa.size());
  size_t first = mantissa.find_first_not_of("0.");
  int64_t leading = first < point ? static_cast<int64_t>(point - first) - 1
                                  : -static_cast<int64_t>(first - point);
  return leading + exponent < 0;
}

}  // namespace

bool parse_float(std::string_view s, double* out) {
  bool negative = false;
  std::string_view unsigned_part = s;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    unsigned_part.remove_prefix(1);
  }
  if (equals_ignoring_case(unsigned_part, "inf") ||
      equals_ignoring_case(unsigned_part, "infinity")) {
    *out = negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
    return true;
  }
  if (equals_ignoring_case(s, "nan")) {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  // Digits and a point first, so that from_chars, which also reads "nan(...)", "inf" and, after
  // a "0", stops before "x", is only given decimals.
  if (unsigned_part.empty() ||
      !(unsigned_part[0] == '.' || (unsigned_part[0] >= '0' && unsigned_part[0] <= '9'))) {
    return false;
  }
  double v = 0;
  const char* end = unsigned_part.data() + unsigned_part.size();
  auto [stop, ec] = std::from_chars(unsigned_part.data(), end, v);
  if (stop != end) return false;
  if (ec == std::errc::result_out_of_range && is_below_smallest_double(unsigned_part)) {
    v = 0;
  } else if (ec != std::errc()) {
    return false;
  }
  *out = negative ? -v : v;
  return true;
}

void append_go_float(std::string& out, double v) {
  if (append_special(out, v)) return;
  if (v == 0) {  // Go writes "0" for -0 as well
    out += '0';
    return;
  }
  // The shortest round-trip digits in scientific form give Go's exponent; Go's 'g' with
  // shortest precision switches to %e when the exponent is < -4 or >= 6 (eprec = 6), and then
  // its %e output (at least two exponent digits) is what to_chars writes.
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view s(buf, static_cast<size_t>(sci.ptr - buf));
  size_t e = s.find('e');  // then a sign and at least two digits
  int exponent = 0;
  std::from_chars(s.data() + e + 2, s.data() + s.size(), exponent);
  if (s[e + 1] == '-') exponent = -exponent;
  if (exponent < -4 || exponent >= 6) {
    out.append(s);
    return;
  }
  auto fixed = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  out.append(buf, fixed.ptr);
}

void append_value(std::string& out, double v) {
  constexpr double kExactIntegers = 0x1p53;
  if (std::isfinite(v) && std::fabs(v) < kExactIntegers && v == std::trunc(v)) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    out.append(buf, r.ptr);
    return;
  }
  append_go_float(out, v);
}

}  // namespace prescale::telemetry::internal
