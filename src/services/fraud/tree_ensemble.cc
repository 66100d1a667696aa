#include "services/fraud/tree_ensemble.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

namespace prescale::fraud {
namespace {

using nlohmann::json;

Error invalid(const std::string& path, std::string_view message) {
  return Error{ErrorCode::kInvalidArgument, path + ": " + std::string(message)};
}

// The member `key` of `object`, or an error naming path.key.
Result<const json*> member(const json& object, std::string_view key, const std::string& path) {
  if (!object.is_object()) return std::unexpected(invalid(path, "expected an object"));
  auto it = object.find(key);
  if (it == object.end()) {
    return std::unexpected(invalid(path + "." + std::string(key), "missing"));
  }
  return &*it;
}

// A member that is a string: the string.
Result<std::string> string_member(const json& object, std::string_view key,
                                  const std::string& path) {
  auto m = member(object, key, path);
  if (!m) return std::unexpected(m.error());
  if (!(*m)->is_string()) {
    return std::unexpected(invalid(path + "." + std::string(key), "expected a string"));
  }
  return (*m)->get<std::string>();
}

// A number XGBoost writes as a string, such as base_score "5E-1".
Result<float> float_string_member(const json& object, std::string_view key,
                                  const std::string& path) {
  auto s = string_member(object, key, path);
  if (!s) return std::unexpected(s.error());
  float v = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || end != s->data() + s->size() || !std::isfinite(v)) {
    return std::unexpected(invalid(path + "." + std::string(key), "expected a number in a string"));
  }
  return v;
}

// An array of numbers of length `size` (or any length when size is SIZE_MAX).
template <typename T>
Result<std::vector<T>> number_array(const json& tree, std::string_view key, const std::string& path,
                                    size_t size) {
  auto m = member(tree, key, path);
  if (!m) return std::unexpected(m.error());
  const std::string field = path + "." + std::string(key);
  if (!(*m)->is_array()) return std::unexpected(invalid(field, "expected an array"));
  if (size != std::numeric_limits<size_t>::max() && (*m)->size() != size) {
    return std::unexpected(invalid(field, "expected " + std::to_string(size) + " values, got " +
                                              std::to_string((*m)->size())));
  }
  std::vector<T> out;
  out.reserve((*m)->size());
  for (size_t i = 0; i < (*m)->size(); ++i) {
    const json& v = (**m)[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number() || !std::isfinite(v.get<double>()) ||
          std::abs(v.get<double>()) > std::numeric_limits<float>::max()) {
        return std::unexpected(invalid(at, "expected a finite number"));
      }
      out.push_back(static_cast<T>(v.get<double>()));
    } else {
      if (!v.is_number_integer()) return std::unexpected(invalid(at, "expected an integer"));
      out.push_back(v.get<T>());
    }
  }
  return out;
}

}  // namespace

float TreeEnsemble::sigmoid(float margin) {
  // XGBoost 1.7's common::Sigmoid(float).
  return 1.0f / (1.0f + std::exp(-margin));
}

