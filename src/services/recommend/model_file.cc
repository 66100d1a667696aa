#include "services/recommend/model_file.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/text_file.h"
#include "core/versioned_file.h"
#include "http/json.h"
#include "services/recommend/internal/model_codec.h"
#include "services/recommend/internal/model_state.h"

namespace prescale::recommend {
namespace {

namespace fs = std::filesystem;
using internal::ModelState;
using Json = nlohmann::ordered_json;

constexpr std::string_view kManifestFormat = "prescale-recommend-model";

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// A float as the shortest decimal that reads back as the same float (0.2, not
// 0.20000000298023224).
double shortest(float v) {
  char buf[32];
  for (int digits = 6; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) return std::strtod(buf, nullptr);
  }
  return static_cast<double>(v);
}

Json hyperparameters(const TrainOptions& o) {
  switch (o.kind) {
    case ModelKind::kAls:
      return {{"factors", o.als.factors},
              {"regularization", shortest(o.als.regularization)},
              {"alpha", shortest(o.als.alpha)},
              {"iterations", o.als.iterations},
              {"cg_steps", o.als.cg_steps},
              {"seed", o.als.seed},
              {"popularity_penalty", shortest(o.als.popularity_penalty)}};
    case ModelKind::kEase:
      return {{"lambda", shortest(o.ease.lambda)},
              {"min_item_interactions", o.ease.min_item_interactions},
              {"max_items", o.ease.max_items},
              {"popularity_penalty", shortest(o.ease.popularity_penalty)}};
    case ModelKind::kItemKnn:
      return {{"neighbours", o.item_knn.neighbours}};
    case ModelKind::kTopPop:
      break;
  }
  return Json::object();
}

// ---- manifest reading ----

class Fields {
 public:
  Fields(const nlohmann::json& root, const std::string& path) : root_(root), path_(path) {}

  std::unexpected<Error> fail(const std::string& field, const std::string& problem) const {
    return make_error(ErrorCode::kInvalidArgument, path_ + ": " + field + ": " + problem);
  }
  // The value at a dotted path, or nullptr.
  const nlohmann::json* find(const std::string& field) const {
    const nlohmann::json* v = &root_;
    size_t start = 0;
    while (start <= field.size()) {
      const size_t dot = std::min(field.find('.', start), field.size());
      const std::string key = field.substr(start, dot - start);
      if (!v->is_object() || !v->contains(key)) return nullptr;
      v = &(*v)[key];
      start = dot + 1;
    }
    return v;
  }
  Result<std::string> string(const std::string& field) const {
    const nlohmann::json* v = find(field);
    if (v == nullptr) return fail(field, "missing");
    if (!v->is_string()) return fail(field, "expected a string");
    return v->get<std::string>();
  }
  Result<double> number(const std::string& field, double lo, double hi) const {
    const nlohmann::json* v = find(field);
    if (v == nullptr) return fail(field, "missing");
    if (!v->is_number()) return fail(field, "expected a number");
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi)) {
      return fail(field, "expected a number in " + number_text(lo) + ".." + number_text(hi));
    }
    return d;
  }
  Result<int64_t> integer(const std::string& field, double lo, double hi) const {
    const nlohmann::json* v = find(field);
    if (v == nullptr) return fail(field, "missing");
    if (!v->is_number_integer() || !(v->get<double>() >= lo && v->get<double>() <= hi)) {
      return fail(field, "expected an integer in " + number_text(lo) + ".." + number_text(hi));
    }
    return v->get<int64_t>();
  }

 private:
  static std::string number_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.15g", v);
    return buf;
  }
  const nlohmann::json& root_;
  const std::string& path_;
};

#define PRESCALE_ASSIGN(target, expr)                                                   \
  do {                                                                                  \
    auto assign_value = (expr);                                                         \
    if (!assign_value) return std::unexpected(assign_value.error());                    \
    (target) = static_cast<std::remove_reference_t<decltype((target))>>(*assign_value); \
  } while (0)

