#include "services/fraud/model_file.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "core/text_file.h"
#include "core/versioned_file.h"
#include "http/json.h"

namespace prescale::fraud {
namespace {

using nlohmann::json;

// Errors of one file: "<source>: <field>: <message>".
class FileErrors {
 public:
  explicit FileErrors(std::string_view source) : source_(source) {}
  std::unexpected<Error> operator()(std::string_view field, std::string_view message) const {
    return make_error(ErrorCode::kInvalidArgument,
                      source_ + ": " + std::string(field) + ": " + std::string(message));
  }
  std::unexpected<Error> wrap(const Error& e) const {
    return make_error(e.code, source_ + ": " + e.message);
  }

 private:
  std::string source_;
};

bool is_sha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Result<std::array<double, kFeatureCount>> feature_array(const json& body, const char* key,
                                                        const FileErrors& fail) {
  const std::string field = std::string("logistic_regression.") + key;
  auto it = body.find(key);
  if (it == body.end()) return fail(field, "missing");
  if (!it->is_array() || it->size() != kFeatureCount) {
    return fail(field, "expected an array of " + std::to_string(kFeatureCount) + " numbers");
  }
  std::array<double, kFeatureCount> out{};
  for (size_t j = 0; j < kFeatureCount; ++j) {
    const json& v = (*it)[j];
    if (!v.is_number() || !std::isfinite(v.get<double>())) {
      return fail(field + "[" + std::to_string(j) + "]", "expected a finite number");
    }
    out[j] = v.get<double>();
  }
  return out;
}

Result<LogisticModel> parse_logistic(const json& manifest, const FileErrors& fail) {
  auto it = manifest.find("logistic_regression");
  if (it == manifest.end()) return fail("logistic_regression", "missing");
  if (!it->is_object()) return fail("logistic_regression", "expected an object");
  for (const auto& [key, value] : it->items()) {
    if (key != "intercept" && key != "means" && key != "scales" && key != "coefficients") {
      return fail("logistic_regression." + key, "unknown field");
    }
  }
  LogisticModel model;
  auto intercept = it->find("intercept");
  if (intercept == it->end()) return fail("logistic_regression.intercept", "missing");
  if (!intercept->is_number() || !std::isfinite(intercept->get<double>())) {
    return fail("logistic_regression.intercept", "expected a finite number");
  }
  model.intercept = intercept->get<double>();
  auto means = feature_array(*it, "means", fail);
  if (!means) return std::unexpected(means.error());
  auto scales = feature_array(*it, "scales", fail);
  if (!scales) return std::unexpected(scales.error());
  auto coefficients = feature_array(*it, "coefficients", fail);
  if (!coefficients) return std::unexpected(coefficients.error());
  for (size_t j = 0; j < kFeatureCount; ++j) {
    if (!((*scales)[j] > 0)) {
      return fail("logistic_regression.scales[" + std::to_string(j) + "]", "expected > 0");
    }
  }
  model.means = *means;
  model.scales = *scales;
  model.coefficients = *coefficients;
  return model;
}

}  // namespace

std::string model_file_name(int version) { return "fraud-v" + std::to_string(version) + ".json"; }

std::optional<int> model_file_version(std::string_view name) {
  return versioned_file_number(name, "fraud-v", ".json");
}

Result<std::vector<ModelFileEntry>> list_model_files(const std::string& directory) {
  return list_versioned_files(directory, "fraud-v", ".json");
}

Result<std::shared_ptr<const Model>> parse_model_file(std::string_view text,
                                                      std::string_view source) {
  const FileErrors fail(source);
  auto parsed = http::parse_json(text);
  if (!parsed) return fail.wrap(parsed.error());
  const json& m = *parsed;
  if (!m.is_object()) return fail("(document)", "expected a JSON object");

  auto string_field = [&](const char* key) -> Result<std::string> {
    auto it = m.find(key);
    if (it == m.end()) return fail(key, "missing");
    if (!it->is_string()) return fail(key, "expected a string");
    return it->get<std::string>();
  };
  auto number_field = [&](const char* key) -> Result<double> {
    auto it = m.find(key);
    if (it == m.end()) return fail(key, "missing");
    if (!it->is_number() || !std::isfinite(it->get<double>())) {
      return fail(key, "expected a number");
    }
    return it->get<double>();
  };

  auto format = string_field("format");
  if (!format) return std::unexpected(format.error());
  if (*format != kModelFileFormat) {
    return fail("format",
                "expected \"" + std::string(kModelFileFormat) + "\", got \"" + *format + "\"");
  }
  auto format_version = m.find("format_version");
  if (format_version == m.end()) return fail("format_version", "missing");
  if (!format_version->is_number_integer() || *format_version != kModelFileFormatVersion) {
    return fail("format_version", "expected " + std::to_string(kModelFileFormatVersion) +
                                      " (this build reads only "
                                      "that format)");
  }

  ModelInfo info;
  auto version = m.find("version");
  if (version == m.end()) return fail("version", "missing");
  if (!version->is_number_integer() || version->get<int64_t>() < 1 ||
      version->get<int64_t>() > kMaxModelVersion) {
    return fail("version", "expected a whole number ≥ 1");
  }
  info.version = version->get<int>();
  const std::string file_name = std::filesystem::path(source).filename().string();
  if (auto named = model_file_version(file_name); named && *named != info.version) {
    return fail("version", std::to_string(info.version) + " differs from the file name's " +
                               std::to_string(*named));
  }

  auto kind_name = string_field("model");
  if (!kind_name) return std::unexpected(kind_name.error());
  auto kind = model_kind_from_string(*kind_name);
  if (!kind) {
    return fail("model", "expected \"gradient_boosted_trees\" or \"logistic_regression\", got \"" +
                             *kind_name + "\"");
  }
  info.kind = *kind;

  auto names = m.find("feature_names");
  if (names == m.end()) return fail("feature_names", "missing");
  const auto expected = feature_names();
  if (!names->is_array() || names->size() != kFeatureCount) {
    return fail("feature_names",
                "expected the " + std::to_string(kFeatureCount) + " names Time, V1..V28, Amount");
  }
  for (size_t j = 0; j < kFeatureCount; ++j) {
    if (!(*names)[j].is_string() || (*names)[j].get<std::string>() != expected[j]) {
      return fail("feature_names[" + std::to_string(j) + "]", "expected \"" +
                                                                  std::string(expected[j]) +
                                                                  "\" (features in the order Time, "
                                                                  "V1..V28, Amount)");
    }
  }

  auto threshold = number_field("threshold");
  if (!threshold) return std::unexpected(threshold.error());
  if (!(*threshold > 0 && *threshold < 1)) return fail("threshold", "expected a number in (0, 1)");
  info.threshold = *threshold;
  auto weight = number_field("positive_weight");
  if (!weight) return std::unexpected(weight.error());
  if (!(*weight > 0)) return fail("positive_weight", "expected a number > 0");
  info.positive_weight = *weight;
  auto created = string_field("created_at");
  if (!created) return std::unexpected(created.error());
  info.created_at = *created;

  auto training = m.find("training");
  if (training == m.end()) return fail("training", "missing");
  if (!training->is_object()) return fail("training", "expected an object");
  auto hash = training->find("data_sha256");
  if (hash == training->end()) return fail("training.data_sha256", "missing");
  if (!hash->is_string() || !is_sha256(hash->get<std::string>())) {
    return fail("training.data_sha256", "expected 64 lowercase hex digits (SHA-256)");
  }
  info.training = *training;
  auto metrics = m.find("metrics");
  if (metrics == m.end()) return fail("metrics", "missing");
  if (!metrics->is_object()) return fail("metrics", "expected an object");
  info.metrics = *metrics;

  if (info.kind == ModelKind::kGradientBoostedTrees) {
    if (m.contains("logistic_regression")) {
      return fail("logistic_regression", "not expected in a gradient_boosted_trees file");
    }
    auto body = m.find("xgboost_model");
    if (body == m.end()) return fail("xgboost_model", "missing");
    auto trees = TreeEnsemble::compile(*body, "xgboost_model");
    if (!trees) return fail.wrap(trees.error());
    return std::make_shared<const Model>(std::move(info), std::move(*trees));
  }
  if (m.contains("xgboost_model")) {
    return fail("xgboost_model", "not expected in a logistic_regression file");
  }
  auto logistic = parse_logistic(m, fail);
  if (!logistic) return std::unexpected(logistic.error());
  return std::make_shared<const Model>(std::move(info), std::move(*logistic));
}

Result<std::shared_ptr<const Model>> load_model_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return std::unexpected(text.error());
  return parse_model_file(*text, path);
}

