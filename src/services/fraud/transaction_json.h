// The JSON of the scoring API: a transaction object in, a score object out
// (docs/services/fraud.md, docs/api/fraud.yaml).
//
// A transaction names every feature — Time, V1..V28, Amount — with a number or null (null = not
// known; the trees send it down each split's learned default branch, logistic regression uses the
// training mean). An absent feature is an error, so a misspelt or dropped field never silently
// becomes "missing"; unknown fields are errors too.
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/result.h"
#include "services/fraud/model.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud {

// Reads one transaction. `path` prefixes the field in error messages ("transactions[3]." gives
// "transactions[3].V7: expected a number or null"). Errors are kInvalidArgument.
Result<Features> parse_transaction(const nlohmann::json& object, std::string_view path);

// What a response reports besides the score.
struct Decision {
  double threshold = 0.5;
  std::string_view model_version;
  bool fallback = false;
};

// {"fraud_probability", "decision", "threshold", "model_version", "top_features", "fallback"}.
nlohmann::ordered_json score_json(const Score& score, const Decision& decision);

}  // namespace prescale::fraud
