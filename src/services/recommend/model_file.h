// Versioned model files. A model directory holds, per trained version N,
//   recommend-vN.bin   the model (ids, training interactions, factors or weights; binary)
//   recommend-vN.json  its manifest: version, model kind, hyper-parameters, data hash,
//                      validation metrics, and the size and FNV-1a hash of the .bin
// Saving writes the .bin, then the manifest, each through a rename, so a reader that keys off
// manifests never sees a partial model. Loading checks the manifest's fields, the .bin's size,
// hash and structure; errors name the file and the field, e.g.
//   "models/recommend-v3.json: hyperparameters.factors: expected an integer in 1..1024".
// Format and fields: docs/services/recommend.md, "Model files".
//
// Thread safety: functions are safe to call concurrently on different directories; saving
// twice into one directory at once may pick the same version (one then fails).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/versioned_file.h"
#include "services/recommend/model.h"

namespace prescale::recommend {

struct SaveOptions {
  std::string data_hash;                  // of the training data (file_hash())
  std::map<std::string, double> metrics;  // validation metrics, e.g. "ndcg_at_10"
  Clock* clock = &Clock::real();          // for created_at
};

struct SavedModel {
  int version = 0;
  std::string model_path;
  std::string manifest_path;
};

// Writes `model` as the next version in `dir` (created if missing): one above the highest
// version there, or above, skipping versions another save holds (saves at once get versions of
// their own).
Result<SavedModel> save_model(const Model& model, const std::string& dir,
                              const SaveOptions& options = {});

// Loads the model a manifest describes (the .bin beside it).
Result<std::shared_ptr<const Model>> load_model(const std::string& manifest_path);

// A manifest in a model directory: its version and path.
using ManifestEntry = VersionedFile;
// The manifests in `dir`, newest (highest version) first; kNotFound naming the directory when
// there is none.
Result<std::vector<ManifestEntry>> list_manifests(const std::string& dir);
// The manifest of the highest version in `dir`, and that version; kNotFound when there is none.
using LatestManifest = ManifestEntry;
Result<LatestManifest> latest_manifest(const std::string& dir);

}  // namespace prescale::recommend
