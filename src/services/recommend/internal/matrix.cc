#include "services/recommend/internal/matrix.h"

#include <algorithm>

namespace prescale::recommend::internal {

int32_t IdIndex::add(int64_t id) {
  auto [it, inserted] = index_.try_emplace(id, size());
  if (inserted) ids_.push_back(id);
  return it->second;
}

std::optional<int32_t> IdIndex::find(int64_t id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

SparseRows build_rows(std::vector<Triplet> triplets, int32_t rows, int32_t columns) {
  std::sort(triplets.begin(), triplets.end(), [](const Triplet& a, const Triplet& b) {
    return a.row != b.row ? a.row < b.row : a.column < b.column;
  });
  SparseRows m;
  m.columns = columns;
  m.offsets.assign(static_cast<size_t>(rows) + 1, 0);
  m.entries.reserve(triplets.size());
  for (size_t i = 0; i < triplets.size(); ++i) {
    const Triplet& t = triplets[i];
    if (i > 0 && triplets[i - 1].row == t.row && triplets[i - 1].column == t.column) {
      m.entries.back().weight += t.weight;
      continue;
    }
    m.entries.push_back({t.column, t.weight});
    ++m.offsets[static_cast<size_t>(t.row) + 1];
  }
  for (size_t r = 0; r < static_cast<size_t>(rows); ++r) m.offsets[r + 1] += m.offsets[r];
  return m;
}

SparseRows SparseRows::transposed() const {
  SparseRows t;
  t.columns = rows();
  t.offsets.assign(static_cast<size_t>(columns) + 1, 0);
  for (const ItemWeight& e : entries) ++t.offsets[static_cast<size_t>(e.item) + 1];
  for (size_t c = 0; c < static_cast<size_t>(columns); ++c) t.offsets[c + 1] += t.offsets[c];
  t.entries.resize(entries.size());
  std::vector<int64_t> next(t.offsets.begin(), t.offsets.end() - 1);
  for (int32_t r = 0; r < rows(); ++r) {
    for (const ItemWeight& e : row(r)) {
      t.entries[static_cast<size_t>(next[static_cast<size_t>(e.item)]++)] = {r, e.weight};
    }
  }
  return t;
}

TrainingData index_interactions(const std::vector<Interaction>& interactions) {
  TrainingData data;
  std::vector<Triplet> triplets;
  triplets.reserve(interactions.size());
  for (const Interaction& x : interactions) {
    triplets.push_back({data.users.add(x.user), data.items.add(x.item), x.weight});
    data.max_timestamp = std::max(data.max_timestamp, x.timestamp);
  }
  data.user_items = build_rows(std::move(triplets), data.users.size(), data.items.size());
  return data;
}

uint64_t fnv1a(std::string_view bytes, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace prescale::recommend::internal
