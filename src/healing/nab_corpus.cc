// Reading the NAB corpus in place: labels/combined_windows.json names the labelled files and
// their windows as timestamp pairs; data/<category>/<file>.csv holds each file's rows.
#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/text_file.h"
#include "forecast/csv.h"
#include "healing/nab.h"

namespace prescale::healing {
namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;

// Reads one data file's rows into `file.times` / `file.values`; `times_ns` gets the exact
// timestamps, which window limits must match. Times are not required to increase: NAB's own files
// repeat some (daylight-saving changes, gaps filled with one time) and go back once.
Result<void> read_rows(const std::string& path, NabFile& file,
                       std::vector<std::int64_t>& times_ns) {
  auto text = read_text_file(path);
  if (!text) return std::unexpected(text.error());
  forecast::CsvReader csv(*text, path);
  std::vector<std::string_view> header;
  if (!csv.next(header)) {
    return make_error(ErrorCode::kInvalidArgument, path + ": empty file (expected a header row)");
  }
  const auto time_column = forecast::find_column(header, "timestamp");
  const auto value_column = forecast::find_column(header, "value");
  if (!time_column || !value_column) {
    return std::unexpected(csv.error("expected the columns \"timestamp\" and \"value\""));
  }
  const std::size_t needed = std::max(*time_column, *value_column) + 1;
  std::vector<std::string_view> fields;
  while (csv.next(fields)) {
    if (fields.size() < needed) {
      return std::unexpected(csv.error("expected " + std::to_string(header.size()) +
                                       " fields, got " + std::to_string(fields.size())));
    }
    const auto ns = forecast::parse_timestamp_ns(fields[*time_column]);
    if (!ns) {
      return std::unexpected(
          csv.field_error(header, *time_column, "a timestamp", fields[*time_column]));
    }
    const auto value = forecast::parse_number(fields[*value_column]);
    if (!value) {
      return std::unexpected(
          csv.field_error(header, *value_column, "a number", fields[*value_column]));
    }
    times_ns.push_back(*ns);
    // Floor division: a time before 1970 with a fraction stays in its own second.
    file.times.push_back(*ns / kNanosPerSecond - (*ns % kNanosPerSecond < 0 ? 1 : 0));
    file.values.push_back(*value);
  }
  if (file.times.empty()) return std::unexpected(csv.error("no rows after the header"));
  return {};
}

// The one row whose timestamp is exactly `limit`, as NAB's labeler requires of window limits.
Result<std::size_t> window_row(const nlohmann::json& limit,
                               const std::vector<std::int64_t>& times_ns,
                               const std::string& where) {
  if (!limit.is_string()) {
    return make_error(ErrorCode::kInvalidArgument, where + ": expected a timestamp string");
  }
  const auto& text = limit.get_ref<const std::string&>();
  const auto ns = forecast::parse_timestamp_ns(text);
  if (!ns) {
    return make_error(ErrorCode::kInvalidArgument, where + ": \"" + text + "\" is not a timestamp");
  }
  const auto it = std::find(times_ns.begin(), times_ns.end(), *ns);
  if (it == times_ns.end()) {
    return make_error(ErrorCode::kInvalidArgument,
                      where + ": \"" + text + "\" is not the time of a row of the data file");
  }
  if (std::find(it + 1, times_ns.end(), *ns) != times_ns.end()) {
    return make_error(
        ErrorCode::kInvalidArgument,
        where + ": \"" + text + "\" is the time of more than one row of the data file");
  }
  return static_cast<std::size_t>(it - times_ns.begin());
}

Result<std::vector<NabWindow>> read_windows(const nlohmann::json& limits,
                                            const std::vector<std::int64_t>& times_ns,
                                            const std::string& where) {
  if (!limits.is_array()) {
    return make_error(ErrorCode::kInvalidArgument, where + ": expected a list of windows");
  }
  std::vector<NabWindow> windows;
  for (std::size_t k = 0; k < limits.size(); ++k) {
    const std::string at = where + " window " + std::to_string(k);
    const nlohmann::json& pair = limits[k];
    if (!pair.is_array() || pair.size() != 2) {
      return make_error(ErrorCode::kInvalidArgument, at + ": expected [start, end] timestamps");
    }
    auto first = window_row(pair[0], times_ns, at + " start");
    if (!first) return std::unexpected(first.error());
    auto last = window_row(pair[1], times_ns, at + " end");
    if (!last) return std::unexpected(last.error());
    if (*last < *first) {
      return make_error(ErrorCode::kInvalidArgument, at + ": ends before it starts");
    }
    if (!windows.empty() && *first <= windows.back().last) {
      return make_error(ErrorCode::kInvalidArgument,
                        at + ": overlaps or comes before the previous window");
    }
    windows.push_back({*first, *last});
  }
  return windows;
}

}  // namespace

Result<std::vector<NabFile>> load_nab_corpus(const std::string& nab_dir) {
  const std::string labels_path = nab_dir + "/labels/combined_windows.json";
  auto labels_text = read_text_file(labels_path);
  if (!labels_text) return std::unexpected(labels_text.error());
  const auto labels = nlohmann::json::parse(*labels_text, nullptr, /*allow_exceptions=*/false);
  if (labels.is_discarded() || !labels.is_object()) {
    return make_error(ErrorCode::kInvalidArgument,
                      labels_path + ": expected a JSON object of data files and their windows");
  }
  std::vector<NabFile> files;
  // nlohmann::json keeps object keys sorted: files come in name order.
  for (const auto& [name, limits] : labels.items()) {
    NabFile file;
    file.name = name;
    std::vector<std::int64_t> times_ns;
    if (auto read = read_rows(nab_dir + "/data/" + name, file, times_ns); !read) {
      return std::unexpected(read.error());
    }
    auto windows = read_windows(limits, times_ns, labels_path + ": " + name);
    if (!windows) return std::unexpected(windows.error());
    file.windows = std::move(*windows);
    file.probation = nab_probation_rows(file.times.size());
    files.push_back(std::move(file));
  }
  return files;
}

}  // namespace prescale::healing
