#include "forecast/gbt_model.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/splitmix.h"

namespace prescale::forecast {
namespace {

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();
constexpr float kMissingFeature = std::numeric_limits<float>::quiet_NaN();

// Lag features: the value k steps back counting the last observation as 1.
constexpr std::array<size_t, 8> kLags = {1, 2, 3, 5, 10, 15, 30, 60};
constexpr size_t kShortWindow = 15;
constexpr size_t kLevelWindow = 60;  // the recent level every value is divided by
// The level is at least this share of the long (about a day's) level: after an hour of near
// silence the next burst would otherwise be thousands of "levels" and dominate the training.
constexpr double kMinLevelShare = 0.05;

// Column order of a feature row; docs/forecasting.md lists the same.
enum Feature : size_t {
  kHorizon,
  kLag1,  // kLag1 + i is the lag kLags[i]
  kDay = kLag1 + kLags.size(),
  kDayHourMean,
  kWeek,
  kShortMean,
  kShortStd,
  kLevelStd,
  kLevelVsLong,
  kMinuteOfDay,
  kDayOfWeek,
  kFeatureCount,
};

constexpr std::string_view kFeatureNames[] = {
    "horizon",    "lag_1",     "lag_2",     "lag_3",         "lag_5",         "lag_10",
    "lag_15",     "lag_30",    "lag_60",    "day",           "day_hour_mean", "week",
    "short_mean", "short_std", "level_std", "level_vs_long", "minute_of_day", "day_of_week"};
static_assert(std::size(kFeatureNames) == kFeatureCount);
static_assert(kLags.size() == 8, "kFeatureNames lists the lags");

Error xgboost_error(std::string_view call) {
  return Error{ErrorCode::kInternal, "gbt: " + std::string(call) + ": " + XGBGetLastError()};
}

struct DMatrixDeleter {
  void operator()(void* handle) const { XGDMatrixFree(handle); }
};
using DMatrix = std::unique_ptr<void, DMatrixDeleter>;

Result<DMatrix> make_dmatrix(std::span<const float> features, size_t rows) {
  DMatrixHandle handle = nullptr;
  if (XGDMatrixCreateFromMat(features.data(), rows, kFeatureCount, kMissingFeature, &handle) != 0) {
    return std::unexpected(xgboost_error("XGDMatrixCreateFromMat"));
  }
  return DMatrix(handle);
}

// What the features of one forecast origin share, whatever the horizon.
struct Origin {
  double level = 0;        // every value is divided by it
  double last = kMissing;  // the last value within the level window
  std::array<float, kFeatureCount> shared{};
};

// The recent history of one series in a ring of its last week (or what the longest feature
// reaches back to), plus a long level; features of any origin come from here, in training as in
// prediction, so that both see exactly the same numbers. push() is O(1).
class SeriesWindow {
 public:
  void reset(const Series& series, const GbtOptions& options) {
    step_seconds_ = series.step_seconds;
    start_seconds_ = series.start_seconds;
    day_ = period_steps(options.seasons.day_seconds, series.step_seconds);
    week_ = period_steps(options.seasons.week_seconds, series.step_seconds);
    hour_ = series.step_seconds > 0
                ? std::max<size_t>(1, static_cast<size_t>(std::lround(3600 / series.step_seconds)))
                : 1;
    reach_ = kLevelWindow;
    if (week_ > 0) reach_ = std::max(reach_, week_);
    if (day_ > 0) reach_ = std::max(reach_, day_ + hour_ / 2);
    ring_.clear();
    count_ = 0;
    last_ = kMissing;
    long_level_ = kMissing;
    long_alpha_ = series.step_seconds > 0
                      ? 1 / std::max(2.0, options.seasons.day_seconds / series.step_seconds)
                      : 0.5;
  }

  void push(double value) {
    if (!std::isfinite(value)) value = kMissing;
    // The ring grows to its reach as values arrive (index count_ until then): allocated whole, a
    // week of 10 ms steps took 484 MB for a history of a few thousand values.
    if (ring_.size() < reach_) {
      ring_.push_back(value);
    } else {
      ring_[count_ % reach_] = value;
    }
    ++count_;
    if (std::isnan(value)) return;
    last_ = value;
    long_level_ =
        std::isnan(long_level_) ? value : long_level_ + long_alpha_ * (value - long_level_);
  }

