#include "services/recommend/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "services/recommend/internal/item_knn.h"
#include "services/recommend/internal/model_state.h"

namespace prescale::recommend {
namespace {

using internal::ModelState;
using internal::RowMatrix;

constexpr float kUnscored = -std::numeric_limits<float>::infinity();

std::unexpected<Error> out_of_range(const std::string& field, const std::string& expected,
                                    double got) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", got);
  return make_error(ErrorCode::kInvalidArgument, field + ": expected " + expected + ", got " + buf);
}

Result<void> validate(const TrainOptions& o) {
  auto in = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  switch (o.kind) {
    case ModelKind::kAls:
      if (!in(o.als.factors, 1, 1024)) return out_of_range("als.factors", "1..1024", o.als.factors);
      if (!in(o.als.regularization, 0, 1e6)) {
        return out_of_range("als.regularization", "0..1e6", o.als.regularization);
      }
      if (!in(o.als.alpha, 0, 1e6)) return out_of_range("als.alpha", "0..1e6", o.als.alpha);
      if (!in(o.als.iterations, 1, 1000)) {
        return out_of_range("als.iterations", "1..1000", o.als.iterations);
      }
      if (!in(o.als.cg_steps, 1, 100))
        return out_of_range("als.cg_steps", "1..100", o.als.cg_steps);
      break;
    case ModelKind::kEase:
      if (!in(o.ease.lambda, 1e-6, 1e9)) return out_of_range("ease.lambda", "> 0", o.ease.lambda);
      if (!in(o.ease.min_item_interactions, 1, 1e9)) {
        return out_of_range("ease.min_item_interactions", "≥ 1", o.ease.min_item_interactions);
      }
      if (!in(o.ease.max_items, 1, 30000)) {
        return out_of_range("ease.max_items", "1..30000", o.ease.max_items);
      }
      break;
    case ModelKind::kItemKnn:
      if (!in(o.item_knn.neighbours, 1, 10000)) {
        return out_of_range("item_knn.neighbours", "1..10000", o.item_knn.neighbours);
      }
      break;
    case ModelKind::kTopPop:
      break;
  }
  if (!in(o.als.popularity_penalty, 0, 2)) {
    return out_of_range("als.popularity_penalty", "0..2", o.als.popularity_penalty);
  }
  if (!in(o.ease.popularity_penalty, 0, 2)) {
    return out_of_range("ease.popularity_penalty", "0..2", o.ease.popularity_penalty);
  }
  return {};
}

// The k best (score, index) pairs, best first; ties go to the lower index.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { heap_.reserve(k + 1); }

  void offer(float score, int32_t item) {
    // Most items fall below the worst one kept: one comparison rejects them.
    if (!(score >= floor_) || k_ == 0) return;
    if (heap_.size() < k_) {
      heap_.push_back({score, item});
      std::push_heap(heap_.begin(), heap_.end(), better);
    } else if (better({score, item}, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), better);
      heap_.back() = {score, item};
      std::push_heap(heap_.begin(), heap_.end(), better);
    }
    if (heap_.size() == k_) floor_ = heap_.front().first;
  }

  std::vector<ScoredItem> take(const ModelState& s) {
    std::sort_heap(heap_.begin(), heap_.end(), better);
    std::vector<ScoredItem> out;
    out.reserve(heap_.size());
    for (const auto& [score, item] : heap_) out.push_back({s.items.id(item), score});
    return out;
  }

 private:
  using Entry = std::pair<float, int32_t>;
  // With this order the heap's front is the worst entry kept.
  static bool better(const Entry& a, const Entry& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  }
  size_t k_;
  std::vector<Entry> heap_;
  // The lowest score that can still enter: above kUnscored until k entries are kept, then the
  // worst kept score (equal scores may enter by the lower index).
  float floor_ = std::nextafter(kUnscored, 0.0f);
};

