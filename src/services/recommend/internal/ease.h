// Internal: EASE, the closed-form linear item-item model (Steck 2019, "Embarrassingly Shallow
// Autoencoders for Sparse Data"):
//   P = (XᵀX + λI)⁻¹,   B = I − P·diag(1/diag(P))   (so diag(B) = 0),
// and a user's scores are x_u·B. The inverse is dense and cubic in the number of items, so the
// model covers the items with at least `min_item_interactions` training interactions, at most
// `max_items` of them (the most interacted with).
//
// Thread safety: functions are pure.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "services/recommend/internal/als.h"
#include "services/recommend/internal/matrix.h"
#include "services/recommend/model_types.h"

namespace prescale::recommend::internal {

struct EaseWeights {
  std::vector<int32_t> items;  // the matrix's row/column r is item items[r] (dense item index)
  RowMatrix b;                 // items.size() × items.size(), zero diagonal
};

EaseWeights train_ease(const SparseRows& user_items, const EaseOptions& options);

// B from a Gram matrix G = XᵀX (without λ): the closed form above (in single precision).
RowMatrix ease_from_gram(const Eigen::MatrixXd& gram, double lambda);

}  // namespace prescale::recommend::internal