  double last() const { return last_; }

  // The features shared by every horizon from the last observation; false when there is no
  // level to normalise by (nothing observed, or nothing but zeros).
  bool origin(Origin& o) const {
    const Moments recent = moments(kLevelWindow);
    double level = recent.count > 0 ? recent.mean : long_level_;
    if (std::isfinite(long_level_)) level = std::max(level, kMinLevelShare * long_level_);
    if (!(level > 0) || !std::isfinite(level)) return false;
    o.level = level;
    o.last = kMissing;
    for (size_t k = 0; k < kLevelWindow && std::isnan(o.last); ++k) o.last = back(k);
    o.shared.fill(kMissingFeature);
    for (size_t i = 0; i < kLags.size(); ++i)
      o.shared[kLag1 + i] = scaled(back(kLags[i] - 1), level);
    const Moments short_window = moments(kShortWindow);
    o.shared[kShortMean] = scaled(short_window.mean, level);
    o.shared[kShortStd] = scaled(short_window.std, level);
    o.shared[kLevelStd] = scaled(recent.std, level);
    if (recent.count > 0 && long_level_ > 0) {
      o.shared[kLevelVsLong] = static_cast<float>(recent.mean / long_level_);
    }
    return true;
  }

  // The row for `h` steps after the last observation, and its baseline: the booster predicts
  // (value − baseline) / level. The baseline is the last value; after a gap longer than the
  // level window, the same hour a day earlier, or the same step a week earlier, or the level.
  double row(const Origin& o, size_t h, std::span<float> out) const {
    std::copy(o.shared.begin(), o.shared.end(), out.begin());
    out[kHorizon] = static_cast<float>(h);
    // A period back from the target is (period − h) steps back from the last observation.
    const double day = day_ >= h ? back(day_ - h) : kMissing;
    const double day_hour = day_ >= h ? hour_mean_around(day_ - h) : kMissing;
    const double week = week_ >= h ? back(week_ - h) : kMissing;
    out[kDay] = scaled(day, o.level);
    out[kDayHourMean] = scaled(day_hour, o.level);
    out[kWeek] = scaled(week, o.level);
    // The calendar of the target step; unknown when the series has no real start.
    if (start_seconds_ != 0) {
      const double t = start_seconds_ + static_cast<double>(count_ - 1 + h) * step_seconds_;
      const double days = std::floor(t / 86400);
      out[kMinuteOfDay] = static_cast<float>(std::floor((t - days * 86400) / 60));
      // 1970-01-01 was a Thursday; Monday is 0.
      out[kDayOfWeek] = static_cast<float>(std::fmod(std::fmod(days + 3, 7) + 7, 7));
    }
    for (double base : {o.last, day_hour, week}) {
      if (!std::isnan(base)) return base;
    }
    return o.level;
  }

 private:
  struct Moments {
    size_t count = 0;
    double mean = kMissing;
    double std = kMissing;
  };

  // The value k steps before the last observation (0 = the last); NaN beyond what is kept.
  double back(size_t k) const {
    if (k >= count_ || k >= ring_.size()) return kMissing;
    return ring_[(count_ - 1 - k) % ring_.size()];
  }

  // Mean and standard deviation of the observed values among the last `steps`.
  Moments moments(size_t steps) const {
    Moments m;
    double sum = 0;
    for (size_t k = 0; k < steps; ++k) {
      const double v = back(k);
      if (std::isnan(v)) continue;
      sum += v;
      ++m.count;
    }
    if (m.count == 0) return m;
    m.mean = sum / static_cast<double>(m.count);
    if (m.count < 2) return m;
    double squares = 0;
    for (size_t k = 0; k < steps; ++k) {
      const double v = back(k);
      if (!std::isnan(v)) squares += (v - m.mean) * (v - m.mean);
    }
    m.std = std::sqrt(squares / static_cast<double>(m.count));
    return m;
  }