// EASE: x·B for a history, one score per row of B.
void ease_scores(const ModelState& s, std::span<const ItemWeight> history, Eigen::VectorXf& out) {
  thread_local std::vector<ItemWeight> rows;
  rows.clear();
  for (const ItemWeight& h : history) {
    const int32_t r = s.ease_position[static_cast<size_t>(h.item)];
    if (r >= 0) rows.push_back({r, h.weight});
  }
  out.setZero(s.ease.b.cols());
  // The history's rows of B, weighted, four at a time so that the sum is read and written once
  // per four rows.
  const auto& b = s.ease.b;
  size_t i = 0;
  for (; i + 4 <= rows.size(); i += 4) {
    out.noalias() += rows[i].weight * b.row(rows[i].item).transpose() +
                     rows[i + 1].weight * b.row(rows[i + 1].item).transpose() +
                     rows[i + 2].weight * b.row(rows[i + 2].item).transpose() +
                     rows[i + 3].weight * b.row(rows[i + 3].item).transpose();
  }
  for (; i < rows.size(); ++i) out.noalias() += rows[i].weight * b.row(rows[i].item).transpose();
}

// Scores every item for a query into `scores`; kUnscored for items the model cannot score.
void score_all(const ModelState& s, const Model& model, const Model::Query& q,
               std::vector<float>& scores) {
  const auto n = static_cast<size_t>(s.items.size());
  switch (s.options.kind) {
    case ModelKind::kTopPop:
      scores.assign(s.popularity.begin(), s.popularity.end());
      break;
    case ModelKind::kItemKnn:
      scores.assign(n, 0.0f);
      for (const ItemWeight& h : q.history) {
        for (const ItemWeight& nb : s.neighbours.row(h.item)) {
          scores[static_cast<size_t>(nb.item)] += h.weight * nb.weight;
        }
      }
      break;
    case ModelKind::kAls: {
      scores.resize(n);
      std::vector<float> folded;
      std::span<const float> x = q.factors;
      if (x.size() != static_cast<size_t>(s.als.items.cols())) {
        folded = model.fold_in(q.history);
        x = folded;
      }
      Eigen::Map<Eigen::VectorXf> out(scores.data(), static_cast<Eigen::Index>(n));
      Eigen::Map<const Eigen::VectorXf> xu(x.data(), static_cast<Eigen::Index>(x.size()));
      out.noalias() = s.als.items * xu;
      break;
    }
    case ModelKind::kEase: {
      const auto m = s.ease.b.cols();
      thread_local Eigen::VectorXf computed;
      const float* row_scores = q.factors.data();
      if (q.factors.size() != static_cast<size_t>(m)) {
        ease_scores(s, q.history, computed);
        row_scores = computed.data();
      }
      scores.assign(n, kUnscored);
      for (Eigen::Index r = 0; r < m; ++r) {
        scores[static_cast<size_t>(s.ease.items[static_cast<size_t>(r)])] = row_scores[r];
      }
      break;
    }
  }
}

void exclude(const Model::Query& q, std::vector<float>& scores) {
  for (const ItemWeight& h : q.history) scores[static_cast<size_t>(h.item)] = kUnscored;
  for (int32_t i : q.exclude) {
    if (i >= 0 && static_cast<size_t>(i) < scores.size())
      scores[static_cast<size_t>(i)] = kUnscored;
  }
}

std::vector<ScoredItem> top_k(const ModelState& s, const Model::Query& q,
                              const std::vector<float>& scores) {
  TopK top(q.k);
  if (q.allow != nullptr) {
    for (int32_t i : *q.allow) {
      if (i >= 0 && static_cast<size_t>(i) < scores.size())
        top.offer(scores[static_cast<size_t>(i)], i);
    }
  } else {
    for (size_t i = 0; i < scores.size(); ++i) top.offer(scores[i], static_cast<int32_t>(i));
  }
  return top.take(s);
}

}  // namespace

std::string_view to_string(ModelKind kind) {
  switch (kind) {
    case ModelKind::kTopPop:
      return "toppop";
    case ModelKind::kItemKnn:
      return "itemknn";
    case ModelKind::kAls:
      return "als";
    case ModelKind::kEase:
      return "ease";
  }
  return "?";
}

