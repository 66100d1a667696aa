// The fallback that scores while no model is loaded: a few fixed rules on Amount and Time, the
// two features whose meaning is known (V1..V28 are anonymous PCA components). Every response
// they produce says "fallback": true. The rules and their weights are documented in
// docs/services/fraud.md ("Fallback rules"); they are a stopgap, far weaker than any model.
//
// Thread safety: pure functions.
#pragma once

#include <string_view>

#include "services/fraud/model.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud {

// The `model_version` of rule scores.
inline constexpr std::string_view kRulesVersion = "rules-v1";
// The rules' own threshold (a configured threshold is for a model's probabilities).
inline constexpr double kRulesThreshold = 0.5;

// Log-odds: a base of logit(0.05), plus 2.5 for an amount of at most 1.00 (card testing),
// plus 1.5 for an amount of 1,000 or more, plus 1.0 when Time falls between 00:00 and 06:00
// (Time mod 86,400 s, the capture starting at midnight). A missing feature fires no rule.
Score score_by_rules(const Features& x);

}  // namespace prescale::fraud