std::string model_file_text(const ModelInfo& info, const ModelBody& body) {
  nlohmann::ordered_json m;
  m["format"] = kModelFileFormat;
  m["format_version"] = kModelFileFormatVersion;
  m["version"] = info.version;
  m["model"] = to_string(info.kind);
  m["created_at"] = info.created_at;
  m["feature_names"] = nlohmann::ordered_json::array();
  for (std::string_view name : feature_names()) m["feature_names"].push_back(name);
  m["threshold"] = info.threshold;
  m["positive_weight"] = info.positive_weight;
  m["training"] = info.training;
  m["metrics"] = info.metrics;
  if (const auto* lr = std::get_if<LogisticModel>(&body)) {
    m["logistic_regression"] = {{"intercept", lr->intercept},
                                {"means", lr->means},
                                {"scales", lr->scales},
                                {"coefficients", lr->coefficients}};
    return m.dump(2) + "\n";
  }
  // The manifest stays readable (indented); XGBoost's model, thousands of numbers, stays as
  // XGBoost wrote it, compact, as the last member.
  std::string text = m.dump(2);
  text.resize(text.rfind('}'));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  text += ",\n  \"xgboost_model\": ";
  text += std::get<XgboostModelJson>(body).json;
  text += "\n}\n";
  return text;
}

Result<std::string> write_model_file(const std::string& directory, const ModelInfo& info,
                                     const ModelBody& body) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) return make_error(ErrorCode::kUnavailable, directory + ": " + ec.message());
  const std::filesystem::path path =
      std::filesystem::path(directory) / model_file_name(info.version);
  auto exists = [&] {
    return make_error(ErrorCode::kInvalidArgument,
                      path.string() +
                          ": exists; model files are never overwritten (pick another "
                          "version)");
  };
  if (std::filesystem::exists(path, ec)) return exists();
  // A file that appears whole, and never replaces one another writer of this version created.
  auto created = create_file_atomically(path, model_file_text(info, body));
  if (!created) return std::unexpected(created.error());
  if (!*created) return exists();
  return path.string();
}

Result<int> next_model_version(const std::string& directory) {
  auto files = list_model_files(directory);
  if (!files) return std::unexpected(files.error());
  if (files->empty()) return 1;
  if (files->front().version >= kMaxModelVersion) {
    return make_error(ErrorCode::kOutOfRange,
                      files->front().path + ": no version can follow it (model files go up to " +
                          std::to_string(kMaxModelVersion) + ")");
  }
  return files->front().version + 1;
}

}  // namespace prescale::fraud
