#include "healing/healer.h"

#include <algorithm>

namespace prescale::healing {

namespace {

// "10 min", "90 s", "250 ms": the window as the healer's message says it.
std::string spoken(Clock::Duration d) {
  using namespace std::chrono;
  if (d % minutes(1) == Clock::Duration::zero()) {
    return std::to_string(duration_cast<minutes>(d).count()) + " min";
  }
  if (d % seconds(1) == Clock::Duration::zero()) {
    return std::to_string(duration_cast<seconds>(d).count()) + " s";
  }
  return std::to_string(duration_cast<milliseconds>(d).count()) + " ms";
}

}  // namespace

void Healer::ejected(const std::string& service, const std::string& replica, Clock::TimePoint now) {
  Record& r = replicas_[replica];
  r.service = service;
  r.ejections.push_back(now);
  expire(r, now);
}

void Healer::forget(const std::string& replica) { replicas_.erase(replica); }

void Healer::expire(Record& r, Clock::TimePoint now) const {
  std::erase_if(r.ejections, [&](Clock::TimePoint t) { return now - t > options_.window; });
}

std::vector<Remedy> Healer::remedies(Clock::TimePoint now) {
  std::map<std::string, int> repeat_offenders;  // per service: replicas ejected more than once
  for (auto& [id, r] : replicas_) {
    expire(r, now);
    if (r.ejections.size() > 1) ++repeat_offenders[r.service];
  }
  std::vector<Remedy> out;
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    const Record& r = it->second;
    const auto last = last_remedy_.find(r.service);
    const int others = repeat_offenders[r.service] - (r.ejections.size() > 1 ? 1 : 0);
    const bool due = static_cast<int>(r.ejections.size()) >= options_.ejections && others == 0 &&
                     (last == last_remedy_.end() || now - last->second >= options_.min_interval);
    if (!due) {
      ++it;
      continue;
    }
    const std::size_t n = r.ejections.size();
    out.push_back({r.service, it->first,
                   "ejected " + (n == 1 ? std::string("once") : std::to_string(n) + " times") +
                       " in " + spoken(options_.window) +
                       " by the gateway's outlier detection, its service's other replicas not"});
    last_remedy_[r.service] = now;
    it = replicas_.erase(it);
  }
  return out;
}

}  // namespace prescale::healing
