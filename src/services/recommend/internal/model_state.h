// Internal: everything a trained model holds, shared by training, scoring and the model file.
//
// Thread safety: immutable once a Model owns it.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "services/recommend/internal/als.h"
#include "services/recommend/internal/ease.h"
#include "services/recommend/internal/matrix.h"
#include "services/recommend/model_types.h"

namespace prescale::recommend::internal {

struct ModelState {
  TrainOptions options;
  IdIndex users;
  IdIndex items;
  SparseRows user_items;                // training interactions, users × items
  std::vector<float> popularity;        // training interactions per item
  std::vector<int32_t> by_popularity;   // item indices, most popular first (ties: lower index)
  std::vector<float> popularity_scale;  // popularity^-popularity_penalty (ALS, EASE), or empty

  // kind == kAls
  AlsFactors als;
  Eigen::MatrixXf gram;  // als.itemsᵀ·als.items, for fold-in
  RowMatrix unit_items;  // als.items with unit rows, for similar items

  // kind == kEase
  EaseWeights ease;
  std::vector<int32_t> ease_position;  // item index → row of ease.b, or -1

  // kind == kItemKnn
  SparseRows neighbours;  // items × items, most similar first

  // Facts the manifest records (set when saved or loaded).
  int version = 0;
  std::string data_hash;
  int64_t trained_through = 0;  // newest training interaction, Unix seconds
  std::string created_at;       // RFC 3339, UTC
  std::map<std::string, double> metrics;

  // Fills the fields derived from the others (popularity order, gram, unit rows, positions).
  void derive();
};

}  // namespace prescale::recommend::internal
