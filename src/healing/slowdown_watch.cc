#include "healing/slowdown_watch.h"

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "core/state_json.h"
#include "healing/wording.h"

namespace prescale::healing {

namespace {

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
  // Once per `step` of the clock, at its first sample in it: the services of a look compare at
  // the same look (a caller with its callee), whenever each began.
  const auto step_of = [this](Clock::TimePoint t) {
    const auto n = t.time_since_epoch().count(), d = options_.step.count();
    return d > 0 ? (n >= 0 ? n / d : -((-n + d - 1) / d)) : n;
  };
  if (s.fed_at && step_of(sample.at) == step_of(*s.fed_at)) return std::nullopt;
  const Clock::Duration elapsed = s.fed_at ? sample.at - *s.fed_at : Clock::Duration::zero();
  s.fed_at = sample.at;
  return step(service, s, sample, elapsed);
}

void SlowdownWatch::set_calls(std::vector<std::pair<std::string, std::string>> calls) {
  calls_ = std::move(calls);
}

std::vector<SlowdownChange> SlowdownWatch::observe(
    const std::vector<std::pair<std::string, SlowdownSample>>& look) {
  // Kahn's order on the look's services: one whose callees in the look are all done goes next,
  // the first in the look's order among them. When none is (cycles), a service of a cycle: from
  // the first not done, callees not done are followed until one comes again (each service not
  // done then has one), so a caller of a cycle still waits for it.
  const size_t n = look.size();
  std::map<std::string_view, size_t> index;
  for (size_t i = 0; i < n; ++i) index.emplace(look[i].first, i);
  std::vector<int> pending(n, 0);  // callees in the look not done yet
  std::vector<std::vector<size_t>> callers(n), callees(n);
  for (const auto& [caller, callee] : calls_) {
    const auto a = index.find(caller), b = index.find(callee);
    if (a == index.end() || b == index.end() || a->second == b->second) continue;
    ++pending[a->second];
    callers[b->second].push_back(a->second);
    callees[a->second].push_back(b->second);
  }
  std::set<size_t> ready;
  for (size_t i = 0; i < n; ++i) {
    if (pending[i] == 0) ready.insert(i);
  }
  std::vector<bool> done(n, false);
  std::vector<SlowdownChange> changes;
  for (size_t taken = 0; taken < n; ++taken) {
    size_t i = 0;
    if (ready.empty()) {
      while (done[i]) ++i;
      std::vector<bool> seen(n, false);
      while (!seen[i]) {
        seen[i] = true;
        for (size_t c : callees[i]) {
          if (!done[c]) {
            i = c;
            break;
          }
        }
      }
    } else {
      i = *ready.begin();
      ready.erase(ready.begin());
    }
    done[i] = true;
    for (size_t c : callers[i]) {
      if (!done[c] && --pending[c] == 0) ready.insert(c);
    }
    if (auto change = observe(look[i].first, look[i].second)) changes.push_back(std::move(*change));
  }
  return changes;
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
  const double min_increase = std::chrono::duration<double>(options_.min_increase).count();
  // Within half of either bar over the usual `of_log`.
  auto back_within = [&](double of_log) {
    return x - of_log < std::log(1 + (options_.min_ratio - 1) / 2) ||
           std::exp(x) - std::exp(of_log) < min_increase / 2;
  };
  // Just after a warning cleared: back at the usual it had when the warning opened, the service
  // recovered (rather than the usual growing used to its new speed), and that usual is put back.
  const bool recovering = s.recovering > 0;
  if (recovering) {
    --s.recovering;
    if (back_within(s.usual_before.mean())) {
      s.log_service = s.usual_before;
      s.recovering = 0;
    }
    if (s.recovering == 0) s.usual_before = Decayed();
  }

  // Against what was usual before this value; then the value joins the usual (its deviation
  // only outside a warning).
  const bool settling = s.settling > 0;
  const bool warm = s.steps >= options_.warmup_steps && !settling;
  s.settling = std::max(s.settling - 1, 0);
  const double usual_log = s.log_service.weight > 0 ? s.log_service.mean() : x;
  const double usual = std::exp(usual_log);
  const double spread = s.square_deviation.weight > 0 ? std::sqrt(s.square_deviation.mean()) : 0.0;
  const double ratio = std::exp(x - usual_log);
  const double increase = std::exp(x) - usual;
  const double load_ratio = std::exp(load_x - s.log_load.mean());  // NaN when either is unknown
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
  if (opens) s.usual_before = s.log_service;
  // A warning's values, those of replicas just restarted and those on the way back from a
  // warning are not the usual speed: they move the usual as a long history would let them, and
  // teach no deviation.
  if (s.open || opens || settling || recovering) {
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
    if (!back_within(usual_log)) return std::nullopt;
    // The smoothed value lags: whether it is on its way back to the old usual shows over the
    // next median's span.
    s.recovering = s.usual_before.weight > 0 ? std::max(options_.min_points, 1) + 1 : 0;
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
  // A callee slower already: the earliest of its open warnings.
  const SlowdownWarning* callee = nullptr;
  for (const auto& [caller, callee_name] : calls_) {
    if (caller != name || callee_name == name) continue;
    const auto it = services_.find(callee_name);
    if (it == services_.end() || !it->second.open) continue;
    if (callee == nullptr || it->second.open->opened_at < callee->opened_at) {
      callee = &*it->second.open;
    }
  }
  if (callee != nullptr) {
    w.cause = "its callee " + callee->service + "'s slowdown warning " +
              std::to_string(callee->id) + ", open for " + spoken(sample.at - callee->opened_at);
  }
  w.summary = now + ", " + printed("%.2fx", ratio) + " its usual " + millis(usual);
  if (std::isfinite(load_ratio)) {
    w.summary += ", at " + printed("%.2fx", load_ratio) + " its usual load";
  }
  if (std::isfinite(sample.p99_seconds)) w.summary += "; its P99 is " + millis(sample.p99_seconds);
  if (!w.cause.empty()) w.summary += "; likely cause: " + w.cause;
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

void SlowdownWatch::forget(const std::string& service) { services_.erase(service); }

namespace {

using nlohmann::json;
using state_json::amount;
using state_json::BadField;
using state_json::finite;
using state_json::number;
using state_json::number_of;

// A positive duration in seconds, or NaN (null) where the warning allows "unknown".
double positive_or_unknown(const json& j, const std::string& field) {
  const double v = number_of(j);
  if (!std::isnan(v) && !(std::isfinite(v) && v > 0)) throw BadField{field, "not > 0"};
  return v;
}

}  // namespace

nlohmann::json SlowdownWatch::to_json(Clock::TimePoint now) const {
  auto decayed = [](const Decayed& d) { return json{{"sum", d.sum}, {"weight", d.weight}}; };
  auto warning = [now](const SlowdownWarning& w) {
    return json{{"id", w.id},
                {"service", w.service},
                {"opened_at_age_ns", state_json::age_ns(now, w.opened_at)},
                {"cleared_at_age_ns", state_json::optional_age(now, w.cleared_at)},
                {"service_seconds", w.service_seconds},
                {"usual_seconds", w.usual_seconds},
                {"peak_ratio", w.peak_ratio},
                {"load_ratio", number(w.load_ratio)},
                {"p99_seconds", number(w.p99_seconds)},
                {"cause", w.cause},
                {"summary", w.summary}};
  };
  json services = json::array();
  for (const auto& [name, s] : services_) {
    json points = json::array();
    for (const Point& p : s.points) {
      points.push_back({state_json::age_ns(now, p.at), p.log_service, number(p.log_load)});
    }
    services.push_back(
        {{"name", name},
         {"log_service", decayed(s.log_service)},
         {"log_load", decayed(s.log_load)},
         {"square_deviation", decayed(s.square_deviation)},
         {"steps", s.steps},
         {"last_at_age_ns", state_json::optional_age(now, s.last_at)},
         {"fed_at_age_ns", state_json::optional_age(now, s.fed_at)},
         {"points", std::move(points)},
         {"open", s.open ? warning(*s.open) : json()},
         {"usual_before", s.open || s.recovering > 0 ? decayed(s.usual_before) : json()},
         {"recovering", s.recovering}});
  }
  json cleared = json::array();
  for (const SlowdownWarning& w : cleared_) cleared.push_back(warning(w));
  return {
      {"next_id", next_id_}, {"services", std::move(services)}, {"cleared", std::move(cleared)}};
}

Result<void> SlowdownWatch::from_json(const nlohmann::json& state, Clock::TimePoint now) {
  std::map<std::string, Service> services;
  std::deque<SlowdownWarning> cleared;
  std::uint64_t next_id = 1;
  try {
    next_id = state.at("next_id").get<std::uint64_t>();
    if (next_id < 1) throw BadField{"next_id", "not >= 1"};
    auto decayed = [](const json& j, const std::string& field) {
      Decayed d;
      d.sum = finite(j.at("sum"), field + ".sum");
      d.weight = amount(j.at("weight"), field + ".weight");
      return d;
    };
    auto warning = [&](const json& j, const std::string& field) {
      SlowdownWarning w;
      w.id = j.at("id").get<std::uint64_t>();
      if (w.id < 1 || w.id >= next_id) throw BadField{field + ".id", "not in [1, next_id)"};
      w.service = j.at("service").get<std::string>();
      w.opened_at = state_json::at_past_age(now, j.at("opened_at_age_ns"), field + ".opened_at");
      w.cleared_at =
          state_json::optional_at_past_age(now, j.at("cleared_at_age_ns"), field + ".cleared_at");
      w.service_seconds = positive_or_unknown(j.at("service_seconds"), field + ".service_seconds");
      w.usual_seconds = positive_or_unknown(j.at("usual_seconds"), field + ".usual_seconds");
      w.peak_ratio = positive_or_unknown(j.at("peak_ratio"), field + ".peak_ratio");
      w.load_ratio = positive_or_unknown(j.at("load_ratio"), field + ".load_ratio");
      w.p99_seconds = positive_or_unknown(j.at("p99_seconds"), field + ".p99_seconds");
      if (std::isnan(w.service_seconds) || std::isnan(w.usual_seconds) ||
          std::isnan(w.peak_ratio)) {
        throw BadField{field, "service_seconds, usual_seconds and peak_ratio must be numbers"};
      }
      if (const auto cause = j.find("cause"); cause != j.end()) {
        w.cause = cause->get<std::string>();
      }
      w.summary = j.at("summary").get<std::string>();
      return w;
    };
    for (const json& j : state.at("services")) {
      const auto name = j.at("name").get<std::string>();
      const std::string field = "services[" + name + "]";
      if (services.contains(name)) throw BadField{field, "listed twice"};
      Service s;
      s.log_service = decayed(j.at("log_service"), field + ".log_service");
      s.log_load = decayed(j.at("log_load"), field + ".log_load");
      s.square_deviation = decayed(j.at("square_deviation"), field + ".square_deviation");
      if (s.square_deviation.sum < 0) throw BadField{field + ".square_deviation.sum", "negative"};
      s.steps = j.at("steps").get<int>();
      if (s.steps < 0) throw BadField{field + ".steps", "negative"};
      s.settling = std::max(options_.settle_steps, 0);  // every replica has just started
      s.last_at = state_json::optional_at_past_age(now, j.at("last_at_age_ns"), field + ".last_at");
      s.fed_at = state_json::optional_at_past_age(now, j.at("fed_at_age_ns"), field + ".fed_at");
      for (const json& p : j.at("points")) {
        const Point point{state_json::at_past_age(now, p.at(0), field + ".points"),
                          finite(p.at(1), field + ".points"), number_of(p.at(2))};
        if (!s.points.empty() && point.at <= s.points.back().at) {
          throw BadField{field + ".points", "not in increasing time"};
        }
        s.points.push_back(point);
      }
      if (!j.at("open").is_null()) {
        SlowdownWarning w = warning(j.at("open"), field + ".open");
        if (w.service != name || w.cleared_at) {
          throw BadField{field + ".open", "not an open warning of " + name};
        }
        s.open = std::move(w);
      }
      // Kept from the warning's opening until shortly after its clearing; a state saved before
      // it was kept has none (the usual stays as it is).
      if (const auto before = j.find("usual_before"); before != j.end() && !before->is_null()) {
        s.usual_before = decayed(*before, field + ".usual_before");
        s.recovering = j.value("recovering", 0);
        if (s.recovering < 0) throw BadField{field + ".recovering", "negative"};
        if (s.open) s.recovering = 0;
      }
      services.emplace(name, std::move(s));
    }
    for (const json& j : state.at("cleared")) {
      SlowdownWarning w = warning(j, "cleared[" + std::to_string(cleared.size()) + "]");
      if (!w.cleared_at) throw BadField{"cleared", "a warning without its clearing"};
      cleared.push_back(std::move(w));
      if (cleared.size() >= options_.max_kept) break;
    }
  } catch (const BadField& bad) {
    return make_error(ErrorCode::kInvalidArgument, "slowdown state: " + bad.field + ": " + bad.why);
  } catch (const json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, std::string("slowdown state: ") + e.what());
  }
  services_ = std::move(services);
  cleared_ = std::move(cleared);
  next_id_ = next_id;
  return {};
}

}  // namespace prescale::healing
