// A trained recommender over a catalogue of items: TopPop, ItemKNN, implicit ALS or EASE
// (docs/services/recommend.md), with the training interactions of the users it saw. It ranks
// items for a history (a user's training interactions plus any added since), never returning
// an item of that history, and finds items similar to an item.
//
// Thread safety: a Model is immutable; every method is const and may run on any number of
// threads at once. Serving swaps whole models (std::shared_ptr<const Model>).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "services/recommend/interactions.h"
#include "services/recommend/model_types.h"

namespace prescale::recommend {

namespace internal {
struct ModelState;
}

class Model {
 public:
  // Trains a model of `options.kind`. kInvalidArgument when there are no interactions, a weight
  // is not a positive finite number, or a hyper-parameter is out of range (the message names
  // it, e.g. "als.factors: expected 1..1024, got 0").
  static Result<std::shared_ptr<const Model>> train(const std::vector<Interaction>& interactions,
                                                    const TrainOptions& options);

  explicit Model(internal::ModelState state);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  ModelKind kind() const;
  const TrainOptions& options() const;
  // The model file's version (recommend-v<version>.bin); 0 for a model trained in memory.
  int version() const;
  // "v<version>", or "unsaved" for version 0: the `model_version` of responses.
  std::string version_label() const;
  // The newest training interaction, Unix seconds.
  int64_t trained_through() const;
  // From the manifest (empty for a model trained in memory): when it was saved (RFC 3339), the
  // training data's hash and the validation metrics.
  const std::string& created_at() const;
  const std::string& data_hash() const;
  const std::map<std::string, double>& metrics() const;

  int32_t item_count() const;
  int32_t user_count() const;
  std::optional<int32_t> item_index(int64_t item) const;
  int64_t item_id(int32_t index) const;

  // A user's training interactions, sorted by item index; empty for a user the model has not
  // seen.
  std::span<const ItemWeight> history(int64_t user) const;
  // ALS: the user's trained factors (empty for an unseen user or another kind).
  std::span<const float> factors(int64_t user) const;
  // ALS: the factors that fit `history` best against the fixed item factors (one f × f
  // Cholesky solve); empty for other kinds, which score a history directly.
  std::vector<float> fold_in(std::span<const ItemWeight> history) const;
  // EASE: the history's scores over the model's item set (x·B, one per row of B), what
  // recommend() computes for a query without them: worth keeping for a long history, whose
  // cost grows with its length (a 2,000-item history takes about a millisecond). Empty for other
  // kinds.
  std::vector<float> history_scores(std::span<const ItemWeight> history) const;

  struct Query {
    std::span<const ItemWeight> history;  // one entry per item; these are never returned
    // ALS: the history's factors (factors() or fold_in()); folded in here when empty.
    // EASE: the history's history_scores(); computed here when empty.
    std::span<const float> factors;
    std::span<const int32_t> exclude;             // item indices never to return
    const std::vector<int32_t>* allow = nullptr;  // when set, return only these item indices
    size_t k = 10;
  };
  // The k best-scored items, best first (ties: lower item index first). Items the model cannot
  // score (EASE: outside its item set) are not returned, so the list may be shorter than k.
  std::vector<ScoredItem> recommend(const Query& query) const;
  // Whether recommend() scores items from `history`: false for an empty one, and for EASE when
  // none of its items is in EASE's item set (every score would be 0). Answer such a history
  // with popular(), as a new user.
  bool scores_history(std::span<const ItemWeight> history) const;
  // The k most popular items under the same exclusions: what a cold-start user gets.
  std::vector<ScoredItem> popular(const Query& query) const;
  // Up to k items most similar to the item (index), best first, itself excluded. ALS: cosine of
  // item factors; EASE: the item's row of B; ItemKNN: its neighbours; TopPop: popularity.
  std::vector<ScoredItem> similar(int32_t item, size_t k) const;

  const internal::ModelState& state() const { return *state_; }

 private:
  std::unique_ptr<const internal::ModelState> state_;
};

}  // namespace prescale::recommend
