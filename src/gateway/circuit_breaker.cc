#include "gateway/circuit_breaker.h"

#include <algorithm>
#include <string>

namespace prescale::gateway {
namespace {

// Every atomic here is a counter or a value read on its own, so relaxed order suffices, except
// the breaker's state word: it is stored with release after the fields of the new state
// (open_until, half-open deadline, trial count) and loaded with acquire, so a lock-free reader
// that sees a state also sees the fields written for it.

std::int64_t ns_of(Clock::TimePoint t) { return t.time_since_epoch().count(); }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

constexpr std::uint64_t pack(std::uint64_t generation, BreakerState state) {
  return (generation << 2) | static_cast<std::uint64_t>(state);
}
constexpr BreakerState state_of(std::uint64_t word) { return static_cast<BreakerState>(word & 3); }
constexpr std::uint64_t generation_of(std::uint64_t word) { return word >> 2; }

}  // namespace

// --- ResourceGuard, UpstreamLimits -----------------------------------------------------------

std::optional<ResourceGuard> ResourceGuard::try_acquire(std::atomic<std::uint32_t>& in_use,
                                                        std::uint32_t limit) {
  std::uint32_t current = in_use.load(std::memory_order_relaxed);
  do {
    if (current >= limit) return std::nullopt;
  } while (!in_use.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  return ResourceGuard(&in_use);
}

ResourceGuard::ResourceGuard(ResourceGuard&& other) noexcept
    : in_use_(std::exchange(other.in_use_, nullptr)) {}

ResourceGuard& ResourceGuard::operator=(ResourceGuard&& other) noexcept {
  if (this != &other) {
    release();
    in_use_ = std::exchange(other.in_use_, nullptr);
  }
  return *this;
}

ResourceGuard::~ResourceGuard() { release(); }

void ResourceGuard::release() {
  if (in_use_ != nullptr) {
    in_use_->fetch_sub(1, std::memory_order_relaxed);
    in_use_ = nullptr;
  }
}

UpstreamLimits::UpstreamLimits(UpstreamLimitsConfig config) {
  slots_[static_cast<int>(UpstreamResource::kConnections)].limit = config.max_connections;
  slots_[static_cast<int>(UpstreamResource::kPendingRequests)].limit = config.max_pending_requests;
  slots_[static_cast<int>(UpstreamResource::kRequests)].limit = config.max_requests;
  slots_[static_cast<int>(UpstreamResource::kRetries)].limit = config.max_retries;
}

std::optional<ResourceGuard> UpstreamLimits::try_acquire(UpstreamResource resource) {
  Slot& slot = slots_[static_cast<int>(resource)];
  std::optional<ResourceGuard> guard = ResourceGuard::try_acquire(slot.in_use, slot.limit);
  if (!guard) slot.overflows.fetch_add(1, std::memory_order_relaxed);
  return guard;
}

std::optional<ResourceGuard> UpstreamLimits::try_acquire_below(UpstreamResource resource,
                                                              std::uint32_t limit) {
  return ResourceGuard::try_acquire(slots_[static_cast<int>(resource)].in_use, limit);
}

std::uint32_t UpstreamLimits::in_use(UpstreamResource resource) const {
  return slots_[static_cast<int>(resource)].in_use.load(std::memory_order_relaxed);
}

std::uint32_t UpstreamLimits::limit(UpstreamResource resource) const {
  return slots_[static_cast<int>(resource)].limit;
}

std::uint64_t UpstreamLimits::overflows(UpstreamResource resource) const {
  return slots_[static_cast<int>(resource)].overflows.load(std::memory_order_relaxed);
}

// --- FailureRateBreaker ----------------------------------------------------------------------

const char* to_string(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

Result<void> validate(const FailureRateBreakerConfig& c) {
  auto bad = [](const char* what) {
    return make_error(ErrorCode::kInvalidArgument, std::string("circuit_breaker.") + what);
  };
  if (c.window <= Clock::Duration::zero()) return bad("window must be positive");
  if (c.window_buckets == 0) return bad("window_buckets must be at least 1");
  if (c.window.count() < static_cast<Clock::Duration::rep>(c.window_buckets)) {
    return bad("window_buckets must not exceed the window in nanoseconds");
  }
  if (!(c.failure_rate_threshold_percent > 0 && c.failure_rate_threshold_percent <= 100)) {
    return bad("failure_rate_threshold_percent must be in (0, 100]");
  }
  if (!(c.slow_call_rate_threshold_percent > 0 && c.slow_call_rate_threshold_percent <= 100)) {
    return bad("slow_call_rate_threshold_percent must be in (0, 100]");
  }
  if (c.slow_call_duration <= Clock::Duration::zero()) {
    return bad("slow_call_duration must be positive");
  }
  if (c.open_duration <= Clock::Duration::zero()) return bad("open_duration must be positive");
  if (c.half_open_trials == 0) return bad("half_open_trials must be at least 1");
  if (c.max_half_open_duration <= Clock::Duration::zero()) {
    return bad("max_half_open_duration must be positive");
  }
  return {};
}

BreakerPermit::BreakerPermit(BreakerPermit&& other) noexcept
    : breaker_(std::exchange(other.breaker_, nullptr)),
      generation_(other.generation_),
      trial_(other.trial_) {}

BreakerPermit& BreakerPermit::operator=(BreakerPermit&& other) noexcept {
  if (this != &other) {
    cancel();
    breaker_ = std::exchange(other.breaker_, nullptr);
    generation_ = other.generation_;
    trial_ = other.trial_;
  }
  return *this;
}

BreakerPermit::~BreakerPermit() { cancel(); }

void BreakerPermit::record(Clock::TimePoint now, bool failed, Clock::Duration duration) {
  if (FailureRateBreaker* b = std::exchange(breaker_, nullptr)) {
    b->record(generation_, trial_, now, failed, duration);
  }
}

void BreakerPermit::cancel() {
  if (FailureRateBreaker* b = std::exchange(breaker_, nullptr)) b->cancel(generation_, trial_);
}

FailureRateBreaker::FailureRateBreaker(FailureRateBreakerConfig config,
                                       StateChangeCallback on_state_change)
    : config_(config),
      on_state_change_(std::move(on_state_change)),
      bucket_width_ns_(std::max<std::int64_t>(
          config_.window.count() / std::max<std::uint32_t>(config_.window_buckets, 1), 1)),
      buckets_(std::max<std::uint32_t>(config_.window_buckets, 1)) {}

std::optional<BreakerPermit> FailureRateBreaker::try_acquire(Clock::TimePoint now) {
  const std::uint64_t word = state_word_.load(std::memory_order_acquire);
  if (state_of(word) == BreakerState::kClosed) {
    return BreakerPermit(this, generation_of(word), /*trial=*/false);
  }
  if (state_of(word) == BreakerState::kOpen &&
      ns_of(now) < open_until_ns_.load(std::memory_order_relaxed)) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }

  Transitions transitions;
  std::optional<BreakerPermit> permit;
  {
    std::lock_guard lock(mu_);
    advance_locked(now, transitions);
    const std::uint64_t current = state_word_.load(std::memory_order_relaxed);
    switch (state_of(current)) {
      case BreakerState::kClosed:
        permit = BreakerPermit(this, generation_of(current), /*trial=*/false);
        break;
      case BreakerState::kOpen:
        break;
      case BreakerState::kHalfOpen:
        if (trials_admitted_.load(std::memory_order_relaxed) < config_.half_open_trials) {
          trials_admitted_.fetch_add(1, std::memory_order_relaxed);
          permit = BreakerPermit(this, generation_of(current), /*trial=*/true);
        }
        break;
    }
  }
  if (!permit) rejected_.fetch_add(1, std::memory_order_relaxed);
  notify(transitions);
  return permit;
}

bool FailureRateBreaker::is_accepting(Clock::TimePoint now) const {
  const std::uint64_t word = state_word_.load(std::memory_order_acquire);
  const std::int64_t t = ns_of(now);
  switch (state_of(word)) {
    case BreakerState::kClosed:
      return true;
    case BreakerState::kOpen:
      return t >= open_until_ns_.load(std::memory_order_relaxed);
    case BreakerState::kHalfOpen: {
      const std::int64_t deadline = half_open_deadline_ns_.load(std::memory_order_relaxed);
      if (t < deadline) {
        return trials_admitted_.load(std::memory_order_relaxed) < config_.half_open_trials;
      }
      // Past the deadline it re-opens at the deadline, then half-opens again after open_duration.
      return t >= deadline + config_.open_duration.count();
    }
  }
  return false;
}

BreakerState FailureRateBreaker::state(Clock::TimePoint now) {
  Transitions transitions;
  BreakerState s;
  {
    std::lock_guard lock(mu_);
    advance_locked(now, transitions);
    s = state_of(state_word_.load(std::memory_order_relaxed));
  }
  notify(transitions);
  return s;
}

BreakerStats FailureRateBreaker::stats() const {
  return BreakerStats{
      .opened = opened_.load(std::memory_order_relaxed),
      .half_opened = half_opened_.load(std::memory_order_relaxed),
      .closed = closed_.load(std::memory_order_relaxed),
      .rejected = rejected_.load(std::memory_order_relaxed),
      .half_open_expired = half_open_expired_.load(std::memory_order_relaxed),
  };
}

void FailureRateBreaker::record(std::uint64_t generation, bool trial, Clock::TimePoint now,
                                bool failed, Clock::Duration duration) {
  const bool slow = duration > config_.slow_call_duration;
  Transitions transitions;
  {
    std::lock_guard lock(mu_);
    advance_locked(now, transitions);
    const std::uint64_t word = state_word_.load(std::memory_order_relaxed);
    // A result from an earlier state period (e.g. a call admitted while closed that ends after
    // the breaker opened, or a trial that outlived its half-open deadline) says nothing about now.
    if (generation_of(word) == generation) {
      if (state_of(word) == BreakerState::kClosed) {
        const std::int64_t index = floor_div(ns_of(now), bucket_width_ns_);
        const auto n = static_cast<std::int64_t>(buckets_.size());
        Bucket& bucket = buckets_[static_cast<std::size_t>(((index % n) + n) % n)];
        if (bucket.index <= index) {  // else the slot already holds a newer second: too old
          if (bucket.index != index) bucket = Bucket{.index = index};
          ++bucket.calls;
          bucket.failures += failed ? 1 : 0;
          bucket.slow += slow ? 1 : 0;
          std::uint32_t calls = 0, failures = 0, slow_calls = 0;
          for (const Bucket& b : buckets_) {
            if (b.index > index - n && b.index <= index) {
              calls += b.calls;
              failures += b.failures;
              slow_calls += b.slow;
            }
          }
          if (calls >= config_.minimum_requests && over_thresholds(calls, failures, slow_calls)) {
            transition_locked(BreakerState::kOpen, now, transitions);
          }
        }
      } else if (state_of(word) == BreakerState::kHalfOpen && trial) {
        ++trial_results_;
        trial_failures_ += failed ? 1 : 0;
        trial_slow_ += slow ? 1 : 0;
        if (trial_results_ >= config_.half_open_trials) {
          transition_locked(over_thresholds(trial_results_, trial_failures_, trial_slow_)
                                ? BreakerState::kOpen
                                : BreakerState::kClosed,
                            now, transitions);
        }
      }
    }
  }
  notify(transitions);
}

void FailureRateBreaker::cancel(std::uint64_t generation, bool trial) {
  if (!trial) return;
  std::lock_guard lock(mu_);
  const std::uint64_t word = state_word_.load(std::memory_order_relaxed);
  if (generation_of(word) == generation && state_of(word) == BreakerState::kHalfOpen) {
    trials_admitted_.fetch_sub(1, std::memory_order_relaxed);  // the slot is free for another
  }
}

void FailureRateBreaker::advance_locked(Clock::TimePoint now, Transitions& transitions) {
  // At most: half-open expires → open → half-open again. The loop bound is a safety net.
  for (int i = 0; i < 4; ++i) {
    const BreakerState s = state_of(state_word_.load(std::memory_order_relaxed));
    if (s == BreakerState::kOpen && ns_of(now) >= open_until_ns_.load(std::memory_order_relaxed)) {
      transition_locked(BreakerState::kHalfOpen, now, transitions);
    } else if (s == BreakerState::kHalfOpen &&
               ns_of(now) >= half_open_deadline_ns_.load(std::memory_order_relaxed)) {
      // Trials are still out after max_half_open_duration: treat them as failed and re-open, as
      // of the deadline, so that the breaker cannot wait forever for calls that never return.
      half_open_expired_.fetch_add(1, std::memory_order_relaxed);
      const Clock::TimePoint deadline{
          Clock::Duration(half_open_deadline_ns_.load(std::memory_order_relaxed))};
      transition_locked(BreakerState::kOpen, deadline, transitions);
    } else {
      return;
    }
  }
}

void FailureRateBreaker::transition_locked(BreakerState to, Clock::TimePoint at,
                                           Transitions& transitions) {
  const std::uint64_t word = state_word_.load(std::memory_order_relaxed);
  const BreakerState from = state_of(word);
  switch (to) {
    case BreakerState::kOpen:
      open_until_ns_.store(ns_of(at) + config_.open_duration.count(), std::memory_order_relaxed);
      opened_.fetch_add(1, std::memory_order_relaxed);
      break;
    case BreakerState::kHalfOpen:
      half_open_deadline_ns_.store(ns_of(at) + config_.max_half_open_duration.count(),
                                   std::memory_order_relaxed);
      trials_admitted_.store(0, std::memory_order_relaxed);
      trial_results_ = trial_failures_ = trial_slow_ = 0;
      half_opened_.fetch_add(1, std::memory_order_relaxed);
      break;
    case BreakerState::kClosed:
      closed_.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  // Each closed period starts with an empty window.
  std::fill(buckets_.begin(), buckets_.end(), Bucket{});
  state_word_.store(pack(generation_of(word) + 1, to), std::memory_order_release);
  transitions.emplace_back(from, to);
}

bool FailureRateBreaker::over_thresholds(std::uint32_t calls, std::uint32_t failures,
                                         std::uint32_t slow) const {
  if (calls == 0) return false;
  const double n = static_cast<double>(calls);
  return 100.0 * failures / n >= config_.failure_rate_threshold_percent ||
         100.0 * slow / n >= config_.slow_call_rate_threshold_percent;
}

void FailureRateBreaker::notify(const Transitions& transitions) const {
  if (!on_state_change_) return;
  for (const auto& [from, to] : transitions) on_state_change_(from, to);
}

}  // namespace prescale::gateway
