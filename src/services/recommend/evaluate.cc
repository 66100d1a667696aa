#include "services/recommend/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_set>

#include "services/recommend/internal/model_state.h"

namespace prescale::recommend {
namespace {

bool contains(std::span<const int64_t> items, int64_t item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Candidate hyper-parameters of one model kind, around `base`: trainings, each scored with
// several popularity penalties (which only rescale scores, so one fit serves them all). The
// grids were set after a coarse search on the MovieLens validation split
// (docs/services/recommend.md).
struct Candidate {
  TrainOptions options;
  std::vector<float> penalties;  // ALS and EASE; empty for the others
};

std::vector<Candidate> grid(const TrainOptions& base) {
  const std::vector<float> penalties = {0.0f, 0.1f, 0.2f, 0.3f};
  std::vector<Candidate> out;
  switch (base.kind) {
    case ModelKind::kTopPop:
      out.push_back({base, {}});
      break;
    case ModelKind::kItemKnn:
      for (int k : {20, 50, 100, 200}) {
        TrainOptions o = base;
        o.item_knn.neighbours = k;
        out.push_back({o, {}});
      }
      break;
    case ModelKind::kAls:
      for (int factors : {64, 128}) {
        for (float alpha : {1.0f, 3.0f}) {
          for (float reg : {10.0f, 30.0f}) {
            TrainOptions o = base;
            o.als.factors = factors;
            o.als.alpha = alpha;
            o.als.regularization = reg;
            out.push_back({o, penalties});
          }
        }
      }
      break;
    case ModelKind::kEase:
      for (float lambda : {100.0f, 200.0f, 500.0f}) {
        TrainOptions o = base;
        o.ease.lambda = lambda;
        out.push_back({o, penalties});
      }
      break;
  }
  return out;
}

// `model` with other scoring options (a copy of its state; no retraining).
std::shared_ptr<const Model> rescored(const Model& model, const TrainOptions& options) {
  internal::ModelState state = model.state();
  state.options = options;
  state.derive();
  return std::make_shared<const Model>(std::move(state));
}

bool matches_or_beats(const Scores& a, const Scores& b) {
  return a.precision_at_10 >= b.precision_at_10 && a.recall_at_20 >= b.recall_at_20 &&
         a.ndcg_at_10 >= b.ndcg_at_10 && a.coverage >= b.coverage;
}

bool is_baseline(ModelKind kind) {
  return kind == ModelKind::kTopPop || kind == ModelKind::kItemKnn;
}

// Picks `kind`'s hyper-parameters on the validation split: the best NDCG@10 among candidates
// that match or beat every baseline's validation scores on all four metrics, or the best
// NDCG@10 when none does (always for the baselines themselves).
Result<void> tune(ModelEvaluation& e, const TemporalSplit& inner,
                  const std::vector<Scores>& baselines, const EvaluateOptions& options) {
  bool best_dominates = false;
  double best_ndcg = -1;
  for (const Candidate& c : grid(e.options)) {
    auto trained = Model::train(inner.train, c.options);
    if (!trained) return std::unexpected(trained.error());
    std::vector<TrainOptions> variants;
    if (c.penalties.empty()) variants.push_back(c.options);
    for (float penalty : c.penalties) {
      TrainOptions o = c.options;
      (o.kind == ModelKind::kAls ? o.als.popularity_penalty : o.ease.popularity_penalty) = penalty;
      variants.push_back(o);
    }
    for (const TrainOptions& o : variants) {
      auto model = o.als.popularity_penalty == c.options.als.popularity_penalty &&
                           o.ease.popularity_penalty == c.options.ease.popularity_penalty
                       ? *trained
                       : rescored(**trained, o);
      const Scores v = score_model(*model, inner.test);
      bool dominates = !is_baseline(e.model);
      for (const Scores& b : baselines) dominates = dominates && matches_or_beats(v, b);
      if (options.progress) {
        char line[224];
        std::snprintf(line, sizeof line,
                      "validation %-8s %-64s precision@10 %.4f recall@20 %.4f ndcg@10 %.4f "
                      "coverage %.4f%s",
                      std::string(to_string(e.model)).c_str(), describe_hyperparameters(o).c_str(),
                      v.precision_at_10, v.recall_at_20, v.ndcg_at_10, v.coverage,
                      dominates ? " (beats the baselines)" : "");
        options.progress(line);
      }
      if (std::make_pair(dominates, v.ndcg_at_10) > std::make_pair(best_dominates, best_ndcg)) {
        best_dominates = dominates;
        best_ndcg = v.ndcg_at_10;
        e.options = o;
        e.validation = v;
      }
    }
  }
  return {};
}

}  // namespace

double precision_at_k(std::span<const int64_t> ranked, std::span<const int64_t> relevant,
                      size_t k) {
  if (k == 0) return 0;
  size_t hits = 0;
  for (size_t r = 0; r < std::min(k, ranked.size()); ++r) hits += contains(relevant, ranked[r]);
  return static_cast<double>(hits) / static_cast<double>(k);
}

double recall_at_k(std::span<const int64_t> ranked, std::span<const int64_t> relevant, size_t k) {
  if (relevant.empty()) return 0;
  size_t hits = 0;
  for (size_t r = 0; r < std::min(k, ranked.size()); ++r) hits += contains(relevant, ranked[r]);
  return static_cast<double>(hits) / static_cast<double>(relevant.size());
}

double ndcg_at_k(std::span<const int64_t> ranked, std::span<const int64_t> relevant, size_t k) {
  double dcg = 0, ideal = 0;
  for (size_t r = 0; r < std::min(k, ranked.size()); ++r) {
    if (contains(relevant, ranked[r])) dcg += 1 / std::log2(static_cast<double>(r) + 2);
  }
  for (size_t r = 0; r < std::min(k, relevant.size()); ++r) {
    ideal += 1 / std::log2(static_cast<double>(r) + 2);
  }
  return ideal > 0 ? dcg / ideal : 0;
}

Scores score_model(const Model& model, const std::vector<Interaction>& heldout) {
  std::map<int64_t, std::vector<int64_t>> relevant;  // ordered: the same result on every run
  for (const Interaction& x : heldout) {
    auto& items = relevant[x.user];
    if (!contains(items, x.item)) items.push_back(x.item);
  }
  Scores s;
  std::unordered_set<int64_t> shown;
  std::vector<int64_t> ranked;
  for (const auto& [user, items] : relevant) {
    Model::Query q;
    q.history = model.history(user);
    q.factors = model.factors(user);
    q.k = 20;
    const auto top = q.history.empty() ? model.popular(q) : model.recommend(q);
    ranked.clear();
    for (const ScoredItem& t : top) ranked.push_back(t.item);
    for (size_t r = 0; r < std::min<size_t>(10, ranked.size()); ++r) shown.insert(ranked[r]);
    s.precision_at_10 += precision_at_k(ranked, items, 10);
    s.recall_at_20 += recall_at_k(ranked, items, 20);
    s.ndcg_at_10 += ndcg_at_k(ranked, items, 10);
    ++s.users;
  }
  if (s.users > 0) {
    s.precision_at_10 /= s.users;
    s.recall_at_20 /= s.users;
    s.ndcg_at_10 /= s.users;
  }
  if (model.item_count() > 0) {
    s.coverage = static_cast<double>(shown.size()) / static_cast<double>(model.item_count());
  }
  return s;
}

std::string describe_hyperparameters(const TrainOptions& o) {
  switch (o.kind) {
    case ModelKind::kTopPop:
      return "";
    case ModelKind::kItemKnn:
      return "neighbours=" + std::to_string(o.item_knn.neighbours);
    case ModelKind::kAls:
      return "factors=" + std::to_string(o.als.factors) + " alpha=" + format_number(o.als.alpha) +
             " regularization=" + format_number(o.als.regularization) +
             " iterations=" + std::to_string(o.als.iterations) +
             " popularity_penalty=" + format_number(o.als.popularity_penalty);
    case ModelKind::kEase:
      return "lambda=" + format_number(o.ease.lambda) +
             " min_item_interactions=" + std::to_string(o.ease.min_item_interactions) +
             " max_items=" + std::to_string(o.ease.max_items) +
             " popularity_penalty=" + format_number(o.ease.popularity_penalty);
  }
  return "";
}

Result<std::vector<ModelEvaluation>> evaluate(const std::vector<Interaction>& interactions,
                                              const EvaluateOptions& options) {
  if (!(options.test_share > 0 && options.test_share < 1) ||
      !(options.validation_share > 0 && options.validation_share < 1)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "test_share and validation_share: expected a share in (0, 1)");
  }
  const TemporalSplit outer = split_by_time(interactions, options.test_share);
  if (outer.train.empty() || outer.test.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "interactions: too few to hold out a test part (users need at least 2)");
  }
  const TemporalSplit inner = split_by_time(outer.train, options.validation_share);

  // Baselines first, so that the other models' tuning can compare against them.
  std::vector<ModelKind> order = options.models;
  std::stable_partition(order.begin(), order.end(), is_baseline);
  std::vector<Scores> baselines;
  std::map<ModelKind, ModelEvaluation> done;
  for (ModelKind kind : order) {
    ModelEvaluation e;
    e.model = kind;
    e.options = options.base;
    e.options.kind = kind;
    if (options.tune && !inner.test.empty()) {
      if (auto ok = tune(e, inner, baselines, options); !ok) return std::unexpected(ok.error());
      if (is_baseline(kind)) baselines.push_back(e.validation);
    }
    e.hyperparameters = describe_hyperparameters(e.options);
    const Clock::TimePoint start = options.clock->now();
    auto model = Model::train(outer.train, e.options);
    if (!model) return std::unexpected(model.error());
    e.train_seconds = to_seconds(options.clock->now() - start);
    e.test = score_model(**model, outer.test);
    done[kind] = std::move(e);
  }
  std::vector<ModelEvaluation> out;
  for (ModelKind kind : options.models) out.push_back(done[kind]);
  return out;
}

}  // namespace prescale::recommend
