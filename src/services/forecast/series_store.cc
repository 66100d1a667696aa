#include "services/forecast/series_store.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>

#include "forecast/gbt_model.h"

namespace prescale::services::forecast_service {
namespace {

std::unexpected<Error> invalid(std::string message) {
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

BacktestSummary summarise(const forecast::Forecaster& f) {
  BacktestSummary b;
  for (const forecast::ForecastScore& s : f.backtest()) {
    if (s.model != f.selected()) continue;
    ++b.horizons;
    b.mae += s.mae;
    b.mase += s.mase;
    b.pinball_p90 += s.pinball_p90;
    b.coverage_p90 += s.coverage_p90;
  }
  if (b.horizons > 0) {
    const double n = b.horizons;
    b.mae /= n;
    b.mase /= n;
    b.pinball_p90 /= n;
    b.coverage_p90 /= n;
  }
  return b;
}

size_t observed(const std::vector<double>& values) {
  return static_cast<size_t>(
      std::count_if(values.begin(), values.end(), [](double v) { return std::isfinite(v); }));
}

std::string version_of(const ForecastModel* model) {
  return model != nullptr ? model->version_label() : std::string(kMethodVersion);
}

const forecast::GbtBooster* booster_of(const ForecastModel* model) {
  return model != nullptr ? model->booster.get() : nullptr;
}

Result<forecast::Forecaster> fit(const forecast::Series& series,
                                 const forecast::ForecasterOptions& options) {
  const size_t need = 2 * static_cast<size_t>(options.max_horizon + 1);
  const size_t have = observed(series.values);
  if (have < need) {
    return invalid("values: " + std::to_string(have) +
                   " observed values, a forecast needs at least " + std::to_string(need));
  }
  forecast::Forecaster f(options);
  if (auto r = f.fit(series); !r) return std::unexpected(r.error());
  return f;
}

}  // namespace

bool valid_series_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

forecast::ForecasterOptions with_model(forecast::ForecasterOptions options,
                                       const ForecastModel* model) {
  if (model == nullptr || model->booster == nullptr) return options;
  const std::string name(kGlobalModelName);
  if (std::find(options.candidates.begin(), options.candidates.end(), name) ==
      options.candidates.end()) {
    options.candidates.push_back(name);
  }
  // fit() of this model only loads the series: the booster is the model file's.
  options.custom_models.push_back({name, forecast::make_gbt_model(model->booster)});
  return options;
}

Result<ForecastResult> forecast_once(const forecast::Series& series, int horizon,
                                     const forecast::ForecasterOptions& options,
                                     const ForecastModel* model) {
  auto f = fit(series, with_model(options, model));
  if (!f) return std::unexpected(f.error());
  ForecastResult r;
  r.step_seconds = series.step_seconds;
  r.start_seconds = series.end_seconds();
  r.quantiles = f->predict(horizon);
  r.backtest = summarise(*f);
  r.history_points = series.values.size();
  r.model_version = version_of(model);
  return r;
}

struct SeriesStore::Stream {
  std::mutex mu;
  // The grid: step k starts at origin_seconds + k × step_seconds, computed from k each time (a
  // start moved by a step per dropped value would drift off the points' grid).
  double origin_seconds = 0;  // of the first step the series ever had
  double step_seconds = 0;
  uint64_t dropped = 0;  // steps dropped from the front: values.front() is step `dropped`
  std::deque<double> values;
  std::optional<forecast::Forecaster> forecaster;
  size_t fitted_size = 0;  // values.size() at the fit
  size_t pending = 0;      // the newest values not yet fed to the forecaster
  size_t since_fit = 0;    // values appended since the fit
  std::shared_ptr<const ForecastModel> fitted_with;  // the model of the fit; null: none