  // Mean of the observed values in the hour centred `k` steps before the last observation,
  // leaving out the part after it and before what the ring holds (at fine steps an hour is
  // millions of steps, and a short history reached past them one by one).
  double hour_mean_around(size_t k) const {
    const size_t before = hour_ / 2;
    const size_t after = hour_ - 1 - before;
    const size_t held = std::min(count_, ring_.size());  // back(j) is missing from j = held
    double sum = 0;
    size_t count = 0;
    for (size_t j = k > after ? k - after : 0; j <= k + before && j < held; ++j) {
      const double v = back(j);
      if (std::isnan(v)) continue;
      sum += v;
      ++count;
    }
    return count > 0 ? sum / static_cast<double>(count) : kMissing;
  }

  static float scaled(double value, double level) {
    return std::isnan(value) ? kMissingFeature : static_cast<float>(value / level);
  }

  double step_seconds_ = 60;
  double start_seconds_ = 0;
  size_t day_ = 0;
  size_t week_ = 0;
  size_t hour_ = 1;
  size_t reach_ = kLevelWindow;  // steps the ring keeps at most
  std::vector<double> ring_;
  size_t count_ = 0;  // values pushed; the last one has index count_ − 1
  double last_ = kMissing;
  double long_level_ = kMissing;  // exponentially weighted mean, about a day's memory
  double long_alpha_ = 0.5;
};

// A hash of `x`: SplitMix64's next output from the counter `x` (a copy, left as it was).
std::uint64_t splitmix64(std::uint64_t x) { return splitmix64_next(x); }

// Deterministic row sampling: whether row (series, origin, horizon) is kept with probability
// `share`, a pure function of the seed and the row.
bool keep_row(std::uint64_t seed, size_t series, size_t origin, size_t h, double share) {
  if (share >= 1) return true;
  std::uint64_t x = splitmix64(seed ^ splitmix64(series));
  x = splitmix64(x ^ splitmix64(static_cast<std::uint64_t>(origin) * 64 + h));
  return static_cast<double>(x >> 11) * 0x1.0p-53 < share;
}

Result<void> set_param(BoosterHandle booster, const char* name, const std::string& value) {
  if (XGBoosterSetParam(booster, name, value.c_str()) != 0) {
    return std::unexpected(xgboost_error(std::string("XGBoosterSetParam ") + name));
  }
  return {};
}

// Training rows: features in the model's column order and the normalised targets.
struct Rows {
  std::vector<float> features;
  std::vector<float> labels;

