// A per-thread copy of a published std::shared_ptr<const T>, for the data path: taken again only
// when the publisher's version moved, so a request costs one atomic read where loading an
// std::atomic<std::shared_ptr> takes a lock (libstdc++).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace prescale::gateway::internal {

// The value `owner` publishes: `load()` the first time this thread asks and whenever `version`
// moved since. Versions come from a process-wide counter, never reused, so a new owner at the
// address of one destroyed never matches the old one's copy.
template <typename T, typename Load>
const T& thread_cached(const void* owner, const std::atomic<std::uint64_t>& version, Load load) {
  struct Cached {
    const void* owner;
    std::uint64_t version;
    std::shared_ptr<const T> value;
  };
  thread_local std::vector<Cached> cache;
  const std::uint64_t now = version.load(std::memory_order_acquire);
  for (Cached& c : cache) {
    if (c.owner != owner) continue;
    if (c.version != now) {
      c.value = load();
      c.version = now;
    }
    return *c.value;
  }
  cache.push_back(Cached{owner, now, load()});
  return *cache.back().value;
}

}  // namespace prescale::gateway::internal
