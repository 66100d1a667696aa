// Internal: dense indices for user and item ids, and the sparse user × item matrix the models
// train on (compressed rows). Not part of the recommend API.
//
// Thread safety: const methods may run concurrently; building is single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "services/recommend/interactions.h"
#include "services/recommend/model_types.h"

namespace prescale::recommend::internal {

// External 64-bit ids ↔ dense indices 0..size()-1, in order of first appearance.
class IdIndex {
 public:
  int32_t add(int64_t id);
  std::optional<int32_t> find(int64_t id) const;
  int64_t id(int32_t index) const { return ids_[static_cast<size_t>(index)]; }
  const std::vector<int64_t>& ids() const { return ids_; }
  int32_t size() const { return static_cast<int32_t>(ids_.size()); }

 private:
  std::vector<int64_t> ids_;
  std::unordered_map<int64_t, int32_t> index_;
};

// A sparse matrix in compressed rows: row r holds entries[offsets[r]..offsets[r+1]), sorted by
// column, one entry per column (duplicates summed when built).
struct SparseRows {
  std::vector<int64_t> offsets{0};
  std::vector<ItemWeight> entries;
  int32_t columns = 0;

  int32_t rows() const { return static_cast<int32_t>(offsets.size()) - 1; }
  std::span<const ItemWeight> row(int32_t r) const {
    return {entries.data() + offsets[static_cast<size_t>(r)],
            entries.data() + offsets[static_cast<size_t>(r) + 1]};
  }
  size_t nnz() const { return entries.size(); }

  // The transpose (columns become rows), e.g. items × users from users × items.
  SparseRows transposed() const;
};

// Users × items from (row, column, weight) triplets; duplicates are summed.
struct Triplet {
  int32_t row = 0;
  int32_t column = 0;
  float weight = 0;
};
SparseRows build_rows(std::vector<Triplet> triplets, int32_t rows, int32_t columns);

// A training matrix: users and items indexed in order of first appearance.
struct TrainingData {
  IdIndex users;
  IdIndex items;
  SparseRows user_items;      // users × items
  int64_t max_timestamp = 0;  // the newest interaction's Unix seconds
};
TrainingData index_interactions(const std::vector<Interaction>& interactions);

// FNV-1a 64 of `bytes`.
uint64_t fnv1a(std::string_view bytes, uint64_t seed = 0xcbf29ce484222325ull);

}  // namespace prescale::recommend::internal
