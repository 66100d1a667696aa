// Cost of one recommendation in process (target: ~100 µs, so that the HTTP p99 stays within
// 2 ms) and of folding new interactions in. Trained on the MovieLens ratings beside the
// checkout (../shared/data; PRESCALE_SOURCE_DIR or the working directory's parent), or on a
// generated set of the same shape when they are absent.
//
// BM_Recommend/<model>: Model::recommend() for training users in turn (top 10, history excluded).
// BM_ServiceRecommend/<model>: the service's recommend() for a user with posted interactions
//   (merge with the training history, cached ALS factors), i.e. what a request costs past HTTP.
// BM_FoldIn/als: the ALS user solve a POST /v1/interactions costs (f × f Cholesky).
// BM_Popular: the cold-start answer, the peer that bounds the rest from below.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>

#include "services/recommend/interactions.h"
#include "services/recommend/model.h"
#include "services/recommend/recommend_service.h"

namespace {

using prescale::recommend::Interaction;
using prescale::recommend::Model;
using prescale::recommend::ModelKind;

const std::vector<Interaction>& interactions() {
  static const std::vector<Interaction> data = [] {
    const char* source = std::getenv("PRESCALE_SOURCE_DIR");
    for (const std::string& root :
         {std::string(source != nullptr ? source : "."), std::string(".."), std::string("../..")}) {
      const std::string path = root + "/../shared/data/recsys/movielens-latest-small/ratings.csv";
      if (!std::filesystem::exists(path)) continue;
      if (auto r = prescale::recommend::read_ratings_csv(path)) return *r;
    }
    // 610 users, 9,000 items, ~100 interactions per user, popularity skewed like ratings data.
    std::mt19937_64 rng(1);
    std::vector<Interaction> out;
    std::geometric_distribution<int> item(1.0 / 600);
    for (int64_t u = 1; u <= 610; ++u) {
      for (int i = 0; i < 100; ++i) out.push_back({u, item(rng) % 9000, 1.0f, i});
    }
    return out;
  }();
  return data;
}

std::shared_ptr<const Model> model(ModelKind kind) {
  static std::map<ModelKind, std::shared_ptr<const Model>> cache;
  auto& m = cache[kind];
  if (!m) {
    prescale::recommend::TrainOptions o;
    o.kind = kind;
    m = *Model::train(interactions(), o);
  }
  return m;
}

std::vector<int64_t> users() {
  std::vector<int64_t> out;
  for (const Interaction& x : interactions()) {
    if (out.empty() || out.back() != x.user) out.push_back(x.user);
  }
  return out;
}

void BM_Recommend(benchmark::State& state, ModelKind kind) {
  const auto m = model(kind);
  const auto all = users();
  size_t i = 0;
  for (auto _ : state) {
    const int64_t user = all[i++ % all.size()];
    Model::Query q;
    q.history = m->history(user);
    q.factors = m->factors(user);
    q.k = 10;
    benchmark::DoNotOptimize(m->recommend(q));
  }
  state.counters["items"] = m->item_count();
}
BENCHMARK_CAPTURE(BM_Recommend, als, ModelKind::kAls)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Recommend, ease, ModelKind::kEase)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Recommend, itemknn, ModelKind::kItemKnn)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Recommend, toppop, ModelKind::kTopPop)->Unit(benchmark::kMicrosecond);

void BM_ServiceRecommend(benchmark::State& state, ModelKind kind) {
  prescale::services::RecommendService service(model(kind), {});
  const auto all = users();
  // Every user has posted 5 new interactions: the request merges them into the history.
  std::vector<prescale::services::PostedInteraction> posted;
  const auto m = model(kind);
  for (size_t u = 0; u < all.size(); ++u) {
    for (int j = 0; j < 5; ++j) {
      posted.push_back({all[u],
                        m->item_id(static_cast<int32_t>((u * 7 + static_cast<size_t>(j) * 13) %
                                                        static_cast<size_t>(m->item_count()))),
                        1.0f, std::nullopt});
    }
  }
  for (size_t begin = 0; begin < posted.size(); begin += 500) {
    const size_t n = std::min<size_t>(500, posted.size() - begin);
    (void)service.add_interactions({posted.data() + begin, n});
  }
  size_t i = 0;
  for (auto _ : state) {
    prescale::services::RecommendQuery q;
    q.user = all[i++ % all.size()];
    q.k = 10;
    benchmark::DoNotOptimize(service.recommend(q));
  }
}
BENCHMARK_CAPTURE(BM_ServiceRecommend, als, ModelKind::kAls)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ServiceRecommend, ease, ModelKind::kEase)->Unit(benchmark::kMicrosecond);

void BM_FoldIn(benchmark::State& state) {
  const auto m = model(ModelKind::kAls);
  const auto all = users();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(m->fold_in(m->history(all[i++ % all.size()])));
  }
}
BENCHMARK(BM_FoldIn)->Name("BM_FoldIn/als")->Unit(benchmark::kMicrosecond);

void BM_Popular(benchmark::State& state) {
  const auto m = model(ModelKind::kEase);
  for (auto _ : state) {
    Model::Query q;
    q.k = 10;
    benchmark::DoNotOptimize(m->popular(q));
  }
}
BENCHMARK(BM_Popular)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