  size_t size() const { return labels.size(); }
  // Appends a row; returns its features to fill (its label is labels.back()).
  std::span<float> add() {
    labels.push_back(0);
    features.resize(labels.size() * kFeatureCount);
    return std::span(features).subspan((labels.size() - 1) * kFeatureCount, kFeatureCount);
  }
  void append(const Rows& other) {
    features.insert(features.end(), other.features.begin(), other.features.end());
    labels.insert(labels.end(), other.labels.begin(), other.labels.end());
  }
};

// Fewer held-out rows than this do not decide the number of rounds.
constexpr size_t kMinCheckRows = 200;

double mean(std::span<const float> values) {
  double sum = 0;
  for (float v : values) sum += v;
  return values.empty() ? 0 : sum / static_cast<double>(values.size());
}

Result<DMatrix> make_dmatrix(const Rows& rows) {
  auto matrix = make_dmatrix(rows.features, rows.size());
  if (!matrix) return matrix;
  if (XGDMatrixSetFloatInfo(matrix->get(), "label", rows.labels.data(), rows.size()) != 0) {
    return std::unexpected(xgboost_error("XGDMatrixSetFloatInfo"));
  }
  return matrix;
}

struct BoosterDeleter {
  void operator()(void* handle) const { XGBoosterFree(handle); }
};
using BoosterPtr = std::unique_ptr<void, BoosterDeleter>;

struct Boosted {
  BoosterPtr booster;
  int best_rounds = 0;  // with a check set: the rounds with the lowest error on it
};

// The last number in XGBoost's evaluation line "[round]\tcheck-mae:0.1234".
double eval_value(const char* line) {
  const std::string_view text(line);
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::numeric_limits<double>::quiet_NaN();
  return std::strtod(std::string(text.substr(colon + 1)).c_str(), nullptr);
}

// Boosts up to `rounds` rounds on `train`; with a `check` matrix, stops once its mean absolute
// error has not improved for kPatience rounds and reports the best count.
Result<Boosted> boost(const DMatrix& train, size_t train_rows, DMatrixHandle check,
                      double base_score, const GbtOptions& options, int rounds) {
  constexpr int kPatience = 20;
  // One thread per kRowsPerThread rows, up to options.threads. XGBoost's OpenMP threads spin at
  // every barrier, and the smaller the matrix the shorter and more numerous the parallel
  // regions: when other processes hold the cores, each thread waits at every barrier for its
  // descheduled partner.
  constexpr size_t kRowsPerThread = 50'000;
  const int threads = static_cast<int>(
      std::clamp<size_t>(train_rows / kRowsPerThread, 1, static_cast<size_t>(options.threads)));
  DMatrixHandle cache[] = {train.get(), check};
  BoosterHandle handle = nullptr;
  if (XGBoosterCreate(cache, check != nullptr ? 2 : 1, &handle) != 0) {
    return std::unexpected(xgboost_error("XGBoosterCreate"));
  }
  Boosted result{BoosterPtr(handle), rounds};
  const std::pair<const char*, std::string> params[] = {
      {"verbosity", "0"},
      {"objective", options.objective},
      {"eval_metric", "mae"},
      {"base_score", std::to_string(base_score)},
      {"tree_method", "hist"},
      {"max_depth", std::to_string(options.max_depth)},
      {"min_child_weight", std::to_string(options.min_child_weight)},
      {"eta", std::to_string(options.eta)},
      {"nthread", std::to_string(threads)},
      {"seed", std::to_string(options.seed % 2147483647)},
  };
  for (const auto& [name, value] : params) {
    if (auto ok = set_param(handle, name, value); !ok) return std::unexpected(ok.error());
  }
  double best = std::numeric_limits<double>::infinity();
  for (int round = 0; round < rounds; ++round) {
    if (XGBoosterUpdateOneIter(handle, round, train.get()) != 0) {
      return std::unexpected(xgboost_error("XGBoosterUpdateOneIter"));
    }
    if (check == nullptr) continue;
    const char* names[] = {"check"};
    const char* line = nullptr;
    if (XGBoosterEvalOneIter(handle, round, &check, names, 1, &line) != 0) {
      return std::unexpected(xgboost_error("XGBoosterEvalOneIter"));
    }
    const double error = eval_value(line);
    if (error < best) {
      best = error;
      result.best_rounds = round + 1;
    } else if (round + 1 - result.best_rounds >= kPatience) {
      break;
    }
  }
  return result;
}

// A booster holding only the trees: trained boosters keep the training matrix and its caches
// alive (about 12 MB for 200,000 rows), which a model serving one series for days need not
// carry. Saving and loading the model (the trees, the objective and the base score) drops them.
Result<BoosterPtr> trees_only(BoosterHandle trained) {
  bst_ulong length = 0;
  const char* bytes = nullptr;
  if (XGBoosterSaveModelToBuffer(trained, R"({"format": "ubj"})", &length, &bytes) != 0) {
    return std::unexpected(xgboost_error("XGBoosterSaveModelToBuffer"));
  }
  BoosterHandle handle = nullptr;
  if (XGBoosterCreate(nullptr, 0, &handle) != 0) {
    return std::unexpected(xgboost_error("XGBoosterCreate"));
  }
  BoosterPtr booster(handle);
  if (XGBoosterLoadModelFromBuffer(handle, bytes, length) != 0) {
    return std::unexpected(xgboost_error("XGBoosterLoadModelFromBuffer"));
  }
  // A forecast is a handful of rows: one thread is faster than waking a team.
  for (const auto& [name, value] : {std::pair{"verbosity", "0"}, std::pair{"nthread", "1"}}) {
    if (auto ok = set_param(handle, name, value); !ok) return std::unexpected(ok.error());
  }
  return booster;
}

}  // namespace

// ---- GbtBooster

std::span<const std::string_view> gbt_feature_names() { return kFeatureNames; }

GbtBooster::GbtBooster(void* handle, GbtOptions options, size_t training_rows)
    : handle_(handle), options_(std::move(options)), training_rows_(training_rows) {}

GbtBooster::~GbtBooster() { XGBoosterFree(handle_); }

Result<void> GbtBooster::predict(std::span<const float> features, std::span<float> out) const {
  if (out.empty()) return {};
  auto matrix = make_dmatrix(features, out.size());
  if (!matrix) return std::unexpected(matrix.error());
  static constexpr char kConfig[] =
      R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0,)"
      R"( "strict_shape": false})";
  bst_ulong const* shape = nullptr;
  bst_ulong dims = 0;
  float const* result = nullptr;
  // The result stays in a buffer XGBoost keeps with the booster until the next prediction, and
  // the first prediction after training configures the booster: one prediction at a time.
  std::lock_guard lock(predict_mutex_);
  if (XGBoosterPredictFromDMatrix(handle_, matrix->get(), kConfig, &shape, &dims, &result) != 0) {
    return std::unexpected(xgboost_error("XGBoosterPredictFromDMatrix"));
  }
  if (dims < 1 || shape[0] != out.size()) {
    return make_error(ErrorCode::kInternal, "gbt: XGBoost returned an unexpected shape");
  }
  std::copy_n(result, out.size(), out.begin());
  return {};
}

