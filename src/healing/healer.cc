#include "healing/healer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/byte_size.h"

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
  if (r.breaker_counted && now - *r.breaker_counted < kBreakerCountEvery) return;
  r.last_ejection = now;
  r.ejections.push_back(now);
  expire(r, now);
}

void Healer::breaker_opened(const std::string& service, const std::string& replica,
                            Clock::TimePoint now) {
  Record& r = replicas_[replica];
  r.service = service;
  auto recent = [&](const std::optional<Clock::TimePoint>& at) {
    return at && now - *at < kBreakerCountEvery;
  };
  if (recent(r.breaker_counted) || recent(r.last_ejection)) return;
  r.breaker_counted = now;
  r.ejections.push_back(now);
  expire(r, now);
}

void Healer::memory(const std::string& service, const std::string& replica, Clock::TimePoint now,
                    std::uint64_t bytes, std::uint64_t limit, Clock::Duration lead) {
  Record& r = replicas_[replica];
  r.service = service;
  if (!r.memory) r.memory.emplace(options_.memory);
  r.memory->add(now, bytes);
  r.memory_limit = limit;
  r.lead = lead;
}

void Healer::forget(const std::string& replica) { replicas_.erase(replica); }

std::optional<Remedy> Healer::memory_remedy(const std::string& replica, const Record& r) const {
  if (!r.memory || r.memory_limit == 0) return std::nullopt;
  const std::optional<MemoryTrend::Projection> p = r.memory->project(r.memory_limit);
  if (!p || p->to_limit > r.lead) return std::nullopt;
  const double seconds = std::chrono::duration<double>(p->to_limit).count();
  char growth[64];
  std::snprintf(growth, sizeof growth, "%.2f MiB/s", p->bytes_per_second / 0x1p20);
  return Remedy{r.service, replica,
                "memory " + format_mebibytes(r.memory->last()) + " of its " +
                    format_byte_size({r.memory_limit}) + " limit, growing " + growth +
                    ": at the limit in about " + std::to_string(std::lround(seconds)) +
                    " s (services[].memory_limit)",
                RemedyKind::kMemory};
}

void Healer::expire(Record& r, Clock::TimePoint now) const {
  std::erase_if(r.ejections, [&](Clock::TimePoint t) { return now - t > options_.window; });
}

std::vector<Remedy> Healer::remedies(Clock::TimePoint now) {
  std::map<std::string, int> repeat_offenders;  // per service: replicas ejected more than once
  for (auto& [id, r] : replicas_) {
    expire(r, now);
    if (!r.replaced && r.ejections.size() > 1) ++repeat_offenders[r.service];
  }
  std::vector<Remedy> out;
  for (auto& [id, r] : replicas_) {
    if (r.replaced) continue;
    if (std::optional<Remedy> m = memory_remedy(id, r)) {
      out.push_back(std::move(*m));
      r.replaced = true;
    }
  }
  for (auto& [id, r] : replicas_) {
    if (r.replaced) continue;
    const auto last = last_remedy_.find(r.service);
    const int others = repeat_offenders[r.service] - (r.ejections.size() > 1 ? 1 : 0);
    const bool due = static_cast<int>(r.ejections.size()) >= options_.ejections && others == 0 &&
                     (last == last_remedy_.end() || now - last->second >= options_.min_interval);
    if (!due) continue;
    const std::size_t n = r.ejections.size();
    out.push_back({r.service, id,
                   "ejected " + (n == 1 ? std::string("once") : std::to_string(n) + " times") +
                       " in " + spoken(options_.window) +
                       " by the gateway, its service's other replicas not"});
    last_remedy_[r.service] = now;
    // Not replaced again, and its ejections count no more, until retry() (they are kept for it).
    r.replaced = true;
  }
  return out;
}

}  // namespace prescale::healing
