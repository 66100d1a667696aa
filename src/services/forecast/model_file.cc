#include "services/forecast/model_file.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "core/sha256.h"
#include "core/text_file.h"
#include "core/versioned_file.h"
#include "forecast/gbt_file.h"
#include "http/json.h"

namespace prescale::services::forecast_service {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

bool is_sha256(const nlohmann::json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Errors of one file: "<path>: <field>: <message>".
class FileErrors {
 public:
  explicit FileErrors(std::string path) : path_(std::move(path)) {}
  std::unexpected<Error> operator()(std::string_view field, std::string_view message) const {
    return make_error(ErrorCode::kInvalidArgument,
                      path_ + ": " + std::string(field) + ": " + std::string(message));
  }
  std::unexpected<Error> wrap(const Error& e, std::string_view prefix = "") const {
    return make_error(e.code, path_ + ": " + std::string(prefix) + e.message);
  }

 private:
  std::string path_;
};

}  // namespace

std::string ForecastModel::version_label() const {
  return version > 0 ? "v" + std::to_string(version) : std::string(kMethodVersion);
}

std::string manifest_file_name(int version) {
  return "forecast-v" + std::to_string(version) + ".json";
}
std::string booster_file_name(int version) {
  return "forecast-v" + std::to_string(version) + ".ubj";
}

std::optional<int> manifest_version(std::string_view name) {
  return versioned_file_number(name, "forecast-v", ".json");
}

Result<std::vector<ManifestEntry>> list_manifests(const std::string& dir) {
  return list_versioned_files(dir, "forecast-v", ".json");
}

Result<SavedModel> save_model(const forecast::GbtBooster& booster, const std::string& dir,
                              const SaveOptions& options) {
  if (!options.training.is_object() || !is_sha256(options.training.value("data_sha256", ""))) {
    return make_error(ErrorCode::kInvalidArgument,
                      "training: expected an object with data_sha256 (64 lowercase hex digits)");
  }
  if (!options.metrics.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "metrics: expected an object");
  }
  auto saved_gbt = forecast::save_gbt(booster);
  if (!saved_gbt) return std::unexpected(saved_gbt.error());

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::kUnavailable, dir + ": " + ec.message());
  auto manifests = list_manifests(dir);
  if (!manifests) return std::unexpected(manifests.error());
  if (!manifests->empty() && manifests->front().version >= kMaxModelVersion) {
    return make_error(ErrorCode::kOutOfRange,
                      manifests->front().path +
                          ": no version can follow it (model files go up to " +
                          std::to_string(kMaxModelVersion) + ")");
  }
  int version = manifests->empty() ? 1 : manifests->front().version + 1;
  // Creating the .ubj claims its version: one another save holds, running or interrupted (a .ubj
  // left without a manifest), is skipped, never overwritten.
  const std::string& bytes = saved_gbt->xgboost_model;
  for (;; ++version) {
    if (fs::exists(fs::path(dir) / booster_file_name(version), ec)) continue;
    auto created = create_file_atomically(fs::path(dir) / booster_file_name(version), bytes);
    if (!created) return std::unexpected(created.error());
    if (*created) break;
  }

  SavedModel saved;
  saved.version = version;
  saved.booster_path = (fs::path(dir) / booster_file_name(version)).string();
  saved.manifest_path = (fs::path(dir) / manifest_file_name(version)).string();

  Json manifest;
  manifest["format"] = kModelFileFormat;
  manifest["format_version"] = kModelFileFormatVersion;
  manifest["version"] = version;
  manifest["model"] = kGlobalModelName;
  manifest["created_at"] = format_utc(options.clock->wall_now());
  manifest["booster_file"] = {
      {"name", booster_file_name(version)}, {"bytes", bytes.size()}, {"sha256", sha256_hex(bytes)}};
  manifest["booster"] = saved_gbt->definition;
  manifest["training"] = Json::parse(options.training.dump());
  manifest["metrics"] = Json::parse(options.metrics.dump());
  if (auto ok = write_file_atomically(saved.manifest_path, manifest.dump(2) + "\n"); !ok) {
    return std::unexpected(ok.error());
  }
  return saved;
}

