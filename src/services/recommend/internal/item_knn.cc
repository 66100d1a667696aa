#include "services/recommend/internal/item_knn.h"

#include <algorithm>
#include <cmath>

namespace prescale::recommend::internal {

SparseRows train_item_knn(const SparseRows& user_items, const ItemKnnOptions& options) {
  const SparseRows item_users = user_items.transposed();
  const auto n = static_cast<size_t>(user_items.columns);
  std::vector<double> norm(n, 0);
  for (int32_t i = 0; i < item_users.rows(); ++i) {
    for (const ItemWeight& e : item_users.row(i)) {
      norm[static_cast<size_t>(i)] += static_cast<double>(e.weight) * e.weight;
    }
    norm[static_cast<size_t>(i)] = std::sqrt(norm[static_cast<size_t>(i)]);
  }

  SparseRows out;
  out.columns = user_items.columns;
  out.offsets.assign(n + 1, 0);
  std::vector<double> dot(n, 0);
  std::vector<int32_t> touched;
  std::vector<ItemWeight> candidates;
  const auto keep = static_cast<size_t>(std::max(0, options.neighbours));
  for (int32_t i = 0; i < item_users.rows(); ++i) {
    touched.clear();
    for (const ItemWeight& iu : item_users.row(i)) {
      for (const ItemWeight& uj : user_items.row(iu.item)) {
        auto& d = dot[static_cast<size_t>(uj.item)];
        if (d == 0) touched.push_back(uj.item);
        d += static_cast<double>(iu.weight) * uj.weight;
      }
    }
    candidates.clear();
    for (int32_t j : touched) {
      const auto js = static_cast<size_t>(j);
      if (j != i && dot[js] > 0) {
        const double sim = dot[js] / (norm[static_cast<size_t>(i)] * norm[js]);
        candidates.push_back({j, static_cast<float>(sim)});
      }
      dot[js] = 0;
    }
    // Most similar first; ties by item index, so the result does not depend on visiting order.
    auto by_similarity = [](const ItemWeight& a, const ItemWeight& b) {
      return a.weight != b.weight ? a.weight > b.weight : a.item < b.item;
    };
    const size_t k = std::min(keep, candidates.size());
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(k),
                      candidates.end(), by_similarity);
    out.entries.insert(out.entries.end(), candidates.begin(),
                       candidates.begin() + static_cast<std::ptrdiff_t>(k));
    out.offsets[static_cast<size_t>(i) + 1] = static_cast<int64_t>(out.entries.size());
  }
  return out;
}

}  // namespace prescale::recommend::internal
