#include "services/fraud/gbt_training.h"

#include <xgboost/c_api.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace prescale::fraud {
namespace {

Error xgboost_error(std::string_view call) {
  return Error{ErrorCode::kInternal, "xgboost: " + std::string(call) + ": " + XGBGetLastError()};
}

struct DMatrixDeleter {
  void operator()(void* handle) const { XGDMatrixFree(handle); }
};
struct BoosterDeleter {
  void operator()(void* handle) const { XGBoosterFree(handle); }
};

// std::to_string keeps 6 decimals only; parameters keep every digit.
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

Result<std::string> train_gbt(std::span<const Features> rows, std::span<const uint8_t> labels,
                              double positive_weight, const GbtOptions& options) {
  if (rows.size() != labels.size()) {
    return make_error(ErrorCode::kInvalidArgument, "gbt: rows and labels differ in number");
  }
  size_t frauds = 0;
  for (uint8_t y : labels) frauds += y != 0;
  if (frauds == 0 || frauds == rows.size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gbt: the training rows need both frauds and legitimate transactions");
  }
  if (options.rounds < 1 || options.max_depth < 1 || !(options.eta > 0) || options.threads < 1 ||
      !(options.subsample > 0 && options.subsample <= 1) ||
      !(options.colsample_bytree > 0 && options.colsample_bytree <= 1) ||
      !(options.min_child_weight >= 0) || !(options.lambda >= 0) || !(positive_weight > 0)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gbt: need rounds, max_depth, threads ≥ 1, eta > 0, subsample and "
                      "colsample_bytree in (0, 1], min_child_weight, lambda ≥ 0, "
                      "positive_weight > 0");
  }

  std::vector<float> matrix;
  matrix.reserve(rows.size() * kFeatureCount);
  for (const Features& r : rows) matrix.insert(matrix.end(), r.begin(), r.end());
  std::vector<float> y(labels.begin(), labels.end());

  DMatrixHandle dmatrix_handle = nullptr;
  if (XGDMatrixCreateFromMat(matrix.data(), rows.size(), kFeatureCount,
                             std::numeric_limits<float>::quiet_NaN(), &dmatrix_handle) != 0) {
    return std::unexpected(xgboost_error("XGDMatrixCreateFromMat"));
  }
  std::unique_ptr<void, DMatrixDeleter> dmatrix(dmatrix_handle);
  if (XGDMatrixSetFloatInfo(dmatrix.get(), "label", y.data(), y.size()) != 0) {
    return std::unexpected(xgboost_error("XGDMatrixSetFloatInfo"));
  }
  BoosterHandle booster_handle = nullptr;
  DMatrixHandle cache[] = {dmatrix.get()};
  if (XGBoosterCreate(cache, 1, &booster_handle) != 0) {
    return std::unexpected(xgboost_error("XGBoosterCreate"));
  }
  std::unique_ptr<void, BoosterDeleter> booster(booster_handle);
  const std::pair<const char*, std::string> params[] = {
      {"verbosity", "0"},
      {"objective", "binary:logistic"},
      // The margin starts at logit(0.5) = 0, so contributions' bias is the trees' own mean.
      {"base_score", "0.5"},
      {"tree_method", "hist"},
      {"max_depth", std::to_string(options.max_depth)},
      {"eta", number(options.eta)},
      {"subsample", number(options.subsample)},
      {"colsample_bytree", number(options.colsample_bytree)},
      {"min_child_weight", number(options.min_child_weight)},
      {"lambda", number(options.lambda)},
      {"scale_pos_weight", number(positive_weight)},
      {"nthread", std::to_string(options.threads)},
      {"seed", std::to_string(options.seed % 2147483647)},
  };
  for (const auto& [name, value] : params) {
    if (XGBoosterSetParam(booster.get(), name, value.c_str()) != 0) {
      return std::unexpected(xgboost_error(std::string("XGBoosterSetParam ") + name));
    }
  }
  for (int round = 0; round < options.rounds; ++round) {
    if (XGBoosterUpdateOneIter(booster.get(), round, dmatrix.get()) != 0) {
      return std::unexpected(xgboost_error("XGBoosterUpdateOneIter"));
    }
  }
  bst_ulong length = 0;
  const char* bytes = nullptr;
  if (XGBoosterSaveModelToBuffer(booster.get(), R"({"format": "json"})", &length, &bytes) != 0) {
    return std::unexpected(xgboost_error("XGBoosterSaveModelToBuffer"));
  }
  return std::string(bytes, length);
}

std::string xgboost_version() {
  int major = 0, minor = 0, patch = 0;
  XGBoostVersion(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace prescale::fraud
