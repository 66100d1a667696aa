#include "forecast/gbt_file.h"

#include <xgboost/c_api.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <span>
#include <utility>

namespace prescale::forecast {
namespace {

using nlohmann::json;

std::unexpected<Error> invalid(std::string_view field, std::string_view message) {
  return make_error(ErrorCode::kInvalidArgument, std::string(field) + ": " + std::string(message));
}

std::string xgboost_message(std::string_view call) {
  return "gbt: " + std::string(call) + ": " + XGBGetLastError();
}

// Reads fields of one JSON object; errors name the field by its dotted path.
class Fields {
 public:
  Fields(const json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  Result<const json*> find(std::string_view key) const {
    auto it = object_.find(key);
    if (it == object_.end()) return invalid(path(key), "missing");
    return &*it;
  }
  Result<double> number(std::string_view key, double lo, double hi) const {
    auto v = find(key);
    if (!v) return std::unexpected(v.error());
    if (!(*v)->is_number() || !((*v)->get<double>() >= lo && (*v)->get<double>() <= hi)) {
      return invalid(path(key), "expected a number in [" + text(lo) + ", " + text(hi) + "]");
    }
    return (*v)->get<double>();
  }
  Result<std::uint64_t> whole(std::string_view key, std::uint64_t lo, std::uint64_t hi) const {
    auto v = find(key);
    if (!v) return std::unexpected(v.error());
    const json& n = **v;
    const bool whole = n.is_number_unsigned() || (n.is_number_integer() && n.get<int64_t>() >= 0);
    if (!whole || n.get<std::uint64_t>() < lo || n.get<std::uint64_t>() > hi) {
      return invalid(path(key), "expected a whole number in " + std::to_string(lo) + ".." +
                                    std::to_string(hi));
    }
    return (*v)->get<std::uint64_t>();
  }
  Result<std::string> string(std::string_view key) const {
    auto v = find(key);
    if (!v) return std::unexpected(v.error());
    if (!(*v)->is_string()) return invalid(path(key), "expected a string");
    return (*v)->get<std::string>();
  }
  std::string path(std::string_view key) const { return prefix_ + std::string(key); }

 private:
  static std::string text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }
  const json& object_;
  std::string prefix_;
};

#define PRESCALE_READ(target, expr)                                                   \
  do {                                                                                \
    auto read_value = (expr);                                                         \
    if (!read_value) return std::unexpected(read_value.error());                      \
    (target) = static_cast<std::remove_reference_t<decltype((target))>>(*read_value); \
  } while (0)

nlohmann::ordered_json options_json(const GbtOptions& o) {
  return {{"seasons",
           {{"day_seconds", o.seasons.day_seconds},
            {"week_seconds", o.seasons.week_seconds},
            {"cycle_seconds", o.seasons.cycle_seconds}}},
          {"max_horizon", o.max_horizon},
          {"max_rows", o.max_rows},
          {"seed", o.seed},
          {"rounds", o.rounds},
          {"validation_share", o.validation_share},
          {"max_depth", o.max_depth},
          {"min_child_weight", o.min_child_weight},
          {"eta", o.eta},
          {"objective", o.objective},
          {"threads", o.threads}};
}

Result<GbtOptions> options_from(const json& definition) {
  const Fields top(definition, "");
  auto options = top.find("options");
  if (!options) return std::unexpected(options.error());
  if (!(*options)->is_object()) return invalid("options", "expected an object");
  const Fields f(**options, "options.");
  auto seasons = f.find("seasons");
  if (!seasons) return std::unexpected(seasons.error());
  if (!(*seasons)->is_object()) return invalid("options.seasons", "expected an object");
  const Fields s(**seasons, "options.seasons.");
  constexpr double kYear = 366 * 86400.0;
  GbtOptions o;
  PRESCALE_READ(o.seasons.day_seconds, s.number("day_seconds", 0, kYear));
  PRESCALE_READ(o.seasons.week_seconds, s.number("week_seconds", 0, kYear));
  PRESCALE_READ(o.seasons.cycle_seconds, s.number("cycle_seconds", 0, kYear));
  PRESCALE_READ(o.max_horizon, f.whole("max_horizon", 1, 1440));
  PRESCALE_READ(o.max_rows, f.whole("max_rows", kGbtMinTrainingRows, 1'000'000'000));
  PRESCALE_READ(o.seed, f.whole("seed", 0, std::numeric_limits<std::uint64_t>::max()));
  PRESCALE_READ(o.rounds, f.whole("rounds", 1, 100'000));
  PRESCALE_READ(o.validation_share, f.number("validation_share", 0, 0.99));
  PRESCALE_READ(o.max_depth, f.whole("max_depth", 1, 64));
  PRESCALE_READ(o.min_child_weight, f.number("min_child_weight", 0, 1e9));
  PRESCALE_READ(o.eta, f.number("eta", 1e-9, 1));
  PRESCALE_READ(o.objective, f.string("objective"));
  PRESCALE_READ(o.threads, f.whole("threads", 1, 1024));
  return o;
}

struct BoosterDeleter {
  void operator()(void* handle) const { XGBoosterFree(handle); }
};

}  // namespace

// ---- GbtBooster's serialisation (declared in gbt_model.h)

Result<std::string> GbtBooster::xgboost_model() const {
  bst_ulong length = 0;
  const char* bytes = nullptr;
  // XGBoost returns the bytes in a buffer it keeps with the booster, as it does predictions.
  std::lock_guard lock(predict_mutex_);
  if (XGBoosterSaveModelToBuffer(handle_, R"({"format": "ubj"})", &length, &bytes) != 0) {
    return make_error(ErrorCode::kInternal, xgboost_message("XGBoosterSaveModelToBuffer"));
  }
  return std::string(bytes, length);
}

Result<std::shared_ptr<const GbtBooster>> GbtBooster::from_xgboost_model(std::string_view bytes,
                                                                         GbtOptions options,
                                                                         size_t training_rows) {
  BoosterHandle handle = nullptr;
  if (XGBoosterCreate(nullptr, 0, &handle) != 0) {
    return make_error(ErrorCode::kInternal, xgboost_message("XGBoosterCreate"));
  }
  std::unique_ptr<void, BoosterDeleter> owned(handle);
  if (bytes.empty() || XGBoosterLoadModelFromBuffer(handle, bytes.data(),
                                                    static_cast<bst_ulong>(bytes.size())) != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      bytes.empty() ? "gbt: no XGBoost model bytes"
                                    : xgboost_message("XGBoosterLoadModelFromBuffer"));
  }
  bst_ulong features = 0;
  if (XGBoosterGetNumFeature(handle, &features) != 0) {
    return make_error(ErrorCode::kInvalidArgument, xgboost_message("XGBoosterGetNumFeature"));
  }
  if (features > gbt_feature_names().size()) {
    return make_error(ErrorCode::kInvalidArgument, "gbt: the XGBoost model uses " +
                                                       std::to_string(features) +
                                                       " features; this build computes " +
                                                       std::to_string(gbt_feature_names().size()));
  }
  // As trees_only() in gbt_model.cc: a forecast is a handful of rows, one thread.
  for (const auto& [name, value] : {std::pair{"verbosity", "0"}, std::pair{"nthread", "1"}}) {
    if (XGBoosterSetParam(handle, name, value) != 0) {
      return make_error(ErrorCode::kInternal, xgboost_message("XGBoosterSetParam"));
    }
  }
  return std::shared_ptr<const GbtBooster>(
      new GbtBooster(owned.release(), std::move(options), training_rows));
}

// ---- The definition

Result<SavedGbt> save_gbt(const GbtBooster& booster) {
  auto bytes = booster.xgboost_model();
  if (!bytes) return std::unexpected(bytes.error());
  SavedGbt saved;
  saved.definition["definition_version"] = kGbtDefinitionVersion;
  saved.definition["features"] = nlohmann::ordered_json::array();
  for (std::string_view name : gbt_feature_names()) saved.definition["features"].push_back(name);
  saved.definition["options"] = options_json(booster.options());
  saved.definition["training_rows"] = booster.training_rows();
  saved.xgboost_model = std::move(*bytes);
  return saved;
}

Result<std::shared_ptr<const GbtBooster>> load_gbt(const json& definition,
                                                   std::string_view xgboost_model) {
  if (!definition.is_object()) return invalid("(definition)", "expected a JSON object");
  const Fields top(definition, "");
  auto version = top.whole("definition_version", 1, 1'000'000);
  if (!version) return std::unexpected(version.error());
  if (*version != kGbtDefinitionVersion) {
    return invalid("definition_version",
                   std::to_string(*version) + ", but this build computes the features of " +
                       std::to_string(kGbtDefinitionVersion) + "; retrain the model");
  }
  auto features = top.find("features");
  if (!features) return std::unexpected(features.error());
  const std::span<const std::string_view> names = gbt_feature_names();
  if (!(*features)->is_array() || (*features)->size() != names.size()) {
    return invalid("features", "expected this build's " + std::to_string(names.size()) +
                                   " feature names (horizon, lag_1, ..., day_of_week)");
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const json& name = (**features)[i];
    if (!name.is_string() || name.get<std::string>() != names[i]) {
      return invalid("features[" + std::to_string(i) + "]",
                     "expected \"" + std::string(names[i]) + "\"");
    }
  }
  auto options = options_from(definition);
  if (!options) return std::unexpected(options.error());
  auto rows = top.whole("training_rows", 0, std::numeric_limits<std::uint64_t>::max());
  if (!rows) return std::unexpected(rows.error());
  return GbtBooster::from_xgboost_model(xgboost_model, std::move(*options),
                                        static_cast<size_t>(*rows));
}

}  // namespace prescale::forecast
