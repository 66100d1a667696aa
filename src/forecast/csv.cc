#include "forecast/csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace prescale::forecast {

CsvReader::CsvReader(std::string_view text, std::string_view source)
    : text_(text), source_(source) {
  // A UTF-8 byte order mark is not part of the first column's name.
  if (text_.starts_with("\xEF\xBB\xBF")) pos_ = 3;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool CsvReader::next(std::vector<std::string_view>& fields) {
  fields.clear();
  while (pos_ < text_.size()) {
    size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    std::string_view row = text_.substr(pos_, end - pos_);
    pos_ = end + 1;
    line_ = next_line_++;
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    if (trim(row).empty()) continue;

    size_t i = 0;
    for (;;) {
      // Only leading blanks are skipped here: `offset` is where the field starts in the row.
      const size_t offset = std::min(row.find_first_not_of(" \t", i), row.size());
      std::string_view rest = row.substr(offset);
      if (!rest.empty() && rest.front() == '"') {
        size_t close = rest.find('"', 1);
        if (close == std::string_view::npos) {
          fields.push_back(trim(rest.substr(1)));  // an unclosed quote runs to the row's end
          break;
        }
        size_t comma = row.find(',', offset + close);
        const size_t field_end = comma == std::string_view::npos ? row.size() : comma;
        // Text after the closing quote (`"12"34`) makes it no quoted field: kept whole, quotes
        // and all, it reads as what it is instead of silently as "12".
        const bool whole =
            !trim(row.substr(offset + close + 1, field_end - offset - close - 1)).empty();
        fields.push_back(whole ? trim(row.substr(offset, field_end - offset))
                               : rest.substr(1, close - 1));
        if (comma == std::string_view::npos) break;
        i = comma + 1;
      } else {
        size_t comma = row.find(',', i);
        fields.push_back(
            trim(row.substr(i, comma == std::string_view::npos ? row.npos : comma - i)));
        if (comma == std::string_view::npos) break;
        i = comma + 1;
      }
    }
    return true;
  }
  return false;
}

Error CsvReader::error(std::string_view message) const {
  std::string text(source_);
  text += ':';
  text += std::to_string(line_);
  text += ": ";
  text += message;
  return Error{ErrorCode::kInvalidArgument, std::move(text)};
}

Error CsvReader::field_error(const std::vector<std::string_view>& header, size_t column,
                             std::string_view expected, std::string_view got) const {
  std::string message = "column " + std::to_string(column + 1);
  if (column < header.size()) {
    message += " \"";
    message += header[column];
    message += '"';
  }
  message += ": expected ";
  message += expected;
  message += ", got \"";
  message += got;
  message += '"';
  return error(message);
}

std::optional<double> parse_number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text.front() == '+') text.remove_prefix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

namespace {

// Reads exactly `n` digits at `pos`; advances `pos`.
bool digits(std::string_view s, size_t& pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t k = 0; k < n; ++k) {
    char c = s[pos + k];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  pos += n;
  return true;
}

bool consume(std::string_view s, size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

}  // namespace

std::optional<int64_t> parse_timestamp_ns(std::string_view s) {
  size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(s, pos, 4, year) || !consume(s, pos, '-') || !digits(s, pos, 2, month) ||
      !consume(s, pos, '-') || !digits(s, pos, 2, day)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return std::nullopt;
  int64_t fraction_ns = 0;
  if (pos < s.size()) {
    if (!consume(s, pos, ' ') && !consume(s, pos, 'T')) return std::nullopt;
    if (!digits(s, pos, 2, hour) || !consume(s, pos, ':') || !digits(s, pos, 2, minute)) {
      return std::nullopt;
    }
    if (consume(s, pos, ':')) {
      if (!digits(s, pos, 2, second)) return std::nullopt;
      if (consume(s, pos, '.')) {
        int64_t scale = 100'000'000;
        size_t first = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          fraction_ns += (s[pos] - '0') * scale;
          scale /= 10;
          ++pos;
        }
        if (pos == first) return std::nullopt;
      }
    }
    if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
  }
  int64_t offset_seconds = 0;
  if (consume(s, pos, 'Z')) {
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh = 0, om = 0;
    if (!digits(s, pos, 2, oh)) return std::nullopt;
    consume(s, pos, ':');
    if (!digits(s, pos, 2, om) || oh > 23 || om > 59) return std::nullopt;
    offset_seconds = int64_t{sign} * (int64_t{oh} * 3600 + int64_t{om} * 60);
  }
  if (pos != s.size()) return std::nullopt;
  if (year < 1678 || year > 2261) return std::nullopt;  // nanoseconds must fit an int64
  int64_t seconds = days_from_civil(year, month, day) * 86400 + int64_t{hour} * 3600 +
                    int64_t{minute} * 60 + second - offset_seconds;
  return seconds * 1'000'000'000 + fraction_ns;
}

std::optional<size_t> find_column(const std::vector<std::string_view>& header,
                                  std::string_view name) {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return i;
  }
  return std::nullopt;
}

}  // namespace prescale::forecast
