// Saving and loading a trained GbtBooster: XGBoost's own model bytes, plus (as JSON) the feature
// columns and the GbtOptions it was trained with, so that a loaded booster forecasts exactly as
// the saved one — the same trees over the same features with the same seasons. The forecast
// service's model files (services/forecast/model_file.h) are built from these two parts.
//
// The definition:
//   {"definition_version": 1, "features": ["horizon", "lag_1", ...],
//    "options": {"seasons": {"day_seconds": 86400, ...}, "max_horizon": 15, ...},
//    "training_rows": 200000}
// definition_version changes whenever a feature's or the target's computation does, so a booster
// trained by another build is refused rather than fed numbers it never saw.
//
// Thread safety: pure functions; a GbtBooster may be saved while other threads predict with it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/result.h"
#include "forecast/gbt_model.h"

namespace prescale::forecast {

inline constexpr int kGbtDefinitionVersion = 1;

struct SavedGbt {
  nlohmann::ordered_json definition;
  std::string xgboost_model;  // UBJSON, GbtBooster::xgboost_model()
};

// Errors: kInternal with XGBoost's message.
Result<SavedGbt> save_gbt(const GbtBooster& booster);

// Errors: kInvalidArgument naming the definition's field at fault (`options.max_depth: expected
// a whole number in 1..64`), or with XGBoost's message when it cannot read the bytes.
Result<std::shared_ptr<const GbtBooster>> load_gbt(const nlohmann::json& definition,
                                                   std::string_view xgboost_model);

}  // namespace prescale::forecast
