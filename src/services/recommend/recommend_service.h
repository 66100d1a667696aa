// `prescale serve recommend`: recommendations from a trained model (ALS, EASE, ItemKNN or
// TopPop) that follow each user's newest interactions at once.
//
//   GET  /v1/users/{id}/recommendations  ?k=10&exclude=1,2&include=3,4 → top-k items, unseen
//   POST /v1/interactions                {"user","item","weight"} or {"interactions":[...]}
//   GET  /v1/items/{id}/similar          ?k=10 → the items most similar to one item
//   GET  /v1/model                       the served model's manifest facts
//   POST /v1/model/reload                load the newest model file in the model directory
//
// Fields, limits and errors: docs/services/recommend.md and docs/api/recommend.yaml. Posted
// interactions change the user's next recommendations (ALS folds the user's factors in against
// the fixed item factors; the other models score the history directly); a user the model has
// never seen and who posted nothing, or whose history the model cannot score (EASE: no item of it
// in its item set), gets the most popular items with "cold_start": true.
//
// Thread safety: handlers and the public methods may run on any thread at once. The model is
// immutable and swapped atomically on reload (std::atomic<std::shared_ptr>); per-user state
// lives in a sharded UserStore.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "runtime/service.h"
#include "services/recommend/model.h"

namespace prescale::telemetry {
class Registry;
}

namespace prescale::services {

struct RecommendServiceOptions {
  // Where `prescale train recommend` writes models; the newest recommend-v<N>.json is served.
  std::string model_dir;
  // poll() reloads when this much clock time has passed since its last check; 0 = never.
  std::chrono::milliseconds poll_interval{0};
  // With poll_interval > 0: a thread calls poll() (sleeping on `clock`, which must advance by
  // itself). Tests turn it off and call poll() with a ManualClock.
  bool background_poll = true;
  Clock* clock = &Clock::real();  // poll timing; the timestamp of posted events without one
  // Where prescale_model_info and the service's counters go (the runtime's registry).
  telemetry::Registry* registry = nullptr;

  int default_k = 10;
  int max_k = 1000;
  size_t max_filter_items = 10000;    // ids in exclude= or include=
  size_t max_batch = 1000;            // interactions per POST
  float max_weight = 1000;            // of one posted interaction
  size_t max_users = 1'000'000;       // users with posted interactions kept
  size_t max_events_per_user = 1000;  // posted interactions kept per user (oldest dropped)
  // EASE: the history scores (x·B) of trained users with long histories are kept, per model, up
  // to this many bytes (a user costs 4 bytes per item of B); once full, the rest are computed
  // per request. 0 turns the cache off.
  size_t score_cache_bytes = 64u << 20;
  size_t score_cache_min_history = 64;  // shorter histories are cheap to score each time
};

struct RecommendQuery {
  int64_t user = 0;
  size_t k = 10;
  std::vector<int64_t> exclude;  // item ids never to return
  std::vector<int64_t> include;  // when not empty, return only these item ids
};

// The answers of recommend() and similar(), each with the kind and version of the model that
// made it (a reload may serve another one before the response is written).
struct Recommendations {
  std::vector<recommend::ScoredItem> items;
  bool cold_start = false;
  recommend::ModelKind model_kind = recommend::ModelKind::kTopPop;
  std::string model_version;
};

struct SimilarItems {
  std::vector<recommend::ScoredItem> items;
  recommend::ModelKind model_kind = recommend::ModelKind::kTopPop;
  std::string model_version;
};

struct PostedInteraction {
  int64_t user = 0;
  int64_t item = 0;
  float weight = 1;
  std::optional<int64_t> timestamp;  // Unix seconds; the clock's wall time when absent
};

struct InteractionsResult {
  size_t accepted = 0;
  size_t ignored_unknown_items = 0;
  size_t users = 0;
  std::string model_version;
};

class RecommendService final : public runtime::Service {
 public:
  // Serves `model`; reload() and poll() look in options.model_dir (may be empty: no reload).
  RecommendService(std::shared_ptr<const recommend::Model> model, RecommendServiceOptions options);
  ~RecommendService() override;

  std::string_view name() const override { return "recommend"; }
  void register_routes(runtime::Routes& routes) override;
  void on_drain() override;

  // The in-process API the routes use. recommend() fails only for k out of range.
  Result<Recommendations> recommend(const RecommendQuery& query) const;
  // Unknown items are ignored and counted; kOutOfRange when the user limit is reached.
  Result<InteractionsResult> add_interactions(std::span<const PostedInteraction> interactions);
  Result<SimilarItems> similar(int64_t item, size_t k) const;

  // Loads the newest model in model_dir when its files (the manifest and the .bin: path, size,
  // modification time) differ from those the served model came from, and swaps it in; true when
  // it did. For a model handed to the constructor, whose files are not known, when its version
  // differs. On error the served model stays; a model that failed is not read again until one
  // of its files changes.
  Result<bool> reload();
  // reload() when poll_interval has passed on the clock since the last check; false otherwise.
  Result<bool> poll();

  std::shared_ptr<const recommend::Model> model() const;
  const RecommendServiceOptions& options() const;

 private:
  // make_recommend_service(): `model` was loaded from the files `model_files` describes.
  RecommendService(std::shared_ptr<const recommend::Model> model, RecommendServiceOptions options,
                   std::string model_files);
  friend Result<std::unique_ptr<RecommendService>> make_recommend_service(
      RecommendServiceOptions options);

  struct Served;
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Loads the newest model in options.model_dir that loads and builds the service (for `prescale
// serve recommend`); newer versions that do not load are logged and skipped. Errors name the
// directory without a model, or the newest file and field at fault when none loads.
Result<std::unique_ptr<RecommendService>> make_recommend_service(RecommendServiceOptions options);

}  // namespace prescale::services