Result<TreeEnsemble> TreeEnsemble::compile(const json& model, std::string_view path_view) {
  const std::string root(path_view);
  auto learner = member(model, "learner", root);
  if (!learner) return std::unexpected(learner.error());
  const std::string learner_path = root + ".learner";

  auto objective = member(**learner, "objective", learner_path);
  if (!objective) return std::unexpected(objective.error());
  auto objective_name = string_member(**objective, "name", learner_path + ".objective");
  if (!objective_name) return std::unexpected(objective_name.error());
  if (*objective_name != "binary:logistic") {
    return std::unexpected(
        invalid(learner_path + ".objective.name",
                "expected \"binary:logistic\", got \"" + *objective_name + "\""));
  }

  auto params = member(**learner, "learner_model_param", learner_path);
  if (!params) return std::unexpected(params.error());
  const std::string params_path = learner_path + ".learner_model_param";
  auto num_feature = string_member(**params, "num_feature", params_path);
  if (!num_feature) return std::unexpected(num_feature.error());
  if (*num_feature != std::to_string(kFeatureCount)) {
    return std::unexpected(invalid(
        params_path + ".num_feature",
        "expected \"" + std::to_string(kFeatureCount) + "\", got \"" + *num_feature + "\""));
  }
  if (auto it = (*params)->find("num_class");
      it != (*params)->end() && !(it->is_string() && (*it == "0" || *it == "1"))) {
    return std::unexpected(invalid(params_path + ".num_class", "expected one output"));
  }
  auto base_score = float_string_member(**params, "base_score", params_path);
  if (!base_score) return std::unexpected(base_score.error());
  if (!(*base_score > 0.0f && *base_score < 1.0f)) {
    return std::unexpected(
        invalid(params_path + ".base_score", "expected a probability in (0, 1)"));
  }

  auto booster = member(**learner, "gradient_booster", learner_path);
  if (!booster) return std::unexpected(booster.error());
  const std::string booster_path = learner_path + ".gradient_booster";
  auto booster_name = string_member(**booster, "name", booster_path);
  if (!booster_name) return std::unexpected(booster_name.error());
  if (*booster_name != "gbtree") {
    return std::unexpected(
        invalid(booster_path + ".name", "expected \"gbtree\", got \"" + *booster_name + "\""));
  }
  auto trees_model = member(**booster, "model", booster_path);
  if (!trees_model) return std::unexpected(trees_model.error());
  const std::string model_path = booster_path + ".model";
  auto trees = member(**trees_model, "trees", model_path);
  if (!trees) return std::unexpected(trees.error());
  if (!(*trees)->is_array()) {
    return std::unexpected(invalid(model_path + ".trees", "expected an array"));
  }

  TreeEnsemble ensemble;
  // XGBoost's LogisticRegression::ProbToMargin, in float32 as it computes it.
  ensemble.base_margin_ = -std::log(1.0f / *base_score - 1.0f);
  for (size_t t = 0; t < (*trees)->size(); ++t) {
    const json& tree = (**trees)[t];
    const std::string tree_path = model_path + ".trees[" + std::to_string(t) + "]";
    const size_t any = std::numeric_limits<size_t>::max();
    auto left = number_array<int64_t>(tree, "left_children", tree_path, any);
    if (!left) return std::unexpected(left.error());
    const size_t n = left->size();
    if (n == 0) return std::unexpected(invalid(tree_path + ".left_children", "no nodes"));
    auto right = number_array<int64_t>(tree, "right_children", tree_path, n);
    if (!right) return std::unexpected(right.error());
    auto feature = number_array<int64_t>(tree, "split_indices", tree_path, n);
    if (!feature) return std::unexpected(feature.error());
    auto condition = number_array<float>(tree, "split_conditions", tree_path, n);
    if (!condition) return std::unexpected(condition.error());
    auto default_left = number_array<int64_t>(tree, "default_left", tree_path, n);
    if (!default_left) return std::unexpected(default_left.error());
    auto hessian = number_array<float>(tree, "sum_hessian", tree_path, n);
    if (!hessian) return std::unexpected(hessian.error());
    if (tree.contains("split_type")) {
      auto types = number_array<int64_t>(tree, "split_type", tree_path, n);
      if (!types) return std::unexpected(types.error());
      for (size_t i = 0; i < n; ++i) {
        if ((*types)[i] != 0) {
          return std::unexpected(invalid(tree_path + ".split_type[" + std::to_string(i) + "]",
                                         "categorical splits are not supported"));
        }
      }
    }

    // Breadth-first from the root: new indices in visiting order, so children follow parents.
    const auto base = static_cast<uint32_t>(ensemble.nodes_.size());
    if (ensemble.nodes_.size() + n > std::numeric_limits<uint32_t>::max() / 2) {
      return std::unexpected(invalid(tree_path, "too many nodes"));
    }
    std::vector<uint32_t> order = {0};  // old ids in new order
    std::vector<uint32_t> level = {0};  // depth of each, in new order
    std::vector<char> seen(n, 0);
    seen[0] = 1;
    ensemble.roots_.push_back(base);
    uint32_t depth = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      const uint32_t old = order[k];
      const auto self = base + static_cast<uint32_t>(k);
      const std::string at = "[" + std::to_string(old) + "]";
      Node node{};
      float value = 0;
      const bool leaf = (*left)[old] == -1;
      if (leaf != ((*right)[old] == -1)) {
        return std::unexpected(
            invalid(tree_path + ".right_children" + at, "a node has both children or none"));
      }
      if (leaf) {
        // A leaf loops to itself whatever the feature, so walking on past it changes nothing.
        node.child[0] = node.child[1] = self;
        value = (*condition)[old];  // XGBoost keeps a leaf's value in split_conditions
        depth = std::max(depth, level[k]);
      } else {
        if (level[k] + 1 > kMaxDepth) {
          return std::unexpected(
              invalid(tree_path, "deeper than " + std::to_string(kMaxDepth) + " levels"));
        }
        for (int side = 0; side < 2; ++side) {
          const int64_t child = (side == 0 ? *left : *right)[old];
          if (child < 1 || static_cast<size_t>(child) >= n || seen[static_cast<size_t>(child)]) {
            return std::unexpected(
                invalid(tree_path + (side == 0 ? ".left_children" : ".right_children") + at,
                        "child " + std::to_string(child) + " is out of range or reached twice (" +
                            std::to_string(n) + " nodes)"));
          }
          seen[static_cast<size_t>(child)] = 1;
          node.child[side] = base + static_cast<uint32_t>(order.size());
          order.push_back(static_cast<uint32_t>(child));
          level.push_back(level[k] + 1);
        }
        if ((*feature)[old] < 0 || static_cast<size_t>((*feature)[old]) >= kFeatureCount) {
          return std::unexpected(invalid(tree_path + ".split_indices" + at,
                                         "feature " + std::to_string((*feature)[old]) +
                                             " out of range (" + std::to_string(kFeatureCount) +
                                             " features)"));
        }
        if (!((*hessian)[old] > 0)) {
          return std::unexpected(
              invalid(tree_path + ".sum_hessian" + at, "expected > 0 at a split"));
        }
        node.threshold = (*condition)[old];
        node.feature = static_cast<uint16_t>((*feature)[old]);
        node.default_left = (*default_left)[old] != 0;
      }
      ensemble.nodes_.push_back(node);
      ensemble.values_.push_back(value);
    }

    // Node means bottom-up (children come after parents), in XGBoost's float32 order:
    // (mean_left × hess_left + mean_right × hess_right) / hess.
    ensemble.means_.resize(ensemble.nodes_.size());
    for (size_t k = order.size(); k-- > 0;) {
      const uint32_t self = base + static_cast<uint32_t>(k);
      const Node& node = ensemble.nodes_[self];
      float mean = ensemble.values_[self];
      if (node.child[0] != self) {
        const uint32_t l = node.child[0], r = node.child[1];
        mean = ensemble.means_[l] * (*hessian)[order[l - base]];
        mean += ensemble.means_[r] * (*hessian)[order[r - base]];
        mean /= (*hessian)[order[k]];
      }
      ensemble.means_[self] = mean;
    }

    // Saabas contributions depend only on the leaf reached (its path from the root is unique), so
    // each leaf keeps its tree's contributions: per feature on the path, the changes of the node
    // mean summed in path order in float32, as XGBoost's CalculateContributionsApprox does.
    // Every list has the tree's depth in entries (padding adds 0 to a spare slot), so scoring
    // runs a fixed number of adds per tree.
    std::vector<std::vector<Contribution>> path(order.size());
    ensemble.leaf_first_.resize(ensemble.nodes_.size(), 0);
    ensemble.tree_depth_.push_back(depth);
    for (size_t k = 0; k < order.size(); ++k) {
      const uint32_t self = base + static_cast<uint32_t>(k);
      const Node& node = ensemble.nodes_[self];
      if (node.child[0] == self) {
        ensemble.leaf_first_[self] = static_cast<uint32_t>(ensemble.leaf_contributions_.size());
        path[k].resize(depth, Contribution{kSpareSlot, 0.0f});
        ensemble.leaf_contributions_.insert(ensemble.leaf_contributions_.end(), path[k].begin(),
                                            path[k].end());
        continue;
      }
      for (uint32_t c : node.child) {
        std::vector<Contribution>& child_path = path[c - base];
        child_path = path[k];
        const float delta = ensemble.means_[c] - ensemble.means_[self];
        auto same = std::find_if(child_path.begin(), child_path.end(),
                                 [&](const Contribution& e) { return e.feature == node.feature; });
        if (same != child_path.end()) {
          same->value += delta;
        } else {
          child_path.push_back({node.feature, delta});
        }
      }
      path[k].clear();
      path[k].shrink_to_fit();
    }

    // Consecutive trees in blocks of kBlock, each walked as deep as its deepest tree.
    if (ensemble.blocks_.empty() || ensemble.blocks_.back().trees == kBlock) {
      ensemble.blocks_.push_back({static_cast<uint32_t>(t), 0, 0});
    }
    Block& block = ensemble.blocks_.back();
    ++block.trees;
    block.depth = std::max(block.depth, depth);
  }
  // The bias is the same for every transaction: the trees' root means summed in tree order,
  // then the base margin, as XGBoost adds them.
  float bias = 0;
  for (uint32_t tree_root : ensemble.roots_) bias += ensemble.means_[tree_root];
  ensemble.bias_ = bias + ensemble.base_margin_;
  return ensemble;
}