Result<void> read_hyperparameters(const Fields& f, TrainOptions& o) {
  switch (o.kind) {
    case ModelKind::kAls:
      PRESCALE_ASSIGN(o.als.factors, f.integer("hyperparameters.factors", 1, 1024));
      PRESCALE_ASSIGN(o.als.regularization, f.number("hyperparameters.regularization", 0, 1e6));
      PRESCALE_ASSIGN(o.als.alpha, f.number("hyperparameters.alpha", 0, 1e6));
      PRESCALE_ASSIGN(o.als.iterations, f.integer("hyperparameters.iterations", 1, 1000));
      PRESCALE_ASSIGN(o.als.cg_steps, f.integer("hyperparameters.cg_steps", 1, 100));
      PRESCALE_ASSIGN(o.als.seed, f.integer("hyperparameters.seed", 0, 9e18));
      PRESCALE_ASSIGN(o.als.popularity_penalty,
                      f.number("hyperparameters.popularity_penalty", 0, 2));
      break;
    case ModelKind::kEase:
      PRESCALE_ASSIGN(o.ease.lambda, f.number("hyperparameters.lambda", 1e-6, 1e9));
      PRESCALE_ASSIGN(o.ease.min_item_interactions,
                      f.integer("hyperparameters.min_item_interactions", 1, 1e9));
      PRESCALE_ASSIGN(o.ease.max_items, f.integer("hyperparameters.max_items", 1, 30000));
      PRESCALE_ASSIGN(o.ease.popularity_penalty,
                      f.number("hyperparameters.popularity_penalty", 0, 2));
      break;
    case ModelKind::kItemKnn:
      PRESCALE_ASSIGN(o.item_knn.neighbours, f.integer("hyperparameters.neighbours", 1, 10000));
      break;
    case ModelKind::kTopPop:
      break;
  }
  return {};
}

}  // namespace

Result<SavedModel> save_model(const Model& model, const std::string& dir,
                              const SaveOptions& options) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::kUnavailable, dir + ": " + ec.message());
  int version = 1;
  if (auto latest = latest_manifest(dir)) {
    version = latest->version + 1;
  } else if (latest.error().code != ErrorCode::kNotFound) {
    return std::unexpected(latest.error());
  }
  // Creating the .bin claims its version: one another save holds, running or interrupted (a .bin
  // left without a manifest), is skipped, never overwritten.
  const ModelState& s = model.state();
  const std::string bytes = internal::encode_model(s);
  auto bin_path = [&] {
    return fs::path(dir) / ("recommend-v" + std::to_string(version) + ".bin");
  };
  for (;; ++version) {
    if (fs::exists(bin_path(), ec)) continue;
    auto created = create_file_atomically(bin_path(), bytes);
    if (!created) return std::unexpected(created.error());
    if (*created) break;
  }
  const std::string stem = "recommend-v" + std::to_string(version);
  SavedModel saved;
  saved.version = version;
  saved.model_path = bin_path().string();
  saved.manifest_path = (fs::path(dir) / (stem + ".json")).string();

  Json metrics = Json::object();
  for (const auto& [name, value] : options.metrics) metrics[name] = value;
  Json manifest = {
      {"format", kManifestFormat},
      {"format_version", internal::kModelFormatVersion},
      {"version", version},
      {"model", to_string(s.options.kind)},
      {"file", stem + ".bin"},
      {"file_bytes", bytes.size()},
      {"file_hash", hex64(internal::fnv1a(bytes))},
      {"created_at", format_utc(options.clock->wall_now())},
      {"data",
       {{"hash", options.data_hash},
        {"users", s.users.size()},
        {"items", s.items.size()},
        {"interactions", s.user_items.nnz()},
        {"trained_through", s.trained_through}}},
      {"hyperparameters", hyperparameters(s.options)},
      {"metrics", metrics},
  };
  if (auto ok = write_file_atomically(saved.manifest_path, manifest.dump(2) + "\n"); !ok) {
    return std::unexpected(ok.error());
  }
  return saved;
}

