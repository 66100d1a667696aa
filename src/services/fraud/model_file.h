// Versioned model files: `fraud-v<N>.json` in a model directory, one JSON manifest each — format,
// version, model kind, feature names, threshold, positive weight, creation time, training data
// (file, SHA-256, rows) and cross-validated metrics — with the model itself: XGBoost's own JSON
// model under "xgboost_model", or "logistic_regression" coefficients. The layout is in
// docs/services/fraud.md ("Model files").
//
// Loading validates everything the service relies on; an error names the file and the field
// (`models/fraud-v3.json: threshold: expected a number in (0, 1)`).
//
// Thread safety: pure functions; writing uses a temporary file and a rename, so a reader (the
// service's watcher) never sees a partial file.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.h"
#include "core/versioned_file.h"
#include "services/fraud/logistic_regression.h"
#include "services/fraud/model.h"

namespace prescale::fraud {

inline constexpr std::string_view kModelFileFormat = "prescale-fraud-model";
inline constexpr int kModelFileFormatVersion = 1;
// The largest version a model file may have (its manifest's, and so its name's).
inline constexpr int kMaxModelVersion = 1'000'000'000;

// "fraud-v<N>.json".
std::string model_file_name(int version);
// N for a name "fraud-v<N>.json" (N ≥ 1, no leading zeros), else nullopt.
std::optional<int> model_file_version(std::string_view file_name);

// Model files in `directory`, newest (highest version) first. A missing directory has none.
using ModelFileEntry = VersionedFile;
Result<std::vector<ModelFileEntry>> list_model_files(const std::string& directory);

// Validates a model file's text and compiles its model. `source` is the path (for errors); when
// its file name is fraud-v<N>.json, the manifest's version must be N.
Result<std::shared_ptr<const Model>> parse_model_file(std::string_view text,
                                                      std::string_view source);
Result<std::shared_ptr<const Model>> load_model_file(const std::string& path);

// The model body a file carries.
struct XgboostModelJson {
  std::string json;  // XGBoost's JSON model (XGBoosterSaveModelToBuffer, format "json")
};
using ModelBody = std::variant<XgboostModelJson, LogisticModel>;

// The file's text: the manifest of `info` and the body (its kind must match info.kind).
std::string model_file_text(const ModelInfo& info, const ModelBody& body);

// Writes the file for info.version into `directory` (created if missing) through a temporary
// file, flushed to the disk, then linked to its name; returns its path. kInvalidArgument if that
// version's file already exists, also when another writer creates it meanwhile.
Result<std::string> write_model_file(const std::string& directory, const ModelInfo& info,
                                     const ModelBody& body);

// One more than the highest version in `directory` (1 when it has none).
Result<int> next_model_version(const std::string& directory);

}  // namespace prescale::fraud