std::optional<ModelKind> model_kind_from_string(std::string_view name) {
  for (ModelKind k : {ModelKind::kTopPop, ModelKind::kItemKnn, ModelKind::kAls, ModelKind::kEase}) {
    if (to_string(k) == name) return k;
  }
  return std::nullopt;
}

void internal::ModelState::derive() {
  const auto n = static_cast<size_t>(items.size());
  popularity.assign(n, 0.0f);
  for (const ItemWeight& e : user_items.entries) popularity[static_cast<size_t>(e.item)] += 1;
  by_popularity.resize(n);
  std::iota(by_popularity.begin(), by_popularity.end(), 0);
  std::stable_sort(by_popularity.begin(), by_popularity.end(), [&](int32_t a, int32_t b) {
    return popularity[static_cast<size_t>(a)] > popularity[static_cast<size_t>(b)];
  });
  popularity_scale.clear();
  const float penalty = options.kind == ModelKind::kAls    ? options.als.popularity_penalty
                        : options.kind == ModelKind::kEase ? options.ease.popularity_penalty
                                                           : 0.0f;
  if (penalty != 0) {
    popularity_scale.resize(n);
    for (size_t i = 0; i < n; ++i) popularity_scale[i] = std::pow(popularity[i], -penalty);
  }
  if (options.kind == ModelKind::kAls) {
    gram = als.items.transpose() * als.items;
    unit_items = als.items;
    for (Eigen::Index i = 0; i < unit_items.rows(); ++i) {
      const float norm = unit_items.row(i).norm();
      if (norm > 0) unit_items.row(i) /= norm;
    }
  }
  if (options.kind == ModelKind::kEase) {
    ease_position.assign(n, -1);
    for (size_t r = 0; r < ease.items.size(); ++r) {
      ease_position[static_cast<size_t>(ease.items[r])] = static_cast<int32_t>(r);
    }
  }
}

Result<std::shared_ptr<const Model>> Model::train(const std::vector<Interaction>& interactions,
                                                  const TrainOptions& options) {
  if (interactions.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "interactions: none to train on");
  }
  for (size_t i = 0; i < interactions.size(); ++i) {
    const float w = interactions[i].weight;
    if (!(std::isfinite(w) && w > 0)) {
      return out_of_range("interactions[" + std::to_string(i) + "].weight",
                          "a positive finite number", w);
    }
  }
  if (auto ok = validate(options); !ok) return std::unexpected(ok.error());

  internal::TrainingData data = internal::index_interactions(interactions);
  ModelState s;
  s.options = options;
  s.users = std::move(data.users);
  s.items = std::move(data.items);
  s.user_items = std::move(data.user_items);
  s.trained_through = data.max_timestamp;
  switch (options.kind) {
    case ModelKind::kAls:
      s.als = internal::train_als(s.user_items, options.als);
      break;
    case ModelKind::kEase:
      s.ease = internal::train_ease(s.user_items, options.ease);
      break;
    case ModelKind::kItemKnn:
      s.neighbours = internal::train_item_knn(s.user_items, options.item_knn);
      break;
    case ModelKind::kTopPop:
      break;
  }
  s.derive();
  return std::make_shared<const Model>(std::move(s));
}

Model::Model(internal::ModelState state)
    : state_(std::make_unique<const internal::ModelState>(std::move(state))) {}
Model::~Model() = default;

ModelKind Model::kind() const { return state_->options.kind; }
const TrainOptions& Model::options() const { return state_->options; }
int Model::version() const { return state_->version; }
std::string Model::version_label() const {
  return state_->version > 0 ? "v" + std::to_string(state_->version) : "unsaved";
}
int64_t Model::trained_through() const { return state_->trained_through; }
const std::string& Model::created_at() const { return state_->created_at; }
const std::string& Model::data_hash() const { return state_->data_hash; }
const std::map<std::string, double>& Model::metrics() const { return state_->metrics; }
int32_t Model::item_count() const { return state_->items.size(); }
int32_t Model::user_count() const { return state_->users.size(); }
std::optional<int32_t> Model::item_index(int64_t item) const { return state_->items.find(item); }
int64_t Model::item_id(int32_t index) const { return state_->items.id(index); }