size_t TreeEnsemble::max_depth() const {
  uint32_t depth = 0;
  for (const Block& b : blocks_) depth = std::max(depth, b.depth);
  return depth;
}

namespace {

// One level down: XGBoost's GetNextNode (NaN takes the default side, else `x < threshold` is
// left), without a branch on the outcome. `kMayBeMissing` false: x has no NaN.
template <bool kMayBeMissing, typename Node>
inline uint32_t step(const Node* nodes, uint32_t i, const Features& x) {
  const Node& n = nodes[i];
  const float v = x[n.feature];
  bool left = v < n.threshold;
  if constexpr (kMayBeMissing) left |= (v != v) & (n.default_left != 0);
  return n.child[left ? 0 : 1];
}

bool has_missing(const Features& x) {
  bool missing = false;
  for (float v : x) missing |= v != v;
  return missing;
}

}  // namespace

template <bool kMayBeMissing>
float TreeEnsemble::margin_of(const Features& x) const {
  const Node* nodes = nodes_.data();
  const float* values = values_.data();
  const uint32_t* roots = roots_.data();
  float sum = base_margin_;
  for (const Block& b : blocks_) {
    uint32_t at[kBlock];
#pragma GCC unroll 8
    for (size_t k = 0; k < kBlock; ++k) at[k] = roots[b.first_tree + (k < b.trees ? k : 0)];
    for (uint32_t d = 0; d < b.depth; ++d) {
#pragma GCC unroll 8
      for (size_t k = 0; k < kBlock; ++k) at[k] = step<kMayBeMissing>(nodes, at[k], x);
    }
    // Leaves summed in tree order, as XGBoost does.
    for (size_t k = 0; k < b.trees; ++k) sum += values[at[k]];
  }
  return sum;
}

