// Scoring one card transaction with the fraud service's flat tree evaluator, against XGBoost's
// own cheapest one-row path, XGBoosterPredictFromDense (in-place prediction), on the same rows of
// the same trees (issue target: < 50 µs p99 per transaction).
//
// The trees are the service's defaults trained on the ULB sample (../shared/data/fraud, beside
// the checkout; generated transactions when it is absent, which the label says). Each benchmark
// cycles through every row. After its timed loop, each also times single calls one by one to
// report p50/p99 latency (µs) and the XGBoost ÷ flat ratio of mean latencies as counters.
//
//   build/bench/fraud_bench   (or the build dir's src/services/fraud_bench target)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "http/json.h"
#include "services/fraud/gbt_training.h"
#include "services/fraud/internal/xgboost_booster.h"
#include "services/fraud/model.h"
#include "services/fraud/training.h"
#include "services/fraud/transactions.h"

namespace prescale::fraud {
namespace {

struct Fixture {
  Transactions data;
  std::string source;  // for the label
  std::shared_ptr<const Model> trees;
  size_t tree_count = 0;
  std::shared_ptr<const Model> logistic;
  std::unique_ptr<internal::XgbBooster> xgboost;
};

// A fallback when the shared data is absent: rows with a simple non-linear fraud rule.
Transactions generated(size_t n) {
  Transactions data;
  uint64_t state = 1;
  auto uniform = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (static_cast<double>(state >> 11) + 0.5) * 0x1.0p-53;
  };
  for (size_t i = 0; i < n; ++i) {
    Features x{};
    for (float& v : x) v = static_cast<float>(4 * uniform() - 2);
    data.rows.push_back(x);
    data.labels.push_back((x[14] < -0.8f) != (uniform() < 0.1) ? 1 : 0);
  }
  data.sha256 = std::string(64, '0');
  return data;
}

Fixture build_fixture() {
  Fixture fixture;
  Fixture* fx = &fixture;
  {
    constexpr const char* kSample = "shared/data/fraud/ulb-creditcard-sample-train.csv";
    const char* root = std::getenv("PRESCALE_SOURCE_DIR");
    std::vector<std::string> candidates;
    if (root != nullptr) candidates.push_back(std::string(root) + "/../" + kSample);
    candidates.push_back(std::string("../") + kSample);
    candidates.push_back(std::string("../../") + kSample);
    for (const std::string& path : candidates) {
      if (!std::filesystem::exists(path)) continue;
      if (auto data = read_transactions(path)) {
        fx->data = std::move(*data);
        fx->source = "ulb-sample";
        break;
      }
    }
    if (fx->data.size() == 0) {
      fx->data = generated(1206);
      fx->source = "generated (../shared/data missing)";
    }
    TrainOptions options;  // the service's defaults
    options.folds = 2;     // cross-validation is not measured here
    auto trees = train_model(fx->data, options, 1, "2026-01-01T00:00:00Z");
    options.model = ModelKind::kLogisticRegression;
    auto logistic = train_model(fx->data, options, 1, "2026-01-01T00:00:00Z");
    if (!trees || !logistic) {
      std::fprintf(stderr, "fraud_bench: training failed\n");
      std::exit(1);
    }
    fx->trees = trees->model;
    fx->tree_count = trees->model->trees() != nullptr ? trees->model->trees()->tree_count() : 0;
    fx->logistic = logistic->model;
    auto booster = internal::XgbBooster::from_json(std::get<XgboostModelJson>(trees->body).json);
    if (!booster) {
      std::fprintf(stderr, "fraud_bench: %s\n", booster.error().message.c_str());
      std::exit(1);
    }
    fx->xgboost = std::make_unique<internal::XgbBooster>(std::move(*booster));
  }
  return fixture;
}

const Fixture& fixture() {
  static const Fixture f = build_fixture();
  return f;
}

struct Latency {
  double mean_us, p50_us, p99_us;
};

// Times `calls` single calls of `score(row)` one by one.
template <typename Score>
Latency time_calls(const Fixture& f, size_t calls, Score score) {
  std::vector<double> us(calls);
  for (size_t i = 0; i < calls; ++i) {
    const Features& x = f.data.rows[i % f.data.size()];
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(score(x));
    us[i] =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  }
  double sum = 0;
  for (double v : us) sum += v;
  std::sort(us.begin(), us.end());
  return {sum / static_cast<double>(calls), us[calls / 2], us[calls * 99 / 100]};
}

float xgboost_probability(const Fixture& f, const Features& x) {
  auto p = f.xgboost->predict_dense(x);
  return p ? *p : -1.0f;
}

void report(benchmark::State& state, const Fixture& f, const Latency& own) {
  const Latency xgb =
      time_calls(f, 20'000, [&](const Features& x) { return xgboost_probability(f, x); });
  state.counters["p50_us"] = own.p50_us;
  state.counters["p99_us"] = own.p99_us;
  state.counters["xgb_p99_us"] = xgb.p99_us;
  state.counters["xgb_over_this"] = xgb.mean_us / own.mean_us;
  char label[160];
  std::snprintf(label, sizeof label, "%s, %zu trees, XGBoost %.2fx slower", f.source.c_str(),
                f.tree_count, xgb.mean_us / own.mean_us);
  state.SetLabel(label);
}

// The service's path: probability and the three top features (Saabas contributions).
void BM_FlatScoreWithTopFeatures(benchmark::State& state) {
  const Fixture& f = fixture();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.trees->score(f.data.rows[i]));
    if (++i == f.data.size()) i = 0;
  }
  report(state, f, time_calls(f, 200'000, [&](const Features& x) { return f.trees->score(x); }));
}
BENCHMARK(BM_FlatScoreWithTopFeatures);

// The probability alone.
void BM_FlatProbability(benchmark::State& state) {
  const Fixture& f = fixture();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.trees->probability(f.data.rows[i]));
    if (++i == f.data.size()) i = 0;
  }
  report(state, f,
         time_calls(f, 200'000, [&](const Features& x) { return f.trees->probability(x); }));
}
BENCHMARK(BM_FlatProbability);

// The peer: the same trees through XGBoost's in-place prediction of one dense row.
void BM_XgboostPredictFromDense(benchmark::State& state) {
  const Fixture& f = fixture();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(xgboost_probability(f, f.data.rows[i]));
    if (++i == f.data.size()) i = 0;
  }
  const Latency own =
      time_calls(f, 20'000, [&](const Features& x) { return xgboost_probability(f, x); });
  state.counters["p50_us"] = own.p50_us;
  state.counters["p99_us"] = own.p99_us;
  state.SetLabel(f.source);
}
BENCHMARK(BM_XgboostPredictFromDense);

// The logistic-regression baseline's score, for scale.
void BM_LogisticScoreWithTopFeatures(benchmark::State& state) {
  const Fixture& f = fixture();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.logistic->score(f.data.rows[i]));
    if (++i == f.data.size()) i = 0;
  }
  const Latency own =
      time_calls(f, 200'000, [&](const Features& x) { return f.logistic->score(x); });
  state.counters["p50_us"] = own.p50_us;
  state.counters["p99_us"] = own.p99_us;
}
BENCHMARK(BM_LogisticScoreWithTopFeatures);

}  // namespace
}  // namespace prescale::fraud

BENCHMARK_MAIN();
