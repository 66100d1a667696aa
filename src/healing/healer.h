// Healer: remedies for replicas that keep failing while they run. The gateway's outlier detection
// takes a replica that fails in a row out of service for a while (30 s, then longer each time),
// then tries it again (and its failure-rate breaker takes one that fails too often out of service,
// counted as an ejection once per 30 s at most: breaker_opened()); a replica that is broken for
// good — a lost connection it never re-opens, a corrupted cache, a leak — goes on being ejected,
// failing requests each time it is back and holding a place among the replicas the policy asked
// for. The healer replaces it: a new replica starts, and the old one leaves the gateway and drains
// at once (World::restart).
//
// A replica is replaced when the gateway has ejected it `ejections` times within `window` and no
// other replica of its service has been ejected more than once in that window: when several fail
// alike the cause is shared (a dependency down, a bad release), and new replicas would fail the
// same way. At most one replacement per service per `min_interval`, so a fault a replacement does
// not cure costs one restart per interval, not a storm.
//
// A replica whose resident memory grows steadily toward its service's memory limit
// (MemoryTrend) is replaced too, before the limit kills it, once the growth would reach the limit
// within `lead` — the time its replacement needs to be ready and it to drain — and the new one
// starts while it still serves (it drains when the new one is ready). Every replica of a
// service leaking alike is still each replaced: each would otherwise be killed. These
// replacements wait for no `min_interval`.
//
// Time is the caller's (`now`), so tests drive it with a manual clock.
// Thread safety: one thread calls everything.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "healing/memory_trend.h"

namespace prescale::healing {

struct HealerOptions {
  int ejections = 3;
  Clock::Duration window = std::chrono::minutes(10);
  Clock::Duration min_interval = std::chrono::minutes(5);
  MemoryTrendOptions memory;
};

enum class RemedyKind {
  kEjected,  // failing: the old replica drains at once
  kMemory,   // serving, headed for its memory limit: it drains once the new one is ready
};

struct Remedy {
  std::string service;
  std::string replica;
  std::string reason;  // "ejected 3 times in 10 min by the gateway, its service's other ..."
  RemedyKind kind = RemedyKind::kEjected;
};

class Healer {
 public:
  explicit Healer(HealerOptions options = {}) : options_(options) {}

  // A breaker opening counts as an ejection at most this often per replica: the outlier
  // detection's base ejection time at its defaults. A breaker reopens every few seconds while its
  // trials fail, and a burst of overload, which opens breakers too, would count as many ejections.
  static constexpr Clock::Duration kBreakerCountEvery = std::chrono::seconds(30);

  // The gateway ejected `replica` of `service` at `now` (its outlier detection): an ejection,
  // unless its breaker's opening was counted within kBreakerCountEvery (the same failure: in a
  // cluster one gateway's breaker of a pod may open while another gateway ejects it).
  void ejected(const std::string& service, const std::string& replica, Clock::TimePoint now);
  // A gateway's failure-rate breaker of `replica` of `service` opened at `now`: an ejection,
  // unless one was counted within kBreakerCountEvery (its breaker's, or an outlier ejection).
  void breaker_opened(const std::string& service, const std::string& replica, Clock::TimePoint now);
  // A look at `replica`'s resident memory: `bytes` at `now`, with its service's memory `limit`
  // (0: none) and the `lead` a replacement needs (to start, be ready, and let it drain).
  void memory(const std::string& service, const std::string& replica, Clock::TimePoint now,
              std::uint64_t bytes, std::uint64_t limit, Clock::Duration lead);
  // A replica that has left (scaled down, replaced, crashed and restarting as a new process) is
  // forgotten: a new process starts with a clean record.
  void forget(const std::string& replica);
  // The replacements due at `now`, each recorded (the service's interval starts, and the replica
  // is given none again until forgotten or retry()).
  std::vector<Remedy> remedies(Clock::TimePoint now);
  // A remedy that could not be applied (its replica was already leaving): it does not hold back
  // the service's next one. (Its previous replacement, if any, is older than min_interval.)
  void failed(const Remedy& remedy) {
    if (remedy.kind == RemedyKind::kEjected) last_remedy_.erase(remedy.service);
  }
  // A remedy refused for now (in a cluster: an eviction its PodDisruptionBudget refuses while
  // another pod of the service is not ready): it is due again at the next remedies() that finds
  // it due, with what was learned of the replica kept.
  void retry(const Remedy& remedy) {
    failed(remedy);
    if (auto it = replicas_.find(remedy.replica); it != replicas_.end())
      it->second.replaced = false;
  }

 private:
  struct Record {
    std::string service;
    std::vector<Clock::TimePoint> ejections;  // within the window, oldest first
    std::optional<Clock::TimePoint> last_ejection;    // the last outlier ejection counted
    std::optional<Clock::TimePoint> breaker_counted;  // its breaker's last opening counted
    std::optional<MemoryTrend> memory;        // once looked at
    std::uint64_t memory_limit = 0;
    Clock::Duration lead{0};
    bool replaced = false;  // a remedy was given: none again until forgotten or retry()
  };
  std::optional<Remedy> memory_remedy(const std::string& replica, const Record& r) const;
  void expire(Record& r, Clock::TimePoint now) const;

  HealerOptions options_;
  std::map<std::string, Record> replicas_;               // by replica id
  std::map<std::string, Clock::TimePoint> last_remedy_;  // by service
};

}  // namespace prescale::healing
