#include "services/recommend/internal/als.h"

#include <random>

namespace prescale::recommend::internal {
namespace {

// Uniform [0, scale) from a fixed generator, bit-for-bit the same on every platform (the
// standard distributions are implementation-defined).
void fill_uniform(RowMatrix& m, std::mt19937_64& rng, float scale) {
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    for (Eigen::Index c = 0; c < m.cols(); ++c) {
      m(r, c) = static_cast<float>(static_cast<double>(rng() >> 40) * 0x1p-24) * scale;
    }
  }
}

// Solves every row of `x` against fixed `y` for the confidences in `rows` (rows of x × rows of
// y), a few CG steps each, warm-started from the current row.
void least_squares_cg(const SparseRows& rows, RowMatrix& x, const RowMatrix& y,
                      const AlsOptions& o) {
  const Eigen::Index f = y.cols();
  Eigen::MatrixXf yty = y.transpose() * y;
  yty.diagonal().array() += o.regularization;
  Eigen::VectorXf xu(f), r(f), p(f), ap(f);
  for (int32_t u = 0; u < rows.rows(); ++u) {
    const auto entries = rows.row(u);
    xu = x.row(u).transpose();
    // r = b − A·x with A = YᵀY + λI + Σ (c−1)·y yᵀ and b = Σ c·y.
    r.noalias() = -yty * xu;
    for (const ItemWeight& e : entries) {
      const float c = 1 + o.alpha * e.weight;
      const auto yi = y.row(e.item);
      r.noalias() += (c - (c - 1) * yi.dot(xu)) * yi.transpose();
    }
    p = r;
    float rs_old = r.squaredNorm();
    if (rs_old < 1e-20f) continue;
    for (int step = 0; step < o.cg_steps; ++step) {
      ap.noalias() = yty * p;
      for (const ItemWeight& e : entries) {
        const float c = 1 + o.alpha * e.weight;
        const auto yi = y.row(e.item);
        ap.noalias() += ((c - 1) * yi.dot(p)) * yi.transpose();
      }
      const float pap = p.dot(ap);
      if (!(pap > 0)) break;
      const float a = rs_old / pap;
      xu.noalias() += a * p;
      r.noalias() -= a * ap;
      const float rs_new = r.squaredNorm();
      if (rs_new < 1e-20f) break;
      p = r + (rs_new / rs_old) * p;
      rs_old = rs_new;
    }
    x.row(u) = xu.transpose();
  }
}

}  // namespace

AlsFactors train_als(const SparseRows& user_items, const AlsOptions& options,
                     const std::function<void(int, const AlsFactors&)>& on_iteration) {
  const SparseRows item_users = user_items.transposed();
  AlsFactors m;
  m.users.resize(user_items.rows(), options.factors);
  m.items.resize(user_items.columns, options.factors);
  std::mt19937_64 rng(options.seed);
  fill_uniform(m.users, rng, 0.01f);
  fill_uniform(m.items, rng, 0.01f);
  for (int it = 1; it <= options.iterations; ++it) {
    least_squares_cg(user_items, m.users, m.items, options);
    least_squares_cg(item_users, m.items, m.users, options);
    if (on_iteration) on_iteration(it, m);
  }
  return m;
}

double als_loss(const SparseRows& user_items, const AlsFactors& m, const AlsOptions& o) {
  // Σ over all pairs of s² is Σ_u x_uᵀ (YᵀY) x_u; observed pairs then add c(1−s)² − s².
  const Eigen::MatrixXd yty = (m.items.transpose() * m.items).cast<double>();
  double loss = 0;
  for (int32_t u = 0; u < user_items.rows(); ++u) {
    const Eigen::VectorXd xu = m.users.row(u).transpose().cast<double>();
    loss += xu.dot(yty * xu);
    for (const ItemWeight& e : user_items.row(u)) {
      const double s = xu.dot(m.items.row(e.item).transpose().cast<double>());
      const double c = 1 + static_cast<double>(o.alpha) * e.weight;
      loss += c * (1 - s) * (1 - s) - s * s;
    }
  }
  loss += o.regularization *
          (m.users.cast<double>().squaredNorm() + m.items.cast<double>().squaredNorm());
  return loss;
}

Eigen::VectorXf fold_in(std::span<const ItemWeight> history, const RowMatrix& items,
                        const Eigen::MatrixXf& gram, const AlsOptions& o) {
  Eigen::MatrixXf a = gram;
  a.diagonal().array() += o.regularization;
  Eigen::VectorXf b = Eigen::VectorXf::Zero(items.cols());
  for (const ItemWeight& e : history) {
    const float c = 1 + o.alpha * e.weight;
    const auto yi = items.row(e.item);
    a.selfadjointView<Eigen::Lower>().rankUpdate(yi.transpose(), c - 1);
    b.noalias() += c * yi.transpose();
  }
  return a.llt().solve(b);  // LLT reads the lower triangle
}

}  // namespace prescale::recommend::internal
