// A thin owner of an XGBoost booster loaded from its JSON model, for checking the flat evaluator
// against XGBoost's own predictions (tests, training's self-check) and for the benchmark's
// comparison. Not on the request path: the service scores with TreeEnsemble.
//
// Thread safety: one thread at a time per booster (XGBoost keeps prediction buffers in it).
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud::internal {

class XgbBooster {
 public:
  // XGBoost's prediction types (XGBoosterPredictFromDMatrix "type").
  enum class Output { kProbability = 0, kMargin = 1, kApproxContributions = 3 };

  // Loads XGBoost's JSON model; one prediction thread.
  static Result<XgbBooster> from_json(std::string_view model_json);

  // Predictions for `rows` through a DMatrix (NaN = missing): one value per row, or for
  // kApproxContributions kFeatureCount + 1 per row (the last is the bias).
  Result<std::vector<float>> predict(std::span<const Features> rows, Output output) const;

  // The probability of one row by in-place prediction from a dense array
  // (XGBoosterPredictFromDense), the cheapest way XGBoost scores one transaction.
  Result<float> predict_dense(const Features& row) const;

 private:
  struct Handle;
  explicit XgbBooster(std::shared_ptr<Handle> handle) : handle_(std::move(handle)) {}
  std::shared_ptr<Handle> handle_;
};

}  // namespace prescale::fraud::internal
