// The interactions users made since the served model was trained (posted to the service), and
// for ALS each such user's folded-in factors, so that the next recommendation reflects them.
// Events are kept as posted (up to `max_events_per_user` per user, the oldest dropped first);
// forget_through() drops those a newly loaded model was trained on.
//
// Thread safety: all methods may be called from any thread. Users are spread over 64 shards,
// each under its own reader-writer lock, so reads of different users never wait for each other
// and a write holds one shard for a few microseconds.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/result.h"

namespace prescale::recommend {

struct PostedEvent {
  int64_t item = 0;
  float weight = 1;
  int64_t timestamp = 0;  // Unix seconds
};

// A user's folded-in factors for one served model (identified by the service's generation).
struct CachedFactors {
  uint64_t model_generation = 0;
  uint64_t revision = 0;  // the user's revision they were computed from
  std::vector<float> factors;
};

class UserStore {
 public:
  explicit UserStore(size_t max_users = 1'000'000, size_t max_events_per_user = 1000);

  struct Snapshot {
    std::vector<PostedEvent> events;
    // Grows with every change to the user's events and is never given out twice by the store,
    // even to a user forgotten and posting again, so (user, revision) names one history; 0 is
    // never a revision (callers use it for the training history alone).
    uint64_t revision = 0;
    std::shared_ptr<const CachedFactors> factors;  // may be null or stale
  };

  // Appends events for a user; returns the user's new revision. kOutOfRange when the user is
  // new and the store holds max_users users already.
  Result<uint64_t> add(int64_t user, std::span<const PostedEvent> events);
  // The user's events; nullopt when there are none.
  std::optional<Snapshot> get(int64_t user) const;
  // Caches factors computed from the user's revision `factors->revision` (ignored when the
  // user has changed since).
  void set_factors(int64_t user, std::shared_ptr<const CachedFactors> factors);
  // Drops events at or before `timestamp` (Unix seconds), and users left with none.
  void forget_through(int64_t timestamp);

  size_t users() const;

 private:
  struct UserEvents {
    std::vector<PostedEvent> events;
    uint64_t revision = 0;
    std::shared_ptr<const CachedFactors> factors;
  };
  struct Shard {
    mutable std::shared_mutex mu;
    std::unordered_map<int64_t, UserEvents> users;
  };
  static constexpr size_t kShards = 64;
  Shard& shard(int64_t user);
  const Shard& shard(int64_t user) const;
  uint64_t next_revision();

  size_t max_users_;
  size_t max_events_per_user_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<size_t> count_{0};
  std::atomic<uint64_t> last_revision_{0};  // store-wide: see Snapshot::revision
};

}  // namespace prescale::recommend
