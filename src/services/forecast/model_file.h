// Versioned model files of the forecast service. A model directory holds, per trained version N,
//   forecast-vN.ubj   the global booster: XGBoost's own model (UBJSON)
//   forecast-vN.json  its manifest: format, version, creation time, the booster's definition
//                     (feature columns and GbtOptions, forecast/gbt_file.h), the training data
//                     (traces and their SHA-256), validation metrics, and the .ubj's size and
//                     SHA-256
// Saving writes the .ubj, then the manifest, each through a temporary file and a rename, so a
// reader that keys off manifests never sees a partial model. Loading checks the manifest's
// fields and the .ubj's size and hash before XGBoost reads it; errors name the file and the
// field, e.g. "models/forecast-v3.json: booster.options.max_depth: expected ...". The layout is in
// docs/services/forecast.md ("Model files").
//
// Thread safety: functions are safe to call concurrently; saves into one directory at once get
// versions of their own (creating the .ubj claims a version).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/versioned_file.h"
#include "forecast/gbt_model.h"

namespace prescale::services::forecast_service {

inline constexpr std::string_view kModelFileFormat = "prescale-forecast-model";
inline constexpr int kModelFileFormatVersion = 1;
// The largest version a model file may have (its manifest's, and so its name's).
inline constexpr int kMaxModelVersion = 1'000'000'000;
// The version the service reports without a model file: that of the forecasting method alone
// (models fitted from each request's own data).
inline constexpr std::string_view kMethodVersion = "forecaster-1";
// The candidate name under which a model file's booster joins each fit's backtest.
inline constexpr std::string_view kGlobalModelName = "gbt_global";

// What the service forecasts with: a model file's booster and manifest facts, or (version 0)
// nothing but the method.
struct ForecastModel {
  int version = 0;
  std::shared_ptr<const forecast::GbtBooster> booster;  // null for version 0
  std::string created_at;                               // RFC 3339, UTC
  nlohmann::json training = nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::object();
  std::string manifest_path;

  // "v<N>", or kMethodVersion for version 0.
  std::string version_label() const;
};

// "forecast-v<N>.json" and "forecast-v<N>.ubj".
std::string manifest_file_name(int version);
std::string booster_file_name(int version);
// N for a manifest name "forecast-v<N>.json" (N ≥ 1, no leading zeros), else nullopt.
std::optional<int> manifest_version(std::string_view file_name);

using ManifestEntry = VersionedFile;
// The manifests in `dir`, newest (highest version) first; a missing directory has none.
Result<std::vector<ManifestEntry>> list_manifests(const std::string& dir);

struct SaveOptions {
  // {"data_sha256": 64 hex digits, ...}: what the booster was trained on.
  nlohmann::json training = nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::object();  // validation metrics
  Clock* clock = &Clock::real();                      // for created_at
};

struct SavedModel {
  int version = 0;
  std::string manifest_path;
  std::string booster_path;
};

// Writes `booster` as the next version in `dir` (created if missing): one above the highest
// version there, skipping any .ubj left without a manifest. Errors: kInvalidArgument for a
// training object without data_sha256; kUnavailable when the directory cannot be written.
Result<SavedModel> save_model(const forecast::GbtBooster& booster, const std::string& dir,
                              const SaveOptions& options);

// Loads the model a manifest describes (the .ubj beside it). Errors: kInvalidArgument naming the
// file and field; kNotFound for a missing file.
Result<std::shared_ptr<const ForecastModel>> load_model(const std::string& manifest_path);

}  // namespace prescale::services::forecast_service
