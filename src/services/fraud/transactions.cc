#include "services/fraud/transactions.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/sha256.h"
#include "core/text_file.h"
#include "forecast/csv.h"

namespace prescale::fraud {
namespace {

constexpr std::array<std::string_view, kFeatureCount> kNames = {
    "Time", "V1",  "V2",  "V3",  "V4",  "V5",  "V6",  "V7",  "V8",  "V9",
    "V10",  "V11", "V12", "V13", "V14", "V15", "V16", "V17", "V18", "V19",
    "V20",  "V21", "V22", "V23", "V24", "V25", "V26", "V27", "V28", "Amount"};

}  // namespace

std::span<const std::string_view, kFeatureCount> feature_names() { return kNames; }

std::optional<size_t> feature_index(std::string_view name) {
  const auto* it = std::find(kNames.begin(), kNames.end(), name);
  if (it == kNames.end()) return std::nullopt;
  return static_cast<size_t>(it - kNames.begin());
}

std::optional<float> to_feature(double value) {
  // Doubles below float32's maximum plus half its last step round to a finite float; from there
  // on (the midpoint included: it rounds to the even neighbour, infinity) they do not.
  constexpr double kRoundsToInfinity =
      static_cast<double>(std::numeric_limits<float>::max()) + 0x1p103;
  if (!(std::abs(value) < kRoundsToInfinity)) return std::nullopt;
  return static_cast<float>(value);
}

size_t Transactions::frauds() const {
  return static_cast<size_t>(std::count(labels.begin(), labels.end(), uint8_t{1}));
}

Result<Transactions> parse_transactions(std::string_view text, std::string_view source) {
  forecast::CsvReader reader(text, source);
  std::vector<std::string_view> header;
  if (!reader.next(header)) {
    return make_error(ErrorCode::kInvalidArgument, std::string(source) +
                                                       ": empty file, expected "
                                                       "a header row");
  }
  std::array<size_t, kFeatureCount> columns{};
  for (size_t f = 0; f < kFeatureCount; ++f) {
    auto column = forecast::find_column(header, kNames[f]);
    if (!column) {
      return std::unexpected(reader.error("no column \"" + std::string(kNames[f]) +
                                          "\" in the header (need Time, V1..V28, Amount, Class)"));
    }
    columns[f] = *column;
  }
  auto class_column = forecast::find_column(header, "Class");
  if (!class_column) {
    return std::unexpected(reader.error("no column \"Class\" in the header (the label, 0 or 1)"));
  }
  const size_t needed = std::max(*class_column, *std::max_element(columns.begin(), columns.end()));

  Transactions out;
  out.source = std::string(source);
  out.sha256 = sha256_hex(text);
  std::vector<std::string_view> fields;
  while (reader.next(fields)) {
    if (fields.size() <= needed) {
      return std::unexpected(reader.error(std::to_string(fields.size()) +
                                          " fields, the header has " +
                                          std::to_string(header.size())));
    }
    Features row{};
    for (size_t f = 0; f < kFeatureCount; ++f) {
      const std::string_view field = fields[columns[f]];
      auto value = forecast::parse_number(field);
      auto feature = value ? to_feature(*value) : std::nullopt;
      if (!feature) {
        return std::unexpected(
            reader.field_error(header, columns[f], "a finite number (float32)", field));
      }
      row[f] = *feature;
    }
    const std::string_view label = fields[*class_column];
    auto cls = forecast::parse_number(label);
    if (!cls || (*cls != 0 && *cls != 1)) {
      return std::unexpected(reader.field_error(header, *class_column, "0 or 1", label));
    }
    out.rows.push_back(row);
    out.labels.push_back(static_cast<uint8_t>(*cls));
  }
  if (out.rows.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(source) + ": no transactions after the header");
  }
  return out;
}

Result<Transactions> read_transactions(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return std::unexpected(text.error());
  return parse_transactions(*text, path);
}

}  // namespace prescale::fraud
