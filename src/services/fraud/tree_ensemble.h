// The flat tree evaluator that serves gradient-boosted trees: XGBoost's trees compiled into one
// array of 16-byte nodes (feature, float32 threshold, both children, missing-value direction),
// trees one after another. A leaf points to itself, so every tree of a block of eight is walked
// the same number of levels in lockstep: eight independent chains of loads and compares that the
// CPU overlaps, no exit branch to mispredict, no allocation.
//
// It reproduces XGBoost's arithmetic, so margins are bit-for-bit XGBoost's (the test compares
// every row of the data set): float32 features and thresholds, `x < threshold` goes left, a NaN
// feature takes the node's default direction, leaves summed in float32 in tree order onto the
// base margin. contributions() gives Saabas per-feature contributions (the change of the node
// mean along the decision path), exactly XGBoost's pred_contribs with approx_contribs=true; a
// path is fixed by its leaf, so each leaf stores its tree's contributions and they cost the same
// walk plus a few adds per tree.
//
// Thread safety: immutable after compile; share it between threads freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud {

class TreeEnsemble {
 public:
  // Compiles XGBoost's JSON model (XGBoosterSaveModelToBuffer with format "json"): objective
  // binary:logistic, booster gbtree, numerical splits on kFeatureCount features. Errors
  // (kInvalidArgument) name the JSON path of the bad field under `path`, e.g.
  // "xgboost_model.learner.gradient_booster.model.trees[3].left_children[5]: ...".
  static Result<TreeEnsemble> compile(const nlohmann::json& model, std::string_view path);

  // The log-odds margin, as XGBoost's "output margin" prediction.
  float margin(const Features& x) const;
  // XGBoost's probability: its float32 sigmoid of the margin.
  float probability(const Features& x) const { return sigmoid(margin(x)); }
  // Saabas contributions in log-odds: out[j] for feature j and out[kFeatureCount] the bias (the
  // trees' mean prediction plus the base margin), in XGBoost's order of float32 sums. Returns the
  // margin (equal to margin(x)); the contributions sum to it up to float rounding.
  float contributions(const Features& x, std::span<float, kFeatureCount + 1> out) const;

  static float sigmoid(float margin);

  size_t tree_count() const { return roots_.size(); }
  size_t node_count() const { return nodes_.size(); }
  // Levels of the deepest tree.
  size_t max_depth() const;

  // Trees deeper than this are rejected (XGBoost's depth-wise trees have max_depth ≤ 16 here).
  static constexpr size_t kMaxDepth = 64;
  float base_margin() const { return base_margin_; }

 private:
  struct Node {
    float threshold;       // go left when x[feature] < threshold
    uint32_t child[2];     // left, right; a leaf's are its own index
    uint16_t feature;      // split feature (0 at a leaf)
    uint8_t default_left;  // where NaN goes
    uint8_t unused = 0;
  };
  static_assert(sizeof(Node) == 16);

  // Up to kBlock consecutive trees walked together `depth` levels.
  static constexpr size_t kBlock = 8;
  struct Block {
    uint32_t first_tree;
    uint32_t trees;
    uint32_t depth;  // the deepest leaf among them
  };

  TreeEnsemble() = default;
  template <bool kMayBeMissing>
  float margin_of(const Features& x) const;
  template <bool kMayBeMissing>
  float contributions_of(const Features& x, std::span<float, kFeatureCount + 1> out) const;

  std::vector<Node> nodes_;
  std::vector<float> values_;    // per node: the leaf value (0 at a split)
  std::vector<float> means_;     // per node: the Saabas node mean (cover-weighted leaf mean)
  std::vector<uint32_t> roots_;  // index of each tree's root
  std::vector<Block> blocks_;
  // Per leaf, its tree's Saabas contributions (features on its path, each once, then padding):
  // leaf_contributions_[leaf_first_[leaf] ..+ tree_depth_[tree]].
  struct Contribution {
    uint16_t feature;
    float value;
  };
  std::vector<Contribution> leaf_contributions_;
  std::vector<uint32_t> leaf_first_;  // per node (leaves only)
  std::vector<uint32_t> tree_depth_;  // per tree: the length of its leaves' lists
  static constexpr uint16_t kSpareSlot = kFeatureCount + 1;  // where padding adds its zeros
  float bias_ = 0;  // the contributions' bias term, the same for every transaction
  float base_margin_ = 0;
};

}  // namespace prescale::fraud
