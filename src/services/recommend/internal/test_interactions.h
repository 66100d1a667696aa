// Test-only: small generated interaction sets with a known structure, and where the MovieLens
// ratings lie. Not part of the library.
#pragma once

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "services/recommend/interactions.h"

namespace prescale::recommend::testing {

// Two taste groups: users 1..20 interact with items 101..120, users 21..40 with items 201..220
// (each with 12 of their group's 20 items, at increasing timestamps), and item 101 and 201 are
// the most popular of their group (every user of the group has it).
inline std::vector<Interaction> two_groups(uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<Interaction> out;
  int64_t t = 1'000'000;
  for (int64_t user = 1; user <= 40; ++user) {
    const int64_t base = user <= 20 ? 100 : 200;
    std::vector<int64_t> rest;
    for (int64_t i = 2; i <= 20; ++i) rest.push_back(base + i);
    std::shuffle(rest.begin(), rest.end(), rng);
    out.push_back({user, base + 1, 1.0f, t++});
    for (size_t k = 0; k < 11; ++k) out.push_back({user, rest[k], 1.0f, t++});
  }
  return out;
}

// The MovieLens ratings beside the checkout (../shared/data), or "" when absent.
inline std::string movielens_ratings() {
  const char* source = std::getenv("PRESCALE_SOURCE_DIR");
  std::string path = std::string(source != nullptr ? source : ".") +
                     "/../shared/data/recsys/movielens-latest-small/ratings.csv";
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  std::fclose(f);
  return path;
}

}  // namespace prescale::recommend::testing
