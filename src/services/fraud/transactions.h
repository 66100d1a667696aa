// Card transactions as the fraud models see them: the 30 features of the ULB/Worldline card data
// set — `Time` (seconds since the first transaction of the capture), `V1`..`V28` (PCA components)
// and `Amount` — as float32 in that order, which every model, model file and request uses; and
// reading labelled transactions from CSV (docs/services/fraud.md, "Data").
//
// Thread safety: plain values and pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prescale::fraud {

inline constexpr size_t kFeatureCount = 30;

// "Time", "V1", ..., "V28", "Amount".
std::span<const std::string_view, kFeatureCount> feature_names();
std::optional<size_t> feature_index(std::string_view name);

// One transaction's features in feature_names() order; NaN is a missing value. float32 because
// XGBoost compares float32 features with float32 split thresholds.
using Features = std::array<float, kFeatureCount>;

// A feature value read as a double: the float32 it rounds to, or nullopt when that is not finite
// (NaN, or beyond float32's range). 3.4028235e38, float32's maximum as usually printed, is a
// little above it as a double and rounds to it.
std::optional<float> to_feature(double value);

// Labelled transactions.
struct Transactions {
  std::vector<Features> rows;
  std::vector<uint8_t> labels;  // 1 = fraud, 0 = legitimate; one per row
  std::string source;           // the file read, for messages and model files
  std::string sha256;           // SHA-256 of the file's bytes, hex (as `sha256sum` prints it)

  size_t size() const { return rows.size(); }
  size_t frauds() const;
};

// Reads a CSV file whose header names Time, V1..V28, Amount and Class (in any order; other
// columns, such as the data set's unnamed index, are ignored). Every feature must be a finite
// number and Class 0 or 1. Errors name the file, the line and the column.
Result<Transactions> read_transactions(const std::string& path);
// The same from text already read; `source` names it in errors.
Result<Transactions> parse_transactions(std::string_view text, std::string_view source);

}  // namespace prescale::fraud
