#include "services/fraud/transaction_json.h"

#include <array>
#include <charconv>
#include <limits>

namespace prescale::fraud {
namespace {

// A float32 contribution as the shortest decimal that reads back as the same float: -1.2, not
// -1.2000000476837158.
double shortest(double value) {
  const auto f = static_cast<float>(value);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, f);
  double out = value;
  if (ec == std::errc()) std::from_chars(buf, end, out);
  return out;
}

}  // namespace

Result<Features> parse_transaction(const nlohmann::json& object, std::string_view path) {
  auto fail = [&](std::string_view field, std::string_view message) {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(path) + std::string(field) + ": " + std::string(message));
  };
  if (!object.is_object()) {
    if (path.empty()) return fail("body", "expected a JSON object (a transaction)");
    std::string_view trimmed = path.substr(0, path.size() - 1);  // without the trailing '.'
    return make_error(ErrorCode::kInvalidArgument,
                      std::string(trimmed) + ": expected a JSON object (a transaction)");
  }
  Features x;
  std::array<bool, kFeatureCount> seen{};
  for (const auto& [key, value] : object.items()) {
    auto index = feature_index(key);
    if (!index) return fail(key, "unknown field (features are Time, V1..V28, Amount)");
    seen[*index] = true;
    if (value.is_null()) {
      x[*index] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    if (!value.is_number()) return fail(key, "expected a number or null");
    auto feature = to_feature(value.get<double>());
    if (!feature) return fail(key, "out of range (float32)");
    x[*index] = *feature;
  }
  const auto names = feature_names();
  for (size_t j = 0; j < kFeatureCount; ++j) {
    if (!seen[j]) return fail(names[j], "missing (send null for an unknown value)");
  }
  return x;
}

nlohmann::ordered_json score_json(const Score& score, const Decision& decision) {
  nlohmann::ordered_json top = nlohmann::ordered_json::array();
  for (size_t k = 0; k < score.top_count; ++k) {
    top.push_back(
        {{"feature", score.top[k].feature}, {"contribution", shortest(score.top[k].contribution)}});
  }
  return {{"fraud_probability", score.probability},
          {"decision", score.probability >= decision.threshold ? "fraud" : "legit"},
          {"threshold", decision.threshold},
          {"model_version", decision.model_version},
          {"top_features", std::move(top)},
          {"fallback", decision.fallback}};
}

}  // namespace prescale::fraud