// ---- Training

Result<std::shared_ptr<const GbtBooster>> train_gbt(std::span<const Series> series,
                                                    const GbtOptions& options) {
  if (series.empty()) return make_error(ErrorCode::kInvalidArgument, "gbt: no series to train on");
  if (options.max_horizon < 1 || options.rounds < 1 || options.max_depth < 1 ||
      !(options.eta > 0) || options.threads < 1 || options.max_rows < kGbtMinTrainingRows ||
      !(options.validation_share >= 0 && options.validation_share < 1) ||
      !(options.min_child_weight >= 0)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gbt: options need max_horizon, rounds, max_depth, threads ≥ 1, eta > 0, "
                      "min_child_weight ≥ 0, validation_share in [0, 1) and max_rows ≥ " +
                          std::to_string(kGbtMinTrainingRows));
  }
  const auto horizon = static_cast<size_t>(options.max_horizon);
  double candidates = 0;  // (origin, horizon) pairs inside the series
  for (size_t i = 0; i < series.size(); ++i) {
    if (!(series[i].step_seconds > 0)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "gbt: series " + std::to_string(i) + " has a step of " +
                            std::to_string(series[i].step_seconds) + " s; need > 0");
    }
    const size_t n = series[i].values.size();
    for (size_t t = 0; t + 1 < n; ++t)
      candidates += static_cast<double>(std::min(horizon, n - 1 - t));
  }
  const double share = candidates > 0 ? static_cast<double>(options.max_rows) / candidates : 1;

  // Rows from the last `validation_share` of each series' origins check the boosting rounds.
  Rows fit_rows, check_rows;
  SeriesWindow window;
  Origin origin;
  for (size_t i = 0; i < series.size(); ++i) {
    const std::vector<double>& values = series[i].values;
    const auto check_from = static_cast<size_t>(
        std::floor((1 - options.validation_share) * static_cast<double>(values.size())));
    window.reset(series[i], options);
    for (size_t t = 0; t < values.size(); ++t) {
      window.push(values[t]);
      Rows& rows = t >= check_from ? check_rows : fit_rows;
      bool have_origin = false;
      for (size_t h = 1; h <= horizon && t + h < values.size(); ++h) {
        const double target = values[t + h];
        if (!std::isfinite(target) || !keep_row(options.seed, i, t, h, share)) continue;
        if (!have_origin) {
          if (!window.origin(origin)) break;
          have_origin = true;
        }
        std::span<float> features = rows.add();
        const double base = window.row(origin, h, features);
        rows.labels.back() = static_cast<float>((target - base) / origin.level);
      }
    }
  }
  const size_t total = fit_rows.size() + check_rows.size();
  if (total < kGbtMinTrainingRows) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gbt: " + std::to_string(total) + " training rows from " +
                          std::to_string(series.size()) + " series; need at least " +
                          std::to_string(kGbtMinTrainingRows) + " (observed steps with a " +
                          "level before them and a value " + std::to_string(horizon) +
                          " steps after)");
  }

  // The number of rounds: as many as keep improving the forecasts of the held-out recent rows
  // (a short or noisy series stops early, close to the baseline, instead of learning its
  // noise); then the booster is trained on all rows for that many rounds.
  int rounds = options.rounds;
  if (check_rows.size() >= kMinCheckRows && fit_rows.size() >= kGbtMinTrainingRows) {
    auto fit = make_dmatrix(fit_rows);
    if (!fit) return std::unexpected(fit.error());
    auto check = make_dmatrix(check_rows);
    if (!check) return std::unexpected(check.error());
    auto trial =
        boost(*fit, fit_rows.size(), check->get(), mean(fit_rows.labels), options, options.rounds);
    if (!trial) return std::unexpected(trial.error());
    rounds = trial->best_rounds;
  }
  fit_rows.append(check_rows);
  auto all = make_dmatrix(fit_rows);
  if (!all) return std::unexpected(all.error());
  auto trained = boost(*all, fit_rows.size(), nullptr, mean(fit_rows.labels), options, rounds);
  if (!trained) return std::unexpected(trained.error());
  auto compact = trees_only(trained->booster.get());
  if (!compact) return std::unexpected(compact.error());
  return std::shared_ptr<const GbtBooster>(
      new GbtBooster(compact->release(), options, fit_rows.size()));
}

