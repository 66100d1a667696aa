// IncidentWatch: a service's incidents — its SLO burning faster than its error budget allows —
// and what they likely come from. The remedies (restarts, replacements, rollbacks, the reactive
// floor) act on replicas and releases by themselves; an incident is what an operator must hear
// of: requests of a service failing or missing their latency SLO at a rate that spends a month's
// error budget in days, whatever the remedies did.
//
// An incident opens by the Google SRE workbook's multiwindow, multi-burn-rate alerts ("Alerting
// on SLOs"): a rule (long window, short window, burn rate) fires when the share of a service's
// requests that failed or were slower than its SLO, over both windows, is at least the burn rate
// times its error budget (`slo.error_budget`). The defaults are the workbook's two paging rules
// for a 30-day objective: 14.4× over an hour and its last 5 minutes (2 % of the month's budget
// spent in an hour), 6× over six hours and its last 30 minutes (5 % in six hours). The long
// window keeps a blip from paging; the short one makes the alert stop soon after the burning
// does. A rule also needs `min_bad` bad requests in its short window, so a quiet service's one
// slow request in five minutes is no incident. The incident is resolved when no rule fires.
//
// At its opening the watch names a likely cause from what it was told: an open incident of a
// service it calls (the learned call graph: the trouble is downstream), a recent event of the
// service itself (a rollout, a crash, an ejection, a replacement, a scale-in: what changed), an
// open slowdown warning of the service or of a service it calls (each request takes longer than
// it used to), too few ready replicas for the plan, or more load than the forecast's P99 (demand
// nobody saw coming).
//
// Time is the caller's (each sample's `at`), so tests drive it with a manual clock.
// Thread safety: one thread calls everything.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "healing/slowdown_watch.h"

namespace prescale::healing {

struct BurnRule {
  Clock::Duration long_window;
  Clock::Duration short_window;
  double burn_rate = 1;  // multiples of the rate that spends the error budget exactly
};

struct IncidentWatchOptions {
  std::vector<BurnRule> rules{
      {std::chrono::hours(1), std::chrono::minutes(5), 14.4},
      {std::chrono::hours(6), std::chrono::minutes(30), 6},
  };
  double min_bad = 10;  // bad requests a rule's short window needs to fire
  // Events of a service this long before an incident opens may be its cause.
  Clock::Duration cause_lookback = std::chrono::minutes(10);
  size_t max_kept = 100;  // resolved incidents kept (the newest)
};

// What a service's callers experienced over an interval ending `at`.
struct IncidentSample {
  Clock::TimePoint at;
  double requests = 0;  // answered
  double failed = 0;    // of them: failed (an error, no answer, refused)
  double slow = 0;      // of them: answered, but slower than the SLO's latency
  // For the cause; NaN or -1 when unknown.
  double load_rps = NAN;
  double forecast_p99_rps = NAN;  // what the forecast's P99 said for now
  int planned_replicas = -1;
  int ready_replicas = -1;
};

struct Incident {
  std::uint64_t id = 0;  // 1, 2, ... in the order they opened
  std::string service;
  Clock::TimePoint opened_at;
  std::optional<Clock::TimePoint> resolved_at;
  std::string rule;           // the rule that opened it: "14.4x over 1h and 5m"
  double burn_rate = 0;       // the short window's at the opening
  double peak_burn_rate =
      0;  // the highest of burn_rate and, since, the first rule's short window's
  double requests = 0;        // counted while open, the opening rule's short window included
  double failed = 0;
  double slow = 0;
  std::string cause;    // the likely cause, "" when none was seen
  std::string summary;  // what was said at the opening
};

struct IncidentChange {
  bool opened = true;  // false: resolved
  Incident incident;
  std::string message;  // a line for the log and the timeline
};

class IncidentWatch {
 public:
  explicit IncidentWatch(IncidentWatchOptions options = {});

