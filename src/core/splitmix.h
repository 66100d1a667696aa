// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014): a
// 64-bit counter advanced by a fixed odd gamma, each value mixed into an output. Fully specified,
// so a sequence is the same with every standard library (std::shuffle and the std distributions
// are implementation-defined); fast and small, not for secrets. The counter is all the state, so
// one atomic fetch_add makes a lock-free generator that threads share.
//
// Thread safety: pure functions; splitmix64_next() on a std::atomic may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace prescale {

// What the counter advances by: the odd integer nearest 2^64 divided by the golden ratio.
inline constexpr std::uint64_t kSplitMix64Gamma = 0x9e3779b97f4a7c15ULL;

// The output for the counter value `z`: a bijection of 64 bits whose every output bit depends on
// every input bit, so it also hashes an integer (or seeds another generator from one).
constexpr std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Advances the counter `state` and returns the next output.
constexpr std::uint64_t splitmix64_next(std::uint64_t& state) {
  return splitmix64_mix(state += kSplitMix64Gamma);
}

// The same on a counter that threads share: each call gets its own output, and calls from one
// thread give the sequence of the plain counter.
inline std::uint64_t splitmix64_next(std::atomic<std::uint64_t>& state) {
  return splitmix64_mix(state.fetch_add(kSplitMix64Gamma, std::memory_order_relaxed) +
                        kSplitMix64Gamma);
}

}  // namespace prescale
