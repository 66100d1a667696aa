// Internal: the item-based nearest-neighbour baseline. Items are the columns of the user × item
// interaction matrix; the similarity of two items is the cosine of their columns. Each item
// keeps its `neighbours` most similar items, and a user's score for an item is Σ over the
// user's items j of weight_j · sim(j, item).
//
// Thread safety: functions are pure.
#pragma once

#include "services/recommend/internal/matrix.h"
#include "services/recommend/model_types.h"

namespace prescale::recommend::internal {

// Row i holds item i's neighbours (itself excluded) with their cosine similarity, most similar
// first (unlike other SparseRows, not sorted by column).
SparseRows train_item_knn(const SparseRows& user_items, const ItemKnnOptions& options);

}  // namespace prescale::recommend::internal