Result<std::shared_ptr<const ForecastModel>> load_model(const std::string& manifest_path) {
  const FileErrors fail(manifest_path);
  auto text = read_text_file(manifest_path);
  if (!text) return std::unexpected(text.error());
  auto parsed = http::parse_json(*text);
  if (!parsed) return fail.wrap(parsed.error());
  const nlohmann::json& m = *parsed;
  if (!m.is_object()) return fail("(document)", "expected a JSON object");

  auto format = m.find("format");
  if (format == m.end()) return fail("format", "missing");
  if (!format->is_string() || format->get<std::string>() != kModelFileFormat) {
    return fail("format", "expected \"" + std::string(kModelFileFormat) + "\"");
  }
  auto format_version = m.find("format_version");
  if (format_version == m.end()) return fail("format_version", "missing");
  if (!format_version->is_number_integer() || *format_version != kModelFileFormatVersion) {
    return fail("format_version", "expected " + std::to_string(kModelFileFormatVersion) +
                                      " (the format this build reads)");
  }
  auto model = std::make_shared<ForecastModel>();
  model->manifest_path = manifest_path;
  auto version = m.find("version");
  if (version == m.end()) return fail("version", "missing");
  if (!version->is_number_integer() || version->get<int64_t>() < 1 ||
      version->get<int64_t>() > kMaxModelVersion) {
    return fail("version", "expected a whole number ≥ 1");
  }
  model->version = version->get<int>();
  if (auto named = manifest_version(fs::path(manifest_path).filename().string());
      named && *named != model->version) {
    return fail("version", std::to_string(model->version) + " differs from the file name's " +
                               std::to_string(*named));
  }
  auto kind = m.find("model");
  if (kind == m.end()) return fail("model", "missing");
  if (!kind->is_string() || kind->get<std::string>() != kGlobalModelName) {
    return fail("model", "expected \"" + std::string(kGlobalModelName) + "\"");
  }
  auto created = m.find("created_at");
  if (created == m.end()) return fail("created_at", "missing");
  if (!created->is_string()) return fail("created_at", "expected a string");
  model->created_at = created->get<std::string>();
  auto training = m.find("training");
  if (training == m.end()) return fail("training", "missing");
  if (!training->is_object()) return fail("training", "expected an object");
  if (!is_sha256(training->value("data_sha256", nlohmann::json()))) {
    return fail("training.data_sha256", "expected 64 lowercase hex digits (SHA-256)");
  }
  model->training = *training;
  auto metrics = m.find("metrics");
  if (metrics == m.end()) return fail("metrics", "missing");
  if (!metrics->is_object()) return fail("metrics", "expected an object");
  model->metrics = *metrics;

  auto file = m.find("booster_file");
  if (file == m.end()) return fail("booster_file", "missing");
  if (!file->is_object()) return fail("booster_file", "expected an object");
  auto name = file->find("name");
  if (name == file->end() || !name->is_string() ||
      name->get<std::string>() != booster_file_name(model->version)) {
    return fail("booster_file.name", "expected \"" + booster_file_name(model->version) + "\"");
  }
  auto size = file->find("bytes");
  if (size == file->end() || !size->is_number_unsigned()) {
    return fail("booster_file.bytes", "expected a whole number");
  }
  auto hash = file->find("sha256");
  if (hash == file->end() || !is_sha256(*hash)) {
    return fail("booster_file.sha256", "expected 64 lowercase hex digits (SHA-256)");
  }
  const fs::path booster_path = fs::path(manifest_path).parent_path() / name->get<std::string>();
  auto bytes = read_text_file(booster_path.string());  // bytes as they are
  if (!bytes) return std::unexpected(bytes.error());
  const FileErrors fail_booster(booster_path.string());
  if (bytes->size() != size->get<uint64_t>()) {
    return fail_booster("(file)", std::to_string(bytes->size()) + " bytes; the manifest says " +
                                      std::to_string(size->get<uint64_t>()) +
                                      " (a partial or replaced file)");
  }
  if (sha256_hex(*bytes) != hash->get<std::string>()) {
    return fail_booster("(file)", "SHA-256 differs from the manifest's (a corrupt file)");
  }
  auto definition = m.find("booster");
  if (definition == m.end()) return fail("booster", "missing");
  auto booster = forecast::load_gbt(*definition, *bytes);
  if (!booster) return fail.wrap(booster.error(), "booster.");
  model->booster = std::move(*booster);
  return std::shared_ptr<const ForecastModel>(std::move(model));
}

}  // namespace prescale::services::forecast_service