std::span<const ItemWeight> Model::history(int64_t user) const {
  auto u = state_->users.find(user);
  if (!u) return {};
  return state_->user_items.row(*u);
}

std::span<const float> Model::factors(int64_t user) const {
  if (kind() != ModelKind::kAls) return {};
  auto u = state_->users.find(user);
  if (!u) return {};
  const auto f = static_cast<size_t>(state_->als.users.cols());
  return {state_->als.users.data() + static_cast<size_t>(*u) * f, f};
}

std::vector<float> Model::fold_in(std::span<const ItemWeight> history) const {
  if (kind() != ModelKind::kAls) return {};
  Eigen::VectorXf x =
      internal::fold_in(history, state_->als.items, state_->gram, state_->options.als);
  return {x.data(), x.data() + x.size()};
}

std::vector<float> Model::history_scores(std::span<const ItemWeight> history) const {
  if (kind() != ModelKind::kEase) return {};
  Eigen::VectorXf x;
  ease_scores(*state_, history, x);
  return {x.data(), x.data() + x.size()};
}

std::vector<ScoredItem> Model::recommend(const Query& q) const {
  thread_local std::vector<float> scores;
  score_all(*state_, *this, q, scores);
  if (!state_->popularity_scale.empty()) {
    for (size_t i = 0; i < scores.size(); ++i) scores[i] *= state_->popularity_scale[i];
  }
  exclude(q, scores);
  return top_k(*state_, q, scores);
}

bool Model::scores_history(std::span<const ItemWeight> history) const {
  if (kind() != ModelKind::kEase) return !history.empty();
  return std::any_of(history.begin(), history.end(), [&](const ItemWeight& h) {
    return state_->ease_position[static_cast<size_t>(h.item)] >= 0;
  });
}

std::vector<ScoredItem> Model::popular(const Query& q) const {
  const ModelState& s = *state_;
  if (q.allow != nullptr || !q.exclude.empty() || !q.history.empty()) {
    thread_local std::vector<float> scores;
    scores.assign(s.popularity.begin(), s.popularity.end());
    exclude(q, scores);
    return top_k(s, q, scores);
  }
  std::vector<ScoredItem> out;
  for (size_t r = 0; r < s.by_popularity.size() && out.size() < q.k; ++r) {
    const int32_t i = s.by_popularity[r];
    out.push_back({s.items.id(i), s.popularity[static_cast<size_t>(i)]});
  }
  return out;
}

std::vector<ScoredItem> Model::similar(int32_t item, size_t k) const {
  const ModelState& s = *state_;
  if (item < 0 || item >= s.items.size()) return {};
  const auto n = static_cast<size_t>(s.items.size());
  std::vector<float> scores;
  switch (kind()) {
    case ModelKind::kTopPop:
      scores.assign(s.popularity.begin(), s.popularity.end());
      break;
    case ModelKind::kItemKnn: {
      std::vector<ScoredItem> out;
      for (const ItemWeight& nb : s.neighbours.row(item)) {
        if (out.size() == k) break;
        out.push_back({s.items.id(nb.item), nb.weight});
      }
      return out;
    }
    case ModelKind::kAls: {
      scores.resize(n);
      Eigen::Map<Eigen::VectorXf> out(scores.data(), static_cast<Eigen::Index>(n));
      out.noalias() = s.unit_items * s.unit_items.row(item).transpose();
      break;
    }
    case ModelKind::kEase: {
      const int32_t r = s.ease_position[static_cast<size_t>(item)];
      if (r < 0) return {};
      scores.assign(n, kUnscored);
      for (size_t c = 0; c < s.ease.items.size(); ++c) {
        scores[static_cast<size_t>(s.ease.items[c])] = s.ease.b(r, static_cast<Eigen::Index>(c));
      }
      break;
    }
  }
  scores[static_cast<size_t>(item)] = kUnscored;
  Query q;
  q.k = k;
  return top_k(s, q, scores);
}

}  // namespace prescale::recommend
