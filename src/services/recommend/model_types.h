// The vocabulary of the recommender: model kinds, their hyper-parameters (defaults chosen on a
// validation split, docs/services/recommend.md) and scored items.
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace prescale::recommend {

enum class ModelKind { kTopPop, kItemKnn, kAls, kEase };

// "toppop", "itemknn", "als", "ease".
std::string_view to_string(ModelKind kind);
std::optional<ModelKind> model_kind_from_string(std::string_view name);

// Implicit ALS (Hu, Koren, Volinsky 2008) solved with conjugate gradient.
struct AlsOptions {
  int factors = 64;
  float regularization = 10;        // λ on |x_u|² and |y_i|²
  float alpha = 1;                  // confidence c = 1 + alpha · weight
  int iterations = 15;              // sweeps over users, then items
  int cg_steps = 3;                 // conjugate-gradient steps per user or item solve
  uint64_t seed = 42;               // initial factors: uniform [0, 0.01) from this seed
  float popularity_penalty = 0.2f;  // see EaseOptions
};

// EASE (Steck 2019) over the items with at least `min_item_interactions` training interactions,
// at most `max_items` of them (the most interacted with): memory is 4·max_items² bytes and
// training cubic in it.
struct EaseOptions {
  float lambda = 100;
  int min_item_interactions = 2;
  int max_items = 4000;
  // Each item's score is divided by (its training interactions)^popularity_penalty, 0..2: moves
  // recommendations from the head of the catalogue towards the long tail; 0 = off.
  float popularity_penalty = 0.2f;
};

// Item-item cosine similarity, `neighbours` kept per item.
struct ItemKnnOptions {
  int neighbours = 20;
};

struct TrainOptions {
  ModelKind kind = ModelKind::kAls;
  AlsOptions als;
  EaseOptions ease;
  ItemKnnOptions item_knn;
};

// An item with its weight: `item` is the model's dense item index.
struct ItemWeight {
  int32_t item = 0;
  float weight = 0;
};

// A recommended or similar item: `item` is the external item id.
struct ScoredItem {
  int64_t item = 0;
  float score = 0;
};

}  // namespace prescale::recommend
