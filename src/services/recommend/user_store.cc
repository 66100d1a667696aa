#include "services/recommend/user_store.h"

#include <mutex>

namespace prescale::recommend {

UserStore::UserStore(size_t max_users, size_t max_events_per_user)
    : max_users_(max_users),
      max_events_per_user_(max_events_per_user),
      shards_(std::make_unique<Shard[]>(kShards)) {}

UserStore::Shard& UserStore::shard(int64_t user) {
  return shards_[std::hash<int64_t>{}(user) % kShards];
}
const UserStore::Shard& UserStore::shard(int64_t user) const {
  return shards_[std::hash<int64_t>{}(user) % kShards];
}

Result<uint64_t> UserStore::add(int64_t user, std::span<const PostedEvent> events) {
  Shard& s = shard(user);
  std::unique_lock lock(s.mu);
  auto it = s.users.find(user);
  if (it == s.users.end()) {
    // Reserve a place first, so concurrent adds to other shards cannot overshoot the limit.
    if (count_.fetch_add(1, std::memory_order_relaxed) >= max_users_) {
      count_.fetch_sub(1, std::memory_order_relaxed);
      return make_error(ErrorCode::kOutOfRange,
                        "users: the service keeps recent interactions of at most " +
                            std::to_string(max_users_) + " users");
    }
    it = s.users.emplace(user, UserEvents{}).first;
  }
  UserEvents& u = it->second;
  u.events.insert(u.events.end(), events.begin(), events.end());
  if (u.events.size() > max_events_per_user_) {
    u.events.erase(
        u.events.begin(),
        u.events.begin() + static_cast<std::ptrdiff_t>(u.events.size() - max_events_per_user_));
  }
  u.revision = next_revision();
  return u.revision;
}

std::optional<UserStore::Snapshot> UserStore::get(int64_t user) const {
  const Shard& s = shard(user);
  std::shared_lock lock(s.mu);
  auto it = s.users.find(user);
  if (it == s.users.end()) return std::nullopt;
  return Snapshot{it->second.events, it->second.revision, it->second.factors};
}

void UserStore::set_factors(int64_t user, std::shared_ptr<const CachedFactors> factors) {
  Shard& s = shard(user);
  std::unique_lock lock(s.mu);
  auto it = s.users.find(user);
  if (it == s.users.end() || it->second.revision != factors->revision) return;
  it->second.factors = std::move(factors);
}

void UserStore::forget_through(int64_t timestamp) {
  for (size_t i = 0; i < kShards; ++i) {
    Shard& s = shards_[i];
    std::unique_lock lock(s.mu);
    for (auto it = s.users.begin(); it != s.users.end();) {
      UserEvents& u = it->second;
      const size_t before = u.events.size();
      std::erase_if(u.events, [&](const PostedEvent& e) { return e.timestamp <= timestamp; });
      if (u.events.empty()) {
        it = s.users.erase(it);
        count_.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      if (u.events.size() != before) {
        u.revision = next_revision();
        u.factors.reset();
      }
      ++it;
    }
  }
}

uint64_t UserStore::next_revision() {
  return last_revision_.fetch_add(1, std::memory_order_relaxed) + 1;
}

size_t UserStore::users() const { return count_.load(std::memory_order_relaxed); }

}  // namespace prescale::recommend
