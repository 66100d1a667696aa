// Implicit-feedback interactions: reading a ratings file, turning explicit ratings into
// implicit weights, and the per-user temporal split used for validation and evaluation
// (docs/services/recommend.md, "Evaluation").
//
// Thread safety: all functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace prescale::recommend {

// One user-item event. `weight` > 0 is the implicit-feedback strength (a count, or 1 for a
// positive rating); `timestamp` is Unix seconds.
struct Interaction {
  int64_t user = 0;
  int64_t item = 0;
  float weight = 1;
  int64_t timestamp = 0;
};

// How explicit ratings become implicit interactions. A rating below `min_rating` is not an
// interaction (a low rating says the user did not like the item); the others become
// interactions of `weight` 1, or of weight `rating - min_rating + 1` with `weight_by_rating`.
struct ImplicitOptions {
  double min_rating = 3.5;
  bool weight_by_rating = false;
};

// Reads a MovieLens-style ratings CSV with the columns userId, movieId, rating, timestamp (by
// header name, any order, more columns allowed) and converts the ratings per `options`. Errors
// name the file, the line and the column, e.g. `ratings.csv:7: column 3 "rating": expected a
// number, got "x"`.
Result<std::vector<Interaction>> read_ratings_csv(const std::string& path,
                                                  const ImplicitOptions& options = {});

struct TemporalSplit {
  std::vector<Interaction> train;
  std::vector<Interaction> test;
};

// Holds out each user's most recent `holdout_share` of interactions (by timestamp; ties keep
// the input order): round(share × n) of them, at least 1 for a user with 2 or more, none for a
// user with a single interaction. Both parts keep the input order.
TemporalSplit split_by_time(const std::vector<Interaction>& interactions, double holdout_share);

// FNV-1a 64 of a file's bytes, as 16 hex digits: the `data_hash` of a model manifest.
Result<std::string> file_hash(const std::string& path);

}  // namespace prescale::recommend
