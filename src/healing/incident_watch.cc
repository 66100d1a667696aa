#include "healing/incident_watch.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "core/state_json.h"
#include "healing/wording.h"

namespace prescale::healing {

namespace {

// "1h", "5m", "30m", "90s": a rule's window as the workbook writes it.
std::string window_name(Clock::Duration d) {
  using namespace std::chrono;
  if (d % hours(1) == Clock::Duration::zero())
    return std::to_string(duration_cast<hours>(d).count()) + "h";
  if (d % minutes(1) == Clock::Duration::zero()) {
    return std::to_string(duration_cast<minutes>(d).count()) + "m";
  }
  return std::to_string(duration_cast<seconds>(d).count()) + "s";
}

std::string rule_name(const BurnRule& r) {
  return printed("%gx", r.burn_rate) + " over " + window_name(r.long_window) + " and " +
         window_name(r.short_window);
}

std::string percent(double share) {
  return 100 * share < 1 ? printed("%.2f %%", 100 * share) : printed("%.1f %%", 100 * share);
}

// What counts as a cause, most telling first: a release, a crash (a kill at the memory limit or
// by the liveness checks included), the gateway taking a replica out (ejected, or failing its
// health checks), the healer's replacement, a scale-in. ("kill" is a drain's end: no cause.)
int cause_rank(const std::string& kind) {
  static const char* const kKinds[] = {"rollout",   "rollback", "crash", "eject",
                                       "unhealthy", "heal",     "scale"};
  for (int i = 0; i < static_cast<int>(std::size(kKinds)); ++i) {
    if (kind == kKinds[i]) return i;
  }
  return -1;
}

}  // namespace

IncidentWatch::IncidentWatch(IncidentWatchOptions options) : options_(std::move(options)) {
  for (const BurnRule& r : options_.rules) {
    longest_ = std::max({longest_, r.long_window, r.short_window});
  }
}

void IncidentWatch::set_error_budget(const std::string& service, double budget) {
  if (!(budget > 0 && budget < 1)) {
    services_.erase(service);
    return;
  }
  services_[service].budget = budget;
}

void IncidentWatch::set_calls(std::vector<std::pair<std::string, std::string>> calls) {
  calls_ = std::move(calls);
}

void IncidentWatch::note_event(const std::string& service, const std::string& kind,
                               const std::string& message) {
  if (cause_rank(kind) < 0) return;
  auto it = services_.find(service);
  if (it == services_.end()) return;
  it->second.events.push_back({latest_, kind, message});
}

void IncidentWatch::set_slowdown(const std::string& service,
                                 std::optional<SlowdownWarning> warning) {
  if (warning) {
    slowdowns_.insert_or_assign(service, std::move(*warning));
  } else {
    slowdowns_.erase(service);
  }
}

void IncidentWatch::note_scale(const std::string& service, int from_replicas, int to_replicas,
                               const std::string& reason) {
  if (to_replicas >= from_replicas) return;
  note_event(service, "scale",
             "scaled in " + std::to_string(from_replicas) + " -> " + std::to_string(to_replicas) +
                 (reason.empty() ? "" : ": " + reason));
}

IncidentWatch::Counts IncidentWatch::window(const Service& s, Clock::Duration length) const {
  if (s.samples.empty()) return {};
  const Clock::TimePoint from = s.samples.back().at - length;
  // The first sample inside the window: after `from`.
  const auto first =
      std::upper_bound(s.samples.begin(), s.samples.end(), from,
                       [](Clock::TimePoint t, const IncidentSample& x) { return t < x.at; });
  const auto i = static_cast<size_t>(first - s.samples.begin());
  const Counts& start = i == 0 ? s.before : s.through[i - 1];
  const Counts& end = s.through.back();
  return {end.requests - start.requests, end.bad - start.bad};
}

std::optional<std::pair<const BurnRule*, double>> IncidentWatch::firing(const Service& s) const {
  for (const BurnRule& r : options_.rules) {
    const Counts shorter = window(s, r.short_window);
    const Counts longer = window(s, r.long_window);
    if (shorter.requests <= 0 || longer.requests <= 0 || shorter.bad < options_.min_bad) continue;
    const double short_burn = shorter.bad / shorter.requests / s.budget;
    const double long_burn = longer.bad / longer.requests / s.budget;
    if (short_burn >= r.burn_rate && long_burn >= r.burn_rate) {
      return std::pair<const BurnRule*, double>{&r, short_burn};
    }
  }
  return std::nullopt;
}

std::string IncidentWatch::cause(const std::string& name, const Service& s,
                                 const IncidentSample& sample) const {
  // Downstream first: a callee already burning is the likeliest reason its callers fail too.
  const Incident* downstream = nullptr;
  for (const auto& [caller, callee] : calls_) {
    if (caller != name || callee == name) continue;
    const auto it = services_.find(callee);
    if (it == services_.end() || !it->second.open) continue;
    const Incident& other = *it->second.open;
    if (downstream == nullptr || other.opened_at < downstream->opened_at) downstream = &other;
  }
  if (downstream != nullptr) {
    return "its callee " + downstream->service + "'s incident " + std::to_string(downstream->id) +
           ", open for " + spoken(sample.at - downstream->opened_at);
  }
  const Noted* event = nullptr;
  for (const Noted& e : s.events) {
    if (*e.at < sample.at - options_.cause_lookback) continue;
    // The most telling kind; of one kind, the latest.
    if (event == nullptr || cause_rank(e.kind) < cause_rank(event->kind) ||
        (cause_rank(e.kind) == cause_rank(event->kind) && *e.at >= *event->at)) {
      event = &e;
    }
  }
  if (event != nullptr) {
    const std::string when =
        *event->at >= sample.at ? "just before" : spoken(sample.at - *event->at) + " before";
    return "a " + event->kind + " " + when + ": " + event->message;
  }
  // A slower service: its own warning, else the earliest of its callees' (and with its own, that
  // callee's too, as it stands now).
  const SlowdownWarning* callee_slower = nullptr;
  for (const auto& [caller, callee] : calls_) {
    if (caller != name || callee == name) continue;
    const auto it = slowdowns_.find(callee);
    if (it == slowdowns_.end()) continue;
    if (callee_slower == nullptr || it->second.opened_at < callee_slower->opened_at) {
      callee_slower = &it->second;
    }
  }
  auto told = [&](const SlowdownWarning& w, const std::string& whose) {
    return whose + " slowdown warning " + std::to_string(w.id) + ", open for " +
           spoken(sample.at - w.opened_at);
  };
  auto slower_by = [](const SlowdownWarning& w) {
    return ": each request takes " + printed("%.2fx", w.service_seconds / w.usual_seconds) +
           " its usual " + millis(w.usual_seconds) + " in service";
  };
  if (const auto own = slowdowns_.find(name); own != slowdowns_.end()) {
    return told(own->second, "its") + slower_by(own->second) +
           (callee_slower == nullptr
                ? std::string()
                : "; and " + told(*callee_slower, "its callee " + callee_slower->service + "'s"));
  }
  if (callee_slower != nullptr) {
    return told(*callee_slower, "its callee " + callee_slower->service + "'s") +
           slower_by(*callee_slower);
  }
  if (sample.planned_replicas > 0 && sample.ready_replicas >= 0 &&
      sample.ready_replicas < sample.planned_replicas) {
    return std::to_string(sample.ready_replicas) + " of its " +
           std::to_string(sample.planned_replicas) + " planned replicas ready";
  }
  if (sample.load_rps > 0 && sample.forecast_p99_rps > 0 &&
      sample.load_rps > sample.forecast_p99_rps) {
    return printed("load %.1f req/s, %.1fx its forecast's P99: demand nobody saw coming",
                   sample.load_rps, sample.load_rps / sample.forecast_p99_rps);
  }
  return "";
}

bool IncidentWatch::add_sample(Service& s, const IncidentSample& sample) {
  if (!s.samples.empty() && sample.at <= s.samples.back().at) return false;
  if (!latest_ || sample.at > *latest_) latest_ = sample.at;
  // A count that is not a number (a gap) counts as none: once in the running totals it would
  // silence every later comparison.
  const auto count = [](double v) { return std::isfinite(v) ? std::max(0.0, v) : 0.0; };
  IncidentSample kept = sample;
  kept.requests = count(sample.requests);
  kept.failed = std::min(count(sample.failed), kept.requests);
  kept.slow = std::min(count(sample.slow), kept.requests - kept.failed);
  if (!s.first_at) s.first_at = sample.at;
  const Counts last = s.through.empty() ? s.before : s.through.back();
  s.samples.push_back(kept);
  s.through.push_back({last.requests + kept.requests, last.bad + kept.failed + kept.slow});
  while (s.samples.size() > 1 && s.samples.front().at <= sample.at - longest_) {
    s.before = s.through.front();
    s.samples.pop_front();
    s.through.pop_front();
  }
  for (Noted& e : s.events) {
    if (!e.at) e.at = sample.at;
  }
  while (!s.events.empty() && *s.events.front().at < sample.at - options_.cause_lookback) {
    s.events.pop_front();
  }
  return true;
}

double IncidentWatch::first_burn(const Service& s) const {
  if (options_.rules.empty()) return 0.0;
  const Counts c = window(s, options_.rules.front().short_window);
  return c.requests > 0 ? c.bad / c.requests / s.budget : 0.0;
}

std::optional<IncidentChange> IncidentWatch::resolve(const std::string& name, Service& s) {
  Incident& open = *s.open;
  const IncidentSample& sample = s.samples.back();
  open.requests += sample.requests;
  open.failed += sample.failed;
  open.slow += sample.slow;
  open.peak_burn_rate = std::max(open.peak_burn_rate, first_burn(s));
  if (firing(s)) return std::nullopt;
  open.resolved_at = sample.at;
  const double bad = open.failed + open.slow;
  IncidentChange change{false, open,
                        "incident " + std::to_string(open.id) + " on " + name + " resolved after " +
                            spoken(sample.at - open.opened_at) + ": " +
                            printed("%.0f of %.0f requests", bad, open.requests) +
                            " failed or missed the SLO (" +
                            percent(open.requests > 0 ? bad / open.requests : 0) + "), at most " +
                            printed("%.1fx", open.peak_burn_rate) + " the error budget's rate"};
  resolved_.push_front(std::move(open));
  while (resolved_.size() > options_.max_kept) resolved_.pop_back();
  s.open.reset();
  return change;
}

std::optional<IncidentChange> IncidentWatch::forget(const std::string& name) {
  slowdowns_.erase(name);  // no cause of anything now
  const auto found = services_.find(name);
  if (found == services_.end()) return std::nullopt;
  std::optional<IncidentChange> change;
  if (found->second.open) {
    Incident& open = *found->second.open;
    open.resolved_at = std::max(latest_.value_or(open.opened_at), open.opened_at);
    const double bad = open.failed + open.slow;
    change = IncidentChange{false, open,
                            "incident " + std::to_string(open.id) + " on " + name +
                                " closed: the service was removed from the configuration; " +
                                printed("%.0f of %.0f requests", bad, open.requests) +
                                " failed or missed the SLO while it was open"};
    resolved_.push_front(std::move(open));
    while (resolved_.size() > options_.max_kept) resolved_.pop_back();
  }
  services_.erase(found);
  return change;
}

IncidentChange IncidentWatch::open(const std::string& name, Service& s, const BurnRule& rule,
                                   double burn_rate) {
  const IncidentSample& sample = s.samples.back();
  Incident incident;
  incident.id = next_id_++;
  incident.service = name;
  incident.opened_at = sample.at;
  incident.rule = rule_name(rule);
  incident.burn_rate = burn_rate;
  incident.peak_burn_rate = std::max(first_burn(s), burn_rate);
  const Clock::TimePoint from = sample.at - rule.short_window;
  for (auto it = s.samples.rbegin(); it != s.samples.rend() && it->at > from; ++it) {
    incident.requests += it->requests;
    incident.failed += it->failed;
    incident.slow += it->slow;
  }
  incident.cause = cause(name, s, sample);
  const double bad = incident.failed + incident.slow;
  // Over the short window, or since the watch began when that is later (its first sample's
  // interval began before it: how long before is not known).
  const bool whole = sample.at - *s.first_at >= rule.short_window;
  incident.summary =
      percent(bad / incident.requests) + " of its requests failed or missed the SLO " +
      (whole ? "over the last " + spoken(rule.short_window) : std::string("since watching began")) +
      " (" + percent(incident.failed / incident.requests) + " failed, " +
      percent(incident.slow / incident.requests) +
      " slow): " + printed("%.1fx", incident.burn_rate) + " the rate its error budget (" +
      percent(s.budget) + ") allows; likely cause: " +
      (incident.cause.empty()
           ? "none seen (no recent change, no callee incident, load within its forecast)"
           : incident.cause);
  s.open = incident;
  return {true, incident,
          "incident " + std::to_string(incident.id) + " on " + name + ": " + incident.summary};
}

std::vector<IncidentChange> IncidentWatch::observe(const std::string& name,
                                                   const IncidentSample& sample) {
  return observe({{name, sample}});
}

std::vector<IncidentChange> IncidentWatch::observe(
    const std::vector<std::pair<std::string, IncidentSample>>& samples) {
  std::vector<IncidentChange> changes;
  std::vector<std::string> added;
  for (const auto& [name, sample] : samples) {
    const auto found = services_.find(name);
    if (found != services_.end() && add_sample(found->second, sample)) added.push_back(name);
  }
  // Resolutions first, then openings.
  std::vector<std::pair<std::string, std::pair<const BurnRule*, double>>> opening;
  for (const std::string& name : added) {
    Service& s = services_.at(name);
    if (s.open) {
      if (auto change = resolve(name, s)) changes.push_back(std::move(*change));
    } else if (const auto fires = firing(s)) {
      opening.emplace_back(name, *fires);
    }
  }
  // A callee's before its callers', so that a caller opening at the same look names it.
  while (!opening.empty()) {
    auto next = std::find_if(opening.begin(), opening.end(), [&](const auto& candidate) {
      return std::none_of(opening.begin(), opening.end(), [&](const auto& other) {
        return other.first != candidate.first &&
               std::find(calls_.begin(), calls_.end(), std::pair{candidate.first, other.first}) !=
                   calls_.end();
      });
    });
    if (next == opening.end()) {
      // Callers and callees in a cycle: first one that another opening calls (not a caller of
      // them from outside), in the order given.
      next = std::find_if(opening.begin(), opening.end(), [&](const auto& candidate) {
        return std::any_of(opening.begin(), opening.end(), [&](const auto& other) {
          return other.first != candidate.first &&
                 std::find(calls_.begin(), calls_.end(), std::pair{other.first, candidate.first}) !=
                     calls_.end();
        });
      });
    }
    changes.push_back(
        open(next->first, services_.at(next->first), *next->second.first, next->second.second));
    opening.erase(next);
  }
  return changes;
}

std::vector<Incident> IncidentWatch::incidents() const {
  std::vector<Incident> out;
  for (const auto& [name, s] : services_) {
    if (s.open) out.push_back(*s.open);
  }
  std::sort(out.begin(), out.end(),
            [](const Incident& a, const Incident& b) { return a.id > b.id; });
  out.insert(out.end(), resolved_.begin(), resolved_.end());
  return out;
}

std::optional<Incident> IncidentWatch::open_incident(const std::string& service) const {
  const auto it = services_.find(service);
  if (it == services_.end()) return std::nullopt;
  return it->second.open;
}

namespace {

using nlohmann::json;
using state_json::amount;
using state_json::BadField;

// The saved counts: a minute's samples as one, counted at the minute's last sample.
constexpr Clock::Duration kSavedCountsEvery = std::chrono::minutes(1);

}  // namespace

nlohmann::json IncidentWatch::to_json(Clock::TimePoint now) const {
  auto incident = [now](const Incident& i) {
    return json{{"id", i.id},
                {"service", i.service},
                {"opened_at_age_ns", state_json::age_ns(now, i.opened_at)},
                {"resolved_at_age_ns", state_json::optional_age(now, i.resolved_at)},
                {"rule", i.rule},
                {"burn_rate", i.burn_rate},
                {"peak_burn_rate", i.peak_burn_rate},
                {"requests", i.requests},
                {"failed", i.failed},
                {"slow", i.slow},
                {"cause", i.cause},
                {"summary", i.summary}};
  };
  json services = json::array();
  for (const auto& [name, s] : services_) {
    json counts = json::array();
    std::optional<Clock::TimePoint> bucket_from;
    for (const IncidentSample& x : s.samples) {
      if (bucket_from && x.at - *bucket_from < kSavedCountsEvery) {
        json& last = counts.back();
        last[0] = state_json::age_ns(now, x.at);
        last[1] = last[1].get<double>() + x.requests;
        last[2] = last[2].get<double>() + x.failed;
        last[3] = last[3].get<double>() + x.slow;
        continue;
      }
      bucket_from = x.at;
      counts.push_back({state_json::age_ns(now, x.at), x.requests, x.failed, x.slow});
    }
    // What was noted of it (a rollout, a crash, a scale-in, ...) within the cause lookback: a
    // restart soon after still names it as a likely cause.
    json events = json::array();
    for (const Noted& e : s.events) {
      events.push_back({state_json::optional_age(now, e.at), e.kind, e.message});
    }
    services.push_back({{"name", name},
                        {"first_at_age_ns", state_json::optional_age(now, s.first_at)},
                        {"counts", std::move(counts)},
                        {"events", std::move(events)},
                        {"open", s.open ? incident(*s.open) : json()}});
  }
  json resolved = json::array();
  for (const Incident& i : resolved_) resolved.push_back(incident(i));
  return {
      {"next_id", next_id_}, {"services", std::move(services)}, {"resolved", std::move(resolved)}};
}

Result<void> IncidentWatch::from_json(const nlohmann::json& state, Clock::TimePoint now) {
  std::map<std::string, Service> services = services_;
  std::deque<Incident> resolved;
  std::uint64_t next_id = 1;
  // add_sample() moves it; events noted from now on take the next live sample's time, not the
  // last one before the stop.
  const std::optional<Clock::TimePoint> latest_before = latest_;
  std::set<std::string> seen;
  try {
    next_id = state.at("next_id").get<std::uint64_t>();
    if (next_id < 1) throw BadField{"next_id", "not >= 1"};
    auto incident = [&](const json& j, const std::string& field) {
      Incident i;
      i.id = j.at("id").get<std::uint64_t>();
      if (i.id < 1 || i.id >= next_id) throw BadField{field + ".id", "not in [1, next_id)"};
      i.service = j.at("service").get<std::string>();
      i.opened_at = state_json::at_past_age(now, j.at("opened_at_age_ns"), field + ".opened_at");
      i.resolved_at =
          state_json::optional_at_past_age(now, j.at("resolved_at_age_ns"), field + ".resolved_at");
      i.rule = j.at("rule").get<std::string>();
      i.burn_rate = amount(j.at("burn_rate"), field + ".burn_rate");
      i.peak_burn_rate = amount(j.at("peak_burn_rate"), field + ".peak_burn_rate");
      i.requests = amount(j.at("requests"), field + ".requests");
      i.failed = amount(j.at("failed"), field + ".failed");
      i.slow = amount(j.at("slow"), field + ".slow");
      i.cause = j.at("cause").get<std::string>();
      i.summary = j.at("summary").get<std::string>();
      return i;
    };
    // Open incidents of services removed from the configuration while the platform was stopped:
    // closed at their service's last saved count, and kept with the resolved ones (as forget()
    // closes one removed while running).
    std::vector<Incident> closed;
    for (const json& j : state.at("services")) {
      const auto name = j.at("name").get<std::string>();
      const auto found = services.find(name);
      const std::string field = "services[" + name + "]";
      if (!seen.insert(name).second) throw BadField{field, "listed twice"};
      if (found == services.end()) {  // not watched now
        if (j.at("open").is_null()) continue;
        Incident i = incident(j.at("open"), field + ".open");
        if (i.service != name || i.resolved_at) {
          throw BadField{field + ".open", "not an open incident of " + name};
        }
        i.resolved_at = i.opened_at;
        if (const json& counts = j.at("counts"); !counts.empty()) {
          i.resolved_at = std::max(
              i.opened_at, state_json::at_past_age(now, counts.back().at(0), field + ".counts"));
        }
        closed.push_back(std::move(i));
        continue;
      }
      Service s;
      s.budget = found->second.budget;
      for (const json& c : j.at("counts")) {
        IncidentSample x;
        x.at = state_json::at_past_age(now, c.at(0), field + ".counts");
        x.requests = amount(c.at(1), field + ".counts");
        x.failed = amount(c.at(2), field + ".counts");
        x.slow = amount(c.at(3), field + ".counts");
        if (!add_sample(s, x)) throw BadField{field + ".counts", "not in increasing time"};
      }
      if (auto first =
              state_json::optional_at_past_age(now, j.at("first_at_age_ns"), field + ".first_at")) {
        s.first_at = first;
      }
      // The saved events (a state without them: none), then those noted before the restore.
      if (const auto saved = j.find("events"); saved != j.end()) {
        for (const json& e : *saved) {
          Noted n{state_json::optional_at_past_age(now, e.at(0), field + ".events"),
                  e.at(1).get<std::string>(), e.at(2).get<std::string>()};
          if (!s.events.empty() && n.at && s.events.back().at && *n.at < *s.events.back().at) {
            throw BadField{field + ".events", "not in increasing time"};
          }
          s.events.push_back(std::move(n));
        }
      }
      for (const Noted& e : found->second.events) s.events.push_back(e);
      if (!j.at("open").is_null()) {
        Incident i = incident(j.at("open"), field + ".open");
        if (i.service != name || i.resolved_at) {
          throw BadField{field + ".open", "not an open incident of " + name};
        }
        s.open = std::move(i);
      }
      found->second = std::move(s);
    }
    for (const json& j : state.at("resolved")) {
      Incident i = incident(j, "resolved[" + std::to_string(resolved.size()) + "]");
      if (!i.resolved_at) throw BadField{"resolved", "an incident without its resolution"};
      resolved.push_back(std::move(i));
      if (resolved.size() >= options_.max_kept) break;
    }
    // Newest first, as resolved_ is kept.
    for (Incident& i : closed) {
      const auto at = std::find_if(resolved.begin(), resolved.end(), [&](const Incident& r) {
        return r.resolved_at && *r.resolved_at < *i.resolved_at;
      });
      resolved.insert(at, std::move(i));
    }
    while (resolved.size() > options_.max_kept) resolved.pop_back();
  } catch (const BadField& bad) {
    latest_ = latest_before;
    return make_error(ErrorCode::kInvalidArgument, "incident state: " + bad.field + ": " + bad.why);
  } catch (const json::exception& e) {
    latest_ = latest_before;
    return make_error(ErrorCode::kInvalidArgument, std::string("incident state: ") + e.what());
  }
  services_ = std::move(services);
  resolved_ = std::move(resolved);
  next_id_ = next_id;
  latest_ = latest_before;
  return {};
}

}  // namespace prescale::healing