Result<std::shared_ptr<const Model>> load_model(const std::string& manifest_path) {
  auto text = read_text_file(manifest_path);
  if (!text) return std::unexpected(text.error());
  auto json = http::parse_json(*text);
  if (!json) {
    return make_error(ErrorCode::kInvalidArgument, manifest_path + ": " + json.error().message);
  }
  const Fields f(*json, manifest_path);
  if (!json->is_object()) return f.fail("(document)", "expected a JSON object");

  auto format = f.string("format");
  if (!format) return std::unexpected(format.error());
  if (*format != kManifestFormat) {
    return f.fail("format",
                  "expected \"" + std::string(kManifestFormat) + "\", got \"" + *format + "\"");
  }
  ModelState s;
  int64_t format_version = 0;
  PRESCALE_ASSIGN(format_version, f.integer("format_version", 1, 1e9));
  if (format_version != internal::kModelFormatVersion) {
    return f.fail("format_version",
                  "this build reads version " + std::to_string(internal::kModelFormatVersion));
  }
  PRESCALE_ASSIGN(s.version, f.integer("version", 1, 1e9));
  // A manifest copied under another version's name would otherwise be "newer" on every look.
  const std::string file_name = fs::path(manifest_path).filename().string();
  if (auto named = versioned_file_number(file_name, "recommend-v", ".json");
      named && *named != s.version) {
    return f.fail("version", std::to_string(s.version) + " differs from the file name's " +
                                 std::to_string(*named));
  }
  auto kind_name = f.string("model");
  if (!kind_name) return std::unexpected(kind_name.error());
  auto kind = model_kind_from_string(*kind_name);
  if (!kind)
    return f.fail("model", "expected toppop, itemknn, als or ease, got \"" + *kind_name + "\"");
  s.options.kind = *kind;
  if (auto ok = read_hyperparameters(f, s.options); !ok) return std::unexpected(ok.error());
  auto file = f.string("file");
  if (!file) return std::unexpected(file.error());
  if (file->empty() || file->find('/') != std::string::npos) {
    return f.fail("file", "expected a file name beside the manifest");
  }
  int64_t file_bytes = 0;
  PRESCALE_ASSIGN(file_bytes, f.integer("file_bytes", 0, 9e18));
  auto file_hash = f.string("file_hash");
  if (!file_hash) return std::unexpected(file_hash.error());
  PRESCALE_ASSIGN(s.created_at, f.string("created_at"));
  PRESCALE_ASSIGN(s.data_hash, f.string("data.hash"));
  PRESCALE_ASSIGN(s.trained_through, f.integer("data.trained_through", -9e18, 9e18));
  if (const nlohmann::json* m = f.find("metrics"); m != nullptr) {
    if (!m->is_object()) return f.fail("metrics", "expected an object");
    for (const auto& [name, value] : m->items()) {
      if (!value.is_number()) return f.fail("metrics." + name, "expected a number");
      s.metrics[name] = value.get<double>();
    }
  }

  const std::string model_path = (fs::path(manifest_path).parent_path() / *file).string();
  auto bytes = read_text_file(model_path);
  if (!bytes) return std::unexpected(bytes.error());
  if (static_cast<int64_t>(bytes->size()) != file_bytes) {
    return f.fail("file_bytes", std::to_string(file_bytes) + " but " + model_path + " has " +
                                    std::to_string(bytes->size()) + " bytes");
  }
  if (hex64(internal::fnv1a(*bytes)) != *file_hash) {
    return f.fail("file_hash", "does not match " + model_path + " (corrupted or replaced)");
  }
  if (auto ok = internal::decode_model(*bytes, model_path, s); !ok)
    return std::unexpected(ok.error());
  s.derive();
  return std::make_shared<const Model>(std::move(s));
}

Result<std::vector<ManifestEntry>> list_manifests(const std::string& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return make_error(
        ec == std::errc::no_such_file_or_directory ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
        dir + ": " + ec.message());
  }
  static const std::regex name(R"(recommend-v([1-9][0-9]{0,8})\.json)");
  std::vector<ManifestEntry> manifests;
  for (const fs::directory_entry& entry : it) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    if (!std::regex_match(file, m, name)) continue;
    manifests.push_back({std::stoi(m[1].str()), entry.path().string()});
  }
  if (manifests.empty()) {
    return make_error(ErrorCode::kNotFound, dir +
                                                ": no model (recommend-v<N>.json); train one "
                                                "with `prescale train recommend`");
  }
  std::sort(manifests.begin(), manifests.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return a.version > b.version; });
  return manifests;
}

Result<LatestManifest> latest_manifest(const std::string& dir) {
  auto manifests = list_manifests(dir);
  if (!manifests) return std::unexpected(manifests.error());
  return manifests->front();
}

#undef PRESCALE_ASSIGN

}  // namespace prescale::recommend