  // A service is watched once it has an error budget in (0, 1).
  void set_error_budget(const std::string& service, double budget);
  // A service no longer watched (removed from the configuration): its open incident, if any, is
  // closed at the latest sample's time and kept among the resolved (the change says so); what
  // was counted of it goes.
  std::optional<IncidentChange> forget(const std::string& service);
  // The learned call graph: (caller, callee) pairs.
  void set_calls(std::vector<std::pair<std::string, std::string>> calls);
  // Something that happened to `service` ("rollout", "crash", "eject", "heal", "scale", ...), at
  // the time of the latest sample observed (of any service); before any, at the service's first.
  void note_event(const std::string& service, const std::string& kind, const std::string& message);
  // A service's open slowdown warning (SlowdownWatch), or nullopt once it clears: a likely cause
  // of an incident of the service, or of a caller's.
  void set_slowdown(const std::string& service, std::optional<SlowdownWarning> warning);
  // A scaling event: only a scale-in (fewer replicas) can be a cause.
  void note_scale(const std::string& service, int from_replicas, int to_replicas,
                  const std::string& reason);

  // The next interval of each service (a look at all of them): the incidents they open or
  // resolve. A caller and its callee opening at the same look open callee first, so that the
  // caller's cause names it. A sample not after the service's last one, or of a service with no
  // error budget, changes nothing.
  std::vector<IncidentChange> observe(
      const std::vector<std::pair<std::string, IncidentSample>>& samples);
  // The same for one service.
  std::vector<IncidentChange> observe(const std::string& service, const IncidentSample& sample);

  // The open incidents, then the resolved ones kept; newest first within each.
  std::vector<Incident> incidents() const;
  std::optional<Incident> open_incident(const std::string& service) const;
  // How many have opened.
  std::uint64_t opened() const { return next_id_ - 1; }

  // What was counted and told, for a restart (docs/state.md): each watched service's requests
  // over the longest window, to the minute (a saved minute's requests count as of its end), and
  // its open incident; the resolved incidents kept and the next incident's number. Times are ages
  // before `now`, and from_json() places them before its own `now`: the windows go on where they
  // stopped, so an incident open at the stop stays open until its rules stop firing, and one
  // burning across a restart opens as it would have. from_json() applies to the services with an
  // error budget (set_error_budget() first; others are not restored) and replaces their counts;
  // the open incident of a service not watched now (removed while stopped) is closed at its
  // service's last saved count and kept among the resolved, as forget() does; the events noted
  // for causes are not kept. A state with a count that is not a finite number
  // >= 0, or an incident numbered at or after the next, is refused whole (kInvalidArgument,
  // naming the field), the watch unchanged.
  nlohmann::json to_json(Clock::TimePoint now) const;
  Result<void> from_json(const nlohmann::json& state, Clock::TimePoint now);

 private:
  struct Counts {
    double requests = 0;
    double bad = 0;
  };
  struct Noted {
    std::optional<Clock::TimePoint> at;  // nullopt: before any sample
    std::string kind;
    std::string message;
  };
  struct Service {
    double budget = 0;
    std::deque<IncidentSample> samples;        // within the longest window, oldest first
    // Running totals of requests and bad ones through each sample, and through the last one
    // dropped from `samples`: a window's counts are two differences (a run of weeks of samples
    // costs a binary search each, not a sum over six hours of them).
    std::deque<Counts> through;
    Counts before;
    std::optional<Clock::TimePoint> first_at;  // the first sample's time
    std::optional<Incident> open;
    std::deque<Noted> events;  // within cause_lookback, oldest first
  };

  // Adds a sample to `s` (false: not after its last one).
  bool add_sample(Service& s, const IncidentSample& sample);
  Counts window(const Service& s, Clock::Duration length) const;
  double first_burn(const Service& s) const;  // the first rule's short window's burn rate
  // With the service's latest sample: its open incident goes on (nullopt) or is resolved;
  // or one opens by `rule`.
  std::optional<IncidentChange> resolve(const std::string& name, Service& s);
  IncidentChange open(const std::string& name, Service& s, const BurnRule& rule, double burn_rate);
  // The first rule that fires, with its short window's burn rate.
  std::optional<std::pair<const BurnRule*, double>> firing(const Service& s) const;
  std::string cause(const std::string& name, const Service& s, const IncidentSample& sample) const;

  IncidentWatchOptions options_;
  Clock::Duration longest_{0};
  std::map<std::string, Service> services_;
  std::vector<std::pair<std::string, std::string>> calls_;
  std::map<std::string, SlowdownWarning> slowdowns_;  // the open ones, by service
  std::deque<Incident> resolved_;  // newest first
  std::uint64_t next_id_ = 1;
  std::optional<Clock::TimePoint> latest_;  // the latest sample's time, of any service
};

}  // namespace prescale::healing
