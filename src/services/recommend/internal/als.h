// Internal: alternating least squares for implicit feedback (Hu, Koren, Volinsky 2008).
//
// Each observed weight r_ui gives a preference p_ui = 1 and a confidence c_ui = 1 + alpha·r_ui;
// unobserved pairs have p = 0, c = 1. ALS minimises
//   Σ_u,i c_ui (p_ui − x_uᵀ y_i)² + λ (Σ_u |x_u|² + Σ_i |y_i|²)
// by solving every user's factors against fixed item factors and then the reverse. Each solve
// runs a few conjugate-gradient steps warm-started from the previous factors, with YᵀY computed
// once per sweep so one user costs O(n_u·f + f²) per step (as the `implicit` library's CG
// solver, Takács et al. 2011).
//
// Thread safety: functions are pure apart from writing their outputs.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <functional>
#include <span>

#include "services/recommend/internal/matrix.h"
#include "services/recommend/model_types.h"

namespace prescale::recommend::internal {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct AlsFactors {
  RowMatrix users;  // users × factors
  RowMatrix items;  // items × factors
};

// `on_iteration(sweep, factors)`, when set, runs after each sweep (1-based).
AlsFactors train_als(const SparseRows& user_items, const AlsOptions& options,
                     const std::function<void(int, const AlsFactors&)>& on_iteration = {});

// The objective above for the given factors.
double als_loss(const SparseRows& user_items, const AlsFactors& factors, const AlsOptions& options);

// One user's factors against fixed item factors: the exact minimiser (Cholesky) for the
// history given. `gram` is itemsᵀ·items (without λ).
Eigen::VectorXf fold_in(std::span<const ItemWeight> history, const RowMatrix& items,
                        const Eigen::MatrixXf& gram, const AlsOptions& options);

}  // namespace prescale::recommend::internal
