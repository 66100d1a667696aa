// The request mix of `prescale load`: which requests to send, in what proportions.
//
// Syntax (docs/cli.md): entries separated by commas, each
//   METHOD PATH[@BODY_FILE][:WEIGHT]
// e.g. `GET /v1/users/{user}/recommendations?k=10:6,POST /v1/score@fraud.json:3,GET /:1`.
// METHOD is an HTTP method in capitals; PATH starts with '/' and may hold a query; `{user}` in
// the path or the body becomes a user id drawn uniformly from the user range; BODY_FILE is read
// once, at start (`.json` files are sent as application/json); WEIGHT (default 1) is a number
// > 0 after the last ':', and entries are picked with probability weight / sum of weights. A
// literal ',' in a path is written %2C.
//
// Thread safety: Mix is a value; a RequestPicker is used by one thread at a time.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "http/message.h"

namespace prescale::loadgen {

struct MixEntry {
  std::string method;     // "GET"
  std::string path;       // "/v1/users/{user}/recommendations?k=10"
  std::string body_file;  // empty: no body
  std::string body;       // filled by load_bodies()
  double weight = 1;

  // "METHOD PATH", the entry's label in reports.
  std::string name() const;
};

struct Mix {
  std::vector<MixEntry> entries;
};

// Errors: kInvalidArgument, the message naming the 1-based column in `text` and what is wrong,
// e.g. `column 14: weight must be a number > 0, got "0"`.
Result<Mix> parse_mix(std::string_view text);

// Reads every entry's body_file into its body. Errors: kNotFound naming the file.
Result<void> load_bodies(Mix& mix);

// An inclusive range of user ids for `{user}`.
struct UserRange {
  int64_t first = 1;
  int64_t last = 610;  // MovieLens small's users, so the recommend service knows each one
};

// "FIRST-LAST" with 0 <= FIRST <= LAST, or a single id. Errors: kInvalidArgument.
Result<UserRange> parse_user_range(std::string_view text);

// Draws requests from a mix: an entry by weight, then a user id for `{user}`. Seeded, so a run
// is reproducible.
class RequestPicker {
 public:
  RequestPicker(Mix mix, UserRange users, uint64_t seed);

  struct Picked {
    size_t entry = 0;  // index into mix().entries
    http::Request request;
  };
  Picked next();

  const Mix& mix() const { return mix_; }

 private:
  Mix mix_;
  UserRange users_;
  std::mt19937_64 rng_;
  std::discrete_distribution<size_t> entry_;
  std::uniform_int_distribution<int64_t> user_;
  std::vector<std::string> content_types_;  // per entry; empty when it has no body
};

}  // namespace prescale::loadgen
