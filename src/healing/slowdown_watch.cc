#include "healing/slowdown_watch.h"

#include <algorithm>
#include <iterator>

#include "healing/wording.h"

namespace prescale::healing {

namespace {

// "138 ms", "45.2 ms", "3.07 ms": three figures for what a log line needs.
std::string millis(double seconds) {
  const double ms = 1000 * seconds;
  if (ms >= 100) return printed("%.0f ms", ms);
  return printed(ms >= 10 ? "%.1f ms" : "%.2f ms", ms);
}

// The median of the finite values (NaN when none).
double median(std::vector<double> values) {
  std::erase_if(values, [](double v) { return !std::isfinite(v); });
  if (values.empty()) return NAN;
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  if (values.size() % 2 == 1) return *middle;
  return (*middle + *std::max_element(values.begin(), middle)) / 2;
}

}  // namespace

SlowdownWatch::SlowdownWatch(SlowdownWatchOptions options) : options_(std::move(options)) {}

std::optional<SlowdownChange> SlowdownWatch::observe(const std::string& service,
                                                     const SlowdownSample& sample) {
  if (!(std::isfinite(sample.service_seconds) && sample.service_seconds > 0)) return std::nullopt;
  Service& s = services_[service];
  if (s.last_at && sample.at <= *s.last_at) return std::nullopt;
  s.last_at = sample.at;
  const double load = sample.load_rps > 0 ? std::log(sample.load_rps) : NAN;
  s.points.push_back({sample.at, std::log(sample.service_seconds), load});
  const auto min_points = static_cast<size_t>(std::max(options_.min_points, 1));
  while (s.points.size() > min_points && s.points.front().at <= sample.at - options_.smoothing) {
    s.points.pop_front();
  }
  if (s.points.size() < min_points) return std::nullopt;
  if (s.fed_at && sample.at - *s.fed_at < options_.step) return std::nullopt;
  const Clock::Duration elapsed = s.fed_at ? sample.at - *s.fed_at : Clock::Duration::zero();
  s.fed_at = sample.at;
  return step(service, s, sample, elapsed);
}

std::optional<SlowdownChange> SlowdownWatch::step(const std::string& name, Service& s,
                                                  const SlowdownSample& sample,
                                                  Clock::Duration elapsed) {
  std::vector<double> times, loads;
  for (const Point& p : s.points) {
    times.push_back(p.log_service);
    loads.push_back(p.log_load);
  }
  const double x = median(std::move(times));
  const double load_x = median(std::move(loads));

  // Against what was usual before this value; then the value joins the usual (its deviation
  // only outside a warning).
  const bool warm = s.steps >= options_.warmup_steps;
  const double usual_log = s.log_service.weight > 0 ? s.log_service.mean() : x;
  const double usual = std::exp(usual_log);
  const double spread = s.square_deviation.weight > 0 ? std::sqrt(s.square_deviation.mean()) : 0.0;
  const double ratio = std::exp(x - usual_log);
  const double increase = std::exp(x) - usual;
  const double load_ratio = std::exp(load_x - s.log_load.mean());  // NaN when either is unknown
  const double min_increase = std::chrono::duration<double>(options_.min_increase).count();
  const bool opens =
      !s.open && warm &&
      x - usual_log >= std::max(std::log(options_.min_ratio), options_.deviations * spread) &&
      increase >= min_increase;
  // The weight the sums keep since the last comparison; a warning's value moves the mean by
  // one step's share at most (a gap in the samples is no time at the new speed).
  const double half_life = std::chrono::duration<double>(options_.half_life).count();
  auto kept = [half_life](Clock::Duration d) {
    return half_life > 0 ? std::exp2(-std::chrono::duration<double>(d).count() / half_life) : 0.0;
  };
  const double decay = kept(elapsed);
  ++s.steps;
  if (s.open || opens) {
    s.log_service.nudge(x, kept(std::min(elapsed, options_.step)));
  } else {
    s.log_service.add(x, decay);
    s.square_deviation.add((x - usual_log) * (x - usual_log), decay);
  }
  if (std::isfinite(load_x)) s.log_load.add(load_x, decay);

  const Clock::Duration span = s.points.back().at - s.points.front().at;
  const std::string now =
      "each request takes " + millis(std::exp(x)) + " in service" +
      (span > Clock::Duration::zero() ? " (the median over " + spoken(span) + ")" : std::string());

  if (s.open) {
    SlowdownWarning& w = *s.open;
    w.peak_ratio = std::max(w.peak_ratio, ratio);
    if (ratio >= 1 + (options_.min_ratio - 1) / 2 && increase >= min_increase / 2) {
      return std::nullopt;
    }
    w.cleared_at = sample.at;
    SlowdownChange change{false, w,
                          "slowdown warning " + std::to_string(w.id) + " on " + name +
                              " cleared after " + spoken(sample.at - w.opened_at) + ": " + now +
                              ", " + printed("%.2fx", ratio) + " its usual " + millis(usual) +
                              " (at most " + printed("%.2fx", w.peak_ratio) + " while open)"};
    cleared_.push_front(std::move(w));
    if (cleared_.size() > options_.max_kept) cleared_.pop_back();
    s.open.reset();
    return change;
  }
  if (!opens) return std::nullopt;
  SlowdownWarning w;
  w.id = next_id_++;
  w.service = name;
  w.opened_at = sample.at;
  w.service_seconds = std::exp(x);
  w.usual_seconds = usual;
  w.peak_ratio = ratio;
  w.load_ratio = load_ratio;
  w.p99_seconds = sample.p99_seconds;
  w.summary = now + ", " + printed("%.2fx", ratio) + " its usual " + millis(usual);
  if (std::isfinite(load_ratio)) {
    w.summary += ", at " + printed("%.2fx", load_ratio) + " its usual load";
  }
  if (std::isfinite(sample.p99_seconds)) w.summary += "; its P99 is " + millis(sample.p99_seconds);
  s.open = w;
  return SlowdownChange{
      true, w, "slowdown warning " + std::to_string(w.id) + " on " + name + ": " + w.summary};
}

std::vector<SlowdownWarning> SlowdownWatch::warnings() const {
  std::vector<SlowdownWarning> out;
  for (const auto& [name, s] : services_) {
    if (s.open) out.push_back(*s.open);
  }
  std::sort(out.begin(), out.end(),
            [](const SlowdownWarning& a, const SlowdownWarning& b) { return a.id > b.id; });
  out.insert(out.end(), cleared_.begin(), cleared_.end());
  return out;
}

std::optional<SlowdownWarning> SlowdownWatch::open_warning(const std::string& service) const {
  const auto it = services_.find(service);
  if (it == services_.end()) return std::nullopt;
  return it->second.open;
}

}  // namespace prescale::healing
