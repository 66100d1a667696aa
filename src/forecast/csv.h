// Reading the CSV data files Prescale replays: request traces (forecast/trace.h) and call-graph
// edge counts (scaling/callgraph.h). Only what those files need: one header row, comma
// separated fields, optional double quotes around a field (no escaped quotes inside; a field with
// text after its closing quote is kept whole, quotes included), CRLF or LF line ends, blank lines
// ignored. Errors name `source:line` and, for a field, its column.
//
// Thread safety: all functions are pure; a CsvReader is used by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prescale::forecast {

// Walks the rows of a CSV text. Fields are views into the text, which must outlive the reader.
class CsvReader {
 public:
  CsvReader(std::string_view text, std::string_view source);

  // Reads the next non-blank row into `fields`; false at the end of the text.
  bool next(std::vector<std::string_view>& fields);
  // 1-based line number of the row last read.
  int line() const { return line_; }
  std::string_view source() const { return source_; }

  // "source:line: message" for the row last read.
  Error error(std::string_view message) const;
  // `source:line: column 2 "requests": expected a number, got "x"` for field `column` (0-based)
  // of the row last read; `header` supplies the column's name.
  Error field_error(const std::vector<std::string_view>& header, size_t column,
                    std::string_view expected, std::string_view got) const;

 private:
  std::string_view text_;
  std::string_view source_;
  size_t pos_ = 0;
  int line_ = 0;
  int next_line_ = 1;
};

// A finite decimal number ("42", "-1.5", "3e2"); nullopt for anything else, including "nan",
// "inf" and surrounding spaces.
std::optional<double> parse_number(std::string_view text);

// A calendar timestamp as nanoseconds since the Unix epoch: `YYYY-MM-DD HH:MM`, with optional
// `:SS`, optional fraction `.fffffffff`, a `T` instead of the space, and an optional zone `Z` or
// `+HH:MM`/`-HH:MM` (`+HHMM` too). Without a zone the time is read as UTC. nullopt when the text
// is not such a timestamp, names an impossible date, or lies outside the years 1678..2261.
std::optional<int64_t> parse_timestamp_ns(std::string_view text);

// Index of the header column named `name`, or nullopt.
std::optional<size_t> find_column(const std::vector<std::string_view>& header,
                                  std::string_view name);

}  // namespace prescale::forecast
