#include "services/fraud/internal/xgboost_booster.h"

#include <xgboost/c_api.h>

#include <cinttypes>
#include <cstdio>
#include <limits>
#include <string>

namespace prescale::fraud::internal {
namespace {

Error xgboost_error(std::string_view call) {
  return Error{ErrorCode::kInternal, "xgboost: " + std::string(call) + ": " + XGBGetLastError()};
}

}  // namespace

struct XgbBooster::Handle {
  BoosterHandle booster = nullptr;
  ~Handle() { XGBoosterFree(booster); }
};

Result<XgbBooster> XgbBooster::from_json(std::string_view model_json) {
  auto handle = std::make_shared<Handle>();
  if (XGBoosterCreate(nullptr, 0, &handle->booster) != 0) {
    return std::unexpected(xgboost_error("XGBoosterCreate"));
  }
  if (XGBoosterLoadModelFromBuffer(handle->booster, model_json.data(), model_json.size()) != 0) {
    return std::unexpected(xgboost_error("XGBoosterLoadModelFromBuffer"));
  }
  for (const char* param : {"verbosity", "nthread"}) {
    const char* value = std::string_view(param) == "verbosity" ? "0" : "1";
    if (XGBoosterSetParam(handle->booster, param, value) != 0) {
      return std::unexpected(xgboost_error("XGBoosterSetParam"));
    }
  }
  return XgbBooster(std::move(handle));
}

Result<std::vector<float>> XgbBooster::predict(std::span<const Features> rows,
                                               Output output) const {
  std::vector<float> matrix;
  matrix.reserve(rows.size() * kFeatureCount);
  for (const Features& r : rows) matrix.insert(matrix.end(), r.begin(), r.end());
  DMatrixHandle dmatrix = nullptr;
  if (XGDMatrixCreateFromMat(matrix.data(), rows.size(), kFeatureCount,
                             std::numeric_limits<float>::quiet_NaN(), &dmatrix) != 0) {
    return std::unexpected(xgboost_error("XGDMatrixCreateFromMat"));
  }
  const std::string config = R"({"type": )" + std::to_string(static_cast<int>(output)) +
                             R"(, "training": false, "iteration_begin": 0, "iteration_end": 0,)"
                             R"( "strict_shape": false})";
  bst_ulong const* shape = nullptr;
  bst_ulong dims = 0;
  float const* result = nullptr;
  const int rc = XGBoosterPredictFromDMatrix(handle_->booster, dmatrix, config.c_str(), &shape,
                                             &dims, &result);
  if (rc != 0) {
    Error e = xgboost_error("XGBoosterPredictFromDMatrix");
    XGDMatrixFree(dmatrix);
    return std::unexpected(e);
  }
  size_t size = 1;
  for (bst_ulong d = 0; d < dims; ++d) size *= shape[d];
  std::vector<float> out(result, result + size);
  XGDMatrixFree(dmatrix);
  const size_t per_row = output == Output::kApproxContributions ? kFeatureCount + 1 : 1;
  if (out.size() != rows.size() * per_row) {
    return make_error(ErrorCode::kInternal, "xgboost: unexpected prediction shape");
  }
  return out;
}

Result<float> XgbBooster::predict_dense(const Features& row) const {
  // numpy's __array_interface__ for a 1 × kFeatureCount float32 array at row.data().
  char values[160];
  std::snprintf(values, sizeof values,
                R"({"data": [%)" PRIuPTR R"(, true], "shape": [1, %zu], "typestr": "<f4", )"
                R"("version": 3})",
                reinterpret_cast<uintptr_t>(row.data()), kFeatureCount);
  static constexpr char kConfig[] =
      R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0,)"
      R"( "strict_shape": false, "missing": NaN, "cache_id": 0})";
  bst_ulong const* shape = nullptr;
  bst_ulong dims = 0;
  float const* result = nullptr;
  if (XGBoosterPredictFromDense(handle_->booster, values, kConfig, nullptr, &shape, &dims,
                                &result) != 0) {
    return std::unexpected(xgboost_error("XGBoosterPredictFromDense"));
  }
  return result[0];
}

}  // namespace prescale::fraud::internal