// ---- The model

class GbtModel final : public Model {
 public:
  GbtModel(std::shared_ptr<const GbtBooster> booster, const GbtOptions& options)
      : booster_(std::move(booster)),
        trains_(booster_ == nullptr),
        options_(booster_ != nullptr ? booster_->options() : options) {
    window_.reset(Series{}, options_);
  }

  std::string_view name() const override { return "gbt"; }

  void fit(const Series& history) override {
    if (trains_) {
      // The Model interface has no error path: a series too short to train on is forecast by
      // its last value (as the other models fall back), which is what booster_ == nullptr does.
      auto trained = train_gbt(std::span(&history, 1), options_);
      booster_ = trained ? std::move(*trained) : nullptr;
    }
    window_.reset(history, options_);
    for (double v : history.values) window_.push(v);
  }

  void update(double value) override { window_.push(value); }

  void predict(std::span<double> out) const override {
    if (out.empty()) return;
    Origin origin;
    if (booster_ != nullptr && window_.origin(origin)) {
      std::vector<float> rows(out.size() * kFeatureCount);
      std::vector<double> bases(out.size());
      for (size_t k = 0; k < out.size(); ++k) {
        bases[k] =
            window_.row(origin, k + 1, std::span(rows).subspan(k * kFeatureCount, kFeatureCount));
      }
      std::vector<float> ratios(out.size());
      if (booster_->predict(rows, ratios)) {
        for (size_t k = 0; k < out.size(); ++k) {
          out[k] = std::max(0.0, bases[k] + static_cast<double>(ratios[k]) * origin.level);
        }
        return;
      }
    }
    const double last = window_.last();
    std::fill(out.begin(), out.end(), last > 0 ? last : 0.0);
  }

  std::unique_ptr<Model> clone() const override { return std::make_unique<GbtModel>(*this); }

 private:
  std::shared_ptr<const GbtBooster> booster_;
  bool trains_;  // no booster was given: fit() trains one
  GbtOptions options_;
  SeriesWindow window_;
};

std::unique_ptr<Model> make_gbt_model(std::shared_ptr<const GbtBooster> booster,
                                      const GbtOptions& options) {
  return std::make_unique<GbtModel>(std::move(booster), options);
}

}  // namespace prescale::forecast