float TreeEnsemble::margin(const Features& x) const {
  return has_missing(x) ? margin_of<true>(x) : margin_of<false>(x);
}

float TreeEnsemble::contributions(const Features& x,
                                  std::span<float, kFeatureCount + 1> out) const {
  return has_missing(x) ? contributions_of<true>(x, out) : contributions_of<false>(x, out);
}

template <bool kMayBeMissing>
float TreeEnsemble::contributions_of(const Features& x,
                                     std::span<float, kFeatureCount + 1> out) const {
  float acc[kSpareSlot + 1] = {};
  const Node* nodes = nodes_.data();
  const float* values = values_.data();
  const uint32_t* roots = roots_.data();
  float sum = base_margin_;
  for (const Block& b : blocks_) {
    uint32_t at[kBlock];
#pragma GCC unroll 8
    for (size_t k = 0; k < kBlock; ++k) at[k] = roots[b.first_tree + (k < b.trees ? k : 0)];
    for (uint32_t d = 0; d < b.depth; ++d) {
#pragma GCC unroll 8
      for (size_t k = 0; k < kBlock; ++k) at[k] = step<kMayBeMissing>(nodes, at[k], x);
    }
    // Tree by tree, as XGBoost adds each tree's contributions to the total.
    for (size_t k = 0; k < b.trees; ++k) {
      const Contribution* c = leaf_contributions_.data() + leaf_first_[at[k]];
      const uint32_t n = tree_depth_[b.first_tree + k];
      for (uint32_t e = 0; e < n; ++e) acc[c[e].feature] += c[e].value;
      sum += values[at[k]];
    }
  }
  std::copy_n(acc, kFeatureCount, out.begin());
  out[kFeatureCount] = bias_;
  return sum;
}

}  // namespace prescale::fraud