  double start_seconds() const {
    return origin_seconds + static_cast<double>(dropped) * step_seconds;
  }
  double end_seconds() const {
    return origin_seconds + static_cast<double>(dropped + values.size()) * step_seconds;
  }
};

SeriesStore::SeriesStore(StoreOptions options) : options_(std::move(options)) {}
SeriesStore::~SeriesStore() = default;

std::shared_ptr<SeriesStore::Stream> SeriesStore::find(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : it->second;
}

Result<AppendResult> SeriesStore::append(std::string_view name, const Points& points,
                                         std::optional<double> step_seconds) {
  std::shared_ptr<Stream> s = find(name);
  const bool created = s == nullptr;
  if (created) {
    s = std::make_shared<Stream>();
  }
  std::lock_guard stream_lock(s->mu);
  size_t appended = 0;
  if (created || s->values.empty()) {
    auto series = to_series(points, step_seconds);
    if (!series) return std::unexpected(series.error());
    s->origin_seconds = series->start_seconds;
    s->step_seconds = series->step_seconds;
    s->dropped = 0;
    s->values.assign(series->values.begin(), series->values.end());
    s->pending = s->values.size();
    s->since_fit = s->values.size();
    appended = s->values.size();
  } else {
    if (step_seconds && std::abs(*step_seconds - s->step_seconds) > 1e-9) {
      return invalid("step_seconds: " + number(*step_seconds) + " differs from the series' step " +
                     number(s->step_seconds));
    }
    // On the series' grid, after its last point (which counts against no limit).
    auto series = to_series_after(points, s->end_seconds() - s->step_seconds, s->step_seconds);
    if (!series) return std::unexpected(series.error());
    s->values.insert(s->values.end(), series->values.begin(), series->values.end());
    s->pending += series->values.size();
    s->since_fit += series->values.size();
    appended = series->values.size();
  }
  // Keep the newest max_points steps.
  while (s->values.size() > options_.max_points) {
    s->values.pop_front();
    ++s->dropped;
    if (s->fitted_size > 0) --s->fitted_size;
  }
  s->pending = std::min(s->pending, s->values.size());

  AppendResult r;
  r.appended = appended;
  r.points = s->values.size();
  r.step_seconds = s->step_seconds;
  r.last_timestamp = s->end_seconds() - s->step_seconds;
  if (created) {
    std::lock_guard lock(mu_);
    if (streams_.size() >= options_.max_series) {
      return make_error(ErrorCode::kOutOfRange, "series: the store holds its limit of " +
                                                    std::to_string(options_.max_series) +
                                                    " series; delete one first");
    }
    auto [it, inserted] = streams_.emplace(std::string(name), s);
    if (!inserted) {
      // Created concurrently by another request: retry against the one that won.
      return append(name, points, step_seconds);
    }
  }
  return r;
}

Result<ForecastResult> SeriesStore::forecast(std::string_view name, int horizon,
                                             std::shared_ptr<const ForecastModel> model) {
  std::shared_ptr<Stream> s = find(name);
  if (s == nullptr) {
    return make_error(ErrorCode::kNotFound, "series \"" + std::string(name) + "\" does not exist");
  }
  std::lock_guard lock(s->mu);
  const bool due = !s->forecaster ||
                   (s->values.size() >= 2 * s->fitted_size &&
                    static_cast<double>(s->values.size()) * s->step_seconds < 86400) ||
                   s->since_fit >= options_.refit_every ||
                   booster_of(s->fitted_with.get()) != booster_of(model.get());
  if (due) {
    forecast::Series series;
    series.start_seconds = s->start_seconds();
    series.step_seconds = s->step_seconds;
    series.values.assign(s->values.begin(), s->values.end());
    auto f = fit(series, with_model(options_.forecaster, model.get()));
    if (!f) return std::unexpected(f.error());
    s->forecaster = std::move(*f);
    s->fitted_with = std::move(model);
    s->fitted_size = s->values.size();
    s->pending = 0;
    s->since_fit = 0;
  } else {
    for (size_t i = s->values.size() - s->pending; i < s->values.size(); ++i) {
      s->forecaster->update(s->values[i]);
    }
    s->pending = 0;
  }
  ForecastResult r;
  r.step_seconds = s->step_seconds;
  r.start_seconds = s->end_seconds();
  r.quantiles = s->forecaster->predict(horizon);
  r.backtest = summarise(*s->forecaster);
  r.history_points = s->values.size();
  r.model_version = version_of(s->fitted_with.get());
  return r;
}

bool SeriesStore::erase(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = streams_.find(name);
  if (it == streams_.end()) return false;
  streams_.erase(it);
  return true;
}

std::vector<SeriesInfo> SeriesStore::list() const {
  std::vector<std::pair<std::string, std::shared_ptr<Stream>>> all;
  {
    std::lock_guard lock(mu_);
    all.reserve(streams_.size());
    for (const auto& [name, stream] : streams_) all.emplace_back(name, stream);
  }
  std::vector<SeriesInfo> out;
  out.reserve(all.size());
  for (auto& [name, s] : all) {
    std::lock_guard lock(s->mu);
    SeriesInfo i;
    i.name = name;
    i.points = s->values.size();
    i.step_seconds = s->step_seconds;
    i.first_timestamp = s->start_seconds();
    i.last_timestamp = s->end_seconds() - s->step_seconds;
    i.model = s->forecaster ? std::string(s->forecaster->selected()) : "";
    out.push_back(std::move(i));
  }
  return out;
}

size_t SeriesStore::size() const {
  std::lock_guard lock(mu_);
  return streams_.size();
}

}  // namespace prescale::services::forecast_service
